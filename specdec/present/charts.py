"""Plotly figures from the analysis: data in, go.Figure out, no I/O. The app shows these figures and
the PDF brief embeds PNGs of the same figures, so the two can never disagree.

Every function takes the analysis output named in its docstring (specdec.analysis.analyze →
Analysis; specdec.hardware.whatif → DataFrame) and returns a go.Figure. Colours are Okabe & Ito's
colour-blind-safe palette; a method keeps its colour in every chart (chart_style.method_colours: a family's
colour for its first method, then the palette's spare colours). The house style is specdec.present.chart_style;
the payoff map and the serving-engine chart are in specdec.present.deploy_charts. Any number of methods is shown side
by side. `drafters` (Analysis.drafters) turns method keys into labels (specdec.methods.label, short
labels where space is tight); without it the raw keys are shown.

Public API
    methods_chart(methods_table) -> Figure                        every method at its best γ + memory it adds
    acceptance_chart(positions, category="all") -> Figure        acceptance by draft position
    gamma_chart(summary, projection, category="all") -> Figure   τ and speedup vs γ, measured + projected
    category_chart(summary_by_category, summary=None, min_speedup_lo=…) -> Figure   speedup by category
    distribution_chart(prompts) -> Figure                         per-prompt speedup per configuration
    throughput_chart(summary) -> Figure                           baseline vs speculative tokens/s
    costs_chart(costs) -> Figure                                  draft cost c and the verify-cost curve
    primary_method(analysis, decision=None) -> str | None         the method the single-method charts show
    payoff_data(analysis, hardware, method, batch_sizes=…, category="all") -> DataFrame   whatif for payoff_chart
    figures(analysis, decision=None, hardware=…, method=None, batch_sizes=…) -> {name: Figure}
    CHART_NAMES, CHART_TITLES
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from specdec import config, methods
from specdec.analysis import compare
from specdec.analysis import hardware as hw
from specdec.present.chart_style import (OKABE_ITO, SEQUENCE, ci_bars, empty_chart, house_style, method_colours,
                                         method_label, method_order, method_tick, ratio_axis, speculative_rows)
from specdec.present.deploy_charts import payoff_chart
from specdec.analysis.projection import largest_gamma_run

ALL = "all"

CHART_NAMES = ("methods", "categories", "gamma", "acceptance", "distribution", "throughput", "payoff", "costs")
CHART_TITLES = {
    "methods": "Methods compared",
    "categories": "Speedup by category",
    "gamma": "τ and speedup vs draft length γ",
    "acceptance": "Acceptance by draft position",
    "distribution": "Per-prompt speedup",
    "throughput": "Baseline vs speculative tokens/s",
    "payoff": "Where it pays off",
    "costs": "Draft cost c and verify cost",
}


# ---- 1. acceptance by draft position ----

def acceptance_chart(positions: pd.DataFrame, category: str = ALL, drafters: dict | None = None) -> go.Figure:
    """P(≥ i drafted tokens accepted | ≥ i drafted) for each position i, one panel per method, one line
    per γ run, bootstrap 95% CI bars, and the i.i.d. model α^i (dashed) at the largest γ.

    positions: Analysis.positions (or Analysis.positions_by_category with category set); columns
    method, draft_length, category, position, p_ge, p_ge_lo, p_ge_hi, alpha, iid_p_ge. Panels wrap
    after three methods."""
    title = "Acceptance by draft position"
    df = positions[positions["category"] == category] if len(positions) else positions
    if df.empty:
        return empty_chart(title, "no speculative rounds recorded")
    keys = method_order(df["method"].unique())
    n_cols = min(len(keys), 3)
    n_rows = math.ceil(len(keys) / n_cols)
    fig = make_subplots(rows=n_rows, cols=n_cols, shared_yaxes=True, horizontal_spacing=0.06,
                        vertical_spacing=0.16 if n_rows > 1 else 0.0,
                        subplot_titles=[method_label(m, drafters) for m in keys])
    shown = set()
    gammas = sorted(df["draft_length"].unique())
    for k, m in enumerate(keys):
        row, col = k // n_cols + 1, k % n_cols + 1
        axis = "" if k == 0 else str(k + 1)
        dm = df[df["method"] == m]
        for g in sorted(dm["draft_length"].unique()):
            d = dm[dm["draft_length"] == g].sort_values("position")
            name = f"γ = {g}"
            fig.add_trace(go.Scatter(
                x=d["position"], y=d["p_ge"], mode="lines+markers", name=name, legendgroup=name, meta=m,
                showlegend=name not in shown, line=dict(color=SEQUENCE[gammas.index(g) % len(SEQUENCE)], width=2.5),
                marker=dict(size=8), error_y=ci_bars(d["p_ge"], d["p_ge_lo"], d["p_ge_hi"]),
                hovertemplate=f"{method_tick(m, drafters)} γ={g}<br>position %{{x}}: %{{y:.2f}}<extra></extra>"),
                row=row, col=col)
            shown.add(name)
        top = dm[dm["draft_length"] == dm["draft_length"].max()].sort_values("position")
        alpha = float(top["alpha"].iloc[0])
        if np.isfinite(alpha):
            name = "i.i.d. model α<sup>i</sup>"
            fig.add_trace(go.Scatter(
                x=top["position"], y=top["iid_p_ge"], mode="lines", name=name, legendgroup=name, meta=m,
                showlegend=name not in shown, line=dict(color="#444", dash="dash", width=1.5),
                hovertemplate=f"{method_tick(m, drafters)}: α={alpha:.2f}, α^%{{x}} = %{{y:.2f}}<extra></extra>"),
                row=row, col=col)
            shown.add(name)
            fig.add_annotation(text=f"α = {alpha:.2f}", xref=f"x{axis} domain",
                               yref=f"y{axis} domain", x=0.98, y=0.98, showarrow=False,
                               xanchor="right", yanchor="top", font=dict(size=config.CHART_FONT_PX - 1, color="#444"))
        fig.update_xaxes(title_text="draft position i" if row == n_rows else None, dtick=1, row=row, col=col)
    for row in range(1, n_rows + 1):
        fig.update_yaxes(title_text="P(≥ i accepted | ≥ i drafted)" if n_rows == 1 else "P(≥ i accepted)",
                         range=[0, 1.05], row=row, col=1)
    fig.update_yaxes(range=[0, 1.05])
    sub = "share of rounds whose first i drafted tokens were all accepted; bars: 95% CI over prompts"
    height = config.CHART_HEIGHT_PX + (n_rows - 1) * 260
    return house_style(fig, title + ("" if category == ALL else f" — {category}"), sub, height=height)


# ---- 2. τ and speedup vs γ ----

def gamma_chart(summary: pd.DataFrame, projection: pd.DataFrame, category: str = ALL,
                drafters: dict | None = None) -> go.Figure:
    """Left: τ (tokens per target pass) vs γ; right: decode speedup vs γ with the break-even line.
    Points with 95% CI bars are measured; lines are the projection from the per-position acceptance of
    the largest γ run and the measured cost model (dotted where γ exceeds every run: extrapolated).

    summary: Analysis.summary (or summary_by_category) — method, draft_length, category, tau, tau_lo,
    tau_hi, speedup, speedup_lo, speedup_hi. projection: Analysis.projection (or projection_by_category)
    — method, category, gamma, tau, speedup, extrapolated. One legend entry per method (line and point);
    the traces are named "<label>: projected" / "<label>: measured" / "<label>: extrapolated"."""
    title = "τ and speedup vs draft length γ"
    meas = speculative_rows(summary)
    meas = meas[meas["category"] == category] if len(meas) else meas
    proj = projection[projection["category"] == category] if len(projection) else projection
    if meas.empty and proj.empty:
        return empty_chart(title, "no speculative runs recorded")
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("τ: tokens per target pass", "decode speedup vs baseline"))
    keys = method_order(set(meas["method"]) | set(proj["method"]))
    colours = method_colours(keys)
    for m in keys:
        colour, lab = colours[m], method_label(m, drafters)
        pm = proj[proj["method"] == m].sort_values("gamma")
        mm = meas[meas["method"] == m].sort_values("draft_length")
        # The legend entry: one per method, drawn as line + point (the traces below stay out of it).
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines+markers", name=lab, legendgroup=m, meta=m,
                                 line=dict(color=colour, width=2), marker=dict(color=colour, size=10)), row=1, col=1)
        for col, key in ((1, "tau"), (2, "speedup")):
            if len(pm):
                inside = pm[~pm["extrapolated"].astype(bool)]
                outside = pm[pm["gamma"] >= inside["gamma"].max()] if len(inside) else pm
                fig.add_trace(go.Scatter(x=inside["gamma"], y=inside[key], mode="lines", line=dict(color=colour, width=2),
                                         name=f"{lab}: projected", legendgroup=m, showlegend=False, meta=m,
                                         hovertemplate=f"{lab} projected γ=%{{x}}: %{{y:.2f}}<extra></extra>"), row=1, col=col)
                if len(outside) > 1:
                    fig.add_trace(go.Scatter(x=outside["gamma"], y=outside[key], mode="lines",
                                             line=dict(color=colour, width=2, dash="dot"), name=f"{lab}: extrapolated",
                                             legendgroup=m, showlegend=False, meta=m,
                                             hovertemplate=f"{lab} extrapolated γ=%{{x}}: %{{y:.2f}}<extra></extra>"),
                                  row=1, col=col)
            if len(mm):
                fig.add_trace(go.Scatter(x=mm["draft_length"], y=mm[key], mode="markers", name=f"{lab}: measured",
                                         legendgroup=m, showlegend=False, meta=m,
                                         marker=dict(color=colour, size=11, symbol="circle", line=dict(color="white", width=1)),
                                         error_y=ci_bars(mm[key], mm[f"{key}_lo"], mm[f"{key}_hi"]),
                                         hovertemplate=f"{lab} measured γ=%{{x}}: %{{y:.2f}}<extra></extra>"),
                              row=1, col=col)
    fig.add_hline(y=1.0, line=dict(color="#222", width=1.2, dash="dash"), row=1, col=2,
                  annotation_text="break-even 1×", annotation_position="top left",
                  annotation_font=dict(size=config.CHART_FONT_PX - 2))
    fig.update_xaxes(title_text="draft length γ", dtick=1 if proj["gamma"].max() <= 12 else 2)
    fig.update_yaxes(title_text="τ (tokens per pass)", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="speedup (×)", rangemode="tozero", row=1, col=2)
    sub = "points: measured, 95% CI; lines: projection from the largest γ run; dotted: beyond any run"
    return house_style(fig, title + ("" if category == ALL else f" — {category}"), sub)


# ---- 3. speedup by category ----

def best_per_method(summary: pd.DataFrame) -> pd.DataFrame:
    """Per category × method, the γ whose speedup CI has the highest lower bound (the decision's rule)."""
    df = speculative_rows(summary).dropna(subset=["speedup"])
    if df.empty:
        return df
    df = df.sort_values(["speedup_lo", "speedup"], ascending=False, na_position="last")
    return df.groupby(["category", "method"], sort=True).head(1).sort_values(["category", "method"])


def category_chart(summary_by_category: pd.DataFrame, summary: pd.DataFrame | None = None,
                   min_speedup_lo: float = config.MIN_SPEEDUP_LO, drafters: dict | None = None) -> go.Figure:
    """Measured decode speedup per category (rows) and method (colours) at each method's best γ, with
    95% CI bars, the break-even line at 1× and the decision's bar (a CI lower bound ≥ min_speedup_lo).

    summary_by_category: Analysis.summary_by_category; summary (optional): Analysis.summary, adds an
    "all prompts" row. Columns used: method, draft_length, category, n_prompts, speedup, speedup_lo,
    speedup_hi."""
    title = "Speedup by category"
    parts = [summary_by_category] + ([summary] if summary is not None else [])
    best = best_per_method(pd.concat(parts, ignore_index=True))
    if best.empty:
        return empty_chart(title, "no speculative runs recorded")
    cats = sorted(c for c in best["category"].unique() if c != ALL)
    n = dict(zip(best["category"], best["n_prompts"]))
    order = ([ALL] if ALL in n else []) + cats  # top to bottom
    label = {c: f"{c} (n={int(n[c])})" for c in cats}
    label[ALL] = f"<b>all prompts</b> (n={int(n.get(ALL, 0))})"
    row_y = {c: len(order) - 1 - i for i, c in enumerate(order)}
    keys = method_order(best["method"].unique())
    colours = method_colours(keys)
    step = min(0.3, 0.84 / len(keys))  # all methods fit inside their category's band
    fig = go.Figure()
    for k, m in enumerate(keys):
        d = best[best["method"] == m]
        # Methods side by side within a category's row, first method on top.
        y = [row_y[c] + step * ((len(keys) - 1) / 2 - k) for c in d["category"]]
        colour = colours[m]
        fig.add_trace(go.Scatter(
            x=d["speedup"], y=y, mode="markers", name=method_label(m, drafters), meta=m,
            marker=dict(color=colour, size=12 if len(keys) <= 3 else 10),
            error_x=ci_bars(d["speedup"], d["speedup_lo"], d["speedup_hi"]),
            hovertemplate=[f"{method_tick(m, drafters)} γ={g}: %{{x:.2f}}× (CI {lo:.2f}–{hi:.2f})<extra>{c}</extra>"
                           for g, lo, hi, c in zip(d["draft_length"], d["speedup_lo"], d["speedup_hi"], d["category"])]))
        # The configuration and value, just right of the interval (on a white patch over any line).
        for x_hi, yv, g, v in zip(d["speedup_hi"].fillna(d["speedup"]), y, d["draft_length"], d["speedup"]):
            fig.add_annotation(x=math.log10(x_hi * 1.03), y=yv, text=f"γ={g}: {v:.2f}×", showarrow=False,
                               xanchor="left", bgcolor="rgba(255,255,255,0.85)", borderpad=1,
                               font=dict(size=config.CHART_FONT_PX - (2 if len(keys) <= 3 else 4), color=colour))
    fig.add_vline(x=1.0, line=dict(color="#222", width=1.5, dash="dash"))
    fig.add_vline(x=min_speedup_lo, line=dict(color=OKABE_ITO["green"], width=1.5, dash="dot"))
    fig.add_annotation(x=0.0, y=1.0, yref="paper", text="break-even 1×", showarrow=False,
                       xanchor="right", yanchor="bottom", font=dict(size=config.CHART_FONT_PX - 2))
    fig.add_annotation(x=math.log10(min_speedup_lo), y=1.0, yref="paper", text=f"bar: CI low ≥ {min_speedup_lo:g}×",
                       showarrow=False, xanchor="left", yanchor="bottom",
                       font=dict(size=config.CHART_FONT_PX - 2, color=OKABE_ITO["green"]))
    xs = list(best["speedup_lo"]) + list(best["speedup_hi"] * 2.2) + [min_speedup_lo]  # room for the labels
    fig.update_xaxes(title_text="decode speedup (× baseline, log scale)", **ratio_axis(xs))
    fig.update_yaxes(tickvals=list(row_y.values()), ticktext=[label[c] for c in row_y], range=[-0.6, len(order) - 0.4],
                     showgrid=False, title_text=None)
    for c, yv in row_y.items():  # light bands separate the rows
        if yv % 2 == 0:
            fig.add_hrect(y0=yv - 0.5, y1=yv + 0.5, fillcolor="#F2F2F2", line_width=0, layer="below")
    height = max(config.CHART_HEIGHT_PX, 230 + max(75, 24 * len(keys)) * len(order))
    sub = "best γ per method (highest CI lower bound); bars: 95% CI over prompts"
    fig = house_style(fig, title, sub, height=height)
    fig.update_layout(margin=dict(l=190, t=105))
    return fig


# ---- 4. per-prompt speedup distribution ----

def _config_label(method: str, g, sep: str = " ") -> str:
    return f"{method}{sep}γ={int(g)}"


def distribution_chart(prompts: pd.DataFrame, drafters: dict | None = None) -> go.Figure:
    """Each prompt's own decode speedup (baseline ms/token ÷ speculative ms/token on that prompt), one
    box per method × γ with every prompt shown as a point, the break-even line at 1× and the share of
    prompts that got faster above each box.

    prompts: Analysis.prompts (analysis.prompt_table) — prompt_id, category, method, draft_length, speedup."""
    title = "Per-prompt speedup"
    df = prompts.dropna(subset=["speedup"])
    df = df[np.isfinite(df["speedup"]) & (df["speedup"] > 0)]
    if df.empty:
        return empty_chart(title, "no per-prompt speedups recorded")
    fig = go.Figure()
    order = []
    keys = method_order(df["method"].unique())
    colours = method_colours(keys)
    n_boxes = len(df.groupby(["method", "draft_length"]))
    for m in keys:
        colour = colours[m]
        for j, g in enumerate(sorted(df.loc[df["method"] == m, "draft_length"].unique())):
            d = df[(df["method"] == m) & (df["draft_length"] == g)]
            lab = _config_label(method_tick(m, drafters), g, "<br>")
            order.append(lab)
            fig.add_trace(go.Box(
                y=d["speedup"], x=[lab] * len(d), name=method_label(m, drafters), legendgroup=m, showlegend=j == 0, meta=m,
                marker=dict(color=colour, size=5, opacity=0.7), line=dict(color=colour, width=1.5),
                fillcolor="rgba(0,0,0,0)", boxpoints="all", jitter=0.4, pointpos=0,
                customdata=np.column_stack([d["prompt_id"], d["category"]]),
                hovertemplate="%{customdata[0]} (%{customdata[1]}): %{y:.2f}×<extra></extra>"))
            win = float((d["speedup"] > 1.0).mean())
            fig.add_annotation(x=lab, y=1.0, yref="paper", text=f"{100 * win:.0f}%" + (" faster" if n_boxes <= 8 else ""),
                               showarrow=False,
                               yanchor="bottom", font=dict(size=config.CHART_FONT_PX - 3, color="#444"))
    fig.add_hline(y=1.0, line=dict(color="#222", width=1.2, dash="dash"))
    fig.update_yaxes(title_text="speedup (×, log scale)", **ratio_axis(df["speedup"]))
    fig.update_xaxes(categoryorder="array", categoryarray=order, title_text=None,
                     tickfont=dict(size=config.CHART_FONT_PX - (2 if n_boxes <= 8 else 4)))
    sub = "each prompt's own decode speedup, one point per prompt; box: median and quartiles; dashed: break-even"
    if n_boxes > 8:
        sub += "<br>above each box: share of prompts faster than the baseline"
    fig = house_style(fig, title, sub)
    fig.update_layout(margin=dict(t=100))
    return fig


# ---- 5. where it pays off: batch size × γ on a hardware profile ----

def payoff_data(analysis, hardware: str = config.DEFAULT_HARDWARE, method: str | None = None,
                batch_sizes=config.WHATIF_BATCH_SIZES, category: str = ALL) -> pd.DataFrame:
    """hardware.whatif for one hardware profile and method (default: primary_method), every γ up to
    PROJECTION_MAX_GAMMA; the input of payoff_chart. Empty when the run has no speculative rounds."""
    method = method or primary_method(analysis)
    if method is None:
        return pd.DataFrame()
    return hw.whatif(analysis, hardware=[hardware], batch_sizes=batch_sizes, methods=[method], category=category)


# ---- 6. throughput ----

def throughput_chart(summary: pd.DataFrame, drafters: dict | None = None) -> go.Figure:
    """Tokens per second of the baseline and of every method × γ, pooled over prompts, 95% CI bars:
    decode (1000 / ms per output token, the phase speculation changes) and end to end (new tokens ÷
    prefill + decode time). Dashed line: the baseline's decode rate.

    summary: Analysis.summary — method, draft_length, category, tpot_ms, tpot_ms_lo, tpot_ms_hi,
    tokens_per_s, tokens_per_s_lo, tokens_per_s_hi (the baseline row has method "baseline")."""
    title = "Baseline vs speculative tokens/s"
    df = summary[summary["category"] == ALL] if "category" in summary.columns else summary
    df = df.dropna(subset=["tpot_ms"])
    if df.empty:
        return empty_chart(title, "no timings recorded")
    spec = speculative_rows(df)
    rank = {k: i for i, k in enumerate(method_order(spec["method"].unique()))}
    spec = spec.assign(_rank=spec["method"].map(rank)).sort_values(["_rank", "draft_length"]).drop(columns="_rank")
    df = pd.concat([df[df["method"] == "baseline"], spec])
    labels = ["baseline" if m == "baseline" else _config_label(method_tick(m, drafters), g, "<br>")
              for m, g in zip(df["method"], df["draft_length"])]
    with np.errstate(divide="ignore"):
        dec = 1e3 / df["tpot_ms"].to_numpy(float)
        dec_lo = 1e3 / df["tpot_ms_hi"].to_numpy(float)
        dec_hi = 1e3 / df["tpot_ms_lo"].to_numpy(float)
    palette = method_colours(df["method"].unique())
    colours = [palette[m] for m in df["method"]]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=dec, name="decode (1000 / ms per token)", marker=dict(color=colours),
                         error_y=ci_bars(dec, dec_lo, dec_hi),
                         hovertemplate="%{x}: %{y:.1f} tokens/s decode<extra></extra>"))
    fig.add_trace(go.Bar(x=labels, y=df["tokens_per_s"], name="end to end (incl. prefill)",
                         marker=dict(color=colours, pattern=dict(shape="/", fgcolor="white", size=8), opacity=0.55),
                         error_y=ci_bars(df["tokens_per_s"], df["tokens_per_s_lo"], df["tokens_per_s_hi"]),
                         hovertemplate="%{x}: %{y:.1f} tokens/s end to end<extra></extra>"))
    base = df[df["method"] == "baseline"]
    if len(base):
        fig.add_hline(y=1e3 / float(base["tpot_ms"].iloc[0]), line=dict(color="#222", width=1.2, dash="dash"),
                      annotation_text="baseline decode", annotation_position="top right",
                      annotation_font=dict(size=config.CHART_FONT_PX - 2))
    fig.update_layout(barmode="group", bargap=0.25)
    fig.update_xaxes(tickfont=dict(size=config.CHART_FONT_PX - (2 if len(labels) <= 9 else 4)))
    fig.update_yaxes(title_text="tokens per second", rangemode="tozero")
    sub = "solid: decode phase; hatched: end to end including prefill; bars: 95% CI over prompts"
    return house_style(fig, title, sub)


