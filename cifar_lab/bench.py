"""Time-to-accuracy benchmark of the presets on one data set, and the loop's throughput against a bare step."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .bench_stats import (
    format_paired_differences,
    format_seed_summary,
    paired_differences,
    parse_seeds,
    row_label,
    seed_summary,
)
from .budget import Plan as BudgetPlan
from .budget import plan as plan_budget
from .config import PRESETS, TrainConfig, preset
from .data import CifarData, load_data
from .devices import (
    autocast,
    cpu_has_fast_bf16,
    describe,
    freed_memory_kept,
    resolve_device,
    resolve_precision,
    set_threads,
)
from .events import EpochEnd, Event, Finished
from .models import InitFromData, build_model
from .optim import build_optimizer
from .preprocess import normalize
from .train import train

DEFAULT_PRESETS = ("tutorial", "improved", "classroom")
THROUGHPUT_IMAGES = 10_240  # training images per throughput measurement: 20 steps at batch 512
# Alternating rounds of each side. One round moves by up to 7 % on a shared machine; with two, the best-of ratio
# read 90.1 %, 96.4 % and 100.1 % in three runs in a row.
THROUGHPUT_ROUNDS = 5
Progress = Callable[[str], None]


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: CPU model, cores, accelerator, library versions."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    # The model name alone ("AMD EPYC" in a VM) hides what decides the CPU's speed here: its vector unit and bf16.
    info = {
        "cpu": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": cpu_has_fast_bf16(),
        "cores": cores,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """e.g. "AMD EPYC (family 26, model 2)": a VM's bare model name tells Zen 3, 4 and 5 apart only by these."""
    fallback = platform.processor() or platform.machine()
    try:
        first_cpu = cpuinfo.read_text().split("\n\n")[0]
    except OSError:
        return fallback
    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in first_cpu.splitlines())}
    name = fields.get("model name") or fallback
    if "cpu family" in fields and "model" in fields:
        return f"{name} (family {fields['cpu family']}, model {fields['model']})"
    return name


@dataclass(frozen=True)
class Variant:
    """A preset trained with some fields changed, as `bench --variant 'best --epochs 13'` asks: a row of its own."""

    preset: str
    flags: str  # the training flags as given, e.g. "--epochs 13 --lowres-epochs 4"; the table shows them
    overrides: dict[str, Any] = field(default_factory=dict)


def run_benchmark(
    data_source: str | None,
    presets: Sequence[str] | None = None,
    full: bool = False,
    *,
    data: CifarData | None = None,
    progress: Progress | None = None,
    overrides: dict[str, Any] | None = None,
    seeds: Sequence[int] = (),
    variants: Sequence[Variant] = (),
) -> list[dict[str, Any]]:
    """Train each preset, then each variant, in turn on the same data; one row per run (see `print_table` for the
    columns).

    presets: names from config.PRESETS (default: tutorial, improved, classroom, plus best when `full`).
    overrides: config fields changed in every preset and variant (e.g. a smaller width for a quick check).
    seeds: train everything once per seed; empty = once, with each one's own seed. Every preset and variant trains
    on a seed before any trains on the next, so runs to compare run side by side, and a benchmark stopped early
    still holds whole seeds.
    """
    names = tuple(presets) if presets else DEFAULT_PRESETS + (("best",) if full else ())
    unknown = [n for n in names + tuple(v.preset for v in variants) if n not in PRESETS]
    if unknown:
        raise ValueError(f"unknown preset(s) {', '.join(unknown)}; choose from: {', '.join(PRESETS)}")
    _refuse_seed_clash(variants, seeds)
    entries = [Variant(name, "") for name in names] + list(variants)
    data = data if data is not None else load_data(data_source)
    say = progress or (lambda line: None)
    rows = []
    for seed in seeds or (None,):
        for entry in entries:
            config = preset(
                entry.preset, **{**(overrides or {}), **entry.overrides, **({} if seed is None else {"seed": seed})}
            )
            label = row_label({"preset": entry.preset, "flags": entry.flags})
            say(
                f"{label}: {config.arch} width {config.width}, {config.epochs} epoch(s), batch {config.batch_size}, "
                f"seed {config.seed}"
            )
            started, budget = time.perf_counter(), config.minutes * 60
            chosen = plan_budget(config, data, resolve_device(config.device)) if budget else None
            if chosen is not None:
                say(f"  {label}: {chosen.summary()}")
                config = chosen.config
            result = train(config, data, on_event=_progress_listener(label, say))
            wall = time.perf_counter() - started
            rows.append(
                {
                    "preset": entry.preset,
                    "flags": entry.flags,
                    "seed": config.seed,
                    "arch": config.arch,
                    "epochs": result.epochs_done,
                    "status": result.status,
                    "train_seconds": round(result.train_seconds, 3),
                    "test_accuracy": result.test_accuracy,
                    "images_per_s": round(result.images_per_s, 1),
                    "device": result.device,
                    **(_budget_columns(chosen, wall) if chosen is not None else {}),
                }
            )
            if chosen is not None:
                say(f"  {label}: measuring + run {wall:.1f} s of {budget:.0f} s ({wall / budget - 1:+.1%})")
    return _with_tutorial_ratios(rows)


