"""What speculation costs: the measured time model, and the compute and memory it spends.

Time (from the per-round records of one results.json, this machine, batch 1):
    t_target   baseline decode seconds per token = Σ decode_s / Σ (new_tokens − 1)
    t_draft    per method, seconds per drafted token: the slope of draft_s = d0 + t_draft · drafted
               fitted over the method's rounds; d0 (draft_round_s) is what a round costs the drafter
               whatever it proposes — the draft model's catch-up on the tokens just accepted, or a prompt
               lookup that found nothing. With one drafted length only, d0 = 0 and t_draft = Σ draft_s / Σ drafted.
    c          t_draft / t_target (Leviathan's cost coefficient); c_effective(γ) includes d0
    T_verify   mean verify_s of rounds that drafted k tokens (a pass over k + 1 positions), also
               as a ratio to t_target (the idealised model of Thm 3.8 says 1 for every k); a weighted
               line ratio = a + b·k fills in k never measured
    overhead   per method, seconds per round spent outside draft and verify (accept/reject, cache
               rollback, bookkeeping) = Σ (decode_s − draft_s − verify_s) / Σ rounds

Price (speculation saves latency, not compute):
    compute    target positions verified (rejected ones included) + ĉ · draft positions, per token
               emitted, relative to plain decoding's one target position per token; ĉ = draft
               parameters / target parameters (FLOPs ≈ 2 · parameters per position, attention FLOPs
               ignored). Compared with Leviathan Thm 3.11 at the measured α.
               Draft positions count draft forwards: one per drafted token for a draft model or
               layer-skip, one per round for Medusa heads (methods.draft_steps), none for lookup.
    memory     per method: weights that exist only for drafting (extra_parameters: a draft model's,
               Medusa heads'; none for layer-skip, which reuses the target's) + the KV cache the drafter
               keeps beside the target's per sequence (2 · kv_layers · kv_heads · head_dim · bytes per
               token of context). Without num_key_value_heads/head_dim the KV width is estimated as
               hidden_size (no grouped-query attention: an upper bound), and kv_estimated says so.

What a drafter costs comes from manifest.models.drafters[key] (specdec.methods.drafter_info); results
written before several drafters existed lack it, and drafters(manifest) derives it — the one place
that knows the old layout.

Public API
    CostModel (frozen dataclass), cost_model(measurements) -> CostModel
    ModelSize (frozen dataclass), model_size(manifest_model) -> ModelSize | None
    bytes_per_param(dtype) -> float
    drafters(manifest, keys=()) -> {method key: drafter info}
    draft_size(key, info) -> ModelSize | None         what one draft step reads (roofline)
    extra_bytes(key, info, dtype, batch, context) -> (weights, kv)   memory a drafter adds
    c_hat(info, target) -> float                      draft-step parameters / target parameters
    compute_overhead(measurements) -> DataFrame      per method × γ
    memory_overhead(manifest, context_tokens=None, dtype=None) -> dict   (by_method: per key)
    memory_by_method(manifest, context_tokens=None, dtype=None, keys=()) -> DataFrame
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from specdec import config, methods
from specdec.analysis.bootstrap import ratio
from specdec.errors import SpecdecError
from specdec.analysis.projection import operations_factor

_BYTES = {"float32": 4.0, "fp32": 4.0, "bfloat16": 2.0, "bf16": 2.0, "float16": 2.0, "fp16": 2.0,
          "int8": 1.0, "fp8": 1.0, "int4": 0.5}


def bytes_per_param(dtype: str) -> float:
    try:
        return _BYTES[str(dtype).lower().replace("torch.", "")]
    except KeyError:
        raise SpecdecError(f"unknown dtype {dtype!r}; expected one of {', '.join(sorted(_BYTES))}") from None


# ---- time ----

@dataclass(frozen=True)
class CostModel:
    """Measured costs on this machine; seconds unless the name says otherwise."""

    target_step_s: float
    draft_step_s: dict[str, float]  # method → seconds per drafted token (prompt lookup: the lookup)
    overhead_s: dict[str, float]  # method → seconds per round outside draft and verify
    verify: pd.DataFrame  # drafted, tokens, n_rounds, verify_s (mean), verify_median_s, ratio (÷ target_step_s),
    #                       source ("rounds"; "probe": traces.probe passes, n_rounds = passes)
    verify_intercept: float  # ratio ≈ intercept + slope · drafted
    verify_slope: float
    min_rounds: int = config.VERIFY_CURVE_MIN_ROUNDS
    notes: tuple[str, ...] = field(default_factory=tuple)
    draft_round_s: dict[str, float] = field(default_factory=dict)  # method → d0, seconds per round

    @property
    def c(self) -> dict[str, float]:
        """Leviathan's c per method: draft step / target step."""
        return {m: t / self.target_step_s for m, t in self.draft_step_s.items()}

    def c_effective(self, method: str, gamma: int) -> float:
        """Drafting cost of a γ round per drafted token, in target steps: (d0 + γ t_draft) / (γ t_target)."""
        return (self.draft_round_s.get(method, 0.0) + gamma * self.draft_step_s[method]) / (gamma * self.target_step_s)

    def draft_s(self, method: str, drafted) -> np.ndarray:
        """Seconds the drafter spends in a round that proposes `drafted` tokens."""
        return self.draft_round_s.get(method, 0.0) + self.draft_step_s.get(method, 0.0) * np.asarray(drafted, dtype=float)

    def verify_ratio(self, drafted) -> np.ndarray:
        """T_verify(drafted + 1 tokens) / t_target: measured mean where ≥ min_rounds rounds, else the line."""
        k = np.asarray(drafted, dtype=float)
        out = np.maximum(self.verify_intercept + self.verify_slope * k, 0.0)
        good = self.verify[self.verify["n_rounds"] >= self.min_rounds]
        for kk, r in zip(good["drafted"], good["ratio"]):
            out = np.where(k == kk, r, out)
        return out

    def verify_s(self, drafted) -> np.ndarray:
        return self.verify_ratio(drafted) * self.target_step_s

    def to_dict(self) -> dict:
        return {"target_step_s": self.target_step_s, "draft_step_s": dict(self.draft_step_s),
                "draft_round_s": dict(self.draft_round_s), "c": self.c,
                "overhead_s": dict(self.overhead_s), "verify_intercept": self.verify_intercept,
                "verify_slope": self.verify_slope, "verify": self.verify.to_dict("records"),
                "notes": list(self.notes)}


