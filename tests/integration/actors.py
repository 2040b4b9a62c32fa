"""Actors that node processes in the integration tests import by reference."""

from __future__ import annotations

from typing import Any

import ember


class Echo(ember.Actor):
    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("relay", pid, m):
                return await ember.call(pid, m)
            case "node":
                return self.node.name
        return msg
