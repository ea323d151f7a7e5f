"""The shipped model and the default runs folder: found the same way from any working directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from cifar_lab import paths
from cifar_lab.cli import build_parser
from cifar_lab.runs import default_db_path

REPO = paths.PACKAGE_DIR.parent
ENV_PATHS = (paths.ENV_RUNS, paths.ENV_MODELS, "CIFAR_LAB_RUNS_DB", "XDG_DATA_HOME")


@pytest.fixture
def no_path_env(monkeypatch):
    for name in ENV_PATHS:
        monkeypatch.delenv(name, raising=False)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the path overrides, with the checkout importable."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_PATHS}
    return {**env, "PYTHONPATH": str(REPO), **extra}


def test_in_the_checkout_runs_live_beside_the_package_and_the_shipped_model_inside_it(no_path_env):
    assert paths.source_checkout() == REPO and (REPO / "dashboard.py").is_file()
    assert paths.runs_dir() == REPO / "runs"
    assert paths.models_dir() == paths.PRETRAINED_DIR == REPO / "cifar_lab" / "pretrained"
    assert paths.shipped_model().is_file() and paths.shipped_model().with_suffix(".md").is_file()


def test_the_environment_overrides_both_folders(no_path_env, monkeypatch, tmp_path):
    monkeypatch.setenv(paths.ENV_RUNS, str(tmp_path / "my-runs"))
    monkeypatch.setenv(paths.ENV_MODELS, str(tmp_path / "my-models"))
    assert paths.runs_dir() == tmp_path / "my-runs" and paths.models_dir() == tmp_path / "my-models"
    assert paths.shipped_model().parent == paths.PRETRAINED_DIR  # the package's own copy stays where it is


def test_an_installed_package_keeps_its_runs_in_the_user_data_folder(no_path_env, monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "PACKAGE_DIR", tmp_path / "site-packages" / "cifar_lab")  # no dashboard.py beside it
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.source_checkout() is None
    assert paths.runs_dir() == tmp_path / "home" / ".local" / "share" / "cifar_lab" / "runs"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert paths.runs_dir() == tmp_path / "xdg" / "cifar_lab" / "runs"


def test_the_cli_and_the_run_history_default_to_the_same_runs_folder(no_path_env, monkeypatch, tmp_path):
    assert Path(build_parser().parse_args(["train"]).out) == paths.runs_dir()
    assert default_db_path() == paths.runs_dir() / "cifar_lab.db"
    monkeypatch.setenv(paths.ENV_RUNS, str(tmp_path))
    assert Path(build_parser().parse_args(["train"]).out) == tmp_path and default_db_path().parent == tmp_path


def test_a_shipped_model_s_name_stands_for_its_file(no_path_env, monkeypatch, tmp_path):
    shipped = str(paths.shipped_model())
    monkeypatch.chdir(tmp_path)
    assert paths.checkpoint_path("fastnet-cifar10") == shipped
    assert paths.checkpoint_path("fastnet-cifar10.pth") == shipped
    assert paths.checkpoint_path("nope") == "nope"  # the error then names what the user typed
    assert paths.checkpoint_path("sub/fastnet-cifar10.pth") == "sub/fastnet-cifar10.pth"  # a path is not a name
    (tmp_path / "fastnet-cifar10.pth").write_bytes(b"mine")
    assert paths.checkpoint_path("fastnet-cifar10.pth") == "fastnet-cifar10.pth"  # a file here comes first


def test_a_name_is_looked_up_in_the_models_folder_first(no_path_env, monkeypatch, tmp_path):
    (tmp_path / "mine.pth").write_bytes(b"x")
    monkeypatch.setenv(paths.ENV_MODELS, str(tmp_path))
    assert paths.checkpoint_path("mine") == str(tmp_path / "mine.pth")
    assert paths.checkpoint_path("fastnet-cifar10") == str(paths.shipped_model())  # still found


def test_another_working_directory_finds_the_same_places(no_path_env, tmp_path):
    code = (
        "import json; from cifar_lab import paths; from cifar_lab.cli import build_parser; "
        "from cifar_lab.runs import default_db_path; "
        "print(json.dumps([str(paths.runs_dir()), str(paths.models_dir()), str(paths.shipped_model()), "
        "str(default_db_path()), build_parser().parse_args(['train']).out]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=clean_env()
    )
    assert proc.returncode == 0, proc.stderr
    runs, models, shipped, db, out = map(Path, json.loads(proc.stdout))
    assert (runs, models, shipped) == (paths.runs_dir(), paths.models_dir(), paths.shipped_model())
    assert db == runs / "cifar_lab.db" and out == runs
    assert not (tmp_path / "runs").exists()


def test_predict_with_the_shipped_model_s_name_from_another_folder(tmp_path):
    Image.new("RGB", (32, 32), (40, 90, 200)).save(tmp_path / "blue.png")
    proc = subprocess.run(
        [sys.executable, "-m", "cifar_lab", "predict", "fastnet-cifar10", "blue.png", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=clean_env(),
    )
    assert proc.returncode == 0, proc.stderr
    [result] = json.loads(proc.stdout)
    assert result["image"] == "blue.png" and len(result["top"]) == 3
