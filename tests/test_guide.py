"""The first-lesson guide: five steps that each link to their page, and the glossary the help lines link to."""

from __future__ import annotations

import pytest
import streamlit as st
from apptest_helpers import open_page

from cifar_lab import paths
from cifar_lab_ui.glossary import TERMS, with_links
from cifar_lab_ui.navigation import PAGES


@pytest.fixture(autouse=True)
def lab_env(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR_LAB_DATA", "synthetic")
    monkeypatch.setenv("CIFAR_LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFAR_LAB_RUNS_DB", str(tmp_path / "runs" / "cifar_lab.db"))
    monkeypatch.setenv(paths.ENV_MODELS, str(tmp_path / "models"))
    monkeypatch.chdir(tmp_path)
    st.cache_resource.clear()


def test_the_guide_walks_five_steps_each_with_a_question_and_a_link_to_its_page():
    at = open_page("pages/9_Guide.py")
    steps = [h.value for h in at.subheader if h.value[:2] in ("1.", "2.", "3.", "4.", "5.")]
    assert [s.split(" (")[0] for s in steps] == [
        "1. Look at the data",
        "2. Train",
        "3. Watch it learn",
        "4. Evaluate",
        "5. Classify your own pictures",
    ]
    assert sum(int(s.rsplit("(", 1)[1].split()[0]) for s in steps) == 45  # minutes: one lesson
    assert len([m for m in at.markdown if m.value.startswith("**Ask:**") and m.value.endswith("?")]) == 5
    links = [link.proto.page for link in at.main.get("page_link") if link.proto.label.startswith("Open the")]
    assert links == ["Data", "Train", "Train", "Evaluate", "Classify"]  # the pages' addresses
    assert set(links) <= {label for _, label in PAGES}


def test_the_glossary_explains_the_words_a_first_lesson_needs():
    at = open_page("pages/9_Guide.py")
    headings = {h.value for h in at.subheader}
    for word in ("Epoch", "Learning rate", "Augmentation", "Overfitting", "Confusion matrix", "Grad-CAM"):
        assert word in headings, word
    assert {h.proto.anchor for h in at.subheader if h.value in {t.word for t in TERMS}} == {t.anchor for t in TERMS}


def test_a_help_line_links_each_glossary_word_it_uses_to_the_guide():
    linked = with_links("how many passes (epochs) at what learning rate; too many and it overfits")
    assert "[epoch](Guide#epoch)" in linked and "[learning rate](Guide#learning-rate)" in linked
    assert "[overfitting](Guide#overfitting)" in linked and "seed" not in linked
    assert with_links("images per update step") == "images per update step"


def test_the_train_forms_help_lines_link_to_the_glossary():
    at = open_page("pages/2_Train.py")
    assert "(Guide#epoch)" in at.number_input(key="cfg_epochs").help
    assert "(Guide#learning-rate)" in at.number_input(key="cfg_lr").help
    assert any("(Guide#overfitting)" in c.value for c in at.caption)  # the epochs' effect: "memorise"
