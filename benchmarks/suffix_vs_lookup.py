"""Suffix decoding vs prompt lookup, per category: τ and speedup with 95% CIs on two workloads.

    python benchmarks/suffix_vs_lookup.py --out DIR [--target SPEC] [--draft SPEC] [--spec-bench-per-category 8]
        [--draft-lengths 1,2,3,4,5,6,7,8] [--max-new-tokens 64] [--mode traced|real] [--real-prompts 4]
        [--dtype float32] [--only mixed|spec-bench]

Workloads: sample_workloads/mixed.jsonl (every prompt, in file order: its categories interleave, as traffic does)
and Spec-Bench (../shared/data/spec_bench_questions.jsonl, read in place, first turns): its six categories as the
paper groups them (the eight MT-bench categories of 10 questions each are one, "mt_bench"), the first K questions
of each, interleaved round-robin — suffix decoding drafts from the earlier responses of the same workload, so
the order is the order traffic would arrive in. Both methods (and a draft model with --draft, for reference)
run through specdec's own runner, greedy, traced by default (every γ from one target pass per prompt; a real
subset times and checks it), so the speedups are the run's cost model on this machine's timings.

Prints, per workload × category × method at the method's best pooled γ: n, τ [95% CI] and decode speedup
[95% CI] (bootstrap over prompts; none below 8 prompts: "—"), then the traced check, then one JSON line with
every figure. results.json of each workload stays in DIR/<workload>/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from specdec import config  # noqa: E402
from specdec.analysis import summary  # noqa: E402
from specdec.errors import SpecdecError  # noqa: E402

MIXED = ROOT / "sample_workloads" / "mixed.jsonl"
SPEC_BENCH = ROOT.parent / "shared" / "data" / "spec_bench_questions.jsonl"
# Spec-Bench (Xia et al. 2024) reports MT-bench as one category; its 80 questions carry MT-bench's own eight here.
MT_BENCH = {"writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"}
METHODS = ("suffix", "prompt-lookup")


def spec_bench_workload(per_category: int, seed: int):
    """Spec-Bench's first `per_category` questions of each of its six categories, interleaved round-robin."""
    from specdec.measure import workloads
    if not SPEC_BENCH.exists():
        raise SpecdecError(f"{SPEC_BENCH} not found (Spec-Bench questions are read from ../shared, never copied)")
    w = workloads.load_workload(str(SPEC_BENCH), seed=seed)
    by_cat: dict[str, list] = {}
    for p in w.prompts:
        cat = "mt_bench" if p.category in MT_BENCH else p.category
        by_cat.setdefault(cat, []).append(replace(p, category=cat))
    picked = [ps[:per_category] for ps in by_cat.values()]
    order = [p for i in range(per_category) for ps in picked if i < len(ps) for p in [ps[i]]]
    return replace(w, name="spec-bench", prompts=order, sample={"per_category": per_category})


def mixed_workload(seed: int):
    from specdec.measure import workloads
    return workloads.load_workload(str(MIXED), seed=seed)


