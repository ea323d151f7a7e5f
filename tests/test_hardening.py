"""Bad input and faults through the pages and the job API: a clear message every time, and nothing lost.

Uploads go through the Classify page, checkpoints through the Models page, configs through the Train form,
names through the Runs page; divergence, a full disk and a read-only folder through the JobManager the
dashboard uses. The core's own checks are tested in test_inference, test_checkpoint and test_config.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import logging
import os
import pickle
import stat
import struct
import threading
import types
import zlib
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from apptest_helpers import PARTICIPANT, TEACHER_KEY, button_starting, fill_train_form, open_page, stop_everything
from PIL import Image
from streamlit.testing.v1 import AppTest

from cifar_lab import checkpoint as ckpt_module
from cifar_lab import class_settings, inference, paths
from cifar_lab import train as train_module
from cifar_lab.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from cifar_lab.config import ARCHS, PRESETS, TrainConfig
from cifar_lab.dashboard import ui_state
from cifar_lab.dashboard.jobs import JobManager
from cifar_lab.data import synthetic_data
from cifar_lab.models import build_model
from cifar_lab.preprocess import CLASSES
from cifar_lab.roles import ENV_TEACHER_KEY
from cifar_lab.runs import RunStore

ROOT = Path(__file__).resolve().parents[1]
TINY = TrainConfig(
    arch="cnn",
    width=8,
    depth=1,
    batch_size=32,
    epochs=3,
    eval_subset=0,
    precision="fp32",
    device="cpu",
    threads=1,
    schedule="constant",
    lr=0.05,
    flip=False,
    crop_pad=0,
)
FORM = dict(
    arch="cnn", opt="sgd", width=8, depth=1, batch_size=64, epochs=1, eval_subset=0, precision="fp32", threads=1
)


@pytest.fixture(autouse=True)
def lab_env(tmp_path, monkeypatch):
    """Synthetic data, a runs folder with one model in it, fresh caches; running jobs stopped afterwards."""
    monkeypatch.setenv("CIFAR_LAB_DATA", "synthetic")
    monkeypatch.setenv("CIFAR_LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFAR_LAB_RUNS_DB", str(tmp_path / "runs" / "cifar_lab.db"))
    monkeypatch.setenv(paths.ENV_MODELS, str(tmp_path / "models"))  # empty: no shipped model to fall back on
    monkeypatch.chdir(tmp_path)
    st.cache_resource.clear()
    st.cache_data.clear()
    (tmp_path / "runs").mkdir()
    monkeypatch.setenv(ENV_TEACHER_KEY, TEACHER_KEY)  # open_page(..., teacher=True) plays the teacher
    save_checkpoint(tmp_path / "runs" / "model.pth", build_model(TINY), TINY, classes=CLASSES, epoch=1)
    class_settings.update(RunStore(tmp_path / "runs" / "cifar_lab.db"), class_model="model.pth")
    yield tmp_path / "runs"
    stop_everything(manager())


@pytest.fixture(scope="module")
def data():
    return synthetic_data(n_train=256, n_test=64)


def manager() -> JobManager:
    """The process-wide JobManager the pages use."""
    return st.cache_resource(ui_state.job_manager)(str(ui_state.runs_dir().resolve()))


button = button_starting


def forge(at: AppTest, widget, **value) -> AppTest:
    """Run with a widget value no browser would send (a disabled button pressed, a choice not offered), as a
    hand-made websocket message could: AppTest's own setters refuse both."""
    states = at._tree.get_widget_states()
    for state in states.widgets:
        if state.id == widget.id:
            for name, v in value.items():
                setattr(state, name, v)
    return at._run(states)


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file under `folder` (the run store excepted, it changes by design) -> its SHA-256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith("cifar_lab.db")
    }


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A valid PNG that claims width x height pixels yet holds almost none: how a decompression bomb starts."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# --- uploads through the Classify page ---------------------------------------------------------------------------

