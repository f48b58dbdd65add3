"""Measure one prompt: the baseline, then every method × γ, returned as a results.json prompt record.

Configurations are interleaved per prompt (baseline, draft γ=2, γ=4, …, prompt-lookup …) rather
than run as separate passes over the workload, so drift on a shared machine (another job, thermal
throttling) hits every configuration alike and the per-prompt ratios stay fair.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from typing import Any

import torch

from specdec import methods
from specdec.config import RunConfig
from specdec.decoding.loops import Generation, Stopped, baseline_decode, speculative_decode
from specdec.decoding.drafters import DraftModelDrafter, MedusaDrafter, PromptLookupDrafter

WARMUP_TOKENS = 8


@dataclass
class DraftSource:
    """What one method key drafts with: a draft model (or the target's layer-skip view), Medusa heads,
    or nothing (prompt lookup). key_for(prompt_id) may rename the key per prompt (Medusa heads
    measured on a prompt they were trained on are reported as 'medusa:train') or skip the prompt
    (None: typical acceptance is measured on held-out prompts only). typical: (ε, δ) of Medusa's
    typical acceptance, None for the exact test."""

    key: str
    model: Any = None
    heads: Any = None
    train_prompts: frozenset = frozenset()
    typical: tuple[float, float] | None = None

    def key_for(self, prompt_id: str) -> str | None:
        if prompt_id not in self.train_prompts:
            return self.key
        return None if self.typical is not None else f"{self.key}:train"

    def gammas(self, draft_lengths) -> list[int]:
        """The γ values this drafter can really run, in order, without repeats: K heads draft at most K."""
        cap = self.heads.num_heads if self.heads is not None else None
        return list(dict.fromkeys(g if cap is None else min(g, cap) for g in draft_lengths))


def make_drafter(source: DraftSource, target, cfg: RunConfig, generator, vocab_size: int):
    """The drafter for a method key; the one place a method becomes code."""
    family = methods.family(source.key)
    if family in ("draft", "layer-skip"):
        return DraftModelDrafter(source.model, cfg.sampling, generator, vocab_size)
    if family == "prompt-lookup":
        return PromptLookupDrafter()
    if family == "medusa":
        return MedusaDrafter(source.heads, target.get_output_embeddings(), cfg.sampling, generator, vocab_size)
    raise ValueError(f"unknown method {source.key!r}")


def generator_for(cfg: RunConfig, prompt_id: str, device: torch.device) -> torch.Generator:
    """A generator seeded from the run seed and the prompt id: the same prompt gets the same random
    stream whatever its position in the workload, so a resumed or re-sampled run reproduces it."""
    return torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + zlib.crc32(prompt_id.encode()))


def measure_prompt(target, sources: list[DraftSource], ids: list[int], prompt_id: str, cfg: RunConfig,
                   eos_ids: set[int], decode_text, should_stop=None) -> dict | None:
    """Baseline + every method × γ on one prompt. Returns {"prompt_tokens", "baseline", "runs"}, or
    None when should_stop() turned true (polled every token or round; a prompt is kept whole or not at all).

    target: a torch model; sources: one per method key; ids: the encoded prompt; decode_text: ids → str.
    """
    try:
        return _measure_prompt(target, sources, ids, prompt_id, cfg, eos_ids, decode_text, should_stop)
    except Stopped:  # cancelled inside a generation: the prompt is dropped whole
        return None


def _measure_prompt(target, sources, ids, prompt_id, cfg, eos_ids, decode_text, should_stop) -> dict | None:
    device = next(target.parameters()).device
    prompt = torch.tensor(ids, device=device)
    vocab_size = target.get_output_embeddings().weight.shape[0]
    base = baseline_decode(target, prompt, cfg.max_new_tokens, cfg.sampling, eos_ids,
                           generator_for(cfg, prompt_id, device), should_stop=should_stop)
    runs = []
    for source in sources:
        key = source.key_for(prompt_id)
        if key is None:
            continue
        for gamma in source.gammas(cfg.draft_lengths):
            if should_stop and should_stop():
                return None
            g = generator_for(cfg, prompt_id, device)
            drafter = make_drafter(source, target, cfg, g, vocab_size)
            gen = speculative_decode(target, drafter, prompt, gamma, cfg.max_new_tokens, cfg.sampling, eos_ids, g,
                                     typical=source.typical, should_stop=should_stop)
            runs.append({"method": key, "draft_length": gamma,
                         **generation_record(gen, decode_text)})
    return {"prompt_tokens": len(ids), "baseline": generation_record(base, decode_text), "runs": runs}


def generation_record(gen: Generation, decode_text) -> dict:
    record = {"tokens": gen.tokens, "text": decode_text(gen.tokens), "new_tokens": gen.new_tokens,
              "prefill_s": gen.prefill_s, "decode_s": gen.decode_s}
    if gen.rounds is not None:
        record["rounds"] = [vars(r) for r in gen.rounds]
    return record


def warm_up(target, sources: list[DraftSource], ids: list[int], cfg: RunConfig, eos_ids: set[int]) -> None:
    """One short pass through every code path, so that allocator growth, kernel selection and lazy
    initialisation land here instead of in the first measured prompt."""
    short = replace(cfg, max_new_tokens=WARMUP_TOKENS, draft_lengths=(max(cfg.draft_lengths),))
    measure_prompt(target, sources, ids, "warm-up", short, eos_ids, lambda t: "")
