"""Method keys: the name a results.json run carries in `method`, one per drafter measured.

A key is a family, optionally with a variant after a colon:

    draft                    the one draft model of the run (the run's `models.draft`)
    draft:<name>             one of several draft models (`--draft A,B`): <name> is its short name
    prompt-lookup            n-gram lookup in prompt + output, no model
    layer-skip:L<n>          the target's own first n layers + final norm + lm_head (self-speculation)
    medusa                   Medusa-style heads on the target's last hidden state (Cai et al. 2024),
                             measured on prompts the heads were not trained on
    medusa:train             the same heads on the prompts they were trained on (optimistic; never
                             the basis of a decision, shown so the gap to held-out prompts is visible)
    medusa:typical           the heads on held-out prompts with Medusa's typical acceptance instead of
                             the exact test: LOSSY (its output drifts from the target's, and the run
                             measures how far); shown beside the others, never the basis of a decision

Everything that varies by family lives in its registry entry (specdec/methods/<family>.py, a
`family.Family`); this module holds the registry and the functions the rest of specdec reads keys through.
Adding a family: its drafter module, its entry here, its tests. What each drafter costs lives in the manifest, `models.drafters[key]` (see `drafter_info`), so that
analysis, projection and the brief treat every method alike instead of special-casing names.
"""

from __future__ import annotations

import re
from functools import lru_cache

from specdec.errors import SpecdecError
from specdec.methods import draft, layerskip, lookup, medusa, suffix
from specdec.methods.family import Family, Key

# The registry: one entry per family, in display order.
REGISTRY: dict[str, Family] = {f.name: f for f in (
    draft.FAMILY,
    lookup.FAMILY,
    layerskip.FAMILY,
    medusa.FAMILY,
    suffix.FAMILY,
)}
FAMILIES = tuple(REGISTRY)

_KEY = re.compile(r"(?P<family>[a-z-]+)(?::(?P<variant>[A-Za-z0-9][A-Za-z0-9._+-]{0,99}))?\Z")


@lru_cache(maxsize=4096)
def _parse(key: str) -> Key:
    m = _KEY.match(key)
    if not m or m["family"] not in REGISTRY:
        raise SpecdecError(f"unknown method {key!r}: choose from {', '.join(FAMILIES)}")
    return REGISTRY[m["family"]].parse(key, m["variant"])


def parse(key: str) -> Key:
    """'layer-skip:L8' → Key('layer-skip:L8', 'layer-skip', 'L8', layers=8). Raises SpecdecError for anything else."""
    if isinstance(key, Key):
        return key
    if not isinstance(key, str):
        raise SpecdecError(f"unknown method {key!r}: choose from {', '.join(FAMILIES)}")
    return _parse(key)


def spec(key_or_family: str | Key) -> Family:
    """The registry entry of a key ('layer-skip:L8') or a family name ('layer-skip')."""
    if isinstance(key_or_family, str) and key_or_family in REGISTRY:
        return REGISTRY[key_or_family]
    return REGISTRY[parse(key_or_family).family]


def check_families(names) -> tuple[str, ...]:
    """Family names as chosen for a run, checked: one SpecdecError line for an unknown one or none."""
    names = tuple(dict.fromkeys(names))
    unknown = [m for m in names if m not in REGISTRY]
    if unknown or not names:
        raise SpecdecError(f"choose at least one method from {', '.join(FAMILIES)}"
                           + (f" (unknown: {', '.join(map(str, unknown))})" if unknown else ""))
    return names


def options(families) -> set[str]:
    """The RunConfig options the chosen families need ('drafts', 'layer_skip_layers', 'medusa_heads', …)."""
    return {o for name in families if name in REGISTRY for o in REGISTRY[name].options}


def is_valid(key) -> bool:
    try:
        parse(key)
    except SpecdecError:
        return False
    return True


def family(key: str) -> str:
    return parse(key).family


def variant(key: str) -> str | None:
    return parse(key).variant


def uses_model(key: str) -> bool:
    """True when the method runs a network to draft (draft model, layer-skip, Medusa heads)."""
    return spec(key).uses_model


def uses_model_family(fam: str | None) -> bool:
    return fam in REGISTRY and REGISTRY[fam].uses_model


def reads_kv(key: str) -> bool:
    """True when a draft step attends over a KV cache (draft model, the target's first layers); Medusa
    heads are MLPs on the last hidden state, prompt lookup a string match."""
    return spec(key).reads_kv


def steps_per_round(key: str) -> str:
    """'gamma' (one draft forward per drafted token), 'one' (one pass a round) or 'none'."""
    return spec(key).steps_per_round


