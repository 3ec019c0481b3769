"""The mcalc console command: every sub-command has --help, and bad input ends in a clear message."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mcalc.cli import build_parser, main

SUBCOMMANDS = ["curate", "phantom", "notebooks", "book", "sweep"]


def test_every_subcommand_is_registered():
    """The parser knows exactly the documented sub-commands."""
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(SUBCOMMANDS)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_of_every_subcommand(command, capsys):
    """`mcalc X --help` prints a usage line and exits 0."""
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert f"usage: mcalc {command}" in capsys.readouterr().out


def test_console_entry_point_runs_as_module():
    """`python -m mcalc --help` works (the installed `mcalc` script calls the same main)."""
    out = subprocess.run(
        [sys.executable, "-m", "mcalc", "--help"], capture_output=True, text=True, check=True
    )
    assert "curate" in out.stdout and "phantom" in out.stdout


def test_curate_on_a_folder_without_tables_is_a_clear_error(tmp_path, capsys):
    """No case-description table under ROOT: exit code 2 and one message, no traceback."""
    assert main(["curate", str(tmp_path), "--out", str(tmp_path / "m.csv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mcalc curate:") and "Traceback" not in err


def test_phantom_refuses_a_foreign_non_empty_folder(tmp_path, capsys):
    """The phantom never overwrites a folder that is not a previous phantom."""
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(["phantom", str(tmp_path), "--scale", "0.02", "--quiet"]) == 2
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    assert "mcalc phantom:" in capsys.readouterr().err