NOISE = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
JPEG, PNG = encode(Image.fromarray(NOISE), "JPEG"), encode(Image.fromarray(NOISE))
BAD_IMAGES = {
    "not an image": ("report.jpg", b"%PDF-1.4\n" + b"0" * 100, "is not an image this lab can read"),
    "empty file": ("empty.png", b"", "is not an image this lab can read"),
    "truncated JPEG": ("cut.jpg", JPEG[: len(JPEG) // 2], "damaged or truncated"),
    "truncated PNG": ("cut.png", PNG[: len(PNG) // 2], "damaged or truncated"),
    "decompression bomb": ("bomb.png", png_header(100_000, 100_000), "decompression bomb"),
    "over Pillow's warning limit": ("big.png", png_header(12_000, 12_000), "decompression bomb"),
    "huge dimensions": ("huge.png", png_header(7_000, 7_000), "7000x7000 pixels is too large"),
}


def classify(at: AppTest, name: str, content: bytes) -> AppTest:
    at.file_uploader(key="upload").upload(name, content, "application/octet-stream")
    return at.run()


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_a_bad_upload_gets_a_clear_message_and_the_page_keeps_working(case, lab_env):
    name, content, expected = BAD_IMAGES[case]
    before = fingerprint(lab_env)
    at = classify(open_page("pages/4_Classify.py"), name, content)
    assert not at.exception, [e.value for e in at.exception]
    assert at.error[0].value.startswith(name) and expected in at.error[0].value
    assert not top_charts(at)
    at = classify(at, "fine.png", encode(Image.new("RGB", (40, 30), (200, 30, 30))))
    assert not at.error and len(top_charts(at)) == 1  # the same session classifies the next picture
    assert fingerprint(lab_env) == before


def palette_with_transparency() -> Image.Image:
    image = Image.new("P", (20, 20), 1)
    image.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)  # entry 1 is red
    image.info["transparency"] = 0  # entry 0 transparent (unused here)
    return image


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (16, 16), c) for c in ((220, 20, 20), (20, 220, 20), (20, 20, 220))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def exif_rotated_jpeg() -> bytes:
    """40 wide, 20 tall, left half red, right half blue, tagged 'rotate 90 degrees clockwise to display'."""
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20], pixels[:, 20:] = (255, 0, 0), (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(Image.fromarray(pixels), "JPEG", quality=95, exif=exif.tobytes())


# name, bytes, (row, col) of the 32x32 view, and the colour the model must see there
GOOD_ODD_IMAGES = {
    "RGBA, transparent": ("clear.png", encode(Image.new("RGBA", (20, 20), (255, 0, 0, 0))), (16, 16), (255, 255, 255)),
    "LA, half grey": ("la.png", encode(Image.new("LA", (20, 20), (0, 128))), (16, 16), (127, 127, 127)),
    "P with transparency": ("p.png", encode(palette_with_transparency()), (16, 16), (200, 30, 30)),
    "I;16 grey": (
        "deep.png",
        encode(Image.fromarray(np.full((20, 20), 32768, dtype=np.uint16))),
        (16, 16),
        (127, 127, 127),
    ),
    "CMYK": (
        "print.jpg",
        encode(Image.new("CMYK", (20, 20), (0, 255, 255, 0)), "JPEG", quality=95),
        (16, 16),
        (255, 0, 0),
    ),
    "animated GIF": ("anim.gif", animated_gif(), (16, 16), (220, 20, 20)),  # the first frame
    "EXIF orientation, top": ("phone.jpg", exif_rotated_jpeg(), (4, 4), (255, 0, 0)),  # left half is now on top
    "EXIF orientation, bottom": ("phone.jpg", exif_rotated_jpeg(), (28, 4), (0, 0, 255)),
}


@pytest.mark.parametrize("case", list(GOOD_ODD_IMAGES))
def test_odd_but_valid_images_are_classified_as_the_model_should_see_them(case, monkeypatch):
    name, content, (row, col), colour = GOOD_ODD_IMAGES[case]
    seen = []
    real = inference.model_view
    monkeypatch.setattr(inference, "model_view", lambda image: seen.append(real(image)) or seen[-1])
    at = classify(open_page("pages/4_Classify.py"), name, content)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(top_charts(at)) == 1 and "what the model sees" in at.image[0].captions[0]
    assert seen and seen[0].shape == (32, 32, 3)
    assert np.abs(seen[0][row, col].astype(int) - colour).max() <= 12, seen[0][row, col]


# --- checkpoints through the Models page -------------------------------------------------------------------------


class RunsCode:
    """Unpickling this creates the file `marker`: code that runs at load time."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def checkpoint_bytes(state, config: TrainConfig = TINY, classes=CLASSES, **extra) -> bytes:
    buffer = io.BytesIO()
    torch.save(
        {
            "format": FORMAT,
            "version": 1,
            "state_dict": state,
            "config": config.to_dict(),
            "classes": list(classes),
            "epoch": 1,
            "metrics": {},
            **extra,
        },
        buffer,
    )
    return buffer.getvalue()


def bad_checkpoints(marker: Path) -> dict[str, tuple[bytes, str]]:
    good = checkpoint_bytes(build_model(TINY).state_dict())
    evil = RunsCode()
    evil.marker = str(marker)
    return {
        "corrupt bytes": (bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)), "damaged"),
        "truncated": (good[: len(good) // 2], "cut short"),
        "empty file": (b"", "is empty (0 bytes)"),
        "pickle that runs code": (pickle.dumps(evil, protocol=2), "could run code"),
        "code inside a checkpoint": (
            checkpoint_bytes(build_model(TINY).state_dict(), metrics_hook=evil),
            "could run code",
        ),
        "another architecture": (
            checkpoint_bytes(build_model(TrainConfig(arch="tutorial")).state_dict()),
            "does not fit the 'cnn' architecture",
        ),
        "another class count": (checkpoint_bytes(build_model(TINY).state_dict(), classes=("a", "b", "c")), "3 classes"),
        "not a checkpoint": (encode(Image.new("RGB", (8, 8))), "not a model checkpoint this lab can read"),
        "bare weights of another net": (torch_bytes(build_model(TINY).state_dict()), "cannot tell which architecture"),
    }


def top_charts(at) -> list:
    """Classify's top-3 chart (the one with every class sits in a closed expander beside it)."""
    return [c for c in at.get("plotly_chart") if getattr(c, "key", None) != "all_classes"]


def torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


# Library text, tracebacks and command-line flags have no place on a page.
NOT_FOR_A_PAGE = ("weights_only", "Traceback", "Error(s) in loading", "torch.load", "--", "UnpicklingError")


@pytest.mark.parametrize(
    "case",
    [
        "corrupt bytes",
        "truncated",
        "empty file",
        "pickle that runs code",
        "code inside a checkpoint",
        "another architecture",
        "another class count",
        "not a checkpoint",
        "bare weights of another net",
    ],
)
def test_a_bad_checkpoint_upload_is_refused_and_changes_nothing(case, lab_env, tmp_path):
    marker = tmp_path / "code_ran"
    content, expected = bad_checkpoints(marker)[case]
    before = fingerprint(lab_env)
    at = open_page("pages/5_Models.py", teacher=True)
    at.file_uploader(key="upload_pth").upload("upload.pth", content)
    at.run()
    button(at, "Add this model").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.error[0].value.startswith("upload.pth") and expected in at.error[0].value, at.error[0].value
    assert not any(text in at.error[0].value for text in NOT_FOR_A_PAGE), at.error[0].value
    assert not marker.exists(), "loading the upload ran code from it"
    assert fingerprint(lab_env) == before and "model_path" not in at.session_state
    assert len(at.dataframe[0].value) == 1  # still just the one good model


# --- configs through the Train form ------------------------------------------------------------------------------


def fill_form(at: AppTest, **overrides) -> AppTest:
    return fill_train_form(at, {**FORM, **overrides})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lr", 0.0),
        ("lr", 1e9),
        ("lr", float("nan")),
        ("epochs", 5000),
        ("batch_size", 0),
        ("width", 2),
        ("dropout", 0.95),
        ("warmup", 0.95),
        ("label_smoothing", 1.0),
    ],
)
def test_an_invalid_form_value_is_named_and_no_job_starts_even_on_a_forged_click(field, value):
    at = fill_form(open_page("pages/2_Train.py"), **{field: value})
    assert not at.exception
    assert at.error[0].value.startswith(f"Fix the form: {field}="), at.error[0].value
    start = button(at, "Start training")
    assert start.disabled
    forge(at, start, trigger_value=True)  # Streamlit drops a disabled widget's value server-side
    assert not at.exception and manager().current is None and manager().store.list_runs() == []


