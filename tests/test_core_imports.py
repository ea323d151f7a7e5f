"""The core package stands alone: importing any of it never pulls in streamlit; torch.load is always safe."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import cifar_lab

PACKAGE_DIR = Path(cifar_lab.__file__).parent
CORE = [
    "config",
    "events",
    "preprocess",
    "devices",
    "data",
    "augment",
    "models",
    "optim",
    "evaluate",
    "train",
    "runner",
    "run_files",
    "checkpoint",
    "inference",
    "cli",
    "runs",
    "resume",
    "processes",
    "explain",
    "summary",
    "paths",
    "dashboard.jobs",
    "dashboard.job_view",
    "dashboard.plots",
    "dashboard.ui_state",
    "dashboard.run_views",
    "dashboard.explain_view",
    "dashboard.leaderboard",
    "dashboard.setting_plots",
    "holdout",
]


def _modules() -> list[str]:
    """Every module of the package, subpackages included, as dotted names below cifar_lab."""
    found = pkgutil.walk_packages(cifar_lab.__path__, prefix="cifar_lab.")
    return [m.name.removeprefix("cifar_lab.") for m in found if not m.name.endswith("__main__")]


def test_core_modules_exist():
    present = set(_modules())
    missing = set(CORE) - present
    assert not missing, f"core modules missing: {sorted(missing)}"


def test_importing_every_module_never_imports_streamlit():
    modules = ["cifar_lab"] + [f"cifar_lab.{name}" for name in _modules()]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'streamlit' or m.startswith('streamlit.'))\n"
        "print('STREAMLIT' if bad else 'CLEAN', bad[:5])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=PACKAGE_DIR.parent
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("CLEAN"), f"importing {modules} loaded streamlit: {proc.stdout}"


def test_the_dashboard_pieces_load_pandas_whole_before_any_figure():
    """plotly reads pandas from sys.modules; one that another session's thread was still importing broke a figure."""
    code = "import sys, cifar_lab_ui\nprint(hasattr(sys.modules.get('pandas'), 'Series'))"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=PACKAGE_DIR.parent
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


def _torch_load_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
            if name == "load" and owner == "torch":
                yield node


def test_every_torch_load_uses_weights_only_true():
    offenders = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for call in _torch_load_calls(tree):
            ok = any(
                k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in call.keywords
            )
            if not ok:
                offenders.append(f"{path.name}:{call.lineno}")
    assert not offenders, f"torch.load without weights_only=True at {offenders}"


def test_every_module_opens_with_a_docstring():
    missing = [p.name for p in sorted(PACKAGE_DIR.rglob("*.py")) if not ast.get_docstring(ast.parse(p.read_text()))]
    assert not missing, f"modules without a docstring: {missing}"


def test_ray_is_imported_only_when_a_cluster_is_asked_for():
    """Ray is an optional install: the CLI, a run's life and the dashboard's queue start without it."""
    code = "import sys, cifar_lab.cli, cifar_lab.runner, cifar_lab.dashboard.jobs; print('ray' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE_DIR.parent
    )
    assert out.stdout.strip() == "False"
