"""Traced acceptance (issue 15) on tiny models: the rounds derived from one batched target generation
and teacher-forced drafters equal the real decoder's, for every drafter family and γ 1–8, with EOS and
max_new_tokens cuts; batched generation equals one prompt at a time; sampled β matches the real
sampled decoder's acceptance."""

import pytest
import torch

import tiny
from specdec.config import SamplingConfig
from specdec.decoding.drafters import DraftModelDrafter, MedusaDrafter, PromptLookupDrafter, layer_skip_model
from specdec.decoding.loops import baseline_decode, speculative_decode
from specdec.traces import scan
from specdec.traces.generate import TraceDrafter, trace_batch
from test_decoding import prompts
from test_more_drafters import random_heads

GREEDY = SamplingConfig()
GAMMAS = range(1, 9)


@pytest.fixture(scope="module")
def deep():
    return tiny.tiny_qwen2(seed=5, layers=3)


@pytest.fixture(scope="module")
def family(deep):
    """The four drafter families on the 3-layer target: real drafter factories and trace specs."""
    draft = tiny.noisy_copy(deep, noise=0.05)
    view = layer_skip_model(deep, 2)
    heads = random_heads(deep, 3)
    V = deep.config.vocab_size
    real = {"draft": lambda: DraftModelDrafter(draft, GREEDY, None, V),
            "layer-skip:L2": lambda: DraftModelDrafter(view, GREEDY, None, V),
            "medusa": lambda: MedusaDrafter(heads, deep.lm_head, GREEDY, None, V),
            "prompt-lookup": PromptLookupDrafter}
    traced = [TraceDrafter("draft", "draft", model=draft), TraceDrafter("layer-skip:L2", "layer-skip", layers=2),
              TraceDrafter("medusa", "medusa", heads=heads)]
    return real, traced


def real_rounds(gen):
    return [(r.drafted, r.accepted, r.emitted) for r in gen.rounds]


def traced_rounds(rs):
    return [(r["drafted"], r["accepted"], r["emitted"]) for r in rs]


@pytest.mark.parametrize("max_new", [20, 7])
def test_traced_rounds_equal_real_rounds_for_every_family_and_gamma(deep, family, max_new):
    real, traced = family
    ps = prompts(4, seed=41)
    eos = {tiny.EOS_ID}
    traces = trace_batch(deep, [p.tolist() for p in ps], max_new, GREEDY, eos, traced, lookahead=max(GAMMAS))
    checked = 0
    for p, tr in zip(ps, traces):
        assert tr.tokens == baseline_decode(deep, p, max_new, GREEDY, eos).tokens
        for key, make in real.items():
            for gamma in GAMMAS:
                gen = speculative_decode(deep, make(), p, gamma, max_new, GREEDY, eos)
                rs = scan.rounds(tr, key, gamma, max_new, eos)
                assert traced_rounds(rs) == real_rounds(gen), (key, gamma)
                for r, t in zip(gen.rounds, rs):  # the tested drafts and their β are the real ones
                    assert t["draft_tokens"] == r.draft_tokens[: len(t["draft_tokens"])]
                    assert len(t["draft_tokens"]) == min(r.accepted + 1, r.drafted)
                    if r.beta is not None and t["beta"] is not None:
                        assert t["beta"] == pytest.approx(r.beta[: len(t["beta"])], abs=1e-4)
                checked += len(rs)
    assert checked > 100


def test_eos_inside_a_round_cuts_it_but_counts_matches_past_it(deep, family):
    """Treat a token the target emits mid-generation as EOS: rounds that draft across it accept past
    it and emit up to it, exactly as the real loop records."""
    real, traced = family
    cases = 0
    for p in prompts(6, seed=43):
        base = baseline_decode(deep, p, 24, GREEDY, set())
        eos = {base.tokens[9]}
        if base.tokens.index(base.tokens[9]) < 2:
            continue
        tr = trace_batch(deep, [p.tolist()], 24, GREEDY, eos, traced, lookahead=max(GAMMAS))[0]
        assert tr.tokens[-1] in eos and len(tr.tokens) <= 10 and len(tr.extended) > len(tr.tokens)
        for key, make in real.items():
            for gamma in GAMMAS:
                gen = speculative_decode(deep, make(), p, gamma, 24, GREEDY, eos)
                assert traced_rounds(scan.rounds(tr, key, gamma, 24, eos)) == real_rounds(gen), (key, gamma)
                assert gen.tokens == tr.tokens
        cases += 1
    assert cases >= 3


def test_batched_generation_equals_one_prompt_at_a_time(deep, family):
    _, traced = family
    ps = [p.tolist() for p in prompts(6, seed=47)]
    eos = {tiny.EOS_ID}
    together = trace_batch(deep, ps, 16, GREEDY, eos, traced, lookahead=4)
    for p, t in zip(ps, together):
        alone = trace_batch(deep, [p], 16, GREEDY, eos, traced, lookahead=4)[0]
        assert t.extended == alone.extended and t.tokens == alone.tokens
        for key in alone.drafters:
            assert t.drafters[key].top == alone.drafters[key].top
