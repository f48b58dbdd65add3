"""A GGUF file → an HF directory (config, safetensors in CACHE_DTYPE, tokenizer, generation config), tensor by
tensor with progress, through a GGUF reader that parses the header in about a second. The cache around it
(where conversions live, locking, the bundled part packages) is specdec.measure.bundled.

Public API
    convert_gguf(gguf, out_dir, *, eos_tokens=(), pad_token=None, on_progress=None)
    dequantize_gguf(reader, cfg, on_tensor) -> {HF name: tensor}; one_gguf_reader(path) (context manager)
    gguf_reader(path) -> gguf.GGUFReader; drop_gguf_quantizer(model); Progress; quiet(stage, fraction)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from specdec import config
from specdec.errors import SpecdecError

Progress = Callable[[str, "float | None"], None]


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

    report = on_progress or quiet
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


def quiet(stage: str, fraction: float | None) -> None:
    pass
