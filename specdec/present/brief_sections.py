"""The brief's sections, in reading order: page 1 (title, verdict banner, summary, results by segment, methods
compared, why, the configuration to apply), the charts, losslessness, methodology, caveats and the run manifest.
Each writes onto a specdec.present.pdf_canvas.BriefPdf; the deployment what-if and the serving-engine section are
in specdec.present.brief_deploy, the assembly in specdec.present.report.

Public API
    front_page(pdf, a, d, th, hardware, method, projected, now); summary(a, d, th, hardware, method, projected)
        -> [sentence]; charts_pages(pdf, figs, images, note); losslessness(pdf, a); methodology(pdf, a, th);
    caveats(pdf, a, d, th, chart_note); run_manifest(pdf, a, now)
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from specdec import __version__, config, methods
from specdec.analysis import compare, deploy
from specdec.analysis.decision import Decision, Thresholds
from specdec.analysis.summary import ALL, Analysis
from specdec.present import charts, words
from specdec.present.brief_deploy import projected_best
from specdec.present.pdf_canvas import BriefPdf

# Verdict banner colours (Okabe–Ito): fill, text.
VERDICT_COLOURS = {
    "GO": ("#009E73", "#FFFFFF"),
    "GO-SEGMENTS": ("#0072B2", "#FFFFFF"),
    "NO-GO": ("#D55E00", "#FFFFFF"),
    "INSUFFICIENT-EVIDENCE": ("#E69F00", "#000000"),
}
STATUS_TEXT = {"on": "on", "off": "off", "unclear": "unclear", "too-few": "too few prompts",
               "on (pooled)": "on (follows pooled)"}
CHART_CAPTIONS = {
    "methods": "Read: each method at its fastest measured γ; a CI bar that crosses the dashed 1× line cannot be told "
               "apart from no gain. Right: what it costs in memory beside the target — layer-skip reuses the target's "
               "weights, prompt lookup needs none.",
    "categories": "Read: a category is on when its whole bar lies right of the green bar line; a bar that crosses "
                  "the 1× line cannot be told apart from no gain.",
    "gamma": "Read: τ rises with γ and flattens once later drafted tokens are rarely accepted; speedup peaks where one "
             "more drafted token costs more than it returns. Dotted: beyond any γ run, acceptance extrapolated.",
    "acceptance": "Read: the first drafted token is accepted most often and each later one less; a solid line falling "
                  "faster than the dashed α^i means acceptance is not i.i.d. (Leviathan's closed form is then optimistic).",
    "distribution": "Read: the spread shows how much the gain depends on the prompt; the percentage is the share of "
                    "prompts that decoded faster than the baseline.",
    "throughput": "Read: decode tokens/s is what speculation changes; end to end includes prefill (time to the first "
                  "token), which speculation does not shorten.",
    "payoff": "Read: at large batches a GPU becomes compute-bound and verifying γ + 1 tokens costs nearly γ + 1 steps, "
              "so gains shrink and turn into losses; right of the black line speculation should be off.",
    "costs": "Read: c is the draft's cost per drafted token in target steps (Leviathan's c); Thm 3.8 assumes a verify "
             "pass costs one target step — the measured curve shows what it really cost here (mean vs median: noise).",
}


def _model_name(model: dict | None) -> str:
    if not model:
        return "none"
    return str(model.get("spec") or model.get("local_path") or "?")


def _drafters_text(a: Analysis) -> str:
    """Every method measured, by label: 'draft model (a), prompt lookup, Medusa heads (4)'."""
    return ", ".join(a.label(k) for k in a.methods) or "none"


# ---- page 1: verdict, summary, segments ----

def front_page(pdf: BriefPdf, a: Analysis, d: Decision, th: Thresholds, hardware: str, method, projected, now):
    m = a.manifest
    models = m.get("models", {})
    pdf.title_line("Speculative decoding: go / no-go brief")
    n = len(a.measurements.prompts)
    cats = a.measurements.prompts["category"].nunique()
    pdf.byline(f"{now.strftime('%d %B %Y, %H:%M %Z').strip()} · run {m.get('run_id', '?')} ({m.get('status', '?')}) · "
               f"target {_model_name(models.get('target'))}; methods {_drafters_text(a)} · {n} prompts in "
               f"{cats} categor{'y' if cats == 1 else 'ies'} · projected onto {hardware}")
    pdf.ln(3)
    fill, ink = VERDICT_COLOURS.get(d.verdict, ("#555555", "#FFFFFF"))
    pdf.banner(d.headline, fill, ink)
    pdf.ln(1)
    pdf.heading("Summary", 12, 3)
    pdf.para(" ".join(summary(a, d, th, hardware, method, projected)), size=10)
    pdf.heading("Results by segment", 12, 2)
    pdf.para(f"Measured decode speedup of each category's best configuration on the measuring machine at batch 1 "
             f"(95% CI over prompts). A segment is on when its speedup clears {th.min_speedup_lo:.2f}× in a "
             f"test corrected for every category and configuration tried (so a CI just above the bar can stay "
             f"unclear); it needs at least {th.min_prompts_per_segment} prompts for a verdict of its own.", size=8.5,
             colour=(85, 85, 85))
    rows = []
    overall = d.evidence.get("overall", {})
    segs = ([dict(overall, category="all prompts")] if len(d.segments) > 1 or d.segments[0].get("category") != ALL
            else []) + [dict(s, category="all prompts" if s["category"] == ALL else s["category"]) for s in d.segments]
    for s in segs:
        has = s.get("method") is not None
        status = STATUS_TEXT.get(s["status"], s["status"])
        if s["status"] == "unclear" and words.fin(s.get("prompts_needed")):
            status += f": ~{s['prompts_needed']:.0f} prompts would settle it"
        rows.append([s["category"], str(s["n_prompts"]), a.label(s["method"]) if has else "—",
                     str(s["draft_length"]) if has else "—",
                     f"{words.x(s['speedup'])} ({words.ci(s['speedup_lo'], s['speedup_hi'])})" if has else "—",
                     f"{words.ms(s['base_tpot_ms'])} → {words.ms(s['tpot_ms'])}" if has else "—", status])
    pdf.table(["Category", "n", "Method", "γ", "Speedup (95% CI)", "ms/token base → spec", "Verdict"], rows,
              [29, 9, 32, 8, 40, 26, 34], ["LEFT", "RIGHT", "LEFT", "RIGHT", "LEFT", "LEFT", "LEFT"])
    _methods_tables(pdf, a)
    pdf.heading("Why", 12, 1)
    pdf.bullets(d.reasons, numbered=True, size=8.5)
    if d.config and d.snippets:
        g = d.config["draft_length"]
        pdf.heading(f"Configuration to apply: {a.label(d.config['method'])}, γ = {g}", 12, 1)
        pdf.para(f"For {', '.join(d.config['categories']) or 'all traffic'}. Flags as documented by each engine; "
                 "check your engine version.", size=8.5, colour=(85, 85, 85))
        for engine, text in d.snippets.items():
            pdf.code(text, label=engine)


def _methods_tables(pdf: BriefPdf, a: Analysis):
    """Every method at its best γ side by side, then the best method × γ per category (compare.py)."""
    table = compare.methods_table(a)
    if table.empty:
        return
    mem_note = (f"memory added beside the target: weights only drafting needs + its own KV cache for one "
                f"{a.memory['context_tokens']:.0f}-token sequence ({a.memory['dtype']})")
    pdf.heading("Methods compared", 12, 2)
    pdf.para(f"Each method at its fastest measured γ, pooled over all prompts (95% CI over prompts); {mem_note}.",
             size=8.5, colour=(85, 85, 85))
    rows = [[r["label"], str(r["draft_length"]), f"{r['alpha']:.2f}",
             f"{r['tau']:.2f} ({r['tau_lo']:.2f}–{r['tau_hi']:.2f})",
             f"{words.x(r['speedup'])} ({words.ci(r['speedup_lo'], r['speedup_hi'])})",
             words.gb(r["extra_total_gb"]) + (f" ({words.gb(r['extra_weights_gb'])} weights)"
                                          if words.fin(r["extra_kv_gb_per_seq"]) and r["extra_kv_gb_per_seq"] > 0 else "")]
            for _, r in table.iterrows()]
    pdf.table(["Method", "γ", "α", "τ (95% CI)", "Speedup (95% CI)", "Memory added"], rows,
              [44, 8, 12, 30, 42, pdf.epw - 136], ["LEFT", "RIGHT", "RIGHT", "LEFT", "LEFT", "LEFT"], size=8)
    best = compare.best_per_category(a)
    if len(best) > 1 or (len(best) and len(table) > 1):
        pdf.heading("Best choice per category", 12, 1, keep=20 + 6 * len(best))
        rows = [["all prompts" if r["category"] == ALL else r["category"], str(r["n_prompts"]), r["label"],
                 str(r["draft_length"]), f"{words.x(r['speedup'])} ({words.ci(r['speedup_lo'], r['speedup_hi'])})",
                 words.gb(r["extra_total_gb"])] for _, r in best.iterrows()]
        pdf.table(["Category", "n", "Fastest method", "γ", "Speedup (95% CI)", "Memory added"], rows,
                  [30, 9, 50, 8, 42, pdf.epw - 139], ["LEFT", "RIGHT", "LEFT", "RIGHT", "LEFT", "LEFT"], size=8)
        pdf.para("Fastest measured configuration per category; the verdict above asks more — a CI lower bound "
                 "above the bar — so it can name another γ where intervals overlap.", size=8, colour=(85, 85, 85))


def summary(a: Analysis, d: Decision, th: Thresholds, hardware: str, method, projected) -> list[str]:
    """3–5 sentences with the key numbers, built from the decision's evidence."""
    m = a.manifest
    s = m.get("settings", {})
    hw_m = m.get("hardware", {})
    n = len(a.measurements.prompts)
    cats = sorted(a.measurements.prompts["category"].unique())
    sampling = "greedy decoding" if float(s.get("temperature", 0)) <= 0 else f"sampling at temperature {s.get('temperature')}"
    gam = ", ".join(str(g) for g in s.get("draft_lengths", sorted(a.prompts["draft_length"].unique())))
    out = [f"We decoded {n} prompts in {len(cats)} categor{'y' if len(cats) == 1 else 'ies'} with "
           f"{_model_name(m.get('models', {}).get('target'))} as target, once plainly and once per speculative "
           f"configuration ({_drafters_text(a)}; γ = {gam}), with {sampling} in "
           f"{s.get('dtype', '?')} on {hw_m.get('cpu') or 'this machine'}."]
    o = d.evidence.get("overall", {})
    if o.get("method"):
        row = a.summary[(a.summary["method"] == o["method"]) & (a.summary["draft_length"] == o["draft_length"])]
        win = float(row["win_rate"].iloc[0]) if len(row) else float("nan")
        out.append(f"The best configuration over all prompts, {a.label(o['method'])} with γ = {o['draft_length']}, took decode "
                   f"time from {words.ms(o['base_tpot_ms'])} to {words.ms(o['tpot_ms'])} ms per token: a speedup of "
                   f"{words.x(o['speedup'])} (95% CI {words.ci(o['speedup_lo'], o['speedup_hi'])}), and {words.pct(win)} of prompts "
                   f"decoded faster than the baseline.")
    else:
        out.append("No speculative configuration has finished, so there is nothing to compare with the baseline yet.")
    if len(d.segments) > 1:
        groups: dict[str, list[str]] = {}
        for seg in d.segments:
            groups.setdefault(seg["status"], []).append(seg["category"])
        phrase = {"on": "pays off for {}", "on (pooled)": "pays off for {} (too small alone, following all prompts)",
                  "off": "does not pay for {}", "unclear": "is unclear for {}",
                  "too-few": "cannot be judged alone for {} (too few prompts each)"}
        parts = [phrase.get(k, k + " for {}").format(", ".join(v)) for k, v in groups.items()]
        out.append("By category, speculation " + "; ".join(parts) + ".")
    if method and len(projected):
        out.append(_projection_sentence(a, projected, hardware, method, th))
    loss = a.lossless
    if loss["applicable"]:
        out.append(f"{loss['identical']} of {loss['runs']} speculative runs reproduced the baseline's output token for "
                   f"token ({words.pct(loss['identical_rate'])}), as lossless speculative decoding must under greedy decoding.")
    return out[:5]


