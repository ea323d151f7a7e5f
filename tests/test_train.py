"""The training loop and its schedules: learning, events, stop, divergence, reproducibility, resume."""

from __future__ import annotations

import copy
import itertools
import math
import threading

import pytest
import torch

from cifar_lab.checkpoint import load_checkpoint, save_checkpoint
from cifar_lab.config import OPTIMIZERS, SCHEDULES, TrainConfig
from cifar_lab.data import CifarData
from cifar_lab.events import EarlyScore, EpochEnd, Failed, Finished, Step, Stopped
from cifar_lab.models import build_model
from cifar_lab.optim import apply_schedule, build_optimizer, lr_factor
from cifar_lab.train import train


def run(config: TrainConfig, data: CifarData, **kwargs):
    """Train, returning (result, every event in order)."""
    events: list = []
    result = train(config, data, on_event=events.append, **kwargs)
    return result, events


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def same_weights(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def same_tree(a, b) -> bool:
    """Nested dicts/lists of tensors and plain values, equal leaf by leaf."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(same_tree(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same_tree(x, y) for x, y in zip(a, b))
    return a == b


# --- learning-rate schedules: pure functions of the step -------------------------------------------------------


def test_constant_schedule():
    assert [lr_factor("constant", s, 10) for s in range(11)] == [1.0] * 11


def test_onecycle_rises_from_low_to_peak_at_warmup_then_falls_to_zero():
    total, warmup = 100, 0.2
    f = [lr_factor("onecycle", s, total, warmup) for s in range(total + 1)]
    assert f[0] < 0.2  # starts low, but not at zero: the first step would be wasted
    assert f[0] > 0
    assert max(f) == pytest.approx(1.0) and f.index(max(f)) == 20  # peak at warmup * total
    assert all(a < b for a, b in itertools.pairwise(f[:21]))  # rising
    assert all(a > b for a, b in itertools.pairwise(f[20 : total + 1]))  # falling
    assert f[total] == pytest.approx(0.0, abs=1e-12)
    assert f[total - 1] < 0.02
    assert all(0.0 <= v <= 1.0 for v in f)


def test_onecycle_without_warmup_starts_at_peak():
    f = [lr_factor("onecycle", s, 10, 0.0) for s in range(11)]
    assert f[0] == pytest.approx(1.0) and f[10] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in itertools.pairwise(f))


def test_cosine_schedule():
    f = [lr_factor("cosine", s, 100) for s in range(101)]
    assert f[0] == pytest.approx(1.0) and f[50] == pytest.approx(0.5) and f[100] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in itertools.pairwise(f))


def test_step_schedule_divides_by_ten_at_half_and_three_quarters():
    f = [lr_factor("step", s, 100) for s in range(100)]
    assert set(f[:50]) == {1.0}
    assert f[50:75] == pytest.approx([0.1] * 25)
    assert f[75:] == pytest.approx([0.01] * 25)


def test_schedules_are_pure_functions_of_the_step():
    for name in SCHEDULES:
        forward = [lr_factor(name, s, 37, 0.3) for s in range(38)]
        backward = [lr_factor(name, s, 37, 0.3) for s in reversed(range(38))][::-1]
        assert forward == backward, name
        assert lr_factor(name, 0, 0) == lr_factor(name, 0, 0)  # zero total steps does not divide by zero


def test_unknown_schedule_lists_valid_names():
    with pytest.raises(ValueError) as err:
        lr_factor("linear", 0, 10)
    for name in SCHEDULES:
        assert name in str(err.value)


@pytest.mark.parametrize("opt", [o for o in OPTIMIZERS if o != "muon"])  # muon: tests/test_fastnet.py
def test_build_optimizer_and_apply_schedule(opt):
    config = TrainConfig(arch="cnn", width=4, depth=1, opt=opt, lr=0.05, momentum=0.8, weight_decay=1e-3)
    model = build_model(config)
    optimizer = build_optimizer(model, config)
    kind = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[opt]
    assert type(optimizer) is kind
    group = optimizer.param_groups[0]
    assert group["weight_decay"] == 1e-3
    if opt == "sgd":
        assert group["momentum"] == 0.8 and group["nesterov"] is True
    else:
        assert group["betas"] == (0.8, 0.999)
    n_params = sum(len(g["params"]) for g in optimizer.param_groups)
    assert n_params == len([p for p in model.parameters() if p.requires_grad])
    assert apply_schedule(optimizer, 0.5) == pytest.approx(0.025)
    assert all(g["lr"] == pytest.approx(0.025 * g["lr_scale"]) for g in optimizer.param_groups)


# --- a short run, shared by several tests ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def three_epochs(tiny_config, tiny_data):
    config = tiny_config.replace(epochs=3, batch_size=32)  # 16 steps per epoch, 48 in all
    result, events = run(config, tiny_data)
    return config, result, events


def test_short_synthetic_run_reaches_90_percent(three_epochs):
    _, result, _ = three_epochs
    assert result.status == "completed"
    assert result.test_accuracy > 0.90


def test_event_order_steps_then_epoch_end_per_epoch_then_finished(three_epochs):
    config, _, events = three_epochs
    assert isinstance(events[-1], Finished)
    assert len(of(events, Finished)) == 1 and not of(events, Stopped) and not of(events, Failed)
    ends = [i for i, e in enumerate(events) if isinstance(e, EpochEnd)]
    assert [events[i].epoch for i in ends] == [1, 2, 3]
    start = 0
    for epoch, end in enumerate(ends, start=1):
        block = events[start:end]
        # the first epoch also scores the test set early (train.EARLY_FRACTIONS)
        assert block and all(
            (isinstance(e, Step) and e.epoch == epoch) or (isinstance(e, EarlyScore) and epoch == 1) for e in block
        )
        start = end + 1
    assert start == len(events) - 1  # nothing between the last EpochEnd and Finished
    steps = of(events, Step)
    assert [s.step for s in steps] == sorted({s.step for s in steps})  # strictly increasing
    assert steps[-1].step == steps[-1].total_steps == 48
    assert all(e.epochs == config.epochs for e in of(events, EpochEnd))


def test_step_events_carry_the_scheduled_lr_and_finite_values(three_epochs):
    config, _, events = three_epochs
    for s in of(events, Step):
        expected = config.lr * lr_factor(config.schedule, s.step - 1, s.total_steps, config.warmup)
        assert s.lr == pytest.approx(expected)
        assert math.isfinite(s.loss) and s.images_per_s > 0 and s.elapsed_s >= 0


@pytest.mark.parametrize("n_train, batch_size, per_epoch", [(200, 64, 200), (193, 64, 192), (40, 64, 40)])
def test_throughput_counts_the_images_trained_on(tiny_config, tiny_data, n_train, batch_size, per_epoch):
    # 200 = 3 full batches and one of 8; 193 leaves a last batch of one image, which is dropped; 40 is one short batch.
    data = tiny_data.subset(n_train=n_train, n_test=16)
    result, events = run(tiny_config.replace(epochs=2, batch_size=batch_size), data)
    epoch_seconds = sum(e.seconds for e in result.history)
    assert result.images_per_s * epoch_seconds == pytest.approx(2 * per_epoch)
    assert events[-1].images_per_s == pytest.approx(result.images_per_s)


def test_result_matches_the_events(three_epochs):
    config, result, events = three_epochs
    finished = events[-1]
    assert result.epochs_done == 3 and finished.epochs == 3
    assert result.test_accuracy == finished.test_accuracy == result.evaluation.accuracy
    assert result.history == of(events, EpochEnd)
    assert result.config == config and result.message == ""
    assert result.train_seconds > 0 and result.images_per_s > 0
    assert not result.model.training
    assert all(p.device.type == "cpu" for p in result.model.parameters())
    assert result.history[-1].train_loss < result.history[0].train_loss
    for e in result.history:
        assert 0 <= e.train_acc <= 1 and 0 <= e.test_acc <= 1 and e.seconds > 0


def test_epoch_end_carries_a_snapshot_of_the_weights(three_epochs):
    _, result, events = three_epochs
    ends = of(events, EpochEnd)
    final = result.model.state_dict()
    assert same_weights(ends[-1].state_dict, final)  # nothing trains after the last epoch
    assert not same_weights(ends[0].state_dict, final)  # a copy, not the live tensors
    assert all(v.device.type == "cpu" for v in ends[0].state_dict.values())


# --- one batch overfits -----------------------------------------------------------------------------------------


def test_one_batch_overfits(tiny_data):
    x = tiny_data.train_x[:32]
    y = torch.randint(0, 10, (32,), generator=torch.Generator().manual_seed(0))  # random labels: memorise only
    one_batch = CifarData(x, y, x, y, tiny_data.classes, "one batch")
    config = TrainConfig(
        arch="tutorial",
        normalize="half",
        opt="adam",
        lr=3e-3,
        weight_decay=0.0,
        schedule="constant",
        batch_size=32,
        epochs=80,
        flip=False,
        crop_pad=0,
        precision="fp32",
        device="cpu",
        threads=1,
    )
    result, events = run(config, one_batch)
    losses = [s.loss for s in of(events, Step)]
    assert len(losses) == 80
    assert losses[0] > 2.0  # about log(10) before training
    assert losses[-1] < 0.05
    assert result.test_accuracy == 1.0  # the same 32 images, every one memorised


# --- stop and failure -------------------------------------------------------------------------------------------


def test_stop_event_halts_within_one_step(tiny_config, tiny_data, capsys):
    stop = threading.Event()
    events: list = []

    def listener(event):
        events.append(event)
        if isinstance(event, Step):
            stop.set()

    result = train(tiny_config.replace(epochs=2), tiny_data, stop=stop, on_event=listener)
    assert result.status == "stopped"
    steps = of(events, Step)
    assert len(steps) == 1 and steps[0].step == 1
    assert isinstance(events[-1], Stopped) and events[-1].step == 1 and events[-1].epochs_done == 0
    assert not of(events, EpochEnd) and not of(events, Finished)
    assert result.epochs_done == 0 and result.test_accuracy is None
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""  # the loop does no I/O


def test_stop_set_before_start_runs_no_step(tiny_config, tiny_data):
    stop = threading.Event()
    stop.set()
    result, events = run(tiny_config, tiny_data, stop=stop)
    assert result.status == "stopped"
    assert events == [Stopped(0, 0)]


def test_stop_after_first_epoch_keeps_that_epoch(tiny_config, tiny_data):
    stop = threading.Event()
    events: list = []

    def listener(event):
        events.append(event)
        if isinstance(event, EpochEnd):
            stop.set()

    result = train(tiny_config.replace(epochs=3), tiny_data, stop=stop, on_event=listener)
    assert result.status == "stopped" and result.epochs_done == 1 and len(result.history) == 1
    assert isinstance(events[-1], Stopped) and events[-1].epochs_done == 1
    assert not of(events, Finished)


@pytest.mark.parametrize("arch", ["tutorial", "cnn"])
def test_huge_learning_rate_fails_with_advice(tiny_data, arch):
    config = TrainConfig(
        arch=arch,
        width=8,
        depth=2,
        batchnorm=False,
        lr=100.0,
        schedule="constant",
        batch_size=64,
        epochs=2,
        flip=False,
        crop_pad=0,
        precision="fp32",
        device="cpu",
        threads=1,
    )
    result, events = run(config, tiny_data)
    assert result.status == "failed"
    assert "lower the learning rate" in result.message.lower()
    assert isinstance(events[-1], Failed) and events[-1].message == result.message and events[-1].step >= 1
    assert not of(events, EpochEnd) and not of(events, Finished)
    assert result.test_accuracy is None


def test_unavailable_device_is_a_clear_error(tiny_config, tiny_data):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="cuda"):
        train(tiny_config.replace(device="cuda"), tiny_data)


def test_training_set_of_one_image_is_refused(tiny_config, tiny_data):
    one = CifarData(
        tiny_data.train_x[:1], tiny_data.train_y[:1], tiny_data.test_x, tiny_data.test_y, tiny_data.classes, "one image"
    )
    with pytest.raises(ValueError, match="at least 2"):
        train(tiny_config, one)


def test_last_batch_of_one_image_is_dropped(tiny_data):
    # 65 images at batch 64 would leave a batch of 1, which BatchNorm on a 1x1 map (depth 5) cannot take.
    data = CifarData(
        tiny_data.train_x[:65],
        tiny_data.train_y[:65],
        tiny_data.test_x[:16],
        tiny_data.test_y[:16],
        tiny_data.classes,
        "65 images",
    )
    config = TrainConfig(
        arch="cnn", width=4, depth=5, batch_size=64, epochs=1, precision="fp32", device="cpu", threads=1
    )
    result, events = run(config, data)
    assert result.status == "completed"
    assert of(events, Step)[-1].total_steps == 1


def test_bf16_run_completes_with_fp32_weights(tiny_config, tiny_data):
    result, events = run(tiny_config.replace(precision="bf16"), tiny_data)
    assert result.status == "completed" and "bf16" in result.device
    assert all(math.isfinite(s.loss) for s in of(events, Step))
    assert all(p.dtype == torch.float32 for p in result.model.parameters())


# --- reproducibility and resume ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_runs(tiny_config, tiny_data):
    """The same 2-epoch fp32 config twice; it uses every source of randomness (shuffle, flip, crop, dropout)."""
    config = tiny_config.replace(epochs=2, flip=True, crop_pad=2, dropout=0.2, opt="adamw", lr=3e-3)
    return config, run(config, tiny_data), run(config, tiny_data)


def test_same_seed_gives_identical_fp32_runs(two_runs):
    _, (a, events_a), (b, events_b) = two_runs
    assert [s.loss for s in of(events_a, Step)] == [s.loss for s in of(events_b, Step)]
    assert [e.train_loss for e in a.history] == [e.train_loss for e in b.history]
    assert same_weights(a.model.state_dict(), b.model.state_dict())
    assert a.test_accuracy == b.test_accuracy


def test_another_seed_gives_other_weights(two_runs, tiny_data):
    config, (a, _), _ = two_runs
    c, _ = run(config.replace(seed=1, epochs=1), tiny_data)
    assert not same_weights(a.history[0].state_dict, c.model.state_dict())


def test_resume_from_epoch_one_equals_the_uninterrupted_run(two_runs, tiny_data):
    config, (full, full_events), _ = two_runs
    first = of(full_events, EpochEnd)[0]
    resume = copy.deepcopy({**first.resume_state, "model": first.state_dict})
    resumed, events = run(config, tiny_data, resume=resume)
    assert resumed.status == "completed" and resumed.epochs_done == 2
    assert [e.epoch for e in of(events, EpochEnd)] == [2]
    steps = of(events, Step)
    assert steps[0].step == of(full_events, Step)[len(steps)].step  # numbering continues
    assert [s.loss for s in steps] == [s.loss for s in of(full_events, Step) if s.epoch == 2]
    assert same_weights(resumed.model.state_dict(), full.model.state_dict())
    assert resumed.test_accuracy == full.test_accuracy


def test_resume_through_a_checkpoint_file(two_runs, tiny_data, tmp_path):
    # The way the run store resumes: the epoch's weights and resume state written to disk and read back.
    config, (full, full_events), _ = two_runs
    first = of(full_events, EpochEnd)[0]
    path = save_checkpoint(
        tmp_path / "epoch1.pth",
        first.state_dict,
        config,
        classes=tiny_data.classes,
        epoch=1,
        resume=copy.deepcopy(first.resume_state),
    )
    saved = load_checkpoint(path)
    resumed, _ = run(config, tiny_data, resume={**saved.resume, "model": saved.model.state_dict()})
    assert same_weights(resumed.model.state_dict(), full.model.state_dict())


def test_resume_leaves_the_resume_dict_unchanged(two_runs, tiny_data):
    # A resume dict (an EpochEnd's, or one read from a checkpoint) may be used again: training must not
    # write into its tensors.
    config, (_, full_events), _ = two_runs
    first = of(full_events, EpochEnd)[0]
    resume = copy.deepcopy({**first.resume_state, "model": first.state_dict})
    before = copy.deepcopy(resume)
    run(config, tiny_data, resume=resume)
    assert same_tree(resume["optimizer"], before["optimizer"]), "train() changed the optimizer state it was given"
    assert same_tree(resume, before)


def test_muon_needs_fastnet_and_builds_for_it():
    with pytest.raises(ValueError, match="fastnet"):
        TrainConfig(arch="cnn", opt="muon")
    config = TrainConfig(arch="fastnet", width=8, opt="muon", lr=0.5)
    optimizer = build_optimizer(build_model(config), config)
    assert type(optimizer).__name__ == "Muon"
    assert any(g.get("orthogonalize") for g in optimizer.param_groups)


def test_alternate_flip_shows_each_image_both_ways_over_two_epochs(monkeypatch):
    """With alternate_flip every training image is mirrored in exactly one of any two consecutive epochs."""
    import cifar_lab.train as train_module
    from cifar_lab.data import synthetic_data

    seen: list[torch.Tensor] = []
    real_normalize = train_module.normalize

    def spy(x, how="cifar"):
        if len(x) == 16:  # training batches only (the whitening sample and evaluation use other sizes)
            seen.append(x.clone())
        return real_normalize(x, how)

    monkeypatch.setattr(train_module, "normalize", spy)
    data = synthetic_data(n_train=16, n_test=8)
    config = TrainConfig(
        arch="cnn",
        width=4,
        depth=1,
        batch_size=16,
        epochs=2,
        flip=True,
        alternate_flip=True,
        crop_pad=0,
        precision="fp32",
        threads=1,
        eval_subset=0,
    )
    train_module.train(config, data)
    first, second = seen  # one batch per epoch, in a different order each epoch
    originals = {bytes(img.numpy()): i for i, img in enumerate(data.train_x)}
    mirrors = {bytes(img.flip(2).numpy()): i for i, img in enumerate(data.train_x)}

    def mirrored_ids(batch):
        return {
            mirrors[bytes(img.numpy())]
            for img in batch
            if bytes(img.numpy()) in mirrors and bytes(img.numpy()) not in originals
        }

    flipped_1, flipped_2 = mirrored_ids(first), mirrored_ids(second)
    assert flipped_1 and flipped_2
    assert flipped_1.isdisjoint(flipped_2)
    assert len(flipped_1 | flipped_2) == 16


# --- BatchNorm statistics: averaged over the last steps ----------------------------------------------------------


def _record_norm_inputs(monkeypatch) -> list[tuple[int, torch.Tensor]]:
    """Patch the loop's model factory so each training-mode batch into the first BatchNorm is recorded as
    (call number, per-channel mean)."""
    import cifar_lab.train as train_module

    seen: list[tuple[int, torch.Tensor]] = []
    real_build = train_module.build_model

    def build_and_watch(config, num_classes=10):
        model = real_build(config, num_classes)
        norm = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))

        def record(module, inputs):
            if module.training:
                seen.append((len(seen), inputs[0].detach().float().mean(dim=(0, 2, 3))))

        norm.register_forward_pre_hook(record)
        return model

    monkeypatch.setattr(train_module, "build_model", build_and_watch)
    return seen


def test_norm_statistics_are_the_average_of_the_last_steps(monkeypatch, tiny_config, tiny_data):
    from cifar_lab.train import NORM_AVERAGE_FRACTION

    seen = _record_norm_inputs(monkeypatch)
    config = tiny_config.replace(epochs=4, batch_size=32)  # 16 steps an epoch, 64 in all
    result = train(config, tiny_data)
    assert len(seen) == 64
    window = max(1, round(64 * NORM_AVERAGE_FRACTION))
    assert window >= 2  # the test needs an average of several batches, not a copy of the last one
    norm = next(m for m in result.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    expected = torch.stack([mean for _, mean in seen[-window:]]).mean(0)
    assert torch.allclose(norm.running_mean, expected, atol=1e-5)
    assert not torch.allclose(
        norm.running_mean, torch.stack([mean for _, mean in seen[-window - 4 :]]).mean(0), atol=1e-3
    )  # batches before the window are left out
    assert int(norm.num_batches_tracked) == window
    assert norm.momentum == 0.1  # its own momentum again once training ends


def test_resume_inside_the_averaging_window_equals_the_uninterrupted_run(tiny_config, tiny_data):
    # One step per epoch, so the window (4 % of 50 steps = 2) spans two epochs and a resume lands inside it.
    config = tiny_config.replace(epochs=50, batch_size=len(tiny_data.train_x))
    full, events = run(config, tiny_data)
    before_last = of(events, EpochEnd)[-2]
    resume = copy.deepcopy({**before_last.resume_state, "model": before_last.state_dict})
    resumed, _ = run(config, tiny_data, resume=resume)
    assert same_weights(resumed.model.state_dict(), full.model.state_dict())
    norm = next(m for m in full.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert int(norm.num_batches_tracked) == 2


@pytest.mark.parametrize("arch", ["cnn", "resnet", "fastnet"])
def test_lowres_epochs_train_on_shrunk_images_then_full_size(tiny_config, tiny_data, arch):
    config = tiny_config.replace(arch=arch, width=8, epochs=3, lowres_epochs=2, lowres_side=16, batch_size=128)
    sides: list[tuple[bool, int]] = []

    def record(module, inputs):
        sides.append((module.training, inputs[0].shape[-1]))

    original = build_model

    def recording_model(*args, **kwargs):
        model = original(*args, **kwargs)
        model.register_forward_pre_hook(record)
        return model

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("cifar_lab.train.build_model", recording_model)
        result, _ = run(config, tiny_data)
    assert result.status == "completed" and math.isfinite(result.history[-1].train_loss)
    training = [side for is_training, side in sides if is_training]
    assert training == [16] * 8 + [32] * 4  # 4 steps per epoch
    assert {side for is_training, side in sides if not is_training} == {32}  # every evaluation at full size


def test_resume_after_a_shrunk_epoch_equals_the_uninterrupted_run(tiny_config, tiny_data):
    config = tiny_config.replace(epochs=2, lowres_epochs=1, lowres_side=16, flip=True, crop_pad=2)
    full, full_events = run(config, tiny_data)
    first = of(full_events, EpochEnd)[0]
    resumed, _ = run(config, tiny_data, resume=copy.deepcopy({**first.resume_state, "model": first.state_dict}))
    assert same_weights(resumed.model.state_dict(), full.model.state_dict())
    plain, _ = run(config.replace(lowres_epochs=0), tiny_data)
    assert not same_weights(plain.model.state_dict(), full.model.state_dict())  # the shrinking did happen


def test_the_first_epoch_scores_test_accuracy_early_without_changing_the_training(monkeypatch, tiny_data):
    from cifar_lab import train as train_module

    config = TrainConfig(arch="cnn", width=8, depth=1, batch_size=64, epochs=2, precision="fp32", threads=1)
    steps = math.ceil(len(tiny_data.train_x) / 64)
    assert steps >= 6  # enough steps for three early scores
    _, events = run(config, tiny_data)
    early = of(events, EarlyScore)
    assert [round(e.epoch * 4) / 4 for e in early] == [0.25, 0.5, 0.75]
    first_end = events.index(of(events, EpochEnd)[0])
    assert all(events.index(e) < first_end for e in early)  # within the first epoch, before its end
    assert all(0 <= e.test_acc <= 1 and e.seconds > 0 for e in early)
    monkeypatch.setattr(train_module, "EARLY_FRACTIONS", ())
    _, without = run(config, tiny_data)
    assert not of(without, EarlyScore)
    assert [s.loss for s in of(events, Step)] == [s.loss for s in of(without, Step)]  # scoring leaves no trace
