import json

import numpy as np
import pandas as pd
import pytest

import synthetic
from specdec import cli
from specdec.analysis import summary as analysis
from specdec.analysis import costs
from specdec.analysis import projection
from specdec.errors import SpecdecError

# Leviathan et al. 2023 worked values: (α, c, best γ or None for off, best speedup to the paper's 2 decimals)
WORKED = [
    (0.8, 0.05, 8, 3.09),
    (0.6, 0.1, 3, 1.67),
    (0.3, 0.5, None, 1.0),
]


@pytest.mark.parametrize("alpha,c,gamma,best", WORKED)
def test_paper_worked_values(alpha, c, gamma, best):
    g, s = projection.best_gamma(alpha, c, max_gamma=16)
    assert g == gamma
    assert round(s, 2) == best


def test_off_case_has_no_gamma_above_one():
    table = projection.speedup_by_gamma(0.3, 0.5, 16)
    assert max(table.values()) < 1.0
    assert table[1] == pytest.approx(0.91 / 0.7 / 1.5)


def test_closed_forms():
    assert projection.expected_tokens(1.0, 4) == 5.0
    assert projection.expected_tokens(0.0, 4) == 1.0
    assert projection.expected_tokens(0.5, 2) == pytest.approx(1.75)
    assert projection.speedup(0.5, 2, 0.25) == pytest.approx(1.75 / 1.5)
    a, g, ch = 0.7, 4, 0.1
    assert projection.operations_factor(a, g, ch) == pytest.approx((1 - a) * (g * ch + g + 1) / (1 - a ** (g + 1)))


def test_alpha_from_tau_inverts_eq1():
    alphas = np.array([0.0, 0.2, 0.55, 0.9, 0.99])
    tau = projection.expected_tokens(alphas, 5)
    assert np.allclose(projection.alpha_from_tau(tau, gamma=5), alphas, atol=1e-6)
    # Mixed drafted lengths: half the rounds drafted 1, half drafted 4.
    hist = np.array([0, 1, 0, 0, 1], dtype=float)
    tau_mix = (projection.expected_tokens(0.6, 1) + projection.expected_tokens(0.6, 4)) / 2
    assert projection.alpha_from_tau(tau_mix, drafted_hist=hist) == pytest.approx(0.6, abs=1e-6)


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(SpecdecError):
        projection.speedup_by_gamma(1.5, 0.1)
    with pytest.raises(SpecdecError):
        projection.speedup_by_gamma(0.5, -1)


