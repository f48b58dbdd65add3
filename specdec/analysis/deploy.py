"""The deployment target is part of the question: engine + hardware (× TP) + a concurrency range.

The local run measures acceptance and checks the cost model; its own speedup belongs to this CPU at batch 1.
The verdict for a deployment comes, in this order, from

    an engine measurement   results["engine"].levels (specdec.engines, `engine-run`): the measured SD/baseline
                            ratio with its interval at each concurrency — used when it was made with the
                            deployment's engine (from_engine_levels);
    the projection          the measured acceptance pushed through the calibrated hardware model at every
                            concurrency of the range, with its bootstrap interval (hardware.whatif);
                            configurations are chosen on the point estimate at the lowest concurrency, and the
                            intervals are Bonferroni-widened over the methods compared.

Per concurrency level: "on" when the interval's lower bound reaches the bar, "off" when its upper bound is below
it, "unclear" otherwise. GO: on at every level of the range; GO-SEGMENTS: on for part of the range (listed);
NO-GO: off at the lowest level and on nowhere; INSUFFICIENT-EVIDENCE otherwise.

Public API
    Deployment (frozen dataclass): hardware, engine, tp, concurrency (lo, hi); .label, .profile()
    parse_concurrency("1-64") -> (1, 64);  parse_deploy("H100-SXM", engine, tp, "1-64") -> Deployment
    levels_in(concurrency) -> [batch sizes]
    engine_levels_for(results, deployment) -> rows | None
    from_engine_levels(rows, concurrency, bar, engine) -> dict | None    the hook for engine measurements
    from_projection(analysis, deployment, bar, methods, category, dtype) -> dict
    verdict_of(levels) -> str
    weights_note(manifest) -> str        what was measured (dtype, quantisation) vs what a deployment serves
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from specdec import config, methods as M
from specdec.analysis import hardware as hw
from specdec.analysis.projection import largest_gamma_run
from specdec.errors import SpecdecError


@dataclass(frozen=True)
class Deployment:
    hardware: str = config.DEFAULT_HARDWARE
    engine: str = hw.DEFAULT_ENGINE
    tp: int = 1
    concurrency: tuple[int, int] = config.DEFAULT_CONCURRENCY

    @property
    def label(self) -> str:
        lo, hi = self.concurrency
        where = "this machine" if self.hardware == hw.THIS_MACHINE else (
            f"{self.tp}× {self.hardware}" if self.tp > 1 else self.hardware)
        conc = f"concurrency {lo}" if lo == hi else f"concurrency {lo}–{hi}"
        return f"{self.engine} on {where}, {conc}"

    def profile(self):
        """What hardware.whatif is given: this machine by name (its profile is fitted to the run), else the
        GPU profile with the engine's costs and the TP degree."""
        if self.hardware == hw.THIS_MACHINE:
            return hw.THIS_MACHINE
        return hw.deployment_profile(self.hardware, self.engine, self.tp)


def parse_concurrency(text) -> tuple[int, int]:
    """'1-64' → (1, 64); '8' → (8, 8). One-line error otherwise."""
    parts = str(text).replace("–", "-").split("-")
    try:
        lo, hi = (int(parts[0]), int(parts[-1])) if len(parts) in (1, 2) else (0, 0)
    except ValueError:
        lo = hi = 0
    if not (1 <= lo <= hi <= 4096):
        raise SpecdecError(f"concurrency must look like 1-64 (1 ≤ low ≤ high ≤ 4096), got {text!r}")
    return lo, hi


def parse_deploy(hardware: str, engine: str = hw.DEFAULT_ENGINE, tp: int = 1,
                 concurrency="1-64") -> Deployment:
    if hardware != hw.THIS_MACHINE:
        hw.profile(hardware)  # unknown names: one line
        hw.deployment_profile(hardware, engine, tp)  # unknown engine or bad TP: one line
    return Deployment(hardware, engine, int(tp), parse_concurrency(concurrency))


def levels_in(concurrency: tuple[int, int]) -> list[int]:
    """The what-if batch sizes inside the range, with both ends."""
    lo, hi = concurrency
    return sorted({lo, hi} | {b for b in config.WHATIF_BATCH_SIZES if lo <= b <= hi})


def verdict_of(levels: list[dict]) -> str:
    status = [lv["status"] for lv in levels]
    if status and all(s == "on" for s in status):
        return "GO"
    if "on" in status:
        return "GO-SEGMENTS"
    if status and status[0] == "off":
        return "NO-GO"
    return "INSUFFICIENT-EVIDENCE"


def _status(lo, hi, bar: float) -> str:
    if lo is not None and np.isfinite(lo) and lo >= bar:
        return "on"
    if hi is not None and np.isfinite(hi) and hi < bar:
        return "off"
    return "unclear"


def engine_levels_for(results, deployment: Deployment | None) -> list[dict] | None:
    """results["engine"]["levels"] when that engine run used the deployment's engine (else None)."""
    if deployment is None or not isinstance(results, dict):
        return None
    eng = results.get("engine") or {}
    return eng.get("levels") if str(eng.get("engine", "")).lower() == deployment.engine else None


