"""specdec: measure whether speculative decoding pays off on your traffic.

Notation (Leviathan et al. 2023): p = target distribution, q = draft distribution,
γ = tokens drafted per round, α = per-token acceptance probability,
τ = tokens emitted per target pass (bonus included), ρ = accepted / drafted.
"""

__version__ = "0.1.0"
