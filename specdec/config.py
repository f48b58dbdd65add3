"""Every default, defined once. The CLI, the app and the library read them from here."""

from __future__ import annotations

from dataclasses import dataclass, field

BUNDLED_TARGET = "qwen2.5-coder-1.5b-instruct"
BUNDLED_DRAFT = "qwen2.5-coder-0.5b-instruct"
# What the bundled specs are, upstream: the id a serving engine loads, whether that architecture ties
# lm_head to the embedding (both do: config.json "tie_word_embeddings": true), and what was measured here
# instead — a Q4_K_M GGUF de-quantised to float32, saved untied (its config says false).
ORIGINAL_MODELS = {
    BUNDLED_TARGET: {"id": "Qwen/Qwen2.5-Coder-1.5B-Instruct", "tie_word_embeddings": True, "local_untied": True,
                     "local_weights": "Q4_K_M GGUF, de-quantised"},
    BUNDLED_DRAFT: {"id": "Qwen/Qwen2.5-Coder-0.5B-Instruct", "tie_word_embeddings": True, "local_untied": True,
                    "local_weights": "Q4_K_M GGUF, de-quantised"},
}

DEFAULT_METHODS = ("draft", "prompt-lookup")
DEFAULT_DRAFT_LENGTHS = (2, 4, 6)
MAX_DRAFT_LENGTH = 16
# How a run measures (specdec/traces): "traced" derives every method × γ's greedy rounds exactly from one
# batched target generation with the drafters teacher-forced along it, timing them with the cost model of
# a few prompts also run for real ("real_prompts", which double as the check); "real" runs the decoder
# on every prompt × configuration. Sampling (temperature > 0) always runs real.
MODES = ("traced", "real")
DEFAULT_MODE = "traced"
DEFAULT_REAL_PROMPTS = 4
# The real subset's budget: a method whose drafting, on the subset's earlier prompts, cost more than
# REAL_SLOW_FACTOR target steps per accepted token (a half-depth layer-skip drafter that accepts 1 token in 60)
# runs the later ones at γ ≤ REAL_SLOW_GAMMA. An accepted token saves at most one target step, so it loses at
# every γ there; at acceptance near 0 a round of γ drafts emits one token, and its γ 8 run alone took 100 s of a
# 50-prompt run's 14 min. γ 1 and 2 still give its draft line two drafted lengths; the verify curve comes from
# the other methods.
REAL_SLOW_FACTOR = 2.0
REAL_SLOW_GAMMA = 2
# Timed target passes per verify length the real subset measured in fewer than VERIFY_CURVE_MIN_ROUNDS rounds
# (traces.probe): the verify cost is a staircase in length on a CPU, so a traced γ is never priced by the line.
VERIFY_PROBE_PASSES = 8
TRACE_BATCH = 32  # prompts generated together; more rows amortise each weight read further (benchmarks/traced.py)
TRACE_BATCH_POSITIONS = 65_536  # cache positions (rows × longest prompt + output) a trace batch may hold
PREFILL_GROUP_POSITIONS = 512  # prompts prefilled in one forward: rows × longest (traces.generate.prefill_groups)
PREFILL_GROUP_PAD = 0.25  # … while the group's pads stay within this share of its real tokens
DEFAULT_MAX_NEW_TOKENS = 64
DEFAULT_SEED = 0
DEFAULT_DEVICE = "auto"
DEFAULT_DTYPE = "auto"  # bfloat16 where the CPU/GPU supports it, else float32

# Prompt lookup (Saxena 2023; HF `prompt_lookup_num_tokens`, vLLM `ngram`): try the
# longest n-gram first, down to the shortest.
PROMPT_LOOKUP_MAX_NGRAM = 3
PROMPT_LOOKUP_MIN_NGRAM = 1

