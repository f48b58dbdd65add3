"""Deployment what-if: the measured acceptance, projected onto serving hardware and batch sizes.

The speedup measured by a run belongs to the machine it ran on. Acceptance (τ per γ, from the
per-position rounds) belongs to the models, the prompts and the sampling settings, and carries over.
Step times on other hardware come from a roofline over the model sizes in the manifest:

    bytes  = weights + batch · context · KV bytes per token          (read once per forward)
    flops  = 2 · parameters · batch · tokens per sequence            (attention FLOPs ignored)
    t_step = max(bytes / (bandwidth · η_mem), flops / (peak · η_flops)) + layers · layer latency

η_mem, η_flops and the per-layer latency (kernel launches) are stated assumptions on GPUs. "this
machine" is calibrated on the run's own measurements instead (effective bandwidth, FLOPS and
per-layer latency that reproduce the measured target step, draft step and verify slope), and on a
CPU memory traffic and arithmetic do not overlap, so its terms add rather than take the max.

A speculative round at draft length γ costs Σ_k h_k · methods.draft_steps(key, k) draft steps over
the measured histogram h of tokens drafted per round (a round drafts fewer than γ when the output is
nearly done) — k for a draft model or layer-skip, one for Medusa heads, zero for prompt lookup (a
host-side string match) — of that method's drafter (costs.draft_size: a draft model's weights and KV; the target's first
L layers + lm_head; the heads + lm_head), one verify pass over mean_drafted + 1 tokens per sequence,
and the bookkeeping overhead measured here as a share of a target step. This machine adds its
measured per-round drafter cost d0. Speedup = τ · t_target(B, 1) / round.
Large batches are compute-bound, where verifying γ + 1 tokens costs ≈ γ + 1 steps: gains shrink and
turn into losses (vLLM reports 1.4–1.8× slowdowns at high load).

Public API
    HardwareProfile (frozen dataclass), PROFILES {name: profile}, THIS_MACHINE = "this-machine"
    profile(name) -> HardwareProfile
    measured_profile(costs, target, draft, memory_gb, dtype, draft_key="draft") -> HardwareProfile
    step_time_s(profile, model, batch, tokens_per_seq, context, dtype) -> (seconds, "memory"|"compute")
    whatif(analysis, hardware=None, batch_sizes=..., gammas=None, context_lens=None, methods=None,
           category="all", dtype=WHATIF_DTYPE) -> DataFrame (assumptions in .attrs["assumptions"])
    assumptions(hardware, dtype, context_lens) -> list[dict(name, value, note)]
    best_by_batch(whatif_df, min_speedup) -> DataFrame;  batch_ranges(best_df) -> list[dict]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from specdec import config
from specdec import methods as M
from specdec.analysis.costs import CostModel, ModelSize, draft_size, drafters, extra_bytes, model_size
from specdec.errors import SpecdecError
from specdec.analysis.bootstrap import resample_weights
from specdec.analysis.projection import ALL, acceptance_profile, acceptance_replicates, gamma_grid

THIS_MACHINE = "this-machine"


@dataclass(frozen=True)
class HardwareProfile:
    name: str
    bandwidth_gbs: float  # peak memory bandwidth, GB/s (1e9)
    peak_tflops: float  # dense BF16 tensor throughput, TFLOPS (no sparsity)
    memory_gb: float
    layer_latency_s: float = config.GPU_LAYER_LATENCY_S
    bandwidth_efficiency: float = config.WHATIF_BANDWIDTH_EFFICIENCY
    compute_efficiency: float = config.WHATIF_COMPUTE_EFFICIENCY
    overlap: bool = True  # memory and compute overlap (GPU roofline: max); False adds them (CPU)
    source: str = ""
    forward_overhead_s: float = config.GPU_FORWARD_OVERHEAD_S  # fixed per forward pass, whatever its size
    tp: int = 1  # tensor-parallel degree: weights, KV and FLOPs split over tp devices of this kind
    allreduce_s: float = config.GPU_ALLREDUCE_S  # latency of one all-reduce (two per layer when tp > 1)
    link_gbs: float = config.GPU_LINK_GBS  # device-to-device bandwidth for the all-reduce's bytes
    engine: str = ""  # the serving engine whose per-forward costs are applied (deployment_profile)


@dataclass(frozen=True)
class EngineProfile:
    """What a serving engine adds to the roofline, per forward pass. Constants and their sources in config."""

    name: str
    forward_overhead_s: float
    layer_latency_s: float
    bandwidth_efficiency: float
    compute_efficiency: float
    source: str


ENGINES: dict[str, EngineProfile] = {e.name: e for e in (
    EngineProfile("vllm", config.VLLM_FORWARD_OVERHEAD_S, config.VLLM_LAYER_LATENCY_S,
                  config.WHATIF_BANDWIDTH_EFFICIENCY, config.WHATIF_COMPUTE_EFFICIENCY, config.VLLM_SOURCE),
    EngineProfile("sglang", config.VLLM_FORWARD_OVERHEAD_S, config.VLLM_LAYER_LATENCY_S,
                  config.WHATIF_BANDWIDTH_EFFICIENCY, config.WHATIF_COMPUTE_EFFICIENCY,
                  "as vLLM (CUDA graphs, paged KV); no separate calibration"),
    EngineProfile("hf-eager", config.HF_FORWARD_OVERHEAD_S, config.HF_LAYER_LATENCY_S,
                  config.WHATIF_BANDWIDTH_EFFICIENCY, config.WHATIF_COMPUTE_EFFICIENCY, config.HF_SOURCE),
)}
DEFAULT_ENGINE = "vllm"
# llama.cpp has no entry here: no publication gives its per-forward constants, on GPUs or CPUs. Where a
# llama.cpp engine run exists, analysis/engine_check.py derives its profile from that run's baseline levels
# and checks the projection against the speculative side.


def deployment_profile(hardware: str | HardwareProfile, engine: str = DEFAULT_ENGINE, tp: int = 1) -> HardwareProfile:
    """A GPU profile with an engine's per-forward costs and a tensor-parallel degree applied."""
    import dataclasses

    hw = hardware if isinstance(hardware, HardwareProfile) else profile(hardware)
    if hw.name == THIS_MACHINE:
        return hw
    try:
        e = ENGINES[engine]
    except KeyError:
        raise SpecdecError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}") from None
    if not (isinstance(tp, int) and 1 <= tp <= 16):
        raise SpecdecError(f"tensor-parallel degree must be 1 … 16, got {tp!r}")
    return dataclasses.replace(hw, forward_overhead_s=e.forward_overhead_s, layer_latency_s=e.layer_latency_s,
                               bandwidth_efficiency=e.bandwidth_efficiency, compute_efficiency=e.compute_efficiency,
                               tp=tp, engine=e.name)


