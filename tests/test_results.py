"""results.json contract: validate names the first bad JSON path; load/dump_atomic give one-line errors."""

from __future__ import annotations

import copy
import json
import random

import pytest

from specdec import methods, results
from specdec.errors import SpecdecError


def make_prompt(i: int, rng: random.Random, methods=(("draft", 2), ("draft", 4), ("prompt-lookup", 3))) -> dict:
    """A synthetic prompt result shaped like bench's: rounds emit accepted + 1 tokens after the prefill token."""
    def gen(n_tokens):
        tokens = [rng.randrange(50_000) for _ in range(n_tokens)]
        return {"tokens": tokens, "text": f"out {i} ✓ " + " ".join(map(str, tokens[:5])), "new_tokens": n_tokens,
                "prefill_s": rng.uniform(0.01, 0.2), "decode_s": rng.uniform(0.5, 3.0)}

    runs = []
    for method, gamma in methods:
        rounds, emitted = [], 1
        while emitted < 24:
            drafted = gamma if method == "draft" else rng.randint(0, gamma)
            accepted = rng.randint(0, drafted)
            rounds.append({
                "drafted": drafted, "accepted": accepted,
                "draft_tokens": [rng.randrange(50_000) for _ in range(drafted)],
                "beta": [rng.random() for _ in range(drafted)] if method == "draft" else None,
                "draft_s": rng.uniform(0, 0.05) if drafted else 0.0, "verify_s": rng.uniform(0.02, 0.1)})
            emitted += accepted + 1
        emitted = min(emitted, 24)
        runs.append({**gen(emitted), "method": method, "draft_length": gamma, "rounds": rounds})
    return {"id": f"p{i:03d}", "category": ("code", "chat", "rag")[i % 3],
            "prompt": f"Prompt {i}: write a function — naïve “quotes” 日本語",
            "prompt_tokens": rng.randint(5, 500), "baseline": gen(24), "runs": runs}


def make_manifest(run_id: str = "20250101-120000-abc123") -> dict:
    model = {"spec": "tiny-target", "local_path": "/tmp/tiny", "sha256": "ab" * 32, "parameters": 1_500_000,
             "dtype": "float32", "device": "cpu", "num_layers": 2, "hidden_size": 64, "vocab_size": 259}
    return {
        "run_id": run_id, "created": "2025-01-01T12:00:00+00:00", "finished": None, "status": "running",
        "settings": {"workload": "/tmp/w.jsonl", "workload_sha256": "cd" * 32, "methods": ["draft", "prompt-lookup"],
                     "draft_lengths": [2, 3, 4], "max_new_tokens": 24, "max_prompts": None, "temperature": 0.0,
                     "top_p": 1.0, "top_k": 0, "seed": 0, "dtype": "float32", "device": "cpu"},
        "versions": {"specdec": "0.1.0", "torch": "2.13", "transformers": "5.23", "python": "3.11.7"},
        "hardware": {"cpu": "test cpu", "cores": 2, "gpu": None, "memory_gb": 7.5},
        "models": {"target": model, "draft": {**model, "spec": "tiny-draft", "parameters": 500_000}},
    }


def make_results(n_prompts: int = 5, seed: int = 0, run_id: str = "20250101-120000-abc123") -> dict:
    rng = random.Random(seed)
    return {"schema_version": 1, "manifest": make_manifest(run_id),
            "prompts": [make_prompt(i, rng) for i in range(n_prompts)]}


def test_realistic_results_validate_and_come_back_unchanged():
    r = make_results()
    before = copy.deepcopy(r)
    assert results.validate(r) is r
    assert r == before


def _set(d, path, value):
    *head, last = path
    for k in head:
        d = d[k]
    if value is KeyError:
        del d[last]
    else:
        d[last] = value


