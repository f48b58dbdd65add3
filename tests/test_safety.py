"""Issue 20, safe by default: quoted snippets, bounded inputs, truthful run status, local-only app.
Each test names the finding it covers; each failed on the code before the fix. Time bounds are on CPU
time (time.process_time): on a shared, loaded test machine wall time measures the neighbours; the wall
times of the same inputs, measured alone, are in benchmarks/crafted_inputs.py."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from specdec import config
from specdec.errors import SpecdecError
from specdec.present import snippets as snip

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "tiny_run" / "results.json"

# ---- snippets: every value quoted, specs restricted ----

HOSTILE = ["Qwen/x $(touch CANARY)", "a'; touch CANARY; echo '", "x`touch CANARY`", "x\ntouch CANARY",
           "x\"; touch CANARY; #", "x && touch CANARY", "x | tee CANARY", "-x --cmd 'touch CANARY'"]
FAKE_ENGINES = ("vllm", "python3", "llama-server", "text-generation-launcher")


def _shell_snippets(target: str, draft: str, builders=True) -> list[str]:
    """Every shell snippet for draft, prompt lookup and Medusa; builders=True calls the builders directly,
    skipping the spec check, to show quoting alone keeps hostile text inert."""
    if builders:
        out = [snip.draft_snippets(3, target, draft), snip.lookup_snippets(3, target, 3, 1), snip.medusa_snippets(3, target, draft)]
    else:
        out = [snip.snippets("draft", 3, target, draft), snip.snippets("prompt-lookup", 3, target),
               snip.snippets("medusa", 3, target, draft)]
    return [text for d in out for engine, text in d.items() if engine not in ("transformers",)]


def _run_in_shell(text: str, tmp_path: Path) -> str:
    """Run a snippet in bash with fake engine commands that only print their arguments, one per line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in FAKE_ENGINES:
        fake = bin_dir / name
        fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
        fake.chmod(0o755)
    syntax = subprocess.run(["bash", "-n"], input=text, text=True, capture_output=True)
    assert syntax.returncode == 0, syntax.stderr
    ran = subprocess.run(["bash"], input=text, text=True, capture_output=True, cwd=tmp_path,
                         env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)})
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


@pytest.mark.parametrize("spec", HOSTILE)
def test_hostile_specs_in_pasted_snippets_run_nothing_else(spec, tmp_path):
    """Finding: snippets put model specs into shell text unquoted ($(…), a ' breaking out of the JSON)."""
    for text in _shell_snippets(spec, spec):
        printed = _run_in_shell(text, tmp_path)
        assert not (tmp_path / "CANARY").exists(), text
        if "vllm serve" in text:  # the JSON reaches the engine intact, the spec inside it verbatim
            spec_config = json.loads(printed.split("--speculative-config\n", 1)[1].split("\n--", 1)[0].strip())
            assert spec_config["num_speculative_tokens"] == 3
            if "model" in spec_config:
                assert spec_config["model"] == spec
        if text.startswith(("vllm", "python3")):
            assert spec in printed  # one argument, unchanged
    for d in (snip.draft_snippets(3, spec, spec), snip.lookup_snippets(3, spec, 3, 1)):
        tree = ast.parse(d["transformers"])  # the Python snippet is valid and holds the spec as a literal
        assert spec in [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]


@pytest.mark.parametrize("spec", HOSTILE)
def test_hostile_specs_are_refused_and_become_placeholders(spec):
    with pytest.raises(SpecdecError, match="not a hub id or a path"):
        snip.snippets("draft", 2, "Qwen/Qwen2.5-7B", spec)
    with pytest.raises(SpecdecError, match="not a hub id or a path"):
        snip.snippets("prompt-lookup", 2, spec)
    assert snip.model_ref({"spec": spec, "local_path": None}, "MODEL") == "MODEL"


def test_ordinary_specs_with_spaces_stay_one_argument(tmp_path):
    target, draft = "/data/my models/qwen 7b", "Qwen/Qwen2.5-0.5B-Instruct"
    for text in _shell_snippets(target, draft, builders=False):
        printed = _run_in_shell(text, tmp_path).splitlines()
        assert target in printed or "qwen 7b.gguf" in printed or "MEDUSA_MODEL" in printed


# ---- local by default, no remote code from the browser ----

def test_app_listens_on_localhost_only_and_hides_error_details():
    """Finding: no server.address (every interface) and Streamlit's default error details (tracebacks)."""
    import tomllib
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["client"]["showErrorDetails"] == "none"  # streamlit 1.67: full | stacktrace | type | none


