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

The fastest path also depends on the row count, and not the same way on every CPU: on a 2-core Intel Xeon
(AVX-512, 1.5 B target, whole forwards, benchmarks/linear_backends.py) default takes 227 / 257 / 479 ms for 1 / 3 / 5
tokens and oneDNN 263 / 330 / 350. One backend for every shape would either slow the baseline's one-token steps by
16% (oneDNN) — inflating every measured speedup against a baseline an engine would not run — or price a 5-token
verify at 2.1 steps instead of 1.5 (default). So `tune(model)` times whole-model forwards of each of TUNE_ROWS
token counts under every backend available for the model's dtype, and switches every Linear to a *plan*:
for x with r rows, the backend fastest at the largest tuned count ≤ r (`use(model, plan)`). The plan's label
("default", or "default for 1–3 rows, onednn for ≥ 4 rows") is recorded in `model.specdec_linear`.
`stock(model)` runs a block on nn.Linear's own forward — what transformers does unpatched — for side-by-side
comparisons.
"""

from __future__ import annotations

import bisect
import contextlib
import time
import types

import torch
from torch import nn

TUNE_ROWS = (1, 2, 4, 8)  # a decode step; verify passes of γ = 1, 3 and 7 (and batched rows beyond)
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


def _planned(plan: tuple[tuple[int, str], ...]):
    """A Linear forward that picks the backend by the input's row count: plan = ((min rows, backend), …),
    ascending, the first entry at 1 row."""
    cuts = [r for r, _ in plan]
    fns = [BACKENDS[name] for _, name in plan]

    def forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // max(x.shape[-1], 1)
        return fns[max(bisect.bisect_right(cuts, rows) - 1, 0)](x, self.weight, self.bias)
    return forward


def plan_label(plan) -> str:
    """"onednn", or "default for 1–3 rows, onednn for ≥ 4": which backend runs at which row count."""
    if isinstance(plan, str):
        return plan
    if len(plan) == 1:
        return plan[0][1]
    parts = []
    for i, (r, name) in enumerate(plan):
        hi = plan[i + 1][0] - 1 if i + 1 < len(plan) else None
        span = f"≥ {r}" if hi is None else str(r) if hi == r else f"{r}–{hi}"
        parts.append(f"{name} for {span} row{'' if span == '1' else 's'}")
    return ", ".join(parts)


def use(model: nn.Module, backend) -> int:
    """Every nn.Linear of model computes with `backend`: a BACKENDS key, or a plan ((min rows, key), …)
    (consecutive entries of one backend merged first). Returns how many Linears."""
    if not isinstance(backend, str):
        merged = [e for i, e in enumerate(backend) if i == 0 or e[1] != backend[i - 1][1]]
        backend = merged[0][1] if len(merged) == 1 else tuple(merged)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for m in linears:
        if backend == "default":
            m.__dict__.pop("forward", None)  # back to the class's own forward
        elif isinstance(backend, str):
            m.forward = types.MethodType(_FORWARDS[backend], m)
        else:
            m.forward = types.MethodType(_planned(backend), m)
    model.specdec_linear = plan_label(backend)
    model.specdec_plan = backend
    return len(linears)


@contextlib.contextmanager
def stock(*models: nn.Module):
    """Run the block on nn.Linear's own forward (as transformers loads a model), then restore the choice."""
    chosen = [getattr(m, "specdec_plan", "default") for m in models]
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


def forward_ms(model: nn.Module, backend, rows: tuple[int, ...] = TUNE_ROWS) -> float | None:
    """ms of one whole-model forward of k new tokens on an empty cache, summed over k in rows, with every
    Linear on `backend` (a key or a plan, as use() takes); None when the backend cannot build a kernel for
    the model's dtype (oneDNN fp16/bf16 without the CPU's support). A whole forward, not the Linears alone:
    the layout a backend leaves its output in changes what the next ops cost, and isolated matmuls on a
    small weight run hot in the last-level cache."""
    from transformers import DynamicCache

    chosen = getattr(model, "specdec_plan", "default")
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


def best_plan(ms: dict[str, dict[int, float | None]]) -> tuple[tuple[int, str], ...]:
    """Per row count, the fastest backend of ms = {backend: {rows: ms or None}} — F.linear unless another
    beats it there by MIN_GAIN (the timing itself is noisy on a shared machine)."""
    plan = []
    for k in sorted(ms["default"]):
        here = {name: t[k] for name, t in ms.items() if t.get(k) is not None}
        best = min(here, key=here.get)
        plan.append((k, best if here["default"] > MIN_GAIN * here[best] else "default"))
    return tuple(plan)


def tune(model: nn.Module) -> str:
    """Switch model's Linears to the plan of backends fastest at each of TUNE_ROWS token counts (best_plan).
    Returns its label, also kept in model.specdec_linear. CPU only: GPU BLAS handles small row counts
    well, and timing there would need synchronisation. Costs 3 forwards per backend and row count (here
    ~12 s for the 1.5B target in fp32)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    use(model, "default")
    if not linears or linears[0].weight.device.type != "cpu":
        return model.specdec_linear
    ms = {name: {k: forward_ms(model, name, (k,)) for k in TUNE_ROWS} for name in BACKENDS}
    use(model, best_plan({name: t for name, t in ms.items() if name == "default" or None not in t.values()}))
    return model.specdec_linear
