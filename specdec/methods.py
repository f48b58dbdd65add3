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

What each drafter costs lives in the manifest, `models.drafters[key]` (see `drafter_info`), so that
analysis, projection and the brief treat every method alike instead of special-casing names.
"""

from __future__ import annotations

import re

from specdec.errors import SpecdecError

FAMILIES = ("draft", "prompt-lookup", "layer-skip", "medusa")
# Families that run a network per draft step (and so have a draft cost c > 0 and a β per position).
MODEL_FAMILIES = ("draft", "layer-skip", "medusa")
# How many draft forwards a round of γ drafted tokens takes: autoregressive drafters one per token;
# Medusa heads predict all γ from one hidden state in one pass; lookup needs none.
STEPS_PER_ROUND = {"draft": "gamma", "layer-skip": "gamma", "medusa": "one", "prompt-lookup": "none"}
FAMILY_LABELS = {"draft": "draft model", "prompt-lookup": "prompt lookup", "layer-skip": "layer-skip",
                 "medusa": "Medusa heads"}

_KEY = re.compile(r"(?P<family>[a-z-]+)(?::(?P<variant>[A-Za-z0-9][A-Za-z0-9._+-]{0,99}))?\Z")


def parse(key: str) -> tuple[str, str | None]:
    """'layer-skip:L8' → ('layer-skip', 'L8'). Raises SpecdecError for anything else."""
    m = _KEY.match(key) if isinstance(key, str) else None
    if not m or m["family"] not in FAMILIES:
        raise SpecdecError(f"unknown method {key!r}: choose from {', '.join(FAMILIES)}")
    family, variant = m["family"], m["variant"]
    if family == "layer-skip" and not (variant and re.fullmatch(r"L[1-9][0-9]*", variant)):
        raise SpecdecError(f"method {key!r}: layer-skip needs its layer count, as in layer-skip:L8")
    if family == "prompt-lookup" and variant:
        raise SpecdecError(f"method {key!r}: prompt-lookup takes no variant")
    if family == "medusa" and variant not in (None, "train", "typical"):
        raise SpecdecError(f"method {key!r}: medusa takes no variant but :train or :typical")
    return family, variant


def is_valid(key) -> bool:
    try:
        parse(key)
    except SpecdecError:
        return False
    return True


def family(key: str) -> str:
    return parse(key)[0]


def variant(key: str) -> str | None:
    return parse(key)[1]


def uses_model(key: str) -> bool:
    """True when the method runs a network to draft (draft model, layer-skip, Medusa heads)."""
    return family(key) in MODEL_FAMILIES


def draft_steps(key: str, gamma: float) -> float:
    """Draft forwards per round that drafts `gamma` tokens (γ, 1 or 0)."""
    kind = STEPS_PER_ROUND[family(key)]
    return float(gamma) if kind == "gamma" else (1.0 if kind == "one" and gamma > 0 else 0.0)


def max_gamma(key: str, drafters: dict | None = None) -> int | None:
    """The most tokens the method can draft per round, or None when unbounded: K for Medusa heads
    (one head per position, so a run asked for γ > K drafts K). Unknown keys are unbounded."""
    if not is_valid(key) or family(key) != "medusa":
        return None
    info = (drafters or {}).get(key) or (drafters or {}).get("medusa") or {}
    heads = info.get("heads")
    return int(heads) if heads else None


def effective_gamma(key: str, gamma: int, drafters: dict | None = None) -> int:
    """The γ a round of the method really drafts when asked for `gamma` (min(γ, K) for Medusa)."""
    cap = max_gamma(key, drafters)
    return int(gamma) if cap is None else min(int(gamma), cap)


def in_sample(key: str) -> bool:
    """True for measurements on the drafter's own training prompts ('medusa:train'): not evidence."""
    return is_valid(key) and parse(key) == ("medusa", "train")


def lossy(key: str) -> bool:
    """True when the method's acceptance rule changes the output ('medusa:typical')."""
    return is_valid(key) and parse(key) == ("medusa", "typical")


def decidable(key: str) -> bool:
    """May the method be chosen: a valid key measured on held-out prompts with a lossless test."""
    return is_valid(key) and not in_sample(key) and not lossy(key)


def layer_skip_key(layers: int) -> str:
    return f"layer-skip:L{int(layers)}"


def layer_skip_layers(key: str) -> int:
    return int(variant(key)[1:])


def draft_key(short_name: str, several: bool) -> str:
    """The key of a draft model: plain 'draft' when the run has one, 'draft:<name>' among several."""
    if not several:
        return "draft"
    name = re.sub(r"[^A-Za-z0-9._+-]+", "-", short_name).strip("-.") or "model"
    return f"draft:{name[:100]}"


def label(key: str, drafters: dict | None = None) -> str:
    """Human label: 'draft model (qwen2.5-coder-0.5b-instruct)', 'layer-skip (first 8 layers)'."""
    fam, var = parse(key)
    if fam == "layer-skip":
        return f"layer-skip (first {var[1:]} layers)"
    if fam == "draft":
        info = (drafters or {}).get(key) or {}
        name = var or info.get("name")
        return f"draft model ({name})" if name else "draft model"
    if fam == "medusa":
        heads = ((drafters or {}).get(key) or (drafters or {}).get("medusa") or {}).get("heads")
        name = f"Medusa heads ({heads})" if heads else "Medusa heads"
        return {"train": f"{name}, training prompts", "typical": f"{name}, typical acceptance (lossy)"}.get(var, name)
    return FAMILY_LABELS[fam]


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
    return {"family": family(key), "steps_per_round": STEPS_PER_ROUND[family(key)], "spec": spec, "name": name,
            "parameters": int(parameters), "extra_parameters": int(extra_parameters), "num_layers": int(num_layers),
            "hidden_size": hidden_size, "num_key_value_heads": num_key_value_heads, "head_dim": head_dim,
            "kv_layers": int(kv_layers), **extra}


def order(keys) -> list[str]:
    """Keys in a stable display order: by family (FAMILIES order), then variant; invalid keys last."""
    def rank(k):
        try:
            fam, var = parse(k)
        except SpecdecError:
            return (len(FAMILIES), str(k), 0)
        num = int(var[1:]) if fam == "layer-skip" else 0  # L4 before L12
        return (FAMILIES.index(fam), "" if var is None or fam == "layer-skip" else var, num)
    return sorted(dict.fromkeys(keys), key=rank)


def short_label(key: str, drafters: dict | None = None) -> str:
    """A label for tight spaces (axis ticks, table cells): the draft model's name, 'layer-skip L8',
    'Medusa', 'prompt lookup'."""
    fam, var = parse(key)
    if fam == "draft":
        return var or ((drafters or {}).get(key) or {}).get("name") or "draft model"
    if fam == "layer-skip":
        return f"layer-skip {var}"
    return {"medusa": "Medusa", "prompt-lookup": "prompt lookup"}[fam]


def reads_kv(key: str) -> bool:
    """True when a draft step attends over a KV cache (draft model, the target's first layers); Medusa
    heads are MLPs on the last hidden state, prompt lookup a string match."""
    return family(key) in ("draft", "layer-skip")


def uses_model_family(fam: str | None) -> bool:
    return fam in MODEL_FAMILIES
