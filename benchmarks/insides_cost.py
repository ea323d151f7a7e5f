"""What the Train page's look inside the network costs: drawing it once per epoch, against the epoch it follows.

    python benchmarks/insides_cost.py                 # classroom and best on ../shared/data/cifar10-jpeg

Each preset's recipe trains one epoch (its time budget off); the insides are then drawn from that epoch's weights
as the page draws them (a fresh copy of the network, one thread), several times, and the median is taken.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from benchmarks.class_load_setup import machine  # noqa: E402
from cifar_lab.config import preset  # noqa: E402
from cifar_lab.dashboard.insides import SAMPLE_INDEX, insides  # noqa: E402
from cifar_lab.data import load_data  # noqa: E402
from cifar_lab.events import EpochEnd  # noqa: E402
from cifar_lab.train import train  # noqa: E402

DRAWS = 7


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10-jpeg"))
    parser.add_argument("--presets", default="classroom,best")
    args = parser.parse_args()
    data = load_data(args.data)
    image, label = data.test_x[SAMPLE_INDEX], int(data.test_y[SAMPLE_INDEX])
    print(f"{args.data}; {machine()}\n")
    print("| preset | width | epoch 1 (s) | insides, median of 7 (s) | share of the epoch |")
    print("|---|---:|---:|---:|---:|")
    for name in args.presets.split(","):
        config = preset(name, minutes=0.0, epochs=1, lowres_epochs=0)
        events: list = []
        train(config, data, on_event=events.append)
        epoch = next(e for e in events if isinstance(e, EpochEnd))
        times = []
        for _ in range(DRAWS):
            started = time.perf_counter()
            insides(config, epoch.state_dict, image, label, data.classes, epoch=1)
            times.append(time.perf_counter() - started)
        cost = statistics.median(times)
        print(f"| {name} | {config.width} | {epoch.seconds:.1f} | {cost:.3f} | {cost / epoch.seconds:.3%} |")


if __name__ == "__main__":
    main()
