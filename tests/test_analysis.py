import numpy as np
import pytest

import synthetic
from specdec.analysis import summary as analysis
from specdec.analysis.bootstrap import percentile_ci, prompts_needed, ratio, resample_weights
from specdec.errors import SpecdecError


def _hand_results():
    """Two prompts, one run each, numbers small enough to check by hand."""
    spec = synthetic.Spec([synthetic.Category("x", 1)], gammas=(2,))
    res = synthetic.make_results(spec)
    gen = {"text": "", "prefill_s": 0.1}
    p1 = {"id": "p1", "category": "a", "prompt": "", "prompt_tokens": 10,
          "baseline": {**gen, "tokens": [1, 2, 3, 4, 5], "new_tokens": 5, "decode_s": 0.4},
          "runs": [{**gen, "tokens": [1, 2, 3, 4, 5], "new_tokens": 5, "decode_s": 0.2, "method": "draft",
                    "draft_length": 2, "prefill_s": 0.12,
                    "rounds": [{"drafted": 2, "accepted": 2, "draft_tokens": [2, 3], "beta": [0.9, 0.8],
                                "draft_s": 0.02, "verify_s": 0.06},
                               {"drafted": 1, "accepted": 0, "draft_tokens": [9], "beta": [0.1],
                                "draft_s": 0.01, "verify_s": 0.05}]}]}
    p2 = {"id": "p2", "category": "b", "prompt": "", "prompt_tokens": 10,
          "baseline": {**gen, "tokens": [7, 7, 7], "new_tokens": 3, "decode_s": 0.2},
          "runs": [{**gen, "tokens": [7, 8, 7], "new_tokens": 3, "decode_s": 0.3, "method": "draft",
                    "draft_length": 2,
                    "rounds": [{"drafted": 1, "accepted": 1, "draft_tokens": [8], "beta": [0.5],
                                "draft_s": 0.01, "verify_s": 0.2}]}]}
    res["prompts"] = [p1, p2]
    return res


def test_prompt_table_by_hand():
    t = analysis.prompt_table(_hand_results()).set_index("prompt_id")
    a = t.loc["p1"]
    assert a["rounds"] == 2 and a["drafted"] == 3 and a["accepted"] == 2 and a["tested"] == 3
    assert a["tau"] == pytest.approx(2.0)  # (2+1 + 0+1) / 2
    assert a["rho"] == pytest.approx(2 / 3)
    assert a["alpha_pos"] == pytest.approx(2 / 3)
    assert a["alpha_beta"] == pytest.approx(0.6)
    assert a["tpot_ms"] == pytest.approx(50.0) and a["base_tpot_ms"] == pytest.approx(100.0)
    assert a["speedup"] == pytest.approx(2.0)
    assert a["overhead_s"] == pytest.approx(0.2 - 0.03 - 0.11)
    assert bool(a["identical"]) and np.isnan(a["first_divergence"])
    b = t.loc["p2"]
    assert not b["identical"] and b["first_divergence"] == 1
    assert b["speedup"] == pytest.approx(100.0 / 150.0)


def test_summary_is_ratio_of_totals_and_has_baseline_rows():
    s = analysis.summary_table(_hand_results(), n_boot=200)
    base = s[s["method"] == "baseline"].iloc[0]
    assert base["tpot_ms"] == pytest.approx(600.0 / 6)
    row = s[s["method"] == "draft"].iloc[0]
    assert row["n_prompts"] == 2
    assert row["tau"] == pytest.approx((3 + 1 + 2) / 3)
    assert row["speedup"] == pytest.approx((600.0 / 6) / (500.0 / 6))  # not the mean of per-prompt ratios
    assert row["identical_rate"] == 0.5 and row["first_divergence_median"] == 1
    for k in analysis.METRICS:
        assert f"{k}_lo" in s.columns and f"{k}_hi" in s.columns
    by_cat = analysis.summary_table(_hand_results(), level="category", n_boot=50)
    assert set(by_cat["category"]) == {"a", "b"}
    with pytest.raises(SpecdecError):
        analysis.summary_table(_hand_results(), level="prompt")


def test_empty_results_are_an_error():
    res = _hand_results()
    res["prompts"] = []
    with pytest.raises(SpecdecError):
        analysis.collect(res)


@pytest.fixture(scope="module")
def iid():
    spec = synthetic.Spec([synthetic.Category("a", 30, (0.7,)), synthetic.Category("b", 30, (0.7,))], gammas=(2, 4), max_new_tokens=128,
                  seed=1)
    return analysis.collect(synthetic.make_results(spec))


def test_three_alpha_estimates_agree_when_iid(iid):
    s = analysis.summary_table(iid, n_boot=300)
    for _, row in s[s["method"] == "draft"].iterrows():
        for k in ("alpha_beta", "alpha_pos", "alpha_tau"):
            assert row[k] == pytest.approx(0.7, abs=0.025), k
        assert row["alpha_iid"] is True and row["alpha_beta_comparable"]
        assert row["rho"] < row["alpha_pos"]  # ρ understates α (design.md)
        assert row["tau"] == pytest.approx(synthetic.true_tau((0.7,), row["draft_length"]), rel=0.04)
        assert row["tau_lo"] < row["tau"] < row["tau_hi"]


