"""One background job at a time per process: load models, calibrate, or run a workload.

The app keeps one Worker for the whole server (st.cache_resource), so a run survives every widget
change and page switch: the page script only starts jobs, asks for `status()` and calls `cancel()`.
Nothing here touches Streamlit; the job thread writes only to this object, under its lock.

The last loaded model pair stays in memory for the next job (loading the bundled pair takes tens of
seconds; two pairs at once would not fit a small machine, so a new pair replaces the old).
A second job while one is busy is refused with a one-line SpecdecError.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
import traceback
from dataclasses import dataclass, replace

from specdec import models, runner, runplan
from specdec.config import RunConfig
from specdec.errors import SpecdecError
from specdec.runner import Progress
from specdec.views import model_name
from specdec.workloads import Workload

IDLE, LOADING, CALIBRATING, RUNNING = "idle", "loading", "calibrating", "running"
BUSY = (LOADING, CALIBRATING, RUNNING)
# Finished: "complete", "interrupted" (cancelled), "failed".


@dataclass(frozen=True)
class Status:
    """What the UI shows. state: idle | loading | calibrating | running | complete | interrupted | failed.
    kind: "run" | "calibrate" | None. detail: one line on what is happening now. run_id: set as soon as
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

    @property
    def busy(self) -> bool:
        return self.state in BUSY


def model_key(cfg: RunConfig, trust_remote_code: bool = False) -> tuple:
    """What identifies a loaded pair: specs, dtype, device (the draft only if a method needs it)."""
    draft = cfg.draft if "draft" in cfg.methods else None
    return (cfg.target, draft, cfg.dtype, cfg.device, trust_remote_code)


class Worker:
    """Runs jobs on a daemon thread. store_factory: () -> specdec.store.Store (opened in the job's
    thread); load_pair / load_model: injected for tests, specdec.models by default."""

    def __init__(self, store_factory=None, load_pair=models.load_pair, load_model=models.load_model):
        if store_factory is None:
            from specdec.store import Store
            store_factory = Store
        self._store_factory, self._load_pair, self._load_model = store_factory, load_pair, load_model
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status = Status()
        self._loaded_key: tuple | None = None
        self._loaded: tuple | None = None  # (target, draft | None)
        self._speeds: dict[tuple, runplan.Speeds] = {}

    # ---- what the page calls ----

    def status(self) -> Status:
        with self._lock:
            return self._status

    def speeds(self, cfg: RunConfig, trust_remote_code: bool = False) -> runplan.Speeds | None:
        """The last calibration of this model pair in this process, if any."""
        with self._lock:
            return self._speeds.get(model_key(cfg, trust_remote_code))

    def loaded(self) -> tuple | None:
        """Key of the model pair in memory (see model_key), or None."""
        with self._lock:
            return self._loaded_key

    def start_run(self, cfg: RunConfig, workload: Workload, trust_remote_code: bool = False) -> None:
        """Load the models (or reuse the loaded pair) and run the workload into the store."""
        label = f"{workload.name}: {len(workload.prompts)} prompts, {model_name(cfg.target)}" + (
            f" + {model_name(cfg.draft)}" if "draft" in cfg.methods else "")
        self._start("run", label, len(workload.prompts), self._run_job, cfg, workload, trust_remote_code)

    def start_calibration(self, cfg: RunConfig, trust_remote_code: bool = False) -> None:
        """Load the models and time a short decode, for the run-time estimate (speeds())."""
        label = f"calibrating {model_name(cfg.target)}" + (
            f" + {model_name(cfg.draft)}" if "draft" in cfg.methods else "")
        self._start("calibrate", label, 0, self._calibrate_job, cfg, trust_remote_code)

    def cancel(self) -> None:
        """Ask the job to stop: a run stops before its next prompt (the prompt being measured finishes)."""
        with self._lock:
            if self._status.busy:
                self._stop.set()
                self._status = replace(self._status, cancel_requested=True,
                                       detail="cancelling: stops after the prompt being measured")

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
                                  started=time.time(), n_prompts=n_prompts)
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

    def _models_for(self, cfg: RunConfig, trust_remote_code: bool):
        key = model_key(cfg, trust_remote_code)
        with self._lock:
            cached_key, cached = self._loaded_key, self._loaded
        if cached is not None and (cached_key == key or (key[1] is None and cached_key[0] == key[0]
                                                         and cached_key[2:] == key[2:])):
            self._update(detail="models already loaded")
            return cached[0], (cached[1] if key[1] is not None else None)
        with self._lock:  # free the old pair before loading a new one: two may not fit in memory
            self._loaded_key = self._loaded = None
        cached = None
        gc.collect()

        def on_progress(stage: str, fraction: float | None = None) -> None:
            self._update(detail=stage if fraction is None else f"{stage} {fraction:.0%}")

        kw = dict(dtype=cfg.dtype, device=cfg.device, trust_remote_code=trust_remote_code, on_progress=on_progress)
        if key[1] is not None:
            target, draft = self._load_pair(cfg.target, cfg.draft, **kw)
        else:
            target, draft = self._load_model(cfg.target, **kw), None
        with self._lock:
            self._loaded_key, self._loaded = key, (target, draft)
        return target, draft

    def _calibrate_job(self, cfg: RunConfig, trust_remote_code: bool) -> str:
        target, draft = self._models_for(cfg, trust_remote_code)
        self._update(state=CALIBRATING, detail="timing a short decode")
        speeds = runplan.calibrate(target, draft, max_gamma=max(cfg.draft_lengths))
        with self._lock:
            self._speeds[model_key(cfg, trust_remote_code)] = speeds
        return "complete"

    def _run_job(self, cfg: RunConfig, workload: Workload, trust_remote_code: bool) -> str:
        target, draft = self._models_for(cfg, trust_remote_code)
        if self._stop.is_set():
            return "interrupted"
        self._update(state=RUNNING, detail="starting")
        store = self._store_factory()
        try:
            results = runner.execute(cfg, workload, target, draft, store=_Tap(store, self._on_created),
                                     on_progress=self._on_progress, should_stop=self._stop.is_set)
        finally:
            store.close()
        return results["manifest"]["status"]

    def _on_created(self, run_id: str) -> None:
        self._update(run_id=run_id)

    def _on_progress(self, p: Progress) -> None:
        with self._lock:
            detail = self._status.detail if self._status.cancel_requested else f"{p.stage} {p.prompt_id}"
            self._status = replace(self._status, progress=p, detail=detail)


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