def _budget_columns(chosen: BudgetPlan, wall_s: float) -> dict[str, Any]:
    """A budgeted run's row: its budget, what it chose (as flags), the measuring, and measuring + run against the
    budget (overshoot > 0 when it took longer)."""
    return {
        "budget_seconds": chosen.budget_s,
        "chosen": chosen.command(),
        "width": chosen.config.width,
        "measured_seconds": round(chosen.measured_s, 3),
        "predicted_seconds": round(chosen.predicted_s, 3),
        "wall_seconds": round(wall_s, 3),
        "overshoot": round(wall_s / chosen.budget_s - 1, 4),
    }


def _refuse_seed_clash(variants: Sequence[Variant], seeds: Sequence[int]) -> None:
    """Called by main before the data loads, and by run_benchmark for callers that skip main."""
    clashing = [f"{v.preset} {v.flags}" for v in variants if "seed" in v.overrides]
    if seeds and clashing:
        raise ValueError(f"--variant {clashing[0]!r} sets its own seed; leave --seed out of it when --seeds is given")


def _progress_listener(name: str, say: Progress) -> Callable[[Event], None]:
    def listen(event: Event) -> None:
        if isinstance(event, EpochEnd):
            say(f"  {name} epoch {event.epoch}/{event.epochs}: test {event.test_acc:.1%} at {event.elapsed_s:.0f}s")
        elif isinstance(event, Finished):
            say(f"  {name} done: {event.test_accuracy:.2%} in {event.train_seconds:.1f}s")

    return listen


def _with_tutorial_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add seconds_vs_tutorial (time ratio) and points_vs_tutorial (accuracy gain, percentage points), each against
    the tutorial run of the same seed."""
    tutorials = {r["seed"]: r for r in rows if row_label(r) == "tutorial" and r["test_accuracy"] is not None}
    for r in rows:
        base = tutorials.get(r["seed"])
        if base is None or r["test_accuracy"] is None:  # no tutorial run of this seed, or this run has no accuracy
            r["seconds_vs_tutorial"] = r["points_vs_tutorial"] = None
            continue
        timed = base["train_seconds"] > 0  # a tiny run can round to 0.000 s
        r["seconds_vs_tutorial"] = round(r["train_seconds"] / base["train_seconds"], 2) if timed else None
        r["points_vs_tutorial"] = round(100 * (r["test_accuracy"] - base["test_accuracy"]), 1)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The benchmark rows as a Markdown table (what docs/benchmarks.md shows)."""
    seeded = len({r.get("seed") for r in rows}) > 1  # a seed column only when the seeds differ
    head = "| preset | epochs | seconds | test accuracy | images/s | time vs tutorial | accuracy vs tutorial |"
    lines = [
        head.replace("| epochs", "| seed | epochs") if seeded else head,
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if seeded else ""),
    ]
    budgeted = any("budget_seconds" in r for r in rows)
    if budgeted:
        lines[0] += " budget (s) | chosen | measuring + run (s) | vs budget |"
        lines[1] += "---:|---|---:|---:|"
    for r in rows:
        acc = f"{r['test_accuracy']:.2%}" if r["test_accuracy"] is not None else r["status"]
        ratio = f"{r['seconds_vs_tutorial']:.2f}x" if r.get("seconds_vs_tutorial") is not None else "-"
        gain = f"{r['points_vs_tutorial']:+.1f} pts" if r.get("points_vs_tutorial") is not None else "-"
        seed = f" {r['seed']} |" if seeded else ""
        line = (
            f"| {row_label(r)} |{seed} {r['epochs']} | {r['train_seconds']:.1f} | {acc} | "
            f"{r['images_per_s']:,.0f} | {ratio} | {gain} |"
        )
        if budgeted and "budget_seconds" in r:
            line += f" {r['budget_seconds']:.0f} | `{r['chosen']}` | {r['wall_seconds']:.1f} | {r['overshoot']:+.1%} |"
        elif budgeted:
            line += " - | - | - | - |"
        lines.append(line)
    return "\n".join(lines)


