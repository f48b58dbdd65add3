"""Issue 8's drafters on tiny models: layer-skip and Medusa heads stay lossless, heads train and
reload, and a run compares several draft models, layer-skip and Medusa side by side."""

import json

import pytest
import torch
from transformers import Qwen2ForCausalLM

import tiny
from specdec import methods, results as R
from specdec.analysis import summary as analysis
from specdec.decoding import medusa
from specdec.cli import main
from specdec.config import SamplingConfig
from specdec.decoding.loops import baseline_decode, speculative_decode
from specdec.decoding.drafters import DraftModelDrafter, MedusaDrafter, layer_skip_model
from specdec.decoding.forward import forward, new_cache
from test_decoding import prompts

GREEDY = SamplingConfig()
EOS = {tiny.EOS_ID}


@pytest.fixture(scope="module")
def deep():
    return tiny.tiny_qwen2(seed=5, layers=3)


def test_layer_skip_view_shares_weights_and_equals_a_truncated_model(deep):
    view = layer_skip_model(deep, 2)
    assert view.model.layers[0].self_attn.q_proj.weight is deep.model.layers[0].self_attn.q_proj.weight
    assert len(deep.model.layers) == 3 and deep.config.num_hidden_layers == 3  # the target is untouched
    cfg = deep.config.to_dict() | {"num_hidden_layers": 2}
    cfg.pop("layer_types", None)
    ref = Qwen2ForCausalLM(type(deep.config)(**cfg)).eval()
    ref.load_state_dict({k: v for k, v in deep.state_dict().items() if ".layers.2." not in k})
    ids = prompts(1, seed=3)[0]
    with torch.inference_mode():
        a = forward(view, ids, new_cache(view), keep=ids.shape[0])
        b = forward(ref, ids, new_cache(ref), keep=ids.shape[0])
        full = forward(deep, ids, new_cache(deep), keep=ids.shape[0])
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, full, atol=1e-3)  # it really skips a layer


@pytest.mark.parametrize("layers", [1, 2])
def test_layer_skip_greedy_equals_baseline(deep, layers):
    view = layer_skip_model(deep, layers)
    for prompt in prompts(3, seed=11):
        base = baseline_decode(deep, prompt, 24, GREEDY, EOS)
        for gamma in (1, 3, 5):
            spec = speculative_decode(deep, DraftModelDrafter(view, GREEDY, None, deep.config.vocab_size),
                                      prompt, gamma, 24, GREEDY, EOS)
            assert spec.tokens == base.tokens, (layers, gamma)
            assert all(r.beta is not None and len(r.beta) == r.drafted for r in spec.rounds)


def random_heads(target, k=3, seed=0):
    torch.manual_seed(seed)
    heads = medusa.MedusaHeads(target.config.hidden_size, k)
    with torch.no_grad():
        for b in heads.blocks:
            b.weight.normal_(0, 0.2)
    return heads.eval()


def test_zero_initialised_head_copies_the_target_next_token_head(target):
    heads = medusa.MedusaHeads(target.config.hidden_size, 2)
    h = torch.randn(5, target.config.hidden_size)
    with torch.no_grad():
        assert torch.allclose(heads.logits(h, target.lm_head)[0], target.lm_head(h), atol=1e-5)


@pytest.mark.parametrize("heads_k", [1, 3])
def test_medusa_greedy_equals_baseline(target, heads_k):
    heads = random_heads(target, heads_k)
    for prompt in prompts(3, seed=21):
        base = baseline_decode(target, prompt, 24, GREEDY, EOS)
        for gamma in (1, 2, 4):
            drafter = MedusaDrafter(heads, target.lm_head, GREEDY, None, target.config.vocab_size)
            spec = speculative_decode(target, drafter, prompt, gamma, 24, GREEDY, EOS)
            assert spec.tokens == base.tokens
            assert all(r.drafted <= min(gamma, heads_k) for r in spec.rounds)


def test_medusa_sampling_is_reproducible_with_a_seed(target):
    heads = random_heads(target)
    sampling = SamplingConfig(temperature=0.8, top_p=0.9)
    prompt = prompts(1, seed=4)[0]
    out = []
    for _ in range(2):
        g = torch.Generator().manual_seed(7)
        drafter = MedusaDrafter(heads, target.lm_head, sampling, g, target.config.vocab_size)
        out.append(speculative_decode(target, drafter, prompt, 3, 20, sampling, EOS, g).tokens)
    assert out[0] == out[1]


