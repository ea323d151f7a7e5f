"""AppTest for the home page and every page: with and without a model, training, stopping, classifying."""

from __future__ import annotations

import ast
import base64
import io
import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from apptest_helpers import PARTICIPANT, TEACHER_KEY, button_starting, fill_train_form, open_page, stop_everything
from PIL import Image
from streamlit.testing.v1 import AppTest

from cifar_lab import class_settings, devices, paths
from cifar_lab.checkpoint import load_checkpoint, save_checkpoint
from cifar_lab.config import TrainConfig
from cifar_lab.dashboard import ui_state
from cifar_lab.data import synthetic_data
from cifar_lab.roles import ENV_TEACHER_KEY
from cifar_lab.runs import RunStore
from cifar_lab.train import train
from cifar_lab_ui import navigation, start_run
from cifar_lab_ui.drawing import DRAWING_ADVICE, on_background

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    "dashboard.py",
    "pages/1_Data.py",
    "pages/2_Train.py",
    "pages/3_Evaluate.py",
    "pages/4_Classify.py",
    "pages/5_Models.py",
]
TINY = dict(
    arch="cnn", opt="sgd", width=8, depth=1, batch_size=64, epochs=1, eval_subset=0, precision="fp32", threads=1
)


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory) -> Path:
    """A tiny model trained for one epoch on generated images (about a second)."""
    config = TrainConfig(**TINY)
    result = train(config, synthetic_data(n_train=500, n_test=100))
    path = tmp_path_factory.mktemp("model") / "tiny.pth"
    return save_checkpoint(
        path,
        result.model,
        config,
        classes=synthetic_data(10, 10).classes,
        epoch=1,
        metrics={"test_accuracy": result.test_accuracy},
    )


@pytest.fixture(autouse=True)
def lab_env(tmp_path, monkeypatch):
    """Synthetic data, an empty runs folder, fresh process-wide caches; running jobs stopped afterwards."""
    monkeypatch.setenv("CIFAR_LAB_DATA", "synthetic")
    monkeypatch.setenv("CIFAR_LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFAR_LAB_RUNS_DB", str(tmp_path / "runs" / "cifar_lab.db"))
    monkeypatch.setenv(paths.ENV_MODELS, str(tmp_path / "models"))  # empty: no shipped model to fall back on
    monkeypatch.setenv(ENV_TEACHER_KEY, TEACHER_KEY)  # open_page(..., teacher=True) plays the teacher
    monkeypatch.chdir(tmp_path)
    st.cache_resource.clear()
    st.cache_data.clear()
    start_run._MEASURED.clear()  # what "Measure it here" timed: the server's, like the caches
    yield tmp_path / "runs"
    stop_everything(manager())


@pytest.fixture
def with_model(lab_env, trained_checkpoint) -> Path:
    """A trained checkpoint in the runs folder, made the class model (as the teacher does on the Class page)."""
    lab_env.mkdir(parents=True, exist_ok=True)
    path = Path(shutil.copy(trained_checkpoint, lab_env / "tiny.pth"))
    class_settings.update(RunStore(lab_env / "cifar_lab.db"), class_model=path.name)
    return path


def manager():
    """The same process-wide JobManager the pages use."""
    return st.cache_resource(ui_state.job_manager)(str(ui_state.runs_dir().resolve()))


def button(at: AppTest, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r}; have {[b.label for b in at.button]}"
    return matches[0]


