"""The go/no-go decision: measured evidence in, a verdict with numbered reasons and configs out.

Verdicts (judge(); the tests in specdec.analysis.inference)
    GO                     the pooled speedup clears min_speedup_lo after Holm over configurations, and the
                           categories are not shown to differ (or each clears it on its own)
    GO-SEGMENTS            categories differ (permutation test) and the listed ones clear the bar after Holm
                           over categories × configurations: turn it on for those only
    NO-GO                  no configuration gains: every pooled CI upper bound is below min_speedup_lo
    INSUFFICIENT-EVIDENCE  too few prompts, or the intervals straddle the threshold: measure more

Per category (segment) status: "on" (a configuration clears the bar after Holm; the one with the highest
lower bound), "off" (every configuration's hi < min_speedup_lo), "unclear" (in between: prompts_needed says
how many prompts in that category would settle it), "too-few" (< min_prompts_per_segment prompts). The measured verdict belongs to this machine at batch 1; each on-segment is then projected
onto the chosen hardware by batch size (specdec.analysis.hardware), which picks γ per batch range or turns
speculation off where the projected speedup falls below min_projected_speedup.

Public API
    Thresholds (frozen dataclass of the decision's parameters; defaults in specdec.config)
    Decision (frozen dataclass): verdict, headline, reasons [str], segments [dict], config, snippets
        {engine: text}, evidence {…}, whatif DataFrame, hardware, thresholds; .to_dict() (JSON-safe),
        .segments_table() (one row per category × batch range)
    decide(data, thresholds=Thresholds(), hardware=DEFAULT_HARDWARE, batch_sizes=WHATIF_BATCH_SIZES)
        data: an Analysis (specdec.analysis.analyze) or a results dict
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from specdec import config, methods
from specdec.analysis import compare, inference
from specdec.analysis import deploy as dp
from specdec.analysis import hardware as hw
from specdec.measure import machine
from specdec.present import snippets as snip
from specdec.present import words
from specdec.analysis.summary import ALL, Analysis, analyze

VERDICTS = ("GO", "GO-SEGMENTS", "NO-GO", "INSUFFICIENT-EVIDENCE")


@dataclass(frozen=True)
class Thresholds:
    min_speedup_lo: float = config.MIN_SPEEDUP_LO  # lower CI bound a segment's speedup must reach
    min_prompts: int = config.MIN_PROMPTS  # prompts in the whole run for any confident verdict
    min_prompts_per_segment: int = config.MIN_PROMPTS_PER_SEGMENT  # for a category's own verdict
    min_projected_speedup: float = config.MIN_PROJECTED_SPEEDUP  # per batch size on the chosen hardware
    min_identical_rate: float = config.MIN_IDENTICAL_RATE  # greedy float32 runs matching the baseline
    ci_halfwidth: float = config.SPEEDUP_CI_HALFWIDTH  # precision prompts_needed aims at


@dataclass(frozen=True)
class Decision:
    verdict: str
    headline: str
    reasons: list[str]
    segments: list[dict]  # per category: status, method, draft_length, speedup(+CI), savings, batch_ranges
    config: dict | None  # the configuration to apply: method, draft_length, categories
    snippets: dict[str, str]  # engine → ready-to-paste text for `config`
    evidence: dict
    whatif: pd.DataFrame = field(repr=False)
    hardware: str = config.DEFAULT_HARDWARE
    thresholds: Thresholds = field(default_factory=Thresholds)

    def segments_table(self) -> pd.DataFrame:
        """One row per category × batch range: category, status, method, batch_min, batch_max, gamma
        (None = off), speedup_min, speedup_max; measured columns repeat per range."""
        rows = []
        for s in self.segments:
            base = {k: s[k] for k in ("category", "n_prompts", "status", "method", "draft_length", "speedup",
                                      "speedup_lo", "speedup_hi")}
            for r in s["batch_ranges"] or [{"batch_min": None, "batch_max": None, "gamma": None,
                                            "speedup_min": None, "speedup_max": None}]:
                rows.append({**base, **r})
        return pd.DataFrame(rows)

    def to_dict(self) -> dict:
        return _jsonable({"verdict": self.verdict, "headline": self.headline, "reasons": self.reasons,
                          "segments": self.segments, "config": self.config, "snippets": self.snippets,
                          "hardware": self.hardware, "thresholds": asdict(self.thresholds), "evidence": self.evidence})


def decide(data, thresholds: Thresholds = Thresholds(), hardware: str = config.DEFAULT_HARDWARE,
           batch_sizes=config.WHATIF_BATCH_SIZES, deployment: dp.Deployment | None = None,
           engine_levels: list[dict] | None = None) -> Decision:
    """The verdict. Without a deployment: from the speedup measured on this machine (judge), with segments
    projected onto `hardware`. With one (CLI --deploy, the Brief page): about that target — from an engine
    measurement made with its engine (engine_levels, or results["engine"] when data is a results dict),
    else from the projection with its interval (specdec.analysis.deploy); the local speedup is reported as
    this CPU's. Either way fewer than min_prompts prompts is INSUFFICIENT-EVIDENCE."""
    if engine_levels is None:
        engine_levels = dp.engine_levels_for(data, deployment)
    a = data if isinstance(data, Analysis) else analyze(data)
    th = thresholds
    if deployment is not None:
        hardware = deployment.hardware
    j = judge(a.measurements, a.summary, a.summary_by_category, th)
    n_total, overall, cats, verdict = j["n_prompts"], j["overall"], j["categories"], j["verdict"]
    on = [s for s in cats if s["status"].startswith("on")]
    segments = cats if len(cats) > 1 else [overall]
    target = _target(a, deployment, engine_levels, th) if deployment is not None else None
    if target is not None and not (deployment.hardware == hw.THIS_MACHINE and target["basis"] != "engine"):
        verdict = "INSUFFICIENT-EVIDENCE" if n_total < th.min_prompts else target["verdict"]
    shaky = machine.unreliable(a.manifest)  # timed on a busy machine or with drifting speed: decide nothing
    if shaky and verdict != "INSUFFICIENT-EVIDENCE" and (target is None or target["basis"] != "engine"):
        verdict = "INSUFFICIENT-EVIDENCE"
    whatif = _project(a, segments, hardware, batch_sizes, th)
    if target is not None and target["basis"] != "measured" and target["method"] and verdict in ("GO", "GO-SEGMENTS"):
        cfg, snippets, gamma_note = _target_config(a, target, [s["category"] for s in cats]), None, None
        snippets = snip.snippets(cfg["method"], cfg["draft_length"], snip.model_ref(a.manifest.get("models", {}).get("target")),
                                 _drafter_ref(a, cfg["method"]))
    else:
        cfg, snippets, gamma_note = _primary(a, verdict, overall, on if len(cats) > 1 else [overall], hardware)
    reasons = _reasons(a, verdict, overall, cats, segments, cfg, hardware, th, gamma_note, j)
    if target is not None:
        reasons = _target_reasons(a, deployment, target, j, verdict) + reasons
    if shaky:
        reasons = [f"These timings are unreliable: {shaky}. Re-run on a quiet machine before deciding."] + reasons
    evidence = {
        "n_prompts": n_total, "categories": [s["category"] for s in cats], "overall": overall,
        "heterogeneity": j["heterogeneity"], "tests": j["tests"].to_dict("records"),
        "test_alpha": j["alpha"], "measured_verdict": j["verdict"],
        "deployment": None if deployment is None else {**asdict(deployment), "label": deployment.label},
        "target": target,
        "costs": a.costs.to_dict(), "memory": a.memory, "compute": a.compute.to_dict("records"),
        "lossless": a.lossless, "projection_error": a.projection_error.to_dict("records"),
        "methods": compare.methods_table(a).to_dict("records"),
        "best_per_category": compare.best_per_category(a).to_dict("records"),
        "whatif_assumptions": whatif.attrs.get("assumptions", []),
        "settings": a.manifest.get("settings", {}), "hardware_measured": a.manifest.get("hardware", {}),
        "machine": a.manifest.get("machine"),
    }
    headline = _target_headline(verdict, target, deployment, a) if target is not None and target["basis"] != "measured" \
        else _headline(verdict, cfg, on, hardware, a)
    if shaky and verdict == "INSUFFICIENT-EVIDENCE":
        headline = "INSUFFICIENT EVIDENCE: the timings are unreliable (busy machine) — re-run on a quiet machine"
    return Decision(verdict, headline, reasons, segments, cfg, snippets or {}, evidence, whatif, hardware, th)


