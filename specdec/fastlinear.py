"""Weight-major matmuls for few-token forwards on the CPU, chosen by timing both ways on the model.

A verify pass feeds γ+1 tokens, so every Linear computes y = x Wᵀ with x of shape (γ+1, d). Some BLAS
builds (seen: MKL 2024 in torch 2.13's CPU wheel on an AMD EPYC) take a per-row path for 2 ≤ rows < 16,
so a 3-token pass costs 3 single-token passes (8960×1536 fp32: 3.5 ms for 1 row, 11.8 ms for 3) and a
speculative round can never pay off. Computing the same product as (W xᵀ)ᵀ — the weight as the left,
many-row operand — streams W once whatever the token count (3.3 ms for 2–4 rows there), which is what
a memory-bound decode step should cost. Same arithmetic, different order of summation only.

`tune(model)` times both orientations on the model's largest Linear at a typical verify width and
switches every Linear to the faster one; it records the choice in `model.specdec_linear`.
"""

from __future__ import annotations

import statistics
import time
import types

import torch
from torch import nn

TUNE_ROWS = 4  # tokens in a typical verify pass (γ = 3)
TUNE_REPEATS = 7
MIN_GAIN = 1.15  # switch only for a clear win: the timing itself is noisy on a shared machine


def weight_major(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x (..., d_in) @ weightᵀ (+ bias) → (..., d_out), computed as (weight · xᵀ)ᵀ."""
    flat = x.reshape(-1, x.shape[-1])
    y = (weight @ flat.t()).t()
    if bias is not None:
        y = y + bias
    return y.reshape(*x.shape[:-1], weight.shape[0])


def _forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return weight_major(x, self.weight, self.bias)


def _median_ms(fn) -> float:
    fn()
    times = []
    for _ in range(TUNE_REPEATS):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def patch(model: nn.Module) -> int:
    """Every nn.Linear of model computes weight-major. Returns how many were switched."""
    n = 0
    for m in model.modules():
        if isinstance(m, nn.Linear):
            m.forward = types.MethodType(_forward, m)
            n += 1
    model.specdec_linear = "weight-major"
    return n


def tune(model: nn.Module) -> str:
    """Time F.linear against weight_major on the model's largest Linear (vocabulary projection aside)
    with TUNE_ROWS rows; patch the model when weight-major wins by MIN_GAIN. Returns the choice.
    CPU only: GPU BLAS handles small row counts well, and timing there would need synchronisation."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    model.specdec_linear = "default"
    if not linears or linears[0].weight.device.type != "cpu":
        return model.specdec_linear
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    body = [m for m in linears if m is not out] or linears
    w = max(body, key=lambda m: m.weight.numel()).weight
    x = torch.randn(TUNE_ROWS, w.shape[1], dtype=w.dtype)
    with torch.inference_mode():
        default = _median_ms(lambda: torch.nn.functional.linear(x, w))
        major = _median_ms(lambda: weight_major(x, w))
    if default > MIN_GAIN * major:
        patch(model)
    return model.specdec_linear
