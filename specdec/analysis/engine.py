"""Engine runs → per concurrency level: SD/baseline ratios with bootstrap CIs, best γ, and the verdict.

Throughput ratio (per level, per γ): output tokens/s of the speculative server over the plain one's.
The level's wall clock is not a sum over requests, so the resampled statistic is the busy-time rate
Σ tokens / Σ E2E (in a closed loop at concurrency C, tokens/s ≈ C · Σ tokens / Σ E2E): the ratio
(Σ tok_sd / Σ e2e_sd) / (Σ tok_base / Σ e2e_base) over requests paired by prompt id, with a bootstrap-t
interval (analysis.bootstrap.log_ratio_t, same resample rows for both sides). The wall-clock tokens/s of
each side is reported beside it. ITL ratio: median per-request ITL (TPOT) of SD over baseline's,
percentile bootstrap over the same pairs. Below 1 is better for ITL, above 1 for throughput.

Verdict per level: SD pays at C when the best γ's throughput-ratio CI lower bound reaches
min_speedup_lo (config.MIN_SPEEDUP_LO, as the in-process decision), does not when its upper bound is
below it, and is unclear otherwise (no interval below config.MIN_CI_PROMPTS requests, as in-process). "Pays up to C*" = the largest
measured C such that SD pays at every level up to it (None: not even at the lowest).
"""

from __future__ import annotations

import numpy as np

from specdec import config
from specdec.analysis.bootstrap import log_ratio_t, percentile_ci, resample_weights


def _pairs(base_level: dict, sd_level: dict) -> tuple[np.ndarray, np.ndarray]:
    """(n, 4) [tok_sd, e2e_sd, tok_base, e2e_base] and (n, 2) [itl_sd, itl_base] for prompts both sides finished."""
    b = {r["id"]: r for r in base_level["per_request"]}
    rows, itl = [], []
    for r in sd_level["per_request"]:
        if r["id"] in b:
            o = b[r["id"]]
            rows.append([r["output_tokens"], r["e2e_s"], o["output_tokens"], o["e2e_s"]])
            itl.append([np.nan if r["itl_s"] is None else r["itl_s"], np.nan if o["itl_s"] is None else o["itl_s"]])
    return np.array(rows, dtype=float).reshape(-1, 4), np.array(itl, dtype=float).reshape(-1, 2)


def compare_level(base_level: dict, sd_level: dict, n_boot: int = config.BOOTSTRAP_SAMPLES) -> dict:
    """One (γ, concurrency) cell: throughput ratio and ITL ratio, each {estimate, lo, hi}; n pairs."""
    X, itl = _pairs(base_level, sd_level)
    # Below MIN_CI_PROMPTS pairs no interval at all, as for prompts in-process (coverage falls under 93%).
    enough = len(X) >= config.MIN_CI_PROMPTS
    tput = log_ratio_t(X, (+1, -1, -1, +1), resample_weights(len(X), n_boot if enough else 0))
    ok = ~np.isnan(itl).any(axis=1)
    itl = itl[ok]
    if len(itl) and not enough:
        est = float(np.median(itl[:, 0]) / np.median(itl[:, 1]))
        itl_ratio = {"estimate": est, "lo": None, "hi": None}
    elif len(itl):
        est = float(np.median(itl[:, 0]) / np.median(itl[:, 1]))
        rng = np.random.default_rng(config.BOOTSTRAP_SEED)
        idx = rng.integers(0, len(itl), size=(n_boot, len(itl)))
        reps = np.median(itl[idx, 0], axis=1) / np.median(itl[idx, 1], axis=1)
        lo, hi = percentile_ci(reps)
        itl_ratio = {"estimate": est, "lo": float(lo), "hi": float(hi)}
    else:
        itl_ratio = {"estimate": None, "lo": None, "hi": None}
    return {"n": len(X), "ratio": {k: _f(tput[k]) for k in ("estimate", "lo", "hi")}, "itl_ratio": itl_ratio}


