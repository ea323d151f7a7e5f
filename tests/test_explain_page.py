"""AppTest for the Explain page and panel, and for the shipped default model the pages fall back on."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from test_pages import lab_env, open_page, png, trained_checkpoint, with_model  # noqa: F401  (shared fixtures)

from cifar_lab import paths
from cifar_lab.checkpoint import load_checkpoint
from cifar_lab.config import ARCHS, TrainConfig
from cifar_lab.dashboard import ui_state
from cifar_lab.dashboard.explain_view import HEATMAP_SIDE, arch_summary, class_heatmap, explain, to_input
from cifar_lab.models import build_model, count_params

EXPLAIN = "pages/7_Explain.py"
SHIPPED_NOTE = "Using the shipped pretrained model"


@pytest.fixture
def shipped(tmp_path, monkeypatch, trained_checkpoint) -> Path:
    """A models folder holding only a 'shipped' checkpoint (plus its card); the runs folder stays empty."""
    folder = tmp_path / "shipped-models"
    folder.mkdir()
    monkeypatch.setenv(paths.ENV_MODELS, str(folder))
    (folder / "tiny-shipped.md").write_text("# tiny-shipped\n")
    return Path(shutil.copy(trained_checkpoint, folder / "tiny-shipped.pth"))


def captions(at) -> list[str]:
    return [c for image in at.image for c in image.captions]


def selectbox(at, label: str):
    matches = [s for s in at.selectbox if s.label == label]
    assert matches, f"no selectbox {label!r}; have {[s.label for s in at.selectbox]}"
    return matches[0]


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


# --- the page ---------------------------------------------------------------------------------------------------


def test_explain_page_without_a_model_gives_guidance_and_still_summarises_architectures():
    at = open_page(EXPLAIN)
    assert not at.error
    assert "No model yet" in at.info[0].value
    summary = selectbox(at, "Model")
    assert len(summary.options) == len(ARCHS)
    summary.set_value("tutorial").run()
    assert metric(at, "Parameters") == "62,006"


def test_explain_page_explains_an_uploaded_image(with_model):
    at = open_page(EXPLAIN)
    at.file_uploader(key="explain_upload").upload("red.png", png(), "image/png")
    at.run()
    assert not at.error and not at.exception, [e.value for e in at.exception]
    ckpt = load_checkpoint(with_model)
    assert at.subheader[0].value.startswith("Predicted: ")
    shown = captions(at)
    assert "what the model sees (32x32)" in shown
    assert sum("evidence for" in c for c in shown) == 2  # predicted class and the chosen one
    assert any("filters of 3x3 pixels" in c for c in shown)
    assert any("most active of" in c for c in shown)
    blocks = selectbox(at, "Conv block")
    assert len(blocks.options) >= 2  # tiny cnn: two conv blocks
    blocks.set_value(blocks.options[-1]).run()
    assert not at.exception
    # Blocks are named in words, the code's module path only in brackets.
    assert any(c.startswith("the ") and "(name in the code: " in c for c in captions(at))
    selectbox(at, "Evidence for class").set_value(ckpt.classes.index("cat")).run()
    assert not at.exception and any(c == "evidence for cat" for c in captions(at))


def test_summary_of_the_current_model_counts_every_parameter(with_model):
    at = open_page(EXPLAIN)
    assert selectbox(at, "Model").value == "current"
    total = count_params(load_checkpoint(with_model).model)
    assert metric(at, "Parameters") == f"{total:,}"
    table = at.dataframe[0].value
    assert {"layer", "block", "output", "parameters", "name in the code"} <= set(table.columns)
    assert int(table["parameters"].sum()) == total


def test_explain_page_explains_a_test_image(with_model):
    at = open_page(EXPLAIN)
    at.segmented_control(key="explain_source").set_value("Test image").run()
    at.number_input(key="explain_index").set_value(400).run()  # of 500 synthetic test images
    at.selectbox(key="explain_class").set_value("cat").run()  # about 50 cats: the number must stay in range
    assert not at.exception, [e.value for e in at.exception]
    at.number_input(key="explain_index").set_value(2).run()
    assert not at.error and not at.exception
    assert any("true class: cat" in c.value for c in at.caption)
    assert any("evidence for" in c for c in captions(at))


# --- the panel on Classify and Evaluate -------------------------------------------------------------------------


def test_classify_shows_why_this_prediction(with_model):
    at = open_page("pages/4_Classify.py")
    at.file_uploader(key="upload").upload("red.png", png(), "image/png")
    at.run()
    assert not at.exception
    panel = next(e for e in at.expander if e.label == "Why this prediction?")
    assert not panel.image  # closed: nothing is worked out
    at.session_state["classify_why"] = True  # as a tap on it does
    at.run()
    panel = next(e for e in at.expander if e.label == "Why this prediction?")
    inside = [c for image in panel.image for c in image.captions]
    assert any("evidence for" in c for c in inside) and any("filters of" in c for c in inside)


def test_evaluate_explains_a_picked_sample(with_model):
    at = open_page("pages/3_Evaluate.py")
    assert not [e for e in at.expander if e.label.startswith("Why this prediction?")]
    at.selectbox(key="explain_sample").set_value(3).run()
    assert not at.exception
    panel = next(e for e in at.expander if e.label.startswith("Why this prediction? Sample #4"))
    assert any("evidence for" in c for image in panel.image for c in image.captions)


# --- the shipped default model ----------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["pages/3_Evaluate.py", "pages/4_Classify.py", EXPLAIN])
def test_pages_fall_back_on_the_shipped_model_and_say_so(page, shipped):
    at = open_page(page)
    assert not at.error, [e.value for e in at.error]
    note = next(i.value for i in at.info if SHIPPED_NOTE in i.value)
    assert shipped.name in note and "Train page" in note and "tiny-shipped.md" in note
    assert str(shipped.parent) not in note  # the server's folders mean nothing on a student's page


def test_home_says_the_current_model_is_the_shipped_one(shipped):
    at = open_page()
    assert any("Current model: **tiny-shipped**" in m.value for m in at.markdown)
    assert any(SHIPPED_NOTE in c.value for c in at.caption)


def test_a_trained_model_is_used_only_once_chosen(shipped, lab_env, trained_checkpoint):
    lab_env.mkdir(parents=True, exist_ok=True)
    fresh = Path(shutil.copy(trained_checkpoint, lab_env / "fresh.pth"))  # e.g. a running job's epoch checkpoint
    at = open_page("pages/4_Classify.py")
    assert any(SHIPPED_NOTE in i.value for i in at.info)  # a new checkpoint is not picked by itself
    at.session_state["model_path"] = str(fresh)
    at.run()
    assert not any(SHIPPED_NOTE in i.value for i in at.info)
    assert "Model fresh " in at.caption[0].value


def test_a_chosen_shipped_model_is_current_without_the_fallback_note(shipped, with_model, lab_env):
    lab = ui_state.open_lab(lambda f: f, {"model_path": str(shipped)})
    assert lab.model_path == shipped and not lab.shipped and lab.model_reason == ui_state.YOURS
    class_model = ui_state.open_lab(lambda f: f, {})
    assert class_model.model_path == with_model and class_model.model_reason == ui_state.CLASS


def test_shipped_models_prefer_the_pretrained_default(tmp_path):
    for name in ("a.pth", ui_state.SHIPPED_MODEL, "z.pth", "notes.md"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in ui_state.shipped_models(tmp_path)] == [ui_state.SHIPPED_MODEL, "a.pth", "z.pth"]
    assert ui_state.shipped_models(tmp_path / "missing") == []
    assert ui_state.current_model(None, "", [], ui_state.shipped_models(tmp_path))[0].name == ui_state.SHIPPED_MODEL


def test_models_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.ENV_MODELS, raising=False)
    assert ui_state.models_dir() == paths.PRETRAINED_DIR  # the package's own folder, whatever the working directory
    monkeypatch.setenv(paths.ENV_MODELS, str(tmp_path))
    assert ui_state.models_dir() == tmp_path and tmp_path in ui_state.model_dirs()


# --- the pure panel content (cifar_lab.dashboard.explain_view) ----------------------------------------------------


def test_explanation_has_the_shapes_the_model_implies(trained_checkpoint):
    ckpt = load_checkpoint(trained_checkpoint)
    view = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    result = explain(ckpt.model, view, normalize=ckpt.config.normalize)
    assert result.probabilities.shape == (10,) and abs(float(result.probabilities.sum()) - 1) < 1e-5
    assert result.heatmap.shape == (HEATMAP_SIDE, HEATMAP_SIDE, 3) and result.heatmap.dtype == np.uint8
    assert result.filter_shape == (ckpt.config.width, 3, 3)
    assert [s.shape[0] for s in result.stages][:2] == [ckpt.config.width, ckpt.config.width]
    other = class_heatmap(ckpt.model, view, (result.predicted + 1) % 10, normalize=ckpt.config.normalize)
    assert other.shape == result.heatmap.shape and other.dtype == np.uint8
    assert ckpt.model.training is False


def test_to_input_refuses_what_is_not_a_picture():
    with pytest.raises(ValueError, match="uint8"):
        to_input(np.zeros((32, 32, 3), dtype=np.float32))


def test_arch_summary_counts_the_default_model():
    summary = arch_summary("cnn")
    assert summary.total_params == count_params(build_model(TrainConfig(arch="cnn")))
