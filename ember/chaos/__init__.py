"""Chaos testing: scenarios, faults, workloads, histories, checkers and reports.

``run_chaos(load_scenario("chaos/leader-kill.toml"), driver="sim")`` runs a scenario and writes
its run directory; ``ember chaos run`` is the command. See ``docs/chaos.md``.
"""

from ._api import DRIVERS as DRIVERS
from ._api import bundled_scenarios as bundled_scenarios
from ._api import find_scenario as find_scenario
from ._api import run_chaos as run_chaos
from ._checkers import CheckResult as CheckResult
from ._checkers import Validity as Validity
from ._driver import DriverError as DriverError
from ._history import Event as Event
from ._history import History as History
from ._runner import FaultRecord as FaultRecord
from ._runner import RunResult as RunResult
from ._scenario import ChecksSpec as ChecksSpec
from ._scenario import ClusterSpec as ClusterSpec
from ._scenario import FaultSpec as FaultSpec
from ._scenario import GeneratorSpec as GeneratorSpec
from ._scenario import Scenario as Scenario
from ._scenario import ScenarioError as ScenarioError
from ._scenario import WorkloadSpec as WorkloadSpec
from ._scenario import load_scenario as load_scenario
from ._scenario import parse_scenario as parse_scenario
