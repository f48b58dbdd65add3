"""Theory of the draft length γ: Leviathan et al. 2023 §3, and a projection from measured rounds.

Closed forms (i.i.d. acceptance α, cost ratio c = draft step / target step):

    τ(α, γ)        = (1 − α^(γ+1)) / (1 − α)                     Eq. (1), tokens per target pass
    speedup(α,γ,c) = (1 − α^(γ+1)) / ((1 − α)(γc + 1))           Thm 3.8, walltime improvement
    ops(α,γ,ĉ)     = (1 − α)(γĉ + γ + 1) / (1 − α^(γ+1))         Thm 3.11, factor of arithmetic ops

The paper's worked values, recomputed here (tests/test_projection.py holds them as a table):
α=0.8, c=0.05 → best γ=8, 3.09× (γ=7 gives 3.08×, γ=9 3.08×: the optimum is flat); α=0.6, c=0.1 →
γ=3, 1.67× (1.674); α=0.3, c=0.5 → every γ ≥ 1 is below 1× (γ=1: 0.867×), so speculation is off.
All three agree with the formula to the paper's two decimals.

Measured projection: Thm 3.8 assumes i.i.d. α and a verify pass that costs one target step. Here
τ(γ) comes from the rounds measured at the largest γ run, per position, with no i.i.d. assumption:
truncating each round at γ' gives exactly what that round would have done with γ' (the draft is
autoregressive, so its first γ' proposals do not depend on γ). τ(γ') = 1 + Σ_{i≤γ'} P(accepted ≥ i).
Beyond the largest γ run, fully accepted rounds are extended geometrically with the conditional
acceptance rate of the deepest positions measured (`tail_rate`). The round time uses the measured
cost model: d0 + drafted·t_draft + T_verify(drafted + 1) + overhead, averaged over the distribution of
drafted lengths (prompt lookup often proposes fewer than γ).

Public API
    expected_tokens(alpha, gamma) -> float | ndarray
    speedup(alpha, gamma, c) -> float | ndarray
    speedup_by_gamma(alpha, c, max_gamma) -> dict[int, float]
    best_gamma(alpha, c, max_gamma, min_speedup=1.0) -> (int | None, float)   None = off, speedup 1.0
    operations_factor(alpha, gamma, c_hat) -> float | ndarray
    alpha_from_tau(tau, gamma=None, drafted_hist=None) -> ndarray            inverse of Eq. (1)
    tail_rate(drafted, accepted) -> float
    acceptance_profile(drafted, accepted, gammas, prompt=None) -> DataFrame[gamma, tau, mean_drafted, drafted_hist]
    acceptance_replicates(drafted, accepted, gammas, prompt, W) -> (tau (B, G), mean_drafted (B, G))
    project_rounds(drafted, accepted, gammas, costs, method, prompt=None) -> DataFrame[gamma, tau, mean_drafted,
                                                                  round_ms, ms_per_token, speedup]
    project_gamma(measurements, costs, gammas=None, level="overall") -> DataFrame
    projection_error(projection, summary) -> DataFrame
    best_gamma_table(projection, min_speedup=1.0) -> DataFrame
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from specdec import config, methods
from specdec.errors import SpecdecError

ALL = "all"  # the category label of pooled (overall) rows


# ---- closed forms (Leviathan et al. 2023) ----

def expected_tokens(alpha, gamma):
    """τ = (1 − α^(γ+1)) / (1 − α), Eq. (1); γ + 1 at α = 1. Broadcasts over numpy arrays."""
    a = np.asarray(alpha, dtype=float)
    g = np.asarray(gamma, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = np.where(a < 1.0, (1.0 - a ** (g + 1.0)) / (1.0 - np.where(a < 1.0, a, 0.0)), g + 1.0)
    return tau if tau.ndim else float(tau)


def speedup(alpha, gamma, c):
    """Expected walltime improvement, Thm 3.8: τ / (γc + 1)."""
    s = np.asarray(expected_tokens(alpha, gamma)) / (np.asarray(gamma, dtype=float) * np.asarray(c, dtype=float) + 1.0)
    return s if s.ndim else float(s)


def speedup_by_gamma(alpha: float, c: float, max_gamma: int = 16) -> dict[int, float]:
    """{γ: Thm 3.8 speedup} for γ = 1 … max_gamma."""
    _check_alpha_c(alpha, c)
    if max_gamma < 1:
        raise SpecdecError(f"max gamma must be at least 1, got {max_gamma}")
    gammas = np.arange(1, max_gamma + 1)
    return {int(g): float(s) for g, s in zip(gammas, speedup(alpha, gammas, c))}


def best_gamma(alpha: float, c: float, max_gamma: int = 16, min_speedup: float = 1.0) -> tuple[int | None, float]:
    """(γ*, speedup) maximising Thm 3.8 over 1 … max_gamma; (None, 1.0) when no γ beats min_speedup
    (speculation off: the plain decoder's 1×)."""
    table = speedup_by_gamma(alpha, c, max_gamma)
    g = max(table, key=lambda k: (table[k], -k))  # ties → the shorter draft (less wasted compute)
    return (g, table[g]) if table[g] > min_speedup else (None, 1.0)


def operations_factor(alpha, gamma, c_hat):
    """Expected factor of total arithmetic operations vs plain decoding, Thm 3.11:
    (γĉ + γ + 1) / τ — every round runs γ + 1 target positions and γ draft ones for τ tokens.
    ĉ = draft FLOPs per token / target FLOPs per token (≈ parameter ratio)."""
    g = np.asarray(gamma, dtype=float)
    f = (g * np.asarray(c_hat, dtype=float) + g + 1.0) / np.asarray(expected_tokens(alpha, gamma))
    return f if f.ndim else float(f)


def _check_alpha_c(alpha: float, c: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise SpecdecError(f"alpha must be in [0, 1], got {alpha}")
    if not c >= 0.0:
        raise SpecdecError(f"c must be ≥ 0, got {c}")


def alpha_from_tau(tau, gamma=None, drafted_hist=None, iterations: int = 40) -> np.ndarray:
    """α that makes Eq. (1) give τ: the i.i.d.-model estimate of acceptance from tokens per pass.

    Either a fixed γ (every round drafted γ), or drafted_hist (..., K+1): counts of rounds by drafted
    length k = 0 … K, and then τ is matched to Σ_k h_k τ(α, k) / Σ_k h_k (rounds that drafted fewer
    tokens can emit fewer). Vectorised bisection; τ is increasing in α. NaN where τ is NaN.
    """
    tau = np.asarray(tau, dtype=float)
    if drafted_hist is None:
        if gamma is None:
            raise ValueError("give gamma or drafted_hist")
        hist = np.zeros(tau.shape + (int(gamma) + 1,))
        hist[..., int(gamma)] = 1.0
    else:
        hist = np.asarray(drafted_hist, dtype=float)
    total = hist.sum(-1)
    # Σ_k h_k τ(α, k) = Σ_k h_k Σ_{j≤k} α^j = Σ_j α^j · (Σ_{k≥j} h_k): one polynomial, Horner's rule.
    with np.errstate(divide="ignore", invalid="ignore"):
        coef = np.flip(np.cumsum(np.flip(hist, -1), -1), -1) / total[..., None]
    lo = np.zeros(tau.shape)
    hi = np.ones(tau.shape)
    for _ in range(iterations):
        mid = (lo + hi) / 2.0
        value = np.zeros(tau.shape)
        for j in range(coef.shape[-1] - 1, -1, -1):
            value = value * mid + coef[..., j]
        above = value > tau
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    out = (lo + hi) / 2.0
    return np.where(np.isfinite(tau) & (total > 0), out, np.nan)


# ---- projection from measured rounds ----

def tail_rate(drafted: np.ndarray, accepted: np.ndarray) -> float:
    """Conditional acceptance rate at the deepest half of the positions measured (i > γ_run / 2):
    accepted-at-i / reached-and-drafted-i, pooled. The rate used to extend rounds beyond γ_run."""
    drafted = np.asarray(drafted)
    accepted = np.asarray(accepted)
    g_run = int(drafted.max(initial=0))
    if g_run == 0:
        return float("nan")
    hits = trials = 0
    for i in range(g_run // 2 + 1, g_run + 1):
        trials += int(((accepted >= i - 1) & (drafted >= i)).sum())
        hits += int((accepted >= i).sum())
    return hits / trials if trials else float("nan")


def acceptance_profile(drafted, accepted, gammas, prompt=None) -> pd.DataFrame:
    """What the measured rounds (all at one γ_run = max drafted) would give at each γ in gammas.

    prompt (optional, one label per round): aggregate like the measured ratio of totals. A prompt
    whose rounds emit more tokens needs fewer rounds, so pooling rounds measured at γ_run would weight
    prompts as γ_run did; instead each prompt keeps its token count and gets tokens / τ_p(γ) rounds.

    Returns one row per γ: tau (tokens per target pass), mean_drafted, drafted_hist (list, share of
    rounds by drafted length 0 … γ), extrapolated (γ > γ_run)."""
    drafted = np.asarray(drafted, dtype=int)
    accepted = np.asarray(accepted, dtype=int)
    n = len(drafted)
    if prompt is None:
        p_idx, n_p = np.zeros(n, dtype=int), 1
    else:
        _, p_idx = np.unique(np.asarray(prompt), return_inverse=True)
        n_p = int(p_idx.max(initial=-1)) + 1
    g_run = int(drafted.max(initial=0))
    rate = tail_rate(drafted, accepted)
    rate = 0.0 if not np.isfinite(rate) else rate
    full = (drafted == g_run) & (accepted == g_run) & (g_run > 0)
    at_cap = drafted == g_run
    rounds_p = np.bincount(p_idx, minlength=n_p).astype(float)
    tokens_p = np.bincount(p_idx, weights=accepted + 1.0, minlength=n_p)  # what each prompt generated
    rows = []
    for g in gammas:
        g = int(g)
        if n == 0:
            rows.append({"gamma": g, "tau": np.nan, "mean_drafted": np.nan, "drafted_hist": [], "extrapolated": g > g_run})
            continue
        d = np.minimum(drafted, g)
        emit = np.minimum(accepted, g) + 1.0
        if g > g_run:
            d = np.where(at_cap, g, drafted)  # a proposal cut at γ_run would have gone on to γ
            emit = emit + full * float(sum(rate ** j for j in range(1, g - g_run + 1)))
        tau_p = np.bincount(p_idx, weights=emit, minlength=n_p) / rounds_p
        w = tokens_p / tau_p / rounds_p  # rounds this prompt would need at γ, per measured round
        hist = np.zeros(g + 1)
        np.add.at(hist, d, w[p_idx])
        hist /= hist.sum()
        rows.append({"gamma": g, "tau": float(tokens_p.sum() / (tokens_p / tau_p).sum()),
                     "mean_drafted": float((hist * np.arange(g + 1)).sum()),
                     "drafted_hist": hist.tolist(), "extrapolated": g > g_run})
    return pd.DataFrame(rows)


def acceptance_replicates(drafted, accepted, gammas, prompt, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap replicates of acceptance_profile's tau and mean_drafted, resampling prompts.

    Both are ratios of per-prompt sums — τ(γ) = Σ_p A_p / Σ_p R_p(γ) with A_p the tokens prompt p generated
    and R_p(γ) = A_p / τ_p(γ) the rounds it would need at γ; mean drafted = Σ_p D_p(γ) / Σ_p R_p(γ) — so a
    resample row of W (B, n_prompts; prompts in np.unique order) gives them in one product.
    Returns (tau (B, len(gammas)), mean_drafted (B, len(gammas)))."""
    drafted = np.asarray(drafted, dtype=int)
    accepted = np.asarray(accepted, dtype=int)
    _, p_idx = np.unique(np.asarray(prompt), return_inverse=True)
    n_p = int(p_idx.max(initial=-1)) + 1
    g_run = int(drafted.max(initial=0))
    rate = tail_rate(drafted, accepted)
    rate = 0.0 if not np.isfinite(rate) else rate
    full = (drafted == g_run) & (accepted == g_run) & (g_run > 0)
    at_cap = drafted == g_run
    rounds_p = np.bincount(p_idx, minlength=n_p).astype(float)
    A = np.bincount(p_idx, weights=accepted + 1.0, minlength=n_p)
    R, D = np.zeros((n_p, len(gammas))), np.zeros((n_p, len(gammas)))
    for j, g in enumerate(int(x) for x in gammas):
        d = np.minimum(drafted, g)
        emit = np.minimum(accepted, g) + 1.0
        if g > g_run:
            d = np.where(at_cap, g, drafted)
            emit = emit + full * float(sum(rate ** k for k in range(1, g - g_run + 1)))
        tau_p = np.bincount(p_idx, weights=emit, minlength=n_p) / rounds_p
        R[:, j] = A / tau_p
        D[:, j] = R[:, j] / rounds_p * np.bincount(p_idx, weights=d, minlength=n_p)
    WA, WR, WD = W @ A, W @ R, W @ D
    with np.errstate(divide="ignore", invalid="ignore"):
        return WA[:, None] / WR, WD / WR


def project_rounds(drafted, accepted, gammas, costs, method: str, prompt=None) -> pd.DataFrame:
    """acceptance_profile plus the measured cost model (specdec.costs.CostModel): per γ the round
    time Σ_k h_k (d0 + k·t_draft + T_verify(k+1)) + overhead, ms per token = round / τ, and
    speedup = τ · t_target / round (Thm 3.8 with measured costs in place of γc + 1)."""
    prof = acceptance_profile(drafted, accepted, gammas, prompt)
    overhead = costs.overhead_s.get(method, 0.0)
    round_s = []
    for hist in prof["drafted_hist"]:
        h = np.asarray(hist, dtype=float)
        k = np.arange(len(h))
        round_s.append(float((h * (costs.draft_s(method, k) + costs.verify_s(k))).sum() + overhead) if len(h) else np.nan)
    prof["round_ms"] = np.asarray(round_s) * 1e3
    prof["ms_per_token"] = prof["round_ms"] / prof["tau"]
    prof["speedup"] = prof["tau"] * costs.target_step_s * 1e3 / prof["round_ms"]
    return prof


def largest_gamma_run(runs: pd.DataFrame, method: str) -> int:
    """The largest γ `method` was run at. The one rule for every recommendation (the decision, the deployment
    verdict, the brief, the Explore page): no γ beyond it, because τ past it is extrapolated from the deepest
    positions measured, not measured. runs: one row per prompt × method × γ (columns method, draft_length)."""
    return int(runs.loc[runs["method"] == method, "draft_length"].max())


def gamma_grid(g_src: int, gammas=None, cap: int | None = None) -> list[int]:
    """The γ values to project: `gammas`, or 1 … max(PROJECTION_MAX_GAMMA, g_src); none above `cap`
    (the most a drafter can propose per round, e.g. K Medusa heads)."""
    gs = list(gammas) if gammas is not None else list(range(1, max(config.PROJECTION_MAX_GAMMA, g_src) + 1))
    return [g for g in gs if cap is None or g <= cap]


def project_gamma(measurements, costs, gammas=None, level: str = "overall") -> pd.DataFrame:
    """Projected τ and speedup for every γ in gammas (default 1 … max(PROJECTION_MAX_GAMMA, largest
    run)) per method, from the rounds of that method's largest γ run; level "category" adds one block
    per category (costs stay pooled: they belong to the hardware, acceptance to the prompts).

    Columns: method, category ("all" when pooled), gamma, gamma_source (the γ run used), tau,
    mean_drafted, round_ms, ms_per_token, speedup, extrapolated, measured (γ was run)."""
    rounds = measurements.rounds
    drafters = (measurements.manifest.get("models") or {}).get("drafters") or {}
    out = []
    for method, r_m in rounds.groupby("method", sort=True):
        g_src = int(r_m["draft_length"].max())
        run_gammas = set(int(g) for g in r_m["draft_length"].unique())
        gs = gamma_grid(g_src, gammas, methods.max_gamma(method, drafters))
        src = r_m[r_m["draft_length"] == g_src]
        groups = [(ALL, src)]
        if level == "category":
            groups = list(src.groupby("category", sort=True))
        for cat, r in groups:
            df = project_rounds(r["drafted"].to_numpy(), r["accepted"].to_numpy(), gs, costs, method,
                                r["prompt_id"].to_numpy())
            df.insert(0, "gamma_source", g_src)
            df.insert(0, "category", cat)
            df.insert(0, "method", method)
            df["measured"] = df["gamma"].isin(run_gammas)
            out.append(df.drop(columns=["drafted_hist"]))
    if not out:
        return pd.DataFrame(columns=["method", "category", "gamma_source", "gamma", "tau", "mean_drafted",
                                     "extrapolated", "round_ms", "ms_per_token", "speedup", "measured"])
    return pd.concat(out, ignore_index=True)


def projection_error(projection: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Projected minus measured τ and speedup at every γ that was run (same level: pass a category
    projection with a category summary). Columns: method, category, gamma, tau_projected,
    tau_measured, tau_error, speedup_projected, speedup_measured, speedup_error, speedup_rel_error."""
    proj = projection.loc[projection["measured"].astype(bool)]
    meas = summary[summary["method"] != "baseline"].rename(columns={"draft_length": "gamma"})
    if "category" not in meas.columns:
        meas = meas.assign(category=ALL)
    df = proj.merge(meas[["method", "category", "gamma", "tau", "speedup"]], on=["method", "category", "gamma"],
                    suffixes=("_projected", "_measured"))
    df["tau_error"] = df["tau_projected"] - df["tau_measured"]
    df["speedup_error"] = df["speedup_projected"] - df["speedup_measured"]
    df["speedup_rel_error"] = df["speedup_error"] / df["speedup_measured"]
    return df[["method", "category", "gamma", "tau_projected", "tau_measured", "tau_error",
               "speedup_projected", "speedup_measured", "speedup_error", "speedup_rel_error"]]


def best_gamma_table(projection: pd.DataFrame, min_speedup: float = 1.0) -> pd.DataFrame:
    """Per method × category the γ with the highest projected speedup; gamma is None ("off") when even
    that is ≤ min_speedup. Columns: method, category, gamma, speedup, tau, ms_per_token, off."""
    rows = []
    for (method, cat), df in projection.groupby(["method", "category"], sort=True):
        best = df.loc[df["speedup"].idxmax()] if df["speedup"].notna().any() else None
        off = best is None or not best["speedup"] > min_speedup
        rows.append({"method": method, "category": cat,
                     "gamma": None if off else int(best["gamma"]),
                     "speedup": np.nan if best is None else float(best["speedup"]),
                     "tau": np.nan if best is None else float(best["tau"]),
                     "ms_per_token": np.nan if best is None else float(best["ms_per_token"]),
                     "off": off})
    return pd.DataFrame(rows, columns=["method", "category", "gamma", "speedup", "tau", "ms_per_token", "off"])
