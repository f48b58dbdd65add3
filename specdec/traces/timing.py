"""Seconds for traced generations from the measured cost model, and the traced-vs-real check.

A traced round is timed as the real decoder's rounds on the calibration subset were measured
(analysis.costs.CostModel, fitted to those real runs):

    draft_s    d0 + t_draft · drafted                 (the method's fitted draft line)
    verify_s   T_verify(drafted + 1)                  (the measured verify curve, its line where unmeasured)
    decode_s   Σ rounds (draft_s + verify_s + overhead_s of the method)
    prefill_s  prompt tokens × the subset's prefill seconds per prompt token (baseline), plus the
               method's own extra prefill per prompt token (a draft model prefills the prompt too)

The baseline of a traced prompt is timed the same way: (new_tokens − 1) · t_target after its prefill.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from specdec.analysis.costs import CostModel


@dataclass(frozen=True)
class Prefill:
    """Seconds of prefill per prompt token: the baseline's, and each method's on top of it."""

    base_s_per_token: float
    extra_s_per_token: dict[str, float]


def prefill_model(runs, prompts) -> Prefill:
    """From analysis.summary's prompt and run tables of the real subset: ratio of totals."""
    base = float(prompts["base_prefill_s"].sum() / max(prompts["prompt_tokens"].sum(), 1))
    extra = {}
    for method, g in runs.groupby("method"):
        extra[method] = max(float((g["prefill_s"] - g["base_prefill_s"]).sum() / max(g["prompt_tokens"].sum(), 1)), 0.0)
    return Prefill(base, extra)


def timed_rounds(rounds: list[dict], method: str, cm: CostModel) -> tuple[list[dict], float]:
    """Rounds with draft_s and verify_s filled in; and the generation's decode seconds."""
    if not rounds:
        return [], 0.0
    drafted = np.array([r["drafted"] for r in rounds])
    draft = cm.draft_s(method, drafted)
    verify = cm.verify_s(drafted)
    out = [{**r, "draft_s": float(d), "verify_s": float(v)} for r, d, v in zip(rounds, draft, verify)]
    decode = float(draft.sum() + verify.sum()) + cm.overhead_s.get(method, 0.0) * len(rounds)
    return out, decode


def baseline_record(tokens: list[int], prompt_tokens: int, cm: CostModel, pre: Prefill, text: str) -> dict:
    return {"tokens": tokens, "text": text, "new_tokens": len(tokens),
            "prefill_s": prompt_tokens * pre.base_s_per_token,
            "decode_s": max(len(tokens) - 1, 0) * cm.target_step_s, "traced": True}


def run_record(method: str, gamma: int, tokens: list[int], rounds: list[dict], prompt_tokens: int, cm: CostModel,
               pre: Prefill, text: str) -> dict:
    """A runs[] entry as bench.generation_record writes it, flagged traced; tokens are the target's (greedy
    speculative decoding emits exactly them)."""
    timed, decode = timed_rounds(rounds, method, cm)
    prefill = prompt_tokens * (pre.base_s_per_token + pre.extra_s_per_token.get(method, 0.0))
    return {"method": method, "draft_length": gamma, "tokens": tokens, "text": text, "new_tokens": len(tokens),
            "prefill_s": prefill, "decode_s": decode, "rounds": timed, "traced": True}


def round_shape(rounds: list[dict]) -> list[tuple[int, int, int]]:
    """What the check compares: (drafted, accepted, emitted) per round, in order."""
    return [(r["drafted"], r["accepted"], r.get("emitted", r["accepted"] + 1)) for r in rounds]


def speedup(base: dict, run: dict) -> float:
    """Decode-phase speedup of one generation (baseline time per token ÷ its time per token)."""
    b = base["decode_s"] / max(base["new_tokens"] - 1, 1)
    s = run["decode_s"] / max(run["new_tokens"] - 1, 1)
    return b / s if s > 0 else float("nan")
