"""Where one training step of a preset's model spends its time on the CPU: each conv layer's forward and backward
milliseconds and multiply-adds per second, then everything else (pooling, BatchNorm, GELU, the optimizer step)
by operator. Prints two tables.

    python benchmarks/step_profile.py                    # best preset, two threads' worth of every core
    python benchmarks/step_profile.py --preset classroom --frozen-whitening

Synthetic images cost what real ones do. `--frozen-whitening` profiles the later epochs of fastnet, where the
whitening bias no longer trains and the first conv's input gradient is skipped.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from cifar_lab.bench import bare_step
from cifar_lab.config import TrainConfig, preset
from cifar_lab.devices import freed_memory_kept, resolve_device, resolve_precision, set_threads
from cifar_lab.models import EpochAware, build_model
from cifar_lab.optim import build_optimizer

# Timed with their children, so whichever kernel the backend picks counts; the children stay out of the other ops.
FORWARD, BACKWARD = "aten::convolution", "aten::convolution_backward"
Layer = tuple[str, int, int]  # name, forward multiply-adds per image, backward multiply-adds per image


def conv_layers(model: nn.Module, x: torch.Tensor) -> dict[tuple, list[Layer]]:
    """(input shape, weight shape) -> the conv layers of those shapes, from one forward pass (layers of the same
    shapes share a key: the profiler cannot tell them apart). A backward pass repeats the forward's work once for
    the input gradient and once for the weight gradient, each only where it is needed."""
    layers: dict[tuple, list[Layer]] = defaultdict(list)

    def hook(name: str):
        def record(module: nn.Conv2d, inputs: tuple, output: torch.Tensor) -> None:
            macs = module.weight[0].numel() * output.shape[1:].numel()
            gradients = int(inputs[0].requires_grad) + int(module.weight.requires_grad)
            layers[(tuple(inputs[0].shape), tuple(module.weight.shape))].append((name, macs, gradients * macs))

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    model(x)  # with autograd on, so each input says whether it needs a gradient
    for h in handles:
        h.remove()
    return layers


def profile_steps(config: TrainConfig, steps: int, frozen_whitening: bool) -> tuple:
    """`steps` training steps of the config's model and optimizer on one synthetic batch, under the profiler: the
    conv layers (see conv_layers) and the profiler's averages per operator and input shapes."""
    device = resolve_device(config.device)
    dtype = resolve_precision(config.precision, device)
    torch.manual_seed(0)
    model = build_model(config, 10).to(device).to(memory_format=torch.channels_last)
    if isinstance(model, EpochAware):
        model.start_epoch(config.epochs - 1 if frozen_whitening else 0, config.epochs)
    optimizer = build_optimizer(model, config)
    x = torch.randn(config.batch_size, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (config.batch_size,), device=device)
    layers = conv_layers(model, x)
    model.train()
    with freed_memory_kept(enabled=device.type == "cpu"):
        for _ in range(2):  # oneDNN builds its kernels for each shape on the first calls
            bare_step(model, optimizer, x, y, config, device, dtype).item()
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(steps):
                bare_step(model, optimizer, x, y, config, device, dtype).item()
    return layers, prof.key_averages(group_by_input_shape=True)


def conv_key(event) -> tuple | None:
    """(input shape, weight shape) of a convolution's forward or backward event; None for any other operator."""
    shapes = [tuple(s) for s in event.input_shapes]
    if event.key == FORWARD and len(shapes) >= 2:
        return shapes[0], shapes[1]
    if event.key == BACKWARD and len(shapes) >= 3:
        return shapes[1], shapes[2]
    return None


def print_tables(layers: dict, averages, steps: int, batch: int) -> None:
    per_layer: dict[tuple, dict[str, float]] = defaultdict(lambda: {FORWARD: 0.0, BACKWARD: 0.0})
    other: dict[str, float] = defaultdict(float)
    total = 0.0
    for event in averages:
        key = conv_key(event)
        if key is not None and key in layers:
            ms = event.cpu_time_total / 1000 / steps
            per_layer[key][event.key] += ms
        elif "convolution" in event.key:
            continue  # inside a timed convolution
        else:
            ms = event.self_cpu_time_total / 1000 / steps
            other[event.key] += ms
        total += ms
    print(f"one training step, batch {batch}: {total:.0f} ms\n")
    print("| conv layer(s) | input | MMACs/image | forward ms | backward ms | forward GMAC/s | backward GMAC/s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for key, (names, macs, backward_macs) in sorted(
        ((k, _merged(v)) for k, v in layers.items()), key=lambda kv: -kv[1][1]
    ):
        fwd, bwd = per_layer[key][FORWARD], per_layer[key][BACKWARD]
        rate_f = f"{macs * batch / 1e6 / fwd:,.0f}" if fwd else "-"  # MMAC per ms = GMAC per s
        rate_b = f"{backward_macs * batch / 1e6 / bwd:,.0f}" if bwd and backward_macs else "-"
        print(
            f"| {names} | {'x'.join(map(str, key[0][1:]))} | {macs / 1e6:.1f} | {fwd:.1f} | {bwd:.1f} | "
            f"{rate_f} | {rate_b} |"
        )
    conv_ms = sum(v[FORWARD] + v[BACKWARD] for v in per_layer.values())
    print(f"\nconvolutions: {conv_ms:.0f} ms ({conv_ms / total:.0%}); everything else by operator:\n")
    print("| operator | ms per step | share |")
    print("|---|---:|---:|")
    for name, ms in sorted(other.items(), key=lambda kv: -kv[1])[:12]:
        print(f"| {name} | {ms:.1f} | {ms / total:.1%} |")


def _merged(entries: list[Layer]) -> Layer:
    """All layers of one key as 'a + b', with their multiply-adds added up."""
    return (" + ".join(e[0] for e in entries), sum(e[1] for e in entries), sum(e[2] for e in entries))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="best")
    parser.add_argument("--steps", type=int, default=3, help="profiled training steps")
    parser.add_argument("--threads", type=int, default=0, help="0: every core")
    parser.add_argument("--frozen-whitening", action="store_true", help="profile a step after the whitening bias froze")
    args = parser.parse_args()
    set_threads(args.threads)
    config = preset(args.preset, threads=args.threads, device="cpu")
    layers, averages = profile_steps(config, args.steps, args.frozen_whitening)
    print_tables(layers, averages, args.steps, config.batch_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
