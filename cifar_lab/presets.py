"""The named presets: each is the TrainConfig fields it changes from the defaults (plain data, checked by config)."""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # The PyTorch CIFAR-10 tutorial exactly: its net, batch 4, SGD lr 0.001 momentum 0.9, 2 epochs, no augmentation.
    "tutorial": dict(
        arch="tutorial",
        dropout=0.0,
        flip=False,
        crop_pad=0,
        opt="sgd",
        lr=0.001,
        momentum=0.9,
        nesterov=False,
        weight_decay=0.0,
        batch_size=4,
        epochs=2,
        schedule="constant",
        normalize="half",
        precision="fp32",
    ),
    # The tutorial's improvement list applied: deeper CNN with BatchNorm and dropout, flip/crop/rotation, Adam.
    "improved": dict(
        arch="cnn",
        width=32,
        depth=3,
        batchnorm=True,
        dropout=0.3,
        flip=True,
        crop_pad=4,
        rotate=10.0,
        opt="adam",
        lr=2e-3,
        momentum=0.9,
        weight_decay=0.0,
        batch_size=128,
        epochs=10,
        schedule="onecycle",
        warmup=0.2,
    ),
    # Two minutes on any computer, by time budget: the recipe is the best accuracy a 2-core laptop CPU with native
    # bf16 reaches in about two minutes (see docs/benchmarks.md): fastnet at width 32 for 3 epochs; a slower machine
    # trains narrower or shrinks the first epoch, a faster one trains longer. Muon's filter steps and a schedule that
    # starts at its peak (warmup 0) and falls linearly to zero measured 1-2 points above SGD with a warm-up triangle.
    # lr 0.75 at batch 512 is airbench94's 1.5 per 1024 images; weight_decay 1.33e-3 its 0.0153 in PyTorch units.
    "classroom": dict(
        arch="fastnet",
        width=32,
        flip=True,
        alternate_flip=True,
        crop_pad=2,
        opt="muon",
        lr=0.75,
        momentum=0.85,
        nesterov=True,
        weight_decay=1.33e-3,
        batch_size=512,
        epochs=3,
        minutes=2.0,
        schedule="onecycle",
        warmup=0.0,
        label_smoothing=0.2,
        tta=True,
        eval_subset=1000,
    ),
    # Twelve minutes on any computer, by time budget. The recipe is the highest accuracy within 12 minutes on a 2-core
    # CPU with native bf16: the same recipe at width 64 for 10 epochs,
    # with shifted copies added to the test-time augmentation. On the Zen 5 machine of docs/benchmarks.md, it took
    # 580-608 s and scored 0.37 points more than width 48 for 11 epochs (4 seeds paired), which took 396-435 s there
    # (670-731 s on the older Zen 4 machine, where width 64 would need 890-1,080 s). Over 9+ epochs a smaller filter
    # step pays: lr 0.55 gives Muon 0.12, which beat 0.165, 0.09 and 0.22 by 0.2-0.6 points at width 48 (2 seeds
    # each, GPU sweep).
    "best": dict(
        arch="fastnet",
        width=64,
        flip=True,
        alternate_flip=True,
        crop_pad=2,
        opt="muon",
        lr=0.55,
        momentum=0.85,
        nesterov=True,
        weight_decay=1.33e-3,
        batch_size=512,
        epochs=10,
        minutes=12.0,
        schedule="onecycle",
        warmup=0.0,
        label_smoothing=0.2,
        tta=True,
        tta_shifts=True,
        eval_subset=1000,
    ),
}
