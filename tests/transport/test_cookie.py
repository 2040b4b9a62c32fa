"""One rule for the cookie: the CLI and ``Node(cookie=...)`` read the same secret from a file."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

import ember
from ember import UsageError
from ember.cli._client import read_cookie
from ember.mesh._packet import mesh_key
from ember.transport._cookie import normalize_cookie, read_cookie_file

pytestmark = pytest.mark.ember_realtime


@pytest.mark.parametrize("given", ["secret", "secret\n", "  secret\r\n", b"secret\n", b"\tsecret"])
def test_surrounding_whitespace_is_not_part_of_the_cookie(given: str | bytes) -> None:
    assert normalize_cookie(given) == b"secret"


def test_inner_whitespace_and_text_are_kept() -> None:
    assert normalize_cookie(" two words ") == b"two words"
    assert normalize_cookie("sécret") == "sécret".encode()


@pytest.mark.parametrize("given", ["", " \n", b"\n\n", 42])
def test_no_cookie_is_a_usage_error(given: object) -> None:
    with pytest.raises(UsageError):
        normalize_cookie(given)  # type: ignore[arg-type]


def test_the_mesh_key_follows_the_same_rule() -> None:
    assert mesh_key("secret\n", "c") == mesh_key(b"secret", "c")


def write(path: Path, text: str, mode: int) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_private_cookie_file_reads_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "cookie", "secret\n", 0o600)
    assert read_cookie_file(path) == "secret"
    assert read_cookie(path) == "secret"  # the CLI's reader is the same rule
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_cookie_file_others_can_read_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int
) -> None:
    path = write(tmp_path / "cookie", "secret\n", mode)
    assert read_cookie(path) == "secret"
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert f"mode {mode:04o}" in warning.getMessage()
    assert f"chmod 600 {path}" in warning.getMessage()


def test_unreadable_or_empty_cookie_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read cookie file"):
        read_cookie_file(tmp_path / "missing")
    with pytest.raises(UsageError, match="is empty"):
        read_cookie_file(write(tmp_path / "blank", " \n", 0o600))
    with pytest.raises(SystemExit, match="is empty"):
        read_cookie(tmp_path / "blank")
    if os.geteuid() != 0:  # root reads anything
        with pytest.raises(UsageError, match="cannot read"):
            read_cookie_file(write(tmp_path / "locked", "x", 0o000))


async def test_a_node_given_the_file_text_and_one_given_the_cli_reading_agree(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "cookie", "secret\n", 0o600)  # what `echo secret > cookie` writes
    raw_text = path.read_text()
    async with (
        ember.Node("a", listen="127.0.0.1:0", cookie=read_cookie(path)) as a,
        ember.Node("b", listen="127.0.0.1:0", cookie=raw_text) as b,
    ):
        assert a.address is not None
        async with asyncio.timeout(5.0):
            await b.connect_node(f"a@{a.address}")
        assert b.connected_nodes() == ["a"]
