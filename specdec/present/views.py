"""Data shaped for the app's screens: which runs exist, what one run's outputs look like side by side,
and the draft-then-verify cycle of one generation, round by round. Pure functions over results
dicts and analysis tables; the pages only lay them out.

Public API
    REPO_ROOT, SAMPLE_DIR, EXAMPLE_RESULTS
    sample_workload_files(folder=SAMPLE_DIR) -> [Path]
    example_results_path() -> Path | None        the recorded example run shipped in sample_workloads/, or None
    results_from_bytes(data, name) -> dict       a validated results dict from an upload
    run_facts(manifest) -> dict                  hardware, date, models, workload: one line each
    stored_run_label(row) -> str                 one line for a Store.list_runs() row
    configurations(results) -> [(method, γ)]
    config_label(analysis, (method, γ)) -> str    'draft model (a) γ=4'
    method_table(analysis) -> DataFrame            every method at its best γ (compare.methods_table), for display
    best_choice_rows(analysis) -> DataFrame        the best method × γ per category, for display
    outputs_table(results, method, γ) -> DataFrame   baseline vs speculative text per prompt
    verify_cycles(results, prompt_id, method, γ) -> [dict]   one entry per target verify pass
    token_pieces(ids, tokenizer=None) -> [str]   printable text per token id (ids when no tokenizer)
    load_tokenizer(manifest) -> tokenizer | None  the target's tokenizer, from its local files only
    prompt_metrics(analysis) -> DataFrame, prompt_metrics_csv(analysis) -> bytes
"""

from __future__ import annotations

import os
import tempfile
import re
from pathlib import Path

import pandas as pd

from specdec import config, methods
from specdec.analysis import compare
from specdec.analysis import costs
from specdec import results as R
from specdec.errors import SpecdecError
from specdec.measure.workloads import EXTENSIONS

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = REPO_ROOT / "sample_workloads"
EXAMPLE_RESULTS = SAMPLE_DIR / "example_run" / "results.json"


def sample_workload_files(folder: Path = SAMPLE_DIR) -> list[Path]:
    """Prompt files in the sample folder (any format load_workload reads; READMEs left out)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in EXTENSIONS and p.stem.lower() != "readme")


def example_results_path() -> Path | None:
    """The recorded example run shipped in sample_workloads/, or None where it is absent (tests point it elsewhere)."""
    return EXAMPLE_RESULTS if EXAMPLE_RESULTS.is_file() else None


def results_from_bytes(data: bytes, name: str = "upload") -> dict:
    """Validate uploaded bytes as a results.json (the same checks as results.load); errors name the upload."""
    fd, tmp = tempfile.mkstemp(suffix=".json")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return R.load(tmp)
    except SpecdecError as exc:
        raise SpecdecError(str(exc).replace(tmp, name)) from None
    finally:
        os.unlink(tmp)


def run_facts(manifest: dict) -> dict:
    """Where and when a run was measured, in words: hardware, date, models, workload, settings."""
    hw = manifest.get("hardware", {}) or {}
    s = manifest.get("settings", {}) or {}
    models = manifest.get("models", {}) or {}
    wl = manifest.get("workload", {}) or {}
    cores = hw.get("cores")
    hardware = ", ".join(x for x in (
        hw.get("cpu"), f"{cores} cores" if cores else None, hw.get("gpu") or "no GPU",
        f"{hw['memory_gb']:g} GB RAM" if hw.get("memory_gb") else None) if x)
    target = (models.get("target") or {}).get("spec", "?")
    info = costs.drafters(manifest)
    drafts = [d.get("spec") for k, d in info.items() if methods.spec(k).own_network and d.get("spec")]
    if not info and (models.get("draft") or {}).get("spec"):
        drafts = [models["draft"]["spec"]]
    # One name per drafter: Medusa's :train and :typical rows (not decidable) are the same heads measured differently.
    others = [methods.label(k, info) for k in info
              if methods.uses_model(k) and not methods.spec(k).own_network and methods.decidable(k)]
    draft = ", ".join(drafts)
    sampling = "greedy" if float(s.get("temperature", 0.0)) <= 0 else (
        f"sampling T={s.get('temperature')}, top-p={s.get('top_p')}")
    return {
        "run_id": manifest.get("run_id", "?"), "status": manifest.get("status", "?"),
        "date": str(manifest.get("created", "?"))[:10], "created": manifest.get("created", "?"),
        "hardware": hardware or "unknown hardware",
        "models": f"{target}" + (f" + draft {draft}" if draft else "") + "".join(f" + {o}" for o in others),
        "workload": f"{wl.get('name') or Path(str(s.get('workload', '?'))).name}",
        "settings": (f"{', '.join(s.get('methods', []))}; γ {', '.join(map(str, s.get('draft_lengths', [])))}; "
                     f"{s.get('max_new_tokens', '?')} new tokens; {sampling}; {s.get('dtype', '?')}"),
    }


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:])")


def md_escape(text) -> str:
    """Text shown through Markdown, literally: every character Markdown or Streamlit could read as
    syntax (links, images, emphasis, HTML, LaTeX `$`, emoji shortcodes `:x:`) is backslash-escaped and
    newlines become spaces, so a model, workload or category name renders as the text it is."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def model_name(spec: str | None) -> str:
    """A model spec as a short name: the last part of a path, a hub id or bundled name as is."""
    if not spec:
        return "?"
    text = str(spec).rstrip("/")
    return Path(text).name if ("/" in text and (text.startswith(("/", ".", "~")) or Path(text).exists())) else text


