"""A name typed in the sidebar and the teacher key typed on the Class page last while the session changes page."""

from __future__ import annotations

from apptest_helpers import ROOT, TEACHER_KEY, lab_environment
from streamlit.testing.v1 import AppTest


def test_the_typed_name_and_teacher_key_follow_the_session_to_other_pages(tmp_path, monkeypatch):
    lab_environment(tmp_path, monkeypatch)
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)
    at.run()
    at.text_input(key="participant_name").input("Ada").run()  # typed, as a browser does: the widget's own value
    at.switch_page("pages/8_Class.py").run()
    assert at.text_input(key="participant_name").value == "Ada"
    at.text_input(key="teacher_key").input(TEACHER_KEY).run()
    at.switch_page("pages/2_Train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.text_input(key="participant_name").value == "Ada"
    assert at.query_params["name"] == "Ada"  # a reload keeps it too
    assert at.session_state["viewer"].teacher
