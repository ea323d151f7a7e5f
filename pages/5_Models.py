"""Models: saved checkpoints; make one current, download it, or upload a .pth (validated, loaded safely)."""

from __future__ import annotations

import streamlit as st

from cifar_lab.checkpoint import CheckpointError, load_checkpoint
from cifar_lab.dashboard import ui_state
from cifar_lab_ui.lab import open_lab
from cifar_lab_ui.navigation import start_page
from cifar_lab_ui.upload_limit import say_if_refused, with_limit


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
    st.session_state["upload_result"] = (
        "success",
        f"Added {target.name} ({ckpt.config.arch}); you now use it. Make it the class model to give it to everyone.",
    )


def model_table(lab: ui_state.Lab, infos: list[ui_state.ModelInfo]) -> None:
    st.dataframe(
        [
            {
                "in use": "●" if info.path == lab.model_path else "",
                "class model": "●" if info.path.name == lab.settings.class_model else "",
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
    left, mid, right = st.columns(3)
    if left.button("Use it myself", disabled=bool(chosen.error) or chosen.path == lab.model_path):
        st.session_state["model_path"] = str(chosen.path)
        st.rerun()
    if lab.viewer.teacher and mid.button(
        "Make it the class model",
        disabled=bool(chosen.error) or chosen.path.name == lab.settings.class_model,
        help="everyone classifies with it, unless they pick another for themselves",
    ):
        lab.jobs.set_class(by=lab.viewer, class_model=chosen.path.name)
        st.session_state.pop("model_path", None)  # the teacher uses the class model too
        st.rerun()
    right.download_button(
        "Download .pth", chosen.path.read_bytes(), file_name=chosen.path.name, mime="application/octet-stream"
    )
    if chosen.error:
        st.error(chosen.error)


start_page("Models")
lab = open_lab()

st.title("Models")

if lab.models:
    infos = [ui_state.describe(path, lab.load_model) for path in lab.models]
    model_table(lab, infos)
    model_actions(lab, infos)
else:
    st.info("No saved models yet: train one on the Train page, or upload a .pth below.")

st.subheader("Upload")
if lab.viewer.teacher:
    upload = st.file_uploader(
        with_limit("A checkpoint (.pth) saved by this lab, or the PyTorch tutorial's state_dict"),
        type=["pth", "pt"],
        key="upload_pth",
    )
    say_if_refused(
        "upload_pth",
        upload,
        f"A checkpoint this large (a wide net, or an epoch's checkpoint with its optimizer state) is copied by hand "
        f"into {lab.jobs.runs_dir} on the computer that serves the lab; this page then lists it.",
    )
    if upload is not None and st.button("Add this model"):
        add_upload(lab, upload.name, upload.getvalue())
        st.rerun()
else:
    st.caption("Only the teacher adds models to the lab; you can use any model listed above for yourself.")
kind, message = st.session_state.pop("upload_result", (None, ""))
if kind:
    getattr(st, kind)(message)