def test_run_page_has_no_remote_code_switch(monkeypatch, tmp_path):
    """Finding: a visitor could tick "Trust remote code" and run a hub repository's code on the server."""
    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("SPECDEC_STORE", str(tmp_path / "runs.sqlite"))
    monkeypatch.delenv("SPECDEC_TRUST_REMOTE_CODE", raising=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/run.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [c for c in at.checkbox if "remote" in c.label.lower()]
    assert "SPECDEC_TRUST_REMOTE_CODE=1" in "\n".join(c.value for c in at.caption)
    assert at.number_input(key="run_max_new").max == config.MAX_NEW_TOKENS  # one cap, CLI and app
    from specdec.measure import models
    assert not models.remote_code_allowed()
    monkeypatch.setenv("SPECDEC_TRUST_REMOTE_CODE", "1")
    assert models.remote_code_allowed()


def write_sparse_gguf(path: Path, parameters: float) -> Path:
    """A GGUF whose tensor table declares ~`parameters` Q4_K weights; the data is a hole (sparse file)."""
    gguf = pytest.importorskip("gguf")
    import numpy as np
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    qt = gguf.GGMLQuantizationType.Q4_K
    block, size = gguf.GGML_QUANT_SIZES[qt]
    rows, cols = 8192, int(parameters / 8192) // block * block
    row_bytes = cols // block * size
    w.add_tensor_info("blk.0.ffn_up.weight", (rows, row_bytes), np.dtype(np.uint8), rows * row_bytes, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size + rows * row_bytes + 64)
    return path


def test_a_70b_gguf_is_refused_before_it_is_hashed_or_converted(tmp_path, monkeypatch):
    """Finding: any .gguf on the server was converted into RAM before any size check (a 70B GGUF OOM-kills)."""
    from specdec.measure import models
    monkeypatch.setenv("SPECDEC_CACHE", str(tmp_path / "cache"))
    huge = write_sparse_gguf(tmp_path / "huge-70b.gguf", 70e9)
    assert huge.stat().st_size > 30e9 and huge.stat().st_blocks * 512 < 1e6  # 39 GB apparent, nothing on disk
    t0 = time.process_time()
    with pytest.raises(SpecdecError) as err:
        models.load_model(str(huge), dtype="float32", device="cpu")
    assert time.process_time() - t0 < 10
    message = str(err.value)
    assert "\n" not in message and "70.0 B parameters" in message and "nothing was fetched or converted" in message
    assert not (tmp_path / "cache" / "models").exists() or not any((tmp_path / "cache" / "models").iterdir())


def test_a_hub_download_is_checked_before_it_is_fetched(monkeypatch):
    """Finding: a hub download was fetched before the memory check (any visitor could fill the disk)."""
    import huggingface_hub
    from specdec.measure import models
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    fetched = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: fetched.append(a) or "/nonexistent")
    monkeypatch.setattr(models, "hub_download_bytes", lambda repo, patterns: 10**14)  # 100 TB of weights
    with pytest.raises(SpecdecError, match="downloading its 100000.0 GB of files needs about"):
        models.load_model("someone/enormous-model", dtype="float32", device="cpu")
    assert fetched == []


# ---- bounded inputs ----

DEDUP_CHILD = r"""
import json, sys, time
from specdec.measure.workloads import load_workload
data = "".join(f'{{"id": "same", "prompt": "p {i}"}}\n' for i in range(100_000)).encode()
cpu = time.process_time()
w = load_workload(data, name="dups.jsonl")
print(json.dumps({"cpu_s": time.process_time() - cpu, "ids": len({p.id for p in w.prompts}),
                  "last": w.prompts[-1].id, "renamed": [x for x in w.warnings if "repeated id" in x]}))
"""


