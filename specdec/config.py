"""Every default, defined once. The CLI, the app and the library read them from here."""

from __future__ import annotations

from dataclasses import dataclass, field

BUNDLED_TARGET = "qwen2.5-coder-1.5b-instruct"
BUNDLED_DRAFT = "qwen2.5-coder-0.5b-instruct"

METHODS = ("draft", "prompt-lookup")
DEFAULT_METHODS = ("draft", "prompt-lookup")
DEFAULT_DRAFT_LENGTHS = (2, 4, 6)
DEFAULT_MAX_NEW_TOKENS = 64
DEFAULT_SEED = 0
DEFAULT_DEVICE = "auto"
DEFAULT_DTYPE = "auto"  # bfloat16 where the CPU/GPU supports it, else float32

# Prompt lookup (Saxena 2023; HF `prompt_lookup_num_tokens`, vLLM `ngram`): try the
# longest n-gram first, down to the shortest.
PROMPT_LOOKUP_MAX_NGRAM = 3
PROMPT_LOOKUP_MIN_NGRAM = 1

MAX_WORKLOAD_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class SamplingConfig:
    """temperature == 0 means greedy. top_k == 0 and top_p == 1.0 disable those warpers."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass(frozen=True)
class RunConfig:
    """One benchmark run: the baseline plus every method × γ on every prompt."""

    target: str = BUNDLED_TARGET
    draft: str = BUNDLED_DRAFT
    methods: tuple[str, ...] = DEFAULT_METHODS
    draft_lengths: tuple[int, ...] = DEFAULT_DRAFT_LENGTHS
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    max_prompts: int | None = None
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    seed: int = DEFAULT_SEED
    dtype: str = DEFAULT_DTYPE
    device: str = DEFAULT_DEVICE

# Workloads (specdec/workloads.py)
DEFAULT_CATEGORY = "uncategorised"  # for prompts whose file gives no category
FEW_PROMPTS_PER_CATEGORY = 8  # fewer in a category → warn its numbers are noisy (cf. MIN_PROMPTS_PER_SEGMENT)