def _projection_sentence(a, projected, hardware, method, th) -> str:
    best = projected_best(a, projected, hardware, method, th)
    if best.empty:
        return f"No batch size fits {hardware}'s memory in the projection."
    on = best[best["gamma"].notna()]
    head = f"Projected onto {hardware} from the measured acceptance, {a.label(method)}"
    if on.empty:
        return f"{head} stays below {th.min_projected_speedup:.2f}× at every batch size from {best['batch_size'].min()} to {best['batch_size'].max()}."
    top = on.loc[on["speedup"].idxmax()]
    return (f"{head} would reach {words.x(top['speedup'])} at batch {int(top['batch_size'])} (γ = {int(top['gamma'])}) and "
            f"stays above {th.min_projected_speedup:.2f}× at batch sizes {_batch_list(on['batch_size'])} — a model "
            f"estimate, not a measurement.")


def _batch_list(values) -> str:
    v = sorted(int(x) for x in values)
    return f"{v[0]}–{v[-1]}" if len(v) > 2 else " and ".join(str(x) for x in v)


# ---- charts ----

def charts_pages(pdf: BriefPdf, figs: dict, images: dict, note: str | None):
    pdf.add_page()
    pdf.heading("Charts", 13, 0)
    if not images:
        pdf.para(note or "Charts left out.", colour=(160, 60, 0))
        pdf.para("Every number the charts would show is in the tables of this brief; the app shows the same charts "
                 "interactively.", size=8.5, colour=(85, 85, 85))
        return
    for name in charts.CHART_NAMES:
        if name in images:
            pdf.image_block(images[name], CHART_CAPTIONS.get(name, ""))



