"""An eventual name claimed on both sides of a real partition (network namespaces, drop rules):
after the heal exactly one process owns it on every node, the same everywhere, and the loser
was told (policy ``kill``: it is gone).

Four namespaces run ``ember node start`` (mDNS, local profiles); two more nodes, one on each
side, drive the scenario (``registry_driver.py``) and report on stdout; ``ember names`` run in
a namespace reads a node's own view."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .netns import JsonLines, Netns, NetnsLab, netns_lab, unavailable_reason
from .test_netns_mesh import NodeProc

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))

PORT = 7946
DRIVER_PORT = 7950
BOUND = 90.0


class Driver(JsonLines):
    def __init__(self, lab: NetnsLab, ns: Netns, name: str, cluster: str, workdir: Path) -> None:
        argv = [sys.executable, "-m", "tests.integration.registry_driver", name]
        argv += [f"{ns.address}:{DRIVER_PORT}", str(workdir / "cookie"), cluster]
        proc = lab.popen(ns, argv, stdin=subprocess.PIPE, cwd=Path.cwd())
        super().__init__(proc, name, BOUND)
        self.name = name

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        seen = len(self.events)
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        self.wait_for(lambda d: any(e.get("op") for e in d.events[seen:]), f"an answer to {cmd}")
        return next(e for e in self.events[seen:] if e.get("op"))

    def alive(self) -> set[str]:
        view: dict[str, str] = {}
        for e in self.events:
            if e.get("event") == "member":
                view[e["name"]] = e["status"]
        return {n for n, s in view.items() if s == "alive"} | {self.name}


def names_on(lab: NetnsLab, ns: Netns, node: str, workdir: Path, cluster: str) -> list[Any]:
    out = lab.run(
        ns,
        [
            *(sys.executable, "-m", "ember", "names", "--node", f"{node}@{ns.address}:{PORT}"),
            *("--cookie-file", str(workdir / "cookie"), "--cluster", cluster, "--json"),
        ],
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_a_name_claimed_on_both_sides_has_one_owner_after_the_heal(tmp_path: Path) -> None:
    cluster = f"reg-{secrets.token_hex(4)}"
    (tmp_path / "cookie").write_text(secrets.token_urlsafe(24) + "\n")
    with netns_lab(4) as lab:
        ns = lab.namespaces
        nodes = [NodeProc(lab, n, f"n{n.index}", cluster, tmp_path) for n in ns]
        left, right = (
            Driver(lab, ns[0], "dl", cluster, tmp_path),
            Driver(lab, ns[-1], "dr", cluster, tmp_path),
        )
        everyone = {n.name for n in nodes} | {"dl", "dr"}
        for d in (left, right):
            d.wait_for(lambda p: p.alive() >= everyone, f"{d.name} seeing everyone")
        lab.partition(ns[:2], ns[2:])
        left_side = {nodes[0].name, nodes[1].name, "dl"}
        right_side = {nodes[2].name, nodes[3].name, "dr"}
        left.wait_for(lambda p: not (p.alive() & right_side), "the left side alone")
        right.wait_for(lambda p: not (p.alive() & left_side), "the right side alone")
        a = left.ask(op="hold", on=nodes[0].name, name="single", tier="eventual")
        b = right.ask(op="hold", on=nodes[3].name, name="single", tier="eventual")
        assert "pid" in a and "pid" in b, (a, b)
        lab.heal()

        def one_owner(d: Driver) -> bool:
            return d.ask(op="whereis", name="single", tier="eventual")["pid"] is not None

        for d in (left, right):
            d.wait_for(lambda p: p.alive() >= everyone, f"{d.name} seeing everyone again")
        owners: set[Any] = set()
        for _ in range(int(BOUND / 0.5)):
            owners = {
                left.ask(op="whereis", name="single", tier="eventual")["pid"],
                right.ask(op="whereis", name="single", tier="eventual")["pid"],
            }
            views = [
                {
                    r["pid"]
                    for r in names_on(lab, n, f"n{n.index}", tmp_path, cluster)
                    if r["name"] == "single"
                }
                for n in (ns[1], ns[2])
            ]
            if len(owners) == 1 and None not in owners and all(v == owners for v in views):
                break
            left.observe(0.5)
        else:
            pytest.fail(f"no single owner after the heal: drivers {owners}, nodes {views}")
        (owner,) = owners
        assert owner in (a["pid"], b["pid"])
        loser = left if owner == b["pid"] else right
        loser.wait_for(lambda p: p.ask(op="alive", index=0)["alive"] is False, "the loser exited")
        assert one_owner(left) and one_owner(right)