@pytest.mark.parametrize("path, value, message", [
    (("prompts", 3, "runs", 1, "rounds", 0, "accepted"), "2",
     "prompts[3].runs[1].rounds[0].accepted: expected int, got str"),
    (("prompts", 0, "runs", 0, "rounds", 1, "drafted"), True,
     "prompts[0].runs[0].rounds[1].drafted: expected int, got bool"),
    (("prompts", 0, "runs", 0, "rounds", 0, "accepted"), 3,
     "prompts[0].runs[0].rounds[0].accepted: 3 > drafted 2"),
    (("prompts", 0, "runs", 0, "rounds", 0, "beta"), [0.5],
     "prompts[0].runs[0].rounds[0].beta: has 1 values, drafted is 2"),
    (("prompts", 0, "runs", 0, "rounds", 0, "beta"), [0.5, 1.5],
     "prompts[0].runs[0].rounds[0].beta[1]: 1.5 is out of range [0.0, 1.00001]"),
    (("prompts", 0, "baseline", "text"), "ok \ud800 bad",
     "prompts[0].baseline.text: invalid Unicode (lone surrogate at char 3)"),
    (("x",), {"k": ["\udfff"]}, "x.k[0]: invalid Unicode (lone surrogate at char 0)"),
    (("prompts", 0, "runs", 0, "rounds", 0, "draft_tokens"), [1, 2, 3],
     "prompts[0].runs[0].rounds[0].draft_tokens: has 3 tokens, drafted is 2"),
    (("prompts", 0, "runs", 0, "rounds", 0, "verify_s"), -0.1,
     "prompts[0].runs[0].rounds[0].verify_s: -0.1 is out of range [0.0, inf]"),
    (("prompts", 1, "baseline", "decode_s"), float("nan"),
     "prompts[1].baseline.decode_s: expected a finite number, got nan"),
    (("prompts", 1, "baseline", "tokens", 2), "x", "prompts[1].baseline.tokens[2]: expected int, got str"),
    (("prompts", 1, "baseline", "new_tokens"), 3, "prompts[1].baseline.new_tokens: 3 but tokens has 24"),
    (("prompts", 2, "runs", 2, "method"), "eagle",
     "prompts[2].runs[2].method: unknown method 'eagle': choose from " + ", ".join(methods.FAMILIES)),
    (("prompts", 2, "runs", 2, "method"), "layer-skip",
     "prompts[2].runs[2].method: method 'layer-skip': layer-skip needs its layer count, as in layer-skip:L8"),
    (("prompts", 2, "runs"), {}, "prompts[2].runs: expected list, got dict"),
    (("prompts", 2, "prompt"), "x" * 1_000_001, "prompts[2].prompt: string too long (1000001 chars > 1000000)"),
    (("prompts", 2, "id"), "y" * 201, "prompts[2].id: string too long (201 chars > 200)"),
    (("prompts", 4, "id"), "p000", "prompts[4].id: duplicate prompt id 'p000'"),
    (("prompts", 0, "baseline"), KeyError, "prompts[0].baseline: missing"),
    (("manifest", "settings", "seed"), KeyError, "manifest.settings.seed: missing"),
    (("manifest", "status"), "done", "manifest.status: expected one of running, complete, interrupted, failed, got 'done'"),
    (("manifest", "created"), "yesterday", "manifest.created: expected an ISO-8601 date, got 'yesterday'"),
    (("manifest", "run_id"), "x'; DROP TABLE runs; --",
     "manifest.run_id: \"x'; DROP TABLE runs; --\" is not a valid id (letters, digits and ._:+- only)"),
    (("manifest", "models", "target", "parameters"), 1.5e9,
     "manifest.models.target.parameters: expected int, got float"),
    (("manifest", "hardware", "cores"), 2**70, f"manifest.hardware.cores: {2**70} is out of range [0, {2**63 - 1}]"),
    (("manifest", "settings", "draft_lengths"), [2, 0],
     "manifest.settings.draft_lengths[1]: 0 is out of range [1, 64]"),
    (("schema_version",), 0, "schema_version: 0 is out of range [1, 2]"),
    (("surprise",), {1, 2}, "surprise: expected a JSON value, got set"),
    (("surprise",), {"deep": "z" * 1_000_001}, "surprise.deep: string too long (1000001 chars > 1000000)"),
])
def test_validate_names_the_first_bad_path(path, value, message):
    r = make_results()
    _set(r, path, value)
    with pytest.raises(SpecdecError) as err:
        results.validate(r)
    assert str(err.value) == message


def test_validate_rejects_a_non_object_and_accepts_documented_nulls():
    with pytest.raises(SpecdecError, match=r"^results: expected dict, got list$"):
        results.validate([])
    r = make_results()
    r["manifest"]["models"]["draft"] = None  # prompt lookup alone loads no draft model
    r["manifest"]["finished"] = "2025-01-01T12:20:00Z"
    r["prompts"][0]["runs"][0]["rounds"][0]["beta"] = None
    r["prompts"][0]["runs"][0]["rounds"][0]["draft_s"] = 0  # an int where a float is expected is fine
    r["prompts"][0]["runs"] = r["prompts"][0]["runs"][:0]
    results.validate(r)


def test_unknown_fields_are_allowed_and_survive_dump_and_load(tmp_path):
    r = make_results(2)
    r["notes"] = {"by": "lead", "tags": ["a", 1, None, 2.5]}
    r["prompts"][1]["runs"][0]["rounds"][0]["kv_cache_hit"] = True
    r["manifest"]["settings"]["attn_impl"] = "sdpa"
    results.dump_atomic(r, tmp_path / "out" / "results.json")
    assert results.load(tmp_path / "out" / "results.json") == r


