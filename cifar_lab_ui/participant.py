"""Who is using this browser: the name typed in the sidebar (kept in the session and the URL's ?name=, so that a
phone's reload or bookmark keeps it) and whether they are the teacher."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from cifar_lab import lan
from cifar_lab.roles import Viewer, is_teacher
from cifar_lab.runs import clean_owner

NAME_KEY = "participant_name"  # the sidebar field's value
TEACHER_KEY = "teacher_key"  # what was typed in the Class page's teacher key field (never put in the URL)
# Both values again, outside widget state: Streamlit drops a widget's value when the session shows another page
# (and a link to another page drops ?name=), so without this a name or a key would last one page.
KEPT = "participant_kept"


def identify() -> Viewer:
    """Draw the "Your name" field in the sidebar and return who this is; kept in st.session_state["viewer"]."""
    kept_name, kept_key = st.session_state.get(KEPT, (None, ""))
    if NAME_KEY in st.session_state:  # set again, it is this page's field's value too
        st.session_state[NAME_KEY] = st.session_state[NAME_KEY]
    else:
        st.session_state[NAME_KEY] = st.query_params.get("name", "") if kept_name is None else kept_name
    typed = st.sidebar.text_input(
        "Your name",
        key=NAME_KEY,
        max_chars=40,
        placeholder="e.g. Ada",
        help="shown beside your runs and on the leaderboard; no password: anyone typing this name acts as you",
    )
    name = ""
    if typed.strip():
        try:
            name = clean_owner(typed)
        except ValueError as err:
            st.sidebar.error(str(err))
    if st.query_params.get("name", "") != name:  # so that a reload or a bookmark keeps it
        if name:
            st.query_params["name"] = name
        else:
            st.query_params.pop("name", None)
    keep_model_in_url()
    address, key = client_address(), st.session_state.get(TEACHER_KEY, kept_key)
    st.session_state[KEPT] = (typed, key)
    viewer = Viewer(name, is_teacher(address, key, own_addresses=machine_addresses()))
    if viewer.teacher:
        st.sidebar.caption("You are the teacher: you can act on every run.")
    st.session_state["viewer"] = viewer
    return viewer


def client_address() -> str | None:
    """The browser's address as the server's socket saw it (None outside a server, as in AppTest).
    st.context.ip_address says None for 127.0.0.1 and ::1, which would make the teacher at the server machine a
    participant; Streamlit's own local-only checks read the connection's peer address, as this does."""
    try:
        from streamlit.runtime.context import _get_client_context  # no public API gives the loopback peer

        context = _get_client_context()
        return context.remote_ip if context is not None else None
    except RuntimeError:  # no server runtime (AppTest; two AppTest sessions at once saw it gone): no client
        return None
    except (ImportError, AttributeError):  # a Streamlit that moved it: the public value, loopback lost
        return st.context.ip_address


@st.cache_data(show_spinner=False, ttl=60)
def machine_addresses() -> list[str]:
    """This machine's LAN addresses: a browser on the server machine may reach it through one of them."""
    return lan.lan_addresses()


def keep_model_in_url() -> None:
    """The model this session chose, as ?model=<file name>: a reload or a bookmark keeps the choice."""
    if "model_name" not in st.session_state:
        st.session_state["model_name"] = st.query_params.get("model", "")
    chosen = st.session_state.get("model_path")
    name = Path(chosen).name if chosen else st.session_state["model_name"]
    if st.query_params.get("model", "") != name:
        if name:
            st.query_params["model"] = name
        else:
            st.query_params.pop("model", None)
