"""The upload size limit said in words: in the uploader's label, and in the page when the browser refuses a file.

Streamlit's uploader refuses a file over server.maxUploadSize in the browser, before sending anything: the script
is not rerun and never learns of it, and the reason is only a tooltip on a red icon (none on a phone). So a small
component in the page watches the uploader's file input (change and drop events) and reports a file over the
limit; the page then says what happened and what to do, until the uploader takes a file.
"""

from __future__ import annotations

import streamlit as st

# Streamlit's uploader counts a megabyte as 1024² bytes on Windows and 10⁶ bytes elsewhere (as each system's file
# manager shows sizes), so that the size on its file chip matches the one the person sees in their files; the
# check below counts the same way, so it refuses exactly the files the uploader refuses. Only a refusal is
# reported: a rerun started while the uploader sends a file it accepted loses that file.
WATCH_JS = """
export default function ({ data, setTriggerValue }) {
  const base = /^Win/i.test(navigator.platform) ? 1024 : 1000;
  const limit = data.limit_mb * base * base;
  const watch = (event) => {
    if (!event.target.closest || !event.target.closest(`.st-key-${data.uploader}`)) return;
    const files = event.type === "drop" ? event.dataTransfer && event.dataTransfer.files : event.target.files;
    const big = Array.from(files || []).find((file) => file.size > limit);
    if (big) setTriggerValue("refused", { mb: big.size / base / base });
  };
  document.addEventListener("change", watch, true);
  document.addEventListener("drop", watch, true);
  return () => {
    document.removeEventListener("change", watch, true);
    document.removeEventListener("drop", watch, true);
  };
}
"""

_watch = st.components.v2.component("cifar_lab_upload_limit", js=WATCH_JS)


def limit_mb() -> int:
    """server.maxUploadSize: megabytes per uploaded file (.streamlit/config.toml)."""
    return int(st.get_option("server.maxUploadSize"))


def with_limit(label: str) -> str:
    """The uploader's label with the limit, always in view (Streamlit's own note leaves once a file is picked)."""
    return f"{label}, up to {limit_mb()} MB"


def refused_now(uploader_key: str) -> float | None:
    """The size in MB of a file the uploader `uploader_key` has just refused (in this run only), or None; no pixels.

    MB: the browser's megabytes, as the uploader's file chip shows the size.
    """
    key = f"{uploader_key}_limit"
    st.html(f"<style>.st-key-{key} {{ display: none; }}</style>")  # the watcher has no pixels; nor should its gap
    result = _watch(data={"uploader": uploader_key, "limit_mb": limit_mb()}, key=key, on_refused_change=lambda: None)
    refused = result.get("refused")
    return float(refused["mb"]) if refused else None


def say_if_refused(uploader_key: str, uploaded: object | None, what_to_do: str) -> None:
    """An error in the page, from the uploader's refusal of a file for its size until it takes a file (`uploaded`).

    It gives the file's size, the limit and `what_to_do`.
    """
    kept = f"{uploader_key}_refused"
    if f"{uploader_key}_limit" not in st.session_state:  # an uploader new to the page: nothing refused yet
        st.session_state.pop(kept, None)
    refused = refused_now(uploader_key)
    if refused is not None:
        st.session_state[kept] = refused
    elif uploaded is not None:
        st.session_state.pop(kept, None)
    refused = st.session_state.get(kept)
    if refused is not None:
        st.error(f"That file is {refused:.1f} MB; the lab accepts up to {limit_mb()} MB. {what_to_do}")
