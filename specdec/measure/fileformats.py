"""A prompt file's bytes → text → records, for specdec.measure.workloads to turn into prompts.

bytes → text: size limit, encodings (UTF-8, UTF-16/32 with a BOM; a named guess otherwise), binary
files recognised by their magic bytes. text → records: the format detected from the content (the
extension only breaks ties), then one (line, where, record) per JSON object, CSV/TSV row or text block,
each located by its line so that every message can name it. Every problem is a one-line SpecdecError
naming the file and the line, or a skip logged in a Log.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from specdec.errors import SpecdecError

PROMPT_ALIASES = ("question", "query", "instruction", "input", "text")  # tried when there is no `prompt`
EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
              ".json": "json", ".txt": "text", ".md": "text"}
FORMAT_NAMES = {"csv": "CSV", "tsv": "TSV", "jsonl": "JSON Lines", "json": "JSON", "text": "plain text"}
MAGIC = ((b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive (.xlsx, .docx or .zip)"),
         (b"\xd0\xcf\x11\xe0", "a legacy Office file (.xls or .doc)"), (b"\x1f\x8b", "a gzip archive"),
         (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
         (b"SQLite format 3\x00", "an SQLite database"), (b"PAR1", "a Parquet file"),
         (b"\xfd7zXZ", "an xz archive"), (b"7z\xbc\xaf", "a 7-Zip archive"), (b"\x7fELF", "an executable"))
CATEGORY_LINE = re.compile(r"^#\s*category:\s*(\S.*?)\s*$", re.IGNORECASE)
SEPARATOR = "---"



@dataclass
class Log:
    """What happened while loading: skips (one per record) and notes grouped by kind (kind → lines)."""

    name: str
    strict: bool
    skipped: list[str] = field(default_factory=list)
    notes: dict[str, list[int]] = field(default_factory=dict)

    def skip(self, where: str, reason: str) -> None:
        if self.strict:
            raise SpecdecError(f"{self.name}: {where}: {reason} (--strict)")
        self.skipped.append(f"{where}: {reason}, skipped")

    def note(self, kind: str, line: int) -> None:
        self.notes.setdefault(kind, []).append(line)

    def grouped(self) -> list[str]:
        return [f"{kind} ({_lines(lines)})" for kind, lines in self.notes.items()]


# ---- bytes → text ---------------------------------------------------------------------------

def read(source, name: str | None, max_bytes: int) -> tuple[bytes, str | None, str]:
    if isinstance(source, (bytes, bytearray)):
        name = name or "upload"
        if len(source) > max_bytes:
            raise SpecdecError(f"{name}: {_mb(len(source))} is over the {_mb(max_bytes)} limit for a workload "
                               "file; sample or split it first")
        return bytes(source), None, name
    path = Path(source)
    name = name or path.name
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise SpecdecError(f"{path}: is a directory, not a prompt file")
        if size > max_bytes:
            raise SpecdecError(f"{name}: {_mb(size)} is over the {_mb(max_bytes)} limit for a workload file; "
                               "sample or split it first")
        return path.read_bytes(), str(path), name
    except FileNotFoundError:
        raise SpecdecError(f"{path}: no such file") from None
    except PermissionError:
        raise SpecdecError(f"{path}: permission denied") from None
    except OSError as exc:
        raise SpecdecError(f"{path}: cannot read it ({exc.strerror})") from None


def decode(raw: bytes, name: str, warnings: list[str]) -> str:
    """UTF-8 (BOM allowed) → str with \\n line ends. UTF-16/32 with a BOM is decoded with a warning."""
    if not raw:
        raise SpecdecError(f"{name}: empty file (0 bytes)")
    for bom, enc in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                     (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if raw.startswith(bom):
            try:
                text = raw.decode(enc)
            except UnicodeDecodeError as exc:
                raise SpecdecError(f"{name}: {_where_byte(raw, exc.start)}: invalid {enc.upper()} "
                                   "despite its byte-order mark") from None
            warnings.append(f"decoded as {enc.upper()} (byte-order mark); UTF-8 is preferred")
            return _check_text(text.replace("\r\n", "\n"), name)
    for magic, kind in MAGIC:
        if raw.startswith(magic):
            raise SpecdecError(f"{name}: line 1: binary file, looks like {kind}; "
                               "export the prompts as CSV, JSONL or plain text")
    head = raw[:65536]
    if b"\x00" in head:
        utf16 = _utf16_without_bom(head)
        if utf16:
            raise SpecdecError(f"{name}: line 1: not UTF-8, looks like {utf16} without a byte-order mark; "
                               "re-save it as UTF-8")
        raise SpecdecError(f"{name}: {_where_byte(raw, raw.index(0))}: binary data (NUL bytes); "
                           "expected a text file (CSV, TSV, JSONL, JSON or TXT)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecdecError(f"{name}: {_where_byte(raw, exc.start)}: not UTF-8 (byte 0x{raw[exc.start]:02x}); "
                           f"it looks like {_guess_encoding(raw)}; re-save it as UTF-8") from None
    return _check_text(text.replace("\r\n", "\n"), name)


def _check_text(text: str, name: str) -> str:
    if not text.strip():
        raise SpecdecError(f"{name}: empty file (only whitespace, {text.count(chr(10)) + 1} lines)")
    sample = text[:65536]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\n\r\f\v\x1b")
    if controls > 0.05 * len(sample):
        raise SpecdecError(f"{name}: line 1: binary data ({controls} control characters in the first "
                           f"{len(sample)}); expected a text file")
    return text


def _utf16_without_bom(head: bytes) -> str | None:
    """'UTF-16-LE'/'UTF-16-BE' when NULs sit on one parity, as ASCII text in UTF-16 does."""
    even, odd = head[0::2], head[1::2]
    if odd and odd.count(0) > 0.3 * len(odd) and even.count(0) < 0.05 * len(even):
        return "UTF-16-LE"
    if even and even.count(0) > 0.3 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "UTF-16-BE"
    return None


def _guess_encoding(raw: bytes) -> str:
    """A human guess: Western single-byte text has isolated high bytes; CJK text has runs of them."""
    sample = raw[:65536]
    high = [i for i, b in enumerate(sample) if b >= 0x80]
    isolated = sum(1 for i in high if (i == 0 or sample[i - 1] < 0x80)
                   and (i + 1 >= len(sample) or sample[i + 1] < 0x80))
    if isolated > 0.5 * len(high):
        try:
            sample.decode("cp1252")
            return "Windows-1252 (Western European; Excel's default on Windows)"
        except UnicodeDecodeError:
            return "ISO-8859-1 (Latin-1)"
    try:
        from charset_normalizer import from_bytes
        best = from_bytes(sample).best()
        if best is not None and best.encoding not in ("utf_8", "ascii"):
            return best.encoding.replace("_", "-").upper()
    except ImportError:
        pass
    return "a legacy multi-byte encoding (e.g. Shift-JIS, GBK or EUC-KR)"


# ---- text → records: (line, where, record dict | str | other) --------------------------------

def detect(text: str, ext: str, name: str) -> tuple[str, str | None]:
    """(format, CSV delimiter or None) from the content; the extension only breaks ties."""
    ext_fmt = EXTENSIONS.get(ext)
    body = text.lstrip()
    if body.startswith("["):
        if ext_fmt in ("json", "jsonl") or isinstance(_try_json(body), list):
            return "json", None
    if body.startswith("{"):
        if _try_json(body.split("\n", 1)[0]) is not None:
            return "jsonl", None
        if isinstance(_try_json(body), dict):
            return "json", None
        if ext_fmt in ("json", "jsonl"):
            return "jsonl", None  # the malformed lines are reported one by one
    if ext_fmt in ("json", "jsonl"):
        line = text[:len(text) - len(body)].count("\n") + 1
        raise SpecdecError(f"{name}: line {line}: expected JSON (an object per line, or an array), "
                           f"found {body[:30].splitlines()[0]!r}")
    header = body.split("\n", 1)[0]
    for delimiter in ("\t", ",", ";"):
        columns = [c.strip().lower() for c in next(csv.reader([header], delimiter=delimiter))]
        if "prompt" in columns or (len(columns) > 1 and set(columns) & set(PROMPT_ALIASES)):
            return ("tsv" if delimiter == "\t" else "csv"), delimiter
    if ext_fmt == "tsv":
        return "tsv", "\t"
    if ext_fmt == "csv":
        return "csv", max(",;\t", key=header.count)
    return "text", None


def _try_json(text: str):
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's stack
        return None


def _jsonl_records(text: str, log: Log):
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            log.skip(f"line {n}", f"malformed JSON ({exc.msg} at column {exc.colno})")
            continue
        except (ValueError, RecursionError) as exc:  # a 4300-digit integer, nesting deeper than the stack
            log.skip(f"line {n}", f"unusable JSON ({_json_problem(exc)})")
            continue
        yield n, f"line {n}", record


def _json_records(text: str, log: Log):
    """A JSON array (elements located by line) or a single object."""
    decoder = json.JSONDecoder()
    start = len(text) - len(text.lstrip())
    try:
        if text[start] == "{":
            obj, end = decoder.raw_decode(text, start)
            _expect_end(text, end)
            line = 1 + text.count("\n", 0, start)
            yield line, f"line {line}", obj
            return
        i = _skip_ws(text, start + 1)
        if text[i:i + 1] == "]":
            _expect_end(text, i + 1)
            return
        line, counted = 1, 0  # count newlines incrementally: a 50 MB array must stay linear
        while True:
            obj, end = decoder.raw_decode(text, i)
            line, counted = line + text.count("\n", counted, i), i
            yield line, f"line {line}", obj
            j = _skip_ws(text, end)
            if text[j:j + 1] == ",":
                i = _skip_ws(text, j + 1)
            elif text[j:j + 1] == "]":
                _expect_end(text, j + 1)
                return
            else:
                raise json.JSONDecodeError("expected ',' or ']' after an item", text, j)
    except json.JSONDecodeError as exc:
        raise SpecdecError(f"{log.name}: line {exc.lineno}: malformed JSON ({exc.msg} at column {exc.colno})") \
            from None
    except (ValueError, RecursionError) as exc:
        raise SpecdecError(f"{log.name}: unusable JSON ({_json_problem(exc)})") from None


def _json_problem(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    text = (str(exc).splitlines() or ["invalid value"])[0]
    return "an integer with more than 4300 digits" if "integer string conversion" in text else text[:120]


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\n\r":
        i += 1
    return i


def _expect_end(text: str, i: int) -> None:
    j = _skip_ws(text, i)
    if j < len(text):
        raise json.JSONDecodeError("extra data after the JSON value", text, j)


def _csv_records(text: str, log: Log, delimiter: str):
    """Rows as {lowercased column: value}; 'row N' counts like a spreadsheet (header = row 1)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    row_no, start = 0, 1
    try:
        header: list[str] = []
        while not header:
            start = reader.line_num + 1
            header = next(reader)
        row_no = 1
        columns = [c.strip().lower() for c in header]
        if "prompt" not in columns and not set(columns) & set(PROMPT_ALIASES):
            found = ", ".join(repr(c.strip()) for c in header)
            raise SpecdecError(f"{log.name}: row 1 (header, line {start}): no 'prompt' column; "
                               f"columns found: {found}")
        start = reader.line_num + 1
        for row in reader:
            row_no += 1
            where = f"row {row_no} (line {start})"
            line, start = start, reader.line_num + 1
            if not row:
                row_no -= 1  # a blank line is not a row in a spreadsheet either
                continue
            if len(row) > len(columns):
                log.skip(where, f"{len(row)} values but the header has {len(columns)} columns "
                                "(an unquoted delimiter inside the prompt?)")
                continue
            yield line, where, dict(zip(columns, row))
    except csv.Error as exc:
        raise SpecdecError(f"{log.name}: row {row_no + 1} (line {start}): malformed "
                           f"{'TSV' if delimiter == chr(9) else 'CSV'} ({exc}; an unclosed quote?)") from None


