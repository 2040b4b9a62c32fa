"""The dashboard's server side: its page and assets, and its cost: no work while nobody
watches, one summary per interval per open stream."""

from __future__ import annotations

import asyncio
import json

import pytest

import ember

from .adminkit import TOKEN, admin_node

pytestmark = pytest.mark.ember_realtime


async def test_page_and_assets_are_served_from_the_package() -> None:
    async with admin_node() as (_, client):
        status, page, response = await client.get("/", token=None)
        assert status == 200 and response.content_type == "text/html"
        assert '<script src="/static/dashboard.js">' in page and "cdn" not in page.lower()
        status, js, response = await client.get("/static/dashboard.js", token=None)
        assert status == 200 and response.content_type == "text/javascript"
        assert "EventSource" in js
        assert (await client.get("/static/dashboard.css", token=None))[0] == 200
        assert (await client.get("/static/../_admin.py"))[0] == 404  # no way out of static/
        assert (await client.get("/static/secret.py", token=None))[0] == 404
        # The stream itself needs the token.
        assert (await client.get("/api/v1/events", token=None))[0] == 401


async def _probes_pass(node: ember.Node, n: int) -> None:
    """Until ``node``'s mesh has run ``n`` more probe rounds: time passes, with work around."""
    assert node.mesh is not None
    target = node.mesh.statistics().swim.probes + n
    async with asyncio.timeout(30):
        while node.mesh.statistics().swim.probes < target:  # noqa: ASYNC110 - no event for it
            await asyncio.sleep(0.05)


async def test_no_work_while_nobody_watches() -> None:
    async with admin_node(push_interval=0.1) as (node, client):
        assert node.address is not None and node.admin is not None
        async with ember.Node(
            "b",
            listen="127.0.0.1:0",
            cookie="c",
            mesh="local",
            join=[f"a@{node.address}"],
        ):
            await _probes_pass(node, 3)
            assert (node.admin.frames, node.admin.watchers, node.metrics.scrapes) == (0, 0, 0)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with client.session.get(client.base + "/api/v1/events", headers=headers) as r:
                assert r.content_type == "text/event-stream"
                events = []
                async for line in r.content:
                    if line.startswith(b"data: "):
                        events.append(json.loads(line[6:]))
                        if len(events) == 3:
                            break
            assert [e["node"]["name"] for e in events] == ["a"] * 3
            assert {m["name"] for m in events[-1]["members"]} == {"a", "b"}
            assert node.admin.frames >= 3
            async with asyncio.timeout(30):
                while node.admin.watchers:  # noqa: ASYNC110 - the server notices the close
                    await asyncio.sleep(0.05)
            built = node.admin.frames
            await _probes_pass(node, 3)
            assert node.admin.frames == built  # the stream closed: nothing more is built
            assert node.metrics.scrapes == 0  # the dashboard never ran the collectors