# Vendor datasheet figures (dense, no sparsity). A10G is AWS's variant of the A10 without a public
# NVIDIA datasheet; its BF16 figure is the commonly quoted one.
PROFILES: dict[str, HardwareProfile] = {p.name: p for p in (
    HardwareProfile("H100-SXM", 3350.0, 989.0, 80.0, source="NVIDIA H100 SXM5 datasheet"),
    HardwareProfile("A100-80GB", 2039.0, 312.0, 80.0, source="NVIDIA A100 80GB SXM datasheet"),
    HardwareProfile("L4", 300.0, 121.0, 24.0, source="NVIDIA L4 datasheet"),
    HardwareProfile("A10G", 600.0, 70.0, 24.0, source="AWS G5 (A10G), commonly quoted figures"),
    HardwareProfile("RTX-4090", 1008.0, 165.0, 24.0, source="NVIDIA Ada (AD102) whitepaper, FP32 accumulate"),
    HardwareProfile("RTX-3090", 936.0, 71.0, 24.0, source="NVIDIA Ampere GA102 whitepaper, FP16 tensor, FP32 accumulate"),
)}


def profile(name: str) -> HardwareProfile:
    try:
        return PROFILES[name]
    except KeyError:
        names = ", ".join(list(PROFILES) + [THIS_MACHINE])
        raise SpecdecError(f"unknown hardware {name!r}; choose one of {names}") from None


