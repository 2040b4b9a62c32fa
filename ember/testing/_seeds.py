"""Seeds for randomized tests: each run names its seed, and a failure says how to replay it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["seeded", "seeds"]


def seeds(*defaults: int) -> list[int]:
    """The seeds a randomized test runs with: ``EMBER_SEED`` if set, else ``defaults``."""
    env = os.environ.get("EMBER_SEED")
    return [int(env)] if env else list(defaults)


@contextmanager
def seeded(seed: int) -> Iterator[int]:
    """Run a block under ``seed``; a failure inside carries the seed and how to replay it."""
    try:
        yield seed
    except BaseException as exc:
        exc.add_note(f"seed {seed}: replay with EMBER_SEED={seed}")
        raise
