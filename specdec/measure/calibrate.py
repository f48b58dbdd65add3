"""Calibration: a few timed forwards of the loaded models, before a run, to price its estimate.

One prefill, CALIBRATION_STEPS one-token steps and the median of VERIFY_REPEATS passes over max_gamma + 1
tokens for the target; a step and a prefill for every draft model; a step of the target's first L layers for
each layer-skip L; one pass of K untrained Medusa heads (the same arithmetic as trained ones). About 5 s for
the bundled pair on 2 CPU cores. A measurement: never cache it. The arithmetic that uses it is
specdec.measure.runplan.

Public API
    calibrate(target, draft=None, max_gamma=4, text=CALIBRATION_TEXT, steps=CALIBRATION_STEPS, layer_skip=(),
              medusa_heads=MEDUSA_HEADS) -> Speeds
"""

from __future__ import annotations

import statistics

import torch

from specdec import config
from specdec.measure.speeds import Speeds

CALIBRATION_STEPS = 6  # timed one-token steps per model
VERIFY_REPEATS = 3  # timed verify passes over max_gamma + 1 tokens (the median counts)
CALIBRATION_TEXT = ("Speculative decoding lets a small draft model propose several tokens that the large "
                    "target model then checks in a single forward pass, so that each expensive pass can "
                    "emit more than one token when the draft guesses well.")


def calibrate(target, draft=None, max_gamma: int = 4, text: str = CALIBRATION_TEXT,
              steps: int = CALIBRATION_STEPS, layer_skip=(), medusa_heads: int = config.MEDUSA_HEADS) -> Speeds:
    """Time a few forwards of the loaded models (specdec.models.LoadedModel): a prefill of `text`,
    `steps` one-token steps, and one pass over max_gamma + 1 tokens; every draft model's step and
    prefill likewise (draft: one LoadedModel, a list, or None); the target's first L layers for each
    L in layer_skip; and one pass of `medusa_heads` untrained Medusa heads (the same arithmetic as
    trained ones). Each model warms up once first. Takes a few seconds; a measurement, never cache it."""
    from specdec.decoding.drafters import layer_skip_model
    from specdec.decoding.forward import clock, forward, new_cache, rollback
    from specdec.decoding.medusa import MedusaHeads

    drafts = [d for d in (draft if isinstance(draft, (list, tuple)) else [draft]) if d is not None]
    ids = target.tokenizer(text)["input_ids"]
    t_prefill, t_step, t_verify = _time_model(target.model, ids, steps, max_gamma + 1, clock, forward, new_cache, rollback)
    slope = max((t_verify / t_step - 1.0) / max_gamma, 0.0) if max_gamma else 0.0
    d_steps, d_prefills = {}, {}
    for d in drafts:
        d_prefill, d_steps[d.spec], _ = _time_model(d.model, ids, steps, 0, clock, forward, new_cache, rollback)
        d_prefills[d.spec] = d_prefill / len(ids)
    tcfg = target.model.config.get_text_config()
    n_layers = int(tcfg.num_hidden_layers)
    layer_steps = {}
    for L in sorted({int(x) for x in layer_skip if 1 <= int(x) < n_layers}):
        view = layer_skip_model(target.model, L)
        layer_steps[L] = _time_model(view, ids, steps, 0, clock, forward, new_cache, rollback)[1]
    lm_head = target.model.get_output_embeddings()
    heads = MedusaHeads(tcfg.hidden_size, medusa_heads).to(lm_head.weight.device, lm_head.weight.dtype)
    first = drafts[0].spec if drafts else None
    return Speeds(target_step_s=t_step, draft_step_s=d_steps.get(first), verify_slope=slope,
                  prefill_s_per_token=t_prefill / len(ids), draft_prefill_s_per_token=d_prefills.get(first, 0.0),
                  source=f"a {steps}-step timed decode with the loaded models "
                         f"(matmul: {getattr(target.model, 'specdec_linear', 'default')})", draft_steps=d_steps,
                  draft_prefills=d_prefills, draft_parameters={d.spec: d.parameters for d in drafts},
                  layer_steps=layer_steps, medusa_round_s=_time_heads(heads, lm_head, steps, clock),
                  target_layers=n_layers, target_parameters=target.parameters,
                  head_parameters=sum(p.numel() for p in lm_head.parameters()))


def _time_heads(heads, lm_head, steps, clock) -> float:
    """Seconds for one Medusa round's drafting: all K heads on one hidden state, read out by lm_head."""
    device = lm_head.weight.device
    h = torch.randn(heads.hidden_size, device=device, dtype=lm_head.weight.dtype)
    with torch.inference_mode():
        heads.logits(h, lm_head)  # warm-up
        t0 = clock(device)
        for _ in range(steps):
            heads.logits(h, lm_head)
        return (clock(device) - t0) / steps


def _time_model(model, ids, steps, verify_tokens, clock, forward, new_cache, rollback):
    device = next(model.parameters()).device
    prompt = torch.tensor(ids, device=device)
    with torch.inference_mode():
        warm = new_cache(model)
        forward(model, prompt[:8], warm)
        forward(model, prompt[8:9], warm)
        cache = new_cache(model)
        t0 = clock(device)
        forward(model, prompt, cache)
        t1 = clock(device)
        for i in range(steps):
            forward(model, prompt[i:i + 1], cache)
        t2 = clock(device)
        t_verify = 0.0
        if verify_tokens:
            # The median of a few passes: one pass of a new shape on a busy machine can cost several
            # steps' worth and would inflate the verify slope (and the estimate) many times over.
            length = cache.get_seq_length()
            times = []
            for _ in range(VERIFY_REPEATS):
                t3 = clock(device)
                forward(model, prompt[:verify_tokens], cache, keep=verify_tokens)
                times.append(clock(device) - t3)
                rollback(cache, length)
            t_verify = statistics.median(times)
    return t1 - t0, (t2 - t1) / steps, t_verify
