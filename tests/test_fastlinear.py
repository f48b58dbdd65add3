"""Weight-major Linear: the same numbers as F.linear, at every shape a decode or verify pass uses."""

import torch

import tiny
from specdec import fastlinear
from specdec.decoding import baseline_decode, speculative_decode
from specdec.config import SamplingConfig
from specdec.drafters import DraftModelDrafter


def test_weight_major_matches_linear():
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(40, 24, generator=g), torch.randn(40, generator=g)
    for shape in [(24,), (1, 24), (3, 24), (2, 5, 24), (1, 200, 24)]:
        x = torch.randn(*shape, generator=g)
        assert torch.allclose(fastlinear.weight_major(x, w, b), torch.nn.functional.linear(x, w, b), atol=1e-5)
        assert fastlinear.weight_major(x, w).shape == shape[:-1] + (40,)


def test_patched_model_decodes_the_same_and_stays_lossless(target, draft):
    prompt = torch.arange(5, 40)
    greedy = SamplingConfig()
    before = baseline_decode(target, prompt, 24, greedy, set()).tokens
    patched, pdraft = tiny.noisy_copy(target, noise=0.0), tiny.noisy_copy(draft, noise=0.0)
    assert fastlinear.patch(patched) > 0 and fastlinear.patch(pdraft) > 0
    assert patched.specdec_linear == "weight-major"
    assert baseline_decode(patched, prompt, 24, greedy, set()).tokens == before
    spec = speculative_decode(patched, DraftModelDrafter(pdraft, greedy, None, target.config.vocab_size),
                              prompt, 4, 24, greedy, set())
    assert spec.tokens == before


def test_tune_records_a_choice(target):
    m = tiny.noisy_copy(target, noise=0.0)
    assert fastlinear.tune(m) in ("default", "weight-major") and m.specdec_linear in ("default", "weight-major")