# ---- the deployment target ----

def _target(a: Analysis, dep: dp.Deployment, engine_levels, th: Thresholds) -> dict:
    """Engine measurement with the deployment's engine if one exists, else the projection; on this machine
    without an engine run, the measured verdict stands (basis "measured")."""
    lo, hi = dep.concurrency
    if engine_levels:
        got = dp.from_engine_levels(engine_levels, dep.concurrency, th.min_speedup_lo, dep.engine)
        if got is not None:
            return got
    if dep.hardware == hw.THIS_MACHINE and lo == hi == 1:
        return {"basis": "measured", "verdict": None, "method": None, "gamma": None, "levels": []}
    return dp.from_projection(a, dep, th.min_speedup_lo)


def _target_config(a: Analysis, target: dict, categories: list[str]) -> dict:
    method, g = target["method"], int(target["gamma"])
    runs = a.measurements.runs
    measured = sorted(int(x) for x in runs.loc[runs["method"] == method, "draft_length"].unique())
    on = [lv["concurrency"] for lv in target["levels"] if lv["status"] == "on"]
    return {"method": method, "label": a.label(method), "draft_length": g,
            "measured_draft_length": min(measured, key=lambda x: abs(x - g)) if measured else g,
            "categories": categories, "concurrency_on": [min(on), max(on)] if on else None}