def measured_profile(costs: CostModel, target: ModelSize, draft: ModelSize | None, memory_gb: float,
                     dtype: str, draft_key: str | None = "draft") -> HardwareProfile:
    """Effective bandwidth, FLOPS and per-layer latency that reproduce this run's batch-1 costs:
    t_verify(k) = t_target · (intercept + slope · (k − 1)) gives FLOPS = 2N / (slope · t_target);
    the rest of a target step, and the draft step if a draft model ran, split into bytes / bandwidth
    and layers · latency (latency 0 when only one equation is available or the fit goes negative).
    draft: the step size of method draft_key (a γ-step drafter, whose draft_step_s is one forward)."""
    t_t = costs.target_step_s
    slope = max(costs.verify_slope, 0.0)
    flops = 2.0 * target.parameters / (slope * t_t) if slope > 0 else 1e30
    mem_t = max(t_t - 2.0 * target.parameters / flops, 1e-12)  # the non-arithmetic part of a target step
    w_t = target.weight_bytes(dtype)
    bw, lat = w_t / mem_t, 0.0
    t_d = costs.draft_step_s.get(draft_key) if draft_key else None
    if draft is not None and t_d:
        w_d = draft.weight_bytes(dtype)
        mem_d = max(t_d - 2.0 * draft.parameters / flops, 1e-12)
        # mem = W / bw + L · lat for both models: two equations, two unknowns (1/bw, lat).
        A = np.array([[w_t, target.num_layers], [w_d, draft.num_layers]], dtype=float)
        try:
            inv_bw, lat_fit = np.linalg.solve(A, [mem_t, mem_d])
            if inv_bw > 0 and lat_fit >= 0:
                bw, lat = 1.0 / inv_bw, float(lat_fit)
        except np.linalg.LinAlgError:
            pass
    return HardwareProfile(THIS_MACHINE, bw / 1e9, flops / 1e12, memory_gb, layer_latency_s=lat,
                           bandwidth_efficiency=1.0, compute_efficiency=1.0, overlap=False, forward_overhead_s=0.0,
                           source="calibrated on this run's measured target, draft and verify times")


def step_time_s(hw: HardwareProfile, model: ModelSize, batch: int, tokens_per_seq: float, context: float,
                dtype: str) -> tuple[float, str]:
    """One forward of `batch` sequences × tokens_per_seq new tokens over `context` cached tokens:
    fixed per-forward cost + layers · per-layer latency + roofline over 1/tp of the weights, KV and FLOPs
    + with tp > 1 two all-reduces per layer (Megatron-style: after attention and after the MLP), each
    latency + 2(tp − 1)/tp of the activations (batch · tokens · hidden · 2 bytes) over the link.
    Broadcasts over array-valued tokens_per_seq (the bound is then that of the first element)."""
    tp = max(int(hw.tp), 1)
    scalar = isinstance(tokens_per_seq, (int, float))
    tokens = tokens_per_seq if scalar else np.asarray(tokens_per_seq, dtype=float)
    bytes_ = (model.weight_bytes(dtype) + batch * context * model.kv_bytes_per_token(dtype)) / tp
    t_mem = bytes_ / (hw.bandwidth_gbs * 1e9 * hw.bandwidth_efficiency)
    t_cmp = 2.0 * model.parameters * batch * tokens / tp / (hw.peak_tflops * 1e12 * hw.compute_efficiency)
    fixed = hw.forward_overhead_s + model.num_layers * hw.layer_latency_s
    if tp > 1:
        act = batch * tokens * model.hidden_size * 2.0 * 2.0 * (tp - 1) / tp
        fixed = fixed + model.num_layers * 2.0 * (hw.allreduce_s + act / (hw.link_gbs * 1e9))
    if scalar:
        return (max(t_mem, t_cmp) if hw.overlap else t_mem + t_cmp) + fixed, "memory" if t_mem >= t_cmp else "compute"
    bound = "memory" if np.all(t_mem >= t_cmp) else "compute"
    return (np.maximum(t_mem, t_cmp) if hw.overlap else t_mem + t_cmp) + fixed, bound