# ---- 7. costs ----

def costs_chart(costs, drafters: dict | None = None) -> go.Figure:
    """Left: Leviathan's draft cost c = draft step ÷ target step per method, and the per-round drafter
    cost d0 in target steps. Right: verify cost vs tokens verified (drafted + 1) as a multiple of one
    target step — measured mean (marker size ∝ rounds), median (hollow), the fitted line, and the
    idealised 1 that Thm 3.8 assumes.

    costs: Analysis.costs (specdec.costs.CostModel) — target_step_s, c, draft_round_s, verify
    (drafted, tokens, n_rounds, verify_s, verify_median_s, ratio), verify_intercept, verify_slope."""
    title = "Draft cost c and verify cost"
    fig = make_subplots(rows=1, cols=2, column_widths=[0.38, 0.62], horizontal_spacing=0.12,
                        subplot_titles=("drafting, in target steps", "verify pass, in target steps"))
    keys = method_order(costs.c)
    palette = method_colours(keys)
    ticks = [method_tick(m, drafters) for m in keys]
    c_vals = [costs.c[m] for m in keys]
    d0 = [costs.draft_round_s.get(m, 0.0) / costs.target_step_s for m in keys]
    many = len(keys) > 3  # value labels on every bar would collide
    fig.add_trace(go.Bar(x=ticks, y=c_vals, name="c: per drafted token", marker=dict(color=[palette[m] for m in keys]),
                         text=None if many else [_short(v) for v in c_vals], textposition="outside", cliponaxis=False,
                         hovertemplate="%{x}: c = %{y:.3f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=ticks, y=d0, name="d0: per round (catch-up, lookup, Medusa's one pass)",
                         marker=dict(color=[palette[m] for m in keys], opacity=0.45,
                                     pattern=dict(shape="/", fgcolor="white")),
                         text=None if many else [_short(v) for v in d0], textposition="outside", cliponaxis=False,
                         hovertemplate="%{x}: d0 = %{y:.3f} target steps<extra></extra>"), row=1, col=1)
    v = costs.verify
    if len(v):
        sizes = 8 + 14 * np.sqrt(v["n_rounds"].to_numpy(float) / max(float(v["n_rounds"].max()), 1.0))
        fig.add_trace(go.Scatter(x=v["tokens"], y=v["ratio"], mode="markers", name="verify, measured mean",
                                 marker=dict(color=OKABE_ITO["green"], size=sizes, line=dict(color="white", width=1)),
                                 customdata=v["n_rounds"],
                                 hovertemplate="%{x} tokens: %{y:.2f} target steps (%{customdata} rounds)<extra></extra>"),
                      row=1, col=2)
        fig.add_trace(go.Scatter(x=v["tokens"], y=v["verify_median_s"] / costs.target_step_s, mode="markers",
                                 name="verify, median", marker=dict(color=OKABE_ITO["green"], size=10, symbol="circle-open",
                                                                     line=dict(width=2)),
                                 hovertemplate="%{x} tokens: median %{y:.2f} target steps<extra></extra>"), row=1, col=2)
        k = np.linspace(0, float(v["drafted"].max()), 20)
        fig.add_trace(go.Scatter(x=k + 1, y=costs.verify_intercept + costs.verify_slope * k, mode="lines",
                                 name="fitted line (fills unmeasured γ)", line=dict(color=OKABE_ITO["green"], width=2),
                                 hoverinfo="skip"), row=1, col=2)
        fig.add_trace(go.Scatter(x=[1, float(v["tokens"].max())], y=[1, 1], mode="lines", name="Thm 3.8 assumes 1",
                                 line=dict(color="#222", width=1.2, dash="dash"), hoverinfo="skip"), row=1, col=2)
        fig.update_xaxes(title_text="tokens verified (drafted + 1)", dtick=1, row=1, col=2)
    fig.update_yaxes(title_text="× one target step", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="× one target step", rangemode="tozero", row=1, col=2)
    if many:
        fig.update_xaxes(tickangle=-35, tickfont=dict(size=config.CHART_FONT_PX - 3), row=1, col=1)
    fig.update_layout(barmode="group")
    sub = f"target step (baseline decode) = {1e3 * costs.target_step_s:.2f} ms on the measuring machine"
    fig = house_style(fig, title, sub)
    fig.update_layout(margin=dict(b=150))
    return fig


def _short(v: float) -> str:
    return "<0.01" if 0 < v < 0.01 else f"{v:.2f}"


# ---- 8. methods compared ----

def methods_chart(table: pd.DataFrame) -> go.Figure:
    """Every method side by side at its best γ: left, measured decode speedup with 95% CI bars (log
    axis, break-even at 1×); right, the memory it adds beside the target — extra weights and its own
    KV cache for one sequence (GB), stacked.

    table: specdec.compare.methods_table(analysis) — method, label, draft_length, speedup, speedup_lo,
    speedup_hi, extra_weights_gb, extra_kv_gb_per_seq."""
    title = "Methods compared"
    if table is None or table.empty:
        return empty_chart(title, "no speculative runs recorded")
    t = table.iloc[::-1]  # first method on top
    colours = method_colours(table["method"])
    y = [f"{lab}  γ={int(g)}" for lab, g in zip(t["label"], t["draft_length"])]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, column_widths=[0.62, 0.38], horizontal_spacing=0.04,
                        subplot_titles=("decode speedup at the best γ", "memory added (GB)"))
    fig.add_trace(go.Scatter(
        x=t["speedup"], y=y, mode="markers", showlegend=False, meta=list(t["method"]),
        marker=dict(color=[colours[m] for m in t["method"]], size=13),
        error_x=ci_bars(t["speedup"], t["speedup_lo"], t["speedup_hi"]),
        text=[f"{v:.2f}×" for v in t["speedup"]],
        hovertemplate="%{y}: %{x:.2f}×<extra></extra>"), row=1, col=1)
    for x_hi, yv, v, m in zip(t["speedup_hi"].fillna(t["speedup"]), y, t["speedup"], t["method"]):
        fig.add_annotation(x=math.log10(x_hi * 1.03), y=yv, text=f"{v:.2f}×", showarrow=False, xanchor="left",
                           font=dict(size=config.CHART_FONT_PX - 2, color=colours[m]), row=1, col=1)
    weights = t["extra_weights_gb"].fillna(0.0)
    kv = t["extra_kv_gb_per_seq"].fillna(0.0)
    fig.add_trace(go.Bar(x=weights, y=y, orientation="h", name="extra weights", showlegend=False,
                         marker=dict(color=[colours[m] for m in t["method"]]),
                         hovertemplate="%{y}: %{x:.3g} GB of weights<extra></extra>"), row=1, col=2)
    fig.add_trace(go.Bar(x=kv, y=y, orientation="h", name="its KV cache, one sequence", showlegend=False,
                         marker=dict(color=[colours[m] for m in t["method"]], opacity=0.45,
                                     pattern=dict(shape="/", fgcolor="white")),
                         hovertemplate="%{y}: %{x:.3g} GB of KV cache per sequence<extra></extra>"), row=1, col=2)
    # Legend swatches in neutral grey: the bars take each method's colour.
    fig.add_trace(go.Bar(x=[None], y=[None], orientation="h", name="extra weights", marker=dict(color="#777")),
                  row=1, col=2)
    fig.add_trace(go.Bar(x=[None], y=[None], orientation="h", name="its KV cache, one sequence",
                         marker=dict(color="#777", opacity=0.45, pattern=dict(shape="/", fgcolor="white"))), row=1, col=2)
    for yv, total in zip(y, weights + kv):
        text = "none" if total == 0 else (f"{total:.2f} GB" if total >= 0.1 else f"{1e3 * total:.3g} MB")
        fig.add_annotation(x=total, y=yv, text=text, showarrow=False, xanchor="left", xshift=4,
                           font=dict(size=config.CHART_FONT_PX - 2, color="#444"), row=1, col=2)
    fig.add_vline(x=1.0, line=dict(color="#222", width=1.2, dash="dash"), row=1, col=1)
    xs = list(t["speedup_lo"]) + list(t["speedup_hi"] * 1.5)
    fig.update_xaxes(title_text="× baseline, log scale", row=1, col=1, **ratio_axis(xs))
    top = float((weights + kv).max())
    fig.update_xaxes(title_text="GB", rangemode="tozero", range=[0, max(top, 0.01) * 1.35], row=1, col=2)
    fig.update_yaxes(tickfont=dict(size=config.CHART_FONT_PX - 2), showgrid=False)
    fig.update_layout(barmode="stack", bargap=0.35)
    height = max(config.CHART_HEIGHT_PX - 60, 200 + 48 * len(t))
    sub = "each method at its fastest measured γ, 95% CI over prompts; memory: weights only drafting needs + its KV cache"
    fig = house_style(fig, title, sub, height=height)
    fig.update_layout(margin=dict(l=260))
    return fig


