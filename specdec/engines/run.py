"""An engine run: the workload replayed against a plain and a speculative server at every load level.

Per side and level: scrape /metrics, send every prompt once (closed loop at `concurrency`, or Poisson
at `request_rate`), scrape again; the counter difference is the engine's acceptance over exactly that
level. A warm-up request goes first on each server (first-request costs: thread pools, KV allocation).
A side is measured completely before the next starts, so a local llama-server runs alone on the machine.

Returned data (the results.json `engine` block; analysis.engine turns it into ratios and a decision):

    {"engine", "version", "mode": "local"|"urls", "model", "evidence",
     "status": "running"|"complete"|"interrupted"|"failed", "error" (bench.py: written after every level),
     "settings": {workload, workload_sha256, prompts, max_new_tokens, concurrency, request_rate,
                  temperature, api},
     "sides": [{"label", "url", "draft_length" (null for the baseline), "launch" (argv or null),
                "levels": [LEVEL]}]}
    LEVEL = {concurrency, request_rate, duration_s, requests, output_tokens, output_tokens_per_s,
             requests_per_s, ttft_s / itl_s / e2e_s: {p50, p90, p99, mean},
             acceptance: {drafts, draft_tokens, accepted, alpha, tau, per_position, source} | null,
             per_request: [{id, category, start_s, ttft_s, itl_s, e2e_s, output_tokens, text, finish_reason,
                            draft_n, draft_n_accepted (llama.cpp) / spec_verify_ct (SGLang) where the engine gives them}]}
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specdec.engines import client, detect, llamacpp, metrics
from specdec.engines.client import Endpoint, EngineError, Measurement
from specdec.engines.load import Job, run_level
from specdec.measure.workloads import Workload, chat_messages

Progress = Callable[[dict], None]


@dataclass(frozen=True)
class Plan:
    """What to measure. concurrency: closed-loop levels (with request_rate set: the in-flight cap)."""

    concurrency: tuple[int, ...]
    max_new_tokens: int
    request_rate: float | None = None
    temperature: float = 0.0
    seed: int = 0
    api: str = "chat"


@dataclass(frozen=True)
class Side:
    """One server to measure: a label, its endpoint info, γ (None = baseline) and how it was launched."""

    label: str
    info: detect.EngineInfo
    url: str
    draft_length: int | None
    launch: list[str] | None


def sampling(plan: Plan) -> dict:
    """Greedy unless told otherwise; a seed so sampled runs repeat."""
    return {"temperature": plan.temperature, "seed": plan.seed}


def jobs(workload: Workload, endpoint: Endpoint, plan: Plan) -> list[Job]:
    return [Job(p.id, p.category, client.request_body(endpoint, chat_messages(p), plan.max_new_tokens,
                                                      sampling(plan)))
            for p in workload.prompts]


def measure_side(side: Side, workload: Workload, plan: Plan, on_progress: Progress | None = None,
                 on_level: Callable[[dict], None] | None = None) -> dict:
    """Every level on one server → the side's record (module docstring). on_level(record so far) is called
    after each finished level, so a caller can write it before the next starts; a level that fails or is
    interrupted raises out of run_level and never enters the record."""
    endpoint = Endpoint(url=side.url, model=side.info.model, api=plan.api,
                        extra_body=detect.extra_body(side.info.engine, plan.max_new_tokens))
    work = jobs(workload, endpoint, plan)
    client.stream(endpoint, {**work[0].body, "max_tokens": min(8, plan.max_new_tokens)}, "warm-up")
    levels = []
    for c in plan.concurrency:
        before = _scrape(side.info)
        done = [0, 0, time.perf_counter()]  # requests, output tokens, level start

        def tick(m: Measurement, c=c) -> None:
            done[0] += 1
            done[1] += m.output_tokens
            if on_progress:
                elapsed = time.perf_counter() - done[2]
                on_progress({"side": side.label, "concurrency": c, "done": done[0], "total": len(work),
                             "tokens_per_s": m.output_tokens / m.e2e_s if m.e2e_s > 0 else 0.0,
                             "level_tokens_per_s": done[1] / elapsed if elapsed > 0 else 0.0})

        level = run_level(endpoint, work, c, plan.request_rate, plan.seed, on_done=tick)
        after = _scrape(side.info)
        levels.append(level_record(level, _window(side.info, before, after), side.info.engine))
        if on_level:
            on_level(side_record(side, levels))
    return side_record(side, levels)


def side_record(side: Side, levels: list[dict]) -> dict:
    return {"label": side.label, "url": side.url, "draft_length": side.draft_length, "launch": side.launch,
            "levels": list(levels)}


def level_record(level, window: dict | None, engine: str) -> dict:
    """One level's distributions (p50/p90/p99 over requests) and the engine's acceptance over it."""
    ms = sorted(level.measurements, key=lambda m: m.start_s)
    t0 = min((m.start_s for m in ms), default=0.0)
    tokens = sum(m.output_tokens for m in ms)
    acceptance = window
    if acceptance is None and engine == "sglang":
        tau = metrics.per_request_tau(ms)
        acceptance = None if tau is None else {"tau": tau, "alpha": None, "per_position": [],
                                               "source": "meta_info.spec_verify_ct"}
    if acceptance is not None and engine == "llama.cpp":
        acceptance["per_response"] = metrics.per_response_counts(ms)
    return {
        "concurrency": level.concurrency, "request_rate": level.request_rate,
        "duration_s": level.duration_s, "requests": len(ms), "output_tokens": tokens,
        "output_tokens_per_s": tokens / level.duration_s if level.duration_s > 0 else 0.0,
        "requests_per_s": len(ms) / level.duration_s if level.duration_s > 0 else 0.0,
        "ttft_s": _dist([m.ttft_s for m in ms]), "itl_s": _dist([m.itl_s for m in ms]),
        "e2e_s": _dist([m.e2e_s for m in ms]),
        "acceptance": acceptance,
        "per_request": [{"id": m.prompt_id, "category": m.category, "start_s": m.start_s - t0, "ttft_s": m.ttft_s,
                         "itl_s": m.itl_s if m.output_tokens > 1 else None, "e2e_s": m.e2e_s,
                         "output_tokens": m.output_tokens, "text": m.text, "finish_reason": m.finish_reason,
                         **{k: m.engine_fields[k] for k in metrics.PER_REQUEST_FIELDS if k in m.engine_fields}}
                        for m in ms],
    }


def _dist(values: list[float]) -> dict:
    v = np.array([x for x in values if x == x], dtype=float)  # drop NaN (one-token answers have no ITL)
    if not len(v):
        return {"p50": None, "p90": None, "p99": None, "mean": None}
    p50, p90, p99 = np.percentile(v, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(v.mean())}


def _scrape(info: detect.EngineInfo) -> metrics.SpecCounters | None:
    if info.metrics_url is None:
        return None
    status, text = client.get_text(info.metrics_url, "/metrics")
    if status != 200:
        raise EngineError(f"{info.metrics_url}/metrics: HTTP {status} mid-run")
    return metrics.spec_counters(metrics.parse_prometheus(text), info.engine)


def _window(info: detect.EngineInfo, before, after) -> dict | None:
    if before is None or after is None:
        return None
    return {**metrics.acceptance(after.minus(before)), "source": f"{info.metrics_url}/metrics"}


# ---- the two ways of getting servers --------------------------------------------------------------

def url_sides(baseline_url: str, spec_url: str, model: str | None, metrics_url: str | None) -> list[Side]:
    """Two servers the user started; same model on both (checked)."""
    base = detect.detect(baseline_url, model)
    spec = detect.detect(spec_url, model or base.model, metrics_url)
    return [Side("baseline", base, baseline_url, None, None), Side("speculative", spec, spec_url, None, None)]


@contextmanager
def local_server(target: str, draft: str | None, gamma: int | None, slots: int, log_dir: Path,
                 label: str) -> Iterator[Side]:
    """Start llama-server (plain when draft is None), yield its Side, always stop it; the log stays in log_dir."""
    binary = llamacpp.find_binary()
    target_gguf = llamacpp.model_gguf(target)
    draft_gguf = llamacpp.model_gguf(draft) if draft else None
    port = llamacpp.free_port()
    args = llamacpp.server_args(target_gguf, draft_gguf, gamma, slots=slots, port=port, alias=Path(target).name)
    server = llamacpp.LlamaServer(binary, args, log_dir / f"llama-server-{label}.log", port)
    with server:
        info = detect.detect(server.url, None)
        info = detect.EngineInfo("llama.cpp", llamacpp.version(binary), info.model, server.url,
                                 f"started by specdec ({info.evidence})")
        yield Side(label, info, server.url, gamma, [binary.name, *_portable(args, port)])


def _portable(args: list[str], port: int) -> list[str]:
    """The launch flags as a user would paste them: model files by name, the port as chosen."""
    return [Path(a).name if a.endswith(".gguf") else a for a in args]
