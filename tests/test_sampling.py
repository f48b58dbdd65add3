"""The accept/reject rule on hand-made distributions (as Hugging Face's speculative tests do)."""

import torch

from specdec.decoding import sampling as S
from specdec.config import SamplingConfig

V = 5


def onehot(i, v=V, eps=0.0):
    p = torch.full((v,), eps)
    p[i] = 1.0
    return p / p.sum()


def test_greedy_accepts_matching_prefix_then_corrects():
    logits = torch.stack([onehot(1), onehot(2), onehot(4), onehot(0)]) * 10
    assert S.verify_greedy(logits, torch.tensor([1, 2, 3])) == (2, 4)  # reject at 3, correct to 4
    assert S.verify_greedy(logits, torch.tensor([3, 2, 4])) == (0, 1)  # first token rejected


def test_greedy_bonus_when_all_accepted():
    logits = torch.stack([onehot(1), onehot(2), onehot(0)]) * 10
    assert S.verify_greedy(logits, torch.tensor([1, 2])) == (2, 0)


def test_sampled_accepts_when_p_equals_q():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(4, V, generator=g), -1)
    q = p[:3].clone()
    x = torch.tensor([0, 1, 2])
    for _ in range(50):
        n, _ = S.verify_sampled(p, q, x, g)
        assert n == 3  # min(1, p/q) = 1 everywhere


def test_sampled_rejects_token_target_never_emits_and_resamples_residual():
    g = torch.Generator().manual_seed(0)
    p = torch.stack([torch.tensor([0.0, 0.5, 0.5, 0.0, 0.0]), onehot(0)])
    q = torch.tensor([[0.6, 0.4, 0.0, 0.0, 0.0]])
    seen = set()
    for _ in range(200):
        n, y = S.verify_sampled(p, q, torch.tensor([0]), g)
        assert n == 0  # p(0) = 0: always rejected
        seen.add(y)
    # residual max(0, p - q) = [0, 0.1, 0.5, 0, 0]: token 1 and 2 only
    assert seen == {1, 2}


def test_sampled_bonus_comes_from_last_target_row():
    g = torch.Generator().manual_seed(0)
    p = torch.stack([onehot(3), onehot(4)])
    n, y = S.verify_sampled(p, onehot(3)[None], torch.tensor([3]), g)
    assert (n, y) == (1, 4)


def test_prompt_lookup_one_hot_rule():
    # q = one-hot(x): accept with probability p(x); on rejection x itself is excluded.
    g = torch.Generator().manual_seed(1)
    p = torch.stack([torch.tensor([0.3, 0.7, 0, 0, 0]), onehot(2)])
    accepts, replacements = 0, set()
    for _ in range(4000):
        n, y = S.verify_sampled(p, None, torch.tensor([1]), g)
        accepts += n
        if n == 0:
            replacements.add(y)
    assert abs(accepts / 4000 - 0.7) < 0.03
    assert replacements == {0}


def first_token_distribution(rule, p, q, n_samples=20000, seed=0):
    """Empirical distribution of the first emitted token when x ~ q and the rule verifies it."""
    g = torch.Generator().manual_seed(seed)
    counts = torch.zeros(V)
    xs = torch.multinomial(q[0], n_samples, replacement=True, generator=g)
    for x in xs:
        n, y = rule(p, q, x[None], g)
        counts[int(x) if n >= 1 else y] += 1
    return counts / n_samples


def wrong_rule(p, q, x, g):
    """The classic bug: on rejection resample from p instead of norm(max(0, p - q))."""
    n, _ = S.verify_sampled(p, q, x, g)
    return n, (S.sample(p[n], g))


def test_rule_preserves_target_distribution_and_wrong_rule_is_caught():
    g = torch.Generator().manual_seed(3)
    p = torch.softmax(torch.randn(2, V, generator=g) * 2, -1)
    q = torch.softmax(torch.randn(1, V, generator=g) * 2, -1)
    tv = lambda a, b: 0.5 * float((a - b).abs().sum())  # noqa: E731
    good = first_token_distribution(S.verify_sampled, p, q)
    bad = first_token_distribution(wrong_rule, p, q)
    assert tv(good, p[0]) < 0.015
    assert tv(bad, p[0]) > 0.05