def _profiles(analysis, hardware) -> list[HardwareProfile]:
    names = hardware if hardware is not None else list(PROFILES) + [THIS_MACHINE]
    names = [names] if isinstance(names, (str, HardwareProfile)) else list(names)
    out = []
    for n in names:
        if isinstance(n, HardwareProfile):
            out.append(n)
        elif n == THIS_MACHINE:
            m = analysis.manifest
            key, size = _fit_drafter(analysis)
            out.append(measured_profile(analysis.costs, model_size(m.get("models", {}).get("target")), size,
                                        float(m.get("hardware", {}).get("memory_gb", 0.0)),
                                        m.get("settings", {}).get("dtype", "float32"), key))
        else:  # a GPU by name: the default engine's calibrated per-forward costs, one device
            out.append(deployment_profile(n, DEFAULT_ENGINE, 1))
    return out


def _fit_drafter(analysis) -> tuple[str | None, ModelSize | None]:
    """The drafter whose measured step calibrates this machine's profile beside the target: the first
    drafter with its own network (a draft model: a second, independent equation), else the first that
    reads the target's own first layers (layer-skip) — the drafters whose step attends over a KV cache."""
    info = drafters(analysis.manifest, analysis.measurements.runs["method"].unique())
    fitting = [k for k, d in info.items() if M.reads_kv(k) and draft_size(k, d) is not None
               and analysis.costs.draft_step_s.get(k)]
    own = [k for k in fitting if M.spec(k).own_network]
    key = (own or fitting or [None])[0]
    return (key, draft_size(key, info[key])) if key else (None, None)


