import dataclasses
import json
import re

import pytest

import synthetic
from specdec import cli, results
from specdec.analysis import summary as analysis
from specdec.analysis import decision, deploy
from specdec.analysis import hardware as hw
from specdec.present import snippets
from specdec.errors import SpecdecError


def _decide(spec, **kw):
    return decision.decide(analysis.analyze(synthetic.make_results(spec), n_boot=400), **kw)


def _has_number(text: str) -> bool:
    return re.search(r"\d", text) is not None


@pytest.fixture(scope="module")
def go():
    spec = synthetic.Spec([synthetic.Category("code", 25, (0.85,), spread=0.05), synthetic.Category("chat", 25, (0.8,), spread=0.05)],
                  temperature=0.0, seed=11)
    return _decide(spec)


def test_clear_go(go):
    assert go.verdict == "GO"
    assert {s["status"] for s in go.segments} == {"on"}
    assert go.config["method"] == "draft" and go.config["draft_length"] >= 1
    assert set(go.snippets) == set(snippets.ENGINES) - {"tgi"}  # TGI speculates with Medusa or n-grams only
    assert all(_has_number(r) for r in go.reasons)
    assert any("Losslessness" in r and "100%" in r for r in go.reasons)
    assert any("Memory price" in r for r in go.reasons) and any("Compute price" in r for r in go.reasons)
    for s in go.segments:
        assert s["speedup_lo"] >= decision.Thresholds().min_speedup_lo
        assert s["batch_ranges"][0]["batch_min"] == 1 and s["batch_ranges"][-1]["gamma"] is None  # off at 256
    table = go.segments_table()
    assert {"category", "batch_min", "batch_max", "gamma"} <= set(table.columns)
    json.dumps(go.to_dict())


def test_clear_no_go():
    d = _decide(synthetic.Spec([synthetic.Category("code", 25, (0.1,)), synthetic.Category("chat", 25, (0.15,))], seed=12))
    assert d.verdict == "NO-GO"
    assert d.config is None and d.snippets == {}
    assert all(s["status"] == "off" for s in d.segments)
    assert all(_has_number(r) for r in d.reasons)


def test_mixed_segments():
    d = _decide(synthetic.Spec([synthetic.Category("code", 25, (0.9,)), synthetic.Category("chat", 25, (0.1,))], seed=13))
    assert d.verdict == "GO-SEGMENTS"
    status = {s["category"]: s["status"] for s in d.segments}
    assert status == {"code": "on", "chat": "off"}
    assert d.config["categories"] == ["code"]
    assert "code" in d.headline and d.headline.endswith("leave the rest off")  # chat is shown to lose


def test_a_clear_segment_is_found_among_many_configurations():
    """A traced run's shape: 3 methods × γ 1–8 in 5 categories of 8 prompts — 120 tests for the segments.
    The clear category must come out on (Holm over 120 tests could pass none with 2000 resamples: every
    category was "unclear" and the verdict INSUFFICIENT EVIDENCE however clear the gain)."""
    cats = [synthetic.Category("summary", 8, (0.9,), spread=0.05, lookup_match=0.9, lookup_rate=0.9)] + \
        [synthetic.Category(c, 8, (0.1,), spread=0.05, lookup_match=0.05, lookup_rate=0.1)
         for c in ("chat", "math", "qa", "translate")]
    spec = synthetic.Spec(cats, methods=("draft", "prompt-lookup", "layer-skip:L4"), gammas=tuple(range(1, 9)),
                          temperature=0.0, seed=17)
    d = decision.decide(analysis.analyze(synthetic.make_results(spec)))
    status = {s["category"]: s["status"] for s in d.segments}
    assert len(d.evidence["tests"]) == 24 * 6
    assert d.verdict == "GO-SEGMENTS" and status["summary"] == "on", (d.headline, status)
    assert all(status[c] != "on" for c in ("chat", "math", "qa", "translate"))
    unsettled = sum(v in ("unclear", "too-few") for v in status.values())
    assert ("until measured" in d.headline) == (unsettled > 0), (d.headline, status)


def test_too_small_sample_is_not_a_confident_verdict():
    d = _decide(synthetic.Spec([synthetic.Category("code", 6, (0.9,))], seed=14))
    assert d.verdict == "INSUFFICIENT-EVIDENCE"
    assert d.snippets == {}
    assert any("Not enough evidence" in r for r in d.reasons)


