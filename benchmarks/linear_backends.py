"""Target forward time over a KV cache for 1, 3 and 5 new tokens, with each CPU matmul backend.

    python benchmarks/linear_backends.py [--model qwen2.5-coder-1.5b-instruct] [--context 200] [--reps 6]

A speculative round pays off only when verifying γ+1 tokens costs little more than one decode step, so
what matters is the ratio T(3)/T(1), not just T(1). Backends, side by side in one process on the same
loaded model: every backend of specdec.decoding.fastlinear — "default" (F.linear), "weight-major" ((W·xᵀ)ᵀ) and
"onednn" (oneDNN's inner product on the dense weight) — applied to every Linear, the vocabulary
projection included. float32.

With --decode N, also decodes N prompts of sample_workloads/mixed.jsonl with the bundled draft, greedy,
γ=3, under weight-major and oneDNN (both models switched): baseline ms/token, SD decode speedup, and
whether SD reproduced the baseline.

Prints one line per backend and one for the plan specdec tuned at load ("tuned": the fastest backend per row
count, fastlinear.tune) — median ms for 1/3/5 tokens over 3 interleaved rounds, and T(3)/T(1) — then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specdec.decoding import fastlinear
from specdec.measure import models  # noqa: E402
from specdec.config import BUNDLED_DRAFT, BUNDLED_TARGET, SamplingConfig  # noqa: E402
from specdec.decoding.loops import baseline_decode, speculative_decode  # noqa: E402
from specdec.decoding.drafters import DraftModelDrafter  # noqa: E402
from specdec.measure.workloads import encode_prompt, load_workload  # noqa: E402
from specdec.decoding.forward import forward, new_cache, rollback  # noqa: E402

ROWS = (1, 3, 5)


def forward_ms(model, context: int, rows: int, reps: int) -> float:
    """Median ms of one forward of `rows` new tokens after a `context`-token prefill (cache rolled back)."""
    ids = torch.randint(0, 1000, (context + rows,), generator=torch.Generator().manual_seed(0))
    cache = new_cache(model)
    times = []
    with torch.inference_mode():
        forward(model, ids[:context], cache, 1)
        for _ in range(reps + 1):
            t = time.perf_counter()
            forward(model, ids[context:], cache, rows)
            times.append(time.perf_counter() - t)
            rollback(cache, context)
    return statistics.median(times[1:]) * 1e3


def decode_check(target, draft, n_prompts: int, tokens: int = 32, gamma: int = 3) -> dict:
    """Baseline vs SD (γ) on n mixed prompts: baseline ms/token, decode speedup, identical outputs."""
    greedy, eos = SamplingConfig(), set(models.eos_ids(target))
    vocab = target.model.get_output_embeddings().weight.shape[0]
    workload = load_workload(Path(__file__).resolve().parents[1] / "sample_workloads" / "mixed.jsonl",
                             max_prompts=n_prompts, seed=1)
    base_s = spec_s = 0.0
    base_tokens = identical = 0
    for p in workload.prompts:
        ids = torch.tensor(encode_prompt(p, target.tokenizer, 4096)[0])
        base = baseline_decode(target.model, ids, tokens, greedy, eos)
        spec = speculative_decode(target.model, DraftModelDrafter(draft.model, greedy, None, vocab), ids, gamma,
                                  tokens, greedy, eos)
        base_s, spec_s = base_s + base.decode_s, spec_s + spec.decode_s
        base_tokens += base.new_tokens
        identical += base.tokens == spec.tokens
    return {"base_ms_per_token": round(1e3 * base_s / base_tokens, 1), "sd_speedup": round(base_s / spec_s, 3),
            "identical": identical, "prompts": len(workload.prompts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=BUNDLED_TARGET)
    parser.add_argument("--context", type=int, default=200)
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--decode", type=int, default=0, help="also decode this many prompts with the bundled draft")
    args = parser.parse_args()
    if args.decode:
        loaded, draft = models.load_pair(args.model, BUNDLED_DRAFT, dtype="float32", device="cpu")
    else:
        loaded, draft = models.load_model(args.model, dtype="float32", device="cpu"), None
    model = loaded.model
    print(f"# {args.model}, float32, context {args.context}, torch threads {torch.get_num_threads()}; "
          f"specdec chose {getattr(model, 'specdec_linear', 'default')}", file=sys.stderr)
    out = {}
    plan = model.specdec_plan
    # interleaved rounds, every backend (and the tuned plan) once per round: the machine's slow spells land on all
    rounds = 3
    got = {name: {k: [] for k in ROWS} for name in [*fastlinear.BACKENDS, "tuned"]}
    for _ in range(rounds):
        for name in got:
            fastlinear.use(model, plan if name == "tuned" else name)
            for k in ROWS:
                got[name][k].append(forward_ms(model, args.context, k, args.reps))
    for name, by_k in got.items():
        ms = {k: statistics.median(v) for k, v in by_k.items()}
        out[name] = {"ms": {str(k): round(v, 1) for k, v in ms.items()}, "verify3_over_step": round(ms[3] / ms[1], 2)}
        print(f"{name:<13} " + "  ".join(f"{k} tok {v:7.1f} ms" for k, v in ms.items())
              + f"   T(3)/T(1) {ms[3] / ms[1]:.2f}" + (f"   ({fastlinear.plan_label(plan)})" if name == "tuned" else ""))
    fastlinear.use(model, plan)
    decode = {}
    for name in ("weight-major", "onednn") if draft is not None else ():
        fastlinear.use(model, name), fastlinear.use(draft.model, name)
        decode[name] = d = decode_check(loaded, draft, args.decode)
        print(f"decode {name:<13} baseline {d['base_ms_per_token']:.0f} ms/token, SD γ=3 speedup "
              f"{d['sd_speedup']:.2f}×, identical {d['identical']}/{d['prompts']}")
    print(json.dumps({"model": args.model, "context": args.context, "backends": out, "decode": decode}))


if __name__ == "__main__":
    main()
