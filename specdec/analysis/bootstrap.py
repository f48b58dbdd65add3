"""Percentile bootstrap over prompts, vectorised: one weight matrix, every statistic a ratio of sums.

Prompts are the unit of resampling (rounds within a prompt are correlated: the same text, the same
draft). A resample is a row of multinomial counts W[b, i] = how often prompt i was drawn; a statistic
that is a ratio of per-prompt totals is then (W @ num) / (W @ den), so B resamples of any number of
statistics cost one matrix product. Paired comparisons (speedup = baseline time / speculative time on
the same prompts) use the same row of W for both sides.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from specdec import config


def resample_weights(n: int, n_boot: int = config.BOOTSTRAP_SAMPLES,
                     rng: np.random.Generator | None = None) -> np.ndarray:
    """(n_boot, n) int counts: row b says how many times each of n prompts was drawn (rows sum to n)."""
    rng = rng if rng is not None else np.random.default_rng(config.BOOTSTRAP_SEED)
    if n == 0:
        return np.zeros((n_boot, 0), dtype=np.int64)
    idx = rng.integers(0, n, size=(n_boot, n))
    flat = idx + (np.arange(n_boot) * n)[:, None]  # offset each row so one bincount counts them all
    return np.bincount(flat.ravel(), minlength=n_boot * n).reshape(n_boot, n)


def percentile_ci(replicates: np.ndarray, level: float = config.CI_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along axis 0, ignoring NaN replicates (e.g. a resample with no rounds)."""
    tail = (1.0 - level) / 2.0 * 100.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column gives a NaN bound, on purpose
        lo = np.nanpercentile(replicates, tail, axis=0)
        hi = np.nanpercentile(replicates, 100.0 - tail, axis=0)
    return lo, hi


def ratio(num, den):
    """num / den with NaN (not inf, not a warning) where den == 0."""
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)


def prompts_needed(n: int, halfwidth: float, target: float = config.SPEEDUP_CI_HALFWIDTH) -> float:
    """Prompts for a CI of ±target, from one of ±halfwidth on n prompts (width ∝ 1/√n).

    NaN when the interval is unknown; n itself when it is already narrow enough."""
    if not (n > 0 and math.isfinite(halfwidth)) or target <= 0:
        return float("nan")
    return float(max(n, math.ceil(n * (halfwidth / target) ** 2)))
