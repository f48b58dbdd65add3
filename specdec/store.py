"""Run history in SQLite: every run's manifest, prompt results and per-round records, written as the
run goes so a crash loses at most the prompt in flight.

Where: $SPECDEC_STORE, else $XDG_DATA_HOME/specdec/runs.sqlite, else ~/.local/share/specdec/runs.sqlite.

Tables (one results.json split along its natural joints; `load_run` puts it back together exactly):

    runs     one row per run: the manifest JSON, unknown top-level fields, and columns for listing
    prompts  one row per (run, prompt): the prompt JSON with each run's "rounds" left as null,
             plus category / prompt_tokens / seq (its position in the run)
    gens     one row per generation, gen 0 = baseline, gen i+1 = prompt["runs"][i]: method, γ,
             new_tokens and timings copied out of the prompt JSON so they can be queried in SQL
    rounds   one row per target verify pass of gen i+1 (the bulk of the data, and its only copy):
             drafted, accepted, draft_s, verify_s as numbers, draft_tokens and beta as JSON text,
             any unknown round fields as JSON in `extra`. Numeric columns have no declared type, so
             SQLite keeps an int an int and a float a float and the round trip is exact.

Concurrency: WAL journal (readers never block the writer or each other), synchronous=FULL (a
committed prompt survives power loss, not just a killed process), busy_timeout for writers that
meet another writer, and BEGIN IMMEDIATE so a writer takes its lock before reading. One Store may
be shared by threads (a lock serialises them); other processes open their own.

Liveness: a run is "running" only while the process measuring it holds an OS lock on
<store>.locks/<run_id>.lock (claim_run; finish_run lets go). The OS drops the lock when that process
dies, however it dies, so a run left "running" by a crash or a kill is listed and loaded as
"interrupted" — its stored prompts intact — instead of looking as if it were still going.

Importing a run whose run_id is already stored is refused with a clear error: a run id names one
measurement, so a second copy would be a duplicate, not a new run. Delete the old one first.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
import threading
from contextlib import contextmanager, suppress
from pathlib import Path

from specdec import config, results
from specdec.errors import SpecdecError

if sys.platform != "win32":
    import fcntl
else:  # no flock: runs left "running" by a crash stay so
    fcntl = None

STORE_SCHEMA_VERSION = 1  # PRAGMA user_version of a store this code created

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id   TEXT PRIMARY KEY,
    created  TEXT NOT NULL,
    status   TEXT NOT NULL,
    target   TEXT,
    draft    TEXT,
    workload TEXT,
    methods  TEXT NOT NULL,             -- JSON list
    manifest TEXT NOT NULL,             -- JSON: results["manifest"]
    extra    TEXT NOT NULL DEFAULT '{}' -- JSON: unknown top-level fields of results.json
);
CREATE TABLE IF NOT EXISTS prompts (
    run_id        TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    prompt_id     TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    category      TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    data          TEXT NOT NULL,        -- JSON: the prompt result with every "rounds" set to null
    PRIMARY KEY (run_id, prompt_id)
);
CREATE TABLE IF NOT EXISTS gens (
    run_id       TEXT NOT NULL,
    prompt_id    TEXT NOT NULL,
    gen          INTEGER NOT NULL,      -- 0 = baseline, i + 1 = prompt["runs"][i]
    method       TEXT NOT NULL,         -- 'baseline', 'draft' or 'prompt-lookup'
    draft_length INTEGER,
    new_tokens   INTEGER NOT NULL,
    prefill_s    REAL NOT NULL,
    decode_s     REAL NOT NULL,
    PRIMARY KEY (run_id, prompt_id, gen),
    FOREIGN KEY (run_id, prompt_id) REFERENCES prompts(run_id, prompt_id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS rounds (
    run_id       TEXT NOT NULL,
    prompt_id    TEXT NOT NULL,
    gen          INTEGER NOT NULL,
    round        INTEGER NOT NULL,
    drafted      NOT NULL,
    accepted     NOT NULL,
    draft_tokens TEXT NOT NULL,         -- JSON list of token ids
    beta         TEXT,                  -- JSON list, one probability per drafted token, or NULL
    draft_s      NOT NULL,
    verify_s     NOT NULL,
    extra        TEXT,                  -- JSON: unknown round fields, or NULL
    PRIMARY KEY (run_id, prompt_id, gen, round),
    FOREIGN KEY (run_id, prompt_id, gen) REFERENCES gens(run_id, prompt_id, gen) ON DELETE CASCADE
) WITHOUT ROWID;
"""

