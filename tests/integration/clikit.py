"""Running the ``ember`` command line as a user does, from a process test."""

from __future__ import annotations

import asyncio
import sys


async def ember_cli(*args: str, timeout: float) -> tuple[int, str, str]:  # noqa: ASYNC109
    """Run ``python -m ember ARGS`` to its end (at most ``timeout`` seconds): its exit code,
    stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ember",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(timeout):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