def _lv(lv: dict) -> str:
    ci = (f" (CI {lv['speedup_lo']:.2f}–{lv['speedup_hi']:.2f}×" if lv.get("speedup_lo") is not None
          and lv.get("speedup_hi") is not None else " (no interval: too few prompts")
    band = (f"; assumptions {lv['speedup_band_lo']:.2f}–{lv['speedup_band_hi']:.2f}×" if lv.get("speedup_band_lo")
            is not None else "")
    fit = "" if lv.get("fits", True) else ", does not fit in memory"
    return f"concurrency {lv['concurrency']}: {lv['speedup']:.2f}×{ci}{band}){fit} — {lv['status']}"


def _levels_text(levels: list[dict]) -> str:
    """Consecutive concurrency levels of one status merged: 'concurrency 1–8: 1.31× (…) … 1.12× (…) — on'."""
    groups: list[list[dict]] = []
    for lv in levels:
        if groups and groups[-1][-1]["status"] == lv["status"]:
            groups[-1].append(lv)
        else:
            groups.append([lv])
    parts = []
    for g in groups:
        if len(g) == 1:
            parts.append(_lv(g[0]))
        else:
            a, b = _lv(g[0]), _lv({**g[-1], "status": g[-1]["status"]})
            parts.append(a.rsplit(" — ", 1)[0] + " … " + b)
    return "; ".join(parts)


def _target_reasons(a: Analysis, dep: dp.Deployment, target: dict, j: dict, verdict: str) -> list[str]:
    r = [f"Deployment target: {dep.label}. The verdict is about this target."]
    if target["basis"] == "engine":
        r.append(f"It comes from an engine measurement with {dep.engine} (SD / baseline throughput per concurrency): "
                 + _levels_text(target["levels"]) + ".")
    elif target["basis"] == "projection":
        if target["method"] is None:
            r.append("No measured method can be projected onto it (drafter sizes unknown).")
        else:
            k = round(1.0 / max(1e-9, (1.0 - target["level"]) / (1.0 - config.CI_LEVEL)))
            r.append(f"No engine measurement for it: the verdict comes from projecting this run's measured acceptance "
                     f"through the calibrated cost model ({a.label(target['method'])}, γ={target['gamma']}, the best at "
                     f"concurrency {dep.concurrency[0]}; intervals from resampling the prompts, widened for "
                     f"{k} method{'s' if k != 1 else ''} compared; the band moves one assumption at a time): "
                     + _levels_text(target["levels"]) + ".")
    else:
        r.append("On this machine at concurrency 1 the measured speedup answers it directly.")
    if target["basis"] == "projection":
        r.append(dp.weights_note(a.manifest))
    if target["basis"] != "measured":
        r.append(f"Measured on this machine alone ({a.manifest.get('settings', {}).get('dtype', '?')}, batch 1) the "
                 f"verdict would be {j['verdict']}: that is this CPU's answer, which checks the cost model and measures "
                 f"acceptance; it is not the deployment's.")
    return r


def _target_headline(verdict: str, target: dict, dep: dp.Deployment, a: Analysis) -> str:
    lv = target["levels"]
    first = lv[0] if lv else None
    what = (f"{a.label(target['method'])} γ={target['gamma']}" if target.get("method") else
            f"speculation (γ={target.get('gamma')})")
    span = (f"{first['speedup']:.2f}× (CI {first['speedup_lo']:.2f}–{first['speedup_hi']:.2f}×) at concurrency "
            f"{first['concurrency']}" if first and first.get("speedup_lo") is not None else "")
    if verdict == "GO":
        return f"GO on {dep.label}: turn on {what} — {span}"
    if verdict == "GO-SEGMENTS":
        on = [x["concurrency"] for x in lv if x["status"] == "on"]
        if on:
            return f"GO on {dep.label} at concurrency {min(on)}–{max(on)} only: {what} — {span}"
        return f"GO for some segments on {dep.label}: {what}"
    if verdict == "NO-GO":
        return f"NO-GO on {dep.label}: {what} projects {span}, below the bar"
    return f"INSUFFICIENT EVIDENCE for {dep.label}: " + (f"{what} projects {span}; " if span else "") + \
        "measure more prompts before deciding"


