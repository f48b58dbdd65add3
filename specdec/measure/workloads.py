"""Parse, validate and sample a user's prompt file into a Workload (a list of Prompt).

Reading bytes and splitting them into records is specdec.measure.fileformats; here records become prompts.
Formats, detected from the content with the file extension as a hint:
  CSV / TSV   a header row with a `prompt` column; optional `category`, `id`, `system`.
  JSON Lines  one object a line: {"prompt": …}, chat {"messages": [{"role", "content"}, …]},
              MT-bench / Spec-Bench {"question_id", "category", "turns": [...]} (first turn = prompt),
              or ShareGPT {"conversations": [{"from", "value"}, …]}.
  JSON        an array of any of those objects (or of strings).
  Text        prompts separated by lines holding only `---`, else one prompt per line. A line
              `# category: NAME` sets the category of the prompts that follow it.

Nothing is dropped silently: every skipped record is in Workload.skipped and every change
(duplicates, sampling, ignored turns, renamed ids…) in Workload.warnings, each with its line.
A file that cannot be used at all raises SpecdecError naming the file, the line and the problem.
`--strict` (strict=True) makes every skip fatal.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from specdec.config import (DEFAULT_CATEGORY, DEFAULT_SEED, MAX_ID_CHARS, MAX_LISTED, MAX_WORKLOAD_BYTES, MAX_WORKLOAD_LINES,
                            MAX_WORKLOAD_RECORDS, MIN_PROMPTS_PER_SEGMENT)
from specdec.errors import SpecdecError
from specdec.results import check_prompt_input
from specdec.measure.fileformats import EXTENSIONS, FORMAT_NAMES, PROMPT_ALIASES, Log, decode, detect, read, records


@dataclass(frozen=True)
class Prompt:
    """One prompt. text = what the user typed (the last user turn); messages = the whole chat when the
    file gave one (system turn included); source_line = 1-based line where the record starts."""

    id: str
    category: str
    text: str
    messages: tuple[dict, ...] | None
    system: str | None
    source_line: int
    response: str | None = None  # a logged answer (a "response" field, or the chat's final assistant turn)

    @property
    def input_text(self) -> str:
        """Everything the model reads apart from the chat template: system + every turn."""
        if self.messages:
            return "\n\n".join(m["content"] for m in self.messages)
        return f"{self.system}\n\n{self.text}" if self.system else self.text


@dataclass
class Workload:
    name: str
    path: str | None
    format: str
    prompts: list[Prompt]
    warnings: list[str]
    skipped: list[str]
    sha256: str
    sample: dict | None = None  # {"from", "kept", "seed", "per_category": {cat: [kept, of]}} when sampled

    def categories(self) -> dict[str, int]:
        """Prompts per category, in the order categories first appear."""
        return dict(Counter(p.category for p in self.prompts))

    def summary(self) -> dict:
        """Counts per category, lengths (characters and whitespace-separated words of input_text), notes."""
        per_cat: dict[str, list[Prompt]] = {}
        for p in self.prompts:
            per_cat.setdefault(p.category, []).append(p)
        return {
            "name": self.name, "path": self.path, "format": self.format, "sha256": self.sha256,
            "prompts": len(self.prompts), "categories": self.categories(),
            "per_category": {c: {"prompts": len(ps), "chars": _stats([len(p.input_text) for p in ps]),
                                 "words": _stats([len(p.input_text.split()) for p in ps])}
                             for c, ps in per_cat.items()},
            "length_chars": _stats([len(p.input_text) for p in self.prompts]),
            "length_words": _stats([len(p.input_text.split()) for p in self.prompts]),
            "chat_prompts": sum(p.messages is not None for p in self.prompts),
            "with_system": sum(p.system is not None for p in self.prompts),
            "sample": self.sample, "warnings": list(self.warnings), "skipped": list(self.skipped),
        }


class _Skip(Exception):
    """A record that cannot become a prompt; the message is the reason."""


def load_workload(source: str | Path | bytes, *, name: str | None = None, max_prompts: int | None = None,
                  seed: int = DEFAULT_SEED, strict: bool = False, category_field: str | None = None,
                  max_bytes: int = MAX_WORKLOAD_BYTES) -> Workload:
    """Read a prompt file (a path, or the bytes of an upload named `name`) into a Workload.

    max_prompts: keep a stratified random sample of this many (by category, random.Random(seed)).
    category_field: the field/column holding the category (default `category`).
    Raises SpecdecError (one line: file, line, problem) when the file cannot be used.
    """
    raw, path, name = read(source, name, max_bytes)
    if max_prompts is not None and max_prompts < 1:
        raise SpecdecError(f"{name}: --max-prompts must be at least 1, got {max_prompts}")
    log = Log(name, strict)
    warnings: list[str] = []
    text = decode(raw, name, warnings)
    fmt, delimiter = detect(text, Path(name).suffix.lower(), name)
    ext_fmt = EXTENSIONS.get(Path(name).suffix.lower())
    if ext_fmt and ext_fmt != fmt and {ext_fmt, fmt} != {"json", "jsonl"}:
        warnings.append(f"the extension says {FORMAT_NAMES[ext_fmt]} but the content is "
                        f"{FORMAT_NAMES[fmt]}; read as {FORMAT_NAMES[fmt]}")
    if category_field and fmt == "text":
        warnings.append("--category-field is ignored for plain text (use '# category: NAME' lines)")
        category_field = None
    lines = text.count("\n") + 1
    if lines > MAX_WORKLOAD_LINES:  # checked before splitting: 50 MB of one-character lines is 25M prompts
        raise SpecdecError(f"{name}: {lines:,} lines; a prompt file may have at most {MAX_WORKLOAD_LINES:,} "
                           "(split it into several files)")
    found = list(itertools.islice(records(text, fmt, delimiter, log), MAX_WORKLOAD_RECORDS + 1))
    if len(found) + len(log.skipped) > MAX_WORKLOAD_RECORDS:
        raise SpecdecError(f"{name}: more than {MAX_WORKLOAD_RECORDS:,} prompts; a prompt file may have at most "
                           f"{MAX_WORKLOAD_RECORDS:,} (split it, or sample it into a smaller file)")
    prompts = _build_prompts(found, log, category_field)
    if not prompts:
        first = f"; first: {log.skipped[0]}" if log.skipped else ""
        raise SpecdecError(f"{name}: no usable prompts ({len(log.skipped)} records skipped{first})")
    warnings += log.grouped() + _duplicates(prompts, found)
    sample = None
    if max_prompts is not None and max_prompts < len(prompts):
        prompts, sample, note = _stratified_sample(prompts, max_prompts, seed)
        warnings.append(note)
    # The decision's own bar: a category below it gets no verdict of its own, so say so before the run.
    few = {c: n for c, n in Counter(p.category for p in prompts).items() if n < MIN_PROMPTS_PER_SEGMENT}
    if few:
        warnings.append(f"{len(few)} categor{'y has' if len(few) == 1 else 'ies have'} fewer than "
                        f"{MIN_PROMPTS_PER_SEGMENT} prompts, so their per-category numbers will be noisy: "
                        + ", ".join(f"{c} ({n})" for c, n in few.items()))
    return Workload(name=name, path=path, format=fmt, prompts=prompts, warnings=warnings,
                    skipped=log.skipped, sha256=hashlib.sha256(raw).hexdigest(), sample=sample)


# ---- records → prompts ----------------------------------------------------------------------

def _build_prompts(records: list, log: Log, category_field: str | None) -> list[Prompt]:
    dicts = [r for _, _, r in records if isinstance(r, dict)]
    keys = list(dict.fromkeys(str(k).strip().lower() for r in dicts for k in r))
    field_name = (category_field or "category").strip().lower()
    if category_field and dicts and field_name not in keys:
        where = "row 1 (header)" if records[0][1].startswith("row") else records[0][1]
        raise SpecdecError(f"{log.name}: {where}: no '{category_field}' field or column for "
                           f"--category-field; found: {', '.join(keys)}")
    text_keys = {"prompt", "messages", "turns", "conversations", *PROMPT_ALIASES}
    if dicts and len(dicts) == len(records) and not text_keys & set(keys):
        raise SpecdecError(f"{log.name}: {records[0][1]}: no prompt field (expected 'prompt', 'messages' or "
                           f"'turns'); fields found: {', '.join(keys)}")
    prompts, seen, next_k, renamed = [], set(), {}, {}
    for line, where, record in records:
        try:
            prompt = _to_prompt(record, line, log, field_name)
        except _Skip as exc:
            log.skip(where, str(exc))
            continue
        if prompt.id in seen:  # ids key results and the run store, so they must be unique
            # Each id remembers its next free suffix: linear in the file, where probing -2, -3, … from the
            # start each time was quadratic (100k copies of one id: ~20 min).
            k = next_k.get(prompt.id, 2)
            while f"{prompt.id}-{k}" in seen:
                k += 1
            next_k[prompt.id] = k + 1
            new_id = f"{prompt.id}-{k}"
            if len(new_id) > MAX_ID_CHARS:
                log.skip(where, f"repeated id '{prompt.id[:40]}' cannot be renamed within {MAX_ID_CHARS} characters")
                continue
            renamed.setdefault(prompt.id, []).append(line)
            prompt = Prompt(new_id, prompt.category, prompt.text, prompt.messages, prompt.system, line, prompt.response)
        seen.add(prompt.id)
        prompts.append(prompt)
    if renamed:  # one grouped warning, however many ids repeat
        names = ", ".join(f"'{i[:40]}'" for i in itertools.islice(renamed, 5))
        kind = (f"repeated id {names}{f' and {len(renamed) - 5:,} more' if len(renamed) > 5 else ''} "
                "renamed with -2, -3, …")
        for line in sorted(n for lines in renamed.values() for n in lines):
            log.note(kind, line)
    return prompts


def _to_prompt(record, line: int, log: Log, category_field: str) -> Prompt:
    """One record (dict, or a bare string) → Prompt; raises _Skip with the reason."""
    if isinstance(record, str):
        record = {"prompt": record}
    if not isinstance(record, dict):
        raise _Skip(f"expected a JSON object or string, got {type(record).__name__}")
    rec = {str(k).strip().lower(): v for k, v in record.items()}
    system = _str(rec.get("system")) or None
    messages = None
    if rec.get("messages") is not None:
        messages = _messages(rec["messages"], "role", "content", line, log)
    elif rec.get("conversations") is not None:
        messages = _messages(rec["conversations"], "from", "value", line, log)
    if messages is not None:
        if system and not any(m["role"] == "system" for m in messages):
            messages = ({"role": "system", "content": system},) + messages
        system = next((m["content"] for m in messages if m["role"] == "system"), None)
        text = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    elif rec.get("turns") is not None:
        turns = rec["turns"]
        if not isinstance(turns, list) or not turns or not isinstance(turns[0], str):
            raise _Skip("'turns' must be a non-empty list of strings")
        if len(turns) > 1:
            log.note("several turns: only the first turn is used as the prompt", line)
        text = turns[0]
    else:
        key = "prompt" if "prompt" in rec else next((a for a in PROMPT_ALIASES if a in rec), None)
        if key is None:
            raise _Skip(f"no prompt field (fields: {', '.join(rec)})")
        if key != "prompt":
            log.note(f"no 'prompt' field: used '{key}' as the prompt", line)
        if isinstance(rec[key], (dict, list)):
            raise _Skip(f"'{key}' is a {type(rec[key]).__name__}, expected text")
        text = _str(rec[key])
    text = _tidy(text)
    if not text.strip():
        raise _Skip("empty prompt")
    category = _str(rec.get(category_field)).strip()
    if not category:
        category = DEFAULT_CATEGORY
        if category_field != "category":
            log.note(f"no '{category_field}' value: category '{DEFAULT_CATEGORY}'", line)
    ident = _str(rec.get("id", rec.get("question_id"))).strip() or f"L{line}"
    try:  # what results.json cannot hold is refused here, before anything is measured
        check_prompt_input(ident, category, text)
    except SpecdecError as exc:
        raise _Skip(str(exc)) from None
    return Prompt(id=ident, category=category, text=text, messages=messages, system=system, source_line=line,
                  response=_logged_response(rec))


def _logged_response(rec: dict) -> str | None:
    """The answer a production model gave, when the record holds one: a text "response" field, or the
    final assistant turn of its chat (which _messages drops from what the model reads). specdec.traces
    scores it with --responses."""
    if isinstance(rec.get("response"), str) and rec["response"].strip():
        return _tidy(rec["response"])
    for key, role_key, content_key in (("messages", "role", "content"), ("conversations", "from", "value")):
        chat = rec.get(key)
        if isinstance(chat, list) and chat and isinstance(chat[-1], dict):
            role = str(chat[-1].get(role_key, "")).lower()
            content = chat[-1].get(content_key)
            if role in ("assistant", "gpt", "bot") and isinstance(content, str) and content.strip():
                return _tidy(content)
    return None


def _messages(raw, role_key: str, content_key: str, line: int, log: Log) -> tuple[dict, ...]:
    """Validate a chat; ShareGPT roles (human/gpt) become user/assistant; trailing assistant turns go."""
    if not isinstance(raw, list) or not raw:
        raise _Skip("'messages' must be a non-empty list")
    roles = {"human": "user", "gpt": "assistant", "bot": "assistant"}
    out = []
    for i, m in enumerate(raw, 1):
        if not isinstance(m, dict) or not isinstance(m.get(role_key), str) or content_key not in m:
            raise _Skip(f"message {i} needs '{role_key}' and '{content_key}'")
        content = m[content_key]
        if isinstance(content, list):  # OpenAI content parts: keep text, refuse images
            kinds = {p.get("type") for p in content if isinstance(p, dict)}
            if kinds - {"text"}:
                raise _Skip(f"message {i} has non-text content ({', '.join(sorted(map(str, kinds - {'text'})))})")
            content = "".join(p.get("text", "") for p in content)
        if not isinstance(content, str):
            raise _Skip(f"message {i} content is not text")
        out.append({"role": roles.get(m[role_key].lower(), m[role_key].lower()), "content": _tidy(content)})
    while out and out[-1]["role"] == "assistant":
        out.pop()
        log.note("chat ends with an assistant turn: dropped it (the model writes that turn)", line)
    if not any(m["role"] == "user" for m in out):
        raise _Skip("chat has no user message")
    return tuple(out)


def _str(value) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def _tidy(text: str) -> str:
    """Drop leading blank lines and trailing whitespace; keep the first line's indentation (code)."""
    return re.sub(r"^\s*\n", "", text).rstrip()


