"""An engine run as the app (and the CLI's checks) ask for it: the fields checked into an EngineRequest, the run
measured by engines/bench.py into a folder of its own, and the result put into the run store.

URLs from the browser. The app is local-only by default (specdec/localonly.py), but an engine URL may name any
host: the servers a user measures (a vLLM fleet, a GPU box) are rarely this machine, and `engine-run` on the
command line reaches them already. What the app does with a URL is bounded: it sends OpenAI-compatible GET
/v1/models, /metrics, /version and POST completion requests, parses JSON and Prometheus text, and stores the
numbers and the generated text — nothing received is ever run, and no model code is loaded. Refused in one
line: schemes other than http/https, URLs carrying a user name or password (they would be stored with the run
and shown on every page), queries and fragments. Whoever opens the app to the network
(`--server.address 0.0.0.0`, README "Serving beyond this machine") lets its visitors make the server send such
requests too, as they can already start runs and downloads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from specdec import config
from specdec.errors import SpecdecError
from specdec.measure.workloads import Workload

LOCAL, URLS = "local", "urls"
ENGINE_RUNS_DIRNAME = "engine-runs"  # beside the run store: one folder per app engine run (results.json, logs)


@dataclass(frozen=True)
class EngineRequest:
    """What to measure. mode LOCAL: llama-server started here on the bundled pair, once plain and once per γ;
    mode URLS: the user's two servers (baseline_url without SD, spec_url with it)."""

    mode: str = LOCAL
    draft_lengths: tuple[int, ...] = config.ENGINE_DRAFT_LENGTHS
    concurrency: tuple[int, ...] = config.ENGINE_CONCURRENCY
    max_new_tokens: int = config.DEFAULT_MAX_NEW_TOKENS
    baseline_url: str | None = None
    spec_url: str | None = None
    metrics_url: str | None = None
    model: str | None = None
    api: str = "chat"

    @property
    def label(self) -> str:
        where = ("llama.cpp here (bundled pair), γ " + ",".join(map(str, self.draft_lengths)) if self.mode == LOCAL
                 else f"{self.baseline_url} vs {self.spec_url}")
        return f"engine run: {where}, concurrency {','.join(map(str, self.concurrency))}"

    @property
    def levels(self) -> int:
        """Load levels in the whole run: every concurrency on every server."""
        servers = 1 + len(self.draft_lengths) if self.mode == LOCAL else 2
        return servers * len(self.concurrency)


def parse_ints(text: str, what: str) -> tuple[int, ...]:
    """'1, 2,4' → (1, 2, 4), sorted, without repeats; a one-line error otherwise."""
    try:
        values = {int(x) for x in str(text).replace(" ", "").split(",") if x}
    except ValueError:
        raise SpecdecError(f"{what}: {str(text)[:60]!r} is not a list of whole numbers like 1,2,4") from None
    if not values:
        raise SpecdecError(f"{what}: give at least one number, e.g. 1,2,4")
    return tuple(sorted(values))


def check_levels(concurrency, max_new_tokens: int, draft_lengths=None) -> None:
    """The rules on load levels, output length and γ, for the CLI and the app alike. draft_lengths is given
    for the local llama-server only, whose slots (one per concurrent request, each with its own KV cache)
    are capped at LLAMA_SERVER_MAX_SLOTS."""
    top = config.MAX_ENGINE_CONCURRENCY if draft_lengths is None else config.LLAMA_SERVER_MAX_SLOTS
    if not concurrency or min(concurrency) < 1 or max(concurrency) > top:
        raise SpecdecError(f"concurrency levels must be whole numbers from 1 to {top}"
                           + (" on the local llama-server" if draft_lengths is not None else "") + ", e.g. 1,2,4")
    if not 1 <= max_new_tokens <= config.MAX_NEW_TOKENS:
        raise SpecdecError(f"max new tokens must be from 1 to {config.MAX_NEW_TOKENS}")
    if draft_lengths is not None and (not draft_lengths or not 1 <= min(draft_lengths) <= max(draft_lengths)
                                      <= config.MAX_DRAFT_LENGTH):
        raise SpecdecError(f"draft lengths must be whole numbers from 1 to {config.MAX_DRAFT_LENGTH}, e.g. 2,4")


