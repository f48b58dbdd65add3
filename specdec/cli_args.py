"""The command line's arguments: every subcommand of `python -m specdec` and its options (specdec.cli runs
them). Defaults come from specdec.config.

Public API
    build_parser() -> argparse.ArgumentParser
"""

from __future__ import annotations

import argparse

from specdec import config, methods

DESCRIPTION = "`python -m specdec …`: argument parsing and dispatch only; the work lives in the modules."


def _csv(kind):
    def parse(text: str):
        try:
            return tuple(kind(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m specdec", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="measure baseline vs speculative decoding on a workload")
    run.add_argument("--workload", required=True, help="prompt file (CSV, TSV, JSONL, JSON, TXT)")
    run.add_argument("--out", required=True, help="output directory; results.json is written there")
    run.add_argument("--target", default=config.BUNDLED_TARGET, help="model spec: bundled name, hub id, directory or .gguf")
    run.add_argument("--draft", default=config.BUNDLED_DRAFT,
                     help="draft model spec (same forms as --target); several, comma-separated, are compared")
    run.add_argument("--methods", type=_csv(str), default=config.DEFAULT_METHODS,
                     help="any of " + ",".join(methods.FAMILIES))
    run.add_argument("--layer-skip-layers", type=_csv(int), default=(),
                     help="layer-skip: draft with the target's first L layers, one run per L (e.g. 7,14,21); "
                          "default half the target's layers")
    run.add_argument("--medusa-heads", default=None, help="medusa: a directory written by `train-heads`")
    run.add_argument("--medusa-typical", action="store_true",
                     help="medusa: also measure Medusa's typical acceptance (LOSSY: the output drifts from the "
                          "target's; the run measures how far), on held-out prompts")
    run.add_argument("--draft-lengths", type=_csv(int), default=config.DEFAULT_DRAFT_LENGTHS, help="γ values, e.g. 2,4,6")
    run.add_argument("--max-new-tokens", type=int, default=config.DEFAULT_MAX_NEW_TOKENS)
    run.add_argument("--max-prompts", type=int, default=None, help="stratified sample of this many prompts")
    run.add_argument("--temperature", type=float, default=config.SamplingConfig.temperature, help="0 = greedy")
    run.add_argument("--top-p", type=float, default=config.SamplingConfig.top_p)
    run.add_argument("--top-k", type=int, default=config.SamplingConfig.top_k)
    run.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    run.add_argument("--dtype", choices=("auto", "bfloat16", "float32"), default=config.DEFAULT_DTYPE)
    run.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default=config.DEFAULT_DEVICE)
    run.add_argument("--mode", choices=config.MODES, default=None,
                     help="traced: every γ from one batched target pass per prompt, timed by a real subset "
                          "(default when greedy); real: the decoder on every prompt × configuration")
    run.add_argument("--real-prompts", type=int, default=config.DEFAULT_REAL_PROMPTS,
                     help="traced mode: prompts also run for real, for timing and the check")
    run.add_argument("--responses", action="store_true",
                     help="traced mode: score the file's logged responses (a 'response' field or the chat's final "
                          "assistant turn) instead of generating them")
    run.add_argument("--resume", action="store_true", help="continue the run already in --out")
    run.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub")
    run.add_argument("--no-store", action="store_true", help="do not record the run in the run history")

    eng = sub.add_parser("engine-run", help="measure SD on a serving engine under load (llama.cpp here, or any "
                         "OpenAI-compatible server by URL)")
    eng.add_argument("--workload", required=True, help="prompt file (CSV, TSV, JSONL, JSON, TXT)")
    eng.add_argument("--out", required=True, help="output directory; results.json is written (or merged) there")
    where = eng.add_mutually_exclusive_group()
    where.add_argument("--engine", choices=("llama.cpp",), help="start a local engine: llama-server, plain and with "
                       "the draft at each γ, on 127.0.0.1")
    where.add_argument("--baseline-url", help="an OpenAI-compatible server without SD, e.g. http://127.0.0.1:8000")
    eng.add_argument("--spec-url", help="the same model served with SD (with --baseline-url)")
    eng.add_argument("--metrics-url", default=None, help="where the SD server's /metrics is, if not at --spec-url")
    eng.add_argument("--model", default=None, help="model name to request (default: what /v1/models lists)")
    eng.add_argument("--target", default=config.BUNDLED_TARGET, help="--engine: bundled model name or .gguf file")
    eng.add_argument("--draft", default=config.BUNDLED_DRAFT, help="--engine: bundled model name or .gguf file")
    eng.add_argument("--draft-lengths", type=_csv(int), default=config.ENGINE_DRAFT_LENGTHS,
                     help="--engine: γ values, one speculative server each")
    eng.add_argument("--concurrency", type=_csv(int), default=config.ENGINE_CONCURRENCY,
                     help="closed-loop levels (requests in flight), e.g. 1,4,16,64")
    eng.add_argument("--request-rate", type=float, default=None,
                     help="open loop instead: Poisson arrivals at this many requests/s (concurrency caps in-flight)")
    eng.add_argument("--max-new-tokens", type=int, default=config.DEFAULT_MAX_NEW_TOKENS,
                     help="output tokens per request (max_tokens, with ignore_eos where the engine has it)")
    eng.add_argument("--max-prompts", type=int, default=None, help="stratified sample of this many prompts")
    eng.add_argument("--temperature", type=float, default=config.SamplingConfig.temperature, help="0 = greedy")
    eng.add_argument("--api", choices=("chat", "completions"), default="chat",
                     help="/v1/chat/completions (chat template applied by the engine) or /v1/completions")
    eng.add_argument("--seed", type=int, default=config.DEFAULT_SEED)

    heads = sub.add_parser("train-heads", help="train Medusa-style heads on a workload (self-distillation)")
    heads.add_argument("--workload", required=True, help="prompt file (CSV, TSV, JSONL, JSON, TXT)")
    heads.add_argument("--out", required=True, help="directory for heads.safetensors and medusa.json")
    heads.add_argument("--target", default=config.BUNDLED_TARGET)
    heads.add_argument("--heads", type=int, default=config.MEDUSA_HEADS, help="K: heads predicting 2 … K+1 ahead")
    heads.add_argument("--steps", type=int, default=config.MEDUSA_STEPS)
    heads.add_argument("--batch", type=int, default=config.MEDUSA_BATCH, help="positions per step")
    heads.add_argument("--lr", type=float, default=config.MEDUSA_LR)
    heads.add_argument("--train-share", type=float, default=config.MEDUSA_TRAIN_SHARE,
                       help="share of each category's prompts to train on; the rest score the heads")
    heads.add_argument("--max-new-tokens", type=int, default=config.MEDUSA_TRAIN_TOKENS,
                       help="target continuation tokens per prompt")
    heads.add_argument("--max-prompts", type=int, default=None)
    heads.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    heads.add_argument("--dtype", choices=("auto", "bfloat16", "float32"), default=config.DEFAULT_DTYPE)
    heads.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default=config.DEFAULT_DEVICE)
    heads.add_argument("--trust-remote-code", action="store_true")

    prep = sub.add_parser("prepare", help="convert the models once ahead of the first run (the bundled pair by default)")
    prep.add_argument("--target", default=config.BUNDLED_TARGET, help="model spec: bundled name, hub id, directory or .gguf")
    prep.add_argument("--draft", default=config.BUNDLED_DRAFT, help="draft model spec(s), comma-separated; '' for none")
    prep.add_argument("--trust-remote-code", action="store_true")

    check = sub.add_parser("check-workload", help="validate a prompt file and print its summary")
    check.add_argument("file")
    check.add_argument("--max-prompts", type=int, default=None)
    check.add_argument("--strict", action="store_true", help="a malformed line is fatal instead of skipped")
    check.add_argument("--category-field", default=None, help="field or column holding the category")
    check.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    check.add_argument("--tokenizer", default=None, help="local model or tokenizer directory: adds token counts "
                       "and the truncation check")
    check.add_argument("--max-new-tokens", type=int, default=config.DEFAULT_MAX_NEW_TOKENS)
    check.add_argument("--context-length", type=int, default=None,
                       help="model context in tokens (default: max_position_embeddings in the directory's config.json)")

    runs = sub.add_parser("runs", help="the run history: list, show, export, import, delete")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True)
    runs_sub.add_parser("list")
    for name in ("show", "delete"):
        runs_sub.add_parser(name).add_argument("run_id")
    export = runs_sub.add_parser("export")
    export.add_argument("run_id")
    export.add_argument("--out", required=True, help="results.json path")
    runs_sub.add_parser("import").add_argument("file")

    cache = sub.add_parser("cache", help="the converted-model cache: list, prune")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True)
    cache_sub.add_parser("list")
    prune = cache_sub.add_parser("prune", help="default: unfinished conversions and all but the bundled pair")
    prune.add_argument("names", nargs="*", help="entries to delete (names from `cache list`)")
    prune.add_argument("--all", action="store_true", help="delete every entry (the bundled pair converts again)")

    project = sub.add_parser("project", help="projected speedup for every γ (Leviathan Thm 3.8)")
    project.add_argument("--alpha", type=float, required=True)
    project.add_argument("--c", type=float, required=True, help="draft step cost / target step cost")
    project.add_argument("--max-gamma", type=int, default=16)
    project.add_argument("--json", action="store_true")

    decide = sub.add_parser("decide", help="go/no-go verdict from a results.json")
    decide.add_argument("--results", required=True)
    decide.add_argument("--hardware", default=config.DEFAULT_HARDWARE,
                        help="serving hardware to project batch sizes onto (H100-SXM, A100-80GB, L4, A10G, RTX-4090, this-machine)")
    _deploy_args(decide)
    decide.add_argument("--json", action="store_true")

    brief = sub.add_parser("brief", help="build the PDF decision brief")
    src = brief.add_mutually_exclusive_group(required=True)
    src.add_argument("--results", help="results.json")
    src.add_argument("--run-id", help="a stored run id")
    brief.add_argument("--out", required=True, help="PDF path")
    brief.add_argument("--hardware", default=config.DEFAULT_HARDWARE,
                       help="serving hardware to project onto (H100-SXM, A100-80GB, L4, A10G, RTX-4090, this-machine)")
    brief.add_argument("--batch-sizes", type=_csv(int), default=config.WHATIF_BATCH_SIZES,
                       help="batch sizes for the what-if, e.g. 1,8,64")
    brief.add_argument("--min-speedup", type=float, default=config.MIN_SPEEDUP_LO,
                       help="a segment is on when its speedup CI lower bound reaches this")
    brief.add_argument("--min-prompts", type=int, default=config.MIN_PROMPTS,
                       help="prompts needed for a confident verdict")
    _deploy_args(brief)
    brief.add_argument("--page", choices=("A4", "Letter"), default=config.BRIEF_PAGE_FORMAT)
    brief.add_argument("--no-charts", action="store_true", help="leave chart images out (no browser needed)")
    return parser


def _deploy_args(p) -> None:
    """The deployment target the verdict is about (specdec.analysis.deploy)."""
    p.add_argument("--deploy", default=None, metavar="HARDWARE",
                   help="make the verdict about this target: H100-SXM, A100-80GB, L4, A10G, RTX-4090, RTX-3090 or "
                        "this-machine (without it: the speedup measured here decides)")
    p.add_argument("--engine", default="vllm", help="serving engine of the target: vllm, sglang, hf-eager")
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel degree of the target (GPUs per replica)")
    p.add_argument("--concurrency", default=None,
                   help="range of concurrent sequences, e.g. 1-64 (default 1-64; 1 for this-machine)")