def measure(name: str, workload, cfg, target, drafts, out: Path) -> dict:
    from specdec.measure import runner
    t0 = time.perf_counter()
    print(f"# {name}: {len(workload.prompts)} prompts, {len(workload.categories())} categories, mode {cfg.mode}",
          file=sys.stderr, flush=True)
    res = runner.execute(cfg, workload, target, drafts, out_dir=out / name, store=None,
                         on_progress=lambda p: print(f"  {p.stage}: {p.done}/{p.total}", file=sys.stderr, flush=True))
    print(f"# {name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return res


def table(name: str, res: dict, n_boot: int) -> list[dict]:
    """Rows: per category (and 'all') × method at the method's best pooled γ (highest pooled speedup)."""
    m = summary.collect(res)
    pooled = summary.summary_table(m, n_boot=n_boot)
    by_cat = summary.summary_table(m, level="category", n_boot=n_boot)
    rows = []
    for method in [k for k in pooled["method"].unique() if k != "baseline"]:
        mine = pooled[pooled["method"] == method]
        g = int(mine.loc[mine["speedup"].idxmax(), "draft_length"])
        for df in (by_cat, pooled):
            for _, r in df[(df["method"] == method) & (df["draft_length"] == g)].iterrows():
                rows.append({"workload": name, "category": r["category"], "method": method, "gamma": g,
                             "n": int(r["n_prompts"]), **{k: _num(r[k]) for k in
                                                          ("tau", "tau_lo", "tau_hi", "speedup", "speedup_lo",
                                                           "speedup_hi")}})
    return rows


def _num(v):
    return None if v is None or v != v else round(float(v), 4)


def _ci(v, lo, hi, unit="") -> str:
    if v is None:
        return "—"
    return f"{v:.2f}{unit} [{lo:.2f}–{hi:.2f}]" if lo is not None and hi is not None else f"{v:.2f}{unit} [—]"


def print_table(rows: list[dict]) -> None:
    head = f"{'workload':<11} {'category':<18} {'method':<14} {'γ':>2} {'n':>3} {'τ [95% CI]':>20} {'speedup [95% CI]':>22}"
    print(head)
    print("-" * len(head))
    key = lambda r: (r["workload"], r["category"] == "all", r["category"], r["method"])  # noqa: E731
    for r in sorted(rows, key=key):
        print(f"{r['workload']:<11} {r['category']:<18} {r['method']:<14} {r['gamma']:>2} {r['n']:>3} "
              f"{_ci(r['tau'], r['tau_lo'], r['tau_hi']):>20} {_ci(r['speedup'], r['speedup_lo'], r['speedup_hi'], '×'):>22}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--target", default=config.BUNDLED_TARGET)
    ap.add_argument("--draft", default=None, help="also measure this draft model, for reference")
    ap.add_argument("--spec-bench-per-category", type=int, default=8)
    ap.add_argument("--draft-lengths", default="1,2,3,4,5,6,7,8")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--mode", choices=config.MODES, default="traced")
    ap.add_argument("--real-prompts", type=int, default=config.DEFAULT_REAL_PROMPTS)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    ap.add_argument("--boot", type=int, default=2000)
    ap.add_argument("--only", choices=("mixed", "spec-bench"), default=None)
    args = ap.parse_args()
    from specdec.measure import models
    from specdec.measure.runplan import run_config
    try:
        cfg = run_config(target=args.target, draft=args.draft or "", methods=METHODS + (("draft",) if args.draft else ()),
                         draft_lengths=[int(g) for g in args.draft_lengths.split(",")],
                         max_new_tokens=args.max_new_tokens, dtype=args.dtype, mode=args.mode,
                         real_prompts=args.real_prompts, seed=args.seed)
        target, drafts = models.load_with_drafts(cfg.target, cfg.drafts, dtype=cfg.dtype, device=cfg.device)
        out = Path(args.out)
        loads = {"mixed": lambda: mixed_workload(args.seed),
                 "spec-bench": lambda: spec_bench_workload(args.spec_bench_per_category, args.seed)}
        rows, checks = [], {}
        for name, load in loads.items():
            if args.only and name != args.only:
                continue
            res = measure(name, load(), cfg, target, drafts, out)
            rows += table(name, res, args.boot)
            check = (res["manifest"].get("traced") or {}).get("check") or {}
            checks[name] = {k: check.get(k) for k in ("configs", "configs_equal", "rounds", "rounds_equal",
                                                       "baseline_equal", "speedup_error_median")}
    except SpecdecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"# {args.target}, {args.dtype}, greedy, {args.max_new_tokens} new tokens, γ {args.draft_lengths}, "
          f"mode {args.mode}; each method at its best pooled γ")
    print_table(rows)
    for name, c in checks.items():
        if c.get("configs") is not None:
            print(f"# {name} traced check: {c['configs_equal']}/{c['configs']} configurations and "
                  f"{c['rounds_equal']}/{c['rounds']} rounds equal to the real decoder's; "
                  f"{c['baseline_equal']} baselines identical")
    print(json.dumps({"rows": rows, "checks": checks, "settings": vars(args)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