# ---- measured assessment ----

def judge(m, summary: pd.DataFrame, summary_by_category: pd.DataFrame, th: Thresholds = Thresholds(),
          n_boot: int = config.BOOTSTRAP_SAMPLES, seed: int = config.BOOTSTRAP_SEED) -> dict:
    """The verdict from measured speedups alone, with the multiplicity it involves accounted for
    (specdec.analysis.inference): {verdict, n_prompts, overall, categories (segment dicts), heterogeneity,
    tests (DataFrame), alpha}.

    GO          the pooled speedup of some configuration clears the bar after Holm over configurations, and
                the categories are not shown to differ (or every category clears it on its own)
    GO-SEGMENTS categories differ (permutation test at HETEROGENEITY_ALPHA, or one is off while the pooled
                result clears) and some category clears the bar after Holm over categories × configurations
    NO-GO       every configuration's pooled upper bound is below the bar, and no small or unclear category
                points above it
    INSUFFICIENT-EVIDENCE  otherwise, and whenever the run has fewer than min_prompts prompts
    α = (1 − CI_LEVEL) / 2: one-sided, the level at which the 95% interval's lower bound clears the bar."""
    alpha = (1.0 - config.CI_LEVEL) / 2.0
    n_total = int(len(m.prompts))
    sizes = m.prompts["category"].value_counts()
    adequate = sorted(c for c, k in sizes.items() if k >= th.min_prompts_per_segment)
    configs = _decidable_configs(summary)
    tests = inference.speedup_tests(m, th.min_speedup_lo, configs, adequate if len(sizes) > 1 else (),
                                    n_boot=n_boot, seed=seed)
    tests["holm"] = False
    for fam in (tests["category"] == ALL, tests["category"] != ALL):  # GO's family, then the segments'
        tests.loc[fam, "holm"] = inference.holm(tests.loc[fam, "p_value"], alpha)
    passed = {(r.category, r.method, r.draft_length) for r in tests.itertuples() if r.holm}
    overall = _assess(summary, ALL, n_total, th, passed)
    cats = [_assess(df, cat, int(sizes.get(cat, 0)), th, passed)
            for cat, df in summary_by_category.groupby("category", sort=True)]
    het = inference.heterogeneity(m, configs, adequate, seed=seed) if len(adequate) >= 2 else \
        {"statistic": float("nan"), "p_value": float("nan"), "categories": adequate, "config": None}
    # A category whose every interval sits below the bar while the pooled one clears it differs, test or not.
    het["differ"] = bool(het["p_value"] <= config.HETEROGENEITY_ALPHA
                         or (overall["status"] == "on" and any(s["status"] == "off" for s in cats)))
    verdict = _verdict(n_total, overall, cats, th, het["differ"])
    if len(cats) == 1 and verdict == "GO-SEGMENTS":
        verdict = "GO"
    if verdict == "GO":  # one configuration for all traffic: categories not on alone follow the pooled result
        for s in cats:
            if s["status"] != "on":
                s.update({k: overall[k] for k in ("method", "draft_length")}, status="on (pooled)")
    return {"verdict": verdict, "n_prompts": n_total, "overall": overall, "categories": cats, "heterogeneity": het,
            "tests": tests, "alpha": alpha}


def _decidable_configs(summary: pd.DataFrame) -> set:
    # Drafters measured on their own training prompts (medusa:train) or with a lossy acceptance rule
    # (medusa:typical) are shown, never decided on.
    rows = summary[summary["method"].map(lambda k: k != "baseline" and methods.decidable(k))]
    return {(r.method, int(r.draft_length)) for r in rows.itertuples()}


