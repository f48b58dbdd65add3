"""The go/no-go decision: measured evidence in, a verdict with numbered reasons and configs out.

Verdicts (judge(); the tests in specdec.analysis.inference)
    GO                     the pooled speedup clears min_speedup_lo after the step-down over configurations, and the
                           categories are not shown to differ (or each clears it on its own)
    GO-SEGMENTS            categories differ (permutation test) and the listed ones clear the bar after the step-down
                           over categories × configurations: turn it on for those only
    NO-GO                  no configuration gains: every pooled CI upper bound is below min_speedup_lo
    INSUFFICIENT-EVIDENCE  too few prompts, or the intervals straddle the threshold: measure more

Per category (segment) status: "on" (a configuration clears the bar after the step-down; the one with the highest
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
from specdec.analysis import compare, inference, projection
from specdec.analysis import reasons as why
from specdec.analysis import deploy as dp
from specdec.analysis import hardware as hw
from specdec.measure import machine
from specdec.present import snippets as snip
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
    # Timed on a busy machine or with drifting speed: a verdict that rests on this CPU's timings decides
    # nothing. One about an engine measurement, or projected onto other hardware, rests on acceptance
    # counts, which the machine's load does not change.
    shaky = machine.unreliable(a.manifest)
    local = target is None or (target["basis"] != "engine" and deployment.hardware == hw.THIS_MACHINE)
    if shaky and local and verdict != "INSUFFICIENT-EVIDENCE":
        verdict = "INSUFFICIENT-EVIDENCE"
    whatif = _project(a, segments, hardware, batch_sizes, th)
    if target is not None and target["basis"] != "measured" and target["method"] and verdict in ("GO", "GO-SEGMENTS"):
        cfg, snippets, gamma_note = _target_config(a, target, [s["category"] for s in cats]), None, None
        snippets = snip.snippets(cfg["method"], cfg["draft_length"], snip.model_ref(a.manifest.get("models", {}).get("target")),
                                 _drafter_ref(a, cfg["method"]))
    else:
        cfg, snippets, gamma_note = _primary(a, verdict, overall, on if len(cats) > 1 else [overall], hardware)
    reasons = why.reasons(a, verdict, overall, cats, segments, cfg, hardware, th, gamma_note, j)
    if target is not None:
        reasons = why.target_reasons(a, deployment, target, j, verdict) + reasons
    if shaky and local:
        reasons = [f"These timings are unreliable: {shaky}. Re-run on a quiet machine before deciding."] + reasons
    elif shaky:
        reasons.append(f"This CPU's timings are unreliable ({shaky}): its own speedup and the cost-model check "
                       f"are not to be trusted, but the verdict above rests on acceptance, which load does not change.")
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
    headline = why.target_headline(verdict, target, deployment, a) if target is not None and target["basis"] != "measured" \
        else why.headline(verdict, cfg, on, hardware, a, cats)
    if shaky and local and verdict == "INSUFFICIENT-EVIDENCE":
        kind = "busy machine" if (a.manifest.get("machine") or {}).get("busy") else "the machine's speed drifted"
        headline = f"INSUFFICIENT EVIDENCE: the timings are unreliable ({kind}) — re-run on a quiet machine"
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


# ---- measured assessment ----

def judge(m, summary: pd.DataFrame, summary_by_category: pd.DataFrame, th: Thresholds = Thresholds(),
          n_boot: int = config.TEST_BOOTSTRAP_SAMPLES, seed: int = config.BOOTSTRAP_SEED) -> dict:
    """The verdict from measured speedups alone, with the multiplicity it involves accounted for
    (specdec.analysis.inference): {verdict, n_prompts, overall, categories (segment dicts), heterogeneity,
    tests (DataFrame), alpha}.

    GO          the pooled speedup of some configuration clears the bar after the step-down over configurations, and
                the categories are not shown to differ (or every category clears it on its own)
    GO-SEGMENTS categories differ (permutation test at HETEROGENEITY_ALPHA, or one is off while the pooled
                result clears) and some category clears the bar after the step-down over categories × configurations
    NO-GO       every configuration's pooled upper bound is below the bar, and no small or unclear category
                points above it
    INSUFFICIENT-EVIDENCE  otherwise, and whenever the run has fewer than min_prompts prompts
    α = (1 − CI_LEVEL) / 2: one-sided, the level at which the 95% interval's lower bound clears the bar."""
    alpha = (1.0 - config.CI_LEVEL) / 2.0
    n_total = int(len(m.prompts))
    sizes = m.prompts["category"].value_counts()
    adequate = sorted(c for c, k in sizes.items() if k >= th.min_prompts_per_segment)
    configs = _decidable_configs(summary)
    tests, t_star = inference.speedup_tests(m, th.min_speedup_lo, configs, adequate if len(sizes) > 1 else (),
                                            n_boot=n_boot, seed=seed)
    tests["rejected"], tests["p_adjusted"] = False, np.nan
    for fam in (tests["category"] == ALL, tests["category"] != ALL):  # GO's family, then the segments'
        cols = np.flatnonzero(fam.to_numpy())
        rejected, p_adj = inference.family(tests.iloc[cols], t_star[:, cols], alpha)
        tests.loc[fam, "rejected"], tests.loc[fam, "p_adjusted"] = rejected, p_adj
    passed = {(r.category, r.method, r.draft_length) for r in tests.itertuples() if r.rejected}
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
    # Passed its test (more resamples than the interval) and the interval shown clears the bar too.
    ok = rows[[(cat, r.method, int(r.draft_length)) in passed and r.speedup_lo >= th.min_speedup_lo
               for r in rows.itertuples()]]
    if n < th.min_prompts_per_segment or rows["speedup_lo"].isna().all():
        status, pick = "too-few", point
    elif len(ok):  # cleared the bar after the step-down; the one with the highest lower bound
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
        g_max = projection.largest_gamma_run(runs, s["method"])
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
    return methods.engine_ref(method, a.drafters.get(method) or {}, a.manifest.get("models") or {})


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
