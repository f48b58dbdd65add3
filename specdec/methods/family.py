"""What a method family is: the one place everything that varies by family is written.

A run key ('layer-skip:L8') is parsed once into a `Key` and carried as data. Each family is a `Family`
whose attributes and methods say how its keys read (label, order), what a round costs (steps per round,
largest γ), whether it may decide (lossless, held out), how the measuring stack builds it (sources,
drafter, trace), what the estimate and the what-if charge for it, and how an engine enables it (snippets).
The defaults here are those of a model-free drafter that needs no option; each family module overrides
what differs. Heavy imports (torch, drafters) stay inside the methods that need them, so the analysis
stack reads keys without loading models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from specdec.errors import SpecdecError


@dataclass(frozen=True)
class Key:
    """A parsed method key. text: as in results.json; variant: after the colon; layers: L of 'layer-skip:L<n>'."""

    text: str
    family: str
    variant: str | None = None
    layers: int | None = None


@dataclass
class SourceContext:
    """What a family needs to build its sources for a run (runner.draft_sources): the RunConfig, the
    loaded target and draft models, the target's KV geometry and lm_head size, the workload's sha256."""

    cfg: Any
    target: Any
    drafts: list
    kv: dict
    lm_params: int
    workload_sha256: str | None = None


@dataclass
class EstimateContext:
    """What a family needs for its estimate entries (runplan.drafter_costs): the RunConfig, the Speeds,
    Medusa's K when known, and alphas(*keys) → the (optimistic, typical, pessimistic) α for a key."""

    cfg: Any
    speeds: Any
    medusa_k: int | None
    alphas: Any
    guess: tuple = field(default=(0.5, 0.5, 0.5))


class Family:
    """A method family. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]
    label: ClassVar[str]  # the family's name for people ('prompt lookup')
    summary: ClassVar[str]  # what it is, in a clause (the app's method help)
    # Draft forwards per round of γ drafted tokens: "gamma" (autoregressive), "one" (one pass), "none".
    steps_per_round: ClassVar[str] = "none"
    uses_model: ClassVar[bool] = False  # runs a network to draft (a draft cost c > 0 and β per position)
    reads_kv: ClassVar[bool] = False  # a draft step attends over a KV cache of its own
    own_network: ClassVar[bool] = False  # a network apart from the target's (a draft model)
    # α assumed before anything is measured: (optimistic, typical, pessimistic).
    acceptance_guess: ClassVar[tuple[float, float, float]] = (0.6, 0.3, 0.1)
    # How a traced batch pays for it (runplan.estimate_traced): "own" (its own model steps beside the
    # target's), "readout" (a read-out of the target's own pass), "none".
    traced_cost: ClassVar[str] = "none"
    # The RunConfig fields the family needs set (the app shows their widgets when the family is chosen).
    options: ClassVar[tuple[str, ...]] = ()
    memory_what: ClassVar[str] = "draft weights"  # what its extra memory is, in the decision's words
    free_why: ClassVar[str] = "it needs no model"  # why it adds no memory when it adds none

    # ---- keys ----
    def parse(self, key: str, variant: str | None) -> Key:
        if variant is not None:
            raise SpecdecError(f"method {key!r}: {self.name} takes no variant")
        return Key(key, self.name)

    def key_label(self, k: Key, drafters: dict) -> str:
        return self.label

    def short_label(self, k: Key, drafters: dict) -> str:
        return self.label

    def rank(self, k: Key) -> tuple:
        """Display order within the family."""
        return ("" if k.variant is None else k.variant, 0)

    def max_gamma(self, k: Key, drafters: dict) -> int | None:
        """The most tokens a round can draft, None when unbounded."""
        return None

    def in_sample(self, k: Key) -> bool:
        """Measured on the drafter's own training prompts: not evidence."""
        return False

    def lossy(self, k: Key) -> bool:
        """The acceptance rule changes the output."""
        return False

    # ---- a run's settings ----
    def check_settings(self, s: dict) -> None:
        """Raise SpecdecError (one line) when the run's settings lack what the family needs.
        s: run_config's keyword values (drafts, medusa_heads, …)."""

    def unused(self, s: dict) -> dict:
        """The run settings this family owns, as they are when it is not measured (run_config clears
        them); raises SpecdecError for an option that makes no sense without it."""
        return {}

    def run_label(self, cfg, name) -> list[str]:
        """What the family adds to 'target + …' (worker's job label); name: model spec → short name."""
        return [self.label]

    def model_specs(self, cfg) -> tuple[str, ...]:
        """Model specs beside the target the family loads (draft models)."""
        return ()

    # ---- measuring ----
    def sources(self, ctx: SourceContext) -> tuple[list, dict]:
        """([bench.DraftSource] the run measures, {key: manifest drafter entry}), in order."""
        from specdec import methods
        from specdec.measure.bench import DraftSource
        info = methods.drafter_info(self.name)
        return [DraftSource(self.name, info=info)], {self.name: info}

    def build(self, source, target, sampling, generator, vocab_size: int):
        """The drafter (specdec.decoding.drafters.Drafter) measuring one generation of `source`."""
        raise NotImplementedError

    def trace_drafter(self, source):
        """The traces.generate.TraceDrafter teacher-forced along the target's pass, or None for a
        drafter whose proposals are a function of the committed ids (traced mode replays it)."""
        return None

    # ---- analysis ----
    def derived_info(self, k: Key, models: dict) -> dict:
        """models.drafters[key] for an old results.json that did not record it."""
        from specdec import methods
        return methods.drafter_info(k.text, **({"estimated": True} if self.uses_model else {}))

    def engine_ref(self, k: Key, info: dict, models: dict) -> str | None:
        """What a serving engine is given as this method's drafter (None: nothing)."""
        return None

    def snippets(self, k: Key, gamma: int, target: str, draft: str | None) -> dict[str, str]:
        """{engine: ready-to-paste config} for the engines that have the method (none by default)."""
        return {}

    def min_versions(self) -> dict[str, str]:
        """{engine: the oldest release known to take the snippet as written}."""
        return {}

    def estimate_costs(self, ctx: EstimateContext) -> list:
        """[runplan.DrafterCost] for the estimate: a model-free drafter costs nothing per round."""
        from specdec.measure.runplan import DrafterCost
        return [DrafterCost(self.name, 0.0, acceptance=ctx.alphas(self.name))]

    def recorded_speeds(self, key: str, info: dict, models: dict, runs, cm, acceptance: dict, out: dict) -> None:
        """Add what a stored run measured about this key to `out` (speeds.speeds_from_results' fields)."""
