"""results.json, the shared contract between bench, store, analysis and report, written as code.

`validate` checks a results dict against the schema in the project notes and names the JSON path
of the first problem (`prompts[3].runs[1].rounds[0].accepted: expected int, got str`); `load`
reads a file with one-line errors; `dump_atomic` writes one so a crash never leaves half a file.

Layout (units in names; a round is one target verify pass, Leviathan et al. 2023 Alg. 1):

    {"schema_version": 2,          (1 still loads: 2 only adds the optional "engine" block of engine-run)
     "manifest": {run_id, created, finished, status, settings, versions, hardware, models},
     "prompts": [{id, category, prompt, prompt_tokens, baseline: GEN,
                  runs: [GEN + {method, draft_length (γ),
                                rounds: [{drafted, accepted, draft_tokens, beta, draft_s, verify_s}]}]}]}
    GEN = {tokens, text, new_tokens, prefill_s, decode_s}

Unknown extra fields are allowed and kept as they are, but must be plain JSON (finite numbers,
bounded strings) so every valid dict can be written back out. `models.draft` may be null: a run
with prompt lookup alone loads no draft model. A run's `method` is a key of specdec.methods
('draft', 'draft:<name>', 'prompt-lookup', 'layer-skip:L8', 'medusa'); what each drafter costs is in
the optional `models.drafters[key]` (specdec.methods.drafter_info).
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from specdec import config, methods
from specdec.errors import SpecdecError

SCHEMA_VERSION = config.RESULTS_SCHEMA_VERSION
_INT_MAX = 2**63 - 1  # SQLite's INTEGER range; larger ints cannot be stored as numbers
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]*\Z")  # safe in file names, URLs and shells
_MAX_EXTRA_DEPTH = 32


# ---- checkers: each is check(value, path) and raises SpecdecError("path: problem") ----

def _fail(path: str, problem: str):
    raise SpecdecError(f"{path or 'results'}: {problem}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(value) -> str:
    return "null" if value is None else type(value).__name__


def _expect(value, path: str, kinds: tuple, name: str):
    # bool is an int subclass in Python but never a count or a token id here.
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        _fail(path, f"expected {name}, got {_type_name(value)}")


def integer(lo: int = 0, hi: int = _INT_MAX):
    def check(value, path):
        _expect(value, path, (int,), "int")
        if not lo <= value <= hi:
            _fail(path, f"{value} is out of range [{lo}, {hi}]")
    return check


def number(lo: float = 0.0, hi: float = math.inf):
    """A float field; an int is accepted too (JSON writes 0.0 as 0 in some tools)."""
    def check(value, path):
        _expect(value, path, (int, float), "float")
        if isinstance(value, float) and not math.isfinite(value):
            _fail(path, f"expected a finite number, got {value}")
        if not lo <= value <= hi:
            _fail(path, f"{value} is out of range [{lo}, {hi}]")
    return check


def string(max_chars: int = config.MAX_FIELD_CHARS, choices: tuple | None = None,
           pattern: re.Pattern | None = None, iso_date: bool = False, nonempty: bool = False):
    def check(value, path):
        _expect(value, path, (str,), "str")
        if len(value) > max_chars:
            _fail(path, f"string too long ({len(value)} chars > {max_chars})")
        _unicode(value, path)
        if nonempty and not value:
            _fail(path, "empty string")
        if choices is not None and value not in choices:
            _fail(path, f"expected one of {', '.join(choices)}, got {value[:40]!r}")
        if pattern is not None and not pattern.match(value):
            _fail(path, f"{value[:40]!r} is not a valid id (letters, digits and ._:+- only)")
        if iso_date:
            try:
                datetime.fromisoformat(value)
            except ValueError:
                _fail(path, f"expected an ISO-8601 date, got {value[:40]!r}")
    return check


def method_key(value, path):
    """A method key of specdec.methods: 'draft', 'draft:<name>', 'prompt-lookup', 'layer-skip:L8', 'medusa'."""
    string(200)(value, path)
    try:
        methods.parse(value)
    except SpecdecError as e:
        _fail(path, str(e))


def nullable(inner):
    def check(value, path):
        if value is not None:
            inner(value, path)
    return check


def list_of(item, max_items: int | None = None):
    def check(value, path):
        _expect(value, path, (list,), "list")
        if max_items is not None and len(value) > max_items:
            _fail(path, f"too many items ({len(value)} > {max_items})")
        for i, v in enumerate(value):
            item(v, f"{path}[{i}]")
    return check


def record(fields: dict, then=None):
    """A JSON object with these required fields; unknown fields pass if they are plain JSON."""
    def check(value, path):
        _expect(value, path, (dict,), "dict")
        for key, field_check in fields.items():
            if key not in value:
                _fail(_join(path, key), "missing")
            field_check(value[key], _join(path, key))
        for key, v in value.items():
            if key not in fields:
                _plain_json(v, _join(path, key) if isinstance(key, str) else path, 0)
        if then is not None:
            then(value, path)
    return check


def _unicode(text: str, path: str):
    """JSON's \\ud800 escapes decode to lone surrogates, which no UTF-8 file or SQLite text can hold."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            _fail(path, f"invalid Unicode (lone surrogate at char {exc.start})")