def cost_model(measurements, probe: dict | None = None) -> CostModel:
    """Fit the time model to a Measurements bundle (specdec.analysis.collect). probe: timed verify passes
    (specdec.traces.probe: {"drafted": [...], "verify_s": [...]}) for the lengths its rounds leave thin."""
    prompts, runs, rounds = measurements.prompts, measurements.runs, measurements.rounds
    steps = (prompts["base_new_tokens"] - 1).clip(lower=0)
    if steps.sum() == 0:
        raise SpecdecError("no baseline generated more than one token: the target step time is unknown")
    t_target = float(prompts["base_decode_s"].sum() / steps.sum())
    notes = []
    draft_step, draft_round, overhead = {}, {}, {}
    for method, r in rounds.groupby("method", sort=True):
        draft_round[method], draft_step[method] = _fit_draft(r["drafted"].to_numpy(float), r["draft_s"].to_numpy(float))
    for method, g in runs.groupby("method", sort=True):
        n_rounds = g["rounds"].sum()
        spent = (g["decode_s"] - g["draft_s"] - g["verify_s"]).sum()
        overhead[method] = max(float(spent / n_rounds), 0.0) if n_rounds else 0.0
    # Means, not medians: the measured speedup is a ratio of totals, so the model must add up the same
    # way (timing spikes on a busy machine are part of what the totals paid). The median is kept to show skew.
    curve = (rounds.groupby("drafted")["verify_s"].agg(["mean", "median", "size"]).reset_index()
             .rename(columns={"mean": "verify_s", "median": "verify_median_s", "size": "n_rounds"}))
    curve["tokens"] = curve["drafted"] + 1
    curve["ratio"] = curve["verify_s"] / t_target
    curve = curve[["drafted", "tokens", "n_rounds", "verify_s", "verify_median_s", "ratio"]].assign(source="rounds")
    if probe:
        curve = with_probe(curve, probe, t_target)
    intercept, slope = _fit_line(curve)
    if len(curve) < 2:
        notes.append("verify cost measured at one draft length only: the verify curve assumes a pass over one "
                     "token costs one target step")
    return CostModel(t_target, draft_step, overhead, curve, intercept, slope, notes=tuple(notes),
                     draft_round_s=draft_round)


