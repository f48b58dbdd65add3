"""The verify curve where the real subset left it thin: timed target passes over k + 1 tokens on a prompt's
own KV cache, as the decoder's verify step runs them (forward with logits for every position, the argmax
test, the cache rolled back).

Why: on a CPU the cost of a verify pass is a staircase in its length, not a line (the matmul kernels work
in tiles): on the bundled 1.5 B target in float32, 1–3 tokens cost ≈ 1.1 target steps, 4–6 ≈ 2.05, 7–9
≈ 2.8. A real subset of four prompts runs each at one γ, so some lengths get few rounds or none, and a line
through the measured ones misprices the lengths between: 5 tokens, priced 1.96 steps by the line, measured
2.10, put traced layer-skip γ 4 at 0.257× against a real run's 0.247× (CI 0.242–0.253). With every length
up to γ_max + 1 measured, no traced γ is timed by extrapolation.

    thin(drafted_counts, max_gamma, min_rounds)  drafted lengths 1 … max_gamma with fewer real rounds than that
    probe(model, prompts, drafted, passes) → {"drafted": [...], "verify_s": [...]}, one entry per timed pass,
                                          drafted 0 (a one-token pass) included as the reference

analysis.costs.cost_model(…, probe=) turns it into the verify curve's missing points: median(k) / median(0)
target steps each (medians: a lone pass hit by a neighbour would move a mean of eight by an eighth).
"""

from __future__ import annotations

import numpy as np
import torch

from specdec.decoding.forward import clock, forward, new_cache, rollback


def thin(drafted_counts: dict[int, int], max_gamma: int, min_rounds: int) -> list[int]:
    """Drafted lengths 1 … max_gamma measured in fewer than min_rounds real rounds ({drafted: rounds})."""
    return [k for k in range(1, max_gamma + 1) if drafted_counts.get(k, 0) < min_rounds]


def probe(model, prompts: list[list[int]], drafted: list[int], passes: int) -> dict[str, list]:
    """Time `passes` verify passes of every length in drafted (and of one token, drafted 0), spread over
    the prompts: each prompt is prefilled once (untimed), then sweeps through the lengths in a shuffled order
    (a slow spell of the machine lands on all lengths alike), the cache rolled back after each pass.
    One untimed pass per length first: a new shape's first call sets up its kernels."""
    sizes = [0] + sorted({int(k) for k in drafted if k > 0})
    out = {"drafted": [], "verify_s": []}
    if not prompts or passes <= 0 or len(sizes) == 1:
        return out
    device = next(model.parameters()).device
    sweeps = -(-passes // len(prompts))
    order = np.random.default_rng(0)
    with torch.inference_mode():
        for p, ids in enumerate(prompts):
            x = torch.tensor(ids, device=device)
            cache = new_cache(model)
            forward(model, x, cache)
            length = cache.get_seq_length()
            # tokens to verify: the prompt's own, repeated if it is short (their values do not change the cost)
            pool = x.repeat(-(-(max(sizes) + 1) // x.shape[0]))
            if p == 0:
                for k in sizes:
                    forward(model, pool[: k + 1], cache, keep=k + 1).argmax(-1)
                    rollback(cache, length)
            for _ in range(sweeps if p < passes else 0):
                for k in order.permutation(sizes):
                    t0 = clock(device)
                    forward(model, pool[: k + 1], cache, keep=int(k) + 1).argmax(-1).tolist()
                    rollback(cache, length)
                    out["drafted"].append(int(k))
                    out["verify_s"].append(clock(device) - t0)
    return out
