"""Run store: exact round trip, readers during writes, SIGKILL mid-run, hostile imports, the runs CLI."""

from __future__ import annotations

import copy
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from specdec import cli, results
from specdec.errors import SpecdecError
from specdec.store import Store, default_path
from test_results import make_manifest, make_prompt, make_results as _make_results

REPO = Path(__file__).resolve().parents[1]


def make_results(*args, **kwargs) -> dict:
    """test_results' fixture at the current schema version: the store gives back every run at that version."""
    return {**_make_results(*args, **kwargs), "schema_version": results.SCHEMA_VERSION}

# A writer in its own process: adds the prompts in a JSON file one by one (skipping those already
# stored, which is how a run resumes) and prints each id once its transaction has committed. Gated
# (the default), it then waits for a line on stdin before the next prompt: the test decides when it
# goes on, so no test depends on how fast either process happens to run. "kill-mid" SIGKILLs itself
# through the store's fault seam inside the transaction of its n-th prompt.
WRITER = r"""
import json, os, signal, sys
from specdec import store as store_module
from specdec.store import Store
store_path, run_id, prompts_path, mode = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
prompts = json.load(open(prompts_path, encoding="utf-8"))
if mode.startswith("kill-mid:"):
    left = [int(mode.split(":")[1])]
    def fault(name):
        left[0] -= 1
        if left[0] == 0:
            os.kill(os.getpid(), signal.SIGKILL)
    store_module._fault_point = fault
store = Store(store_path)
store.claim_run(run_id)  # as the runner does: "running" while this process lives
done = store.done_prompt_ids(run_id)
for p in prompts:
    if p["id"] not in done:
        store.add_prompt(run_id, p)
        print(p["id"], flush=True)
        if mode == "gated" and not sys.stdin.readline():
            break  # the test closed our stdin: stop here
"""


def start_writer(store_path, run_id, prompts, tmp_path, mode="gated"):
    """mode: "gated" (waits for a line on stdin after each prompt), "free" (no waiting) or "kill-mid:N"."""
    prompts_path = tmp_path / f"prompts-{run_id}.json"
    prompts_path.write_text(json.dumps(prompts), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", WRITER, str(store_path), run_id, str(prompts_path), mode],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)


def go(writer) -> None:
    """Let a gated writer start its next prompt."""
    writer.stdin.write("go\n")
    writer.stdin.flush()


def integrity(path) -> str:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def row_counts(path) -> dict:
    db = sqlite3.connect(path)
    try:
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("runs", "prompts", "gens", "rounds")}
    finally:
        db.close()


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "runs.sqlite")
    yield s
    s.close()


def store_results(store, r) -> str:
    run_id = store.create_run(r["manifest"])
    store.claim_run(run_id)  # as the runner does, so a "running" run loads as running
    for p in r["prompts"]:
        store.add_prompt(run_id, p)
    return run_id


# ---- round trip ----

def test_a_run_written_prompt_by_prompt_loads_back_exactly(store, tmp_path):
    r = make_results(6)
    r["prompts"][2]["runs"][0]["rounds"][1]["kv_hit"] = [1, {"x": None}]  # unknown round field
    r["prompts"][2]["runs"][1]["rounds"][0]["draft_s"] = 0  # int in a float field stays an int
    r["prompts"][3]["note"] = "kept"
    run_id = store_results(store, r)
    loaded = store.load_run(run_id)
    assert loaded == r
    assert type(loaded["prompts"][2]["runs"][1]["rounds"][0]["draft_s"]) is int
    assert json.dumps(loaded["prompts"]) == json.dumps(r["prompts"])  # same key order, same float digits
    results.validate(loaded)
    assert store.done_prompt_ids(run_id) == {p["id"] for p in r["prompts"]}
    n_rounds = sum(len(g["rounds"]) for p in r["prompts"] for g in p["runs"])
    assert row_counts(store.path) == {"runs": 1, "prompts": 6, "gens": 6 * 4, "rounds": n_rounds}


