"""Plotly figures shared by the workbench and the Gradio demo (no Streamlit import here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from app import words
from core.schema import UNKNOWN, Schema

# Okabe-Ito + Tableau: distinguishable for colour-blind viewers, enough for the largest attribute.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
           "#4E79A7", "#F28E2B", "#59A14F", "#B07AA1", "#76B7B2", "#EDC948", "#FF9DA7", "#9C755F"]
UNKNOWN_COLOR = "#BBBBBB"
MISTAKE_COLOR = "#D55E00"


def value_colors(schema: Schema, attribute: str) -> dict[str, str]:
    """Stable colour per value of an attribute (same colour on every page)."""
    names = schema[attribute].value_names
    out = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(names)}
    out[UNKNOWN] = UNKNOWN_COLOR
    return out


# ---- clip timeline ----------------------------------------------------------------------------
def timeline_figure(segments: Sequence[Any], schema: Schema, duration: float,
                    cursor_s: float | None = None, unfamiliar: Sequence[tuple[float, float]] = ()) -> go.Figure:
    """Predicted segments as one horizontal lane per attribute, a line at the scrubbed frame, and
    the ``unfamiliar`` stretches (unlike the index: their votes abstain) shaded."""
    fig = go.Figure()
    lanes = [a.display for a in schema.attributes]
    for seg in segments:
        a = schema[seg.attribute]
        color = value_colors(schema, seg.attribute).get(seg.value, UNKNOWN_COLOR)
        label = a.display_of(seg.value)
        # The last frame's segment runs one sampling step past it: cut it at the clip's end.
        end = min(seg.end_s, duration) if duration > seg.start_s else seg.end_s
        fig.add_bar(
            y=[a.display], x=[max(end - seg.start_s, 1e-3)], base=[seg.start_s], orientation="h",
            marker={"color": color, "line": {"color": "white", "width": 1}},
            text=[label], textposition="inside", insidetextanchor="middle", textfont={"color": "white"},
            hovertemplate=f"{a.display}: {label}<br>{words.span(seg.start_s, end)}<extra></extra>",
            showlegend=False, name=label,
        )
    for start, end in unfamiliar:
        fig.add_vrect(x0=start, x1=max(end, start + 0.05), fillcolor="#d62728", opacity=0.12, line_width=0,
                      annotation_text="unlike this index", annotation_position="top left",
                      annotation_font={"size": 10, "color": "#a01010"})
    if cursor_s is not None:
        fig.add_vline(x=cursor_s, line_width=2, line_color="#222", line_dash="dot")
    fig.update_layout(
        barmode="overlay", height=70 + 34 * len(lanes), margin={"l": 10, "r": 10, "t": 24, "b": 30},
        xaxis={"title": "seconds", "range": [0, max(duration, 0.1)], "showgrid": True},
        yaxis={"categoryorder": "array", "categoryarray": list(reversed(lanes))},
        plot_bgcolor="white", bargap=0.25,
        # A label that would shrink below 10 px (a one-frame segment) is hidden, not squeezed
        # unreadable; the segment's colour and hover still say what it is.
        uniformtext={"minsize": 10, "mode": "hide"},
    )
    return fig


def answer_timeline_figure(spans: Sequence[Any], duration: float, yes: str, no_answer: str,
                           cursor_s: float | None = None, unfamiliar: Sequence[tuple[float, float]] = ()) -> go.Figure:
    """A clip's answer frame by frame (``app.handlers.ask.AnswerSpan``: text, start_s, end_s,
    confidence) as one lane; ``yes`` stretches (a when-question's window) green, no definite answer grey."""
    fig = go.Figure()
    others: dict[str, str] = {}
    for s in spans:
        if s.text == yes:
            color = "#009E73"
        elif s.text == no_answer:
            color = UNKNOWN_COLOR
        else:
            color = others.setdefault(s.text, PALETTE[len(others) % len(PALETTE)])
        fig.add_bar(
            y=["Answer"], x=[max(s.end_s - s.start_s, 1e-3)], base=[s.start_s], orientation="h",
            marker={"color": color, "line": {"color": "white", "width": 1}}, text=[s.text],
            textposition="inside", insidetextanchor="middle", textfont={"color": "white"},
            hovertemplate=f"{s.text}<br>{words.span(s.start_s, s.end_s)} · confidence {s.confidence:.2f}<extra></extra>",
            showlegend=False, name=s.text,
        )
    for start, end in unfamiliar:
        fig.add_vrect(x0=start, x1=max(end, start + 0.05), fillcolor="#d62728", opacity=0.12, line_width=0)
    if cursor_s is not None:
        fig.add_vline(x=cursor_s, line_width=2, line_color="#222", line_dash="dot")
    fig.update_layout(barmode="overlay", height=130, margin={"l": 10, "r": 10, "t": 10, "b": 30},
                      xaxis={"title": "seconds", "range": [0, max(duration, 0.1)], "showgrid": True},
                      plot_bgcolor="white", uniformtext={"minsize": 10, "mode": "hide"})
    return fig


# ---- evaluation ---------------------------------------------------------------------------------
def confusion_figure(confusion: Mapping[str, Any], schema: Schema, attribute: str) -> go.Figure:
    a = schema[attribute]
    labels = [a.display_of(v) for v in confusion["labels"]]
    m = np.asarray(confusion["matrix"], dtype=float)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    fig = go.Figure(go.Heatmap(
        z=share, x=labels, y=labels, colorscale="Blues", zmin=0, zmax=1,
        text=m.astype(int), texttemplate="%{text}", customdata=share,
        hovertemplate="truth %{y}<br>predicted %{x}<br>%{text} frames (%{customdata:.0%} of row)<extra></extra>",
        colorbar={"title": "row share", "tickformat": ".0%"},
    ))
    # Column headers stand at -45° and the margins grow to fit them (automargin): at -30° long
    # names overlapped their neighbours. The height leaves room for the headers above the cells.
    longest = max((len(t) for t in labels), default=0)
    side = 60 + 34 * len(labels) + round(5.5 * longest)
    fig.update_layout(height=min(max(side, 320), 900), margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      xaxis={"title": "predicted", "side": "top", "tickangle": -45, "automargin": True},
                      yaxis={"title": "truth", "autorange": "reversed", "automargin": True})
    return fig




# ---- the map ----------------------------------------------------------------------------------
def category_style(schema: Schema, by: str, categories: np.ndarray) -> dict[str, tuple[str, str]]:
    """Category -> (legend label, colour), in legend order, for a map coloured ``by`` something.

    Attribute values keep their schema order and colours; other categories (splits, correctness)
    are sorted, correctness in its own fixed colours.
    """
    from core import maps

    present = set(categories.tolist())
    if by in schema.names:
        colors = value_colors(schema, by)
        return {v: (schema[by].display_of(v), colors[v]) for v in [*schema[by].value_names, UNKNOWN] if v in present}
    fixed = {maps.CORRECT: "#009E73", maps.WRONG: MISTAKE_COLOR, maps.ABSTAINED: "#E69F00",
             maps.UNLABELLED: UNKNOWN_COLOR}
    return {v: (v.capitalize(), fixed.get(v, PALETTE[i % len(PALETTE)])) for i, v in enumerate(sorted(present))}


def map_figure(layout: np.ndarray, categories: np.ndarray, style: Mapping[str, tuple[str, str]],
               hover: np.ndarray | None = None, size: float = 4.0, uirevision: str = "",
               ids: np.ndarray | None = None) -> go.Figure:
    """WebGL scatter of the index map, one trace per category; ``customdata`` is the index row
    (selections report it), ``hover`` an optional per-point text. ``ids``: the index rows of
    ``layout``'s points when they are a sample (default: every row, in order)."""
    ids = np.arange(len(layout)) if ids is None else np.asarray(ids)
    fig = go.Figure()
    for value, (label, color) in style.items():
        m = categories == value
        fig.add_trace(go.Scattergl(
            x=layout[m, 0], y=layout[m, 1], mode="markers", name=f"{label} ({int(m.sum()):,})",
            customdata=ids[m], text=hover[m] if hover is not None else None,
            marker={"size": size, "color": color, "opacity": 0.8, "line": {"width": 0}},
            hovertemplate="#%{customdata}" + ("<br>%{text}" if hover is not None else "")
            + "<extra>%{fullData.name}</extra>",
        ))
    fig.update_layout(
        height=680, margin={"l": 0, "r": 0, "t": 30, "b": 0}, dragmode="lasso", plot_bgcolor="white",
        legend={"itemsizing": "constant", "orientation": "h", "x": 0.0, "y": -0.02, "yanchor": "top",
                "font": {"size": 12}},
        xaxis={"visible": False}, yaxis={"visible": False},
        # Keeps zoom and selection across reruns of the same map; a new colouring starts fresh.
        uirevision=uirevision,
    )
    return fig


def add_density(fig: go.Figure, counts: np.ndarray, x_edges: np.ndarray, y_edges: np.ndarray) -> None:
    """A map's density grid under its points (``core.maps.density_grid``): one heatmap image of
    bins x bins cells however many points, log-scaled so sparse regions show; empty cells clear."""
    cells = np.asarray(counts).T  # heatmap rows are y
    z = np.log1p(cells.astype(float))
    z[cells == 0] = np.nan
    fig.add_trace(go.Heatmap(
        x=(x_edges[:-1] + x_edges[1:]) / 2, y=(y_edges[:-1] + y_edges[1:]) / 2, z=z, customdata=cells,
        # From a visible tint, not white: at a few points per cell the grid must still show.
        colorscale=[[0.0, "#dce8f3"], [1.0, "#08306b"]], zmin=0.0, showscale=False, hoverongaps=False,
        name="density", showlegend=False,
        hovertemplate="%{customdata:,} frames<extra></extra>",
    ))
    fig.data = (fig.data[-1], *fig.data[:-1])  # under the points
    fig.update_layout(xaxis={"range": [float(x_edges[0]), float(x_edges[-1])]},
                      yaxis={"range": [float(y_edges[0]), float(y_edges[-1])]})


def add_placed(fig: go.Figure, xy: np.ndarray, times: Sequence[float], name: str) -> None:
    """An uploaded scene on the map: a star per frame, joined in time order for a clip."""
    fig.add_trace(go.Scatter(
        x=xy[:, 0], y=xy[:, 1], mode="lines+markers" if len(xy) > 1 else "markers", name=f"★ {name}",
        customdata=[-1] * len(xy),  # not an index row: selections ignore it
        text=[words.seconds(t) for t in times], line={"color": "#111", "width": 1.5},
        marker={"symbol": "star", "size": 16, "color": "#FFD400", "line": {"color": "#111", "width": 1.2}},
        hovertemplate=f"{name} %{{text}}<extra></extra>",
    ))