# ---- whole-workload checks --------------------------------------------------------------------

def _duplicates(prompts: list[Prompt], records: list) -> list[str]:
    where = {line: w for line, w, _ in records}
    first: dict[tuple, int] = {}
    out, more = [], 0
    for p in prompts:
        key = (p.system, p.messages and tuple((m["role"], m["content"]) for m in p.messages), p.text)
        if key not in first:
            first[key] = p.source_line
        elif len(out) < MAX_LISTED:
            out.append(f"{where.get(p.source_line, f'line {p.source_line}')}: duplicate of "
                       f"{where.get(first[key], f'line {first[key]}')} (kept)")
        else:
            more += 1
    if more:
        out.append(f"… and {more:,} more duplicate prompts (kept)")
    return out


def _stratified_sample(prompts: list[Prompt], n: int, seed: int) -> tuple[list[Prompt], dict, str]:
    """n prompts, each category's share proportional to its size (largest remainder), at least one each
    while n ≥ number of categories; random.Random(seed) picks within a category; file order is kept."""
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(p.category, []).append(i)
    cats = list(groups)
    if n < len(cats):
        quota = {c: 0 for c in cats} | {c: 1 for c in rng.sample(cats, n)}
    else:
        ideal = {c: n * len(groups[c]) / len(prompts) for c in cats}
        quota = {c: min(len(groups[c]), max(1, int(ideal[c]))) for c in cats}
        while sum(quota.values()) < n:
            c = max((c for c in cats if quota[c] < len(groups[c])), key=lambda c: ideal[c] - quota[c])
            quota[c] += 1
        while sum(quota.values()) > n:
            c = max((c for c in cats if quota[c] > 1), key=lambda c: quota[c] - ideal[c])
            quota[c] -= 1
    keep = sorted(i for c in cats for i in rng.sample(groups[c], quota[c]))
    sample = {"from": len(prompts), "kept": n, "seed": seed,
              "per_category": {c: [quota[c], len(groups[c])] for c in cats}}
    note = (f"sampled {n} of {len(prompts)} prompts, stratified by category (seed {seed}): "
            + ", ".join(f"{c} {quota[c]}/{len(groups[c])}" for c in cats))
    if n < len(cats):
        note += f"; only {n} of {len(cats)} categories fit, so some are missing"
    return [prompts[i] for i in keep], sample, note


