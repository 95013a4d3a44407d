"""The simulator's side of callback mode: a calculation submitted with a ``callback_url`` is
POSTed there, signed with the insurer's secret, when it becomes ready.

One task keeps a heap of what is due (a thousand waiting callbacks are a heap, not a thousand
sleeping tasks) and starts a delivery for each at its time. A delivery is tried three times a
second apart on a transport error or a 5xx, as insurers do; a 4xx is final (logged). Some
callbacks are lost on purpose (``Behaviour.callback_loss_rate``): the worker's safety poll
must find those answers.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import math
from urllib.parse import urlsplit

import trio

from osago.insurers.callbacks import SIGNATURE_HEADER, insurer_secret, sign
from osago.insurers.http11 import Http11Pool, HttpTransportError
from osago.simulator.app import SimulatedCalc, Simulator
from osago.simulator.app import garbage as _garbage

__all__ = ["CallbackSender"]

log = logging.getLogger("osago.insurers")

_ATTEMPTS = 3


class CallbackSender:
    """Delivers ready answers to callback URLs; :meth:`schedule` is the simulator's hook."""

    def __init__(self, sim: Simulator, master_secret: str) -> None:
        self._sim = sim
        self._master = master_secret
        self._send, self._recv = trio.open_memory_channel[tuple[str, SimulatedCalc]](math.inf)
        self._pools: dict[str, Http11Pool] = {}
        self.sent = 0  # callbacks answered 2xx (benches, tests)

    def schedule(self, code: str, calc: SimulatedCalc) -> None:
        """POST ``calc``'s answer to its callback URL at its ``ready_at`` (never, if it hangs
        or its callback is to be lost)."""
        if math.isfinite(calc.ready_at):
            self._send.send_nowait((code, calc))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver what is due, until cancelled."""
        due: list[tuple[float, int, str, SimulatedCalc]] = []
        order = itertools.count()
        clock = self._sim.clock
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while True:
                    with trio.move_on_at(clock.trio_time(due[0][0]) if due else math.inf):
                        code, calc = await self._recv.receive()
                        heapq.heappush(due, (calc.ready_at, next(order), code, calc))
                        continue
                    while due and due[0][0] <= clock.now():
                        _, _, code, calc = heapq.heappop(due)
                        nursery.start_soon(self._deliver, code, calc)
        finally:
            with trio.CancelScope(shield=True):
                for pool in self._pools.values():
                    await pool.aclose()

    async def _deliver(self, code: str, calc: SimulatedCalc) -> None:
        b = self._sim.behaviours[code]
        if self._sim.rng(code, calc.id, "callback").random() < b.callback_loss_rate:
            calc.faults += 1
            return  # lost: the worker's safety poll finds it
        assert calc.callback_url is not None
        url = urlsplit(calc.callback_url)
        origin = f"{url.scheme}://{url.netloc}"
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = Http11Pool(origin)
        rng = self._sim.rng(code, calc.id, "callback body")
        answer = (
            _garbage(rng, calc) if rng.random() < b.garbage_rate else self._sim.final_answer(calc)
        )
        body = json.dumps(answer, separators=(",", ":")).encode()
        secret = insurer_secret(self._master, code)
        for attempt in range(1, _ATTEMPTS + 1):
            started = self._sim.clock.now()
            headers = [
                ("content-type", "application/json"),
                (SIGNATURE_HEADER, sign(secret, body, started)),
            ]
            try:
                with trio.fail_after(5):
                    response = await pool.request("POST", url.path, headers=headers, body=body)
            except (HttpTransportError, trio.TooSlowError) as exc:
                status, detail = 0, repr(exc)
            else:
                status, detail = response.status, response.body[:200].decode(errors="replace")
                if status < 300:
                    self.sent += 1
                    calc.called_back_at = started
                    return
                if status < 500:
                    log.warning("callback %s/%s refused: %d %s", code, calc.id, status, detail)
                    return
            calc.faults += 1
            if attempt < _ATTEMPTS:
                await trio.sleep(1.0)
        log.warning("callback %s/%s not delivered: %s %s", code, calc.id, status, detail)
