"""The insurers role: our simulator of insurance companies, on its own HTTP port."""

from __future__ import annotations

import logging

import trio
from hypercorn.trio import serve

from osago.clock import Clock
from osago.config import DEFAULT_INSURERS, Settings
from osago.errors import ConfigError
from osago.insurers.simulator import Behaviour, Simulator, create_simulator_app
from osago.roles._deps import SimulatorDeps
from osago.roles.api import hypercorn_config

__all__ = ["default_simulator", "run"]

log = logging.getLogger("osago.insurers")


def default_simulator(settings: Settings, clock: Clock) -> Simulator:
    """Every known insurer, base rates spread over the corridor.

    ``realistic``: log-normal delays (medians 1.5-9 s, a tail past a minute), refusals,
    pool offers, transient 503s, rare hangs, stalls and malformed bodies. ``calm``: fixed
    delays of 0.3-3.5 s and no failures (demos and tests). OSAGO_SIMULATOR_DELAYS fixes
    an insurer's delay and makes it calm.
    """
    if settings.simulator_profile not in ("realistic", "calm"):
        raise ConfigError(
            f"OSAGO_SIMULATOR_PROFILE={settings.simulator_profile!r}: use realistic or calm"
        )
    behaviours = {}
    n = len(DEFAULT_INSURERS)
    for i, (code, name) in enumerate(DEFAULT_INSURERS):
        b = Behaviour(name=name, base_fraction=0.15 + 0.7 * i / (n - 1))
        if code in settings.simulator_delays or settings.simulator_profile == "calm":
            b.median_delay = settings.simulator_delays.get(code, 0.3 + 0.35 * i)
        else:
            b.median_delay = 1.5 + 0.8 * i
            b.delay_sigma = 0.7
            b.refusal_rate = 0.04 + 0.01 * (i % 5)
            b.pool_rate = 0.05
            b.error_rate = 0.02
            b.hang_rate = 0.01
            b.stall_rate = 0.005
            b.malformed_rate = 0.005
        behaviours[code] = b
    return Simulator(clock, behaviours, seed=settings.simulator_seed)


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
