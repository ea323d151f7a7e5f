"""The benchmark: rows and ratios on tiny synthetic data, the table, the throughput report, the JSON file."""

from __future__ import annotations

import argparse
import json
import statistics

import pytest

from cifar_lab.bench import _cpu_model, format_table, format_throughput, main, measure_throughput, run_benchmark
from cifar_lab.bench_stats import (
    format_paired_differences,
    format_seed_summary,
    paired_differences,
    parse_seeds,
    seed_summary,
)
from cifar_lab.cli import EXIT_USER_ERROR, UserError, parse_variant
from cifar_lab.cli import main as cli_main
from cifar_lab.data import synthetic_data


@pytest.fixture(scope="module")
def tiny():
    return synthetic_data(n_train=64, n_test=32)


def test_rows_and_ratios_to_the_tutorial(tiny):
    rows = run_benchmark(None, ["tutorial", "classroom"], data=tiny, overrides={"width": 8})
    assert [r["preset"] for r in rows] == ["tutorial", "classroom"]
    assert all(r["status"] == "completed" and 0 <= r["test_accuracy"] <= 1 for r in rows)
    assert rows[0]["seconds_vs_tutorial"] == 1.0 and rows[0]["points_vs_tutorial"] == 0.0
    table = format_table(rows)
    assert table.splitlines()[0].startswith("| preset | epochs | seconds | test accuracy")
    assert len(table.splitlines()) == 4 and "| classroom |" in table


def test_a_preset_given_by_time_is_benchmarked_within_its_budget_and_the_table_says_what_it_chose(tiny):
    (row,) = run_benchmark(None, ["improved"], data=tiny, overrides={"minutes": 0.2})  # one width: little to time
    assert row["status"] == "completed" and row["budget_seconds"] == pytest.approx(12.0)
    assert row["chosen"].endswith("--minutes 0")  # the flags that repeat it without a budget
    assert row["wall_seconds"] >= row["train_seconds"] + row["measured_seconds"] - 0.01  # measuring counts in it
    assert row["overshoot"] == pytest.approx(row["wall_seconds"] / 12.0 - 1, abs=1e-3)
    plain = {k: v for k, v in row.items() if k not in ("budget_seconds", "chosen", "measured_seconds")}
    header, _, budgeted, unbudgeted = format_table([row, plain]).splitlines()
    assert header.endswith("| budget (s) | chosen | measuring + run (s) | vs budget |")
    assert f"| 12 | `{row['chosen']}` |" in budgeted and unbudgeted.endswith("| - | - | - | - |")


def test_unknown_preset_lists_the_valid_ones(tiny):
    with pytest.raises(ValueError, match="classroom"):
        run_benchmark(None, ["fastest"], data=tiny)


def test_throughput_report(tiny):
    report = measure_throughput(tiny, "classroom", images=64, repeats=3, width=8)
    bare, loop = report["bare_images_per_s"], report["loop_images_per_s"]
    assert len(bare) == len(loop) == 3 and min(bare + loop) > 0
    assert report["loop_vs_bare"] == pytest.approx(max(loop) / max(bare), rel=1e-2)
    # The median pairs each loop round with the bare round just before it, not the best with the best.
    ratios = sorted(lo / ba for lo, ba in zip(loop, bare))
    assert report["loop_vs_bare_median"] == pytest.approx(ratios[1], rel=1e-2)
    text = format_throughput(
        {
            "throughput": report,
            "data_load": {"images": 96, "decode_seconds": 0.1, "cached_seconds": 0.01, "fresh_process_seconds": 1.0},
        }
    )
    assert "median of 3 paired rounds" in text


def test_main_writes_json(tmp_path, tiny, monkeypatch):
    monkeypatch.setattr("cifar_lab.bench.load_data", lambda source: tiny)
    path = tmp_path / "bench.json"
    args = argparse.Namespace(data="synthetic", presets="tutorial", full=False, throughput=False, json_path=str(path))
    assert main(args) == 0
    report = json.loads(path.read_text())
    assert report["rows"][0]["preset"] == "tutorial" and "cpu" in report["machine"]
    assert report["machine"]["cpu_capability"] and isinstance(report["machine"]["native_bf16"], bool)
    assert "seed_summary" not in report


