"""One batched target generation per group of prompts, with every drafter teacher-forced in lockstep.

Prompts are prefilled in groups of similar length (short ones together, long ones alone: no pad is
computed beyond a quarter of a group's tokens), then the rows decode together: their caches stacked
left-padded into preallocated buffers (attention mask + explicit position ids, so a padded row computes
what it would alone); each row stops on its own. At every step t the target emits y_t for
every row, and each drafter reads the same prefix prompt + y_<t:

    draft model    its own batched KV cache, fed the same tokens as the target
    layer-skip L   the target's layer-L output at that position → final norm → lm_head (the exact
                   arithmetic of decoding.drafters.layer_skip_model, taken from the target's own pass)
    Medusa heads   the heads on the target's final hidden state h_t (the one that produced y_t):
                   head i proposes y_{t+i}

and gives its greedy choice and β = Σ_x min(p, q) (Leviathan et al. 2023, §3.2) against the
target's distribution p at that position. After an EOS a row keeps going `lookahead` more tokens:
a round that drafts past EOS counts matches there (decoding.loops cuts only what it emits).

Shapes: B rows, V vocabulary, d hidden size, K heads. Seconds are wall time by phase.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from types import SimpleNamespace

import torch
from transformers.cache_utils import DynamicLayer

from specdec import config
from specdec.config import SamplingConfig
from specdec.decoding import sampling as S
from specdec.decoding.forward import clock, new_cache
from specdec.errors import SpecdecError


# How a drafter is teacher-forced along the target's pass (a method family's registry entry says which).
MODEL, LAYER, HEADS = "model", "layer", "heads"


@dataclass
class TraceDrafter:
    """What to trace for one method key. kind: MODEL (its own model and batched cache), LAYER (the target's
    layer-L output, layers = L) or HEADS (Medusa heads on the target's final hidden state)."""

    key: str
    kind: str
    model: object = None
    layers: int | None = None
    heads: object = None


@dataclass
class DrafterTrace:
    """Per position t of the extended continuation: top[t] the drafter's greedy choice given prompt + y_<t
    (Medusa: K choices, head i for y_{t+i}, from the h that produced y_t); beta[t] Σ min(p, q) there
    (Medusa: per head, None where the position lies past the end)."""

    top: list
    beta: list


@dataclass
class PromptTrace:
    """tokens: what the target emits (cut at EOS / max_new_tokens); extended: tokens plus up to `lookahead`
    past an EOS; drafters: method key → DrafterTrace over `extended`."""

    prompt: list[int]
    tokens: list[int]
    extended: list[int]
    drafters: dict[str, DrafterTrace] = field(default_factory=dict)


@dataclass
class Timings:
    """Seconds by phase, summed over batches: target prefill and steps, drafter work by key."""

    prefill_s: float = 0.0
    steps_s: float = 0.0
    drafters_s: dict[str, float] = field(default_factory=dict)
    tokens: int = 0  # target tokens generated (extension included)

    def add(self, key: str, seconds: float) -> None:
        self.drafters_s[key] = self.drafters_s.get(key, 0.0) + seconds


def trace_batch(target, prompts: list[list[int]], max_new_tokens: int, sampling: SamplingConfig,
                eos_ids: set[int], drafters: list[TraceDrafter] = (), lookahead: int = 0,
                generators: list | None = None, timings: Timings | None = None,
                forced: list | None = None) -> list[PromptTrace]:
    """Generate every prompt's continuation in one batch and trace each drafter along it.

    Greedy decoding takes the argmax per row; sampling draws each row from its own generator
    (generators[b]) with the same warp as decoding.loops. forced[b] (a list of ids, or None) replaces
    row b's choices while it lasts: a logged response scored instead of generated (one teacher-forced
    pass); past its end the row continues with its own choices (the EOS lookahead). Returns one
    PromptTrace per prompt, in order.
    """
    timings = timings if timings is not None else Timings()
    device = next(target.parameters()).device
    B = len(prompts)
    need = [max_new_tokens] * B  # tokens to generate per row; shrinks once a row emits EOS
    out: list[list[int]] = [[] for _ in range(B)]
    base = target.base_model
    lm_head = target.get_output_embeddings()
    V = lm_head.weight.shape[0]
    want_p = bool(drafters)
    layers = sorted({d.layers for d in drafters if d.kind == LAYER})
    captured: dict[int, torch.Tensor] = {}
    hooks = [base.layers[L - 1].register_forward_hook(_capture(captured, L)) for L in layers]
    own = [d for d in drafters if d.kind == MODEL]
    tops: dict[str, list] = {d.key: [] for d in drafters}
    betas: dict[str, list] = {d.key: [] for d in drafters}
    medusa = [d for d in drafters if d.kind == HEADS]
    recent = {d.key: deque(maxlen=d.heads.num_heads) for d in medusa}  # (q, β rows) of the last K steps
    try:
        with torch.inference_mode():
            h, cache, mask, pos, draft_logits, caches = _prefill(target, prompts, own, captured, layers,
                                                                 max_new_tokens, timings, device)
            while True:
                t0 = clock(device)
                logits = lm_head(h).float()  # (B, V)
                tokens = _choose(logits, sampling, generators)
                if forced:
                    for b, f in enumerate(forced):
                        if f is not None and len(out[b]) < len(f):
                            tokens[b] = f[len(out[b])]
                timings.steps_s += clock(device) - t0
                p = S.warp(logits, sampling) if want_p else None
                for d in drafters:
                    t2 = clock(device)
                    if d.kind == MODEL:
                        _record(tops[d.key], betas[d.key], S.warp(_match_vocab(draft_logits[d.key], V), sampling), p)
                    elif d.kind == LAYER:
                        q = S.warp(lm_head(base.norm(captured[d.layers][:, -1])).float(), sampling)
                        _record(tops[d.key], betas[d.key], q, p)
                    else:
                        _medusa_step(d, h, lm_head, V, sampling, p, recent[d.key], tops[d.key], betas[d.key])
                    timings.add(d.key, clock(device) - t2)
                for b in range(B):
                    if len(out[b]) < need[b]:
                        out[b].append(int(tokens[b]))
                        if int(tokens[b]) in eos_ids and need[b] == max_new_tokens:
                            need[b] = min(max_new_tokens, len(out[b]) + lookahead)
                if all(len(out[b]) >= need[b] for b in range(B)):
                    break
                ids = tokens[:, None]
                mask = torch.cat([mask, mask.new_ones(B, 1)], dim=1)
                pos = pos + 1
                t0 = clock(device)
                h = base(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache,
                         use_cache=True).last_hidden_state[:, -1]  # (B, d), after the final norm
                timings.steps_s += clock(device) - t0
                for d in own:
                    t2 = clock(device)
                    draft_logits[d.key] = _forward(d.model, ids, mask, pos, caches[d.key])
                    timings.add(d.key, clock(device) - t2)
    finally:
        for hk in hooks:
            hk.remove()
    timings.tokens += sum(len(o) for o in out)
    traces = []
    for b, prompt in enumerate(prompts):
        ext = out[b]
        cut = next((i + 1 for i, t in enumerate(ext) if t in eos_ids), len(ext))
        tr = PromptTrace(list(prompt), ext[:cut], ext)
        for d in drafters:
            tr.drafters[d.key] = DrafterTrace([x[b] for x in tops[d.key][: len(ext)]],
                                              [x[b] for x in betas[d.key][: len(ext)]])
        traces.append(tr)
    return traces


def prefill_groups(widths: list[int], positions: int = config.PREFILL_GROUP_POSITIONS,
                   pad: float = config.PREFILL_GROUP_PAD) -> list[list[int]]:
    """Row indices prefilled in one forward: rows in order of width, each group growing while rows × its
    longest width stays ≤ `positions` and its pads ≤ `pad` × its real tokens. A short prompt alone is a
    thin matrix product (the bundled target in float32 on the 2-core EPYC, `benchmarks/traced.py --phases
    prefill`: 49 prompt tokens/s for one 40-token prompt, 67 for eight together, 64 for one of 800); a row
    of more than `positions` / 2 tokens is wide enough alone."""
    groups: list[list[int]] = []
    for i in sorted(range(len(widths)), key=lambda i: widths[i]):
        g = groups[-1] if groups else None
        if g is not None:
            rows, longest = len(g) + 1, widths[i]
            if rows * longest <= positions and rows * longest <= (1 + pad) * (sum(widths[j] for j in g) + widths[i]):
                g.append(i)
                continue
        groups.append([i])
    return groups


def _prefill(target, prompts: list[list[int]], own: list[TraceDrafter], captured: dict, layers: list[int],
             max_new_tokens: int, timings: Timings, device):
    """Prompts prefilled in groups of similar length (prefill_groups: right-padded, so causal attention
    alone keeps every real token from seeing a pad, and each row's positions are its own), then the rows'
    caches, pads cut off, stacked left-padded into one batch cache with room for the generation. The
    target's layer-L outputs at each row's last prompt token land in `captured`, (B, 1, d).

    Returns h (B, d) the target's last hidden state per row, the target's batch cache, mask (B, W) over
    the W = longest prompt positions, pos (B, 1) the last prompt position per row, {key: draft logits
    (B, V_d) at the last prompt position} and {key: batch cache} for each draft model in `own`."""
    base = target.base_model
    widths = [len(p) for p in prompts]
    B, W = len(prompts), max(widths)
    hs, rows, picked = [None] * B, [None] * B, {L: [None] * B for L in layers}
    own_rows = {d.key: ([None] * B, [None] * B) for d in own}  # key → (logits rows, caches)
    for group in prefill_groups(widths):
        n = [widths[b] for b in group]
        x = torch.tensor([prompts[b] + [prompts[b][-1]] * (max(n) - len(prompts[b])) for b in group], device=device)
        last = torch.tensor(n, device=device) - 1  # each row's last real position
        keep = torch.unique(last)  # the positions whose logits the draft models read
        at = torch.arange(len(group), device=device)
        t0 = clock(device)
        c = new_cache(target)
        h = base(input_ids=x, past_key_values=c, use_cache=True).last_hidden_state[at, last]
        timings.prefill_s += clock(device) - t0
        for r, b in enumerate(group):
            hs[b], rows[b] = h[r: r + 1], _row_cache(c, r, n[r])
            for L in picked:
                picked[L][b] = captured[L][r: r + 1, n[r] - 1: n[r]]
        for d in own:
            t0 = clock(device)
            dc = new_cache(d.model)
            logits = d.model(input_ids=x, past_key_values=dc, use_cache=True, logits_to_keep=keep).logits
            for r, b in enumerate(group):
                own_rows[d.key][0][b] = logits[r: r + 1, int((keep == last[r]).nonzero())].float()
                own_rows[d.key][1][b] = _row_cache(dc, r, n[r])
            timings.add(d.key, clock(device) - t0)
    captured.update({L: torch.cat(v) for L, v in picked.items()})
    mask = torch.zeros((B, W), dtype=torch.long, device=device)
    for b, n in enumerate(widths):
        mask[b, W - n:] = 1
    pos = torch.tensor([[n - 1] for n in widths], device=device)
    room = W + max_new_tokens
    caches = {d.key: stack_caches(d.model, own_rows[d.key][1], widths, room) for d in own}
    return (torch.cat(hs), stack_caches(target, rows, widths, room), mask, pos,
            {k: torch.cat(v[0]) for k, v in own_rows.items()}, caches)


def _row_cache(cache, r: int, n: int) -> SimpleNamespace:
    """Row r of a group's cache, its first n positions (the pads cut off), shaped as stack_caches reads a
    one-row cache: .layers[i].keys / .values (1, H, n, D)."""
    return SimpleNamespace(layers=[SimpleNamespace(keys=l.keys[r: r + 1, :, :n], values=l.values[r: r + 1, :, :n])
                                   for l in cache.layers])


def stack_caches(model, rows: list, widths: list[int], room: int):
    """One batch cache from single-row caches of `widths` tokens each, left-padded to the longest; each
    layer a Preallocated of `room` positions (pads are zeros, masked out by the caller's attention mask)."""
    out = new_cache(model)
    if any(getattr(l, "is_sliding", False) for l in out.layers):
        raise SpecdecError("traced mode cannot batch a model with sliding-window attention: use --mode real")
    W = max(widths)
    out.layers = [Preallocated.left_padded([r.layers[i] for r in rows], widths, W, room) for i in range(len(out.layers))]
    return out


class Preallocated(DynamicLayer):
    """A cache layer that writes each step into a buffer sized for the whole generation. DynamicLayer
    concatenates: every step copies the whole cache (B · context · kv_width per layer, GBs per step for a
    batch of long prompts); here a step writes its own positions only. keys/values are views (B, H, n, D)."""

    def __init__(self, k: torch.Tensor, v: torch.Tensor, n: int):
        super().__init__()
        self._k, self._v, self.n = k, v, n
        self.dtype, self.device, self.is_initialized = k.dtype, k.device, True
        self._views()

    @classmethod
    def left_padded(cls, layers: list, widths: list[int], W: int, room: int) -> "Preallocated":
        k0 = layers[0].keys
        shape = (len(layers), k0.shape[1], max(room, W), k0.shape[-1])
        k, v = k0.new_zeros(shape), k0.new_zeros(shape)
        for b, (layer, n) in enumerate(zip(layers, widths)):
            k[b, :, W - n: W] = layer.keys[0]
            v[b, :, W - n: W] = layer.values[0]
        return cls(k, v, W)

    def _views(self) -> None:
        self.keys, self.values = self._k[:, :, : self.n], self._v[:, :, : self.n]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        m = key_states.shape[-2]
        if self.n + m > self._k.shape[2]:  # more steps than planned: grow (rare; amortised by doubling)
            grow = max(self._k.shape[2], m)
            self._k = torch.cat([self._k, self._k.new_zeros(*self._k.shape[:2], grow, self._k.shape[-1])], dim=2)
            self._v = torch.cat([self._v, self._v.new_zeros(*self._v.shape[:2], grow, self._v.shape[-1])], dim=2)
        self._k[:, :, self.n: self.n + m] = key_states
        self._v[:, :, self.n: self.n + m] = value_states
        self.n += m
        self._views()
        return self.keys, self.values


def _capture(store: dict, L: int):
    def hook(module, inputs, output):
        store[L] = output[0] if isinstance(output, tuple) else output  # (B, n, d)
    return hook


def _forward(model, ids, mask, pos, cache) -> torch.Tensor:
    """A draft model's logits (B, V_d) for the last position, fed the same tokens as the target."""
    return model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True,
                 logits_to_keep=1).logits[:, -1].float()