def _plain_json(value, path: str, depth: int):
    """Extra fields: only what json.dumps writes back unchanged, bounded in size and depth."""
    if depth > _MAX_EXTRA_DEPTH:
        _fail(path, f"nested deeper than {_MAX_EXTRA_DEPTH} levels")
    if value is None or isinstance(value, (bool, str, int, float)):
        if isinstance(value, str) and len(value) > config.MAX_TEXT_CHARS:
            _fail(path, f"string too long ({len(value)} chars > {config.MAX_TEXT_CHARS})")
        if isinstance(value, str):
            _unicode(value, path)
        if isinstance(value, float) and not math.isfinite(value):
            _fail(path, f"expected a finite number, got {value}")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _INT_MAX:
            _fail(path, "integer out of 64-bit range")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _plain_json(v, f"{path}[{i}]", depth + 1)
    elif isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                _fail(path, f"object keys must be strings, got {_type_name(k)}")
            _unicode(k, path)
            _plain_json(v, _join(path, k), depth + 1)
    else:
        _fail(path, f"expected a JSON value, got {_type_name(value)}")


# ---- cross-field rules the types alone cannot say ----

def _round_rules(r: dict, path: str):
    if r["accepted"] > r["drafted"]:
        _fail(f"{path}.accepted", f"{r['accepted']} > drafted {r['drafted']}")
    if len(r["draft_tokens"]) > r["drafted"]:
        _fail(f"{path}.draft_tokens", f"has {len(r['draft_tokens'])} tokens, drafted is {r['drafted']}")
    if r["beta"] is not None and len(r["beta"]) != len(r["draft_tokens"]):
        _fail(f"{path}.beta", f"has {len(r['beta'])} values, drafted is {r['drafted']}"
              if len(r["draft_tokens"]) == r["drafted"] else
              f"has {len(r['beta'])} values for {len(r['draft_tokens'])} draft tokens")


def _gen_rules(g: dict, path: str):
    if g["new_tokens"] != len(g["tokens"]):
        _fail(f"{path}.new_tokens", f"{g['new_tokens']} but tokens has {len(g['tokens'])}")


def _run_rules(g: dict, path: str):
    _gen_rules(g, path)
    traced = g.get("traced", False)
    if not isinstance(traced, bool):
        _fail(f"{path}.traced", f"expected true or false, got {_type_name(traced)}")
    for i, r in enumerate(g["rounds"]):
        if r["drafted"] > g["draft_length"]:
            _fail(f"{path}.rounds[{i}].drafted", f"{r['drafted']} > draft_length {g['draft_length']}")
        # A traced run (specdec.traces) knows the drafts the target tested: the accepted run and the first
        # rejection; a real run records every drafted token.
        want = min(r["accepted"] + 1, r["drafted"]) if traced else r["drafted"]
        if len(r["draft_tokens"]) != want:
            _fail(f"{path}.rounds[{i}].draft_tokens", f"has {len(r['draft_tokens'])} tokens, expected {want}"
                  + (" (a traced run keeps the tested ones)" if traced else f" (drafted is {r['drafted']})"))


