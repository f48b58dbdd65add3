"""A traced run: a small real subset for timing and the check, then every prompt traced in batches.

    1. real subset   n = cfg.real_prompts prompts, spread over the shorter half of the workload, run by the real
                     decoder (bench.measure_prompt): the baseline, and every method at one γ each,
                     the γ rotating over the run's draft lengths (1, 3, 6, 8 for γ 1–8 and n = 4) so
                     the cost model sees short and long rounds at the price of one γ per prompt; a method
                     whose drafting already cost more than it can save (slow_methods) stays at γ ≤
                     config.REAL_SLOW_GAMMA
    2. cost model    analysis.costs.cost_model on those real runs: target step, draft line per method,
                     verify curve, per-round overhead; prefill per prompt token. Verify lengths up to
                     γ_max + 1 that the subset's rounds left thin are timed by probe.py, not read off a line
    3. traces        every prompt (the subset too), sorted by length, in even batches of ≤ TRACE_BATCH (batches()):
                     generate.trace_batch, then scan.rounds for every method × γ, timed by timing.py
    4. the check     on each subset prompt the traced rounds of the γ it ran for real must equal the
                     real decoder's rounds (drafted, accepted, emitted per round, in order), and the
                     traced baseline tokens the real baseline's; plus the traced-vs-measured speedup

Every prompt record keeps the real runs it has and gains traced ones flagged `"traced": true`, and a
compact `trace` (per method: leading-match run per round start, match bits and β per position).

A drafter that learns earlier responses (suffix decoding) learns them in the order this run serves them: the
real subset first, then the traced prompts batch by batch (shortest first); a subset prompt's traced rounds are
replayed with the responses it knew when it was decoded for real, so the check compares like with like.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from specdec import config, methods
from specdec.analysis import costs, summary
from specdec.errors import SpecdecError
from specdec.measure import bench
from specdec.traces import probe, scan, timing
from specdec.traces.generate import Timings, TraceDrafter, trace_batch


def check_gammas(draft_lengths, n: int) -> list[int]:
    """The γ each of n subset prompts runs for real: evenly spread over the sorted draft lengths."""
    g = sorted(draft_lengths)
    if n <= 0:
        return []
    return [g[int(round(i * (len(g) - 1) / max(n - 1, 1)))] for i in range(n)] if n <= len(g) else \
        [g[i % len(g)] for i in range(n)]


def slow_methods(records) -> set[str]:
    """Method keys whose drafting, over these prompt records' real runs, cost more than
    config.REAL_SLOW_FACTOR target steps per accepted token (seconds and tokens summed over the records; the
    target step from their baselines). An accepted token saves at most one target step, so such a drafter
    loses at every γ on these prompts, and its longer rounds only cost more time."""
    steps = sum(max(p["baseline"]["new_tokens"] - 1, 0) for p in records)
    if not steps:
        return set()
    step_s = sum(p["baseline"]["decode_s"] for p in records) / steps
    drafting: dict[str, float] = {}
    accepted: dict[str, int] = {}
    for p in records:
        for r in p["runs"]:
            if not r.get("traced"):
                drafting[r["method"]] = drafting.get(r["method"], 0.0) + sum(x["draft_s"] for x in r["rounds"])
                accepted[r["method"]] = accepted.get(r["method"], 0) + sum(x["accepted"] for x in r["rounds"])
    return {m for m, s in drafting.items() if s > config.REAL_SLOW_FACTOR * step_s * accepted[m]}


def subset_gammas(sources, prompt_id: str, gamma: int, slow: set[str]) -> dict[str, tuple[int, ...]]:
    """The γ each method runs for real on a subset prompt: the rotation's γ, capped at
    config.REAL_SLOW_GAMMA for a slow method (keyed as bench.measure_prompt reads it: key_for(prompt_id))."""
    keys = [k for s in sources if (k := s.key_for(prompt_id)) is not None]
    return {k: (min(gamma, config.REAL_SLOW_GAMMA) if k in slow else gamma,) for k in keys}


def batches(lengths: list[int], most: int, budget: int | None = None) -> list[range]:
    """Index ranges over prompts sorted by length: groups of at most `most`, as even as possible (50 by 32:
    25 + 25, not 32 + 18: a batch decodes as many steps as its longest output, so a small last batch costs
    nearly a full one), each split in halves until rows × longest length ≤ budget positions (the batch
    cache holds that many positions per layer, pads included)."""
    n = -(-len(lengths) // most) if lengths else 0
    out, todo = [], [range(i * len(lengths) // n, (i + 1) * len(lengths) // n) for i in range(n)]
    while todo:
        r = todo.pop(0)
        if budget is None or len(r) == 1 or len(r) * max(lengths[i] for i in r) <= budget:
            out.append(r)
        else:
            mid = r.start + len(r) // 2
            todo[:0] = [range(r.start, mid), range(mid, r.stop)]
    return out


def subset(prompt_ids: list[str], n: int) -> list[str]:
    """n prompt ids spread evenly over the list (a stratified workload keeps categories interleaved)."""
    if n >= len(prompt_ids):
        return list(prompt_ids)
    return [prompt_ids[int(i * len(prompt_ids) / n)] for i in range(n)]


def trace_drafters(sources: list[bench.DraftSource]) -> tuple[list[TraceDrafter], list[str]]:
    """TraceDrafters for the sources teacher-forced along the target's pass (each family's registry entry
    says how); the keys that cannot be traced (a lossy acceptance rule changes the output, so the drafter
    leaves the target's path). Sources with neither are replayed on the trace (scan.replay)."""
    out, skipped = [], []
    for s in sources:
        if methods.lossy(s.key):
            skipped.append(s.key)
        elif (d := methods.spec(s.key).trace_drafter(s)) is not None:
            out.append(d)
    return out, skipped


def execute_traced(target, sources, encoded: list[tuple], cfg, eos: set[int], decode_text, manifest: dict, *,
                   previous: list[dict], on_record, should_stop=None, on_stage=None,
                   on_real_done=None) -> tuple[str, dict]:
    """Run steps 1–4 over `encoded` = [(Prompt, ids)] not yet done; `previous` are prompt records already
    in the results (a resumed run: their real subset counts). on_record(record) saves one prompt record
    (a new one, or a subset prompt again with its traced runs added); on_real_done() is called once the
    real subset is measured: every timing the results use is taken by then. Returns (status, report)."""
    if not cfg.sampling.greedy:
        raise SpecdecError("traced mode is exact for greedy decoding only: use --mode real with temperature > 0")
    model = target.model
    traced_sources, skipped = trace_drafters(sources)
    report = {"real_prompts": [], "check_gammas": {}, "skipped_methods": skipped, "batches": 0}
    t_start = time.perf_counter()

    # 1. the real subset (a resumed run reuses the subset it already measured). known[id]: how many responses
    # drafters that learn from earlier ones had learned when the prompt was measured for real (its replay
    # must draft from the same); a resumed run learned its previous records in their order.
    real = {p["id"]: p for p in previous if not p["baseline"].get("traced")}
    known = {p["id"]: i for i, p in enumerate(previous) if p["id"] in real}
    want = max(cfg.real_prompts - len(real), 0)
    # From the shorter half of the prompts: a real prompt pays its prefill once per configuration, and the
    # cost model it calibrates is per token (per step, per prompt token), not per prompt.
    lengths = sorted(len(ids) for _, ids in encoded)
    short = lengths[(len(lengths) - 1) // 2] if lengths else 0
    todo_ids = [p.id for p, ids in encoded if len(ids) <= short]
    chosen = [] if want == 0 else subset([i for i in todo_ids if i not in real], want)
    gammas = check_gammas(cfg.draft_lengths, len(real) + len(chosen))[len(real):]
    by_id = {p.id: (p, ids) for p, ids in encoded}
    t0 = time.perf_counter()
    for pid, gamma in zip(chosen, gammas):
        if should_stop and should_stop():
            return "interrupted", report
        if on_stage:
            on_stage("measuring (real subset)", pid)
        prompt, ids = by_id[pid]
        known[pid] = len(sources[0].responses) if sources else 0
        measured = bench.measure_prompt(model, sources, ids, pid, replace(cfg, draft_lengths=(gamma,)), eos,
                                        decode_text, should_stop,
                                        gammas=subset_gammas(sources, pid, gamma, slow_methods(real.values())))
        if measured is None:
            return "interrupted", report
        record = {"id": pid, "category": prompt.category, "prompt": prompt.text, **measured}
        real[pid] = record
        on_record(record)
    report["real_s"] = time.perf_counter() - t0
    if not real:
        raise SpecdecError("traced mode needs at least one prompt measured for real (--real-prompts ≥ 1): "
                           "its timings come from them")
    report["real_prompts"] = list(real)
    report["check_gammas"] = {pid: sorted({r["draft_length"] for r in p["runs"]}) for pid, p in real.items()}

    # 2. the cost model of the real subset, its verify curve probed at every length its rounds left thin
    data = summary.collect({"manifest": manifest, "prompts": list(real.values())})
    counts = data.rounds["drafted"].value_counts().to_dict() if len(data.rounds) else {}
    t0 = time.perf_counter()
    passes = probe.probe(model, _probe_prompts(real, by_id, encoded),
                         probe.thin(counts, max(cfg.draft_lengths), config.VERIFY_CURVE_MIN_ROUNDS),
                         config.VERIFY_PROBE_PASSES)
    report["probe"] = {**passes, "seconds": time.perf_counter() - t0}
    if on_real_done:
        on_real_done()
    cm = costs.cost_model(data, probe=passes)
    pre = timing.prefill_model(data.runs, data.prompts)
    report["cost_model"] = {"target_step_s": cm.target_step_s, "draft_step_s": dict(cm.draft_step_s),
                            "draft_round_s": dict(cm.draft_round_s), "overhead_s": dict(cm.overhead_s),
                            "verify_intercept": cm.verify_intercept, "verify_slope": cm.verify_slope,
                            "prefill_s_per_token": pre.base_s_per_token,
                            "verify_probed": [int(k) for k in cm.verify["drafted"][cm.verify["source"] == "probe"]]}

    # 3. traces, batched by length
    lookahead = max(cfg.draft_lengths)
    todo = sorted(((p, ids) for p, ids in encoded if not _has_traces(real.get(p.id))), key=lambda e: len(e[1]))
    tim = Timings()
    check = {"prompts": 0, "configs": 0, "rounds": 0, "rounds_equal": 0, "configs_equal": 0,
             "baseline_equal": 0, "mismatches": [], "speedup": []}
    t0 = time.perf_counter()
    status = "complete"
    ctx = Replays(model, cfg.sampling, known)
    room = cfg.max_new_tokens
    for rows in batches([len(ids) + room for _, ids in todo], config.TRACE_BATCH, config.TRACE_BATCH_POSITIONS):
        batch = [todo[i] for i in rows]
        if should_stop and should_stop():
            status = "interrupted"
            break
        if on_stage:
            on_stage(f"tracing {len(batch)} prompts", batch[0][0].id)
        forced = [_response_ids(prompt, target.tokenizer, eos, cfg.max_new_tokens)
                  if cfg.responses and prompt.id not in real else None for prompt, _ in batch]
        report["responses"] = report.get("responses", 0) + sum(f is not None for f in forced)
        traces = trace_batch(model, [ids for _, ids in batch], cfg.max_new_tokens, cfg.sampling, eos,
                             traced_sources, lookahead=lookahead, timings=tim, forced=forced)
        report["batches"] += 1
        for (prompt, ids), tr, f in zip(batch, traces, forced):
            record = _record(prompt, ids, tr, real.get(prompt.id), sources, skipped, cfg, eos, cm, pre, decode_text,
                             check, ctx)
            if f is not None:  # the logged answer, not the local target's: say so on the record
                record["baseline"]["logged_response"] = True
            on_record(record)
            if prompt.id not in real:  # a real prompt's response was learned when it was measured
                bench.learn(sources, tr.tokens)
    report["trace_s"] = time.perf_counter() - t0
    report["timings"] = {"target_prefill_s": tim.prefill_s, "target_steps_s": tim.steps_s,
                         "drafters_s": tim.drafters_s, "target_tokens": tim.tokens}
    report["check"] = _summarise(check)
    report["total_s"] = time.perf_counter() - t_start
    return status, report


def _probe_prompts(real: dict, by_id: dict, encoded: list[tuple]) -> list[list[int]]:
    """Token ids to probe the verify curve on: the real subset's prompts (a resumed run may have traced some
    already, and no longer holds their ids: then as many of the shortest prompts left)."""
    ids = [by_id[pid][1] for pid in real if pid in by_id]
    return ids or [e[1] for e in sorted(encoded, key=lambda e: len(e[1]))[:len(real)]]


def _response_ids(prompt, tokenizer, eos: set[int], max_new_tokens: int) -> list[int] | None:
    """A prompt's logged response as the ids the target would emit (ending in EOS), or None without one.
    Scoring it is exact for what greedy SD would do if the local target wrote that response; where the
    target would have written something else, it is the drafters' agreement with the logged answer."""
    if not prompt.response:
        return None
    ids = list(tokenizer(prompt.response, add_special_tokens=False)["input_ids"])
    if not eos:
        return ids[:max_new_tokens]
    end = tokenizer.eos_token_id if tokenizer.eos_token_id in eos else min(eos)
    return (ids + [end])[:max_new_tokens]


class Replays:
    """Drafters scored by replaying them on a trace (scan.replay): built by their registry entry, with the
    responses the prompt's drafter knew (known[id] for a real-subset prompt, else all learned so far)."""

    def __init__(self, model, sampling, known: dict):
        self.model, self.sampling, self.known = model, sampling, known
        self.vocab_size = model.get_output_embeddings().weight.shape[0]

    def drafter(self, source, prompt_id: str):
        return bench.make_drafter(source, self.model, self.sampling, None, self.vocab_size,
                                  responses=self.known.get(prompt_id))


def _has_traces(record: dict | None) -> bool:
    return record is not None and any(r.get("traced") for r in record["runs"])


def _record(prompt, ids, tr, real: dict | None, sources, skipped, cfg, eos, cm, pre, decode_text, check,
            replays: Replays) -> dict:
    """The prompt's record: its real baseline and runs when it is a subset prompt, traced ones for the rest."""
    text = decode_text(tr.tokens)
    if real is None:
        base = timing.baseline_record(tr.tokens, len(ids), cm, pre, text)
        runs = []
    else:
        base, runs = real["baseline"], list(real["runs"])
        check["prompts"] += 1
        check["baseline_equal"] += int(base["tokens"] == tr.tokens)
    have = {(r["method"], r["draft_length"]) for r in runs}
    agreement = {}
    for source in sources:
        key = source.key_for(prompt.id)
        if key is None or source.key in skipped:
            continue
        drafter = tr.drafters.get(source.key) or replays.drafter(source, prompt.id)
        agreement[key] = scan.agreement(tr, drafter, max(cfg.draft_lengths))
        for gamma in source.gammas(cfg.draft_lengths):
            rounds = scan.rounds(tr, drafter, gamma, cfg.max_new_tokens, eos)
            traced = timing.run_record(key, gamma, tr.tokens, rounds, len(ids), cm, pre, text)
            if (key, gamma) in have:
                measured = next(r for r in runs if (r["method"], r["draft_length"]) == (key, gamma))
                _compare(prompt.id, key, gamma, measured, traced, base, check)
                continue
            runs.append(traced)
    order = {(s.key_for(prompt.id) or s.key): i for i, s in enumerate(sources)}
    runs.sort(key=lambda r: (order.get(r["method"], len(order)), r["draft_length"]))
    return {"id": prompt.id, "category": prompt.category, "prompt": prompt.text, "prompt_tokens": len(ids),
            "baseline": base, "runs": runs, "trace": agreement}


def _compare(pid, key, gamma, measured, traced, base, check) -> None:
    a, b = timing.round_shape(measured["rounds"]), timing.round_shape(traced["rounds"])
    check["configs"] += 1
    check["configs_equal"] += int(a == b)
    check["rounds"] += len(a)
    check["rounds_equal"] += sum(x == y for x, y in zip(a, b))
    if a != b:
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        check["mismatches"].append({"prompt": pid, "method": key, "draft_length": gamma, "first_round": first})
    check["speedup"].append({"prompt": pid, "method": key, "draft_length": gamma,
                             "real": timing.speedup(base, measured), "traced": timing.speedup(base, traced)})


def _summarise(check: dict) -> dict:
    sp = check.pop("speedup")
    errs = [s["traced"] / s["real"] - 1 for s in sp if s["real"] and np.isfinite(s["real"])]
    check["speedup"] = sp
    check["speedup_error_median"] = float(np.median(np.abs(errs))) if errs else None
    check["agreement"] = check["rounds_equal"] / check["rounds"] if check["rounds"] else None
    return check