def from_engine_levels(rows: list[dict], concurrency: tuple[int, int], bar: float, engine: str | None = None) -> dict | None:
    """The verdict from an engine measurement: rows are results["engine"]["levels"] ({concurrency,
    draft_length, ratio: {estimate, lo, hi}, tau, …}; ratio = SD throughput / baseline throughput at that
    concurrency). Per concurrency in the range the draft length with the highest lower bound is kept.
    None when no row falls in the range (then the projection answers)."""
    lo_c, hi_c = concurrency
    best: dict[int, dict] = {}
    for r in rows or []:
        c, ratio = int(r.get("concurrency") or 0), r.get("ratio") or {}
        if not (lo_c <= c <= hi_c) or ratio.get("estimate") is None:
            continue
        key = ratio.get("lo") if ratio.get("lo") is not None else -np.inf
        if c not in best or key > best[c]["_key"]:
            best[c] = {"concurrency": c, "gamma": r.get("draft_length"), "speedup": ratio["estimate"],
                       "speedup_lo": ratio.get("lo"), "speedup_hi": ratio.get("hi"), "tau": r.get("tau"), "_key": key}
    if not best:
        return None
    levels = []
    for c in sorted(best):
        lv = {k: v for k, v in best[c].items() if k != "_key"}
        lv["status"] = _status(lv["speedup_lo"], lv["speedup_hi"], bar)
        levels.append(lv)
    return {"basis": "engine", "engine": engine, "verdict": verdict_of(levels), "levels": levels, "method": None,
            "gamma": levels[0]["gamma"]}


def from_projection(analysis, deployment: Deployment, bar: float, methods=None, category: str = "all",
                    dtype: str = config.WHATIF_DTYPE) -> dict:
    """The verdict from the projection of the measured acceptance onto the deployment.

    methods: decidable method keys to compare (default: every decidable one measured). γ ranges over
    1 … the largest γ run (acceptance beyond it is extrapolated). Per method, γ is the best point estimate
    at the lowest concurrency; the method kept is the one with the highest lower bound there. Intervals are
    at level 1 − (1 − CI_LEVEL)/k for k methods (Bonferroni): the choice among methods is paid for.
    Returns {basis: "projection", verdict, method, gamma, level, levels: [{concurrency, gamma, speedup,
    speedup_lo, speedup_hi, speedup_band_lo, speedup_band_hi, fits, status}]}."""
    runs = analysis.measurements.runs
    keys = [k for k in (methods or analysis.methods) if k in set(runs["method"]) and M.decidable(k)]
    batches = levels_in(deployment.concurrency)
    level = 1.0 - (1.0 - config.CI_LEVEL) / max(len(keys), 1)
    prof = deployment.profile()
    best = None
    for k in keys:
        g_max = largest_gamma_run(runs, k)
        df = hw.whatif(analysis, hardware=[prof], batch_sizes=batches, gammas=range(1, g_max + 1), methods=[k],
                       category=category, dtype=dtype, ci_level=level)
        if df.empty:
            continue
        first = df[df["batch_size"] == batches[0]]
        g = int(first.loc[first["speedup"].idxmax(), "gamma"])
        rows = df[df["gamma"] == g].sort_values("batch_size")
        lo0 = rows["speedup_lo"].iloc[0]
        score = lo0 if np.isfinite(lo0) else rows["speedup"].iloc[0]
        if best is None or score > best[0]:
            best = (score, k, g, rows)
    if best is None:
        return {"basis": "projection", "verdict": "INSUFFICIENT-EVIDENCE", "method": None, "gamma": None,
                "level": level, "levels": []}
    _, k, g, rows = best
    levels = []
    for r in rows.itertuples():
        lv = {"concurrency": int(r.batch_size), "gamma": g, "speedup": float(r.speedup),
              "speedup_lo": _f(r.speedup_lo), "speedup_hi": _f(r.speedup_hi),
              "speedup_band_lo": _f(r.speedup_band_lo), "speedup_band_hi": _f(r.speedup_band_hi),
              "fits": bool(r.fits_memory), "tau": float(r.tau)}
        lv["status"] = _status(lv["speedup_lo"], lv["speedup_hi"], bar) if lv["fits"] else "does not fit"
        levels.append(lv)
    return {"basis": "projection", "verdict": verdict_of(levels), "method": k, "gamma": g, "level": level,
            "levels": levels}


def _f(v):
    return float(v) if v is not None and np.isfinite(v) else None


def weights_note(manifest: dict) -> str:
    """One sentence: the dtype and quantisation acceptance was measured with, the weights a deployment would
    serve, and why acceptance may shift between them."""
    models = manifest.get("models") or {}
    dtype = (manifest.get("settings") or {}).get("dtype", "?")
    parts = []
    for role in ("target", "draft"):
        m = models.get(role) or {}
        spec = str(m.get("spec") or "")
        if not spec:
            continue
        orig = config.ORIGINAL_MODELS.get(spec)
        parts.append(f"{role} {orig['id']} as {orig['local_weights']} to {m.get('dtype') or dtype}" if orig
                     else f"{role} {spec} in {m.get('dtype') or dtype}")
    what = "; ".join(parts) or f"the models in {dtype}"
    return (f"Acceptance was measured with {what}. A deployment serves the original weights (bf16, or FP8 where "
            f"quantised for serving): different rounding of the same model moves its token probabilities slightly, "
            f"so τ may shift (by how much is not measured here; a 4-bit draft sits further from its original than the "
            f"target does) and greedy outputs can part at near-ties; an engine run on the serving weights "
            f"(engine-run) settles it.")
