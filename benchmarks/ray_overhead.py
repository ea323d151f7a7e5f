"""Ray's cost against the thread executor: the same classroom run, trained in this process and as a Ray task on a
local Ray instance, alternating which goes first; training images/s of each, and their ratio.

    python benchmarks/ray_overhead.py --pairs 2 --json benchmarks/results/ray_overhead_zen4.json

The run is classroom's recipe with its budget off (the same steps each time). Ray is started before the first pair,
and the data put in its object store once, as a dashboard does for a class: neither is in the runs' figures; their
seconds are printed apart.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from benchmarks.class_load_setup import machine  # noqa: E402
from cifar_lab import cluster  # noqa: E402
from cifar_lab.config import preset  # noqa: E402
from cifar_lab.data import load_data  # noqa: E402
from cifar_lab.executors import make_executor  # noqa: E402
from cifar_lab.runner import TrainingRun, new_run  # noqa: E402

NICENESS = "RAY_worker_niceness"  # Ray's own spelling: the raylet reads its settings as RAY_<name>


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10-jpeg"))
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=None, help="default: classroom's recipe")
    parser.add_argument("--json", default=None, help="also write the rows here")
    parser.add_argument(
        "--worker-niceness", type=int, default=None, help="Ray's worker priority (RAY_worker_niceness; Ray's own: 15)"
    )
    args = parser.parse_args()
    if args.worker_niceness is not None:  # read by the raylet that `connect` starts
        os.environ[NICENESS] = str(args.worker_niceness)
    config = preset("classroom", minutes=0.0, **({"epochs": args.epochs} if args.epochs else {}))
    data = load_data(args.data)
    started = time.perf_counter()
    cluster.connect("local")
    ray_up = time.perf_counter() - started
    executors = {"thread": make_executor("thread"), "ray": make_executor("ray", "local")}
    started = time.perf_counter()
    executors["ray"]._put(data)  # type: ignore[attr-defined]
    put_s = time.perf_counter() - started
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        for pair in range(args.pairs):
            order = ("thread", "ray") if pair % 2 == 0 else ("ray", "thread")
            for name in order:
                run = TrainingRun(new_run(config, folder=folder), data, executor=executors[name])
                wall = time.perf_counter()
                result = run.run(stop=threading.Event())
                wall = time.perf_counter() - wall
                rows.append(
                    dict(
                        pair=pair + 1,
                        executor=name,
                        first=order[0],
                        images_per_s=round(result.images_per_s, 1),
                        train_s=round(result.train_seconds, 1),
                        wall_s=round(wall, 1),
                        test_accuracy=result.test_accuracy,
                        node=run.node,
                    )
                )
                print(rows[-1], file=sys.stderr, flush=True)
    ratios = []
    niceness = os.environ.get(NICENESS, "Ray's default")
    print(f"classroom recipe, {config.epochs} epochs, {args.data}; Ray worker niceness {niceness}; {machine()}")
    print(f"Ray started in {ray_up:.1f} s; the data put in its object store in {put_s:.1f} s (once)\n")
    print("| pair | first | thread images/s | ray images/s | ratio | thread wall s | ray wall s |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for pair in range(1, args.pairs + 1):
        by = {r["executor"]: r for r in rows if r["pair"] == pair}
        ratio = by["ray"]["images_per_s"] / by["thread"]["images_per_s"]
        ratios.append(ratio)
        print(
            f"| {pair} | {by['ray']['first']} | {by['thread']['images_per_s']:,.0f} | {by['ray']['images_per_s']:,.0f} "
            f"| {ratio:.3f} | {by['thread']['wall_s']:.1f} | {by['ray']['wall_s']:.1f} |"
        )
    print(f"\nmedian ratio {statistics.median(ratios):.3f}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine(), "ray_start_s": ray_up, "put_s": put_s, "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
