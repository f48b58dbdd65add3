"""Measured metrics from one results.json: per prompt, per category and overall, with 95% CIs.

Notation (design.md): α per-token acceptance, τ tokens per target pass (bonus included), ρ accepted /
drafted, γ draft length. All functions are pure and take either the results dict or the
`Measurements` that `collect(results)` builds from it once (pass that to avoid re-parsing).

Definitions (sums over a prompt's rounds, then ratio of totals over prompts):
    tau          Σ (accepted + 1) / rounds                                   tokens per target pass
    rho          Σ accepted / Σ drafted
    alpha_beta   mean of recorded β = Σ min(p, q) per drafted position: exact and low-variance under
                 sampling. Under greedy decoding the decoder records β at temperature 1, which is not
                 the greedy acceptance probability: alpha_beta_comparable is then False.
    alpha_pos    Σ accepted / Σ tested, tested = positions actually tried (accepted + the first
                 rejection): the pooled per-position rate, the i.i.d. MLE.
    alpha_tau    α inverted from τ with Eq. (1), using each round's drafted length (i.i.d. model).
                 The three agree when acceptance is i.i.d.; alpha_spread (max − min of the comparable
                 ones) above ALPHA_DISAGREEMENT sets alpha_iid False: acceptance varies by position or
                 by prompt, so trust the per-position table over Thm 3.8.
    ttft_s       prefill_s (time to first token; speculative runs include the drafter's prefill)
    tpot_ms      decode_s / (new_tokens − 1)                                 time per output token
    tokens_per_s new_tokens / (prefill_s + decode_s)                         end to end
    speedup      baseline tpot / speculative tpot, ratio of totals over prompts (decode phase: the
                 part speculation changes); speedup_e2e the same for end-to-end tokens/s
    saving_ms    baseline tpot − speculative tpot (ms per token), saving_pct = saving / baseline tpot

Public API (DataFrame columns listed in each docstring)
    collect(results) -> Measurements
    prompt_table(data) -> DataFrame                one row per prompt × method × γ
    summary_table(data, by=("method", "draft_length"), level="overall"|"category") -> DataFrame
    position_acceptance(data, level="overall"|"category") -> DataFrame
    losslessness(data) -> dict
    analyze(results) -> Analysis                   everything above + costs + projection, cacheable

Then, cheap and hardware-specific: specdec.hardware.whatif(analysis, …) and
specdec.decision.decide(analysis, thresholds, hardware, batch_sizes) -> Decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from specdec import config, methods
from specdec.analysis import costs
from specdec.analysis import projection
from specdec.analysis.bootstrap import log_ratio_t, percentile_ci, prompts_needed, ratio, resample_weights
from specdec.errors import SpecdecError

ALL = projection.ALL
METRICS = ("tau", "alpha_beta", "alpha_tau", "alpha_pos", "rho", "ttft_s", "tpot_ms", "tokens_per_s",
           "speedup", "speedup_e2e", "saving_ms")


@dataclass(frozen=True)
class Measurements:
    """results.json flattened once. prompts: one row per prompt (baseline columns); runs: one row per
    prompt × method × γ (= prompt_table); rounds: one row per round; beta: (len(rounds), max γ) β per
    drafted position, NaN where nothing was drafted or recorded."""

    manifest: dict
    prompts: pd.DataFrame
    runs: pd.DataFrame
    rounds: pd.DataFrame
    beta: np.ndarray

    @property
    def greedy(self) -> bool:
        return float(self.manifest.get("settings", {}).get("temperature", 0.0)) <= 0.0


def _as_measurements(data) -> Measurements:
    return data if isinstance(data, Measurements) else collect(data)


def collect(results: dict) -> Measurements:
    """Flatten a results dict (schema in notes/common.md) into DataFrames; one pass over the rounds."""
    if not isinstance(results, dict) or "prompts" not in results:
        raise SpecdecError("not a results dict: expected keys schema_version, manifest, prompts")
    prompt_rows, run_rows, round_cols = [], [], {k: [] for k in
                                                 ("run", "prompt_id", "category", "method", "draft_length",
                                                  "round", "drafted", "accepted", "draft_s", "verify_s")}
    betas = []
    drafters = (results.get("manifest", {}).get("models") or {}).get("drafters") or {}
    for p in results["prompts"]:
        base = p["baseline"]
        prompt_rows.append({"prompt_id": p["id"], "category": p["category"], "prompt_tokens": p["prompt_tokens"],
                            "base_new_tokens": base["new_tokens"], "base_prefill_s": base["prefill_s"],
                            "base_decode_s": base["decode_s"]})
        seen = set()
        for run in p["runs"]:
            # Label a run by the γ it really drafted (a Medusa run asked for γ > K drafted K); files
            # written before runs were capped may then hold two runs of one config: keep the first.
            run = {**run, "draft_length": methods.effective_gamma(run["method"], run["draft_length"], drafters)}
            if (run["method"], run["draft_length"]) in seen:
                continue
            seen.add((run["method"], run["draft_length"]))
            i_run = len(run_rows)
            rs = run["rounds"]
            d = np.array([r["drafted"] for r in rs], dtype=np.int64)
            a = np.array([r["accepted"] for r in rs], dtype=np.int64)
            b = [x for r in rs for x in (r["beta"] or [])]
            row = {"prompt_id": p["id"], "category": p["category"], "prompt_tokens": p["prompt_tokens"],
                   "method": run["method"], "draft_length": run["draft_length"],
                   "new_tokens": run["new_tokens"], "prefill_s": run["prefill_s"], "decode_s": run["decode_s"],
                   "rounds": len(rs), "drafted": int(d.sum()), "accepted": int(a.sum()),
                   "tested": int(np.minimum(a + 1, d).sum()),
                   "beta_sum": float(sum(b)), "beta_n": len(b),
                   "draft_s": float(sum(r["draft_s"] for r in rs)), "verify_s": float(sum(r["verify_s"] for r in rs)),
                   "drafted_hist": np.bincount(d, minlength=run["draft_length"] + 1).tolist(),
                   **_divergence(base["tokens"], run["tokens"])}
            run_rows.append(row)
            for j, r in enumerate(rs):
                for k, v in (("run", i_run), ("prompt_id", p["id"]), ("category", p["category"]),
                             ("method", run["method"]), ("draft_length", run["draft_length"]), ("round", j),
                             ("drafted", r["drafted"]), ("accepted", r["accepted"]),
                             ("draft_s", r["draft_s"]), ("verify_s", r["verify_s"])):
                    round_cols[k].append(v)
                betas.append(r["beta"])
    prompts = pd.DataFrame(prompt_rows, columns=["prompt_id", "category", "prompt_tokens", "base_new_tokens",
                                                 "base_prefill_s", "base_decode_s"])
    if prompts.empty:
        raise SpecdecError("the results hold no prompts yet")
    runs = _derive(pd.DataFrame(run_rows), prompts)
    rounds = pd.DataFrame(round_cols)
    width = int(rounds["drafted"].max()) if len(rounds) else 0
    beta = np.full((len(betas), width), np.nan)
    for i, bl in enumerate(betas):
        if bl:
            beta[i, : len(bl)] = bl
    return Measurements(results.get("manifest", {}), prompts, runs, rounds, beta)


def _divergence(base: list[int], run: list[int]) -> dict:
    """identical: same ids as the baseline; first_divergence: index of the first differing token
    (the shorter length when one is a prefix of the other), NaN when identical."""
    if base == run:
        return {"identical": True, "first_divergence": np.nan}
    n = min(len(base), len(run))
    first = next((i for i in range(n) if base[i] != run[i]), n)
    return {"identical": False, "first_divergence": float(first)}


def _derive(runs: pd.DataFrame, prompts: pd.DataFrame) -> pd.DataFrame:
    base = prompts.drop(columns=["category", "prompt_tokens"])
    if runs.empty:
        runs = pd.DataFrame(columns=["prompt_id", "category", "prompt_tokens", "method", "draft_length", "new_tokens",
                                     "prefill_s", "decode_s", "rounds", "drafted", "accepted", "tested", "beta_sum",
                                     "beta_n", "draft_s", "verify_s", "drafted_hist", "identical", "first_divergence"])
    df = runs.merge(base, on="prompt_id", how="left")
    dec = (df["new_tokens"] - 1).clip(lower=0)
    base_dec = (df["base_new_tokens"] - 1).clip(lower=0)
    df["total_s"] = df["prefill_s"] + df["decode_s"]
    df["base_total_s"] = df["base_prefill_s"] + df["base_decode_s"]
    df["tau"] = ratio(df["accepted"] + df["rounds"], df["rounds"])
    df["rho"] = ratio(df["accepted"], df["drafted"])
    df["alpha_pos"] = ratio(df["accepted"], df["tested"])
    df["alpha_beta"] = ratio(df["beta_sum"], df["beta_n"])
    hist = _hist_matrix(df["drafted_hist"])
    df["alpha_tau"] = projection.alpha_from_tau(df["tau"].to_numpy(dtype=float), drafted_hist=hist)
    df["ttft_s"] = df["prefill_s"]
    df["tpot_ms"] = ratio(df["decode_s"] * 1e3, dec)
    df["tokens_per_s"] = ratio(df["new_tokens"], df["total_s"])
    df["base_ttft_s"] = df["base_prefill_s"]
    df["base_tpot_ms"] = ratio(df["base_decode_s"] * 1e3, base_dec)
    df["base_tokens_per_s"] = ratio(df["base_new_tokens"], df["base_total_s"])
    df["speedup"] = df["base_tpot_ms"] / df["tpot_ms"]
    df["speedup_e2e"] = df["tokens_per_s"] / df["base_tokens_per_s"]
    df["saving_ms"] = df["base_tpot_ms"] - df["tpot_ms"]
    df["overhead_s"] = df["decode_s"] - df["draft_s"] - df["verify_s"]
    return df


def _hist_matrix(hists) -> np.ndarray:
    width = max((len(h) for h in hists), default=1)
    out = np.zeros((len(hists), width))
    for i, h in enumerate(hists):
        out[i, : len(h)] = h
    return out


def prompt_table(data) -> pd.DataFrame:
    """One row per prompt × method × γ. Columns: prompt_id, category, prompt_tokens, method, draft_length,
    new_tokens, prefill_s, decode_s, total_s, rounds, drafted, accepted, tested, beta_sum, beta_n, draft_s,
    verify_s, overhead_s, drafted_hist, identical, first_divergence, tau, rho, alpha_pos, alpha_beta,
    alpha_tau, ttft_s, tpot_ms, tokens_per_s, speedup, speedup_e2e, saving_ms, and the baseline's
    base_new_tokens, base_prefill_s, base_decode_s, base_total_s, base_ttft_s, base_tpot_ms,
    base_tokens_per_s."""
    return _as_measurements(data).runs.copy()


# ---- summary with bootstrap CIs ----

# Per-prompt totals every metric is built from: a metric is a function of their sums over prompts.
_SUMS = ("emit", "rounds", "accepted", "drafted", "tested", "beta_sum", "beta_n", "new_tokens", "total_s",
         "prefill_s", "one", "decode_ms", "dec_tokens", "base_decode_ms", "base_dec_tokens", "base_new_tokens",
         "base_total_s", "base_prefill_s")


def _sum_matrix(df: pd.DataFrame) -> np.ndarray:
    cols = {
        "emit": df["accepted"] + df["rounds"], "rounds": df["rounds"], "accepted": df["accepted"],
        "drafted": df["drafted"], "tested": df["tested"], "beta_sum": df["beta_sum"], "beta_n": df["beta_n"],
        "new_tokens": df["new_tokens"], "total_s": df["total_s"], "prefill_s": df["prefill_s"],
        "one": np.ones(len(df)), "decode_ms": df["decode_s"] * 1e3,
        "dec_tokens": (df["new_tokens"] - 1).clip(lower=0), "base_decode_ms": df["base_decode_s"] * 1e3,
        "base_dec_tokens": (df["base_new_tokens"] - 1).clip(lower=0), "base_new_tokens": df["base_new_tokens"],
        "base_total_s": df["base_total_s"], "base_prefill_s": df["base_prefill_s"],
    }
    return np.column_stack([np.asarray(cols[k], dtype=float) for k in _SUMS])


def _metrics(S: np.ndarray, hist: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric from column sums S (..., len(_SUMS)) and drafted-length counts hist (..., K+1)."""
    s = {k: S[..., i] for i, k in enumerate(_SUMS)}
    tpot = ratio(s["decode_ms"], s["dec_tokens"])
    base_tpot = ratio(s["base_decode_ms"], s["base_dec_tokens"])
    tps = ratio(s["new_tokens"], s["total_s"])
    tau = ratio(s["emit"], s["rounds"])
    return {
        "tau": tau, "rho": ratio(s["accepted"], s["drafted"]), "alpha_pos": ratio(s["accepted"], s["tested"]),
        "alpha_beta": ratio(s["beta_sum"], s["beta_n"]), "alpha_tau": projection.alpha_from_tau(tau, drafted_hist=hist),
        "ttft_s": ratio(s["prefill_s"], s["one"]), "tpot_ms": tpot, "tokens_per_s": tps,
        "speedup": ratio(base_tpot, tpot), "speedup_e2e": ratio(tps, ratio(s["base_new_tokens"], s["base_total_s"])),
        "saving_ms": base_tpot - tpot, "base_tpot_ms": base_tpot,
        "base_ttft_s": ratio(s["base_prefill_s"], s["one"]),
    }


