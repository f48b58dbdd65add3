"""The loops against their contracts: lossless greedy, target-preserving sampling, exact rollback."""

import itertools

import pytest
import torch

import tiny
from specdec.decoding import sampling as S
from specdec.config import SamplingConfig
from specdec.decoding.loops import baseline_decode, speculative_decode
from specdec.decoding.drafters import DraftModelDrafter, PromptLookupDrafter, lookup
from specdec.decoding.forward import forward, new_cache, rollback

GREEDY = SamplingConfig()
EOS = {tiny.EOS_ID}


def prompts(n, seed=0, vocab=256):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(2, 48, (1,), generator=g))
        p = torch.randint(0, vocab, (length,), generator=g)
        if length > 12:  # some repetition for prompt lookup to find
            p[-6:] = p[2:8]
        out.append(p)
    return out


def drafters(target, draft, sampling=GREEDY, generator=None):
    return {
        "draft": lambda: DraftModelDrafter(draft, sampling, generator, target.config.vocab_size),
        "prompt-lookup": lambda: PromptLookupDrafter(),
    }


@pytest.mark.parametrize("pair", ["qwen2", "llama"])
def test_greedy_speculative_equals_baseline(pair, target, draft, llama_pair):
    t, d = (target, draft) if pair == "qwen2" else llama_pair
    for prompt in prompts(4, seed=1 if pair == "qwen2" else 2):
        base = baseline_decode(t, prompt, 32, GREEDY, EOS)
        for gamma, (name, make) in itertools.product(range(1, 9), drafters(t, d).items()):
            spec = speculative_decode(t, make(), prompt, gamma, 32, GREEDY, EOS)
            assert spec.tokens == base.tokens, (name, gamma)
            assert sum(r.emitted for r in spec.rounds) + 1 == spec.new_tokens


def test_eos_inside_drafted_run_is_truncated(target):
    # A perfect draft accepts every token, so an EOS lands inside an accepted run.
    perfect = tiny.noisy_copy(target, noise=0.0)
    prompt = prompts(1, seed=7)[0]
    free = baseline_decode(target, prompt, 30, GREEDY, set())
    stop = free.tokens[6]  # a token the target emits at index 6 (or earlier)
    eos = {stop}
    base = baseline_decode(target, prompt, 30, GREEDY, eos)
    assert base.tokens[-1] == stop and len(base.tokens) == free.tokens.index(stop) + 1
    for gamma in (4, 6, 8):
        spec = speculative_decode(target, DraftModelDrafter(perfect, GREEDY, None, target.config.vocab_size),
                                  prompt, gamma, 30, GREEDY, eos)
        assert spec.tokens == base.tokens
        last = spec.rounds[-1]
        assert last.emitted < last.accepted + 1  # the run was cut at EOS


def test_max_new_tokens_is_exact(target, draft):
    prompt = prompts(1, seed=3)[0]
    for max_new in (1, 2, 5, 17):
        base = baseline_decode(target, prompt, max_new, GREEDY, set())
        spec = speculative_decode(target, drafters(target, draft)["draft"](), prompt, 8, max_new, GREEDY, set())
        assert len(base.tokens) == len(spec.tokens) == max_new
        assert spec.tokens == base.tokens


def test_same_seed_same_output(target, draft):
    sampling = SamplingConfig(temperature=0.8, top_p=0.9, top_k=50)
    prompt = prompts(1, seed=4)[0]

    def run_spec(seed):
        g = torch.Generator().manual_seed(seed)
        return speculative_decode(target, DraftModelDrafter(draft, sampling, g, target.config.vocab_size),
                                  prompt, 4, 30, sampling, EOS, g).tokens

    def run_base(seed):
        return baseline_decode(target, prompt, 30, sampling, EOS, torch.Generator().manual_seed(seed)).tokens

    assert run_spec(1) == run_spec(1) and run_base(1) == run_base(1)
    assert run_spec(1) != run_spec(2)


