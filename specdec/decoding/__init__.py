"""The algorithm in the papers' notation: sampling math, forward + KV cache, drafters, loops."""