def summary_table(data, by=("method", "draft_length"), level: str = "overall",
                  n_boot: int = config.BOOTSTRAP_SAMPLES, seed: int = config.BOOTSTRAP_SEED,
                  ci: float = config.CI_LEVEL) -> pd.DataFrame:
    """Point estimates with bootstrap CIs over prompts, one row per method × γ (× category): speedup and
    speedup_e2e studentized on the log ratio (bootstrap.log_ratio_t), the other metrics percentile; every
    interval NaN ("too few") below config.MIN_CI_PROMPTS prompts.

    Columns: method, draft_length, category ("all" at level overall), n_prompts; for each metric in
    METRICS: <m>, <m>_lo, <m>_hi; base_tpot_ms, base_ttft_s (point); saving_pct; speedup_median,
    speedup_p10, speedup_p90, win_rate (share of prompts whose own speedup > 1); speedup_halfwidth,
    prompts_needed (for a ±SPEEDUP_CI_HALFWIDTH speedup CI); alpha_spread, alpha_iid,
    alpha_beta_comparable; identical_rate, first_divergence_median.

    Baseline rows (method "baseline", draft_length 0) carry ttft_s, tpot_ms, tokens_per_s (speedup 1).
    Every configuration in a prompt set is resampled with the same draws, so comparisons are paired.
    """
    if level not in ("overall", "category"):
        raise SpecdecError(f"level must be 'overall' or 'category', got {level!r}")
    m = _as_measurements(data)
    runs = m.runs
    keys = list(by)
    prompt_sets = [(ALL, m.prompts)] if level == "overall" else list(m.prompts.groupby("category", sort=True))
    S_all, H_all = _sum_matrix(runs), _hist_matrix(runs["drafted_hist"])  # once; groups take rows
    runs = runs.reset_index(drop=True)
    rows = []
    for set_no, (cat, pset) in enumerate(prompt_sets):
        ids = pset["prompt_id"].tolist()
        pos = {pid: i for i, pid in enumerate(ids)}
        W = resample_weights(len(ids), n_boot, np.random.default_rng([seed, set_no]))
        rows.append(_baseline_row(pset, W, ci, cat))
        sub = runs[runs["prompt_id"].isin(pos)]
        for key, df in sub.groupby(keys, sort=True):
            key = key if isinstance(key, tuple) else (key,)
            Wc = W[:, [pos[p] for p in df["prompt_id"]]]
            i = df.index.to_numpy()
            rows.append({**dict(zip(keys, key)), "category": cat,
                         **_config_stats(df, S_all[i], H_all[i], Wc, ci, m.greedy)})
    out = pd.DataFrame(rows)
    for col in _SUMMARY_COLUMNS:  # present even before any speculative run finished
        if col not in out.columns:
            out[col] = np.nan
    front = keys + ["category", "n_prompts"]
    return out[front + [c for c in out.columns if c not in front]]