def test_rollback_leaves_cache_equal_to_fresh_forward(target, draft):
    prompt = prompts(1, seed=5)[0]
    cache = new_cache(target)
    forward(target, prompt, cache)
    drafter = DraftModelDrafter(draft, GREEDY, None, target.config.vocab_size)
    drafter.start(prompt)
    seq = torch.cat([prompt, prompt.new_tensor([7])])
    proposal = drafter.propose(seq, 6)
    logits = forward(target, torch.cat([seq[-1:], proposal.x]), cache, keep=7)
    n, _ = S.verify_greedy(logits, proposal.x)
    for model, c, keep in ((target, cache, seq.shape[0] + n), (draft, drafter.cache, seq.shape[0] + min(n, 2))):
        rollback(c, keep)
        committed = torch.cat([seq, proposal.x])[:keep]
        fresh = new_cache(model)
        forward(model, committed, fresh)
        assert c.get_seq_length() == fresh.get_seq_length() == keep
        for a, b in zip(c.layers, fresh.layers):
            torch.testing.assert_close(a.keys, b.keys, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(a.values, b.values, rtol=1e-5, atol=1e-5)


def test_prompt_lookup_finds_latest_longest_match():
    seq = torch.tensor([1, 2, 3, 9, 1, 2, 3, 8, 5, 1, 2, 3])
    assert lookup(seq, 3, 3, 1).tolist() == [8, 5, 1]  # latest "1 2 3" is followed by 8 5 1
    assert lookup(torch.tensor([4, 5, 6]), 3, 3, 1).tolist() == []
    assert lookup(torch.tensor([7, 7, 7]), 4, 3, 1).tolist() == [7]


# --- sampling preserves the target distribution, end to end, on a 6-token vocabulary ---

SMALL_V = 6


def exact_marginals(model, prompt, steps):
    """Exact P(token at position k) for k = 1..steps by enumerating every continuation."""
    marginals = []
    seqs, weights = prompt[None], torch.ones(1)
    with torch.no_grad():
        for _ in range(steps):
            probs = torch.softmax(model(seqs).logits[:, -1].float(), -1)  # (B, V)
            joint = weights[:, None] * probs
            marginals.append(joint.sum(0))
            seqs = torch.cat([seqs.repeat_interleave(SMALL_V, 0), torch.arange(SMALL_V).repeat(seqs.shape[0])[:, None]], 1)
            weights = joint.reshape(-1)
    return torch.stack(marginals)


def empirical_marginals(target, draft, prompt, steps, rule, n=1500):
    sampling = SamplingConfig(temperature=1.0)
    counts = torch.zeros(steps, SMALL_V)
    g = torch.Generator().manual_seed(0)
    original = S.verify_sampled
    S.verify_sampled = rule
    try:
        for _ in range(n):
            drafter = DraftModelDrafter(draft, sampling, g, SMALL_V)
            out = speculative_decode(target, drafter, prompt, steps - 2, steps, sampling, set(), g).tokens
            counts[torch.arange(steps), torch.tensor(out)] += 1
    finally:
        S.verify_sampled = original
    return counts / n


def resample_from_p(p, q, x, g):
    """A deliberately wrong rule: on rejection sample from p instead of norm(max(0, p − q))."""
    n, _ = sample_verify(p, q, x, g)
    return n, S.sample(p[n], g)


sample_verify = S.verify_sampled


@pytest.mark.slow
def test_sampled_speculative_preserves_target_distribution():
    target = tiny.tiny_qwen2(seed=11, vocab_size=SMALL_V)
    draft = tiny.tiny_qwen2(seed=12, vocab_size=SMALL_V)  # unrelated: q differs a lot from p
    prompt = torch.tensor([1, 4, 2])
    steps = 4  # token 1 from prefill, then one round drafting 2, verifying, and a bonus
    exact = exact_marginals(target, prompt, steps)
    good = empirical_marginals(target, draft, prompt, steps, sample_verify)
    bad = empirical_marginals(target, draft, prompt, steps, resample_from_p)
    tv = 0.5 * (good - exact).abs().sum(-1)
    tv_bad = 0.5 * (bad - exact).abs().sum(-1)
    # sampling noise of TV with 1500 draws over 6 outcomes is ~0.02-0.03
    assert tv.max() < 0.05, tv
    assert tv_bad[1:].max() > 0.08, tv_bad
