"""The decision's tests: one-sided speedup tests, a step-down over the family, and a permutation test that
categories differ.

A verdict picks the best of several configurations (method × γ) and, for GO-SEGMENTS, the best of several
categories: testing each at 2.5% one-sided and keeping the winners finds gains by chance (audited: with one
true speedup in every category, 21/40 synthetic runs came out GO-SEGMENTS). So:

    H0(g, c): speedup of configuration c on prompt set g ≤ threshold, against > threshold; statistic
              t = (log ŝ − log threshold) / se, p-value from the studentized bootstrap on the log ratio of
              sums (bootstrap.log_ratio_t), the same resamples as the summary's intervals.
    Family    every hypothesis of one family — the pooled set × configurations for GO, categories ×
              configurations for segments — goes through Westfall & Young's min-P step-down (1993; the
              resampling form Romano & Wolf 2005 prove): each resample's t* is turned into the p-value it
              would have had (its rank in its own hypothesis's t* distribution), and a hypothesis is rejected
              when its p-value is below the α quantile of the smallest such p over the hypotheses not yet
              rejected, row by row. It controls the chance of any false "on" at α like Holm, but sees that
              γ = 1 … 8 of one method are nearly one test: Holm's α/m cannot even be reached with B = 2000
              resamples once m > 50 (p ≥ 1/2001 > 0.025/51) — a traced run's 3 methods × 8 γ × 5 categories
              is 120 tests, and every category came out "unclear" however clear its gain. Ranks, not t*
              itself: at 8 prompts a resample of 3 distinct prompts has se* ≈ 0, and the max of t* over 120
              tests measured a 97.5% quantile of 25.7 against a single test's 2.0; the max of t* scaled by the
              sample's se (max-T on the basic bootstrap) instead let through 13% false GO at the bar
              (benchmarks/decision_sim.py). Resamples of different prompt sets are drawn independently, so
              row b of each is a joint draw.
    Categories differ: Cochran's Q of the category log speedups (inverse-variance weights, linearised
              variances), maximised over configurations; its p-value from permuting category labels
              over prompts (the same permutation for every configuration, so the max is calibrated).
              Exact under exchangeable categories, whatever the speedup distribution.

Public API
    speedup_tests(measurements, threshold, configs, categories, n_boot, seed, level) -> (DataFrame, T*)
        columns: category, method, draft_length, n_prompts, speedup, lo, hi, p_value (one test alone), t_obs;
        T*: (n_boot, rows) the resampled statistics t*, NaN where a resample has no information
    stepdown(t_obs, t_star, alpha, df=None) -> (ndarray[bool] rejected, ndarray adjusted p-values)
    family(tests, t_star, alpha) -> the same for rows of speedup_tests (a family of one: its own test)
    holm(p_values, alpha) -> ndarray[bool]          rejected hypotheses (benchmarks/decision_sim.py's "holm" column)
    heterogeneity(measurements, configs, categories, n_perm, seed) -> dict(statistic, p_value, categories,
        permutations, config)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from specdec import config
from specdec.analysis.bootstrap import log_ratio_t, resample_weights
from specdec.analysis.summary import ALL, _sum_matrix, speedup_sums


def holm(p_values, alpha: float) -> np.ndarray:
    """Holm's step-down: sort p ascending, reject while p_(j) ≤ α / (m − j) (j = 0 …); NaN never rejects."""
    p = np.asarray(p_values, dtype=float)
    out = np.zeros(len(p), dtype=bool)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    for j, i in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        if p[i] > alpha / (m - j):
            break
        out[i] = True
    return out


def _resample_p(t_star: np.ndarray) -> np.ndarray:
    """(B, m) t* → the p-value each would have had as an observed t, within its own column:
    #{b': t*_b' ≥ t*_b} / (B_k + 1), B_k the column's finite resamples; NaN stays NaN."""
    P = np.full(t_star.shape, np.nan)
    for k in range(t_star.shape[1]):
        col = t_star[:, k]
        ok = np.isfinite(col)
        srt = np.sort(col[ok])
        P[ok, k] = (len(srt) - np.searchsorted(srt, col[ok], side="left")) / (len(srt) + 1)
    return P