def fill_tiny_form(at: AppTest, **overrides) -> AppTest:
    return fill_train_form(at, {**TINY, **overrides})


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def values(array) -> list:
    """A plotly JSON array: a list, or numpy data as {"dtype": ..., "bdata": base64}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def png(colour=(200, 30, 30), size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def wait_until_done(timeout: float = 60) -> None:
    job = manager().current
    assert job is not None and job.join(timeout)


# --- every page --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_a_model(page):
    at = open_page(page)
    assert not at.error, [e.value for e in at.error]
    assert at.title
    if page in ("pages/3_Evaluate.py", "pages/4_Classify.py"):
        assert "No model yet" in at.info[0].value


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_a_model(page, with_model):
    at = open_page(page)
    assert not at.error, [e.value for e in at.error]
    if page == "dashboard.py":
        assert any("Current model: **tiny**" in m.value for m in at.markdown)
    if page == "pages/3_Evaluate.py":
        assert at.metric[0].label == "Test accuracy" and len(chart_specs(at)) == 2
    if page == "pages/4_Classify.py":
        assert at.file_uploader(key="upload")
    if page == "pages/5_Models.py":
        assert len(at.dataframe) == 1


def test_every_page_links_to_every_page_and_calls_the_first_one_home():
    numbered = sorted((ROOT / "pages").glob("*.py"), key=lambda p: int(p.name.split("_")[0]))  # as Streamlit orders
    files = ["dashboard.py", *(f"pages/{p.name}" for p in numbered)]
    assert [path for path, _ in navigation.PAGES] == files  # a new page file is listed too
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)
    at.session_state["participant_name"] = PARTICIPANT  # who a page test plays: a participant with a name
    at.run()
    for page in files:
        at.switch_page(page).run()
        links = [link.proto.label for link in at.sidebar.get("page_link")]
        assert links == [label for _, label in navigation.PAGES] and links[0] == "Home", page
        assert list(at.sidebar)[-1].type != "divider", page  # a divider only parts links from controls


# --- home ------------------------------------------------------------------------------------------------------


def test_home_explains_how_to_get_real_data_and_offers_synthetic(monkeypatch):
    monkeypatch.delenv("CIFAR_LAB_DATA")
    at = open_page()
    assert "Real CIFAR-10 was not found" in at.warning[0].value and "synthetic" in at.warning[0].value
    assert at.sidebar.selectbox[0].value == "synthetic"
    assert "synthetic" in at.success[0].value


def test_quick_start_trains_the_classroom_preset():
    at = open_page()
    button(at, "Train a classroom model").click().run()
    job = manager().current
    assert job is not None and job.config.arch == "fastnet" and job.config.epochs == 3
    job.stop()


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("page", ["dashboard.py", "pages/2_Train.py"])
def test_home_and_train_pages_warn_of_slow_training_only_on_a_cpu_without_bf16(monkeypatch, page, fast):
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: fast)
    monkeypatch.setattr(devices, "resolve_device", lambda name="auto": torch.device("cpu"))
    captions = " ".join(c.value for c in open_page(page).caption)
    assert ("no native bf16" in captions) is not fast


def test_on_train_a_run_length_set_by_hand_turns_the_presets_time_budget_off_and_says_so():
    at = open_page("pages/2_Train.py")
    assert at.number_input(key="cfg_minutes").value == 2  # classroom is two minutes by time budget
    at.number_input(key="cfg_epochs").set_value(5).run()
    assert at.number_input(key="cfg_minutes").value == 0
    assert any(c.value.startswith("Epochs changed, so the time budget is off") for c in at.caption)
    at.number_input(key="cfg_minutes").set_value(3.0).run()  # a budget asked for again: the note goes
    assert not any("time budget is off" in c.value for c in at.caption)
    assert at.number_input(key="cfg_epochs").value == 5 and not at.error


def test_data_page_shows_an_image_at_each_side_the_lowres_epochs_allow():
    at = open_page("pages/1_Data.py")
    assert "Shrunk images (lowres epochs)" in [h.value for h in at.subheader]
    captions = [c for image in at.image for c in image.captions]
    assert [c for c in captions if c[:2].isdigit() and c.endswith(c[:2])] == [
        "32x32",
        "28x28",
        "24x24",
        "20x20",
        "16x16",
    ]
    assert not at.error


# --- train -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fast", [True, False])
def test_train_form_warns_when_bf16_is_chosen_on_a_cpu_that_only_emulates_it(monkeypatch, fast):
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: fast)
    at = open_page("pages/2_Train.py")
    at.selectbox(key="cfg_device").set_value("cpu")
    at.selectbox(key="cfg_precision").set_value("bf16").run()
    warned = [w.value for w in at.warning if "no native bf16" in w.value]
    assert bool(warned) is not fast
    assert not button(at, "Start training").disabled  # a warning, not a refusal
    at.selectbox(key="cfg_precision").set_value("fp32").run()
    assert not [w for w in at.warning if "no native bf16" in w.value]


def test_train_page_shows_model_size_and_follows_the_preset():
    at = open_page("pages/2_Train.py")
    at.selectbox(key="preset").set_value("tutorial").run()
    assert at.selectbox(key="cfg_arch").value == "tutorial" and at.number_input(key="cfg_batch_size").value == 4
    assert at.metric[0].label == "Parameters" and at.metric[0].value == "62,006"


def test_a_model_no_run_has_measured_is_timed_with_a_button_and_shown_in_minutes(lab_env):
    at = fill_tiny_form(open_page("pages/2_Train.py"), epochs=2)
    estimated = next(m for m in at.metric if m.label == "Estimated time here")
    assert estimated.value == "not measured yet"
    button(at, "Measure it here").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    estimated = next(m for m in at.metric if m.label == "Estimated time here")
    number, unit = estimated.value.split()
    assert unit in ("s", "min") and float(number) > 0  # a tiny run: seconds
    assert not [b for b in at.button if b.label == "Measure it here"]  # measured: nothing more to press
    other = fill_tiny_form(open_page("pages/2_Train.py", name="Bob"), epochs=2)  # the machine's time, for everyone
    assert next(m for m in other.metric if m.label == "Estimated time here").value == estimated.value


def test_invalid_form_shows_the_fix_and_disables_start():
    at = fill_tiny_form(open_page("pages/2_Train.py"), opt="sgd", momentum=0.0, nesterov=True)
    assert "nesterov" in at.error[0].value
    assert button(at, "Start training").disabled


def test_a_job_started_from_the_train_page_runs_to_the_end(lab_env):
    at = fill_tiny_form(open_page("pages/2_Train.py"))
    button(at, "Start training").click().run()
    wait_until_done()
    at.run()
    assert "Finished: test accuracy" in at.success[0].value
    assert at.progress[0].value == 100
    loss, accuracy = chart_specs(at)[:2]
    assert len(values(loss["data"][0]["x"])) > 0 and len(values(accuracy["data"][1]["y"])) == 1
    assert list(lab_env.glob("*.pth"))
    # The look inside after the last epoch: its test image's prediction, the filters, the feature maps.
    assert any(m.value.startswith("**Inside the network after epoch 1**") for m in at.markdown)
    assert any(m.value.startswith("The network says **") for m in at.markdown)
    captions = [c for image in at.image for c in image.captions]
    assert any(c.startswith("the 8 filters of the first layer") for c in captions)
    assert any(c.startswith("first block: ") for c in captions)


def test_stop_button_ends_the_job_and_keeps_the_last_epoch():
    at = fill_tiny_form(open_page("pages/2_Train.py"), epochs=500)
    button(at, "Start training").click().run()
    job = manager().current
    deadline = time.monotonic() + 60
    while not job.snapshot().epochs:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    at.run()
    button(at, "Stop").click().run()
    assert job.status == "stopped"
    assert "Stopped: kept the checkpoint of epoch" in at.warning[0].value


def test_a_second_start_queues_behind_the_running_run_and_only_its_owner_or_the_teacher_stops_one():
    ada = fill_tiny_form(open_page("pages/2_Train.py"), epochs=500)
    button(ada, "Start training").click().run()
    bob = fill_tiny_form(open_page("pages/2_Train.py", name="Bob"))  # another browser: its own session
    button(bob, "Start training").click().run()
    assert not bob.error, [e.value for e in bob.error]
    running, waiting = manager().running, manager().waiting()
    assert running.owner == PARTICIPANT and [q.record.owner for q in waiting] == ["Bob"]
    assert not [b for b in bob.button if b.label == "Stop"]  # Ada's run: no Stop for Bob
    button_starting(bob, "Take ").click().run()  # "Take <name> out of the queue": his own waiting run
    assert manager().waiting() == [] and running.status == "running"
    teacher = open_page("pages/2_Train.py", name="", teacher=True)
    button(teacher, "Stop").click().run()
    assert running.status == "stopped"


def test_an_unfinished_run_can_be_resumed_from_the_train_page():
    at = fill_tiny_form(open_page("pages/2_Train.py"), epochs=500)
    button(at, "Start training").click().run()
    job = manager().current
    deadline = time.monotonic() + 60
    while not job.snapshot().epochs:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    manager().stop()
    run_id = job.snapshot().run_id
    at.run()
    assert run_id in at.selectbox(key="resume_run").value
    button(at, "Resume from its last finished epoch").click().run()
    resumed = manager().current
    assert resumed is not job and resumed.snapshot().run_id == run_id
    assert run_id in at.subheader[0].value  # the live view shows the resumed run


# --- evaluate, classify, models ----------------------------------------------------------------------------------


def test_evaluate_gallery_filters_by_true_class(with_model):
    at = open_page("pages/3_Evaluate.py")
    at.selectbox(key="gallery_true").set_value("cat").run()
    assert not at.exception
    assert any("misclassified images match" in c.value for c in at.caption)


@pytest.mark.parametrize("trained_with_tta", [True, False])
def test_evaluate_scores_a_model_as_its_training_did_until_told_otherwise(
    lab_env, trained_checkpoint, trained_with_tta
):
    lab_env.mkdir(parents=True, exist_ok=True)
    ckpt = load_checkpoint(trained_checkpoint)
    save_checkpoint(
        lab_env / "tiny.pth",
        ckpt.model,
        replace(ckpt.config, tta=trained_with_tta),
        classes=ckpt.classes,
        epoch=ckpt.epoch,
    )
    class_settings.update(manager().store, class_model="tiny.pth")
    at = open_page("pages/3_Evaluate.py")
    box = next(c for c in at.sidebar.checkbox if c.label == "Test-time augmentation")
    assert box.value is trained_with_tta
    box.set_value(not trained_with_tta).run()
    assert not at.exception and not at.error
    assert next(c for c in at.sidebar.checkbox if c.label == "Test-time augmentation").value is not trained_with_tta


def test_classify_upload_shows_what_the_model_sees_and_top_3(with_model):
    at = open_page("pages/4_Classify.py")
    at.file_uploader(key="upload").upload("red.png", png(), "image/png")
    at.run()
    assert not at.error and not at.exception
    bars = chart_specs(at)[0]["data"][0]
    assert len(bars["y"]) == 3 and sum(bars["x"]) <= 1.0 + 1e-6
    assert at.subheader[0].value.startswith(bars["y"][0])
    assert "what the model sees" in at.image[0].captions[0]
    every_chart = chart_specs(at)[1]  # one click away: the expander with every class
    every = every_chart["data"][0]
    assert any(e.label == "All 10 classes" for e in at.expander) and len(set(every["y"])) == 10
    assert every_chart["layout"]["title"]["text"] == "Every class, most likely first"
    assert every["y"][:3] == bars["y"] and sum(every["x"]) == pytest.approx(1.0, abs=1e-4)


def test_classify_draw_says_why_drawings_are_hard_and_offers_filled_shapes_on_a_coloured_ground(with_model):
    at = open_page("pages/4_Classify.py")
    at.segmented_control(key="classify_source").set_value("Draw").run()
    assert any(c.value == DRAWING_ADVICE for c in at.caption)
    assert at.radio(key="canvas_tool").options == ["Brush", "Filled rectangle", "Filled circle"]
    assert at.color_picker(key="canvas_background").value != "#FFFFFF".lower()
    at.radio(key="canvas_tool").set_value("Filled circle").run()
    assert at.slider(key="canvas_size").disabled and not at.exception  # a shape has no brush size


def test_a_drawing_is_seen_on_its_background_colour_not_on_white():
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)  # transparent but one opaque red pixel
    rgba[0, 0] = (255, 0, 0, 255)
    seen = np.asarray(on_background(rgba, "#228b22"))
    assert tuple(seen[0, 0]) == (255, 0, 0) and tuple(seen[3, 3]) == (0x22, 0x8B, 0x22)


def test_classify_invalid_upload_shows_a_readable_error(with_model):
    at = open_page("pages/4_Classify.py")
    at.file_uploader(key="upload").upload("broken.png", b"this is not a picture", "image/png")
    at.run()
    assert not at.exception
    assert "broken.png is not an image this lab can read" in at.error[0].value


def test_models_page_refuses_a_bad_upload_and_adds_a_good_one(with_model, lab_env):
    assert not open_page("pages/5_Models.py").get("file_uploader")  # adding models is the teacher's
    at = open_page("pages/5_Models.py", teacher=True)
    at.file_uploader(key="upload_pth").upload("junk.pth", b"not a checkpoint")
    at.run()
    button(at, "Add this model").click().run()
    assert at.error[0].value.startswith("junk.pth ") and not (lab_env / "junk.pth").exists()
    at.file_uploader(key="upload_pth").set_value(("mine.pth", with_model.read_bytes(), "application/octet-stream"))
    at.run()
    button(at, "Add this model").click().run()
    assert "Added mine.pth" in at.success[0].value
    assert (lab_env / "mine.pth").is_file() and at.session_state["model_path"] == str(lab_env / "mine.pth")


def test_a_participant_uses_another_model_and_the_teacher_changes_the_class_model(with_model, lab_env):
    shutil.copy(with_model, lab_env / "older.pth")
    at = open_page("pages/5_Models.py")
    assert not [b for b in at.button if b.label == "Make it the class model"]  # the teacher's
    at.selectbox[0].set_value(next(label for label in at.selectbox[0].options if label.startswith("older "))).run()
    button(at, "Use it myself").click().run()
    assert at.session_state["model_path"] == str(lab_env / "older.pth")
    assert at.query_params["model"] in ("older.pth", ["older.pth"])  # in the URL: a reload keeps the choice
    teacher = open_page("pages/5_Models.py", name="", teacher=True)
    teacher.selectbox[0].set_value(next(o for o in teacher.selectbox[0].options if o.startswith("older "))).run()
    button(teacher, "Make it the class model").click().run()
    assert manager().settings().class_model == "older.pth"
    assert ui_state.open_lab(lambda f: f, {}).model_path == lab_env / "older.pth"


# --- the pages' pure helpers (cifar_lab.dashboard.ui_state) --------------------------------------------------------


def test_data_choice_prefers_the_environment_then_a_usable_data_folder(tmp_path):
    assert ui_state.data_choice({"CIFAR_LAB_DATA": "/some/where"}).options[0] == "/some/where"
    missing = ui_state.data_choice({})  # tmp_path (the cwd) has no ./data
    assert missing.source is None and missing.options[0] == "synthetic" and "CIFAR_LAB_DATA" in missing.problem
    for split in ("train", "test"):
        (tmp_path / "data" / split / "cat").mkdir(parents=True)
    assert ui_state.data_choice({}).source == "./data"


def test_current_model_is_the_session_s_choice_else_the_class_model_else_the_shipped_one(tmp_path):
    older, newer, shipped = tmp_path / "a.pth", tmp_path / "b.pth", tmp_path / "shipped.pth"
    for path in (older, newer, shipped):
        path.write_bytes(b"x")
    os.utime(older, (1, 1))
    assert ui_state.find_checkpoints((tmp_path,))[:1] == [newer] or newer in ui_state.find_checkpoints((tmp_path,))
    trained = [newer, older]
    assert ui_state.current_model(None, "", trained, [shipped]) == (shipped, ui_state.SHIPPED)  # never the newest
    assert ui_state.current_model(None, "a.pth", trained, [shipped]) == (older, ui_state.CLASS)
    assert ui_state.current_model(str(newer), "a.pth", trained, [shipped]) == (newer, ui_state.YOURS)
    gone = str(tmp_path / "gone.pth")
    assert ui_state.current_model(gone, "gone.pth", trained, [shipped]) == (shipped, ui_state.SHIPPED)
    assert ui_state.current_model(None, "", trained, []) == (None, "")


def test_uploaded_names_stay_in_the_folder_and_never_overwrite(tmp_path):
    (tmp_path / "model.pth").write_bytes(b"x")
    assert ui_state.safe_upload_name("model.pth", tmp_path) == tmp_path / "model-2.pth"
    assert ui_state.safe_upload_name("../../etc/passwd.pth", tmp_path).parent == tmp_path
    assert ui_state.safe_upload_name("...pth", tmp_path) == tmp_path / "uploaded.pth"


def test_form_values_make_float_fields_float():
    values = ui_state.form_values({**TrainConfig().to_dict(), "lr": 1, "epochs": 3})
    assert isinstance(values["lr"], float) and isinstance(values["epochs"], int)


def test_no_page_function_reads_the_lab_global_assigned_further_down():
    """Pages only draw: a function gets the Lab it uses as a parameter, so the page reads top to bottom."""
    offenders = []
    for path in [ROOT / "dashboard.py", *sorted((ROOT / "pages").glob("*.py"))]:
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, ast.FunctionDef):
                continue
            params = {a.arg for a in fn.args.args + fn.args.kwonlyargs}
            uses = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
            if "lab" in uses and "lab" not in params:
                offenders.append(f"{path.name}:{fn.lineno} {fn.name}")
    assert not offenders, f"functions reading the page's global `lab`: {offenders}"