def draft_steps(key: str, gamma: float) -> float:
    """Draft forwards per round that drafts `gamma` tokens (γ, 1 or 0)."""
    kind = steps_per_round(key)
    return float(gamma) if kind == "gamma" else (1.0 if kind == "one" and gamma > 0 else 0.0)


def max_gamma(key: str, drafters: dict | None = None) -> int | None:
    """The most tokens the method can draft per round, or None when unbounded (K for Medusa heads).
    Unknown keys are unbounded."""
    if not is_valid(key):
        return None
    k = parse(key)
    return REGISTRY[k.family].max_gamma(k, drafters or {})


def effective_gamma(key: str, gamma: int, drafters: dict | None = None) -> int:
    """The γ a round of the method really drafts when asked for `gamma` (min(γ, K) for Medusa)."""
    cap = max_gamma(key, drafters)
    return int(gamma) if cap is None else min(int(gamma), cap)


def in_sample(key: str) -> bool:
    """True for measurements on the drafter's own training prompts ('medusa:train'): not evidence."""
    return is_valid(key) and spec(key).in_sample(parse(key))


def lossy(key: str) -> bool:
    """True when the method's acceptance rule changes the output ('medusa:typical')."""
    return is_valid(key) and spec(key).lossy(parse(key))


def decidable(key: str) -> bool:
    """May the method be chosen: a valid key measured on held-out prompts with a lossless test."""
    return is_valid(key) and not in_sample(key) and not lossy(key)


def layer_skip_key(layers: int) -> str:
    return f"{layerskip.FAMILY.name}:L{int(layers)}"


def layer_skip_layers(key: str) -> int:
    return parse(key).layers


def draft_key(short_name: str, several: bool) -> str:
    """The key of a draft model: plain 'draft' when the run has one, 'draft:<name>' among several."""
    if not several:
        return draft.FAMILY.name
    name = re.sub(r"[^A-Za-z0-9._+-]+", "-", short_name).strip("-.") or "model"
    return f"{draft.FAMILY.name}:{name[:100]}"


def label(key: str, drafters: dict | None = None) -> str:
    """Human label: 'draft model (qwen2.5-coder-0.5b-instruct)', 'layer-skip (first 8 layers)'."""
    k = parse(key)
    return REGISTRY[k.family].key_label(k, drafters or {})


def short_label(key: str, drafters: dict | None = None) -> str:
    """A label for tight spaces (axis ticks, table cells): the draft model's name, 'layer-skip L8',
    'Medusa', 'prompt lookup'."""
    k = parse(key)
    return REGISTRY[k.family].short_label(k, drafters or {})


def drafter_info(key: str, *, parameters: int = 0, extra_parameters: int = 0, num_layers: int = 0,
                 hidden_size: int | None = None, num_key_value_heads: int | None = None,
                 head_dim: int | None = None, kv_layers: int = 0, spec: str | None = None,
                 name: str | None = None, **extra) -> dict:
    """The manifest's `models.drafters[key]` entry: what one draft step reads and what it adds.

    parameters: weights one draft step reads (for c and the hardware projection); extra_parameters:
    weights that exist only for drafting (the memory overhead: a draft model's, Medusa heads'; 0 for
    layer-skip, which shares the target's); num_layers: layers one draft step runs; kv_layers: layers
    of KV cache the drafter keeps beside the target's (×2·kv_heads·head_dim per token).
    """
    return {"family": family(key), "steps_per_round": steps_per_round(key), "spec": spec, "name": name,
            "parameters": int(parameters), "extra_parameters": int(extra_parameters), "num_layers": int(num_layers),
            "hidden_size": hidden_size, "num_key_value_heads": num_key_value_heads, "head_dim": head_dim,
            "kv_layers": int(kv_layers), **extra}


def derived_info(key: str, models: dict) -> dict:
    """models.drafters[key] for an old results.json that did not record it (costs.drafters)."""
    k = parse(key)
    return REGISTRY[k.family].derived_info(k, models)


def engine_ref(key: str, info: dict, models: dict) -> str | None:
    """What a serving engine is given as the drafter of `key` (None: nothing)."""
    k = parse(key)
    return REGISTRY[k.family].engine_ref(k, info or {}, models or {})


def order(keys) -> list[str]:
    """Keys in a stable display order: by family (registry order), then variant; invalid keys last."""
    def rank(key):
        try:
            k = parse(key)
        except SpecdecError:
            return (len(FAMILIES), str(key), 0)
        return (FAMILIES.index(k.family), *REGISTRY[k.family].rank(k))
    return sorted(dict.fromkeys(keys), key=rank)