def _unique_prompt_ids(prompts: list, path: str):
    seen = set()
    for i, p in enumerate(prompts):
        if p["id"] in seen:
            _fail(f"{path}[{i}].id", f"duplicate prompt id {p['id'][:40]!r}")
        seen.add(p["id"])


# ---- the schema ----

def _results_rules(r: dict, path: str):
    _unique_prompt_ids(r["prompts"], _join(path, "prompts"))
    if "engine" in r:  # optional (schema_version 2): an engine-run's measurements, see _ENGINE below
        _ENGINE(r["engine"], _join(path, "engine"))

_COUNT = integer()
_SECONDS = number()
_TOKENS = list_of(integer())
_ID = string(config.MAX_ID_CHARS, nonempty=True)
# Bounds shared with the loader and the run configuration (config.py): a results file cannot ask the
# analysis for more than a run could have produced (γ = 10**9 once allocated 7 GiB in the projection).
_GAMMA = integer(lo=1, hi=config.MAX_RESULTS_DRAFT_LENGTH)
_NEW_TOKENS = integer(hi=config.MAX_NEW_TOKENS)
_GEN_TOKENS = list_of(integer(), max_items=config.MAX_NEW_TOKENS)
_DRAFT_COUNT = integer(hi=config.MAX_RESULTS_DRAFT_LENGTH)
_CATEGORY = string(config.MAX_ID_CHARS)
_PROMPT_TEXT = string(config.MAX_PROMPT_CHARS)

_MODEL = record({
    "spec": string(), "local_path": nullable(string()), "sha256": nullable(string()),
    "parameters": _COUNT, "dtype": string(), "device": string(),
    "num_layers": _COUNT, "hidden_size": _COUNT, "vocab_size": _COUNT,
})

def _flag(value, path):
    _expect(value, path, (bool,), "bool")


# Optional manifest["machine"] (specdec/measure/machine.py): how busy the machine was while this run timed.
_MACHINE = record({
    "cores": _COUNT,
    "other_cpu": record({"mean": nullable(number()), "p90": nullable(number()), "max": nullable(number()),
                         "samples": _COUNT}),
    "reference_s": list_of(number()),
    "drift": nullable(number()), "busy": _flag, "drifted": _flag,
})

_MANIFEST = record({
    "run_id": string(config.MAX_ID_CHARS, pattern=_RUN_ID),
    "created": string(iso_date=True),
    "finished": nullable(string(iso_date=True)),
    "status": string(choices=config.RUN_STATUSES),
    "settings": record({
        "workload": string(), "workload_sha256": string(),
        "methods": list_of(method_key),
        "draft_lengths": list_of(_GAMMA, max_items=config.MAX_RESULTS_DRAFT_LENGTH),
        "max_new_tokens": integer(lo=1, hi=config.MAX_NEW_TOKENS), "max_prompts": nullable(integer(lo=1)),
        "temperature": number(), "top_p": number(hi=1.0), "top_k": _COUNT,
        "seed": integer(lo=-_INT_MAX), "dtype": string(choices=("bfloat16", "float32", "engine")),
        "device": string(),
    }),
    "versions": record({k: string() for k in ("specdec", "torch", "transformers", "python")}),
    "hardware": record({"cpu": string(), "cores": _COUNT, "gpu": nullable(string()), "memory_gb": number()}),
    "models": record({"target": _MODEL, "draft": nullable(_MODEL)}),
}, then=lambda m, path: _MACHINE(m["machine"], _join(path, "machine")) if "machine" in m else None)

_GEN_FIELDS = {
    "tokens": _GEN_TOKENS, "text": string(config.MAX_TEXT_CHARS),
    "new_tokens": _NEW_TOKENS, "prefill_s": _SECONDS, "decode_s": _SECONDS,
}

_ROUND = record({
    "drafted": _DRAFT_COUNT, "accepted": _DRAFT_COUNT,
    "draft_tokens": list_of(integer(), max_items=config.MAX_RESULTS_DRAFT_LENGTH),
    # A probability per drafted token; the slack absorbs float32 rounding of sums like Σ min(p, q).
    "beta": nullable(list_of(number(hi=1.0 + 1e-5))),  # null for prompt lookup
    "draft_s": _SECONDS, "verify_s": _SECONDS,
}, then=_round_rules)

