"""Projected vs published speedups (specdec.analysis.calibration): the hardware model before and after issue 18.

    python benchmarks/calibration.py

No timing here: the published figures are the measurements; this prints what the model projects for them.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specdec.analysis import calibration  # noqa: E402


def main() -> int:
    t = calibration.table()
    print(f"{'case':<42} {'published':>9} {'before':>7} {'after':>7} {'err before':>10} {'err after':>9} {'tol':>5}")
    for _, r in t.iterrows():
        print(f"{r['case']:<42} {r['published']:8.2f}× {r['before']:6.2f}× {r['after']:6.2f}× "
              f"{100 * r['error_before']:+9.0f}% {100 * r['error_after']:+8.1f}% {100 * r['tolerance']:4.0f}%"
              f"{'' if r['within'] else '  OUTSIDE'}")
    print("assumed: " + "; ".join(sorted({f"{r['case'].split(',')[0]}: {r['assumed']}" for _, r in t.iterrows()})))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
