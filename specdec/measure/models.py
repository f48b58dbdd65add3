"""Model specs → loaded models. A spec is a bundled name, a `.gguf` file, a local HF directory or a hub id.

Every failure a user can cause (missing path, unsupported architecture, hub unreachable, out of
memory, draft and target with different vocabularies) becomes one SpecdecError line, never a traceback.
GGUF files, bundled or not, are de-quantised once into a safetensors cache (specdec.measure.bundled; the
conversion itself: specdec.measure.ggufconvert).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from specdec.measure import bundled, ggufconvert
from specdec.decoding import fastlinear
from specdec.measure.bundled import Progress, bundled_names, ensure_bundled  # noqa: F401  (public API)
from specdec.errors import SpecdecError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "float64": 8}

# A hub id is "name" or "owner/name"; anything else that does not exist on disk is a missing path.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")
# What to fetch from the hub: config, tokenizer and chat-template files, then weights, safetensors first.
HUB_FILES = ["*.json", "*.jinja", "*.txt", "*.model", "*.tiktoken", "tokenizer*"]
HUB_WEIGHTS = (["*.safetensors"], ["pytorch_model*.bin"])


@dataclass
class LoadedModel:
    """A model ready for decoding: eval mode, on its device, gradients off."""

    spec: str  # what the user typed
    model: PreTrainedModel
    tokenizer: Any  # a transformers tokenizer
    local_path: str  # the HF directory the weights were read from (the cache entry for a GGUF)
    sha256: str | None  # of the GGUF file for bundled/.gguf specs; None for directories and hub ids
    parameters: int
    dtype: str  # "bfloat16" | "float32" | "float16"
    device: str

    def info(self) -> dict:
        """The manifest's MODEL entry (results.json schema)."""
        cfg = self.model.config.get_text_config()
        heads = getattr(cfg, "num_attention_heads", None)
        hidden = getattr(cfg, "hidden_size", None)
        return {
            "spec": self.spec, "local_path": self.local_path, "sha256": self.sha256,
            "parameters": self.parameters, "dtype": self.dtype, "device": self.device,
            "num_layers": getattr(cfg, "num_hidden_layers", None), "hidden_size": hidden,
            "vocab_size": getattr(cfg, "vocab_size", None),
            "num_key_value_heads": getattr(cfg, "num_key_value_heads", None) or heads,
            "head_dim": getattr(cfg, "head_dim", None) or (hidden // heads if hidden and heads else None),
            "architecture": type(self.model).__name__,
            # Whether lm_head shares the input embedding: an untied record counts vocab × hidden twice, and
            # a decode step reads only one of the two tables (specdec.analysis.costs.model_size).
            "tie_word_embeddings": bool(getattr(self.model.config, "tie_word_embeddings", False)),
            "linear": getattr(self.model, "specdec_linear", "default"),
        }


def remote_code_allowed() -> bool:
    """Whether the person who started the app allowed model code from the hub ($SPECDEC_TRUST_REMOTE_CODE=1).
    The app has no switch for it: a visitor to the page must not be able to run a repository's code."""
    from specdec import config
    return os.environ.get(config.TRUST_REMOTE_CODE_ENV_VAR, "").strip().lower() in {"1", "true", "yes", "on"}


# ---- device and dtype ---------------------------------------------------------------------------


def resolve_device(device: str) -> torch.device:
    """"auto" → cuda, then mps, else cpu. An explicit device that is not there is a user error."""
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise SpecdecError(f"unknown device {device!r}: use auto, cpu, cuda or mps") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise SpecdecError("device cuda was asked for, but torch sees no CUDA GPU here")
    if resolved.type == "mps" and not mps:
        raise SpecdecError("device mps was asked for, but torch sees no Apple GPU here")
    return resolved


def resolve_dtype(dtype: str, device: torch.device | str) -> torch.dtype:
    """"auto" → bfloat16 where the hardware computes it natively (CUDA with bf16, or a CPU with
    AVX512-BF16/AMX — about 2.5× faster than float32 there), else float32."""
    if dtype != "auto":
        if dtype not in DTYPES:
            raise SpecdecError(f"unknown dtype {dtype!r}: use auto, {', '.join(DTYPES)}")
        return DTYPES[dtype]
    device = resolve_device(device) if isinstance(device, str) else device
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return torch.float32


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether /proc/cpuinfo (or the given text) lists avx512_bf16 or amx_bf16."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# ---- loading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where a spec's files are on disk, once fetched or converted."""

    spec: str
    path: Path  # an HF model directory
    sha256: str | None


def load_model(
    spec: str,
    *,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
    on_progress: Progress | None = None,
) -> LoadedModel:
    """Resolve, fetch or convert, and load one model (eval mode, on device, requires_grad off)."""
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    source = resolve_spec(spec, trust_remote_code=trust_remote_code, on_progress=on_progress)
    tokenizer = load_tokenizer(source, trust_remote_code=trust_remote_code)
    return load_weights(source, tokenizer, torch_dtype, torch_device, trust_remote_code, on_progress)


def load_pair(
    target_spec: str,
    draft_spec: str,
    *,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
    on_progress: Progress | None = None,
) -> tuple[LoadedModel, LoadedModel]:
    """(target, draft), after checking they share a vocabulary — checked before any weights load."""
    target, drafts = load_with_drafts(target_spec, [draft_spec], dtype=dtype, device=device,
                                      trust_remote_code=trust_remote_code, on_progress=on_progress)
    return target, drafts[0]


def load_with_drafts(
    target_spec: str,
    draft_specs,
    *,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
    on_progress: Progress | None = None,
) -> tuple[LoadedModel, list[LoadedModel]]:
    """The target and any number of draft models, each checked to share the target's vocabulary
    before any weights load."""
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    specs = [target_spec, *draft_specs]
    sources = [resolve_spec(s, trust_remote_code=trust_remote_code, on_progress=on_progress) for s in specs]
    tokenizers = [load_tokenizer(s, trust_remote_code=trust_remote_code) for s in sources]
    vocab = [_config_vocab_size(s.path) for s in sources]
    for i in range(1, len(specs)):
        check_same_vocab(tokenizers[0], tokenizers[i], target_spec, specs[i], [vocab[0], vocab[i]])
    loaded = [load_weights(s, t, torch_dtype, torch_device, trust_remote_code, on_progress)
              for s, t in zip(sources, tokenizers)]
    return loaded[0], loaded[1:]


def peek_num_layers(spec: str) -> int | None:
    """A model's decoder layer count from its config.json, without loading or converting anything: a
    local model directory, or a bundled model (its converted copy, else its known shape). None when only
    loading would tell (a hub id, a .gguf file, a directory without a readable config)."""
    spec = str(spec or "").strip()
    if spec in bundled.BUNDLES:
        b = bundled.BUNDLES[spec]
        converted = bundled.entry_dir(b.name, b.sha256)
        path = converted if bundled.is_complete(converted) else None
        if path is None:
            return b.num_layers
    else:
        path = Path(spec).expanduser()
    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        return None
    n = cfg.get("num_hidden_layers") or (cfg.get("text_config") or {}).get("num_hidden_layers")
    return int(n) if isinstance(n, int) and n > 0 else None


def resolve_spec(spec: str, *, trust_remote_code: bool = False, on_progress: Progress | None = None) -> Source:
    """Spec → Source (bundled name, then an existing path: .gguf file or HF dir, then a hub id),
    with its config checked: a model transformers cannot build fails here, before anything loads."""
    source = _locate(spec, trust_remote_code, on_progress)
    check_architecture(spec, _read_config_json(spec, source.path), trust_remote_code)
    return source


def _locate(spec: str, trust_remote_code: bool, on_progress: Progress | None) -> Source:
    names = ", ".join(bundled_names())
    path = Path(spec).expanduser()
    if spec in bundled.BUNDLES or path.is_file():
        if spec not in bundled.BUNDLES and path.suffix.lower() != ".gguf":
            raise SpecdecError(f"{spec}: unsupported file; give a .gguf file, a model directory, a hub id "
                               f"or a bundled name ({names})")
        try:
            if spec in bundled.BUNDLES:
                b = bundled.BUNDLES[spec]
                if not bundled.is_complete(bundled.entry_dir(b.name, b.sha256)):
                    # Q4_K_M holds ≥ 4.5 bits a weight, so size × 8 / 4.5 bounds the parameters; the joined
                    # GGUF sits beside the conversion until it is done.
                    check_conversion_fits(spec, int(b.size * 8 / 4.5), extra_disk=b.size)
                return Source(spec, ensure_bundled(spec, on_progress), b.sha256)
            check_conversion_fits(spec, gguf_parameters(spec, path))  # before hashing: a 40 GB file takes minutes
            converted, sha = bundled.ensure_gguf(path, on_progress)
            return Source(spec, converted, sha)
        except SpecdecError:
            raise
        except Exception as exc:  # noqa: BLE001 — converting a GGUF: a bad file, a full disk, too little memory
            raise SpecdecError(_load_error(spec, exc, "the GGUF file")) from exc
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise SpecdecError(f"{spec}: not a Hugging Face model directory (it has no config.json)")
        return Source(spec, path, None)
    if _looks_like_path(spec) or not HUB_ID.fullmatch(spec):
        raise SpecdecError(f"{spec}: no such file or directory (and not a hub id or a bundled name: {names})")
    return Source(spec, _hub_snapshot(spec, trust_remote_code, on_progress), None)


def load_tokenizer(source: Source, *, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source.path, trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001
        raise SpecdecError(_load_error(source.spec, exc, "its tokenizer")) from exc


def load_weights(
    source: Source,
    tokenizer,
    torch_dtype: torch.dtype,
    torch_device: torch.device,
    trust_remote_code: bool = False,
    on_progress: Progress | None = None,
) -> LoadedModel:
    from transformers import AutoConfig, AutoModelForCausalLM

    spec, path = source.spec, source.path
    check_memory(spec, path, torch_dtype, torch_device)
    if on_progress:
        on_progress(f"load {spec}", None)
    has_safetensors = any(path.glob("*.safetensors"))
    try:
        cfg = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            path, config=cfg, dtype=torch_dtype, trust_remote_code=trust_remote_code,
            use_safetensors=True if has_safetensors else None,  # never fall back to pickles if safetensors exist
        )
        model.to(torch_device)
    except Exception as exc:  # noqa: BLE001
        raise SpecdecError(_load_error(spec, exc, "the weights", dtype_name(torch_dtype))) from exc
    model.eval()
    model.requires_grad_(False)
    if on_progress:
        on_progress(f"time matmul backends for {spec}", None)
    fastlinear.tune(model)  # 1-token steps and few-token verify passes: the fastest CPU matmul path here
    return LoadedModel(
        spec=spec, model=model, tokenizer=tokenizer, local_path=str(path), sha256=source.sha256,
        parameters=sum(p.numel() for p in model.parameters()), dtype=dtype_name(torch_dtype),
        device=str(torch_device),
    )


# ---- checks -------------------------------------------------------------------------------------


def check_architecture(spec: str, cfg: dict, trust_remote_code: bool) -> None:
    """One line if transformers cannot build a causal LM from this config."""
    from transformers import __version__
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if "AutoModelForCausalLM" in cfg.get("auto_map", {}):
        if not trust_remote_code:
            raise SpecdecError(f"{spec}: this model runs its own code from its repository; pass "
                               "--trust-remote-code if you trust it")
        return
    model_type = cfg.get("model_type")
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        arch = ", ".join(cfg.get("architectures") or []) or "unknown"
        raise SpecdecError(f"{spec}: unsupported architecture (model_type {model_type!r}, {arch}): transformers "
                           f"{__version__} has no causal language model for it")


def check_memory(spec: str, path: Path, torch_dtype: torch.dtype, torch_device: torch.device) -> None:
    """Refuse up front when the weights clearly do not fit: the OS kills an out-of-memory process
    without an exception, so afterwards there would be nothing to report."""
    files = list(path.glob("*.safetensors")) or list(path.glob("*.bin"))
    on_disk = sum(f.stat().st_size for f in files)
    cfg = _read_config_json(spec, path)
    stored = str(cfg.get("dtype") or cfg.get("torch_dtype"))
    need = on_disk * DTYPE_BYTES.get(dtype_name(torch_dtype), 4) / DTYPE_BYTES.get(stored, 4)
    free = available_memory(torch_device)
    if free is not None and need > free:
        raise SpecdecError(f"{spec}: out of memory: its weights need about {need / 1e9:.1f} GB in "
                           f"{dtype_name(torch_dtype)} and {free / 1e9:.1f} GB is free on {torch_device}")


def gguf_parameters(spec: str, path: Path) -> int:
    """Weights in a GGUF file, from its tensor table alone (memory-mapped: nothing is read or converted)."""
    try:
        return sum(int(t.n_elements) for t in ggufconvert.gguf_reader(path).tensors)  # ~1 s, not 15–30 s
    except Exception as exc:  # noqa: BLE001 — any parse failure means "not a usable GGUF"
        raise SpecdecError(f"{spec}: could not load the GGUF file: its header is unreadable ({_first_line(exc)})") from None


def check_conversion_fits(spec: str, parameters: int, extra_disk: int = 0) -> None:
    """Refuse a GGUF conversion that cannot fit before it starts: the de-quantised tensors are held in
    memory in config.CACHE_DTYPE and written to the cache (bundled.cache_root()) in the same dtype."""
    from specdec import config
    converted = parameters * DTYPE_BYTES[config.CACHE_DTYPE]
    check_fits(spec, disk_bytes=converted + extra_disk, ram_bytes=converted, folder=bundled.cache_root(),
               what=f"converting it ({parameters / 1e9:.1f} B parameters)")


def check_fits(spec: str, *, disk_bytes: int, ram_bytes: int, folder: Path, what: str) -> None:
    """One line when `what` needs more free disk under `folder` or more free memory than there is."""
    import shutil
    place = Path(folder)
    while not place.exists() and place != place.parent:
        place = place.parent
    free_disk = shutil.disk_usage(place).free
    if disk_bytes > free_disk:
        raise SpecdecError(f"{spec}: {what} needs about {disk_bytes / 1e9:.1f} GB of disk in {folder} and "
                           f"{free_disk / 1e9:.1f} GB is free; nothing was fetched or converted")
    free_ram = available_memory(torch.device("cpu"))
    if free_ram is not None and ram_bytes > free_ram:
        raise SpecdecError(f"{spec}: {what} needs about {ram_bytes / 1e9:.1f} GB of memory and "
                           f"{free_ram / 1e9:.1f} GB is free; nothing was fetched or converted")


def available_memory(torch_device: torch.device) -> int | None:
    """Free bytes on the device (MemAvailable for the CPU); None when unknown."""
    if torch_device.type == "cuda":
        return torch.cuda.mem_get_info(torch_device)[0]
    if torch_device.type != "cpu":
        return None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_same_vocab(target_tokenizer, draft_tokenizer, target_spec: str, draft_spec: str,
                     vocab_sizes: list[int | None] | None = None) -> None:
    """Every token id both tokenizers know must mean the same token, and every id either one can
    produce must fit both models' vocabularies (the embedding rows, which may be padded past the
    tokenizer, as Qwen's are). Raises one SpecdecError line otherwise."""
    target_ids = {i: t for t, i in target_tokenizer.get_vocab().items()}
    draft_ids = {i: t for t, i in draft_tokenizer.get_vocab().items()}
    differ = sorted(i for i in target_ids.keys() & draft_ids.keys() if target_ids[i] != draft_ids[i])
    if differ:
        i = differ[0]
        raise SpecdecError(
            f"draft {draft_spec} and target {target_spec} do not share a vocabulary: {len(differ):,} token ids "
            f"mean different tokens (e.g. id {i} is {target_ids[i]!r} in the target, {draft_ids[i]!r} in the "
            "draft); speculative decoding needs both to use one tokenizer")
    largest = max([*target_ids, *draft_ids], default=-1)
    for spec, size in zip((target_spec, draft_spec), vocab_sizes or []):
        if size is not None and largest >= size:
            raise SpecdecError(
                f"draft {draft_spec} and target {target_spec} do not share a vocabulary: token id {largest} "
                f"is beyond the {size:,} embeddings of {spec}")


def eos_ids(loaded: LoadedModel) -> list[int]:
    """Every id that ends generation: generation_config.eos_token_id (int or list), the config's,
    and the tokenizer's, first-seen order, no duplicates."""
    found: list[int] = []
    for value in (loaded.model.generation_config.eos_token_id, loaded.model.config.eos_token_id,
                  loaded.tokenizer.eos_token_id):
        for token_id in value if isinstance(value, (list, tuple)) else [value]:
            if token_id is not None and int(token_id) not in found:
                found.append(int(token_id))
    return found


# ---- helpers ------------------------------------------------------------------------------------


def _looks_like_path(spec: str) -> bool:
    return (spec.startswith(("/", "./", "../", "~", ".\\")) or spec.lower().endswith(".gguf")
            or "\\" in spec or spec.count("/") > 1)


def _read_config_json(spec: str, path: Path) -> dict:
    try:
        return json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise SpecdecError(f"{spec}: cannot read its config.json ({exc.__class__.__name__}: {exc})") from exc


def _config_vocab_size(path: Path) -> int | None:
    cfg = json.loads((path / "config.json").read_text())
    return cfg.get("vocab_size") or (cfg.get("text_config") or {}).get("vocab_size")


def _env_offline() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE read now, not at import time as huggingface_hub does."""
    return any(os.environ.get(v, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_snapshot(repo_id: str, trust_remote_code: bool, on_progress: Progress | None) -> Path:
    """The local snapshot of a hub repo (config, tokenizer, weights — safetensors if the repo has any)."""
    from huggingface_hub import snapshot_download

    if on_progress:
        on_progress(f"download {repo_id}", None)
    files = HUB_FILES + (["*.py"] if trust_remote_code else [])
    if not _env_offline():
        need = hub_download_bytes(repo_id, files)
        if need:
            from huggingface_hub import constants
            check_fits(repo_id, disk_bytes=need, ram_bytes=need, folder=Path(constants.HF_HUB_CACHE),
                       what=f"downloading its {need / 1e9:.1f} GB of files")
    try:
        for weights in HUB_WEIGHTS:
            path = Path(snapshot_download(repo_id, allow_patterns=files + weights, local_files_only=_env_offline()))
            if any(path.glob(weights[0])):
                break
    except Exception as exc:  # noqa: BLE001
        raise SpecdecError(_hub_error(repo_id, exc)) from exc
    if not (path / "config.json").is_file():
        raise SpecdecError(f"{repo_id}: the hub repository has no config.json (a GGUF-only repository? "
                           "download the .gguf file and give its path)")
    return path


def hub_download_bytes(repo_id: str, patterns: list[str]) -> int | None:
    """Bytes snapshot_download would fetch for these patterns (safetensors weights when the repository
    has any, else .bin), not counting files already in the local cache; None when the hub cannot say."""
    import fnmatch

    from huggingface_hub import HfApi, try_to_load_from_cache
    try:
        info = HfApi().model_info(repo_id, files_metadata=True, timeout=10)
    except Exception:  # noqa: BLE001 — unreachable hub, unknown repo: snapshot_download reports it
        return None
    files = [(f.rfilename, f.size or 0) for f in info.siblings or []]
    for weights in HUB_WEIGHTS:
        if any(fnmatch.fnmatch(name, weights[0]) for name, _ in files):
            break
    wanted = patterns + weights
    return sum(size for name, size in files if any(fnmatch.fnmatch(name, p) for p in wanted)
               and not isinstance(try_to_load_from_cache(repo_id, name), str))


def _hub_error(repo_id: str, exc: Exception) -> str:
    from huggingface_hub import constants
    from huggingface_hub import errors as hub

    chain = _chain(exc)
    if any(isinstance(e, hub.GatedRepoError) for e in chain):
        return f"{repo_id}: gated model on the hub; accept its licence on the website and log in (hf auth login)"
    if any(isinstance(e, hub.RepositoryNotFoundError) for e in chain):
        return f"{repo_id}: no such model on the hub, and no such local path or bundled name"
    offline = (hub.LocalEntryNotFoundError, hub.OfflineModeIsEnabled, ConnectionError, TimeoutError)
    if any(isinstance(e, offline) or "connect" in type(e).__name__.lower() or "timeout" in type(e).__name__.lower()
           for e in chain):
        mode = "offline mode is on (HF_HUB_OFFLINE)" if _env_offline() else "the hub is unreachable"
        return (f"{repo_id}: {mode}, and the model is not in the local cache ({constants.HF_HUB_CACHE}); "
                f"use a local directory, a .gguf file or a bundled model ({', '.join(bundled_names())})")
    return f"{repo_id}: could not fetch it from the hub ({_first_line(exc)})"


def _load_error(spec: str, exc: Exception, what: str, dtype: str | None = None) -> str:
    """One line for an exception raised while loading `what` of `spec`."""
    text = " ".join(str(e) for e in _chain(exc))
    if any(isinstance(e, (MemoryError, torch.OutOfMemoryError)) for e in _chain(exc)) or re.search(
            r"out of memory|can't allocate memory|not enough memory", text, re.I):
        return f"{spec}: out of memory loading {what}{f' in {dtype}' if dtype else ''} ({_first_line(exc)})"
    if "trust_remote_code" in text:
        return f"{spec}: this model runs its own code from its repository; pass --trust-remote-code if you trust it"
    if re.search(r"not supported|unrecognized|does not recognize|unknown architecture", text, re.I):
        return f"{spec}: unsupported architecture ({_first_line(exc)})"
    return f"{spec}: could not load {what} ({_first_line(exc)})"


def _chain(exc: BaseException) -> list[BaseException]:
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