def test_100k_repeated_ids_are_renamed_in_linear_time_with_one_warning():
    """Finding: repeated ids were renamed by a quadratic loop (100k copies: ~20 min of a core). CPU time, not
    wall time, is bounded here: the shared test machine's load must not decide the outcome."""
    child = subprocess.run([sys.executable, "-c", DEDUP_CHILD], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.returncode == 0, child.stderr[-500:]
    out = json.loads(child.stdout)
    assert out["cpu_s"] < 10 and out["ids"] == 100_000 and out["last"] == "same-100000"
    assert len(out["renamed"]) == 1 and "'same'" in out["renamed"][0]


def test_a_50mb_upload_of_one_character_lines_is_one_error_and_the_app_keeps_serving(monkeypatch, tmp_path):
    """Finding: 50 MB of one-character lines became 25M prompts (~17 GB) and the OOM killer took the server."""
    from streamlit.testing.v1 import AppTest
    from specdec.measure.workloads import load_workload
    data = b"a\n" * (25 * 1024 * 1024)
    t0 = time.process_time()
    with pytest.raises(SpecdecError, match="lines; a prompt file may have at most"):
        load_workload(data, name="flood.txt")
    assert time.process_time() - t0 < 10
    monkeypatch.setenv("SPECDEC_STORE", str(tmp_path / "runs.sqlite"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.radio(key="wl_source").set_value("Upload a file").run()
    t0 = time.process_time()
    at.file_uploader(key="wl_upload").set_value(("flood.txt", data, "text/plain")).run()
    assert time.process_time() - t0 < 10
    assert not at.exception and len(at.error) == 1 and "at most 1,000,000" in at.error[0].value
    at.radio(key="wl_source").set_value("A sample workload").run()  # the same server goes on serving
    assert not at.error and not at.exception and at.metric


def test_records_beyond_the_cap_are_one_error():
    from specdec.measure.workloads import load_workload
    data = b"".join(b'{"prompt": "x"}\n' for _ in range(config.MAX_WORKLOAD_RECORDS + 1))
    with pytest.raises(SpecdecError, match="more than 100,000 prompts"):
        load_workload(data, name="many.jsonl")


def test_a_prompt_results_json_cannot_hold_is_skipped_by_the_loader():
    """Finding: a 1.2M-character prompt was accepted by the loader, measured, then refused by the validator."""
    from specdec.measure.workloads import load_workload
    data = (json.dumps({"id": "huge", "prompt": "x" * 1_200_000}) + "\n" + json.dumps({"id": "ok", "prompt": "hi"})
            + "\n" + json.dumps({"id": "i" * 300, "prompt": "long id"}) + "\n").encode()
    t0 = time.process_time()
    w = load_workload(data, name="w.jsonl")
    assert time.process_time() - t0 < 10
    assert [p.id for p in w.prompts] == ["ok"]
    assert len(w.skipped) == 2 and "string too long (1200000 chars > 1000000)" in w.skipped[0]


@pytest.mark.parametrize("where, value, message", [
    (("prompts", 0, "runs", 0, "draft_length"), 10**9, "draft_length: 1000000000 is out of range [1, 64]"),
    (("manifest", "settings", "draft_lengths"), [2, 10**9], "out of range [1, 64]"),
    (("manifest", "settings", "max_new_tokens"), 10**9, "max_new_tokens: 1000000000 is out of range [1, 4096]"),
    (("prompts", 0, "prompt_tokens"), 10**12, "prompt_tokens: 1000000000000 is out of range"),
])
def test_results_bounds_refuse_what_no_run_could_produce(tmp_path, where, value, message):
    """Finding: a 1 KB results.json with draft_length 10**9 passed validation, then allocated 7.45 GiB."""
    from specdec import results as R
    data = json.loads(FIXTURE.read_text())
    node = data
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    t0 = time.process_time()
    with pytest.raises(SpecdecError, match=re.escape(message)):
        R.load(path)
    assert time.process_time() - t0 < 10


def test_a_hostile_spec_in_results_gives_a_placeholder_in_decide(tmp_path, capsys):
    """Finding: `vllm serve Qwen/… $(curl …|sh)` came out as a paste-ready line in decide, the brief and the PDF."""
    from specdec import results as R
    from specdec.analysis import decision
    from specdec.cli import main
    data = json.loads(FIXTURE.read_text())
    data["manifest"]["models"]["target"]["spec"] = "Qwen/x $(touch CANARY)"
    data["manifest"]["models"]["target"]["local_path"] = "/m/x $(touch CANARY)"
    data["prompts"][0]["category"] = "\x1b[2J\x1b]0;owned\x07code"
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    # Thresholds low enough for the tiny run to reach GO, so there are snippets to look at.
    th = decision.Thresholds(min_prompts=1, min_prompts_per_segment=1, min_speedup_lo=0.01, min_identical_rate=0.0)
    t0 = time.process_time()
    d = decision.decide(R.load(path), thresholds=th)
    assert time.process_time() - t0 < 10
    assert d.snippets and all("$(" not in text for text in d.snippets.values())
    assert "serve MODEL" in d.snippets["vllm"]
    assert main(["decide", "--results", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out  # control characters stripped from CLI output


def test_max_new_tokens_is_capped_in_the_run_configuration(capsys):
    from specdec.cli import main
    from specdec.measure.runplan import run_config
    with pytest.raises(SpecdecError, match="at least 1 and at most 4096"):
        run_config(target="t", draft="d", methods=("draft",), draft_lengths=(2,), max_new_tokens=10**9)
    assert main(["run", "--workload", "w", "--out", "o", "--max-new-tokens", "1000000", "--no-store"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_medusa_manifest_is_checked_before_the_heads_are_allocated(tmp_path, monkeypatch, target):
    """Finding: medusa.json sized the heads (K × d² floats) before they were checked against the target."""
    from specdec.decoding import medusa
    heads = tmp_path / "heads"
    heads.mkdir()
    (heads / medusa.HEADS_FILE).write_bytes(b"")
    allocated = []
    monkeypatch.setattr(medusa, "MedusaHeads", lambda *a: allocated.append(a))
    for meta, message in [({"hidden_size": 100_000, "num_heads": 3}, "the target has"),
                          ({"hidden_size": 64, "num_heads": 10**6}, "heads directories hold 1"),
                          ({"hidden_size": 10**9, "num_heads": 3}, "is not a model's")]:
        (heads / medusa.MANIFEST_FILE).write_text(json.dumps(meta))
        with pytest.raises(SpecdecError, match=message):
            medusa.load(heads, target if "target" in message else None)
    assert allocated == []


def test_cancel_is_honoured_within_a_generation(target):
    """Finding: Cancel was honoured only between configurations (a whole generation ran first)."""
    import torch
    from specdec.config import SamplingConfig
    from specdec.decoding.drafters import PromptLookupDrafter
    from specdec.decoding.loops import Stopped, baseline_decode, speculative_decode
    prompt = torch.tensor([5, 6, 7, 8])
    calls = []

    def stop_after_3():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Stopped):
        baseline_decode(target, prompt, 10_000, SamplingConfig(), set(), should_stop=stop_after_3)
    assert len(calls) == 4
    calls.clear()
    with pytest.raises(Stopped):
        speculative_decode(target, PromptLookupDrafter(), prompt, 2, 10_000, SamplingConfig(), set(),
                           should_stop=stop_after_3)
    assert len(calls) == 4


# ---- truthful run status ----

def test_a_run_that_fails_is_recorded_as_failed_and_resume_continues(tiny_model_dirs, tmp_path, monkeypatch, capsys):
    """Finding: only KeyboardInterrupt changed the status; any other exception left "complete" or "running"."""
    from specdec import results as R
    from specdec.cli import main
    from specdec.measure import bench
    from specdec.store import Store
    monkeypatch.setenv("SPECDEC_STORE", str(tmp_path / "runs.sqlite"))
    lines = [json.dumps({"id": f"p{i}", "prompt": f"item {i} " * 3}) for i in range(3)]
    lines.insert(1, json.dumps({"id": "huge", "prompt": "y" * 1_200_000}))
    (tmp_path / "w.jsonl").write_text("\n".join(lines) + "\n")
    target, draft = tiny_model_dirs
    args = ["run", "--workload", str(tmp_path / "w.jsonl"), "--out", str(tmp_path / "out"), "--target", str(target),
            "--draft", str(draft), "--draft-lengths", "2", "--max-new-tokens", "4", "--dtype", "float32", "--mode", "real"]
    real = bench.measure_prompt

    def broken(target, sources, ids, prompt_id, *a, **k):
        if prompt_id == "p2":
            raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore lines")
        return real(target, sources, ids, prompt_id, *a, **k)

    monkeypatch.setattr(bench, "measure_prompt", broken)
    assert main(args) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error")]
    assert len(err) == 1 and "failed: RuntimeError: CUDA error: an illegal memory access" in err[0]
    results = R.load(tmp_path / "out" / "results.json")
    assert results["manifest"]["status"] == "failed"
    assert results["manifest"]["error"] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert [p["id"] for p in results["prompts"]] == ["p0", "p1"]  # the huge prompt was skipped by the loader
    stored = Store(tmp_path / "runs.sqlite").load_run(results["manifest"]["run_id"])
    assert stored["manifest"]["status"] == "failed" and stored["manifest"]["error"] == results["manifest"]["error"]
    monkeypatch.setattr(bench, "measure_prompt", real)
    assert main(args + ["--resume"]) == 0
    final = R.load(tmp_path / "out" / "results.json")
    assert final["manifest"]["status"] == "complete" and [p["id"] for p in final["prompts"]] == ["p0", "p1", "p2"]


def test_the_runner_skips_a_prompt_it_could_not_store_before_measuring_it(tiny_model_dirs, tmp_path, monkeypatch):
    from specdec.config import RunConfig
    from specdec.measure import bench, models, runner
    from specdec.measure.workloads import Prompt, Workload
    measured = []
    real = bench.measure_prompt
    monkeypatch.setattr(bench, "measure_prompt", lambda *a, **k: measured.append(a[3]) or real(*a, **k))
    target, draft = models.load_pair(str(tiny_model_dirs[0]), str(tiny_model_dirs[1]), dtype="float32", device="cpu")
    prompts = [Prompt("a", "c", "hello there", None, None, 1), Prompt("b", "c", "z" * 1_200_000, None, None, 2),
               Prompt("c", "c", "bye now", None, None, 3)]
    work = Workload("w", None, "jsonl", prompts, [], [], "0" * 64)
    cfg = RunConfig(target=str(tiny_model_dirs[0]), drafts=(str(tiny_model_dirs[1]),), draft_lengths=(2,),
                    max_new_tokens=4, dtype="float32", device="cpu")
    out = runner.execute(cfg, work, target, [draft], out_dir=tmp_path)
    assert out["manifest"]["status"] == "complete" and [p["id"] for p in out["prompts"]] == ["a", "c"]
    assert "b" not in measured and any("prompt 'b' skipped" in n for n in out["manifest"]["notes"])


# ---- lesser findings ----

def test_user_text_is_markdown_escaped():
    from specdec.present.views import md_escape
    text = md_escape("[click](http://evil.example) ![x](http://evil.example/p.png) **b** <img src=x> $x$ :red[y]")
    assert not re.search(r"(?<!\\)[\[\]()<>*$:!]", text)  # every character Markdown reads as syntax is escaped
    assert re.sub(r"\\(.)", r"\1", text).startswith("[click](http://evil.example)")  # and shows as typed


def test_a_corrupt_store_is_one_line(tmp_path):
    """Finding: a damaged store surfaced a raw sqlite error from a COMMIT in `finally`."""
    from specdec.store import Store
    from test_results import make_results
    path = tmp_path / "runs.sqlite"
    (tmp_path / "r.json").write_text(json.dumps(make_results(5)))
    with Store(path) as s:
        run_id = s.import_json(tmp_path / "r.json")
    with open(path, "r+b") as f:
        f.seek(8192)
        f.write(os.urandom(12288))
    with Store(path) as s:
        for call in (s.list_runs, lambda: s.load_run(run_id)):
            with pytest.raises(SpecdecError, match="is damaged .*move it aside") as err:
                call()
            assert "\n" not in str(err.value)


def test_csv_cells_that_would_run_as_formulas_are_neutralised():
    from specdec.present.views import csv_cell
    assert [csv_cell(v) for v in ("=HYPERLINK(\"x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "plain", 1.5)] == [
        "'=HYPERLINK(\"x\")", "'+1", "'-2+3", "'@SUM(A1)", "'\tx", "plain", 1.5]


def test_results_and_store_are_readable_by_their_owner_only(tmp_path):
    """Finding: results.json with real prompts was written 0644 (and the store with the umask's mode)."""
    from specdec import results as R
    from specdec.store import Store
    R.dump_atomic(json.loads(FIXTURE.read_text()), tmp_path / "results.json")
    assert (tmp_path / "results.json").stat().st_mode & 0o777 == 0o600
    with Store(tmp_path / "runs.sqlite") as s:
        s.import_json(tmp_path / "results.json")
    for f in tmp_path.glob("runs.sqlite*"):
        if f.is_file():
            assert f.stat().st_mode & 0o077 == 0, f


def test_deep_json_and_huge_integers_are_one_line(tmp_path):
    from specdec.measure.workloads import load_workload
    with pytest.raises(SpecdecError, match="nested too deeply"):
        load_workload(b"[" * 100_000 + b"]" * 100_000, name="deep.json")
    w = load_workload(b'{"prompt": "a"}\n{"prompt": "b", "id": ' + b"9" * 5000 + b"}\n", name="big.jsonl")
    assert len(w.prompts) == 1 and "more than 4300 digits" in w.skipped[0]


def test_the_model_cache_lists_and_prunes(tmp_path, monkeypatch, capsys):
    from specdec.cli import main
    from specdec.measure import bundled
    monkeypatch.setenv("SPECDEC_CACHE", str(tmp_path))
    models_dir = tmp_path / "models"
    (models_dir / ".tmp-gguf-x-abc").mkdir(parents=True)
    (models_dir / ".tmp-gguf-x-abc" / "w.bin").write_bytes(b"0" * 1000)
    done = models_dir / "gguf-mine-0123456789abcdef"
    done.mkdir()
    (done / "config.json").write_text("{}")
    (done / bundled.MARKER).write_text(json.dumps({"source": "/data/mine.gguf"}))
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert "unfinished" in out and "gguf-mine-0123456789abcdef  /data/mine.gguf" in out
    assert main(["cache", "prune"]) == 0
    assert "deleted 2 entries" in capsys.readouterr().out and not any(models_dir.iterdir())


def test_a_failed_run_shows_its_reason_and_escaped_names_on_the_explore_page(tmp_path, monkeypatch):
    """Findings: a failed run was shown as complete; model names rendered as Markdown (links, images)."""
    from streamlit.testing.v1 import AppTest
    from specdec.present import views
    from specdec.store import Store
    data = json.loads(FIXTURE.read_text())
    m = data["manifest"]
    m.update(status="failed", error="RuntimeError: CUDA error: an illegal memory access was encountered")
    m["models"]["target"]["spec"] = "[click me](http://evil.example)"
    (tmp_path / "failed.json").write_text(json.dumps(data))
    monkeypatch.setenv("SPECDEC_STORE", str(tmp_path / "runs.sqlite"))
    monkeypatch.setattr(views, "EXAMPLE_RESULTS", FIXTURE)
    with Store(tmp_path / "runs.sqlite") as s:
        run_id = s.import_json(tmp_path / "failed.json")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/explore.py").run()
    at.radio(key="_src_kind_widget").set_value("Stored run").run()
    assert at.selectbox(key="_src_run_widget").value == run_id
    assert not at.exception, [e.value for e in at.exception]
    errors = "\n".join(e.value for e in at.error)
    assert "This run failed: RuntimeError\\: CUDA error\\: an illegal memory access" in errors
    captions = "\n".join(c.value for c in at.caption)
    assert "\\[click me\\]\\(http\\://evil\\.example\\)" in captions and "[click me](http" not in captions


@pytest.mark.parametrize("host, bind, allowed", [
    ("127.0.0.1:8501", "127.0.0.1", True), ("localhost:8501", "127.0.0.1", True), ("[::1]:8501", "127.0.0.1", True),
    ("LOCALHOST", "localhost", True), ("app.localhost:8501", "127.0.0.1", True),
    ("rebind.example:8501", "127.0.0.1", False), ("127.0.0.1.evil.example:8501", "127.0.0.1", False),
    ("10.0.0.5:8501", "127.0.0.1", False), ("localhost.evil.example", "127.0.0.1", False),
    ("rebind.example:8501", "0.0.0.0", True), (None, "127.0.0.1", True)])
def test_a_loopback_server_answers_loopback_names_only(host, bind, allowed):
    from specdec import localonly
    assert localonly.host_allowed(host, bind) is allowed


@pytest.mark.browser
@pytest.mark.slow
def test_a_dns_rebinding_page_gets_no_app(tmp_path):
    """A name resolving to 127.0.0.1 (chromium's host-resolver-rules stands in for the attacker's DNS)
    reaches the loopback-bound server, which must answer with one line and nothing of the app."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import screenshots as shots
    if not os.access(shots.CHROMIUM, os.X_OK):
        pytest.skip(f"no chromium at {shots.CHROMIUM}")
    with shots.serve(tmp_path / "runs.sqlite") as url, playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shots.CHROMIUM, args=[
            *shots.CHROMIUM_ARGS, "--host-resolver-rules=MAP rebind.example 127.0.0.1"])
        page = browser.new_page()
        page.goto(url.replace("127.0.0.1", "rebind.example"))
        page.get_by_text("serves 127.0.0.1 and localhost only").first.wait_for(timeout=60_000)
        shots.settle(page)
        assert page.locator('[data-testid="stSidebarNav"]').count() == 0
        assert page.get_by_text("Upload a file").count() == 0
        page.goto(url)  # the same server by its loopback address still serves the app
        page.get_by_text("Upload a file").first.wait_for(timeout=60_000)
        browser.close()