def levels_table(engine: dict) -> list[dict]:
    """Plain rows, one per (γ, concurrency): what scripts read from results.json `engine.levels`.
    {draft_length, concurrency, n, baseline_tokens_per_s, sd_tokens_per_s, wall_ratio, ratio{…}, itl_ratio{…},
     baseline_itl_p50_s, sd_itl_p50_s, alpha, tau, per_position, drafts, draft_tokens, accepted,
     per_category: category_acceptance of the level}"""
    sides = engine["sides"]
    base = next((s for s in sides if s["draft_length"] is None and s["label"] == "baseline"), None)
    if base is None:
        return []
    base_by_c = {lv["concurrency"]: lv for lv in base["levels"]}
    rows = []
    for side in sides:
        if side is base:
            continue
        for lv in side["levels"]:
            b = base_by_c.get(lv["concurrency"])
            if b is None:
                continue
            acc = lv.get("acceptance") or {}
            cell = compare_level(b, lv)
            rows.append({
                "label": side["label"], "draft_length": side["draft_length"], "concurrency": lv["concurrency"],
                "n": cell["n"], "baseline_tokens_per_s": b["output_tokens_per_s"],
                "sd_tokens_per_s": lv["output_tokens_per_s"],
                "wall_ratio": lv["output_tokens_per_s"] / b["output_tokens_per_s"] if b["output_tokens_per_s"] else None,
                "ratio": cell["ratio"], "itl_ratio": cell["itl_ratio"],
                "baseline_itl_p50_s": b["itl_s"]["p50"], "sd_itl_p50_s": lv["itl_s"]["p50"],
                "alpha": acc.get("alpha"), "tau": acc.get("tau"), "per_position": acc.get("per_position", []),
                "drafts": acc.get("drafts"), "draft_tokens": acc.get("draft_tokens"), "accepted": acc.get("accepted"),
                "per_category": category_acceptance(lv["per_request"], side["draft_length"]),
            })
    return rows


def category_acceptance(requests: list[dict], gamma: int | None) -> dict:
    """Acceptance per category from the engine's per-response fields: {category: {requests, draft_tokens,
    accepted, alpha, tau, source}}, empty when the engine gives none (vLLM keeps acceptance in counters only).

    llama.cpp (timings.draft_n, draft_n_accepted): α = Σ accepted / Σ drafted; τ = 1 + γ·α, which assumes every
    draft is γ long — what the local server is started with (--spec-draft-n-max γ, --spec-draft-p-min 0); it
    agrees with the counters' τ to within a few % on the bundled pair (a draft cut by max_tokens is shorter), and
    is None when γ is unknown (URL mode). SGLang (meta_info.spec_verify_ct): τ = Σ output tokens / Σ verify
    passes; α unknown."""
    cats: dict[str, dict] = {}
    for r in requests:
        c = cats.setdefault(str(r.get("category") or ""), {"requests": 0, "output_tokens": 0, "draft_tokens": 0,
                                                           "accepted": 0, "verify": 0})
        c["requests"] += 1
        c["output_tokens"] += r.get("output_tokens") or 0
        c["draft_tokens"] += r.get("draft_n") or 0
        c["accepted"] += r.get("draft_n_accepted") or 0
        c["verify"] += r.get("spec_verify_ct") or 0
    out = {}
    for cat, c in sorted(cats.items()):
        if c["verify"] > 0:
            out[cat] = {"requests": c["requests"], "draft_tokens": None, "accepted": None, "alpha": None,
                        "tau": c["output_tokens"] / c["verify"], "source": "meta_info.spec_verify_ct"}
        elif c["draft_tokens"] > 0:
            alpha = c["accepted"] / c["draft_tokens"]
            out[cat] = {"requests": c["requests"], "draft_tokens": c["draft_tokens"], "accepted": c["accepted"],
                        "alpha": alpha, "tau": 1.0 + gamma * alpha if gamma else None,
                        "source": "timings.draft_n_accepted / draft_n"}
    return out


def categories_by_gamma(engine: dict) -> dict:
    """Per speculative side (γ, or its label in URL mode): category_acceptance pooled over its levels
    (greedy acceptance does not depend on the load)."""
    out = {}
    for side in engine["sides"]:
        if side["label"] == "baseline" and side["draft_length"] is None:
            continue
        cats = category_acceptance([r for lv in side["levels"] for r in lv["per_request"]], side["draft_length"])
        if cats:
            out[side["draft_length"] or side["label"]] = cats
    return out