def with_probe(curve: pd.DataFrame, probe: dict, t_target: float,
               min_rounds: int = config.VERIFY_CURVE_MIN_ROUNDS) -> pd.DataFrame:
    """The verify curve with each probed length whose rounds are fewer than min_rounds replaced by the probe:
    ratio = median pass over k + 1 tokens ÷ median one-token pass, both timed in the same sweeps (so the
    machine's speed cancels), in seconds at this run's target step. source says which a point is."""
    p = pd.DataFrame({"drafted": probe.get("drafted", []), "verify_s": probe.get("verify_s", [])})
    if p.empty or not (p["drafted"] == 0).any():
        return curve
    med = p.groupby("drafted")["verify_s"].agg(["median", "size"])
    ref = float(med.loc[0, "median"])
    if ref <= 0:
        return curve
    have = dict(zip(curve["drafted"], curve["n_rounds"]))
    ratio = med["median"] / ref
    new = [{"drafted": int(k), "tokens": int(k) + 1, "n_rounds": int(med.loc[k, "size"]),
            "verify_s": ratio[k] * t_target, "verify_median_s": ratio[k] * t_target, "ratio": float(ratio[k]),
            "source": "probe"}
           for k in med.index if k > 0 and have.get(k, 0) < min_rounds]
    if not new:
        return curve
    probed = {r["drafted"] for r in new}
    out = pd.concat([curve[~curve["drafted"].isin(probed)], pd.DataFrame(new)], ignore_index=True)
    return out.sort_values("drafted", ignore_index=True)


def _fit_draft(drafted: np.ndarray, seconds: np.ndarray) -> tuple[float, float]:
    """(d0, t_draft) from draft_s = d0 + t_draft · drafted, least squares over rounds; a fit that needs
    a negative term, or data at one drafted length, falls back to d0 = 0 and the pooled ratio."""
    pooled = (0.0, float(seconds.sum() / drafted.sum()) if drafted.sum() else 0.0)
    if len(np.unique(drafted)) < 2:
        return pooled
    slope, intercept = np.polyfit(drafted, seconds, 1)
    return (float(intercept), float(slope)) if intercept >= 0 and slope >= 0 else pooled


def _fit_line(curve: pd.DataFrame) -> tuple[float, float]:
    """Weighted least squares of ratio on drafted (weights √n_rounds); with one point the line goes
    through (0, 1): a one-token verify costs one target step."""
    if len(curve) == 0:
        return 1.0, 0.0
    k = curve["drafted"].to_numpy(dtype=float)
    r = curve["ratio"].to_numpy(dtype=float)
    if len(curve) == 1:
        return (1.0, float((r[0] - 1.0) / k[0])) if k[0] > 0 else (float(r[0]), 0.0)
    slope, intercept = np.polyfit(k, r, 1, w=np.sqrt(curve["n_rounds"].to_numpy(dtype=float)))
    return float(intercept), float(slope)


# ---- model sizes ----