def test_heads_learn_the_target_continuations_and_reload_identically(target, tmp_path):
    H, Y = medusa.continuation_data(target, [p.tolist() for p in prompts(6, seed=31)], 24, set(), 2)
    assert H.shape[0] == Y.shape[0] > 0 and Y.shape[1] == 2
    heads = medusa.MedusaHeads(target.config.hidden_size, 2)
    with torch.no_grad():
        before = float(medusa.head_loss(heads, target.lm_head, H, Y))
    losses = medusa.train(heads, target.lm_head, H, Y, steps=40, batch=64, lr=3e-3)
    with torch.no_grad():
        after = float(medusa.head_loss(heads, target.lm_head, H, Y))
    assert after < 0.8 * before and losses[-1] < losses[0]
    assert all(not p.requires_grad for p in target.lm_head.parameters())
    report = medusa.TrainReport(heads=2, steps=40, batch=64, lr=3e-3, train_prompts=["a"], eval_prompts=[],
                                train_positions=len(H), eval_positions=0, collect_s=0, train_s=0,
                                loss_first=losses[0], loss_last=losses[-1])
    medusa.save(heads, report, tmp_path / "heads")
    again, meta = medusa.load(tmp_path / "heads", target)
    assert meta["num_heads"] == 2 and meta["report"]["train_prompts"] == ["a"]
    with torch.no_grad():
        assert torch.equal(heads.logits(H[:8], target.lm_head), again.logits(H[:8], target.lm_head))


def test_loading_heads_fails_in_one_line(tmp_path, target):
    from specdec.errors import SpecdecError
    with pytest.raises(SpecdecError, match="not a Medusa heads directory"):
        medusa.load(tmp_path)
    (tmp_path / medusa.MANIFEST_FILE).write_text("{not json")
    (tmp_path / medusa.HEADS_FILE).write_bytes(b"junk")
    with pytest.raises(SpecdecError, match="cannot read"):
        medusa.load(tmp_path)


def test_split_is_stratified_and_keeps_a_held_out_prompt_per_category():
    class P:
        def __init__(self, i, c):
            self.id, self.category = f"{c}{i}", c
    ps = [P(i, c) for c, n in (("a", 6), ("b", 2), ("c", 1)) for i in range(n)]
    train, held = medusa.split(ps, 0.5, seed=1)
    count = lambda xs, c: sum(p.category == c for p in xs)  # noqa: E731
    assert (count(train, "a"), count(held, "a")) == (3, 3)
    assert (count(train, "b"), count(held, "b")) == (1, 1)
    assert {p.id for p in train}.isdisjoint({p.id for p in held})


def test_method_keys():
    k = methods.parse("layer-skip:L8")  # parsed once, carried as data
    assert (k.text, k.family, k.variant, k.layers) == ("layer-skip:L8", "layer-skip", "L8", 8)
    assert methods.draft_steps("medusa", 4) == 1 and methods.draft_steps("draft:x", 4) == 4
    assert methods.draft_steps("prompt-lookup", 4) == 0
    assert methods.in_sample("medusa:train") and not methods.in_sample("medusa")
    assert methods.lossy("medusa:typical") and not methods.lossy("medusa")
    assert [k for k in ("medusa", "medusa:train", "medusa:typical", "draft", "bogus") if methods.decidable(k)] == \
        ["medusa", "draft"]
    for bad in ("layer-skip", "layer-skip:8", "prompt-lookup:x", "eagle", "medusa:x", "draft:"):
        assert not methods.is_valid(bad), bad


