"""Our simulator of insurance companies: many insurers behind one HTTP server, speaking the
asynchronous submit-then-poll protocol, with seeded, realistic behaviour.

``app`` serves a :class:`Simulator`; ``profiles`` builds the default one from the insurers
file; ``role`` runs it as ``osago --role insurers``.
"""

from osago.simulator.app import REFUSALS, Behaviour, Simulator, create_simulator_app
from osago.simulator.profiles import default_simulator
from osago.simulator.role import SimulatorDeps, run

__all__ = [
    "REFUSALS",
    "Behaviour",
    "Simulator",
    "SimulatorDeps",
    "create_simulator_app",
    "default_simulator",
    "run",
]