@dataclass(frozen=True)
class ModelSize:
    """What the roofline and the memory bill need from manifest.models.*."""

    parameters: int
    num_layers: int
    hidden_size: int
    kv_width: int  # num_key_value_heads · head_dim
    kv_estimated: bool  # True: kv_width = hidden_size because the manifest lacks kv heads / head_dim

    def weight_bytes(self, dtype: str) -> float:
        return self.parameters * bytes_per_param(dtype)

    def kv_bytes_per_token(self, dtype: str) -> float:
        """K and V for one token of context in every layer."""
        return 2.0 * self.num_layers * self.kv_width * bytes_per_param(dtype)


def model_size(model: dict | None) -> ModelSize | None:
    """ModelSize from a manifest MODEL dict; None when the model is absent (prompt lookup only).

    parameters here = what one decode step reads and multiplies: the recorded count minus one vocab ×
    hidden table when the record is untied (the input embedding is looked up a row at a time; lm_head is
    read whole). Untied: the record says tie_word_embeddings false, or it is a bundled GGUF conversion
    (config.ORIGINAL_MODELS: de-quantised conversions are saved untied although Qwen2.5-Coder 0.5B/1.5B
    tie) — 1.777 B → 1.544 B for the bundled target, 630 M → 494 M for its draft. Records without the
    flag count as tied: subtracting a table that is not there would undercount a small model by ~25%."""
    if not model:
        return None
    heads, head_dim = model.get("num_key_value_heads"), model.get("head_dim")
    estimated = not (heads and head_dim)
    width = int(model["hidden_size"]) if estimated else int(heads) * int(head_dim)
    params = int(model["parameters"])
    tied = model.get("tie_word_embeddings")
    if tied is None:
        tied = not config.ORIGINAL_MODELS.get(str(model.get("spec")), {}).get("local_untied", False)
    table = int(model.get("vocab_size") or 0) * int(model["hidden_size"])
    if not tied and 0 < table < params:
        params -= table
    return ModelSize(params, int(model["num_layers"]), int(model["hidden_size"]), width, estimated)


# ---- drafters ----

def drafters(manifest: dict, keys=()) -> dict[str, dict]:
    """{method key: drafter info} (specdec.methods.drafter_info) for every method of the run, in display
    order. New runs record it in manifest.models.drafters; for older results (and any key measured but
    not recorded) it is derived here: "draft" from models.draft (its weights and KV cache are all extra),
    prompt lookup at zero cost, layer-skip from the target's size (estimated: marked `estimated`).
    keys: method keys measured (e.g. the runs' methods) that must be present."""
    models = manifest.get("models") or {}
    recorded = dict(models.get("drafters") or {})
    # settings.methods lists families in new runs ("layer-skip"), keys in old ones: only old runs need it.
    listed = [] if recorded else list((manifest.get("settings") or {}).get("methods") or [])
    wanted = methods.order([k for k in list(recorded) + listed + list(keys) if methods.is_valid(k)])
    return {k: dict(recorded[k]) if k in recorded else methods.derived_info(k, models) for k in wanted}


def _kv_width(key: str, info: dict) -> tuple[int, bool]:
    """(num_key_value_heads · head_dim, estimated) of the drafter's attention; 0 for drafters without one."""
    if not methods.reads_kv(key):
        return 0, False
    heads, head_dim = info.get("num_key_value_heads"), info.get("head_dim")
    if heads and head_dim:
        return int(heads) * int(head_dim), False
    return int(info.get("hidden_size") or 0), True


def extra_bytes(key: str, info: dict | None, dtype: str, batch: float = 1, context: float = 0.0) -> tuple[float, float]:
    """(weight bytes, KV bytes) a drafter adds beside the target for `batch` sequences of `context`
    tokens: extra_parameters, and kv_layers of its own KV cache (layer-skip reuses the target's)."""
    if not info:
        return 0.0, 0.0
    bpp = bytes_per_param(dtype)
    width, _ = _kv_width(key, info)
    return (float(info.get("extra_parameters") or 0) * bpp,
            2.0 * int(info.get("kv_layers") or 0) * width * bpp * float(batch) * float(context))