def test_the_cpu_is_named_with_its_family_and_model_which_tell_zen_generations_apart(tmp_path):
    two_cores = "".join(
        f"processor\t: {i}\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n"
        f"model name\t: AMD EPYC\nflags\t\t: fpu avx512_bf16\n\n"
        for i in (0, 1)
    )
    (tmp_path / "cpuinfo").write_text(two_cores)
    assert _cpu_model(tmp_path / "cpuinfo") == "AMD EPYC (family 26, model 2)"
    (tmp_path / "arm").write_text("processor\t: 0\nBogoMIPS\t: 50.00\n\n")
    assert _cpu_model(tmp_path / "arm")  # no model name: the platform's own, never an error
    assert _cpu_model(tmp_path / "missing")


def test_seeds_parse_as_lists_and_ranges_each_once_in_order():
    assert parse_seeds("0-4,7") == (0, 1, 2, 3, 4, 7)
    assert parse_seeds(" 9, 2-3 ,3,9") == (9, 2, 3)
    assert parse_seeds("5") == (5,)


@pytest.mark.parametrize(
    "text, says",
    [
        ("3-1", "not a seed or a range"),
        ("-1", "not a seed or a range"),
        ("1,,2", "not a seed or a range"),
        ("a", "not a seed or a range"),
        ("1-", "not a seed or a range"),
        ("2147483648", "too large"),
        ("0-5000", "more than 1000 runs"),
    ],
)
def test_bad_seeds_are_refused_with_the_reason(text, says):
    with pytest.raises(ValueError, match=says):
        parse_seeds(text)


def test_each_preset_runs_once_per_seed_with_ratios_to_the_tutorial_of_the_same_seed(tiny):
    rows = run_benchmark(None, ["tutorial", "classroom"], data=tiny, overrides={"width": 8, "epochs": 1}, seeds=(3, 4))
    # Seed by seed, so the runs compared are neighbours in time on a machine whose speed drifts.
    assert [(r["preset"], r["seed"]) for r in rows] == [
        ("tutorial", 3),
        ("classroom", 3),
        ("tutorial", 4),
        ("classroom", 4),
    ]
    tutorial = {r["seed"]: r for r in rows[::2]}
    for r in rows[1::2]:
        base = tutorial[r["seed"]]
        seconds = base["train_seconds"]
        assert r["seconds_vs_tutorial"] == (round(r["train_seconds"] / seconds, 2) if seconds else None)
        assert r["points_vs_tutorial"] == round(100 * (r["test_accuracy"] - base["test_accuracy"]), 1)
    table = format_table(rows).splitlines()
    assert table[0].startswith("| preset | seed | epochs |") and table[2].startswith("| tutorial | 3 | 1 |")
    assert all(line.count("|") == table[0].count("|") for line in table)


def test_the_summary_gives_mean_spread_and_standard_error_of_completed_runs():
    rows = [
        dict(preset="best", seed=s, test_accuracy=a, train_seconds=t)
        for s, a, t in [(0, 0.90, 600.0), (1, 0.92, 620.0), (2, 0.91, 700.0), (3, None, 30.0)]
    ]
    rows.append(dict(preset="tutorial", seed=0, test_accuracy=0.5, train_seconds=30.0))
    best, tutorial = seed_summary(rows)
    assert best["runs"] == 3 and best["seeds"] == [0, 1, 2]  # the failed run has no accuracy and is left out
    assert best["mean_accuracy"] == pytest.approx(0.91)
    assert best["sd_accuracy"] == pytest.approx(0.01) and best["se_accuracy"] == pytest.approx(0.01 / 3**0.5)
    assert (best["min_accuracy"], best["max_accuracy"]) == (0.90, 0.92)
    assert best["mean_seconds"] == pytest.approx(640.0) and best["max_seconds"] == 700.0
    assert tutorial["runs"] == 1 and tutorial["sd_accuracy"] is None and tutorial["se_accuracy"] is None
    table = format_seed_summary([best, tutorial])
    assert "| best | 3 | 91.00% | 1.00 | 0.58 | 90.00% | 92.00% | 640.0 | 700.0 |" in table
    assert "| tutorial | 1 | 50.00% | - | - |" in table


