"""Suffix decoding (Oliaro et al. 2024; vLLM `"method": "suffix"`): model-free drafting from suffix tries over the
current prompt and the earlier responses of the same workload (specdec/decoding/suffix.py). Key 'suffix'."""

from __future__ import annotations

from specdec.methods.family import Family


class Suffix(Family):
    name = "suffix"
    label = "suffix decoding"
    summary = ("draft the most frequent continuation of the longest suffix match in the prompt and in this "
               "workload's earlier responses (no second model)")
    # Agentic and templated traffic repeats itself (SuffixDecoding reports τ of 2–6 there); open chat far less.
    acceptance_guess = (0.7, 0.35, 0.1)

    def build(self, source, target, sampling, generator, vocab_size: int):
        from specdec.decoding.suffix import SuffixDrafter
        return SuffixDrafter()

    def snippets(self, k, gamma, target, draft):
        from specdec import config
        from specdec.present import snippets as snip
        note = "# needs the Arctic Inference package beside vLLM: pip install arctic-inference\n"
        return {"vllm": snip.vllm_snippet(target, {
            "method": "suffix", "num_speculative_tokens": gamma,
            "suffix_decoding_max_tree_depth": config.SUFFIX_MAX_TREE_DEPTH,
            "suffix_decoding_max_spec_factor": config.SUFFIX_MAX_SPEC_FACTOR,
            "suffix_decoding_min_token_prob": config.SUFFIX_MIN_TOKEN_PROB}, note)}

    def min_versions(self):
        return {"vllm": "vLLM: a release whose SpeculativeMethod includes suffix (0.12.0 lists it)"}


FAMILY = Suffix()
