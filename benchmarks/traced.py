"""Traced mode vs real mode, side by side (issue 15's "done when"). Run it under the heavy lock:

    flock /tmp/specdec-heavy.lock python benchmarks/traced.py --out /tmp/traced-bench [--phases …]

Bundled pair, float32, greedy; draft model + prompt lookup + layer-skip at half depth; Spec-Bench prompts
(../shared/data/spec_bench_questions.jsonl) × 64 new tokens:
  traced12    traced mode, γ 1–8, on 12 prompts: wall time, where the time went, the check
  throughput  batched target generation vs one prompt at a time (tokens/s, same tokens?)
  big         traced mode on 50 prompts, γ 1–8, to a complete results.json and the PDF brief: time, verdict
  real12      real mode, γ 2, 4, 6, on the same 12 prompts
  prefill     target prompt tokens/s: one short prompt, eight together, one long (grouped prefill)
  saves       the big run's results.json saved prompt by prompt: whole-file check vs new entries only
then side by side: wall times, the traced speedups against the real run's 95% CIs. Phases can run in
separate lock holds (--phases); each leaves <phase>.json in --out and the report reads them all.
Ends with one JSON line holding every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from specdec import config, results as R  # noqa: E402
from specdec.analysis import decision, summary  # noqa: E402
from specdec.measure import models, runner, workloads  # noqa: E402
from specdec.measure.runplan import run_config  # noqa: E402
from specdec.traces.generate import Timings, trace_batch  # noqa: E402

SPEC_BENCH = ROOT.parent / "shared" / "data" / "spec_bench_questions.jsonl"
METHODS = ("draft", "prompt-lookup", "layer-skip")


MODELS = {"target": config.BUNDLED_TARGET, "draft": config.BUNDLED_DRAFT, "new_tokens": 64}


def cfg_for(mode: str, gammas, prompts: int, real_prompts: int = config.DEFAULT_REAL_PROMPTS):
    return run_config(target=MODELS["target"], draft=MODELS["draft"], methods=METHODS, draft_lengths=gammas,
                      max_new_tokens=MODELS["new_tokens"], max_prompts=prompts, dtype="float32", mode=mode,
                      real_prompts=real_prompts)


def timed_run(cfg, target, drafts, out: Path) -> tuple[dict, float]:
    workload = workloads.load_workload(str(SPEC_BENCH), max_prompts=cfg.max_prompts, seed=cfg.seed)
    t0 = time.perf_counter()
    res = runner.execute(cfg, workload, target, drafts, out_dir=out)
    return res, time.perf_counter() - t0


def throughput(target, workload, eos, n: int = 8, big: int = 24, tokens: int = 32) -> dict:
    """Target decode tokens/s (prefill apart: trace_batch times it separately, and prompt lengths differ)
    for the first n prompts one at a time, n together and `big` together (no drafters), and whether the
    first n prompts' tokens agree across the three."""
    from specdec.measure.workloads import encode_prompt
    ids = [encode_prompt(p, target.tokenizer, 4096)[0] for p in workload.prompts[:big]]
    greedy = config.SamplingConfig()

    def rate(groups):
        tim, got = Timings(), []
        for rows in groups:
            got += trace_batch(target.model, rows, tokens, greedy, eos, timings=tim)
        # a batch's first token comes with its prefill: decode steps made the rest
        return got, (tim.tokens - len(got)) / tim.steps_s, tim.prefill_s

    alone, s_alone, p_alone = rate([[i] for i in ids[:n]])
    together, s_n, p_n = rate([ids[:n]])
    many, s_big, _ = rate([ids])
    same = sum(a.tokens == b.tokens == c.tokens for a, b, c in zip(alone, together, many))
    return {"prompts": n, "big": len(ids), "tokens": tokens, "one_at_a_time_tok_s": s_alone, "batched_tok_s": s_n,
            "big_batch_tok_s": s_big, "prefill_alone_s": p_alone, "prefill_together_s": p_n, "same_tokens": same}


