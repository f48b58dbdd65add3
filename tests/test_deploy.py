"""The verdict is about a deployment target (specdec.analysis.deploy, decision.decide(deployment=…))."""

import json

import pytest

import synthetic
from specdec import cli, results
from specdec.analysis import decision, deploy
from specdec.analysis import summary as analysis
from specdec.errors import SpecdecError


@pytest.fixture(scope="module")
def lookup_run():
    spec = synthetic.Spec([synthetic.Category("docs", 24, (0.1,), lookup_match=0.9, lookup_rate=0.9)],
                  methods=("prompt-lookup", "draft"), gammas=(2, 4), seed=51)
    return synthetic.make_results(spec)


def test_parse_deploy_and_concurrency():
    assert deploy.parse_concurrency("1-64") == (1, 64) and deploy.parse_concurrency("8") == (8, 8)
    for bad in ("64-1", "0-4", "a-b", "1-2-3", ""):
        with pytest.raises(SpecdecError):
            deploy.parse_concurrency(bad)
    d = deploy.parse_deploy("H100-SXM", "vllm", 4, "1-128")
    assert d.label == "vllm on 4× H100-SXM, concurrency 1–128" and d.profile().tp == 4
    with pytest.raises(SpecdecError):
        deploy.parse_deploy("H200-imaginary")
    assert deploy.levels_in((3, 64)) == [3, 4, 8, 16, 32, 64]


def test_engine_levels_hook_decides_when_present():
    rows = [{"concurrency": c, "draft_length": 4, "tau": 2.5, "ratio": {"estimate": r, "lo": lo, "hi": hi}}
            for c, r, lo, hi in ((1, 1.6, 1.4, 1.8), (8, 1.3, 1.15, 1.45), (64, 0.9, 0.8, 1.0), (128, 0.8, 0.7, 0.9))]
    got = deploy.from_engine_levels(rows, (1, 64), 1.05, "vllm")
    assert got["basis"] == "engine" and got["verdict"] == "GO-SEGMENTS"
    assert [lv["status"] for lv in got["levels"]] == ["on", "on", "off"]  # 128 is outside the range
    assert deploy.from_engine_levels(rows, (1, 8), 1.05)["verdict"] == "GO"
    assert deploy.from_engine_levels(rows, (64, 128), 1.05)["verdict"] == "NO-GO"
    assert deploy.from_engine_levels(rows, (200, 300), 1.05) is None  # nothing measured there: projection answers


def test_verdict_is_about_the_target(lookup_run):
    a = analysis.analyze(lookup_run, n_boot=400)
    dep = deploy.parse_deploy("H100-SXM", "vllm", 1, "1-64")
    d = decision.decide(a, deployment=dep)
    target = d.evidence["target"]
    assert target["basis"] == "projection" and target["method"] in ("prompt-lookup", "draft")
    assert d.verdict == target["verdict"]
    assert dep.label in d.headline and d.reasons[0].startswith("Deployment target: " + dep.label)
    assert any("this CPU's answer" in r for r in d.reasons)
    assert [lv["concurrency"] for lv in target["levels"]] == [1, 2, 4, 8, 16, 32, 64]
    for lv in target["levels"]:
        assert lv["speedup_lo"] <= lv["speedup"] <= lv["speedup_hi"]
    # An engine run with the deployment's engine takes precedence over the projection.
    rows = [{"concurrency": c, "draft_length": 4, "tau": 2.0, "ratio": {"estimate": 0.8, "lo": 0.7, "hi": 0.9}}
            for c in (1, 8, 64)]
    e = decision.decide(a, deployment=dep, engine_levels=rows)
    assert e.evidence["target"]["basis"] == "engine" and e.verdict == "NO-GO" and "NO-GO on" in e.headline
    # Too few prompts for any verdict, whatever the projection says.
    few = decision.decide(a, decision.Thresholds(min_prompts=100), deployment=dep)
    assert few.verdict == "INSUFFICIENT-EVIDENCE"


def test_cli_deploy_flags(lookup_run, tmp_path, capsys):
    path = tmp_path / "results.json"
    results.dump_atomic(lookup_run, path)
    assert cli.main(["decide", "--results", str(path), "--deploy", "A100-80GB", "--concurrency", "1-16",
                     "--tp", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["evidence"]["deployment"]["concurrency"] == [1, 16] and out["evidence"]["deployment"]["tp"] == 2
    assert out["evidence"]["target"]["basis"] == "projection"
    assert cli.main(["decide", "--results", str(path), "--deploy", "H100-SXM", "--concurrency", "64-1"]) == 2
    assert "concurrency must look like" in capsys.readouterr().err


def test_weights_note_names_what_was_measured_and_what_is_served():
    m = {"settings": {"dtype": "float32"},
         "models": {"target": {"spec": "qwen2.5-coder-1.5b-instruct", "dtype": "float32"},
                    "draft": {"spec": "org/small", "dtype": "bfloat16"}}}
    text = deploy.weights_note(m)
    assert "Qwen/Qwen2.5-Coder-1.5B-Instruct as Q4_K_M GGUF" in text and "float32" in text
    assert "org/small in bfloat16" in text and "τ may shift" in text
