"""Suffix decoding (Oliaro et al. 2024, "SuffixDecoding", arXiv 2411.04975; vLLM `"method": "suffix"`, Snowflake
ArcticInference): a model-free drafter that drafts from what this workload has already said.

Two suffix tries, each holding every substring of length ≤ D (the tree depth) of its texts as a path from the
root, a node counting how often its substring occurs:

    local    the current prompt and the tokens committed so far (rebuilt by start(), extended as seq grows)
    global   the finished responses of earlier prompts of the same workload (learn(), in the order served)

A proposal, for each trie: every suffix of the committed sequence of length m (1 ≤ m < D) that the trie holds
with a continuation is a match; from the match, follow the most frequent child while the path's empirical
probability P_i = Π_{j≤i} count(child_j) / count(parent_j) stays ≥ min_prob, at most
⌊factor · m⌋ tokens (a longer match earns a longer draft) and D − m (the trie's depth). Each candidate
scores Σ_i P_i (the expected tokens accepted); the best-scoring candidate over both tries and every m is
drafted, cut at γ. The choice does not depend on γ, so the draft at γ is the first γ tokens of the draft at any
larger γ (as for every drafter here: the projection over γ truncates the largest run's rounds).

The chain is verified by the exact rule with q one-hot (no draft distribution), like prompt lookup: greedy
output is the target's. ArcticInference verifies a tree of candidates; here one chain, as the loops verify.
Defaults are vLLM's (suffix_decoding_max_tree_depth 24, _max_spec_factor 1.0, _min_token_prob 0.1), defined in
specdec/config.py (SUFFIX_*).
"""

from __future__ import annotations

import torch

from specdec.config import SUFFIX_MAX_SPEC_FACTOR, SUFFIX_MAX_TREE_DEPTH, SUFFIX_MIN_TOKEN_PROB
from specdec.decoding.drafters import Proposal


class _Node:
    __slots__ = ("count", "children")

    def __init__(self):
        self.count = 0
        self.children: dict[int, _Node] = {}


class SuffixTrie:
    """Every substring of length ≤ depth of the texts added, as root paths; node.count = its occurrences."""

    def __init__(self, depth: int = SUFFIX_MAX_TREE_DEPTH):
        self.depth, self.root = depth, _Node()

    def append(self, active: list, token: int) -> list:
        """Extend the text whose suffix nodes (lengths 1 … depth − 1, shortest first) are `active` by one token;
        returns the new text's suffix nodes. O(depth) per token."""
        out = []
        for node in [self.root, *active]:
            child = node.children.get(token)
            if child is None:
                child = node.children[token] = _Node()
            child.count += 1
            out.append(child)
        return out[: self.depth - 1]  # a suffix of length depth is stored but never extended

    def add(self, tokens) -> None:
        """One whole text (an earlier response): its substrings, none spanning two texts."""
        active: list = []
        for t in tokens:
            active = self.append(active, int(t))

    def suffix_nodes(self, ids: list[int]) -> list:
        """Nodes of ids' suffixes of length 1, 2, … (shortest first), as far as the trie holds them."""
        out, start = [], len(ids)
        for m in range(1, min(self.depth, len(ids) + 1)):
            node = self.root
            for t in ids[start - m:]:
                node = node.children.get(t)
                if node is None:
                    return out
            out.append(node)
        return out


def best_continuation(matches: list, depth: int, factor: float, min_prob: float) -> tuple[float, list[int]]:
    """(score, tokens): over matches[m − 1] = the node of the length-m suffix, the greedy most-frequent path
    with the highest Σ P_i; longer matches first, so a tie keeps the longer match."""
    best = (0.0, [])
    for m in range(len(matches), 0, -1):
        node, p, score, out = matches[m - 1], 1.0, 0.0, []
        limit = min(int(factor * m), depth - m)
        while len(out) < limit and node.children:
            token, child = max(node.children.items(), key=lambda kv: (kv[1].count, -kv[0]))
            p *= child.count / node.count
            if p < min_prob:
                break
            out.append(token)
            score += p
            node = child
        if score > best[0]:
            best = (score, out)
    return best


class SuffixDrafter:
    """Suffix decoding behind the Drafter protocol: learns earlier responses, replayable on a trace."""

    observes_hidden = False
    learns_responses = True
    replayable = True  # proposals depend on the committed ids and the responses learned only

    def __init__(self, depth: int = SUFFIX_MAX_TREE_DEPTH, factor: float = SUFFIX_MAX_SPEC_FACTOR,
                 min_prob: float = SUFFIX_MIN_TOKEN_PROB):
        self.depth, self.factor, self.min_prob = depth, factor, min_prob
        self.responses = SuffixTrie(depth)
        self.start(torch.empty(0, dtype=torch.long))

    def learn(self, tokens: list[int]) -> None:
        self.responses.add(tokens)

    def start(self, prompt: torch.Tensor) -> None:
        self.local, self.active, self.ids = SuffixTrie(self.depth), [], []
        self._extend(prompt.tolist())

    def _extend(self, tokens: list[int]) -> None:
        for t in tokens:
            self.active = self.local.append(self.active, t)
        self.ids += tokens

    def propose(self, seq: torch.Tensor, gamma: int) -> Proposal:
        ids = seq.tolist()
        if len(ids) < len(self.ids) or ids[: len(self.ids)] != self.ids:  # not a continuation: index afresh
            self.start(seq[:0])
        self._extend(ids[len(self.ids):])
        # The local trie's suffix nodes are the active ones. They count the current occurrence too, which has no
        # continuation yet: it lowers P, and a suffix seen nowhere else drafts nothing.
        local = best_continuation(self.active, self.depth, self.factor, self.min_prob)
        earlier = best_continuation(self.responses.suffix_nodes(ids), self.depth, self.factor, self.min_prob)
        tokens = (earlier if earlier[0] > local[0] else local)[1][:gamma]
        return Proposal(seq.new_tensor(tokens), None)

    def rollback(self, length: int) -> None:
        pass  # the tries index committed tokens only (propose reads seq, which is committed)
