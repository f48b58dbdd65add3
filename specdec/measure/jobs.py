"""The measuring process's jobs: load models, calibrate, run a workload, train Medusa heads — one at a time,
each reporting a Status. specdec.measure.worker starts this process (`serve`) and talks to it over a pipe;
with Worker(isolate=False) the same Jobs run on a thread of the server instead.

The last loaded models (a target and its draft models) stay in memory for the next job; a job that needs a
subset of the loaded drafts reuses them. Trained Medusa heads are saved under `heads_root`, one directory
per training (heads_summary reads one back).

Public API
    TrainOptions, TrainProgress, Status (frozen dataclasses); IDLE … TRAINING, BUSY
    model_key(cfg, trust_remote_code) -> tuple; heads_summary(path) -> dict | None; default_heads_root()
    Jobs(store_factory, load_with_drafts, fit, heads_root, should_stop)
"""

from __future__ import annotations

import gc
import json
import os
import re
import sys
import threading
import time
import traceback
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path

from specdec import config, methods
from specdec.decoding import medusa
from specdec.measure import bundled
from specdec.measure import machine
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
    engine: object | None = None  # kind "engine": specdec.engines.request.EngineProgress of the level under way

    @property
    def busy(self) -> bool:
        return self.state in BUSY


def model_key(cfg: RunConfig, trust_remote_code: bool = False) -> tuple:
    """What identifies a loaded set: target, draft specs (only if a method needs them), dtype, device."""
    drafts = tuple(s for f in cfg.methods for s in methods.spec(f).model_specs(cfg))
    return (cfg.target, drafts, cfg.dtype, cfg.device, trust_remote_code)


def speeds_key(key: tuple) -> tuple:
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
        job = {"run": self._run_job, "calibrate": self._calibrate_job, "train": self._train_job,
               "engine": self._engine_job}[kind]
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
                                   layer_skip=cfg.layer_skip_layers)  # run_config clears it unless measured
        with self._lock:
            old = self._speeds.get(speeds_key(key))
            if old is not None:  # keep the draft models and depths timed before, unless re-timed now
                speeds = replace(speeds, draft_steps={**old.draft_steps, **speeds.draft_steps},
                                 draft_prefills={**old.draft_prefills, **speeds.draft_prefills},
                                 draft_parameters={**old.draft_parameters, **speeds.draft_parameters},
                                 layer_steps={**old.layer_steps, **speeds.layer_steps})
            self._speeds[speeds_key(key)] = speeds
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

    def _engine_job(self, req, workload: Workload) -> str:
        """An engine run (specdec.engines.request): llama-server or the user's URLs, measured from this process
        like any run, into <store dir>/engine-runs/<time>/ and then the run store."""
        from specdec.engines import request

        self._update(state=RUNNING, detail="starting the engine run", fraction=None, stage_eta_s=None)
        out_dir = request.new_out_dir(self._heads_root.parent / request.ENGINE_RUNS_DIRNAME)
        store = self._store_factory()
        try:
            request.execute(req, workload, out_dir, store, on_progress=self._on_engine_progress,
                            on_stored=self._on_created, should_stop=self._should_stop)
        finally:
            store.close()
        return "complete"  # an interrupted or failed run raised (guard records it; its finished levels are stored)

    def _on_engine_progress(self, p) -> None:
        with self._lock:
            detail = self._status.detail if self._status.cancel_requested else (
                f"{p.side} · concurrency {p.concurrency} · level {p.level} of {p.levels}")
            self._status = replace(self._status, engine=p, detail=detail)
        self._on_change()

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


def serve(conn_in: Connection, conn_out: Connection) -> None:
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


def models_label(cfg: RunConfig) -> str:
    """'target + draft1 + draft2' (every draft model), '+ layer-skip', '+ Medusa heads' where measured."""
    parts = [model_name(cfg.target)]
    for name in sorted(cfg.methods, key=methods.FAMILIES.index):  # registry order: draft models first
        if methods.spec(name).uses_model:
            parts += methods.spec(name).run_label(cfg, model_name)
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
