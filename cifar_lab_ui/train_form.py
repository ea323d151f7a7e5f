"""The Train page's form, in two layers: the few settings a student changes, in plain words with what raising or
lowering each one does, then everything else under "Advanced". Every field is a TrainConfig setting, described
once in cifar_lab/config.py (its label, its effect, its help)."""

from __future__ import annotations

import secrets
from types import SimpleNamespace

import streamlit as st

from cifar_lab.config import PRESETS, RUN_LENGTH, SETTINGS, TrainConfig, preset
from cifar_lab.dashboard import ui_state
from cifar_lab.devices import bf16_slowdown
from cifar_lab.limits import machine_notes
from cifar_lab_ui.glossary import with_links

DEFAULT_PRESET = "classroom"
BASIC = tuple(name for name, s in SETTINGS.items() if s.basic)  # in declaration order


def load_preset(**changes: object) -> None:
    """Fill every form field from the chosen preset (called when the preset changes), with any changes. The seed
    stays: a preset is a recipe, the seed the luck of one run."""
    seed = st.session_state.get("cfg_seed")
    for name, value in ui_state.form_values(preset(st.session_state["preset"], **changes).to_dict()).items():
        st.session_state[f"cfg_{name}"] = value
    if seed is not None:
        st.session_state["cfg_seed"] = seed


def restore_form() -> None:
    """Widget values are dropped when another page is shown; bring back the last ones used here (a field the
    remembered form lacks, as one added since, takes the default preset's value)."""
    saved = {**preset(DEFAULT_PRESET).to_dict(), **(st.session_state.get("train_form") or {})}
    st.session_state.setdefault("preset", st.session_state.get("train_preset", DEFAULT_PRESET))
    for name, value in ui_state.form_values(saved).items():
        st.session_state.setdefault(f"cfg_{name}", value)
    st.session_state.setdefault("keep_seed", st.session_state.get("train_keep_seed", False))
    if (seed := st.session_state.pop("seed_used", None)) is not None:
        st.session_state["cfg_seed"] = seed


def budget_off(name: str) -> None:
    """A run length set by hand turns the time budget off, as on the command line (config.preset)."""
    if st.session_state.get("cfg_minutes"):
        st.session_state["cfg_minutes"] = 0.0
        st.session_state["budget_off"] = (
            f"{SETTINGS[name].form_label(name)} changed, so the time budget is off (minutes 0) and the run trains "
            "exactly as set. Set the time budget to fit it to a time instead."
        )


def random_seed() -> int:
    """A new seed for a run started from the dashboard (the CLI keeps its fixed default)."""
    return secrets.randbelow(int(SETTINGS["seed"].high or 1) + 1)


def new_seed() -> None:
    st.session_state["cfg_seed"] = random_seed()


def with_run_seed(config: TrainConfig) -> TrainConfig:
    """The config a started run trains: with a new seed unless this participant keeps theirs, so that two runs of
    the same settings show how much of a score is luck. The seed field shows it from the next run of the page."""
    if st.session_state.get("keep_seed"):
        return config
    seed = random_seed()
    st.session_state["seed_used"] = seed  # the widget exists in this run: restore_form sets it in the next
    return config.replace(seed=seed)


def field_widget(name: str, current: SimpleNamespace) -> None:
    """The widget its setting calls for, labelled in plain words where the setting has them; a student's setting
    also says what raising or lowering it does. Number inputs only refuse negatives: config_form names any other
    bad value, where the widget's own bounds would silently clamp it."""
    setting, key = SETTINGS[name], f"cfg_{name}"
    label = setting.form_label(name)
    help_text, applies = ui_state.field_help(name, current)
    help_text = with_links(help_text, about=label)
    if setting.choices:
        st.selectbox(label, list(setting.choices), key=key, help=help_text)
    elif setting.kind is bool:
        st.checkbox(label, key=key, help=help_text, disabled=not applies)
    elif setting.kind is int:
        st.number_input(
            label,
            step=1,
            min_value=0,
            key=key,
            help=help_text,
            disabled=not applies,
            on_change=budget_off if name in RUN_LENGTH else None,
            args=(name,),
        )
    else:
        st.number_input(
            label, step=setting.step or 0.01, min_value=0.0, format="%g", key=key, help=help_text, disabled=not applies
        )
    if setting.basic:
        st.caption(with_links(setting.effect[0].upper() + setting.effect[1:] + ".", about=label))


def basic_fields(current: SimpleNamespace) -> None:
    """The student's settings, two to a row; the seed with its button and whether it stays."""
    rows = [BASIC[i : i + 2] for i in range(0, len(BASIC), 2)]
    for row in rows:
        for column, name in zip(st.columns(2), row, strict=False):
            with column:
                field_widget(name, current)
                if name == "seed":
                    st.button("New seed", on_click=new_seed, key="new_seed")
                    st.checkbox(
                        "Same seed every run",
                        key="keep_seed",
                        help="off: each run you start gets a new seed, shown here and in its record",
                    )


def config_form() -> TrainConfig | None:
    """The preset, the student's settings, then "Advanced" (one column per section); returns the config, or None
    after showing why it is invalid."""
    st.selectbox(
        "Preset",
        list(PRESETS),
        key="preset",
        on_change=load_preset,
        help="a starting point; every field below can still be changed",
    )
    current = SimpleNamespace(**{name: st.session_state[f"cfg_{name}"] for name in SETTINGS})
    basic_fields(current)
    with st.expander("Advanced settings"):
        sections = {
            section: [n for n in names if n not in BASIC] for section, names in ui_state.form_sections().items()
        }
        sections = {section: names for section, names in sections.items() if names}
        for column, (section, names) in zip(st.columns(len(sections)), sections.items(), strict=True):
            with column:
                st.markdown(f"**{section}**")
                for name in names:
                    field_widget(name, current)
    values = {name: st.session_state[f"cfg_{name}"] for name in SETTINGS}
    if values["minutes"]:
        st.session_state.pop("budget_off", None)
    elif note := st.session_state.get("budget_off"):
        st.caption(note)
    st.session_state["train_form"], st.session_state["train_preset"] = values, st.session_state["preset"]
    st.session_state["train_keep_seed"] = st.session_state.get("keep_seed", False)
    try:
        config = TrainConfig(**values)
    except ValueError as err:
        st.error(f"Fix the form: {err}")
        return None
    if why := bf16_slowdown(config.precision, config.device):
        st.warning(f"Precision: {why}.")
    for note in machine_notes(config):  # e.g. more threads asked for than the machine has cores
        st.caption(f"Note: {note}")
    return config