def test_a_remembered_form_with_unknown_names_falls_back_to_valid_choices():
    at = open_page("dashboard.py")
    at.session_state["train_form"] = {**TrainConfig().to_dict(), "arch": "vit", "opt": "lion", "future": 1}
    at.switch_page("pages/2_Train.py").run()
    assert not at.exception and not at.error
    assert at.selectbox(key="cfg_arch").value in ARCHS


# --- a diverging run ---------------------------------------------------------------------------------------------


def test_a_diverging_run_is_failed_with_the_reason_and_earlier_checkpoints_stay(lab_env):
    config = TrainConfig(
        arch="tutorial",
        lr=100.0,
        schedule="constant",
        batch_size=64,
        epochs=2,
        flip=False,
        crop_pad=0,
        precision="fp32",
        device="cpu",
        threads=1,
    )  # as in test_train: NaN in epoch 1
    before = fingerprint(lab_env)
    job = manager().start(config, data=synthetic_data(n_train=512, n_test=128, seed=0), name="diverges")
    assert job.join(60)
    snap = job.snapshot()
    record = manager().store.get_run(snap.run_id)
    assert snap.status == record.status == "failed"
    assert "diverged" in record.message and "Lower the learning rate" in record.message
    assert snap.message == record.message and snap.checkpoint is None
    assert fingerprint(lab_env) == before  # no file written, the earlier model untouched


