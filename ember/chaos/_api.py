"""Running a scenario end to end: pick the driver and the event loop, run, write the report."""

from __future__ import annotations

import datetime
import shutil
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from .._errors import UsageError
from ._driver import Driver
from ._report import write_report
from ._runner import Progress, Runner, RunResult
from ._scenario import Scenario, load_scenario

__all__ = ["DRIVERS", "bundled_scenarios", "find_scenario", "run_chaos"]

DRIVERS = ("sim", "processes", "netns")


def _scenario_dir() -> Path:
    return Path(str(resources.files("ember.chaos").joinpath("scenarios")))


def bundled_scenarios() -> list[Scenario]:
    """The scenarios shipped with Ember (``chaos/*.toml``), by name."""
    return [load_scenario(p) for p in sorted(_scenario_dir().glob("*.toml"))]


def find_scenario(spec: str) -> Path:
    """``spec`` as a path, or the bundled scenario of that name."""
    path = Path(spec)
    if path.exists():
        return path
    bundled = _scenario_dir() / f"{spec.removesuffix('.toml')}.toml"
    if bundled.exists():
        return bundled
    names = ", ".join(s.name for s in bundled_scenarios())
    raise UsageError(f"no scenario file {spec!r} and no bundled scenario of that name ({names})")


def _driver(kind: str, scenario: Scenario, seed: int, workdir: Path) -> Driver:
    if kind == "sim":
        from ._simdriver import SimDriver

        return SimDriver(scenario, seed, workdir)
    if kind == "processes":
        from ._procdriver import ProcessDriver

        return ProcessDriver(scenario, seed, workdir)
    if kind == "netns":
        from ._netnsdriver import NetnsDriver

        return NetnsDriver(scenario, seed, workdir)
    raise UsageError(f"driver must be one of {', '.join(DRIVERS)}, not {kind!r}")


def default_out(scenario: Scenario, driver: str, seed: int) -> Path:
    """``chaos-runs/<scenario>-<driver>-s<seed>-<UTC time>``."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    return Path("chaos-runs") / f"{scenario.name}-{driver}-s{seed}-{stamp}"


def run_chaos(
    scenario: Scenario,
    *,
    driver: str = "sim",
    seed: int | None = None,
    out: Path | None = None,
    progress: Progress | None = None,
    command: Sequence[str] = (),
) -> tuple[RunResult, dict[str, Any], Path]:
    """Run ``scenario`` on ``driver`` (seed: the scenario's unless given), write the run
    directory ``out`` and return the result, ``result.json``'s content and the directory.

    The sim driver runs on the virtual-time loop (a seed replays the run), the others on
    uvloop with the real clock."""
    seed = scenario.seed if seed is None else seed
    out = out or default_out(scenario, driver, seed)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="work-", dir=out))
    d = _driver(driver, scenario, seed, work)
    d.check_supported()

    async def main() -> RunResult:
        return await Runner(scenario, d, seed, progress).run()

    if driver == "sim":
        from ._clock import run_skewed

        result = run_skewed(main)
    else:
        from ..actors import run as run_real

        result = run_real(main)
    replay = list(command) or [
        "ember", "chaos", "run", scenario.path or scenario.name, "--driver", driver,
        "--seed", str(seed),
    ]  # fmt: skip
    summary = write_report(result, out, replay)
    shutil.rmtree(work, ignore_errors=True)  # node data; the logs are in out/logs
    return result, summary, out
