"""``osago --role insurers``: our simulator of insurance companies, on its own HTTP port."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from osago.config import Settings
from osago.simulator.app import Simulator, simulator_handler
from osago.simulator.callbacks import CallbackSender
from osago.web.http1 import serve_http

__all__ = ["SimulatorDeps", "run"]

log = logging.getLogger("osago.insurers")


@dataclass(frozen=True)
class SimulatorDeps:
    """What the simulator role needs: settings, the stop event, and the simulator."""

    settings: Settings
    stop: trio.Event
    simulator: Simulator


async def run(
    deps: SimulatorDeps, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the simulator until ``deps.stop``; started() gives the base URL. At the stop,
    requests in flight (a held long poll) are cut: the callers see a transient error."""
    bind = deps.settings.insurers_bind
    sender = CallbackSender(deps.simulator, deps.settings.callback_secret)
    deps.simulator.schedule_callback = sender.schedule
    # Trio's accept backlog is the kernel's maximum (somaxconn), not Hypercorn's 100: a
    # burst of new connections (a rate step, a pool refilling) is not dropped as SYNs whose
    # retransmit comes a second later, past a poll's attempt timeout.
    listeners = await trio.open_tcp_listeners(bind.port, host=bind.host)
    port = listeners[0].socket.getsockname()[1]
    host = f"[{bind.host}]" if ":" in bind.host else bind.host
    url = f"http://{host}:{port}"
    async with trio.open_nursery() as nursery:
        await nursery.start(sender.run)
        nursery.start_soon(serve_http, simulator_handler(deps.simulator), listeners)
        log.info(
            "insurer simulator listening on %s (%d insurers)", url, len(deps.simulator.behaviours)
        )
        task_status.started(url)
        await deps.stop.wait()
        nursery.cancel_scope.cancel()  # callbacks not yet due are dropped