_SUMMARY_COLUMNS = [f"{k}{suffix}" for k in METRICS for suffix in ("", "_lo", "_hi")] + [
    "base_tpot_ms", "base_ttft_s", "saving_pct", "speedup_median", "speedup_p10", "speedup_p90", "win_rate",
    "speedup_halfwidth", "prompts_needed", "alpha_spread", "alpha_iid", "alpha_beta_comparable", "identical_rate",
    "first_divergence_median"]


# The speedups as products of ratios of per-prompt sums (bootstrap.log_ratio_t): columns of _SUMS and signs.
SPEEDUP_TERMS = {"speedup": (("base_decode_ms", "base_dec_tokens", "decode_ms", "dec_tokens"), (1, -1, -1, 1)),
                 "speedup_e2e": (("new_tokens", "total_s", "base_new_tokens", "base_total_s"), (1, -1, -1, 1))}


def speedup_sums(S: np.ndarray, metric: str = "speedup") -> tuple[np.ndarray, tuple]:
    """(per-prompt columns (n, 4), signs) whose log ratio is `metric`, from a _sum_matrix S."""
    cols, signs = SPEEDUP_TERMS[metric]
    return S[:, [_SUMS.index(c) for c in cols]], signs


def _config_stats(df: pd.DataFrame, S: np.ndarray, H: np.ndarray, W: np.ndarray, ci: float, greedy: bool) -> dict:
    point = _metrics(S.sum(0), H.sum(0))
    boot = _metrics(W @ S, W @ H)
    row = {"n_prompts": len(df)}
    lo, hi = percentile_ci(np.column_stack([boot[k] for k in METRICS]), ci)  # one call for all metrics
    for k in SPEEDUP_TERMS:  # studentized on the log ratio: the percentile interval under-covers
        j = METRICS.index(k)
        t = log_ratio_t(*speedup_sums(S, k), W, ci)
        lo[j], hi[j] = t["lo"], t["hi"]
    if len(df) < config.MIN_CI_PROMPTS:  # too few prompts for an interval that means anything
        lo[:], hi[:] = np.nan, np.nan
    for j, k in enumerate(METRICS):
        row[k], row[f"{k}_lo"], row[f"{k}_hi"] = float(point[k]), float(lo[j]), float(hi[j])
    row["base_tpot_ms"], row["base_ttft_s"] = float(point["base_tpot_ms"]), float(point["base_ttft_s"])
    row["saving_pct"] = 100.0 * row["saving_ms"] / row["base_tpot_ms"] if row["base_tpot_ms"] else np.nan
    sp = df["speedup"].to_numpy(dtype=float)
    sp = sp[np.isfinite(sp)]
    row["speedup_median"] = float(np.median(sp)) if len(sp) else np.nan
    row["speedup_p10"] = float(np.percentile(sp, 10)) if len(sp) else np.nan
    row["speedup_p90"] = float(np.percentile(sp, 90)) if len(sp) else np.nan
    row["win_rate"] = float((sp > 1.0).mean()) if len(sp) else np.nan
    row["speedup_halfwidth"] = (row["speedup_hi"] - row["speedup_lo"]) / 2.0
    row["prompts_needed"] = prompts_needed(len(df), row["speedup_halfwidth"])
    comparable = (not greedy) and row["alpha_beta"] == row["alpha_beta"]  # β is the greedy-free quantity
    est = [row["alpha_tau"], row["alpha_pos"]] + ([row["alpha_beta"]] if comparable else [])
    est = [e for e in est if np.isfinite(e)]
    row["alpha_spread"] = float(max(est) - min(est)) if len(est) > 1 else np.nan
    row["alpha_iid"] = bool(row["alpha_spread"] <= config.ALPHA_DISAGREEMENT) if len(est) > 1 else None
    row["alpha_beta_comparable"] = bool(comparable)
    row["identical_rate"] = float(df["identical"].mean())
    fd = df["first_divergence"].dropna()
    row["first_divergence_median"] = float(fd.median()) if len(fd) else np.nan
    return row


