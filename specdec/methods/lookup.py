"""Prompt lookup (Saxena 2023; HF `prompt_lookup_num_tokens`, vLLM `ngram`): the continuation of the latest
earlier match of the sequence's last n-gram. No model: no draft cost, no q, nothing to train."""

from __future__ import annotations

from specdec import config
from specdec.methods.family import Family


class PromptLookup(Family):
    name = "prompt-lookup"
    label = "prompt lookup"
    summary = "copy the continuation of an n-gram already in the prompt (no second model)"
    acceptance_guess = (0.6, 0.3, 0.1)  # n-gram lookup matches far less often than a draft model

    def build(self, source, target, sampling, generator, vocab_size: int):
        from specdec.decoding.drafters import PromptLookupDrafter
        return PromptLookupDrafter()

    def snippets(self, k, gamma, target, draft):
        from specdec.present import snippets as snip
        return snip.lookup_snippets(gamma, target, config.PROMPT_LOOKUP_MAX_NGRAM, config.PROMPT_LOOKUP_MIN_NGRAM)

    def min_versions(self):
        return {"vllm": "vLLM ≥ 0.10 (V1 engine, --speculative-config with method ngram)",
                "llama.cpp": "llama.cpp: a build with --spec-type ngram-simple and --spec-ngram-simple-size-n/m"}


FAMILY = PromptLookup()
