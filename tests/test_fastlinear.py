"""CPU matmul backends: the same numbers as F.linear at every shape a decode or verify pass uses, a
switch that can always be undone, and decoding that stays lossless whichever backend runs."""

import pytest
import torch

import tiny
from specdec.decoding import fastlinear
from specdec.decoding.loops import baseline_decode, speculative_decode
from specdec.config import SamplingConfig
from specdec.decoding.drafters import DraftModelDrafter


@pytest.mark.parametrize("backend", ["weight-major", "onednn"])
def test_backend_matches_linear(backend):
    fn = fastlinear.BACKENDS[backend]
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(40, 24, generator=g), torch.randn(40, generator=g)
    for shape in [(24,), (1, 24), (3, 24), (2, 5, 24), (1, 200, 24)]:
        x = torch.randn(*shape, generator=g)
        assert torch.allclose(fn(x, w, b), torch.nn.functional.linear(x, w, b), atol=1e-5)
        assert fn(x, w).shape == shape[:-1] + (40,)


def test_onednn_falls_back_to_f_linear_when_a_gradient_can_flow():
    """oneDNN's inner product has no autograd kernel: without the fallback, heads trained through the
    target's lm_head (Medusa) would get no gradient at all."""
    w = torch.randn(8, 4, requires_grad=True)
    x = torch.randn(3, 4)
    fastlinear.onednn(x, w).sum().backward()
    assert w.grad is not None and torch.allclose(w.grad, x.sum(0).expand(8, 4))


@pytest.mark.parametrize("backend", ["weight-major", "onednn"])
def test_patched_model_decodes_the_same_and_stays_lossless(target, draft, backend):
    prompt = torch.arange(5, 40)
    greedy = SamplingConfig()
    before = baseline_decode(target, prompt, 24, greedy, set()).tokens
    patched, pdraft = tiny.noisy_copy(target, noise=0.0), tiny.noisy_copy(draft, noise=0.0)
    assert fastlinear.use(patched, backend) > 0 and fastlinear.use(pdraft, backend) > 0
    assert patched.specdec_linear == backend
    assert baseline_decode(patched, prompt, 24, greedy, set()).tokens == before
    spec = speculative_decode(patched, DraftModelDrafter(pdraft, greedy, None, target.config.vocab_size),
                              prompt, 4, 24, greedy, set())
    assert spec.tokens == before


def test_stock_runs_nn_linear_and_restores_the_choice(target):
    m = tiny.noisy_copy(target, noise=0.0)
    fastlinear.use(m, "onednn")
    linear = next(x for x in m.modules() if isinstance(x, torch.nn.Linear))
    with fastlinear.stock(m):
        assert "forward" not in vars(linear) and m.specdec_linear == "default"
    assert vars(linear)["forward"].__func__ is fastlinear._FORWARDS["onednn"]
    assert m.specdec_linear == "onednn"


def test_tune_picks_a_backend_that_runs_and_records_it(target):
    m = tiny.noisy_copy(target, noise=0.0)
    choice = fastlinear.tune(m)
    assert choice in fastlinear.BACKENDS and m.specdec_linear == choice
    assert fastlinear.forward_ms(m, choice) > 0


def test_a_backend_without_a_kernel_for_the_dtype_is_skipped(target, monkeypatch):
    def no_kernel(x, w, b=None):
        raise RuntimeError("could not create a primitive descriptor")
    monkeypatch.setitem(fastlinear.BACKENDS, "onednn", no_kernel)
    monkeypatch.setitem(fastlinear._FORWARDS, "onednn", fastlinear._patched(no_kernel))
    m = tiny.noisy_copy(target, noise=0.0)
    assert fastlinear.forward_ms(m, "onednn") is None
    assert m.specdec_linear == "default"  # the timing left the model as it found it
    assert fastlinear.tune(m) != "onednn"