def test_rounds_are_queryable_rows(store):
    r = make_results(2)
    run_id = store_results(store, r)
    db = sqlite3.connect(store.path)
    drafted, accepted = db.execute(
        "SELECT SUM(r.drafted), SUM(r.accepted) FROM rounds r JOIN gens g USING (run_id, prompt_id, gen) "
        "WHERE g.run_id = ? AND g.method = 'draft' AND g.draft_length = 4", (run_id,)).fetchone()
    db.close()
    runs = [g for p in r["prompts"] for g in p["runs"] if g["method"] == "draft" and g["draft_length"] == 4]
    assert drafted == sum(x["drafted"] for g in runs for x in g["rounds"])
    assert accepted == sum(x["accepted"] for g in runs for x in g["rounds"])


def test_list_update_finish_and_replace(store):
    r = make_results(3)
    run_id = store_results(store, r)
    other = make_results(1, run_id="20250102-000000-ffffff")
    other["manifest"]["created"] = "2025-01-02T00:00:00+00:00"
    other["manifest"]["models"]["draft"] = None
    other["manifest"]["settings"]["methods"] = ["prompt-lookup"]
    store.create_run(other["manifest"])

    listed = store.list_runs()
    assert [x["run_id"] for x in listed] == ["20250102-000000-ffffff", run_id]  # newest first
    assert listed[1] == {"run_id": run_id, "created": "2025-01-01T12:00:00+00:00", "status": "running",
                         "target": "tiny-target", "draft": "tiny-draft", "n_prompts": 3, "workload": "/tmp/w.jsonl",
                         "methods": ["draft", "prompt-lookup"]}
    assert listed[0]["draft"] is None and listed[0]["n_prompts"] == 0

    # Replacing a prompt keeps its place and leaves none of its old rounds behind.
    new_p1 = make_prompt(1, random.Random(99))
    store.add_prompt(run_id, new_p1)
    loaded = store.load_run(run_id)
    assert [p["id"] for p in loaded["prompts"]] == ["p000", "p001", "p002"]
    assert loaded["prompts"][1] == new_p1
    n_rounds = sum(len(g["rounds"]) for p in loaded["prompts"] for g in p["runs"])
    assert row_counts(store.path)["rounds"] == n_rounds

    m = copy.deepcopy(r["manifest"])
    m["hardware"]["memory_gb"] = 64.0
    store.update_manifest(run_id, m)
    assert store.load_run(run_id)["manifest"]["hardware"]["memory_gb"] == 64.0
    with pytest.raises(SpecdecError, match="manifest.run_id is 'other', expected"):
        store.update_manifest(run_id, {**m, "run_id": "other"})

    store.finish_run(run_id, "complete")
    done = store.load_run(run_id)["manifest"]
    assert done["status"] == "complete" and datetime_ok(done["finished"])
    assert store.list_runs()[1]["status"] == "complete"
    with pytest.raises(SpecdecError, match="status must be one of"):
        store.finish_run(run_id, "exploded")


def datetime_ok(text) -> bool:
    from datetime import datetime
    return datetime.fromisoformat(text) is not None


def test_create_run_makes_an_id_when_absent_and_refuses_duplicates(store):
    m = make_manifest()
    del m["run_id"]
    run_id = store.create_run(m)
    assert "run_id" not in m  # the caller's dict is not changed
    assert store.load_run(run_id)["manifest"]["run_id"] == run_id
    with pytest.raises(SpecdecError, match="already in the run store"):
        store.create_run({**m, "run_id": run_id})
    with pytest.raises(SpecdecError, match=r"^manifest.hardware: missing$"):
        store.create_run({k: v for k, v in make_manifest("x1").items() if k != "hardware"})
    with pytest.raises(SpecdecError, match=r"^prompt.runs\[0\].rounds\[0\].accepted: expected int, got str$"):
        p = make_prompt(0, random.Random(0))
        p["runs"][0]["rounds"][0]["accepted"] = "1"
        store.add_prompt(run_id, p)


@pytest.mark.parametrize("call", [
    lambda s: s.load_run("nope"), lambda s: s.delete_run("nope"), lambda s: s.done_prompt_ids("nope"),
    lambda s: s.finish_run("nope", "complete"), lambda s: s.add_prompt("nope", make_prompt(0, random.Random(0))),
    lambda s: s.update_manifest("nope", make_manifest("nope")), lambda s: s.export_json("nope", "/tmp/never.json"),
])
def test_unknown_run_id_is_one_line_error(store, call):
    with pytest.raises(SpecdecError, match=r"^no run 'nope' in the run store .*runs\.sqlite$"):
        call(store)


