"""Checkpoints: exact round trip, the tutorial's bare state_dict, refusal of bad files, atomic writes."""

from __future__ import annotations

import io
import os
import pickle
import stat

import numpy as np
import pytest
import torch

from cifar_lab import checkpoint as ckpt_module
from cifar_lab.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from cifar_lab.config import TrainConfig
from cifar_lab.evaluate import predict_logits
from cifar_lab.models import TutorialNet, build_model
from cifar_lab.preprocess import CLASSES

CONFIG = TrainConfig(arch="cnn", width=8, depth=2, dropout=0.1, lr=0.05, epochs=3)


@pytest.fixture()
def model():
    torch.manual_seed(0)
    net = build_model(CONFIG)
    net.train()
    with torch.no_grad():  # non-default BatchNorm statistics, so the round trip must carry buffers too
        net(torch.randn(16, 3, 32, 32) * 3 + 1)
    return net.eval()


@pytest.fixture()
def saved(tmp_path, model):
    path = save_checkpoint(
        tmp_path / "model.pth",
        model,
        CONFIG,
        classes=CLASSES,
        epoch=3,
        metrics={"test_accuracy": 0.5, "per_class": {"cat": 0.25}},
    )
    return path


def error_message(source, **kwargs) -> str:
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(source, **kwargs)
    return str(err.value)


# --- round trip -------------------------------------------------------------------------------------------------


def test_round_trip_is_exact(saved, model):
    loaded = load_checkpoint(saved)
    assert isinstance(loaded, Checkpoint)
    original, restored = model.state_dict(), loaded.model.state_dict()
    assert set(original) == set(restored)
    for key in original:
        assert torch.equal(original[key], restored[key]), key
    assert loaded.config == CONFIG
    assert loaded.classes == CLASSES and loaded.epoch == 3
    assert loaded.metrics == {"test_accuracy": 0.5, "per_class": {"cat": 0.25}}
    assert loaded.path == saved and loaded.created
    assert not loaded.model.training
    assert all(p.device.type == "cpu" for p in loaded.model.parameters())


def test_predictions_agree_after_reload(saved, model, images_u8):
    loaded = load_checkpoint(saved)
    before = predict_logits(model, images_u8, normalize=CONFIG.normalize)
    after = predict_logits(loaded.model, images_u8, normalize=loaded.config.normalize)
    assert torch.equal(before, after)


def test_load_from_bytes(saved, model):
    loaded = load_checkpoint(saved.read_bytes())
    assert loaded.path is None
    assert all(torch.equal(v, loaded.model.state_dict()[k]) for k, v in model.state_dict().items())


def test_save_a_state_dict_and_resume_state(tmp_path, model):
    resume = {"epoch": 2, "step": 10, "optimizer": {"state": {}, "param_groups": []}}
    path = save_checkpoint(
        tmp_path / "sub" / "dir" / "m.pth", model.state_dict(), CONFIG, classes=CLASSES, epoch=2, resume=resume
    )
    loaded = load_checkpoint(path)
    assert loaded.resume == resume and loaded.epoch == 2


def test_custom_class_names_round_trip(tmp_path):
    config = TrainConfig(arch="cnn", width=4, depth=1)
    classes = ("apple", "pear", "plum")
    path = save_checkpoint(tmp_path / "fruit.pth", build_model(config, 3), config, classes=classes, epoch=1)
    loaded = load_checkpoint(path)
    assert loaded.classes == classes
    assert loaded.model(torch.zeros(1, 3, 32, 32)).shape == (1, 3)


# --- the tutorial's own file -------------------------------------------------------------------------------------


def test_bare_tutorial_state_dict_loads(tmp_path):
    torch.manual_seed(0)
    net = TutorialNet()
    path = tmp_path / "cifar_net.pth"
    torch.save(net.state_dict(), path)  # exactly what the PyTorch tutorial does
    for arch in (None, "tutorial"):
        loaded = load_checkpoint(path, arch=arch)
        assert loaded.config.arch == "tutorial"
        assert loaded.config.normalize == "half"  # the tutorial's Normalize((0.5,) * 3, (0.5,) * 3)
        assert loaded.classes == CLASSES
        for key, value in net.state_dict().items():
            assert torch.equal(value, loaded.model.state_dict()[key])


def test_bare_state_dict_of_another_arch_needs_its_name(tmp_path, model):
    path = tmp_path / "bare_cnn.pth"
    torch.save(model.state_dict(), path)
    message = error_message(path)
    assert "--arch" in message or "architecture" in message
    message = error_message(path, arch="tutorial")
    assert "tutorial" in message and "architecture" in message


def test_weights_that_do_not_fit_are_described_in_words_not_pytorch_s_text(tmp_path):
    path = tmp_path / "wide.pth"
    torch.save(build_model(TrainConfig(arch="cnn", width=16, depth=2)).state_dict(), path)
    message = error_message(path, arch="cnn")  # the default cnn is wider and deeper
    assert "does not fit the 'cnn' architecture" in message and "of another shape (such as" in message
    assert "in the file" in message and "in the network" in message
    assert "Error(s) in loading" not in message and "size mismatch" not in message


def test_a_file_torch_cannot_read_is_refused_without_torch_s_advice(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"PK\x03\x04 not really a zip archive" * 10)
    message = error_message(path)
    assert "not a model checkpoint this lab can read" in message
    assert "weights_only" not in message and "torch.load" not in message  # never point at the unsafe option


def test_bare_state_dict_with_unknown_arch_lists_names(tmp_path):
    path = tmp_path / "cifar_net.pth"
    torch.save(TutorialNet().state_dict(), path)
    message = error_message(path, arch="vgg16")
    assert "vgg16" in message and "tutorial" in message and "resnet" in message


