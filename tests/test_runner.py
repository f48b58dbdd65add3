"""`python -m specdec run` end to end on tiny models: results.json contract, store, resume after SIGKILL."""

import json
import os
import select
import signal
import subprocess
import sys
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
            "--draft-lengths", "1,3", "--max-new-tokens", "12", "--dtype", "float32", "--mode", "real", *extra]


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


# The end-to-end kill: the child tells the test through a pipe (no polling, no sleep) once 2 prompts are
# written, and holds still at 6 so the run cannot finish before the kill arrives; the kill itself lands
# wherever the child happens to be (mid-generation, mid-write).
SIGNAL_AFTER = r"""
import os, sys, threading
from specdec.measure import runner
fd, signal_at, hold_at = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
saved = []
def fault(name):
    if name == "prompt-saved":
        saved.append(name)
        if len(saved) == signal_at:
            os.write(fd, b"!")
        if len(saved) == hold_at:
            threading.Event().wait()
runner._fault_point = fault
from specdec.cli import main
sys.exit(main(sys.argv[4:]))
"""


@pytest.mark.slow
def test_sigkill_then_resume(tiny_model_dirs, tmp_path):
    workload = write_workload(tmp_path / "w.jsonl", 10)
    out = tmp_path / "out"
    env = {**os.environ, "SPECDEC_STORE": str(tmp_path / "runs.sqlite"), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "specdec", *run_args(tiny_model_dirs, workload, out)]
    read_end, write_end = os.pipe()
    log = tmp_path / "killed.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", SIGNAL_AFTER, str(write_end), "2", "6", *cmd[3:]], env=env,
                                stderr=err, stdout=subprocess.DEVNULL, pass_fds=(write_end,))
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 300)
        assert ready and os.read(read_end, 1) == b"!", f"the run never wrote its second prompt: {log.read_text()[-1500:]}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        os.close(read_end)
    assert proc.returncode == -signal.SIGKILL
    partial = R.load(out / "results.json")
    done = len(partial["prompts"])
    assert 2 <= done <= 6
    resumed = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    final = R.load(out / "results.json")
    assert final["manifest"]["status"] == "complete"
    assert final["manifest"]["run_id"] == partial["manifest"]["run_id"]
    assert [p["id"] for p in final["prompts"]] == [f"p{i}" for i in range(10)]
    assert final["prompts"][:done] == partial["prompts"]  # finished prompts were kept, not re-measured
    store = Store(tmp_path / "runs.sqlite")
    assert store.load_run(final["manifest"]["run_id"])["prompts"] == final["prompts"]

# A child process that runs the CLI with a kill armed at one write boundary: the runner's and the store's
# _fault_point seams SIGKILL the process the n-th time `point` is reached, so the kill lands exactly there.
KILL_AT = r"""
import os, signal, sys
from specdec import store
from specdec.measure import runner
point, nth = sys.argv[1], int(sys.argv[2])
seen = []
def fault(name):
    if name == point:
        seen.append(name)
        if len(seen) == nth:
            os.kill(os.getpid(), signal.SIGKILL)
runner._fault_point = store._fault_point = fault
from specdec.cli import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("point", ["prompt-saved", "prompt-stored", "prompt-mid-transaction"])
def test_a_kill_at_each_write_boundary_loses_at_most_the_prompt_in_flight(tiny_model_dirs, tmp_path, monkeypatch,
                                                                          point, capsys):
    """Issue 21: results.json and the store never disagree for good, wherever between their writes the kill lands."""
    workload = write_workload(tmp_path / "w.jsonl", 4)
    out, db = tmp_path / "out", tmp_path / "runs.sqlite"
    args = run_args(tiny_model_dirs, workload, out, "--draft-lengths", "2", "--max-new-tokens", "6")
    env = {**os.environ, "SPECDEC_STORE": str(db), "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([sys.executable, "-c", KILL_AT, point, "2", *args], env=env, capture_output=True,
                            text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    partial = R.load(out / "results.json")
    run_id = partial["manifest"]["run_id"]
    stored = Store(db).load_run(run_id)
    in_file, in_store = [p["id"] for p in partial["prompts"]], [p["id"] for p in stored["prompts"]]
    assert "p0" in in_file and "p0" in in_store  # the finished prompt is in both
    assert set(in_file) ^ set(in_store) <= {"p1"}  # only the prompt in flight may be in one of them
    monkeypatch.setenv("SPECDEC_STORE", str(db))
    assert main(args + ["--resume"]) == 0, capsys.readouterr().err
    final = R.load(out / "results.json")
    assert final["manifest"]["run_id"] == run_id and final["manifest"]["status"] == "complete"
    assert [p["id"] for p in final["prompts"]] == ["p0", "p1", "p2", "p3"]
    assert Store(db).load_run(run_id)["prompts"] == final["prompts"]  # reconciled: the same prompts, same data
    kept = {p["id"]: p for p in partial["prompts"] + stored["prompts"]}
    for p in final["prompts"]:
        if p["id"] in kept:  # written before the kill: kept as it was, not measured again
            assert p == kept[p["id"]]
