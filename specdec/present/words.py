"""Numbers as words: speedups, intervals, milliseconds, percentages, memory — one spelling for the brief and the
decision's reasons. A missing or non-finite value prints as "n/a" (or the caller's wording), never "nan".

Speedup bounds print with three decimals: a lower bound of 1.047 must not read as the 1.05 it failed to reach.
"""

from __future__ import annotations

import math

import numpy as np

from specdec import config


def fin(v) -> bool:
    """True for a finite number (None, NaN and ±inf are not)."""
    return v is not None and not (isinstance(v, float) and math.isnan(v)) and bool(np.isfinite(v))


def x(v, digits: int = 2) -> str:
    """A speedup: '1.23×'."""
    return f"{v:.{digits}f}×" if fin(v) else "n/a"


def ci(lo, hi, missing: str | None = None) -> str:
    """A speedup interval, three decimals: '1.047–1.210×'; `missing` (default: too few prompts for one) when
    either bound is absent."""
    if fin(lo) and fin(hi):
        return f"{lo:.3f}–{hi:.3f}×"
    return f"too few for a CI: < {config.MIN_CI_PROMPTS}" if missing is None else missing


def ms(v) -> str:
    """Milliseconds, one decimal."""
    return f"{v:.1f}" if fin(v) else "n/a"


def sig(v) -> str:
    """Three significant digits: 0.0213 ms and 41.2 ms both stay readable."""
    return f"{v:.3g}" if fin(v) else "n/a"


def pct(v) -> str:
    """A fraction as a whole percentage: 0.93 → '93%'."""
    return f"{100 * v:.0f}%" if fin(v) else "n/a"


def gb(v) -> str:
    """Memory in GB: 'none', '40.0 MB' below 10 MB… '2.00 GB'."""
    if not fin(v):
        return "unknown"
    if v == 0:
        return "none"
    return f"{v:.2f} GB" if v >= 0.01 else f"{1e3 * v:.1f} MB"