def test_straddling_interval_is_insufficient():
    # Noisy timings and a gain near the bar: the CI must straddle 1.05.
    costs = synthetic.Costs(noise=0.6, draft_s=0.0085)
    d = _decide(synthetic.Spec([synthetic.Category("a", 24, (0.65,), spread=0.3)], gammas=(2,), costs=costs, seed=3))
    s = d.segments[0]
    assert s["speedup_lo"] < 1.05 <= s["speedup_hi"], s
    assert d.verdict == "INSUFFICIENT-EVIDENCE"
    assert s["prompts_needed"] > 24


def test_thresholds_are_parameters():
    th = decision.Thresholds(min_speedup_lo=5.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        th.min_speedup_lo = 1.0  # type: ignore[misc]
    d = _decide(synthetic.Spec([synthetic.Category("code", 25, (0.85,))], seed=15), thresholds=th)
    assert d.verdict == "NO-GO"
    d = _decide(synthetic.Spec([synthetic.Category("code", 25, (0.85,))], seed=15), thresholds=decision.Thresholds(min_prompts=100))
    assert d.verdict == "INSUFFICIENT-EVIDENCE"


def test_float32_divergence_is_flagged():
    d = _decide(synthetic.Spec([synthetic.Category("code", 25, (0.85,))], temperature=0.0, dtype="float32",
                       diverge={i: 3 for i in range(5)}, seed=16))
    text = next(r for r in d.reasons if r.startswith("Losslessness"))
    assert "decoder bug" in text and "80%" in text


def test_prompt_lookup_maps_to_ngram_methods():
    spec = synthetic.Spec([synthetic.Category("docs", 25, (0.1,), lookup_match=0.9, lookup_rate=0.9)],
                  methods=("prompt-lookup",), seed=17)
    d = _decide(spec, hardware="this-machine")
    assert d.verdict == "GO" and d.config["method"] == "prompt-lookup"
    cfg = json.loads(re.search(r"'(\{.*\})'", d.snippets["vllm"]).group(1))
    assert cfg["method"] == "ngram" and cfg["num_speculative_tokens"] == d.config["draft_length"]
    assert cfg["prompt_lookup_max"] >= cfg["prompt_lookup_min"] >= 1
    assert "--speculative-algorithm NGRAM" in d.snippets["sglang"]
    assert "--spec-type ngram-simple" in d.snippets["llama.cpp"]
    assert "prompt_lookup_num_tokens=" in d.snippets["transformers"]


def test_draft_snippets_use_documented_flags():
    s = snippets.snippets("draft", 4, "Qwen/Qwen2.5-Coder-1.5B-Instruct", "Qwen/Qwen2.5-Coder-0.5B-Instruct")
    cfg = json.loads(re.search(r"'(\{.*\})'", s["vllm"]).group(1))
    assert cfg == {"method": "draft_model", "model": "Qwen/Qwen2.5-Coder-0.5B-Instruct", "num_speculative_tokens": 4}
    for flag in ("--speculative-algorithm STANDALONE", "--speculative-draft-model-path", "--speculative-num-steps 4",
                 "--speculative-eagle-topk 1", "--speculative-num-draft-tokens 5"):
        assert flag in s["sglang"]
    for flag in ("-md ", "--spec-type draft-simple", "--spec-draft-n-max 4", "--spec-draft-n-min 0"):
        assert flag in s["llama.cpp"]
    command = "\n".join(line for line in s["llama.cpp"].splitlines() if not line.startswith("#"))
    assert "--draft-max" not in command  # removed from current llama.cpp builds
    assert s["vllm"].startswith("# vLLM: a release with PR #24322")  # the minimum version, named
    assert "assistant_model=draft" in s["transformers"] and "num_assistant_tokens = 4" in s["transformers"]
    with pytest.raises(SpecdecError):
        snippets.snippets("draft", 4, "t")
    with pytest.raises(SpecdecError):
        snippets.snippets("eagle", 4, "t", "d")
    assert snippets.model_ref({"spec": "qwen-bundled", "local_path": "/models/q"}) == "/models/q"
    # The bundled pair is served from its original weights, not from the local de-quantised conversion.
    assert snippets.model_ref({"spec": "qwen2.5-coder-0.5b-instruct", "local_path": "/c/q"}) == \
        "Qwen/Qwen2.5-Coder-0.5B-Instruct"


def test_cli_decide_json(tmp_path, capsys):
    spec = synthetic.Spec([synthetic.Category("code", 22, (0.85,))], gammas=(2, 4), seed=18)
    path = tmp_path / "results.json"
    results.dump_atomic(synthetic.make_results(spec), path)
    assert cli.main(["decide", "--results", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # The CLI prints the library's decision on the same file: α 0.85 on 22 prompts is a clear GO for γ=4.
    expected = decision.decide(results.load(path))
    assert out["verdict"] == expected.verdict == "GO" and out["reasons"] == expected.reasons and out["segments"]
    assert cli.main(["decide", "--results", str(path), "--hardware", "nope"]) == 2
    assert "unknown hardware" in capsys.readouterr().err


def test_run_without_speculative_results_yet():
    res = synthetic.make_results(synthetic.Spec([synthetic.Category("a", 25, (0.8,))], seed=19))
    for p in res["prompts"]:
        p["runs"] = []
    d = decision.decide(res)
    assert d.verdict == "INSUFFICIENT-EVIDENCE"
    assert any("No speculative run" in r for r in d.reasons)


def test_small_category_follows_pooled_go_and_gamma_stays_measured():
    spec = synthetic.Spec([synthetic.Category("a", 25, (0.1,), lookup_match=0.9, lookup_rate=0.9),
                   synthetic.Category("b", 3, (0.1,), lookup_match=0.9, lookup_rate=0.9)],
                  methods=("prompt-lookup",), gammas=(2, 4), seed=20)
    d = _decide(spec)
    assert d.verdict == "GO"
    assert {s["category"]: s["status"] for s in d.segments} == {"a": "on", "b": "on (pooled)"}
    assert d.config["draft_length"] <= 4  # never beyond the largest γ measured
    assert all(b["gamma"] is None or b["gamma"] <= 4 for s in d.segments for b in s["batch_ranges"])


def test_a_busy_machine_decides_nothing():
    """A run flagged busy or drifting (manifest.machine) gets INSUFFICIENT-EVIDENCE with the reason first,
    whatever its speedups say; the same run on a quiet machine keeps its verdict."""
    from pathlib import Path
    from specdec.measure import machine
    from specdec.present import views
    results = analysis.analyze(json.loads(Path(views.example_results_path()).read_text()))  # analysed once
    def on(machine_block):  # the same analysis, its run flagged by another machine block
        m = results.measurements
        return dataclasses.replace(results, measurements=dataclasses.replace(
            m, manifest={**m.manifest, "machine": machine_block}))
    quiet = on(machine.describe([0.02] * 30, [0.20, 0.205, 0.202], 2))
    busy = on(machine.describe([0.9] * 30, [0.20, 0.31, 0.25], 2))
    calm = decision.decide(quiet)
    assert calm.verdict == decision.decide(results).verdict and not calm.reasons[0].startswith("These timings")
    d = decision.decide(busy)
    assert d.verdict == "INSUFFICIENT-EVIDENCE" and "unreliable" in d.headline
    assert d.reasons[0].startswith("These timings are unreliable: other processes used 0.90 of 2 cores")
    assert "moved by 55%" in d.reasons[0] and d.evidence["machine"]["busy"] and "(busy machine)" in d.headline
    drifting = decision.decide(on(machine.describe([0.02] * 30, [0.20, 0.31, 0.25], 2)))  # quiet, yet its speed moved
    assert drifting.verdict == "INSUFFICIENT-EVIDENCE" and "(the machine's speed drifted)" in drifting.headline
    # A verdict about other hardware rests on acceptance counts, which load does not change: the busy run
    # decides exactly as the quiet one, and says what its CPU timings are worth; on this machine it does not.
    h100 = deploy.parse_deploy("H100-SXM", "vllm", 1, "1-64")
    far_busy, far_calm = decision.decide(busy, deployment=h100), decision.decide(quiet, deployment=h100)
    assert far_busy.verdict == far_calm.verdict != "INSUFFICIENT-EVIDENCE" and "unreliable" not in far_busy.headline
    assert any(r.startswith("This CPU's timings are unreliable (other processes used 0.90") for r in far_busy.reasons)
    here = deploy.parse_deploy(hw.THIS_MACHINE, "hf-eager", 1, "1-8")
    assert decision.decide(busy, deployment=here).verdict == "INSUFFICIENT-EVIDENCE"
