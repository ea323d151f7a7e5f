"""How honest the time left is on a real run: every reading against the time the run really had left.

    python benchmarks/time_left.py --data ../shared/data/cifar10-jpeg                  # classroom
    python benchmarks/time_left.py --data ../shared/data/cifar10-jpeg --preset best --json out.json

Trains the preset through the same TrainingRun the CLI and the dashboard use, with a listener that reads
time_left.TimeLeft at every step event, as the Train page and the progress bar do, and notes the wall clock. When
the run has ended, each reading is compared with what truly remained (the end being when run() returned, the final
scores and the last save included). Prints, per tenth of the run, the worst error as a share of what remained and the
largest jump between two readings (from where the previous one pointed).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from cifar_lab.bench import machine_info  # noqa: E402
from cifar_lab.config import PRESETS, preset  # noqa: E402
from cifar_lab.data import load_data  # noqa: E402
from cifar_lab.events import Event, Step  # noqa: E402
from cifar_lab.runner import TrainingRun, new_run  # noqa: E402
from cifar_lab.time_left import TimeLeft  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="as `train --data` (default: CIFAR_LAB_DATA or CIFAR-10)")
    parser.add_argument("--preset", default="classroom", choices=list(PRESETS))
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    parser.add_argument("--minutes", type=float, default=None, help="a time budget instead")
    parser.add_argument("--json", default=None, help="also write every reading here")
    args = parser.parse_args()
    changes = {k: v for k, v in (("epochs", args.epochs), ("minutes", args.minutes)) if v is not None}
    config = preset(args.preset, **changes)
    data = load_data(args.data)
    readings: list[tuple[float, float, float]] = []  # (wall seconds since start, progress 0..1, seconds left read)
    clock = TimeLeft.for_data(config, len(data.test_y))  # it follows a time budget's choice itself

    def listen(event: Event) -> None:
        clock(event)
        if isinstance(event, Step):
            left = clock.seconds()
            if left is not None:
                readings.append((time.perf_counter() - started, event.step / event.total_steps, left))

    with tempfile.TemporaryDirectory() as folder:
        plan = new_run(config, folder=folder, store=None, data=data)
        started = time.perf_counter()
        result = TrainingRun(plan, data, listeners=(listen,)).run()
        end = time.perf_counter() - started
    rows = table(readings, end)
    info = machine_info()
    print(f"{info['cpu']}, {info['cores']} cores, {args.preset}: {result.status}, {end:.1f} s in all")
    print("| tenth of the run | readings | worst error, % of what remained | largest jump, % |")
    print("|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['tenth']} | {row['readings']} | {row['worst_error']:.1%} | {row['largest_jump']:.1%} |")
    if args.json:
        record = {"machine": info, "preset": args.preset, "end_s": end, "readings": readings}
        Path(args.json).write_text(json.dumps(record, indent=1))
    return 0


def table(readings: list[tuple[float, float, float]], end: float) -> list[dict]:
    """Per tenth of the run's wall time: the worst |read - true| / true, and the largest move of a reading away from
    where the one before pointed (its value less the time since), as a share of what remained."""
    rows = []
    for tenth in range(10):
        inside = [r for r in readings if tenth / 10 <= r[0] / end < (tenth + 1) / 10]
        before = [r for r in readings if r[0] / end < tenth / 10][-1:]
        errors = [abs(left - (end - t)) / (end - t) for t, _, left in inside if end - t > 0]
        seq = before + inside
        jumps = [abs(b[2] - (a[2] - (b[0] - a[0]))) / max(end - b[0], 1e-9) for a, b in itertools.pairwise(seq)]
        rows.append(
            {
                "tenth": f"{tenth * 10}-{tenth * 10 + 10} %",
                "readings": len(inside),
                "worst_error": max(errors, default=0.0),
                "largest_jump": max(jumps, default=0.0),
            }
        )
    return rows


if __name__ == "__main__":
    sys.exit(main())
