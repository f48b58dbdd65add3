"""Analysing results: bootstrap, projection, costs, hardware what-if, summary, comparison, decision."""
