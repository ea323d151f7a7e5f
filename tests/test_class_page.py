"""The Class page and the roles in the browser's terms: a participant sees and may do less than the teacher."""

from __future__ import annotations

import pytest
from apptest_helpers import (
    TEACHER_KEY,
    button_starting,
    fill_train_form,
    lab_environment,
    lab_manager,
    open_page,
    stop_everything,
)

from cifar_lab import class_settings
from cifar_lab.config import TrainConfig
from cifar_lab.dashboard import ui_state
from cifar_lab.events import Finished
from cifar_lab.runs import RunStore

CLASS = "pages/8_Class.py"
TRAIN = "pages/2_Train.py"
TINY = dict(arch="cnn", opt="sgd", width=8, depth=1, batch_size=64, epochs=1, eval_subset=0, precision="fp32")


@pytest.fixture(autouse=True)
def lab_env(tmp_path, monkeypatch):
    yield lab_environment(tmp_path, monkeypatch)
    stop_everything(lab_manager())


manager = lab_manager


def finished_run(store: RunStore, owner: str, accuracy: float, **changes) -> str:
    config = TrainConfig(**{**TINY, **changes})
    run_id = store.create_run(config, f"{owner}'s run", "synthetic", owner=owner, preset="classroom")
    store.listener(run_id)(Finished(accuracy, 1, 60.0, 100.0))
    store.finish(run_id, metrics={"test_accuracy": accuracy, "images_per_s": 100.0, "train_seconds": 60.0})
    return run_id


def texts(at) -> str:
    return " ".join(str(e.value) for e in [*at.markdown, *at.caption, *at.title, *at.subheader, *at.info])


def test_a_participant_sees_how_to_join_and_no_teacher_controls(monkeypatch):
    from cifar_lab import lan
    from cifar_lab_ui import join_panel

    monkeypatch.setattr(lan, "lan_addresses", lambda sources=None: ["192.168.1.20"])
    join_panel._lan_addresses.clear()
    at = open_page(CLASS)
    assert not at.exception and len(at.image) == 1  # the QR code
    assert "http://192.168.1.20:8501/" in [t.value for t in at.title]  # the join address in big text
    assert at.text_input(key="teacher_key")  # where a teacher types the key
    assert not [b for b in at.button if b.label in ("Pause the queue", "Save the limits")]


def test_a_wrong_key_is_refused_and_the_right_one_makes_a_teacher():
    at = open_page(CLASS)
    at.text_input(key="teacher_key").set_value("guess").run()
    assert "not the teacher key" in at.error[0].value and not [b for b in at.button if b.label == "Pause the queue"]
    at.text_input(key="teacher_key").set_value(TEACHER_KEY).run()
    assert not at.error and button_starting(at, "Pause the queue")


def test_the_teacher_pauses_the_queue_and_moves_a_run_up():
    jobs = manager()
    teacher = open_page(CLASS, name="", teacher=True)
    button_starting(teacher, "Pause the queue").click().run()
    assert jobs.settings().paused
    ids = [jobs.submit(TrainConfig(**TINY), owner=name, source="synthetic") for name in ("Ada", "Bob", "Cy")]
    teacher.run()
    assert "paused by the teacher" in texts(teacher)
    teacher.selectbox(key="class_queued").set_value(ids[2]).run()
    button_starting(teacher, "Move up").click().run()
    assert [q.record.id for q in jobs.waiting()] == [ids[0], ids[2], ids[1]]
    teacher.selectbox(key="class_queued").set_value(ids[1]).run()
    button_starting(teacher, "Take out of the queue").click().run()
    assert [q.record.id for q in jobs.waiting()] == [ids[0], ids[2]]


def test_caps_refuse_a_participant_s_run_naming_the_limit_and_not_the_teacher_s():
    class_settings.update(manager().store, max_epochs=2, archs=["cnn"], paused=True)
    ada = fill_train_form(open_page(TRAIN), {**TINY, "epochs": 3})
    button_starting(ada, "Start training").click().run()
    assert "at most 2 epochs per run; this run asks for 3" in ada.error[0].value
    assert manager().waiting() == []
    boss = fill_train_form(open_page(TRAIN, name="Ms Rao", teacher=True), {**TINY, "epochs": 3})
    button_starting(boss, "Start training").click().run()
    assert not boss.error and [q.record.owner for q in manager().waiting()] == ["Ms Rao"]
    assert manager().waiting()[0].record.name.startswith("Ms Rao · classroom · arch cnn · width 8")


def test_start_says_beside_the_button_where_the_run_waits_and_the_queue_says_it_is_paused():
    class_settings.update(manager().store, paused=True)
    ada = fill_train_form(open_page(TRAIN), TINY)
    button_starting(ada, "Start training").click().run()
    notice = ada.success[0].value
    assert "number 1 in line; it starts when the teacher resumes the queue" in notice, notice
    queue = next(d for d in ada.dataframe if "starts" in d.value.columns).value
    assert list(queue["starts"]) == ["when the teacher resumes the queue"] and list(queue.columns)[:3] == [
        "#",
        "owner",
        "starts",
    ]