def test_dump_atomic_refuses_invalid_results_and_leaves_the_old_file(tmp_path):
    path = tmp_path / "results.json"
    good = make_results(2)
    results.dump_atomic(good, path)
    bad = make_results(2)
    bad["prompts"][0]["baseline"]["decode_s"] = "slow"
    with pytest.raises(SpecdecError, match=r"prompts\[0\]\.baseline\.decode_s: expected float, got str"):
        results.dump_atomic(bad, path)
    assert results.load(path) == good
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left behind


def test_dump_atomic_replaces_the_file_whole(tmp_path):
    path = tmp_path / "results.json"
    results.dump_atomic(make_results(1), path)
    bigger = make_results(4)
    results.dump_atomic(bigger, path)
    assert json.loads(path.read_text(encoding="utf-8")) == bigger
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


@pytest.mark.parametrize("content, message", [
    (None, r"^results file not found: .*nope\.json$"),
    (b"{\n  \"schema_version\": 1,\n  oops\n}", r"is not JSON: Expecting property name enclosed in double quotes "
                                                r"at line 3 column 3$"),
    (b"", r"is not JSON: Expecting value at line 1 column 1$"),
    (b'{"schema_version": 1, "manifest": {}, "prompts": [], "x": NaN}', r"is not usable JSON: NaN is not a valid"),
    (b"\xff\xfe{}", r"is not UTF-8 text \(bad byte at offset 0\)$"),
    (b"[1, 2, 3]", r"is not a specdec results file"),
    (b'{"prompt": "hello"}', r"is not a specdec results file"),
    (b"[" * 100_000 + b"]" * 100_000, r"is not usable JSON: nested too deeply$|is not a specdec results file"),
    (b'{"schema_version": 7, "manifest": {}, "prompts": []}', r"written by a newer specdec \(schema_version 7"),
])
def test_load_errors_are_one_line(tmp_path, content, message):
    path = tmp_path / "nope.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SpecdecError, match=message) as err:
        results.load(path)
    assert "\n" not in str(err.value)


def test_load_names_the_file_and_the_json_path(tmp_path):
    r = make_results(4)
    r["prompts"][3]["runs"][1]["rounds"][0]["accepted"] = "2"
    path = tmp_path / "r.json"
    path.write_text(json.dumps(r), encoding="utf-8")
    with pytest.raises(SpecdecError) as err:
        results.load(path)
    assert str(err.value) == f"{path}: prompts[3].runs[1].rounds[0].accepted: expected int, got str"
    with pytest.raises(SpecdecError, match="is a directory"):
        results.load(tmp_path)


def test_method_counts_add_up():
    r = make_results(3)
    counts = {(c["method"], c["draft_length"]): c for c in results.method_counts(r)}
    assert set(counts) == {("draft", 2), ("draft", 4), ("prompt-lookup", 3)}
    d2 = counts[("draft", 2)]
    runs = [g for p in r["prompts"] for g in p["runs"] if (g["method"], g["draft_length"]) == ("draft", 2)]
    assert d2["prompts"] == 3
    assert d2["rounds"] == sum(len(g["rounds"]) for g in runs)
    assert d2["drafted"] == 2 * d2["rounds"]
    assert d2["accepted"] == sum(x["accepted"] for g in runs for x in g["rounds"])


def test_new_run_id_is_a_valid_id():
    r = make_results(1, run_id=results.new_run_id())
    results.validate(r)
    assert results.new_run_id() != results.new_run_id()


def test_a_run_written_record_by_record_checks_each_entry_once_and_still_refuses_a_bad_one():
    r = make_results(3)
    known = {}
    results.validate(r, known)
    assert len(known) == 3
    r["prompts"][1]["runs"][0]["rounds"][0]["accepted"] = "two"  # changed in place after its check: skipped
    results.validate(r, known)
    with pytest.raises(SpecdecError, match=r"prompts\[1\]\.runs\[0\]\.rounds\[0\]\.accepted"):
        results.validate(r)  # a whole check (load() does one) still finds it
    r["prompts"][1] = copy.deepcopy(r["prompts"][1])  # a replaced entry is a new one: checked
    with pytest.raises(SpecdecError, match=r"prompts\[1\]\.runs\[0\]\.rounds\[0\]\.accepted"):
        results.validate(r, known)
    r["prompts"][1] = copy.deepcopy(r["prompts"][0])  # valid, but the id repeats: the ids are always checked
    with pytest.raises(SpecdecError, match="duplicate prompt id"):
        results.validate(r, known)
    r["prompts"][1]["id"] = "fresh"
    r["manifest"]["status"] = "sleeping"  # the manifest is always checked
    with pytest.raises(SpecdecError, match="manifest"):
        results.validate(r, known)
