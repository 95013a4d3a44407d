"""WebSocket sessions of one notifier process: the user index, the recent-event history used
to resume, and event de-duplication."""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field

import trio

from osago.models import Push

__all__ = ["CLOSE", "REFUSE", "Frame", "History", "Hub", "Session"]

log = logging.getLogger("osago.notifier")

# Close codes a client can act on (4000-4999 are the application's own).
CLOSE = {
    "going_away": (1001, "server shutting down"),
    "invalid_token": (1008, "invalid token"),
    "too_big": (1009, "message too big"),
    "expired": (4001, "token expired: fetch a new one and reconnect"),
    "too_slow": (4002, "not reading: dropped"),
    "no_pong": (4004, "no pong: connection presumed dead"),
    "internal": (1011, "internal error: reconnect and resume"),
}

# Handshakes refused before the socket is accepted: HTTP status and the JSON body's detail.
REFUSE = {
    "not_found": (404, "no such endpoint: connect to /ws"),
    "invalid_token": (401, "invalid token"),
    "expired": (401, "token expired: fetch a new one and reconnect"),
    "too_many": (429, "too many sessions for this user"),
    "too_many_connections": (503, "too many connections: retry later"),
}


# A frame to write: its text, when the worker had the answer it carries (or None), and the
# push to note once it is written (a live event of a stored calculation; else None).
Frame = tuple[str, float | None, Push | None]


@dataclass(eq=False)
class Session:
    """One connected browser tab. Outgoing frames wait in a bounded buffer."""

    user_id: str
    expires_at: float
    send: trio.MemorySendChannel[Frame]
    recv: trio.MemoryReceiveChannel[Frame]
    cancel: trio.CancelScope = field(default_factory=trio.CancelScope)
    expiry: trio.CancelScope = field(default_factory=trio.CancelScope)  # deadline = token's end
    close_reason: str | None = None
    # (calculation, seq) already queued to this session: a resume never repeats what the
    # live stream gave it since it connected, nor the other way round.
    delivered: set[tuple[str, int]] = field(default_factory=set)

    def end(self, reason: str) -> None:
        """Stop the session; it closes with ``CLOSE[reason]``."""
        if self.close_reason is None:
            self.close_reason = reason
        self.cancel.cancel()


@dataclass
class _Calc:
    user_id: str
    first_seen: float
    events: list[tuple[int, str]] = field(default_factory=list)


class History:
    """Recent events per calculation, for clients that reconnect and say what they last saw."""

    def __init__(self, *, started_at: float, retention: float, max_events: int = 200_000) -> None:
        self.started_at = started_at
        self.retention = retention
        self._max_events = max_events
        self._calcs: OrderedDict[str, _Calc] = OrderedDict()
        self._count = 0
        # First sighting of the newest calculation dropped to stay under max_events: a
        # calculation created before it may have lost events here, so we cannot know.
        self._evicted_through = float("-inf")

    def record(self, calc_id: str, user_id: str, seq: int, text: str, now: float) -> None:
        c = self._calcs.get(calc_id)
        if c is None:
            c = self._calcs[calc_id] = _Calc(user_id, now)
        c.events.append((seq, text))
        self._count += 1
        while self._calcs:
            oldest_id, oldest = next(iter(self._calcs.items()))
            if oldest.first_seen >= now - self.retention and self._count <= self._max_events:
                break
            self._count -= len(oldest.events)
            self._evicted_through = max(self._evicted_through, oldest.first_seen)
            del self._calcs[oldest_id]

    def missed(
        self, calc_id: str, user_id: str, last_seq: int, created_at: float, now: float
    ) -> list[tuple[int, str]] | None:
        """(seq, text) of the events after ``last_seq``, in order; None when this instance
        cannot know."""
        if created_at < now - self.retention:
            return None  # older than what any instance keeps
        c = self._calcs.get(calc_id)
        if c is None:
            # Nothing recorded: fine if we were listening since before it was created, and
            # dropped nothing it could have had since.
            known = self.started_at <= created_at and self._evicted_through < created_at
            return [] if known else None
        if c.user_id != user_id:
            return []
        seqs = sorted(c.events)
        complete_from = seqs[0][0] if self.started_at > created_at else 1
        if last_seq + 1 < complete_from:
            return None
        return [(seq, text) for seq, text in seqs if seq > last_seq]


class Hub:
    """Sessions by user id, and the (calculation, seq) pairs already delivered."""

    def __init__(self, *, buffer: int = 256, per_user: int = 20, remember: int = 100_000) -> None:
        self._by_user: dict[str, set[Session]] = {}
        self._buffer = buffer
        self.per_user = per_user
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._remember = remember

    @property
    def sessions(self) -> int:
        return sum(len(v) for v in self._by_user.values())

    def all(self) -> list[Session]:
        """Every open session."""
        return [s for sessions in self._by_user.values() for s in sessions]

    def open(self, user_id: str, expires_at: float) -> Session | None:
        """A new session, or None when the user already holds ``per_user`` sessions."""
        if len(self._by_user.get(user_id, ())) >= self.per_user:
            return None
        send, recv = trio.open_memory_channel[Frame](self._buffer)
        session = Session(user_id, expires_at, send, recv)
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

    @staticmethod
    def push(
        session: Session, text: str, received_at: float | None = None, note: Push | None = None
    ) -> bool:
        """Queue one frame; a session whose buffer is full does not read: drop it."""
        try:
            session.send.send_nowait((text, received_at, note))
        except trio.WouldBlock:
            log.warning("notifier: dropping a session of %s: it does not read", session.user_id)
            session.end("too_slow")
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        return True

    def deliver(
        self,
        user_id: str,
        text: str,
        key: tuple[str, int],
        received_at: float | None = None,
        note: Push | None = None,
    ) -> int:
        """Queue event ``key`` = (calculation, seq) to every session of ``user_id`` that has
        not had it; returns how many took it."""
        count = 0
        for session in list(self._by_user.get(user_id, ())):
            if key in session.delivered:
                continue
            if self.push(session, text, received_at, note):
                session.delivered.add(key)
                count += 1
            else:
                self.close(session)
        return count