def status_note(engine: dict) -> str | None:
    """One sentence when the run did not finish (interrupted, failed, still running): what the levels shown
    are. None for a complete run (and for files written before engine runs recorded a status)."""
    status = engine.get("status") or "complete"
    if status == "complete":
        return None
    done = ", ".join(f"{s['label']} C={lv['concurrency']}" for s in engine["sides"] for lv in s["levels"])
    why = f" ({engine['error']})" if engine.get("error") else ""
    return (f"This engine run is {status}{why}: only the levels that finished are shown ({done or 'none'}); "
            f"a level cut short is not a measurement and was left out.")


def decide(rows: list[dict], min_speedup_lo: float = config.MIN_SPEEDUP_LO) -> dict:
    """Best γ per concurrency (highest throughput ratio), whether SD pays there, and the crossover.
    {per_level: [{concurrency, draft_length, label, ratio, pays}], pays_up_to, crossover, headline}"""
    best: dict[int, dict] = {}
    for r in rows:
        est = r["ratio"]["estimate"]
        if est is None:
            continue
        c = r["concurrency"]
        if c not in best or est > best[c]["ratio"]["estimate"]:
            best[c] = r
    per_level = []
    for c in sorted(best):
        r = best[c]
        lo = r["ratio"]["lo"]
        hi = r["ratio"]["hi"]
        # True: CI above the bar; False: CI below it; None: no interval (too few requests) or it straddles the bar.
        pays = True if lo is not None and lo >= min_speedup_lo else (
            False if hi is not None and hi < min_speedup_lo else None)
        per_level.append({"concurrency": c, "draft_length": r["draft_length"], "label": r["label"],
                          "ratio": r["ratio"], "pays": pays})
    pays_up_to = None
    for lv in per_level:
        if lv["pays"] is not True:
            break
        pays_up_to = lv["concurrency"]
    return {"per_level": per_level, "pays_up_to": pays_up_to, "crossover": crossover(rows),
            "min_speedup_lo": min_speedup_lo, "headline": headline(per_level, pays_up_to, min_speedup_lo)}


def crossover(rows: list[dict]) -> float | None:
    """Concurrency where the best ratio crosses 1 (log-linear interpolation between measured levels);
    None when it never crosses inside the measured range."""
    pts = {}
    for r in rows:
        est = r["ratio"]["estimate"]
        if est is not None and est > pts.get(r["concurrency"], -1):
            pts[r["concurrency"]] = est
    cs = sorted(pts)
    for a, b in zip(cs, cs[1:]):
        ya, yb = pts[a] - 1.0, pts[b] - 1.0
        if ya == 0:
            return float(a)
        if ya * yb < 0:
            f = ya / (ya - yb)
            return float(np.exp(np.log(a) + f * (np.log(b) - np.log(a))))
    return None


def headline(per_level: list[dict], pays_up_to: int | None, min_lo: float) -> str:
    if not per_level:
        return "No engine comparison: no level has both a baseline and a speculative measurement."
    cells = ", ".join(f"C={lv['concurrency']}: {lv['ratio']['estimate']:.2f}×"
                      + (f" (γ={lv['draft_length']})" if lv["draft_length"] else "") for lv in per_level)
    if pays_up_to is None and all(lv["pays"] is False for lv in per_level):
        return f"SD does not pay on this engine at any measured concurrency (best per level: {cells})."
    if pays_up_to is None:
        return (f"SD is not shown to pay at the lowest concurrency: its interval reaches below {min_lo:.2f}× or "
                f"there are too few requests (< {config.MIN_CI_PROMPTS}) for one (best per level: {cells}).")
    if pays_up_to == per_level[-1]["concurrency"]:
        return f"SD pays (CI lower bound ≥ {min_lo:.2f}×) at every measured concurrency (best per level: {cells})."
    return (f"SD pays (CI lower bound ≥ {min_lo:.2f}×) up to concurrency {pays_up_to}; above it, it does not "
            f"(best per level: {cells}).")


def _f(x) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None
