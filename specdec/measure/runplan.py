"""Planning a run before it starts: presets, checked settings, and how long it will take.

The estimate is a formula over measured speeds (`Speeds`): one target step, one draft step, how a
verify pass over k + 1 tokens grows with k, and prefill per prompt token (specdec.measure.speeds). The
speeds come either from a short calibration with the loaded models (specdec.measure.calibrate: a few timed
forwards, ~5 s for the bundled pair on 2 CPU cores) or from an earlier run of the same pair
(speeds.speeds_from_results). This module is arithmetic only: it runs no model.
Acceptance is unknown before the run, so the estimate is a range over plausible α (the run's own
measured α when the speeds come from a run): low acceptance means more target passes, a longer run.

Per prompt with N new tokens and P prompt tokens (τ(α, γ) = Leviathan Eq. 1):
    baseline       P·prefill + (N − 1)·t_target
    draft, γ       P·(prefill + draft prefill) + (N − 1)/τ · (γ·t_draft + t_verify(γ + 1))
    layer-skip L   as a draft model with t_draft ≈ t_target · L/n_layers (measured when calibrated)
    Medusa         P·prefill + (N − 1)/τ · (t_heads + t_verify(γ' + 1)), γ' = min(γ, K heads):
                   one pass of the heads per round, whatever γ
    prompt lookup  P·prefill + (N − 1)/τ · t_verify(γ + 1)          (lookup itself ≈ free)
    t_verify(k + 1) = t_target · (1 + slope · k)
plus one warm-up pass (runner.execute: WARMUP_TOKENS at the largest γ). Generations that stop at
EOS early make the real run shorter; model loading is not included.

Every draft model of a run has its own t_draft: measured by calibration, taken from a stored run that
measured it, or scaled from the target's step by parameter count (decoding at batch 1 reads every
weight once per step, so step time follows model size).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from specdec import config, methods
from specdec import methods as M  # run_config's parameter `methods` shadows the module there
from specdec.methods import layerskip as layerskip_family, medusa as medusa_family
from specdec.methods.family import EstimateContext
from specdec.measure import bundled
from specdec.measure.bench import WARMUP_TOKENS
from specdec.config import RunConfig, SamplingConfig
from specdec.errors import SpecdecError
from specdec.measure.speeds import Speeds
from specdec.analysis.projection import expected_tokens

# α assumed before anything is measured: (optimistic, typical, pessimistic), each family's (its registry entry).
ACCEPTANCE_GUESS = {name: f.acceptance_guess for name, f in methods.REGISTRY.items()}
CHARS_PER_TOKEN = 3.5  # rough BPE ratio for English prose and code, for prompt lengths before tokenizing
CHAT_TEMPLATE_TOKENS = 20  # role markers and the generation prompt a chat template adds


@dataclass(frozen=True)
class Preset:
    name: str
    label: str
    max_prompts: int | None  # None: every prompt of the workload
    max_new_tokens: int
    methods: tuple[str, ...]
    draft_lengths: tuple[int, ...]
    description: str
    real_prompts: int = config.DEFAULT_REAL_PROMPTS  # traced mode: prompts also decoded for real (timing + check)


# Sized for 2 CPU cores and the bundled pair in traced mode (specdec.traces: every γ 1–8 from one batched
# target pass per prompt, a real subset of DEFAULT_REAL_PROMPTS prompts for timing and the check); the
# minutes are benchmarks/traced.py's on a 2-core AMD EPYC, float32, models cached. Sampling runs real
# (every prompt × configuration decoded), far slower: fewer prompts there.
PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("quick", "Quick look", 20, 32, ("draft", "prompt-lookup"), tuple(range(1, 9)),
           "20 prompts × 32 tokens, every γ from 1 to 8 traced (2 prompts also run for real: the timing and the "
           "check): the fewest prompts a pooled verdict accepts, in minutes — measured on a 2-core CPU with the "
           "bundled pair: 12 prompts in 5.1 min from an empty model cache, conversion included",
           real_prompts=2),
    Preset("standard", "Standard", 200, 64, ("draft", "prompt-lookup"), tuple(range(1, 9)),
           "200 prompts × 64 tokens, γ 1–8 traced: per-category verdicts (≥ 8 prompts each) on a mixed "
           "workload; under an hour on a 2-core CPU"),
    Preset("compare", "Compare methods", 50, 64, ("draft", "prompt-lookup", "layer-skip"), tuple(range(1, 9)),
           "50 prompts × 64 tokens with the draft model, prompt lookup and layer-skip (half the target's layers) "
           "side by side, γ 1–8 traced (2 prompts also run for real): 10.7–12.6 min to results and the brief on a "
           "2-core CPU with the bundled pair. Add Medusa once heads are trained on this workload (below), or more "
           "draft models", real_prompts=2),
    Preset("thorough", "Thorough", None, 128, ("draft", "prompt-lookup"), tuple(range(1, 9)),
           "every prompt × 128 tokens, γ from 1 to 8 traced: per-category verdicts need ≥ 8 prompts each; "
           "hours on a CPU, minutes on a GPU"),
)}


def run_config(*, target: str, draft, methods, draft_lengths, max_new_tokens: int,
               max_prompts: int | None = None, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
               seed: int = config.DEFAULT_SEED, dtype: str = config.DEFAULT_DTYPE,
               device: str = config.DEFAULT_DEVICE, layer_skip_layers=(), medusa_heads: str | None = None,
               medusa_typical: bool = False, mode: str | None = None,
               real_prompts: int = config.DEFAULT_REAL_PROMPTS, responses: bool = False) -> RunConfig:
    """A checked RunConfig from form or command-line values; every problem is one SpecdecError line.
    draft: one spec or several (a list, or comma-separated)."""
    target = str(target).strip()
    parts = draft.split(",") if isinstance(draft, str) else list(draft or ())
    drafts = tuple(dict.fromkeys(p.strip() for p in parts if str(p).strip()))
    if not target:
        raise SpecdecError("choose a target model (a bundled name, hub id, local directory or .gguf file)")
    families = M.check_families(methods)
    layers = tuple(sorted({int(n) for n in layer_skip_layers or ()}))
    if layers and layers[0] < 1:
        raise SpecdecError("layer-skip layer counts must be at least 1")
    # Each family checks the options it needs; the options of families not measured are cleared.
    options = {"drafts": drafts, "layer_skip_layers": layers,
               "medusa_heads": str(medusa_heads).strip() if medusa_heads else None, "medusa_typical": medusa_typical}
    for name, family in M.REGISTRY.items():
        if name in families:
            family.check_settings(options)
        else:
            options.update(family.unused(options))
    gammas = tuple(sorted({int(g) for g in draft_lengths}))
    if not gammas or gammas[0] < 1 or gammas[-1] > config.MAX_DRAFT_LENGTH:
        raise SpecdecError(f"choose draft lengths γ from 1 to {config.MAX_DRAFT_LENGTH}")
    if not 1 <= int(max_new_tokens) <= config.MAX_NEW_TOKENS:
        raise SpecdecError(f"max new tokens must be at least 1 and at most {config.MAX_NEW_TOKENS}, got {int(max_new_tokens)}")
    if max_prompts is not None and int(max_prompts) < 1:
        raise SpecdecError("the number of prompts must be at least 1")
    if temperature < 0 or not 0 < top_p <= 1 or top_k < 0:
        raise SpecdecError("temperature must be ≥ 0, top-p in (0, 1] and top-k ≥ 0")
    # Traced rounds are exact for greedy decoding only (specdec.traces): sampling runs real.
    # Medusa's typical acceptance is lossy: it leaves the target's path, so it cannot be traced either.
    mode = mode or (config.DEFAULT_MODE if temperature <= 0 and not medusa_typical else "real")
    if mode not in config.MODES:
        raise SpecdecError(f"mode must be one of {', '.join(config.MODES)}")
    if mode == "traced" and temperature > 0:
        raise SpecdecError("traced mode is exact for greedy decoding only: use mode real with temperature > 0")
    if mode == "traced" and medusa_typical:
        raise SpecdecError("Medusa's typical acceptance is lossy and cannot be traced: use mode real")
    if mode == "traced" and int(real_prompts) < 1:
        raise SpecdecError("traced mode needs at least 1 real prompt: its timings come from them")
    if responses and mode != "traced":
        raise SpecdecError("logged responses are scored in traced mode only (greedy)")
    return RunConfig(target=target, drafts=options["drafts"], methods=families,
                     layer_skip_layers=options["layer_skip_layers"], medusa_heads=options["medusa_heads"],
                     medusa_typical=bool(medusa_typical), draft_lengths=gammas,
                     max_new_tokens=int(max_new_tokens), max_prompts=None if max_prompts is None else int(max_prompts),
                     sampling=SamplingConfig(temperature=float(temperature), top_p=float(top_p), top_k=int(top_k)),
                     seed=int(seed), dtype=dtype, device=device, mode=mode, real_prompts=int(real_prompts),
                     responses=bool(responses))


# ---- the estimate ----

@dataclass(frozen=True)
class DrafterCost:
    """What one method key costs in the estimate. step_s: one draft forward (Medusa: the heads' pass
    of a round); prefill_s_per_token: the drafter's own prefill; max_gamma: Medusa's K (a round drafts
    at most K tokens); acceptance: (optimistic, typical, pessimistic) α; how: where step_s came from."""

    key: str
    step_s: float
    prefill_s_per_token: float = 0.0
    max_gamma: int | None = None
    acceptance: tuple[float, float, float] = (0.5, 0.5, 0.5)
    how: str = "measured"


def default_layer_skip(n_layers: int) -> int:
    """The layer-skip L a run uses when none is given: half the target's layers (methods.layerskip)."""
    return layerskip_family.default_layers(n_layers)