def _baseline_row(pset: pd.DataFrame, W: np.ndarray, ci: float, cat: str) -> dict:
    dec = (pset["base_new_tokens"] - 1).clip(lower=0).to_numpy(dtype=float)
    total = (pset["base_prefill_s"] + pset["base_decode_s"]).to_numpy(dtype=float)
    cols = np.column_stack([pset["base_decode_s"].to_numpy(dtype=float) * 1e3, dec,
                            pset["base_new_tokens"].to_numpy(dtype=float), total,
                            pset["base_prefill_s"].to_numpy(dtype=float), np.ones(len(pset))])

    def f(S):
        return {"tpot_ms": ratio(S[..., 0], S[..., 1]), "tokens_per_s": ratio(S[..., 2], S[..., 3]),
                "ttft_s": ratio(S[..., 4], S[..., 5])}

    point, boot = f(cols.sum(0)), f(W @ cols)
    row = {"method": "baseline", "draft_length": 0, "category": cat, "n_prompts": len(pset)}
    for k in ("ttft_s", "tpot_ms", "tokens_per_s"):
        lo, hi = percentile_ci(boot[k], ci) if len(pset) >= config.MIN_CI_PROMPTS else (np.nan, np.nan)
        row[k], row[f"{k}_lo"], row[f"{k}_hi"] = float(point[k]), float(lo), float(hi)
    row.update(speedup=1.0, speedup_lo=1.0, speedup_hi=1.0, base_tpot_ms=row["tpot_ms"], base_ttft_s=row["ttft_s"])
    return row


