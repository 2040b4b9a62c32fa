"""Tools for testing Ember programs: virtual time and pytest fixtures.

``run(main)`` runs a coroutine on a :class:`VirtualTimeLoop`, whose clock jumps to the next timer
whenever nothing is ready, so timeouts, restart periods and timers are tested instantly and
deterministically. The pytest plugin (loaded automatically) runs ``async def`` tests that way and
provides the ``node`` and ``make_node`` fixtures. ``seeds`` and ``seeded`` give randomized
tests replayable seeds (``EMBER_SEED``).
"""

from ._plugin import run_test as run_test
from ._seeds import seeded as seeded
from ._seeds import seeds as seeds
from ._sim import SimCluster as SimCluster
from ._sim import SimNetwork as SimNetwork
from ._vtime import VirtualTimeDeadlock as VirtualTimeDeadlock
from ._vtime import VirtualTimeLoop as VirtualTimeLoop
from ._vtime import run as run
