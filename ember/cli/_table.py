"""Aligned text tables for the CLI's listings."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["format_rows"]


def format_rows(rows: Sequence[Sequence[str]]) -> str:
    """``rows`` (a header row first) as left-aligned columns, two spaces apart."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
