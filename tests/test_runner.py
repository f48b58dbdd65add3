"""`python -m specdec run` end to end on tiny models: results.json contract, store, resume after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from specdec import results as R
from specdec.cli import main
from specdec.store import Store

ROOT = Path(__file__).resolve().parents[1]


def write_workload(path: Path, n: int) -> Path:
    lines = [json.dumps({"id": f"p{i}", "category": "code" if i % 2 else "chat",
                         "prompt": f"Write item {i}: " + "abc def " * (i + 2)}) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_args(tiny_model_dirs, workload, out, *extra):
    target, draft = tiny_model_dirs
    return ["run", "--workload", str(workload), "--out", str(out), "--target", str(target), "--draft", str(draft),
            "--draft-lengths", "1,3", "--max-new-tokens", "12", "--dtype", "float32", *extra]


def test_run_writes_results_contract(tiny_model_dirs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPECDEC_STORE", str(tmp_path / "runs.sqlite"))
    workload = write_workload(tmp_path / "w.jsonl", 4)
    assert main(run_args(tiny_model_dirs, workload, tmp_path / "out")) == 0
    results = R.load(tmp_path / "out" / "results.json")
    manifest = results["manifest"]
    assert manifest["status"] == "complete"
    assert manifest["models"]["target"]["parameters"] > 0 and manifest["models"]["draft"]["local_path"]
    assert manifest["settings"]["draft_lengths"] == [1, 3] and manifest["hardware"]["cores"] >= 1
    assert [p["id"] for p in results["prompts"]] == ["p0", "p1", "p2", "p3"]
    for p in results["prompts"]:
        assert {(r["method"], r["draft_length"]) for r in p["runs"]} == {
            ("draft", 1), ("draft", 3), ("prompt-lookup", 1), ("prompt-lookup", 3)}
        for run in p["runs"]:
            assert run["tokens"] == p["baseline"]["tokens"]  # greedy float32: lossless
            assert sum(r["emitted"] for r in run["rounds"]) + 1 == run["new_tokens"]
            for r in run["rounds"]:
                assert r["accepted"] <= r["drafted"] <= run["draft_length"]
                assert (r["beta"] is None) == (run["method"] == "prompt-lookup")
    stored = Store(tmp_path / "runs.sqlite").load_run(manifest["run_id"])
    assert stored["prompts"] == results["prompts"]


def test_bad_inputs_are_one_line_errors(tiny_model_dirs, tmp_path, capsys):
    workload = write_workload(tmp_path / "w.jsonl", 2)
    assert main(run_args(tiny_model_dirs, workload, tmp_path / "o", "--methods", "medusa2", "--no-store")) == 2
    err = capsys.readouterr().err
    assert "unknown: medusa2" in err and "Traceback" not in err
    assert main(["run", "--workload", str(workload), "--out", str(tmp_path / "o"), "--target", str(tmp_path / "nope"),
                 "--no-store"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("note:")]
    assert len(errors) == 1 and errors[0].startswith("error:") and "nope" in errors[0]


@pytest.mark.slow
def test_sigkill_then_resume(tiny_model_dirs, tmp_path):
    workload = write_workload(tmp_path / "w.jsonl", 16)
    out = tmp_path / "out"
    env = {**os.environ, "SPECDEC_STORE": str(tmp_path / "runs.sqlite"), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "specdec", *run_args(tiny_model_dirs, workload, out)]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        path = out / "results.json"
        if path.exists() and len(json.loads(path.read_text())["prompts"]) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = R.load(out / "results.json")
    done = len(partial["prompts"])
    assert 2 <= done < 16, "the run finished before it could be killed; make it longer"
    resumed = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    final = R.load(out / "results.json")
    assert final["manifest"]["status"] == "complete"
    assert final["manifest"]["run_id"] == partial["manifest"]["run_id"]
    assert [p["id"] for p in final["prompts"]] == [f"p{i}" for i in range(16)]
    assert final["prompts"][:done] == partial["prompts"]  # finished prompts were kept, not re-measured
    store = Store(tmp_path / "runs.sqlite")
    assert len(store.load_run(final["manifest"]["run_id"])["prompts"]) == 16
