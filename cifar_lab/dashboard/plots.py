"""Pure plotly figure builders and image helpers; pages hand the results to st.plotly_chart / st.image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..events import EarlyScore, EpochEnd
from ..preprocess import normalize as normalize_pixels

if TYPE_CHECKING:
    from .job_view import LossPoint
    from .run_views import RunCurves

TRAIN_COLOUR, TEST_COLOUR, RAW_COLOUR = "#1f77b4", "#ff7f0e", "rgba(31, 119, 180, 0.25)"
VALIDATION_COLOUR = "#2ca02c"
TOOLBAR_REMOVED = ("zoom", "pan", "select", "lasso", "zoomin", "zoomout", "autoscale")
SMOOTHING = 0.9  # weight of the past in the loss curve's moving average (TensorBoard's default slider)


def _figure(traces: list[dict], title: str | dict, *, height: int = 320, **layout) -> go.Figure:
    """One constructor call: a fraction of the cost of add_trace/update_layout, which matters at one redraw a second."""
    base = dict(
        title=title,
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        # At the foot of the figure: the top right is the toolbar's, which covered the legend on a phone's narrow
        # chart. Placed on the plot's scale instead, a legend wrapped to four rows on a phone ran into the x title.
        legend=dict(orientation="h", yref="container", yanchor="bottom", y=0, xanchor="left", x=0),
        # The toolbar keeps "download as PNG" and "reset axes" only: with all nine buttons it ran into the title on
        # a phone. Dragging still zooms; a double click still resets.
        modebar=dict(remove=list(TOOLBAR_REMOVED)),
    )
    return go.Figure(data=traces, layout={**base, **layout})


def ema(values: Sequence[float], smoothing: float = SMOOTHING) -> list[float]:
    """Exponential moving average, bias-corrected so the first points are not pulled towards 0."""
    out, avg = [], 0.0
    for i, v in enumerate(values, start=1):
        avg = smoothing * avg + (1 - smoothing) * v
        out.append(avg / (1 - smoothing**i) if smoothing else v)
    return out


def trend(values: Sequence[float], smoothing: float = SMOOTHING) -> list[float]:
    """The moving average run forwards, then backwards over the result: no lag, so the line goes through the middle
    of the raw points. A forwards-only average of a falling loss lags behind it and runs above every raw point."""
    forwards = ema(values, smoothing)
    return ema(forwards[::-1], smoothing)[::-1]


def _column(items: Sequence, attribute: str) -> np.ndarray:
    """One attribute of each item as a float array: plotly checks arrays at once, lists item by item (10x slower)."""
    return np.fromiter((getattr(item, attribute) for item in items), dtype=float, count=len(items))


def _line(x, y, name: str, colour: str, mode: str = "lines+markers", **style) -> dict:
    return dict(
        type="scatter", x=x, y=y, name=name, mode=mode, line=dict(color=colour, **style), marker=dict(color=colour)
    )


def loss_figure(losses: Sequence[LossPoint], epochs: Sequence[EpochEnd], *, smoothing: float = SMOOTHING) -> go.Figure:
    """Training loss per step (raw and smoothed) and per epoch (train and test), against epochs."""
    x, y = _column(losses, "epoch"), _column(losses, "loss")
    ex = _column(epochs, "epoch")
    traces = [
        _line(x, y, "train loss per step", RAW_COLOUR, "lines", width=1),
        _line(x, np.asarray(trend(y.tolist(), smoothing)), "trend (smoothed)", TRAIN_COLOUR, "lines"),
        {
            **_line(ex, _column(epochs, "train_loss"), "train loss per epoch", TRAIN_COLOUR, "markers"),
            "marker": dict(color=TRAIN_COLOUR, size=9, symbol="diamond"),
        },
        _line(ex, _column(epochs, "test_loss"), "test loss per epoch", TEST_COLOUR, dash="dot"),
    ]
    return _figure(traces, "Loss", xaxis=dict(title="epoch"), yaxis=dict(title="cross-entropy"))


def accuracy_figure(
    epochs: Sequence[EpochEnd], *, show_test: bool = True, early: Sequence[EarlyScore] = ()
) -> go.Figure:
    """Train and test accuracy after each epoch (and validation, for a run with a hold-out), 0..1 shown as percent;
    `early`: test accuracy during the first epoch, on a few test images, so the chart is not empty until it ends.
    `show_test=False` leaves test out, for a class that ranks by validation accuracy until test is revealed."""
    x = _column(epochs, "epoch")
    traces = [_line(x, _column(epochs, "train_acc"), "train", TRAIN_COLOUR)]
    if show_test:
        traces.append(_line(x, _column(epochs, "test_acc"), "test", TEST_COLOUR))
    if any(e.val_acc is not None for e in epochs):
        held_out = np.array([np.nan if e.val_acc is None else e.val_acc for e in epochs])
        traces.append(_line(x, held_out, "validation", VALIDATION_COLOUR, dash="dash"))
    if show_test and early:  # last, so the traces above keep their places; joined to epoch 1's point
        ex, ey = _column(early, "epoch"), _column(early, "test_acc")
        if len(epochs):
            ex, ey = np.append(ex, x[0]), np.append(ey, epochs[0].test_acc)
        traces.append(_line(ex, ey, "test, during epoch 1", TEST_COLOUR, dash="dot"))
    top = max([1] + [e.epochs for e in epochs])
    return _figure(
        traces,
        "Accuracy per epoch",
        xaxis=dict(title="epoch", range=[0, top + 0.5], dtick=1 if top <= 20 else None),
        yaxis=dict(title="accuracy", tickformat=".0%", range=[0, 1]),
    )


# One colour per compared run (plotly's default sequence); a run keeps its colour in both comparison charts.
RUN_COLOURS = (
    "#636EFA",
    "#EF553B",
    "#00CC96",
    "#AB63FA",
    "#FFA15A",
    "#19D3F3",
    "#FF6692",
    "#B6E880",
    "#FF97FF",
    "#FECB52",
)


def runs_loss_figure(runs: Sequence[RunCurves], *, smoothing: float = SMOOTHING) -> go.Figure:
    """Training loss per step of several runs, each smoothed (bias-corrected EMA) in its own colour."""
    traces = [
        _line(r.steps, np.asarray(ema(r.loss.tolist(), smoothing)), r.label, RUN_COLOURS[i % len(RUN_COLOURS)], "lines")
        for i, r in enumerate(runs)
    ]
    return _figure(
        traces,
        "Training loss (smoothed)",
        height=380,
        xaxis=dict(title="step"),
        yaxis=dict(title="cross-entropy"),
    )


def runs_accuracy_figure(runs: Sequence[RunCurves]) -> go.Figure:
    """Test (solid) and train (dotted) accuracy per epoch of several runs, 0..1 shown as percent."""
    traces = []
    for i, r in enumerate(runs):
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        traces += [
            {**_line(r.epochs, r.test_acc, f"{r.label} test", colour), "legendgroup": r.label},
            {**_line(r.epochs, r.train_acc, f"{r.label} train", colour, "lines", dash="dot"), "legendgroup": r.label},
        ]
    return _figure(
        traces,
        "Accuracy per epoch",  # the legend tells test (solid) from train (dotted): a longer title ran under the toolbar
        height=380,
        xaxis=dict(title="epoch", dtick=1),
        yaxis=dict(title="accuracy", tickformat=".0%", range=[0, 1]),
    )


def per_class_figure(per_class: dict[str, float], overall: float | None = None) -> go.Figure:
    """One bar per class, 0..1 as percent, with the overall accuracy as a dashed line."""
    names, values = list(per_class), list(per_class.values())
    # Labels at the foot of each bar, above only a bar too short to hold one: on top of every bar they would
    # collide with the overall line wherever a class scores near it.
    where = ["inside" if v >= 0.1 else "outside" for v in values]
    traces = [
        dict(
            type="bar",
            x=names,
            y=values,
            text=[f"{v:.0%}" for v in values],
            textposition=where,
            insidetextanchor="start",
            insidetextfont=dict(color="white"),
            marker_color=TRAIN_COLOUR,
            name="per class",
        )
    ]
    if overall is not None:
        traces.append(_line(names, [overall] * len(names), f"overall {overall:.1%}", TEST_COLOUR, "lines", dash="dash"))
    return _figure(traces, "Accuracy per class", yaxis=dict(tickformat=".0%", range=[0, 1.05]))


def row_normalised(confusion: np.ndarray) -> np.ndarray:
    """Each row divided by its total: the share of each true class given each prediction (rows of 0 stay 0)."""
    totals = confusion.sum(axis=1, keepdims=True)
    return np.divide(confusion, totals, out=np.zeros(confusion.shape, dtype=float), where=totals > 0)


def confusion_figure(confusion: np.ndarray, classes: Sequence[str], *, normalised: bool = False) -> go.Figure:
    """Heatmap, rows = true class (top to bottom), columns = predicted; click a cell to select it.

    Heatmaps cannot be selected in plotly, so an invisible marker sits on each cell to take the clicks.
    """
    counts = np.asarray(confusion)
    shares = row_normalised(counts)
    names = list(classes)
    hover = "true %{y}, predicted %{x}<br>%{customdata[0]} images (%{customdata[1]:.1%} of %{y})<extra></extra>"
    heatmap = dict(
        type="heatmap",
        z=shares if normalised else counts,
        x=names,
        y=names,
        colorscale="Blues",
        texttemplate="%{z:.0%}" if normalised else "%{z}",
        hoverinfo="skip",
    )
    n = len(names)
    cells = dict(
        type="scatter",
        mode="markers",
        x=names * n,
        y=[name for name in names for _ in range(n)],
        customdata=np.dstack([counts, shares]).reshape(n * n, 2),
        hovertemplate=hover,
        showlegend=False,
        marker=dict(symbol="square", size=28, opacity=0),
        selected=dict(marker=dict(opacity=0)),
        unselected=dict(marker=dict(opacity=0)),
    )
    title = "Confusion matrix" + (" (share of each true class)" if normalised else " (counts)")
    # Fixed ranges: the markers would otherwise pad the axes; y runs downwards so the first class is on top.
    return _figure(
        [heatmap, cells],
        title,
        height=520,
        xaxis=dict(title="predicted", range=[-0.5, n - 0.5], showgrid=False, zeroline=False),
        yaxis=dict(title="true", range=[n - 0.5, -0.5], showgrid=False, zeroline=False),
    )


def probability_figure(
    labels: Sequence[str], probabilities: Sequence[float], *, title: str = "Top classes"
) -> go.Figure:
    """Horizontal bars, most likely on top, 0..1 as percent."""
    bars = dict(
        type="bar",
        x=list(probabilities),
        y=list(labels),
        orientation="h",
        marker_color=TRAIN_COLOUR,
        text=[f"{p:.1%}" for p in probabilities],
        textposition="auto",
    )
    return _figure(
        [bars],
        title,
        height=60 + 45 * len(labels),
        xaxis=dict(range=[0, 1], tickformat=".0%"),
        yaxis=dict(autorange="reversed"),
    )


def class_counts_figure(classes: Sequence[str], train: Sequence[int], test: Sequence[int]) -> go.Figure:
    traces = [
        dict(type="bar", x=list(classes), y=list(train), name="train", marker_color=TRAIN_COLOUR),
        dict(type="bar", x=list(classes), y=list(test), name="test", marker_color=TEST_COLOUR),
    ]
    return _figure(traces, "Images per class", barmode="group")


def normalisation_figure(x: torch.Tensor, how: str = "cifar") -> go.Figure:
    """Pixel value histograms per channel for uint8 images x (N, 3, H, W), before and after normalisation."""
    after = normalize_pixels(x, how)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("raw pixels 0..255", f"after normalize ({how})"))
    for c, (name, colour) in enumerate(zip("RGB", ("#d62728", "#2ca02c", "#1f77b4"))):
        for col, values in ((1, x[:, c].flatten().float()), (2, after[:, c].flatten())):
            fig.add_histogram(
                x=values.numpy(),
                name=name,
                marker_color=colour,
                opacity=0.5,
                nbinsx=50,
                legendgroup=name,
                showlegend=col == 1,
                row=1,
                col=col,
            )
    return fig.update_layout(
        title="What normalisation does",
        height=320,
        barmode="overlay",
        margin=dict(l=10, r=10, t=60, b=10),
        modebar=dict(remove=list(TOOLBAR_REMOVED)),
    )


def to_hwc(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """(3, H, W) tensor or array -> (H, W, 3) uint8 array for display."""
    arr = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    return np.ascontiguousarray(arr.transpose(1, 2, 0)).astype(np.uint8)


def upscale(image: np.ndarray, factor: int = 4) -> np.ndarray:
    """(H, W, C) -> (H*factor, W*factor, C) with square pixels: browsers would blur a small image."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def mosaic(images: torch.Tensor | np.ndarray, *, cols: int | None = None, scale: int = 3, gap: int = 2) -> np.ndarray:
    """Images (N, 3, H, W) uint8 -> one (rows*(H*scale+gap), cols*(W*scale+gap), 3) picture, white gaps."""
    arr = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    n, _, h, w = arr.shape
    cols = cols or n
    rows = -(-n // cols)
    cell_h, cell_w = h * scale + gap, w * scale + gap
    out = np.full((rows * cell_h, cols * cell_w, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * cell_h : r * cell_h + h * scale, c * cell_w : c * cell_w + w * scale] = upscale(to_hwc(arr[i]), scale)
    return out
