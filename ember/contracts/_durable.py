"""The durable store of a node's contracts service: the ``ember.contracts`` Raft group (this
node's members of it, and a client handle on all of them), writes retried through leader changes,
and, on the node whose member leads, the sweep that gives the runs of a gone owner to a live
node and wakes owners that have news."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from .._errors import UsageError
from ..consensus import (
    Cluster,
    ClusterConfig,
    ClusterError,
    CommandFailed,
    NoLeader,
    NotLeader,
    OutcomeUnknown,
    Role,
)
from ..consensus._host import node_of
from ..consensus._types import ConfState
from ._errors import StoreUnavailable
from ._store import FINAL, RunStore

if TYPE_CHECKING:
    from ._service import ContractsService

__all__ = ["DECLINED_RETRY", "GROUP", "STORE_REF", "DurableStore"]

log = logging.getLogger("ember.contracts")

GROUP = "ember.contracts"
"""The Raft group of the durable store."""
STORE_REF = "ember.contracts._store:RunStore"
DECLINED_RETRY = 30.0
"""Seconds between asking every node again to take a run none could load."""
WAKE_AGAIN = 2.0
"""Seconds before the sweep wakes an owner again that did not react to a wake."""


class DurableStore:
    """The store of ``service``, whose members are ``members`` (those of this node are
    started here; their data lives under the node's data directory when it has one)."""

    def __init__(self, service: ContractsService, members: tuple[str, ...]) -> None:
        self.service = service
        node = service.node
        host = node.service("raft")
        if host is None:
            raise UsageError(f"node {node.name} runs no Raft host for the contracts store")
        raft = service.config.raft or ClusterConfig()
        voters = members[: raft.max_voters]
        for member in members:
            if node_of(member) != node.name:
                continue
            meta = {
                "group": GROUP,
                "member": member,
                "ref": STORE_REF,
                "config": raft.as_dict(),
                "durable": "auto",
            }
            host.create_member(meta, ConfState(tuple(voters), tuple(members[len(voters) :])))
        self.host = host
        self.cluster = Cluster(
            host,
            GROUP,
            list(members),
            client_id=f"contracts-{node.name}-{node.creation}",
            max_voters=raft.max_voters,
        )
        self.sweep_now = asyncio.Event()
        """Set to sweep at once (a member failed or left)."""
        self.dead_since: dict[str, float] = {}
        self._nudged: dict[str, float] = {}

    async def write(
        self,
        command: dict[str, Any],
        request_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        retry_forever: bool = False,
    ) -> list[Any]:
        """Write ``command``, retrying with the same request id through leader changes (it
        applies once) for ``timeout`` seconds (``store_timeout`` by default; ``retry_forever``:
        until it is written)."""
        service = self.service
        loop = asyncio.get_running_loop()
        budget = service.config.store_timeout if timeout is None else timeout
        deadline = loop.time() + budget
        pause = 0.02
        service.stats.store_writes += 1
        while True:
            remaining = deadline - loop.time()
            within = 5.0 if retry_forever else max(0.05, min(remaining, 5.0))
            try:
                answer: list[Any] = await self.cluster.write(
                    command, request_id=request_id, timeout=within
                )
                return answer
            except CommandFailed as exc:  # a bug in the store, the same on every member
                raise StoreUnavailable(
                    f"the contracts store refused {command['op']}: {exc}"
                ) from exc
            except (OutcomeUnknown, NoLeader, NotLeader, ClusterError, TimeoutError) as exc:
                if not retry_forever and loop.time() + pause >= deadline:
                    raise StoreUnavailable(
                        f"the contracts store did not take {command['op']} within {budget} s: {exc}"
                    ) from exc
                service.stats.store_retries += 1
            await asyncio.sleep(pause)
            pause = min(1.0, pause * 2)

    async def read(self, key: Any) -> Any:
        """A linearizable read of the store (see :meth:`RunStore.read`)."""
        try:
            return await self.cluster.read(key, timeout=self.service.config.store_timeout)
        except (ClusterError, TimeoutError) as exc:
            raise StoreUnavailable(f"cannot read the contracts store: {exc}") from exc

    def leader_state(self) -> RunStore | None:
        """This node's member's state machine, if that member leads now."""
        for (group, _), member in list(self.host.members.items()):
            if group == GROUP and member.running and member.role == Role.LEADER:
                sm = member.replica.state_machine
                return sm if isinstance(sm, RunStore) else None
        return None

    async def sweep_loop(self) -> None:
        service = self.service
        while True:
            # Every sweep_interval, and at once when a member fails or leaves.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(service.config.sweep_interval):
                    await self.sweep_now.wait()
            self.sweep_now.clear()
            store = self.leader_state()
            if store is not None:
                try:
                    await self.sweep(store)
                except StoreUnavailable as exc:
                    log.warning("contracts sweep on %s: %s", service.node.name, exc)

    async def sweep(self, store: RunStore) -> None:
        """Give the runs of owners that are gone (or cannot load them) to live nodes; wake
        owners of runs with new events or due deadlines that did not react."""
        service = self.service
        now = service.clock()
        alive = sorted(service.alive_nodes())
        for run_id, owner, epoch, status, wake, deadline, declined, _c, _v in store.read(
            ["active"]
        ):
            if status in FINAL:
                continue
            gone = owner not in alive
            if gone or owner in declined:
                if gone:
                    since = self.dead_since.setdefault(owner, now)
                    if now - since < service.config.takeover_grace:
                        continue
                await self._reassign(run_id, owner, epoch, declined, alive, gone, now)
                continue
            due = (wake is not None and now - wake >= 1.0) or (
                status == "waiting" and deadline is not None and deadline <= now
            )
            if due and now - self._nudged.get(run_id, -1e18) >= WAKE_AGAIN:
                self._nudged[run_id] = now
                service.poke(owner, run_id)

    async def _reassign(  # noqa: PLR0917 - one run's row of the sweep
        self,
        run_id: str,
        owner: str,
        epoch: int,
        declined: list[str],
        alive: list[str],
        gone: bool,
        now: float,
    ) -> None:
        choices = [n for n in alive if n not in declined]
        if not choices:
            # Nobody here can run it (it is reported unknown): ask everybody again now and
            # then, in case a node has loaded its version since.
            if now - self._nudged.get(run_id, -1e18) >= DECLINED_RETRY:
                self._nudged[run_id] = now
                command = {"op": "retry_declined", "id": run_id, "at": now}
                await self.write(command, f"retry:{run_id}:{now}")
            return
        to = choices[hash(run_id) % len(choices)]
        why = f"node {owner} {'is gone' if gone else 'cannot run it'}; taken over by {to}"
        command = {"op": "claim", "id": run_id, "node": to, "epoch": epoch, "at": now, "why": why}
        answer = await self.write(command, f"claim:{run_id}:{epoch}")
        if answer[0] == "ok":
            self.service.stats.takeovers += 1
            self.service.poke(to, run_id)

    async def recover(self) -> None:
        """After a (re)start, resume the durable runs this node owns that are not waiting (and
        time the deadlines of those that are)."""
        service = self.service
        while True:
            try:
                active = await self.read(["active"])
                break
            except StoreUnavailable:
                await asyncio.sleep(0.2)
        here = service.node.name
        for run_id, owner, _e, status, wake, deadline, _d, _c, _v in active:
            if owner != here or status in FINAL:
                continue
            if status == "waiting" and wake is None:
                if deadline is not None:
                    service.wake_at(deadline, run_id)
                continue
            service.wake(run_id)
