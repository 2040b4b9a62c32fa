"""Reports: a run directory with ``history.jsonl``, ``result.json``, the node logs and one
self-contained ``report.html`` (static SVG, no script, no network).

The timeline draws every client's operations (ok blue, info orange, fail pink, never completed
grey) with the fault intervals shaded; operations closer than a pixel merge into one bar, so
the file stays small however long the run (about 2 MB for 100,000 operations).
"""

from __future__ import annotations

import html
import json
import math
import shlex
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from ._history import Event, History
from ._runner import FaultRecord, RunResult

__all__ = ["figures", "result_dict", "series_svg", "timeline_svg", "write_report"]

WIDTH = 1200
LANE = 12
_COLORS = {"ok": "#4c78a8", "info": "#f58518", "fail": "#e45756", "open": "#9d9d9d"}
_FAULT_COLORS = {
    "kill": "#e45756",
    "restart": "#e45756",
    "pause": "#b279a2",
    "partition": "#72b7b2",
    "delay": "#eeca3b",
    "loss": "#ff9da6",
}


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def figures(history: History, phases: dict[str, float]) -> dict[str, Any]:
    """Counts by outcome, throughput and latency percentiles by operation (milliseconds)."""
    by_f: dict[str, list[float]] = {}
    for invoke, done in history.pairs():
        if done is not None and done.type == "ok":
            by_f.setdefault(invoke.f, []).append(done.time - invoke.time)
    span = max(phases.get("workload_end", 0.0), 1e-9)
    ok = sum(len(v) for f, v in by_f.items() if f != "final_read")
    return {
        "outcomes": history.counts(),
        "ok_per_s": round(ok / span, 1),
        "latency_ms": {
            f: {
                "p50": round(_percentile(v, 0.5) * 1000, 2),
                "p99": round(_percentile(v, 0.99) * 1000, 2),
                "max": round(max(v) * 1000, 2),
            }
            for f, v in sorted(by_f.items())
        },
    }


def result_dict(result: RunResult, command: Sequence[str]) -> dict[str, Any]:
    """What ``result.json`` holds: verdicts, figures, faults, seed and the replay command."""
    s = result.scenario
    return {
        "scenario": s.name,
        "description": s.description,
        "path": s.path,
        "seed": result.seed,
        "driver": result.driver,
        "validity": result.validity.value,
        "exit_code": result.validity.exit_code,
        "replay": shlex.join(command),
        "checks": [c.as_dict() for c in result.checks],
        "figures": figures(result.history, result.phases),
        "phases": {k: round(v, 6) for k, v in result.phases.items()},
        "faults": [f.as_dict() for f in result.faults],
    }


def _lanes(pairs: list[tuple[Event, Event | None]], end: float) -> dict[int, int]:
    """A lane per process, reused once its last operation is over (processes are sequential;
    one retired after ``info`` leaves its lane to the next)."""
    spans: dict[int, list[float]] = {}
    for invoke, done in pairs:
        span = spans.setdefault(invoke.process, [invoke.time, invoke.time])
        span[1] = max(span[1], done.time if done is not None else end)
    lanes: dict[int, int] = {}
    free_at: list[float] = []
    for process, (start, stop) in sorted(spans.items(), key=lambda kv: (kv[1][0], kv[0])):
        lane = next((i for i, t in enumerate(free_at) if t < start), len(free_at))
        if lane == len(free_at):
            free_at.append(stop)
        else:
            free_at[lane] = stop
        lanes[process] = lane
    return lanes


def _shade(
    faults: Sequence[FaultRecord], scale: float, end: float, height: int, top: int
) -> list[str]:
    out = []
    for f in faults:
        x1 = f.start * scale
        x2 = (f.stop if f.stop is not None else end) * scale
        color = _FAULT_COLORS.get(f.fault, "#bab0ac")
        label = html.escape(f"{f.fault} {','.join(f.targets)} {f.detail}".strip())
        out.append(
            f'<rect x="{x1:.1f}" y="{top}" width="{max(x2 - x1, 1):.1f}" height="{height}" '
            f'fill="{color}" fill-opacity="0.18"><title>{label} '
            f"({f.start:.2f}-{(f.stop if f.stop is not None else end):.2f} s)</title></rect>"
            f'<text x="{x1 + 2:.1f}" y="{top + 10}" font-size="9" fill="{color}">'
            f"{label[:40]}</text>"
        )
    return out