def test_disagreement_flags_non_iid_acceptance():
    spec = synthetic.Spec([synthetic.Category("a", 30, (0.95, 0.3))], gammas=(4,), seed=2)
    s = analysis.summary_table(synthetic.make_results(spec), n_boot=200)
    row = s[s["method"] == "draft"].iloc[0]
    assert row["alpha_spread"] > 0.05 and row["alpha_iid"] is False


def test_greedy_beta_is_not_compared():
    spec = synthetic.Spec([synthetic.Category("a", 10, (0.7,))], gammas=(2,), temperature=0.0)
    row = analysis.summary_table(synthetic.make_results(spec), n_boot=50).iloc[1]
    assert not row["alpha_beta_comparable"]


def test_position_acceptance_recovers_known_rates():
    rates = (0.9, 0.6, 0.4)
    spec = synthetic.Spec([synthetic.Category("a", 40, rates)], gammas=(4,), max_new_tokens=160, seed=4)
    pos = analysis.position_acceptance(synthetic.make_results(spec), n_boot=200)
    assert pos["position"].tolist() == [1, 2, 3, 4]
    surv = np.cumprod([synthetic.rate_at(rates, i) for i in range(1, 5)])
    assert np.allclose(pos["p_ge"], surv, atol=0.035)
    assert np.allclose(pos["cond_rate"], [0.9, 0.6, 0.4, 0.4], atol=0.05)
    assert np.allclose(pos["beta_mean"], [0.9, 0.6, 0.4, 0.4], atol=1e-6)
    assert (pos["p_ge_lo"] <= pos["p_ge"]).all() and (pos["p_ge"] <= pos["p_ge_hi"]).all()


def test_bootstrap_ci_coverage_on_known_ratio():
    """95% percentile CIs of a ratio of totals cover the true ratio ~95% of the time."""
    rng = np.random.default_rng(7)
    true_ratio, n, reps, hits = 2.0, 40, 400, 0
    for r in range(reps):
        den = rng.integers(5, 60, n).astype(float)  # rounds per prompt
        num = den * rng.gamma(4.0, true_ratio / 4.0, n)  # per-prompt τ with mean 2, independent of den
        W = resample_weights(n, 1000, np.random.default_rng([0, r]))
        lo, hi = percentile_ci(ratio(W @ num, W @ den))
        hits += lo <= true_ratio <= hi
    assert 0.91 <= hits / reps <= 0.985


def test_resample_weights_are_multinomial_counts():
    W = resample_weights(7, 500, np.random.default_rng(0))
    assert W.shape == (500, 7) and (W.sum(1) == 7).all()
    assert abs(W.mean() - 1.0) < 0.05
    assert prompts_needed(40, 0.1) == 160 and prompts_needed(40, 0.01) == 40
    assert np.isnan(prompts_needed(0, 0.1))


def test_bootstrap_is_deterministic():
    """Same data, same intervals. (Its speed is a benchmark's claim: benchmarks/brief.py times the
    analysis stage, bootstrap included, side by side with the rest of the brief.)"""
    spec = synthetic.Spec([synthetic.Category(f"c{i}", 20, (0.7,), spread=0.1) for i in range(5)],
                  methods=("draft", "prompt-lookup"), gammas=(2, 4, 6, 8), max_new_tokens=32)
    m = analysis.collect(synthetic.make_results(spec))
    a = analysis.summary_table(m)  # 100 prompts × 8 configs + baseline, 2000 resamples
    b = analysis.summary_table(m)
    assert a.equals(b) and a["speedup_lo"].notna().any()


def test_losslessness(tmp_path):
    spec = synthetic.Spec([synthetic.Category("a", 10, (0.7,))], gammas=(2, 4), temperature=0.0, diverge={3: 5, 7: 40})
    loss = analysis.losslessness(synthetic.make_results(spec))
    assert loss["applicable"] and loss["runs"] == 20 and loss["identical"] == 16
    assert sorted(loss["first_divergence"]) == [5, 5, 40, 40]
    sampled = analysis.losslessness(synthetic.make_results(synthetic.Spec([synthetic.Category("a", 3)], gammas=(2,))))
    assert not sampled["applicable"] and "distribution" in sampled["note"]


def test_analyze_bundle(iid):
    a = analysis.analyze(iid, n_boot=100)
    assert {"all", "a", "b"} <= set(a.best_gamma["category"])
    assert len(a.positions) == 2 + 4 and a.memory["draft_weights_gb"] == pytest.approx(2.0)
    assert a.compute["flops_ratio"].gt(1).all()
    assert a.compute["flops_ratio"].values == pytest.approx(a.compute["flops_ratio_theory"].values, rel=0.05)
