"""The simulator's profiles: how each insurer of the insurers file behaves by default."""

from __future__ import annotations

from osago.clock import Clock
from osago.config import Settings
from osago.errors import ConfigError
from osago.insurers.catalog import load_insurers
from osago.simulator.app import Behaviour, Simulator

__all__ = ["default_simulator"]


def default_simulator(settings: Settings, clock: Clock) -> Simulator:
    """Every known insurer, base rates spread over the corridor.

    ``realistic``: log-normal delays (medians 1.5-9 s, a tail past a minute), refusals,
    pool offers, transient 503s, rare hangs, stalls and malformed bodies, and a callback lost
    now and then. ``calm``: fixed delays of 0.3-3.5 s and no failures (demos and tests).
    OSAGO_SIMULATOR_DELAYS fixes an insurer's delay and makes it calm. In either, each
    insurer speaks the mode the insurers file gives it: it holds status requests for a
    long-poll insurer, and calls back when a submit carries a callback URL.
    """
    if settings.simulator_profile not in ("realistic", "calm"):
        raise ConfigError(
            f"OSAGO_SIMULATOR_PROFILE={settings.simulator_profile!r}: use realistic or calm"
        )
    # Every insurer of the insurers file (OSAGO_INSURERS selects whom osago asks, not who
    # exists), with its display name: one list for osago and the simulator.
    known = load_insurers(settings.insurers_file, default_base="")
    behaviours = {}
    n = len(known)
    for i, c in enumerate(known):
        code = c.code
        b = Behaviour(name=c.name, base_fraction=0.15 + 0.7 * i / max(n - 1, 1))
        if c.long_poll:
            b.long_poll_max = c.long_poll_wait
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
            b.callback_loss_rate = 0.02
        behaviours[code] = b
    return Simulator(clock, behaviours, seed=settings.simulator_seed)
