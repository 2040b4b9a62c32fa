"""The report: the run directory's files, the SVGs, and the size cap for long runs."""

import json
import random

from histkit import Script

from ember.chaos._checkers import CheckResult, Validity, check_linearizable
from ember.chaos._history import History
from ember.chaos._report import figures, series_svg, timeline_svg, write_report
from ember.chaos._runner import FaultRecord, RunResult
from ember.chaos._scenario import parse_scenario

SCENARIO = parse_scenario('name = "r"\n[[workload]]\nkind = "kv"\n', path="chaos/r.toml")


def long_history(ops, clients=20, info=0.05, seed=1):
    """``ops`` operations by ``clients`` sequential processes, some info (retired)."""
    rng = random.Random(seed)
    h = History()
    t = [0.0] * clients
    proc = list(range(clients))
    nxt = clients
    events = []
    for _ in range(ops):
        c = min(range(clients), key=t.__getitem__)
        start = t[c] + rng.uniform(0.0, 0.002)
        end = start + rng.uniform(0.001, 0.02)
        kind = "info" if rng.random() < info else "ok"
        events.append((start, end, proc[c], kind))
        t[c] = end
        if kind == "info":
            proc[c], nxt = nxt, nxt + 1
    for start, end, p, kind in sorted(events):
        inv = h.invoke(p, "write", "k", 1, start)
        h.complete(inv, kind, None, end)
    return h


def result_of(history, checks=(), faults=()):
    end = max(e.time for e in history)
    return RunResult(
        SCENARIO, 7, {"driver": "sim", "nodes": ["n1"], "notes": []}, history, list(faults),
        list(checks), {"workload_end": end, "end": end},
    )  # fmt: skip


def test_run_directory_holds_history_result_logs_and_report(tmp_path):
    h = (
        Script()
        .op(0, "write", "x", 1, 0.0, 1.0)
        .op(1, "write", "x", 2, 2.0, 3.0)
        .op(2, "read", "x", None, 4.0, 5.0, 1)
        .history()
    )
    lin = check_linearizable(h)
    faults = [FaultRecord("kill", ("n2",), 1.5, 2.5), FaultRecord("partition", ("n1",), 3.0)]
    result = result_of(h, [lin, CheckResult("availability", Validity.VALID, "fine")], faults)
    result.logs = {"n1": ["INFO ember: up"]}
    summary = write_report(
        result, tmp_path, ["ember", "chaos", "run", "chaos/r.toml", "--seed", "7"]
    )
    assert summary["validity"] == "invalid" and summary["exit_code"] == 1
    assert summary["replay"] == "ember chaos run chaos/r.toml --seed 7"
    assert json.loads((tmp_path / "result.json").read_text()) == json.loads(json.dumps(summary))
    assert History.load(tmp_path / "history.jsonl").events == h.events
    assert (tmp_path / "logs" / "n1.log").read_text() == "INFO ember: up\n"
    page = (tmp_path / "report.html").read_text()
    assert "The failing window (key x)" in page and "&#39;x&#39;: read -&gt; 1" in page
    assert (
        page.count("<svg") == 2
        and "<script" not in page
        and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    )
    assert 'stroke="red"' in page  # the failing operation is outlined on the timeline
    assert "kill n2" in page and "partition n1" in page


def test_a_100000_operation_report_stays_under_5_mb(tmp_path):
    h = long_history(100_000)
    result = result_of(
        h, [CheckResult("c", Validity.VALID, "ok")], [FaultRecord("pause", ("n1",), 1.0, 2.0)]
    )
    write_report(result, tmp_path, ["ember"])
    size = (tmp_path / "report.html").stat().st_size
    assert size < 5 * 2**20, size


def test_timeline_lanes_are_reused_and_bars_merge():
    h = long_history(2000, clients=4, info=0.1)
    svg = timeline_svg(h, [], end=max(e.time for e in h))
    lanes = {int(y) for y in __import__("re").findall(r'<rect x="[^"]+" y="(\d+)"', svg)}
    assert len(lanes) <= 5  # 4 clients, however many processes retired after info
    assert "operations</title>" in svg  # neighbours closer than a pixel merged


def test_series_and_figures():
    h = long_history(500, clients=2, info=0.0)
    svg = series_svg(h, [FaultRecord("kill", ("n1",), 0.1, 0.2)], end=max(e.time for e in h))
    assert svg.count("<polyline") == 5  # ok, info, fail rates; p50 and p99 latency
    f = figures(h, {"workload_end": max(e.time for e in h)})
    assert f["outcomes"]["ok"] == 500 and f["latency_ms"]["write"]["p50"] > 0