def test_divergence_after_an_epoch_keeps_that_epochs_checkpoint_loadable_and_resumable(lab_env, data, monkeypatch):
    real = train_module.F.cross_entropy

    def saved() -> bool:  # the run's file is claimed empty at the start; epoch 1 on disk makes it non-empty
        return any(p.stat().st_size for p in lab_env.glob("late-*.pth"))

    def nan_once_saved(logits, *args, **kwargs):  # the loss turns NaN in training once epoch 1 is on disk
        loss = real(logits, *args, **kwargs)
        return loss * float("nan") if logits.requires_grad and saved() else loss

    monkeypatch.setattr(train_module, "F", types.SimpleNamespace(cross_entropy=nan_once_saved))
    job = manager().start(TINY, data=data, name="late")
    assert job.join(60)
    record = manager().store.get_run(job.snapshot().run_id)
    assert (record.status, record.epochs_done) == ("failed", 1) and "diverged at step 9" in record.message
    ckpt = load_checkpoint(job.checkpoint_path)
    assert ckpt.epoch == 1 and all(torch.isfinite(v).all() for v in ckpt.model.state_dict().values())
    assert ckpt.resume["epoch"] == 1  # what a resume continues from


# --- a full disk and a read-only folder --------------------------------------------------------------------------


def test_a_full_disk_fails_the_run_cleanly_keeps_the_last_checkpoint_and_resume_finishes_it(lab_env, data, monkeypatch):
    real_replace, saves = os.replace, []

    def disk_full_after_one_save(src, dst, *args, **kwargs):
        if str(dst).endswith(".pth"):
            saves.append(dst)
            if len(saves) > 1:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(ckpt_module.os, "replace", disk_full_after_one_save)
        job = manager().start(TINY, data=data, name="full")
        assert job.join(60)
    snap = job.snapshot()
    record = manager().store.get_run(snap.run_id)
    assert snap.status == record.status == "failed" and snap.message == record.message
    path = job.checkpoint_path
    assert f"the disk holding {lab_env} is full: free some disk space" in record.message
    assert f"{path.name}) is intact" in record.message and record.epochs_done == 1
    assert len(record.message.splitlines()) == 1 and "Errno" not in record.message
    assert load_checkpoint(path).epoch == 1
    assert not [p for p in lab_env.iterdir() if p.suffix == ".tmp"]  # the half-written file was removed
    resumed = manager().resume(snap.run_id)  # space freed: carry on from epoch 1
    assert resumed.join(60)
    record = manager().store.get_run(snap.run_id)
    assert (record.status, record.epochs_done) == ("completed", 3) and load_checkpoint(path).epoch == 3


def test_a_read_only_folder_fails_the_run_with_the_fix_and_writes_nothing(lab_env, data, monkeypatch):
    def refuse(*args, **kwargs):  # what mkstemp meets in a read-only folder (also as root, who may write anyway)
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(lab_env))

    before = fingerprint(lab_env)
    with monkeypatch.context() as patch:
        patch.setattr(ckpt_module.tempfile, "mkstemp", refuse)
        job = manager().start(TINY, data=data, name="readonly")
        assert job.join(60)
    record = manager().store.get_run(job.snapshot().run_id)
    assert job.status == record.status == "failed"
    assert f"could not save epoch 1: no permission to write in {lab_env}" in record.message
    assert "make it writable or choose another --out folder" in record.message
    assert "no epoch had been saved yet" in record.message
    assert fingerprint(lab_env) == before


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_really_read_only_folder_fails_the_run_and_keeps_the_old_checkpoint(lab_env, data):
    job = manager().start(TINY.replace(epochs=1), data=data, name="model")  # the name is taken: a file of its own
    lab_env.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        assert job.join(60)
    finally:
        lab_env.chmod(stat.S_IRWXU)
    assert job.status == "failed" and "make it writable" in job.snapshot().message
    assert load_checkpoint(lab_env / "model.pth").epoch == 1


