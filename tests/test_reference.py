"""An outside reference for greedy decoding: our baseline and every speculative method must emit exactly
what Hugging Face's own `generate(do_sample=False)` emits, and what a no-cache full recompute (argmax of
a full forward over the whole sequence at every step) emits — on two architectures.

test_decoding.py compares speculative decoding with our baseline_decode, which shares forward() and
the KV-cache handling with the speculative loop: a bug there would pass both sides. Neither reference
here uses our forward(), our cache handling or our loops.
"""

import pytest
import torch

import tiny
from specdec.config import SamplingConfig
from specdec.decoding import medusa
from specdec.decoding.drafters import DraftModelDrafter, MedusaDrafter, PromptLookupDrafter, layer_skip_model
from specdec.decoding.loops import baseline_decode, speculative_decode
from test_decoding import prompts

GREEDY = SamplingConfig()
EOS = {tiny.EOS_ID}
N = 24


def hf_generate(model, prompt, n):
    out = model.generate(prompt[None], attention_mask=torch.ones_like(prompt)[None], do_sample=False,
                         max_new_tokens=n, eos_token_id=tiny.EOS_ID, pad_token_id=tiny.EOS_ID,
                         num_beams=1, top_k=None, top_p=None, temperature=None)
    return out[0, prompt.shape[0]:].tolist()


def full_recompute(model, prompt, n):
    """Greedy by brute force: a full forward without any cache for every new token."""
    seq = prompt.tolist()
    out = []
    with torch.no_grad():
        while len(out) < n and (not out or out[-1] != tiny.EOS_ID):
            logits = model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1]
            out.append(int(logits.argmax()))
            seq.append(out[-1])
    return out


def random_heads(model, k=3, seed=0):
    torch.manual_seed(seed)
    heads = medusa.MedusaHeads(model.config.hidden_size, k)
    with torch.no_grad():
        for b in heads.blocks:
            b.weight.normal_(0, 0.2)
    return heads.eval()


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_greedy_equals_hugging_face_generate_and_full_recompute(arch, target, draft, llama_pair):
    t, d = (target, draft) if arch == "qwen2" else llama_pair
    vocab = t.config.vocab_size
    heads = random_heads(t)
    view = layer_skip_model(t, 1)
    makers = {
        "draft": lambda: DraftModelDrafter(d, GREEDY, None, vocab),
        "prompt-lookup": lambda: PromptLookupDrafter(),
        "layer-skip:L1": lambda: DraftModelDrafter(view, GREEDY, None, vocab),
        "medusa": lambda: MedusaDrafter(heads, t.lm_head, GREEDY, None, vocab),
    }
    for prompt in prompts(3, seed=41 if arch == "qwen2" else 42):
        ref = hf_generate(t, prompt, N)
        assert ref == full_recompute(t, prompt, N)  # the two references agree with each other
        assert len(ref) == N or ref[-1] == tiny.EOS_ID
        assert baseline_decode(t, prompt, N, GREEDY, EOS).tokens == ref, "baseline"
        for name, make in makers.items():
            for gamma in (1, 3, 5):
                spec = speculative_decode(t, make(), prompt, gamma, N, GREEDY, EOS)
                assert spec.tokens == ref, (name, gamma)