def print_table(rows: list[dict[str, Any]], file: Any = None) -> None:
    print(format_table(rows), file=file or sys.stdout)


# --- throughput: the real loop against a bare forward + backward + step on tensors already in memory --------------


def bare_images_per_s(config: TrainConfig, data: CifarData, steps: int) -> float:
    """images/s of `steps` plain training steps of the config's model, optimizer and precision on one fixed batch
    (normalised, channels_last, on the device): what the loop would reach with free data and bookkeeping."""
    device = resolve_device(config.device)
    dtype = resolve_precision(config.precision, device)
    torch.manual_seed(config.seed)
    model = build_model(config, len(data.classes)).to(device).to(memory_format=torch.channels_last)
    x = normalize(data.train_x[: config.batch_size].to(device), config.normalize)
    x = x.contiguous(memory_format=torch.channels_last)
    y = data.train_y[: config.batch_size].to(device)
    if isinstance(model, InitFromData):
        model.init_from_data(x)
    optimizer = build_optimizer(model, config)
    model.train()
    with freed_memory_kept(enabled=device.type == "cpu"):  # allocate as train() does
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            loss = bare_step(model, optimizer, x, y, config, device, dtype)
        loss.item()  # wait for the last step on asynchronous devices
        _sync(device)
        seconds = time.perf_counter() - start  # before the block hands the memory back
    return steps * len(x) / seconds


