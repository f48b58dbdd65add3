"""One background job at a time per process: load models, calibrate, run a workload, or train Medusa heads.

The app keeps one Worker for the whole server (st.cache_resource), so a run survives every widget
change and page switch: the page script only starts jobs, asks for `status()` and calls `cancel()`.
Nothing here touches Streamlit; the job thread writes only to this object, under its lock.

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
import re
import sys
import threading
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

from specdec import config
from specdec.decoding import medusa
from specdec.measure import models
from specdec.measure import runner
from specdec.measure import runplan
from specdec.config import RunConfig
from specdec.errors import SpecdecError
from specdec.measure.runner import Progress
from specdec.present.views import model_name
from specdec.measure.workloads import Workload

IDLE, LOADING, CALIBRATING, RUNNING, TRAINING = "idle", "loading", "calibrating", "running", "training"
BUSY = (LOADING, CALIBRATING, RUNNING, TRAINING)
HEADS_DIRNAME = "heads"  # beside the run store: <data dir>/specdec/heads/<one directory per training>


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


class Worker:
    """Runs jobs on a daemon thread. store_factory: () -> specdec.store.Store (opened in the job's
    thread); load_with_drafts / fit: injected for tests, specdec.measure.models / specdec.decoding.medusa by default;
    heads_root: where train-heads jobs save (default: beside the run store)."""

    def __init__(self, store_factory=None, load_with_drafts=models.load_with_drafts, fit=medusa.fit,
                 heads_root: str | Path | None = None):
        if store_factory is None:
            from specdec.store import Store
            store_factory = Store
        self._store_factory, self._load_with_drafts, self._fit = store_factory, load_with_drafts, fit
        self._heads_root = Path(heads_root) if heads_root is not None else default_heads_root()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status = Status()
        self._loaded_key: tuple | None = None
        self._loaded: tuple | None = None  # (target, [drafts in key order])
        self._speeds: dict[tuple, runplan.Speeds] = {}

    # ---- what the page calls ----

    def status(self) -> Status:
        with self._lock:
            return self._status

    def speeds(self, cfg: RunConfig, trust_remote_code: bool = False) -> runplan.Speeds | None:
        """This process's calibrations of cfg's target (with every draft model timed so far), if any."""
        with self._lock:
            return self._speeds.get(_speeds_key(model_key(cfg, trust_remote_code)))

    def loaded(self) -> tuple | None:
        """Key of the models in memory (see model_key), or None."""
        with self._lock:
            return self._loaded_key

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
        self._start("run", label, len(workload.prompts), self._run_job, cfg, workload, trust_remote_code)

    def start_calibration(self, cfg: RunConfig, trust_remote_code: bool = False) -> None:
        """Load the models and time a short decode, for the run-time estimate (speeds())."""
        self._start("calibrate", f"calibrating {_models_label(cfg)}", 0, self._calibrate_job, cfg, trust_remote_code)

    def start_training(self, target_spec: str, workload: Workload, options: TrainOptions = TrainOptions()) -> None:
        """Load the target (or reuse it) and train Medusa heads on the workload (medusa.fit) into a new
        directory under heads_root; Status.heads_dir names it when the job is complete."""
        if options.num_heads < 1 or options.steps < 1 or options.batch < 1 or options.max_new_tokens < 1:
            raise SpecdecError("heads, steps, batch and tokens per prompt must be at least 1")
        if len(workload.prompts) < 2:
            raise SpecdecError("training heads needs at least 2 prompts: some train, the others measure the heads")
        label = (f"training {options.num_heads} Medusa heads on {model_name(target_spec)}: {workload.name}, "
                 f"{len(workload.prompts)} prompts, {options.steps} steps")
        self._start("train", label, len(workload.prompts), self._train_job, target_spec, workload, options)

    def cancel(self) -> None:
        """Ask the job to stop: a run stops before its next configuration (the one being measured
        finishes), a training before its next prompt or step (nothing is saved)."""
        with self._lock:
            if self._status.busy:
                self._stop.set()
                what = "the step in progress" if self._status.kind == "train" else "the configuration being measured"
                self._status = replace(self._status, cancel_requested=True, detail=f"cancelling: stops after {what}")

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the job thread (tests, shutdown). True when no job is running."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not (thread is not None and thread.is_alive())

    # ---- the job thread ----

    def _start(self, kind: str, label: str, n_prompts: int, job, *args) -> None:
        with self._lock:
            if self._status.busy or (self._thread is not None and self._thread.is_alive()):
                raise SpecdecError(f"a job is already running ({self._status.label}); wait for it to finish or "
                                   "cancel it — one run at a time per server")
            self._stop.clear()
            self._status = Status(state=LOADING, kind=kind, label=label, detail="loading models",
                                  started=time.time(), n_prompts=n_prompts, started_mono=time.monotonic())
            self._thread = threading.Thread(target=self._guard, args=(job, *args), name=f"specdec-{kind}",
                                             daemon=True)
            self._thread.start()

    def _guard(self, job, *args) -> None:
        """Run a job; whatever happens, leave a finished Status with a one-line error, never a traceback."""
        try:
            state = job(*args)
            self._update(state=state, finished=time.time(), detail="")
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
            self._update(detail=stage if fraction is None else f"{stage} {fraction:.0%}")

        target, loaded = self._load_with_drafts(target_spec, list(drafts), dtype=dtype, device=device,
                                                trust_remote_code=trust, on_progress=on_progress)
        loaded = list(loaded)
        with self._lock:
            self._loaded_key, self._loaded = key, (target, loaded)
        return target, loaded

    def _calibrate_job(self, cfg: RunConfig, trust_remote_code: bool) -> str:
        key = model_key(cfg, trust_remote_code)
        target, drafts = self._models_for(key)
        self._update(state=CALIBRATING, detail="timing a short decode")
        speeds = runplan.calibrate(target, drafts, max_gamma=max(cfg.draft_lengths),
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
        if self._stop.is_set():
            return "interrupted"
        self._update(state=RUNNING, detail="starting")
        store = self._store_factory()
        try:
            results = runner.execute(cfg, workload, target, drafts, store=_Tap(store, self._on_created),
                                     on_progress=self._on_progress, should_stop=self._stop.is_set)
        finally:
            store.close()
        return results["manifest"]["status"]

    def _train_job(self, target_spec: str, workload: Workload, o: TrainOptions) -> str:
        target, _ = self._models_for((target_spec, (), o.dtype, o.device, o.trust_remote_code))
        if self._stop.is_set():
            return "interrupted"
        self._update(state=TRAINING, detail="starting")
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
                           should_stop=self._stop.is_set)
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
