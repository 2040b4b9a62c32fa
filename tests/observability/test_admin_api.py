"""The admin API over real loopback HTTP: every route's shape, auth, bad input, mutations."""

from __future__ import annotations

import logging
import shutil

import aiohttp
import pytest

import ember
from ember.consensus import Cluster
from ember.contracts import Contract, Input, compute
from ember.observability import AdminConfig

from ..consensus.clusterkit import eventually
from .adminkit import TOKEN, Client, admin_node, promtool_check

pytestmark = pytest.mark.ember_realtime


class Echo(ember.Actor):
    async def receive(self, msg: object) -> object:
        return msg


async def test_every_listed_route_answers_json() -> None:
    async with admin_node() as (node, client):
        await Cluster.start(3, name="orders", node=node)
        status, index, _ = await client.get("/api/v1")
        assert status == 200 and index["version"] == 1
        gets = [r["path"] for r in index["routes"] if r["method"] == "GET" and "{" not in r["path"]]
        assert {"/api/v1/node", "/api/v1/members", "/api/v1/raft", "/api/v1/names"} <= set(gets)
        for path in gets:
            status, body, response = await client.get(path)
            assert status == 200, (path, body)
            assert response.content_type == "application/json"
        status, group, _ = await client.get("/api/v1/raft/orders")
        assert status == 200 and len(group["members"]) == 3
        assert {"role", "term", "commit", "applied", "progress"} <= set(group["members"][0])


async def test_node_members_processes_and_supervision_shapes() -> None:
    async with admin_node() as (node, client):
        pid = await node.spawn(Echo)
        for _ in range(5):
            await node.call(pid, "x")
        _, me, _ = await client.get("/api/v1/node")
        assert me["name"] == "a" and me["processes"] >= 2
        assert me["sections"] == {
            "transport": True,
            "mesh": True,
            "raft": True,
            "names": True,
            "pg": True,
            "contracts": True,
        }
        _, members, _ = await client.get("/api/v1/members")
        assert [m["name"] for m in members["members"]] == ["a"]
        assert members["members"][0]["status"] == "alive"
        _, top, _ = await client.get("/api/v1/processes?top=1&by=messages")
        assert top["by"] == "messages" and len(top["processes"]) == 1
        assert top["processes"][0]["pid"] == str(pid) and top["processes"][0]["messages"] == 5
        _, tree, _ = await client.get("/api/v1/supervision")
        assert tree["trees"][0]["id"] == "ember_root"
        assert tree["trees"][0]["kind"] == "supervisor"


async def test_sections_a_node_lacks_say_not_running() -> None:
    # A local node: no transport, no mesh.
    config = AdminConfig(listen="127.0.0.1:0", token=TOKEN)
    async with ember.Node("solo", admin=config) as node, aiohttp.ClientSession() as session:
        assert node.admin is not None and node.admin.address is not None
        client = Client(session, "http://{}:{}".format(*node.admin.address))
        for name in ("transport", "mesh"):
            status, body, _ = await client.get(f"/api/v1/{name}")
            assert (status, body) == (200, {"service": name, "running": False})
            status, body, _ = await client.get(f"/api/v1/{name}/peers")
            assert status == 404 and "not running" in body["error"]
        _, summary, _ = await client.get("/api/v1/summary")
        assert summary["sections"]["transport"] == {"running": False}
        assert summary["sections"]["raft"]["running"] is True


class Add(Contract):
    x = Input(int)

    @compute
    def doubled(x: int) -> int:
        return 2 * x

    outputs = ("doubled",)


async def test_contracts_view_and_metrics() -> None:
    async with admin_node() as (_, client):
        assert await Add.run({"x": 4}) == {"doubled": 8}
        _, view, _ = await client.get("/api/v1/contracts")
        assert view["running"] and view["succeeded"] == 1
        _, stats, _ = await client.get("/api/v1/contracts/statistics")
        assert stats["runs_started"] == 1
        _, text, _ = await client.get("/metrics")
        assert 'ember_contracts_runs_total{outcome="succeeded"} 1.0' in text
        assert "ember_contracts_step_seconds_bucket" in text


async def test_names_and_groups_views_and_metrics() -> None:
    async with admin_node() as (node, client):
        pid = await node.spawn(Echo)
        await node.names.register("orders", pid, tier="eventual")
        node.pg.join("workers", pid)
        node.pg.join("workers", pid)  # a second occurrence: still one group
        _, names, _ = await client.get("/api/v1/names")
        assert names["running"] and names["names"]["eventual"] == 1
        _, listed, _ = await client.get("/api/v1/names/registered?tier=eventual")
        assert listed["names"] == [{"name": "orders", "tier": "eventual", "pid": str(pid)}]
        _, pg, _ = await client.get("/api/v1/pg")
        assert pg["scopes"]["default"]["groups"] == 1
        _, groups, _ = await client.get("/api/v1/pg/default")
        assert groups["groups"] == [{"group": "workers", "members": 2}]
        status, body, _ = await client.get("/api/v1/pg/nosuchscope")
        assert status == 409 and "UnknownScope" in body["error"]
        assert (await client.get("/api/v1/names/registered?limit=x"))[0] == 400
        _, text, _ = await client.get("/metrics")
        assert 'ember_names{tier="eventual"} 1.0' in text
        assert 'ember_pg_groups{scope="default"} 1.0' in text


