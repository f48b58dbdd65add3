"""Layer-skip self-speculation (Draft & Verify, Zhang et al. 2023; LayerSkip's early exit, Elhoushi et al.
2024): the target's first L layers + final norm + lm_head draft, sharing every weight. Key 'layer-skip:L<n>'."""

from __future__ import annotations

import re

from specdec import config
from specdec.errors import SpecdecError
from specdec.methods.family import Family, Key


def default_layers(n_layers: int) -> int:
    """The L a run uses when none is given: LAYER_SKIP_DEFAULT_FRACTION of the target's layers."""
    return max(1, round(n_layers * config.LAYER_SKIP_DEFAULT_FRACTION))


class LayerSkip(Family):
    name = "layer-skip"
    label = "layer-skip"
    summary = "the target's own first L layers draft"
    steps_per_round = "gamma"
    uses_model = True
    reads_kv = True
    # A model never trained for early exit accepts poorly from shallow layers (LayerSkip, Elhoushi et al. 2024).
    acceptance_guess = (0.7, 0.4, 0.1)
    traced_cost = "readout"
    options = ("layer_skip_layers",)
    free_why = "it reuses the target's weights and KV cache"

    def parse(self, key, variant):
        if not (variant and re.fullmatch(r"L[1-9][0-9]*", variant)):
            raise SpecdecError(f"method {key!r}: layer-skip needs its layer count, as in layer-skip:L8")
        return Key(key, self.name, variant, layers=int(variant[1:]))

    def key_label(self, k, drafters):
        return f"layer-skip (first {k.layers} layers)"

    def short_label(self, k, drafters):
        return f"layer-skip {k.variant}"

    def rank(self, k):
        return ("", k.layers)  # L4 before L12

    def unused(self, s):
        return {"layer_skip_layers": ()}

    def run_label(self, cfg, name):
        return ["layer-skip " + (", ".join(f"L{n}" for n in cfg.layer_skip_layers) or "(half the layers)")]

    def sources(self, ctx):
        from specdec import methods
        from specdec.decoding.drafters import layer_skip_model
        from specdec.measure.bench import DraftSource
        n = ctx.target.model.config.get_text_config().num_hidden_layers
        sources, infos = [], {}
        for L in ctx.cfg.layer_skip_layers or (default_layers(n),):
            if not 1 <= L < n:
                raise SpecdecError(f"--layer-skip-layers {L}: the target has {n} layers; choose 1 … {n - 1}")
            key = methods.layer_skip_key(L)
            params = sum(p.numel() for p in ctx.target.model.base_model.layers[:L].parameters()) + ctx.lm_params
            info = methods.drafter_info(key, parameters=params, num_layers=L, kv_layers=L, spec=ctx.target.spec,
                                        name=f"L={L}", **ctx.kv)
            sources.append(DraftSource(key, model=layer_skip_model(ctx.target.model, L), info=info))
            infos[key] = info
        return sources, infos

    def build(self, source, target, sampling, generator, vocab_size):
        from specdec.decoding.drafters import DraftModelDrafter
        return DraftModelDrafter(source.model, sampling, generator, vocab_size)

    def trace_drafter(self, source):
        from specdec import methods
        from specdec.traces.generate import LAYER, TraceDrafter
        return TraceDrafter(source.key, LAYER, layers=methods.parse(source.key).layers)

    def derived_info(self, k, models):
        from specdec import methods
        t = models.get("target") or {}
        if not (t.get("parameters") and t.get("num_layers")):
            return methods.drafter_info(k.text, estimated=True)
        n = min(k.layers, int(t["num_layers"]))
        # Embedding/lm_head counted once (tied), the rest split evenly over layers: an estimate.
        head = int(t.get("vocab_size") or 0) * int(t.get("hidden_size") or 0)
        per_layer = max(int(t["parameters"]) - head, 0) / int(t["num_layers"])
        return methods.drafter_info(k.text, parameters=int(n * per_layer + head), num_layers=n,
                                    hidden_size=t.get("hidden_size"), num_key_value_heads=t.get("num_key_value_heads"),
                                    head_dim=t.get("head_dim"), spec=t.get("spec"), name=f"first {n} layers",
                                    estimated=True)

    def snippets(self, k, gamma, target, draft):
        from specdec.present import snippets as snip
        return snip.layer_skip_snippets(gamma, target, k.layers)

    def estimate_costs(self, ctx):
        from specdec import methods
        from specdec.measure.runplan import DrafterCost
        cfg, speeds, t = ctx.cfg, ctx.speeds, ctx.speeds.target_step_s
        n = speeds.target_layers
        if not cfg.layer_skip_layers and not n:
            raise SpecdecError("the target's layer count is unknown: load and time the models")
        out = []
        for L in cfg.layer_skip_layers or (default_layers(n),):
            key = methods.layer_skip_key(L)
            if n and L >= n:
                raise SpecdecError(f"layer-skip L={L}: the target has {n} layers; choose 1 … {n - 1}")
            if L in speeds.layer_steps:
                out.append(DrafterCost(key, speeds.layer_steps[L], speeds.prefill_s_per_token * L / n if n else 0.0,
                                       acceptance=ctx.alphas(key)))
            elif n:
                out.append(DrafterCost(key, t * L / n, speeds.prefill_s_per_token * L / n, acceptance=ctx.alphas(key),
                                       how="scaled by layers"))
            else:
                raise SpecdecError("the target's layer count is unknown: load and time the models")
        return out

    def recorded_speeds(self, key, info, models, runs, cm, acceptance, out):
        from specdec import methods
        if key in cm.draft_step_s:
            out["layer_steps"][methods.parse(key).layers] = cm.draft_step_s[key]


FAMILY = LayerSkip()
