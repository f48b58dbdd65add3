"""Exact joint distributions by enumeration, and a goodness-of-fit test with a stated false-alarm rate.

The reference side never touches the code under test's cache or loop: it enumerates every
continuation of the prompt, scores each with a full no-cache forward, and applies the warp
(temperature, top-k, top-p — specdec.decoding.sampling.warp, itself pinned by hand-computed values
in test_sampling.py) to get the target's exact P(y_1 … y_T | prompt).

The test: Pearson's χ² on the empirical counts against those exact probabilities, cells with an
expected count under 5 pooled into one. A correct sampler fails with probability ALPHA (0.1 %) per
check; seeds are fixed, so a given run is deterministic. A control (a deliberately wrong rule) must
give a p-value under CONTROL_P, far below ALPHA, so the test is shown to have power, not just luck.
"""

from __future__ import annotations

import torch
from scipy import stats

from specdec.config import SamplingConfig
from specdec.decoding import sampling as S

ALPHA = 1e-3  # false-alarm rate of one check on a correct implementation
CONTROL_P = 1e-6  # a wrong rule must be rejected at least this decisively


def exact_joint(next_logits, prompt: torch.Tensor, steps: int, sampling: SamplingConfig) -> dict[tuple, float]:
    """{(y_1, …, y_steps): P} under the target with warp(sampling). next_logits: (B, t) ids → (B, V) logits."""
    seqs, weights = prompt[None], torch.ones(1, dtype=torch.float64)
    with torch.no_grad():
        for _ in range(steps):
            probs = S.warp(next_logits(seqs), sampling).double()  # (B, V)
            V = probs.shape[-1]
            weights = (weights[:, None] * probs).reshape(-1)
            seqs = torch.cat([seqs.repeat_interleave(V, 0), torch.arange(V).repeat(seqs.shape[0])[:, None]], 1)
    tails = seqs[:, prompt.shape[0]:].tolist()
    return {tuple(t): float(w) for t, w in zip(tails, weights) if w > 0}


def hf_next_logits(model):
    """next_logits for a Hugging Face CausalLM: a full forward without cache."""
    return lambda seqs: model(input_ids=seqs, use_cache=False).logits[:, -1].float()


def fit(samples: list[tuple], exact: dict[tuple, float]) -> tuple[float, float]:
    """(p-value of Pearson's χ², total variation distance) of samples against exact.

    A sample the exact distribution gives probability 0 is an immediate failure (p-value 0).
    """
    n = len(samples)
    counts: dict[tuple, int] = {}
    for s in samples:
        counts[s] = counts.get(s, 0) + 1
    if any(s not in exact for s in counts):
        return 0.0, 1.0
    tv = 0.5 * sum(abs(counts.get(k, 0) / n - p) for k, p in exact.items())
    big = [k for k, p in exact.items() if n * p >= 5]
    small = [k for k in exact if k not in big]
    obs = [counts.get(k, 0) for k in big]
    exp = [n * exact[k] for k in big]
    if small:
        obs.append(sum(counts.get(k, 0) for k in small))
        exp.append(n * sum(exact[k] for k in small))
    if len(obs) < 2:
        return 1.0, tv
    exp_t = torch.tensor(exp, dtype=torch.float64)
    exp_t *= n / exp_t.sum()  # remove float round-off so the totals agree
    return float(stats.chisquare(obs, exp_t.tolist()).pvalue), tv
