"""WebSocket sessions of one notifier process, indexed by user, and event de-duplication."""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field

import trio

__all__ = ["Hub", "Session"]

log = logging.getLogger("osago.notifier")


@dataclass(eq=False)
class Session:
    """One connected browser tab. Its outgoing frames wait in a bounded buffer."""

    user_id: str
    send: trio.MemorySendChannel[str]
    recv: trio.MemoryReceiveChannel[str]
    cancel: trio.CancelScope = field(default_factory=trio.CancelScope)
    dropped: bool = False


class Hub:
    """Sessions by user id, and the (calculation, seq) pairs already delivered."""

    def __init__(self, *, buffer: int = 256, remember: int = 100_000) -> None:
        self._by_user: dict[str, set[Session]] = {}
        self._buffer = buffer
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._remember = remember

    @property
    def sessions(self) -> int:
        return sum(len(v) for v in self._by_user.values())

    def all(self) -> list[Session]:
        """Every open session."""
        return [s for sessions in self._by_user.values() for s in sessions]

    def open(self, user_id: str) -> Session:
        send, recv = trio.open_memory_channel[str](self._buffer)
        session = Session(user_id, send, recv)
        self._by_user.setdefault(user_id, set()).add(session)
        return session

    def close(self, session: Session) -> None:
        sessions = self._by_user.get(session.user_id)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._by_user[session.user_id]

    def first_time(self, calculation_id: str, seq: int) -> bool:
        """True once per event: at-least-once delivery upstream, exactly once to users."""
        key = (calculation_id, seq)
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        return True

    def deliver(self, user_id: str, text: str) -> int:
        """Queue ``text`` to every session of ``user_id``; drop sessions that cannot keep up."""
        count = 0
        for session in list(self._by_user.get(user_id, ())):
            try:
                session.send.send_nowait(text)
                count += 1
            except trio.WouldBlock:
                log.warning("notifier: dropping a session of %s: it does not read", user_id)
                session.dropped = True
                session.cancel.cancel()
                self.close(session)
        return count
