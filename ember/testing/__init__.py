"""Tools for testing Ember programs: virtual time, pytest fixtures, a linearizability checker.

``run(main)`` runs a coroutine on a :class:`VirtualTimeLoop`, whose clock jumps to the next timer
whenever nothing is ready, so timeouts, restart periods and timers are tested instantly and
deterministically. The pytest plugin (loaded automatically) runs ``async def`` tests that way and
provides the ``node`` and ``make_node`` fixtures. ``seeds`` and ``seeded`` give randomized
tests replayable seeds (``EMBER_SEED``). ``check_linearizability`` checks a concurrent history
against a sequential model (``KVModel``, ``RegisterModel`` or your own ``Model``), per key,
under a budget: Porcupine's algorithm.
"""

from ._linearizability import UNKNOWN as UNKNOWN
from ._linearizability import KVModel as KVModel
from ._linearizability import LinearizabilityResult as LinearizabilityResult
from ._linearizability import Model as Model
from ._linearizability import Operation as Operation
from ._linearizability import PartitionResult as PartitionResult
from ._linearizability import RegisterModel as RegisterModel
from ._linearizability import Verdict as Verdict
from ._linearizability import Witness as Witness
from ._linearizability import check_linearizability as check_linearizability
from ._runtest import run_test as run_test
from ._seeds import seeded as seeded
from ._seeds import seeds as seeds
from ._sim import SimCluster as SimCluster
from ._sim import SimNetwork as SimNetwork
from ._vtime import VirtualTimeDeadlock as VirtualTimeDeadlock
from ._vtime import VirtualTimeLoop as VirtualTimeLoop
from ._vtime import run as run
