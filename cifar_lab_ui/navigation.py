"""The sidebar's links to every page, drawn by every page as its first step.

Streamlit's own list of the pages in pages/ names the home page after its file ("dashboard"), and only
st.navigation could rename it; but st.navigation is skipped when a fresh server's first visitor opens another
page than Home (a bookmark, a tab reloaded after a restart), and that visitor would see both names. So the lab
hides Streamlit's list (.streamlit/config.toml, and here for servers started elsewhere) and draws this one.
"""

from __future__ import annotations

import streamlit as st

from cifar_lab.logs import configure as configure_logging
from cifar_lab_ui.page_bar import page_bar
from cifar_lab_ui.participant import identify

PAGES = (
    ("dashboard.py", "Home"),
    ("pages/1_Data.py", "Data"),
    ("pages/2_Train.py", "Train"),
    ("pages/3_Evaluate.py", "Evaluate"),
    ("pages/4_Classify.py", "Classify"),
    ("pages/5_Models.py", "Models"),
    ("pages/6_Runs.py", "Runs"),
    ("pages/7_Explain.py", "Explain"),
    ("pages/8_Class.py", "Class"),
    ("pages/9_Guide.py", "Guide"),
    ("pages/10_Sweep.py", "Sweep"),
)


def start_page(title: str, *, controls: bool = False) -> None:
    """The page's tab title, wide layout and the links to every page. Call before anything else on the page.

    controls: the page puts widgets in the sidebar too; a divider then parts them from the links.
    """
    st.set_page_config(
        page_title="CIFAR-10 Lab" if title == "Home" else f"{title} · CIFAR-10 Lab", page_icon="🧪", layout="wide"
    )
    st.set_option("client.showSidebarNavigation", False)
    configure_logging()  # the server's own log: jobs started, stopped and failed, the run store's recovery
    page_bar(PAGES)  # on a phone the links sit at the top of the page, not in the sidebar
    for path, label in PAGES:
        st.sidebar.page_link(path, label=label)
    identify()  # the "Your name" field, on every page
    if controls:
        st.sidebar.divider()
