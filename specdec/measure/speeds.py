"""Speeds: what one forward costs on this machine, where they come from, and which to trust.

A Speeds is measured by calibration (specdec.measure.calibrate) or read back from an earlier run's cost
model (speeds_from_results). Before a run the app prices its estimate with the first recorded speeds that
cover every drafter of the run (for_run), and prices Medusa training with the first recorded run that trained
heads (for_training); recorded() lists the candidates in the order they are trusted.

Public API
    Speeds (frozen dataclass, seconds); speeds_from_results(results) -> Speeds
    recorded(target, example_target, runs, load_example, load_run) -> iterator of Speeds | None
    for_run(cfg, candidates) -> Speeds | None; for_training(candidates) -> Speeds | None
    training_estimate(prompts, steps, heads, speeds) -> runplan.TrainingEstimate
"""

from __future__ import annotations

from dataclasses import dataclass, field

from specdec import config, methods
from specdec.errors import SpecdecError


@dataclass(frozen=True)
class Speeds:
    """Seconds on this machine. verify_slope: a target pass over k + 1 tokens costs
    target_step_s · (1 + verify_slope · k). acceptance: method key → α measured by a stored run.

    draft_step_s / draft_prefill_s_per_token: the first draft model's; draft_steps, draft_prefills,
    draft_parameters, draft_acceptance: every draft model's, by spec. layer_steps: L → seconds per
    layer-skip step where measured; medusa_round_s: one pass of K heads (None: not measured).
    target_layers / target_parameters / head_parameters (the lm_head's): what unmeasured drafters are
    scaled by."""

    target_step_s: float
    draft_step_s: float | None
    verify_slope: float
    prefill_s_per_token: float
    draft_prefill_s_per_token: float
    source: str
    acceptance: dict[str, float] = field(default_factory=dict)
    draft_steps: dict[str, float] = field(default_factory=dict)
    draft_prefills: dict[str, float] = field(default_factory=dict)
    draft_parameters: dict[str, int] = field(default_factory=dict)
    draft_acceptance: dict[str, float] = field(default_factory=dict)
    layer_steps: dict[int, float] = field(default_factory=dict)
    medusa_round_s: float | None = None
    medusa_train_step_s: float | None = None  # one optimiser step of Medusa training, as a stored run recorded it
    medusa_train_heads: int | None = None  # the K that step trained (the step's cost grows with K: K × batch rows)
    target_layers: int | None = None
    target_parameters: int | None = None
    head_parameters: int | None = None


def speeds_from_results(results: dict) -> Speeds:
    """Speeds measured by an earlier run (its cost model), with its measured α per method key and the
    step of every drafter it measured (draft models by spec, layer-skip by L, Medusa per round)."""
    from specdec.analysis import summary as analysis
    from specdec.analysis import costs

    m = analysis.collect(results)
    cm = costs.cost_model(m)
    runs, rounds = m.runs, m.rounds
    manifest = results["manifest"]
    models = manifest.get("models") or {}
    acceptance = {}
    for method, g in runs.groupby("method"):
        tested = g["tested"].sum()
        if tested:
            acceptance[method] = float(g["accepted"].sum() / tested)
    prompts = m.prompts
    per_token = float(prompts["base_prefill_s"].sum() / max(prompts["prompt_tokens"].sum(), 1))
    drafters = models.get("drafters") or {}
    # Each family adds what the run measured about its keys (its registry entry's recorded_speeds).
    found = {"draft_steps": {}, "draft_prefills": {}, "draft_parameters": {}, "draft_acceptance": {},
             "layer_steps": {}, "medusa_keys": [], "medusa_train_step_s": None, "medusa_train_heads": None}
    for key in runs["method"].unique():
        if methods.is_valid(key):
            methods.spec(key).recorded_speeds(key, drafters.get(key), models, runs, cm, acceptance, found)
    d_steps, d_prefills, d_params, d_accept = (found[k] for k in ("draft_steps", "draft_prefills", "draft_parameters",
                                                                  "draft_acceptance"))
    layer_steps, medusa_keys = found["layer_steps"], found["medusa_keys"]
    medusa_rounds = rounds[rounds["method"].isin(medusa_keys) & (rounds["drafted"] > 0)]
    first = (models.get("draft") or {}).get("spec")
    target = models.get("target") or {}
    return Speeds(target_step_s=cm.target_step_s, draft_step_s=d_steps.get(first, cm.draft_step_s.get("draft")),
                  verify_slope=max(cm.verify_slope, 0.0), prefill_s_per_token=per_token,
                  draft_prefill_s_per_token=d_prefills.get(first, 0.0),
                  source=f"run {manifest.get('run_id', '?')}", acceptance=acceptance, draft_steps=d_steps,
                  draft_prefills=d_prefills, draft_parameters={k: v for k, v in d_params.items() if v},
                  draft_acceptance=d_accept, layer_steps=layer_steps,
                  medusa_round_s=float(medusa_rounds["draft_s"].mean()) if len(medusa_rounds) else None,
                  medusa_train_step_s=found["medusa_train_step_s"], medusa_train_heads=found["medusa_train_heads"],
                  target_layers=target.get("num_layers"), target_parameters=target.get("parameters"))


# ---- which recorded speeds to trust ----

def recorded(target: str, example_target: str | None, runs, load_example, load_run):
    """Speeds measured by the recorded example and the stored runs of this target, in that order, loaded
    lazily (a caller that stops at the first good one loads no more). runs: store rows (dicts with target,
    n_prompts); load_example() and load_run(row) return Speeds or None (unreadable)."""
    if example_target is not None and example_target == target:
        yield load_example()
    for row in runs:
        if row["target"] == target and row["n_prompts"]:
            yield load_run(row)


def for_run(cfg, candidates) -> Speeds | None:
    """The first candidate that prices every drafter of cfg (a RunConfig); when none does, the first found
    (the estimate then says which model to time); None when there is none."""
    from specdec.measure.runplan import drafter_costs  # runplan imports Speeds from here: import at call time

    first = None
    for speeds in candidates:
        if speeds is None:
            continue
        try:
            drafter_costs(cfg, speeds)
            return speeds
        except SpecdecError:
            first = first or speeds
    return first


def for_training(candidates) -> Speeds | None:
    """The first candidate that recorded a Medusa training step, else the first found; None when none."""
    speeds = None
    for found in candidates:
        if found is not None and (speeds is None or found.medusa_train_step_s):
            speeds = found
            if found.medusa_train_step_s:
                break
    return speeds


def training_estimate(prompts, steps: int, heads: int, speeds: Speeds):
    """What training `heads` Medusa heads for `steps` optimiser steps on these workload prompts would take
    (runplan.TrainingEstimate): self-distillation over the training split plus the held-out prompts scored."""
    from specdec.decoding import medusa  # torch: only when training is priced
    from specdec.measure import runplan  # runplan imports Speeds from here: import at call time

    train, held = medusa.split(prompts)
    prompt_tokens = runplan.approx_prompt_tokens([len(p.input_text) for p in prompts])
    return runplan.estimate_training(len(train) + min(len(held), config.MEDUSA_EVAL_PROMPTS), prompt_tokens,
                                     steps, speeds, heads=heads)
