"""`engine-run` from settings to results.json: get the servers, measure each side, compare, write.

Local mode (engine="llama.cpp"): one llama-server per side, started and stopped here — plain first,
then one per γ — with -np ≥ the highest concurrency so every level's requests run in parallel slots.
URL mode: the two endpoints the user started. Either way the `engine` block (specdec/engines/run.py,
plus `levels` and `decision` from specdec/analysis/engine.py) goes into <out>/results.json: merged
into an in-process run already there (so one brief shows both verdicts), else a file of its own.
Nothing is written until every side and level finished: a failed request never becomes a measurement.
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
            on_progress: run.Progress | None = None, on_note=None) -> dict:
    """Measure, analyse and write <out_dir>/results.json; returns the engine block."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sides = []
    if engine == "llama.cpp":
        slots = max(plan.concurrency)
        configs = [("baseline", None, None)] + [(f"spec-g{g}", draft, g) for g in draft_lengths]
        for label, d, g in configs:
            if on_note:
                on_note(f"starting llama-server ({label})")
            with run.local_server(target, d, g, slots, out_dir, label) as side:
                sides.append((side, run.measure_side(side, workload, plan, on_progress)))
        mode = "local"
    elif baseline_url and spec_url:
        for side in run.url_sides(baseline_url, spec_url, model, metrics_url):
            if on_note:
                on_note(f"{side.label}: {side.info.engine} {side.info.version or ''} at {side.url} "
                        f"({side.info.evidence}), model {side.info.model}")
            sides.append((side, run.measure_side(side, workload, plan, on_progress)))
        mode = "urls"
    else:
        raise SpecdecError("engine-run needs --engine llama.cpp, or both --baseline-url and --spec-url")
    first = sides[-1][0].info
    block = {
        "engine": first.engine, "version": first.version, "mode": mode, "model": first.model,
        "evidence": first.evidence,
        "settings": {"workload": workload.path or workload.name, "workload_sha256": workload.sha256,
                     "prompts": len(workload.prompts), "max_new_tokens": plan.max_new_tokens,
                     "concurrency": list(plan.concurrency), "request_rate": plan.request_rate,
                     "temperature": plan.temperature, "seed": plan.seed, "api": plan.api,
                     "target": target if mode == "local" else first.model,
                     "draft": draft if mode == "local" else None},
        "sides": [record for _, record in sides],
    }
    block["levels"] = engine_analysis.levels_table(block)
    block["decision"] = engine_analysis.decide(block["levels"])
    write(out_dir / "results.json", block, workload, plan, draft_lengths if mode == "local" else ())
    return block


def write(path: Path, block: dict, workload: Workload, plan: run.Plan, draft_lengths) -> None:
    """Merge the engine block into an existing results.json (kept otherwise unchanged), or start one."""
    if path.exists():
        data = R.load(path)
        data["schema_version"] = R.SCHEMA_VERSION
        data["engine"] = block
    else:
        data = {"schema_version": R.SCHEMA_VERSION, "manifest": engine_manifest(block, workload, plan, draft_lengths),
                "prompts": [], "engine": block}
    R.dump_atomic(data, path)


def engine_manifest(block: dict, workload: Workload, plan: run.Plan, draft_lengths) -> dict:
    """A manifest for a results.json that holds an engine run only (no in-process prompts). Model sizes
    are unknown to specdec in engine mode: 0 means "not measured here"; dtype/device say "engine"."""
    model = {"spec": block["model"], "local_path": None, "sha256": None, "parameters": 0, "dtype": "engine",
             "device": block["engine"], "num_layers": 0, "hidden_size": 0, "vocab_size": 0}
    return {
        "run_id": R.new_run_id(), "created": R.now_iso(), "finished": R.now_iso(), "status": "complete",
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
