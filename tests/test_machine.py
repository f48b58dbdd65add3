"""Busy-machine detection (specdec.measure.machine): the flags from made-up samples, the reference step on a
tiny model, and the sampler seeing another process's CPU."""

import subprocess
import sys
import time

import pytest

from specdec import config
from specdec.measure import machine


def test_quiet_busy_and_drifting_runs_are_told_apart():
    quiet = machine.describe([0.02, 0.05, 0.01], [0.200, 0.204, 0.201], cores=2)
    assert not quiet["busy"] and not quiet["drifted"] and machine.unreliable({"machine": quiet}) is None
    assert quiet["other_cpu"]["samples"] == 3 and quiet["drift"] == pytest.approx(0.02)
    bound = config.BUSY_OTHER_CPU_SHARE * 2
    busy = machine.describe([bound + 0.05] * 10, [0.2, 0.2], cores=2)
    assert busy["busy"] and not busy["drifted"]
    assert machine.unreliable({"machine": busy}).startswith(f"other processes used {bound + 0.05:.2f} of 2 cores")
    drifting = machine.describe([0.0] * 5, [0.2, 0.2 * (1 + config.REFERENCE_DRIFT_MAX) + 0.01], cores=2)
    assert drifting["drifted"] and not drifting["busy"] and "reference step" in machine.unreliable({"machine": drifting})
    assert machine.unreliable({}) is None  # runs from before the machine block: nothing to say
    empty = machine.describe([], [], cores=2)
    assert empty["other_cpu"]["mean"] is None and not empty["busy"] and not empty["drifted"]


def test_drift_is_a_moved_level_not_one_slow_timing():
    """One timing 30% slow among thirty is noise the bootstrap carries; the level moving 15% from the
    first third of the run to the last is drift. A file flagged under the old (range) rule is re-judged."""
    steady = [0.50, 0.51, 0.49, 0.52, 0.50] * 6
    steady[7] = 0.65  # one slow reading
    one_slow = machine.describe([0.01] * 30, steady, cores=2)
    assert not one_slow["drifted"] and one_slow["drift"] < 0.05
    moved = machine.describe([0.01] * 30, [0.50] * 10 + [0.53] * 10 + [0.575] * 10, cores=2)
    assert moved["drifted"] and moved["drift"] == pytest.approx(0.15)
    old_rule = {**one_slow, "drift": 0.31, "drifted": True}  # written when the range decided
    assert machine.unreliable({"machine": old_rule}) is None
    assert "moved by 15%" in machine.unreliable({"machine": moved})


def test_reference_step_is_timed_on_the_model(target, monkeypatch):
    """One forward per repeat, over `tokens` ids, no cache (what it times, not how long it took: no bound on time)."""
    seen = []
    forward = type(target).forward

    def counted(self, *args, **kwargs):
        if self is target:
            seen.append((kwargs["input_ids"].shape, kwargs.get("use_cache")))
        return forward(self, *args, **kwargs)
    # Patched on the class, not the instance: undoing an instance patch leaves a bound `forward` in the shared
    # model's __dict__, which a layer-skip view (a shallow copy) would then call — the full model, on its cache.
    monkeypatch.setattr(type(target), "forward", counted)
    seconds = machine.reference_step_s(target, tokens=8, repeats=3)
    assert seen == [((1, 8), False)] * 3 and seconds > 0


def test_the_sampler_sees_another_process_burn_cpu():
    """A busy child process shows up as other processes' CPU; this process's own work does not. The child
    spins until the sampler has 8 samples, however slowly a loaded machine lets them come."""
    sampler = machine.LoadSampler(interval_s=0.25)
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        deadline = time.monotonic() + 120  # bounds a hang only
        while len(sampler._samples) < 8 and time.monotonic() < deadline:  # noqa: SLF001
            time.sleep(0.05)
    finally:
        spin.kill()
        spin.wait()
    samples = sampler.stop()
    assert len(samples) >= 8 and max(samples) > 0.3


def test_the_drifted_flag_agrees_with_the_stored_timings_on_the_bound():
    """describe() flags drift from the timings it stores (rounded to 10 µs), so unreliable(), which re-reads
    them, says the same: here the raw drift is just under the bound, the stored one exactly on it."""
    from specdec import config
    from specdec.measure import machine
    raw = [0.000500, 0.000549999, 0.000549999]  # 9.9998% raw: under the bound; rounded, a hair over it
    assert machine.drift_of(raw) < config.REFERENCE_DRIFT_MAX
    m = machine.describe([], raw, 2)
    assert m["drifted"] == (machine.unreliable({"machine": m}) is not None)
    m = machine.describe([], [0.0005, 0.00056, 0.00056], 2)
    assert m["drifted"] and machine.unreliable({"machine": m}) and m["bounds"]["drift_max"] == config.REFERENCE_DRIFT_MAX
