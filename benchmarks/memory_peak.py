"""Measured peak memory of real training runs against cifar_lab.limits' estimate, one fresh process per run.

    python benchmarks/memory_peak.py "classroom --width 16 --batch-size 256" "tutorial --epochs 1"
    python benchmarks/memory_peak.py --calibration     # the table of docs/memory.md

Each run trains on generated images in a child process, which reports its resident memory once the data is made
("runtime": Python, PyTorch and the data) and its peak resident memory (VmHWM, reset at that point) when training
has ended. "run" is the difference, what the estimate claims: the process that checks has already paid for the
runtime. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from cifar_lab.cli import build_parser, config_from_args  # noqa: E402
from cifar_lab.limits import estimate_memory  # noqa: E402

CALIBRATION = [
    *(f"classroom --width {w} --batch-size {b} --epochs 1" for w in (16, 32, 64) for b in (256, 512, 2048)),
    "classroom --width 32 --batch-size 512 --epochs 1 --precision fp32",
    "best --epochs 2",
    "tutorial --epochs 1",
    "improved --epochs 2",
    "improved --epochs 1 --batch-size 1024",
    "classroom --arch resnet --width 32 --batch-size 256 --epochs 1",
    "classroom --arch resnet --width 32 --batch-size 256 --epochs 1 --precision fp32",
    "classroom --arch cnn --width 64 --batch-size 512 --epochs 1 --opt adam --lr 0.002",
]

CHILD = """
import json, sys, tempfile
from cifar_lab.config import TrainConfig
from cifar_lab.data import synthetic_data
from cifar_lab.runner import TrainingRun, new_run

def status(key):
    with open("/proc/self/status") as f:
        return int(f.read().split(key + ":")[1].split()[0]) * 1024  # kB
config = TrainConfig.from_dict(json.loads(sys.argv[1]))
data = synthetic_data(int(sys.argv[2]), int(sys.argv[3]))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak starts again from here: generating the data is not training
before = status("VmRSS")
with tempfile.TemporaryDirectory() as out:  # a checkpoint after every epoch, as `train` keeps
    result = TrainingRun(new_run(config, folder=out, data=data), data).run()
print(json.dumps({"before": before, "after": status("VmHWM"), "status": result.status}))
"""


def measure(config_dict: dict, n_train: int, n_test: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(config_dict), str(n_train), str(n_test)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=600,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", help="a preset, then `train`'s flags, in quotes")
    parser.add_argument("--calibration", action="store_true", help="the runs of docs/memory.md")
    parser.add_argument("--n-train", type=int, default=4096, help="generated training images (default 4096)")
    parser.add_argument("--n-test", type=int, default=1000, help="generated test images (default 1000)")
    parser.add_argument("--repeat", type=int, default=1, help="measure each run this many times (default 1)")
    args = parser.parse_args()
    print("| run | parameters | runtime, MB | run's peak, MB | estimate, MB | estimate / peak |")
    print("|---|---:|---:|---:|---:|---:|")
    for text in (CALIBRATION if args.calibration else []) + args.runs:
        words = text.split()
        config = config_from_args(build_parser().parse_args(["train", "--preset", words[0], *words[1:]]))
        estimate = estimate_memory(config, args.n_train, args.n_test)
        got = [measure(config.to_dict(), args.n_train, args.n_test) for _ in range(args.repeat)]
        peaks = [g["after"] - g["before"] for g in got]
        ratios = sorted({f"{estimate.total / peak:.2f}" for peak in peaks}, key=float)
        print(
            f"| `{text}` | {estimate.parameters:,} | {max(g['before'] for g in got) / 1e6:,.0f} "
            f"| {', '.join(f'{peak / 1e6:,.0f}' for peak in peaks)} | {estimate.total / 1e6:,.0f} "
            f"| {ratios[0] if len(ratios) == 1 else ratios[0] + '-' + ratios[-1]} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
