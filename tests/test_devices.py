"""Device settings: the number format chosen for the CPU, and memory freed during training kept for reuse and
handed back afterwards."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

from cifar_lab import devices
from cifar_lab.devices import bf16_slowdown, freed_memory_kept, resolve_precision, slow_cpu_note

RSS_AFTER_FREEING = textwrap.dedent("""
    import sys, torch
    from cifar_lab.devices import freed_memory_kept
    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20
    def churn():  # allocate, touch and free two 40 MB tensors, as a training step does with activations
        a = torch.empty(10 * 2**20).fill_(1.0)
        b = torch.empty(10 * 2**20).fill_(1.0)
    start = rss_mb()
    with freed_memory_kept(enabled=sys.argv[1] == "keep"):
        churn()
        inside = rss_mb()
    print(inside - start, rss_mb() - start)
""")


def _rss_growth(mode: str) -> tuple[float, float]:
    done = subprocess.run([sys.executable, "-c", RSS_AFTER_FREEING, mode], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    inside, after = done.stdout.split()
    return float(inside), float(after)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_freed_memory_is_kept_while_inside_and_returned_after():
    kept_inside, kept_after = _rss_growth("keep")
    default_inside, _ = _rss_growth("off")
    assert kept_inside > 60  # the freed 80 MB stays with the process for the next step
    assert default_inside < 20  # by default it goes straight back to the kernel
    assert kept_after < 20  # and it goes back once the block ends


def test_nested_use_restores_once():
    with freed_memory_kept() as outer, freed_memory_kept() as inner:
        assert inner == outer
    with freed_memory_kept(enabled=False) as off:
        assert off is False


CPU = torch.device("cpu")


@pytest.mark.parametrize("fast", [True, False])
def test_auto_takes_bf16_only_where_the_cpu_computes_it_natively(monkeypatch, fast):
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: fast)
    assert resolve_precision("auto", CPU) == (torch.bfloat16 if fast else None)
    assert resolve_precision("fp32", CPU) is None


def test_asking_for_bf16_on_a_cpu_without_it_warns_of_the_slowdown_but_obeys(monkeypatch):
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: False)
    with pytest.warns(RuntimeWarning, match="no native bf16.*'auto' or 'fp32'"):
        assert resolve_precision("bf16", CPU) == torch.bfloat16


def test_asking_for_bf16_where_it_is_native_is_silent(monkeypatch):
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16", CPU) == torch.bfloat16


def test_the_slow_cpu_note_speaks_only_where_training_falls_back_to_fp32(monkeypatch):
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: False)
    assert "fp32" in slow_cpu_note("cpu") and "keep to their minutes" in slow_cpu_note("cpu")
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: True)
    assert slow_cpu_note("cpu") == ""


def test_bf16_slowdown_names_only_bf16_on_an_emulating_cpu(monkeypatch):
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "10x slower" in bf16_slowdown("bf16", "cpu")
    assert bf16_slowdown("auto", "cpu") == bf16_slowdown("fp32", "cpu") == ""
    assert bf16_slowdown("bf16", "cuda") == ""  # unavailable: the config's own check reports that
