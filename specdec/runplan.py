"""Planning a run before it starts: presets, checked settings, and how long it will take.

The estimate is a formula over measured speeds (`Speeds`): one target step, one draft step, how a
verify pass over k + 1 tokens grows with k, and prefill per prompt token. The speeds come either
from a short calibration with the loaded models (`calibrate`: a few timed forwards, ~5 s for the
bundled pair on 2 CPU cores) or from an earlier run of the same pair (`speeds_from_results`).
Acceptance is unknown before the run, so the estimate is a range over plausible α (the run's own
measured α when the speeds come from a run): low acceptance means more target passes, a longer run.

Per prompt with N new tokens and P prompt tokens (τ(α, γ) = Leviathan Eq. 1):
    baseline       P·prefill + (N − 1)·t_target
    draft, γ       P·(prefill + draft prefill) + (N − 1)/τ · (γ·t_draft + t_verify(γ + 1))
    prompt lookup  P·prefill + (N − 1)/τ · t_verify(γ + 1)          (lookup itself ≈ free)
    t_verify(k + 1) = t_target · (1 + slope · k)
plus one warm-up pass (runner.execute: WARMUP_TOKENS at the largest γ). Generations that stop at
EOS early make the real run shorter; model loading is not included.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import torch

from specdec import config
from specdec.bench import WARMUP_TOKENS
from specdec.config import RunConfig, SamplingConfig
from specdec.errors import SpecdecError
from specdec.projection import expected_tokens

# α assumed before anything is measured: (optimistic, typical, pessimistic). A same-family draft
# model on chat/code traffic usually lands at 0.5–0.8; n-gram lookup matches far less often.
ACCEPTANCE_GUESS = {"draft": (0.85, 0.6, 0.3), "prompt-lookup": (0.6, 0.3, 0.1)}
CHARS_PER_TOKEN = 3.5  # rough BPE ratio for English prose and code, for prompt lengths before tokenizing
CHAT_TEMPLATE_TOKENS = 20  # role markers and the generation prompt a chat template adds
CALIBRATION_STEPS = 6  # timed one-token steps per model
CALIBRATION_TEXT = ("Speculative decoding lets a small draft model propose several tokens that the large "
                    "target model then checks in a single forward pass, so that each expensive pass can "
                    "emit more than one token when the draft guesses well.")


@dataclass(frozen=True)
class Preset:
    name: str
    label: str
    max_prompts: int | None  # None: every prompt of the workload
    max_new_tokens: int
    methods: tuple[str, ...]
    draft_lengths: tuple[int, ...]
    description: str


# "quick" is sized for 2 CPU cores and the bundled pair (target ≈ 4 tok/s in bf16): about 5 minutes
# once the models are cached. The others trade time for tighter confidence intervals.
PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("quick", "Quick look", 6, 32, ("draft", "prompt-lookup"), (2, 4),
           "6 prompts × 32 tokens: a first look in about 5 minutes on a 2-core CPU with the bundled pair; "
           "too few prompts for a confident verdict"),
    Preset("standard", "Standard", 24, 64, ("draft", "prompt-lookup"), (2, 4, 6),
           "24 prompts × 64 tokens: enough prompts for a pooled verdict (≥ 20); under an hour on a 2-core CPU"),
    Preset("thorough", "Thorough", None, 128, ("draft", "prompt-lookup"), (1, 2, 3, 4, 6, 8),
           "every prompt × 128 tokens, γ from 1 to 8: per-category verdicts need ≥ 8 prompts each; "
           "hours on a CPU, minutes on a GPU"),
)}


def run_config(*, target: str, draft, methods, draft_lengths, max_new_tokens: int,
               max_prompts: int | None = None, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
               seed: int = config.DEFAULT_SEED, dtype: str = config.DEFAULT_DTYPE,
               device: str = config.DEFAULT_DEVICE, layer_skip_layers=(), medusa_heads: str | None = None) -> RunConfig:
    """A checked RunConfig from form or command-line values; every problem is one SpecdecError line.
    draft: one spec or several (a list, or comma-separated)."""
    target = str(target).strip()
    parts = draft.split(",") if isinstance(draft, str) else list(draft or ())
    drafts = tuple(dict.fromkeys(p.strip() for p in parts if str(p).strip()))
    methods = tuple(dict.fromkeys(methods))
    if not target:
        raise SpecdecError("choose a target model (a bundled name, hub id, local directory or .gguf file)")
    unknown = [m for m in methods if m not in config.METHODS]
    if unknown or not methods:
        raise SpecdecError(f"choose at least one method from {', '.join(config.METHODS)}"
                           + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    if "draft" in methods and not drafts:
        raise SpecdecError("the draft-model method needs a draft model")
    layers = tuple(sorted({int(n) for n in layer_skip_layers or ()}))
    if layers and layers[0] < 1:
        raise SpecdecError("layer-skip layer counts must be at least 1")
    if "medusa" in methods and not (medusa_heads and str(medusa_heads).strip()):
        raise SpecdecError("the medusa method needs trained heads: run `python -m specdec train-heads` and pass "
                           "its output directory")
    gammas = tuple(sorted({int(g) for g in draft_lengths}))
    if not gammas or gammas[0] < 1 or gammas[-1] > config.MAX_DRAFT_LENGTH:
        raise SpecdecError(f"choose draft lengths γ from 1 to {config.MAX_DRAFT_LENGTH}")
    if int(max_new_tokens) < 1:
        raise SpecdecError("max new tokens must be at least 1")
    if max_prompts is not None and int(max_prompts) < 1:
        raise SpecdecError("the number of prompts must be at least 1")
    if temperature < 0 or not 0 < top_p <= 1 or top_k < 0:
        raise SpecdecError("temperature must be ≥ 0, top-p in (0, 1] and top-k ≥ 0")
    return RunConfig(target=target, drafts=drafts if "draft" in methods else (), methods=methods,
                     layer_skip_layers=layers if "layer-skip" in methods else (),
                     medusa_heads=str(medusa_heads).strip() if "medusa" in methods else None, draft_lengths=gammas,
                     max_new_tokens=int(max_new_tokens), max_prompts=None if max_prompts is None else int(max_prompts),
                     sampling=SamplingConfig(temperature=float(temperature), top_p=float(top_p), top_k=int(top_k)),
                     seed=int(seed), dtype=dtype, device=device)


# ---- speeds ----

@dataclass(frozen=True)
class Speeds:
    """Seconds on this machine. verify_slope: a target pass over k + 1 tokens costs
    target_step_s · (1 + verify_slope · k). acceptance: method → α (measured, or the guess)."""

    target_step_s: float
    draft_step_s: float | None
    verify_slope: float
    prefill_s_per_token: float
    draft_prefill_s_per_token: float
    source: str
    acceptance: dict[str, float] = field(default_factory=dict)


def calibrate(target, draft=None, max_gamma: int = 4, text: str = CALIBRATION_TEXT,
              steps: int = CALIBRATION_STEPS) -> Speeds:
    """Time a few forwards of the loaded models (specdec.models.LoadedModel): a prefill of `text`,
    `steps` one-token steps, and one pass over max_gamma + 1 tokens; the draft's step and prefill
    likewise. Each model warms up once first. Takes a few seconds; this is a measurement, never cache it."""
    from specdec.forward import clock, forward, new_cache, rollback

    ids = target.tokenizer(text)["input_ids"]
    t_prefill, t_step, t_verify = _time_model(target.model, ids, steps, max_gamma + 1, clock, forward, new_cache, rollback)
    slope = max((t_verify / t_step - 1.0) / max_gamma, 0.0) if max_gamma else 0.0
    d_step = d_prefill = None
    if draft is not None:
        d_prefill, d_step, _ = _time_model(draft.model, ids, steps, 0, clock, forward, new_cache, rollback)
    return Speeds(target_step_s=t_step, draft_step_s=d_step, verify_slope=slope,
                  prefill_s_per_token=t_prefill / len(ids),
                  draft_prefill_s_per_token=(d_prefill / len(ids)) if d_prefill else 0.0,
                  source=f"a {steps}-step timed decode with the loaded models")


def _time_model(model, ids, steps, verify_tokens, clock, forward, new_cache, rollback):
    device = next(model.parameters()).device
    prompt = torch.tensor(ids, device=device)
    with torch.inference_mode():
        warm = new_cache(model)
        forward(model, prompt[:8], warm)
        forward(model, prompt[8:9], warm)
        cache = new_cache(model)
        t0 = clock(device)
        forward(model, prompt, cache)
        t1 = clock(device)
        for i in range(steps):
            forward(model, prompt[i:i + 1], cache)
        t2 = clock(device)
        t_verify = 0.0
        if verify_tokens:
            length = cache.get_seq_length()
            forward(model, prompt[:verify_tokens], cache, keep=verify_tokens)
            t3 = clock(device)
            rollback(cache, length)
            t_verify = t3 - t2
    return t1 - t0, (t2 - t1) / steps, t_verify


def speeds_from_results(results: dict) -> Speeds:
    """Speeds measured by an earlier run (its cost model), with its measured α per method."""
    from specdec import analysis, costs

    m = analysis.collect(results)
    cm = costs.cost_model(m)
    runs = m.runs
    acceptance = {}
    for method, g in runs.groupby("method"):
        tested = g["tested"].sum()
        if tested:
            acceptance[method] = float(g["accepted"].sum() / tested)
    prompts = m.prompts
    per_token = float(prompts["base_prefill_s"].sum() / max(prompts["prompt_tokens"].sum(), 1))
    draft_runs = runs[runs["method"] == "draft"]
    # A draft run's prefill is target + draft prefill; what exceeds the baseline's is the draft's.
    d_prefill = 0.0
    if len(draft_runs):
        extra = (draft_runs["prefill_s"] - draft_runs["base_prefill_s"]).clip(lower=0).sum()
        d_prefill = float(extra / max(draft_runs["prompt_tokens"].sum(), 1))
    return Speeds(target_step_s=cm.target_step_s, draft_step_s=cm.draft_step_s.get("draft"),
                  verify_slope=max(cm.verify_slope, 0.0), prefill_s_per_token=per_token,
                  draft_prefill_s_per_token=d_prefill,
                  source=f"run {results['manifest'].get('run_id', '?')}", acceptance=acceptance)


# ---- the estimate ----

@dataclass(frozen=True)
class Estimate:
    """Seconds for the whole run at typical acceptance (total_s) and the range over acceptance
    (low_s optimistic, high_s pessimistic); by_config: typical seconds per prompt per configuration."""

    total_s: float
    low_s: float
    high_s: float
    n_prompts: int
    by_config: dict[str, float]
    acceptance: dict[str, tuple[float, float, float]]
    source: str


def approx_prompt_tokens(prompt_chars: list[int]) -> float:
    """Mean prompt length in tokens, guessed from characters (before any tokenizer is loaded)."""
    if not prompt_chars:
        return float(CHAT_TEMPLATE_TOKENS)
    return statistics.fmean(prompt_chars) / CHARS_PER_TOKEN + CHAT_TEMPLATE_TOKENS


def generation_s(method: str, gamma: int, new_tokens: int, prompt_tokens: float, speeds: Speeds,
                 alpha: float) -> float:
    """Seconds for one generation of new_tokens (formula in the module docstring)."""
    t = speeds.target_step_s
    prefill = prompt_tokens * speeds.prefill_s_per_token
    steps = max(new_tokens - 1, 0)
    if method == "baseline":
        return prefill + steps * t
    tau = float(expected_tokens(min(max(alpha, 0.0), 1.0), gamma))
    verify = t * (1.0 + speeds.verify_slope * gamma)
    if method == "draft":
        if speeds.draft_step_s is None:
            raise SpecdecError("no draft-model speed measured: calibrate with the draft model loaded")
        prefill += prompt_tokens * speeds.draft_prefill_s_per_token
        return prefill + steps / tau * (gamma * speeds.draft_step_s + verify)
    return prefill + steps / tau * verify


def estimate_run(cfg: RunConfig, n_prompts: int, prompt_tokens: float, speeds: Speeds) -> Estimate:
    """Estimated wall time of runner.execute for cfg on n_prompts prompts of mean length prompt_tokens."""
    alphas = {m: ((speeds.acceptance[m],) * 3 if m in speeds.acceptance else ACCEPTANCE_GUESS[m])
              for m in cfg.methods}
    totals = []
    by_config: dict[str, float] = {}
    for which in range(3):  # optimistic, typical, pessimistic
        def prompt_s(new_tokens: int, gammas) -> float:
            s = generation_s("baseline", 0, new_tokens, prompt_tokens, speeds, 0.0)
            for m in cfg.methods:
                for g in gammas:
                    part = generation_s(m, g, new_tokens, prompt_tokens, speeds, alphas[m][which])
                    if which == 1 and new_tokens == cfg.max_new_tokens:
                        by_config[f"{m} γ={g}"] = part
                    s += part
            return s

        warm = prompt_s(WARMUP_TOKENS, (max(cfg.draft_lengths),))
        totals.append(warm + n_prompts * prompt_s(cfg.max_new_tokens, cfg.draft_lengths))
    by_config = {"baseline": generation_s("baseline", 0, cfg.max_new_tokens, prompt_tokens, speeds, 0.0), **by_config}
    return Estimate(total_s=totals[1], low_s=totals[0], high_s=totals[2], n_prompts=n_prompts, by_config=by_config,
                    acceptance=alphas, source=speeds.source)


def format_duration(seconds: float) -> str:
    """3 s, 4 min 10 s, 2 h 05 min."""
    if not math.isfinite(seconds):
        return "unknown"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"

