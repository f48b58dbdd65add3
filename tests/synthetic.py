"""Synthetic results dicts (schema of notes/common.md) with known answers, for the analysis tests.

A simulated decoder: each prompt has its own per-position acceptance rates (the category's, shifted by
a per-prompt offset when `spread` > 0); a round drafts min(γ, tokens left − 1) tokens and accepts them
one by one with those rates — so the true per-position acceptance and τ are known. Times follow a
known cost model (`Costs`), optionally with multiplicative log-normal noise. β per drafted position is
the true acceptance probability of that position, as a real decoder under sampling would record it.
Prompt lookup drafts only when a "match" exists (probability `lookup_match`) and then up to γ tokens
accepted with `lookup_rate`.

Several methods (keys of specdec.methods: "draft:a", "layer-skip:L4", "medusa", …): each model-using
method has its own rates (`Category.method_rates[key]`, else `rates`) and its own step time
(`Costs.steps[key]`, else draft_s); a round's drafting costs draft_steps(key, drafted) steps — one
per drafted token, one per round for Medusa. `multi_spec()` builds such a run with known answers, and
its manifest carries models.drafters (MULTI_DRAFTERS).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from specdec import methods as M


@dataclass(frozen=True)
class Costs:
    target_s: float = 0.020  # one target decode step
    draft_s: float = 0.004  # one draft step (c = 0.2)
    lookup_s: float = 0.0001  # prompt lookup, per drafted token
    verify_slope: float = 0.05  # T_verify(k + 1 tokens) = target_s · (1 + slope · k)
    overhead_s: float = 0.0005  # per round
    prefill_s: float = 0.15
    noise: float = 0.0  # σ of log-normal noise on every time
    steps: dict = field(default_factory=dict)  # method key → seconds per draft step (default draft_s)

    def verify(self, k):
        return self.target_s * (1.0 + self.verify_slope * np.asarray(k))

    def step(self, method: str) -> float:
        return self.steps.get(method, self.draft_s) if M.uses_model(method) else self.lookup_s


@dataclass(frozen=True)
class Category:
    name: str
    n_prompts: int
    rates: tuple[float, ...] = (0.7,)  # conditional acceptance at positions 1, 2, …; the last repeats
    spread: float = 0.0  # per-prompt offset ~ U(−spread, spread) added to every rate
    lookup_match: float = 0.5
    lookup_rate: float = 0.6
    method_rates: dict = field(default_factory=dict)  # method key → rates, for model-using methods

    def rates_of(self, method: str) -> tuple[float, ...]:
        return self.method_rates.get(method, self.rates)


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
    drafters: dict | None = None  # manifest models.drafters (None: the old layout, without it)


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


def true_speedup(rates, gamma: int, costs: Costs, method: str = "draft") -> float:
    """Expected decode-phase speedup of untruncated rounds: τ · t_target / round time."""
    draft = M.draft_steps(method, gamma) * costs.step(method)
    return true_tau(rates, gamma) * costs.target_s / (draft + costs.verify(gamma) + costs.overhead_s)


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
            rates = {m: tuple(float(np.clip(r + shift, 0.0, 1.0)) for r in cat.rates_of(m)) for m in spec.methods}
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
                    runs.append(_run(rng, method, g, rates[method], cat, spec, run_tokens))
            prompts.append({"id": pid, "category": cat.name, "prompt": f"prompt {pid}",
                            "prompt_tokens": int(rng.integers(20, 200)), "baseline": base, "runs": runs})
    return {"schema_version": 1, "manifest": _manifest(spec), "prompts": prompts}


def _run(rng, method, g, rates, cat, spec, tokens) -> dict:
    c = spec.costs
    emitted, rounds, decode = 1, [], 0.0
    while emitted < spec.max_new_tokens:
        allowed = min(g, spec.max_new_tokens - emitted - 1)
        model = M.uses_model(method)
        if model:
            drafted = allowed
            probs = [rate_at(rates, i) for i in range(1, drafted + 1)]
        else:
            drafted = allowed if rng.random() < cat.lookup_match else 0
            probs = [cat.lookup_rate] * drafted
        accepted = 0
        while accepted < drafted and rng.random() < probs[accepted]:
            accepted += 1
        steps = M.draft_steps(method, drafted) if model else drafted
        draft_s = _noisy(rng, c.step(method) * steps, c.noise)
        verify_s = _noisy(rng, c.verify(drafted), c.noise)
        overhead = _noisy(rng, c.overhead_s, c.noise)
        decode += draft_s + verify_s + overhead
        rounds.append({"drafted": drafted, "accepted": accepted, "draft_tokens": [7] * drafted,
                       "beta": [round(p, 6) for p in probs] if model else None,
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
                   "draft": _model(500_000_000, 24, 896) if any(M.family(m) == "draft" for m in spec.methods)
                   else None, **({"drafters": spec.drafters} if spec.drafters is not None else {})},
    }


# ---- a run of five methods with known answers ----

MULTI_METHODS = ("draft:a", "draft:b", "prompt-lookup", "layer-skip:L4", "medusa")
MULTI_DRAFTERS = {
    "draft:a": M.drafter_info("draft:a", parameters=500_000_000, extra_parameters=500_000_000, num_layers=24,
                              hidden_size=896, num_key_value_heads=2, head_dim=64, kv_layers=24,
                              spec="org/model-a", name="model-a"),
    "draft:b": M.drafter_info("draft:b", parameters=250_000_000, extra_parameters=250_000_000, num_layers=12,
                              hidden_size=640, num_key_value_heads=2, head_dim=64, kv_layers=12,
                              spec="org/model-b", name="model-b"),
    "prompt-lookup": M.drafter_info("prompt-lookup"),
    # The target's first 4 of 28 layers + lm_head: reads ~0.4 B weights, adds none.
    "layer-skip:L4": M.drafter_info("layer-skip:L4", parameters=400_000_000, extra_parameters=0, num_layers=4,
                                    hidden_size=1536, num_key_value_heads=2, head_dim=64, kv_layers=0,
                                    spec="synthetic-1500000000", name="first 4 layers"),
    # Four heads (one residual block each) + the shared lm_head: one pass reads ~0.25 B, adds the heads'.
    "medusa": M.drafter_info("medusa", parameters=250_000_000, extra_parameters=10_000_000, num_layers=1,
                             hidden_size=1536, kv_layers=0, spec="heads/medusa", name="medusa", heads=4),
}
# Step times: each drafter's cost roughly follows its size; Medusa is one pass per round.
MULTI_COSTS = Costs(steps={"draft:a": 0.004, "draft:b": 0.0025, "layer-skip:L4": 0.003, "medusa": 0.003})


def multi_spec(n_per_category: int = 12, seed: int = 21, **kw) -> Spec:
    """Two categories where different methods win: in "code" draft:a accepts most (and wins), in "chat"
    Medusa's heads accept well and its one-pass drafting makes it the fastest; prompt lookup rarely helps."""
    code = Category("code", n_per_category, (0.85,), lookup_match=0.3, lookup_rate=0.5,
                    method_rates={"draft:a": (0.9,), "draft:b": (0.6,), "layer-skip:L4": (0.5,), "medusa": (0.6, 0.4, 0.2)})
    chat = Category("chat", n_per_category, (0.5,), lookup_match=0.2, lookup_rate=0.3,
                    method_rates={"draft:a": (0.55,), "draft:b": (0.45,), "layer-skip:L4": (0.4,),
                                  "medusa": (0.85, 0.75, 0.65)})
    args = dict(methods=MULTI_METHODS, gammas=(2, 4), costs=MULTI_COSTS, drafters=MULTI_DRAFTERS, seed=seed)
    args.update(kw)
    return Spec([code, chat], **args)
