"""Sampled speculative decoding emits exactly the target's distribution (Leviathan et al. 2023, Thm 3.5),
for every lossless method, checked on the JOINT distribution of the first 3–4 emitted tokens.

Reference: exactdist.exact_joint enumerates every continuation with full no-cache forwards and the
same warp (temperature, top-k, top-p). Test: Pearson χ² at false-alarm rate ALPHA = 0.1 % per check,
fixed seeds (deterministic). Each check has a control — the same loop with one rule made wrong — that
must be rejected with p < 1e-6, so a pass means the test could have failed.

Models: TableLM (hand-built logits over a 4-token vocabulary with a real KV cache of ids; ~1 ms a run)
for the draft model, prompt lookup, the warpers and the γ cut; tiny Hugging Face Qwen2 models (4-token
vocabulary) for layer-skip and Medusa, which need real layers and hidden states (fewer samples).
"""

from types import SimpleNamespace

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

import handmade
from exactdist import ALPHA, CONTROL_P, exact_joint, fit, hf_next_logits
from specdec.config import SamplingConfig
from specdec.decoding import loops
from specdec.decoding import medusa
from specdec.decoding import sampling as S
from specdec.decoding.drafters import DraftModelDrafter, MedusaDrafter, PromptLookupDrafter, layer_skip_model
from specdec.decoding.loops import speculative_decode

V = 4
PROMPT = torch.tensor([1, 3, 0, 1, 3])  # "1 3" repeats: prompt lookup finds matches from the first round


@pytest.fixture(scope="module")
def table_pair():
    return handmade.TableLM(V, seed=1), handmade.TableLM(V, seed=2)  # unrelated: q far from p


def draws(target, make_drafter, gamma, steps, sampling, n, seed=0):
    """n runs of the real loop → list of emitted token tuples. Also checks the γ cut on every round:
    a round drafts at most min(γ, tokens still allowed − 1), since it emits accepted + 1."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        gen = speculative_decode(target, make_drafter(g), PROMPT, gamma, steps, sampling, set(), g)
        assert len(gen.tokens) == steps
        emitted = 1
        for r in gen.rounds:
            assert r.drafted <= min(gamma, steps - emitted - 1), (r.drafted, gamma, steps - emitted)
            assert r.accepted <= r.drafted and r.emitted == r.accepted + 1
            emitted += r.emitted
        out.append(tuple(gen.tokens))
    return out


def resample_from_p(p, q, x, g):
    """The classic wrong rule: on rejection draw from p instead of norm(max(0, p − q)) (or, with a
    one-hot q, from p with x still in it)."""
    n, _ = CORRECT_VERIFY(p, q, x, g)
    return n, S.sample(p[n], g)


CORRECT_VERIFY = S.verify_sampled


def residual_from_q_minus_p(p, q, x, g):
    """A wrong rule: the right acceptance test, but the replacement drawn from norm(max(0, q − p))."""
    rows = torch.arange(x.shape[0])
    r = torch.rand(x.shape[0], generator=g)
    misses = (r * q[rows, x] > p[rows, x]).nonzero()
    if not misses.numel():
        return x.shape[0], S.sample(p[x.shape[0]], g)
    n = int(misses[0])
    residual = (q[n] - p[n]).clamp_min(0.0)
    return n, S.sample(residual / residual.sum() if residual.sum() > 0 else p[n], g)


def p_without(**drop):
    """A shim for the loop's `S` whose warp of the TARGET ignores one warper (the drafter's q keeps it):
    the 'top-p applied to q but not p' family of bugs."""
    from dataclasses import replace
    return SimpleNamespace(**{**vars(S), "warp": lambda logits, s: S.warp(logits, replace(s, **drop))})


def check(samples, exact):
    pvalue, tv = fit(samples, exact)
    assert pvalue > ALPHA, f"χ² p-value {pvalue:.2e} ≤ {ALPHA} (TV {tv:.3f}): not the target's distribution"


def check_control(samples, exact):
    pvalue, tv = fit(samples, exact)
    assert pvalue < CONTROL_P, f"control not detected: p-value {pvalue:.2e}, TV {tv:.3f}"


SAMPLINGS = {
    "T1": (SamplingConfig(temperature=1.0), {"temperature": 1.0}),
    "T0.6-topk2": (SamplingConfig(temperature=0.6, top_k=2), {"top_k": 0}),
    "T1.4-topp0.7": (SamplingConfig(temperature=1.4, top_p=0.7), {"top_p": 1.0}),
}


@pytest.mark.parametrize("name", list(SAMPLINGS))
def test_draft_model_joint_distribution_is_the_targets(table_pair, monkeypatch, name):
    """γ = 2 over 4 tokens: token 1 from prefill, then a round that can accept both drafts and add the
    bonus, so accept, resample and bonus all land inside the joint. Controls: the target's p without
    this configuration's warper (T1: the classic resample-from-p rule instead)."""
    target, draft = table_pair
    sampling, drop = SAMPLINGS[name]
    exact = exact_joint(target.logits_of, PROMPT, 4, sampling)
    make = lambda g: DraftModelDrafter(draft, sampling, g, V)  # noqa: E731
    check(draws(target, make, 2, 4, sampling, 1500), exact)
    if name == "T1":
        monkeypatch.setattr(S, "verify_sampled", resample_from_p)
    else:
        monkeypatch.setattr(loops, "S", p_without(**drop))
    check_control(draws(target, make, 2, 4, sampling, 800 if name == "T1" else 300, seed=1), exact)


