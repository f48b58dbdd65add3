"""The brief's deployment sections: the what-if tables (the primary method on every hardware profile, every
method on the chosen one, batch by batch with intervals and assumptions) and the serving-engine measurement.
γ is never recommended beyond the largest γ run.

Public API
    whatif_all(a, method, hardware, batch_sizes) -> DataFrame; projected_best(a, projected, hardware, method, th)
    whatif_pages(pdf, a, d, th, hardware, method, projected); engine_section(pdf, engine, png, new_page=True)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from specdec.analysis import engine as engine_analysis, hardware as hw
from specdec.analysis.projection import largest_gamma_run
from specdec.analysis.decision import Decision, Thresholds
from specdec.analysis.summary import ALL, Analysis
from specdec.present import words
from specdec.present.pdf_canvas import BriefPdf


def whatif_all(a: Analysis, method: str | None, hardware: str, batch_sizes) -> pd.DataFrame:
    """hardware.whatif for the primary method on every profile (plus this machine and `hardware`)."""
    if method is None:
        return pd.DataFrame()
    names = list(dict.fromkeys(list(hw.PROFILES) + [hw.THIS_MACHINE, hardware]))
    return hw.whatif(a, hardware=names, batch_sizes=batch_sizes, methods=[method], category=ALL)


def gamma_cap(a: Analysis, method: str) -> int:
    """The largest γ run for `method`: no γ beyond it is recommended."""
    return largest_gamma_run(a.prompts, method)


def projected_best(a: Analysis, projected: pd.DataFrame, hardware: str, method: str, th: Thresholds) -> pd.DataFrame:
    """best_by_batch on one hardware, γ capped at the largest γ run (as the decision recommends)."""
    df = projected[(projected["hardware"] == hardware) & (projected["gamma"] <= gamma_cap(a, method))]
    return hw.best_by_batch(df, th.min_projected_speedup) if len(df) else pd.DataFrame()


# ---- deployment what-if ----

def whatif_pages(pdf: BriefPdf, a: Analysis, d: Decision, th: Thresholds, hardware: str, method, projected):
    """projected: whatif_all(…) for the primary method on every profile."""
    pdf.heading("Deployment what-if", 13)
    if not method or projected is None or projected.empty:
        pdf.para("No projection: the run has no speculative rounds (or no model sizes in its manifest).")
        return
    g_cap = gamma_cap(a, method)
    pdf.para(f"The measured acceptance of {a.label(method)} (τ for every γ, from the per-position rounds) carried onto serving "
             f"hardware with a roofline model of step times at each batch size. Each cell is the projected speedup "
             f"at the best γ ≤ {g_cap} (the largest γ run), or off where even that stays below "
             f"{th.min_projected_speedup:.2f}×. These are model estimates, not measurements; the assumptions "
             f"follow the tables.", size=9)
    batches = sorted(projected["batch_size"].unique())
    cols = batches if len(batches) <= 6 else [b for b in batches if b in _spread(batches, 6)]
    rows = []
    for name in dict.fromkeys(projected["hardware"]):
        best = projected_best(a, projected, name, method, th)
        capped = projected[(projected["hardware"] == name) & (projected["gamma"] <= g_cap)]
        label = name + (" (measured here, calibrated)" if name == hw.THIS_MACHINE else "")
        rows.append([label] + _batch_cells(best, capped, cols))
    _batch_table(pdf, "Hardware", rows, cols, 34)
    _methods_whatif(pdf, a, th, hardware, cols)
    best = projected_best(a, projected, hardware, method, th)
    detail = projected[(projected["hardware"] == hardware) & (projected["gamma"] <= g_cap)]
    if len(best):
        pdf.para(f"On {hardware}, batch by batch ({a.label(method)}):", size=9)
        rows = []
        for _, r in best.sort_values("batch_size").iterrows():
            g = None if pd.isna(r["gamma"]) else int(r["gamma"])
            pick = detail[(detail["batch_size"] == r["batch_size"])]
            pick = pick[pick["gamma"] == g] if g else pick.loc[[pick["speedup"].idxmax()]]
            p = pick.iloc[0]
            ci = (f" ({p['speedup_lo']:.2f}–{p['speedup_hi']:.2f})" if words.fin(p.get("speedup_lo"))
                  and words.fin(p.get("speedup_hi")) else "")
            band = (f"{p['speedup_band_lo']:.2f}–{p['speedup_band_hi']:.2f}" if words.fin(p.get("speedup_band_lo"))
                    else "measured")
            rows.append([str(int(r["batch_size"])), "off" if g is None else str(g), words.x(p["speedup"]) + ci, band,
                         words.sig(p["base_ms_per_token"]), words.sig(p["sd_ms_per_token"]), f"{p['saving_pct']:.0f}%",
                         f"{p['target_bound']} / {p['verify_bound']}"])
        pdf.table(["Batch", "Best γ", "Speedup (95% CI)", "Assumptions", "Base ms/tok", "Spec ms/tok", "Saving",
                   "Bound (step / verify)"],
                  rows, [13, 13, 36, 24, 22, 22, 16, 32], ["RIGHT"] * 7 + ["LEFT"], size=8)
        pdf.para("The interval resamples the prompts whose acceptance is projected; the assumptions band moves one "
                 "constant of the cost model at a time (per-forward cost and per-layer latency × 0.5 and × 2, "
                 "bandwidth efficiency 0.6 and 0.9).", size=8)
    notes = []
    for item in projected.attrs.get("assumptions", []):
        if str(item["name"]).startswith("hardware "):
            if item["name"] != f"hardware {hardware}":
                continue
            v = item["value"]
            value = (f"{v['bandwidth_gbs']:.0f} GB/s × {v['bandwidth_efficiency']:.2f}, {v['peak_tflops']:.0f} TFLOPS × "
                     f"{v['compute_efficiency']:.2f}, {v['memory_gb']:.0f} GB, {v['layer_latency_us']:.0f} µs per layer"
                     + (f", {v['forward_overhead_us']:.0f} µs per forward" if v.get("forward_overhead_us") else "")
                     + (f", {v['engine']} engine" if v.get("engine") else "")
                     + (f", TP {v['tp']}" if (v.get("tp") or 1) > 1 else ""))
        else:
            value = item["value"] if not isinstance(item["value"], list) else ", ".join(f"{x:.0f}" for x in item["value"])
        notes.append(f"{item['name']}: {value} — {item['note']}")
    pdf.para("Assumptions:", size=9)
    pdf.bullets(notes, size=8)


def _methods_whatif(pdf: BriefPdf, a: Analysis, th: Thresholds, hardware: str, cols: list):
    """Every method projected onto `hardware` side by side: best speedup and γ (≤ its largest run) per batch."""
    if len(a.methods) < 2:
        return
    df = hw.whatif(a, hardware=[hardware], batch_sizes=cols, category=ALL)
    rows = []
    for key in a.methods:
        d = df[(df["method"] == key) & (df["gamma"] <= gamma_cap(a, key))] if len(df) else df
        if d.empty:
            rows.append([a.label(key)] + ["no sizes"] * len(cols))
            continue
        rows.append([a.label(key)] + _batch_cells(hw.best_by_batch(d, th.min_projected_speedup), d, cols))
    pdf.para(f"Every method on {hardware}, at its best γ per batch size:", size=9)
    _batch_table(pdf, "Method", rows, cols, 40)


def _batch_cells(best: pd.DataFrame, capped: pd.DataFrame, cols: list) -> list[str]:
    """Per batch size in cols: 'does not fit', 'off (<the best speedup among capped>)' or '1.23× γ=3'.
    best: hw.best_by_batch rows; capped: the projection rows it was chosen from (γ ≤ the largest run)."""
    cells = []
    for b in cols:
        r = best[best["batch_size"] == b]
        if r.empty:
            cells.append("does not fit")
        elif pd.isna(r["gamma"].iloc[0]):
            cells.append(f"off ({words.x(capped[capped['batch_size'] == b]['speedup'].max())})")
        else:
            cells.append(f"{words.x(r['speedup'].iloc[0])} γ={int(r['gamma'].iloc[0])}")
    return cells


def _batch_table(pdf: BriefPdf, head: str, rows: list[list], cols: list, w0: float):
    """A table of one label column (w0 mm) and one column per batch size."""
    pdf.table([head] + [f"batch {b}" for b in cols], rows, [w0] + [(pdf.epw - w0) / len(cols)] * len(cols),
              ["LEFT"] + ["RIGHT"] * len(cols), size=8)


def _spread(values: list, k: int) -> list:
    idx = np.unique(np.round(np.linspace(0, len(values) - 1, k)).astype(int))
    return [values[i] for i in idx]


# ---- engine run (specdec.engines; analysis.engine) ----

ENGINE_CAPTION = ("Read: above the dashed 1× line SD serves more output tokens/s than the same engine without it; "
                  "a CI bar that crosses 1× cannot be told apart from no gain. As concurrency grows the engine "
                  "batches requests, decoding turns compute-bound and verifying γ + 1 tokens per request costs more: "
                  "the ratio falls, and the dotted line marks where it crosses 1×.")


def engine_section(pdf: BriefPdf, engine: dict, png: bytes | None, new_page: bool = True, check: dict | None = None):
    """Measured on a serving engine under load: verdict, chart, the per-level table, the what-if checked against
    it (check: engine_check.projected_vs_measured), the measured config."""
    s, dec = engine["settings"], engine["decision"]
    if new_page:
        pdf.add_page()
    pdf.heading(f"Measured on the serving engine: {engine['engine']}", 13, 0)
    pdf.para(f"{engine['engine']} {engine.get('version') or ''} · model {engine['model']} · {s.get('prompts', '?')} "
             f"prompts × {s['max_new_tokens']} output tokens, greedy · concurrency "
             f"{', '.join(map(str, s['concurrency']))} (closed loop"
             + (f", Poisson {s['request_rate']} req/s" if s.get("request_rate") else "") + "). Acceptance is the "
             "engine's own counters over each level (/metrics after − before).", size=8.5, colour=(85, 85, 85))
    unfinished = engine_analysis.status_note(engine)
    if unfinished:
        pdf.para(unfinished, size=9, colour=(170, 60, 0))
    pdf.para(dec["headline"], size=10)
    if png is not None:
        pdf.image_block(png, ENGINE_CAPTION)
    rows = []
    for r in engine["levels"]:
        ci, itl = r["ratio"], r["itl_ratio"]
        rows.append([str(r["draft_length"] or "—"), str(r["concurrency"]), f"{r['baseline_tokens_per_s']:.1f}",
                     f"{r['sd_tokens_per_s']:.1f}",
                     f"{words.x(ci['estimate'])} ({words.ci(ci['lo'], ci['hi'])})" if ci["estimate"] is not None else "—",
                     f"{words.x(itl['estimate'])} ({words.ci(itl['lo'], itl['hi'])})" if itl["estimate"] is not None else "—",
                     words.sig(r["alpha"]) if r["alpha"] is not None else "—",
                     f"{r['tau']:.2f}" if r["tau"] is not None else "—"])
    pdf.table(["γ", "C", "base tok/s", "SD tok/s", "Throughput ratio (95% CI)", "p50 ITL ratio (95% CI)", "α", "τ"],
              rows, [9, 9, 19, 17, 42, 42, 14, 14], ["RIGHT"] * 4 + ["LEFT", "LEFT", "RIGHT", "RIGHT"])
    pdf.para("Throughput ratio: SD over baseline output tokens/s (busy-time rate Σ tokens / Σ request time, requests "
             "paired by prompt; bootstrap-t 95% CI). ITL ratio: median per-request inter-token latency, SD over "
             "baseline (below 1 is faster). α = accepted / drafted tokens, τ = 1 + accepted / drafts (bonus token "
             "included), from the engine's counters.", size=8, colour=(85, 85, 85))
    _engine_categories(pdf, engine_analysis.categories_by_gamma(engine))
    best = {lv["concurrency"]: lv for lv in dec["per_level"]}
    if best:
        verdicts = {True: "SD pays", False: "SD does not pay", None: "unclear (interval straddles the bar, or none)"}
        pdf.bullets([f"Concurrency {c}: " + (f"γ = {lv['draft_length']} " if lv["draft_length"] else "")
                     + f"({words.x(lv['ratio']['estimate'])}) — {verdicts[lv['pays']]}" for c, lv in best.items()],
                    size=8.5)
    if check is not None:
        _engine_check(pdf, check)
    spec_sides = [sd for sd in engine["sides"] if sd.get("launch") and sd["draft_length"] is not None]
    if spec_sides:
        pick = max(best.values(), key=lambda lv: lv["ratio"]["estimate"] or 0)["draft_length"] if best else None
        side = next((sd for sd in spec_sides if sd["draft_length"] == pick), spec_sides[0])
        pdf.code(" ".join(side["launch"]), label=f"measured launch command (γ = {side['draft_length']})")


def _engine_check(pdf: BriefPdf, check: dict):
    """The what-if's projection at each measured (γ, concurrency) beside the engine's measured ratio."""
    if not check["rows"]:
        pdf.para(f"What-if vs this engine run: not checked — {check['note']}.", size=8, colour=(85, 85, 85))
        return
    prof = check["profile"]
    pdf.para("The what-if checked against this engine run: projected vs measured throughput ratio", size=9.5)
    rows = [[str(r["draft_length"]), str(r["concurrency"]), f"{r['tau']:.2f} ({r['tau_source']})",
             words.x(r["projected"]), f"{words.x(r['measured'])} ({words.ci(r['measured_lo'], r['measured_hi'])})",
             f"{100 * r['error']:+.0f}%"] for r in check["rows"]]
    pdf.table(["γ", "C", "τ used", "projected", "measured (95% CI)", "error"], rows, [9, 9, 50, 22, 60, 20],
              ["RIGHT", "RIGHT", "LEFT", "RIGHT", "LEFT", "RIGHT"])
    pdf.para(f"Profile derived from the baseline server's own levels (the speculative side stays out of sample): "
             f"one forward over k tokens = {prof['a_s'] * 1e3:.1f} ms + {prof['b_s'] * 1e3:.2f} ms·k, a draft forward "
             f"{prof['draft_step_s'] * 1e3:.1f} ms (scaled by size); round = C·γ draft forwards + one verify of "
             f"C·(drafted + 1) tokens. Error = projected / measured − 1.", size=8, colour=(85, 85, 85))


def _engine_categories(pdf: BriefPdf, by_side: dict):
    """α and τ per category from the engine's per-response fields, one column pair per γ (or spec server)."""
    if not by_side:
        return
    keys = list(by_side)
    cats = sorted({c for v in by_side.values() for c in v})
    cell = lambda v, k: "—" if v.get(k) is None else (words.sig(v[k]) if k == "alpha" else f"{v[k]:.2f}")  # noqa: E731
    rows = []
    for cat in cats:
        row = [cat or "(none)"]
        for key in keys:
            v = by_side[key].get(cat)
            row += [str(v["requests"]), cell(v, "alpha"), cell(v, "tau")] if v else ["0", "—", "—"]
        rows.append(row)
    head = ["Category"] + [h for key in keys for h in (
        f"{'γ=' + str(key) if isinstance(key, int) else key} n", "α", "τ")]
    w0 = 50
    pdf.para("Acceptance per category (the engine's per-response fields, pooled over concurrency):", size=9)
    pdf.table(head, rows, [w0] + [(pdf.epw - w0) / (3 * len(keys))] * (3 * len(keys)),
              ["LEFT"] + ["RIGHT"] * (3 * len(keys)), size=8)
    src = {v["source"] for side in by_side.values() for v in side.values()}
    pdf.para("n = requests over every level. " + ("α = Σ draft_n_accepted / Σ draft_n; τ = 1 + γ·α (every draft γ "
             "long, as the server was started). " if any("draft_n" in x for x in src) else "")
             + ("τ = Σ output tokens / Σ spec_verify_ct. " if any("verify" in x for x in src) else ""),
             size=8, colour=(85, 85, 85))
