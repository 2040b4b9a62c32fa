"""Argument parsing and dispatch for the ``ember`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._certscmd import add_certs_commands
from ._chaoscmd import add_chaos_commands
from ._cluster import add_cluster_commands
from ._faultcmd import add_fault_command
from ._memberscmd import add_members_command
from ._namescmd import add_names_commands
from ._nodecmd import add_node_commands
from ._runscmd import add_runs_commands
from ._statuscmd import add_status_command
from ._topcmd import add_top_command


def build_parser() -> argparse.ArgumentParser:
    """The ``ember`` argument parser with its subcommands."""
    parser = argparse.ArgumentParser(prog="ember", description="Ember, an actor runtime.")
    parser.add_argument(
        "--version", action="version", version=version(), help="print Ember's version and exit"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_node_commands(sub)
    add_cluster_commands(sub)
    add_certs_commands(sub)
    add_members_command(sub)
    add_names_commands(sub)
    add_fault_command(sub)
    add_status_command(sub)
    add_top_command(sub)
    add_chaos_commands(sub)
    add_runs_commands(sub)
    return parser


def version() -> str:
    """``ember X.Y.Z (Python A.B.C, uvloop D)``."""
    import platform
    from importlib import metadata

    from .. import __version__

    try:
        loop = f", uvloop {metadata.version('uvloop')}"
    except metadata.PackageNotFoundError:  # pragma: no cover - uvloop is a dependency
        loop = ""
    return f"ember {__version__} (Python {platform.python_version()}{loop})"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ember`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
