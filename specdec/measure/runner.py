"""A whole run: workload + model pair → results.json and the run store, prompt by prompt.

Shared by `python -m specdec run` and the app's background worker. Every finished prompt is
written at once (results.json atomically, the store in its own transaction), so Ctrl-C, a crash or
a closed browser tab loses at most the prompt in flight, and `resume` continues from there.
Long work reports through `on_progress(Progress)` and stops when `should_stop()` turns true.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import transformers

import specdec
from specdec import config, methods, results as R
from specdec.measure import bench, machine
from specdec.config import RunConfig
from specdec.errors import SpecdecError
from specdec.methods.family import SourceContext
from specdec.measure.workloads import Prompt, Workload, encode_prompt


@dataclass(frozen=True)
class Progress:
    """What a progress bar shows. tokens_per_s: baseline decode speed so far; acceptance: accepted /
    drafted over draft-model rounds so far (None before any); eta_s: None until one prompt is done."""

    done: int
    total: int
    prompt_id: str
    elapsed_s: float
    eta_s: float | None
    tokens_per_s: float | None
    acceptance: float | None
    stage: str = "measuring"


def format_progress(p: Progress, width: int = 24) -> str:
    filled = int(width * p.done / max(p.total, 1))
    parts = [f"[{'#' * filled}{'.' * (width - filled)}] {p.done}/{p.total} prompts"]
    if p.tokens_per_s:
        parts.append(f"{p.tokens_per_s:.1f} tok/s")
    if p.acceptance is not None:
        parts.append(f"accept {p.acceptance:.0%}")
    parts.append(f"ETA {_duration(p.eta_s)}" if p.eta_s is not None else "ETA …")
    return "  ".join(parts)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def machine_facts() -> dict:
    """CPU model and cores, GPU name, memory: where these timings belong."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory_gb = 0.0
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    if gpu is None and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        gpu = "Apple MPS"
    return {"cpu": cpu, "cores": os.cpu_count() or 1, "torch_threads": torch.get_num_threads(),
            "gpu": gpu, "memory_gb": round(memory_gb, 1), "platform": platform.platform()}


def build_manifest(cfg: RunConfig, workload: Workload, target_info: dict, draft_info: dict | None,
                   drafters: dict | None = None) -> dict:
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()
                if k not in ("sampling", "target", "drafts")}
    settings.update(asdict(cfg.sampling), workload=workload.path or workload.name,
                    workload_sha256=workload.sha256,
                    methods=list(drafters) if drafters is not None else list(cfg.methods),
                    draft_lengths=list(cfg.draft_lengths), dtype=target_info["dtype"], device=target_info["device"])
    return {
        "run_id": R.new_run_id(), "created": R.now_iso(), "finished": None, "status": "running",
        "settings": settings,
        "versions": {"specdec": specdec.__version__, "torch": torch.__version__,
                     "transformers": transformers.__version__, "python": sys.version.split()[0]},
        "hardware": machine_facts(),
        "models": {"target": target_info, "draft": draft_info, **({"drafters": drafters} if drafters else {})},
        "workload": {"name": workload.name, "prompts": len(workload.prompts), "format": workload.format,
                     "warnings": len(workload.warnings), "skipped": len(workload.skipped)},
    }


def check_resumable(previous: dict, manifest: dict) -> None:
    """A resumed run must measure the same thing: same settings and the same model weights."""
    old, new = previous["manifest"], manifest
    for key in ("mode", "methods", "draft_lengths", "max_new_tokens", "temperature", "top_p", "top_k", "seed", "dtype",
                "workload_sha256"):
        if old["settings"].get(key) != new["settings"].get(key):
            raise SpecdecError(f"cannot resume: {key} was {old['settings'].get(key)!r}, now "
                               f"{new['settings'].get(key)!r} (use a new --out directory)")
    for role in ("target", "draft"):
        a, b = old["models"].get(role) or {}, new["models"].get(role) or {}
        if a.get("sha256") != b.get("sha256") or a.get("parameters") != b.get("parameters"):
            raise SpecdecError(f"cannot resume: the {role} model differs from the one the run started with")
    old_d, new_d = old["models"].get("drafters") or {}, new["models"].get("drafters") or {}
    for key in set(old_d) | set(new_d):
        a, b = old_d.get(key) or {}, new_d.get(key) or {}
        if (a.get("spec"), a.get("parameters"), a.get("sha256")) != (b.get("spec"), b.get("parameters"), b.get("sha256")):
            raise SpecdecError(f"cannot resume: the drafter {key} differs from the one the run started with")


