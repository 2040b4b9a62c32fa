"""Introspection of a compiled graph for people: Mermaid flowcharts and ``explain(step)``."""

from __future__ import annotations

from ._graph import Graph, Step, child_graph

__all__ = ["explain", "mermaid"]


def _label(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def _node(step: Step) -> str:
    sid = f"s_{step.name}"
    caps = f"<br/>{', '.join(sorted(step.capabilities))}" if step.capabilities else ""
    if step.kind == "await":
        return f"{sid}{{{{{_label(f'{step.name}<br/>await {step.event}')}}}}}"
    if step.kind == "branch":
        return f"{sid}{{{_label(f'{step.name}<br/>branch on {step.selector}{caps}')}}}"
    if step.kind == "collection":
        return f"{sid}[[{_label(f'{step.name}<br/>each of {step.over}{caps}')}]]"
    if step.kind == "compose":
        child = step.call.label if step.call is not None else "?"
        return f"{sid}[[{_label(f'{step.name}<br/>contract {child}')}]]"
    return f"{sid}[{_label(step.name + caps)}]"


def mermaid(graph: Graph) -> str:
    """The graph as a Mermaid flowchart: inputs as parallelograms, compute steps as boxes,
    branches as diamonds, collections and composed contracts as subroutines, awaits as hexagons,
    outputs as stadiums; an edge per dependency."""
    lines = ["flowchart TD"]
    for name in graph.inputs:
        lines.append(f"  i_{name}[/{_label(name)}/]")
    for step in graph.steps.values():
        lines.append(f"  {_node(step)}")
    for name in graph.outputs:
        lines.append(f"  o_{name}([{_label(name)}])")
    for step in graph.steps.values():
        for dep in step.deps:
            src = f"i_{dep}" if dep in graph.inputs else f"s_{dep}"
            lines.append(f"  {src} --> s_{step.name}")
    for name, ref in graph.outputs.items():
        src = f"i_{ref}" if ref in graph.inputs else f"s_{ref}"
        lines.append(f"  {src} --> o_{name}")
    return "\n".join(lines) + "\n"


def _seconds(value: float) -> str:
    return f"{value:g} s"


def explain(graph: Graph, name: str) -> str:
    """A few lines saying what step ``name`` is, what it needs, where it may run, how it is
    retried, what happens when its node is lost, and what uses it."""
    step = graph.step(name)
    where = f" (line {step.line})" if step.line is not None else ""
    lines = [f"step {step.name!r} of contract {graph.name} v{graph.version}: {step.kind}{where}"]
    if step.doc:
        lines.append(f"  {step.doc}")
    if step.kind == "compute" and step.call is not None:
        kind = "async function" if step.call.is_async else "function"
        lines.append(f"  runs {kind} {step.call.label}")
    elif step.kind == "branch":
        cases = ", ".join(f"{k!r} -> {c.label}" for k, c in step.cases.items())
        default = f"; otherwise {step.default.label}" if step.default is not None else ""
        lines.append(f"  picks by the value of {step.selector}: {cases}{default}")
    elif step.kind == "collection" and step.call is not None:
        mode = "first failure fails it" if step.mode == "fail_fast" else "collects every outcome"
        lines.append(f"  runs {step.call.label} for each item of {step.over} in parallel; {mode}")
    elif step.kind == "compose" and step.call is not None:
        child = child_graph(step.call)
        lines.append(
            f"  runs contract {step.call.label} as a child"
            + (f" (version {child.version})" if child is not None else "")
        )
    elif step.kind == "await":
        timeout = (
            f"; after {_seconds(step.await_timeout)} it "
            + ("fails the run" if step.on_timeout == "fail" else "continues with EventTimedOut")
            if step.await_timeout is not None
            else "; no timeout"
        )
        lines.append(f"  waits for event {step.event!r} (an earlier delivery is kept){timeout}")
    if step.deps:
        parts = [
            f"{d} (input)" if d in graph.inputs else f"{d} ({graph.steps[d].kind})"
            for d in step.deps
        ]
        lines.append(f"  depends on {', '.join(parts)}")
    else:
        lines.append("  depends on nothing: ready when the run starts")
    if step.runs_code:
        if step.on is not None:
            lines.append(f"  runs on node {step.on}")
        elif step.capabilities - {"pure"}:
            caps = ", ".join(sorted(step.capabilities - {"pure"}))
            lines.append(f"  needs {caps}: runs on a node offering it, the least loaded first")
        else:
            lines.append("  needs no capability: runs on the run's own node")
        lines.append(
            f"  each attempt limited to {_seconds(step.timeout)}"
            if step.timeout is not None
            else "  no timeout per attempt"
        )
        retry = step.retry
        if retry is None:
            lines.append("  runs once (no retry policy)")
        else:
            attempts = "unlimited attempts" if retry.attempts == 0 else f"{retry.attempts} attempts"
            lines.append(
                f"  retried: {attempts}, waits {_seconds(retry.initial)} x{retry.backoff:g} "
                f"up to {_seconds(retry.cap)}"
            )
        if step.pure:
            lines.append("  pure: cached by content, run again elsewhere if its node is lost")
        elif step.idempotent:
            lines.append("  idempotent: run again elsewhere if its node is lost")
        else:
            lines.append(
                "  not idempotent: if its node is lost mid-step the run ends with outcome unknown"
            )
    users = list(graph.dependents.get(name, ()))
    outs = [o for o, ref in graph.outputs.items() if ref == name]
    if users or outs:
        lines.append(
            "  used by "
            + ", ".join(
                [*(f"{u} ({graph.steps[u].kind})" for u in users), *(f"{o} (output)" for o in outs)]
            )
        )
    return "\n".join(lines)