def test_the_caps_form_saves_the_limits_for_everyone():
    teacher = open_page(CLASS, name="", teacher=True)
    form_numbers = {n.label: n for n in teacher.number_input}
    form_numbers["Most epochs"].set_value(4)
    form_numbers["Runs per participant"].set_value(2)
    button_starting(teacher, "Save the limits").click().run()
    settings = manager().settings()
    assert settings.max_epochs == 4 and settings.runs_per_participant == 2


def test_the_leaderboard_ranks_finished_runs_and_the_teacher_hides_one():
    store = manager().store
    finished_run(store, "Ada", 0.71)
    bob = finished_run(store, "Bob", 0.83, lr=0.2)
    at = open_page(CLASS)
    board = next(d for d in at.dataframe if "owner" in d.value.columns and "changed" in d.value.columns).value
    assert list(board["owner"]) == ["Bob", "Ada"] and "lr 0.2" in board["changed"].iloc[0]
    assert list(board["test accuracy"]) == [83.0, 71.0]  # shown "83.00 %": two decimals, trailing zeros kept
    manager().hide([bob], by=None)
    at.run()
    board = next(d for d in at.dataframe if "changed" in d.value.columns).value
    assert list(board["owner"]) == ["Ada"]


def test_validation_mode_gives_every_new_run_the_hold_out_and_hides_test_accuracy():
    store = manager().store
    finished_run(store, "Ada", 0.71)
    manager().set_class(by=None, validation=True, revealed=False, paused=True)
    ada = fill_train_form(open_page(TRAIN), TINY)
    button_starting(ada, "Start training").click().run()
    queued = manager().waiting()[0].record
    assert queued.config["validation"] > 0
    at = open_page(CLASS)
    board = next(d for d in at.dataframe if "changed" in d.value.columns).value
    assert "test accuracy" not in board.columns and "validation accuracy" in board.columns
    manager().set_class(by=None, revealed=True)
    at.run()
    assert "test accuracy" in next(d for d in at.dataframe if "changed" in d.value.columns).value.columns


def test_the_teacher_chooses_the_class_model_on_the_class_page(lab_env, tmp_path):
    import shutil

    from cifar_lab.checkpoint import save_checkpoint
    from cifar_lab.models import build_model

    lab_env.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(**TINY)
    path = save_checkpoint(lab_env / "good.pth", build_model(config), config, classes=tuple("abcdefghij"), epoch=1)
    shutil.copy(path, lab_env / "other.pth")
    teacher = open_page(CLASS, name="", teacher=True)
    teacher.selectbox(key="class_model_choice").set_value("good.pth").run()
    assert manager().settings().class_model == "good.pth"
    assert ui_state.open_lab(lambda f: f, {}).model_path == lab_env / "good.pth"


def test_the_class_gallery_shows_classified_pictures_only_while_on_and_writes_nothing(lab_env, tmp_path):
    import io

    from PIL import Image

    from cifar_lab.checkpoint import save_checkpoint
    from cifar_lab.models import build_model

    lab_env.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(**TINY)
    save_checkpoint(lab_env / "class.pth", build_model(config), config, classes=tuple("abcdefghij"), epoch=1)
    manager().set_class(by=None, class_model="class.pth", gallery=True)
    picture = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(picture, format="PNG")
    files_before = sorted(p for p in tmp_path.rglob("*") if p.is_file() and "cifar_lab.db" not in p.name)
    ada = open_page("pages/4_Classify.py")
    ada.file_uploader(key="upload").upload("red.png", picture.getvalue(), "image/png")
    ada.run()
    assert not ada.exception and "class gallery" in texts(ada)
    teacher = open_page(CLASS, name="", teacher=True)
    assert "Class gallery (1)" in texts(teacher)
    assert any(c.startswith("Ada: ") for image in teacher.image for c in image.captions)
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file() and "cifar_lab.db" not in p.name) == files_before
    button_starting(teacher, "Clear the gallery").click().run()
    assert "Class gallery (0)" in texts(teacher)
    manager().set_class(by=None, gallery=False)
    teacher.run()
    assert "Class gallery" not in texts(teacher)


def test_the_gallery_keeps_the_latest_pictures_once_each():
    import numpy as np

    from cifar_lab.dashboard.gallery import Gallery

    gallery = Gallery(capacity=3)
    views = [np.full((32, 32, 3), i, dtype=np.uint8) for i in range(5)]
    for i, view in enumerate(views):
        gallery.add(view, "cat", 0.5, f"s{i}")
    gallery.add(views[4], "cat", 0.5, "s4")  # the same picture again: moved to the front, not doubled
    assert [shot.who for shot in gallery.latest()] == ["s4", "s3", "s2"]
    gallery.clear()
    assert gallery.latest() == []


def test_the_teacher_stays_the_teacher_after_acting():
    """The key field is drawn only until the key is right; what was typed must outlive the runs without it."""
    teacher = open_page(CLASS, name="")
    teacher.text_input(key="teacher_key").set_value(TEACHER_KEY).run()
    button_starting(teacher, "Pause the queue").click().run()
    assert manager().settings().paused
    assert button_starting(teacher, "Resume the queue")
    teacher.switch_page(TRAIN).run()
    teacher.switch_page(CLASS).run()
    assert button_starting(teacher, "Resume the queue")