# ---- per-position acceptance ----

def position_acceptance(data, level: str = "overall", n_boot: int = config.BOOTSTRAP_SAMPLES,
                        seed: int = config.BOOTSTRAP_SEED, ci: float = config.CI_LEVEL) -> pd.DataFrame:
    """Acceptance by draft position i = 1 … γ, per method × γ (× category).

    Columns: method, draft_length, category, position, n_rounds (rounds that drafted ≥ i),
    p_ge (P(≥ i accepted | ≥ i drafted)) with p_ge_lo/p_ge_hi (bootstrap over prompts), share_ge
    (P(≥ i accepted) over all rounds: τ = 1 + Σ_i share_ge), cond_rate (P(accept i | reached i and
    drafted i): flat in i when acceptance is i.i.d.), beta_mean (mean β at position i), alpha (the
    i.i.d. α used: alpha_beta under sampling, else alpha_pos), iid_p_ge (= alpha ** i).
    """
    m = _as_measurements(data)
    r = m.rounds
    rows = []
    if r.empty:
        return pd.DataFrame(rows)
    cat_sets = [(ALL, r)] if level == "overall" else list(r.groupby("category", sort=True))
    for set_no, (cat, rc) in enumerate(cat_sets):
        for (method, g), df in rc.groupby(["method", "draft_length"], sort=True):
            rows.extend(_positions(m, df, int(g), method, cat, n_boot, np.random.default_rng([seed, set_no]), ci))
    return pd.DataFrame(rows)


