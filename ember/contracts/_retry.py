"""A step's retry policy: how many attempts, and how long to wait between them (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._errors import UsageError

__all__ = ["Retry"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """Retry a failed step attempt after a backoff, as Temporal retries activities; the
    defaults are Temporal's. A step without ``retry=`` runs once.

    The wait before attempt ``n + 1`` is ``initial * backoff ** (n - 1)``, capped at
    ``max_interval``: with the defaults 1 s, 2 s, 4 s ... up to 100 s.
    """

    attempts: int = 0
    """Attempts in all, the first included; 0 means unlimited (Temporal's default)."""

    initial: float = 1.0
    """Seconds before the second attempt."""

    backoff: float = 2.0
    """Each wait is this many times the previous one (at least 1)."""

    max_interval: float | None = None
    """The longest wait, in seconds; None means 100 times ``initial`` (Temporal's default)."""

    non_retryable: tuple[str, ...] = ()
    """Exception type names (``"ValueError"`` or qualified, ``"app.errors.Invalid"``) that end
    the step at once. Timeouts are retryable unless ``"StepTimeout"`` is listed."""

    def __post_init__(self) -> None:
        if self.attempts.__class__ is not int or self.attempts < 0:
            raise UsageError(
                f"Retry.attempts must be an int >= 0 (0: unlimited): {self.attempts!r}"
            )
        for name in ("initial", "backoff"):
            value = getattr(self, name)
            if value.__class__ not in (int, float) or not 0 < value < math.inf:
                raise UsageError(f"Retry.{name} must be a positive number: {value!r}")
        if self.backoff < 1:
            raise UsageError(f"Retry.backoff must be at least 1: {self.backoff!r}")
        cap = self.max_interval
        if cap is not None and (cap.__class__ not in (int, float) or not 0 < cap < math.inf):
            raise UsageError(f"Retry.max_interval must be a positive number or None: {cap!r}")
        if isinstance(self.non_retryable, str) or not all(
            isinstance(n, str) and n for n in self.non_retryable
        ):
            raise UsageError(
                f"Retry.non_retryable must be a tuple of type names: {self.non_retryable!r}"
            )
        object.__setattr__(self, "non_retryable", tuple(self.non_retryable))

    @property
    def cap(self) -> float:
        """The effective longest wait in seconds."""
        return self.max_interval if self.max_interval is not None else 100 * self.initial

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based) before the next one."""
        exponent = max(0, attempt - 1)
        # backoff ** exponent overflows for long runs of attempts: compare in log space first.
        if exponent * math.log(self.backoff) >= math.log(self.cap / self.initial):
            return self.cap
        return min(self.cap, self.initial * self.backoff**exponent)

    def allows(self, attempt: int, kind: str) -> bool:
        """Whether failed attempt ``attempt`` of an error of type ``kind`` may be retried."""
        if self.attempts and attempt >= self.attempts:
            return False
        short = kind.rpartition(".")[2]
        return kind not in self.non_retryable and short not in self.non_retryable

    def as_dict(self) -> dict[str, object]:
        return {
            "attempts": self.attempts,
            "initial": self.initial,
            "backoff": self.backoff,
            "max_interval": self.cap,
            "non_retryable": list(self.non_retryable),
        }
