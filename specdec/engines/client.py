"""One streamed request to an OpenAI-compatible server, timed the way `vllm bench serve` times it.

Per request: TTFT (send → first content chunk), ITL (mean gap per token after the first: (E2E − TTFT) /
(tokens − 1), so a chunk carrying several tokens — SD engines stream accepted runs — counts each token),
E2E (send → end of stream) and output tokens (the server's usage.completion_tokens; chunk count when
it gives none). All times are time.perf_counter seconds.

Every failure is an EngineError (a SpecdecError: one line) and produces no Measurement: unreachable
endpoint, HTTP error, a different model answering, silence past the read timeout, a request past its
total bound, or a stream that ends without its final chunk. Refusals before any byte arrived
(connection refused, 502/503 while a server loads) are retried a bounded number of times.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from specdec import config
from specdec.errors import SpecdecError


class EngineError(SpecdecError):
    """An engine that is unreachable, errors, lies or stalls; the message is one line."""


class _Retryable(EngineError):
    """Refused before any byte of an answer: safe to send again."""


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server. url: scheme://host:port[/prefix] without /v1; api: 'chat' or 'completions'."""

    url: str
    model: str
    api: str = "chat"
    extra_body: dict = field(default_factory=dict)  # engine-specific request fields (ignore_eos, min_tokens, …)
    connect_timeout_s: float = config.ENGINE_CONNECT_TIMEOUT_S
    read_timeout_s: float = config.ENGINE_READ_TIMEOUT_S
    request_timeout_s: float = config.ENGINE_REQUEST_TIMEOUT_S


@dataclass(frozen=True)
class Measurement:
    """One finished request. Seconds; ttft_s from send to first content, e2e_s from send to the end."""

    prompt_id: str
    category: str
    start_s: float  # perf_counter at send, for the level's wall clock
    ttft_s: float
    e2e_s: float
    output_tokens: int
    chunks: int
    text: str
    finish_reason: str | None
    engine_fields: dict  # what the engine adds per response: llama.cpp timings.draft_n…, SGLang meta_info…

    @property
    def itl_s(self) -> float:
        """Mean inter-token latency after the first token (TPOT); NaN with one token."""
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1) if self.output_tokens > 1 else float("nan")


def get_json(url: str, path: str, timeout_s: float = config.ENGINE_CONNECT_TIMEOUT_S) -> dict:
    """GET url+path → parsed JSON, or EngineError."""
    status, body = _get(url, path, timeout_s)
    if status != 200:
        raise EngineError(f"{url}{path}: HTTP {status} {_snippet(body)}")
    try:
        return json.loads(body)
    except ValueError:
        raise EngineError(f"{url}{path}: answered with something that is not JSON ({_snippet(body)})") from None


def get_text(url: str, path: str, timeout_s: float = config.ENGINE_CONNECT_TIMEOUT_S) -> tuple[int, str]:
    """GET url+path → (status, body text); EngineError only when unreachable."""
    status, body = _get(url, path, timeout_s)
    return status, body.decode("utf-8", "replace")


def served_models(url: str) -> list[str]:
    """The ids /v1/models lists."""
    data = get_json(url, "/v1/models")
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise EngineError(f"{url}/v1/models: no 'data' list in the answer — not an OpenAI-compatible server?")
    return [str(m.get("id")) for m in items if isinstance(m, dict) and m.get("id") is not None]


def request_body(endpoint: Endpoint, messages: list[dict], max_tokens: int, sampling: dict) -> dict:
    """The JSON body: chat messages, or their contents joined as a raw prompt for /v1/completions."""
    body = {"model": endpoint.model, "max_tokens": max_tokens, "stream": True,
            "stream_options": {"include_usage": True}, **sampling, **endpoint.extra_body}
    if endpoint.api == "chat":
        body["messages"] = messages
    else:
        body["prompt"] = "\n\n".join(m["content"] for m in messages)
    return body


def stream(endpoint: Endpoint, body: dict, prompt_id: str = "", category: str = "") -> Measurement:
    """Send one streaming request, retrying refusals; the Measurement or an EngineError."""
    delay = config.ENGINE_RETRY_BACKOFF_S
    for attempt in range(config.ENGINE_RETRIES + 1):
        try:
            return _stream_once(endpoint, body, prompt_id, category)
        except _Retryable as exc:
            if attempt == config.ENGINE_RETRIES:
                raise EngineError(f"{exc} (after {attempt + 1} tries)") from None
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def _stream_once(endpoint: Endpoint, body: dict, prompt_id: str, category: str) -> Measurement:
    path = "/v1/chat/completions" if endpoint.api == "chat" else "/v1/completions"
    where = f"{endpoint.url}{path}"
    conn = _connection(endpoint.url, endpoint.connect_timeout_s)
    payload = json.dumps(body).encode()
    start = time.perf_counter()
    try:
        try:
            conn.request("POST", _prefix(endpoint.url) + path, body=payload,
                         headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
            conn.sock.settimeout(endpoint.read_timeout_s)
            resp = conn.getresponse()
        except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected) as exc:
            raise _Retryable(f"{where}: {_reason(exc)}") from None
        except (TimeoutError, socket.timeout):
            raise EngineError(f"{where}: no answer within {endpoint.read_timeout_s:g} s") from None
        except OSError as exc:
            raise EngineError(f"{where}: unreachable ({_reason(exc)})") from None
        if resp.status != 200:
            text = _snippet(resp.read(2000))
            if resp.status in (502, 503):
                raise _Retryable(f"{where}: HTTP {resp.status} {text}")
            raise EngineError(f"{where}: HTTP {resp.status} {text}")
        return _read_events(resp, endpoint, where, start, prompt_id, category)
    finally:
        conn.close()