def _positions(m: Measurements, df: pd.DataFrame, g: int, method: str, cat: str, n_boot, rng, ci) -> list[dict]:
    d = df["drafted"].to_numpy()
    a = df["accepted"].to_numpy()
    pids, prompt_idx = np.unique(df["prompt_id"].to_numpy(), return_inverse=True)
    n_p = len(pids)
    i = np.arange(1, g + 1)
    # Per prompt × position counts, so the bootstrap resamples prompts: (n_p, g) each.
    ge = np.zeros((n_p, g))
    drafted_ge = np.zeros((n_p, g))
    reached = np.zeros((n_p, g))
    np.add.at(ge, prompt_idx, (a[:, None] >= i) & (d[:, None] >= i))
    np.add.at(drafted_ge, prompt_idx, d[:, None] >= i)
    np.add.at(reached, prompt_idx, (a[:, None] >= i - 1) & (d[:, None] >= i))
    W = resample_weights(n_p, n_boot, rng)
    lo, hi = percentile_ci(ratio(W @ ge, W @ drafted_ge), ci)
    if n_p < config.MIN_CI_PROMPTS:
        lo, hi = np.full(g, np.nan), np.full(g, np.nan)
    beta = m.beta[df.index.to_numpy(), :g] if m.beta.shape[1] >= g else np.full((len(df), g), np.nan)
    with np.errstate(all="ignore"):
        beta_mean = np.array([np.nanmean(beta[:, j]) if np.isfinite(beta[:, j]).any() else np.nan for j in range(g)])
    tested = np.minimum(a + 1, d).sum()
    alpha_pos = float(ratio(a.sum(), tested))
    alpha_beta = float(np.nanmean(beta)) if np.isfinite(beta).any() else np.nan
    alpha = alpha_beta if (not m.greedy and np.isfinite(alpha_beta)) else alpha_pos
    n_rounds = drafted_ge.sum(0)
    p_ge = ratio(ge.sum(0), n_rounds)
    share_ge = ge.sum(0) / max(len(df), 1)
    cond = ratio(ge.sum(0), reached.sum(0))
    return [{"method": method, "draft_length": g, "category": cat, "position": int(k),
             "n_rounds": int(n_rounds[j]), "p_ge": float(p_ge[j]), "p_ge_lo": float(lo[j]), "p_ge_hi": float(hi[j]),
             "share_ge": float(share_ge[j]), "cond_rate": float(cond[j]), "beta_mean": float(beta_mean[j]),
             "alpha": alpha, "iid_p_ge": float(alpha ** k) if np.isfinite(alpha) else np.nan}
            for j, k in enumerate(i)]


