"""What the first epoch's early test scores cost: their seconds against the run's training seconds.

    python benchmarks/early_scores.py                      # classroom's recipe on ../shared/data/cifar10-jpeg
    python benchmarks/early_scores.py --preset best --epochs 1

The run is the preset's recipe (its time budget off, so that the same steps train each time); train() leaves the
early scores' time out of the training time it reports, and each score says what it took.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from benchmarks.class_load_setup import machine  # noqa: E402
from cifar_lab.config import preset  # noqa: E402
from cifar_lab.data import load_data  # noqa: E402
from cifar_lab.events import EarlyScore, EpochEnd  # noqa: E402
from cifar_lab.train import EARLY_IMAGES, train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10-jpeg"))
    parser.add_argument("--preset", default="classroom")
    parser.add_argument("--epochs", type=int, default=None, help="default: the preset's recipe")
    args = parser.parse_args()
    config = preset(args.preset, minutes=0.0, **({"epochs": args.epochs} if args.epochs else {}))
    events: list = []
    result = train(config, load_data(args.data), on_event=events.append)
    early = [e for e in events if isinstance(e, EarlyScore)]
    first = next(e for e in events if isinstance(e, EpochEnd))
    spent = sum(e.seconds for e in early)
    print(f"{args.preset} recipe, {config.epochs} epoch(s), {args.data}; {machine()}\n")
    print(f"| when (epochs) | test accuracy on {EARLY_IMAGES} images | seconds |")
    print("|---:|---:|---:|")
    for e in early:
        print(f"| {e.epoch:.2f} | {e.test_acc:.1%} | {e.seconds:.3f} |")
    print(f"| 1.00 (epoch end, {config.eval_subset or 'all'} images) | {first.test_acc:.1%} | {first.eval_s:.3f} |")
    print(
        f"\nearly scores: {spent:.2f} s against {result.train_seconds:.1f} s of training "
        f"= {spent / result.train_seconds:.2%} of the run ({spent / first.seconds:.2%} of its first epoch); "
        f"final test accuracy {result.test_accuracy:.2%}"
    )


if __name__ == "__main__":
    main()