def draft_sources(cfg: RunConfig, target, drafts: list, workload_sha256: str | None = None
                  ) -> tuple[list[bench.DraftSource], dict]:
    """One DraftSource per method key the run measures, and the manifest's `models.drafters`: each family's
    registry entry builds its own (methods.<family>.sources), in the order the user listed the families.

    target: LoadedModel; drafts: LoadedModels for cfg.drafts (empty when no draft model is measured).
    """
    tcfg = target.model.config.get_text_config()
    kv = {"hidden_size": tcfg.hidden_size, "num_key_value_heads": getattr(tcfg, "num_key_value_heads", None),
          "head_dim": getattr(tcfg, "head_dim", None) or tcfg.hidden_size // tcfg.num_attention_heads}
    lm_params = sum(p.numel() for p in target.model.get_output_embeddings().parameters())
    ctx = SourceContext(cfg, target, drafts, kv, lm_params, workload_sha256)
    sources, infos = [], {}
    for name in methods.check_families(cfg.methods):
        s, i = methods.spec(name).sources(ctx)
        sources += s
        infos.update(i)
    return sources, infos


def execute(cfg: RunConfig, workload: Workload, target, draft, *, out_dir: str | Path | None = None,
            store=None, resume: bool = False, on_progress=None, should_stop=None) -> dict:
    """Measure every prompt of the workload; returns the results dict (status complete/interrupted).
    Any exception ends the run as "failed" with manifest.error saying why, and reaches the caller as a
    one-line SpecdecError; a prompt results.json cannot hold is skipped with a note, never measured.

    target: specdec.models.LoadedModel; draft: one LoadedModel, a list of them (several draft models,
    in cfg.drafts order), or None when no method needs one.
    out_dir: where results.json goes (None: store only). store: a specdec.store.Store or None.
    """
    drafts = [d for d in (draft if isinstance(draft, (list, tuple)) else [draft]) if d is not None]
    sources, drafter_infos = draft_sources(cfg, target, drafts, workload.sha256)
    manifest = build_manifest(cfg, workload, target.info(), drafts[0].info() if drafts else None, drafter_infos)
    path = Path(out_dir) / "results.json" if out_dir else None
    checked: dict = {}  # prompt entries validated by an earlier save of this run
    results = {"schema_version": R.SCHEMA_VERSION, "manifest": manifest, "prompts": []}
    if resume and path and path.exists():
        previous = R.load(path)
        check_resumable(previous, manifest)
        manifest.update(run_id=previous["manifest"]["run_id"], created=previous["manifest"]["created"])
        results["prompts"] = previous["prompts"]
        for p in results["prompts"]:  # drafters that learn from earlier responses continue where the run was
            bench.learn(sources, p["baseline"]["tokens"])
    # results.json before the store: a kill in between leaves a file that --resume continues from.
    _save(results, path, checked)
    notes = []
    if store is not None:
        if store.has_run(manifest["run_id"]):
            store.update_manifest(manifest["run_id"], manifest)
        else:
            store.create_run(manifest)
        repaired = reconcile(store, manifest["run_id"], results["prompts"])
        notes += repaired
        store.claim_run(manifest["run_id"])
        if repaired:
            _save(results, path, checked)
    done = {p["id"] for p in results["prompts"]}
    todo = [p for p in workload.prompts if p.id not in done]

    eos = set(_eos_ids(target))
    max_prompt = min(_context_length(target.model) - cfg.max_new_tokens - max(cfg.draft_lengths) - 1,
                     config.MAX_PROMPT_TOKENS)  # longer prompts keep their tail (encode_prompt says so)
    decode_text = lambda ids: target.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
    watch = machine.Watch(target.model)  # other processes' CPU and a re-timed reference step: was it quiet?
    meter = _Meter(len(workload.prompts), len(done), on_progress, between=watch.check)
    status, error = "complete", None
    try:
        if todo:
            meter.stage("warming up", todo[0].id)
            ids, _ = encode_prompt(todo[0], target.tokenizer, max_prompt)
            bench.warm_up(target.model, sources, ids[-256:], cfg, eos)
            watch.start()
        if cfg.mode == "traced":
            status = _traced(cfg, workload, results, target, sources, eos, max_prompt, decode_text, notes, store,
                             path, meter, should_stop, on_real_done=watch.stop, checked=checked)
            todo = []
        for prompt in todo:
            if should_stop and should_stop():
                status = "interrupted"
                break
            try:  # what the store could not hold is skipped before it is measured, not measured and lost
                R.check_prompt_input(prompt.id, prompt.category, prompt.text)
            except SpecdecError as exc:
                notes.append(f"prompt {prompt.id[:40]!r} skipped: {exc}")
                continue
            meter.stage("measuring", prompt.id)
            record = _measure(prompt, target, sources, cfg, eos, max_prompt, decode_text, notes, should_stop)
            if record is None:
                status = "interrupted"
                break
            try:
                R.validate_prompt(record)
            except SpecdecError as exc:
                notes.append(f"prompt {prompt.id[:40]!r} skipped: its result cannot be stored ({exc})")
                continue
            # The store first: its commit is the durable record (synchronous=FULL) and it validates the
            # prompt. A kill before the commit loses only this prompt, from both; a kill after it leaves the
            # prompt in the store alone, and resume's reconcile() copies it back instead of measuring it again.
            if store is not None:
                store.add_prompt(manifest["run_id"], record)
            _fault_point("prompt-stored")
            results["prompts"].append(record)
            _save(results, path, checked)
            _fault_point("prompt-saved")
            meter.advance(record)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except BaseException as exc:  # noqa: BLE001 — whatever it was, the run is not complete
        status, error = "failed", failure_reason(exc)
        if isinstance(exc, SpecdecError):
            raise
        raise SpecdecError(f"run {manifest['run_id']} failed: {error}") from exc
    finally:
        if watch.started:
            manifest["machine"] = watch.summary()
        manifest.update(status=status, finished=R.now_iso(), notes=notes, **({"error": error} if error else {}))
        try:
            _save(results, path, checked)
            if store is not None:
                store.update_manifest(manifest["run_id"], manifest)
                store.finish_run(manifest["run_id"], status)
        except SpecdecError:
            if status != "failed":  # else the first failure is the one to report
                raise
    return results


def failure_reason(exc: BaseException) -> str:
    """One line (≤ 300 characters) saying why a run failed, for the manifest, the CLI and the app."""
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return "out of memory: the models or this prompt do not fit; try smaller models, bfloat16 or shorter prompts"
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return first if isinstance(exc, SpecdecError) else f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def reconcile(store, run_id: str, prompts: list[dict]) -> list[str]:
    """Make results.json's prompts and the stored run's agree after a crash between the two writes: a
    prompt only in `prompts` is added to the store (add_prompt replaces by id, so this is idempotent), one
    only in the store is appended to `prompts` (in place, in stored order). Returns notes, one line each:
    what was repaired, and the ids whose data differ in the two (reported, left as they are)."""
    stored = store.load_run(run_id)["prompts"]
    in_file = {p["id"]: p for p in prompts}
    in_store = {p["id"] for p in stored}
    to_store = [p for p in prompts if p["id"] not in in_store]
    for p in to_store:
        store.add_prompt(run_id, p)
    to_file = [p for p in stored if p["id"] not in in_file]
    prompts.extend(to_file)
    differ = [p["id"] for p in stored if p["id"] in in_file and p != in_file[p["id"]]]
    notes = []
    if to_store:
        notes.append(f"resume: added {len(to_store)} prompt(s) results.json had and the run store lacked "
                     f"({_ids(to_store)})")
    if to_file:
        notes.append(f"resume: took {len(to_file)} prompt(s) from the run store that results.json lacked "
                     f"({_ids(to_file)})")
    if differ:
        notes.append(f"resume: {len(differ)} prompt(s) differ between results.json and the run store "
                     f"({', '.join(differ[:5])}{' …' if len(differ) > 5 else ''}); each copy kept as it was")
    return notes


def _ids(prompts: list[dict], shown: int = 5) -> str:
    ids = [p["id"] for p in prompts]
    return ", ".join(ids[:shown]) + (" …" if len(ids) > shown else "")


def _fault_point(name: str) -> None:
    """Test seam, a no-op: a test's child process replaces it to SIGKILL itself at one exact write
    boundary ("prompt-stored", "prompt-saved"), so a crash between the two writes is tested without a race."""


def _traced(cfg, workload, results, target, sources, eos, max_prompt, decode_text, notes, store, path, meter,
            should_stop, on_real_done=None, checked: dict | None = None) -> str:
    """Traced mode (specdec.traces.run): every prompt without traced runs yet is traced; each record is saved
    as soon as it exists (a real-subset prompt twice: measured, then with its traced runs added).
    on_real_done: called once the real subset is measured (the machine watch ends there)."""
    from specdec.traces.run import execute_traced
    manifest = results["manifest"]
    have = {p["id"]: p for p in results["prompts"]}
    encoded = []
    for prompt in workload.prompts:
        rec = have.get(prompt.id)
        if rec is not None and any(r.get("traced") for r in rec["runs"]):
            continue
        ids, warning = encode_prompt(prompt, target.tokenizer, max_prompt)
        if warning:
            notes.append(warning)
        encoded.append((prompt, ids))

    def on_record(record: dict) -> None:
        if store is not None:  # the store first, as in execute(); resume's reconcile() repairs a kill between
            store.add_prompt(manifest["run_id"], record)
        _fault_point("prompt-stored")
        index = next((i for i, p in enumerate(results["prompts"]) if p["id"] == record["id"]), None)
        if index is None:
            results["prompts"].append(record)
        else:
            results["prompts"][index] = record
        _save(results, path, checked)
        _fault_point("prompt-saved")
        if index is None:
            meter.advance(record)

    status, report = execute_traced(target, sources, encoded, cfg, eos, decode_text, manifest,
                                    previous=list(results["prompts"]), on_record=on_record, should_stop=should_stop,
                                    on_stage=meter.stage, on_real_done=on_real_done)
    manifest["traced"] = report
    return status


def _measure(prompt: Prompt, target, sources, cfg, eos, max_prompt, decode_text, notes, should_stop) -> dict | None:
    ids, warning = encode_prompt(prompt, target.tokenizer, max_prompt)
    if warning:
        notes.append(warning)
    measured = bench.measure_prompt(target.model, sources, ids, prompt.id, cfg, eos, decode_text, should_stop)
    if measured is None:
        return None
    return {"id": prompt.id, "category": prompt.category, "prompt": prompt.text, **measured}


def _save(results: dict, path: Path | None, checked: dict | None = None) -> None:
    """Write results.json. checked: the run's {id(entry): entry} of prompt entries already validated, so a
    save re-checks only what is new (results.validate)."""
    if path is not None:
        R.dump_atomic(results, path, known=checked)


def _eos_ids(loaded) -> list[int]:
    from specdec.measure.models import eos_ids
    return eos_ids(loaded)


def _context_length(model) -> int:
    return int(getattr(model.config, "max_position_embeddings", None) or 4096)


class _Meter:
    """Turns finished prompts into Progress: ETA from the mean seconds per prompt so far."""

    def __init__(self, total: int, already: int, on_progress, between=None):
        self.total, self.done, self.on_progress = total, already, on_progress
        self.between = between  # called after each finished prompt, before its progress is reported
        self.start, self.measured = time.perf_counter(), 0
        self.base_tokens = self.base_s = self.drafted = self.accepted = 0
        self.prompt_id = ""
        self.last_stage = None

    def stage(self, stage: str, prompt_id: str) -> None:
        self.prompt_id = prompt_id
        if stage != self.last_stage:  # advance() has already reported the next "measuring"
            self._emit(stage)

    def advance(self, record: dict) -> None:
        self.done += 1
        self.measured += 1
        base = record["baseline"]
        self.base_tokens += base["new_tokens"]
        self.base_s += base["prefill_s"] + base["decode_s"]
        for run in record["runs"]:
            if methods.uses_model(run["method"]):
                self.drafted += sum(r["drafted"] for r in run["rounds"])
                self.accepted += sum(r["accepted"] for r in run["rounds"])
        if self.between is not None:
            self.between()
        self._emit("measuring")

    def _emit(self, stage: str) -> None:
        self.last_stage = stage
        if self.on_progress is None:
            return
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.measured * (self.total - self.done) if self.measured else None
        self.on_progress(Progress(
            done=self.done, total=self.total, prompt_id=self.prompt_id, elapsed_s=elapsed, eta_s=eta,
            tokens_per_s=self.base_tokens / self.base_s if self.base_s else None,
            acceptance=self.accepted / self.drafted if self.drafted else None, stage=stage))
