"""pyproject.toml and the requirements files agree, and a built wheel carries the shipped model and the command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from cifar_lab import paths

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = paths.PACKAGE_DIR.parent
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "cifar_lab", "cifar_lab_ui")  # what a wheel is built from
SHIPPED_IN_WHEEL = f"cifar_lab/pretrained/{paths.SHIPPED_MODEL}"


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def requirements(name: str) -> list[str]:
    """The requirement lines of a requirements file, without comments, `-r` includes or spaces."""
    lines = (line.split("#")[0].replace(" ", "") for line in (REPO / name).read_text().splitlines())
    return [line for line in lines if line and not line.startswith("-r")]


def test_requirements_txt_is_the_base_plus_the_dashboard_extra_with_the_same_pins():
    meta = project()
    declared = meta["dependencies"] + meta["optional-dependencies"]["dashboard"]
    assert sorted(requirements("requirements.txt")) == sorted(declared)
    assert "torch==2.14.1" in meta["dependencies"] and "torchvision==0.29.1" in meta["dependencies"]


def test_requirements_dev_txt_adds_the_test_and_dev_extras():
    extras = project()["optional-dependencies"]
    tools = [r for r in extras["test"] + extras["dev"] if not r.startswith("cifar-lab[")]
    assert sorted(requirements("requirements-dev.txt")) == sorted(tools)
    assert "-r requirements.txt" in (REPO / "requirements-dev.txt").read_text()
    assert "requirements-dev.txt" in (REPO / "scripts" / "test.sh").read_text()


def test_the_console_script_is_the_cli_s_main():
    assert project()["scripts"] == {"cifar-lab": "cifar_lab.cli:main"}
    assert not (REPO / "pytest.ini").exists()  # its settings live in pyproject.toml now


def build_wheel(dest: Path) -> Path:
    """A wheel of a copy of the sources (the build writes build/ and *.egg-info where it runs); no download."""
    pytest.importorskip("setuptools")
    src = dest / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, src / name)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(src),
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(dest / "dist"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    [wheel] = (dest / "dist").glob("cifar_lab-*.whl")
    return wheel


def test_the_wheel_carries_the_shipped_model_its_card_and_the_command(tmp_path):
    with zipfile.ZipFile(build_wheel(tmp_path)) as wheel:
        names = set(wheel.namelist())
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        console = wheel.read(entry_points).decode()
        shipped = wheel.read(SHIPPED_IN_WHEEL)
    assert {
        SHIPPED_IN_WHEEL,
        SHIPPED_IN_WHEEL.replace(".pth", ".md"),
        "cifar_lab/paths.py",
        "cifar_lab/dashboard/ui_state.py",
        "cifar_lab_ui/navigation.py",
    } <= names
    assert shipped == paths.shipped_model().read_bytes()
    assert "cifar-lab = cifar_lab.cli:main" in console
    assert not any(n.startswith(("tests/", "pages/")) for n in names)


@pytest.mark.slow
def test_an_installed_wheel_finds_its_shipped_model_from_any_folder(tmp_path):
    """`pip install` (not editable) into a fresh venv that borrows this one's torch; then the console script."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "borrowed.pth").write_text(sysconfig.get_path("purelib") + "\n")  # torch etc., not cifar_lab
    wheel = build_wheel(tmp_path)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        timeout=300,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIFAR_LAB_") and k != "PYTHONPATH"}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    work = tmp_path / "elsewhere"
    work.mkdir()

    def run(*argv: str | Path) -> subprocess.CompletedProcess:
        return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300, cwd=work, env=env)

    where = run(python, "-c", "from cifar_lab import paths; print(paths.shipped_model()); print(paths.runs_dir())")
    shipped, runs = map(Path, where.stdout.split())
    assert shipped.is_relative_to(site) and shipped.read_bytes() == paths.shipped_model().read_bytes()
    assert runs == tmp_path / "xdg" / "cifar_lab" / "runs"
    helped = run(venv / "bin" / "cifar-lab", "--help")
    assert helped.returncode == 0 and helped.stdout.startswith("usage: cifar-lab ")
    bogus = run(venv / "bin" / "cifar-lab", "train", "--bogus")
    assert bogus.returncode == 2 and "(see `cifar-lab train --help`)" in bogus.stderr
    Image.new("RGB", (32, 32), (40, 90, 200)).save(work / "blue.png")
    predicted = run(venv / "bin" / "cifar-lab", "predict", "fastnet-cifar10", "blue.png", "--top", "1")
    assert predicted.returncode == 0 and predicted.stdout.startswith("blue.png: "), predicted.stderr
