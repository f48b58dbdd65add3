"""App vs CLI: the same prompts and settings measured through the app's worker and through the CLI.

    flock /tmp/specdec-heavy.lock python benchmarks/app_parity.py [--prompts 6] [--max-new-tokens 32] [--order ABBA]

The app side is the Run page's path without a browser: a Worker (the measuring process the page starts)
given the run, its status polled once a second as the page's fragment does. The CLI side is
`python -m specdec run` in a subprocess. Both use the same workload sample, methods, γ, dtype and mode;
the sides alternate (A = app, B = CLI; ABBA by default, so a steady drift cancels) and run back to back.

The figure compared is the baseline's time per output token, Σ decode_s / Σ (new_tokens − 1) over the
prompts (analysis.summary's tpot over the whole run), per side: median of that side's repetitions, and
their ratio app ÷ CLI, which should be within 5% of 1 on a quiet machine. Each run's machine flags
(manifest.machine: other processes' CPU, reference-step drift) are printed beside it, because a busy
machine makes any parity figure meaningless. Ends with one JSON line holding every figure.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from specdec import config  # noqa: E402
from specdec.measure import runplan, worker  # noqa: E402
from specdec.measure.workloads import load_workload  # noqa: E402
from specdec.store import Store  # noqa: E402

DEFAULT_WORKLOAD = ROOT / "sample_workloads" / "mixed.jsonl"


def baseline_ms_per_token(results: dict) -> float:
    """Σ decode_s / Σ (new_tokens − 1) of the baselines, in ms (the first token belongs to prefill)."""
    decode = sum(p["baseline"]["decode_s"] for p in results["prompts"])
    tokens = sum(max(p["baseline"]["new_tokens"] - 1, 0) for p in results["prompts"])
    return 1e3 * decode / max(tokens, 1)


def machine_flags(results: dict) -> dict:
    m = results["manifest"].get("machine") or {}
    return {"other_cpu_mean": (m.get("other_cpu") or {}).get("mean"), "drift": m.get("drift"),
            "busy": m.get("busy"), "drifted": m.get("drifted")}


def setup(results: dict) -> dict:
    """What could differ between the two entry points: threads, dtype, matmul backend per model, the prompts
    and the machine's reference step (median, ms) — printed so a gap can be traced to its cause."""
    man = results["manifest"]
    ref = (man.get("machine") or {}).get("reference_s") or []
    return {"torch_threads": man["hardware"].get("torch_threads"),
            "dtype": {r: m.get("dtype") for r, m in man["models"].items() if isinstance(m, dict)},
            "linear": {r: m.get("linear") for r, m in man["models"].items() if isinstance(m, dict)},
            "prompt_ids": [p["id"] for p in results["prompts"]],
            "reference_ms": round(1e3 * statistics.median(ref), 1) if ref else None}


def run_app(cfg, workload, tmp: Path) -> dict:
    db = tmp / f"app-{time.monotonic_ns()}.sqlite"
    w = worker.Worker(store_factory=functools.partial(Store, db), heads_root=tmp / "heads", log_dir=tmp / "logs")
    try:
        w.start_run(cfg, workload)
        while w.status().busy:  # the Run page's fragment asks once a second
            time.sleep(1.0)
        s = w.status()
        if s.state != "complete":
            raise SystemExit(f"app run {s.state}: {s.error} (log: {s.log})")
        return Store(db).load_run(s.run_id)
    finally:
        w.close()


def run_cli(args, tmp: Path) -> dict:
    out = tmp / f"cli-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "specdec", "run", "--workload", str(args.workload), "--out", str(out),
           "--target", args.target, "--draft", args.draft, "--methods", "draft", "--draft-lengths", str(args.gamma),
           "--max-new-tokens", str(args.max_new_tokens), "--max-prompts", str(args.prompts), "--dtype", args.dtype,
           "--mode", "real", "--seed", str(args.seed), "--no-store"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"CLI run failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads((out / "results.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", type=Path, default=DEFAULT_WORKLOAD)
    ap.add_argument("--prompts", type=int, default=6)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--gamma", type=int, default=3)
    ap.add_argument("--target", default=config.BUNDLED_TARGET)
    ap.add_argument("--draft", default=config.BUNDLED_DRAFT)
    ap.add_argument("--dtype", default=config.DEFAULT_DTYPE)
    ap.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    ap.add_argument("--order", default="ABBA", help="A = app, B = CLI, in the order they run")
    args = ap.parse_args()

    cfg = runplan.run_config(target=args.target, draft=[args.draft], methods=["draft"], draft_lengths=[args.gamma],
                             max_new_tokens=args.max_new_tokens, max_prompts=args.prompts, dtype=args.dtype,
                             seed=args.seed, mode="real")
    workload = load_workload(args.workload, max_prompts=args.prompts, seed=args.seed)
    figures = {"A": [], "B": []}
    rows = []
    with tempfile.TemporaryDirectory(prefix="app-parity-") as tmp:
        for side in args.order:
            started = time.perf_counter()
            results = run_app(cfg, workload, Path(tmp)) if side == "A" else run_cli(args, Path(tmp))
            ms = baseline_ms_per_token(results)
            figures[side].append(ms)
            flags, how = machine_flags(results), setup(results)
            rows.append({"side": {"A": "app", "B": "cli"}[side], "baseline_ms_per_token": round(ms, 1),
                         "prompts": len(results["prompts"]), "wall_s": round(time.perf_counter() - started, 1), **flags,
                         **how})
            print(f"{rows[-1]['side']:>4}: baseline {ms:7.1f} ms/token over {len(results['prompts'])} prompts "
                  f"(wall {rows[-1]['wall_s']} s; other CPU {flags['other_cpu_mean']} cores, reference drift "
                  f"{flags['drift']}, busy={flags['busy']}, drifted={flags['drifted']})", flush=True)
            print(f"      {json.dumps(how)}", flush=True)
    app, cli = statistics.median(figures["A"]), statistics.median(figures["B"])
    ratio = app / cli
    print(f"\nbaseline ms/token: app {app:.1f}, CLI {cli:.1f} (medians of {len(figures['A'])} / {len(figures['B'])}); "
          f"app ÷ CLI = {ratio:.3f} — {'within' if abs(ratio - 1) <= 0.05 else 'OUTSIDE'} 5%")
    print(json.dumps({"app_ms_per_token": round(app, 2), "cli_ms_per_token": round(cli, 2), "ratio": round(ratio, 4),
                      "within_5pct": abs(ratio - 1) <= 0.05, "order": args.order, "prompts": args.prompts,
                      "max_new_tokens": args.max_new_tokens, "gamma": args.gamma, "dtype": args.dtype, "runs": rows}))


if __name__ == "__main__":
    main()