def refuse_writes_in(folder: Path, patch: pytest.MonkeyPatch) -> None:
    """Every way Python opens a file for writing inside `folder` fails as on a full disk."""
    real_open, real_os_open, base = io.open, os.open, folder.resolve()

    def inside(path) -> bool:
        return not isinstance(path, int) and Path(os.fspath(path)).resolve().is_relative_to(base)

    def full(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    def fake_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wxa+") and inside(file):
            full(file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):  # what tempfile.mkstemp uses
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            full(path)
        return real_os_open(path, flags, *args, **kwargs)

    for module in (builtins, io):
        patch.setattr(module, "open", fake_open)
    patch.setattr(os, "open", fake_os_open)


def test_a_model_upload_into_a_full_or_read_only_folder_is_refused_with_a_message(lab_env, monkeypatch):
    good = (lab_env / "model.pth").read_bytes()
    at = open_page("pages/5_Models.py", teacher=True)
    at.file_uploader(key="upload_pth").upload("copy.pth", good)
    at.run()
    with monkeypatch.context() as patch:
        refuse_writes_in(lab_env, patch)
        button(at, "Add this model").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "No space left on device" in at.error[0].value
    assert sorted(p.name for p in lab_env.glob("*.pth")) == ["model.pth"]


def test_a_valid_model_with_another_class_count_is_explained_on_the_evaluate_page(lab_env):
    three = TINY.replace(width=8)
    save_checkpoint(lab_env / "three.pth", build_model(three, 3), three, classes=("a", "b", "c"), epoch=1)
    class_settings.update(manager().store, class_model="three.pth")  # the teacher made it the class model
    at = open_page("pages/3_Evaluate.py")
    assert not at.exception, [e.value for e in at.exception]
    assert "3" in at.error[0].value and "10" in at.error[0].value


# --- two sessions pressing Start at the same moment ------------------------------------------------------------


@pytest.mark.parametrize("second_name", ["Bob", "ada "])  # another participant; the same one in another tab
def test_two_sessions_pressing_start_together_queue_fairly_and_tell_the_other_why(second_name, monkeypatch):
    first = fill_form(open_page("pages/2_Train.py"), epochs=500)
    second = fill_form(open_page("pages/2_Train.py", name=second_name), epochs=500)  # another browser
    together, real_submit = threading.Barrier(2), JobManager.submit
    first_waits = threading.Event()

    def submit_together(self, *args, **kwargs):  # both clicks reach the manager before either has queued a run
        first_waits.set()
        together.wait(timeout=30)
        return real_submit(self, *args, **kwargs)

    monkeypatch.setattr(JobManager, "submit", submit_together)
    for at in (first, second):
        button(at, "Start training").click()
    threads = [threading.Thread(target=at.run) for at in (first, second)]
    # AppTest keeps one class-wide flag (PagesManager.uses_pages_directory) that every run resets before reading it
    # back; two runs setting up at once can read the other's reset and run dashboard.py instead of the page. So
    # the second session sets up only once the first is inside the manager; they still meet there together.
    threads[0].start()
    assert first_waits.wait(60), "the first session's click never reached the job manager"
    threads[1].start()
    for t in threads:
        t.join(60)
    assert not first.exception and not second.exception
    runs = manager().store.list_runs()
    assert manager().running is not None
    if second_name == "Bob":  # one trains, the other waits its turn
        assert sorted(r.status for r in runs) == ["queued", "running"] and not first.error and not second.error
    else:  # one run per participant: the other tab is told which run is already theirs
        told = [at for at in (first, second) if at.error and "You already have one run" in at.error[0].value]
        assert len(runs) == 1 and len(told) == 1 and runs[0].id in told[0].error[0].value


# --- names and paths from the UI ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../x", "../../etc/passwd", "/tmp/evil", "a\\..\\b"])
def test_renaming_a_run_changes_its_label_and_never_a_path(name, lab_env, tmp_path):
    store = manager().store
    run_id = store.create_run(TINY, "plain", "synthetic", lab_env / "model.pth", owner=PARTICIPANT)
    store.finish(run_id, "completed")
    before = fingerprint(tmp_path)
    at = open_page("pages/6_Runs.py")
    at.text_input(key=f"name_{run_id}").set_value(name).run()
    button(at, "Rename").click().run()
    record = store.get_run(run_id)
    assert record.name == name and record.checkpoint == str(lab_env / "model.pth")
    assert fingerprint(tmp_path) == before


@pytest.mark.parametrize(
    "name", ["../../escape.pth", "..\\..\\windows.pth", "/etc/cron.d/job.pth", "sub/dir/model.pth", ".hidden.pth"]
)
def test_an_uploaded_checkpoint_lands_in_the_runs_folder_whatever_its_name(name, lab_env, tmp_path):
    outside = {p for p in tmp_path.parent.rglob("*.pth") if lab_env not in p.parents}
    at = open_page("pages/5_Models.py", teacher=True)
    at.file_uploader(key="upload_pth").upload(name, (lab_env / "model.pth").read_bytes())
    at.run()
    button(at, "Add this model").click().run()
    added = Path(at.session_state["model_path"])
    assert added.parent == lab_env and not added.name.startswith(".") and added.name != "model.pth"
    assert {p for p in tmp_path.parent.rglob("*.pth") if lab_env not in p.parents} == outside


def test_a_training_name_cannot_place_the_checkpoint_outside(lab_env, data):
    job = manager().start(TINY.replace(epochs=1), data=data, name="../../outside")
    assert job.join(60)
    assert job.checkpoint_path.parent == lab_env and job.checkpoint_path.name == f"outside-{job.plan.run_id}.pth"


def test_a_forged_model_choice_outside_the_list_is_ignored(lab_env, tmp_path):
    secret = save_checkpoint(tmp_path / "secret.pth", build_model(TINY), TINY, classes=CLASSES, epoch=1)
    at = open_page("pages/5_Models.py")
    forge(at, at.selectbox[0], string_value=f"secret  ({secret.parent})")
    assert not at.exception
    assert button(at, "Use it myself").disabled  # the page fell back to the listed model, already in use
    assert "model_path" not in at.session_state


def test_the_runs_page_neither_offers_nor_deletes_a_checkpoint_outside_the_folder(tmp_path):
    outside = save_checkpoint(tmp_path / "elsewhere.pth", build_model(TINY), TINY, classes=CLASSES, epoch=1)
    store = manager().store
    run_id = store.create_run(TINY, "cli run", "synthetic", outside, owner=PARTICIPANT)
    store.finish(run_id, "completed")
    at = open_page("pages/6_Runs.py")
    assert not any(d.label.startswith("Download checkpoint") for d in at.get("download_button"))
    button(at, "Delete this run").click().run()
    assert not at.checkbox  # no offer to delete a file outside the runs folder
    button(at, "Yes, delete it").click().run()
    assert store.list_runs() == [] and outside.is_file()


# --- a damaged run store -----------------------------------------------------------------------------------------


def damage(db: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)


def test_a_run_store_damaged_while_the_server_runs_is_reported_on_the_runs_page(lab_env):
    manager()  # the store is open, as on a running server
    damage(lab_env / "cifar_lab.db")
    at = open_page("pages/6_Runs.py")
    assert "cifar_lab.db" in at.error[0].value and "move it away" in at.error[0].value


def test_a_run_store_damaged_before_start_leaves_the_other_pages_working(lab_env, caplog):
    damage(lab_env / "cifar_lab.db")
    with caplog.at_level(logging.WARNING, logger="cifar_lab"):
        at = open_page("pages/6_Runs.py")
    assert "will not be recorded" in caplog.text
    assert "could not be opened" in at.error[0].value
    at.switch_page("pages/5_Models.py").run()
    assert not at.exception and len(at.dataframe[0].value) == 1


# --- the server's settings ---------------------------------------------------------------------------------------


def test_server_settings_cap_uploads_and_refuse_forged_requests_and_a_fastnet_checkpoint_fits(tmp_path):
    import tomllib

    server = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert server["enableXsrfProtection"] is True and server["maxUploadSize"] == 10
    for width in (48, PRESETS["best"]["width"]):  # the shipped model's width, and the "best" preset's
        config = TrainConfig(arch="fastnet", width=width)
        path = save_checkpoint(tmp_path / "best.pth", build_model(config), config, classes=CLASSES, epoch=10)
        assert path.stat().st_size < server["maxUploadSize"] * 1024 * 1024
