"""Accept/reject math of speculative sampling, as pure functions on probability tensors.

Notation (Leviathan et al. 2023, "Fast Inference from Transformers via Speculative Decoding";
Chen et al. 2023 swap the letters):

    p     target distribution, shape (γ+1, V): row i scores the token after prefix + x_1..x_i
    q     draft distribution, shape (γ, V): row i is what the draft sampled x_{i+1} from
    x     drafted tokens, shape (γ,)
    γ     number of drafted tokens in the round
    β_i   Σ_v min(p_i(v), q_i(v)): the exact probability that x_i is accepted (Leviathan §3.2);
          its mean over positions is α, the per-token acceptance rate.

Algorithm 1 of Leviathan et al.: accept x_i with probability min(1, p_i(x_i) / q_i(x_i)); at the first
rejection sample the replacement from norm(max(0, p_i − q_i)); if all γ are accepted, sample a bonus
token from p_{γ+1}. The emitted tokens are then distributed exactly as the target's (Theorem 3.5).

A deterministic drafter (prompt lookup) has q = one-hot(x): the same rule accepts with probability
p(x) and resamples from p with x removed, so it stays lossless; pass q=None for that case.

Greedy decoding is the temperature → 0 limit: accept while x_i == argmax p_i; the next token is
argmax p at the first mismatch (or the bonus position).
"""

from __future__ import annotations

import torch

from specdec.config import SamplingConfig


def warp(logits: torch.Tensor, sampling: SamplingConfig) -> torch.Tensor:
    """Logits (..., V) → probabilities (..., V) in float32 after temperature, top-k and top-p.

    Greedy (temperature 0) returns the temperature-1 distribution: argmax is unchanged and it is
    the distribution β is reported on. The same function is applied to p and q so the acceptance
    test compares like with like (as Hugging Face's logits warpers are applied to both).
    """
    logits = logits.float()
    if sampling.greedy:
        return torch.softmax(logits, dim=-1)
    logits = logits / sampling.temperature
    if sampling.top_k and sampling.top_k < logits.shape[-1]:
        kth = torch.topk(logits, sampling.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if sampling.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (the first token is always kept).
        drop_sorted = (sorted_probs.cumsum(-1) - sorted_probs) >= sampling.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def sample(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    """One token id from a (V,) distribution."""
    return int(torch.multinomial(probs, 1, generator=generator))


def next_token(logits: torch.Tensor, sampling: SamplingConfig, generator: torch.Generator | None) -> int:
    """The token a plain autoregressive step emits from (V,) logits."""
    if sampling.greedy:
        return int(logits.argmax())
    return sample(warp(logits, sampling), generator)


def acceptance_probability(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """β_i = Σ_v min(p_i(v), q_i(v)) for rows of p (γ, V) and q (γ, V) → (γ,). Leviathan §3.2, Def. 3.1."""
    return torch.minimum(p, q).sum(-1)


def verify_greedy(target_logits: torch.Tensor, x: torch.Tensor) -> tuple[int, int]:
    """Greedy verification. target_logits (γ+1, V), x (γ,) → (n accepted, next token id).

    The next token is the target's argmax at position n: a correction when n < γ, the bonus when n == γ.
    """
    choice = target_logits.argmax(-1)
    n = _first_false(choice[: x.shape[0]] == x)
    return n, int(choice[n])


def verify_sampled(
    p: torch.Tensor, q: torch.Tensor | None, x: torch.Tensor, generator: torch.Generator | None
) -> tuple[int, int]:
    """Speculative sampling (Leviathan Alg. 1). p (γ+1, V), q (γ, V) or None for one-hot, x (γ,).

    Returns (n accepted, next token id): the resampled token from norm(max(0, p_n − q_n)) when
    n < γ, else the bonus token from p_γ.
    """
    gamma = x.shape[0]
    rows = torch.arange(gamma, device=p.device)
    p_x = p[rows, x]
    q_x = q[rows, x] if q is not None else torch.ones_like(p_x)
    r = torch.rand(gamma, generator=generator, device=p.device)
    n = _first_false(r * q_x <= p_x)  # r < p/q without dividing by a zero q
    if n == gamma:
        return n, sample(p[gamma], generator)
    if q is not None:
        residual = (p[n] - q[n]).clamp_min(0.0)
    else:
        residual = p[n].clone()
        residual[x[n]] = 0.0
    total = residual.sum()
    # A rejection has probability 0 when the residual is empty, but float round-off can still
    # land here; p itself is then the right distribution.
    return n, sample(residual / total if total > 0 else p[n], generator)


def verify_typical(
    target_logits: torch.Tensor, x: torch.Tensor, sampling: SamplingConfig, generator: torch.Generator | None,
    epsilon: float, delta: float,
) -> tuple[int, int]:
    """Medusa's typical acceptance (Cai et al. 2024, §2.3.1) — LOSSY: the output is no longer the
    target's. target_logits (γ+1, V), x (γ,) → (n accepted, next token id).

    Accept x_i while p_i(x_i) > min(ε, δ·exp(−H(p_i))), H the entropy of p_i in nats, with p the warped
    target distribution (temperature 1 when greedy: at temperature 0 the rule would be plain greedy
    matching). The next token is the target's own choice at position n (argmax when greedy, a draw
    from p_n otherwise): a replacement when n < γ, the bonus when n == γ.
    """
    p = warp(target_logits, sampling)
    gamma = x.shape[0]
    p_d = p[:gamma]
    entropy = -(p_d * torch.log(p_d.clamp_min(1e-20))).sum(-1)
    threshold = torch.clamp(delta * torch.exp(-entropy), max=epsilon)
    n = _first_false(p_d[torch.arange(gamma, device=p.device), x] > threshold)
    if sampling.greedy:
        return n, int(target_logits[n].argmax())
    return n, sample(p[n], generator)


def _first_false(mask: torch.Tensor) -> int:
    """Index of the first False in a 1-D bool tensor, or its length when all are True."""
    misses = (~mask).nonzero()
    return int(misses[0]) if misses.numel() else int(mask.shape[0])