def test_the_summary_table_marks_missing_values_but_prints_a_zero_time():
    failed, instant = seed_summary(
        [
            dict(preset="best", seed=0, test_accuracy=None, train_seconds=5.0),
            dict(preset="tiny", seed=0, test_accuracy=0.1, train_seconds=0.0),
        ]
    )
    table = format_seed_summary([failed, instant])
    assert "| best | 0 | - | - | - | - | - | - | - |" in table  # every run failed: nothing to average
    assert "| tiny | 1 | 10.00% | - | - | 10.00% | 10.00% | 0.0 | 0.0 |" in table


def test_main_with_seeds_adds_the_summary_to_the_table_and_the_json(tmp_path, tiny, monkeypatch, capsys):
    monkeypatch.setattr("cifar_lab.bench.load_data", lambda source: tiny)
    path = tmp_path / "bench.json"
    args = argparse.Namespace(
        data="synthetic", presets="tutorial", full=False, throughput=False, json_path=str(path), seeds="0-1"
    )
    assert main(args) == 0
    report = json.loads(path.read_text())
    assert [r["seed"] for r in report["rows"]] == [0, 1]
    assert report["seed_summary"][0]["runs"] == 2
    assert "| preset | runs | mean accuracy |" in capsys.readouterr().out


def test_bad_seeds_fail_before_any_data_is_loaded(monkeypatch, capsys):
    def no_data(source):
        raise AssertionError("data loaded before the seeds were checked")

    monkeypatch.setattr("cifar_lab.bench.load_data", no_data)
    assert cli_main(["bench", "--data", "synthetic", "--seeds", "4-2"]) == EXIT_USER_ERROR
    assert "'4-2' is not a seed or a range like 0-4" in capsys.readouterr().err
    assert cli_main(["bench", "--data", "synthetic", "--seeds", "0-2", "--throughput"]) == EXIT_USER_ERROR
    assert "run --throughput without it" in capsys.readouterr().err


def test_a_variant_trains_its_preset_with_its_flags_as_a_row_of_its_own(tiny):
    variant = parse_variant("classroom --epochs 2 --lowres-epochs 1 --lowres-side 16")
    assert (variant.preset, variant.flags) == ("classroom", "--epochs 2 --lowres-epochs 1 --lowres-side 16")
    assert variant.overrides == {"epochs": 2, "lowres_epochs": 1, "lowres_side": 16}
    rows = run_benchmark(
        None, ["classroom"], data=tiny, overrides={"width": 8, "epochs": 1}, seeds=(0, 1), variants=[variant]
    )
    assert [(r["flags"], r["seed"], r["epochs"]) for r in rows] == [
        ("", 0, 1),
        ("--epochs 2 --lowres-epochs 1 --lowres-side 16", 0, 2),
        ("", 1, 1),
        ("--epochs 2 --lowres-epochs 1 --lowres-side 16", 1, 2),
    ]
    assert "| classroom --epochs 2 --lowres-epochs 1 --lowres-side 16 | 1 | 2 |" in format_table(rows)
    plain, changed = seed_summary(rows)
    assert (plain["preset"], plain["seeds"]) == ("classroom", [0, 1])
    assert (changed["preset"], changed["seeds"]) == ("classroom --epochs 2 --lowres-epochs 1 --lowres-side 16", [0, 1])


def test_a_tutorial_variant_is_not_the_tutorial_the_ratios_divide_by(tiny):
    rows = run_benchmark(
        None, ["tutorial"], data=tiny, overrides={"epochs": 1}, variants=[parse_variant("tutorial --lr 0.01")]
    )
    assert rows[1]["seconds_vs_tutorial"] == (
        round(rows[1]["train_seconds"] / rows[0]["train_seconds"], 2) if rows[0]["train_seconds"] else None
    )