# --- files that must be refused ----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    assert "no such file" in error_message(tmp_path / "nope.pth")


def test_a_folder_is_not_a_checkpoint(tmp_path):
    assert "no such file" in error_message(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    assert "empty" in error_message(path)


@pytest.mark.parametrize("cut", [0.5, 0.9, 100, -10])
def test_truncated_file(saved, cut):
    raw = saved.read_bytes()
    end = int(len(raw) * cut) if isinstance(cut, float) else cut
    saved.write_bytes(raw[:end])
    message = error_message(saved)
    assert "corrupt" in message or "truncated" in message


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_bytes_are_reported_as_corrupt_not_as_unsafe(tmp_path, seed):
    path = tmp_path / "noise.pth"
    path.write_bytes(bytes(np.random.default_rng(seed).integers(0, 256, 4096, dtype=np.uint8)))
    message = error_message(path)
    assert "corrupt" in message or "not a" in message
    assert "could run code" not in message  # noise is damage, not an attack; the advice must fit


@pytest.mark.parametrize(
    "content",
    [b"these are my notes, not a model\n", b"hello world", b'{"json": 1}', b"GIF89a", b"\x89PNG\r\n\x1a\n" + b"0" * 50],
)
def test_other_files_are_refused_with_checkpoint_error(tmp_path, content):
    # Whatever the unpickler trips over (IndexError, struct.error, ...), the caller sees one error type.
    path = tmp_path / "notes.pth"
    path.write_bytes(content)
    message = error_message(path)
    assert str(path) in message


def test_flipped_bytes_inside_the_archive(saved):
    raw = bytearray(saved.read_bytes())
    for i in range(len(raw) // 3, len(raw) // 3 + 64):
        raw[i] ^= 0xFF
    saved.write_bytes(bytes(raw))
    try:
        loaded = load_checkpoint(saved)
    except CheckpointError:
        return
    # A flip that lands inside tensor storage cannot be detected (no checksum); the model must still load.
    assert loaded.model is not None


class _Payload:
    """Unpickling this object would create `marker`: code running at load time."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("how", ["pickle", "torch.save", "inside a checkpoint"])
def test_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path, how, model):
    marker = tmp_path / "code_ran"
    payload = _Payload()
    payload.marker = str(marker)
    path = tmp_path / "evil.pth"
    if how == "pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    elif how == "torch.save":
        torch.save({"conv.weight": payload}, path)
    else:
        buffer = io.BytesIO()
        torch.save(
            {
                "format": ckpt_module.FORMAT,
                "version": 1,
                "state_dict": model.state_dict(),
                "config": CONFIG.to_dict(),
                "classes": list(CLASSES),
                "metrics": {"x": payload},
            },
            buffer,
        )
        path.write_bytes(buffer.getvalue())
    message = error_message(path)
    assert "trust" in message or "code" in message
    assert not marker.exists(), "loading the checkpoint ran code from it"


def test_non_checkpoint_pytorch_file(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    assert "not a model checkpoint" in error_message(path)


def test_checkpoint_of_another_architecture(tmp_path):
    tutorial_weights = TutorialNet().state_dict()
    path = save_checkpoint(tmp_path / "m.pth", tutorial_weights, CONFIG, classes=CLASSES, epoch=1)
    message = error_message(path)
    assert "'cnn'" in message and "architecture" in message


def test_checkpoint_of_another_width(tmp_path, model):
    path = save_checkpoint(tmp_path / "m.pth", model, CONFIG.replace(width=16), classes=CLASSES, epoch=1)
    message = error_message(path)
    assert "width 16" in message


def test_checkpoint_of_another_class_count(tmp_path, model):
    path = save_checkpoint(tmp_path / "m.pth", model, CONFIG, classes=("a", "b", "c"), epoch=1)
    message = error_message(path)
    assert "3 classes" in message


def test_checkpoint_with_invalid_config(tmp_path, model):
    path = tmp_path / "m.pth"
    save_checkpoint(path, model, CONFIG, classes=CLASSES, epoch=1)
    payload = torch.load(path, weights_only=True)
    payload["config"]["arch"] = "transformer"
    torch.save(payload, path)
    message = error_message(path)
    assert "config" in message and "transformer" in message


# --- atomic writes -----------------------------------------------------------------------------------------------


def test_failed_save_leaves_the_old_file_and_no_temp_file(tmp_path, saved, model, monkeypatch):
    before = saved.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_module.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(saved, model, CONFIG.replace(width=16), classes=CLASSES, epoch=9)
    monkeypatch.undo()
    assert saved.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth"]
    assert load_checkpoint(saved).epoch == 3


def test_save_replaces_an_existing_checkpoint(tmp_path, saved, model):
    save_checkpoint(saved, model, CONFIG, classes=CLASSES, epoch=4)
    assert load_checkpoint(saved).epoch == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth"]


def test_save_into_read_only_folder_raises_and_keeps_the_old_file(tmp_path, saved, model):
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions; see the simulated variant below")
    before = saved.read_bytes()
    tmp_path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(OSError):
            save_checkpoint(saved, model, CONFIG, classes=CLASSES, epoch=9)
    finally:
        tmp_path.chmod(stat.S_IRWXU)
    assert saved.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth"]


def test_save_where_no_temp_file_can_be_made_keeps_the_old_file(tmp_path, saved, model, monkeypatch):
    # What a read-only folder does to the save, also when the tests run as root (who may write anywhere).
    before = saved.read_bytes()

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setattr(ckpt_module.tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError):
        save_checkpoint(saved, model, CONFIG, classes=CLASSES, epoch=9)
    monkeypatch.undo()
    assert saved.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth"]