def drafter_costs(cfg: RunConfig, speeds: Speeds, medusa_k: int | None = None) -> list[DrafterCost]:
    """One DrafterCost per method key cfg measures, in runner.draft_sources' order. Raises SpecdecError
    (one line) when a drafter's speed is neither measured nor derivable (calibrate with it loaded).
    medusa_k: the chosen heads' K (None: not known, γ is not capped)."""
    out = []
    for fam in cfg.methods:
        guess = methods.spec(fam).acceptance_guess

        def alphas(*keys, guess=guess):
            for k in keys:
                if k is not None and k in speeds.acceptance:
                    return (speeds.acceptance[k],) * 3
            return guess
        out += methods.spec(fam).estimate_costs(EstimateContext(cfg, speeds, medusa_k, alphas, guess))
    return out


MEDUSA_ROUND_SHARE = medusa_family.ROUND_SHARE  # what a read-out of the target's pass costs in a traced batch


@dataclass(frozen=True)
class Estimate:
    """Seconds for the whole run at typical acceptance (total_s) and the range over acceptance
    (low_s optimistic, high_s pessimistic); by_config: typical seconds per prompt per configuration
    ("baseline", "<method key> γ=<g>"); how: method key → where its draft speed came from; draft_speed: the
    same per by_config row (none for the baseline), so a table of by_config never parses a row back into a key."""

    total_s: float
    low_s: float
    high_s: float
    n_prompts: int
    by_config: dict[str, float]
    acceptance: dict[str, tuple[float, float, float]]
    source: str
    how: dict[str, str] = field(default_factory=dict)
    draft_speed: dict[str, str] = field(default_factory=dict)


