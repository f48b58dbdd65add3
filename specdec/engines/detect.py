"""Which engine answers at a URL, its version, the model it serves and what request fields it honours.

Evidence, strongest first: /metrics name prefixes (vllm:, llamacpp:, sglang:), /v1/models `owned_by`
(vLLM "vllm", llama.cpp "llamacpp", SGLang "sglang"), then version endpoints (vLLM /version,
llama.cpp /props build_info, SGLang /get_server_info, TGI /info).
"""

from __future__ import annotations

from dataclasses import dataclass

from specdec.engines import client, metrics
from specdec.engines.client import EngineError

_OWNED_BY = {"vllm": "vllm", "llamacpp": "llama.cpp", "sglang": "sglang", "tgi": "tgi"}


@dataclass(frozen=True)
class EngineInfo:
    engine: str  # vllm | llama.cpp | sglang | tgi | tensorrt-llm | unknown
    version: str | None
    model: str
    metrics_url: str | None  # where /metrics answered, None when nowhere
    evidence: str  # how we know, for the user: "/metrics names (vllm:)"


def extra_body(engine: str, max_tokens: int) -> dict:
    """Request fields that fix the output length, for the engines known to accept them: ignore_eos
    (vLLM, SGLang, llama.cpp, TGI via vLLM-compatible API), min_tokens (vLLM, SGLang); llama.cpp also
    gets cache_prompt=false so a repeated prompt is prefilled again at every level, as the first time."""
    if engine in ("vllm", "sglang"):
        return {"ignore_eos": True, "min_tokens": max_tokens}
    if engine == "llama.cpp":
        return {"ignore_eos": True, "cache_prompt": False}
    return {}


def detect(url: str, model: str | None = None, metrics_url: str | None = None) -> EngineInfo:
    """Identify the server at `url`; model None → the single model /v1/models lists. Raises EngineError
    when unreachable, when it lists no model, or when `model` is not among those it serves."""
    served = client.served_models(url)
    if model is None:
        if not served:
            raise EngineError(f"{url}/v1/models lists no model")
        model = served[0]
    elif served and model not in served:
        raise EngineError(f"{url} serves {', '.join(served[:3])}, not {model!r} (pass --model to choose)")
    engine, evidence = None, ""
    metrics_at = None
    for candidate in (metrics_url, url):
        if candidate is None:
            continue
        try:
            status, text = client.get_text(candidate, "/metrics")
        except EngineError:
            continue
        if status == 200:
            metrics_at = candidate
            engine = metrics.detect_engine(metrics.parse_prometheus(text))
            if engine:
                evidence = "/metrics names"
            break
    if engine is None:
        owner = _owned_by(url, model)
        engine = _OWNED_BY.get(owner or "")
        evidence = f"/v1/models owned_by={owner!r}" if engine else "nothing identifying"
    return EngineInfo(engine=engine or "unknown", version=_version(url, engine), model=model,
                      metrics_url=metrics_at, evidence=evidence)


def _owned_by(url: str, model: str) -> str | None:
    try:
        data = client.get_json(url, "/v1/models")
    except EngineError:
        return None
    for m in data.get("data") or ():
        if isinstance(m, dict) and m.get("id") == model:
            return str(m.get("owned_by") or "") or None
    return None


def _version(url: str, engine: str | None) -> str | None:
    probes = {"vllm": [("/version", "version")], "llama.cpp": [("/props", "build_info")],
              "sglang": [("/get_server_info", "version")], "tgi": [("/info", "version")]}
    for path, key in probes.get(engine or "", [("/version", "version")]):
        try:
            value = client.get_json(url, path).get(key)
        except (EngineError, AttributeError):
            continue
        if value:
            return str(value)[:200]
    return None
