"""Where a step runs: a pure choice among the reachable nodes, by what they offer and deny and
by how many steps this node has placed on each."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from ._graph import Step

__all__ = ["Candidate", "capable", "choose", "place"]


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
    if step.on is None and not step.needs:
        return here, ""
    names, why = capable(step, candidates, exclude)
    if not names:
        return None, why
    return choose(names, here=here, load=load, turn=turn), ""


def capable(
    step: Step, candidates: Sequence[Candidate], exclude: Collection[str] = ()
) -> tuple[tuple[str, ...], str]:
    """The candidates that may take ``step`` (pinned with ``on=``: that one), in their order,
    or ``((), why)`` when none can. It depends only on the candidates, not on load: a node
    computes it once per step's needs until its membership changes (see ``choose``)."""
    needs = step.needs
    if step.on is not None:
        pinned = next((c for c in candidates if c.name == step.on), None)
        if pinned is None or step.on in exclude:
            return (), f"node {step.on} (on=) is not reachable"
        refusal = pinned.refuses(needs)
        return ((), refusal) if refusal else ((step.on,), "")
    names: list[str] = []
    refusals: list[str] = []
    for c in candidates:
        if c.name in exclude:
            continue
        refusal = c.refuses(needs)
        if refusal is None:
            names.append(c.name)
        else:
            refusals.append(refusal)
    if not names:
        why = f"no reachable node offers {', '.join(sorted(needs))}"
        denied = [r for r in refusals if " denies " in r]
        return (), why + (f" ({'; '.join(denied)})" if denied else "")
    return tuple(names), ""


def choose(
    names: Sequence[str],
    *,
    here: str,
    load: Mapping[str, int],
    turn: int = 0,
    prefer: str | None = None,
    pending: Mapping[str, int] | None = None,
) -> str:
    """Among capable ``names`` (not empty), the one with the fewest steps on it (``load``,
    plus ``pending``: those the caller placed there that have not started yet, so steps placed
    together spread), ``here`` first on a tie, then ``prefer`` (the node the step's input came
    from: a chain stays where it runs instead of waking another node for each step), then the
    others in turns (``turn`` rotates them)."""
    n = len(names)
    if n == 1:
        return names[0]
    # min() over (load, not here, not preferred, turn distance), written out: it runs once per
    # placed step.
    best = names[0]
    extra = pending or _NONE
    rank = (load.get(best, 0) + extra.get(best, 0), best != here, best != prefer, -turn % n)
    for i in range(1, n):
        name = names[i]
        mine = (
            load.get(name, 0) + extra.get(name, 0),
            name != here,
            name != prefer,
            (i - turn) % n,
        )
        if mine < rank:
            best, rank = name, mine
    return best


_NONE: Mapping[str, int] = {}
