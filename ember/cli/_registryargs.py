"""The registry flags of ``ember node start`` (``docs/registry.md``)."""

from __future__ import annotations

import argparse
from typing import Any

from .._errors import EmberError
from ..registry import RegistryConfig

_PROFILES = {"local": RegistryConfig.local, "lan": RegistryConfig.lan, "wan": RegistryConfig.wan}


def add_registry_arguments(parser: Any) -> None:
    """The registry flags of ``ember node start`` (``docs/registry.md``)."""
    parser.add_argument(
        "--registry-expect",
        type=int,
        default=3,
        metavar="N",
        help="voters the consistent tier's system group is founded with (default 3)",
    )
    parser.add_argument(
        "--registry-client",
        action="store_true",
        help="host no member of the system group (register through the others)",
    )
    parser.add_argument(
        "--registry-profile",
        default="lan",
        choices=sorted(_PROFILES),
        help="registry timing profile (default lan)",
    )


def registry_config(args: argparse.Namespace) -> RegistryConfig:
    """The :class:`RegistryConfig` the registry flags ask for."""
    try:
        return _PROFILES[args.registry_profile](
            expect=args.registry_expect, member=not args.registry_client
        )
    except EmberError as exc:
        raise SystemExit(f"ember: {exc}") from exc
