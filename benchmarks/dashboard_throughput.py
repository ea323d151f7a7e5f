"""Training images/s: the CLI path (as `cifar_lab train`, in this thread) vs the dashboard's (TrainingJob + live view).

The dashboard path runs the job on its worker thread while this thread does what the Train page's fragment
does once a second: take a snapshot, build both plotly figures and serialise them to JSON.

    python benchmarks/dashboard_throughput.py                      # classroom preset on $CIFAR_LAB_DATA / ./data
    python benchmarks/dashboard_throughput.py --data synthetic --preset improved --epochs 1 --repeats 3
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from cifar_lab.cli import ProgressPrinter
from cifar_lab.config import PRESETS, TrainConfig, preset
from cifar_lab.dashboard import plots
from cifar_lab.dashboard.jobs import JobManager
from cifar_lab.data import CifarData, load_data, synthetic_data
from cifar_lab.runner import TrainingRun, new_run
from cifar_lab.runs import RunStore

REFRESH_S = 1.0  # the Train page's st.fragment(run_every=1.0)


def cli_path(config: TrainConfig, data: CifarData, folder: Path) -> float:
    """images/s of the run as `python -m cifar_lab train` does it: run store, progress listener, checkpoints."""
    store = RunStore(folder / "cli.db")
    run = TrainingRun(
        new_run(config, folder=folder, store=store, name="cli", data_source="benchmark"), data, store=store
    )
    return run.run(on_event=ProgressPrinter(io.StringIO()), stop=threading.Event()).images_per_s


def dashboard_path(config: TrainConfig, data: CifarData, folder: Path) -> tuple[float, list[float]]:
    """images/s of the run as the dashboard does it, and the seconds each live redraw took meanwhile."""
    job = JobManager(folder).start(config, data=data, source="benchmark", name="dashboard")
    redraws = []
    while not job.join(timeout=REFRESH_S):
        t0 = time.perf_counter()
        snap = job.snapshot()
        plots.loss_figure(snap.losses, snap.epochs).to_json()
        plots.accuracy_figure(snap.epochs).to_json()
        redraws.append(time.perf_counter() - t0)
    if job.result is None or job.result.status != "completed":
        raise SystemExit(f"dashboard run did not complete: {job.snapshot().message}")
    return job.result.images_per_s, redraws


def measure_pair(config: TrainConfig, data: CifarData, folder: Path, dashboard_first: bool):
    """One CLI run and one dashboard run back to back; the order alternates so drifting load hits both alike."""
    if dashboard_first:
        dash, redraws = dashboard_path(config, data, folder)
        return cli_path(config, data, folder), dash, redraws
    cli = cli_path(config, data, folder)
    return (cli, *dashboard_path(config, data, folder))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data source (default: $CIFAR_LAB_DATA, else ./data)")
    parser.add_argument("--preset", default="classroom", choices=list(PRESETS))
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    parser.add_argument(
        "--train-images",
        type=int,
        default=None,
        help="use the first N training images (with --data synthetic: generate N)",
    )
    parser.add_argument("--device", default=None, help="override the preset's device (auto, cpu, cuda, mps)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per path, interleaved (median reported)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    overrides = {"epochs": args.epochs, "device": args.device}
    config = preset(args.preset, **{k: v for k, v in overrides.items() if v is not None})
    if args.data == "synthetic" and args.train_images:
        data = synthetic_data(n_train=args.train_images)
    else:
        data = load_data(args.data)
        data = data.subset(n_train=args.train_images) if args.train_images else data
    print(
        f"{args.preset} preset, {config.epochs} epoch(s), device {config.device}, "
        f"{len(data.train_y):,} training images, {data.source}"
    )
    cli, dash, ratios, redraws = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        warmup = config.replace(epochs=1)
        TrainingRun(
            new_run(warmup, folder=Path(tmp), name="warmup"), data.subset(n_train=2 * config.batch_size, n_test=100)
        ).run()  # first-call costs (kernel selection, allocator) left out
        for i in range(args.repeats):
            c, d, r = measure_pair(config, data, Path(tmp), dashboard_first=i % 2 == 1)
            cli.append(c)
            dash.append(d)
            ratios.append(d / c)
            redraws.extend(r)
            print(f"  pair {i + 1}: cli {c:,.0f} img/s, dashboard {d:,.0f} img/s, ratio {d / c:.3f} ({len(r)} redraws)")
    report(args.repeats, cli, dash, ratios, redraws)


def report(repeats: int, cli: list[float], dash: list[float], ratios: list[float], redraws: list[float]) -> None:
    print(f"\n| path | images/s (median of {repeats}) |\n|---|---:|")
    print(f"| CLI path (as `cifar_lab train`) | {statistics.median(cli):,.0f} |")
    print(f"| dashboard (TrainingJob + 1 Hz live view) | {statistics.median(dash):,.0f} |")
    print(
        f"| ratio dashboard / CLI, median of pairs (min..max) | {statistics.median(ratios):.3f} "
        f"({min(ratios):.3f}..{max(ratios):.3f}) |"
    )
    if redraws:
        ms = 1000 * statistics.median(redraws)
        print(f"| live view work per redraw (median) | {ms:.1f} ms = {ms / 10 / REFRESH_S:.1f} % of one core |")


if __name__ == "__main__":
    main()
