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


def test_tune_picks_a_plan_that_runs_and_records_it(target):
    m = tiny.noisy_copy(target, noise=0.0)
    label = fastlinear.tune(m)
    assert m.specdec_linear == label and fastlinear.forward_ms(m, m.specdec_plan) > 0
    assert all(name in label for name in ([m.specdec_plan] if isinstance(m.specdec_plan, str)
                                          else [n for _, n in m.specdec_plan]))


def test_the_plan_takes_the_fastest_backend_at_each_row_count():
    """A backend fast at one row can be slow at four (Xeon: default 227 ms for a 1-token step, oneDNN 263;
    for 5 tokens 479 vs 350): one backend for every shape would slow the baseline or the verify pass."""
    ms = {"default": {1: 227, 2: 240, 4: 470, 8: 600}, "onednn": {1: 263, 2: 300, 4: 340, 8: 420},
          "weight-major": {1: 233, 2: 460, 4: 470, 8: 500}}
    assert fastlinear.best_plan(ms) == ((1, "default"), (2, "default"), (4, "onednn"), (8, "onednn"))
    ms["onednn"][1] = 200  # faster, but not by MIN_GAIN: F.linear stays
    assert fastlinear.best_plan(ms)[0] == (1, "default")
    assert fastlinear.plan_label(((1, "default"), (4, "onednn"))) == "default for 1–3 rows, onednn for ≥ 4 rows"
    assert fastlinear.plan_label(((1, "onednn"), (2, "default"))) == "onednn for 1 row, default for ≥ 2 rows"


def test_a_plan_runs_each_row_count_on_its_backend(target, monkeypatch):
    """use(model, plan) dispatches by the input's rows (tokens × batch), and merges a plan of one backend."""
    calls = []
    for name in ("default", "onednn"):
        fn = fastlinear.BACKENDS[name]
        monkeypatch.setitem(fastlinear.BACKENDS, name,
                            lambda x, w, b=None, fn=fn, name=name: calls.append((name, x.numel() // x.shape[-1]))
                            or fn(x, w, b))
    m = tiny.noisy_copy(target, noise=0.0)
    fastlinear.use(m, ((1, "default"), (3, "onednn")))
    assert m.specdec_linear == "default for 1–2 rows, onednn for ≥ 3 rows"
    lin = next(x for x in m.modules() if isinstance(x, torch.nn.Linear))
    for rows in (1, 2, 3, 7):
        calls.clear()
        lin(torch.randn(rows, lin.in_features))
        assert calls == [("default" if rows < 3 else "onednn", rows)]
    calls.clear()
    lin(torch.randn(2, 2, lin.in_features))  # a batch of 2 rows × 2 tokens: 4 rows
    assert calls == [("onednn", 4)]
    fastlinear.use(m, ((1, "onednn"), (4, "onednn")))
    assert m.specdec_linear == "onednn" and m.specdec_plan == "onednn"


def test_a_backend_without_a_kernel_for_the_dtype_is_skipped(target, monkeypatch):
    def no_kernel(x, w, b=None):
        raise RuntimeError("could not create a primitive descriptor")
    monkeypatch.setitem(fastlinear.BACKENDS, "onednn", no_kernel)
    monkeypatch.setitem(fastlinear._FORWARDS, "onednn", fastlinear._patched(no_kernel))
    m = tiny.noisy_copy(target, noise=0.0)
    assert fastlinear.forward_ms(m, "onednn") is None
    assert m.specdec_linear == "default"  # the timing left the model as it found it
    assert "onednn" not in fastlinear.tune(m)