def _config_label(key: str, gamma: int) -> str:
    """A row of Estimate.by_config: 'draft:a γ=4'."""
    return f"{key} γ={gamma}"


def approx_prompt_tokens(prompt_chars: list[int]) -> float:
    """Mean prompt length in tokens, guessed from characters (before any tokenizer is loaded)."""
    if not prompt_chars:
        return float(CHAT_TEMPLATE_TOKENS)
    return statistics.fmean(prompt_chars) / CHARS_PER_TOKEN + CHAT_TEMPLATE_TOKENS


def generation_s(method: str, gamma: int, new_tokens: int, prompt_tokens: float, speeds: Speeds,
                 alpha: float, cost: DrafterCost | None = None) -> float:
    """Seconds for one generation of new_tokens (formula in the module docstring). method: "baseline"
    or a method key; cost: its DrafterCost (None: the first draft model's, or prompt lookup's)."""
    t = speeds.target_step_s
    prefill = prompt_tokens * speeds.prefill_s_per_token
    steps = max(new_tokens - 1, 0)
    if method == "baseline":
        return prefill + steps * t
    if cost is None:
        if not methods.uses_model(method):
            cost = DrafterCost(method, 0.0)
        elif speeds.draft_step_s is None:
            raise SpecdecError("no draft-model speed measured: calibrate with the draft model loaded")
        else:
            cost = DrafterCost(method, speeds.draft_step_s, speeds.draft_prefill_s_per_token)
    if cost.max_gamma:
        gamma = min(gamma, cost.max_gamma)
    tau = float(expected_tokens(min(max(alpha, 0.0), 1.0), gamma))
    verify = t * (1.0 + speeds.verify_slope * gamma)
    draft = methods.draft_steps(method, gamma) * cost.step_s
    return prefill + prompt_tokens * cost.prefill_s_per_token + steps / tau * (draft + verify)


