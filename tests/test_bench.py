"""The benchmark: rows and ratios on tiny synthetic data, the table, the throughput report, the JSON file."""
from __future__ import annotations

import argparse
import json

import pytest

from cifar_lab.bench import format_table, format_throughput, main, measure_throughput, run_benchmark
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
    text = format_throughput({"throughput": report, "data_load": {
        "images": 96, "decode_seconds": 0.1, "cached_seconds": 0.01, "fresh_process_seconds": 1.0}})
    assert "median of 3 paired rounds" in text


def test_main_writes_json(tmp_path, tiny, monkeypatch):
    monkeypatch.setattr("cifar_lab.bench.load_data", lambda source: tiny)
    path = tmp_path / "bench.json"
    args = argparse.Namespace(data="synthetic", presets="tutorial", full=False, throughput=False,
                              json_path=str(path))
    assert main(args) == 0
    report = json.loads(path.read_text())
    assert report["rows"][0]["preset"] == "tutorial" and "cpu" in report["machine"]
