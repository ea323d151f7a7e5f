"""AppTest helpers shared by the page tests: open a page, find a button, fill the Train form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamlit.testing.v1 import AppTest

from cifar_lab.config import SETTINGS

ROOT = Path(__file__).resolve().parents[1]


def open_page(page: str) -> AppTest:
    """Run the home page (as a browser would first), switch to `page`, and insist it raised nothing."""
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def button_starting(at: AppTest, label: str):
    """The first button whose label starts with `label`."""
    matches = [b for b in at.button if b.label.startswith(label)]
    assert matches, f"no button {label!r}; have {[b.label for b in at.button]}"
    return matches[0]


def fill_train_form(at: AppTest, values: dict[str, Any]) -> AppTest:
    """Set the Train form's widgets to `values`, after switching to the cnn (which decides the fields that apply)."""
    at.selectbox(key="cfg_arch").set_value("cnn").run()
    for name, value in values.items():
        if SETTINGS[name].choices:
            at.selectbox(key=f"cfg_{name}").set_value(value)
        elif isinstance(value, bool):
            at.checkbox(key=f"cfg_{name}").set_value(value)
        else:
            at.number_input(key=f"cfg_{name}").set_value(value)
    return at.run()
