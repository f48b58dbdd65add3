"""Methods side by side: every method at its best draft length, and the best method × γ per category,
each with the memory it adds. Pure functions over an Analysis (specdec.analysis.analyze); the decision,
the PDF brief, the charts and the app show the same tables.

"Best" here is the highest measured decode speedup (point estimate) with its 95% CI beside it — what a
reader comparing methods asks first. The decision's verdict uses a stricter rule (the highest CI lower
bound, specdec.analysis.decision), so the two can name different γ when intervals overlap.

Public API
    COLUMNS
    methods_table(analysis, category="all") -> DataFrame     one row per method at its best γ
    best_per_category(analysis) -> DataFrame                 one row per category ("all" first)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from specdec import methods

ALL = "all"
COLUMNS = ["category", "n_prompts", "method", "label", "draft_length", "alpha", "tau", "tau_lo", "tau_hi",
           "speedup", "speedup_lo", "speedup_hi", "tpot_ms", "base_tpot_ms", "extra_weights_gb",
           "extra_kv_gb_per_seq", "extra_total_gb"]


def _best_rows(summary: pd.DataFrame, category: str) -> pd.DataFrame:
    """Per method, the measured γ with the highest speedup (ties: the higher CI lower bound)."""
    s = summary[(summary["method"] != "baseline") & (summary["category"] == category)]
    s = s[np.isfinite(s["speedup"].astype(float))]
    if s.empty:
        return s
    return s.sort_values(["speedup", "speedup_lo"], ascending=False).groupby("method", sort=False).head(1)


def methods_table(analysis, category: str = ALL) -> pd.DataFrame:
    """Every method measured, at its best γ in `category`: category, n_prompts, method, label,
    draft_length, alpha (accepted ÷ positions tried), tau (+ CI), speedup with 95% CI, tpot_ms,
    base_tpot_ms, and the memory it adds per sequence at the run's mean context (extra_weights_gb,
    extra_kv_gb_per_seq, extra_total_gb; NaN when unknown). Rows in display order (methods.order)."""
    summary = analysis.summary if category == ALL else analysis.summary_by_category
    best = _best_rows(summary, category)
    if best.empty:
        return pd.DataFrame(columns=COLUMNS)
    memory = analysis.memory.get("by_method", {})
    drafters = analysis.drafters
    by_key = {r["method"]: r for r in best.to_dict("records")}
    rows = []
    for key in methods.order(by_key):
        r, mem = by_key[key], memory.get(key, {})
        rows.append({"category": category, "n_prompts": int(r["n_prompts"]), "method": key,
                     "label": methods.label(key, drafters), "draft_length": int(r["draft_length"]),
                     "alpha": float(r["alpha_pos"]), **{k: float(r[k]) for k in (
                         "tau", "tau_lo", "tau_hi", "speedup", "speedup_lo", "speedup_hi", "tpot_ms", "base_tpot_ms")},
                     **{k: float(mem.get(k, np.nan)) for k in ("extra_weights_gb", "extra_kv_gb_per_seq",
                                                                "extra_total_gb")}})
    return pd.DataFrame(rows, columns=COLUMNS)


def best_per_category(analysis) -> pd.DataFrame:
    """For all prompts and then each category (alphabetically), the method × γ with the highest measured
    speedup, its CI and its memory overhead: the methods_table row that wins. Columns: COLUMNS."""
    cats = [ALL] + sorted(analysis.measurements.prompts["category"].unique())
    rows = []
    for cat in cats:
        t = methods_table(analysis, cat)
        t = t[t["method"].map(methods.decidable).astype(bool)]  # training-prompt figures and lossy rules are not a choice
        if len(t):
            rows.append(t.sort_values(["speedup", "speedup_lo"], ascending=False).iloc[0])
    return pd.DataFrame(rows, columns=COLUMNS).reset_index(drop=True)