# Suffix decoding (Oliaro et al. 2024; specdec/decoding/suffix.py): vLLM's defaults
# (suffix_decoding_max_tree_depth, _max_spec_factor, _min_token_prob), so the snippet serves what was measured.
SUFFIX_MAX_TREE_DEPTH = 24  # D: the match and the draft together span at most D tokens
SUFFIX_MAX_SPEC_FACTOR = 1.0  # a match of m tokens drafts at most ⌊factor · m⌋
SUFFIX_MIN_TOKEN_PROB = 0.1  # stop drafting where the path's empirical probability falls below this

# Layer-skip self-drafting (Draft & Verify, Zhang et al. 2023; LayerSkip, Elhoushi et al. 2024): the
# target's first L layers draft. No --layer-skip-layers → this share of the target's layers.
LAYER_SKIP_DEFAULT_FRACTION = 0.5

# Medusa heads (Cai et al. 2024), trained on the user's workload by self-distillation (specdec/medusa.py).
MEDUSA_HEADS = 3  # K: head k predicts the token k+1 positions ahead of the target's next token
MEDUSA_STEPS = 300  # optimiser steps
MEDUSA_BATCH = 64  # positions per step
MEDUSA_LR = 1e-3
MEDUSA_TRAIN_SHARE = 0.5  # of the workload's prompts, per category; the rest measure the heads
MEDUSA_TRAIN_TOKENS = 96  # target continuation tokens generated per training prompt
MEDUSA_EVAL_PROMPTS = 8  # held-out prompts the head accuracy is scored on
# Medusa's typical acceptance (Cai et al. 2024, §2.3.1; the Medusa repository's posterior_threshold and
# posterior_alpha): accept a drafted token while p(x) > min(ε, δ·exp(−H(p))). Lossy, so opt-in only.
MEDUSA_TYPICAL_EPSILON = 0.09
MEDUSA_TYPICAL_DELTA = 0.3

MAX_WORKLOAD_BYTES = 50 * 1024 * 1024

# Bounds on what a user's input can ask for (issue 20): each checked once, by the loader, the run
# configuration and the results validator alike, so nothing is measured that cannot be stored.
MAX_WORKLOAD_LINES = 1_000_000  # a prompt file with more lines is refused before it is split
MAX_WORKLOAD_RECORDS = 100_000  # prompts + skipped records in one file (~70 MB of Prompt objects)
MAX_PROMPT_CHARS = 1_000_000  # one prompt's text (results.json's "prompt" field holds the same cap)
MAX_PROMPT_TOKENS = 262_144  # a prompt's tokens after the chat template (longer ones keep their tail)
MAX_NEW_TOKENS = 4096  # tokens generated per prompt, CLI and app
MAX_RESULTS_DRAFT_LENGTH = 4 * MAX_DRAFT_LENGTH  # γ in a results file (engines may draft further than we measure)
TRUST_REMOTE_CODE_ENV_VAR = "SPECDEC_TRUST_REMOTE_CODE"  # "1": the app may run model code from the hub (the CLI: --trust-remote-code)
MAX_LISTED = 20  # warnings of one kind printed one by one; the rest are counted


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
    drafts: tuple[str, ...] = (BUNDLED_DRAFT,)  # several draft models are measured side by side
    methods: tuple[str, ...] = DEFAULT_METHODS  # families (specdec.methods.FAMILIES)
    layer_skip_layers: tuple[int, ...] = ()  # empty: LAYER_SKIP_DEFAULT_FRACTION of the target's layers
    medusa_heads: str | None = None  # directory of heads saved by `train-heads`; needed for "medusa"
    medusa_typical: bool = False  # also measure the heads with typical acceptance ("medusa:typical"; lossy)
    draft_lengths: tuple[int, ...] = DEFAULT_DRAFT_LENGTHS
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    max_prompts: int | None = None
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    seed: int = DEFAULT_SEED
    dtype: str = DEFAULT_DTYPE
    device: str = DEFAULT_DEVICE
    mode: str = "real"  # MODES; run_config() picks DEFAULT_MODE for greedy runs
    real_prompts: int = DEFAULT_REAL_PROMPTS  # traced mode: prompts also run for real (timing + check)
    responses: bool = False  # traced mode: score the file's logged responses instead of generating

    @property
    def draft(self) -> str | None:
        """The first draft model: what a run with one draft model calls `models.draft`."""
        return self.drafts[0] if self.drafts else None