def whatif(analysis, hardware=None, batch_sizes=config.WHATIF_BATCH_SIZES, gammas=None, context_lens=None,
           methods=None, category: str = ALL, dtype: str = config.WHATIF_DTYPE,
           n_boot: int = config.PROJECTION_BOOTSTRAP, seed: int = config.BOOTSTRAP_SEED,
           ci_level: float = config.CI_LEVEL) -> pd.DataFrame:
    """Projected speedup per hardware × method × context × batch size × γ (an Analysis from
    specdec.analysis.analyze; hardware: names or profiles, default every profile plus this machine;
    methods: method keys, default every one measured whose drafter size is known; category: "all" or
    one category, whose acceptance is then used).

    Columns: hardware, method, category, context_len, batch_size, gamma, tau, draft_steps (forwards per
    round), target_step_ms, draft_step_ms, verify_ms, round_ms, base_ms_per_token, sd_ms_per_token,
    speedup, saving_ms_per_token, saving_pct, target_bound, verify_bound, fits_memory,
    speedup_lo, speedup_hi (95% percentile interval of the speedup over n_boot resamples of the prompts'
    measured acceptance pushed through the same model; NaN below MIN_CI_PROMPTS prompts or n_boot 0),
    speedup_band_lo, speedup_band_hi (GPU profiles: the least and most the speedup becomes when one of the
    model's assumptions moves — per-forward cost and per-layer latency × 0.5 and × 2, bandwidth efficiency
    0.6 and 0.9 — at the measured acceptance; NaN for this machine, whose constants are measured)."""
    models = analysis.manifest.get("models", {})
    target = model_size(models.get("target"))
    if target is None:
        raise SpecdecError("the results manifest has no target model sizes: cannot project onto hardware")
    if context_lens is None:
        context_lens = (analysis.memory["context_tokens"],)
    rounds = analysis.measurements.rounds
    if category != ALL:
        rounds = rounds[rounds["category"] == category]
    run_dtype = analysis.manifest.get("settings", {}).get("dtype", "float32")
    info = drafters(analysis.manifest, analysis.measurements.runs["method"].unique())
    profiles = _profiles(analysis, hardware)
    rows = []
    for method, r_m in rounds.groupby("method", sort=True):
        if methods is not None and method not in methods:
            continue
        uses = M.uses_model(method)
        size = draft_size(method, info.get(method))
        if uses and size is None:
            continue  # a drafter of unknown size cannot be projected
        g_src = int(r_m["draft_length"].max())
        gs = gamma_grid(g_src, gammas, M.max_gamma(method, info))
        src = r_m[r_m["draft_length"] == g_src]
        prof = acceptance_profile(src["drafted"].to_numpy(), src["accepted"].to_numpy(), gs, src["prompt_id"].to_numpy())
        n_p = src["prompt_id"].nunique()
        if n_boot and n_p >= config.MIN_CI_PROMPTS:
            W = resample_weights(n_p, n_boot, np.random.default_rng([seed, 11]))
            rep_tau, rep_md = acceptance_replicates(src["drafted"].to_numpy(), src["accepted"].to_numpy(), gs,
                                                    src["prompt_id"].to_numpy(), W)
        else:
            rep_tau = rep_md = None
        overhead_frac = analysis.costs.overhead_s.get(method, 0.0) / analysis.costs.target_step_s
        one_pass = M.steps_per_round(method) == "one"
        for hw in profiles:
            here = hw.name == THIS_MACHINE
            dt = run_dtype if here else dtype
            f_t = _calibration(analysis, hw, target, dt) if here else 1.0
            # The drafter's per-round cost (catch-up forward of our decoder, a failed lookup) is measured
            # here; engines fold the catch-up into their γ draft forwards, so it is 0 elsewhere. A one-pass
            # drafter's round cost is its step, counted below.
            d0 = analysis.costs.draft_round_s.get(method, 0.0) if (here and not one_pass) else 0.0
            for ctx in context_lens:
                for b in batch_sizes:
                    t_base, base_bound = step_time_s(hw, target, b, 1, ctx, dt)
                    t_base *= f_t
                    if uses:
                        t_step = step_time_s(hw, size, b, 1, ctx, dt)[0]
                        # Here: the measured batch-1 step, scaled to batch b by the roofline.
                        scale = t_step / step_time_s(hw, size, 1, 1, ctx, dt)[0] if here else None
                    fits = (here and b == 1) or _fits(hw, target, method, info.get(method), b, ctx, dt)  # it ran here
                    for j, (_, p) in enumerate(prof.iterrows()):
                        g, md = int(p["gamma"]), float(p["mean_drafted"])
                        t_ver, ver_bound = step_time_s(hw, target, b, md + 1.0, ctx, dt)
                        if here:  # the measured verify curve at batch 1 (a 2-token pass costs what it cost,
                            # not what a straight line says), scaled to batch b by the roofline
                            h = np.asarray(p["drafted_hist"], dtype=float)
                            t_ver = float((h * analysis.costs.verify_s(np.arange(len(h)))).sum()) * (
                                t_ver / step_time_s(hw, target, 1, md + 1.0, ctx, dt)[0])
                        else:
                            t_ver *= f_t
                        if uses:
                            n_steps = _draft_forwards(method, p["drafted_hist"])
                            t_draft = _measured_step_s(analysis.costs, method, md) * scale if here else t_step
                        else:  # the lookup itself: measured here, negligible (host-side) on serving hardware
                            n_steps = md
                            t_draft = analysis.costs.draft_step_s.get(method, 0.0) if here else 0.0
                        round_s = n_steps * t_draft + d0 + t_ver + overhead_frac * t_base
                        sd = round_s / p["tau"]

                        def speed(h_, tau, md_):
                            """The same round model on profile h_ at acceptance (tau, mean drafted md_)."""
                            tb = step_time_s(h_, target, b, 1, ctx, dt)[0] * f_t
                            tv = step_time_s(h_, target, b, np.asarray(md_) + 1.0, ctx, dt)[0]
                            tv = tv * (t_ver / step_time_s(h_, target, b, md + 1.0, ctx, dt)[0]) if here else tv * f_t
                            td = (t_draft if here else step_time_s(h_, size, b, 1, ctx, dt)[0]) if uses else t_draft
                            # a γ-step drafter runs one forward per drafted token: its count moves with md_
                            n_ = np.asarray(md_) if (not uses or M.steps_per_round(method) == "gamma") else n_steps
                            return tau * tb / (n_ * td + d0 + tv + overhead_frac * tb)

                        lo = hi = band_lo = band_hi = np.nan
                        if rep_tau is not None:
                            x = speed(hw, rep_tau[:, j], rep_md[:, j])
                            lo, hi = np.quantile(x[np.isfinite(x)], [(1 - ci_level) / 2, (1 + ci_level) / 2])
                        if not here:
                            band = [speed(v, p["tau"], md) for v in _variants(hw)]
                            band_lo, band_hi = float(min(band)), float(max(band))
                        rows.append({"hardware": hw.name, "method": method, "category": category, "context_len": ctx,
                                     "batch_size": b, "gamma": g, "tau": p["tau"], "draft_steps": float(n_steps),
                                     "target_step_ms": t_base * 1e3,
                                     "draft_step_ms": t_draft * 1e3, "verify_ms": t_ver * 1e3,
                                     "round_ms": round_s * 1e3, "base_ms_per_token": t_base * 1e3,
                                     "sd_ms_per_token": sd * 1e3, "speedup": t_base / sd,
                                     "saving_ms_per_token": (t_base - sd) * 1e3, "saving_pct": 100.0 * (1 - sd / t_base),
                                     "target_bound": base_bound, "verify_bound": ver_bound, "fits_memory": fits,
                                     "speedup_lo": float(lo), "speedup_hi": float(hi),
                                     "speedup_band_lo": band_lo, "speedup_band_hi": band_hi})
    df = pd.DataFrame(rows)
    df.attrs["assumptions"] = assumptions(profiles, dtype, context_lens)
    return df


