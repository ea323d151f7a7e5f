"""benchmarks/step_profile.py on a tiny model: every conv layer is found, timed and given its gradient work."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cifar_lab.config import preset

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "step_profile.py"


@pytest.fixture(scope="module")
def step_profile():
    spec = importlib.util.spec_from_file_location("step_profile", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def config():
    return preset("classroom", width=8, batch_size=16, device="cpu", precision="fp32", threads=1)


def test_every_conv_layer_is_timed(step_profile, config, capsys):
    layers, averages = step_profile.profile_steps(config, steps=1, frozen_whitening=False)
    names = {name for entries in layers.values() for name, _, _ in entries}
    assert names == {"whiten"} | {f"groups.{g}.conv{c}" for g in range(3) for c in (1, 2)} | {"groups.2.conv3"}
    step_profile.print_tables(layers, averages, steps=1, batch=config.batch_size)
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| groups") or line.startswith("| whiten")]
    assert len(rows) == len(layers)
    for row in rows:  # a forward time above zero for every layer: the profiler's ops were matched to it
        assert float(row.split("|")[4]) > 0
    assert "convolutions:" in out and "aten::" in out


def test_gradient_work_follows_what_trains(step_profile, config):
    def first_conv(frozen: bool):
        layers, _ = step_profile.profile_steps(config, steps=1, frozen_whitening=frozen)
        return next(e for entries in layers.values() for e in entries if e[0] == "groups.0.conv1")

    _, macs, backward = first_conv(False)
    assert backward == 2 * macs  # the whitening bias trains, so the input gradient is needed too
    _, macs, backward = first_conv(True)
    assert backward == macs  # only the weight gradient
