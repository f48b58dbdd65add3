"""False GO and false GO-SEGMENTS rates of the decision, on synthetic runs with a known answer.

    nice -n 10 python benchmarks/decision_sim.py [--trials 400] [--only 4,5,6]

About 1–4 s per trial on a 2-core CPU (the product's own summary, tests and permutation test each time).

Each trial builds a results dict whose per-prompt decode speedups are drawn around a known truth (every
configuration the same true pooled speedup; prompts share a random effect across configurations, so the
configurations are correlated the way γ = 2, 4, 6 of one draft model are), runs the product's own
verdict (specdec.analysis.decision.judge on summary_table — what decide() uses) and counts:

    at the bar      true pooled speedup exactly 1.05 = MIN_SPEEDUP_LO: any GO is false (nominal ≤ 2.5%)
    identical cats  true speedup 1.10 in every category: any GO-SEGMENTS is false (target ≤ 5%)
    one clear cat   one category at 1.5×, the rest at 1.0: how often that category comes out on (power)

"before" re-applies the rule the product used until issue 18, on the same trials: percentile intervals,
a configuration "on" when its lower bound clears the bar, the best of the configurations picked without
correction, any category "on" on its own making GO-SEGMENTS. "holm" is the product's rule with Holm's
correction in place of the step-down (issue 18 to issue 15's traced runs), on the same trials too.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specdec import config  # noqa: E402
from specdec.analysis import decision, inference  # noqa: E402
from specdec.analysis import summary as analysis  # noqa: E402
from specdec.analysis.bootstrap import log_ratio_t, percentile_ci, ratio, resample_weights  # noqa: E402

SIGMA_PROMPT, SIGMA_CONFIG = 0.20, 0.08  # log-speedup spread between prompts, and per configuration


def _draw(rng, n, n_cfg, mu):
    tok = np.clip(np.exp(np.log(64) + 0.6 * rng.standard_normal(n)), 16, 256).round()
    base_ms = tok * np.exp(np.log(40.0) + 0.15 * rng.standard_normal(n))
    logs = mu + SIGMA_PROMPT * rng.standard_normal(n)[:, None] + SIGMA_CONFIG * rng.standard_normal((n, n_cfg))
    return tok, base_ms, np.exp(logs)


def calibrate(true_speedup: float, n_cfg: int) -> float:
    """μ such that the population ratio of sums Σ base / Σ (base / s) equals true_speedup."""
    tok, base, s = _draw(np.random.default_rng(2024), 1_000_000, 1, 0.0)
    return float(np.log(true_speedup) - np.log(base.sum() / (base / s[:, 0]).sum()))


def make_results(rng, n, cats, gammas, mu) -> dict:
    """mu: the log-speedup centre, one for all categories or {category: centre}."""
    mus = np.array([mu[cats[i % len(cats)]] if isinstance(mu, dict) else mu for i in range(n)])
    tok, base_ms, s = _draw(rng, n, len(gammas), mus[:, None])
    prompts = []
    for i in range(n):
        t = int(tok[i])
        ids = list(range(t))
        base = {"tokens": ids, "text": "x", "new_tokens": t, "prefill_s": 0.1, "decode_s": base_ms[i] / 1e3}
        runs = []
        for j, g in enumerate(gammas):
            dec = base_ms[i] / s[i, j] / 1e3
            rounds = [{"drafted": g, "accepted": g // 2, "draft_tokens": [7] * g, "beta": None,
                       "draft_s": 0.2 * dec, "verify_s": 0.7 * dec}]
            runs.append({"tokens": ids, "text": "x", "new_tokens": t, "prefill_s": 0.12, "decode_s": dec,
                         "method": "draft", "draft_length": g, "rounds": rounds})
        prompts.append({"id": f"p{i}", "category": cats[i % len(cats)], "prompt": "p", "prompt_tokens": 50,
                        "baseline": base, "runs": runs})
    manifest = {"settings": {"temperature": 0.0, "dtype": "float32", "max_new_tokens": 64}, "models": {}}
    return {"schema_version": 1, "manifest": manifest, "prompts": prompts}


def before(m, th: decision.Thresholds) -> str:
    """The pre-issue-18 rule: percentile CIs, best lower bound, no correction, any category on → segments."""
    def bounds(pset, set_no):
        ids = pset["prompt_id"].tolist()
        W = resample_weights(len(ids), config.BOOTSTRAP_SAMPLES, np.random.default_rng([0, set_no]))
        out = []
        for _, df in m.runs[m.runs["prompt_id"].isin(ids)].groupby("draft_length"):
            pos = {p: k for k, p in enumerate(ids)}
            Wc = W[:, [pos[p] for p in df["prompt_id"]]]
            # Same tokens on both sides: the speedup is Σ baseline decode / Σ speculative decode.
            num, den = Wc @ df["base_decode_s"].to_numpy(), Wc @ df["decode_s"].to_numpy()
            out.append(percentile_ci(ratio(num, den)))
        return out

    def status(b, n):
        if n < th.min_prompts_per_segment:
            return "too-few"
        if max(lo for lo, _ in b) >= th.min_speedup_lo:
            return "on"
        return "off" if max(hi for _, hi in b) < th.min_speedup_lo else "unclear"

    n = len(m.prompts)
    overall = status(bounds(m.prompts, 0), n)
    cats = [status(bounds(p, k), len(p)) for k, (_, p) in enumerate(m.prompts.groupby("category", sort=True))]
    if n < th.min_prompts:
        return "INSUFFICIENT-EVIDENCE"
    if overall == "on" and not set(cats) & {"off", "unclear"}:
        return "GO"
    return "GO-SEGMENTS" if "on" in cats and len(cats) > 1 else ("GO" if "on" in cats else "OTHER")


def holm_judge(m, tables, th):
    """decision.judge with Holm's correction of each test's own bootstrap p-value in place of the family rule."""
    def holm(tests, t_star, alpha):
        p = tests["p_value"].to_numpy()
        return inference.holm(p, alpha), p
    family, inference.family = inference.family, holm
    try:
        return decision.judge(m, *tables, th)
    finally:
        inference.family = family


def scenario(name, trials, n, n_cats, gammas, true_speedup, seed):
    """true_speedup: one for every category, or a list (category k's)."""
    th = decision.Thresholds()
    cats = [f"c{k}" for k in range(n_cats)]
    mu = ({c: calibrate(v, len(gammas)) for c, v in zip(cats, true_speedup)} if isinstance(true_speedup, list)
          else calibrate(true_speedup, len(gammas)))
    counts = {"after": {}, "holm": {}, "before": {}}
    t0 = time.perf_counter()
    for r in range(trials):
        res = make_results(np.random.default_rng([seed, r]), n, cats, gammas, mu)
        m = analysis.collect(res)
        tables = analysis.summary_table(m), analysis.summary_table(m, level="category")
        j, h = decision.judge(m, *tables, th), holm_judge(m, tables, th)
        for key, v in (("after", _outcome(j)), ("holm", _outcome(h)), ("before", before(m, th))):
            counts[key][v] = counts[key].get(v, 0) + 1
    return counts, time.perf_counter() - t0


def _outcome(j) -> str:
    """The verdict; GO-SEGMENTS with category c0 on is told apart (the power scenario counts it)."""
    on = {s["category"] for s in j["categories"] if s["status"] == "on"}
    return "GO-SEGMENTS c0" if j["verdict"] == "GO-SEGMENTS" and "c0" in on else j["verdict"]


def heterogeneity_only(trials: int) -> None:
    """The gate of GO-SEGMENTS alone (inference.heterogeneity), identical categories: a minute, not an hour."""
    for k, (n, n_cats) in enumerate(((30, 3), (24, 3), (40, 4))):
        mu = calibrate(1.10, 3)
        cats = [f"c{i}" for i in range(n_cats)]
        hits = 0
        for r in range(trials):
            m = analysis.collect(make_results(np.random.default_rng([201 + k, r]), n, cats, (2, 4, 6), mu))
            adequate = sorted(c for c, v in m.prompts["category"].value_counts().items() if v >= 8)
            h = inference.heterogeneity(m, {("draft", 2), ("draft", 4), ("draft", 6)}, adequate)
            hits += h["p_value"] <= config.HETEROGENEITY_ALPHA
        print(f"identical 1.10: {n} prompts, {n_cats} categories: the test says they differ in {hits}/{trials} "
              f"= {100 * hits / trials:.1f}% (GO-SEGMENTS needs this first)", flush=True)


def calibration(trials: int) -> None:
    """How often a single test's p-value falls in the far tail a family reaches, with the truth exactly at the
    bar: 8 prompts (a category's minimum), 20,000 resamples; bootstrap-t alone, Student's t at 7 df alone, and
    the larger of the two (inference.stepdown's floor)."""
    from scipy import stats
    mu = calibrate(config.MIN_SPEEDUP_LO, 1)
    rng = np.random.default_rng(5)
    W = resample_weights(8, config.TEST_BOOTSTRAP_SAMPLES, np.random.default_rng(1))
    pb, pt = [], []
    for _ in range(trials):
        tok, base, s = _draw(rng, 8, 1, mu)
        t = log_ratio_t(np.column_stack([base, tok, base / s[:, 0], tok]), (1, -1, -1, 1), W,
                        threshold=config.MIN_SPEEDUP_LO)
        pb.append(t["p_value"])
        pt.append(stats.t.sf(t["t_obs"], 7))
    pb, pt = np.array(pb), np.array(pt)
    for a in (0.0005, 0.001, 0.005, 0.025):
        print(f"P(p ≤ {a}) under the null, 8 prompts, {trials} runs: bootstrap-t {np.mean(pb <= a):.4f}, "
              f"Student t(7) {np.mean(pt <= a):.4f}, the larger {np.mean(np.maximum(pb, pt) <= a):.4f}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--het-only", action="store_true", help="only the heterogeneity gate, identical categories")
    ap.add_argument("--calibration", action="store_true", help="only the far-tail calibration of one test at 8 prompts")
    ap.add_argument("--only", default=None, help="comma-separated scenario numbers (1-9) to run, e.g. 7,8,9")
    args = ap.parse_args()
    only = {int(x) for x in args.only.split(",")} if args.only else None
    if args.het_only:
        heterogeneity_only(args.trials)
        return 0
    if args.calibration:
        calibration(args.trials)
        return 0
    T = args.trials
    print(f"# {T} trials each; bar {config.MIN_SPEEDUP_LO}×; heterogeneity α {config.HETEROGENEITY_ALPHA}, "
          f"{config.HETEROGENEITY_PERMUTATIONS} permutations; {config.BOOTSTRAP_SAMPLES} resamples for intervals, "
          f"{config.TEST_BOOTSTRAP_SAMPLES} for the tests")
    print(f"{'scenario':<50} {'rate counted':<14} {'before':>8} {'holm':>8} {'after':>8}   after verdicts")
    runs = [
        ("at the bar: 20 prompts, 1 category, γ=4", 20, 1, (4,), 1.05, "GO"),
        ("at the bar: 20 prompts, 1 category, 4 γ", 20, 1, (2, 4, 6, 8), 1.05, "GO"),
        ("at the bar: 30 prompts, 3 categories, 3 γ", 30, 3, (2, 4, 6), 1.05, "GO or SEG"),
        ("identical 1.10: 30 prompts, 3 categories, 3 γ", 30, 3, (2, 4, 6), 1.10, "GO-SEGMENTS"),
        ("identical 1.10: 24 prompts, 3 categories, 3 γ", 24, 3, (2, 4, 6), 1.10, "GO-SEGMENTS"),
        ("identical 1.10: 40 prompts, 4 categories, 3 γ", 40, 4, (2, 4, 6), 1.10, "GO-SEGMENTS"),
        # A traced run's shape: every γ 1–8 of three methods (24 configurations), 5 categories of 8 prompts.
        ("at the bar: 40 prompts, 5 categories, 24 configs", 40, 5, tuple(range(1, 25)), 1.05, "GO or SEG"),
        ("identical 1.10: 40 prompts, 5 categories, 24 configs", 40, 5, tuple(range(1, 25)), 1.10, "GO-SEGMENTS"),
        ("one at 1.5, four at 1.0: 40 prompts, 24 configs", 40, 5, tuple(range(1, 25)), [1.5, 1.0, 1.0, 1.0, 1.0],
         "SEG with c0"),
    ]
    for k, (name, n, n_cats, gammas, truth, what) in enumerate(runs):
        if only and k + 1 not in only:
            continue
        counts, secs = scenario(name, T, n, n_cats, gammas, truth, seed=100 + k)
        keys = {"GO or SEG": ("GO", "GO-SEGMENTS", "GO-SEGMENTS c0"), "GO-SEGMENTS": ("GO-SEGMENTS", "GO-SEGMENTS c0"),
                "SEG with c0": ("GO-SEGMENTS c0",)}.get(what, (what,))
        rate = {w: sum(counts[w].get(v, 0) for v in keys) / T for w in counts}
        old = "       –" if what == "SEG with c0" else f"{100 * rate['before']:7.1f}%"  # before() names no category
        print(f"{name:<50} {what:<14} {old} {100 * rate['holm']:7.1f}% "
              f"{100 * rate['after']:7.1f}%   {dict(sorted(counts['after'].items()))} ({secs:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
