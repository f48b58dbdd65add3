"""`python -m specdec …`: argument parsing and dispatch only; the work lives in the modules.

Each subcommand is a `_cmd_<name>(args) -> int` function. A SpecdecError becomes one line on
stderr and exit code 2; nothing the user typed produces a traceback.
"""

from __future__ import annotations

import argparse
import sys

from specdec import config
from specdec.errors import SpecdecError


def _csv(kind):
    def parse(text: str):
        try:
            return tuple(kind(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m specdec", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="measure baseline vs speculative decoding on a workload")
    run.add_argument("--workload", required=True, help="prompt file (CSV, TSV, JSONL, JSON, TXT)")
    run.add_argument("--out", required=True, help="output directory; results.json is written there")
    run.add_argument("--target", default=config.BUNDLED_TARGET, help="model spec: bundled name, hub id, directory or .gguf")
    run.add_argument("--draft", default=config.BUNDLED_DRAFT, help="draft model spec (same forms as --target)")
    run.add_argument("--methods", type=_csv(str), default=config.DEFAULT_METHODS, help="draft,prompt-lookup")
    run.add_argument("--draft-lengths", type=_csv(int), default=config.DEFAULT_DRAFT_LENGTHS, help="γ values, e.g. 2,4,6")
    run.add_argument("--max-new-tokens", type=int, default=config.DEFAULT_MAX_NEW_TOKENS)
    run.add_argument("--max-prompts", type=int, default=None, help="stratified sample of this many prompts")
    run.add_argument("--temperature", type=float, default=config.SamplingConfig.temperature, help="0 = greedy")
    run.add_argument("--top-p", type=float, default=config.SamplingConfig.top_p)
    run.add_argument("--top-k", type=int, default=config.SamplingConfig.top_k)
    run.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    run.add_argument("--dtype", choices=("auto", "bfloat16", "float32"), default=config.DEFAULT_DTYPE)
    run.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default=config.DEFAULT_DEVICE)
    run.add_argument("--resume", action="store_true", help="continue the run already in --out")
    run.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub")
    run.add_argument("--no-store", action="store_true", help="do not record the run in the run history")

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

    project = sub.add_parser("project", help="projected speedup for every γ (Leviathan Thm 3.8)")
    project.add_argument("--alpha", type=float, required=True)
    project.add_argument("--c", type=float, required=True, help="draft step cost / target step cost")
    project.add_argument("--max-gamma", type=int, default=16)
    project.add_argument("--json", action="store_true")

    decide = sub.add_parser("decide", help="go/no-go verdict from a results.json")
    decide.add_argument("--results", required=True)
    decide.add_argument("--json", action="store_true")

    brief = sub.add_parser("brief", help="build the PDF decision brief")
    src = brief.add_mutually_exclusive_group(required=True)
    src.add_argument("--results", help="results.json")
    src.add_argument("--run-id", help="a stored run id")
    brief.add_argument("--out", required=True, help="PDF path")
    return parser


def _cmd_run(args) -> int:
    from specdec import bench
    return bench.run_cli(args)


def _cmd_check_workload(args) -> int:
    import json
    from pathlib import Path

    from specdec import workloads
    work = workloads.load_workload(args.file, max_prompts=args.max_prompts, seed=args.seed, strict=args.strict,
                                   category_field=args.category_field)
    summary = work.summary()
    if args.tokenizer:
        from transformers import AutoTokenizer
        try:
            tokenizer = AutoTokenizer.from_pretrained(args.tokenizer, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise SpecdecError(f"{args.tokenizer}: cannot load a tokenizer from it ({str(exc).splitlines()[0]})")
        context = args.context_length
        config_json = Path(args.tokenizer) / "config.json"
        if context is None and config_json.is_file():
            context = json.loads(config_json.read_text()).get("max_position_embeddings")
        if context is None:
            raise SpecdecError(f"{args.tokenizer}: no config.json with max_position_embeddings; pass --context-length")
        summary["token_report"] = workloads.token_report(work, tokenizer, context - args.max_new_tokens)
    print(workloads.format_summary(summary))
    return 0


def _cmd_runs(args) -> int:
    raise SpecdecError("runs is not implemented yet")


def _cmd_project(args) -> int:
    raise SpecdecError("project is not implemented yet")


def _cmd_decide(args) -> int:
    raise SpecdecError("decide is not implemented yet")


def _cmd_brief(args) -> int:
    raise SpecdecError("brief is not implemented yet")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = globals()["_cmd_" + args.command.replace("-", "_")]
    try:
        return handler(args)
    except SpecdecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
