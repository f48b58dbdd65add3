"""A draft model (Leviathan et al. 2023, Alg. 1; Chen et al. 2023): a smaller model with its own KV cache
drafts autoregressively. Keys: 'draft' (the run's one draft model) or 'draft:<name>' (one of several)."""

from __future__ import annotations

from pathlib import Path

from specdec.errors import SpecdecError
from specdec.methods.family import Family, Key


def short_name(spec: str) -> str:
    """The name a draft model's key and label carry: the spec's last path part, without .gguf."""
    return Path(str(spec).rstrip("/")).name.removesuffix(".gguf") or str(spec)


class DraftModel(Family):
    name = "draft"
    label = "draft model"
    summary = "a smaller model drafts γ tokens"
    steps_per_round = "gamma"
    uses_model = True
    reads_kv = True
    own_network = True
    options = ("drafts",)
    # A same-family draft model on chat/code traffic usually lands at 0.5–0.8.
    acceptance_guess = (0.85, 0.6, 0.3)
    traced_cost = "own"

    def parse(self, key, variant):
        return Key(key, self.name, variant)

    def key_label(self, k, drafters):
        name = k.variant or (drafters.get(k.text) or {}).get("name")
        return f"draft model ({name})" if name else "draft model"

    def short_label(self, k, drafters):
        return k.variant or (drafters.get(k.text) or {}).get("name") or "draft model"

    def check_settings(self, s):
        if not s["drafts"]:
            raise SpecdecError("the draft-model method needs a draft model")

    def unused(self, s):
        return {"drafts": ()}

    def run_label(self, cfg, name):
        return [name(d) for d in cfg.drafts]

    def model_specs(self, cfg):
        return tuple(cfg.drafts)

    def sources(self, ctx):
        from specdec import methods
        from specdec.measure.bench import DraftSource
        sources, infos = [], {}
        for d in ctx.drafts:
            key = methods.draft_key(short_name(d.spec), len(ctx.drafts) > 1)
            m = d.info()
            info = methods.drafter_info(
                key, parameters=d.parameters, extra_parameters=d.parameters, num_layers=m["num_layers"],
                kv_layers=m["num_layers"], hidden_size=m["hidden_size"], num_key_value_heads=m["num_key_value_heads"],
                head_dim=m["head_dim"], spec=d.spec, name=short_name(d.spec), sha256=d.sha256)
            sources.append(DraftSource(key, model=d.model, info=info))
            infos[key] = info
        return sources, infos

    def build(self, source, target, sampling, generator, vocab_size):
        from specdec.decoding.drafters import DraftModelDrafter
        return DraftModelDrafter(source.model, sampling, generator, vocab_size)

    def trace_drafter(self, source):
        from specdec.traces.generate import MODEL, TraceDrafter
        return TraceDrafter(source.key, MODEL, model=source.model)

    def derived_info(self, k, models):
        from specdec import methods
        d = models.get("draft")
        if not d:
            return methods.drafter_info(k.text, estimated=True)
        return methods.drafter_info(
            k.text, parameters=d.get("parameters", 0), extra_parameters=d.get("parameters", 0),
            num_layers=d.get("num_layers", 0), hidden_size=d.get("hidden_size"),
            num_key_value_heads=d.get("num_key_value_heads"), head_dim=d.get("head_dim"),
            kv_layers=d.get("num_layers", 0), spec=d.get("spec"),
            name=str(d["spec"]).rstrip("/").split("/")[-1] if d.get("spec") else None, local_path=d.get("local_path"))

    def engine_ref(self, k, info, models):
        from specdec.present import snippets as snip
        first = models.get("draft") or {}
        if first and (k.variant is None or first.get("spec") == info.get("spec")):
            return snip.model_ref(first, "DRAFT")
        return snip.model_ref(info, "DRAFT")

    def snippets(self, k, gamma, target, draft):
        from specdec.present import snippets as snip
        if not draft:
            raise SpecdecError("the draft-model method needs a draft model name")
        return snip.draft_snippets(gamma, target, draft)

    def min_versions(self):
        return {"vllm": "vLLM: a release with PR #24322 (after 0.13.0; 0.10.0–0.13.0 refuse method draft_model)",
                "llama.cpp": "llama.cpp: a build with --spec-type and --spec-draft-n-max (e.g. build 11434; older "
                             "builds: --draft-max/--draft-min)",
                "transformers": "transformers ≥ 5 (reads num_assistant_tokens from the draft's generation_config)"}

    def estimate_costs(self, ctx):
        from specdec import methods
        from specdec.measure.runplan import DrafterCost
        cfg, speeds, t = ctx.cfg, ctx.speeds, ctx.speeds.target_step_s
        out = []
        for spec in cfg.drafts:
            key = methods.draft_key(short_name(spec), len(cfg.drafts) > 1)
            measured = spec in speeds.draft_steps or (spec == cfg.drafts[0] and not speeds.draft_steps
                                                      and speeds.draft_step_s is not None)
            acc = ((speeds.draft_acceptance[spec],) * 3 if spec in speeds.draft_acceptance
                   else ctx.alphas(key) if len(cfg.drafts) == 1 else self.acceptance_guess)
            if measured:
                step = speeds.draft_steps.get(spec, speeds.draft_step_s)
                prefill = speeds.draft_prefills.get(spec, speeds.draft_prefill_s_per_token)
                out.append(DrafterCost(key, step, prefill, acceptance=acc))
            elif speeds.draft_parameters.get(spec) and speeds.target_parameters:
                share = speeds.draft_parameters[spec] / speeds.target_parameters
                out.append(DrafterCost(key, t * share, speeds.prefill_s_per_token * share, acceptance=acc,
                                       how="scaled by size"))
            else:
                raise SpecdecError(f"no speed measured for the draft model {spec}: load and time the models")
        return out

    def recorded_speeds(self, key, info, models, runs, cm, acceptance, out):
        info = info or models.get("draft") or {}
        spec = info.get("spec")
        if not spec or key not in cm.draft_step_s:
            return
        # A draft run's prefill is target + draft prefill; what exceeds the baseline's is the draft's.
        r = runs[runs["method"] == key]
        extra = (r["prefill_s"] - r["base_prefill_s"]).clip(lower=0).sum()
        out["draft_steps"][spec] = cm.draft_step_s[key]
        out["draft_prefills"][spec] = float(extra / max(r["prompt_tokens"].sum(), 1))
        out["draft_parameters"][spec] = int(info.get("parameters") or 0) or None
        if key in acceptance:
            out["draft_acceptance"][spec] = acceptance[key]


FAMILY = DraftModel()
