"""The pieces benchmarks/class_load.py stands on: the server, a finished class's leaderboard, a photo, the machine."""

from __future__ import annotations

import io
import os
import platform
import random
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from PIL import Image

from cifar_lab.config import preset
from cifar_lab.data import SYNTHETIC, synthetic_data
from cifar_lab.runs import RunStore

ROOT = Path(__file__).resolve().parents[1]


class Server:
    """One `streamlit run dashboard.py` on 127.0.0.1, killed (with anything it started) by stop()."""

    def __init__(self, runs: Path, data: str, key: str, log: Path, app: Path = ROOT) -> None:
        """app: the checkout whose dashboard.py to serve (its .streamlit/config.toml applies)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "CIFAR_LAB_DATA": data,
            "CIFAR_LAB_RUNS": str(runs),
            "CIFAR_LAB_RUNS_DB": str(runs / "cifar_lab.db"),
            "CIFAR_LAB_TEACHER_KEY": key,
        }
        options = {"headless": "true", "port": str(self.port), "address": "127.0.0.1", "fileWatcherType": "none"}
        cmd = [sys.executable, "-m", "streamlit", "run", str(app / "dashboard.py")]
        cmd += [arg for name, value in options.items() for arg in (f"--server.{name}", value)]
        cmd += ["--browser.gatherUsageStats", "false"]
        self.log = log
        with open(log, "w") as out:  # a file, not a pipe that nobody reads
            self.proc = subprocess.Popen(cmd, cwd=app, env=env, stdout=out, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited early:\n{self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as reply:
                    if reply.read().strip() == b"ok":
                        return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"streamlit did not answer at {self.url} within {timeout} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed_leaderboard(runs: Path, count: int, seed: int = 0) -> None:
    """`count` finished runs of earlier participants, with varied settings, so the leaderboard has rows and scatters."""
    runs.mkdir(parents=True, exist_ok=True)
    store, rng = RunStore(runs / "cifar_lab.db"), random.Random(seed)
    for i in range(count):
        lr, epochs = rng.choice((0.25, 0.5, 0.75, 1.0)), rng.choice((2, 3, 4, 6))
        run_id = store.create_run(
            preset("classroom", lr=lr, epochs=epochs), f"run {i}", owner=f"earlier-{i}", preset="classroom"
        )
        seconds = 40.0 * epochs * rng.uniform(0.9, 1.1)
        accuracy = 0.8 + 0.01 * epochs - 0.05 * abs(lr - 0.75) + rng.uniform(-0.01, 0.01)
        metrics = {"test_accuracy": accuracy, "train_seconds": seconds, "images_per_s": 50_000 * epochs / seconds}
        store.finish(run_id, "completed", metrics=metrics)


def picture_png(data: str, i: int) -> bytes:
    """The i-th participant's photo: a test image of the data in use (each its own, classes taken in turn), enlarged
    as a phone's photo would be. Different pictures: the explanations Classify shows are cached per picture."""
    if data == SYNTHETIC:
        pixels = synthetic_data(n_train=10, n_test=100).test_x[i % 100].permute(1, 2, 0).numpy()
        image = Image.fromarray(pixels)
    else:
        classes = sorted(p for p in (Path(data) / "test").iterdir() if p.is_dir())
        image = Image.open(sorted(classes[i % len(classes)].iterdir())[i // len(classes)])
    buf = io.BytesIO()
    image.convert("RGB").resize((480, 480), Image.Resampling.BICUBIC).save(buf, "PNG")
    return buf.getvalue()


def machine() -> dict[str, object]:
    """What ran it: the CPU's name, family and model, cores and memory; the load averages of the moment."""
    info: dict[str, object] = {"cores": os.cpu_count(), "python": platform.python_version()}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key in ("model name", "cpu family", "model") and key not in info:
            info[key] = value
    info["memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return info


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
