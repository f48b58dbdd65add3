"""The decision's tests: one-sided speedup tests, Holm's step-down, and a permutation test that categories differ.

A verdict picks the best of several configurations (method × γ) and, for GO-SEGMENTS, the best of several
categories: testing each at 2.5% one-sided and keeping the winners finds gains by chance (audited: with one
true speedup in every category, 21/40 synthetic runs came out GO-SEGMENTS). So:

    H0(g, c): speedup of configuration c on prompt set g ≤ threshold, against > threshold; p-value from the
              studentized bootstrap on the log ratio of sums (bootstrap.log_ratio_t), the same resamples
              as the summary's intervals.
    Holm      (Holm 1979) over every hypothesis of one family — the pooled set × configurations for GO,
              categories × configurations for segments — controls the chance of any false "on" at α.
    Categories differ: Cochran's Q of the category log speedups (inverse-variance weights, linearised
              variances), maximised over configurations; its p-value from permuting category labels
              over prompts (the same permutation for every configuration, so the max is calibrated).
              Exact under exchangeable categories, whatever the speedup distribution.

Public API
    speedup_tests(measurements, threshold, configs, categories, n_boot, seed, level) -> DataFrame
        columns: category, method, draft_length, n_prompts, speedup, lo, hi, p_value
    holm(p_values, alpha) -> ndarray[bool]          rejected hypotheses
    heterogeneity(measurements, configs, categories, n_perm, seed) -> dict(statistic, p_value, categories,
        permutations, config)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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


def speedup_tests(m, threshold: float, configs, categories=(), n_boot: int = config.BOOTSTRAP_SAMPLES,
                  seed: int = config.BOOTSTRAP_SEED, level: float = config.CI_LEVEL) -> pd.DataFrame:
    """One row per prompt set (ALL, then each of `categories`) × configuration (method, γ) in `configs`:
    the decode speedup, its bootstrap-t interval and the one-sided p-value of H0: speedup ≤ threshold.
    Resample weights are seeded as summary.summary_table seeds them, so p < (1 − level)/2 ⇔ lo > threshold."""
    runs = m.runs.reset_index(drop=True)
    S_all = _sum_matrix(runs)
    all_cats = sorted(m.prompts["category"].unique())
    sets = [(ALL, 0, m.prompts)] + [(c, all_cats.index(c), m.prompts[m.prompts["category"] == c])
                                    for c in categories]
    rows = []
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
                         "speedup": t["estimate"], "lo": t["lo"], "hi": t["hi"], "p_value": t["p_value"]})
    return pd.DataFrame(rows, columns=["category", "method", "draft_length", "n_prompts", "speedup", "lo", "hi",
                                       "p_value"])


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