def prefill_rates(target, repeats: int = 2) -> dict:
    """Target prompt tokens/s of one forward over fixed token ids: one 40-token prompt, eight of them
    together, one of 800 (why traces.generate.prefill_groups prefills short prompts together)."""
    import torch

    from specdec.decoding.forward import new_cache
    base = target.model.base_model

    def rate(rows: int, n: int) -> float:
        x = (torch.arange(rows * n).reshape(rows, n) * 7 + 11) % 5000 + 100
        base(input_ids=x[:1, :16], past_key_values=new_cache(target.model), use_cache=True)
        t0 = time.perf_counter()
        for _ in range(repeats):
            base(input_ids=x, past_key_values=new_cache(target.model), use_cache=True)
        return rows * n * repeats / (time.perf_counter() - t0)
    with torch.inference_mode():
        return {"one_40_tok_s": rate(1, 40), "eight_40_tok_s": rate(8, 40), "one_800_tok_s": rate(1, 800)}


def save_times(results_path: Path) -> dict:
    """Seconds for the saves of a run written record by record (results.json after each prompt), the whole
    file re-checked each time vs only the new entries (runner passes validate's `known`)."""
    import tempfile
    data = R.load(results_path)
    prompts = data["prompts"]

    def run(known) -> float:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            for k in range(1, len(prompts) + 1):
                R.dump_atomic({**data, "prompts": prompts[:k]}, Path(d) / "results.json", known=known)
            return time.perf_counter() - t0
    full, incremental = run(None), run({})
    return {"saves": len(prompts), "full_check_s": full, "new_entries_s": incremental}


def retimed(traced: dict, real: dict) -> dict:
    """The traced run's rounds timed by the cost model fitted on the real run's own measurements: what the
    traced mode would report had its real subset been timed at the same moment as the real run. Separates
    the traced rounds (exact) from the host's speed between the two runs (the traced run's own timing)."""
    from specdec.analysis import costs
    from specdec.traces import timing
    cm = costs.cost_model(summary.collect(real))
    prompts = []
    for p in traced["prompts"]:
        base = dict(p["baseline"], decode_s=max(p["baseline"]["new_tokens"] - 1, 0) * cm.target_step_s)
        runs = []
        for r in p["runs"]:
            rounds, decode = timing.timed_rounds(r["rounds"], r["method"], cm)
            runs.append(dict(r, rounds=rounds, decode_s=decode))
        prompts.append(dict(p, baseline=base, runs=runs))
    return dict(traced, prompts=prompts)


def compare(real: dict, traced: dict) -> list[dict]:
    """Per configuration both measured: the traced speedup with its own timing (traced) and re-timed by the
    real run's cost model (same_timing), against the real run's speedup and 95% CI."""
    rt = summary.summary_table(real)
    tt = summary.summary_table(traced)
    st = summary.summary_table(retimed(traced, real))
    rows = []
    for _, r in tt[tt["method"] != "baseline"].iterrows():
        m = rt[(rt["method"] == r["method"]) & (rt["draft_length"] == r["draft_length"])]
        same = st[(st["method"] == r["method"]) & (st["draft_length"] == r["draft_length"])]["speedup"]
        row = {"method": r["method"], "gamma": int(r["draft_length"]), "traced": float(r["speedup"]),
               "traced_tau": float(r["tau"]), "same_timing": float(same.iloc[0])}
        if len(m):
            m = m.iloc[0]
            inside = (lambda v: None if m["speedup_lo"] != m["speedup_lo"] else
                      bool(m["speedup_lo"] <= v <= m["speedup_hi"]))
            row.update(real=float(m["speedup"]), lo=float(m["speedup_lo"]), hi=float(m["speedup_hi"]),
                       real_tau=float(m["tau"]), within=inside(r["speedup"]), same_within=inside(row["same_timing"]))
        rows.append(row)
    return rows


