"""``ember chaos list`` and ``ember chaos run``: output, run directory, exit codes."""

import json

from scenariokit import TINY

from ember.chaos._netns import unavailable_reason
from ember.cli._main import main


def test_list_shows_every_bundled_scenario_with_its_description(capsys):
    assert main(["chaos", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in out]
    assert {"leader-kill", "pause-the-leader", "partition-ring"} <= set(names)
    assert names == sorted(names)
    assert all(len(line.split(maxsplit=1)) == 2 for line in out)  # each has a description


def test_run_writes_the_run_directory_and_exits_0_when_valid(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    out = tmp_path / "run"
    assert main(["chaos", "run", str(path), "--seed", "9", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "valid  linearizable" in printed and f"replay: ember chaos run {path}" in printed
    result = json.loads((out / "result.json").read_text())
    assert result["seed"] == 9 and result["validity"] == "valid" and result["exit_code"] == 0
    assert result["replay"] == f"ember chaos run {path} --driver sim --seed 9"
    assert [f["fault"] for f in result["faults"]] == ["pause"]
    assert (out / "report.html").exists() and (out / "history.jsonl").stat().st_size > 0
    assert sorted(p.name for p in (out / "logs").iterdir()) == [
        "client.log",
        "n1.log",
        "n2.log",
        "n3.log",
    ]
    assert not list(out.glob("work-*"))  # node data is removed


def test_a_bad_scenario_exits_3_naming_line_and_key(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(TINY.replace("clients = 2", "clients = -2"))
    assert main(["chaos", "run", str(path), "--quiet"]) == 3
    err = capsys.readouterr().err
    assert f"{path}:8: workload[0].clients: must be in 1..256" in err


def test_an_unknown_scenario_name_lists_the_bundled_ones(capsys):
    assert main(["chaos", "run", "no-such-thing", "--quiet"]) == 3
    err = capsys.readouterr().err
    assert "no bundled scenario of that name" in err and "leader-kill" in err


def test_a_driver_that_cannot_inject_a_fault_exits_3(tmp_path, capsys):
    path = tmp_path / "delay.toml"
    path.write_text(TINY.replace('fault = "pause"', 'fault = "delay"'))
    out = tmp_path / "o"
    assert main(["chaos", "run", str(path), "--driver", "netns", "--quiet", "--out", str(out)]) == 3
    err = capsys.readouterr().err
    if unavailable_reason() is None:  # else it says it cannot run here at all, also exit 3
        assert "the netns driver cannot inject delay" in err
    else:
        assert "the netns driver cannot run here" in err