def write_workload(path, n):
    lines = [json.dumps({"id": f"p{i}", "category": "code" if i % 2 else "chat",
                         "prompt": f"Write item {i}: " + "abc def " * (i + 2)}) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_train_heads_then_run_every_method_side_by_side(tiny_model_dirs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPECDEC_STORE", str(tmp_path / "runs.sqlite"))
    target_dir, draft_dir = tiny_model_dirs
    workload = write_workload(tmp_path / "w.jsonl", 4)
    assert main(["train-heads", "--workload", str(workload), "--target", str(target_dir), "--out",
                 str(tmp_path / "heads"), "--heads", "2", "--steps", "5", "--batch", "16", "--max-new-tokens", "10",
                 "--dtype", "float32"]) == 0
    assert "head 1 (token +2): top-1" in capsys.readouterr().out
    trained = json.loads((tmp_path / "heads" / medusa.MANIFEST_FILE).read_text())["report"]["train_prompts"]
    assert len(trained) == 2  # half of each category

    other = tmp_path / "draft2"
    other.symlink_to(draft_dir, target_is_directory=True)
    assert main(["run", "--workload", str(workload), "--out", str(tmp_path / "out"), "--target", str(target_dir),
                 "--draft", f"{draft_dir},{other}", "--methods", "draft,prompt-lookup,layer-skip,medusa",
                 "--layer-skip-layers", "1", "--medusa-heads", str(tmp_path / "heads"), "--medusa-typical",
                 "--draft-lengths", "2", "--max-new-tokens", "10", "--dtype", "float32"]) == 0
    results = R.load(tmp_path / "out" / "results.json")
    drafters = results["manifest"]["models"]["drafters"]
    assert set(drafters) == {"draft:draft", "draft:draft2", "prompt-lookup", "layer-skip:L1", "medusa", "medusa:train",
                             "medusa:typical"}
    assert drafters["medusa:typical"]["acceptance"]["rule"] == "typical"
    assert drafters["layer-skip:L1"]["extra_parameters"] == 0 and drafters["layer-skip:L1"]["num_layers"] == 1
    assert drafters["medusa"]["extra_parameters"] > 0 and drafters["medusa"]["heads"] == 2
    assert drafters["draft:draft"]["extra_parameters"] == results["manifest"]["models"]["draft"]["parameters"]
    for p in results["prompts"]:
        keys = {r["method"] for r in p["runs"]}
        # Typical acceptance runs on held-out prompts only, beside the exact test.
        medusa_keys = {"medusa:train"} if p["id"] in trained else {"medusa", "medusa:typical"}
        assert keys == {"draft:draft", "draft:draft2", "prompt-lookup", "layer-skip:L1"} | medusa_keys
        for run in p["runs"]:
            if run["method"] != "medusa:typical":  # the lossy rule may drift; everything else may not
                assert run["tokens"] == p["baseline"]["tokens"], run["method"]  # greedy float32: lossless
            # The recorded measurement adds up: every emitted token is in a round (plus the prefill's),
            # and the rounds' chained clocks never exceed the decode time they split.
            assert sum(r["emitted"] for r in run["rounds"]) + 1 == run["new_tokens"] == len(run["tokens"])
            assert sum(r["draft_s"] + r["verify_s"] for r in run["rounds"]) <= run["decode_s"] + 1e-9
    a = analysis.analyze(results, n_boot=50)
    assert "medusa:typical" in a.lossless["lossy"] and "medusa:typical" not in a.lossless["by_method"]
    assert "typical acceptance (lossy)" in a.label("medusa:typical")
    import io

    import pypdf
    from specdec.present import report
    pdf = pypdf.PdfReader(io.BytesIO(report.build_brief(a, charts_on=False)))
    text = " ".join(" ".join(page.extract_text().split()) for page in pdf.pages)
    assert "typical acceptance (lossy)" in text and "left out of that count" in text


def test_run_option_errors_are_one_line(tiny_model_dirs, tmp_path, capsys):
    target_dir, _ = tiny_model_dirs
    workload = write_workload(tmp_path / "w.jsonl", 2)
    base = ["run", "--workload", str(workload), "--out", str(tmp_path / "o"), "--target", str(target_dir),
            "--dtype", "float32", "--no-store"]
    assert main(base + ["--methods", "medusa"]) == 2
    assert "train-heads" in capsys.readouterr().err
    assert main(base + ["--methods", "draft", "--medusa-typical"]) == 2
    assert "add the medusa method" in capsys.readouterr().err
    assert main(base + ["--methods", "layer-skip", "--layer-skip-layers", "9"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the target has 2 layers" in errors[0] and "Traceback" not in err


def test_typical_acceptance_is_a_lossy_rule_between_two_exact_limits(target):
    """Threshold 1 (ε = 1, δ huge) accepts nothing, so every token is the target's argmax: the greedy
    output. Threshold 0 (ε = 0) accepts every drafted token: the output drifts from the target's."""
    heads = random_heads(target, 3)
    drifted = 0
    for prompt in prompts(4, seed=8):
        base = baseline_decode(target, prompt, 20, GREEDY, EOS)
        never = speculative_decode(target, MedusaDrafter(heads, target.lm_head, GREEDY, None, target.config.vocab_size),
                                   prompt, 3, 20, GREEDY, EOS, typical=(1.0, 1e9))
        assert never.tokens == base.tokens and all(r.accepted == 0 for r in never.rounds)
        always = speculative_decode(target, MedusaDrafter(heads, target.lm_head, GREEDY, None, target.config.vocab_size),
                                    prompt, 3, 20, GREEDY, EOS, typical=(0.0, 0.3))
        assert all(r.accepted == r.drafted for r in always.rounds) and len(always.tokens) <= 20
        drifted += always.tokens != base.tokens
    assert drifted > 0