def stepdown(t_obs, t_star, alpha: float, df=None) -> tuple[np.ndarray, np.ndarray]:
    """Westfall–Young min-P step-down. t_obs: (m,) observed statistics (NaN: not testable, never rejected,
    left out of the family); t_star: (B, m) their bootstrap replicates centred at the estimate (NaN: no
    information in that resample). p_k = (1 + #{t*_k ≥ t_obs_k}) / (B_k + 1) (the test alone), P*_bk the
    same for t*_bk (_resample_p). Adjusted p of the i-th smallest p: max over i' ≤ i of
    (1 + #{b: min_{k ∈ R_i'} P*_bk ≤ p_(i')}) / (B' + 1), R_i' the hypotheses ranked i' and after, B' the
    resamples with information on R_i'. Rejected: adjusted p ≤ α.

    df: (m,) degrees of freedom (prompts − 1): every p (observed and resampled) is then at least Student's
    t tail at df, a floor for small prompt sets. A family reaches into tails of 0.025/50: at 8 prompts the
    bootstrap-t p-value fell at or below 0.0005 in 0.13% of null runs (2.6× too often; Student's t alone 3.4×),
    the larger of the two in 0.07% (benchmarks/decision_sim.py --calibration)."""
    t = np.asarray(t_obs, dtype=float)
    T = np.asarray(t_star, dtype=float).reshape(len(t_star), len(t))
    p_adj = np.full(len(t), np.nan)
    ok = np.isfinite(T)
    p = np.array([(1 + np.count_nonzero(T[ok[:, k], k] >= t[k])) / (np.count_nonzero(ok[:, k]) + 1)
                  if np.isfinite(t[k]) else np.nan for k in range(len(t))])
    P = _resample_p(T)
    if df is not None:
        d = np.asarray(df, dtype=float)
        p = np.maximum(p, stats.t.sf(t, d))
        P = np.maximum(P, stats.t.sf(T, d[None, :]))
    P = np.where(ok, P, np.inf)
    order = [k for k in np.argsort(np.where(np.isfinite(p), p, np.inf), kind="stable") if np.isfinite(p[k])]
    step = np.empty(len(order))
    low = np.full(len(T), np.inf)
    for j in range(len(order) - 1, -1, -1):  # min over R_j = order[j:], built from the end
        low = np.minimum(low, P[:, order[j]])
        seen = low[np.isfinite(low)]
        step[j] = (1 + np.count_nonzero(seen <= p[order[j]])) / (len(seen) + 1)
    p_adj[order] = np.maximum.accumulate(step) if len(order) else step
    return np.isfinite(p_adj) & (p_adj <= alpha), p_adj


def family(tests: pd.DataFrame, t_star: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows of speedup_tests() forming one family, and their columns of T*: stepdown() with the Student-t
    floor at each test's prompts − 1; a family of one testable hypothesis is its test alone (p_value,
    exactly as its interval says)."""
    alone, t_obs = tests["p_value"].to_numpy(dtype=float), tests["t_obs"].to_numpy(dtype=float)
    if np.count_nonzero(np.isfinite(t_obs)) <= 1:
        return np.isfinite(alone) & (alone <= alpha), alone
    return stepdown(t_obs, t_star, alpha, df=tests["n_prompts"].to_numpy(dtype=float) - 1)


def speedup_tests(m, threshold: float, configs, categories=(), n_boot: int = config.BOOTSTRAP_SAMPLES,
                  seed: int = config.BOOTSTRAP_SEED, level: float = config.CI_LEVEL) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per prompt set (ALL, then each of `categories`) × configuration (method, γ) in `configs`:
    the decode speedup, its bootstrap-t interval, the one-sided p-value of H0: speedup ≤ threshold tested
    alone and its statistic t_obs; with the (n_boot, rows) matrix of resampled t* for stepdown().
    Resample weights are seeded as summary.summary_table seeds them, so p < (1 − level)/2 ⇔ lo > threshold."""
    runs = m.runs.reset_index(drop=True)
    S_all = _sum_matrix(runs)
    all_cats = sorted(m.prompts["category"].unique())
    sets = [(ALL, 0, m.prompts)] + [(c, all_cats.index(c), m.prompts[m.prompts["category"] == c])
                                    for c in categories]
    rows, t_star = [], []
    for cat, set_no, pset in sets:
        ids = pset["prompt_id"].tolist()
        pos = {pid: i for i, pid in enumerate(ids)}
        W = resample_weights(len(ids), n_boot, np.random.default_rng([seed, set_no]))
        sub = runs[runs["prompt_id"].isin(pos)]
        for (method, g), df in sub.groupby(["method", "draft_length"], sort=True):
            if (method, int(g)) not in configs:
                continue
            X, signs = speedup_sums(S_all[df.index.to_numpy()])
            t = log_ratio_t(X, signs, W[:, [pos[p] for p in df["prompt_id"]]], level, threshold)
            rows.append({"category": cat, "method": method, "draft_length": int(g), "n_prompts": len(df),
                         "speedup": t["estimate"], "lo": t["lo"], "hi": t["hi"], "p_value": t["p_value"],
                         "t_obs": t["t_obs"]})
            t_star.append(t["t_star"])
    table = pd.DataFrame(rows, columns=["category", "method", "draft_length", "n_prompts", "speedup", "lo", "hi",
                                        "p_value", "t_obs"])
    return table, (np.column_stack(t_star) if t_star else np.zeros((n_boot, 0)))