# ---- tokens -----------------------------------------------------------------------------------

def chat_messages(prompt: Prompt) -> list[dict]:
    """The chat to template: the file's messages, else [system?] + the user text."""
    if prompt.messages:
        return [dict(m) for m in prompt.messages]
    head = [{"role": "system", "content": prompt.system}] if prompt.system else []
    return head + [{"role": "user", "content": prompt.text}]


def encode_prompt(prompt: Prompt, tokenizer, max_prompt_tokens: int) -> tuple[list[int], str | None]:
    """Token ids the target reads: chat template with add_generation_prompt=True (raw text when the
    tokenizer has none), left-truncated to the last max_prompt_tokens. Returns (ids, warning | None)."""
    if max_prompt_tokens < 1:
        raise SpecdecError(f"no room for the prompt: {max_prompt_tokens} tokens left after max_new_tokens")
    messages = chat_messages(prompt)
    note = None
    if getattr(tokenizer, "chat_template", None):
        try:
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # jinja raises from the template itself, e.g. "System role not supported"
            if messages[0]["role"] != "system":
                raise SpecdecError(f"prompt {prompt.id} (line {prompt.source_line}): the chat template "
                                   f"failed: {exc}") from None
            system = messages.pop(0)["content"]
            first_user = next(m for m in messages if m["role"] == "user")
            first_user["content"] = f"{system}\n\n{first_user['content']}"
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            note = "the chat template rejects a system turn, so the system text was put before the user text"
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    else:
        ids = list(tokenizer("\n\n".join(m["content"] for m in messages))["input_ids"])
    if len(ids) > max_prompt_tokens:
        cut = (f"{len(ids)} tokens is more than the {max_prompt_tokens} left after max_new_tokens: "
               f"kept the last {max_prompt_tokens}")
        note = f"{note}; {cut}" if note else cut
        ids = ids[-max_prompt_tokens:]
    return ids, (f"prompt {prompt.id} (line {prompt.source_line}): {note}" if note else None)


