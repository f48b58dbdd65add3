"""The hardware what-if checked against an engine run: projected vs measured SD/baseline ratio at each
measured concurrency, and the error (issue 14, item 5).

The llama.cpp profile is *derived from the run itself*, not cited: no publication gives llama.cpp's
per-forward constants on a CPU, and neither the GPU engine constants (hardware.ENGINES, fitted on vLLM and
HF eager runs) nor this machine's in-process calibration (our PyTorch loop on de-quantised float32 weights)
describes llama.cpp's quantised kernels. Only the *baseline* server's levels are used for the fit, so the
speculative side — what is projected — stays out of sample and the error below is a real check:

    t(k) = a + b·k        one llama.cpp forward over k tokens in total (sequences × tokens each), seconds;
                          a, b: least squares on the baseline's p50 inter-token latency at each concurrency C
                          (k = C: in a closed loop a decode step carries one token of each of the C requests)
    as a roofline profile: bandwidth = W_t / a, FLOPS = 2 N_t / b (memory and compute add, as on a CPU),
                          no per-forward or per-layer term (absorbed in a); KV reads are in the fitted a, b
    draft forward         t_d = step_time_s(profile, draft, 1, 1) = (W_d / W_t)·a + (N_d / N_t)·b
                          (same kernels and quantisation, scaled by the draft's size); one per slot and
                          drafted token: llama-server drafts each slot's sequence on its own
                          (common/speculative.h: common_speculative_gen_draft takes one sequence)
    round at C, γ         C·γ·t_d + t(C·(md + 1))   (one batched verify of every slot's md + 1 tokens)
    projected ratio       τ · t(C) / round          (Leviathan Thm 3.8 with the measured costs, per sequence)

τ and md (mean drafted per round) are the in-process run's acceptance at γ for the draft model
(projection.acceptance_profile, what the what-if carries over) when the file holds one; otherwise the
engine's own τ with md = γ (then only the cost model is checked). Error = projected / measured − 1.
"""

from __future__ import annotations

import numpy as np

from specdec import methods as M
from specdec.analysis.costs import model_size
from specdec.analysis.hardware import HardwareProfile, step_time_s
from specdec.analysis.projection import acceptance_profile

CHECKED_ENGINES = ("llama.cpp",)  # engines with a profile derived from their own baseline levels
SOURCE = "fitted on this engine run's baseline p50 ITL per concurrency (analysis/engine_check.py)"


def fitted_profile(engine: dict, target, dtype: str) -> HardwareProfile | None:
    """The llama.cpp-on-this-machine roofline profile from the baseline side's levels (module docstring);
    None with fewer than two concurrency levels or a fit that is not positive."""
    base = next((s for s in engine.get("sides", []) if s.get("draft_length") is None and s["label"] == "baseline"),
                None)
    pts = [(lv["concurrency"], lv["itl_s"]["p50"]) for lv in (base or {}).get("levels", [])
           if lv["itl_s"].get("p50")]
    if len({c for c, _ in pts}) < 2 or target is None:
        return None
    k, t = np.array(pts, dtype=float).T
    b, a = (float(x) for x in np.polyfit(k, t, 1))
    if not (a > 0 and b > 0):
        return None
    return HardwareProfile(f"{engine['engine']} on this machine", bandwidth_gbs=target.weight_bytes(dtype) / a / 1e9,
                           peak_tflops=2.0 * target.parameters / b / 1e12, memory_gb=0.0, layer_latency_s=0.0,
                           bandwidth_efficiency=1.0, compute_efficiency=1.0, overlap=False, source=SOURCE,
                           forward_overhead_s=0.0, engine=engine["engine"])


def _inprocess_acceptance(analysis, gamma: int) -> tuple[float, float] | None:
    """(τ, mean drafted) of the in-process draft model at γ, as the what-if uses it; None without one."""
    if analysis is None:
        return None
    rounds = analysis.measurements.rounds
    keys = [k for k in rounds["method"].unique() if M.uses_model(k) and M.spec(k).own_network]
    if not keys:
        return None
    r = rounds[rounds["method"] == sorted(keys)[0]]
    src = r[r["draft_length"] == r["draft_length"].max()]
    if src.empty:
        return None
    p = acceptance_profile(src["drafted"].to_numpy(), src["accepted"].to_numpy(), [gamma],
                           src["prompt_id"].to_numpy()).iloc[0]
    return float(p["tau"]), float(p["mean_drafted"])


def projected_vs_measured(results: dict, analysis=None) -> dict:
    """{rows: [{draft_length, concurrency, tau, tau_source, projected, measured, measured_lo, measured_hi,
    error}], profile: {bandwidth_gbs, peak_tflops, a_s, b_s} | None, note: str}. rows is empty (note says why)
    for an engine without a derived profile, a file without model sizes, or fewer than two baseline levels.
    results: a results dict with an `engine` block; analysis: its in-process Analysis, if it has prompts."""
    engine = results.get("engine") or {}
    if engine.get("engine") not in CHECKED_ENGINES:
        return {"rows": [], "profile": None,
                "note": f"no what-if check for {engine.get('engine')!r}: its hardware is not known here"}
    models = (results.get("manifest") or {}).get("models") or {}
    dtype = (results.get("manifest") or {}).get("settings", {}).get("dtype", "float32")
    sized = all((models.get(role) or {}).get("parameters") for role in ("target", "draft"))  # 0: engine-only file
    target, draft = (model_size(models["target"]), model_size(models["draft"])) if sized else (None, None)
    if target is None or draft is None:
        return {"rows": [], "profile": None, "note": "no model sizes in this file: run the in-process `run` into "
                                                     "the same --out to check the what-if against this engine run"}
    hw = fitted_profile(engine, target, dtype)
    if hw is None:
        return {"rows": [], "profile": None,
                "note": "the llama.cpp profile needs the baseline at two or more concurrency levels"}
    t = lambda k: step_time_s(hw, target, 1, float(k), 0.0, dtype)[0]  # noqa: E731  one forward over k tokens
    t_d = step_time_s(hw, draft, 1, 1.0, 0.0, dtype)[0]
    rows = []
    for r in engine.get("levels", []):
        g, c, ratio = r.get("draft_length"), r["concurrency"], r["ratio"]
        if not g or ratio.get("estimate") is None:
            continue
        acc = _inprocess_acceptance(analysis, g)
        if acc is not None:
            tau, md, source = acc[0], acc[1], "in-process run"
        elif r.get("tau"):
            tau, md, source = float(r["tau"]), float(g), "engine counters"
        else:
            continue
        projected = tau * t(c) / (c * g * t_d + t(c * (md + 1.0)))
        rows.append({"draft_length": g, "concurrency": c, "tau": tau, "tau_source": source, "projected": projected,
                     "measured": ratio["estimate"], "measured_lo": ratio.get("lo"), "measured_hi": ratio.get("hi"),
                     "error": projected / ratio["estimate"] - 1.0})
    return {"rows": rows, "note": SOURCE,
            "profile": {"bandwidth_gbs": hw.bandwidth_gbs, "peak_tflops": hw.peak_tflops, "a_s": float(t(0.0)),
                        "b_s": float(t(1.0) - t(0.0)), "draft_step_s": float(t_d)}}