_ROUND_KEYS = ("drafted", "accepted", "draft_tokens", "beta", "draft_s", "verify_s")


def default_path() -> Path:
    """$SPECDEC_STORE, else $XDG_DATA_HOME/specdec/runs.sqlite, else ~/.local/share/specdec/runs.sqlite."""
    env = os.environ.get(config.STORE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "specdec" / config.STORE_FILENAME


def _fault_point(name: str) -> None:
    """Test seam, a no-op: a test's child process replaces it to SIGKILL itself inside a transaction
    ("prompt-mid-transaction"), to show a half-written prompt never survives."""


def _owner_only(path: Path) -> None:
    """The store holds every run's prompts and outputs: create it readable by its owner only (SQLite gives
    its -wal and -shm files the same mode), and tighten one made before this rule."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_mode & 0o077 and os.fstat(fd).st_uid == os.getuid():
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass  # a read-only location or Windows: sqlite3 reports what matters below


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class Store:
    """The run history. Every public method is one transaction; errors are one-line SpecdecErrors."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path).expanduser() if path is not None else default_path()
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpecdecError(f"cannot create the run store folder {self.path.parent}: {exc.strerror}") from None
        self._db = None
        self._claims: dict[str, int] = {}  # run_id → fd of the lock this process holds
        _owner_only(self.path)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, sqlite3 adds none of its own.
            self._db = sqlite3.connect(self.path, timeout=config.STORE_BUSY_TIMEOUT_S,
                                       isolation_level=None, check_same_thread=False)
            self._db.execute(f"PRAGMA busy_timeout = {int(config.STORE_BUSY_TIMEOUT_S * 1000)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
            with self._write() as db:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > STORE_SCHEMA_VERSION:
                    raise SpecdecError(f"run store {self.path} was written by a newer specdec "
                                       f"(store version {version}; this version reads {STORE_SCHEMA_VERSION})")
                if version == 0:
                    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                    if tables:
                        raise SpecdecError(f"{self.path} is an SQLite file but not a specdec run store")
                    # Not executescript(): it would COMMIT first and leave the schema outside this transaction.
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA user_version = {STORE_SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            self.close()
            raise SpecdecError(f"cannot open run store {self.path}: {exc}") from None
        except SpecdecError:
            self.close()
            raise

    # ---- transactions ----

    @contextmanager
    def _write(self):
        """One write transaction, taken up front so two writers queue instead of deadlocking."""
        with self._lock:
            db = self._connection()
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise SpecdecError(f"run store {self.path} is busy or unwritable: {exc}") from None
            except sqlite3.Error as exc:
                raise SpecdecError(self._problem(exc)) from None
            try:
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                if db.in_transaction:
                    with suppress(sqlite3.Error):  # a damaged file can fail the rollback too
                        db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise SpecdecError(self._problem(exc)) from None
                raise

    @contextmanager
    def _read(self):
        """One read transaction: every SELECT inside sees the same snapshot, even while a writer commits."""
        with self._lock:
            db = self._connection()
            try:
                db.execute("BEGIN")
                yield db
            except sqlite3.Error as exc:
                raise SpecdecError(self._problem(exc)) from None
            finally:
                if db.in_transaction:
                    try:
                        db.execute("COMMIT")
                    except sqlite3.Error as exc:  # the COMMIT of a read on a damaged file fails as well
                        raise SpecdecError(self._problem(exc)) from None

    def _problem(self, exc: sqlite3.Error) -> str:
        """One line for an SQLite error; a damaged file says what to do about it."""
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, sqlite3.DatabaseError) and re.search(r"malformed|not a database|corrupt", text, re.I):
            return (f"run store {self.path} is damaged ({text}); move it aside and a new, empty store is "
                    "created on the next start (`sqlite3 FILE .recover` may save its runs)")
        return f"run store {self.path}: {text}"

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise SpecdecError(f"run store {self.path} is closed")
        return self._db

    def close(self) -> None:
        with self._lock:
            for run_id in list(self._claims):
                self._release(run_id)
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- writing a run as it goes ----

    def create_run(self, manifest: dict) -> str:
        """Record a new run; returns its run_id (manifest["run_id"], or a fresh one when absent)."""
        if isinstance(manifest, dict) and "run_id" not in manifest:
            manifest = {**manifest, "run_id": results.new_run_id()}
        results.validate_manifest(manifest)
        with self._write() as db:
            self._insert_run(db, manifest, {})
        return manifest["run_id"]

    def add_prompt(self, run_id: str, prompt_result: dict) -> None:
        """Store one finished prompt (replacing any with the same id) in its own transaction."""
        results.validate_prompt(prompt_result)
        with self._write() as db:
            self._require_run(db, run_id)
            self._insert_prompt(db, run_id, prompt_result)

    def update_manifest(self, run_id: str, manifest: dict) -> None:
        if isinstance(manifest, dict) and manifest.get("run_id", run_id) != run_id:
            raise SpecdecError(f"manifest.run_id is {manifest['run_id']!r}, expected {run_id!r}")
        manifest = {**manifest, "run_id": run_id} if isinstance(manifest, dict) else manifest
        results.validate_manifest(manifest)
        with self._write() as db:
            self._require_run(db, run_id)
            self._update_manifest(db, manifest)

    def finish_run(self, run_id: str, status: str) -> None:
        """Set the run's status; any status but "running" also stamps manifest.finished (if unset) and
        gives up this process's claim on the run."""
        if status not in config.RUN_STATUSES:
            raise SpecdecError(f"status must be one of {', '.join(config.RUN_STATUSES)}, got {status!r}")
        with self._write() as db:
            manifest = json.loads(self._require_run(db, run_id))
            manifest["status"] = status
            if status == "running":
                manifest["finished"] = None
            elif manifest.get("finished") is None:
                manifest["finished"] = results.now_iso()
            self._update_manifest(db, manifest)
        if status != "running":
            self._release(run_id)

    # ---- liveness ----

    def claim_run(self, run_id: str) -> None:
        """Mark the run as being measured by this process until finish_run (or this process's end)."""
        if fcntl is None or run_id in self._claims:
            return
        lock = self._lock_path(run_id)
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SpecdecError(f"cannot create the run lock {lock}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise SpecdecError(f"run {run_id} is being measured by another process") from None
        self._claims[run_id] = fd

    def _release(self, run_id: str) -> None:
        fd = self._claims.pop(run_id, None)
        if fd is not None:
            self._lock_path(run_id).unlink(missing_ok=True)
            os.close(fd)  # closing drops the lock

    def _live(self, run_id: str) -> bool:
        """Does some process (this one included) hold the run's lock?"""
        if fcntl is None or run_id in self._claims:
            return True
        try:
            fd = os.open(self._lock_path(run_id), os.O_RDWR)
        except OSError:
            return False  # no lock file: nobody claimed it, or its owner let go
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # also drops the probe's lock when it got one
        return False

    def _lock_path(self, run_id: str) -> Path:
        return self.path.parent / f"{self.path.name}.locks" / f"{run_id}.lock"

    def _status(self, run_id: str, status: str) -> str:
        return "interrupted" if status == "running" and not self._live(run_id) else status

    # ---- reading ----

    def list_runs(self) -> list[dict]:
        """Newest first: run_id, created, status, target, draft, n_prompts, workload, methods."""
        with self._read() as db:
            rows = db.execute(
                "SELECT r.run_id, r.created, r.status, r.target, r.draft, "
                "(SELECT COUNT(*) FROM prompts p WHERE p.run_id = r.run_id), r.workload, r.methods "
                "FROM runs r ORDER BY r.created DESC, r.run_id DESC").fetchall()
        keys = ("run_id", "created", "status", "target", "draft", "n_prompts", "workload", "methods")
        out = [dict(zip(keys, row[:-1]), methods=json.loads(row[-1])) for row in rows]
        for r in out:
            r["status"] = self._status(r["run_id"], r["status"])
        return out

    def has_run(self, run_id: str) -> bool:
        with self._read() as db:
            return db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is not None

    def load_run(self, run_id: str) -> dict:
        """The full results dict, exactly as it went in (prompts in the order they were first added)."""
        with self._read() as db:
            manifest = json.loads(self._require_run(db, run_id))
            extra = json.loads(db.execute("SELECT extra FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0])
            prompt_rows = db.execute("SELECT prompt_id, data FROM prompts WHERE run_id = ? ORDER BY seq",
                                     (run_id,)).fetchall()
            round_rows = db.execute(
                "SELECT prompt_id, gen, drafted, accepted, draft_tokens, beta, draft_s, verify_s, extra "
                "FROM rounds WHERE run_id = ? ORDER BY prompt_id, gen, round", (run_id,)).fetchall()
        rounds: dict[tuple, list] = {}
        for pid, gen, drafted, accepted, tokens, beta, draft_s, verify_s, more in round_rows:
            r = {"drafted": drafted, "accepted": accepted, "draft_tokens": json.loads(tokens),
                 "beta": None if beta is None else json.loads(beta), "draft_s": draft_s, "verify_s": verify_s}
            if more is not None:
                r.update(json.loads(more))
            rounds.setdefault((pid, gen), []).append(r)
        prompts = []
        for pid, data in prompt_rows:
            prompt = json.loads(data)
            for i, g in enumerate(prompt["runs"]):
                g["rounds"] = rounds.get((pid, i + 1), [])
            prompts.append(prompt)
        status = self._status(run_id, manifest.get("status"))
        if status != manifest.get("status"):
            manifest.update(status=status, notes=[*manifest.get("notes", []),
                                                  "the process measuring this run stopped before it finished"])
        return {**extra, "schema_version": results.SCHEMA_VERSION, "manifest": manifest, "prompts": prompts}

    def done_prompt_ids(self, run_id: str) -> set[str]:
        """Ids of the prompts already stored: what a resumed run can skip."""
        with self._read() as db:
            self._require_run(db, run_id)
            return {r[0] for r in db.execute("SELECT prompt_id FROM prompts WHERE run_id = ?", (run_id,))}

    # ---- whole runs ----

    def delete_run(self, run_id: str) -> None:
        with self._write() as db:
            self._require_run(db, run_id)
            for table in ("rounds", "gens", "prompts", "runs"):  # children first; no reliance on cascades
                db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))

    def export_json(self, run_id: str, path: str | Path) -> None:
        results.dump_atomic(self.load_run(run_id), path)

    def import_json(self, path: str | Path) -> str:
        """Validate a results.json and store it in one transaction (all or nothing); returns its run_id.
        A run_id already in the store is refused: delete the stored run first to replace it."""
        data = results.load(path)
        manifest = data["manifest"]
        extra = {k: v for k, v in data.items() if k not in ("schema_version", "manifest", "prompts")}
        with self._write() as db:
            self._insert_run(db, manifest, extra)
            for prompt in data["prompts"]:
                self._insert_prompt(db, manifest["run_id"], prompt)
        return manifest["run_id"]

    def add_missing(self, path: str | Path) -> tuple[str, list[str]]:
        """A results.json of a run already stored: add the prompts the store lacks (a process killed between
        its two writes, issue 21), all in one transaction; returns (run_id, ids added). Refused in one line
        when a prompt both hold differs, or when there is nothing to add."""
        data = results.load(path)
        run_id = data["manifest"]["run_id"]
        stored = {p["id"]: p for p in self.load_run(run_id)["prompts"]}
        differ = [p["id"] for p in data["prompts"] if p["id"] in stored and p != stored[p["id"]]]
        if differ:
            raise SpecdecError(f"run {run_id!r} is already in the run store and {len(differ)} of its prompts differ "
                               f"from {Path(path).name}'s (first: {differ[0][:40]!r}); delete it first to replace it")
        missing = [p for p in data["prompts"] if p["id"] not in stored]
        if not missing:
            raise SpecdecError(f"run {run_id!r} is already in the run store with every prompt of {Path(path).name}; "
                               f"delete it first (python -m specdec runs delete {run_id}) to store it again")
        with self._write() as db:
            for prompt in missing:
                self._insert_prompt(db, run_id, prompt)
        return run_id, [p["id"] for p in missing]

    # ---- rows (called inside a transaction) ----

    def _require_run(self, db, run_id) -> str:
        """The run's manifest JSON, or a one-line error naming the unknown id."""
        row = db.execute("SELECT manifest FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise SpecdecError(f"no run {str(run_id)[:80]!r} in the run store {self.path}")
        return row[0]

    def _insert_run(self, db, manifest: dict, extra: dict) -> None:
        run_id = manifest["run_id"]
        if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
            raise SpecdecError(f"run {run_id!r} is already in the run store; delete it first "
                               f"(python -m specdec runs delete {run_id}) to store it again")
        db.execute(f"INSERT INTO runs ({', '.join(_RUN_COLUMNS)}, extra, run_id) VALUES ({', '.join('?' * 9)})",
                   (*_run_columns(manifest), _dumps(extra), run_id))

    def _update_manifest(self, db, manifest: dict) -> None:
        db.execute(f"UPDATE runs SET {', '.join(c + ' = ?' for c in _RUN_COLUMNS)} WHERE run_id = ?",
                   (*_run_columns(manifest), manifest["run_id"]))

    def _insert_prompt(self, db, run_id: str, prompt: dict) -> None:
        pid = prompt["id"]
        old = db.execute("SELECT seq FROM prompts WHERE run_id = ? AND prompt_id = ?", (run_id, pid)).fetchone()
        if old is not None:  # a replaced prompt keeps its place in the run
            seq = old[0]
            for table in ("rounds", "gens", "prompts"):
                db.execute(f"DELETE FROM {table} WHERE run_id = ? AND prompt_id = ?", (run_id, pid))
        else:
            seq = db.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM prompts WHERE run_id = ?", (run_id,)).fetchone()[0]
        # The rounds go to their own table; the JSON keeps the key (as null) so field order survives.
        data = {**prompt, "runs": [{**g, "rounds": None} for g in prompt["runs"]]}
        db.execute("INSERT INTO prompts (run_id, prompt_id, seq, category, prompt_tokens, data) "
                   "VALUES (?, ?, ?, ?, ?, ?)",
                   (run_id, pid, seq, prompt["category"], prompt["prompt_tokens"], _dumps(data)))
        _fault_point("prompt-mid-transaction")
        gens = [(0, "baseline", None, prompt["baseline"])]
        gens += [(i + 1, g["method"], g["draft_length"], g) for i, g in enumerate(prompt["runs"])]
        db.executemany("INSERT INTO gens VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       [(run_id, pid, gen, method, gamma, g["new_tokens"], g["prefill_s"], g["decode_s"])
                        for gen, method, gamma, g in gens])
        db.executemany("INSERT INTO rounds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            (run_id, pid, i + 1, j, r["drafted"], r["accepted"], _dumps(r["draft_tokens"]),
             None if r["beta"] is None else _dumps(r["beta"]), r["draft_s"], r["verify_s"], _round_extra(r))
            for i, g in enumerate(prompt["runs"]) for j, r in enumerate(g["rounds"])])


_RUN_COLUMNS = ("created", "status", "target", "draft", "workload", "methods", "manifest")


def _run_columns(manifest: dict) -> tuple:
    """The runs row for a manifest, in _RUN_COLUMNS order: listing columns plus the manifest itself."""
    models, settings = manifest["models"], manifest["settings"]
    draft = models["draft"]["spec"] if models["draft"] is not None else None
    return (manifest["created"], manifest["status"], models["target"]["spec"], draft,
            settings["workload"], _dumps(settings["methods"]), _dumps(manifest))


def _round_extra(r: dict) -> str | None:
    extra = {k: v for k, v in r.items() if k not in _ROUND_KEYS}
    return _dumps(extra) if extra else None
