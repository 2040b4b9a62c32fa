"""``RunHandle``: what ``Contract.start`` returns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._status import RunStatus

if TYPE_CHECKING:
    from ._service import ContractsService

__all__ = ["RunHandle"]


class RunHandle:
    """A run by id, from the node that started it or any other (``node.contracts.handle``)."""

    __slots__ = ("_service", "contract", "created", "durable", "run_id")

    def __init__(
        self,
        service: ContractsService,
        run_id: str,
        contract: str,
        durable: bool,
        created: bool = True,
    ) -> None:
        self._service = service
        self.run_id = run_id
        self.contract = contract
        self.durable = durable
        self.created = created
        """False when a run with this id existed already (the start was idempotent)."""

    async def result(self, timeout: float | None = None) -> dict[str, Any]:  # noqa: ASYNC109
        """The run's outputs once it succeeded; raises the error that ended it otherwise
        (:class:`StepFailed`, :class:`StepOutcomeUnknown`, :class:`AwaitTimeout`,
        :class:`RunCancelled`...), or :class:`ResultTimeout` after ``timeout`` seconds."""
        return await self._service.result(self.run_id, timeout=timeout, durable=self.durable)

    async def status(self) -> RunStatus:
        """Where the run stands (see :class:`RunStatus`)."""
        return await self._service.status(self.run_id, durable=self.durable)

    async def cancel(self, reason: str = "cancelled") -> bool:
        """Cancel the run; False if it had finished already."""
        return await self._service.cancel(self.run_id, reason, durable=self.durable)

    def __repr__(self) -> str:
        kind = "durable" if self.durable else "local"
        return f"<RunHandle {self.run_id} of {self.contract} ({kind})>"
