"""Benchmark runs over several seeds: the --seeds list, the accuracy spread between seeds, variants against presets."""

from __future__ import annotations

import statistics
from typing import Any

MAX_SEED = 2**31 - 1  # the config's own limit, checked here before any preset has trained
MAX_SEEDS = 1000  # a typo such as 0-100000 should fail at once, not queue days of training


def parse_seeds(text: str) -> tuple[int, ...]:
    """Parse "0-4,7" into (0, 1, 2, 3, 4, 7): comma-separated seeds or inclusive ranges, each seed once, in order."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        low, dash, high = part.partition("-")
        digits = part.replace("-", "", 1)
        if not (digits.isascii() and digits.isdigit() and low) or (dash and (not high or int(high) < int(low))):
            raise ValueError(
                f"--seeds {text!r}: {part!r} is not a seed or a range like 0-4; "
                f"give whole numbers >= 0 separated by commas, e.g. 0-4,7"
            )
        first, last = int(low), int(high if dash else low)
        if last > MAX_SEED:
            raise ValueError(f"--seeds {text!r}: {last} is too large; seeds go up to {MAX_SEED}")
        if last - first + len(seeds) >= MAX_SEEDS:
            raise ValueError(f"--seeds {text!r} asks for more than {MAX_SEEDS} runs per preset; give fewer seeds")
        for seed in range(first, last + 1):
            if seed not in seeds:
                seeds.append(seed)
    return tuple(seeds)


def row_label(row: dict[str, Any]) -> str:
    """What a benchmark row trained: its preset, then the flags that changed it (rows from before flags lack them)."""
    return f"{row['preset']} {row['flags']}" if row.get("flags") else row["preset"]


def seed_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per preset (or variant) over its completed runs: accuracy mean, standard deviation between seeds, standard
    error of the mean (sd / sqrt(runs)), lowest and highest, and the mean and longest time. One run gives no spread
    (None)."""
    summary = []
    for name in dict.fromkeys(row_label(r) for r in rows):
        done = [r for r in rows if row_label(r) == name and r["test_accuracy"] is not None]
        accs, secs = [r["test_accuracy"] for r in done], [r["train_seconds"] for r in done]
        sd = statistics.stdev(accs) if len(accs) > 1 else None
        summary.append(
            {
                "preset": name,
                "runs": len(done),
                "seeds": [r["seed"] for r in done],
                "mean_accuracy": statistics.fmean(accs) if accs else None,
                "sd_accuracy": sd,
                "se_accuracy": sd / len(accs) ** 0.5 if sd is not None else None,
                "min_accuracy": min(accs, default=None),
                "max_accuracy": max(accs, default=None),
                "mean_seconds": round(statistics.fmean(secs), 1) if secs else None,
                "max_seconds": max(secs, default=None),
            }
        )
    return summary


def format_seed_summary(summary: list[dict[str, Any]]) -> str:
    """The per-preset spread over seeds as a Markdown table; accuracies in percent, spreads in points."""

    def points(value: float | None, unit: str = "") -> str:
        return f"{100 * value:.2f}{unit}" if value is not None else "-"

    def seconds(value: float | None) -> str:
        return f"{value:.1f}" if value is not None else "-"

    lines = [
        "| preset | runs | mean accuracy | sd (pts) | standard error (pts) | lowest | highest | mean s | longest s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary:
        lines.append(
            f"| {r['preset']} | {r['runs']} | {points(r['mean_accuracy'], '%')} | {points(r['sd_accuracy'])} | "
            f"{points(r['se_accuracy'])} | {points(r['min_accuracy'], '%')} | {points(r['max_accuracy'], '%')} | "
            f"{seconds(r['mean_seconds'])} | {seconds(r['max_seconds'])} |"
        )
    return "\n".join(lines)


def paired_differences(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each variant (a row with flags) against its plain preset, seed by seed: the accuracy difference and time ratio
    of every seed where both completed. Pairing removes what a seed does to both, which the spread between seeds
    would otherwise hide a small difference under."""
    plain = {(r["preset"], r["seed"]): r for r in rows if not r.get("flags") and r["test_accuracy"] is not None}
    pairs: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for r in rows:
        base = plain.get((r["preset"], r["seed"]))
        if r.get("flags") and base is not None and r["test_accuracy"] is not None:
            pairs.setdefault(row_label(r), []).append((r, base))
    result = []
    for label, matched in pairs.items():
        diffs = [r["test_accuracy"] - base["test_accuracy"] for r, base in matched]
        ratios = [r["train_seconds"] / base["train_seconds"] for r, base in matched if base["train_seconds"] > 0]
        result.append(
            {
                "variant": label,
                "against": matched[0][1]["preset"],
                "seeds": [r["seed"] for r, _ in matched],
                "mean_difference": statistics.fmean(diffs),
                "sd_difference": statistics.stdev(diffs) if len(diffs) > 1 else None,
                "higher": sum(d > 0 for d in diffs),
                "lower": sum(d < 0 for d in diffs),
                "mean_time_ratio": statistics.fmean(ratios) if ratios else None,
            }
        )
    return result


def format_paired_differences(pairs: list[dict[str, Any]]) -> str:
    """The variants against their presets as a Markdown table; differences in percentage points."""
    lines = [
        "| variant | against | seeds | accuracy difference (pts) | sd (pts) | higher / lower | time ratio |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for p in pairs:
        sd = f"{100 * p['sd_difference']:.2f}" if p["sd_difference"] is not None else "-"
        ratio = f"{p['mean_time_ratio']:.3f}x" if p["mean_time_ratio"] is not None else "-"
        lines.append(
            f"| {p['variant']} | {p['against']} | {len(p['seeds'])} | {100 * p['mean_difference']:+.2f} | "
            f"{sd} | {p['higher']} / {p['lower']} | {ratio} |"
        )
    return "\n".join(lines)
