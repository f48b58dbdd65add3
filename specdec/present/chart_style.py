"""The house style of every chart: Okabe & Ito's colour-blind-safe palette, a colour per method that holds in
every chart, method labels for legends and ticks, the common layout, empty-chart notes, CI error bars and the
log axis for speedups. Used by specdec.present.charts and deploy_charts.

Public API
    OKABE_ITO, FAMILY_COLOURS, METHOD_COLOURS, SPARE_COLOURS, SEQUENCE, FONT
    method_colour(method, i=0) -> colour; method_colours(keys) -> {key: colour}
    method_label(key, drafters), method_tick(key, drafters), method_order(keys); house_style(fig, title, subtitle=None, height=…) -> fig
    empty_chart(title, why) -> fig; ci_bars(point, lo, hi) -> error_y dict; speculative_rows(df); ratio_axis(values) -> axis dict
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from specdec import config, methods

# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour-vision deficiencies.
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7"}
FAMILY_COLOURS = {"draft": OKABE_ITO["blue"], "prompt-lookup": OKABE_ITO["vermillion"],
                  "layer-skip": OKABE_ITO["green"], "medusa": OKABE_ITO["purple"]}
METHOD_COLOURS = {"baseline": "#6E6E6E", **FAMILY_COLOURS}
# A family's second method (draft:b beside draft:a) takes the first spare colour; yellow is left out
# everywhere: it vanishes on white.
SPARE_COLOURS = [OKABE_ITO[k] for k in ("orange", "sky", "black")]
# Successive γ values of one method.
SEQUENCE = [OKABE_ITO[k] for k in ("sky", "blue", "green", "orange", "purple", "vermillion", "black")]
FONT = "DejaVu Sans, Arial, sans-serif"  # DejaVu carries γ α τ ≥ ×, and the PDF uses it too

def method_colour(method: str, i: int = 0) -> str:
    """One method's colour on its own: its family's (use method_colours for several of a family)."""
    fam = methods.family(method) if methods.is_valid(method) else method
    return METHOD_COLOURS.get(fam, SEQUENCE[i % len(SEQUENCE)])


def method_colours(keys) -> dict[str, str]:
    """{key: colour} for the methods shown together, stable for a given set of keys: in display order
    (methods.order) each takes its family's colour, or — when that is taken (a second draft model) —
    the next spare Okabe–Ito colour; only past eight methods do colours repeat."""
    out = {"baseline": METHOD_COLOURS["baseline"]}
    used: set[str] = set()
    for i, k in enumerate(methods.order([k for k in keys if k != "baseline"])):
        colour = FAMILY_COLOURS.get(methods.family(k)) if methods.is_valid(k) else None
        if colour is None or colour in used:
            colour = next((c for c in SPARE_COLOURS + SEQUENCE if c not in used), SEQUENCE[i % len(SEQUENCE)])
        out[k] = colour
        used.add(colour)
    return out


def method_label(key: str, drafters: dict | None) -> str:
    """Legend text: methods.label with drafter names, or the raw key when no drafters are given."""
    return key if drafters is None or not methods.is_valid(key) else methods.label(key, drafters)


def method_tick(key: str, drafters: dict | None) -> str:
    return key if drafters is None or not methods.is_valid(key) else methods.short_label(key, drafters)


def method_order(keys) -> list[str]:
    return methods.order(keys)


def house_style(fig: go.Figure, title: str, subtitle: str | None = None, height: int = config.CHART_HEIGHT_PX) -> go.Figure:
    """House layout: white background, large enough type for a PDF at 100 %, legend under the plot."""
    fig.update_layout(
        template="plotly_white", width=config.CHART_WIDTH_PX, height=height,
        font=dict(family=FONT, size=config.CHART_FONT_PX, color="#222"),
        title=dict(text=f"<b>{title}</b>", x=0.01, xanchor="left", yref="container", y=0.975, yanchor="top",
                   font=dict(size=config.CHART_FONT_PX + 3),
                   subtitle=dict(text=subtitle or "", font=dict(size=config.CHART_FONT_PX - 2, color="#555"))),
        margin=dict(l=80, r=30, t=95 if subtitle else 70, b=120),
        # The legend sits at the very bottom of the figure, below the x-axis title, never on the data.
        legend=dict(orientation="h", yref="container", y=0.01, yanchor="bottom", x=0.0, xanchor="left"),
        hoverlabel=dict(font_family=FONT),
    )
    fig.update_xaxes(showline=True, linecolor="#888", ticks="outside", zeroline=False)
    fig.update_yaxes(showline=True, linecolor="#888", ticks="outside", zeroline=False)
    return fig


def empty_chart(title: str, why: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=why, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=config.CHART_FONT_PX + 1, color="#555"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return house_style(fig, title)


def ci_bars(point, lo, hi) -> dict:
    """Asymmetric error bars from CI bounds (NaN bounds draw no bar)."""
    p, lo, hi = (np.asarray(v, dtype=float) for v in (point, lo, hi))
    return dict(type="data", symmetric=False, array=np.nan_to_num(hi - p, nan=0.0).clip(min=0),
                arrayminus=np.nan_to_num(p - lo, nan=0.0).clip(min=0), thickness=1.5, width=5)


def speculative_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["method"] != "baseline"] if "method" in df.columns else df


def ratio_axis(values) -> dict:
    """A log axis for speedups (0.5× and 2× equally far from break-even) with × tick labels."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x) and x > 0], dtype=float)
    lo = min(v.min(initial=1.0), 0.9) / 1.15
    hi = max(v.max(initial=1.0), 1.1) * 1.15
    span = math.log10(hi / lo)
    # Ticks about evenly spaced on the log axis: 1-2-5 beyond ~16×, ~1.4× steps beyond ~3×, finer inside.
    steps = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50) if span > 1.2 else (
        0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.4, 2, 3, 5, 7, 10) if span > 0.5 else (
        0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 4, 6, 8)
    ticks = [t for t in steps if lo <= t <= hi]
    return dict(type="log", range=[math.log10(lo), math.log10(hi)], tickvals=ticks,
                ticktext=[f"{t:g}×" for t in ticks])
