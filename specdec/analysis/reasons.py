"""The decision in words: its headline and numbered reasons, for the measured verdict and for a deployment
target (engine measurement or projection). specdec.analysis.decision decides; this module only says why.

Public API
    headline(verdict, cfg, on, hardware, a) -> str
    reasons(a, verdict, overall, cats, segments, cfg, hardware, th, gamma_note, j) -> [str]
    target_headline(verdict, target, dep, a) -> str; target_reasons(a, dep, target, j, verdict) -> [str]
th is a decision.Thresholds (not imported here: decision imports this module); j is decision.judge's result.
"""

from __future__ import annotations

import math

import numpy as np

from specdec import config, methods
from specdec.analysis import compare
from specdec.analysis import deploy as dp
from specdec.analysis.summary import ALL, Analysis
from specdec.present import words


# ---- about a deployment target ----

def _lv(lv: dict) -> str:
    ci = (f" (CI {lv['speedup_lo']:.2f}–{lv['speedup_hi']:.2f}×" if lv.get("speedup_lo") is not None
          and lv.get("speedup_hi") is not None else " (no interval: too few prompts")
    band = (f"; assumptions {lv['speedup_band_lo']:.2f}–{lv['speedup_band_hi']:.2f}×" if lv.get("speedup_band_lo")
            is not None else "")
    fit = "" if lv.get("fits", True) else ", does not fit in memory"
    return f"concurrency {lv['concurrency']}: {lv['speedup']:.2f}×{ci}{band}){fit} — {lv['status']}"


def _levels_text(levels: list[dict]) -> str:
    """Consecutive concurrency levels of one status merged: 'concurrency 1–8: 1.31× (…) … 1.12× (…) — on'."""
    groups: list[list[dict]] = []
    for lv in levels:
        if groups and groups[-1][-1]["status"] == lv["status"]:
            groups[-1].append(lv)
        else:
            groups.append([lv])
    parts = []
    for g in groups:
        if len(g) == 1:
            parts.append(_lv(g[0]))
        else:
            a, b = _lv(g[0]), _lv({**g[-1], "status": g[-1]["status"]})
            parts.append(a.rsplit(" — ", 1)[0] + " … " + b)
    return "; ".join(parts)


def target_reasons(a: Analysis, dep: dp.Deployment, target: dict, j: dict, verdict: str) -> list[str]:
    r = [f"Deployment target: {dep.label}. The verdict is about this target."]
    if target["basis"] == "engine":
        r.append(f"It comes from an engine measurement with {dep.engine} (SD / baseline throughput per concurrency): "
                 + _levels_text(target["levels"]) + ".")
    elif target["basis"] == "projection":
        if target["method"] is None:
            r.append("No measured method can be projected onto it (drafter sizes unknown).")
        else:
            k = round(1.0 / max(1e-9, (1.0 - target["level"]) / (1.0 - config.CI_LEVEL)))
            r.append(f"No engine measurement for it: the verdict comes from projecting this run's measured acceptance "
                     f"through the calibrated cost model ({a.label(target['method'])}, γ={target['gamma']}, the best at "
                     f"concurrency {dep.concurrency[0]}; intervals from resampling the prompts, widened for "
                     f"{k} method{'s' if k != 1 else ''} compared; the band moves one assumption at a time): "
                     + _levels_text(target["levels"]) + ".")
    else:
        r.append("On this machine at concurrency 1 the measured speedup answers it directly.")
    if target["basis"] == "projection":
        r.append(dp.weights_note(a.manifest))
    if target["basis"] != "measured":
        r.append(f"Measured on this machine alone ({a.manifest.get('settings', {}).get('dtype', '?')}, batch 1) the "
                 f"verdict would be {j['verdict']}: that is this CPU's answer, which checks the cost model and measures "
                 f"acceptance; it is not the deployment's.")
    return r


