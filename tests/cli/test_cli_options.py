"""The ``ember`` command documents itself: every option of every subcommand has help text, and
``ember --version`` says which Ember this is."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

import ember
from ember.cli._main import build_parser, main


def actions(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ("ember",)
) -> Iterator[tuple[tuple[str, ...], argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                yield (*path, choice.dest), choice
            for name, sub in action.choices.items():
                yield from actions(sub, (*path, name))
        else:
            yield path, action


def test_every_option_of_every_command_has_help() -> None:
    missing = [
        f"{' '.join(path)} {'/'.join(a.option_strings) or a.dest}"
        for path, a in actions(build_parser())
        if not (a.help and a.help.strip()) and a.help != argparse.SUPPRESS
    ]
    assert missing == []


def test_version_names_ember_python_and_uvloop(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ember {ember.__version__} (Python ") and "uvloop" in out


def test_version_from_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ember", "--version"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.startswith("ember ")
