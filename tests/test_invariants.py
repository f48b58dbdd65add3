"""Measurement invariants on real tiny runs: bugs that leave the output right but the measurement wrong.

A draft cache that is not rolled back, a β computed from the wrong distributions, a layer-skip view
with the wrong depth or a Medusa head fed the wrong hidden state all keep greedy output lossless (the
target verifies everything) yet change α, τ and the verdict. So each check here compares what the
loop recorded with an independent no-cache recompute, or with a drafter whose acceptance is known
exactly: one that IS the target (accepts everything) and one that always disagrees (accepts nothing).
"""

import copy

import pytest
import torch
from transformers import Qwen2ForCausalLM

import tiny
from specdec.config import SamplingConfig
from specdec.decoding import medusa
from specdec.decoding import sampling as S
from specdec.decoding.drafters import DraftModelDrafter, MedusaDrafter, PromptLookupDrafter, layer_skip_model
from specdec.decoding.loops import baseline_decode, speculative_decode
from specdec.measure.bench import generation_record
from test_decoding import prompts

GREEDY = SamplingConfig()
SAMPLED = SamplingConfig(temperature=1.0, top_p=0.95)
EOS = {tiny.EOS_ID}


def full_logits(model, ids):
    """(len(ids), V) logits of a full forward without cache."""
    with torch.no_grad():
        return model(input_ids=torch.as_tensor(ids)[None], use_cache=False).logits[0].float()


class Checked:
    """Wraps a DraftModelDrafter: before each proposal its cache must hold a prefix of the committed
    sequence (checked by assertion, so a skipped rollback fails here rather than crashing inside the
    model); after it, every drafted token and q row must equal a no-cache recompute by `reference`."""

    observes_hidden = learns_responses = replayable = False

    def __init__(self, inner, reference, sampling):
        self.inner, self.reference, self.sampling = inner, reference, sampling
        self.proposals = []

    def start(self, prompt):
        self.inner.start(prompt)

    def rollback(self, length):
        self.inner.rollback(length)

    def propose(self, seq, gamma):
        cached = self.inner.cache.get_seq_length()
        assert cached <= seq.shape[0], f"draft cache holds {cached} positions, the sequence only {seq.shape[0]}"
        if cached:  # the cached keys must be those of the committed tokens, not of rejected drafts
            fresh = full_forward_keys(self.reference, seq[:cached])
            torch.testing.assert_close(self.inner.cache.layers[0].keys, fresh, rtol=1e-4, atol=1e-4,
                                       msg="draft cache does not match the committed prefix")
        proposal = self.inner.propose(seq, gamma)
        ids = torch.cat([seq, proposal.x])
        logits = full_logits(self.reference, ids)[seq.shape[0] - 1: ids.shape[0] - 1]
        q = S.warp(logits, self.sampling)
        torch.testing.assert_close(proposal.q, q, rtol=1e-4, atol=1e-5)
        if self.sampling.greedy:
            assert proposal.x.tolist() == logits.argmax(-1).tolist()
        self.proposals.append((seq.clone(), proposal))
        return proposal


def full_forward_keys(model, ids):
    from transformers import DynamicCache
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(input_ids=ids[None], past_key_values=cache, use_cache=True)
    return cache.layers[0].keys


def truncated_reference(model, layers):
    """An independent L-layer model: built from a config and loaded with the first L layers' weights."""
    cfg = model.config.to_dict() | {"num_hidden_layers": layers}
    cfg.pop("layer_types", None)
    ref = Qwen2ForCausalLM(type(model.config)(**cfg)).eval()
    keep = {k: v for k, v in model.state_dict().items()
            if ".layers." not in k or int(k.split(".layers.")[1].split(".")[0]) < layers}
    ref.load_state_dict(keep)
    return ref