def target_headline(verdict: str, target: dict, dep: dp.Deployment, a: Analysis) -> str:
    lv = target["levels"]
    first = lv[0] if lv else None
    what = (f"{a.label(target['method'])} γ={target['gamma']}" if target.get("method") else
            f"speculation (γ={target.get('gamma')})")
    span = (f"{first['speedup']:.2f}× (CI {first['speedup_lo']:.2f}–{first['speedup_hi']:.2f}×) at concurrency "
            f"{first['concurrency']}" if first and first.get("speedup_lo") is not None else "")
    if verdict == "GO":
        return f"GO on {dep.label}: turn on {what} — {span}"
    if verdict == "GO-SEGMENTS":
        on = [x["concurrency"] for x in lv if x["status"] == "on"]
        if on:
            return f"GO on {dep.label} at concurrency {min(on)}–{max(on)} only: {what} — {span}"
        return f"GO for some segments on {dep.label}: {what}"
    if verdict == "NO-GO":
        return f"NO-GO on {dep.label}: {what} projects {span}, below the bar"
    return f"INSUFFICIENT EVIDENCE for {dep.label}: " + (f"{what} projects {span}; " if span else "") + \
        "measure more prompts before deciding"


# ---- about the measured verdict ----

def _ci(s: dict) -> str:
    """Three decimals: a bound of 1.047 must not print as the 1.05 it failed to reach."""
    return words.ci(s["speedup_lo"], s["speedup_hi"],
                    missing=f"none: too few prompts (< {config.MIN_CI_PROMPTS}) for an interval")


def _span(lo, hi, unit: str = "×") -> str:
    if unit:
        return words.x(lo) if f"{lo:.2f}" == f"{hi:.2f}" else f"{words.x(lo)}–{words.x(hi)}"
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def headline(verdict: str, cfg: dict | None, on: list[dict], hardware: str, a: Analysis, cats=()) -> str:
    """cats: every category's segment dict; GO-SEGMENTS says whether the rest lose or are merely unsettled."""
    if verdict == "GO":
        return f"GO: turn on {a.label(cfg['method'])} with γ={cfg['draft_length']} for all traffic"
    if verdict == "GO-SEGMENTS":
        text = f"GO for {', '.join(s['category'] for s in on)} only; leave the rest off"
        unclear = sum(s["status"] == "unclear" for s in cats)
        few = sum(s["status"] == "too-few" for s in cats)
        if unclear or few:  # not shown to lose: off until measured, not off for good
            parts = ([f"{unclear} unclear"] if unclear else []) + ([f"{few} with too few prompts"] if few else [])
            text += f" until measured ({', '.join(parts)})"
        return text
    if verdict == "NO-GO":
        return "NO-GO: speculative decoding does not pay on this workload"
    return "INSUFFICIENT EVIDENCE: measure more prompts before deciding"