def _simulate_rounds(rates, gamma, n, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.random((n, gamma))
    p = np.array([synthetic.rate_at(rates, i) for i in range(1, gamma + 1)])
    ok = u < p
    accepted = np.where(ok.all(1), gamma, ok.argmin(1))
    return np.full(n, gamma), accepted


def test_profile_matches_simulated_decoder_with_known_positions():
    rates = (0.9, 0.7, 0.5)  # not i.i.d.: position 1 easy, later positions harder
    drafted, accepted = _simulate_rounds(rates, 6, 40_000)
    prof = projection.acceptance_profile(drafted, accepted, range(1, 11))
    for g in range(1, 11):
        tau = prof.loc[prof["gamma"] == g, "tau"].item()
        assert tau == pytest.approx(synthetic.true_tau(rates, g), rel=0.01), g  # 7–10 are extrapolated
    assert prof["extrapolated"].tolist() == [g > 6 for g in range(1, 11)]
    assert projection.tail_rate(drafted, accepted) == pytest.approx(0.5, abs=0.02)
    # The i.i.d. closed form at the pooled α would get this wrong: the profile must not be Eq. (1).
    alpha = accepted.sum() / np.minimum(accepted + 1, drafted).sum()
    assert abs(projection.expected_tokens(alpha, 2) - synthetic.true_tau(rates, 2)) > 0.05


@pytest.fixture(scope="module")
def measured():
    spec = synthetic.Spec([synthetic.Category("a", 40, (0.9, 0.75, 0.6), spread=0.05)], methods=("draft", "prompt-lookup"),
                  gammas=(2, 4, 6), max_new_tokens=96, costs=synthetic.Costs(noise=0.03), seed=3)
    return analysis.analyze(synthetic.make_results(spec), n_boot=300)


def test_projection_error_small_at_every_gamma_run(measured):
    err = measured.projection_error
    overall = err[err["category"] == projection.ALL]
    assert sorted(overall["gamma"].unique()) == [2, 4, 6]
    assert set(overall["method"]) == {"draft", "prompt-lookup"}
    assert overall["speedup_rel_error"].abs().max() < 0.05
    # γ = 6 is the source: τ is reproduced exactly
    assert overall.loc[overall["gamma"] == 6, "tau_error"].abs().max() < 1e-9


def test_projection_agrees_with_known_costs(measured):
    p = measured.projection
    row = p[(p["method"] == "draft") & (p["gamma"] == 3)].iloc[0]
    c = synthetic.Costs(noise=0.03)
    assert row["speedup"] == pytest.approx(synthetic.true_speedup((0.9, 0.75, 0.6), 3, c), rel=0.06)
    cm = measured.costs
    assert cm.c["draft"] == pytest.approx(c.draft_s / c.target_s, rel=0.05)
    assert cm.verify_slope == pytest.approx(c.verify_slope, abs=0.02)
    assert cm.overhead_s["draft"] == pytest.approx(c.overhead_s, rel=0.2)


def test_best_gamma_table_marks_off():
    df = projection.project_rounds(np.array([2, 2, 2]), np.array([0, 0, 0]), [1, 2],
                                   _FlatCosts(), "draft")
    best = projection.best_gamma_table(df.assign(method="draft", category="all"))
    assert bool(best["off"].item()) and best["gamma"].item() is None


class _FlatCosts:
    target_step_s = 0.01
    draft_step_s = {"draft": 0.005}
    overhead_s = {"draft": 0.0}

    def draft_s(self, method, k):
        return self.draft_step_s[method] * np.asarray(k, dtype=float)

    def verify_s(self, k):
        return np.full(np.shape(k), 0.01)


def test_cli_project_json(capsys):
    assert cli.main(["project", "--alpha", "0.6", "--c", "0.1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["best_gamma"] == 3
    assert round(out["best_speedup"], 2) == 1.67
    assert set(out["by_gamma"]) == {str(g) for g in range(1, 17)}
    assert cli.main(["project", "--alpha", "0.3", "--c", "0.5", "--json", "--max-gamma", "4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["best_gamma"] is None and list(out["by_gamma"]) == ["1", "2", "3", "4"]


def test_cli_project_text_and_error(capsys):
    assert cli.main(["project", "--alpha", "0.8", "--c", "0.05"]) == 0
    assert "best: γ = 8" in capsys.readouterr().out
    assert cli.main(["project", "--alpha", "2", "--c", "0.05"]) == 2
    assert "alpha" in capsys.readouterr().err


def test_verify_curve_fallback_to_line():
    curve = pd.DataFrame({"drafted": [0, 4], "tokens": [1, 5], "n_rounds": [100, 2],
                          "verify_s": [0.01, 0.05], "verify_median_s": [0.01, 0.05], "ratio": [1.0, 5.0]})
    cm = costs.CostModel(0.01, {"draft": 0.002}, {"draft": 0.0}, curve, 1.0, 0.1)
    assert cm.verify_ratio(0) == pytest.approx(1.0)  # measured
    assert cm.verify_ratio(4) == pytest.approx(1.4)  # too few rounds → the line, not 5.0
    assert cm.c["draft"] == pytest.approx(0.2)


def test_probed_verify_lengths_replace_the_line_where_rounds_are_thin():
    """On a CPU the verify cost is a staircase in length (1–3 tokens ≈ 1.1 steps, 4–6 ≈ 2.05): a length the
    real rounds measured too rarely takes the probe's median over its one-token median, at this run's target
    step — not the line through the measured lengths, and not the probe where rounds are plenty."""
    curve = pd.DataFrame({"drafted": [0, 1, 3, 4, 6], "tokens": [1, 2, 4, 5, 7], "n_rounds": [100, 80, 90, 2, 70],
                          "verify_s": [0.010, 0.011, 0.011, 0.05, 0.028], "ratio": [1.0, 1.1, 1.1, 5.0, 2.8]})
    curve = curve.assign(verify_median_s=curve["verify_s"], source="rounds")
    # the probe's machine is twice as slow as the rounds' (ratios cancel it); one spike among its 1-token passes
    probe = {"drafted": [0] * 8 + [3] * 8 + [4] * 8 + [5] * 8,
             "verify_s": [0.02] * 7 + [0.5] + [0.03] * 8 + [0.041] * 8 + [0.042] * 8}
    out = costs.with_probe(curve, probe, t_target=0.01)
    assert list(out["drafted"]) == [0, 1, 3, 4, 5, 6]
    assert list(out["source"]) == ["rounds", "rounds", "rounds", "probe", "probe", "rounds"]
    cm = costs.CostModel(0.01, {"draft": 0.002}, {"draft": 0.0}, out, 1.0, 0.1)
    assert cm.verify_ratio(3) == pytest.approx(1.1)  # 90 rounds: measured, the probe's 1.5 ignored
    assert cm.verify_ratio(4) == pytest.approx(2.05)  # 2 rounds: the probe, not 5.0 or the line's 1.4
    assert cm.verify_ratio(5) == pytest.approx(2.1)
    assert float(cm.verify_s(4)) == pytest.approx(0.0205)
    assert cm.verify_ratio(2) == pytest.approx(1.2)  # neither measured nor probed: the line
    # without a one-token reference a probe cannot be priced: the curve stays as it was
    assert costs.with_probe(curve, {"drafted": [4] * 8, "verify_s": [0.04] * 8}, 0.01).equals(curve)
