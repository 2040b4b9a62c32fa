"""An actor only node processes import: the test process never loads this module, so child
rows naming it arrive there as references."""

from __future__ import annotations

from typing import Any

import ember


class Sleeper(ember.Actor):
    async def receive(self, msg: Any) -> Any:
        return ("sleeper", self.node.name)