def draft_size(key: str, info: dict | None) -> ModelSize | None:
    """What one draft step of `key` reads, as a ModelSize for the roofline: its weights (`parameters`),
    `num_layers` of latency and, for attention drafters, a KV cache over those layers (a layer-skip
    step reads the target's first L layers' cache). None for prompt lookup or an unknown cost."""
    if not info or not methods.uses_model(key) or not info.get("parameters"):
        return None
    width, est = _kv_width(key, info)
    return ModelSize(int(info["parameters"]), int(info.get("num_layers") or 0), int(info.get("hidden_size") or 0),
                     width, est)


def c_hat(info: dict | None, target: ModelSize | None) -> float:
    """Draft-step FLOPs per target-position FLOPs ≈ parameters read per draft step / target parameters."""
    if not info or not methods.uses_model_family(info.get("family")):
        return 0.0
    if not (target and info.get("parameters")):
        return float("nan")
    return float(info["parameters"]) / target.parameters


# ---- price ----

def _draft_steps(method: str, hists) -> float:
    """Draft forwards over runs, from each run's drafted-length histogram (hist[k] = rounds drafting k)."""
    total = 0.0
    for h in hists:
        total += sum(n * methods.draft_steps(method, k) for k, n in enumerate(h) if n)
    return total


def compute_overhead(measurements) -> pd.DataFrame:
    """Per method × γ, pooled over prompts: target_positions_per_token (γ + 1 per round, rejected
    included, ÷ tokens emitted by rounds), draft_positions_per_token (draft forwards per token: one per
    drafted token, one per round for Medusa, none for lookup), rejected_share (verified positions thrown
    away), c_hat (drafter parameters / target parameters), flops_ratio (vs plain decoding = 1), alpha
    (accepted / tested), flops_ratio_theory (Thm 3.11 at that α and γ with the draft cost per round
    spread over γ; it assumes every round drafts γ)."""
    runs = measurements.runs
    manifest = measurements.manifest
    target = model_size((manifest.get("models") or {}).get("target"))
    info = drafters(manifest, runs["method"].unique() if len(runs) else ())
    rows = []
    for (method, g), df in runs.groupby(["method", "draft_length"], sort=True):
        tokens = (df["new_tokens"] - 1).clip(lower=0).sum()
        t_pos = (df["drafted"] + df["rounds"]).sum()
        d_pos = _draft_steps(method, df["drafted_hist"])
        ch = c_hat(info.get(method), target)
        alpha = float(ratio(df["accepted"].sum(), df["tested"].sum()))
        kept = (df["accepted"] + df["rounds"]).sum()
        per_token_c = ch * methods.draft_steps(method, g) / g if g else 0.0
        rows.append({
            "method": method, "draft_length": int(g), "c_hat": ch,
            "target_positions_per_token": float(ratio(t_pos, tokens)),
            "draft_positions_per_token": float(ratio(d_pos, tokens)),
            "rejected_share": float(ratio(t_pos - kept, t_pos)),
            "flops_ratio": float(ratio(t_pos + (ch if d_pos else 0.0) * d_pos, tokens)),
            "alpha": alpha,
            "flops_ratio_theory": (float(operations_factor(alpha, g, per_token_c))
                                   if np.isfinite(alpha) and np.isfinite(per_token_c) else np.nan),
        })
    return pd.DataFrame(rows, columns=["method", "draft_length", "c_hat", "target_positions_per_token",
                                       "draft_positions_per_token", "rejected_share", "flops_ratio", "alpha",
                                       "flops_ratio_theory"])


MEMORY_COLUMNS = ["method", "label", "family", "extra_weights_gb", "extra_kv_gb_per_seq", "extra_total_gb",
                  "kv_estimated", "estimated"]


