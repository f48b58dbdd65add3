"""Deployment charts: the projected speedup over batch size × γ on a hardware profile (the payoff map), and the
speedup measured on a serving engine against concurrency. Data in, go.Figure out, no I/O.

Public API
    payoff_chart(whatif_df, hardware, method, max_gamma_run=None, drafters=None) -> Figure
    engine_chart(engine) -> Figure
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from specdec import config
from specdec.present.chart_style import OKABE_ITO, SEQUENCE, ci_bars, empty_chart, house_style, method_label, ratio_axis


def payoff_chart(whatif_df: pd.DataFrame, hardware: str | None = None, method: str | None = None,
                 max_gamma_run: int | None = None, drafters: dict | None = None,
                 highlight_batch: int | None = None) -> go.Figure:
    """Projected speedup for every batch size (x) × γ (y) on one hardware profile, as a heat map
    (blue = faster, vermillion = slower, white = 1×) with the break-even contour at 1×. Cells that do
    not fit in device memory are left blank. max_gamma_run (optional) draws a line above the largest
    γ measured: rows above it use extrapolated acceptance. highlight_batch (optional) frames that batch
    size's column (the one the reader picked).

    whatif_df: specdec.hardware.whatif(...) (or payoff_data) — hardware, method, batch_size, gamma,
    speedup, fits_memory; filtered to `hardware` and `method` when given (else the first of each)."""
    title = "Where it pays off"
    if whatif_df is None or whatif_df.empty:
        return empty_chart(title, "no what-if projection: the run has no speculative rounds")
    hardware = hardware or whatif_df["hardware"].iloc[0]
    method = method or whatif_df["method"].iloc[0]
    df = whatif_df[(whatif_df["hardware"] == hardware) & (whatif_df["method"] == method)]
    if "context_len" in df.columns and df["context_len"].nunique() > 1:
        df = df[df["context_len"] == df["context_len"].min()]
    if df.empty:
        return empty_chart(title, f"no projection for {method_label(method, drafters)} on {hardware}")
    batches = sorted(df["batch_size"].unique())
    gammas = sorted(df["gamma"].unique())
    grid = df.pivot_table(index="gamma", columns="batch_size", values="speedup", aggfunc="first").reindex(
        index=gammas, columns=batches)
    fits = df.pivot_table(index="gamma", columns="batch_size", values="fits_memory", aggfunc="first").reindex(
        index=gammas, columns=batches).fillna(False).astype(bool)
    z = np.log2(grid.to_numpy(dtype=float))
    z_fit = np.where(fits.to_numpy(), z, np.nan)
    x = np.log2(np.asarray(batches, dtype=float))
    text = np.where(fits.to_numpy(), np.vectorize(lambda v: f"{v:.2f}" if np.isfinite(v) else "")(grid.to_numpy(float)),
                    "")
    span = max(1.0, float(np.nanmax(np.abs(z_fit))) if np.isfinite(z_fit).any() else 1.0)
    scale = [[0.0, OKABE_ITO["vermillion"]], [0.5, "#FFFFFF"], [1.0, OKABE_ITO["blue"]]]
    ticks = [t for t in (-4, -3, -2, -1, 0, 1, 2, 3, 4) if abs(t) <= span]
    fig = go.Figure(go.Heatmap(
        x=x, y=gammas, z=z_fit, zmin=-span, zmax=span, colorscale=scale, text=text, texttemplate="%{text}",
        textfont=dict(size=config.CHART_FONT_PX - 3),
        colorbar=dict(title=dict(text="speedup", side="right"), tickvals=ticks, ticktext=[f"{2.0 ** t:g}×" for t in ticks],
                      thickness=14, len=0.8),
        customdata=np.dstack([np.broadcast_to(batches, grid.shape), grid.to_numpy(float)]),
        hovertemplate="batch %{customdata[0]}, γ=%{y}: %{customdata[1]:.2f}×<extra></extra>", xgap=1, ygap=1))
    if np.nanmin(z) < 0 < np.nanmax(z) and len(batches) > 1 and len(gammas) > 1:
        fig.add_trace(go.Contour(
            x=x, y=gammas, z=z, contours=dict(start=0, end=0, size=1, coloring="none", showlabels=False),
            line=dict(color="#111", width=3), showscale=False, hoverinfo="skip", name="break-even 1×", showlegend=True))
    extrapolated = max_gamma_run is not None and max_gamma_run < max(gammas)
    if extrapolated:
        fig.add_hline(y=max_gamma_run + 0.5, line=dict(color="#555", width=2, dash="dot"))
    if highlight_batch:
        fig.add_vrect(x0=np.log2(highlight_batch) - 0.5, x1=np.log2(highlight_batch) + 0.5,
                      line=dict(color="#111", width=2))
    fig.update_xaxes(title_text="batch size (sequences decoded together)", tickvals=x, ticktext=[str(b) for b in batches])
    fig.update_yaxes(title_text="draft length γ", dtick=1)
    sub = f"{method_label(method, drafters)}, roofline projection of the measured acceptance; black line: break-even 1×"
    if extrapolated:
        sub += f"<br>above the dotted line: γ > {max_gamma_run}, beyond the largest run (extrapolated)"
    if not fits.to_numpy().all():
        sub += "; blank: does not fit in memory"
    fig = house_style(fig, f"{title}: projected speedup on {hardware}", sub, height=config.CHART_HEIGHT_PX + 40)
    fig.update_layout(margin=dict(t=115 if extrapolated else 95, r=20))
    return fig


# ---- engine runs (specdec.engines, analysis.engine) ----

def engine_chart(engine: dict) -> go.Figure:
    """Measured SD/baseline output tokens/s (y, log) against concurrency (x, log) on a serving engine, one
    line per γ with 95% CI bars (bootstrap over requests), the break-even 1× line, and the crossover (where
    the best γ's ratio crosses 1×) marked when it lies inside the measured range.

    engine: a results.json `engine` block (its `levels` rows and `decision`, from analysis.engine)."""
    title = f"Speedup vs concurrency on {engine.get('engine', 'the engine')}"
    rows = [r for r in engine.get("levels", []) if r["ratio"]["estimate"] is not None]
    if not rows:
        return empty_chart(title, "no level has both a baseline and a speculative measurement")
    fig = go.Figure()
    gammas = sorted({r["draft_length"] or 0 for r in rows})
    for i, g in enumerate(gammas):
        rs = sorted((r for r in rows if (r["draft_length"] or 0) == g), key=lambda r: r["concurrency"])
        est = [r["ratio"]["estimate"] for r in rs]
        lo = [r["ratio"]["lo"] if r["ratio"]["lo"] is not None else np.nan for r in rs]
        hi = [r["ratio"]["hi"] if r["ratio"]["hi"] is not None else np.nan for r in rs]
        fig.add_trace(go.Scatter(
            x=[r["concurrency"] for r in rs], y=est, mode="lines+markers", name=f"γ = {g}" if g else rs[0]["label"],
            line=dict(color=SEQUENCE[i % len(SEQUENCE)], width=3), marker=dict(size=9), error_y=ci_bars(est, lo, hi),
            customdata=[[r["alpha"] if r["alpha"] is not None else np.nan, r["tau"] or np.nan] for r in rs],
            hovertemplate="C=%{x}: %{y:.2f}× (α %{customdata[0]:.2f}, τ %{customdata[1]:.2f})<extra></extra>"))
    fig.add_hline(y=1.0, line=dict(color="#111", width=1.5, dash="dash"))
    cross = (engine.get("decision") or {}).get("crossover")
    if cross:
        fig.add_vline(x=cross, line=dict(color=OKABE_ITO["vermillion"], width=2, dash="dot"))
        fig.add_annotation(x=math.log10(cross), y=1.0, yref="y", text=f"crossover ≈ C {cross:.1f}",
                           showarrow=True, arrowhead=2, ax=40, ay=-40, font=dict(color=OKABE_ITO["vermillion"]))
    cs = sorted({r["concurrency"] for r in rows})
    fig.update_xaxes(type="log", tickvals=cs, ticktext=[str(c) for c in cs],
                     title_text="concurrency (requests in flight)")
    fig.update_yaxes(title_text="SD / baseline output tokens/s",
                     **ratio_axis([r["ratio"][k] for r in rows for k in ("estimate", "lo", "hi")]))
    s = engine.get("settings", {})
    sub = (f"{engine.get('model', '')} · {s.get('prompts', '?')} prompts × {s.get('max_new_tokens', '?')} tokens · "
           f"95% CI over requests; dashed: break-even 1×" + ("; dotted: crossover" if cross else ""))
    return house_style(fig, title, sub)
