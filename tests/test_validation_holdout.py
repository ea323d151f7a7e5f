"""The validation hold-out: the same last N training images for every run and seed, never trained on, scored."""

from __future__ import annotations

import threading

import pytest
import torch
from conftest import TINY_RUN, continue_run, start_run

from cifar_lab import cli, holdout
from cifar_lab import train as train_module
from cifar_lab.checkpoint import load_checkpoint
from cifar_lab.dashboard import plots
from cifar_lab.evaluate import evaluate
from cifar_lab.events import EpochEnd, Finished, Step
from cifar_lab.runner import new_run
from cifar_lab.runs import RunStore

HELD = 128  # of tiny_data's 512 training images: 384 left, 12 steps of 32 per epoch


def image_keys(x: torch.Tensor) -> list[bytes]:
    return [img.numpy().tobytes() for img in x]


def train_spying(monkeypatch, config, data):
    """Train, noting every training image the loop hands to augmentation (before it changes them)."""
    seen: list[bytes] = []
    real = train_module.augment

    def spy(x, **kwargs):
        seen.extend(image_keys(x))
        return real(x, **kwargs)

    monkeypatch.setattr(train_module, "augment", spy)
    events = []
    result = train_module.train(config, data, on_event=events.append)
    return result, seen, events


def test_the_loop_trains_on_all_but_the_last_n_images_whatever_the_seed(monkeypatch, tiny_data):
    kept, held = set(image_keys(tiny_data.train_x[:-HELD])), set(image_keys(tiny_data.train_x[-HELD:]))
    assert len(kept) == 512 - HELD and len(held) == HELD  # generated images are all distinct
    for seed in (0, 1):
        config = TINY_RUN.replace(epochs=1, validation=HELD, seed=seed)
        result, seen, events = train_spying(monkeypatch, config, tiny_data)
        assert set(seen) == kept and len(seen) == 512 - HELD  # every kept image once, no held-out one
        assert {e.total_steps for e in events if isinstance(e, Step)} == {(512 - HELD) // 32}
        assert result.validation is not None and len(result.validation.labels) == HELD


def test_without_a_hold_out_every_training_image_is_trained_on(monkeypatch, tiny_data):
    result, seen, events = train_spying(monkeypatch, TINY_RUN.replace(epochs=1), tiny_data)
    assert len(seen) == 512 and result.validation is None
    assert [e.val_acc for e in events if isinstance(e, EpochEnd)] == [None]
    assert [e.validation_accuracy for e in events if isinstance(e, Finished)] == [None]


def test_a_run_records_its_validation_accuracy_on_the_held_out_images(tmp_path, tiny_data):
    store = RunStore(tmp_path / "runs.db")
    config = TINY_RUN.replace(validation=HELD)
    session = start_run(config, tiny_data, tmp_path, store)
    result = session.run()
    assert result.status == "completed" and result.validation is not None
    # The model scored afresh on the last HELD training images gives the recorded number.
    again = evaluate(result.model, tiny_data.train_x[-HELD:], tiny_data.train_y[-HELD:], classes=tiny_data.classes)
    metrics = store.get_run(session.run_id).metrics
    assert metrics["validation_accuracy"] == result.validation.accuracy == pytest.approx(again.accuracy)
    assert metrics["test_accuracy"] == result.test_accuracy
    assert (metrics["train_images"], metrics["validation_images"]) == (512 - HELD, HELD)
    assert all(e.val_acc is not None and 0 <= e.val_acc <= 1 for e in result.history)
    assert session.summary(result)["validation_accuracy"] == result.validation.accuracy
    assert load_checkpoint(str(session.checkpoint_path)).metrics["validation_accuracy"] == result.validation.accuracy


def test_the_finished_event_carries_it_so_the_store_has_it_before_the_final_write(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    run_id = store.create_run(TINY_RUN, "r")
    store.listener(run_id)(Finished(0.5, 2, 3.0, 900.0, 0.625))
    assert store.get_run(run_id).metrics["validation_accuracy"] == 0.625


def test_a_run_with_a_hold_out_resumes_exactly(tmp_path, tiny_data):
    config = TINY_RUN.replace(epochs=3, validation=HELD, dropout=0.2, schedule="onecycle")
    whole = start_run(config, tiny_data, tmp_path).run()
    store = RunStore(tmp_path / "runs.db")
    stop = threading.Event()
    first = start_run(config, tiny_data, tmp_path, store)
    halt = lambda event: stop.set() if isinstance(event, EpochEnd) else None  # noqa: E731
    assert first.run(stop=stop, on_event=halt).status == "stopped"
    resumed = continue_run(store, first.run_id, tiny_data).run()
    assert resumed.status == "completed" and [e.epoch for e in resumed.history] == [2, 3]
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    assert whole.validation is not None and resumed.validation is not None
    assert resumed.validation.accuracy == whole.validation.accuracy
    assert store.get_run(first.run_id).metrics["validation_accuracy"] == whole.validation.accuracy


def test_a_hold_out_leaving_too_few_training_images_is_refused_with_the_fix(tmp_path, tiny_data):
    with pytest.raises(ValueError, match=r"validation=300 .* at most 256 .* set validation to 256 or less"):
        train_module.train(TINY_RUN.replace(validation=300), tiny_data)
    store = RunStore(tmp_path / "runs.db")
    with pytest.raises(ValueError, match="validation=257"):
        new_run(TINY_RUN.replace(validation=257), folder=tmp_path, store=store, data=tiny_data)
    assert store.list_runs() == [] and list(tmp_path.glob("*.pth")) == []  # refused before anything was claimed
    holdout.check_holdout(256, 512)  # half is allowed


def test_the_cli_refuses_it_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CIFAR_LAB_RUNS_DB", str(tmp_path / "runs.db"))
    argv = ["train", "--data", "synthetic", "--validation", "1500", "--out", str(tmp_path), "--threads", "1"]
    assert cli.main(argv) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "validation=1500" in err and "of the 2000 training images" in err
    assert list(tmp_path.glob("*.pth")) == []


def test_the_class_hold_out_is_cifars_usual_split_or_a_tenth():
    assert holdout.class_holdout(50_000) == 5000
    assert holdout.class_holdout(512) == 51
    assert holdout.for_class(TINY_RUN, 512).validation == 51
    assert holdout.class_holdout(3) == 0


def test_the_accuracy_chart_draws_validation_only_for_a_run_with_a_hold_out():
    plain = [EpochEnd(1, 2, 2.0, 0.3, 2.1, 0.25, 1.0, 1.0)]
    held = [EpochEnd(1, 2, 2.0, 0.3, 2.1, 0.25, 1.0, 1.0, val_loss=2.2, val_acc=0.2)]
    assert [t.name for t in plots.accuracy_figure(plain).data] == ["train", "test"]
    figure = plots.accuracy_figure(held)
    assert [t.name for t in figure.data] == ["train", "test", "validation"]
    assert list(figure.data[2].y) == [0.2]
    hidden = plots.accuracy_figure(held, show_test=False)  # the class ranks by validation: test stays hidden
    assert [t.name for t in hidden.data] == ["train", "validation"]
