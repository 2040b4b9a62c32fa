"""A node that drives registry scenarios from inside a network namespace, for the netns tests.

``python -m tests.integration.registry_driver NAME HOST:PORT COOKIE_FILE CLUSTER`` starts a
node (mDNS discovery, local profiles, a registry client: no system group member), prints its
member events as JSON lines like ``ember node start`` does, then reads commands from stdin,
one JSON object a line, and answers each with one line:

- ``{"op": "hold", "on": node, "name": n, "tier": t}``: spawn a ``NameHolder`` on ``node`` and
  register it: ``{"op": "held", "index": i, "pid": "<...>"}`` or ``{"op": "held", "error": ...}``;
- ``{"op": "whereis", "name": n, "tier": t}``: ``{"op": "whereis", "pid": "<...>" | null}``;
- ``{"op": "alive", "index": i}``: whether held process ``i`` still answers.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import ember
from ember.registry import RegistryConfig
from ember.transport._cookie import read_cookie_file

HOLDER = "tests.integration.actors:NameHolder"


def say(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, default=repr), flush=True)


async def main(name: str, listen: str, cookie_file: str, cluster: str) -> None:
    cookie = read_cookie_file(Path(cookie_file))
    node = ember.Node(
        name,
        listen=listen,
        cookie=cookie,
        cluster=cluster,
        discovery="mdns",
        mdns_probe=False,
        mesh="local",
        registry=RegistryConfig.local(member=False),
    )
    await node.start()
    node.on_member_event(lambda e: say(e.as_dict()))
    say({"event": "ready", "node": name})
    held: list[ember.Pid] = []
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            cmd = json.loads(line)
            op = cmd["op"]
            if op == "hold":
                try:
                    pid = await node.spawn(HOLDER, on=cmd["on"])
                    await node.names.register(cmd["name"], pid, tier=cmd["tier"], timeout=10)
                    held.append(pid)
                    say({"op": "held", "index": len(held) - 1, "pid": repr(pid)})
                except ember.EmberError as exc:
                    say({"op": "held", "error": f"{type(exc).__name__}: {exc}"})
            elif op == "whereis":
                pid = node.names.whereis(cmd["name"], cmd["tier"])
                say({"op": "whereis", "pid": None if pid is None else repr(pid)})
            elif op == "alive":
                try:
                    await node.call(held[cmd["index"]], "node", timeout=5)
                    alive = True
                except ember.NoProc:
                    alive = False
                say({"op": "alive", "alive": alive})
    finally:
        await node.stop()


if __name__ == "__main__":
    ember.run(main(*sys.argv[1:5]))
