"""A setting as the class reads it: its short name, its value in a few characters, and accuracy against it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from ..config import SETTINGS
from .plots import TRAIN_COLOUR, _figure

FIGURE_HEIGHT = 260  # pixels: small multiples, two or three to a row
MAX_TICKS = 8  # up to this many distinct values, the axis marks exactly the values the class tried
LOG_SPAN = 10  # a positive numeric setting whose values span more than this factor gets a log axis (lr, batch size)
READABLE = {  # figure titles: what a class calls the setting, where its field name is an abbreviation
    "arch": "architecture",
    "lr": "learning rate",
    "opt": "optimizer",
    "crop_pad": "crop padding",
    "batchnorm": "batch normalisation",
    "lowres_epochs": "low-resolution epochs",
    "lowres_side": "low-resolution side",
    "tta": "test-time augmentation",
    "tta_shifts": "shifted test-time copies",
    "validation": "held-out images",
}


def short_name(name: str) -> str:
    """A field as a table writes it: batch_size -> "batch size"."""
    return name.replace("_", " ")


def value_text(value: Any) -> str:
    """A setting's value, compact: True -> "on", 0.3333333 -> "0.333", 5e-4 -> "0.0005", 12 -> "12"."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def readable(name: str) -> str:
    """A field as a figure's title names it: "learning rate", "batch size"."""
    return READABLE.get(name, short_name(name))


def setting_scatter(
    name: str, values: Sequence[Any], accuracies: Sequence[float], who: Sequence[tuple[str, str]], y_title: str
) -> go.Figure:
    """Accuracy (%) against one config field's value, one point per run; `who` is each run's (owner, run name).

    Switches and choices sit on a categorical axis in their own order, numbers on a numeric one (logarithmic when
    the values are positive and span more than LOG_SPAN times).
    """
    xaxis: dict[str, Any] = dict(title=short_name(name) + (f" ({SETTINGS[name].unit})" if SETTINGS[name].unit else ""))
    if _numeric(name, values):
        x: list[Any] = [float(v) for v in values]
        spans = bool(x) and min(x) > 0 and max(x) > LOG_SPAN * min(x)
        xaxis["type"] = "log" if spans else "linear"
        tried = sorted(set(x))
        if len(tried) <= MAX_TICKS:
            xaxis.update(tickmode="array", tickvals=tried, ticktext=[value_text(v) for v in tried])
    else:
        x = [value_text(v) for v in values]
        xaxis.update(type="category", categoryorder="array", categoryarray=_categories(name, x))
    points = dict(
        type="scatter",
        mode="markers",
        x=x,
        y=list(accuracies),
        customdata=[list(pair) for pair in who],
        hovertemplate=f"%{{customdata[0]}}: %{{customdata[1]}}<br>{short_name(name)} %{{x}}<br>"
        "%{y:.1f} %<extra></extra>",
        marker=dict(color=TRAIN_COLOUR, size=9, opacity=0.75, line=dict(color="white", width=1)),
    )
    # The title sits just above the points and the toolbar in a band of its own above it: at a column's width the
    # toolbar would otherwise cover the title's end.
    title = dict(text=f"accuracy vs {readable(name)}", font=dict(size=14), yref="paper", y=1, yanchor="bottom")
    return _figure(
        [points],
        title,
        height=FIGURE_HEIGHT,
        showlegend=False,
        margin=dict(l=10, r=10, t=60, b=10),
        modebar=dict(remove=["select2d", "lasso2d"]),  # nothing here acts on a selection
        xaxis=xaxis,
        yaxis=dict(title=y_title),
    )


def _numeric(name: str, values: Sequence[Any]) -> bool:
    """Numbers on a numeric axis; switches, choices and anything unexpected as categories."""
    described = SETTINGS[name]
    plain = described.kind in (int, float) and not described.choices
    return plain and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _categories(name: str, shown: Sequence[str]) -> list[str]:
    """The categories in the setting's own order (its choices; off before on), then any others."""
    described = SETTINGS[name]
    own = ["off", "on"] if described.kind is bool else list(described.choices)
    present = set(shown)
    return [c for c in own if c in present] + sorted(present - set(own))
