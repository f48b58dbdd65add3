"""`engine-run` from settings to results.json: get the servers, measure each side, compare, write.

Local mode (engine="llama.cpp"): one llama-server per side, started and stopped here — plain first,
then one per γ — with -np ≥ the highest concurrency so every level's requests run in parallel slots.
URL mode: the two endpoints the user started. Either way the `engine` block (specdec/engines/run.py,
plus `levels` and `decision` from specdec/analysis/engine.py, and `status`) goes into <out>/results.json:
merged into an in-process run already there (so one brief shows both verdicts), else a file of its own.

The block is written (atomically) after every finished level, as `run` writes after every prompt, so
Ctrl-C, SIGTERM or an engine error keeps every finished level: `status` says running → complete, or
interrupted / failed (with `error`). A level that fails or is interrupted never enters the block — its
requests are not a measurement — and nothing is written before the first level finished.
"""

from __future__ import annotations

import sys
from pathlib import Path

import specdec
from specdec import config, results as R
from specdec.analysis import engine as engine_analysis
from specdec.engines import run
from specdec.errors import SpecdecError
from specdec.measure.workloads import Workload


def execute(workload: Workload, plan: run.Plan, out_dir: Path, *, engine: str | None = None,
            target: str = config.BUNDLED_TARGET, draft: str = config.BUNDLED_DRAFT,
            draft_lengths: tuple[int, ...] = config.ENGINE_DRAFT_LENGTHS, baseline_url: str | None = None,
            spec_url: str | None = None, model: str | None = None, metrics_url: str | None = None,
            on_progress: run.Progress | None = None, on_note=None, should_stop=lambda: False) -> dict:
    """Measure, analyse and write <out_dir>/results.json after every level; returns the final engine block.
    KeyboardInterrupt and SpecdecError propagate after the file (if any level finished) is marked
    interrupted / failed. should_stop() is asked after each level (a Cancel without a signal, as the app's
    in-thread worker sends): True ends the run as interrupted there."""
    if engine == "llama.cpp":
        mode = "local"
    elif baseline_url and spec_url:
        mode = "urls"
    else:
        raise SpecdecError("engine-run needs --engine llama.cpp, or both --baseline-url and --spec-url")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = LevelWriter(out_dir / "results.json", workload, plan, mode, target, draft,
                      draft_lengths if mode == "local" else (), should_stop)
    try:
        if mode == "local":
            slots = max(plan.concurrency)
            configs = [("baseline", None, None)] + [(f"spec-g{g}", draft, g) for g in draft_lengths]
            for label, d, g in configs:
                if on_note:
                    on_note(f"starting llama-server ({label})")
                with run.local_server(target, d, g, slots, out_dir, label) as side:
                    out.measure(side, on_progress)
        else:
            for side in run.url_sides(baseline_url, spec_url, model, metrics_url):
                if on_note:
                    on_note(f"{side.label}: {side.info.engine} {side.info.version or ''} at {side.url} "
                            f"({side.info.evidence}), model {side.info.model}")
                out.measure(side, on_progress)
    except KeyboardInterrupt:
        out.finish("interrupted")
        raise
    except SpecdecError as exc:
        out.finish("failed", str(exc))
        raise
    return out.finish("complete")