def token_report(workload: Workload, tokenizer, max_prompt_tokens: int) -> dict:
    """Prompt-token statistics and every truncation, for check-workload with a tokenizer."""
    lengths, warnings = [], []
    for p in workload.prompts:
        ids, warning = encode_prompt(p, tokenizer, 10**9)
        lengths.append(len(ids))
        if len(ids) > max_prompt_tokens:
            _, warning = encode_prompt(p, tokenizer, max_prompt_tokens)
        if warning:
            warnings.append(warning)
    return {"tokens": _stats(lengths), "max_prompt_tokens": max_prompt_tokens,
            "truncated": sum(n > max_prompt_tokens for n in lengths), "warnings": warnings}


# ---- rendering --------------------------------------------------------------------------------

def format_summary(summary: dict) -> str:
    """Plain-text report of Workload.summary() (plus an optional "token_report") for the CLI."""
    s = summary
    n_cat = len(s["categories"])
    out = [f"{s['name']}: {FORMAT_NAMES.get(s['format'], s['format'])}, {s['prompts']} prompts in "
           f"{n_cat} categor{'y' if n_cat == 1 else 'ies'} ({s['chat_prompts']} chat, {s['with_system']} with a "
           f"system message), sha256 {s['sha256'][:12]}"]
    width = max([len("category")] + [len(c) for c in s["categories"]])
    out.append(f"  {'category':<{width}}  prompts  median chars  median words")
    for c, info in s["per_category"].items():
        out.append(f"  {c:<{width}}  {info['prompts']:>7}  {info['chars']['median']:>12.0f}  "
                   f"{info['words']['median']:>12.0f}")
    for label, key in (("characters", "length_chars"), ("words", "length_words")):
        out.append(f"  {label}: " + _fmt_stats(s[key]))
    tokens = s.get("token_report")
    if tokens:
        out.append(f"  tokens: {_fmt_stats(tokens['tokens'])}; {tokens['truncated']} over the "
                   f"{tokens['max_prompt_tokens']}-token budget")
    warnings = s["warnings"] + (tokens["warnings"] if tokens else [])
    for title, items in (("warnings", warnings), ("skipped", s["skipped"])):
        out.append(f"{title} ({len(items)})" + (":" if items else ""))
        out += [f"  - {item}" for item in items]
    return "\n".join(out)


def _fmt_stats(st: dict) -> str:
    return ", ".join(f"{k} {st[k]:.0f}" for k in ("min", "median", "mean", "p90", "max"))


def _stats(values: list[int]) -> dict:
    """min / median / mean / p90 (nearest rank) / max; zeros for an empty list."""
    if not values:
        return {"min": 0, "median": 0.0, "mean": 0.0, "p90": 0, "max": 0}
    ordered = sorted(values)
    return {"min": ordered[0], "median": float(statistics.median(ordered)), "mean": statistics.fmean(ordered),
            "p90": ordered[max(0, -(-9 * len(ordered) // 10) - 1)], "max": ordered[-1]}