def check_url(url: str | None, what: str, required: bool = True) -> str | None:
    """A server's base URL as the client uses it (no trailing '/' or '/v1'); None when empty and optional.
    One-line errors for what the module docstring refuses."""
    url = (url or "").strip()
    if not url:
        if required:
            raise SpecdecError(f"{what}: enter the server's URL, e.g. http://127.0.0.1:8000")
        return None
    if len(url) > config.MAX_FIELD_CHARS or not url.isprintable():
        raise SpecdecError(f"{what}: not a URL (too long, or control characters)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SpecdecError(f"{what}: {url[:80]!r} is not an http(s) URL (e.g. http://127.0.0.1:8000)")
    if parts.username is not None or parts.password is not None:
        raise SpecdecError(f"{what}: leave the user name and password out of the URL (it would be stored with "
                           f"the run)")
    if parts.query or parts.fragment:
        raise SpecdecError(f"{what}: the base URL takes no ?query or #fragment")
    try:
        parts.port
    except ValueError:
        raise SpecdecError(f"{what}: {url[:80]!r} has a bad port") from None
    path = parts.path.rstrip("/")
    path = path[:-3] if path.endswith("/v1") else path  # a pasted OpenAI base URL: the client adds /v1 itself
    return f"{parts.scheme}://{parts.netloc}{path}"


def from_form(mode: str, *, draft_lengths: str = "", concurrency: str = "", max_new_tokens: int = 0,
              baseline_url: str = "", spec_url: str = "", metrics_url: str = "", model: str = "") -> EngineRequest:
    """The Run page's fields → a checked EngineRequest (or the first problem, in one line)."""
    levels = parse_ints(concurrency, "concurrency levels")
    if mode == LOCAL:
        gammas = parse_ints(draft_lengths, "draft lengths γ")
        check_levels(levels, int(max_new_tokens), gammas)
        return EngineRequest(LOCAL, gammas, levels, int(max_new_tokens))
    if mode != URLS:
        raise SpecdecError(f"unknown engine mode {mode!r}")
    check_levels(levels, int(max_new_tokens))
    base = check_url(baseline_url, "baseline URL")
    spec = check_url(spec_url, "speculative URL")
    if base == spec:
        raise SpecdecError("the baseline and speculative URLs are the same server: the baseline must run without SD")
    name = (model or "").strip() or None
    if name is not None and (len(name) > config.MAX_ID_CHARS or not name.isprintable()):
        raise SpecdecError("model name: too long or not printable")
    return EngineRequest(URLS, (), levels, int(max_new_tokens), base, spec,
                         check_url(metrics_url, "metrics URL", required=False), name)


@dataclass(frozen=True)
class EngineProgress:
    """Where an engine run is: server label, concurrency, level k of n, requests done of total in this level,
    and the level's live output tokens/s (tokens finished so far over its elapsed time)."""

    side: str
    concurrency: int
    level: int
    levels: int
    done: int
    total: int
    tokens_per_s: float


def new_out_dir(root: Path) -> Path:
    """root/<timestamp>[-k]: a fresh folder per engine run."""
    base = Path(root) / time.strftime("%Y%m%d-%H%M%S")
    out, k = base, 1
    while out.exists():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def execute(req: EngineRequest, workload: Workload, out_dir: Path, store,
            on_progress: Callable[[EngineProgress], None] | None = None,
            on_stored: Callable[[str], None] | None = None, should_stop=lambda: False) -> dict | None:
    """Measure (engines/bench.execute, results.json after every level) and store the run — also when it is
    interrupted or fails after a level finished, so the finished levels are in the run history. Returns the
    engine block; KeyboardInterrupt and SpecdecError propagate after storing."""
    from specdec.engines import bench, run

    plan = run.Plan(concurrency=req.concurrency, max_new_tokens=req.max_new_tokens, api=req.api)
    seen: list[tuple] = []

    def progress(p: dict) -> None:
        key = (p["side"], p["concurrency"])
        if key not in seen:
            seen.append(key)
        if on_progress:
            on_progress(EngineProgress(p["side"], p["concurrency"], len(seen), req.levels, p["done"], p["total"],
                                       p.get("level_tokens_per_s", p["tokens_per_s"])))

    path = Path(out_dir) / "results.json"
    try:
        return bench.execute(workload, plan, Path(out_dir), engine="llama.cpp" if req.mode == LOCAL else None,
                             draft_lengths=req.draft_lengths, baseline_url=req.baseline_url, spec_url=req.spec_url,
                             model=req.model, metrics_url=req.metrics_url, on_progress=progress,
                             should_stop=should_stop)
    finally:
        if path.exists():
            run_id = store.import_json(path)
            if on_stored:
                on_stored(run_id)