def _assess(summary: pd.DataFrame, cat: str, n: int, th: Thresholds, passed: set) -> dict:
    candidates = summary["method"].map(lambda m: m != "baseline" and methods.decidable(m))
    rows = summary[candidates & (summary["category"] == cat)]
    seg = {"category": cat, "n_prompts": n, "status": "off", "method": None, "draft_length": None,
           "speedup": None, "speedup_lo": None, "speedup_hi": None, "saving_ms": None, "saving_pct": None,
           "base_tpot_ms": None, "tpot_ms": None, "prompts_needed": None, "alpha_iid": None, "batch_ranges": []}
    if rows.empty:
        seg["status"] = "too-few"
        return seg
    point = rows.sort_values("speedup", ascending=False).iloc[0]
    ok = rows[[(cat, r.method, int(r.draft_length)) in passed for r in rows.itertuples()]]
    if n < th.min_prompts_per_segment or rows["speedup_lo"].isna().all():
        status, pick = "too-few", point
    elif len(ok):  # cleared the bar after Holm; the one with the highest lower bound
        status, pick = "on", ok.sort_values(["speedup_lo", "speedup"], ascending=False).iloc[0]
    elif rows["speedup_hi"].max() < th.min_speedup_lo:
        status, pick = "off", point
    else:
        status, pick = "unclear", point
    seg.update(status=status, method=pick["method"], draft_length=int(pick["draft_length"]),
               speedup=float(pick["speedup"]), speedup_lo=_num(pick["speedup_lo"]),
               speedup_hi=_num(pick["speedup_hi"]), saving_ms=float(pick["saving_ms"]),
               saving_pct=float(pick["saving_pct"]), base_tpot_ms=float(pick["base_tpot_ms"]),
               tpot_ms=float(pick["tpot_ms"]), alpha_iid=pick["alpha_iid"],
               prompts_needed=_needed(n, pick, th))
    return seg


def _num(v):
    return float(v) if v is not None and np.isfinite(v) else None


def _needed(n: int, row, th: Thresholds) -> float:
    """Prompts (in this prompt set) for a speedup CI of ±ci_halfwidth; below MIN_CI_PROMPTS there is no
    interval to scale from, so the answer is at least the bar for having one."""
    half = (row["speedup_hi"] - row["speedup_lo"]) / 2.0
    if not (n and np.isfinite(half)):
        return float(max(config.MIN_CI_PROMPTS, th.min_prompts_per_segment)) if n else float("nan")
    return float(max(n, math.ceil(n * (half / th.ci_halfwidth) ** 2)))


def _verdict(n_total: int, overall: dict, cats: list[dict], th: Thresholds, differ: bool) -> str:
    status = {s["status"] for s in cats}
    if n_total < th.min_prompts:
        return "INSUFFICIENT-EVIDENCE"
    if overall["status"] == "on" and (not differ or not status & {"off", "unclear"}):
        return "GO"
    if differ and "on" in status:
        return "GO-SEGMENTS"
    if overall["status"] == "off" and not any(s["status"] in ("unclear", "too-few") and (s["speedup"] or 0) >= th.min_speedup_lo
                                              for s in cats):
        return "NO-GO"
    return "INSUFFICIENT-EVIDENCE"


# ---- projection onto the chosen hardware ----

def _project(a: Analysis, segments: list[dict], hardware: str, batch_sizes, th: Thresholds) -> pd.DataFrame:
    frames = []
    for s in segments:
        if not s["status"].startswith("on"):
            continue
        cat = s["category"] if s["status"] == "on" else ALL  # too few prompts alone: pooled acceptance
        # Recommend no γ beyond the largest run: acceptance past it is extrapolated, not measured.
        runs = a.measurements.runs
        g_max = int(runs.loc[runs["method"] == s["method"], "draft_length"].max())
        df = hw.whatif(a, hardware=[hardware], batch_sizes=batch_sizes, gammas=range(1, g_max + 1),
                       methods=[s["method"]], category=cat)
        if df.empty:
            continue
        df["category"] = s["category"]
        frames.append(df)
        best = hw.best_by_batch(df, th.min_projected_speedup)
        s["batch_ranges"] = hw.batch_ranges(best)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    out.attrs["assumptions"] = hw.assumptions([hardware] if hardware != hw.THIS_MACHINE else [], config.WHATIF_DTYPE,
                                              (a.memory["context_tokens"],))
    return out