# ---- losslessness ----

def losslessness(data) -> dict:
    """Evidence that speculation did not change the output. Greedy runs must reproduce the baseline's
    ids exactly (up to floating-point near-ties: bf16 can flip an argmax the baseline saw differently).
    Returns {greedy, temperature, dtype, applicable, runs, identical, identical_rate, by_method: {m: rate},
    first_divergence: [positions], first_divergence_median, note, lossy}. Runs of a lossy acceptance rule
    (medusa:typical) are left out of the counts, which are the evidence for the lossless methods, and
    reported apart in lossy: {method: {runs, identical_rate, first_divergence_median, new_tokens_mean}}."""
    m = _as_measurements(data)
    settings = m.manifest.get("settings", {})
    is_lossy = m.runs["method"].map(methods.lossy).astype(bool)
    runs = m.runs[~is_lossy]
    fd = runs["first_divergence"].dropna()
    out = {"greedy": m.greedy, "temperature": float(settings.get("temperature", 0.0)), "dtype": settings.get("dtype"),
           "applicable": m.greedy, "runs": int(len(runs)),
           "identical": int(runs["identical"].sum()),
           "identical_rate": float(runs["identical"].mean()) if len(runs) else float("nan"),
           "by_method": {k: float(v) for k, v in runs.groupby("method")["identical"].mean().items()},
           "first_divergence": [int(x) for x in fd],
           "first_divergence_median": float(fd.median()) if len(fd) else float("nan"),
           "lossy": {k: {"runs": int(len(g)), "identical_rate": float(g["identical"].mean()),
                         "first_divergence_median": float(g["first_divergence"].median()),
                         "new_tokens_mean": float(g["new_tokens"].mean())}
                     for k, g in m.runs[is_lossy].groupby("method")}}
    if not m.greedy:
        out["note"] = ("sampling run: outputs are random draws and are not expected to match token for token; "
                       "losslessness is a property of the output distribution — check it with a greedy run")
    elif settings.get("dtype") == "bfloat16":
        out["note"] = ("bfloat16: a verify pass over several tokens rounds differently from one-token steps, so a "
                       "near-tie can flip the argmax; divergences after dozens of tokens are expected, early or "
                       "frequent ones are not — float32 should match exactly")
    else:
        out["note"] = "float32 greedy: every run should match the baseline exactly"
    return out


