"""The insurers role: our simulator of insurance companies, on its own HTTP port."""

from __future__ import annotations

import logging

import trio
from hypercorn.trio import serve

from osago.clock import Clock
from osago.config import DEFAULT_INSURERS, Settings
from osago.insurers.simulator import Behaviour, Simulator, create_simulator_app
from osago.roles._deps import SimulatorDeps
from osago.roles.api import hypercorn_config

__all__ = ["default_simulator", "run"]

log = logging.getLogger("osago.insurers")


def default_simulator(settings: Settings, clock: Clock) -> Simulator:
    """Every known insurer, with base rates spread inside the corridor and the configured delays."""
    behaviours = {}
    for i, (code, name) in enumerate(DEFAULT_INSURERS):
        behaviours[code] = Behaviour(
            name=name,
            base_rate=round(4000 + 450 * i, 2),
            delay=settings.simulator_delays.get(code, 0.3 + 0.35 * i),
        )
    return Simulator(clock, behaviours)


async def run(
    deps: SimulatorDeps, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the simulator until ``deps.stop``; started() gives the base URL."""
    config = hypercorn_config(str(deps.settings.insurers_bind), deps.settings.shutdown_grace)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
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