def test_beta_is_overlap_and_matches_acceptance_rate():
    g = torch.Generator().manual_seed(5)
    p = torch.softmax(torch.randn(2, V, generator=g), -1)
    q = torch.softmax(torch.randn(1, V, generator=g), -1)
    beta = float(S.acceptance_probability(p[:1], q))
    xs = torch.multinomial(q[0], 20000, replacement=True, generator=g)
    accepted = sum(S.verify_sampled(p, q, x[None], g)[0] for x in xs) / 20000
    assert abs(accepted - beta) < 0.015


def test_warp_top_k_top_p_temperature():
    logits = torch.tensor([3.0, 2.0, 1.0, 0.0, -1.0])
    assert (S.warp(logits, SamplingConfig(temperature=1.0, top_k=2)) > 0).sum() == 2
    probs = torch.softmax(logits, -1)  # [0.64, 0.23, 0.09, ...]
    kept = S.warp(logits, SamplingConfig(temperature=1.0, top_p=0.8)) > 0
    assert kept.tolist() == [True, True, False, False, False]
    assert torch.allclose(S.warp(logits, SamplingConfig(temperature=1.0)), probs)
    assert torch.allclose(S.warp(logits, SamplingConfig()), probs)  # greedy reports T=1
    sharp = S.warp(logits, SamplingConfig(temperature=0.5))
    assert sharp[0] > probs[0]


def test_typical_acceptance_accepts_plausible_tokens_the_exact_test_refuses():
    """Medusa's rule p(x) > min(ε, δ·e^−H): on a flat row (H = ln 5) the bar is 0.3/5 = 0.06, so any token
    (p = 0.2) passes — greedy matching would refuse all but the argmax; on a confident row the bar is
    ε = 0.09 and only the argmax passes."""
    flat, sure = torch.zeros(V), onehot(2) * 10
    logits = torch.stack([flat, sure, onehot(1) * 10])
    greedy = SamplingConfig()
    assert S.verify_greedy(logits, torch.tensor([3, 4])) == (0, 0)
    assert S.verify_typical(logits, torch.tensor([3, 4]), greedy, None, 0.09, 0.3) == (1, 2)  # refuse 4, take 2
    assert S.verify_typical(logits, torch.tensor([3, 2]), greedy, None, 0.09, 0.3) == (2, 1)  # bonus from row 3
    assert S.verify_typical(logits, torch.tensor([3, 2]), greedy, None, 0.01, 0.3) == (2, 1)
    assert S.verify_typical(logits, torch.tensor([3, 2]), greedy, None, 0.5, 0.3)[0] == 2  # flat bar stays 0.06
    assert S.verify_typical(logits, torch.tensor([3, 2]), greedy, None, 0.25, 5.0) == (0, 0)  # bar min(.25, 1) > .2


def test_typical_acceptance_when_sampling_draws_the_next_token_from_p():
    sampling = SamplingConfig(temperature=1.0)
    logits = torch.stack([torch.zeros(V), onehot(2) * 10, onehot(1) * 10])
    draws = [S.verify_typical(logits, torch.tensor([3, 4]), sampling, torch.Generator().manual_seed(s), 0.09, 0.3)
             for s in range(50)]
    assert {n for n, _ in draws} == {1}  # the test itself is deterministic
    assert {t for _, t in draws} == {2}  # p_1 puts ~all its mass on 2
    flat = [S.verify_typical(torch.stack([torch.zeros(V), torch.zeros(V)]), torch.tensor([3]), sampling,
                             torch.Generator().manual_seed(s), 0.09, 0.3)[1] for s in range(200)]
    assert set(flat) == set(range(V))  # a bonus drawn from a flat p covers the vocabulary