def _primary(a: Analysis, verdict: str, overall: dict, on: list[dict], hardware: str):
    """The configuration to apply: the one serving the most prompts among on-segments; γ is the
    projected best at the smallest batch on the chosen hardware when it differs from the measured one."""
    if verdict not in ("GO", "GO-SEGMENTS") or not on:
        return None, {}, None
    if verdict == "GO" and overall["method"]:  # one configuration for all traffic: the pooled best
        method, measured_g = overall["method"], overall["draft_length"]
    else:
        by_cfg: dict[tuple, int] = {}
        for s in on:
            by_cfg[(s["method"], s["draft_length"])] = by_cfg.get((s["method"], s["draft_length"]), 0) + s["n_prompts"]
        method, measured_g = max(by_cfg, key=by_cfg.get)
    g, note = measured_g, None
    ranges = next((s["batch_ranges"] for s in on if s["method"] == method and s["batch_ranges"]), [])
    if hardware != hw.THIS_MACHINE and ranges and ranges[0]["gamma"] and ranges[0]["gamma"] != measured_g:
        g = ranges[0]["gamma"]
        note = (f"γ={g} is the projected best on {hardware} at batch {ranges[0]['batch_min']}"
                f"–{ranges[0]['batch_max']}; the best measured on this machine was γ={measured_g}")
    # GO applies the pooled configuration to all traffic; GO-SEGMENTS to the segments it is best for.
    cats = [s["category"] for s in on if verdict == "GO" or s["method"] == method]
    models = a.manifest.get("models", {})
    text = snip.snippets(method, g, snip.model_ref(models.get("target")), _drafter_ref(a, method))
    return {"method": method, "label": a.label(method), "draft_length": g, "measured_draft_length": measured_g,
            "categories": cats}, text, note


def _drafter_ref(a: Analysis, method: str) -> str | None:
    """What an engine is given as the drafter of `method`: the draft model (models.draft's local files
    when it is that model), the Medusa heads' spec; None when the method needs none."""
    info = a.drafters.get(method) or {}
    fam = methods.family(method)
    if fam == "draft":
        first = a.manifest.get("models", {}).get("draft") or {}
        if first and (method == "draft" or first.get("spec") == info.get("spec")):
            return snip.model_ref(first, "DRAFT")
        return snip.model_ref(info, "DRAFT")
    if fam == "medusa":
        return info.get("spec") or None
    return None


# ---- words ----

def _ci(s: dict) -> str:
    """Three decimals: a bound of 1.047 must not print as the 1.05 it failed to reach."""
    return words.ci(s["speedup_lo"], s["speedup_hi"],
                    missing=f"none: too few prompts (< {config.MIN_CI_PROMPTS}) for an interval")


def _span(lo, hi, unit: str = "×") -> str:
    if unit:
        return words.x(lo) if f"{lo:.2f}" == f"{hi:.2f}" else f"{words.x(lo)}–{words.x(hi)}"
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def _headline(verdict: str, cfg: dict | None, on: list[dict], hardware: str, a: Analysis) -> str:
    if verdict == "GO":
        return f"GO: turn on {a.label(cfg['method'])} with γ={cfg['draft_length']} for all traffic"
    if verdict == "GO-SEGMENTS":
        return f"GO for {', '.join(s['category'] for s in on)} only; leave the rest off"
    if verdict == "NO-GO":
        return "NO-GO: speculative decoding does not pay on this workload"
    return "INSUFFICIENT EVIDENCE: measure more prompts before deciding"