def estimate_run(cfg: RunConfig, n_prompts: int, prompt_tokens: float, speeds: Speeds,
                 medusa_k: int | None = None) -> Estimate:
    """Estimated wall time of runner.execute for cfg on n_prompts prompts of mean length prompt_tokens.
    Raises SpecdecError when a drafter's speed is unknown (see drafter_costs)."""
    if cfg.mode == "traced":
        return estimate_traced(cfg, n_prompts, prompt_tokens, speeds, medusa_k)
    costs = drafter_costs(cfg, speeds, medusa_k)
    totals = []
    by_config: dict[str, float] = {}
    draft_speed = {_config_label(c.key, g): c.how for c in costs for g in cfg.draft_lengths}
    for which in range(3):  # optimistic, typical, pessimistic
        def prompt_s(new_tokens: int, gammas) -> float:
            s = generation_s("baseline", 0, new_tokens, prompt_tokens, speeds, 0.0)
            for c in costs:
                for g in gammas:
                    part = generation_s(c.key, g, new_tokens, prompt_tokens, speeds, c.acceptance[which], c)
                    if which == 1 and new_tokens == cfg.max_new_tokens:
                        by_config[_config_label(c.key, g)] = part
                    s += part
            return s

        warm = prompt_s(WARMUP_TOKENS, (max(cfg.draft_lengths),))
        totals.append(warm + n_prompts * prompt_s(cfg.max_new_tokens, cfg.draft_lengths))
    by_config = {"baseline": generation_s("baseline", 0, cfg.max_new_tokens, prompt_tokens, speeds, 0.0), **by_config}
    return Estimate(total_s=totals[1], low_s=totals[0], high_s=totals[2], n_prompts=n_prompts, by_config=by_config,
                    acceptance={c.key: c.acceptance for c in costs}, source=speeds.source,
                    how={c.key: c.how for c in costs}, draft_speed=draft_speed)


def estimate_traced(cfg: RunConfig, n_prompts: int, prompt_tokens: float, speeds: Speeds,
                    medusa_k: int | None = None) -> Estimate:
    """A traced run (specdec.traces.run) in two parts, the keys of by_config:
        real subset   min(real_prompts, n) prompts, each the baseline + every method at one γ (the γ rotating
                      over the draft lengths as traces.run.check_gammas does), at the three acceptance levels;
                      plus the verify probe (traces.probe) of the lengths that rotation does not run
        traced        every prompt once, in even batches of ≤ TRACE_BATCH rows: each prompt prefilled alone, then
                      max_new_tokens + max γ steps of B rows, each costing a step · (1 + verify_slope · (B − 1))
                      (rows share the weight reads as a verify pass's tokens do) for the target and for each
                      draft model; layer-skip and Medusa read the target's own pass plus an lm_head (MEDUSA_ROUND_SHARE)
    Acceptance changes only the real part."""
    from specdec.traces.run import check_gammas
    costs = drafter_costs(cfg, speeds, medusa_k)
    t = speeds.target_step_s
    n_real = min(cfg.real_prompts, n_prompts)
    gammas = check_gammas(cfg.draft_lengths, n_real)
    real = []
    for which in range(3):
        s = 0.0
        for tokens, gs in ((WARMUP_TOKENS, [max(cfg.draft_lengths)]), *((cfg.max_new_tokens, [g]) for g in gammas)):
            s += generation_s("baseline", 0, tokens, prompt_tokens, speeds, 0.0)
            s += sum(generation_s(c.key, g, tokens, prompt_tokens, speeds, c.acceptance[which], c) for c in costs for g in gs)
        real.append(s)
    probed = [k for k in range(1, max(cfg.draft_lengths) + 1) if k not in gammas]
    if probed and n_real:
        sweeps = math.ceil(config.VERIFY_PROBE_PASSES / n_real) * n_real
        probe_s = sweeps * t * sum(1.0 + speeds.verify_slope * k for k in [0, *probed])
        real = [s + probe_s for s in real]
    positions = n_prompts * (prompt_tokens + cfg.max_new_tokens)  # traces.run.batches: rows × positions budget
    batches = max(math.ceil(n_prompts / config.TRACE_BATCH), math.ceil(positions / config.TRACE_BATCH_POSITIONS)) \
        if n_prompts else 0
    rows = n_prompts / batches if batches else 1.0  # traces.run.batches splits evenly
    share = 1.0 + speeds.verify_slope * (rows - 1)
    per_step = t * share
    per_prefill = prompt_tokens * rows * speeds.prefill_s_per_token
    for c in costs:
        traced_cost = methods.spec(c.key).traced_cost
        if traced_cost == "own":  # its own model stepped beside the target
            per_step += c.step_s * share
            per_prefill += prompt_tokens * rows * c.prefill_s_per_token
        elif traced_cost == "readout":  # a read-out of the target's own pass
            per_step += t * MEDUSA_ROUND_SHARE * share
    steps = cfg.max_new_tokens + max(cfg.draft_lengths)
    traced = batches * (per_prefill + steps * per_step)
    by_config = {f"real subset: {n_real} prompts": real[1], f"traced: {n_prompts} prompts in {batches} batch{'' if batches == 1 else 'es'}": traced}
    return Estimate(total_s=real[1] + traced, low_s=real[0] + traced, high_s=real[2] + traced, n_prompts=n_prompts,
                    by_config=by_config, acceptance={c.key: c.acceptance for c in costs}, source=speeds.source,
                    how={c.key: c.how for c in costs})