def stored_run_label(row: dict) -> str:
    """'2026-11-22 07:56 · mixed.jsonl · 12 prompts · target + draft · complete' for Store.list_runs() rows
    (model directories by their last path part)."""
    created = str(row.get("created", ""))[:16].replace("T", " ")
    workload = Path(str(row.get("workload") or "?")).name
    models = model_name(row.get("target")) + (f" + {model_name(row['draft'])}" if row.get("draft") else "")
    return f"{created} · {workload} · {row.get('n_prompts', 0)} prompts · {models} · {row.get('status', '?')}"


def configurations(results: dict) -> list[tuple[str, int]]:
    """Every (method, γ) measured in the run, in run order."""
    seen: dict[tuple[str, int], None] = {}
    for p in results.get("prompts", []):
        for run in p["runs"]:
            seen[(run["method"], int(run["draft_length"]))] = None
    return list(seen)


def config_label(analysis, config: tuple[str, int]) -> str:
    """A (method, γ) configuration in words, for pickers: 'draft model (a) γ=4'."""
    return f"{analysis.label(config[0])} γ={int(config[1])}"


def _find_run(prompt: dict, method: str, gamma: int) -> dict | None:
    return next((r for r in prompt["runs"] if r["method"] == method and r["draft_length"] == gamma), None)


def outputs_table(results: dict, method: str, gamma: int) -> pd.DataFrame:
    """Per prompt: id, category, prompt, baseline (text), speculative (text), identical (same token ids),
    first_divergence (index of the first differing token, None when identical), common_chars (length
    of the shared text prefix: where the texts part), baseline_tokens, speculative_tokens, measured ("real",
    "traced": derived by specdec.traces and timed by its cost model, or "logged response": a file's answer scored)."""
    rows = []
    for p in results.get("prompts", []):
        run = _find_run(p, method, gamma)
        if run is None:
            continue
        base, spec = p["baseline"]["tokens"], run["tokens"]
        same = base == spec
        first = None if same else next((i for i in range(min(len(base), len(spec))) if base[i] != spec[i]),
                                       min(len(base), len(spec)))
        rows.append({"id": p["id"], "category": p["category"], "prompt": p["prompt"],
                     "baseline": p["baseline"]["text"], "speculative": run["text"], "identical": same,
                     "first_divergence": first,
                     "common_chars": len(os.path.commonprefix([p["baseline"]["text"], run["text"]])),
                     "baseline_tokens": len(base), "speculative_tokens": len(spec),
                     "measured": "logged response" if p["baseline"].get("logged_response") else
                     "traced" if run.get("traced") else "real"})
    return pd.DataFrame(rows, columns=["id", "category", "prompt", "baseline", "speculative", "identical",
                                       "first_divergence", "common_chars", "baseline_tokens", "speculative_tokens",
                                       "measured"])