# Model cache: converted bundled/GGUF models live under $SPECDEC_CACHE, else $XDG_CACHE_HOME/specdec,
# else ~/.cache/specdec (see specdec/measure/bundled.py).
CACHE_ENV_VAR = "SPECDEC_CACHE"

# results.json (specdec/results.py) and the run history (specdec/store.py).
RESULTS_SCHEMA_VERSION = 2  # 2 adds the optional `engine` block (engine-run) and traced runs; version-1 files still load
MAX_RESULTS_BYTES = 512 * 1024 * 1024  # a results file larger than this is refused before parsing
MAX_TEXT_CHARS = 1_000_000  # a prompt or a generated text
MAX_ID_CHARS = 200  # prompt ids, run ids, categories
MAX_FIELD_CHARS = 4096  # any other string: paths, model specs, versions, dates
RUN_STATUSES = ("running", "complete", "interrupted", "failed")  # failed: manifest.error says why
STORE_ENV_VAR = "SPECDEC_STORE"  # path of the run store; else $XDG_DATA_HOME/specdec, else ~/.local/share/specdec
STORE_FILENAME = "runs.sqlite"
STORE_BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another writer before giving up

# A busy machine (specdec/measure/machine.py). A process taking a share s of the cores slows each timed
# step by up to s; configurations are interleaved per prompt, so a steady load cancels in SD ÷ baseline, but
# load that comes and goes does not, and the decision's margin is 5% (MIN_SPEEDUP_LO). A run is flagged when
# other processes used more than a tenth of the cores on average, or when a fixed reference step's time
# moved by more than 10% during the run — beyond either, the ratio's error can exceed that margin.
BUSY_OTHER_CPU_SHARE = 0.10
REFERENCE_DRIFT_MAX = 0.10
REFERENCE_DRIFT_GROUPS = 3  # the drift compares the medians of this many consecutive stretches of the run
REFERENCE_TOKENS = 16  # the reference step: one target forward over this many fixed tokens
REFERENCE_REPEATS = 3  # its median of this many (≈ 3 × 0.1–0.3 s for the bundled target on a CPU)

# Workloads (specdec/workloads.py)
DEFAULT_CATEGORY = "uncategorised"  # for prompts whose file gives no category
# First use and loading, for the Run page's estimate (specdec/measure/runplan.setup_estimate), measured on
# this 2-core machine with the bundled pair (see specdec/measure/bundled.py): GGUF bytes converted per
# second (joining parts, header, de-quantising, writing safetensors, tokenizer), and seconds to load a
# converted model per byte of its GGUF (reading bf16 safetensors, casting, timing the matmul backends).
# Measured: the pair's 1.61 GB converted in 179 s (112 + 67) at load average 9–11, before the header parse
# went from ~40 s to ~1 s a model. LOAD_S_PER_GGUF_BYTE is an assumption, not yet measured here.
CONVERT_BYTES_PER_S = 10e6
LOAD_S_PER_GGUF_BYTE = 15.0 / 1e9
LOAD_BYTES_PER_S = 150e6  # a local HF directory's weight files

# dtype of converted GGUF weights in the cache. bfloat16 halves disk and load time; the rounding it adds
# (~0.4% per weight) is far below the 4-bit quantisation error already in the GGUF.
CACHE_DTYPE = "bfloat16"