def _variants(hw: HardwareProfile) -> list[HardwareProfile]:
    """The profile with one assumption moved at a time: the sensitivity band of whatif."""
    import dataclasses

    return [dataclasses.replace(hw, forward_overhead_s=hw.forward_overhead_s * f) for f in (0.5, 2.0)] + \
        [dataclasses.replace(hw, layer_latency_s=hw.layer_latency_s * f) for f in (0.5, 2.0)] + \
        [dataclasses.replace(hw, bandwidth_efficiency=e) for e in config.WHATIF_BANDWIDTH_EFFICIENCY_RANGE]


def _draft_forwards(method: str, hist) -> float:
    """Draft forwards per round: Σ_k h_k · draft_steps(method, k) over the share h_k of rounds that drafted
    k tokens — not draft_steps(γ): near the end of an output a round drafts fewer than γ (the same count
    projection.project_rounds prices, so this machine's what-if reproduces the measured rounds)."""
    h = np.asarray(hist, dtype=float)
    return float(sum(h_k * M.draft_steps(method, k) for k, h_k in enumerate(h)))


def _measured_step_s(costs: CostModel, method: str, drafted: float) -> float:
    """One draft forward of `method` as measured here: the fitted per-token slope for γ-step drafters;
    the whole round's drafting (d0 + slope · drafted) for a one-pass drafter such as Medusa heads."""
    if M.steps_per_round(method) == "one":
        return costs.draft_round_s.get(method, 0.0) + costs.draft_step_s.get(method, 0.0) * drafted
    return costs.draft_step_s.get(method, 0.0)


def _calibration(analysis, hw: HardwareProfile, target: ModelSize, dtype: str) -> float:
    """The factor that makes this machine's roofline reproduce the measured batch-1 target step exactly;
    larger batches scale from there (draft steps are scaled from their own measurement in whatif)."""
    ctx = analysis.memory["context_tokens"]
    return analysis.costs.target_step_s / step_time_s(hw, target, 1, 1, ctx, dtype)[0]


def _fits(hw: HardwareProfile, target: ModelSize, method: str, info: dict | None, batch: int, ctx: float,
          dtype: str) -> bool:
    """Target weights + KV for the batch, plus what the method's drafter adds (costs.extra_bytes), within
    WHATIF_MEMORY_HEADROOM of device memory."""
    if hw.memory_gb <= 0:
        return True  # unknown memory: do not claim it does not fit
    need = target.weight_bytes(dtype) + batch * ctx * target.kv_bytes_per_token(dtype)
    need += sum(extra_bytes(method, info, dtype, batch, ctx))
    return bool(need <= max(int(hw.tp), 1) * hw.memory_gb * 1e9 * config.WHATIF_MEMORY_HEADROOM)


