"""Published speculative-decoding results the hardware model is checked against: projected vs published.

Each case fixes what the publication measured (hardware, engine, tensor-parallel degree, batch, target and
draft sizes, γ, τ) and its reported speedup; the projection uses the same round model as
specdec.analysis.hardware.whatif: speedup = τ · t_target(B, 1) / (γ · t_draft(B, 1) + t_target(B, γ + 1)).
"before" is the model as it was until issue 18 (no per-forward cost, 10 µs per layer, one device);
"after" applies the engine profile (hardware.ENGINES) and the TP degree. Assumptions a publication does not
state (γ, context length, the vLLM run's draft and τ) are written in the case, not hidden.

Public API
    PublishedCase (frozen dataclass), CASES
    project_case(case, calibrated=True) -> float
    table() -> DataFrame[case, published, before, after, error_before, error_after, tolerance, within]
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from specdec.analysis import hardware as hw
from specdec.analysis.costs import ModelSize

# Model sizes from the models' config.json: parameters read per decode step (untied: one of the two
# vocab × hidden tables), layers, hidden size, KV width (kv heads × head dim).
VICUNA_7B = ModelSize(6_738_000_000 - 32_000 * 4096, 32, 4096, 4096, False)  # LLaMA-7B, untied
VICUNA_68M = ModelSize(68_000_000 - 32_000 * 768, 2, 768, 768, False)  # double7/vicuna-68m, LLaMA arch
LLAMA3_70B = ModelSize(70_554_000_000 - 128_256 * 8192, 80, 8192, 1024, False)  # untied
LLAMA32_1B = ModelSize(1_236_000_000, 16, 2048, 512, False)  # tied


@dataclass(frozen=True)
class PublishedCase:
    name: str
    hardware: str
    engine: str
    tp: int
    batch: int
    target: ModelSize
    draft: ModelSize
    gamma: int
    tau: float
    published: float
    tolerance: float  # relative, |projected / published − 1|
    source: str
    assumed: str = ""
    context: float = 512.0
    dtype: str = "float16"


SPEC_BENCH = "Spec-Bench (Xia et al. 2024, Findings of ACL; github.com/hemingkx/Spec-Bench), SpS, batch 1, fp16"
VLLM_BLOG = "vLLM blog 'How Speculative Decoding Boosts vLLM Performance by up to 2.8x' (2024-10), ShareGPT"
CASES = (
    PublishedCase("Spec-Bench A100, Vicuna-7B + 68M", "A100-80GB", "hf-eager", 1, 1, VICUNA_7B, VICUNA_68M,
                  4, 2.28, 1.49, 0.10, SPEC_BENCH, "γ = 4; context 512"),
    PublishedCase("Spec-Bench RTX 3090, Vicuna-7B + 68M", "RTX-3090", "hf-eager", 1, 1, VICUNA_7B, VICUNA_68M,
                  4, 2.29, 1.83, 0.10, SPEC_BENCH, "γ = 4; context 512"),
    PublishedCase("vLLM blog Llama-3-70B 4×H100, batch 1", "H100-SXM", "vllm", 4, 1, LLAMA3_70B, LLAMA32_1B,
                  4, 2.4, 1.5, 0.15, VLLM_BLOG, "draft 1B-class (Llama-3.2-1B sizes), γ = 4, τ = 2.4; context 512"),
    PublishedCase("vLLM blog Llama-3-70B 4×H100, batch 128", "H100-SXM", "vllm", 4, 128, LLAMA3_70B, LLAMA32_1B,
                  4, 2.4, 0.87, 0.15, VLLM_BLOG, "as batch 1"),
)


def project_case(case: PublishedCase, calibrated: bool = True) -> float:
    """Projected speedup of one published case, with the engine profile and TP (calibrated) or as before."""
    prof = hw.deployment_profile(case.hardware, case.engine, case.tp) if calibrated else hw.profile(case.hardware)
    if not calibrated:  # the constants used until issue 18
        import dataclasses

        prof = dataclasses.replace(prof, forward_overhead_s=0.0, layer_latency_s=10e-6, tp=1)
    t_base = hw.step_time_s(prof, case.target, case.batch, 1, case.context, case.dtype)[0]
    t_draft = hw.step_time_s(prof, case.draft, case.batch, 1, case.context, case.dtype)[0]
    t_verify = hw.step_time_s(prof, case.target, case.batch, case.gamma + 1, case.context, case.dtype)[0]
    return case.tau * t_base / (case.gamma * t_draft + t_verify)


def table() -> pd.DataFrame:
    rows = []
    for c in CASES:
        before, after = project_case(c, False), project_case(c, True)
        rows.append({"case": c.name, "published": c.published, "before": before, "after": after,
                     "error_before": before / c.published - 1.0, "error_after": after / c.published - 1.0,
                     "tolerance": c.tolerance, "within": abs(after / c.published - 1.0) <= c.tolerance,
                     "assumed": c.assumed, "source": c.source})
    return pd.DataFrame(rows)
