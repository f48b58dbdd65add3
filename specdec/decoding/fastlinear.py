"""CPU matmul backend for few-token forwards, chosen by timing each one on the model.

A decode step feeds 1 token and a verify pass γ+1, so every Linear computes y = x Wᵀ with x of shape
(1…γ+1, d). What that costs depends on the BLAS path, and the paths differ a lot on the same weights
(measured on this 2-core AMD EPYC, torch 2.13 CPU wheel, fp32, 8960×1536, ms for 1 / 3 / 5 rows):

  default       F.linear → MKL sgemm                         2.47 / 7.73 / 7.89
  weight-major  (W · xᵀ)ᵀ: W is the many-row operand          2.50 / 3.36 / 3.20
  onednn        oneDNN inner product on the dense weight     1.75 / 2.86 / 3.23

MKL takes a per-row path for 2 ≤ rows < 16, so a 3-token verify costs 3 decode steps and a
speculative round can never pay off; weight-major streams W once whatever the row count; oneDNN's
inner product (torch.ops.mkldnn._linear_pointwise, what inductor emits for CPU linears) also reads W
at close to memory bandwidth for a single row. All three compute the same sums in a different order
(differences ~1e-6 relative in fp32), none copies the weight.

`tune(model)` times whole-model forwards of one token (a decode step) and of TUNE_ROWS tokens (a verify
pass) under every backend available for the model's dtype and switches every Linear to the fastest;
the choice is recorded in `model.specdec_linear`. `stock(model)` runs a block on nn.Linear's own
forward — what transformers does unpatched — for side-by-side comparisons.
"""

from __future__ import annotations

import contextlib
import time
import types

import torch
from torch import nn

TUNE_ROWS = 4  # tokens in a typical verify pass (γ = 3)
TUNE_REPEATS = 2
MIN_GAIN = 1.15  # leave F.linear only for a clear win: the timing itself is noisy on a shared machine


def weight_major(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x (..., d_in) @ weightᵀ (+ bias) → (..., d_out), computed as (weight · xᵀ)ᵀ."""
    flat = x.reshape(-1, x.shape[-1])
    y = (weight @ flat.t()).t()
    if bias is not None:
        y = y + bias
    return y.reshape(*x.shape[:-1], weight.shape[0])


def onednn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x (..., d_in) @ weightᵀ (+ bias) → (..., d_out) by oneDNN's inner product. Forward only: the op has
    no autograd kernel, so whenever a gradient could flow this falls back to F.linear."""
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return nn.functional.linear(x, weight, bias)
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight, bias, "none", [], "")


BACKENDS = {"default": nn.functional.linear, "weight-major": weight_major, "onednn": onednn}


def _patched(fn):
    def forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        return fn(x, self.weight, self.bias)
    return forward


_FORWARDS = {name: _patched(fn) for name, fn in BACKENDS.items() if name != "default"}


def use(model: nn.Module, backend: str) -> int:
    """Every nn.Linear of model computes with `backend` (a BACKENDS key). Returns how many Linears."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for m in linears:
        if backend == "default":
            m.__dict__.pop("forward", None)  # back to the class's own forward
        else:
            m.forward = types.MethodType(_FORWARDS[backend], m)
    model.specdec_linear = backend
    return len(linears)


@contextlib.contextmanager
def stock(*models: nn.Module):
    """Run the block on nn.Linear's own forward (as transformers loads a model), then restore the choice."""
    chosen = [getattr(m, "specdec_linear", "default") for m in models]
    for m in models:
        use(m, "default")
    try:
        yield
    finally:
        for m, backend in zip(models, chosen):
            use(m, backend)


def _min_ms(fn) -> float:
    """Fastest of TUNE_REPEATS calls after one warm-up: noise on a shared machine only adds time."""
    fn()
    times = []
    for _ in range(TUNE_REPEATS):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1e3


def forward_ms(model: nn.Module, backend: str, rows: tuple[int, ...] = (1, TUNE_ROWS)) -> float | None:
    """ms of one whole-model forward of k new tokens on an empty cache, summed over k in rows, with every
    Linear on `backend`; None when the backend cannot build a kernel for the model's dtype (oneDNN
    fp16/bf16 without the CPU's support). A whole forward, not the Linears alone: the layout a backend
    leaves its output in changes what the next ops cost, and isolated matmuls on a small weight run hot
    in the last-level cache."""
    from transformers import DynamicCache

    chosen = getattr(model, "specdec_linear", "default")
    use(model, backend)
    try:
        with torch.inference_mode():
            def run(k):
                model(input_ids=torch.arange(k)[None], past_key_values=DynamicCache(config=model.config),
                      use_cache=True, logits_to_keep=k)
            return sum(_min_ms(lambda k=k: run(k)) for k in rows)
    except RuntimeError:
        return None
    finally:
        use(model, chosen)


def tune(model: nn.Module) -> str:
    """Switch model's Linears to the backend whose whole-model forwards (1 and TUNE_ROWS tokens) are
    fastest, if it beats F.linear by MIN_GAIN. Returns the choice, also kept in model.specdec_linear.
    CPU only: GPU BLAS handles small row counts well, and timing there would need synchronisation.
    Costs 3 × (TUNE_REPEATS + 1) forwards per backend (here ~8 s for the 1.5B target in fp32)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    model.specdec_linear = "default"
    if not linears or linears[0].weight.device.type != "cpu":
        return model.specdec_linear
    total = {name: forward_ms(model, name) for name in BACKENDS}
    total = {name: ms for name, ms in total.items() if ms is not None}
    best = min(total, key=total.get)
    if total["default"] > MIN_GAIN * total[best]:
        use(model, best)
    return model.specdec_linear
