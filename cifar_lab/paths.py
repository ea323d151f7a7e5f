"""Where the lab finds its shipped models and keeps its runs, whatever the working directory."""

from __future__ import annotations

import os
from pathlib import Path

ENV_RUNS = "CIFAR_LAB_RUNS"  # overrides the default runs folder
ENV_MODELS = "CIFAR_LAB_MODELS"  # overrides PRETRAINED_DIR
PACKAGE_DIR = Path(__file__).resolve().parent
PRETRAINED_DIR = PACKAGE_DIR / "pretrained"  # package data: installed with the code, read-only there
SHIPPED_MODEL = "fastnet-cifar10.pth"  # the pretrained default preferred among the shipped models


def source_checkout() -> Path | None:
    """The checkout's root when the package runs from one (dashboard.py beside the package), else None."""
    root = PACKAGE_DIR.parent
    return root if (root / "dashboard.py").is_file() else None


def user_data_dir() -> Path:
    """$XDG_DATA_HOME/cifar_lab, else ~/.local/share/cifar_lab: a per-user folder an installed package may write."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base).expanduser() / "cifar_lab"


def runs_dir() -> Path:
    """Env CIFAR_LAB_RUNS, else runs/ in the source checkout, else <user_data_dir()>/runs.

    The dashboard's jobs, `train --out` and the run history all default to this one folder.
    """
    if given := os.environ.get(ENV_RUNS):
        return Path(given).expanduser()
    root = source_checkout()
    return root / "runs" if root is not None else user_data_dir() / "runs"


def models_dir() -> Path:
    """Env CIFAR_LAB_MODELS, else the package's pretrained/ folder: shipped and hand-copied checkpoints."""
    given = os.environ.get(ENV_MODELS)
    return Path(given).expanduser() if given else PRETRAINED_DIR


def shipped_model() -> Path:
    """The pretrained model installed with the package (present whatever CIFAR_LAB_MODELS says)."""
    return PRETRAINED_DIR / SHIPPED_MODEL


def checkpoint_path(text: str) -> str:
    """A checkpoint argument: a file path as given, or the name of a shipped model (`fastnet-cifar10`).

    Names are looked up in models_dir(), then PRETRAINED_DIR. A path that exists, or that has a folder in it, is
    kept as it is, so an error about it names what the user typed.
    """
    if Path(text).exists() or Path(text).name != text:
        return text
    for folder in dict.fromkeys((models_dir(), PRETRAINED_DIR)):
        for name in (text, f"{text}.pth"):
            if (folder / name).is_file():
                return str(folder / name)
    return text