# Analysis and decision (specdec/analysis/: summary, projection, hardware, decision)
BOOTSTRAP_SAMPLES = 2000  # resamples of prompts for every confidence interval
BOOTSTRAP_SEED = 0  # fixed so the same results.json always gives the same intervals
# Resamples for the decision's tests (analysis.inference): a family of 120 tests (3 methods × 8 γ × 5
# categories) needs p-values near 0.025/50 resolved; their first BOOTSTRAP_SAMPLES rows are the intervals' own.
TEST_BOOTSTRAP_SAMPLES = 20000
CI_LEVEL = 0.95
MIN_CI_PROMPTS = 8  # fewer prompts → no interval at all ("too few"): coverage below 93% (benchmarks/coverage.py)
HETEROGENEITY_ALPHA = 0.05  # categories are judged apart only when a permutation test says they differ
HETEROGENEITY_PERMUTATIONS = 999
SPEEDUP_CI_HALFWIDTH = 0.05  # sample-size adequacy: prompts needed for a speedup CI of ±this
ALPHA_DISAGREEMENT = 0.05  # α estimates further apart than this → acceptance is not i.i.d.
PROJECTION_MAX_GAMMA = 12  # draft lengths projected beyond those run: 1 … max(this, largest run)
WHATIF_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
WHATIF_DTYPE = "bfloat16"  # weights and KV cache on the serving hardware
DEFAULT_HARDWARE = "H100-SXM"  # the profile the decision projects onto unless told otherwise
DEFAULT_CONCURRENCY = (1, 64)  # the deployment's range of concurrent sequences (CLI --concurrency 1-64)
GPU_LAYER_LATENCY_S = 10e-6  # per transformer layer per forward on a GPU profile without an engine
GPU_FORWARD_OVERHEAD_S = 0.0  # per forward, same (engine profiles below set both)
# Engine constants, calibrated against published runs (specdec/analysis/calibration.py holds the cases and
# prints projected vs published; tests/test_calibration.py checks each within its tolerance):
# vLLM (CUDA graphs: launches of a whole forward replayed at once, so per-layer cost is small, and a fixed
# cost per step for scheduling, sampling and the graph launch) — fitted to the vLLM blog's Llama-3-70B on
# 4×H100 speculative run (≈1.5× at batch 1, ≈0.87× at 128; blog.vllm.ai, Oct 2024), with the τ and draft
# stated there as assumptions.
VLLM_FORWARD_OVERHEAD_S = 1.7e-3  # grid fit: max error 0.5% over the two batch sizes
VLLM_LAYER_LATENCY_S = 40e-6  # includes what the 8 µs all-reduce latency misses
VLLM_SOURCE = "fitted to the vLLM blog's Llama-3-70B 4×H100 speculative run (blog.vllm.ai, 2024-10)"
# Hugging Face transformers in eager mode (Spec-Bench's harness: every kernel launched from Python, one
# forward ≈ a dozen launches per layer plus generate()'s per-step logits processing) — fitted to Spec-Bench's
# speculative sampling with Vicuna-7B + vicuna-68m on A100 (1.49×) and RTX 3090 (1.83×) (Xia et al. 2024,
# Findings of ACL, Table/leaderboard at github.com/hemingkx/Spec-Bench).
HF_FORWARD_OVERHEAD_S = 1.2e-3  # grid fit: max error 1.8% over A100 and RTX 3090
HF_LAYER_LATENCY_S = 30e-6
HF_SOURCE = "fitted to Spec-Bench SpS, Vicuna-7B + vicuna-68m, A100 and RTX 3090 (Xia et al. 2024)"
GPU_ALLREDUCE_S = 8e-6  # one small-message all-reduce over NVLink (NCCL/custom all-reduce latency, µs range)
GPU_LINK_GBS = 450.0  # NVLink 4 per direction on H100 SXM (NVIDIA H100 datasheet: 900 GB/s bidirectional)
MIN_SPEEDUP_LO = 1.05  # a segment is "on" when the speedup CI's lower bound reaches this
MIN_PROMPTS = 20  # fewer prompts in the whole run → INSUFFICIENT-EVIDENCE
MIN_PROMPTS_PER_SEGMENT = 8  # a category with fewer prompts gets no verdict of its own
MIN_PROJECTED_SPEEDUP = 1.05  # what-if: batch sizes projected below this are "off"
MIN_IDENTICAL_RATE = 0.95  # greedy float32 runs must reproduce the baseline this often
VERIFY_CURVE_MIN_ROUNDS = 5  # a verify-curve point measured on fewer rounds is replaced by the fitted line
WHATIF_BANDWIDTH_EFFICIENCY = 0.8  # share of peak memory bandwidth a decode step achieves on a GPU
WHATIF_BANDWIDTH_EFFICIENCY_RANGE = (0.6, 0.9)  # the sensitivity band's low and high bandwidth efficiency
PROJECTION_BOOTSTRAP = 400  # resamples of measured acceptance pushed through the hardware model
WHATIF_COMPUTE_EFFICIENCY = 0.6  # share of peak dense tensor FLOPS a large-batch step achieves on a GPU
WHATIF_MEMORY_HEADROOM = 0.9  # weights + KV cache must fit in this share of device memory
PROJECTION_TRUST_ERROR = 0.10  # projection off by more than this at a measured γ → its other γ values are flagged

