"""One background job at a time: load models, calibrate, run a workload, or train Medusa heads.

The app keeps one Worker for the whole server (st.cache_resource), so a run survives every widget
change and page switch, and a reload or a second tab sees the same job: the page script only starts
jobs, asks for `status()` and calls `cancel()`. Nothing here touches Streamlit.

The jobs run in a measuring process of their own (`python -m specdec.measure.worker`, started on the
first job and kept for the next), never in a thread of the server: conversion, loading, calibration,
training and every timed decode step then never share the server's GIL with its event loop and the
pages' once-a-second reruns. The child sends its Status (stage, fraction, prompts done, tokens/s, ETA,
run id) over a pipe whenever it changes; Cancel sends it SIGINT — the run stops as with Ctrl-C on the
CLI, every finished prompt kept — and terminates it if it has not stopped after CANCEL_GRACE_S. A child
that dies is reported in one line naming its log file. `Worker(isolate=False)` runs the same jobs on a
thread instead (tests that inject non-picklable fakes).

The last loaded models (a target and its draft models) stay in memory for the next job (loading the
bundled pair takes tens of seconds; two sets at once would not fit a small machine, so a new set
replaces the old; a job that needs a subset of the loaded drafts reuses them). A second job while one
is busy is refused with a one-line SpecdecError.

Trained Medusa heads are saved under `heads_root` (next to the run store), one directory per training;
`saved_heads()` lists them from disk, so they outlive the server.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path

from specdec import config
from specdec.decoding import medusa
from specdec.measure import bundled
from specdec.measure import machine
from specdec.measure import models
from specdec.measure import runner
from specdec.measure.calibrate import calibrate
from specdec.config import RunConfig
from specdec.errors import SpecdecError
from specdec.measure.runner import Progress
from specdec.measure.speeds import Speeds
from specdec.present.views import model_name
from specdec.measure.workloads import Workload

IDLE, LOADING, CALIBRATING, RUNNING, TRAINING = "idle", "loading", "calibrating", "running", "training"
BUSY = (LOADING, CALIBRATING, RUNNING, TRAINING)
HEADS_DIRNAME = "heads"  # beside the run store: <data dir>/specdec/heads/<one directory per training>
LOGS_DIRNAME = "logs"  # beside the run store: one log per measuring process
CANCEL_GRACE_S = 20.0  # after SIGINT, how long a job may take to save and stop before it is terminated
PUBLISH_EVERY_S = 0.2  # the measuring process sends a changed Status at once, and looks again this often


@dataclass(frozen=True)
class TrainOptions:
    """A train-heads job: K heads, optimiser steps, and how the target is loaded (as for a run)."""

    num_heads: int = config.MEDUSA_HEADS
    steps: int = config.MEDUSA_STEPS
    batch: int = config.MEDUSA_BATCH
    lr: float = config.MEDUSA_LR
    max_new_tokens: int = config.MEDUSA_TRAIN_TOKENS  # target tokens collected per training prompt
    seed: int = config.DEFAULT_SEED
    dtype: str = config.DEFAULT_DTYPE
    device: str = config.DEFAULT_DEVICE
    trust_remote_code: bool = False


@dataclass(frozen=True)
class TrainProgress:
    """A train-heads job's progress: stage "collecting" (prompts the target continues), "training"
    (optimiser steps) or "scoring"; done of total in that stage; detail such as "loss 2.314"; eta_s:
    seconds left in this stage at its pace so far (None before the second update)."""

    stage: str
    done: int
    total: int
    detail: str = ""
    elapsed_s: float = 0.0
    eta_s: float | None = None
# Finished: "complete", "interrupted" (cancelled), "failed".


@dataclass(frozen=True)
class Status:
    """What the UI shows. state: idle | loading | calibrating | running | complete | interrupted | failed.
    kind: "run" | "calibrate" | "train" | None. detail: one line on what is happening now. run_id: set as soon as
    the run is recorded in the store. error: the one-line reason a job failed."""

    state: str = IDLE
    kind: str | None = None
    label: str = ""
    detail: str = ""
    progress: Progress | None = None
    run_id: str | None = None
    error: str | None = None
    started: float | None = None  # time.time()
    finished: float | None = None
    cancel_requested: bool = False
    n_prompts: int = 0
    training: TrainProgress | None = None  # kind "train" only
    heads_dir: str | None = None  # kind "train": where the trained heads were saved
    started_mono: float | None = None  # time.monotonic() at the start, for elapsed times
    fraction: float | None = None  # of the current loading stage (converting, joining parts), when known
    stage_eta_s: float | None = None  # seconds left in that stage at its pace so far
    log: str | None = None  # the measuring process's log file
    unreliable: str | None = None  # kind "run": why its timings cannot be trusted (measure.machine), if so

    @property
    def busy(self) -> bool:
        return self.state in BUSY


def model_key(cfg: RunConfig, trust_remote_code: bool = False) -> tuple:
    """What identifies a loaded set: target, draft specs (only if a method needs them), dtype, device."""
    drafts = tuple(cfg.drafts) if "draft" in cfg.methods else ()
    return (cfg.target, drafts, cfg.dtype, cfg.device, trust_remote_code)


def _speeds_key(key: tuple) -> tuple:
    # Calibrations of one target on one device add up: every draft measured so far is kept.
    return (key[0], *key[2:])


def default_heads_root() -> Path:
    from specdec.store import default_path
    return default_path().parent / HEADS_DIRNAME


def heads_summary(path: str | Path) -> dict | None:
    """What the Run page shows about a heads directory (its medusa.json), or None when it is not one:
    path, name (the directory's), heads (K), steps, top1 (held-out, per head), target spec and
    parameters, train_prompts, created."""
    p = Path(path)
    try:
        meta = json.loads((p / medusa.MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or not (p / medusa.HEADS_FILE).is_file():
        return None
    rep = meta.get("report") or {}
    target = rep.get("target") or {}
    return {"path": str(p), "name": p.name, "heads": meta.get("num_heads"), "steps": rep.get("steps"),
            "top1": rep.get("top1") or [], "target": target.get("spec"), "target_parameters": target.get("parameters"),
            "train_prompts": len(rep.get("train_prompts") or ()), "created": rep.get("created") or ""}


class Jobs:
    """The jobs themselves, run in whichever thread calls `guard` (the measuring process's main thread,
    or Worker's thread when isolate=False). Holds the loaded models, the calibrations and the Status,
    under one lock. store_factory: () -> specdec.store.Store (opened in the job's thread); load_with_drafts
    / fit: specdec.measure.models / specdec.decoding.medusa unless injected; heads_root: where train-heads
    jobs save."""

    def __init__(self, store_factory, load_with_drafts, fit, heads_root: Path, should_stop=lambda: False,
                 on_change=lambda: None):
        self._store_factory, self._load_with_drafts, self._fit = store_factory, load_with_drafts, fit
        self._on_change = on_change  # called after every Status change (the measuring process publishes it)
        self._heads_root = heads_root
        self._lock = threading.Lock()
        self._should_stop = should_stop
        self._status = Status()
        self._loaded_key: tuple | None = None
        self._loaded: tuple | None = None  # (target, [drafts in key order])
        self._speeds: dict[tuple, Speeds] = {}
        self._pace = bundled.Pace()

    def snapshot(self) -> tuple:
        """(Status, loaded key, {speeds key: Speeds}): everything the server mirrors."""
        with self._lock:
            return self._status, self._loaded_key, dict(self._speeds)

    def begin(self, status: Status) -> None:
        with self._lock:
            self._status = status
        self._on_change()

    def abort(self) -> None:
        """A Cancel that landed outside guard (between receiving a job and starting it)."""
        with self._lock:
            if self._status.busy:
                self._status = replace(self._status, state="interrupted", finished=time.time(), detail="")

    def run(self, kind: str, args: tuple) -> None:
        job = {"run": self._run_job, "calibrate": self._calibrate_job, "train": self._train_job}[kind]
        self.guard(job, *args)

    # ---- the job thread ----

    def guard(self, job, *args) -> None:
        """Run a job; whatever happens, leave a finished Status with a one-line error, never a traceback.
        KeyboardInterrupt (Cancel's SIGINT) ends it as "interrupted": the runner has saved what it measured."""
        try:
            state = job(*args)
            self._update(state=state, finished=time.time(), detail="", fraction=None, stage_eta_s=None)
        except KeyboardInterrupt:
            self._update(state="interrupted", finished=time.time(), detail="", fraction=None, stage_eta_s=None)
        except SpecdecError as exc:
            self._update(state="failed", error=str(exc), finished=time.time(), detail="")
        except BaseException as exc:  # noqa: BLE001 — a thread has no one above it to catch anything
            traceback.print_exc(file=sys.stderr)  # for the server log; the UI gets one line
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            message = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
            if isinstance(exc, MemoryError):
                message = "out of memory: the models do not fit; try smaller models or dtype bfloat16"
            self._update(state="failed", error=message, finished=time.time(), detail="")

    def _update(self, **changes) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)
        self._on_change()

    def _models_for(self, key: tuple):
        """(target, [drafts]) for a model_key: the loaded set when it holds every model asked for,
        else a fresh load (the old set is freed first)."""
        target_spec, drafts, dtype, device, trust = key
        with self._lock:
            cached_key, cached = self._loaded_key, self._loaded
        if cached is not None and cached_key[0] == target_spec and cached_key[2:] == key[2:] \
                and set(drafts) <= set(cached_key[1]):
            self._update(detail="models already loaded")
            by_spec = dict(zip(cached_key[1], cached[1]))
            return cached[0], [by_spec[d] for d in drafts]
        with self._lock:  # free the old set before loading a new one: two may not fit in memory
            self._loaded_key = self._loaded = None
        cached = None
        gc.collect()

        def on_progress(stage: str, fraction: float | None = None) -> None:
            self._update(detail=stage if fraction is None else f"{stage} {fraction:.0%}", fraction=fraction,
                         stage_eta_s=self._pace.eta_s(stage, fraction))

        target, loaded = self._load_with_drafts(target_spec, list(drafts), dtype=dtype, device=device,
                                                trust_remote_code=trust, on_progress=on_progress)
        loaded = list(loaded)
        with self._lock:
            self._loaded_key, self._loaded = key, (target, loaded)
        return target, loaded

    def _calibrate_job(self, cfg: RunConfig, trust_remote_code: bool) -> str:
        key = model_key(cfg, trust_remote_code)
        target, drafts = self._models_for(key)
        self._update(state=CALIBRATING, detail="timing a short decode", fraction=None, stage_eta_s=None)
        speeds = calibrate(target, drafts, max_gamma=max(cfg.draft_lengths),
                                   layer_skip=cfg.layer_skip_layers if "layer-skip" in cfg.methods else ())
        with self._lock:
            old = self._speeds.get(_speeds_key(key))
            if old is not None:  # keep the draft models and depths timed before, unless re-timed now
                speeds = replace(speeds, draft_steps={**old.draft_steps, **speeds.draft_steps},
                                 draft_prefills={**old.draft_prefills, **speeds.draft_prefills},
                                 draft_parameters={**old.draft_parameters, **speeds.draft_parameters},
                                 layer_steps={**old.layer_steps, **speeds.layer_steps})
            self._speeds[_speeds_key(key)] = speeds
        return "complete"

    def _run_job(self, cfg: RunConfig, workload: Workload, trust_remote_code: bool) -> str:
        target, drafts = self._models_for(model_key(cfg, trust_remote_code))
        if self._should_stop():
            return "interrupted"
        self._update(state=RUNNING, detail="starting", fraction=None, stage_eta_s=None)
        store = self._store_factory()
        try:
            results = runner.execute(cfg, workload, target, drafts, store=_Tap(store, self._on_created),
                                     on_progress=self._on_progress, should_stop=self._should_stop)
        finally:
            store.close()
        self._update(unreliable=machine.unreliable(results["manifest"]))
        return results["manifest"]["status"]

    def _train_job(self, target_spec: str, workload: Workload, o: TrainOptions) -> str:
        target, _ = self._models_for((target_spec, (), o.dtype, o.device, o.trust_remote_code))
        if self._should_stop():
            return "interrupted"
        self._update(state=TRAINING, detail="starting", fraction=None, stage_eta_s=None)
        out = _new_heads_dir(self._heads_root, target_spec, workload.name, o)
        pace = {}

        def on_progress(stage: str, done: int, total: int, detail: str = "") -> None:
            now = time.monotonic()
            first = pace.setdefault(stage, (now, done))
            rate = (done - first[1]) / (now - first[0]) if now > first[0] and done > first[1] else None
            with self._lock:
                elapsed = now - (self._status.started_mono or now)
                self._status = replace(self._status, training=TrainProgress(
                    stage, done, total, detail, elapsed, (total - done) / rate if rate else None),
                    detail=self._status.detail if self._status.cancel_requested else f"{stage} {done}/{total}")

        report = self._fit(target, workload, out, num_heads=o.num_heads, steps=o.steps, batch=o.batch, lr=o.lr,
                           max_new_tokens=o.max_new_tokens, seed=o.seed, on_progress=on_progress,
                           should_stop=self._should_stop)
        if report is None:
            return "interrupted"
        self._update(heads_dir=str(out))
        return "complete"

    def _on_created(self, run_id: str) -> None:
        self._update(run_id=run_id)

    def _on_progress(self, p: Progress) -> None:
        with self._lock:
            detail = self._status.detail if self._status.cancel_requested else f"{p.stage} {p.prompt_id}"
            self._status = replace(self._status, progress=p, detail=detail)
        self._on_change()


class Worker:
    """One job at a time for the whole server, run in a measuring process (isolate=True) or a thread.

    store_factory: () -> specdec.store.Store, opened where the job runs (picklable when isolated, e.g.
    functools.partial(Store, path)); load_with_drafts / fit: injected for tests; heads_root: where
    train-heads jobs save (default: beside the run store); log_dir: the measuring process's logs
    (default: beside the run store)."""

    def __init__(self, store_factory=None, load_with_drafts=models.load_with_drafts, fit=medusa.fit,
                 heads_root: str | Path | None = None, *, isolate: bool = True, log_dir: str | Path | None = None):
        if store_factory is None:
            from specdec.store import Store
            store_factory = Store
        self._heads_root = Path(heads_root) if heads_root is not None else default_heads_root()
        self._log_dir = Path(log_dir) if log_dir is not None else self._heads_root.parent / LOGS_DIRNAME
        self._factories = (store_factory, load_with_drafts, fit)
        self._isolate = isolate
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._jobs = None if isolate else Jobs(store_factory, load_with_drafts, fit, self._heads_root,
                                               self._stop.is_set)
        self._child: _Child | None = None
        self._mirror: tuple = (Status(), None, {})  # the measuring process's last snapshot
        if isolate:  # started now, so its imports (torch, transformers: ~10 s) are done by the first Start
            try:
                self._child = _Child(self._factories, self._heads_root, self._log_dir, self._receive)
            except (OSError, SpecdecError):
                self._child = None  # _start tries again and reports what fails

    # ---- what the page calls ----

    def status(self) -> Status:
        return self._snapshot()[0]

    def speeds(self, cfg: RunConfig, trust_remote_code: bool = False) -> Speeds | None:
        """Calibrations of cfg's target (with every draft model timed so far) since the server started."""
        return self._snapshot()[2].get(_speeds_key(model_key(cfg, trust_remote_code)))

    def loaded(self) -> tuple | None:
        """Key of the models the measuring process holds (see model_key), or None."""
        return self._snapshot()[1]

    def saved_heads(self, target: str | None = None) -> list[dict]:
        """Medusa heads saved under heads_root, newest first (heads_summary of each); with target, only
        those trained on that target spec."""
        try:
            dirs = [d for d in self._heads_root.iterdir() if d.is_dir()]
        except OSError:
            return []
        found = [h for h in map(heads_summary, dirs) if h is not None and (target is None or h["target"] == target)]
        return sorted(found, key=lambda h: (h["created"], h["path"]), reverse=True)

    def start_run(self, cfg: RunConfig, workload: Workload, trust_remote_code: bool = False) -> None:
        """Load the models (or reuse the loaded ones) and run the workload into the store."""
        label = f"{workload.name}: {len(workload.prompts)} prompts, {_models_label(cfg)}"
        self._start("run", label, len(workload.prompts), cfg, workload, trust_remote_code)

    def start_calibration(self, cfg: RunConfig, trust_remote_code: bool = False) -> None:
        """Load the models and time a short decode, for the run-time estimate (speeds())."""
        self._start("calibrate", f"calibrating {_models_label(cfg)}", 0, cfg, trust_remote_code)

    def start_training(self, target_spec: str, workload: Workload, options: TrainOptions = TrainOptions()) -> None:
        """Load the target (or reuse it) and train Medusa heads on the workload (medusa.fit) into a new
        directory under heads_root; Status.heads_dir names it when the job is complete."""
        if options.num_heads < 1 or options.steps < 1 or options.batch < 1 or options.max_new_tokens < 1:
            raise SpecdecError("heads, steps, batch and tokens per prompt must be at least 1")
        if len(workload.prompts) < 2:
            raise SpecdecError("training heads needs at least 2 prompts: some train, the others measure the heads")
        label = (f"training {options.num_heads} Medusa heads on {model_name(target_spec)}: {workload.name}, "
                 f"{len(workload.prompts)} prompts, {options.steps} steps")
        self._start("train", label, len(workload.prompts), target_spec, workload, options)

    def cancel(self) -> None:
        """Stop the job. Isolated: SIGINT to the measuring process at once — a run stops as with Ctrl-C
        (every finished prompt kept), a conversion removes its half-written files, a training saves
        nothing — and after CANCEL_GRACE_S it is terminated. On a thread: the run stops before its next
        configuration, a training before its next prompt or step."""
        status = self.status()
        if not status.busy or status.cancel_requested:
            return
        if not self._isolate:
            self._stop.set()
            what = "the step in progress" if status.kind == "train" else "the configuration being measured"
            self._jobs._update(cancel_requested=True, detail=f"cancelling: stops after {what}")  # noqa: SLF001
            return
        with self._lock:
            child = self._child
            self._mirror = (replace(self._mirror[0], cancel_requested=True,
                                    detail="cancelling: stopping the measuring process"), *self._mirror[1:])
        if child is not None:
            child.interrupt(CANCEL_GRACE_S)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the job (tests, shutdown). True when no job is running."""
        if not self._isolate:
            thread = self._thread
            if thread is not None:
                thread.join(timeout)
            return not (thread is not None and thread.is_alive())
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.status().busy:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def close(self) -> None:
        """End the measuring process (tests, shutdown); the next job starts a new one."""
        with self._lock:
            child, self._child = self._child, None
        if child is not None:
            child.close()

    # ---- starting a job ----

    def _snapshot(self) -> tuple:
        if not self._isolate:
            return self._jobs.snapshot()
        with self._lock:
            return self._mirror

    def _start(self, kind: str, label: str, n_prompts: int, *args) -> None:
        with self._lock:
            busy = (self._jobs.snapshot()[0] if self._jobs else self._mirror[0]).busy
            if busy or (self._thread is not None and self._thread.is_alive()):
                current = (self._jobs.snapshot()[0] if self._jobs else self._mirror[0]).label
                raise SpecdecError(f"a job is already running ({current}); wait for it to finish or "
                                   "cancel it — one run at a time per server")
            status = Status(state=LOADING, kind=kind, label=label, detail="loading models",
                            started=time.time(), n_prompts=n_prompts, started_mono=time.monotonic())
            if not self._isolate:
                self._stop.clear()
                self._jobs.begin(status)
                self._thread = threading.Thread(target=self._jobs.run, args=(kind, args), name=f"specdec-{kind}",
                                                 daemon=True)
                self._thread.start()
                return
            if self._child is None or not self._child.alive():
                self._child = _Child(self._factories, self._heads_root, self._log_dir, self._receive)
                status = replace(status, detail="starting the measuring process")
            status = replace(status, log=str(self._child.log))
            self._mirror = (status, *self._mirror[1:])
            child = self._child
        child.send(("job", kind, args, status))

    def _receive(self, child: "_Child", message) -> None:
        """From the child's reader thread: a snapshot, or None when the child has gone."""
        with self._lock:
            if child is not self._child:
                return
            current = self._mirror[0]
            if message is None:
                self._child = None
                if current.busy:
                    if current.cancel_requested:
                        self._mirror = (replace(current, state="interrupted", finished=time.time(), detail=""),
                                        None, self._mirror[2])
                    else:
                        code = child.returncode()
                        self._mirror = (replace(current, state="failed", finished=time.time(), detail="",
                                                error=f"the measuring process stopped unexpectedly (exit code "
                                                      f"{code}); its log: {child.log}"), None, self._mirror[2])
                else:
                    self._mirror = (current, None, self._mirror[2])
                return
            status, loaded, speeds = message
            if current.busy and status.started != current.started:  # from before this job began
                return
            if current.cancel_requested and status.busy:  # the child does not know yet: keep the page's note
                status = replace(status, cancel_requested=True, detail=current.detail)
            self._mirror = (replace(status, log=str(child.log)), loaded, speeds)


class _Child:
    """The measuring process: `python -m specdec.measure.worker FD_IN FD_OUT`, stdout and stderr to a log.
    Messages are pickled over two OS pipes (multiprocessing Connections): jobs in, snapshots out."""

    def __init__(self, factories: tuple, heads_root: Path, log_dir: Path, on_message):
        try:
            pickle.dumps(factories)
        except Exception as exc:  # noqa: BLE001 — a lambda or a local function cannot cross a pipe
            raise SpecdecError(f"the job's store factory and loaders cannot be sent to the measuring process "
                               f"({type(exc).__name__}); pass module-level functions or isolate=False") from None
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = log_dir / f"measure-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "specdec.measure.worker", str(to_child_r), str(from_child_w)],
                pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=str(Path(__file__).resolve().parents[2]),  # so `-m specdec…` finds this checkout
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        os.close(to_child_r)
        os.close(from_child_w)
        self._out = Connection(to_child_w, readable=False)
        self._in = Connection(from_child_r, writable=False)
        self._send_lock = threading.Lock()
        self._idle = threading.Event()
        self._on_message = on_message
        self.send(("init", factories, heads_root))
        threading.Thread(target=self._read, name="specdec-measure-reader", daemon=True).start()

    def alive(self) -> bool:
        return self._proc.poll() is None

    def returncode(self):
        return self._proc.poll()

    def send(self, message) -> None:
        with self._send_lock:
            self._out.send(message)

    def interrupt(self, grace_s: float) -> None:
        """SIGINT now; terminate, then kill, if the process is still busy after grace_s."""
        if self.alive():
            self._proc.send_signal(signal.SIGINT)
        started = time.monotonic()

        def escalate():
            while time.monotonic() - started < grace_s:
                if self._idle.is_set() or not self.alive():
                    return
                time.sleep(0.1)
            self.close()
        self._idle.clear()
        threading.Thread(target=escalate, name="specdec-cancel", daemon=True).start()

    def close(self) -> None:
        if self.alive():
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def _read(self) -> None:
        while True:
            try:
                message = self._in.recv()
            except (EOFError, OSError):
                self._proc.wait()
                self._on_message(self, None)
                return
            except Exception:  # noqa: BLE001 — an unreadable message: report what we can, keep reading
                traceback.print_exc(file=sys.stderr)
                continue
            if not message[0].busy:
                self._idle.set()
            self._on_message(self, message)


def _serve(conn_in: Connection, conn_out: Connection) -> None:
    """The measuring process: wait for jobs, run each in this (main) thread, so Cancel's SIGINT lands
    in it, and publish the Status whenever it changes from a small thread."""
    factories, heads_root = None, None
    while factories is None:
        kind, *rest = conn_in.recv()
        if kind == "init":
            factories, heads_root = rest
    changed = threading.Event()
    jobs = Jobs(*factories, heads_root, on_change=changed.set)
    send_lock = threading.Lock()
    last = [None]

    def publish(force: bool = False) -> None:
        snap = jobs.snapshot()
        with send_lock:
            if force or snap != last[0]:
                conn_out.send(snap)
                last[0] = snap

    def publisher() -> None:
        while True:
            changed.wait(PUBLISH_EVERY_S)  # a change is sent at once; the timeout catches anything else
            changed.clear()
            try:
                publish()
            except (OSError, EOFError):  # the server has gone: nothing to report to
                os._exit(0)

    threading.Thread(target=publisher, name="specdec-publish", daemon=True).start()
    while True:
        try:
            message = conn_in.recv()
        except KeyboardInterrupt:  # a Cancel that arrived after the job ended: nothing to stop
            continue
        except (EOFError, OSError):
            return
        try:
            if message[0] == "job":
                _, kind, args, status = message
                jobs.begin(status)
                jobs.run(kind, args)
            publish(force=True)
        except KeyboardInterrupt:
            jobs.abort()
            publish(force=True)


def _models_label(cfg: RunConfig) -> str:
    """'target + draft1 + draft2' (every draft model), '+ layer-skip', '+ Medusa heads' where measured."""
    parts = [model_name(cfg.target)]
    if "draft" in cfg.methods:
        parts += [model_name(d) for d in cfg.drafts]
    if "layer-skip" in cfg.methods:
        parts.append("layer-skip " + (", ".join(f"L{n}" for n in cfg.layer_skip_layers) or "(half the layers)"))
    if "medusa" in cfg.methods:
        parts.append("Medusa heads" + (" (exact + typical)" if cfg.medusa_typical else ""))
    return " + ".join(parts)


def _new_heads_dir(root: Path, target_spec: str, workload_name: str, o: TrainOptions) -> Path:
    """root/<target>-<workload>-K<k>-<steps>s-<timestamp>: a fresh directory name per training."""
    slug = lambda text: re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.")[:40] or "x"  # noqa: E731
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = root / f"{slug(model_name(target_spec))}-{slug(Path(workload_name).stem)}-K{o.num_heads}-{o.steps}s-{stamp}"
    out, i = base, 1
    while out.exists():
        i += 1
        out = base.with_name(f"{base.name}-{i}")
    return out


class _Tap:
    """A store that tells the worker the run id as soon as the run is created."""

    def __init__(self, store, on_create):
        self._store, self._on_create = store, on_create

    def create_run(self, manifest: dict) -> str:
        out = self._store.create_run(manifest)
        self._on_create(manifest["run_id"])
        return out

    def __getattr__(self, name):
        return getattr(self._store, name)


if __name__ == "__main__":  # the measuring process (see _Child)
    # Through the imported module, so what it pickles is specdec.measure.worker.Status, not __main__.Status.
    from specdec.measure import worker as _module
    _module._serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
