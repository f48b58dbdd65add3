"""`python -m specdec …`: argument parsing and dispatch only; the work lives in the modules.

The arguments are specdec.cli_args.build_parser; each subcommand is a `_cmd_<name>(args) -> int` function.
A SpecdecError becomes one line on stderr and exit code 2; nothing the user typed produces a traceback.
"""

from __future__ import annotations

import signal
import sys
import threading

from specdec import config
from specdec.cli_args import build_parser
from specdec.errors import SpecdecError


def _deployment(args):
    """The target from --deploy/--engine/--tp/--concurrency; None without --deploy and --concurrency (then the
    verdict is the library's default: measured here, segments projected onto --hardware)."""
    from specdec.analysis import deploy
    if args.deploy is None and args.concurrency is None:
        return None
    where = args.deploy or args.hardware
    conc = args.concurrency or ("1" if where == "this-machine" else "-".join(map(str, config.DEFAULT_CONCURRENCY)))
    return deploy.parse_deploy(where, args.engine, args.tp, conc)


def _quiet_transformers() -> None:
    # Our own progress line reports loading; transformers' per-shard tqdm bars would interleave with it.
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()


def _cmd_run(args) -> int:
    from specdec import store
    from specdec.measure import models
    from specdec.measure import runner
    from specdec.measure import workloads

    _quiet_transformers()
    cfg = _run_config(args)
    workload = workloads.load_workload(args.workload, max_prompts=args.max_prompts, seed=args.seed)
    for line in workload.warnings:
        print(_printable(f"note: {line}"), file=sys.stderr)
    progress = _ProgressLine()
    kw = dict(dtype=cfg.dtype, device=cfg.device, trust_remote_code=args.trust_remote_code,
              on_progress=progress.stage)
    target, drafts = models.load_with_drafts(cfg.target, cfg.drafts, **kw)
    db = None if args.no_store else store.Store()
    try:
        results = runner.execute(cfg, workload, target, drafts, out_dir=args.out, store=db, resume=args.resume,
                                 on_progress=progress.update)
    finally:
        progress.close()
        if db is not None:
            db.close()
    manifest = results["manifest"]
    for note in manifest.get("notes", []):  # prompts skipped, resume repairs, truncations: one line each
        print(_printable(f"note: {note}"), file=sys.stderr)
    print(f"{manifest['status']}: {len(results['prompts'])} prompts -> {args.out}/results.json "
          f"(run {manifest['run_id']})")
    return 0


def _run_config(args) -> config.RunConfig:
    from specdec.measure.runplan import run_config

    return run_config(target=args.target, draft=args.draft, methods=args.methods, draft_lengths=args.draft_lengths,
                      max_new_tokens=args.max_new_tokens, max_prompts=args.max_prompts, temperature=args.temperature,
                      top_p=args.top_p, top_k=args.top_k, seed=args.seed, dtype=args.dtype, device=args.device,
                      layer_skip_layers=args.layer_skip_layers, medusa_heads=args.medusa_heads,
                      medusa_typical=args.medusa_typical, mode=getattr(args, "mode", None),
                      real_prompts=getattr(args, "real_prompts", config.DEFAULT_REAL_PROMPTS),
                      responses=getattr(args, "responses", False))


