"""The pretrained model shipped in cifar_lab/pretrained/ loads safely and classifies a picture."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from cifar_lab import paths
from cifar_lab.checkpoint import load_checkpoint
from cifar_lab.inference import predict

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = paths.shipped_model()
REAL_SHIP = ROOT.parent / "shared" / "data" / "cifar10-jpeg" / "test" / "ship" / "0002.jpg"


def test_the_shipped_checkpoint_loads_with_weights_only_and_describes_itself(monkeypatch):
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    ckpt = load_checkpoint(SHIPPED)
    assert calls == [True]
    assert ckpt.config.arch == "fastnet" and len(ckpt.classes) == 10
    assert ckpt.metrics["test_accuracy"] > 0.85
    assert SHIPPED.stat().st_size < 10 * 2**20  # the dashboard's upload limit, and "keep it small"


def test_the_shipped_model_predicts_a_picture():
    ckpt = load_checkpoint(SHIPPED)
    if REAL_SHIP.is_file():
        image = Image.open(REAL_SHIP)
        top = predict(ckpt.model, image, classes=ckpt.classes, normalize=ckpt.config.normalize, top=3)
        assert top[0].label == "ship"
    else:  # without the real data: a made-up picture still gets three sorted classes
        image = Image.new("RGB", (64, 48), (40, 90, 200))
        top = predict(ckpt.model, image, classes=ckpt.classes, normalize=ckpt.config.normalize, top=3)
    assert len(top) == 3 and top[0].probability >= top[1].probability >= top[2].probability


@pytest.mark.parametrize("name", ["fastnet-cifar10.md"])
def test_the_shipped_model_has_a_card_with_the_command(name):
    card = (paths.PRETRAINED_DIR / name).read_text()
    assert "python -m cifar_lab train --preset best" in card and "test accuracy" in card


def test_a_page_names_the_shipped_model_and_its_card_by_file_name_not_by_the_server_s_folders():
    from cifar_lab.dashboard.ui_state import shipped_note

    note = shipped_note(SHIPPED, load_checkpoint(SHIPPED))
    assert SHIPPED.name in note and "test accuracy 9" in note
    assert str(SHIPPED.parent) not in note and SHIPPED.with_suffix(".md").name in note