def test_draft_model_gamma_cut_by_max_new_tokens(table_pair, monkeypatch):
    """γ = 3 but only 3 tokens: the first round may draft 1, the next none (a bonus-only round)."""
    target, draft = table_pair
    sampling = SamplingConfig(temperature=0.8, top_k=3)
    exact = exact_joint(target.logits_of, PROMPT, 3, sampling)
    make = lambda g: DraftModelDrafter(draft, sampling, g, V)  # noqa: E731
    check(draws(target, make, 3, 3, sampling, 1500), exact)
    monkeypatch.setattr(S, "verify_sampled", resample_from_p)
    check_control(draws(target, make, 3, 3, sampling, 700, seed=1), exact)


@pytest.mark.parametrize("sampling", [SamplingConfig(temperature=1.0), SamplingConfig(temperature=1.2, top_p=0.8)],
                         ids=["T1", "T1.2-topp0.8"])
def test_prompt_lookup_joint_distribution_is_the_targets(table_pair, monkeypatch, sampling):
    """One-hot q (q = None): accept with p(x), resample from p with x removed. γ = 3 over 4 tokens,
    so some rounds are cut by max_new_tokens and some find no match (bonus-only rounds)."""
    target, _ = table_pair
    exact = exact_joint(target.logits_of, PROMPT, 4, sampling)
    rounds = []

    def make(g):
        d = PromptLookupDrafter()
        propose = d.propose

        def recording(seq, gamma):
            proposal = propose(seq, gamma)
            rounds.append(proposal.x.shape[0])
            return proposal

        d.propose = recording
        return d

    check(draws(target, make, 3, 4, sampling, 1500), exact)
    assert sum(rounds) > len(rounds)  # lookup really drafted (more than one token a round on average)
    monkeypatch.setattr(S, "verify_sampled", resample_from_p)
    check_control(draws(target, make, 3, 4, sampling, 700, seed=1), exact)


# --- real layers: layer-skip and Medusa on tiny Hugging Face models with a 4-token vocabulary ---

def small_qwen2(seed, layers):
    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=V, hidden_size=16, intermediate_size=32, num_hidden_layers=layers,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                      initializer_range=0.3, tie_word_embeddings=False)
    return Qwen2ForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def deep_small():
    return small_qwen2(seed=7, layers=3)


@pytest.mark.slow
def test_layer_skip_joint_distribution_is_the_targets(deep_small, monkeypatch):
    """The draft is the target's first layer with its own KV cache (γ = 1 over 3 tokens, top-p 0.9).
    Control: the replacement drawn from max(0, q − p)."""
    sampling = SamplingConfig(temperature=1.0, top_p=0.9)
    with torch.no_grad():
        exact = exact_joint(hf_next_logits(deep_small), PROMPT, 3, sampling)
    view = layer_skip_model(deep_small, 1)
    make = lambda g: DraftModelDrafter(view, sampling, g, V)  # noqa: E731
    check(draws(deep_small, make, 1, 3, sampling, 500), exact)
    monkeypatch.setattr(S, "verify_sampled", residual_from_q_minus_p)
    check_control(draws(deep_small, make, 1, 3, sampling, 300, seed=1), exact)


@pytest.mark.slow
def test_medusa_joint_distribution_is_the_targets(monkeypatch):
    """Two random heads (far from the target) draft from one hidden state; γ = 2 over 4 tokens.
    Control: the replacement drawn from max(0, q − p)."""
    target = small_qwen2(seed=8, layers=2)
    torch.manual_seed(9)
    heads = medusa.MedusaHeads(16, 2)
    with torch.no_grad():
        for b in heads.blocks:
            b.weight.normal_(0, 1.0)
    heads.eval()
    sampling = SamplingConfig(temperature=0.9, top_k=3)
    with torch.no_grad():
        exact = exact_joint(hf_next_logits(target), PROMPT, 4, sampling)
    make = lambda g: MedusaDrafter(heads, target.lm_head, sampling, g, V)  # noqa: E731
    check(draws(target, make, 2, 4, sampling, 400), exact)
    monkeypatch.setattr(S, "verify_sampled", residual_from_q_minus_p)
    check_control(draws(target, make, 2, 4, sampling, 300, seed=1), exact)