# Charts and the PDF brief (specdec/present/: charts, chart_images, report)
CHART_WIDTH_PX = 900  # figure size in CSS pixels: 900 px over a 180 mm A4 text width keeps 15 px type ≈ 8.5 pt
CHART_HEIGHT_PX = 460
CHART_FONT_PX = 15
CHART_SCALE = 2.0  # PNG pixels per CSS pixel: ≈ 250 dpi on the page
CHART_TIMEOUT_S = 30.0  # one chart export; a hung browser is given up on after this
BROWSER_START_TIMEOUT_S = 60.0  # launching the headless browser (a cold start on a busy 2-core box takes ~6 s)
BROWSER_ENV_VAR = "BROWSER_PATH"  # a Chrome/Chromium executable; else chromium, chromium-browser, google-chrome on PATH
BRIEF_PAGE_FORMAT = "A4"  # or "Letter"

# Serving-engine backend (specdec/engines/): `engine-run` against llama-server, vLLM, SGLang, …
ENGINE_CONCURRENCY = (1, 2, 4, 8)  # closed-loop levels: this many requests in flight at once
MAX_ENGINE_CONCURRENCY = 4096  # the largest load level accepted (as the deployment's concurrency range)
ENGINE_DRAFT_LENGTHS = (2, 4)  # γ per speculative server (llama.cpp --spec-draft-n-max)
ENGINE_CONNECT_TIMEOUT_S = 10.0  # TCP connect to an endpoint
ENGINE_READ_TIMEOUT_S = 120.0  # silence on an open stream before the request is given up
ENGINE_REQUEST_TIMEOUT_S = 600.0  # one whole request, first byte to last
ENGINE_RETRIES = 2  # extra tries for a request refused before any byte came back (connection refused, 502/503)
ENGINE_RETRY_BACKOFF_S = 1.0  # doubled after each retry
ENGINE_START_TIMEOUT_S = 300.0  # a local llama-server loading both models and answering /health
LLAMA_CPP_PYTHON_VERSION = "0.3.36"  # PyPI sdist whose vendored llama.cpp tree builds our llama-server
LLAMA_SERVER_ENV_VAR = "SPECDEC_LLAMA_SERVER"  # a llama-server binary to use instead of the built one
LLAMA_SERVER_CTX_PER_SLOT = 2048  # KV cache tokens per parallel slot (-c = this × -np)
LLAMA_SERVER_MAX_SLOTS = 64  # -np cap: 64 × 2048 tokens of KV is ≈ 3.7 GB for the bundled 1.5B target in f16
