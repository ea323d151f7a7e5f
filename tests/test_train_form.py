"""The Train form follows the settings: one widget per field, of the right kind, in its section, greyed when unused."""

from __future__ import annotations

import pytest
import streamlit as st
from apptest_helpers import open_page

from cifar_lab import paths
from cifar_lab.config import SETTINGS, TrainConfig, preset
from cifar_lab.dashboard import ui_state
from cifar_lab.settings import SECTIONS


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
        assert w.label == name.replace("_", " ") and w.value == values[name], name
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
