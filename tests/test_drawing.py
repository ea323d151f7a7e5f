"""The canvas's Undo and Clear buttons: what they hand the canvas, and the run in which the canvas has yet to catch up.

The canvas itself runs in a browser (tests/e2e/test_phone.py draws on it); here its strokes are given by the test.
"""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

A, B, C = ({"type": "path", "path": [["M", i, i]]} for i in range(3))


def canvas_page():
    import streamlit as st

    from cifar_lab_ui.drawing import drawing_tools, forget_drawing, restart_drawing

    st.radio("Picture from", ["Draw", "Upload"], key="source", on_change=forget_drawing, args=("canvas",))
    st.session_state["handed"] = restart_drawing("canvas")
    st.session_state["strokes"] = drawing_tools("canvas", st.session_state["sent"])


def open_canvas(sent: list) -> AppTest:
    at = AppTest.from_function(canvas_page)
    at.session_state["canvas"] = {}  # the canvas's own state: it was on the page last run
    at.session_state["sent"] = sent
    return at.run()


def test_undo_hands_the_canvas_all_but_the_last_stroke_and_shows_nothing_until_it_sends_them_back():
    at = open_canvas([A, B])
    assert at.session_state["strokes"] == [A, B]
    at.button(key="canvas_undo").click().run()
    assert at.session_state["canvas_restart"] == {"objects": [A], "revision": 1}
    assert at.session_state["strokes"] == []  # the canvas still sent [A, B] in the button's run: not classified
    at.session_state["sent"] = [A]  # the canvas loaded the restart and sent it back
    at.run()
    assert at.session_state["handed"] == {"objects": [A], "revision": 1}  # unchanged, so the canvas keeps it
    assert at.session_state["strokes"] == [A] and not at.button(key="canvas_undo").disabled


def test_an_undo_back_to_an_earlier_drawing_is_still_a_new_one_for_the_canvas():
    at = open_canvas([A, B])
    at.button(key="canvas_undo").click().run()
    at.session_state["sent"] = [A, C]  # the restart and a stroke after it, in one rerun (Streamlit coalesces them)
    at.run()
    assert at.session_state["strokes"] == [A, C]
    at.button(key="canvas_undo").click().run()
    assert at.session_state["canvas_restart"] == {"objects": [A], "revision": 2}  # same strokes, new revision


def test_clear_empties_the_canvas_and_both_buttons_wait_for_a_stroke():
    at = open_canvas([A, B])
    at.button(key="canvas_clear").click().run()
    assert at.session_state["canvas_restart"] == {"objects": [], "revision": 1}
    at.session_state["sent"] = []
    at.run()
    assert at.session_state["strokes"] == []
    assert at.button(key="canvas_undo").disabled and at.button(key="canvas_clear").disabled


def test_a_canvas_back_on_the_page_starts_blank():
    at = AppTest.from_function(canvas_page)
    at.session_state["canvas_restart"] = {"objects": [A], "revision": 3}  # from before the canvas left the page
    at.session_state["sent"] = []
    at.run()
    assert at.session_state["handed"] is None and "canvas_restart" not in at.session_state


def test_changing_the_picture_source_forgets_the_drawing_as_the_canvas_does():
    at = open_canvas([A, B])
    at.button(key="canvas_undo").click().run()
    at.radio(key="source").set_value("Upload").run()
    assert not any(name in at.session_state for name in ("canvas", "canvas_restart", "canvas_before"))