class LevelWriter:
    """The engine block as levels finish: measure() one side, each finished level rewrites results.json."""

    def __init__(self, path: Path, workload: Workload, plan: run.Plan, mode: str, target: str, draft: str,
                 draft_lengths, should_stop=lambda: False):
        self.path, self.workload, self.plan, self.mode = path, workload, plan, mode
        self.should_stop = should_stop
        self.target, self.draft, self.draft_lengths = target, draft, tuple(draft_lengths)
        self.done: list[dict] = []  # finished sides' records
        self.current: dict | None = None  # the side being measured, its finished levels only
        self.info = None  # the latest side's EngineInfo (engine, version, model)
        self.data: dict | None = None  # the results dict written (the in-process run merged in, if any)

    def measure(self, side: run.Side, on_progress) -> None:
        self.info = side.info
        record = run.measure_side(side, self.workload, self.plan, on_progress, on_level=self._level_done)
        self.done.append(record)
        self.current = None

    def _level_done(self, record: dict) -> None:
        self.current = record
        self.write("running")
        if self.should_stop():
            raise KeyboardInterrupt  # handled as Ctrl-C: the file is marked interrupted

    def block(self, status: str, error: str | None = None) -> dict:
        info, plan, workload = self.info, self.plan, self.workload
        sides = self.done + ([self.current] if self.current else [])
        block = {
            "engine": info.engine, "version": info.version, "mode": self.mode, "model": info.model,
            "evidence": info.evidence, "status": status, "error": error,
            "settings": {"workload": workload.path or workload.name, "workload_sha256": workload.sha256,
                         "prompts": len(workload.prompts), "max_new_tokens": plan.max_new_tokens,
                         "concurrency": list(plan.concurrency), "request_rate": plan.request_rate,
                         "temperature": plan.temperature, "seed": plan.seed, "api": plan.api,
                         "target": self.target if self.mode == "local" else info.model,
                         "draft": self.draft if self.mode == "local" else None},
            "sides": sides,
        }
        block["levels"] = engine_analysis.levels_table(block)
        block["decision"] = engine_analysis.decide(block["levels"])
        return block

    def write(self, status: str, error: str | None = None) -> dict:
        block = self.block(status, error)
        if self.data is None:  # first write: merge into an in-process run already there, else start a file
            if self.path.exists():
                self.data = R.load(self.path)
                self.data["schema_version"] = R.SCHEMA_VERSION
            else:
                self.data = {"schema_version": R.SCHEMA_VERSION, "prompts": [],
                             "manifest": engine_manifest(block, self.workload, self.plan, self.draft_lengths)}
        self.data["engine"] = block
        if not self.data["prompts"]:  # an engine-only file: its manifest follows the engine run
            self.data["manifest"].update(status=status, finished=None if status == "running" else R.now_iso())
            if error:
                self.data["manifest"]["error"] = error
        R.dump_atomic(self.data, self.path)
        return block

    def finish(self, status: str, error: str | None = None) -> dict | None:
        """The last write; None (nothing written) when no level finished and the run did not complete."""
        if self.data is None and status != "complete":
            return None
        return self.write(status, error)


def engine_manifest(block: dict, workload: Workload, plan: run.Plan, draft_lengths) -> dict:
    """A manifest for a results.json that holds an engine run only (no in-process prompts). Model sizes
    are unknown to specdec in engine mode: 0 means "not measured here"; dtype/device say "engine"."""
    model = {"spec": block["model"], "local_path": None, "sha256": None, "parameters": 0, "dtype": "engine",
             "device": block["engine"], "num_layers": 0, "hidden_size": 0, "vocab_size": 0}
    return {
        "run_id": R.new_run_id(), "created": R.now_iso(), "finished": None, "status": block["status"],
        "settings": {"workload": workload.path or workload.name, "workload_sha256": workload.sha256,
                     "methods": ["draft"], "draft_lengths": list(draft_lengths) or [1],
                     "max_new_tokens": plan.max_new_tokens, "max_prompts": len(workload.prompts),
                     "temperature": plan.temperature, "top_p": 1.0, "top_k": 0, "seed": plan.seed,
                     "dtype": "engine", "device": block["engine"]},
        "versions": {"specdec": specdec.__version__, "torch": _version("torch"),
                     "transformers": _version("transformers"), "python": sys.version.split()[0]},
        # Local mode measured this machine; in URL mode the hardware is the user's servers', unknown here.
        "hardware": _this_machine() if block["mode"] == "local" else
        {"cpu": "remote engine", "cores": 0, "gpu": None, "memory_gb": 0.0},
        "models": {"target": model, "draft": None},
    }


def _this_machine() -> dict:
    from specdec.measure.runner import machine_facts
    return machine_facts()


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"
