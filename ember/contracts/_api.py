"""Module-level shortcuts to the current node's contracts service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._service import service_of
from ._status import RunStatus, RunSummary

__all__ = ["cancel", "deliver_event", "runs", "status"]


async def deliver_event(
    event: str,
    correlation: Mapping[str, Any] | None = None,
    payload: Any = None,
    *,
    run_id: str | None = None,
    event_id: str | None = None,
    duplicates: str = "reject",
    node: Any = None,
    timeout: float = 10.0,  # noqa: ASYNC109
) -> list[str]:
    """Deliver ``event`` to the runs with these correlation keys (see
    :meth:`ContractsService.deliver_event`)."""
    return await service_of(node).deliver_event(
        event,
        correlation,
        payload,
        run_id=run_id,
        event_id=event_id,
        duplicates=duplicates,
        timeout=timeout,
    )


async def status(run_id: str, *, node: Any = None) -> RunStatus:
    """Where run ``run_id`` stands."""
    return await service_of(node).status(run_id)


async def runs(
    *, contract: str | None = None, status: str | None = None, limit: int = 100, node: Any = None
) -> list[RunSummary]:
    """Runs known to this node (its local ones and the durable store's), newest first."""
    return await service_of(node).runs(contract=contract, status=status, limit=limit)


async def cancel(run_id: str, reason: str = "cancelled", *, node: Any = None) -> bool:
    """Cancel run ``run_id`` (False if it had finished)."""
    return await service_of(node).cancel(run_id, reason)
