"""Where each key of a TOML document is, so a validation error can name its line.

``tomllib`` parses but keeps no positions; :func:`key_lines` scans the text for table headers
and ``key = value`` lines and maps each key path (``("faults", "timeline", 1, "target")``) to
its line. Keys inside inline tables and arrays map to the line of the key that holds them:
:func:`line_of` answers with the nearest ancestor it knows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["Path", "key_lines", "line_of", "show_path"]

Path = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+))*)\s*="""
)
_PART = re.compile(r"""\s*("[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)\s*\.?""")


def _parts(dotted: str) -> tuple[str, ...]:
    return tuple(m.group(1).strip("\"'") for m in _PART.finditer(dotted) if m.group(1))


def key_lines(text: str) -> dict[Path, int]:
    """Key path -> 1-based line of every table header and top-level ``key =`` line."""
    lines: dict[Path, int] = {}
    counts: dict[tuple[str, ...], int] = {}
    prefix: Path = ()
    depth = 0  # open brackets of a multi-line value: its inner lines hold no keys of ours
    in_string = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw
        if in_string:
            if '"""' in line or "'''" in line:
                in_string = False
            continue
        if depth == 0:
            header = _HEADER.match(line)
            if header and not line.lstrip().startswith("#"):
                table = _parts(header.group(2))
                if header.group(1) == "[[":
                    index = counts[table] = counts.get(table, -1) + 1
                    prefix = (*table, index)
                else:
                    prefix = table
                lines.setdefault(prefix, number)
                lines.setdefault(prefix[:-1] if header.group(1) == "[[" else table, number)
                continue
            key = _KEY.match(line)
            if key:
                lines.setdefault((*prefix, *_parts(key.group(1))), number)
                value = line[key.end() :]
                if value.count('"""') % 2 or value.count("'''") % 2:
                    in_string = True
                depth += _depth(value)
            continue
        depth = max(0, depth + _depth(line))
    return lines


def _depth(value: str) -> int:
    """Net open brackets on a line, outside strings and comments."""
    value = re.sub(r'"(?:\\.|[^"\\])*"|\'[^\']*\'', "", value)
    value = value.split("#", 1)[0]
    return value.count("[") + value.count("{") - value.count("]") - value.count("}")


def line_of(lines: dict[Path, int], path: Sequence[str | int]) -> int | None:
    """The line of ``path``, or of its nearest ancestor that has one."""
    p = tuple(path)
    while p:
        if p in lines:
            return lines[p]
        p = p[:-1]
    return None


def show_path(path: Sequence[str | int]) -> str:
    """``("faults", "timeline", 1, "target")`` -> ``faults.timeline[1].target``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