def verify_cycles(results: dict, prompt_id: str, method: str, gamma: int) -> list[dict]:
    """The draft-then-verify rounds of one generation. The first output token comes from the target's
    prefill; each round then covers the output from `start`:

        round, start (index in the output), drafted [ids], status per drafted token: "accepted",
        "rejected" (the first the target refused: the proposal is cut there) or "discarded" (after a
        rejection, never checked), beta [β per position or None], accepted (n), next_token (the token
        the target adds after the accepted run, None when EOS / max_new_tokens cut the round first),
        next_kind: "bonus" (every draft accepted: a free extra token), "resampled" (replaces the
        rejected draft: argmax of p when greedy, a draw from norm(max(0, p − q)) when sampling),
        "target step" (nothing was drafted), or "cut" (no room left), emitted [ids the round added],
        draft_ms, verify_ms.
    """
    prompt = next((p for p in results.get("prompts", []) if p["id"] == prompt_id), None)
    if prompt is None:
        raise SpecdecError(f"no prompt {prompt_id!r} in this run")
    run = _find_run(prompt, method, gamma)
    if run is None:
        raise SpecdecError(f"prompt {prompt_id!r} has no {method} γ={gamma} generation")
    tokens = run["tokens"]
    pos = min(1, len(tokens))
    out = []
    for i, r in enumerate(run["rounds"]):
        n, d = int(r["accepted"]), int(r["drafted"])
        emitted = int(r.get("emitted", min(n + 1, len(tokens) - pos)))
        new = tokens[pos: pos + emitted]
        status = ["accepted"] * n + (["rejected"] if n < d else []) + ["discarded"] * max(d - n - 1, 0)
        if emitted <= n:
            kind, nxt = "cut", None
        elif d == 0:
            kind, nxt = "target step", new[n]
        elif n == d:
            kind, nxt = "bonus", new[n]
        else:
            kind, nxt = "resampled", new[n]
        out.append({"round": i + 1, "start": pos, "drafted": list(r["draft_tokens"]), "status": status,
                    "beta": r.get("beta"), "accepted": n, "next_token": nxt, "next_kind": kind, "emitted": new,
                    "draft_ms": 1e3 * float(r["draft_s"]), "verify_ms": 1e3 * float(r["verify_s"])})
        pos += emitted
    return out


def token_pieces(ids: list[int], tokenizer=None) -> list[str]:
    """Each id as the text it stands for, whitespace made visible (␣ space, ⏎ newline, ⇥ tab);
    without a tokenizer, '#id'."""
    if tokenizer is None:
        return [f"#{i}" for i in ids]
    pieces = []
    for i in ids:
        try:
            text = tokenizer.decode([int(i)])
        except Exception:  # an id the tokenizer does not know (a mismatched tokenizer): show the id
            text = f"#{i}"
        pieces.append(text.replace(" ", "␣").replace("\n", "⏎").replace("\t", "⇥") or f"#{i}")
    return pieces


def load_tokenizer(manifest: dict):
    """The run's target tokenizer from the local directory it was loaded from, or None (moved, deleted,
    another machine). Local files only: never a download."""
    path = ((manifest.get("models") or {}).get("target") or {}).get("local_path")
    if not path or not Path(path).is_dir():
        return None
    try:
        from transformers import AutoTokenizer
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception:  # noqa: BLE001 — any failure means "show ids instead"
        return None


PROMPT_METRIC_COLUMNS = ["prompt_id", "category", "prompt_tokens", "method", "draft_length", "new_tokens",
                         "base_new_tokens", "rounds", "drafted", "accepted", "tau", "rho", "alpha_pos",
                         "alpha_beta", "base_tpot_ms", "tpot_ms", "speedup", "saving_ms", "base_ttft_s", "ttft_s",
                         "base_tokens_per_s", "tokens_per_s", "speedup_e2e", "identical", "first_divergence"]


def prompt_metrics(analysis) -> pd.DataFrame:
    """One row per prompt × method × γ with the measured metrics (analysis.prompt_table columns)."""
    df = analysis.prompts
    return df[[c for c in PROMPT_METRIC_COLUMNS if c in df.columns]].reset_index(drop=True)