@dataclass(frozen=True)
class TrainingEstimate:
    """Seconds for `train-heads`: collecting the target's continuations, then the optimiser steps
    (None when no stored run recorded a training step for this target)."""

    collect_s: float
    train_s: float | None
    prompts: int
    source: str


def estimate_training(n_collect: int, prompt_tokens: float, steps: int, speeds: Speeds,
                      heads: int = config.MEDUSA_HEADS,
                      new_tokens: int = config.MEDUSA_TRAIN_TOKENS) -> TrainingEstimate:
    """Each collected prompt costs at most a baseline generation of new_tokens plus one more forward over
    prompt + continuation for the hidden states (medusa.continuation_data) — an upper bound, since most
    continuations end at EOS sooner (the recorded example: 42 of 96 tokens on average, so collecting took
    half of this bound); training costs steps × the recorded step,
    scaled from the recorded K to `heads` (each head's logits are a batch × vocabulary projection).
    n_collect: training prompts + the held-out prompts scored."""
    per_prompt = (speeds.prefill_s_per_token * (2 * prompt_tokens + new_tokens)
                  + max(new_tokens - 1, 0) * speeds.target_step_s)
    step = speeds.medusa_train_step_s
    if step and speeds.medusa_train_heads:
        step *= heads / speeds.medusa_train_heads
    train = steps * step if step else None
    return TrainingEstimate(collect_s=n_collect * per_prompt, train_s=train, prompts=n_collect, source=speeds.source)


def parse_layers(text: str, n_layers: int | None = None) -> tuple[int, ...]:
    """Layer-skip depths typed as '8, 14' (spaces or commas) → (8, 14); '' → () (the default, half the
    target's layers). n_layers: the target's, when known, to refuse L ≥ it. One-line SpecdecError."""
    parts = [p for p in str(text or "").replace(",", " ").split() if p]
    try:
        layers = tuple(sorted({int(p) for p in parts}))
    except ValueError:
        raise SpecdecError(f"layer-skip L must be whole numbers such as 8, 14 (got {str(text).strip()!r})") from None
    if layers and layers[0] < 1:
        raise SpecdecError("layer-skip L must be at least 1")
    if layers and n_layers and layers[-1] >= n_layers:
        raise SpecdecError(f"layer-skip L={layers[-1]}: the target has {n_layers} layers; choose 1 … {n_layers - 1}")
    return layers


@dataclass(frozen=True)
class Setup:
    """Time before the first prompt: converting models not yet in the cache (first use) and loading
    them. converting: the specs to convert; unknown: specs whose cost cannot be told (hub ids)."""

    convert_s: float
    load_s: float
    converting: tuple[str, ...]
    unknown: tuple[str, ...]

    @property
    def total_s(self) -> float:
        return self.convert_s + self.load_s


def setup_estimate(cfg: RunConfig, loaded: bool) -> Setup:
    """Seconds to convert (config.CONVERT_BYTES_PER_S of GGUF) and load (config.LOAD_S_PER_GGUF_BYTE
    times the GGUF size, or the directory's weight bytes at LOAD_BYTES_PER_S) the models of cfg; loaded:
    the measuring process already holds them (nothing to do)."""
    if loaded:
        return Setup(0.0, 0.0, (), ())
    specs = [cfg.target, *(s for f in cfg.methods for s in methods.spec(f).model_specs(cfg))]
    convert = load = 0.0
    converting, unknown = [], []
    for spec in dict.fromkeys(specs):
        pending = bundled.conversion_pending(spec)
        if pending is None:
            unknown.append(spec)
            continue
        if pending:
            converting.append(spec)
            convert += pending / config.CONVERT_BYTES_PER_S
        size = bundled.BUNDLES[spec].size if spec in bundled.BUNDLES else pending or _weight_bytes(spec)
        load += size * config.LOAD_S_PER_GGUF_BYTE if (spec in bundled.BUNDLES or pending) \
            else size / config.LOAD_BYTES_PER_S
    return Setup(convert, load, tuple(converting), tuple(unknown))


def _weight_bytes(spec: str) -> int:
    root = Path(spec).expanduser()
    return sum(f.stat().st_size for f in root.glob("*") if f.suffix in (".safetensors", ".bin") and f.is_file())


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