# ---- one-call bundle ----

@dataclass(frozen=True)
class Analysis:
    """Everything measured from one results.json; hardware what-if and the decision build on it
    (specdec.hardware.whatif, specdec.decision.decide). Cache it: building it is the only slow part."""

    measurements: Measurements
    prompts: pd.DataFrame  # prompt_table
    summary: pd.DataFrame  # summary_table level overall
    summary_by_category: pd.DataFrame
    positions: pd.DataFrame  # position_acceptance overall
    positions_by_category: pd.DataFrame
    costs: costs.CostModel
    compute: pd.DataFrame  # costs.compute_overhead
    memory: dict  # costs.memory_overhead at the run's mean context (by_method: per method key)
    projection: pd.DataFrame  # projection.project_gamma overall
    projection_by_category: pd.DataFrame
    projection_error: pd.DataFrame  # at every γ run, overall and by category
    best_gamma: pd.DataFrame  # projection.best_gamma_table by category and overall
    lossless: dict

    @property
    def manifest(self) -> dict:
        return self.measurements.manifest

    @property
    def methods(self) -> list[str]:
        """Every method key measured, in display order (specdec.methods.order)."""
        return methods.order(self.measurements.runs["method"].unique())

    @property
    def drafters(self) -> dict[str, dict]:
        """{method key: drafter info} for every measured method (costs.drafters)."""
        return costs.drafters(self.manifest, self.methods)

    def label(self, key: str) -> str:
        return key if key == "baseline" else methods.label(key, self.drafters)


def analyze(results, n_boot: int = config.BOOTSTRAP_SAMPLES, seed: int = config.BOOTSTRAP_SEED) -> Analysis:
    """All measured tables for a results dict (or Measurements), in one call."""
    m = _as_measurements(results)
    summary = summary_table(m, level="overall", n_boot=n_boot, seed=seed)
    by_cat = summary_table(m, level="category", n_boot=n_boot, seed=seed)
    cm = costs.cost_model(m)
    proj = projection.project_gamma(m, cm, level="overall")
    proj_cat = projection.project_gamma(m, cm, level="category")
    err = pd.concat([projection.projection_error(proj, summary), projection.projection_error(proj_cat, by_cat)],
                    ignore_index=True)
    best = pd.concat([projection.best_gamma_table(proj), projection.best_gamma_table(proj_cat)], ignore_index=True)
    context = float(m.prompts["prompt_tokens"].mean() + m.manifest.get("settings", {}).get("max_new_tokens", 0))
    return Analysis(m, m.runs, summary, by_cat, position_acceptance(m, n_boot=n_boot, seed=seed),
                    position_acceptance(m, level="category", n_boot=n_boot, seed=seed), cm,
                    costs.compute_overhead(m),
                    costs.memory_overhead(m.manifest, context, keys=m.runs["method"].unique()), proj, proj_cat, err, best,
                    losslessness(m))
