"""``osago --role insurers``: our simulator of insurance companies, on its own HTTP port."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio
from hypercorn.trio import serve

from osago.config import Settings
from osago.simulator.app import Simulator, create_simulator_app
from osago.simulator.callbacks import CallbackSender
from osago.web.server import hypercorn_config

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
    """Serve the simulator until ``deps.stop``; started() gives the base URL."""
    config = hypercorn_config(str(deps.settings.insurers_bind), deps.settings.shutdown_grace)
    sender = CallbackSender(deps.simulator, deps.settings.callback_secret)
    deps.simulator.schedule_callback = sender.schedule
    async with trio.open_nursery() as nursery:
        await nursery.start(sender.run)
        async with trio.open_nursery() as serving:
            binds = await serving.start(
                lambda task_status: serve(
                    create_simulator_app(deps.simulator),
                    config,
                    shutdown_trigger=deps.stop.wait,
                    task_status=task_status,
                )
            )
            log.info(
                "insurer simulator listening on %s (%d insurers)",
                binds[0],
                len(deps.simulator.behaviours),
            )
            task_status.started(binds[0])
        nursery.cancel_scope.cancel()  # served and drained: callbacks not yet due are dropped