def _reasons(a: Analysis, verdict, overall, cats, segments, cfg, hardware, th: Thresholds, gamma_note,
             j: dict) -> list[str]:
    r = []
    n = overall["n_prompts"]
    r.append(f"{n} prompts in {len(cats)} categor{'y' if len(cats) == 1 else 'ies'} "
             f"(a confident verdict needs ≥ {th.min_prompts}, a category ≥ {th.min_prompts_per_segment}).")
    if overall["method"]:
        r.append(f"Pooled, the best configuration is {a.label(overall['method'])} γ={overall['draft_length']}: decode speedup "
                 f"{words.x(overall['speedup'])} (95% CI {_ci(overall)}) on this "
                 f"machine, {overall['base_tpot_ms']:.1f} → {overall['tpot_ms']:.1f} ms per token "
                 f"({_saving(overall)}); the bar is a lower bound ≥ {th.min_speedup_lo:.2f}×.")
    r.append(_tests_reason(j, th))
    het = j["heterogeneity"]
    if np.isfinite(het["p_value"]):
        r.append(f"Do the categories differ? Permutation test over {len(het['categories'])} categories with ≥ "
                 f"{th.min_prompts_per_segment} prompts: p = {het['p_value']:.3f} "
                 + ("(< {:.2f}: they differ, so each is judged on its own)".format(config.HETEROGENEITY_ALPHA)
                    if het["p_value"] <= config.HETEROGENEITY_ALPHA else
                    "(no evidence they differ: one verdict for all traffic; per-category figures are descriptive)")
                 + ".")
    for s in cats if len(cats) > 1 else []:
        r.append(_segment_reason(s, th, a))
    r.extend(_methods_reason(a))
    if overall["method"] is None:
        r.append("No speculative run has finished yet: there is nothing to compare with the baseline.")
    elif verdict == "INSUFFICIENT-EVIDENCE":
        pooled = overall["prompts_needed"] if overall["prompts_needed"] and math.isfinite(overall["prompts_needed"]) else 0
        need = max(th.min_prompts, pooled)
        text = (f"Not enough evidence for a confident verdict: measure about {need:.0f} prompts in all (pooled over "
                f"categories) so the pooled speedup CI is ±{th.ci_halfwidth:.2f} and clears or misses "
                f"{th.min_speedup_lo:.2f}×")
        per = [s for s in cats if len(cats) > 1 and s["status"] in ("unclear", "too-few")
               and s["prompts_needed"] and math.isfinite(s["prompts_needed"])]
        bare = {s["prompts_needed"] for s in per if s["speedup_lo"] is None}
        if per and len(bare) == 1 and all(s["speedup_lo"] is None for s in per):
            text += (f"; to judge categories apart, at least {bare.pop():.0f} in each of these {len(per)} categories "
                     "(no interval yet: too few prompts)")
        elif per:
            text += ("; to judge categories apart, " + ", ".join(
                (f"about {s['prompts_needed']:.0f}" if s["speedup_lo"] is not None else
                 f"at least {s['prompts_needed']:.0f} (no interval yet)") + f" in {s['category']}"
                for s in per[:6]) + (f" and likewise in {len(per) - 6} more" if len(per) > 6 else "")
                + " (each category on its own)")
        r.append(text + ".")
    non_iid = a.summary[(a.summary["method"] != "baseline") & (a.summary["alpha_iid"] == False)]  # noqa: E712
    for _, row in non_iid.head(2).iterrows():
        r.append(f"Acceptance is not i.i.d. for {a.label(row['method'])} γ={row['draft_length']}: the α estimates differ by "
                 f"{row['alpha_spread']:.2f} (> {config.ALPHA_DISAGREEMENT}); γ is chosen from the per-position "
                 f"rates, not from Leviathan's closed form.")
    err = a.projection_error[a.projection_error["category"] == ALL]
    if len(err):
        worst = err["speedup_rel_error"].abs().max()
        text = (f"The draft-length projection (per-position acceptance of the largest γ run plus the measured costs) "
                f"misses the measured speedup by at most {100 * worst:.0f}% at the γ values run")
        if worst > config.PROJECTION_TRUST_ERROR:
            text += "; treat projected γ values other than those run with caution"
        r.append(text + ".")
    for s in segments:
        if s["batch_ranges"]:
            parts = [("off" if b["gamma"] is None else f"γ={b['gamma']} ({_span(b['speedup_min'], b['speedup_max'])})")
                     + f" at batch {_span(b['batch_min'], b['batch_max'], '')}" for b in s["batch_ranges"]]
            r.append(f"Projected on {hardware} for {s['category']}: " + "; ".join(parts) + ".")
    if gamma_note:
        r.append(gamma_note + ".")
    if cfg:
        r.append(_memory_reason(a, cfg["method"]))
    if cfg:
        c = a.compute[(a.compute["method"] == cfg["method"]) & (a.compute["draft_length"] == cfg["measured_draft_length"])]
        if len(c):
            c = c.iloc[0]
            r.append(f"Compute price: {c['flops_ratio']:.2f}× the FLOPs per token of plain decoding "
                     f"({100 * c['rejected_share']:.0f}% of verified positions are thrown away; Thm 3.11 predicts "
                     f"{c['flops_ratio_theory']:.2f}×) — speculation saves latency, not compute.")
    r.append(_lossless_reason(a.lossless, th, a.label))
    return r


def _tests_reason(j: dict, th: Thresholds) -> str:
    """How many configurations were tried and what the multiplicity correction asked of them."""
    t = j["tests"]
    k_pooled = int((t["category"] == ALL).sum())
    k_seg = int((t["category"] != ALL).sum())
    text = (f"Chance wins are corrected for: the pooled bar is tested one-sided at {100 * j['alpha']:.1f}% with Holm "
            f"over {k_pooled} configuration{'s' if k_pooled != 1 else ''}")
    if k_seg:
        text += f", a category's over {k_seg} category × configuration tests"
    return text + " (studentized bootstrap on the log speedup)."


