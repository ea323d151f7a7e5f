"""The Train form follows the settings: one widget per field, of the right kind, in its section, greyed when unused."""

from __future__ import annotations

import pytest
import streamlit as st
from apptest_helpers import PARTICIPANT, fill_train_form, open_page

from cifar_lab import paths
from cifar_lab.config import SETTINGS, TrainConfig, preset
from cifar_lab.dashboard import ui_state
from cifar_lab.settings import SECTIONS
from cifar_lab_ui.train_form import BASIC


@pytest.fixture(autouse=True)
def lab_env(tmp_path, monkeypatch):
    """Synthetic data, an empty runs folder and fresh process-wide caches, as in test_pages.py."""
    monkeypatch.setenv("CIFAR_LAB_DATA", "synthetic")
    monkeypatch.setenv("CIFAR_LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFAR_LAB_RUNS_DB", str(tmp_path / "runs" / "cifar_lab.db"))
    monkeypatch.setenv(paths.ENV_MODELS, str(tmp_path / "models"))  # empty: no shipped model to fall back on
    monkeypatch.chdir(tmp_path)
    st.cache_resource.clear()
    st.cache_data.clear()


def widget(at, name: str):
    """The field's widget, looked up among the kind its setting calls for."""
    s, key = SETTINGS[name], f"cfg_{name}"
    return at.selectbox(key=key) if s.choices else at.checkbox(key=key) if s.kind is bool else at.number_input(key=key)


def test_the_sections_hold_every_field_once():
    sections = ui_state.form_sections()
    assert tuple(sections) == SECTIONS
    assert sorted(name for names in sections.values() for name in names) == sorted(SETTINGS)


def test_every_field_has_its_widget_with_the_presets_value_and_its_help():
    at = open_page("pages/2_Train.py")
    values = preset(at.selectbox(key="preset").value).to_dict()
    for name, s in SETTINGS.items():
        w = widget(at, name)
        assert w.label == s.form_label(name) and w.value == values[name], name
        assert w.help.startswith(s.help_line()), name
        if s.choices:
            assert list(w.options) == list(s.choices), name
        if s.kind is float:
            assert w.step == s.step, name
    assert not at.error


def test_a_field_is_greyed_while_the_other_choices_leave_it_unused():
    at = open_page("pages/2_Train.py")
    at.selectbox(key="preset").set_value("classroom").run()  # fastnet with Muon
    assert not widget(at, "muon_lr_scale").disabled and not widget(at, "bias_lr_scale").disabled
    assert widget(at, "depth").disabled and "not used" in widget(at, "depth").help
    at.selectbox(key="cfg_opt").set_value("adam").run()
    assert widget(at, "muon_lr_scale").disabled and widget(at, "bias_lr_scale").disabled
    assert not widget(at, "whiten_bias_fraction").disabled
    at.selectbox(key="cfg_arch").set_value("cnn").run()
    assert not widget(at, "depth").disabled and widget(at, "whiten_bias_fraction").disabled


def test_a_form_remembered_without_a_newer_field_still_renders():
    at = open_page("dashboard.py")
    remembered = {k: v for k, v in TrainConfig().to_dict().items() if k != "muon_momentum"}
    at.session_state["train_form"] = remembered
    at.switch_page("pages/2_Train.py").run()
    assert not at.exception and not at.error
    assert widget(at, "muon_momentum").value == preset("classroom").muon_momentum
    assert widget(at, "arch").value == remembered["arch"]


TINY = dict(arch="cnn", opt="sgd", width=8, depth=1, epochs=1, eval_subset=0, precision="fp32", threads=1)


def started_config(at) -> TrainConfig:
    """Press Start; the config of the run it queued, once the page has shown it."""
    jobs = st.cache_resource(ui_state.job_manager)(str(ui_state.runs_dir().resolve()))
    before = {r.id for r in jobs.store.list_runs()}
    next(b for b in at.button if b.label == "Start training").click().run()
    (record,) = [r for r in jobs.store.list_runs() if r.id not in before]
    jobs.stop(timeout=10)
    assert record.owner == PARTICIPANT
    return TrainConfig.from_dict(record.config)


def test_a_students_settings_come_first_in_plain_words_and_the_rest_sit_under_advanced():
    assert BASIC == ("arch", "flip", "crop_pad", "opt", "lr", "epochs", "minutes", "seed")
    at = open_page("pages/2_Train.py")
    (advanced,) = [e for e in at.expander if e.label == "Advanced settings"]
    inside = {w.key for w in (*advanced.selectbox, *advanced.checkbox, *advanced.number_input)}
    assert inside == {f"cfg_{name}" for name in SETTINGS if name not in BASIC}
    captions = [c.value for c in at.caption]
    for name in BASIC:  # labelled in words, with what raising or lowering it does in view (a phone has no tooltip)
        assert widget(at, name).label == SETTINGS[name].label and SETTINGS[name].label[0].isupper(), name
        assert any(c.lower().startswith(SETTINGS[name].effect[:40].lower()) for c in captions), name
    assert widget(at, "lr").label == "Learning rate" and "overshoots" in SETTINGS["lr"].effect


def test_a_field_under_advanced_still_reaches_the_run():
    at = fill_train_form(open_page("pages/2_Train.py"), {**TINY, "batch_size": 48, "weight_decay": 0.002})
    config = started_config(at)
    assert (config.batch_size, config.weight_decay, config.width, config.minutes) == (48, 0.002, 8, 0)


def test_each_run_gets_a_new_seed_shown_in_the_form_unless_the_seed_is_kept():
    at = fill_train_form(open_page("pages/2_Train.py"), TINY)
    first = started_config(at)
    assert widget(at, "seed").value == first.seed  # recorded with the run and shown
    second = started_config(at)
    assert second.seed != first.seed and widget(at, "seed").value == second.seed
    at.checkbox(key="keep_seed").check().run()
    at.number_input(key="cfg_seed").set_value(1234).run()
    assert started_config(at).seed == 1234 and started_config(at).seed == 1234
    at.button(key="new_seed").click().run()
    assert widget(at, "seed").value != 1234


def test_changing_the_preset_keeps_the_seed():
    at = open_page("pages/2_Train.py")
    at.number_input(key="cfg_seed").set_value(77).run()
    at.selectbox(key="preset").set_value("best").run()
    assert widget(at, "seed").value == 77 and widget(at, "minutes").value == 12
