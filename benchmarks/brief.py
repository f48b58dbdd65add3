"""PDF brief benchmark: seconds to build a brief for an N-prompt run once the browser is up (target < 10 s at 100).

    python benchmarks/brief.py [--results tests/fixtures/tiny_run/results.json] [--prompts 100] [--reps 3]

Without a results file of that size, one is synthesised by resampling the given run's prompts (with
new ids; categories and every round kept), so the analysis, bootstrap, projection and charts see
--prompts prompts. The browser is started once (timed apart, as the app keeps it); each repetition
then builds the whole brief from the results dict: analysis, decision, what-if, figures, PNGs, PDF.

Prints a table of stage timings (median over reps), then one JSON line:
  browser_start_s, build_s (the whole brief, median), stages {analyze, decide, figures, png, pdf}, pages, bytes
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from specdec import results
from specdec.analysis import summary as analysis
from specdec.present import charts
from specdec.analysis import decision
from specdec.present import report  # noqa: E402
from specdec.present.chart_images import ChartRenderer  # noqa: E402


def resample(run: dict, n: int, seed: int = 0) -> dict:
    """A results dict of n prompts drawn with replacement from run's prompts, each with a fresh id."""
    rng = np.random.default_rng(seed)
    src = run["prompts"]
    out = copy.deepcopy({k: v for k, v in run.items() if k != "prompts"})
    out["prompts"] = []
    for i, j in enumerate(rng.integers(0, len(src), size=n)):
        p = copy.deepcopy(src[j])
        p["id"] = f"{p['id']}-r{i:04d}"
        out["prompts"].append(p)
    out["manifest"]["run_id"] = f"{run['manifest']['run_id']}-x{n}"
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(ROOT / "tests" / "fixtures" / "tiny_run" / "results.json"))
    ap.add_argument("--prompts", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=None, help="also write the last brief here")
    args = ap.parse_args()

    run = results.load(args.results)
    data = run if len(run["prompts"]) >= args.prompts else resample(run, args.prompts)
    t0 = time.perf_counter()
    renderer = ChartRenderer()
    browser_s = time.perf_counter() - t0
    stages: dict[str, list[float]] = {k: [] for k in ("analyze", "decide", "figures", "png", "pdf", "build")}
    try:
        # Warm-up: the first figure pays plotly's one-off validator set-up, the first PDF the font parsing.
        report.build_brief(data, renderer=renderer)
        for _ in range(args.reps):
            t = time.perf_counter()
            a = analysis.analyze(data)
            stages["analyze"].append(time.perf_counter() - t)
            t = time.perf_counter()
            d = decision.decide(a)
            stages["decide"].append(time.perf_counter() - t)
            t = time.perf_counter()
            figs = charts.figures(a, d)
            stages["figures"].append(time.perf_counter() - t)
            t = time.perf_counter()
            renderer.pngs(figs)
            stages["png"].append(time.perf_counter() - t)
            t = time.perf_counter()
            report.build_brief(a, decision=d, charts_on=False)
            stages["pdf"].append(time.perf_counter() - t)  # text, tables, what-if and figures, no images
            t = time.perf_counter()
            pdf = report.build_brief(data, renderer=renderer)  # the real thing, from the results dict
            stages["build"].append(time.perf_counter() - t)
    finally:
        renderer.close()
    if args.out:
        Path(args.out).write_bytes(pdf)
    from pypdf import PdfReader
    import io
    pages = len(PdfReader(io.BytesIO(pdf)).pages)
    med = {k: statistics.median(v) for k, v in stages.items()}
    print(f"{len(data['prompts'])} prompts, {args.reps} reps, browser start {browser_s:.2f} s")
    for k, v in med.items():
        print(f"  {k:<8} {v:6.2f} s")
    print(f"brief: {pages} pages, {len(pdf) / 1024:.0f} KB; target build < 10 s: {'ok' if med['build'] < 10 else 'MISSED'}")
    print(json.dumps({"prompts": len(data["prompts"]), "browser_start_s": round(browser_s, 3),
                      "build_s": round(med["build"], 3), "stages": {k: round(v, 3) for k, v in med.items() if k != "build"},
                      "pages": pages, "bytes": len(pdf)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
