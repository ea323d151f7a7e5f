"""Models: saved checkpoints; make one current, download it, or upload a .pth (validated, loaded safely)."""

from __future__ import annotations

import streamlit as st

from cifar_lab.checkpoint import CheckpointError, load_checkpoint
from cifar_lab.dashboard import ui_state
from cifar_lab_ui.navigation import start_page


def add_upload(lab: ui_state.Lab, name: str, content: bytes) -> None:
    """Validate (weights only, rebuilds the model) before the file joins the runs folder."""
    try:
        ckpt = load_checkpoint(content, name=name)
    except CheckpointError as err:
        st.session_state["upload_result"] = ("error", str(err))
        return
    folder = lab.jobs.runs_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = ui_state.safe_upload_name(name, folder)
        with open(target, "xb") as f:  # "x": never replaces a file another session has just written
            try:
                f.write(content)
            except OSError:
                target.unlink(missing_ok=True)  # no half-written file left in the folder
                raise
    except OSError as err:  # FileExistsError too: a same-name upload won the race; press Add again
        st.session_state["upload_result"] = (
            "error",
            f"Could not save {name} into {folder}: "
            f"{err.strerror or err}. Free some disk space or make the folder "
            "writable.",
        )
        return
    st.session_state["model_path"] = str(target)
    st.session_state["upload_result"] = ("success", f"Added {target.name} ({ckpt.config.arch}); it is now current.")


def model_table(lab: ui_state.Lab, infos: list[ui_state.ModelInfo]) -> None:
    st.dataframe(
        [
            {
                "current": "●" if info.path == lab.model_path else "",
                "name": info.name,
                "architecture": info.arch,
                "accuracy": f"{info.accuracy:.1%}" if info.accuracy is not None else "",
                "epoch": info.epoch,
                "created": info.created,
                "MB": round(info.size_mb, 2),
                "folder": str(info.path.parent),
                "problem": info.error,
            }
            for info in infos
        ],
        hide_index=True,
    )


def model_actions(lab: ui_state.Lab, infos: list[ui_state.ModelInfo]) -> None:
    names = {f"{info.name}  ({info.path.parent})": info for info in infos}
    # streamlit's stub: its `options: Sequence[Never]` overload (-> None) matches any options under mypy
    name: str = st.selectbox("Model", list(names))  # type: ignore[assignment]
    chosen = names[name]
    left, right = st.columns(2)
    if left.button("Make current", disabled=bool(chosen.error) or chosen.path == lab.model_path):
        st.session_state["model_path"] = str(chosen.path)
        st.rerun()
    right.download_button(
        "Download .pth", chosen.path.read_bytes(), file_name=chosen.path.name, mime="application/octet-stream"
    )
    if chosen.error:
        st.error(chosen.error)


start_page("Models")
lab = ui_state.open_lab(st.cache_resource, st.session_state)

st.title("Models")

if lab.models:
    infos = [ui_state.describe(path, lab.load_model) for path in lab.models]
    model_table(lab, infos)
    model_actions(lab, infos)
else:
    st.info("No saved models yet: train one on the Train page, or upload a .pth below.")

st.subheader("Upload")
upload = st.file_uploader(
    "A checkpoint (.pth) saved by this lab, or the PyTorch tutorial's state_dict", type=["pth", "pt"], key="upload_pth"
)
if upload is not None and st.button("Add this model"):
    add_upload(lab, upload.name, upload.getvalue())
    st.rerun()
kind, message = st.session_state.pop("upload_result", (None, ""))
if kind:
    getattr(st, kind)(message)