def _cochran_q(X: np.ndarray, signs, labels: np.ndarray, n_groups: int) -> np.ndarray:
    """Cochran's Q of the per-group log ratio Σ_k s_k log(Σ_{i∈g} X_ik), for each row of labels (P, n).
    Variance of a group's log ratio: Σ_{i∈g} u_i², u_i = Σ_k s_k X_ik / T_gk (linearised; Σ_{i∈g} u_i = 0)."""
    s = np.asarray(signs, dtype=float)
    onehot = (labels[..., None] == np.arange(n_groups)).astype(float)  # (P, n, G)
    T = np.einsum("png,nk->pgk", onehot, X)
    cross = np.einsum("png,nk,nl->pgkl", onehot, X, X)
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.log(T) @ s  # (P, G)
        a = s / T
        v = np.einsum("pgk,pgkl,pgl->pg", a, cross, a)
        w = 1.0 / np.maximum(v, 1e-12)
        mean = (w * theta).sum(1, keepdims=True) / w.sum(1, keepdims=True)
        return (w * (theta - mean) ** 2).sum(1)


def heterogeneity(m, configs, categories, n_perm: int = config.HETEROGENEITY_PERMUTATIONS,
                  seed: int = config.BOOTSTRAP_SEED) -> dict:
    """Do the speedups differ between `categories`? Permutation test of max over configurations of Cochran's
    Q (prompts of other categories left out). p_value = (1 + #{Q*_max ≥ Q_max}) / (n_perm + 1); NaN with
    fewer than two categories. config: the (method, γ) with the largest Q."""
    cats = list(categories)
    out = {"statistic": float("nan"), "p_value": float("nan"), "categories": cats, "permutations": n_perm,
           "config": None}
    if len(cats) < 2:
        return out
    pool = m.prompts[m.prompts["category"].isin(cats)].reset_index(drop=True)
    label = pool["category"].map({c: i for i, c in enumerate(cats)}).to_numpy()
    pos = {pid: i for i, pid in enumerate(pool["prompt_id"])}
    rng = np.random.default_rng([seed, 7])
    perms = np.vstack([np.arange(len(pool))] + [rng.permutation(len(pool)) for _ in range(n_perm)])
    runs = m.runs.reset_index(drop=True)
    S_all = _sum_matrix(runs)
    q_max = np.full(n_perm + 1, -np.inf)
    best = None
    for (method, g), df in runs[runs["prompt_id"].isin(pos)].groupby(["method", "draft_length"], sort=True):
        if (method, int(g)) not in configs:
            continue
        X, signs = speedup_sums(S_all[df.index.to_numpy()])
        idx = np.array([pos[p] for p in df["prompt_id"]])
        # Permuted label of the prompt at pool position j: the original label of prompt perm[j]; a
        # configuration run on part of the pool keeps its own prompts and takes their permuted labels.
        q = _cochran_q(X, signs, label[perms[:, idx]], len(cats))
        q = np.where(np.isfinite(q), q, -np.inf)
        if best is None or q[0] > q_max[0]:
            best = (method, int(g))
        q_max = np.maximum(q_max, q)
    if best is None or not np.isfinite(q_max[0]):
        return out
    out.update(statistic=float(q_max[0]), p_value=float((1 + np.count_nonzero(q_max[1:] >= q_max[0])) / (n_perm + 1)),
               config=list(best))
    return out