def memory_by_method(manifest: dict, context_tokens: float | None = None, dtype: str | None = None,
                     keys=()) -> pd.DataFrame:
    """Extra memory each method needs beside the target (GB = 1e9 bytes), one row per method key:
    extra_weights_gb (extra_parameters: a draft model's or Medusa heads' weights; 0 for layer-skip and
    lookup), extra_kv_gb_per_seq (the drafter's own KV cache, kv_layers deep, for one sequence of
    context_tokens), extra_total_gb, kv_estimated (KV width taken as hidden_size), estimated (the
    drafter's size was derived, not recorded). Defaults as memory_overhead."""
    settings = manifest.get("settings") or {}
    dtype = dtype or settings.get("dtype", "bfloat16")
    context = float(context_tokens if context_tokens is not None else settings.get("max_new_tokens", 0))
    bytes_per_param(dtype)  # an unknown dtype fails here, in one line
    info = drafters(manifest, keys)
    rows = []
    for key, d in info.items():
        _, est = _kv_width(key, d)
        kv_layers = int(d.get("kv_layers") or 0)
        w, kv = (x / 1e9 for x in extra_bytes(key, d, dtype, 1, context))
        rows.append({"method": key, "label": methods.label(key, info), "family": methods.family(key),
                     "extra_weights_gb": w, "extra_kv_gb_per_seq": kv, "extra_total_gb": w + kv,
                     "kv_estimated": bool(est and kv_layers), "estimated": bool(d.get("estimated"))})
    return pd.DataFrame(rows, columns=MEMORY_COLUMNS)


def memory_overhead(manifest: dict, context_tokens: float | None = None, dtype: str | None = None,
                    keys=()) -> dict:
    """Extra memory for drafting (GB = 1e9 bytes) at context_tokens per sequence (default: the run's
    max_new_tokens; analyze passes the mean prompt length + max_new_tokens) in dtype (default the run's).
    by_method: {key: memory_by_method row}; draft_weights_gb / draft_kv_gb_per_seq: the run's first draft
    model (models.draft), kept for callers of the one-draft layout. Target figures are given for scale."""
    models = manifest.get("models", {})
    settings = manifest.get("settings", {})
    dtype = dtype or settings.get("dtype", "bfloat16")
    context = float(context_tokens if context_tokens is not None else settings.get("max_new_tokens", 0))
    target, draft = model_size(models.get("target")), model_size(models.get("draft"))
    table = memory_by_method(manifest, context, dtype, keys)
    out = {"dtype": dtype, "context_tokens": context, "draft_weights_gb": 0.0, "draft_kv_gb_per_seq": 0.0,
           "target_weights_gb": np.nan, "target_kv_gb_per_seq": np.nan, "kv_estimated": False, "notes": [],
           "by_method": {r["method"]: r for r in table.to_dict("records")}}
    if target:
        out["target_weights_gb"] = target.weight_bytes(dtype) / 1e9
        out["target_kv_gb_per_seq"] = target.kv_bytes_per_token(dtype) * context / 1e9
    if draft:
        out["draft_weights_gb"] = draft.weight_bytes(dtype) / 1e9
        out["draft_kv_gb_per_seq"] = draft.kv_bytes_per_token(dtype) * context / 1e9
    if (target is not None and target.kv_estimated) or bool(table["kv_estimated"].any()):
        out["kv_estimated"] = True
        out["notes"].append("KV cache sizes are estimated: the manifest lacks num_key_value_heads/head_dim, so the "
                            "KV width is taken as hidden_size (an upper bound for grouped-query attention models)")
    guessed = [r["label"] for _, r in table.iterrows() if r["estimated"]]
    if guessed:
        out["notes"].append(f"drafter sizes not recorded in this run, estimated from the models: {', '.join(guessed)}")
    if draft is None and not table["family"].map(methods.uses_model_family).any():
        out["notes"].append("no drafting model in this run: prompt lookup needs no extra weights or KV cache")
    return out
