"""Measure one prompt: the baseline, then every method × γ, returned as a results.json prompt record.

Configurations are interleaved per prompt (baseline, draft γ=2, γ=4, …, prompt-lookup …) rather
than run as separate passes over the workload, so drift on a shared machine (another job, thermal
throttling) hits every configuration alike and the per-prompt ratios stay fair.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from specdec import methods
from specdec.config import RunConfig
from specdec.decoding.loops import Generation, Stopped, baseline_decode, speculative_decode

WARMUP_TOKENS = 4  # a few rounds reach every code path; a slow drafter at the largest γ pays per token here


@dataclass
class DraftSource:
    """What one method key drafts with: a draft model (or the target's layer-skip view), Medusa heads,
    or nothing (prompt lookup). key_for(prompt_id) may rename the key per prompt (Medusa heads
    measured on a prompt they were trained on are reported as 'medusa:train') or skip the prompt
    (None: typical acceptance is measured on held-out prompts only). typical: (ε, δ) of Medusa's
    typical acceptance, None for the exact test. info: the manifest's drafter entry (methods.drafter_info).
    responses: the finished responses of the run so far, in the order learned; learner: the run's one drafter
    that learns_responses (built once, it keeps what it learned across prompts; start() resets the rest)."""

    key: str
    model: Any = None
    heads: Any = None
    train_prompts: frozenset = frozenset()
    typical: tuple[float, float] | None = None
    info: dict = field(default_factory=dict)
    responses: list = field(default_factory=list)
    learner: Any = None

    def key_for(self, prompt_id: str) -> str | None:
        if prompt_id not in self.train_prompts:
            return self.key
        return None if self.typical is not None else f"{self.key}:train"

    def gammas(self, draft_lengths) -> list[int]:
        """The γ values this drafter can really run, in order, without repeats (methods.effective_gamma)."""
        return list(dict.fromkeys(methods.effective_gamma(self.key, g, {self.key: self.info}) for g in draft_lengths))


def make_drafter(source: DraftSource, target, sampling, generator, vocab_size: int, responses: int | None = None):
    """The drafter of a method key (its registry entry builds it). A drafter that learns_responses is the
    source's learner, which holds every response so far; with `responses` = n, a fresh one that learned only
    the first n (traced mode replays a prompt with what it knew when it was measured for real)."""
    if responses is None and source.learner is not None:
        return source.learner
    drafter = methods.spec(source.key).build(source, target, sampling, generator, vocab_size)
    if drafter.learns_responses:
        for tokens in source.responses[:responses]:
            drafter.learn(tokens)
        if responses is None:
            source.learner = drafter
    return drafter


def learn(sources: list[DraftSource], tokens: list[int]) -> None:
    """A finished response of the workload (the target's own output for a prompt), in the order served:
    a drafter that learns_responses drafts later prompts from it (suffix decoding's global tree)."""
    for source in sources:
        source.responses.append(list(tokens))
        if source.learner is not None:
            source.learner.learn(source.responses[-1])


def generator_for(cfg: RunConfig, prompt_id: str, device: torch.device) -> torch.Generator:
    """A generator seeded from the run seed and the prompt id: the same prompt gets the same random
    stream whatever its position in the workload, so a resumed or re-sampled run reproduces it."""
    return torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + zlib.crc32(prompt_id.encode()))


def measure_prompt(target, sources: list[DraftSource], ids: list[int], prompt_id: str, cfg: RunConfig,
                   eos_ids: set[int], decode_text, should_stop=None, learn_response: bool = True,
                   gammas: dict[str, tuple[int, ...]] | None = None) -> dict | None:
    """Baseline + every method × γ on one prompt (γ from cfg.draft_lengths, or gammas[method key] where given). Returns {"prompt_tokens", "baseline", "runs"}, or
    None when should_stop() turned true (polled every token or round; a prompt is kept whole or not at all).
    Afterwards the baseline's response is learned (bench.learn) unless learn_response is False (warm-up).

    target: a torch model; sources: one per method key; ids: the encoded prompt; decode_text: ids → str.
    """
    try:
        record = _measure_prompt(target, sources, ids, prompt_id, cfg, eos_ids, decode_text, should_stop, gammas or {})
    except Stopped:  # cancelled inside a generation: the prompt is dropped whole
        return None
    if record is not None and learn_response:
        learn(sources, record["baseline"]["tokens"])
    return record


def _measure_prompt(target, sources, ids, prompt_id, cfg, eos_ids, decode_text, should_stop, gammas) -> dict | None:
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
        for gamma in source.gammas(gammas.get(key, cfg.draft_lengths)):
            if should_stop and should_stop():
                return None
            g = generator_for(cfg, prompt_id, device)
            drafter = make_drafter(source, target, cfg.sampling, g, vocab_size)
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
    measure_prompt(target, sources, ids, "warm-up", short, eos_ids, lambda t: "", learn_response=False)
