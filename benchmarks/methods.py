"""Methods side by side from a measured run: method × acceptance × speedup × memory overhead.

    python -m specdec train-heads --workload W --out HEADS            # Medusa heads (optional)
    python -m specdec run --workload W --out DIR --methods draft,prompt-lookup,layer-skip,medusa \\
        --layer-skip-layers 14,21 --medusa-heads HEADS
    python benchmarks/methods.py DIR/results.json

Every method ran on the same prompts, interleaved per prompt with the baseline (specdec.measure.bench), so the
speedups are paired ratios on one machine in one run. Prints, per method at every γ measured: α
(accepted ÷ positions tried), mean β = Σ min(p, q) where recorded, τ, decode speedup with its 95%
bootstrap CI and the per-prompt median, the measured draft cost c (draft step ÷ target step) and the
memory the method adds (weights + one sequence's KV cache at the run's mean context); then the best
choice per category, and for Medusa heads their held-out accuracy and training time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specdec import methods, results
from specdec.analysis import summary as analysis
from specdec.analysis import compare  # noqa: E402


def ci(r) -> str:
    """'[lo–hi]', or '[too few]' where the analysis gives no interval (fewer than 8 prompts)."""
    lo, hi = r["speedup_lo"], r["speedup_hi"]
    return "[too few]" if lo != lo or hi != hi else f"[{lo:.2f}–{hi:.2f}]"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--boot", type=int, default=2000)
    args = ap.parse_args()
    res = results.load(args.results)
    a = analysis.analyze(res, n_boot=args.boot)
    m = res["manifest"]
    print(f"# run {m['run_id']}: {len(res['prompts'])} prompts, target {m['models']['target']['spec']}, "
          f"{m['settings']['dtype']}, {m['hardware']['cpu']} ({m['hardware']['cores']} cores), "
          f"max_new_tokens {m['settings']['max_new_tokens']}, temperature {m['settings']['temperature']}")
    s = a.summary[a.summary["method"] != "baseline"]
    mem = a.memory.get("by_method", {})
    c = a.costs.draft_step_s
    t_step = a.costs.target_step_s
    print(f"# baseline: {a.summary.loc[a.summary['method'] == 'baseline', 'tpot_ms'].iloc[0]:.1f} ms/token; "
          f"target step {t_step * 1e3:.1f} ms")
    w = max([len("method")] + [len(a.label(k)) for k in s["method"].unique()])
    head = f"{'method':<{w}} {'n':>3} {'γ':>2} {'α':>5} {'β':>5} {'τ':>5} {'speedup [95% CI]':>22} {'median':>6} " \
           f"{'c':>5} {'+mem GB':>8}"
    print(head)
    print("-" * len(head))
    for key in methods.order(s["method"].unique()):
        for _, r in s[s["method"] == key].sort_values("draft_length").iterrows():
            step = c.get(key)
            cc = f"{step / t_step:5.2f}" if step else "    –"
            beta = f"{r['alpha_beta']:5.2f}" if r["alpha_beta"] == r["alpha_beta"] else "    –"
            gb = mem.get(key, {}).get("extra_total_gb", float("nan"))
            print(f"{a.label(key):<{w}} {int(r['n_prompts']):>3} {int(r['draft_length']):>2} {r['alpha_pos']:5.2f} "
                  f"{beta} {r['tau']:5.2f} {r['speedup']:7.2f}× {ci(r):>13} "
                  f"{r['speedup_median']:6.2f} {cc} {gb:8.3f}")
    print("\n# best choice per category (highest measured speedup; training-prompt figures excluded)")
    for _, r in compare.best_per_category(a).iterrows():
        print(f"{r['category']:<24} n={int(r['n_prompts']):>3}  {r['label']:<{w}} γ={int(r['draft_length'])}  "
              f"{r['speedup']:.2f}× {ci(r)}  +{r['extra_total_gb']:.3f} GB")
    for key, info in (m["models"].get("drafters") or {}).items():
        t = info.get("training")
        if methods.family(key) == "medusa" and t and key == "medusa":
            print(f"\n# Medusa heads ({info.get('heads')}): {info.get('extra_parameters'):,} parameters; trained "
                  f"{t.get('steps')} steps in {t.get('train_s')} s after {t.get('collect_s')} s collecting "
                  f"{t.get('train_positions')} positions; loss {t.get('loss_first')} → {t.get('loss_last')}")
            for k, (t1, t5) in enumerate(zip(t.get("top1") or [], t.get("top5") or []), start=1):
                print(f"  head {k} (token +{k + 1}) held-out top-1 {t1:.1%}  top-5 {t5:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