def _choose(logits: torch.Tensor, sampling: SamplingConfig, generators) -> torch.Tensor:
    """Each row's next token: argmax when greedy (as decoding.loops), else a draw from its generator."""
    if sampling.greedy:
        return logits.argmax(-1)
    return torch.tensor([S.next_token(row, sampling, generators[b] if generators else None)
                         for b, row in enumerate(logits)], device=logits.device)


def _match_vocab(logits: torch.Tensor, V: int) -> torch.Tensor:
    """Draft logits (B, V_d) → (B, V): cut, or padded with −inf (same tokenizer, padded embeddings)."""
    v = logits.shape[-1]
    if v >= V:
        return logits[:, :V]
    return torch.cat([logits, logits.new_full((logits.shape[0], V - v), float("-inf"))], dim=-1)


def _record(tops: list, betas: list, q: torch.Tensor, p: torch.Tensor) -> None:
    tops.append(q.argmax(-1).tolist())
    betas.append(S.acceptance_probability(p, q).tolist())


def _medusa_step(d: TraceDrafter, h, lm_head, V, sampling, p, recent: deque, tops: list, betas: list) -> None:
    """Head i on h_t proposes y_{t+i}; its β is known once p_{t+i} is, i steps later."""
    K = d.heads.num_heads
    q = S.warp(d.heads.logits(h, lm_head)[..., :V], sampling)  # (K, B, V)
    tops.append(q.argmax(-1).T.tolist())  # (B, K)
    betas.append([[None] * K for _ in range(q.shape[1])])
    for i, (q_old, row) in enumerate(reversed(recent), start=1):  # the step i back proposed y_t with head i
        b = S.acceptance_probability(p, q_old[i - 1]).tolist()
        for r, v in enumerate(b):
            row[r][i - 1] = v
    recent.append((q, betas[-1]))
