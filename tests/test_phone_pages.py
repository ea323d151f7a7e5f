"""AppTest for what the pages do for a phone: the row of page links, upload limits said in words.

What only a browser shows (which links a narrow screen hides, a finger drawing, the browser refusing a file) is
checked by tests/e2e/test_phone.py.
"""

from __future__ import annotations

import streamlit as st
from streamlit.testing.v1 import AppTest
from test_pages import lab_env, open_page, trained_checkpoint, with_model  # noqa: F401  (shared fixtures)

from cifar_lab_ui import upload_limit
from cifar_lab_ui.navigation import PAGES


def test_pages_start_with_the_row_of_links_a_phone_shows():
    at = open_page()
    for page in ("dashboard.py", "pages/5_Models.py"):
        at.switch_page(page).run()
        links = [link.proto.label for link in at.main.get("page_link")]
        assert links[: len(PAGES)] == [label for _, label in PAGES], page


def test_the_uploaders_state_the_size_limit(with_model):
    limit = f", up to {st.get_option('server.maxUploadSize')} MB"
    assert open_page("pages/4_Classify.py").file_uploader(key="upload").label.endswith(limit)
    assert open_page("pages/5_Models.py", teacher=True).file_uploader(key="upload_pth").label.endswith(limit)


def refusal_page():
    import streamlit as st

    from cifar_lab_ui.upload_limit import say_if_refused

    say_if_refused("upload", st.session_state.get("uploaded"), "Pick a smaller one.")


def test_a_refused_file_is_said_until_the_uploader_takes_one(monkeypatch):
    refusals = [14.24]  # MB: the browser's report, in one run only
    monkeypatch.setattr(upload_limit, "refused_now", lambda key: refusals.pop() if refusals else None)
    at = AppTest.from_function(refusal_page)
    at.session_state["upload_limit"] = {}  # the watcher's own state: it was on the page before
    at.run()
    said = "That file is 14.2 MB; the lab accepts up to"
    assert said in at.error[0].value and at.error[0].value.endswith("MB. Pick a smaller one.")
    assert said in at.run().error[0].value  # still said on the next run
    at.session_state["uploaded"] = "small.jpg"
    assert not at.run().error
    at.session_state["uploaded"] = None
    assert not at.run().error  # not said again when that file is removed
