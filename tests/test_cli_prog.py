"""The CLI names the command the user typed, `cifar-lab` or `python -m cifar_lab`, in its usage and error hints."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cifar_lab import cli

REPO = Path(cli.__file__).resolve().parents[1]
CONSOLE = "/home/me/.venv/bin/cifar-lab"
MODULE = str(REPO / "cifar_lab" / "__main__.py")


@pytest.mark.parametrize(
    ("argv0", "prog"),
    [
        (CONSOLE, "cifar-lab"),
        ("cifar-lab", "cifar-lab"),
        ("cifar-lab.exe", "cifar-lab"),
        (MODULE, "python -m cifar_lab"),
        ("/usr/bin/pytest", "python -m cifar_lab"),
    ],
)
def test_the_program_name_follows_argv0(argv0, prog):
    assert cli.prog_name(argv0) == prog


def run_main(argv0: str, *argv: str) -> tuple[int, str]:
    """cli.main as if started as `argv0`; returns (exit status, stderr)."""
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        mp.setattr(sys, "argv", [argv0, *argv])
        code = cli.main(list(argv))
    return code, err.getvalue()


HINTS = [  # (argv, the help the hint points at, after the program name)
    (["train", "--bogus"], "train --help"),  # argparse reports this one from the top parser
    (["predict", "model.pth", "a.png", "--bogus", "1"], "predict --help"),
    (["train", "--epochs", "x"], "train --help"),
    (["runs", "--status", "nope"], "runs --help"),
    ([], "--help"),
    (["nope"], "--help"),
]


@pytest.mark.parametrize(("argv0", "prog"), [(CONSOLE, "cifar-lab"), (MODULE, "python -m cifar_lab")])
@pytest.mark.parametrize(("argv", "help_of"), HINTS)
def test_an_error_points_at_the_help_of_the_command_typed(argv0, prog, argv, help_of):
    code, stderr = run_main(argv0, *argv)
    assert code == cli.EXIT_USER_ERROR
    assert len(stderr.strip().splitlines()) == 1
    assert stderr.strip().endswith(f"(see `{prog} {help_of}`)")
    assert "cifar_lab cifar_lab" not in stderr


def test_an_unknown_flag_is_named():
    _, stderr = run_main(CONSOLE, "train", "--bogus", "--epochs", "1")
    assert stderr.startswith("error: unrecognized arguments: --bogus (see")


def test_usage_lines_and_hints_name_the_given_program():
    for prog in ("cifar-lab", "python -m cifar_lab"):
        help_text = cli.build_parser(prog).format_help()
        assert help_text.startswith(f"usage: {prog} ")
        train = io.StringIO()
        with contextlib.redirect_stdout(train), pytest.raises(SystemExit):
            cli.build_parser(prog).parse_args(["train", "--help"])
        assert train.getvalue().startswith(f"usage: {prog} train ")
        assert cli.build_parser(prog).parse_args(["runs"]).prog == prog  # for messages that suggest a next command


def test_main_takes_the_program_name_as_an_argument():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert cli.main(["train", "--bogus"], prog="cifar-lab") == cli.EXIT_USER_ERROR
    assert "(see `cifar-lab train --help`)" in err.getvalue()


def test_python_dash_m_names_itself_in_a_real_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "cifar_lab", "train", "--bogus"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == cli.EXIT_USER_ERROR
    assert proc.stderr.strip() == "error: unrecognized arguments: --bogus (see `python -m cifar_lab train --help`)"


def test_follow_up_commands_are_given_in_the_spelling_typed(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR_LAB_RUNS", str(tmp_path))
    monkeypatch.delenv("CIFAR_LAB_RUNS_DB", raising=False)
    code, stderr = run_main(CONSOLE, "train", "--resume", " ")
    assert code == cli.EXIT_USER_ERROR and "list them with `cifar-lab runs`" in stderr
    code, stderr = run_main(
        CONSOLE,
        "train",
        "--data",
        "synthetic",
        "--arch",
        "tutorial",
        "--epochs",
        "1",
        "--eval-subset",
        "64",
        "--precision",
        "fp32",
        "--threads",
        "1",
        "--out",
        str(tmp_path),
    )
    assert code == 0, stderr
    assert "(resume it, if it ends early, with: cifar-lab train --resume " in stderr