def _read_events(resp, endpoint: Endpoint, where: str, start: float, prompt_id: str, category: str) -> Measurement:
    """Parse the SSE stream into a Measurement (see the module docstring for the rules)."""
    ttft = None
    parts: list[str] = []
    chunks, usage_tokens, finish, done = 0, None, None, False
    fields: dict = {}
    deadline = start + endpoint.request_timeout_s
    try:
        for raw in resp:
            if time.perf_counter() > deadline:
                raise EngineError(f"{where}: request still streaming after {endpoint.request_timeout_s:g} s")
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                done = True
                break
            try:
                event = json.loads(data)
            except ValueError:
                raise EngineError(f"{where}: a stream event is not JSON ({_snippet(data)})") from None
            if not isinstance(event, dict):
                raise EngineError(f"{where}: a stream event is not a JSON object ({_snippet(data)})")
            if "error" in event:
                raise EngineError(f"{where}: error in the stream: {_snippet(json.dumps(event['error']).encode())}")
            model = event.get("model")
            if model and model != endpoint.model:
                raise EngineError(f"{where}: answered as model {model!r}, not {endpoint.model!r}")
            usage = event.get("usage")
            if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
                usage_tokens = usage["completion_tokens"]
            for key in ("timings", "meta_info"):  # llama.cpp / SGLang per-response extras
                if isinstance(event.get(key), dict):
                    fields.update(event[key])
            for choice in event.get("choices") or ():
                piece = _piece(choice, endpoint.api)
                if piece:
                    if ttft is None:
                        ttft = time.perf_counter() - start
                    parts.append(piece)
                    chunks += 1
                finish = choice.get("finish_reason") or finish
                if isinstance(choice.get("meta_info"), dict):
                    fields.update(choice["meta_info"])
    except (TimeoutError, socket.timeout):
        raise EngineError(f"{where}: stream silent for {endpoint.read_timeout_s:g} s after {chunks} chunks") from None
    except (http.client.IncompleteRead, ConnectionError, OSError) as exc:
        raise EngineError(f"{where}: stream cut after {chunks} chunks ({_reason(exc)})") from None
    e2e = time.perf_counter() - start
    if not done and finish is None:
        raise EngineError(f"{where}: stream cut after {chunks} chunks (no finish_reason and no [DONE])")
    if ttft is None:
        raise EngineError(f"{where}: the stream ended without any generated text")
    return Measurement(prompt_id=prompt_id, category=category, start_s=start, ttft_s=ttft, e2e_s=e2e,
                       output_tokens=usage_tokens if usage_tokens is not None else chunks, chunks=chunks,
                       text="".join(parts), finish_reason=finish, engine_fields=_plain(fields))


def _piece(choice: dict, api: str) -> str:
    if api == "chat":
        delta = choice.get("delta") or {}
        return (delta.get("content") or "") if isinstance(delta, dict) else ""
    return choice.get("text") or ""


def _plain(fields: dict) -> dict:
    """Numbers only (draft_n, draft_n_accepted, spec_verify_ct, …): small and safe to store."""
    return {k: v for k, v in fields.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _get(url: str, path: str, timeout_s: float) -> tuple[int, bytes]:
    conn = _connection(url, timeout_s)
    try:
        conn.request("GET", _prefix(url) + path)
        resp = conn.getresponse()
        return resp.status, resp.read(4_000_000)
    except (TimeoutError, socket.timeout):
        raise EngineError(f"{url}{path}: no answer within {timeout_s:g} s") from None
    except OSError as exc:
        raise EngineError(f"{url}{path}: unreachable ({_reason(exc)})") from None
    except http.client.HTTPException as exc:
        raise EngineError(f"{url}{path}: not an HTTP answer ({type(exc).__name__})") from None
    finally:
        conn.close()


def _connection(url: str, timeout_s: float) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EngineError(f"{url}: not an http(s) URL (expected e.g. http://127.0.0.1:8000)")
    try:
        port = parts.port
    except ValueError:
        raise EngineError(f"{url}: bad port") from None
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return kind(parts.hostname, port, timeout=timeout_s)


def _prefix(url: str) -> str:
    return urlsplit(url).path.rstrip("/")


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _snippet(body: bytes, n: int = 160) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    text = " ".join(text.split())
    return "".join(c if c.isprintable() else "?" for c in (text[:n] + "…" if len(text) > n else text))