def test_delete_removes_every_row_of_that_run_only(store):
    a = store_results(store, make_results(3))
    b = store_results(store, make_results(2, seed=1, run_id="run-b"))
    store.delete_run(a)
    assert row_counts(store.path)["prompts"] == 2
    assert row_counts(store.path)["runs"] == 1
    assert store.load_run(b) == make_results(2, seed=1, run_id="run-b")
    db = sqlite3.connect(store.path)
    assert db.execute("SELECT COUNT(*) FROM rounds WHERE run_id = ?", (a,)).fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM gens WHERE run_id = ?", (a,)).fetchone()[0] == 0
    db.close()


def test_export_then_import_into_another_store(store, tmp_path):
    r = make_results(4)
    r["manifest"]["status"] = "complete"  # an unclaimed "running" run would load as interrupted
    r["comment"] = "top-level extra"
    run_id = store.create_run(r["manifest"])
    for p in r["prompts"]:
        store.add_prompt(run_id, p)
    # The top-level extra only travels through files, so export, add it, import elsewhere.
    store.export_json(run_id, tmp_path / "a.json")
    data = json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))
    assert data == {k: v for k, v in r.items() if k != "comment"}
    data["comment"] = "top-level extra"
    (tmp_path / "b.json").write_text(json.dumps(data), encoding="utf-8")
    with Store(tmp_path / "other.sqlite") as other:
        assert other.import_json(tmp_path / "b.json") == run_id
        assert other.load_run(run_id) == r
        other.export_json(run_id, tmp_path / "c.json")
    assert json.loads((tmp_path / "c.json").read_text(encoding="utf-8")) == r


# ---- where the store lives, and files that are not stores ----

