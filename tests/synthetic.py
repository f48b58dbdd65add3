"""Synthetic results dicts (schema of notes/common.md) with known answers, for the analysis tests.

A simulated decoder: each prompt has its own per-position acceptance rates (the category's, shifted by
a per-prompt offset when `spread` > 0); a round drafts min(γ, tokens left − 1) tokens and accepts them
one by one with those rates — so the true per-position acceptance and τ are known. Times follow a
known cost model (`Costs`), optionally with multiplicative log-normal noise. β per drafted position is
the true acceptance probability of that position, as a real decoder under sampling would record it.
Prompt lookup drafts only when a "match" exists (probability `lookup_match`) and then up to γ tokens
accepted with `lookup_rate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Costs:
    target_s: float = 0.020  # one target decode step
    draft_s: float = 0.004  # one draft step (c = 0.2)
    lookup_s: float = 0.0001  # prompt lookup, per drafted token
    verify_slope: float = 0.05  # T_verify(k + 1 tokens) = target_s · (1 + slope · k)
    overhead_s: float = 0.0005  # per round
    prefill_s: float = 0.15
    noise: float = 0.0  # σ of log-normal noise on every time

    def verify(self, k):
        return self.target_s * (1.0 + self.verify_slope * np.asarray(k))


@dataclass(frozen=True)
class Category:
    name: str
    n_prompts: int
    rates: tuple[float, ...] = (0.7,)  # conditional acceptance at positions 1, 2, …; the last repeats
    spread: float = 0.0  # per-prompt offset ~ U(−spread, spread) added to every rate
    lookup_match: float = 0.5
    lookup_rate: float = 0.6


@dataclass
class Spec:
    categories: list[Category]
    methods: tuple[str, ...] = ("draft",)
    gammas: tuple[int, ...] = (2, 4, 6)
    max_new_tokens: int = 64
    costs: Costs = field(default_factory=Costs)
    temperature: float = 1.0
    dtype: str = "float32"
    diverge: dict = field(default_factory=dict)  # prompt index → first differing position in every run
    seed: int = 0


def rate_at(rates, i: int) -> float:
    """Conditional acceptance rate at position i (1-based)."""
    return rates[min(i, len(rates)) - 1]


def true_tau(rates, gamma: int) -> float:
    """E[accepted + 1] for untruncated rounds: 1 + Σ_i Π_{j≤i} rate_j."""
    tau, surv = 1.0, 1.0
    for i in range(1, gamma + 1):
        surv *= rate_at(rates, i)
        tau += surv
    return tau


def true_speedup(rates, gamma: int, costs: Costs) -> float:
    """Expected decode-phase speedup of untruncated rounds: τ · t_target / round time."""
    return true_tau(rates, gamma) * costs.target_s / (gamma * costs.draft_s + costs.verify(gamma) + costs.overhead_s)


def _noisy(rng, x, sigma):
    return float(x * np.exp(rng.normal(0.0, sigma))) if sigma else float(x)


def _model(params, layers, hidden):
    return {"spec": f"synthetic-{params}", "local_path": None, "sha256": None, "parameters": params,
            "dtype": "float32", "device": "cpu", "num_layers": layers, "hidden_size": hidden, "vocab_size": 1000,
            "num_key_value_heads": 2, "head_dim": 64}


def make_results(spec: Spec) -> dict:
    rng = np.random.default_rng(spec.seed)
    c = spec.costs
    prompts = []
    for cat in spec.categories:
        for j in range(cat.n_prompts):
            shift = rng.uniform(-cat.spread, cat.spread) if cat.spread else 0.0
            rates = tuple(float(np.clip(r + shift, 0.0, 1.0)) for r in cat.rates)
            pid = f"{cat.name}-{j}"
            index = len(prompts)
            tokens = rng.integers(0, 1000, spec.max_new_tokens).tolist()
            base = {"tokens": tokens, "text": "x", "new_tokens": len(tokens),
                    "prefill_s": _noisy(rng, c.prefill_s, c.noise),
                    "decode_s": sum(_noisy(rng, c.target_s, c.noise) for _ in range(len(tokens) - 1))}
            runs = []
            for method in spec.methods:
                for g in spec.gammas:
                    run_tokens = list(tokens)
                    if index in spec.diverge:
                        k = spec.diverge[index]
                        run_tokens[k] = (run_tokens[k] + 1) % 1000
                    runs.append(_run(rng, method, g, rates, cat, spec, run_tokens))
            prompts.append({"id": pid, "category": cat.name, "prompt": f"prompt {pid}",
                            "prompt_tokens": int(rng.integers(20, 200)), "baseline": base, "runs": runs})
    return {"schema_version": 1, "manifest": _manifest(spec), "prompts": prompts}


def _run(rng, method, g, rates, cat, spec, tokens) -> dict:
    c = spec.costs
    emitted, rounds, decode = 1, [], 0.0
    while emitted < spec.max_new_tokens:
        allowed = min(g, spec.max_new_tokens - emitted - 1)
        if method == "draft":
            drafted = allowed
            probs = [rate_at(rates, i) for i in range(1, drafted + 1)]
        else:
            drafted = allowed if rng.random() < cat.lookup_match else 0
            probs = [cat.lookup_rate] * drafted
        accepted = 0
        while accepted < drafted and rng.random() < probs[accepted]:
            accepted += 1
        step = c.draft_s if method == "draft" else c.lookup_s
        draft_s = _noisy(rng, step * drafted, c.noise)
        verify_s = _noisy(rng, c.verify(drafted), c.noise)
        overhead = _noisy(rng, c.overhead_s, c.noise)
        decode += draft_s + verify_s + overhead
        rounds.append({"drafted": drafted, "accepted": accepted, "draft_tokens": [7] * drafted,
                       "beta": [round(p, 6) for p in probs] if method == "draft" else None,
                       "draft_s": draft_s, "verify_s": verify_s})
        emitted = min(emitted + accepted + 1, spec.max_new_tokens)
    return {"tokens": tokens, "text": "x", "new_tokens": len(tokens),
            "prefill_s": _noisy(rng, c.prefill_s * 1.3, c.noise), "decode_s": decode,
            "method": method, "draft_length": g, "rounds": rounds}


def _manifest(spec: Spec) -> dict:
    return {
        "run_id": "synthetic", "created": "2025-01-01T00:00:00+00:00", "finished": "2025-01-01T01:00:00+00:00",
        "status": "complete",
        "settings": {"workload": "synthetic.jsonl", "workload_sha256": "0" * 64, "methods": list(spec.methods),
                     "draft_lengths": list(spec.gammas), "max_new_tokens": spec.max_new_tokens, "max_prompts": None,
                     "temperature": spec.temperature, "top_p": 1.0, "top_k": 0, "seed": spec.seed,
                     "dtype": spec.dtype, "device": "cpu"},
        "versions": {"specdec": "0.1.0", "torch": "x", "transformers": "x", "python": "3.11"},
        "hardware": {"cpu": "synthetic", "cores": 2, "gpu": None, "memory_gb": 8.0},
        "models": {"target": _model(1_500_000_000, 28, 1536),
                   "draft": _model(500_000_000, 24, 896) if "draft" in spec.methods else None},
    }
