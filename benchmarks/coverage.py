"""Coverage of the speedup interval on known-answer populations: percentile (before) vs bootstrap-t (now).

    nice -n 10 python benchmarks/coverage.py [--reps 2000] [--boot 2000]

The decode speedup of a run is a ratio of sums over prompts: (Σ baseline ms / Σ baseline tokens) /
(Σ speculative ms / Σ speculative tokens). Four synthetic populations, each with a known true value
(the same ratio over 2 million prompts), re-create the audit of issue 18:

    tight          per-prompt speedup log-normal σ 0.10 around 1.30×, tokens U(32, 128)
    spread         σ 0.35 around 1.10×, tokens U(16, 256)
    length-linked  σ 0.25, longer answers speed up more (log s ∝ log tokens), tokens log-normal (8–512)
    bimodal        30% of prompts ≈ 0.8× (σ 0.1), 70% ≈ 1.5× (σ 0.15), tokens log-normal

Every prompt also has its own baseline time per token (log-normal σ 0.15 around 40 ms). For n prompts
drawn at random, a 95% interval is computed with the same resample weights by both methods
(specdec.analysis.bootstrap): the percentile interval of the ratio the product used before, and the
studentized interval on the log ratio it uses now. Prints coverage and the share of misses where the
interval lies above the truth (optimistic) or below it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specdec import config  # noqa: E402
from specdec.analysis.bootstrap import log_ratio_t, percentile_ci, ratio, resample_weights  # noqa: E402

SIGNS = (1.0, -1.0, -1.0, 1.0)  # baseline ms, baseline tokens, speculative ms, speculative tokens


def draw(pop: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 4) per-prompt totals: baseline ms, baseline tokens, speculative ms, speculative tokens."""
    if pop == "tight":
        tok = rng.integers(32, 129, n).astype(float)
        s = np.exp(np.log(1.30) + 0.10 * rng.standard_normal(n))
    elif pop == "spread":
        tok = rng.integers(16, 257, n).astype(float)
        s = np.exp(np.log(1.10) + 0.35 * rng.standard_normal(n))
    elif pop == "length-linked":
        tok = np.clip(np.exp(np.log(64) + 0.8 * rng.standard_normal(n)), 8, 512).round()
        s = np.exp(np.log(1.15) + 0.15 * np.log(tok / 64) + 0.25 * rng.standard_normal(n))
    elif pop == "bimodal":
        tok = np.clip(np.exp(np.log(64) + 0.8 * rng.standard_normal(n)), 8, 512).round()
        slow = rng.random(n) < 0.3
        s = np.where(slow, np.exp(np.log(0.8) + 0.10 * rng.standard_normal(n)),
                     np.exp(np.log(1.5) + 0.15 * rng.standard_normal(n)))
    else:
        raise ValueError(pop)
    base_ms = tok * np.exp(np.log(40.0) + 0.15 * rng.standard_normal(n))
    return np.column_stack([base_ms, tok, base_ms / s, tok])


POPULATIONS = ("tight", "spread", "length-linked", "bimodal")


def truth(pop: str) -> float:
    X = draw(pop, 2_000_000, np.random.default_rng(12345))
    return float(np.exp(np.asarray(SIGNS) @ np.log(X.sum(0))))


def speedup_percentile(X: np.ndarray, W: np.ndarray, level: float) -> tuple[float, float]:
    """The interval the product printed before: percentile of the resampled ratio of sums."""
    T = W @ X
    boot = ratio(ratio(T[:, 0], T[:, 1]), ratio(T[:, 2], T[:, 3]))
    lo, hi = percentile_ci(boot, level)
    return float(lo), float(hi)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--boot", type=int, default=config.BOOTSTRAP_SAMPLES)
    ap.add_argument("--sizes", default="6,8,12,20,50")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    level = config.CI_LEVEL
    print(f"# nominal {100 * level:.0f}%, {args.reps} replications per cell, {args.boot} resamples each")
    print(f"{'population':<14} {'truth':>6} {'n':>3} | {'percentile':>10} {'above':>6} {'below':>6} | "
          f"{'boot-t':>7} {'above':>6} {'below':>6} | {'width p/t':>9}")
    for pop in POPULATIONS:
        true = truth(pop)
        for n in sizes:
            rng = np.random.default_rng([7, n, POPULATIONS.index(pop)])
            res = {"pct": np.zeros(3), "t": np.zeros(3)}
            widths = {"pct": [], "t": []}
            for r in range(args.reps):
                X = draw(pop, n, rng)
                W = resample_weights(n, args.boot, np.random.default_rng([0, r]))
                lo, hi = speedup_percentile(X, W, level)
                t = log_ratio_t(X, SIGNS, W, level)
                for key, (a, b) in (("pct", (lo, hi)), ("t", (t["lo"], t["hi"]))):
                    res[key] += (a <= true <= b, a > true, b < true)
                    widths[key].append(b - a)
            p, t = res["pct"] / args.reps, res["t"] / args.reps
            print(f"{pop:<14} {true:6.3f} {n:3d} | {100 * p[0]:9.1f}% {100 * p[1]:5.1f}% {100 * p[2]:5.1f}% | "
                  f"{100 * t[0]:6.1f}% {100 * t[1]:5.1f}% {100 * t[2]:5.1f}% | "
                  f"{np.median(widths['pct']) / np.median(widths['t']):9.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