def _cmd_engine_run(args) -> int:
    from pathlib import Path

    from specdec.engines import bench, run
    from specdec.measure import workloads

    if not args.engine and not (args.baseline_url and args.spec_url):
        raise SpecdecError("engine-run needs --engine llama.cpp, or both --baseline-url and --spec-url")
    if args.spec_url and not args.baseline_url:
        raise SpecdecError("--spec-url needs --baseline-url (the same model served without SD)")
    from specdec.engines.request import check_levels
    check_levels(args.concurrency, args.max_new_tokens, args.draft_lengths if args.engine else None)
    workload = workloads.load_workload(args.workload, max_prompts=args.max_prompts, seed=args.seed)
    for line in workload.warnings:
        print(_printable(f"note: {line}"), file=sys.stderr)
    plan = run.Plan(concurrency=tuple(sorted(set(args.concurrency))), max_new_tokens=args.max_new_tokens,
                    request_rate=args.request_rate, temperature=args.temperature, seed=args.seed, api=args.api)
    line = _ProgressLine()

    def progress(p: dict) -> None:
        line._write(f"{p['side']} C={p['concurrency']}: {p['done']}/{p['total']} requests, last "
                    f"{p['tokens_per_s']:.1f} tok/s", force=p["done"] == p["total"])

    try:
        block = bench.execute(workload, plan, Path(args.out), engine=args.engine, target=args.target,
                              draft=args.draft, draft_lengths=tuple(sorted(set(args.draft_lengths))),
                              baseline_url=args.baseline_url, spec_url=args.spec_url, model=args.model,
                              metrics_url=args.metrics_url, on_progress=progress,
                              on_note=lambda text: line._write(text, force=True))
    finally:
        line.close()
    print(f"{block['engine']} {block['version'] or ''} · model {block['model']} · {len(workload.prompts)} prompts × "
          f"{plan.max_new_tokens} tokens")
    print(f"{'γ':>3} {'C':>3}  {'base tok/s':>10}  {'SD tok/s':>9}  {'ratio (95% CI)':<22} {'ITL ratio':>9}  "
          f"{'α':>5}  {'τ':>5}")
    for r in block["levels"]:
        ci, itl = r["ratio"], r["itl_ratio"]
        print(f"{r['draft_length'] or '-':>3} {r['concurrency']:>3}  {r['baseline_tokens_per_s']:>10.2f}  "
              f"{r['sd_tokens_per_s']:>9.2f}  {_ratio_text(ci):<22} {_num(itl['estimate'], 3):>9}  "
              f"{_num(r['alpha'], 3):>5}  {_num(r['tau'], 2):>5}")
    print(block["decision"]["headline"])
    print(f"-> {args.out}/results.json")
    return 0


