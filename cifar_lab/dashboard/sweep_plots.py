"""The sweep view's figure: each trial a line through the settings it tried to the validation accuracy it got."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from .plots import TOOLBAR_REMOVED

if TYPE_CHECKING:
    from ..sweep_record import Trial


def parallel_coordinates(trials: Sequence[Trial], swept: Sequence[str]) -> go.Figure | None:
    """One axis per swept setting and a last one for validation accuracy (%), lines coloured by it; None until a
    trial has a score. Settings that are words (an optimizer) get one tick per value."""
    scored = [t for t in trials if t.val_accuracy is not None]
    if not scored:
        return None
    accuracy = [round(100 * (t.val_accuracy or 0.0), 2) for t in scored]
    dimensions = [_axis(name, [t.params.get(name) for t in scored]) for name in swept]
    dimensions.append(dict(label="validation accuracy (%)", values=accuracy))
    figure = go.Figure(
        go.Parcoords(
            line=dict(color=accuracy, colorscale="Viridis", showscale=True, colorbar=dict(title="%")),
            dimensions=dimensions,
        )
    )
    figure.update_layout(margin=dict(l=60, r=40, t=50, b=30), height=360, modebar=dict(remove=list(TOOLBAR_REMOVED)))
    return figure


def _axis(name: str, values: list[Any]) -> dict[str, Any]:
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return dict(label=name, values=values)
    words = sorted({str(v) for v in values})
    return dict(
        label=name, values=[words.index(str(v)) for v in values], tickvals=list(range(len(words))), ticktext=words
    )
