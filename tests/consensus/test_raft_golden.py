"""Scripted interaction tests against golden traces in ``testdata/`` (see ``raftscript.py`` for
the command language; ``EMBER_REWRITE_GOLDEN=1`` rewrites the traces after an intended change).
Each script's comments cite the sentence of the Raft paper or thesis it checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from raftscript import Env, run_file

TESTDATA = Path(__file__).parent / "testdata"


@pytest.mark.parametrize("path", sorted(TESTDATA.glob("*.txt")), ids=lambda p: p.stem)
def test_golden_trace(path: Path) -> None:
    run_file(path)


def test_there_are_golden_traces() -> None:
    assert len(list(TESTDATA.glob("*.txt"))) >= 5


def test_figure8_old_term_entries_are_not_committed_by_counting_replicas() -> None:
    # The same schedule as testdata/figure8.txt, with the consequences asserted directly.
    # §5.4.2: "a log entry may be stored on a majority of servers and still be overwritten by a
    # future leader" -- so the leader of term 4 must not commit the term-2 entry at index 7.
    env = Env()
    script = """
        add-nodes 5 pre-vote=false check-quorum=false max-size=1
        campaign 1
        stabilize
        propose 1 aa
        process-ready 1
        deliver-msgs drop=3,4,5
        process-ready 2
        crash 1
        isolate 2
        campaign 5
        process-ready 5
        deliver-msgs
        process-ready 3 4
        deliver-msgs
        process-ready 5
        crash 5
        heal
        restart 1
        campaign 1
        stabilize 1 2 3 4
        campaign 1
        process-ready 1
        deliver-msgs
        process-ready 2 3 4
        deliver-msgs
        process-ready 1
        deliver-msgs drop=4,5
        process-ready 2 3
        deliver-msgs 1
        process-ready 1
        deliver-msgs 3
        process-ready 3
        deliver-msgs 1
        process-ready 1
    """
    for line in script.strip().splitlines():
        env.run(line.strip())
    leader = env.node("1").raft
    holders = [n for n in ("1", "2", "3") if env.node(n).raft.log.term(7) == 2]
    assert len(holders) == 3 and leader.term == 4  # index 7 (term 2) is on a majority...
    assert leader.log.committed == 6  # ...and is not committed
    for line in ("crash 1", "restart 5", "campaign 5", "stabilize", "campaign 5", "stabilize"):
        env.run(line)
    assert env.node("5").raft.role.value == "leader"
    # The entry was overwritten, as Figure 8 (d) shows; nobody ever applied it.
    assert env.node("3").raft.log.term(7) == 3
    assert all(b"aa" not in env.members[n].applied for n in ("2", "3", "4", "5"))
