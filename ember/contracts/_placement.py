"""Where a step runs: a pure choice among the reachable nodes, by what they offer and deny and
by how many steps this node has placed on each."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from ._graph import Step

__all__ = ["Candidate", "place"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A reachable node: the capabilities it offers (None: every one) and those its policy
    denies."""

    name: str
    offers: frozenset[str] | None = None
    denies: frozenset[str] = frozenset()

    def refuses(self, needs: frozenset[str]) -> str | None:
        """Why this node cannot run a step that needs ``needs`` (None if it can)."""
        denied = sorted(needs & self.denies)
        if denied:
            return f"node {self.name} denies {', '.join(denied)}"
        if self.offers is not None:
            missing = sorted(needs - self.offers)
            if missing:
                return f"node {self.name} does not offer {', '.join(missing)}"
        return None


def place(
    step: Step,
    *,
    here: str,
    candidates: Sequence[Candidate],
    load: Mapping[str, int],
    exclude: Collection[str] = (),
    turn: int = 0,
) -> tuple[str | None, str]:
    """``(node, "")`` for where ``step`` runs, or ``(None, why)`` when no candidate can take it
    now. A step pinned with ``on=`` runs there; one that needs no capability runs ``here`` (the
    run's own node); otherwise the capable node with the fewest steps placed on it, ``here``
    first on a tie, then the others in turns (``turn`` rotates them)."""
    needs = step.needs
    if step.on is not None:
        pinned = next((c for c in candidates if c.name == step.on), None)
        if pinned is None or step.on in exclude:
            return None, f"node {step.on} (on=) is not reachable"
        refusal = pinned.refuses(needs)
        return (None, refusal) if refusal else (step.on, "")
    if not needs:
        return here, ""
    capable: list[Candidate] = []
    refusals: list[str] = []
    for c in candidates:
        if c.name in exclude:
            continue
        refusal = c.refuses(needs)
        if refusal is None:
            capable.append(c)
        else:
            refusals.append(refusal)
    if not capable:
        why = f"no reachable node offers {', '.join(sorted(needs))}"
        denied = [r for r in refusals if " denies " in r]
        return None, why + (f" ({'; '.join(denied)})" if denied else "")
    n = len(capable)
    best = min(
        range(n),
        key=lambda i: (load.get(capable[i].name, 0), capable[i].name != here, (i - turn) % n),
    )
    return capable[best].name, ""