def bare_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig,
    device: torch.device,
    dtype: torch.dtype | None,
) -> torch.Tensor:
    """One training step on a batch already normalised and on the device, as the loop takes it; returns the loss
    without waiting for it."""
    with autocast(device, dtype):
        logits = model(x)
    loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_throughput(
    data: CifarData,
    preset_name: str = "classroom",
    *,
    images: int = THROUGHPUT_IMAGES,
    repeats: int = THROUGHPUT_ROUNDS,
    progress: Progress | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Loop vs bare images/s for one preset (plus config `overrides`), measured alternately `repeats` times. Two
    ratios: the best loop round over the best bare one (discounts other programs on a shared machine), and the
    median of each round's loop/bare (a round's pair ran back to back, so a slow spell moves both). The loop trains
    one epoch on the first `images` images."""
    config = preset(preset_name, **{"epochs": 1, "eval_subset": min(500, len(data.test_x)), **overrides})
    subset = data.subset(n_train=min(images, len(data.train_x)), n_test=min(500, len(data.test_x)))
    steps = max(1, len(subset.train_x) // config.batch_size)
    say = progress or (lambda line: None)
    bare, loop = [], []
    for i in range(repeats):
        set_threads(config.threads)
        bare.append(bare_images_per_s(config, subset, steps))
        loop.append(train(config, subset).images_per_s)
        say(f"  round {i + 1}: bare {bare[-1]:,.0f} img/s, loop {loop[-1]:,.0f} img/s")
    device = resolve_device(config.device)
    return {
        "preset": preset_name,
        "device": describe(device, resolve_precision(config.precision, device)),
        "batch_size": config.batch_size,
        "steps": steps,
        "bare_images_per_s": [round(v, 1) for v in bare],
        "loop_images_per_s": [round(v, 1) for v in loop],
        "loop_vs_bare": round(max(loop) / max(bare), 3),
        "loop_vs_bare_median": round(statistics.median(lo / ba for lo, ba in zip(loop, bare)), 3),
    }


def measure_data_load(data_source: str | None) -> dict[str, Any]:
    """Seconds to load the data: decoding into an empty cache, reading that cache in this process, and in a fresh
    process (import included: what `python -m cifar_lab train` pays before training starts)."""
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        data = load_data(data_source, cache_dir=cache)
        decode = time.perf_counter() - start
        start = time.perf_counter()
        load_data(data_source, cache_dir=cache)
        cached = time.perf_counter() - start
        fresh = _fresh_process_load(data_source, cache)
    return {
        "source": data.source,
        "images": len(data.train_x) + len(data.test_x),
        "decode_seconds": round(decode, 2),
        "cached_seconds": round(cached, 2),
        "fresh_process_seconds": round(fresh, 2),
    }


def _fresh_process_load(data_source: str | None, cache: str) -> float:
    code = (
        "import time; t = time.perf_counter(); from cifar_lab.data import load_data; "
        f"load_data({data_source!r}, cache_dir={cache!r}); print(time.perf_counter() - t)"
    )
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def format_throughput(report: dict[str, Any]) -> str:
    t, d = report["throughput"], report["data_load"]
    return "\n".join(
        [
            f"training loop vs bare step ({t['preset']}, batch {t['batch_size']}, {t['device']}): "
            f"{max(t['loop_images_per_s']):,.0f} vs {max(t['bare_images_per_s']):,.0f} img/s = {t['loop_vs_bare']:.1%} "
            f"(best rounds); median of {len(t['loop_images_per_s'])} paired rounds {t['loop_vs_bare_median']:.1%}",
            f"data load ({d['images']:,} images): decode {d['decode_seconds']:.1f}s, "
            f"from cache {d['cached_seconds']:.2f}s in-process, {d['fresh_process_seconds']:.2f}s in a fresh process",
        ]
    )


def main(args: argparse.Namespace) -> int:
    """`python -m cifar_lab bench`: print the table (or the throughput report) and write it as JSON."""
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731 - progress apart from the table
    report: dict[str, Any] = {"machine": machine_info()}
    seeds = parse_seeds(args.seeds) if getattr(args, "seeds", None) else ()  # before the data: fail fast
    variants = getattr(args, "variants", None) or ()
    for flag, given in (("--seeds", seeds), ("--variant", variants)):
        if given and args.throughput:
            raise ValueError(f"{flag} applies to the time-to-accuracy table; run --throughput without it")
    _refuse_seed_clash(variants, seeds)
    if args.throughput:
        data = load_data(args.data)
        report["throughput"] = measure_throughput(data, progress=say)
        report["data_load"] = measure_data_load(args.data)
        print(format_throughput(report))
    else:
        data = load_data(args.data)
        presets = [p.strip() for p in args.presets.split(",") if p.strip()] if args.presets else None
        report["data"] = data.source
        report["rows"] = run_benchmark(
            args.data, presets, full=args.full, data=data, progress=say, seeds=seeds, variants=variants
        )
        print_table(report["rows"])
        if len(seeds) > 1:
            report["seed_summary"] = seed_summary(report["rows"])
            print("\n" + format_seed_summary(report["seed_summary"]))
        pairs = paired_differences(report["rows"])
        if pairs:
            report["paired_differences"] = pairs
            print("\n" + format_paired_differences(pairs))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2) + "\n")
        say(f"wrote {args.json_path}")
    return 0