@pytest.mark.parametrize(
    "text, says",
    [
        ("bst --epochs 2", "invalid choice: 'bst'"),
        ("best --epochs 0", "epochs=0 is out of range"),
        ("best --epochs two", "invalid int value: 'two'"),
        ("best --widht 8", "unrecognized arguments: --widht 8"),
        ("", "required: preset"),
        ("best 'x", "No closing quotation"),
        ("best --lowres-epochs 11", "lowres_epochs"),
        ("best", "changes nothing in best"),
    ],
)
def test_a_bad_variant_names_itself_and_the_form_it_takes(text, says):
    with pytest.raises(UserError) as err:
        parse_variant(text)
    assert says in str(err.value) and f"--variant {text!r}" in str(err.value)
    assert "e.g. --variant 'best --epochs 13 --lowres-epochs 4'" in str(err.value)


def test_bad_variants_fail_before_any_data_is_loaded(monkeypatch, capsys):
    def no_data(source):
        raise AssertionError("data loaded before the variants were checked")

    monkeypatch.setattr("cifar_lab.bench.load_data", no_data)
    assert cli_main(["bench", "--data", "synthetic", "--variant", "best --epochs 0"]) == EXIT_USER_ERROR
    assert "epochs=0 is out of range" in capsys.readouterr().err
    assert cli_main(["bench", "--data", "synthetic", "--variant", "best --seed 3", "--seeds", "0-1"]) == EXIT_USER_ERROR
    assert "leave --seed out of it when --seeds is given" in capsys.readouterr().err
    assert cli_main(["bench", "--data", "synthetic", "--variant", "best --epochs 2", "--throughput"]) == EXIT_USER_ERROR
    assert "--variant applies to the time-to-accuracy table" in capsys.readouterr().err


def test_variants_are_compared_with_their_preset_seed_by_seed():
    def row(flags, seed, acc, secs, preset="best"):
        return dict(preset=preset, flags=flags, seed=seed, test_accuracy=acc, train_seconds=secs)

    lowres = "--epochs 13 --lowres-epochs 4"
    rows = [
        row("", 0, 0.9095, 100.0),
        row(lowres, 0, 0.9116, 101.0),
        row("", 1, 0.9069, 100.0),
        row(lowres, 1, 0.9102, 99.0),
        row("", 2, 0.9100, 100.0),
        row(lowres, 2, 0.9090, 100.0),
        row(lowres, 3, 0.95, 100.0),  # no plain run of seed 3 to pair with: left out
        row("", 4, None, 5.0),
        row(lowres, 4, 0.99, 100.0),  # the plain run failed: left out
        row("--lr 0.01", 0, 0.50, 50.0, preset="tutorial"),
    ]  # no plain tutorial at all: no pair
    (pair,) = paired_differences(rows)
    assert (pair["variant"], pair["against"], pair["seeds"]) == (f"best {lowres}", "best", [0, 1, 2])
    assert pair["mean_difference"] == pytest.approx((0.0021 + 0.0033 - 0.0010) / 3)
    assert pair["sd_difference"] == pytest.approx(statistics.stdev([0.0021, 0.0033, -0.0010]))
    assert (pair["higher"], pair["lower"]) == (2, 1) and pair["mean_time_ratio"] == pytest.approx(1.0)
    assert f"| best {lowres} | best | 3 | +0.15 | 0.22 | 2 / 1 | 1.000x |" in format_paired_differences([pair])


def test_main_prints_and_saves_the_pairs_when_a_variant_ran_beside_its_preset(tmp_path, tiny, monkeypatch, capsys):
    monkeypatch.setattr("cifar_lab.bench.load_data", lambda source: tiny)
    path = tmp_path / "bench.json"
    args = argparse.Namespace(
        data="synthetic",
        presets="tutorial",
        full=False,
        throughput=False,
        json_path=str(path),
        seeds="0-1",
        variants=[parse_variant("tutorial --epochs 1")],
    )
    assert main(args) == 0
    report = json.loads(path.read_text())
    assert [(r["flags"], r["seed"]) for r in report["rows"]] == [("", 0), ("--epochs 1", 0), ("", 1), ("--epochs 1", 1)]
    assert report["paired_differences"][0]["seeds"] == [0, 1]
    assert "| tutorial --epochs 1 | tutorial | 2 |" in capsys.readouterr().out