def reasons(a: Analysis, verdict, overall, cats, segments, cfg, hardware, th, gamma_note,
             j: dict) -> list[str]:
    r = []
    n = overall["n_prompts"]
    r.append(f"{n} prompts in {len(cats)} categor{'y' if len(cats) == 1 else 'ies'} "
             f"(a confident verdict needs ≥ {th.min_prompts}, a category ≥ {th.min_prompts_per_segment}).")
    if overall["method"]:
        r.append(f"Pooled, the best configuration is {a.label(overall['method'])} γ={overall['draft_length']}: decode speedup "
                 f"{words.x(overall['speedup'])} (95% CI {_ci(overall)}) on this "
                 f"machine, {overall['base_tpot_ms']:.1f} → {overall['tpot_ms']:.1f} ms per token "
                 f"({_saving(overall)}); the bar is a lower bound ≥ {th.min_speedup_lo:.2f}×.")
    r.append(_tests_reason(j, th))
    het = j["heterogeneity"]
    if np.isfinite(het["p_value"]):
        r.append(f"Do the categories differ? Permutation test over {len(het['categories'])} categories with ≥ "
                 f"{th.min_prompts_per_segment} prompts: p = {het['p_value']:.3f} "
                 + ("(< {:.2f}: they differ, so each is judged on its own)".format(config.HETEROGENEITY_ALPHA)
                    if het["p_value"] <= config.HETEROGENEITY_ALPHA else
                    "(no evidence they differ: one verdict for all traffic; per-category figures are descriptive)")
                 + ".")
    for s in cats if len(cats) > 1 else []:
        r.append(_segment_reason(s, th, a))
    r.extend(_methods_reason(a))
    if overall["method"] is None:
        r.append("No speculative run has finished yet: there is nothing to compare with the baseline.")
    elif verdict == "INSUFFICIENT-EVIDENCE":
        pooled = overall["prompts_needed"] if overall["prompts_needed"] and math.isfinite(overall["prompts_needed"]) else 0
        need = max(th.min_prompts, pooled)
        text = (f"Not enough evidence for a confident verdict: measure about {need:.0f} prompts in all (pooled over "
                f"categories) so the pooled speedup CI is ±{th.ci_halfwidth:.2f} and clears or misses "
                f"{th.min_speedup_lo:.2f}×")
        per = [s for s in cats if len(cats) > 1 and s["status"] in ("unclear", "too-few")
               and s["prompts_needed"] and math.isfinite(s["prompts_needed"])]
        bare = {s["prompts_needed"] for s in per if s["speedup_lo"] is None}
        if per and len(bare) == 1 and all(s["speedup_lo"] is None for s in per):
            text += (f"; to judge categories apart, at least {bare.pop():.0f} in each of these {len(per)} categories "
                     "(no interval yet: too few prompts)")
        elif per:
            text += ("; to judge categories apart, " + ", ".join(
                (f"about {s['prompts_needed']:.0f}" if s["speedup_lo"] is not None else
                 f"at least {s['prompts_needed']:.0f} (no interval yet)") + f" in {s['category']}"
                for s in per[:6]) + (f" and likewise in {len(per) - 6} more" if len(per) > 6 else "")
                + " (each category on its own)")
        r.append(text + ".")
    non_iid = a.summary[(a.summary["method"] != "baseline") & (a.summary["alpha_iid"] == False)]  # noqa: E712
    for _, row in non_iid.head(2).iterrows():
        r.append(f"Acceptance is not i.i.d. for {a.label(row['method'])} γ={row['draft_length']}: the α estimates differ by "
                 f"{row['alpha_spread']:.2f} (> {config.ALPHA_DISAGREEMENT}); γ is chosen from the per-position "
                 f"rates, not from Leviathan's closed form.")
    err = a.projection_error[a.projection_error["category"] == ALL]
    if len(err):
        worst = err["speedup_rel_error"].abs().max()
        text = (f"The draft-length projection (per-position acceptance of the largest γ run plus the measured costs) "
                f"misses the measured speedup by at most {100 * worst:.0f}% at the γ values run")
        if worst > config.PROJECTION_TRUST_ERROR:
            text += "; treat projected γ values other than those run with caution"
        r.append(text + ".")
    for s in segments:
        if s["batch_ranges"]:
            parts = [("off" if b["gamma"] is None else f"γ={b['gamma']} ({_span(b['speedup_min'], b['speedup_max'])})")
                     + f" at batch {_span(b['batch_min'], b['batch_max'], '')}" for b in s["batch_ranges"]]
            r.append(f"Projected on {hardware} for {s['category']}: " + "; ".join(parts) + ".")
    if gamma_note:
        r.append(gamma_note + ".")
    if cfg:
        r.append(_memory_reason(a, cfg["method"]))
    if cfg:
        c = a.compute[(a.compute["method"] == cfg["method"]) & (a.compute["draft_length"] == cfg["measured_draft_length"])]
        if len(c):
            c = c.iloc[0]
            r.append(f"Compute price: {c['flops_ratio']:.2f}× the FLOPs per token of plain decoding "
                     f"({100 * c['rejected_share']:.0f}% of verified positions are thrown away; Thm 3.11 predicts "
                     f"{c['flops_ratio_theory']:.2f}×) — speculation saves latency, not compute.")
    r.append(_lossless_reason(a.lossless, th, a.label))
    return r


def _tests_reason(j: dict, th) -> str:
    """How many configurations were tried and what the multiplicity correction asked of them."""
    t = j["tests"]
    k_pooled = int((t["category"] == ALL).sum())
    k_seg = int((t["category"] != ALL).sum())
    text = (f"Chance wins are corrected for: the pooled bar is tested one-sided at {100 * j['alpha']:.1f}% with a "
            f"step-down over {k_pooled} configuration{'s' if k_pooled != 1 else ''}")
    if k_seg:
        text += f", a category's over {k_seg} category × configuration tests"
    return text + " (Westfall–Young min-P step-down on the studentized bootstrap of the log speedup)."