async def test_auth_token_cookie_and_open_probes() -> None:
    async with admin_node() as (_, client):
        assert (await client.get("/livez", token=None))[0] == 200
        assert (await client.get("/readyz", token=None))[0] == 200
        status, body, response = await client.get("/api/v1/node", token=None)
        assert status == 401 and body["status"] == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await client.get("/api/v1/node", token="wrong"))[0] == 401
        assert (await client.get("/metrics", token=None))[0] == 401
        assert (await client.post("/api/v1/session", {"token": "wrong"}, token=None))[0] == 401
        assert (await client.post("/api/v1/session", {"token": TOKEN}, token=None))[0] == 200
        # The session cookie now in the client's jar is good for reading...
        assert (await client.get("/api/v1/node", token=None))[0] == 200
        # ...but not for a mutation, which needs the header (and is off here anyway).
        assert (await client.post("/api/v1/leave", token=None))[0] == 401


async def test_bad_input_gets_a_clear_4xx() -> None:
    async with admin_node() as (_, client):
        status, body, _ = await client.get("/api/v1/nope")
        assert status == 404 and body == {"error": "Not Found", "status": 404}
        for query in ("top=x", "top=0", "top=100000", "by=age"):
            status, body, _ = await client.get(f"/api/v1/processes?{query}")
            assert status == 400 and body["error"], query
        status, body, _ = await client.get("/api/v1/raft/nogroup")
        assert status == 404
        assert (await client.post("/api/v1/leave"))[0] == 403
        status, body, _ = await client.get("/api/v1/leave")
        assert status == 405


async def test_mutations_when_enabled_are_audited(caplog: pytest.LogCaptureFixture) -> None:
    async with admin_node(allow_mutations=True) as (node, client):
        cluster = await Cluster.start(3, name="orders", node=node)
        leader = await cluster.wait_for_leader(timeout=20)
        status, body = await client.post("/api/v1/raft/orders/transfer", {"bad": 1})
        assert status == 400
        other = next(m for m in ("a#1", "a#2", "a#3") if m != leader)
        status, body = await client.post("/api/v1/raft/orders/transfer", {"to": other})
        assert (status, body) == (200, {"group": "orders", "transfer_to": other})
        await eventually(lambda: _leader_is(cluster, other))
        with caplog.at_level(logging.WARNING, "ember.admin"):
            status, body = await client.post("/api/v1/leave")
        assert (status, body) == (200, {"left": True})
        assert any(
            "admin audit" in r.message and "/api/v1/leave" in r.message for r in caplog.records
        )
        async with client.session.post(
            client.base + "/api/v1/leave",
            data=b"{not json",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        ) as r:
            assert r.status == 400


async def _leader_is(cluster: Cluster, member: str) -> bool:
    return (await cluster.status(member))["leader"] == member


async def test_readyz_waits_for_raft_leaders() -> None:
    async with admin_node() as (node, client):
        cluster = await Cluster.start(3, name="orders", node=node)
        await cluster.wait_for_leader(timeout=20)
        status, body, _ = await client.get("/readyz", token=None)
        assert status == 200 and body["checks"]["raft"]["ok"]
        assert body["checks"]["mesh"]["ok"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) missing")
async def test_live_metrics_pass_promtool() -> None:
    async with admin_node() as (node, client):
        cluster = await Cluster.start(3, name="orders", node=node)
        await cluster.wait_for_leader(timeout=20)
        await cluster.write({"key": "k", "value": 1}, timeout=10)
        pid = await node.spawn(Echo)
        for _ in range(100):
            await node.call(pid, 1)
        status, text, response = await client.get("/metrics")
        assert status == 200 and response.content_type == "text/plain"
        for family in (
            "ember_processes",
            "ember_messages_processed_total",
            "ember_receive_duration_seconds_bucket",
            "ember_transport_frames_total",
            "ember_mesh_members",
            "ember_raft_commit_index",
            "ember_raft_save_duration_seconds_count",
            "ember_admin_requests_total",
        ):
            assert f"\n{family}" in text, family
        assert promtool_check(text) == ""


async def test_fault_injection_route_for_the_chaos_runner(caplog: pytest.LogCaptureFixture) -> None:
    from ember.transport import TransportConfig

    config = AdminConfig(listen="127.0.0.1:0", token=TOKEN, allow_mutations=True)
    chaos = TransportConfig(fault_injection=True)
    async with (
        ember.Node("f", listen="127.0.0.1:0", cookie="c", config=chaos, admin=config) as node,
        ember.Node("g", listen="127.0.0.1:0", cookie="c", admin=config) as plain,
        aiohttp.ClientSession() as session,
    ):
        assert node.admin is not None and node.admin.address is not None
        assert plain.admin is not None and plain.admin.address is not None
        client = Client(session, "http://{}:{}".format(*node.admin.address))
        _, state, _ = await client.get("/api/v1/transport/faults")
        assert state["enabled"] and state["partitioned"] == []
        with caplog.at_level(logging.WARNING, "ember.admin"):
            status, state = await client.post(
                "/api/v1/transport/faults", {"op": "set", "partition": ["g"], "drop": 0.5}
            )
        assert status == 200 and state["partitioned"] == ["g"] and state["drop"] == 0.5
        assert any("/api/v1/transport/faults" in r.message for r in caplog.records)
        assert node.transport is not None and node.transport.faults.blocks("g")  # type: ignore[attr-defined]
        status, state = await client.post("/api/v1/transport/faults", {"op": "clear"})
        assert status == 200 and state["partitioned"] == [] and state["drop"] == 0.0
        status, body = await client.post("/api/v1/transport/faults", {"op": "explode"})
        assert status == 400 and "fault op" in body["error"]
        status, body = await client.post("/api/v1/transport/faults", ["not", "a", "map"])
        assert status == 400
        # A node not started for testing refuses, with the typed error's name.
        other = Client(session, "http://{}:{}".format(*plain.admin.address))
        status, body = await other.post("/api/v1/transport/faults", {"op": "clear"})
        assert status == 409 and "FaultInjectionDisabled" in body["error"]