# ---- everything the brief shows ----

def primary_method(analysis, decision=None) -> str | None:
    """The method the single-method charts show: the decision's configuration when it has one, else the one
    its deployment target was judged on, else the
    method of the pooled configuration with the highest measured speedup (never one measured on its own
    training prompts or with a lossy acceptance rule); None without speculative runs."""
    if decision is not None and decision.config:
        return decision.config["method"]
    target = (getattr(decision, "evidence", None) or {}).get("target") or {}
    if target.get("method"):  # a verdict about a deployment: the method its projection or engine run chose
        return target["method"]
    s = speculative_rows(analysis.summary).dropna(subset=["speedup"])
    s = s[s["method"].map(methods.decidable).astype(bool)]  # not training-prompt figures, not a lossy rule
    if s.empty:
        return None
    return str(s.sort_values("speedup", ascending=False)["method"].iloc[0])


def figures(analysis, decision=None, hardware: str | None = None, method: str | None = None,
            batch_sizes=config.WHATIF_BATCH_SIZES, min_speedup_lo: float | None = None,
            whatif_df: pd.DataFrame | None = None) -> dict[str, go.Figure]:
    """Every chart of the brief, by name (CHART_NAMES order), from one Analysis (specdec.analysis.analyze).

    decision (optional, specdec.decision.Decision): supplies the hardware, the method to project and the
    speedup bar when not given. hardware: a specdec.analysis.hardware profile name or "this-machine" (default
    DEFAULT_HARDWARE); method: a method key for the payoff map (default primary_method);
    whatif_df: a precomputed payoff_data(...) to reuse."""
    hardware = hardware or (decision.hardware if decision is not None else config.DEFAULT_HARDWARE)
    method = method or primary_method(analysis, decision)
    if min_speedup_lo is None:
        min_speedup_lo = decision.thresholds.min_speedup_lo if decision is not None else config.MIN_SPEEDUP_LO
    if whatif_df is None:
        whatif_df = payoff_data(analysis, hardware, method, batch_sizes)
    runs = analysis.prompts
    g_run = largest_gamma_run(runs, method) if method and len(runs) else None
    d = analysis.drafters
    return {
        "methods": methods_chart(compare.methods_table(analysis)),
        "categories": category_chart(analysis.summary_by_category, analysis.summary, min_speedup_lo, d),
        "gamma": gamma_chart(analysis.summary, analysis.projection, drafters=d),
        "acceptance": acceptance_chart(analysis.positions, drafters=d),
        "distribution": distribution_chart(analysis.prompts, d),
        "throughput": throughput_chart(analysis.summary, d),
        "payoff": payoff_chart(whatif_df, hardware, method, g_run, d),
        "costs": costs_chart(analysis.costs, d),
    }
