"""Acceptance from the engine's own /metrics: Prometheus text → spec-decode counters → α, τ, per position.

Counters per engine (one adapter each; names verified against their sources, see design.md "Engines"):
  vLLM       vllm:spec_decode_num_drafts, …_num_draft_tokens, …_num_accepted_tokens,
             …_num_accepted_tokens_per_pos{position="i"}; `_total` in Prometheus text, not in
             LLM.get_metrics(); one series per engine label (data-parallel ranks) — summed.
  llama.cpp  llamacpp:spec_decode_num_drafts_total, …_num_draft_tokens_total, …_num_accepted_tokens_total,
             …_num_accepted_tokens_per_pos_total{position}; updated when a generation ends.
  SGLang     only gauges of the last batch (sglang:spec_accept_length); its acceptance comes per request
             from meta_info.spec_verify_ct (τ = completion_tokens / spec_verify_ct) — see per_request_tau.

Over a window (after − before): α = accepted / draft_tokens; τ = 1 + accepted / drafts; per_position[i] =
per_pos[i] / drafts, the *unconditional* rate of accepting the first i+1 drafted tokens (conditional:
per_pos[i] / per_pos[i−1]); Σ per_position + 1 = τ. (The engines call accepted/draft_tokens the
"acceptance rate", which is ρ in our notation; under fixed γ and no early stop it is also α's estimate.)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from specdec.engines.client import EngineError

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')

# counter field → metric name stem (a `_total` suffix is accepted on every one)
ADAPTERS = {
    "vllm": {"drafts": "vllm:spec_decode_num_drafts", "draft_tokens": "vllm:spec_decode_num_draft_tokens",
             "accepted": "vllm:spec_decode_num_accepted_tokens",
             "per_pos": "vllm:spec_decode_num_accepted_tokens_per_pos"},
    "llama.cpp": {"drafts": "llamacpp:spec_decode_num_drafts", "draft_tokens": "llamacpp:spec_decode_num_draft_tokens",
                  "accepted": "llamacpp:spec_decode_num_accepted_tokens",
                  "per_pos": "llamacpp:spec_decode_num_accepted_tokens_per_pos"},
}
NAME_PREFIXES = {"vllm:": "vllm", "llamacpp:": "llama.cpp", "sglang:": "sglang", "tgi_": "tgi",
                 "nv_trt_llm_": "tensorrt-llm", "trtllm_": "tensorrt-llm"}


def parse_prometheus(text: str) -> list[tuple[str, dict, float]]:
    """Prometheus text exposition → [(name, labels, value)]; comments and malformed lines are skipped."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(4))
        except ValueError:
            continue
        labels = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _LABEL.findall(m.group(3) or "")}
        out.append((m.group(1), labels, value))
    return out


def detect_engine(samples: list[tuple[str, dict, float]]) -> str | None:
    """The engine whose metric-name prefix appears most, or None."""
    counts: dict[str, int] = {}
    for name, _, _ in samples:
        for prefix, engine in NAME_PREFIXES.items():
            if name.startswith(prefix):
                counts[engine] = counts.get(engine, 0) + 1
    return max(counts, key=counts.get) if counts else None


@dataclass(frozen=True)
class SpecCounters:
    """Cumulative spec-decode counters at one scrape, summed over every series but `position`."""

    drafts: float
    draft_tokens: float
    accepted: float
    per_pos: tuple[float, ...]  # accepted tokens at draft position 0, 1, …

    def minus(self, before: "SpecCounters") -> "SpecCounters":
        n = max(len(self.per_pos), len(before.per_pos))
        pad = lambda xs: tuple(xs) + (0.0,) * (n - len(xs))  # noqa: E731
        diff = SpecCounters(self.drafts - before.drafts, self.draft_tokens - before.draft_tokens,
                            self.accepted - before.accepted,
                            tuple(a - b for a, b in zip(pad(self.per_pos), pad(before.per_pos))))
        if min(diff.drafts, diff.draft_tokens, diff.accepted, *diff.per_pos, 0.0) < 0:
            raise EngineError("the engine's spec-decode counters went down between two scrapes "
                              "(the server restarted mid-level?)")
        return diff


def spec_counters(samples: list[tuple[str, dict, float]], engine: str) -> SpecCounters | None:
    """The engine's counters from one scrape; None when it exposes none (no SD configured, or gauges only)."""
    names = ADAPTERS.get(engine)
    if names is None:
        return None
    totals = {field: 0.0 for field in ("drafts", "draft_tokens", "accepted")}
    per_pos: dict[int, float] = {}
    seen = False
    for name, labels, value in samples:
        stem = name[:-6] if name.endswith("_total") else name
        if stem == names["per_pos"]:
            try:
                i = int(labels.get("position", ""))
            except ValueError:
                continue
            per_pos[i] = per_pos.get(i, 0.0) + value
            seen = True
            continue
        for field in totals:
            if stem == names[field]:
                totals[field] += value
                seen = True
    if not seen:
        return None
    n = max(per_pos) + 1 if per_pos else 0
    return SpecCounters(totals["drafts"], totals["draft_tokens"], totals["accepted"],
                        tuple(per_pos.get(i, 0.0) for i in range(n)))


def acceptance(window: SpecCounters) -> dict:
    """α, τ and unconditional per-position rates over a counter window (module docstring); NaN-free:
    keys are None when the window saw no drafts."""
    if window.drafts <= 0 or window.draft_tokens <= 0:
        return {"drafts": int(window.drafts), "draft_tokens": int(window.draft_tokens),
                "accepted": int(window.accepted), "alpha": None, "tau": None, "per_position": []}
    return {"drafts": int(window.drafts), "draft_tokens": int(window.draft_tokens), "accepted": int(window.accepted),
            "alpha": window.accepted / window.draft_tokens, "tau": 1.0 + window.accepted / window.drafts,
            "per_position": [p / window.drafts for p in window.per_pos]}


# Per-response acceptance fields kept with each request (per-category acceptance: analysis/engine.py).
PER_REQUEST_FIELDS = ("draft_n", "draft_n_accepted", "spec_verify_ct")


def per_request_tau(measurements) -> float | None:
    """SGLang: τ = Σ completion_tokens / Σ meta_info.spec_verify_ct over the requests that report it."""
    tokens = verify = 0
    for m in measurements:
        ct = m.engine_fields.get("spec_verify_ct")
        if isinstance(ct, (int, float)) and ct > 0:
            tokens += m.output_tokens
            verify += ct
    return tokens / verify if verify else None


def per_response_counts(measurements) -> dict | None:
    """llama.cpp: Σ timings.draft_n and Σ timings.draft_n_accepted over the responses (α only: no draft count)."""
    drafted = sum(m.engine_fields.get("draft_n", 0) for m in measurements)
    accepted = sum(m.engine_fields.get("draft_n_accepted", 0) for m in measurements)
    if not drafted:
        return None
    return {"draft_tokens": int(drafted), "accepted": int(accepted), "alpha": accepted / drafted}


def finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None
