"""The replicated map the KV workload runs against: Ember's KV state machine plus compare-and-set.

Node processes import it by reference (``ember.chaos._kvsm:ChaosKV``), so it lives in the
package rather than in a test.
"""

from __future__ import annotations

from typing import Any

from ..consensus import KVStateMachine, apply

__all__ = ["ChaosKV"]


class ChaosKV(KVStateMachine):
    """``{"op": "cas", "key": k, "old": o, "new": n}`` sets ``k`` to ``n`` if it holds ``o``
    (None: absent) and returns whether it did; ``{"op": "note", "key": k, "token": t,
    "value": v}`` keeps ``v`` under ``t`` in the map at ``k`` and returns how many it holds (a
    ledger: noting one token again is one entry); ``set`` and reads as
    :class:`KVStateMachine`."""

    @apply("cas")
    def cas(self, cmd: dict[str, Any]) -> bool:
        key = cmd["key"]
        if self.state.get(key) != cmd["old"]:
            return False
        self.state[key] = cmd["new"]
        return True

    @apply("note")
    def note(self, cmd: dict[str, Any]) -> int:
        key = cmd["key"]
        entries = dict(self.state.get(key) or {})
        entries[cmd["token"]] = cmd["value"]
        self.state[key] = entries
        return len(entries)