def _text_records(text: str, log: Log):
    """Blocks between `---` lines, or one prompt per line; `# category: NAME` lines set the category."""
    lines = text.split("\n")
    category = None
    if not any(line.strip() == SEPARATOR for line in lines):
        for n, line in enumerate(lines, 1):
            match = CATEGORY_LINE.match(line.strip())
            if match:
                category = match.group(1)
            elif line.strip():
                yield n, f"line {n}", {"prompt": line, "category": category}
        return
    blocks: list[tuple[list[tuple[int, str]], int]] = [([], 0)]  # (lines, line of the closing ---)
    for n, line in enumerate(lines, 1):
        if line.strip() == SEPARATOR:
            blocks[-1] = (blocks[-1][0], n)
            blocks.append(([], 0))
        else:
            blocks[-1][0].append((n, line))
    for i, (block, closing) in enumerate(blocks):
        body = [(n, line) for n, line in block if line.strip()]
        match = CATEGORY_LINE.match(body[0][1].strip()) if body else None
        if match:
            category = match.group(1)
            body = body[1:]
        if body:
            first = body[0][0]
            text = "\n".join(line for n, line in block if n >= first)
            yield first, f"line {first}", {"prompt": text, "category": category}
        elif not match and 0 < i < len(blocks) - 1:  # the ends of the file may hold a lone ---
            log.skip(f"line {closing}", "empty prompt between '---' separators")


_RECORDS = {"jsonl": _jsonl_records, "json": _json_records, "text": _text_records}  # CSV/TSV take a delimiter


def records(text: str, fmt: str, delimiter: str | None, log: Log):
    """(line, where, record) for every record of text in format fmt; record: a dict, a str or whatever
    a JSON array held (the caller judges it)."""
    return _csv_records(text, log, delimiter) if delimiter else _RECORDS[fmt](text, log)


def _lines(lines: list[int]) -> str:
    """[1,2,3,7] → 'lines 1-3, 7'; long lists are shortened with a count."""
    runs: list[list[int]] = []
    for n in sorted(set(lines)):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    parts = [f"{a}-{b}" if b > a else str(a) for a, b in runs]
    text = ", ".join(parts[:20]) + (f", … {len(parts) - 20} more" if len(parts) > 20 else "")
    return f"line{'s' if len(lines) > 1 else ''} {text}"


def _where_byte(raw: bytes, offset: int) -> str:
    line_start = raw.rfind(10, 0, offset) + 1
    return f"line {raw.count(10, 0, offset) + 1}, column {offset - line_start + 1}"


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"
