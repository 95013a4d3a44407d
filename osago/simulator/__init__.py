"""Our simulator of insurance companies: many insurers behind one HTTP server, speaking the
asynchronous submit-then-poll protocol, with seeded, realistic behaviour.

``app`` serves a :class:`Simulator` (on our lean HTTP/1.1 server,
:mod:`osago.web.http1`); ``profiles`` builds the default one from the insurers
file; ``role`` runs it as ``osago --role insurers``.
"""

from osago.simulator.app import REFUSALS, Behaviour, Simulator, simulator_handler
from osago.simulator.profiles import default_simulator
from osago.simulator.role import SimulatorDeps, run

__all__ = [
    "REFUSALS",
    "Behaviour",
    "Simulator",
    "SimulatorDeps",
    "default_simulator",
    "run",
    "simulator_handler",
]