_RUN = record({
    **_GEN_FIELDS, "method": method_key, "draft_length": _GAMMA,
    "rounds": list_of(_ROUND, max_items=config.MAX_NEW_TOKENS),
}, then=_run_rules)

_PROMPT = record({
    "id": _ID, "category": _CATEGORY, "prompt": _PROMPT_TEXT,
    "prompt_tokens": integer(hi=config.MAX_PROMPT_TOKENS), "baseline": record(_GEN_FIELDS, then=_gen_rules), "runs": list_of(_RUN),
})

_RESULTS = record({
    "schema_version": integer(lo=1, hi=SCHEMA_VERSION),  # version 1 (no engine block) still loads
    "manifest": _MANIFEST,
    "prompts": list_of(_PROMPT),
}, then=lambda r, path: _results_rules(r, path))


# The engine block (schema_version 2, written by `engine-run`; layout in specdec/engines/run.py). Scripts read
# `engine.levels`: one plain row per (γ, concurrency) with alpha, tau, per_position and the SD/baseline ratio.
_OPT_NUM = nullable(number())
_CI_CELL = record({"estimate": _OPT_NUM, "lo": _OPT_NUM, "hi": _OPT_NUM})
_DIST = record({"p50": _OPT_NUM, "p90": _OPT_NUM, "p99": _OPT_NUM, "mean": _OPT_NUM})
_ACCEPTANCE = record({"alpha": nullable(number(hi=1.0)), "tau": nullable(number(lo=1.0)),
                      "per_position": list_of(number(hi=1.0), max_items=config.MAX_DRAFT_LENGTH * 4)})
_REQUEST = record({"id": _ID, "ttft_s": _SECONDS, "itl_s": nullable(_SECONDS), "e2e_s": _SECONDS,
                   "output_tokens": _COUNT, "text": string(config.MAX_TEXT_CHARS)})
_LEVEL = record({
    "concurrency": integer(lo=1), "request_rate": _OPT_NUM, "duration_s": _SECONDS, "requests": _COUNT,
    "output_tokens": _COUNT, "output_tokens_per_s": number(), "requests_per_s": number(),
    "ttft_s": _DIST, "itl_s": _DIST, "e2e_s": _DIST, "acceptance": nullable(_ACCEPTANCE),
    "per_request": list_of(_REQUEST),
})
_SIDE = record({"label": string(config.MAX_ID_CHARS), "url": string(), "draft_length": nullable(integer(lo=1)),
                "launch": nullable(list_of(string(), max_items=200)), "levels": list_of(_LEVEL, max_items=100)})
_LEVEL_ROW = record({"concurrency": integer(lo=1), "draft_length": nullable(integer(lo=1)),
                     "alpha": nullable(number(hi=1.0)), "tau": nullable(number(lo=1.0)),
                     "per_position": list_of(number(hi=1.0)), "ratio": _CI_CELL, "itl_ratio": _CI_CELL})
_ENGINE = record({
    "engine": string(), "version": nullable(string()), "mode": string(choices=("local", "urls")),
    "model": string(), "settings": record({"max_new_tokens": integer(lo=1), "concurrency": list_of(integer(lo=1))}),
    "sides": list_of(_SIDE, max_items=64), "levels": list_of(_LEVEL_ROW), "decision": record({"headline": string()}),
})


def validate(results: dict, known: dict | None = None) -> dict:
    """Check a whole results dict; return it unchanged, or raise SpecdecError naming the first bad path,
    e.g. `prompts[3].runs[1].rounds[0].accepted: expected int, got str`.

    known: for a file written record by record, {id(entry): entry} of the prompt entries already checked
    (and not changed in place since); they are skipped, the others checked and added. Without it every save of
    an n-prompt run re-checks all n (a 50-prompt traced run: ≈ 0.2 s a save, 52 saves). The schema version,
    the manifest and the ids' uniqueness are always checked; load() always checks everything."""
    if known is None:
        _RESULTS(results, "")
        return results
    prompts = results.get("prompts") if isinstance(results, dict) else None
    _RESULTS({**results, "prompts": []} if isinstance(prompts, list) else results, "")
    for i, p in enumerate(prompts):
        if known.get(id(p)) is not p:
            _PROMPT(p, f"prompts[{i}]")
            known[id(p)] = p
    _unique_prompt_ids(prompts, "prompts")
    return results


