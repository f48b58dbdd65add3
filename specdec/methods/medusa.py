"""Medusa heads (Cai et al. 2024): K residual heads on the target's last hidden state, head k guessing the
token k+1 ahead, trained here by self-distillation on the workload. Keys: 'medusa' (held-out prompts),
'medusa:train' (the heads' own training prompts: never evidence), 'medusa:typical' (typical acceptance:
lossy, never chosen). K heads draft at most K tokens a round: the one place that cap is written is max_gamma."""

from __future__ import annotations

from specdec import config
from specdec.errors import SpecdecError
from specdec.methods.family import Family, Key

VARIANTS = (None, "train", "typical")
# A Medusa round reads the lm_head (a 150k vocabulary: ~15% of a 1.5B model's weights) once for all K
# heads, plus K small d × d blocks: what it costs when nothing measured it.
ROUND_SHARE = 0.15


class Medusa(Family):
    name = "medusa"
    label = "Medusa heads"
    summary = "small heads on the target's last hidden state, trained on this workload"
    steps_per_round = "one"  # all γ drafts from one hidden state in one pass
    uses_model = True
    # Medusa-1 heads reach ~0.6 for the first head and fall per position (Cai et al. 2024, Fig. 3).
    acceptance_guess = (0.7, 0.45, 0.2)
    traced_cost = "readout"
    options = ("medusa_heads", "medusa_typical")
    memory_what = "heads"

    def parse(self, key, variant):
        if variant not in VARIANTS:
            raise SpecdecError(f"method {key!r}: medusa takes no variant but :train or :typical")
        return Key(key, self.name, variant)

    @staticmethod
    def heads(k: Key, drafters: dict) -> int | None:
        info = drafters.get(k.text) or drafters.get(k.family) or {}
        return int(info["heads"]) if info.get("heads") else None

    def key_label(self, k, drafters):
        heads = self.heads(k, drafters)
        name = f"Medusa heads ({heads})" if heads else "Medusa heads"
        return {"train": f"{name}, training prompts", "typical": f"{name}, typical acceptance (lossy)"}.get(k.variant, name)

    def short_label(self, k, drafters):
        return "Medusa"

    def max_gamma(self, k, drafters):
        return self.heads(k, drafters)  # one head per drafted position: a run asked for γ > K drafts K

    def in_sample(self, k):
        return k.variant == "train"

    def lossy(self, k):
        return k.variant == "typical"

    def check_settings(self, s):
        if not (s["medusa_heads"] and str(s["medusa_heads"]).strip()):
            raise SpecdecError("the medusa method needs trained heads: run `python -m specdec train-heads` and pass "
                               "its output directory")

    def unused(self, s):
        if s["medusa_typical"]:
            raise SpecdecError("typical acceptance is a Medusa option: add the medusa method")
        return {"medusa_heads": None}

    def run_label(self, cfg, name):
        return ["Medusa heads" + (" (exact + typical)" if cfg.medusa_typical else "")]

    def sources(self, ctx):
        from specdec import methods
        from specdec.decoding import medusa
        from specdec.measure.bench import DraftSource
        cfg, target = ctx.cfg, ctx.target
        if not cfg.medusa_heads:
            raise SpecdecError("method medusa needs trained heads: run `python -m specdec train-heads` first and "
                               "pass its --out directory as --medusa-heads")
        heads, meta = medusa.load(cfg.medusa_heads, target.model, target.model.device)
        heads.to(target.model.get_output_embeddings().weight.dtype)
        rep = meta.get("report") or {}
        # Prompt ids name training prompts only within the file the heads were trained on.
        same_file = rep.get("workload_sha256") in (None, ctx.workload_sha256)
        train = frozenset(rep.get("train_prompts") or ()) if same_file else frozenset()
        typical = (config.MEDUSA_TYPICAL_EPSILON, config.MEDUSA_TYPICAL_DELTA)
        summary = {k: rep.get(k) for k in ("steps", "train_s", "collect_s", "top1", "top5", "train_top1",
                                           "loss_first", "loss_last", "train_positions", "eval_positions")}
        infos = {}
        for key in ("medusa", "medusa:train", *(("medusa:typical",) if cfg.medusa_typical else ())):
            infos[key] = methods.drafter_info(
                key, parameters=heads.parameter_count() + ctx.lm_params, extra_parameters=heads.parameter_count(),
                num_layers=1, spec=str(cfg.medusa_heads), name=f"{heads.num_heads} heads", heads=heads.num_heads,
                train_prompts=len(train), training=summary, **ctx.kv,
                **({"acceptance": {"rule": "typical", "epsilon": typical[0], "delta": typical[1]}}
                   if methods.lossy(key) else {}))
        # 'medusa:train' has no source of its own: the 'medusa' source measures it on its training prompts.
        sources = [DraftSource("medusa", heads=heads, train_prompts=train, info=infos["medusa"])]
        if cfg.medusa_typical:
            sources.append(DraftSource("medusa:typical", heads=heads, train_prompts=train, typical=typical,
                                       info=infos["medusa:typical"]))
        return sources, infos

    def build(self, source, target, sampling, generator, vocab_size):
        from specdec.decoding.drafters import MedusaDrafter
        return MedusaDrafter(source.heads, target.get_output_embeddings(), sampling, generator, vocab_size)

    def trace_drafter(self, source):
        from specdec.traces.generate import HEADS, TraceDrafter
        return TraceDrafter(source.key, HEADS, heads=source.heads)

    def engine_ref(self, k, info, models):
        return info.get("spec") or None

    def snippets(self, k, gamma, target, draft):
        from specdec.present import snippets as snip
        return snip.medusa_snippets(gamma, target, draft or "MEDUSA_HEADS_DIR")

    def min_versions(self):
        return {"vllm": "vLLM ≥ 0.10 (V1 engine, method medusa)"}

    def estimate_costs(self, ctx):
        from specdec.measure.runplan import DrafterCost
        speeds, t = ctx.speeds, ctx.speeds.target_step_s
        if speeds.medusa_round_s is not None:
            step, how = speeds.medusa_round_s, "measured"
        elif speeds.head_parameters and speeds.target_parameters:
            step, how = t * speeds.head_parameters / speeds.target_parameters, "scaled by size"
        else:
            step, how = t * ROUND_SHARE, "assumed"
        out = [DrafterCost("medusa", step, max_gamma=ctx.medusa_k, acceptance=ctx.alphas("medusa"), how=how)]
        if ctx.cfg.medusa_typical:  # the same heads again, held-out prompts only, the lossy test
            out.append(DrafterCost("medusa:typical", step, max_gamma=ctx.medusa_k,
                                   acceptance=ctx.alphas("medusa:typical", "medusa"), how=how))
        return out

    def recorded_speeds(self, key, info, models, runs, cm, acceptance, out):
        out["medusa_keys"].append(key)
        info = info or {}  # every key of one run's heads carries the same K and training summary
        if out["medusa_train_heads"] is None:
            out["medusa_train_heads"] = info.get("heads")
        training = info.get("training") or {}
        if out["medusa_train_step_s"] is None and training.get("steps") and training.get("train_s"):
            out["medusa_train_step_s"] = training["train_s"] / training["steps"]  # one optimiser step, seconds


FAMILY = Medusa()