# ---- losslessness ----

def losslessness(pdf: BriefPdf, a: Analysis):
    loss = a.lossless
    pdf.heading("Losslessness", 13)
    if loss["applicable"]:
        pdf.para(f"Speculative decoding must not change the output: under greedy decoding every speculative run "
                 f"should emit exactly the baseline's token ids. Here {loss['identical']} of {loss['runs']} runs did "
                 f"({words.pct(loss['identical_rate'])}), in {loss['dtype']}."
                 + (" Runs of a lossy acceptance rule are left out of that count and listed below with their drift."
                    if loss.get("lossy") else ""))
    else:
        pdf.para(f"Sampling run (temperature {loss['temperature']:g}): {loss['note']}.")
    runs = a.prompts
    rows = []
    for (mth, g), df in runs.groupby(["method", "draft_length"], sort=True):
        fd = df["first_divergence"].dropna()
        rows.append([a.label(mth), str(g), str(len(df)), str(int(df["identical"].sum())), words.pct(df["identical"].mean()),
                     ", ".join(str(int(x)) for x in fd.head(6)) + (" …" if len(fd) > 6 else "") if len(fd) else "—"])
    pdf.table(["Method", "γ", "Runs", "Identical", "Rate", "First divergent token (where not identical)"], rows,
              [40, 10, 14, 18, 14, pdf.epw - 96], ["LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "LEFT"], size=8)
    if loss["applicable"]:
        pdf.para(loss["note"] + ".", size=8.5, colour=(85, 85, 85))


# ---- methodology ----

def _traced_note(traced: dict) -> str:
    """Two sentences on a traced run (specdec.traces): why it is exact for greedy decoding, what its check showed."""
    c = traced.get("check") or {}
    n_real = len(traced.get("real_prompts") or [])
    err = c.get("speedup_error_median")
    probed = (traced.get("cost_model") or {}).get("verify_probed") or []
    extra = (f"; verify passes of the {len(probed)} length{'s' * (len(probed) > 1)} they drafted too rarely "
             "were timed on their own" if probed else "")
    return (f"Traced measurement: greedy speculative decoding accepts a drafted token exactly when it equals the "
            f"target's own next token, so the drafter only ever sees the target's prefix inside an accepted run; "
            f"every round of every method × γ was therefore derived from one target generation per prompt with each "
            f"drafter teacher-forced along it, and timed with the cost model of {n_real} prompts also decoded for real "
            f"(all but those are marked traced{extra}). The check on those prompts: {c.get('rounds_equal', 0)} of "
            f"{c.get('rounds', 0)} rounds ({c.get('configs_equal', 0)} of {c.get('configs', 0)} configurations) equal "
            f"to the real decoder's, {c.get('baseline_equal', 0)} of {c.get('prompts', 0)} baselines identical"
            + (f", traced speedup within a median {100 * err:.0f}% of the measured one." if err is not None else "."))


def methodology(pdf: BriefPdf, a: Analysis, th: Thresholds):
    s = a.manifest.get("settings", {})
    pdf.heading("Methodology", 13)
    pdf.para("Notation (Leviathan et al. 2023): p is the target model's distribution, q the draft's; γ tokens are "
             "drafted per round and the target verifies them in one forward pass, keeping the accepted prefix plus "
             "one token of its own.")
    pdf.bullets([
        "α — per-token acceptance probability, E[min(p, q)] summed over the vocabulary. Estimated three ways: "
        "accepted ÷ positions tried (the pooled per-position rate), inverted from τ with Eq. (1), and (when sampling) "
        "the mean recorded β = Σ min(p, q). When they disagree by more than "
        f"{config.ALPHA_DISAGREEMENT} acceptance is not i.i.d. and the per-position chart is the one to trust.",
        "τ — tokens emitted per target pass, bonus token included: Σ (accepted + 1) ÷ rounds. Under i.i.d. acceptance "
        "τ = (1 − α^(γ+1)) ÷ (1 − α)  (Eq. 1). vLLM calls it the mean acceptance length.",
        "ρ — accepted ÷ drafted (vLLM's draft acceptance rate). Under i.i.d. acceptance ρ = (τ − 1) ÷ γ, which "
        "understates α and falls as γ grows; this brief reports τ and per-position rates instead of ρ alone.",
        "Speedup (Leviathan Thm 3.8) = (1 − α^(γ+1)) ÷ ((1 − α)(γc + 1)), with c = draft step ÷ target step. It "
        "assumes i.i.d. acceptance and a verify pass that costs one target step; the projection below drops both.",
    ], size=8.8)
    pdf.para(f"How speedup was measured. Every prompt was decoded by the plain target (the baseline) and by each "
             f"method × γ, one after the other per prompt so machine noise hits them alike, after a warm-up, with "
             f"up to {s.get('max_new_tokens', '?')} new tokens. Decode speedup = baseline ms per output token ÷ "
             f"speculative ms per output token, each a ratio of totals over prompts (decode_s ÷ (new tokens − 1)); "
             f"prefill (time to the first token) is timed apart and excluded, since speculation does not change it. "
             f"95% confidence intervals resample prompts ({config.BOOTSTRAP_SAMPLES} resamples, seed "
             f"{config.BOOTSTRAP_SEED}), paired: baseline and speculative times are resampled together; speedups are "
             f"studentized (bootstrap-t on the log speedup, which covers where the percentile interval falls short), "
             f"τ and α percentile; fewer than {config.MIN_CI_PROMPTS} prompts get no interval.", size=9)
    traced = a.manifest.get("traced")
    if s.get("mode") == "traced" and traced:
        pdf.para(_traced_note(traced), size=9)
    rows = []
    for _, r in a.summary[a.summary["method"] != "baseline"].sort_values(["method", "draft_length"]).iterrows():
        rows.append([a.label(r["method"]), str(r["draft_length"]), f"{r['tau']:.2f} ({r['tau_lo']:.2f}–{r['tau_hi']:.2f})",
                     f"{r['alpha_pos']:.2f}", f"{r['alpha_tau']:.2f}", f"{r['rho']:.2f}",
                     f"{words.x(r['speedup'])} ({words.ci(r['speedup_lo'], r['speedup_hi'])})", words.pct(r["win_rate"])])
    if rows:
        pdf.para("Every configuration measured, pooled over all prompts:", size=9)
        pdf.table(["Method", "γ", "τ (95% CI)", "α (pos.)", "α (τ)", "ρ", "Decode speedup (95% CI)", "Prompts faster"],
                  rows, [27, 8, 32, 16, 14, 12, 45, 24], ["LEFT"] + ["RIGHT"] * 7, size=7.8)
    c = a.costs
    c_text = ", ".join(f"{a.label(mth)} {v:.3f}" for mth, v in c.c.items() if mth in a.methods)
    pdf.para(f"The projection over γ. τ at any γ comes from the rounds of each method's largest γ run, truncated "
             f"position by position (a round drafted to γ says exactly what it would have done at any smaller γ); "
             f"beyond that run, fully accepted rounds are extended with the deepest positions' acceptance rate. The "
             f"round time uses the measured cost model instead of γc + 1: target step {1e3 * c.target_step_s:.2f} ms; "
             f"c = {c_text}; verify pass ≈ ({c.verify_intercept:.2f} + {c.verify_slope:.2f} × drafted) target steps "
             f"(fitted to the means); plus the measured per-round bookkeeping.", size=9)
    err = a.projection_error[a.projection_error["category"] == ALL]
    if len(err):
        worst = float(err["speedup_rel_error"].abs().max())
        pdf.para(f"Its measured error, at the γ values actually run (overall): at most {100 * worst:.0f}% on speedup"
                 + (f" — above {100 * config.PROJECTION_TRUST_ERROR:.0f}%, so projected γ values that were not run "
                    f"deserve caution." if worst > config.PROJECTION_TRUST_ERROR else "."), size=9)
        rows = [[a.label(r["method"]), str(r["gamma"]), f"{r['tau_projected']:.2f}", f"{r['tau_measured']:.2f}",
                 words.x(r["speedup_projected"]), words.x(r["speedup_measured"]), f"{100 * r['speedup_rel_error']:+.0f}%"]
                for _, r in err.iterrows()]
        pdf.table(["Method", "γ", "τ projected", "τ measured", "Speedup projected", "Speedup measured", "Error"],
                  rows, [30, 10, 22, 22, 32, 32, 30], ["LEFT"] + ["RIGHT"] * 6, size=8)
    pdf.para(f"The deployment what-if rescales step times with a roofline over the model sizes in the manifest "
             f"(weights and KV cache read per step vs 2 × parameters FLOPs per token), calibrated to this run on "
             f"this machine; its assumptions are listed with its tables. The decision thresholds: a segment is on "
             f"when its speedup CI's lower bound ≥ {th.min_speedup_lo:.2f}×, a confident verdict needs ≥ "
             f"{th.min_prompts} prompts (≥ {th.min_prompts_per_segment} per category), a batch size is on when its "
             f"projected speedup ≥ {th.min_projected_speedup:.2f}×, and greedy float32 runs must match the baseline "
             f"≥ {100 * th.min_identical_rate:.0f}% of the time.", size=9)


# ---- caveats ----

def caveats(pdf: BriefPdf, a: Analysis, d: Decision, th: Thresholds, chart_note: str | None):
    m = a.manifest
    hw_m, s = m.get("hardware", {}), m.get("settings", {})
    items = [f"Measured on {hw_m.get('cpu') or 'an unnamed machine'} ({hw_m.get('cores', '?')} cores"
             f"{', GPU ' + str(hw_m['gpu']) if hw_m.get('gpu') else ', no GPU'}) at batch 1 in {s.get('dtype', '?')}: "
             f"the absolute milliseconds belong to this machine; other hardware and batch sizes are projections."]
    n = len(a.measurements.prompts)
    if n < th.min_prompts:
        items.append(f"Only {n} prompts (a confident verdict needs ≥ {th.min_prompts}): the intervals are wide, and "
                     "the verdict is about the evidence, not about speculation itself.")
    small = a.measurements.prompts["category"].value_counts()
    small = sorted(small[small < th.min_prompts_per_segment].index)
    if small:
        items.append(f"Categories with fewer than {th.min_prompts_per_segment} prompts ({', '.join(small)}) get no "
                     "verdict of their own.")
    v = a.costs.verify
    if len(v):
        skew = float((v["verify_s"] / v["verify_median_s"]).replace([np.inf], np.nan).max())
        if words.fin(skew) and skew > 1.5:
            items.append(f"Timing noise: some verify passes' mean time is {skew:.1f}× their median — the machine was "
                         "busy during the run. Means are used (the measured totals paid for the spikes); rerun on a "
                         "quiet machine for cleaner numbers.")
    items.append("Acceptance belongs to these models, these prompts and these sampling settings "
                 f"(temperature {s.get('temperature', '?')}); another draft, prompt mix or temperature needs a new run.")
    non_iid = a.summary[(a.summary["method"] != "baseline") & (a.summary["alpha_iid"] == False)]  # noqa: E712
    if len(non_iid):
        items.append("Acceptance is not i.i.d. for " + ", ".join(f"{a.label(r['method'])} γ={r['draft_length']}"
                                                                for _, r in non_iid.iterrows())
                     + ": Leviathan's closed form would misjudge the best γ; the projection uses per-position rates.")
    items.extend(a.costs.notes)
    items.extend(a.memory.get("notes", []))
    if s.get("dtype") == "bfloat16" and a.lossless["applicable"]:
        items.append("bfloat16 verify passes round differently from one-token steps; late output divergences are "
                     "expected there and float32 should match exactly.")
    items.append(deploy.weights_note(m))
    items.append("The deployment what-if is a roofline model with engine costs per forward pass and per layer calibrated "
                 "on published runs (README: projected vs published); it ignores attention FLOPs, tree drafting and "
                 "padding, and a given engine version may do better or worse — its sensitivity band shows how much "
                 "the calibrated constants matter.")
    if chart_note:
        items.append(chart_note)
    pdf.heading("Caveats", 13)
    pdf.bullets([str(x).rstrip(".") + "." for x in items], size=8.8)


# ---- manifest ----

def run_manifest(pdf: BriefPdf, a: Analysis, now: datetime):
    m = a.manifest
    s, v, h = m.get("settings", {}), m.get("versions", {}), m.get("hardware", {})
    rows = [["Run", f"{m.get('run_id', '?')} — {m.get('status', '?')}; created {m.get('created', '?')}, "
                    f"finished {m.get('finished') or '—'}"],
            ["Workload", f"{s.get('workload', '?')} ({len(a.measurements.prompts)} prompts)"],
            ["Workload sha256", s.get("workload_sha256", "?")]]
    for role in ("target", "draft"):
        mod = m.get("models", {}).get(role)
        if not mod:
            rows.append([role.capitalize(), "none (prompt lookup only)"])
            continue
        rows.append([role.capitalize(), f"{mod.get('spec', '?')} — {mod.get('parameters', 0) / 1e6:,.1f} M parameters, "
                                        f"{mod.get('num_layers', '?')} layers, hidden {mod.get('hidden_size', '?')}, "
                                        f"vocabulary {mod.get('vocab_size', '?')}, {mod.get('dtype', '?')} on "
                                        f"{mod.get('device', '?')}" + (f" (matmul: {mod['linear']})" if mod.get("linear") else "")
                                        + f"; {mod.get('local_path', '')}"])
        rows.append([f"{role.capitalize()} sha256", mod.get("sha256") or "not recorded (a local model directory)"])
    for key, info in a.drafters.items():
        if not info.get("parameters") and not methods.uses_model(key):
            continue
        extra = info.get("extra_parameters") or 0
        rows.append([f"Drafter: {a.label(key)}",
                     f"{info.get('spec') or '?'} — one draft step reads {(info.get('parameters') or 0) / 1e6:,.1f} M "
                     f"parameters over {info.get('num_layers', '?')} layers; "
                     + (f"adds {extra / 1e6:,.1f} M parameters" if extra else "adds no weights")
                     + (f" and {info['kv_layers']} layers of KV cache" if info.get("kv_layers") else "")
                     + (" (size estimated)" if info.get("estimated") else "")])
    rows += [["Settings", f"methods {', '.join(s.get('methods', []))}; γ = {', '.join(map(str, s.get('draft_lengths', [])))}; "
                          f"max new tokens {s.get('max_new_tokens', '?')}; max prompts {s.get('max_prompts') or 'all'}; "
                          f"temperature {s.get('temperature', '?')}, top-p {s.get('top_p', '?')}, top-k {s.get('top_k', '?')}; "
                          f"dtype {s.get('dtype', '?')}; device {s.get('device', '?')}"],
             ["Seed", f"{s.get('seed', '?')} (decoding); bootstrap seed {config.BOOTSTRAP_SEED}, {config.BOOTSTRAP_SAMPLES} resamples"],
             ["Hardware", f"{h.get('cpu', '?')}; {h.get('cores', '?')} cores; {h.get('memory_gb', '?')} GB memory; "
                          f"GPU {h.get('gpu') or 'none'}" + (f"; {h['platform']}" if h.get("platform") else "")],
             ["Versions", "; ".join(f"{k} {val}" for k, val in v.items())
              + f" — brief built {now.strftime('%Y-%m-%d %H:%M %Z').strip()} with {_brief_versions()}"]]
    mono = {i for i, r in enumerate(rows) if r[0].endswith("sha256") and not str(r[1]).startswith("not ")}
    widths = [32, pdf.epw - 32]
    # The table reads best on one page: start a new one unless it fits in what is left of this one.
    pdf.heading("Run manifest", 13, keep=min(pdf.eph * 0.8, 14 + pdf.rows_height(rows, widths, 4.0, 8.5)))
    pdf.key_value_table(rows, widths, mono_rows=mono, size=8.5, line_height=4.0)


def _brief_versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = [f"specdec {__version__}"]
    for pkg in ("plotly", "kaleido", "fpdf2"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)

