"""Measuring: workloads and file formats, models and the bundled pair, bench, runner, worker, run plans."""