def _saving(s: dict) -> str:
    if s["saving_ms"] >= 0:
        return f"{s['saving_ms']:.1f} ms ({s['saving_pct']:.0f}%) saved"
    return f"{-s['saving_ms']:.1f} ms ({-s['saving_pct']:.0f}%) lost"


def _methods_reason(a: Analysis) -> list[str]:
    """With several methods, one sentence comparing each at its best γ (compare.methods_table)."""
    t = compare.methods_table(a)
    if len(t) < 2:
        return []
    t = t.sort_values("speedup", ascending=False)
    parts = [f"{r['label']} {words.x(r['speedup'])} at γ={r['draft_length']}" for _, r in t.iterrows()]
    return [f"{len(t)} methods measured; each at its best γ, pooled: " + ", ".join(parts) + "."]


def _memory_reason(a: Analysis, method: str) -> str:
    """What the chosen method costs in memory beside the target (costs.memory_by_method)."""
    mem = a.memory
    row = mem.get("by_method", {}).get(method)
    label = a.label(method)
    if row is None or row.get("estimated") and not row["extra_total_gb"]:
        return f"Memory price of {label}: not recorded in this run."
    if row["extra_total_gb"] == 0:
        why = ("it reuses the target's weights and KV cache" if methods.family(method) == "layer-skip"
               else "it needs no model")
        return f"Memory price: none — {label} adds no weights or KV cache ({why})."
    est = " (estimated)" if row.get("kv_estimated") else ""
    kv = (f" plus {1e3 * row['extra_kv_gb_per_seq']:.1f} MB{est} of its own KV cache per "
          f"{mem['context_tokens']:.0f}-token sequence" if row["extra_kv_gb_per_seq"] else "")
    what = "heads" if methods.family(method) == "medusa" else "draft weights"
    return f"Memory price of {label}: {row['extra_weights_gb']:.2f} GB of {what}{kv} ({mem['dtype']})."


def _segment_reason(s: dict, th: Thresholds, a: Analysis) -> str:
    head = f"{s['category']} (n={s['n_prompts']}): "
    if s["method"] is None:
        return head + "no measured configuration."
    cfg = f"{a.label(s['method'])} γ={s['draft_length']} {words.x(s['speedup'])} (CI {_ci(s)})"
    return head + {
        "on": f"on — {cfg}, {_saving(s)} per token.",
        "off": f"off — even the best, {cfg}, stays below {th.min_speedup_lo:.2f}× at its upper bound.",
        "unclear": f"unclear — {cfg} does not clear {th.min_speedup_lo:.2f}× after the multiplicity correction; "
                   f"~{s['prompts_needed']:.0f} prompts in this category would settle it.",
        "too-few": f"too few prompts for a verdict of its own (< {th.min_prompts_per_segment}); best seen {cfg}.",
        "on (pooled)": f"too few prompts for a verdict of its own (< {th.min_prompts_per_segment}; best seen {cfg}); "
                       "follows the pooled result.",
    }[s["status"]]


def _lossless_reason(loss: dict, th: Thresholds, label=str) -> str:
    if not loss["applicable"]:
        return f"Losslessness at temperature {loss['temperature']:g}: " + loss["note"] + "." + _lossy_text(loss, label)
    rate = loss["identical_rate"]
    first = (f"; first divergences at token {', '.join(str(x) for x in loss['first_divergence'][:5])}"
             if loss["first_divergence"] else "")
    text = (f"Losslessness: {loss['identical']}/{loss['runs']} greedy runs ({100 * rate:.0f}%) reproduce the baseline "
            f"token for token in {loss['dtype']}{first}.")
    if loss["dtype"] == "float32" and rate < th.min_identical_rate:
        text += (f" Below {100 * th.min_identical_rate:.0f}% in float32 points to a decoder bug: do not trust the "
                 "speedups until it is explained.")
    elif loss["dtype"] != "float32" and rate < 1.0:
        text += " In bfloat16, late divergences come from near-ties in rounding; rerun in float32 to confirm."
    return text + _lossy_text(loss, label)


def _lossy_text(loss: dict, label) -> str:
    """What a lossy acceptance rule did to the output (left out of the counts above)."""
    parts = []
    for key, x in (loss.get("lossy") or {}).items():
        fd = x["first_divergence_median"]
        parts.append(f" {label(key)}, left out of that count: {100 * x['identical_rate']:.0f}% of its {x['runs']} runs "
                     f"match the baseline" + (f"; the others first differ at token {fd:.0f} (median)" if fd == fd else "") + ".")
    return "".join(parts)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, pd.DataFrame):
        return _jsonable(x.to_dict("records"))
    return x