def assumptions(hardware, dtype: str = config.WHATIF_DTYPE, context_lens=()) -> list[dict]:
    """The what-if's assumptions as data, to print next to its numbers."""
    hws = [h if isinstance(h, HardwareProfile) else profile(h) for h in
           ([hardware] if isinstance(hardware, (str, HardwareProfile)) else hardware)]
    out = [
        {"name": "acceptance carries over", "value": "τ per γ from this run's rounds",
         "note": "same target, draft, prompts and sampling settings; a different draft or temperature needs a new run"},
        {"name": "weights and KV dtype", "value": dtype, "note": "on serving hardware; this machine keeps the run's dtype"},
        {"name": "context length", "value": [float(c) for c in context_lens],
         "note": "tokens of KV cache read per sequence per step"},
        {"name": "FLOPs per token", "value": "2 × parameters", "note": "attention FLOPs over the context ignored"},
        {"name": "draft steps", "value": "γ per round for a draft model or layer-skip, 1 for Medusa heads",
         "note": "a draft model's step reads its own weights and KV; layer-skip's the target's first L layers + "
                 "lm_head; Medusa's the heads + lm_head; prompt lookup costs no device time on GPUs"},
        {"name": "verify", "value": "one pass over mean drafted + 1 tokens per sequence",
         "note": "no tree attention, no padding waste"},
        {"name": "round overhead", "value": "share of a target step measured on this machine",
         "note": "accept/reject and cache bookkeeping; engines with CUDA graphs and fused sampling may pay less"},
        {"name": "memory fit", "value": config.WHATIF_MEMORY_HEADROOM,
         "note": "weights + KV for the batch must fit in this share of device memory (fits_memory)"},
    ]
    for h in hws:
        out.append({"name": f"hardware {h.name}", "value": {
            "bandwidth_gbs": h.bandwidth_gbs, "peak_tflops": h.peak_tflops, "memory_gb": h.memory_gb,
            "bandwidth_efficiency": h.bandwidth_efficiency, "compute_efficiency": h.compute_efficiency,
            "layer_latency_us": h.layer_latency_s * 1e6, "overlap": h.overlap,
            "forward_overhead_us": h.forward_overhead_s * 1e6, "engine": h.engine, "tp": h.tp},
            "note": h.source + (f"; {ENGINES[h.engine].source}" if h.engine in ENGINES else "")})
    return out


def best_by_batch(df: pd.DataFrame, min_speedup: float = config.MIN_PROJECTED_SPEEDUP) -> pd.DataFrame:
    """Per hardware × method × category × context × batch: the γ with the highest projected speedup
    among configurations that fit in memory, or gamma None ("off") below min_speedup.
    Columns: hardware, method, category, context_len, batch_size, gamma, speedup, saving_ms_per_token, saving_pct."""
    keys = ["hardware", "method", "category", "context_len", "batch_size"]
    rows = []
    for key, g in df[df["fits_memory"]].groupby(keys, sort=True):
        best = g.loc[g["speedup"].idxmax()]
        on = best["speedup"] >= min_speedup
        rows.append({**dict(zip(keys, key)), "gamma": int(best["gamma"]) if on else None,
                     "speedup": float(best["speedup"]) if on else 1.0,
                     "saving_ms_per_token": float(best["saving_ms_per_token"]) if on else 0.0,
                     "saving_pct": float(best["saving_pct"]) if on else 0.0})
    return pd.DataFrame(rows, columns=keys + ["gamma", "speedup", "saving_ms_per_token", "saving_pct"])


def batch_ranges(best: pd.DataFrame) -> list[dict]:
    """Consecutive batch sizes with the same γ (or off) merged: [{batch_min, batch_max, gamma,
    speedup_min, speedup_max}] in batch order (one hardware/method/category/context slice)."""
    out = []
    for _, r in best.sort_values("batch_size").iterrows():
        g = None if pd.isna(r["gamma"]) else int(r["gamma"])
        if out and out[-1]["gamma"] == g:
            cur = out[-1]
            cur["batch_max"] = int(r["batch_size"])
            cur["speedup_min"] = min(cur["speedup_min"], float(r["speedup"]))
            cur["speedup_max"] = max(cur["speedup_max"], float(r["speedup"]))
        else:
            out.append({"batch_min": int(r["batch_size"]), "batch_max": int(r["batch_size"]), "gamma": g,
                        "speedup_min": float(r["speedup"]), "speedup_max": float(r["speedup"])})
    return out