def _saving(s: dict) -> str:
    if s["saving_ms"] >= 0:
        return f"{s['saving_ms']:.1f} ms ({s['saving_pct']:.0f}%) saved"
    return f"{-s['saving_ms']:.1f} ms ({-s['saving_pct']:.0f}%) lost"


def _methods_reason(a: Analysis) -> list[str]:
    """With several methods, one sentence comparing each at its best γ (compare.methods_table)."""
    t = compare.methods_table(a)
    if len(t) < 2:
        return []
    t = t.sort_values("speedup", ascending=False)
    parts = [f"{r['label']} {words.x(r['speedup'])} at γ={r['draft_length']}" for _, r in t.iterrows()]
    return [f"{len(t)} methods measured; each at its best γ, pooled: " + ", ".join(parts) + "."]


def _memory_reason(a: Analysis, method: str) -> str:
    """What the chosen method costs in memory beside the target (costs.memory_by_method)."""
    mem = a.memory
    row = mem.get("by_method", {}).get(method)
    label = a.label(method)
    if row is None or row.get("estimated") and not row["extra_total_gb"]:
        return f"Memory price of {label}: not recorded in this run."
    if row["extra_total_gb"] == 0:
        why = methods.spec(method).free_why
        return f"Memory price: none — {label} adds no weights or KV cache ({why})."
    est = " (estimated)" if row.get("kv_estimated") else ""
    kv = (f" plus {1e3 * row['extra_kv_gb_per_seq']:.1f} MB{est} of its own KV cache per "
          f"{mem['context_tokens']:.0f}-token sequence" if row["extra_kv_gb_per_seq"] else "")
    what = methods.spec(method).memory_what
    return f"Memory price of {label}: {row['extra_weights_gb']:.2f} GB of {what}{kv} ({mem['dtype']})."


def _segment_reason(s: dict, th, a: Analysis) -> str:
    head = f"{s['category']} (n={s['n_prompts']}): "
    if s["method"] is None:
        return head + "no measured configuration."
    cfg = f"{a.label(s['method'])} γ={s['draft_length']} {words.x(s['speedup'])} (CI {_ci(s)})"
    return head + {
        "on": f"on — {cfg}, {_saving(s)} per token.",
        "off": f"off — even the best, {cfg}, stays below {th.min_speedup_lo:.2f}× at its upper bound.",
        "unclear": f"unclear — {cfg} does not clear {th.min_speedup_lo:.2f}× after the multiplicity correction; "
                   f"~{s['prompts_needed']:.0f} prompts in this category would settle it.",
        "too-few": f"too few prompts for a verdict of its own (< {th.min_prompts_per_segment}); best seen {cfg}.",
        "on (pooled)": f"too few prompts for a verdict of its own (< {th.min_prompts_per_segment}; best seen {cfg}); "
                       "follows the pooled result.",
    }[s["status"]]


def _lossless_reason(loss: dict, th, label=str) -> str:
    if not loss["applicable"]:
        return f"Losslessness at temperature {loss['temperature']:g}: " + loss["note"] + "." + _lossy_text(loss, label)
    rate = loss["identical_rate"]
    first = (f"; first divergences at token {', '.join(str(x) for x in loss['first_divergence'][:5])}"
             if loss["first_divergence"] else "")
    text = (f"Losslessness: {loss['identical']}/{loss['runs']} greedy runs ({100 * rate:.0f}%) reproduce the baseline "
            f"token for token in {loss['dtype']}{first}.")
    if loss["dtype"] == "float32" and rate < th.min_identical_rate:
        text += (f" Below {100 * th.min_identical_rate:.0f}% in float32 points to a decoder bug: do not trust the "
                 "speedups until it is explained.")
    elif loss["dtype"] != "float32" and rate < 1.0:
        text += " In bfloat16, late divergences come from near-ties in rounding; rerun in float32 to confirm."
    return text + _lossy_text(loss, label)


def _lossy_text(loss: dict, label) -> str:
    """What a lossy acceptance rule did to the output (left out of the counts above)."""
    parts = []
    for key, x in (loss.get("lossy") or {}).items():
        fd = x["first_divergence_median"]
        parts.append(f" {label(key)}, left out of that count: {100 * x['identical_rate']:.0f}% of its {x['runs']} runs "
                     f"match the baseline" + (f"; the others first differ at token {fd:.0f} (median)" if fd == fd else "") + ".")
    return "".join(parts)