def test_default_path_env_and_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("SPECDEC_STORE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_path() == tmp_path / "xdg" / "specdec" / "runs.sqlite"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_path() == tmp_path / "home" / ".local" / "share" / "specdec" / "runs.sqlite"
    monkeypatch.setenv("SPECDEC_STORE", str(tmp_path / "mine.sqlite"))
    assert default_path() == tmp_path / "mine.sqlite"
    with Store() as s:
        assert s.path == tmp_path / "mine.sqlite"
    assert (tmp_path / "mine.sqlite").exists()


def test_a_file_that_is_not_a_store_is_refused(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(SpecdecError, match="cannot open run store .*junk.sqlite"):
        Store(junk)
    foreign = tmp_path / "foreign.sqlite"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(SpecdecError, match="is an SQLite file but not a specdec run store"):
        Store(foreign)


# ---- concurrency and crashes ----

def test_readers_never_see_a_torn_run_while_another_process_writes(tmp_path):
    path = tmp_path / "runs.sqlite"
    r = make_results(20)
    with Store(path) as s:
        run_id = s.create_run(r["manifest"])
    writer = start_writer(path, run_id, r["prompts"], tmp_path)
    shared = Store(path)  # one Store shared by two threads, plus two threads with their own
    problems, snapshots = [], []
    seen = threading.Condition()

    def feed():
        # The next prompt is written only once a reader has seen the last one: the reads really overlap
        # the writes, however the two processes are scheduled.
        for n in range(1, 21):
            if writer.stdout.readline() == "":
                return
            with seen:
                if not seen.wait_for(lambda: n in snapshots or problems, timeout=60):
                    problems.append(f"no reader saw {n} prompts within 60 s")
                    return
            go(writer)
        writer.stdin.close()

    def read(own: bool):
        s = Store(path) if own else shared
        try:
            while True:
                finished = writer.poll() is not None
                loaded = s.load_run(run_id)
                results.validate(loaded)
                n = len(loaded["prompts"])
                if loaded["prompts"] != r["prompts"][:n]:
                    problems.append(f"snapshot of {n} prompts differs")
                with seen:
                    snapshots.append(n)
                    seen.notify_all()
                s.list_runs()
                if finished:
                    return
        except Exception as exc:  # noqa: BLE001 — reported below
            problems.append(repr(exc))
        finally:
            if own:
                s.close()

    threads = [threading.Thread(target=read, args=(own,)) for own in (True, True, False, False)]
    threads.append(threading.Thread(target=feed))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    shared.close()
    assert writer.wait(timeout=30) == 0, writer.stderr.read()
    assert problems == []
    assert set(range(1, 21)) <= set(snapshots)  # a reader saw every prompt count: they overlapped the writes
    assert integrity(path) == "ok"


def _kill_after(writer, n_lines: int, jitter_s: float = 0.0) -> list[str]:
    """Read n_lines committed ids from a gated writer, let it start one more prompt, and SIGKILL it
    (after jitter_s, to vary where in that prompt the kill lands): it can have committed at most that one."""
    printed = []
    for i in range(n_lines):
        printed.append(writer.stdout.readline().strip())
        if i < n_lines - 1:
            go(writer)
    assert all(printed), writer.stderr.read()
    go(writer)
    if jitter_s:
        time.sleep(jitter_s)  # not a synchronisation: the writer stops by itself after one more prompt
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=10)
    assert writer.returncode == -signal.SIGKILL
    return printed


def test_sigkill_mid_run_loses_nothing_finished_and_resume_completes(tmp_path):
    path = tmp_path / "runs.sqlite"
    r = make_results(8)
    ids = [p["id"] for p in r["prompts"]]
    with Store(path) as s:
        run_id = s.create_run(r["manifest"])

    printed = _kill_after(start_writer(path, run_id, r["prompts"], tmp_path), 3)
    assert integrity(path) == "ok"
    with Store(path) as s:
        done = s.done_prompt_ids(run_id)
        # Every prompt reported finished is stored; at most the one in flight may also have committed.
        assert set(printed) <= done <= set(ids[:len(printed) + 1])
        loaded = s.load_run(run_id)
        assert loaded["prompts"] == r["prompts"][:len(done)]
        assert loaded["manifest"]["status"] == "interrupted"  # its process is gone

    resumed = start_writer(path, run_id, r["prompts"], tmp_path, mode="free")
    out, err = resumed.communicate(timeout=30)
    assert resumed.returncode == 0, err
    assert out.split() == [i for i in ids if i not in done]
    with Store(path) as s:
        s.finish_run(run_id, "complete")
        final = s.load_run(run_id)
    assert final["prompts"] == r["prompts"]
    assert final["manifest"]["status"] == "complete"


def big_prompts(n: int) -> list[dict]:
    rng = random.Random(5)
    prompts = [make_prompt(i, rng) for i in range(n)]
    for p in prompts:  # ~1000 rounds per prompt makes each commit take a while
        g = p["runs"][2]
        g["rounds"] = g["rounds"] * 60
    return prompts


def test_sigkill_inside_a_transaction_leaves_whole_prompts_only(tmp_path):
    """Big prompts, a kill at a varied moment of the next prompt's write: whole prompts only, never part of one."""
    path = tmp_path / "runs.sqlite"
    r = {"schema_version": 1, "manifest": make_manifest(), "prompts": big_prompts(40)}
    with Store(path) as s:
        run_id = s.create_run(r["manifest"])
    jitter = random.Random(0)
    stored = 0
    for attempt in range(5):
        writer = start_writer(path, run_id, r["prompts"], tmp_path)
        _kill_after(writer, 1 + attempt, jitter_s=jitter.uniform(0, 0.015))  # a commit takes ~15 ms
        assert integrity(path) == "ok"
        with Store(path) as s:
            loaded = s.load_run(run_id)
        n = len(loaded["prompts"])
        assert stored + 1 + attempt <= n <= stored + 2 + attempt, n
        assert loaded["prompts"] == r["prompts"][:n]
        stored = n


def test_sigkill_at_a_fixed_point_inside_the_transaction_rolls_the_prompt_back(tmp_path):
    """Deterministic: the fault seam kills the writer after the prompt row is written and before its gens
    and rounds; the store keeps the prompts before it, whole, and a resume writes the rest."""
    path = tmp_path / "runs.sqlite"
    r = {"schema_version": 1, "manifest": make_manifest(), "prompts": big_prompts(4)}
    with Store(path) as s:
        run_id = s.create_run(r["manifest"])
    writer = start_writer(path, run_id, r["prompts"], tmp_path, mode="kill-mid:3")
    out, _ = writer.communicate(timeout=60)
    assert writer.returncode == -signal.SIGKILL and out.split() == [p["id"] for p in r["prompts"][:2]]
    assert integrity(path) == "ok"
    assert row_counts(path)["prompts"] == 2
    with Store(path) as s:
        assert s.load_run(run_id)["prompts"] == r["prompts"][:2]
    resumed = start_writer(path, run_id, r["prompts"], tmp_path, mode="free")
    assert resumed.communicate(timeout=60)[0].split() == [p["id"] for p in r["prompts"][2:]]
    with Store(path) as s:
        assert s.load_run(run_id)["prompts"] == r["prompts"]


# ---- hostile input ----

SQL = "'; DROP TABLE runs; --"


def test_hostile_imports_fail_cleanly_and_leave_the_store_intact(store, tmp_path):
    keep = make_results(2, run_id="keep-me")
    store_results(store, keep)

    def attempt(name, data=None, raw=None):
        path = tmp_path / name
        path.write_bytes(raw if raw is not None else json.dumps(data).encode())
        with pytest.raises(SpecdecError) as err:
            store.import_json(path)
        assert "\n" not in str(err.value)
        return str(err.value)

    wrong = make_results(2, run_id="wrong")
    wrong["prompts"][1]["runs"][0]["rounds"][0]["accepted"] = "2"
    assert attempt("wrong.json", wrong).endswith("prompts[1].runs[0].rounds[0].accepted: expected int, got str")

    huge = make_results(2, run_id="huge")
    huge["prompts"][0]["prompt"] = "A" * 10_000_000
    assert "prompts[0].prompt: string too long (10000000 chars > 1000000)" in attempt("huge.json", huge)

    bad_id = make_results(1, run_id="x")
    bad_id["manifest"]["run_id"] = SQL
    assert "manifest.run_id:" in attempt("bad_id.json", bad_id)

    missing = make_results(1, run_id="missing")
    del missing["prompts"][0]["runs"][0]["rounds"][0]["verify_s"]
    assert attempt("missing.json", missing).endswith("prompts[0].runs[0].rounds[0].verify_s: missing")
    del missing["manifest"]
    assert "not a specdec results file" in attempt("no_manifest.json", missing)

    assert "is not JSON" in attempt("garbage.json", raw=b"\x00\x01 not json {")
    assert "is not JSON" in attempt("truncated.json", raw=json.dumps(keep).encode()[:-40])
    with pytest.raises(SpecdecError, match="results file not found"):
        store.import_json(tmp_path / "absent.json")

    assert "already in the run store" in attempt("again.json", keep)

    surrogate = json.dumps(make_results(1, run_id="surrogate")).replace("Prompt 0", "Prompt \\ud800")
    assert attempt("surrogate.json", raw=surrogate.encode()).endswith(
        "prompts[0].prompt: invalid Unicode (lone surrogate at char 7)")

    assert integrity(store.path) == "ok"
    assert [x["run_id"] for x in store.list_runs()] == ["keep-me"]
    assert store.load_run("keep-me") == keep


def test_sql_in_strings_is_stored_verbatim_never_run(store, tmp_path):
    r = make_results(2, run_id="sql-run")
    r["manifest"]["status"] = "complete"
    r["prompts"][0]["id"] = SQL
    r["prompts"][0]["category"] = "x'); DELETE FROM prompts; --"
    r["prompts"][0]["prompt"] = f"Robert{SQL}\x00 \u202e"
    r["prompts"][1]["baseline"]["text"] = '"; DROP TABLE rounds; /*'
    r["manifest"]["models"]["target"]["spec"] = SQL
    r["manifest"]["settings"]["workload"] = SQL
    r[SQL] = SQL  # an unknown top-level field named like an attack
    path = tmp_path / "sql.json"
    path.write_text(json.dumps(r), encoding="utf-8")
    assert store.import_json(path) == "sql-run"
    assert store.load_run("sql-run") == r
    assert SQL in store.done_prompt_ids("sql-run")
    assert store.list_runs()[0]["target"] == SQL
    assert integrity(store.path) == "ok"
    assert row_counts(store.path)["prompts"] == 2


# ---- CLI ----

def test_runs_cli(store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPECDEC_STORE", str(store.path))
    r = make_results(3)
    r["manifest"]["models"]["target"]["spec"] = "evil\x1b[31mred"
    store_results(store, r)
    run_id = r["manifest"]["run_id"]

    assert cli.main(["runs", "list"]) == 0
    out = capsys.readouterr().out
    assert run_id in out and "evil?[31mred" in out and "\x1b" not in out
    assert out.splitlines()[0].split() == ["run_id", "created", "status", "target", "draft", "prompts",
                                           "methods", "workload"]

    assert cli.main(["runs", "show", run_id]) == 0
    out = capsys.readouterr().out
    assert "3 prompts stored" in out and "tiny-draft" in out
    counts = {(c["method"], c["draft_length"]): c for c in results.method_counts(r)}
    line = next(x for x in out.splitlines() if x.startswith("draft") and x.split()[1] == "4")
    assert line.split() == ["draft", "4", "3", str(counts[("draft", 4)]["rounds"]),
                            str(counts[("draft", 4)]["drafted"]), str(counts[("draft", 4)]["accepted"]),
                            str(counts[("draft", 4)]["new_tokens"])]

    out_file = tmp_path / "exp" / "results.json"
    assert cli.main(["runs", "export", run_id, "--out", str(out_file)]) == 0
    assert results.load(out_file) == r
    assert cli.main(["runs", "delete", run_id]) == 0
    capsys.readouterr()
    assert cli.main(["runs", "show", run_id]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no run") and err.count("\n") == 1
    assert cli.main(["runs", "import", str(out_file)]) == 0
    assert f"imported run {run_id}" in capsys.readouterr().out
    assert cli.main(["runs", "import", str(out_file)]) == 2
    assert "already in the run store" in capsys.readouterr().err

    monkeypatch.setenv("SPECDEC_STORE", str(tmp_path / "empty.sqlite"))
    assert cli.main(["runs", "list"]) == 0
    assert "no runs in" in capsys.readouterr().out


def test_a_run_is_running_only_while_its_process_lives(tmp_path):
    path = tmp_path / "runs.sqlite"
    r = make_results(6)
    with Store(path) as s:
        run_id = s.create_run(r["manifest"])
    writer = start_writer(path, run_id, r["prompts"], tmp_path)  # gated: alive, waiting, until killed
    assert writer.stdout.readline().strip() == r["prompts"][0]["id"]
    with Store(path) as s:
        assert s.list_runs()[0]["status"] == "running"
        with pytest.raises(SpecdecError, match="being measured by another process"):
            s.claim_run(run_id)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=10)
    with Store(path) as s:
        assert s.list_runs()[0]["status"] == "interrupted"
        loaded = s.load_run(run_id)
        assert loaded["manifest"]["status"] == "interrupted" and "stopped before it finished" in loaded["manifest"]["notes"][-1]
        s.claim_run(run_id)  # a resume may take it over
        assert s.list_runs()[0]["status"] == "running"
        s.finish_run(run_id, "complete")
        assert s.list_runs()[0]["status"] == "complete"
        assert not (tmp_path / "runs.sqlite.locks" / f"{run_id}.lock").exists()


def test_importing_a_stored_runs_file_adds_the_prompts_the_store_lacks(tmp_path, monkeypatch, capsys):
    """Issue 21 on load: a results.json written after the store missed its last prompt (old write order,
    killed between the two writes) brings that prompt in on import; nothing new, or a differing prompt,
    is one line."""
    monkeypatch.setenv("SPECDEC_STORE", str(tmp_path / "runs.sqlite"))
    r = make_results(4)
    (tmp_path / "partial.json").write_text(json.dumps({**r, "prompts": r["prompts"][:3]}))
    (tmp_path / "full.json").write_text(json.dumps(r))
    assert cli.main(["runs", "import", str(tmp_path / "partial.json")]) == 0
    capsys.readouterr()
    assert cli.main(["runs", "import", str(tmp_path / "full.json")]) == 0
    assert "added 1 prompt(s) it lacked (" + r["prompts"][3]["id"] + ")" in capsys.readouterr().out
    with Store(tmp_path / "runs.sqlite") as s:
        assert s.load_run(r["manifest"]["run_id"])["prompts"] == r["prompts"]
    assert cli.main(["runs", "import", str(tmp_path / "full.json")]) == 2
    assert "with every prompt of full.json" in capsys.readouterr().err
    changed = copy.deepcopy(r)
    changed["prompts"][0]["baseline"]["decode_s"] += 1.0
    (tmp_path / "changed.json").write_text(json.dumps(changed))
    assert cli.main(["runs", "import", str(tmp_path / "changed.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1 of its prompts differ" in err
