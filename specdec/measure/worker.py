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
is busy is refused with a one-line SpecdecError. The jobs themselves are specdec.measure.jobs.

Trained Medusa heads are saved under `heads_root` (next to the run store), one directory per training;
`saved_heads()` lists them from disk, so they outlive the server.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path

from specdec.decoding import medusa
from specdec.measure import models
from specdec.config import RunConfig
from specdec.errors import SpecdecError
from specdec.measure.jobs import (LOADING, Jobs, Status, TrainOptions, default_heads_root, heads_summary, model_key,
                                  models_label, speeds_key)
from specdec.measure.speeds import Speeds
from specdec.present.views import model_name
from specdec.measure.workloads import Workload

LOGS_DIRNAME = "logs"  # beside the run store: one log per measuring process
CANCEL_GRACE_S = 20.0  # after SIGINT, how long a job may take to save and stop before it is terminated


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
        return self._snapshot()[2].get(speeds_key(model_key(cfg, trust_remote_code)))

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
        label = f"{workload.name}: {len(workload.prompts)} prompts, {models_label(cfg)}"
        self._start("run", label, len(workload.prompts), cfg, workload, trust_remote_code)

    def start_engine_run(self, request, workload: Workload) -> None:
        """Measure SD on a serving engine (specdec.engines.request.EngineRequest) over the workload, in the
        measuring process like any run; the result goes into the run store (also the levels finished before a
        Cancel or an error)."""
        label = f"{workload.name}: {len(workload.prompts)} prompts, {request.label}"
        self._start("engine", label, len(workload.prompts), request, workload, detail="starting the engine run")

    def start_calibration(self, cfg: RunConfig, trust_remote_code: bool = False) -> None:
        """Load the models and time a short decode, for the run-time estimate (speeds())."""
        self._start("calibrate", f"calibrating {models_label(cfg)}", 0, cfg, trust_remote_code)

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

    def _start(self, kind: str, label: str, n_prompts: int, *args, detail: str = "loading models") -> None:
        with self._lock:
            busy = (self._jobs.snapshot()[0] if self._jobs else self._mirror[0]).busy
            if busy or (self._thread is not None and self._thread.is_alive()):
                current = (self._jobs.snapshot()[0] if self._jobs else self._mirror[0]).label
                raise SpecdecError(f"a job is already running ({current}); wait for it to finish or "
                                   "cancel it — one run at a time per server")
            status = Status(state=LOADING, kind=kind, label=label, detail=detail,
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
        # Cleared before the signal: a child that stops at once reports idle before this thread runs
        # again on a loaded machine, and clearing after would erase that report and terminate it anyway.
        self._idle.clear()
        if self.alive():
            self._proc.send_signal(signal.SIGINT)
        started = time.monotonic()

        def escalate():
            while time.monotonic() - started < grace_s:
                if self._idle.is_set() or not self.alive():
                    return
                time.sleep(0.1)
            self.close()
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


if __name__ == "__main__":  # the measuring process (see _Child)
    # Cancel is SIGINT. A process started from a background job of a non-interactive shell (a CI script,
    # `nohup … &`) inherits SIGINT ignored, and Python keeps it ignored: the job would never stop and the
    # process would be terminated at the end of the grace instead. Ctrl-C's handler, explicitly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from specdec.measure import jobs
    jobs.serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
