"""The contracts workload: durable runs of :class:`ember.chaos._orders.ChaosOrder` started on
random nodes of the cluster during the faults, their ``paid`` events delivered, and after the
heal every run's end and ledger read back.

Operations (``key`` the run id, which is also the order and the idempotency key):

- ``start``: ``node.contracts.start_on(node, ChaosOrder, ...)`` from the client node: the run is
  owned (coordinated) by ``node``. ``ok`` with whether it was created; any error ``info``: a
  start may have been recorded (the run id makes a retried start apply once).
- ``deliver``: ``deliver_event("paid", {"order": run}, "pay-<run>", event_id="paid-<run>")``
  (the same delivery id every time, so a retry is not a second event). ``ok`` with the runs
  that took it; ``fail`` with ``NoMatchingRun`` (nothing recorded: the start is not, or not
  yet, in the store); else ``info``.
- ``status``: a run's status (a read: ``fail`` on any error).

Final phase (:meth:`ContractsWorkload.final_runs`): each run whose event was not delivered gets
it; then ``final_result`` records how every run ended (``ok`` with its status, reason, result,
error type and per-step attempts; ``fail`` ``RunNotFound`` when no store has it), and
``ledger`` the executions its steps noted in the KV group.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from .._errors import EmberError, UsageError
from ..contracts import (
    DuplicateEvent,
    NoMatchingRun,
    ResultTimeout,
    RunNotFound,
    RunStatus,
    StoreUnavailable,
)
from ._checkers import payment_of
from ._history import EventType
from ._orders import ChaosOrder, ledger_key
from ._workloads import Workload

__all__ = ["ContractsWorkload"]

_RETRY = 0.25  # seconds between retries in the final phase
_GRACE = 10.0  # seconds after the deadline a run's final status and ledger may still be read
_ENDED = frozenset({"succeeded", "failed", "cancelled", "unknown"})


class ContractsWorkload(Workload):
    """Starts runs on random nodes, delivers their events, reads their status (see module)."""

    prefix = "order-"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.runs: dict[str, dict[str, Any]] = {}
        """Every run id a start was invoked for: its inputs and whether its event is in."""

    async def operate(
        self, process: int, f: str, key: str, rng: random.Random, memory: dict[str, Any]
    ) -> EventType:
        unpaid = [r for r, info in self.runs.items() if not info["paid"]]
        if f == "deliver" and unpaid:
            return await self._deliver(process, rng.choice(unpaid))
        if f == "status" and self.runs:
            return await self._status(process, rng.choice(list(self.runs)))
        return await self._start(process, rng)

    async def _start(self, process: int, rng: random.Random) -> EventType:
        run_id = f"{self.prefix}{self.ids.value()}"
        node = self._node(rng)
        inputs = {
            "order": run_id,
            "amount": rng.randint(1, 1000),
            "ledger": list(self.driver.names),
        }
        self.runs[run_id] = {"inputs": inputs, "paid": False}
        value = {"node": node, "amount": inputs["amount"]}
        invoke = self.history.invoke(process, "start", run_id, value, self.clock())
        timeout = self.spec.timeout
        try:
            async with asyncio.timeout(timeout * 2 + 1.0):
                handle = await self.driver.client.contracts.start_on(
                    node, ChaosOrder, inputs, run_id=run_id, durable=True, timeout=timeout
                )
        except UsageError:
            raise  # InvalidInputs, RunConflict: the workload's mistake
        except (EmberError, TimeoutError, OSError) as exc:
            return self._failed(invoke, "info", exc)
        self.history.complete(invoke, "ok", {"created": handle.created}, self.clock(), node=node)
        return "ok"

    async def _deliver(self, process: int, run_id: str, f: str = "deliver") -> EventType:
        payment = payment_of(run_id)
        invoke = self.history.invoke(process, f, run_id, payment, self.clock())
        timeout = self.spec.timeout
        try:
            async with asyncio.timeout(timeout * 2 + 1.0):
                took = await self.driver.client.contracts.deliver_event(
                    "paid", {"order": run_id}, payment, event_id=f"paid-{run_id}", timeout=timeout
                )
        except UsageError:
            raise
        except (NoMatchingRun, DuplicateEvent) as exc:  # the value says why
            self.history.complete(invoke, "fail", str(exc), self.clock(), error=type(exc).__name__)
            return "fail"
        except (EmberError, TimeoutError, OSError) as exc:
            return self._failed(invoke, "info", exc)
        self.runs[run_id]["paid"] = True
        self.history.complete(invoke, "ok", list(took), self.clock())
        return "ok"

    async def _status(self, process: int, run_id: str) -> EventType:
        invoke = self.history.invoke(process, "status", run_id, None, self.clock())
        try:
            async with asyncio.timeout(self.spec.timeout):
                status = await self.driver.client.contracts.status(run_id)
        except UsageError:
            raise
        except (EmberError, TimeoutError, OSError) as exc:
            return self._failed(invoke, "fail", exc)
        self.history.complete(invoke, "ok", status.status, self.clock())
        return "ok"

    # --- the final phase ---

    async def final_runs(self, within: float) -> None:
        """Deliver every missing event, then record each run's end and its ledger, for at
        most ``within`` seconds in all."""
        deadline = self.clock() + within
        async with asyncio.TaskGroup() as tg:
            for run_id in list(self.runs):
                tg.create_task(self._finish(run_id, deadline))

    async def _finish(self, run_id: str, deadline: float) -> None:
        contracts = self.driver.client.contracts
        process = self.ids.process()
        while not self.runs[run_id]["paid"] and self.clock() < deadline:
            outcome = await self._deliver(process, run_id, "final_deliver")
            if outcome == "info":
                process = self.ids.process()
            elif outcome == "fail":
                status = await self._read_status(run_id, deadline)
                if not isinstance(status, RunStatus) or status.status in _ENDED:
                    break  # never started, or it ended without the event, or no answer
            if not self.runs[run_id]["paid"]:
                await asyncio.sleep(_RETRY)
        while self.clock() < deadline:  # until it ends (result() polls the store)
            try:
                await contracts.result(run_id, timeout=max(0.1, deadline - self.clock()))
                break
            except (ResultTimeout, RunNotFound):
                break
            except StoreUnavailable:
                await asyncio.sleep(_RETRY)
            except EmberError:
                break  # the error that ended the run: the status says which
        invoke = self.history.invoke(process, "final_result", run_id, None, self.clock())
        status = await self._read_status(run_id, deadline + _GRACE)
        if isinstance(status, RunStatus):
            self.history.complete(invoke, "ok", _ending(status), self.clock())
        else:
            end: EventType = "fail" if status == "RunNotFound" else "info"
            self.history.complete(invoke, end, None, self.clock(), error=status)
        await self._read_ledger(process, run_id, deadline + _GRACE)

    async def _read_status(self, run_id: str, deadline: float) -> RunStatus | str:
        """The run's status, retried through store unavailability until ``deadline``; else
        the error's name (``RunNotFound``: no store has it)."""
        while True:
            try:
                status: RunStatus = await self.driver.client.contracts.status(run_id)
                return status
            except RunNotFound:
                return "RunNotFound"
            except (EmberError, TimeoutError) as exc:
                if self.clock() >= deadline:
                    return type(exc).__name__
                await asyncio.sleep(_RETRY)

    async def _read_ledger(self, process: int, run_id: str, deadline: float) -> None:
        key = ledger_key(run_id)
        invoke = self.history.invoke(process, "ledger", run_id, None, self.clock())
        while True:
            try:
                entries = await self.driver.kv.read(key, timeout=self.spec.timeout)
                break
            except (EmberError, TimeoutError) as exc:
                if self.clock() >= deadline:
                    error = type(exc).__name__
                    self.history.complete(invoke, "fail", None, self.clock(), error=error)
                    return
                await asyncio.sleep(_RETRY)
        rows = sorted(list(v) for v in (entries or {}).values())
        self.history.complete(invoke, "ok", rows, self.clock())


def _ending(status: RunStatus) -> dict[str, Any]:
    """A run's end as the checker reads it."""
    return {
        "status": status.status,
        "reason": status.reason,
        "owner": status.owner,
        "result": status.result,
        "error": None if status.error is None else type(status.error).__name__,
        "inputs": dict(status.inputs),
        "steps": {k: [s.status, s.attempts, s.node] for k, s in status.steps.items()},
    }
