"""Muon's Newton-Schulz iteration on the Gram matrix (cifar_lab.fastnet.orthogonalize) against the textbook form,
which multiplies the wide (out, in * 9) filter matrix twice in every step. Prints one table:
milliseconds per call for each filter bank shape of a preset's model, its whole optimizer step, and a bare
training step's images/s.

    python benchmarks/newton_schulz.py                  # best preset, synthetic images (the step cost is the same)
    python benchmarks/newton_schulz.py --preset classroom --rounds 5

Each side is the best of `--rounds` alternating rounds, so both see the same machine load.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from cifar_lab import fastnet
from cifar_lab.bench import bare_images_per_s
from cifar_lab.config import TrainConfig, preset
from cifar_lab.data import synthetic_data
from cifar_lab.devices import set_threads
from cifar_lab.models import build_model
from cifar_lab.optim import build_optimizer

Orthogonalize = Callable[[torch.Tensor], torch.Tensor]


def textbook(g: torch.Tensor, steps: int = fastnet.NEWTON_SCHULZ_STEPS) -> torch.Tensor:
    """The same quintic iteration, each step on the wide matrix itself."""
    x = g.float()
    x = x / (x.norm() + 1e-7)
    wide = x.shape[0] <= x.shape[1]
    x = x if wide else x.T
    for _ in range(steps):
        gram = x @ x.T
        x = 3.4445 * x + (-4.7750 * gram + 2.0315 * gram @ gram) @ x
    return (x if wide else x.T).to(g.dtype)


def ms_per_call(function: Orthogonalize, g: torch.Tensor, calls: int) -> float:
    function(g)
    start = time.perf_counter()
    for _ in range(calls):
        function(g)
    return (time.perf_counter() - start) / calls * 1000


def optimizer_step_ms(config: TrainConfig, calls: int) -> float:
    """One optimizer step of the preset's model and optimizer, with gradients from one small batch."""
    torch.manual_seed(0)
    model = build_model(config, 10)
    optimizer = build_optimizer(model, config)
    F.cross_entropy(model(torch.randn(8, 3, 32, 32)), torch.arange(8)).backward()
    optimizer.step()
    start = time.perf_counter()
    for _ in range(calls):
        optimizer.step()
    return (time.perf_counter() - start) / calls * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="best")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="training steps per round")
    parser.add_argument("--threads", type=int, default=0, help="0: every core")
    args = parser.parse_args()
    set_threads(args.threads)
    config = preset(args.preset, threads=args.threads)
    model = build_model(config, 10)
    banks = [p for p in model.parameters() if p.ndim == 4 and p.requires_grad]
    shapes = sorted({(len(p), p[0].numel()) for p in banks})
    forms = {"textbook": textbook, "gram": fastnet.orthogonalize}
    data = synthetic_data(n_train=config.batch_size, n_test=10)
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for name, function in forms.items():
            for shape in shapes:
                g = torch.randn(shape)
                key = (f"{shape[0]}x{shape[1]} ms", name)
                best[key] = min(best.get(key, float("inf")), ms_per_call(function, g, 10))
            fastnet.orthogonalize = function  # what Muon.step calls
            try:
                key = (f"{args.preset} optimizer step ms", name)
                best[key] = min(best.get(key, float("inf")), optimizer_step_ms(config, 10))
                rate = bare_images_per_s(config, data, args.steps)
            finally:
                fastnet.orthogonalize = forms["gram"]
            key = (f"{args.preset} training step images/s", name)
            best[key] = max(best.get(key, 0.0), rate)
    threads = torch.get_num_threads()
    print(f"| measurement ({threads} thread{'s' if threads > 1 else ''}) | textbook | gram | textbook / gram |")
    print("|---|---:|---:|---:|")
    for label in dict.fromkeys(key[0] for key in best):
        old, new = best[(label, "textbook")], best[(label, "gram")]
        print(f"| {label} | {old:,.1f} | {new:,.1f} | {old / new:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
