"""Validation shared by the config dataclasses: one wording for one kind of mistake."""

from __future__ import annotations

import math

from ._errors import UsageError

__all__ = ["check_int", "check_positive"]


def check_int(name: str, value: object, low: int, high: int) -> None:
    """``value`` must be an int (not a bool) in ``low..high``."""
    if value.__class__ is not int or not low <= value <= high:
        raise UsageError(f"{name} must be an int in {low}..{high}, not {value!r}")


def check_positive(name: str, value: object) -> None:
    """``value`` must be a positive finite number of seconds."""
    if value.__class__ not in (int, float) or not 0 < value < math.inf:
        raise UsageError(f"{name} must be a positive finite number of seconds, not {value!r}")