def validate_manifest(manifest: dict, path: str = "manifest") -> dict:
    _MANIFEST(manifest, path)
    return manifest


def check_prompt_input(prompt_id: str, category: str, text: str) -> None:
    """The fields of a prompt a run will store, checked before it is measured (the loader and the
    runner call this): raises SpecdecError naming the first that results.json could not hold."""
    _ID(prompt_id, "id")
    _CATEGORY(category, "category")
    _PROMPT_TEXT(text, "prompt")


def validate_prompt(prompt: dict, path: str = "prompt") -> dict:
    """One entry of results["prompts"]: what bench produces per finished prompt."""
    _PROMPT(prompt, path)
    return prompt


# ---- files ----

def load(path: str | Path) -> dict:
    """Read and validate a results.json; every failure is one line that names the file."""
    path = Path(path)
    try:
        if path.is_dir():
            raise SpecdecError(f"{path} is a directory, not a results.json")
        size = path.stat().st_size
        if size > config.MAX_RESULTS_BYTES:
            raise SpecdecError(f"{path} is too large for a results file ({size / 2**20:.0f} MB > "
                               f"{config.MAX_RESULTS_BYTES / 2**20:.0f} MB)")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecdecError(f"results file not found: {path}") from None
    except PermissionError:
        raise SpecdecError(f"cannot read {path}: permission denied") from None
    except OSError as exc:
        raise SpecdecError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecdecError(f"{path} is not UTF-8 text (bad byte at offset {exc.start})") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise SpecdecError(f"{path} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:  # NaN/Infinity, 4300+ digit ints, absurd nesting
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0]
        raise SpecdecError(f"{path} is not usable JSON: {reason}") from None
    if not isinstance(data, dict) or not {"schema_version", "manifest", "prompts"} <= data.keys():
        raise SpecdecError(f"{path} is not a specdec results file "
                           "(expected an object with schema_version, manifest and prompts)")
    version = data["schema_version"]
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise SpecdecError(f"{path} was written by a newer specdec (schema_version {version}; "
                           f"this version reads {SCHEMA_VERSION})")
    try:
        return validate(data)
    except SpecdecError as exc:
        raise SpecdecError(f"{path}: {exc}") from None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a valid number in a results file")


def dump_atomic(results: dict, path: str | Path, known: dict | None = None) -> None:
    """Validate (known: as validate's), then write `path` so readers see the old file or the new one, never
    half of one: write a temporary file beside it, fsync, os.replace, fsync the directory."""
    validate(results, known)
    path = Path(path)
    text = json.dumps(results, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            # mkstemp's 0600 is kept: a results file holds the user's prompts and the model's outputs, so
            # only its owner reads it until they choose to share it (chmod).
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except OSError as exc:
        raise SpecdecError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); not possible or needed on Windows."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---- small helpers others share ----

def new_run_id() -> str:
    """Sortable by time and unique across machines: `20250101-120000-1a2b3c`."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def method_counts(results: dict) -> list[dict]:
    """Per (method, γ): how many prompts, rounds, drafted and accepted tokens and new tokens.
    Counts only; rates and speedups belong to analysis."""
    table: dict[tuple, dict] = {}
    for p in results["prompts"]:
        for g in p["runs"]:
            row = table.setdefault((g["method"], g["draft_length"]), {
                "method": g["method"], "draft_length": g["draft_length"],
                "prompts": 0, "rounds": 0, "drafted": 0, "accepted": 0, "new_tokens": 0})
            row["prompts"] += 1
            row["rounds"] += len(g["rounds"])
            row["drafted"] += sum(r["drafted"] for r in g["rounds"])
            row["accepted"] += sum(r["accepted"] for r in g["rounds"])
            row["new_tokens"] += g["new_tokens"]
    return [table[k] for k in sorted(table)]