PHASES = ("traced12", "throughput", "big", "real12", "prefill", "saves")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="directory: runs, and one <phase>.json of figures per phase")
    ap.add_argument("--phases", default=",".join(PHASES), help=f"which to run now, of {', '.join(PHASES)}; "
                    "the report reads every phase found in --out")
    ap.add_argument("--prompts", type=int, default=12)
    ap.add_argument("--big", type=int, default=50)
    ap.add_argument("--big-real-prompts", type=int, default=config.DEFAULT_REAL_PROMPTS,
                    help="prompts of the big run also decoded for real (timing + the check)")
    ap.add_argument("--target", default=config.BUNDLED_TARGET, help="(a tiny pair checks the script itself)")
    ap.add_argument("--draft", default=config.BUNDLED_DRAFT)
    ap.add_argument("--new-tokens", type=int, default=64)
    args = ap.parse_args()
    MODELS.update(target=args.target, draft=args.draft, new_tokens=args.new_tokens)
    if not SPEC_BENCH.exists():
        print(f"needs {SPEC_BENCH}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    phases = [p for p in args.phases.split(",") if p]
    if phases:
        t0 = time.perf_counter()
        target, drafts = models.load_with_drafts(args.target, (args.draft,), dtype="float32", device="cpu")
        load_s = time.perf_counter() - t0
        print(f"models loaded in {load_s:.0f} s (matmul {getattr(target.model, 'specdec_linear', '?')})", flush=True)
    for phase in phases:
        if phase in ("traced12", "real12"):
            mode, gammas = ("traced", range(1, 9)) if phase == "traced12" else ("real", (2, 4, 6))
            res, wall = timed_run(cfg_for(mode, gammas, args.prompts), target, drafts, out / phase)
            fig = {"wall_s": wall, "load_s": load_s, "report": res["manifest"].get("traced")}
        elif phase == "throughput":
            eos = set(models.eos_ids(target))
            wl = workloads.load_workload(str(SPEC_BENCH), max_prompts=24, seed=0)
            fig = throughput(target, wl, eos)
        elif phase == "big":
            from specdec.present import report
            t0 = time.perf_counter()
            big, _ = timed_run(cfg_for("traced", range(1, 9), args.big, args.big_real_prompts), target, drafts,
                               out / "big")
            t1 = time.perf_counter()
            (out / "big" / "brief.pdf").write_bytes(report.build_brief(big))
            t2 = time.perf_counter()
            d = decision.decide(big)
            fig = {"prompts": len(big["prompts"]), "run_s": t1 - t0, "brief_s": t2 - t1, "total_s": t2 - t0,
                   "load_s": load_s, "verdict": d.verdict, "headline": d.headline,
                   "report": big["manifest"]["traced"]}
        elif phase == "prefill":
            fig = prefill_rates(target)
        elif phase == "saves":
            if not (out / "big" / "results.json").exists():
                print("the saves phase times the big phase's results.json: run big first", file=sys.stderr)
                return 2
            fig = save_times(out / "big" / "results.json")
        else:
            print(f"unknown phase {phase!r}", file=sys.stderr)
            return 2
        (out / f"{phase}.json").write_text(json.dumps(fig, default=str))
        print(f"phase {phase} done", flush=True)
    return show(out, args.prompts)


def show(out: Path, n: int) -> int:
    """Print every figure found in out, side by side, then one JSON line with them all."""
    figs = {p: json.loads((out / f"{p}.json").read_text()) for p in PHASES if (out / f"{p}.json").exists()}
    tr, re_ = figs.get("traced12"), figs.get("real12")
    if tr and re_:
        print(f"\n{n} Spec-Bench prompts × 64 tokens, bundled pair fp32 greedy, draft + prompt lookup + layer-skip L14:")
        print(f"  real mode γ 2,4,6: {re_['wall_s']:.0f} s | traced mode γ 1–8: {tr['wall_s']:.0f} s "
              f"→ traced {re_['wall_s'] / tr['wall_s']:.1f}× faster (model loading apart: {tr['load_s']:.0f} s)")
    for name in ("traced12", "big"):
        if name not in figs:
            continue
        rep = figs[name]["report"]
        t = rep["timings"]
        print(f"  {name}: real subset {rep['real_s']:.0f} s ({len(rep['real_prompts'])} prompts: baseline + each "
              f"method at γ {sorted({g for v in rep['check_gammas'].values() for g in v})}) | tracing "
              f"{rep['trace_s']:.0f} s = target prefill {t['target_prefill_s']:.0f} s + target steps "
              f"{t['target_steps_s']:.0f} s + " + ", ".join(f"{k} {v:.0f} s" for k, v in t["drafters_s"].items())
              + f" ({t['target_tokens']} target tokens)")
        if rep.get("probe"):
            probed = rep["cost_model"].get("verify_probed") or []
            print(f"    verify probe: {rep['probe']['seconds']:.1f} s, {len(rep['probe']['drafted'])} passes; "
                  f"lengths priced by it (drafted): {probed or 'none'}")
        c = rep["check"]
        print(f"    check: {c['rounds_equal']}/{c['rounds']} rounds equal, {c['configs_equal']}/{c['configs']} "
              f"configurations, {c['baseline_equal']}/{c['prompts']} baselines identical; median |traced − real "
              f"speedup| / real {c['speedup_error_median']:.1%}")
        for s in c["speedup"]:
            print(f"      {s['prompt']:>24} {s['method']:>14} γ={s['draft_length']}: real {s['real']:.2f}× "
                  f"traced {s['traced']:.2f}×")
    if tr and re_:
        rows = compare(R.load(out / "real12" / "results.json"), R.load(out / "traced12" / "results.json"))
        figs["speedups"] = rows
        print("  speedup (decode), traced vs the real run's 95% CI:")
        for r in rows:
            real_part = (f"real {r['real']:.2f}× [{r['lo']:.2f}, {r['hi']:.2f}] τ {r['real_tau']:.2f} "
                         f"{ {True: 'within', False: 'OUTSIDE', None: '(no CI)'}[r['within']] }" if "real" in r else "")
            same = (f" | same timing {r['same_timing']:.2f}× "
                    f"{ {True: 'within', False: 'OUTSIDE', None: ''}[r['same_within']] }" if "real" in r else "")
            print(f"    {r['method']:>14} γ={r['gamma']}: traced {r['traced']:.2f}× τ {r['traced_tau']:.2f}  {real_part}{same}")
        both = [r for r in rows if "real" in r]
        print(f"  {sum(bool(r['within']) for r in both)}/{len(both)} traced speedups inside the real CI; "
              f"{sum(bool(r['same_within']) for r in both)}/{len(both)} with the traced rounds timed by the real "
              f"run's cost model (the host's speed between the runs taken out)")
    if "throughput" in figs:
        th = figs["throughput"]
        one = th["one_at_a_time_tok_s"]
        print(f"  batched decode steps ({th.get('tokens', 32)} tokens each, prefill apart): one at a time {one:.2f} tok/s | "
              f"{th['prompts']} together {th['batched_tok_s']:.2f} tok/s ({th['batched_tok_s'] / one:.1f}×)"
              + (f" | {th['big']} together {th['big_batch_tok_s']:.2f} tok/s ({th['big_batch_tok_s'] / one:.1f}×)"
                 if "big" in th else "") + f"; same tokens on {th['same_tokens']}/{th['prompts']} prompts")
    if "prefill" in figs:
        f = figs["prefill"]
        print(f"  prefill, prompt tokens/s: one 40-token prompt {f['one_40_tok_s']:.0f} | eight together "
              f"{f['eight_40_tok_s']:.0f} | one of 800 {f['one_800_tok_s']:.0f}")
    if "saves" in figs:
        f = figs["saves"]
        print(f"  {f['saves']} saves of a growing results.json: whole file checked {f['full_check_s']:.1f} s | new "
              f"entries only {f['new_entries_s']:.1f} s")
    if "big" in figs:
        b = figs["big"]
        print(f"  {b['prompts']} prompts traced γ 1–8: results.json {b['run_s']:.0f} s + brief {b['brief_s']:.0f} s = "
              f"{b['total_s'] / 60:.1f} min (+ loading {b['load_s']:.0f} s); verdict {b['verdict']}: {b['headline']}")
    print(json.dumps(figs, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
