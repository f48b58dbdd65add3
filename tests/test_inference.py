"""Intervals that cover and tests that do not find gains by chance (specdec.analysis.bootstrap, inference)."""

import numpy as np
import pandas as pd
import pytest

import synthetic
from specdec import config
from specdec.analysis import inference
from specdec.analysis import summary as analysis
from specdec.analysis.bootstrap import log_ratio_t, resample_weights

SIGNS = (1, -1, -1, 1)


def _draw(rng, n, center=1.2, sigma=0.3):
    tok = rng.integers(16, 257, n).astype(float)
    s = np.exp(np.log(center) + sigma * rng.standard_normal(n))
    base = tok * np.exp(np.log(40.0) + 0.15 * rng.standard_normal(n))
    return np.column_stack([base, tok, base / s, tok])


def test_bootstrap_t_covers_where_percentile_did_not():
    """n = 12 skewed ratios: bootstrap-t on the log ratio covers ≥ 92% (percentile measured 89–90% here)."""
    rng = np.random.default_rng(3)
    big = _draw(np.random.default_rng(99), 400_000)
    true = float(np.exp(np.asarray(SIGNS) @ np.log(big.sum(0))))
    hits, reps = 0, 400
    for r in range(reps):
        t = log_ratio_t(_draw(rng, 12), SIGNS, resample_weights(12, 1000, np.random.default_rng([1, r])))
        hits += t["lo"] <= true <= t["hi"]
    assert hits / reps >= 0.92


def test_p_value_agrees_with_the_interval():
    rng = np.random.default_rng(5)
    X = _draw(rng, 20, center=1.3, sigma=0.2)
    W = resample_weights(20, 2000, np.random.default_rng(0))
    t = log_ratio_t(X, SIGNS, W, threshold=1.0)
    assert t["lo"] < t["estimate"] < t["hi"]
    for thr in (t["lo"] * 0.99, t["lo"] * 1.01):  # just below the bound: p < 2.5%; just above: p > 2.5%
        p = log_ratio_t(X, SIGNS, W, threshold=thr)["p_value"]
        assert (p < 0.025) == (thr < t["lo"]), (thr, t["lo"], p)
    assert np.isnan(log_ratio_t(X[:1], SIGNS, W[:, :1])["lo"])


def test_holm_step_down():
    assert inference.holm([0.01, 0.04, 0.03], 0.05).tolist() == [True, False, False]  # 0.03 > 0.05/2
    assert inference.holm([0.01, 0.02, 0.04], 0.05).tolist() == [True, True, True]
    assert inference.holm([np.nan, 0.001], 0.05).tolist() == [False, True]


def _tests(X, thr, copies=1, seed=0):
    t = log_ratio_t(X, SIGNS, resample_weights(len(X), 2000, np.random.default_rng(seed)), threshold=thr)
    rows = pd.DataFrame({"p_value": [t["p_value"]] * copies, "t_obs": [t["t_obs"]] * copies, "n_prompts": len(X)})
    return t, rows, np.repeat(t["t_star"][:, None], copies, 1)


def test_a_family_of_one_is_the_bootstrap_t_test():
    X = _draw(np.random.default_rng(5), 20, center=1.3, sigma=0.2)
    for thr in (1.1, 1.25):
        t, rows, Z = _tests(X, thr)
        rejected, p = inference.family(rows, Z, 0.025)
        assert p[0] == t["p_value"] and rejected[0] == (t["p_value"] <= 0.025) == (t["lo"] > thr)


def test_the_family_pays_nothing_for_copies_where_holm_cannot_pass():
    """γ = 1 … 8 of one method are nearly one test: 120 copies of a clear win are still a clear win, while
    Holm's first bar 0.025/120 lies below the smallest p-value 2000 resamples can give."""
    t, rows, Z = _tests(_draw(np.random.default_rng(6), 12, center=1.6, sigma=0.15), 1.05, copies=120, seed=1)
    assert t["p_value"] < 0.001
    rejected, p = inference.family(rows, Z, 0.025)
    assert rejected.all() and p.max() < 0.025
    assert not inference.holm(rows["p_value"], 0.025).any()


def test_stepdown_controls_the_familywise_error():
    """Ten independent true nulls, t* and t_obs from the same N(0, 1): any rejection ≤ α (+ Monte-Carlo error);
    one true effect among them is still found."""
    rng = np.random.default_rng(8)
    alpha, m, trials = 0.05, 10, 400
    false = found = 0
    for _ in range(trials):
        t_obs = rng.standard_normal(m)
        rejected, _ = inference.stepdown(t_obs, rng.standard_normal((1000, m)), alpha)
        false += rejected.any()
        t_obs[0] = 5.0
        rejected, _ = inference.stepdown(t_obs, rng.standard_normal((1000, m)), alpha)
        found += rejected[0]
    assert false / trials <= alpha + 2.5 * np.sqrt(alpha * (1 - alpha) / trials)
    assert found == trials
    assert inference.stepdown([np.nan, 9.0], rng.standard_normal((100, 2)), alpha)[0].tolist() == [False, True]


def test_no_interval_below_eight_prompts():
    res = synthetic.make_results(synthetic.Spec([synthetic.Category("a", config.MIN_CI_PROMPTS - 1, (0.8,))], gammas=(2,)))
    row = analysis.summary_table(res, n_boot=200).iloc[1]
    assert row["speedup"] > 1 and np.isnan(row["speedup_lo"]) and np.isnan(row["speedup_hi"])


def test_heterogeneity_finds_real_differences_only():
    same = synthetic.Spec([synthetic.Category(c, 12, (0.8,), spread=0.1) for c in ("a", "b", "c")], gammas=(2, 4), seed=31,
                  costs=synthetic.Costs(noise=0.1))
    diff = synthetic.Spec([synthetic.Category("a", 12, (0.9,)), synthetic.Category("b", 12, (0.2,))], gammas=(2, 4), seed=32)
    m = analysis.collect(synthetic.make_results(diff))
    cfgs = {("draft", 2), ("draft", 4)}
    assert inference.heterogeneity(m, cfgs, ["a", "b"], n_perm=199)["p_value"] <= 0.01
    m = analysis.collect(synthetic.make_results(same))
    h = inference.heterogeneity(m, cfgs, ["a", "b", "c"], n_perm=199)
    assert 0 < h["p_value"] <= 1 and h["config"] in ([*c] for c in cfgs)
    assert np.isnan(inference.heterogeneity(m, cfgs, ["a"])["p_value"])


@pytest.mark.parametrize("seed", range(3))
def test_identical_categories_do_not_make_segments(seed):
    """One true acceptance in every category: the verdict is about all traffic, never GO-SEGMENTS
    by chance (the simulation in benchmarks/decision_sim.py measures the rate: ≤ 5%)."""
    from specdec.analysis import decision
    spec = synthetic.Spec([synthetic.Category(c, 10, (0.7,), spread=0.2) for c in ("a", "b", "c")], gammas=(2, 4, 6),
                  costs=synthetic.Costs(noise=0.25), seed=40 + seed)
    m = analysis.collect(synthetic.make_results(spec))
    j = decision.judge(m, analysis.summary_table(m, n_boot=400), analysis.summary_table(m, level="category", n_boot=400),
                       n_boot=400)
    assert j["heterogeneity"]["p_value"] > config.HETEROGENEITY_ALPHA and not j["heterogeneity"]["differ"]
    assert j["verdict"] == "GO"  # every category follows the pooled result, on alone or "on (pooled)"
    assert {s["status"] for s in j["categories"]} <= {"on", "on (pooled)"}