def _num(v, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _ratio_text(ci: dict) -> str:
    if ci["estimate"] is None:
        return "-"
    if ci["lo"] is None:
        return f"{ci['estimate']:.3f}×"
    return f"{ci['estimate']:.3f}× ({ci['lo']:.3f}–{ci['hi']:.3f})"


def _cmd_train_heads(args) -> int:
    from specdec.decoding import medusa
    from specdec.measure import models
    from specdec.measure import workloads

    _quiet_transformers()
    if args.heads < 1 or args.steps < 1 or args.batch < 1 or not 0 < args.train_share < 1 or args.lr <= 0:
        raise SpecdecError("--heads, --steps and --batch must be ≥ 1, --train-share in (0, 1), --lr > 0")
    if not 1 <= args.max_new_tokens <= config.MAX_NEW_TOKENS or args.heads > config.MAX_DRAFT_LENGTH:
        raise SpecdecError(f"--max-new-tokens must be from 1 to {config.MAX_NEW_TOKENS} and --heads at most "
                           f"{config.MAX_DRAFT_LENGTH}")
    workload = workloads.load_workload(args.workload, max_prompts=args.max_prompts, seed=args.seed)
    progress = _ProgressLine()
    target = models.load_model(args.target, dtype=args.dtype, device=args.device,
                               trust_remote_code=args.trust_remote_code, on_progress=progress.stage)
    try:
        report = medusa.fit(target, workload, args.out, num_heads=args.heads, steps=args.steps, batch=args.batch,
                            lr=args.lr, train_share=args.train_share, max_new_tokens=args.max_new_tokens,
                            seed=args.seed, on_progress=progress.steps)
    finally:
        progress.close()
    print(f"trained {report.heads} heads in {report.train_s:.0f} s (collecting {report.collect_s:.0f} s) on "
          f"{len(report.train_prompts)} prompts ({report.train_positions} positions); loss "
          f"{report.loss_first:.3f} → {report.loss_last:.3f}")
    for k, (t1, t5) in enumerate(zip(report.top1, report.top5), start=1):
        print(f"head {k} (token +{k + 1}): top-1 {t1:.1%}, top-5 {t5:.1%} on {len(report.eval_prompts)} held-out prompts")
    print(f"saved -> {args.out}")
    return 0


def _cmd_prepare(args) -> int:
    """Convert (or download) every model spec into the cache, so the first run only loads them."""
    import time
    from specdec.measure import models

    _quiet_transformers()
    specs = [args.target, *[d.strip() for d in (args.draft or "").split(",") if d.strip()]]
    for spec in dict.fromkeys(specs):
        progress = _ProgressLine()
        started = time.monotonic()
        try:
            source = models.resolve_spec(spec, trust_remote_code=args.trust_remote_code, on_progress=progress.stage)
        finally:
            progress.close()
        print(f"ready: {spec} -> {source.path} ({time.monotonic() - started:.0f} s)")
    return 0


class _ProgressLine:
    """One self-overwriting status line on stderr (a plain line per update when stderr is not a tty)."""

    def __init__(self):
        from specdec.measure.bundled import Pace
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self._pace = Pace()  # ETA of a stage that reports a fraction (conversion)

    def stage(self, stage: str, fraction: float | None = None) -> None:
        from specdec.measure.runner import _duration
        left = self._pace.eta_s(stage, fraction)
        text = stage if fraction is None else f"{stage} {fraction:.0%}" + (f"  ETA {_duration(left)}" if left else "")
        self._write(text, force=fraction in (None, 1.0))

    def steps(self, stage: str, done: int, total: int, detail: str = "") -> None:
        """A counted stage (train-heads): bar, count, detail and ETA from this stage's pace so far."""
        import time
        from specdec.measure.runner import _duration
        now = time.monotonic()
        if getattr(self, "_stage", None) != stage:
            self._stage, self._t0, self._d0 = stage, now, done
        rate = (done - self._d0) / (now - self._t0) if now > self._t0 and done > self._d0 else None
        eta = f"ETA {_duration((total - done) / rate)}" if rate else "ETA …"
        bar = "#" * int(24 * done / max(total, 1))
        self._write(f"{stage} [{bar:.<24}] {done}/{total} {detail}  {eta}", force=done == total)

    def update(self, progress) -> None:
        from specdec.measure.runner import format_progress
        self._write(f"{progress.stage}: {format_progress(progress)}", force=True)

    def _write(self, text: str, force: bool) -> None:
        import time
        now = time.monotonic()
        if not force and now - self.last < 0.5:
            return
        self.last = now
        print(f"\r\033[K{text}" if self.tty else text, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def _cmd_check_workload(args) -> int:
    import json
    from pathlib import Path

    from specdec.measure import workloads
    work = workloads.load_workload(args.file, max_prompts=args.max_prompts, seed=args.seed, strict=args.strict,
                                   category_field=args.category_field)
    summary = work.summary()
    if args.tokenizer:
        from transformers import AutoTokenizer
        if not Path(args.tokenizer).is_dir():
            raise SpecdecError(f"{args.tokenizer}: no such directory (--tokenizer takes a local model directory)")
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
    print(_printable(workloads.format_summary(summary)))
    return 0


def _cmd_runs(args) -> int:
    from specdec import results
    from specdec.store import Store

    def clean(value) -> str:
        # Stored strings may come from an imported file: never let them drive the terminal.
        text = "-" if value is None else str(value)
        return "".join(c if c.isprintable() else "?" for c in text)

    def size(n: int) -> str:
        scales = ((1e9, "B"), (1e6, "M"), (1e3, "K"))
        return next((f"{n / f:.1f}{unit}" for f, unit in scales if n >= f), str(n))

    def table(headers: list[str], rows: list[list]) -> str:
        cells = [[clean(v) for v in row] for row in rows]
        widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
        return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip()
                         for line in [headers, ["-" * w for w in widths], *cells])

    with Store() as store:
        command = args.runs_command
        if command == "list":
            runs = store.list_runs()
            if not runs:
                print(f"no runs in {store.path}")
                return 0
            print(table(["run_id", "created", "status", "target", "draft", "prompts", "methods", "workload"],
                        [[r["run_id"], r["created"], r["status"], r["target"], r["draft"], r["n_prompts"],
                          ",".join(r["methods"]), r["workload"]] for r in runs]))
        elif command == "show":
            run = store.load_run(args.run_id)
            m, s = run["manifest"], run["manifest"]["settings"]
            models = m["models"]
            print(f"run      {clean(m['run_id'])}  ({clean(m['status'])}; created {clean(m['created'])}, "
                  f"finished {clean(m['finished'])})")
            for role in ("target", "draft"):
                model = models[role]
                print(f"{role:<8} " + ("-" if model is None else
                      f"{clean(model['spec'])}  ({size(model['parameters'])} parameters, "
                      f"{clean(model['dtype'])}, {clean(model['device'])})"))
            print(f"workload {clean(s['workload'])}  ({len(run['prompts'])} prompts stored)")
            print(f"settings methods={clean(','.join(s['methods']))} γ={','.join(map(str, s['draft_lengths']))} "
                  f"max_new_tokens={s['max_new_tokens']} temperature={s['temperature']} top_p={s['top_p']} "
                  f"top_k={s['top_k']} seed={s['seed']} dtype={s['dtype']} device={clean(s['device'])}")
            counts = results.method_counts(run)
            if counts:
                print()
                print(table(["method", "γ", "prompts", "rounds", "drafted", "accepted", "new_tokens"],
                            [[c["method"], c["draft_length"], c["prompts"], c["rounds"], c["drafted"],
                              c["accepted"], c["new_tokens"]] for c in counts]))
        elif command == "export":
            store.export_json(args.run_id, args.out)
            print(f"wrote {args.out}")
        elif command == "import":
            try:
                print(f"imported run {clean(store.import_json(args.file))}")
            except SpecdecError as exc:
                if "already in the run store" not in str(exc):
                    raise
                run_id, added = store.add_missing(args.file)  # the file has prompts the stored run lacks
                print(f"run {clean(run_id)} was already stored: added {len(added)} prompt(s) it lacked "
                      f"({clean(', '.join(added[:5]))}{' …' if len(added) > 5 else ''})")
        elif command == "delete":
            store.delete_run(args.run_id)
            print(f"deleted run {clean(args.run_id)}")
    return 0


def _cmd_cache(args) -> int:
    from specdec.measure import bundled, cache

    def gb(n: int) -> str:
        return f"{n / 1e9:.2f} GB"

    if args.cache_command == "list":
        found = cache.entries()
        if not found:
            print(f"the model cache {bundled.cache_root()} is empty")
            return 0
        for e in found:
            kind = "bundled" if e["bundled"] else "unfinished" if not e["complete"] else "other"
            print(_printable(f"{gb(e['bytes']):>10}  {kind:<10}  {e['name']}  {e['source']}"))
        print(f"{gb(sum(e['bytes'] for e in found)):>10}  total in {_printable(str(bundled.cache_root()))}")
        return 0
    gone = cache.prune(args.names, everything=args.all)
    print(f"deleted {len(gone)} entr{'y' if len(gone) == 1 else 'ies'}, {gb(sum(e['bytes'] for e in gone))}")
    return 0


def _printable(text: str) -> str:
    """No control characters (terminal escape codes, carriage returns) from stored or user text."""
    return "".join(c if c.isprintable() or c in "\n\t" else "?" for c in text)


def _cmd_project(args) -> int:
    import json

    from specdec.analysis import projection
    by_gamma = projection.speedup_by_gamma(args.alpha, args.c, args.max_gamma)
    best, best_speedup = projection.best_gamma(args.alpha, args.c, args.max_gamma)
    if args.json:
        print(json.dumps({"alpha": args.alpha, "c": args.c, "best_gamma": best, "best_speedup": best_speedup,
                          "by_gamma": {str(g): s for g, s in by_gamma.items()}}))
        return 0
    print(f"Leviathan Thm 3.8, α = {args.alpha}, c = {args.c}")
    print(f"{'γ':>3}  {'τ':>6}  speedup")
    for g, s in by_gamma.items():
        mark = "  ← best" if g == best else ""
        print(f"{g:>3}  {projection.expected_tokens(args.alpha, g):6.3f}  {s:6.3f}×{mark}")
    print(f"best: γ = {best}, {best_speedup:.3f}×" if best else
          f"best: off — no γ ≤ {args.max_gamma} beats plain decoding (max {max(by_gamma.values()):.3f}×)")
    return 0


def _cmd_decide(args) -> int:
    import json

    from specdec import results
    from specdec.analysis import decision
    from specdec.analysis import hardware
    if args.hardware != hardware.THIS_MACHINE:
        hardware.profile(args.hardware)  # an unknown name is a one-line error before any work
    dep = _deployment(args)
    data = results.load(args.results)
    d = decision.decide(data, hardware=dep.hardware if dep else args.hardware, deployment=dep)
    check = _engine_check(data)
    if args.json:
        print(json.dumps({**d.to_dict(), **({"engine_check": check} if check else {})}, indent=2, ensure_ascii=False))
        return 0
    print(_printable(d.headline))
    print()
    for r in d.reasons:
        print(_printable(f"- {r}"))
    if check and check["rows"]:
        print("\nThe what-if checked against the engine run (throughput ratio, SD / baseline):")
        print(f"{'γ':>3} {'C':>3}  {'τ used':<22} {'projected':>9}  {'measured':>8}  {'error':>6}")
        for r in check["rows"]:
            print(f"{r['draft_length']:>3} {r['concurrency']:>3}  {r['tau']:.2f} ({r['tau_source']}){'':<{max(0, 14 - len(r['tau_source']))}}"
                  f" {r['projected']:>9.3f}  {r['measured']:>8.3f}  {100 * r['error']:>+5.0f}%")
    elif check:
        print(_printable(f"\nWhat-if vs the engine run: not checked — {check['note']}."))
    if d.snippets:
        print()
        print(f"Configuration to apply ({d.config['method']}, γ = {d.config['draft_length']}):")
        for engine, text in d.snippets.items():
            print(_printable(f"\n[{engine}]\n{text}"))
    return 0


def _engine_check(data: dict) -> dict | None:
    """analysis.engine_check for a results file that holds an engine run (None otherwise)."""
    if not data.get("engine"):
        return None
    from specdec.analysis import engine_check
    from specdec.analysis.summary import analyze
    return engine_check.projected_vs_measured(data, analyze(data) if data["prompts"] else None)


def _cmd_brief(args) -> int:
    from pathlib import Path

    from specdec import results
    from specdec.analysis import decision
    from specdec.analysis import hardware
    from specdec.present import report
    from specdec.store import Store
    if args.hardware != hardware.THIS_MACHINE:
        hardware.profile(args.hardware)  # an unknown name is a one-line error before any work
    dep = _deployment(args)
    if not args.batch_sizes or min(args.batch_sizes) < 1:
        raise SpecdecError("--batch-sizes must be positive integers, e.g. 1,8,64")
    if args.min_speedup <= 0 or args.min_prompts < 1:
        raise SpecdecError("--min-speedup must be > 0 and --min-prompts at least 1")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise SpecdecError(f"{out.parent}: no such directory for --out")
    if args.results:
        data = results.load(args.results)
    else:
        with Store() as store:
            data = store.load_run(args.run_id)
    th = decision.Thresholds(min_speedup_lo=args.min_speedup, min_prompts=args.min_prompts)
    pdf = report.build_brief(data, thresholds=th, hardware=dep.hardware if dep else args.hardware, deployment=dep,
                             batch_sizes=tuple(sorted(set(args.batch_sizes))),
                             charts_on=not args.no_charts, page_format=args.page,
                             on_warning=lambda line: print(f"note: {line}; the brief has no chart images",
                                                           file=sys.stderr))
    tmp = out.with_name(out.name + ".part")
    try:
        tmp.write_bytes(pdf)
        tmp.replace(out)  # a reader never sees half a PDF
    except OSError as exc:
        raise SpecdecError(f"{out}: cannot write ({exc.strerror or exc})") from None
    print(f"wrote {out} ({len(pdf) / 1024:.0f} KB)")
    return 0


def _terminated(signum, frame) -> None:
    """SIGTERM (kill, systemd, a CI timeout) ends a command as Ctrl-C does: the run is stored as
    interrupted and servers started for it are stopped, instead of Python dying without cleanup."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = globals()["_cmd_" + args.command.replace("-", "_")]
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)
    try:
        return handler(args)
    except SpecdecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `python -m specdec runs list | head`
        sys.stderr.close()
        return 0