@pytest.mark.parametrize("sampling", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_draft_cache_and_q_match_a_no_cache_draft_every_round(target, draft, sampling):
    """Catches a skipped or wrong draft-cache rollback even though the output stays lossless."""
    for prompt in prompts(3, seed=51):
        g = torch.Generator().manual_seed(0)
        d = Checked(DraftModelDrafter(draft, sampling, g, target.config.vocab_size), draft, sampling)
        gen = speculative_decode(target, d, prompt, 4, 24, sampling, EOS, g)
        assert len(d.proposals) == len(gen.rounds)
        assert any(r.accepted < r.drafted for r in gen.rounds)  # rejections happened: rollback was exercised


@pytest.mark.parametrize("layers", [1, 2])
def test_layer_skip_drafts_like_an_independent_truncated_model(layers):
    deep = tiny.tiny_qwen2(seed=5, layers=3)
    ref = truncated_reference(deep, layers)
    for prompt in prompts(2, seed=52):
        d = Checked(DraftModelDrafter(layer_skip_model(deep, layers), GREEDY, None, deep.config.vocab_size), ref, GREEDY)
        gen = speculative_decode(deep, d, prompt, 3, 20, GREEDY, EOS)
        assert gen.tokens == baseline_decode(deep, prompt, 20, GREEDY, EOS).tokens


def test_beta_is_the_overlap_of_the_recomputed_p_and_q(target, draft):
    """Round.beta must be Σ_v min(p, q) with p the target's warped distribution at each drafted position
    (recomputed without cache) and q the drafter's — not 1, not Σ min(q, q)."""
    for prompt in prompts(2, seed=53):
        g = torch.Generator().manual_seed(1)
        d = Checked(DraftModelDrafter(draft, SAMPLED, g, target.config.vocab_size), draft, SAMPLED)
        gen = speculative_decode(target, d, prompt, 3, 20, SAMPLED, EOS, g)
        betas = []
        for (seq, proposal), r in zip(d.proposals, gen.rounds):
            ids = torch.cat([seq, proposal.x])
            p = S.warp(full_logits(target, ids)[seq.shape[0] - 1: ids.shape[0] - 1], SAMPLED)
            want = torch.minimum(p, proposal.q).sum(-1).tolist()
            assert r.beta == pytest.approx(want, abs=1e-4)
            betas += want
        assert 0.05 < sum(betas) / len(betas) < 0.99  # a noisy draft: neither always nor never


def identical_and_deranged(target):
    """A draft that IS the target (a deep copy), and one whose lm_head rows are shifted by one token, so
    its argmax is never the target's (draft logit of v = target logit of v + 1)."""
    same = copy.deepcopy(target)
    wrong = copy.deepcopy(target)
    with torch.no_grad():
        wrong.lm_head.weight.copy_(torch.roll(target.lm_head.weight, -1, dims=0))
    return same, wrong


@pytest.mark.parametrize("sampling", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_a_drafter_that_is_the_target_accepts_everything(target, sampling):
    same, _ = identical_and_deranged(target)
    for prompt in prompts(2, seed=54):
        g = torch.Generator().manual_seed(2)
        gen = speculative_decode(target, DraftModelDrafter(same, sampling, g, target.config.vocab_size), prompt, 4,
                                 24, sampling, set(), g)
        assert all(r.accepted == r.drafted for r in gen.rounds)
        assert all(b == pytest.approx(1.0, abs=1e-5) for r in gen.rounds for b in r.beta)
        drafted = sum(r.drafted for r in gen.rounds)
        assert drafted >= 24 - 1 - len(gen.rounds)  # γ = 4 nearly every round: τ ≈ 5


def test_a_drafter_that_always_disagrees_accepts_nothing(target):
    _, wrong = identical_and_deranged(target)
    for prompt in prompts(2, seed=55):
        gen = speculative_decode(target, DraftModelDrafter(wrong, GREEDY, None, target.config.vocab_size), prompt, 4,
                                 20, GREEDY, EOS)
        assert gen.rounds and all(r.accepted == 0 and r.emitted == 1 for r in gen.rounds)
        assert sum(r.drafted for r in gen.rounds) > 0
        assert gen.tokens == baseline_decode(target, prompt, 20, GREEDY, EOS).tokens


def test_medusa_reads_the_hidden_state_that_produced_the_last_token(target):
    """Before each proposal the heads must hold h at position len(seq) − 2 of a no-cache forward: the
    final hidden state whose logits chose seq[-1]."""
    torch.manual_seed(0)
    heads = medusa.MedusaHeads(target.config.hidden_size, 3)
    drafter = MedusaDrafter(heads, target.lm_head, GREEDY, None, target.config.vocab_size)
    seen = []
    propose = drafter.propose

    def checked(seq, gamma):
        with torch.no_grad():
            h = target.base_model(input_ids=seq[None], use_cache=False).last_hidden_state[0]
        torch.testing.assert_close(drafter.h, h[seq.shape[0] - 2], rtol=1e-4, atol=1e-4)
        seen.append(gamma)
        return propose(seq, gamma)

    drafter.propose = checked
    prompt = prompts(1, seed=56)[0]
    gen = speculative_decode(target, drafter, prompt, 3, 20, GREEDY, EOS)
    assert len(seen) == len(gen.rounds) > 0
    # Zero-initialised heads copy the next-token head: head 1 guesses the token after next as the token
    # after the current one, so at least one round must reject (the heads are not an oracle).
    assert any(r.accepted < r.drafted for r in gen.rounds)


def test_medusa_training_labels_are_the_tokens_k_plus_1_ahead(target):
    """continuation_data: row t holds h_t (which gave s[t+1]) and head k's label s[t+1+k], k = 1 … K.
    Hand-indexed against the target's own greedy continuation (Hugging Face generate)."""
    prompt = prompts(1, seed=57)[0]
    n, K = 10, 2
    cont = target.generate(prompt[None], attention_mask=torch.ones_like(prompt)[None], do_sample=False,
                           max_new_tokens=n, eos_token_id=None, pad_token_id=0, top_k=None, top_p=None,
                           temperature=None)[0, prompt.shape[0]:].tolist()
    H, Y = medusa.continuation_data(target, [prompt.tolist()], n, set(), K)
    assert H.shape == (n, target.config.hidden_size) and Y.shape == (n, K)
    # Row 0 is the last prompt position: its hidden state chose cont[0]; head 1 → cont[1], head 2 → cont[2].
    assert Y[0].tolist() == [cont[1], cont[2]]
    assert Y[3].tolist() == [cont[4], cont[5]]
    assert Y[n - 2].tolist() == [cont[n - 1], medusa.IGNORE]  # past the continuation's end: ignored
    assert Y[n - 1].tolist() == [medusa.IGNORE, medusa.IGNORE]
    with torch.no_grad():
        h = target.base_model(input_ids=prompt[None]).last_hidden_state[0, -1]
    torch.testing.assert_close(H[0], h, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["draft", "prompt-lookup", "medusa"])
def test_time_accounting_adds_up(target, draft, method):
    """decode_s = Σ (draft_s + verify_s) + the loop's exit check. The rounds' clocks are chained, so Σ
    can never exceed decode_s; the remainder is one loop test (μs). A round whose time is dropped or
    counted twice breaks one side. On a loaded machine a preemption can land in the remainder, so the
    upper side must hold in at least one of three runs (a systematic bug fails all three)."""
    vocab = target.config.vocab_size
    make = {"draft": lambda: DraftModelDrafter(draft, GREEDY, None, vocab), "prompt-lookup": PromptLookupDrafter,
            "medusa": lambda: MedusaDrafter(medusa.MedusaHeads(target.config.hidden_size, 3), target.lm_head,
                                            GREEDY, None, vocab)}[method]
    prompt = prompts(1, seed=58)[0]
    gaps = []
    for _ in range(3):
        gen = speculative_decode(target, make(), prompt, 3, 24, GREEDY, set())
        rec = generation_record(gen, lambda t: "")
        rounds_s = sum(r["draft_s"] + r["verify_s"] for r in rec["rounds"])
        assert all(r["draft_s"] >= 0 and r["verify_s"] > 0 for r in rec["rounds"])
        assert rec["prefill_s"] > 0 and rec["decode_s"] == gen.decode_s
        assert rounds_s <= rec["decode_s"] + 1e-9, (rounds_s, rec["decode_s"])
        gaps.append(rec["decode_s"] - rounds_s)
        if gaps[-1] <= max(0.02 * rec["decode_s"], 0.002):
            break
    else:
        pytest.fail(f"decode_s exceeds the rounds' sum by {[f'{g * 1e3:.2f} ms' for g in gaps]} in all three runs")


def test_every_round_drafts_at_most_gamma_and_what_is_left(target, draft):
    """A round emits accepted + 1 tokens, so it may draft at most min(γ, max_new_tokens − emitted − 1):
    more is work the target verifies for nothing, and it inflates the drafted count behind ρ and α.
    Repetitive prompts make prompt lookup find long continuations, so its cap is really exercised."""
    vocab = target.config.vocab_size
    makers = {"draft": lambda: DraftModelDrafter(draft, GREEDY, None, vocab), "prompt-lookup": PromptLookupDrafter,
              "medusa": lambda: MedusaDrafter(medusa.MedusaHeads(target.config.hidden_size, 4), target.lm_head,
                                              GREEDY, None, vocab)}
    for name, make in makers.items():
        full_rounds = 0
        for prompt in [torch.tensor([5, 6, 7, 8, 9] * 6), *prompts(2, seed=59)]:
            for gamma, max_new in ((3, 12), (4, 7)):
                gen = speculative_decode(target, make(), prompt, gamma, max_new, GREEDY, set())
                emitted = 1
                for r in gen.rounds:
                    assert r.drafted <= min(gamma, max_new - emitted - 1), (name, gamma, r.drafted, emitted)
                    assert len(r.draft_tokens) == r.drafted
                    full_rounds += r.drafted == min(gamma, max_new - emitted - 1) > 0
                    emitted += r.emitted
                assert emitted == len(gen.tokens) == max_new
        assert full_rounds > 0, name  # the cap was reached, not just respected by drafting little
