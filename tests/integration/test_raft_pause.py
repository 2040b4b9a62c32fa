"""A Raft leader frozen with SIGSTOP under writes and linearizable reads, then resumed (issue 9):
three ``ember node start`` processes, 4 writers and 4 readers in this process (each reader bound
to one member, which asks the leader for a read index). The others elect a new leader and go on;
the resumed member comes back behind it, answering at once everything sent to it meanwhile. That
used to make the new leader run away (100% CPU, RSS growing 100 MB/s to gigabytes, nobody
answered). Every node's RSS must stay bounded, writes must go on being acknowledged after the
resume, and the resumed member must catch up. The workload is ``bench.raft_pause``'s, which also
measures the time to full rate again."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.raft_pause import PauseRun, pause_run

pytestmark = pytest.mark.ember_realtime

RSS_BOUND = 400 * 2**20  # a node here runs at 60-120 MB; the runaway reached 1.6-2.4 GB
GAP = 2.0  # seconds: after the resume, every window this long acknowledges writes


def _check(run: PauseRun, after: float) -> None:
    assert run.resumed_at is not None
    logs = f"errors {run.errors}, {run.summary()['writes_per_half_s_from_2s_before']}"
    assert max(run.peak_rss.values()) < RSS_BOUND, (run.peak_rss, logs)
    assert run.caught_up_s is not None, logs
    t = run.resumed_at + 1.0  # the resumed leader's clients move on to the new one
    end = run.resumed_at + after
    while t + GAP <= end:
        assert run.rate(run.writes, t, t + GAP) > 0, (t - run.resumed_at, logs)
        t += GAP / 2


async def test_a_leader_paused_within_the_heartbeat_timeout_resumes_without_a_runaway(
    tmp_path: Path,
) -> None:
    # 2.8 s: a new leader is elected, but the frozen node's connections stay up (the transport
    # declares a peer down after 3 s), so all that was sent to it arrives at once on SIGCONT.
    after = 4.0
    run = await pause_run(tmp_path, fault="stop", warmup=1.5, pause=2.8, after=after)
    _check(run, after)


@pytest.mark.slow
async def test_a_leader_paused_for_5s_resumes_without_a_runaway(tmp_path: Path) -> None:
    after = 8.0
    run = await pause_run(tmp_path, fault="stop", warmup=3.0, pause=5.0, after=after)
    _check(run, after)