def timeline_svg(
    history: History, faults: Sequence[FaultRecord], end: float, failing: int | None = None
) -> str:
    """Every operation of every process on a time axis, faults shaded; ``failing`` (an event
    index) outlined in red."""
    pairs = history.pairs()
    end = max(end, max((e.time for e in history), default=0.0), 1e-9)
    lanes = _lanes(pairs, end)
    rows = max(lanes.values(), default=0) + 1
    top = 16
    height = rows * LANE + top + 20
    scale = WIDTH / end
    bars: dict[int, list[list[Any]]] = {}  # lane -> [x1, x2, type, count, title]
    mark = ""
    for invoke, done in sorted(pairs, key=lambda p: p[0].time):
        kind = done.type if done is not None else "open"
        x1 = invoke.time * scale
        x2 = max((done.time if done is not None else end) * scale, x1 + 0.5)
        lane = lanes[invoke.process]
        row = bars.setdefault(lane, [])
        if invoke.index == failing:
            y = top + lane * LANE
            mark = (
                f'<rect x="{x1 - 2:.1f}" y="{y - 2}" width="{x2 - x1 + 4:.1f}" height="{LANE + 2}" '
                'fill="none" stroke="red" stroke-width="2"/>'
            )
        last = row[-1] if row else None
        if last is not None and last[2] == kind and x1 - last[1] < 1.0:
            last[1] = max(last[1], x2)
            last[3] += 1
            continue
        value = done.value if done is not None and done.type == "ok" else invoke.value
        title = f"{invoke.process} {invoke.f} {invoke.key!r} {value!r} {kind}"
        row.append([x1, x2, kind, 1, title])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">',
        *_shade(faults, scale, end, height - top - 16, top),
    ]
    for lane, row in sorted(bars.items()):
        y = top + lane * LANE
        for x1, x2, kind, count, title in row:
            tip = html.escape(title) if count == 1 else f"{count} {kind} operations"
            parts.append(
                f'<rect x="{x1:.1f}" y="{y}" width="{x2 - x1:.1f}" height="{LANE - 3}" '
                f'fill="{_COLORS[kind]}"><title>{tip}</title></rect>'
            )
    parts.append(mark)
    parts.extend(_axis(end, scale, height - 4))
    parts.append("</svg>")
    return "".join(parts)


def _axis(end: float, scale: float, y: float) -> list[str]:
    step = _nice_step(end / 10)
    ticks = []
    t = 0.0
    while t <= end + 1e-9:
        ticks.append(f'<text x="{t * scale:.1f}" y="{y}" font-size="9" fill="#555">{t:g}s</text>')
        t += step
    return ticks


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    return next(float(m * power) for m in (1, 2, 5, 10) if m * power >= raw)


def _polyline(points: list[tuple[float, float]], color: str) -> str:
    if not points:
        return ""
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="1.5"/>'


def series_svg(history: History, faults: Sequence[FaultRecord], end: float, bins: int = 200) -> str:
    """Throughput (completions per second by outcome) and latency (p50 and p99 of ok
    operations) over time, faults shaded."""
    end = max(end, 1e-9)
    width = end / bins
    counts = {k: [0] * bins for k in ("ok", "info", "fail")}
    latencies: list[list[float]] = [[] for _ in range(bins)]
    for invoke, done in history.pairs():
        if done is None or invoke.f == "final_read":
            continue
        b = min(bins - 1, int(done.time / width)) if done.time < end else None
        if b is None:
            continue
        counts[done.type][b] += 1
        if done.type == "ok":
            latencies[b].append(done.time - invoke.time)
    plot_h, gap = 140, 30
    height = 2 * plot_h + 3 * gap
    scale = WIDTH / end
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">',
        *_shade(faults, scale, end, height - gap, 0),
    ]
    rate_max = max((c / width for k in counts for c in counts[k]), default=1.0) or 1.0
    top = gap
    for kind in ("ok", "info", "fail"):
        points = [
            ((i + 0.5) * width * scale, top + plot_h - c / width / rate_max * plot_h)
            for i, c in enumerate(counts[kind])
        ]
        parts.append(_polyline(points, _COLORS[kind]))
    parts.append(
        f'<text x="4" y="{top - 8}" font-size="11">throughput, operations/s (max '
        f"{rate_max:.0f}): ok, info, fail</text>"
    )
    top = 2 * gap + plot_h
    p50 = [_percentile(v, 0.5) if v else None for v in latencies]
    p99 = [_percentile(v, 0.99) if v else None for v in latencies]
    lat_max = max((v for v in p99 if v is not None), default=1.0) or 1.0
    for values, color in ((p50, "#4c78a8"), (p99, "#54a24b")):
        points = [
            ((i + 0.5) * width * scale, top + plot_h - v / lat_max * plot_h)
            for i, v in enumerate(values)
            if v is not None
        ]
        parts.append(_polyline(points, color))
    parts.append(
        f'<text x="4" y="{top - 8}" font-size="11">latency of ok operations, p50 (blue) and p99 '
        f"(green), max {lat_max * 1000:.1f} ms</text>"
    )
    parts.extend(_axis(end, scale, height - 4))
    parts.append("</svg>")
    return "".join(parts)


def _template() -> jinja2.Template:
    text = resources.files("ember.chaos").joinpath("templates/report.html.j2").read_text()
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(text)


def write_report(result: RunResult, out: Path, command: Sequence[str]) -> dict[str, Any]:
    """Write the run directory ``out`` and return what ``result.json`` holds."""
    out.mkdir(parents=True, exist_ok=True)
    result.history.dump(out / "history.jsonl")
    summary = result_dict(result, command)
    (out / "result.json").write_text(json.dumps(summary, indent=2, default=repr) + "\n")
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    for node, lines in result.logs.items():
        (logs / f"{node}.log").write_text("".join(f"{line}\n" for line in lines))
    end = result.phases.get("end", max((e.time for e in result.history), default=0.0))
    witness = next(
        (c.witness for c in result.checks if c.name == "linearizable" and c.witness), None
    )
    failing = witness["failing"]["index"] if witness else None
    page = _template().render(
        r=summary,
        checks=result.checks,
        witness=witness,
        timeline=Markup(timeline_svg(result.history, result.faults, end, failing)),
        series=Markup(series_svg(result.history, result.faults, end)),
        figures_json=json.dumps(summary["figures"], indent=2),
    )
    (out / "report.html").write_text(page)
    return summary