def prompt_metrics_csv(analysis) -> bytes:
    """The per-prompt table as CSV, with text cells a spreadsheet would run as a formula neutralised."""
    table = prompt_metrics(analysis).copy()
    for column in table.columns:
        if table[column].dtype == object:
            table[column] = table[column].map(csv_cell)
    return table.to_csv(index=False, float_format="%.6g").encode("utf-8")


def csv_cell(value):
    """A text cell starting with = + - @ (or a tab / carriage return before one) gets a leading ' so
    Excel, LibreOffice and Sheets show it as text instead of evaluating it (OWASP "CSV injection")."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


# ---- workload screen ----

def category_table(summary: dict) -> pd.DataFrame:
    """Workload.summary() per category: category, prompts, median chars, median words."""
    return pd.DataFrame([{"category": c, "prompts": info["prompts"], "median chars": info["chars"]["median"],
                          "median words": info["words"]["median"]} for c, info in summary["per_category"].items()])


def preview_table(workload, limit: int = 200, chars: int = 160) -> pd.DataFrame:
    """The first `limit` prompts: id, category, prompt (cut to `chars`), chat (a messages list), line."""
    rows = []
    for p in workload.prompts[:limit]:
        text = " ".join(p.text.split())
        rows.append({"id": p.id, "category": p.category,
                     "prompt": text if len(text) <= chars else text[: chars - 1] + "…",
                     "chat": p.messages is not None, "line": p.source_line})
    return pd.DataFrame(rows, columns=["id", "category", "prompt", "chat", "line"])


# ---- explore screen ----

def gamma_range(analysis, method: str | None = None) -> tuple[int, int]:
    """(1, largest γ the projection covers), for one method when given (K for Medusa heads)."""
    proj = analysis.projection
    if method is not None:
        proj = proj[proj["method"] == method]
    return 1, int(proj["gamma"].max()) if len(proj) else 1


def best_measured(analysis, method: str | None = None) -> dict | None:
    """The measured configuration with the highest speedup (optionally of one method): a summary row.
    Without a method, only decidable ones count (not on a drafter's own training prompts, not lossy)."""
    s = analysis.summary
    s = s[(s["method"] != "baseline") & s["speedup"].notna()]
    if method is not None:
        s = s[s["method"] == method]
    else:
        s = s[s["method"].map(methods.decidable).astype(bool)]
    if s.empty:
        return None
    return s.sort_values("speedup", ascending=False).iloc[0].to_dict()


def gamma_point(analysis, method: str, gamma: int, category: str = "all") -> dict:
    """What the γ slider shows for one method at one γ, from the stored analysis (no decoding):
    projected tau, speedup, ms_per_token (round time ÷ τ with the measured costs), extrapolated
    (γ beyond every run), gamma_source (the γ run whose rounds it is projected from); baseline
    ms_per_token; and, when γ was run, the measured tau/speedup/ms_per_token with 95% CIs
    (measured is None otherwise)."""
    proj = analysis.projection if category == "all" else analysis.projection_by_category
    summ = analysis.summary if category == "all" else analysis.summary_by_category
    p = proj[(proj["method"] == method) & (proj["category"] == category) & (proj["gamma"] == gamma)]
    if p.empty:
        raise SpecdecError(f"no projection for {method} at γ={gamma}")
    p = p.iloc[0]
    base = summ[(summ["method"] == "baseline") & (summ["category"] == category)]
    base_ms = float(base["tpot_ms"].iloc[0]) if len(base) else 1e3 * analysis.costs.target_step_s
    out = {"method": method, "gamma": int(gamma), "category": category, "tau": float(p["tau"]),
           "speedup": float(p["speedup"]), "ms_per_token": float(p["ms_per_token"]),
           "base_ms_per_token": base_ms, "extrapolated": bool(p["extrapolated"]),
           "gamma_source": int(p["gamma_source"]), "measured": None}
    m = summ[(summ["method"] == method) & (summ["category"] == category) & (summ["draft_length"] == gamma)]
    if len(m):
        m = m.iloc[0]
        out["measured"] = {k: float(m[k]) for k in ("tau", "tau_lo", "tau_hi", "speedup", "speedup_lo", "speedup_hi",
                                                     "tpot_ms", "tpot_ms_lo", "tpot_ms_hi")}
        out["measured"]["n_prompts"] = int(m["n_prompts"])
    return out


def whatif_at(whatif_df: pd.DataFrame, batch_size: int, min_speedup: float) -> dict | None:
    """At one batch size of a what-if table (one hardware, method, context): the best γ that fits in
    memory, its speedup and ms per token saved; gamma None when nothing reaches min_speedup."""
    from specdec.analysis import hardware

    df = whatif_df[whatif_df["batch_size"] == batch_size]
    if df.empty:
        return None
    fits = bool(df["fits_memory"].any())
    best = hardware.best_by_batch(df, min_speedup)
    if best.empty:
        return {"batch_size": batch_size, "fits": False, "gamma": None, "speedup": None, "saving_ms_per_token": None,
                "base_ms_per_token": float(df["base_ms_per_token"].iloc[0])}
    row = best.iloc[0]
    top = df[df["fits_memory"]].sort_values("speedup", ascending=False).iloc[0]
    return {"batch_size": batch_size, "fits": fits, "gamma": None if pd.isna(row["gamma"]) else int(row["gamma"]),
            "speedup": float(row["speedup"]), "best_speedup": float(top["speedup"]),
            "saving_ms_per_token": float(row["saving_ms_per_token"]),
            "base_ms_per_token": float(df["base_ms_per_token"].iloc[0]),
            "bound": str(top["target_bound"])}


def category_summary(analysis, category: str) -> pd.DataFrame:
    """The measured configurations of one category: method, γ, prompts, τ, speedup with 95% CI,
    ms per token, identical share."""
    s = analysis.summary_by_category if category != "all" else analysis.summary
    s = s[(s["category"] == category) & (s["method"] != "baseline")]
    s = s.assign(method=[analysis.label(m) for m in s["method"]])
    return s[["method", "draft_length", "n_prompts", "tau", "tau_lo", "tau_hi", "speedup", "speedup_lo", "speedup_hi",
              "tpot_ms", "base_tpot_ms", "identical_rate"]].reset_index(drop=True)


def prompt_rows(analysis, results: dict, method: str, gamma: int) -> pd.DataFrame:
    """outputs_table joined with the per-prompt metrics of that configuration (speedup, tau, ms per token)."""
    out = outputs_table(results, method, gamma)
    pt = analysis.prompts
    pt = pt[(pt["method"] == method) & (pt["draft_length"] == gamma)][
        ["prompt_id", "speedup", "tau", "tpot_ms", "base_tpot_ms", "accepted", "drafted", "rounds"]]
    return out.merge(pt.rename(columns={"prompt_id": "id"}), on="id", how="left")


def showcase_configuration(configs: list[tuple[str, int]]) -> tuple[str, int] | None:
    """The configuration whose verify cycle says most: a model-using method (draft model, layer-skip,
    Medusa) at its largest γ (it has β and long proposals), else the largest γ of whatever ran."""
    if not configs:
        return None
    drafts = [c for c in configs if methods.is_valid(c[0]) and methods.uses_model(c[0])]
    return max(drafts or configs, key=lambda c: c[1])


# ---- brief screen ----

def method_table(analysis) -> pd.DataFrame:
    """compare.methods_table for display: method (label), γ, α, τ, speedup with 95% CI, memory added (GB)."""
    t = compare.methods_table(analysis)
    return pd.DataFrame({"method": t["label"], "γ": t["draft_length"], "α": t["alpha"], "τ": t["tau"],
                         "speedup": t["speedup"], "CI low": t["speedup_lo"], "CI high": t["speedup_hi"],
                         "memory added (GB)": t["extra_total_gb"]})


def best_choice_rows(analysis) -> pd.DataFrame:
    """compare.best_per_category for display: category, prompts, fastest method, γ, speedup, CI, memory (GB)."""
    t = compare.best_per_category(analysis)
    return pd.DataFrame({"category": ["all prompts" if c == "all" else c for c in t["category"]],
                         "prompts": t["n_prompts"], "fastest method": t["label"], "γ": t["draft_length"],
                         "speedup": t["speedup"], "CI low": t["speedup_lo"], "CI high": t["speedup_hi"],
                         "memory added (GB)": t["extra_total_gb"]})


def segment_rows(decision, analysis=None) -> pd.DataFrame:
    """Decision.segments_table() in words: one row per category × batch range, speedups as text; with
    the analysis, methods by label."""
    def x(v):
        return "" if v is None or v != v else f"{v:.2f}×"

    rows = []
    for _, r in decision.segments_table().iterrows():
        name = r["method"] if analysis is None or r["method"] is None else analysis.label(r["method"])
        measured = "" if r["method"] is None else f"{name} γ={int(r['draft_length'])}"
        batches = ("" if r["batch_min"] is None or r["batch_min"] != r["batch_min"] else
                   f"{int(r['batch_min'])}" + ("" if r["batch_max"] == r["batch_min"] else f"–{int(r['batch_max'])}"))
        gamma = r["gamma"]
        rows.append({
            "category": r["category"], "prompts": int(r["n_prompts"]), "status": r["status"],
            "best measured": measured, "speedup": x(r["speedup"]),
            "95% CI": "" if r["speedup_lo"] is None or r["speedup_lo"] != r["speedup_lo"]
            else f"{r['speedup_lo']:.2f}–{r['speedup_hi']:.2f}×",
            f"batch on {decision.hardware}": batches,
            "projected γ": "" if not batches else ("off" if gamma is None or gamma != gamma else str(int(gamma))),
            "projected speedup": "" if not batches else (
                x(r["speedup_min"]) if x(r["speedup_min"]) == x(r["speedup_max"])
                else f"{x(r['speedup_min'])}–{x(r['speedup_max'])}"),
        })
    return pd.DataFrame(rows)


def measured_at_text(measured: dict, gamma: int) -> str:
    """One line under the γ slider: what was measured at this γ, its 95% CIs, or why there are none
    (fewer than config.MIN_CI_PROMPTS prompts give no interval, never 'nan–nan').

    measured: the slider point's "measured" dict — n_prompts, tau, tau_lo/hi, speedup, speedup_lo/hi, tpot_ms."""
    from specdec.present import words
    m = measured
    tau_ci = f"{m['tau_lo']:.2f}–{m['tau_hi']:.2f}" if words.fin(m["tau_lo"]) and words.fin(m["tau_hi"]) else None
    sp_ci = words.ci(m["speedup_lo"], m["speedup_hi"], missing="")
    cis = (f"τ {m['tau']:.2f} ({tau_ci}), speedup {words.x(m['speedup'])} ({sp_ci})" if tau_ci and sp_ci else
           f"τ {m['tau']:.2f}, speedup {words.x(m['speedup'])} (too few prompts for a 95% CI: "
           f"< {config.MIN_CI_PROMPTS})")
    return f"**Measured at γ={gamma}** ({m['n_prompts']} prompts): {cis}, {words.ms(m['tpot_ms'])} ms/token."


def engine_check_rows(check: dict) -> list[dict]:
    """analysis.engine_check rows as the Explore table shows them."""
    return [{"γ": r["draft_length"], "concurrency": r["concurrency"], "τ used": f"{r['tau']:.2f} ({r['tau_source']})",
             "projected": f"{r['projected']:.2f}×",
             "measured (95% CI)": f"{r['measured']:.2f}×" + (f" ({r['measured_lo']:.2f}–{r['measured_hi']:.2f})"
                                                            if r["measured_lo"] is not None else ""),
             "error": f"{100 * r['error']:+.0f}%"} for r in check["rows"]]


def engine_category_rows(by_side: dict) -> list[dict]:
    """analysis.engine.categories_by_gamma as Explore's table: one row per server (γ) × category."""
    return [{"γ / server": key, "category": cat, "requests": v["requests"],
             "α": None if v["alpha"] is None else round(v["alpha"], 3),
             "τ": None if v["tau"] is None else round(v["tau"], 2), "from": v["source"]}
            for key, cats in by_side.items() for cat, v in cats.items()]
