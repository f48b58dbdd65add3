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
    memory     draft weights + the draft's KV cache per sequence (2 · layers · kv_heads · head_dim ·
               bytes per token of context). Without num_key_value_heads/head_dim in the manifest the
               KV width is estimated as hidden_size (no grouped-query attention: an upper bound), and
               kv_estimated says so.

Public API
    CostModel (frozen dataclass), cost_model(measurements) -> CostModel
    ModelSize (frozen dataclass), model_size(manifest_model) -> ModelSize | None
    bytes_per_param(dtype) -> float
    compute_overhead(measurements) -> DataFrame      per method × γ
    memory_overhead(manifest, context_tokens=None, dtype=None) -> dict
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from specdec import config
from specdec.bootstrap import ratio
from specdec.errors import SpecdecError
from specdec.projection import operations_factor

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
    verify: pd.DataFrame  # drafted, tokens, n_rounds, verify_s (mean), verify_median_s, ratio (÷ target_step_s)
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


def cost_model(measurements) -> CostModel:
    """Fit the time model to a Measurements bundle (specdec.analysis.collect)."""
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
    curve = curve[["drafted", "tokens", "n_rounds", "verify_s", "verify_median_s", "ratio"]]
    intercept, slope = _fit_line(curve)
    if len(curve) < 2:
        notes.append("verify cost measured at one draft length only: the verify curve assumes a pass over one "
                     "token costs one target step")
    return CostModel(t_target, draft_step, overhead, curve, intercept, slope, notes=tuple(notes),
                     draft_round_s=draft_round)


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
    """ModelSize from a manifest MODEL dict; None when the model is absent (prompt lookup only)."""
    if not model:
        return None
    heads, head_dim = model.get("num_key_value_heads"), model.get("head_dim")
    estimated = not (heads and head_dim)
    width = int(model["hidden_size"]) if estimated else int(heads) * int(head_dim)
    return ModelSize(int(model["parameters"]), int(model["num_layers"]), int(model["hidden_size"]), width, estimated)


# ---- price ----

def compute_overhead(measurements) -> pd.DataFrame:
    """Per method × γ, pooled over prompts: target_positions_per_token (γ + 1 per round, rejected
    included, ÷ tokens emitted by rounds), draft_positions_per_token, rejected_share (verified
    positions thrown away), c_hat, flops_ratio (vs plain decoding = 1), alpha (accepted / tested),
    flops_ratio_theory (Thm 3.11 at that α and γ; it assumes every round drafts γ)."""
    runs = measurements.runs
    models = measurements.manifest.get("models", {})
    target, draft = model_size(models.get("target")), model_size(models.get("draft"))
    c_hat_draft = draft.parameters / target.parameters if (draft and target) else np.nan
    rows = []
    for (method, g), df in runs.groupby(["method", "draft_length"], sort=True):
        tokens = (df["new_tokens"] - 1).clip(lower=0).sum()
        t_pos = (df["drafted"] + df["rounds"]).sum()
        d_pos = df["drafted"].sum() if method == "draft" else 0
        c_hat = c_hat_draft if method == "draft" else 0.0
        alpha = float(ratio(df["accepted"].sum(), df["tested"].sum()))
        kept = (df["accepted"] + df["rounds"]).sum()
        rows.append({
            "method": method, "draft_length": int(g), "c_hat": c_hat,
            "target_positions_per_token": float(ratio(t_pos, tokens)),
            "draft_positions_per_token": float(ratio(d_pos, tokens)),
            "rejected_share": float(ratio(t_pos - kept, t_pos)),
            "flops_ratio": float(ratio(t_pos + c_hat * d_pos, tokens)),
            "alpha": alpha,
            "flops_ratio_theory": float(operations_factor(alpha, g, c_hat)) if np.isfinite(alpha) else np.nan,
        })
    return pd.DataFrame(rows)


def memory_overhead(manifest: dict, context_tokens: float | None = None, dtype: str | None = None) -> dict:
    """Extra memory for the draft model (GB = 1e9 bytes): its weights, and its KV cache for one sequence
    of context_tokens (default: the run's mean prompt length + max_new_tokens, stored by analyze).
    dtype defaults to the run's. Target figures are given for scale."""
    models = manifest.get("models", {})
    settings = manifest.get("settings", {})
    dtype = dtype or settings.get("dtype", "bfloat16")
    context = float(context_tokens if context_tokens is not None else settings.get("max_new_tokens", 0))
    target, draft = model_size(models.get("target")), model_size(models.get("draft"))
    out = {"dtype": dtype, "context_tokens": context, "draft_weights_gb": 0.0, "draft_kv_gb_per_seq": 0.0,
           "target_weights_gb": np.nan, "target_kv_gb_per_seq": np.nan, "kv_estimated": False, "notes": []}
    if target:
        out["target_weights_gb"] = target.weight_bytes(dtype) / 1e9
        out["target_kv_gb_per_seq"] = target.kv_bytes_per_token(dtype) * context / 1e9
    if draft:
        out["draft_weights_gb"] = draft.weight_bytes(dtype) / 1e9
        out["draft_kv_gb_per_seq"] = draft.kv_bytes_per_token(dtype) * context / 1e9
    if any(m is not None and m.kv_estimated for m in (target, draft)):
        out["kv_estimated"] = True
        out["notes"].append("KV cache sizes are estimated: the manifest lacks num_key_value_heads/head_dim, so the "
                            "KV width is taken as hidden_size (an upper bound for grouped-query attention models)")
    if draft is None:
        out["notes"].append("no draft model in this run: prompt lookup needs no extra weights or KV cache")
    return out
