"""Was the machine quiet while we timed? Other processes' CPU, and a fixed reference step re-timed.

A decision tool's ratios (SD ÷ baseline) rest on configurations measured one after another: load that
comes and goes between them moves the ratio, and a run on a busy machine can read a baseline twice as
slow as a quiet one. So a run records two things and flags itself when either goes past its bound:

- other processes' CPU: sampled once a second (psutil) as the machine's busy CPU minus this process's
  own, in cores; `busy` when its mean exceeds config.BUSY_OTHER_CPU_SHARE of the machine's cores;
- a reference step: one target forward over config.REFERENCE_TOKENS fixed tokens (median of
  config.REFERENCE_REPEATS), timed after warm-up, after every prompt and at the end; `drifted` when the
  speed level moved: the series cut into config.REFERENCE_DRIFT_GROUPS consecutive groups, (slowest −
  fastest group median) / fastest exceeds config.REFERENCE_DRIFT_MAX. Group medians, not single timings:
  one slow timing among thirty (a shared VM's neighbour, a page-fault burst) is noise the bootstrap over
  prompts already carries; a run whose level moves (a clock change, load arriving) is not.

`summary()` is what results.json keeps under manifest["machine"]; `unreliable(manifest)` is the one
rule the decision, the brief and the Run page read (this module loads torch only to time the step).
"""

from __future__ import annotations

import os
import statistics
import threading
import time

from specdec import config


class LoadSampler:
    """Other processes' CPU use in cores, sampled every `interval_s` on a daemon thread."""

    def __init__(self, interval_s: float = 1.0):
        try:
            import psutil
        except ImportError:  # psutil is in requirements.txt; without it only the reference step is recorded
            psutil = None
        self._psutil, self._interval = psutil, interval_s
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread = None
        if psutil is not None:
            self._thread = threading.Thread(target=self._loop, name="specdec-load", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        ps, me = self._psutil, self._psutil.Process()
        cores = os.cpu_count() or 1
        ps.cpu_percent(None)
        own = sum(me.cpu_times()[:2])
        last = time.monotonic()
        while not self._stop.wait(self._interval):
            now, busy = time.monotonic(), ps.cpu_percent(None) / 100.0 * cores
            mine = sum(me.cpu_times()[:2])
            self._samples.append(max(0.0, busy - (mine - own) / max(now - last, 1e-6)))
            own, last = mine, now

    def stop(self) -> list[float]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2 * self._interval)
        return list(self._samples)


def reference_step_s(model, tokens: int = config.REFERENCE_TOKENS, repeats: int = config.REFERENCE_REPEATS) -> float:
    """Median seconds of one forward of `model` over `tokens` fixed token ids, no KV cache: the same
    work every time, so its time moves only with the machine."""
    import torch  # here, so the decision can read `unreliable` without loading torch

    ids = (torch.arange(tokens, device=model.device) * 7 + 11).unsqueeze(0) % model.config.get_text_config().vocab_size
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            started = time.perf_counter()
            model(input_ids=ids, use_cache=False)
            if ids.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


class Watch:
    """One run's watch on the machine: start() after warm-up, check() after each prompt, stop() when the
    timings the results use are all taken (a traced run: after its real subset; the traced rounds are
    priced, not timed), summary() at the end."""

    def __init__(self, model):
        self._model = model
        self._reference: list[float] = []
        self._sampler: LoadSampler | None = None
        self._samples: list[float] | None = None  # set by stop()

    @property
    def started(self) -> bool:
        return self._sampler is not None

    def start(self) -> None:
        self._sampler = LoadSampler()
        self.check()

    def check(self) -> None:
        if self._samples is None:
            self._reference.append(reference_step_s(self._model))

    def stop(self) -> None:
        """The end point: one last reference timing, the load sampling ended; later check()s do nothing."""
        if self._sampler is None or self._samples is not None:
            return
        samples = self._sampler.stop()
        try:
            self.check()
        except (Exception, KeyboardInterrupt):  # noqa: BLE001 — a run that failed or was cancelled keeps what it has
            pass
        self._samples = samples

    def summary(self) -> dict:
        """manifest["machine"]: other_cpu (cores: mean, p90, max, samples), reference_s (every timing),
        drift, the bounds, and the flags busy / drifted. Stops the watch if still running."""
        self.stop()
        return describe(self._samples or [], self._reference, os.cpu_count() or 1)


def describe(other_cpu: list[float], reference_s: list[float], cores: int) -> dict:
    """The machine block from raw samples (pure: tested with made-up numbers)."""
    ordered = sorted(other_cpu)
    mean = statistics.fmean(ordered) if ordered else None
    # The flag from the timings as stored (rounded): unreliable() re-reads them, and a drift on the bound must
    # not read "drifted" from the file and "steady" from the flag (a tiny model's 0.5 ms step rounds by 2%).
    reference_s = [round(t, 5) for t in reference_s]
    drift = drift_of(reference_s)
    return {
        "cores": cores,
        "other_cpu": {"mean": _r(mean), "p90": _r(ordered[int(0.9 * (len(ordered) - 1))] if ordered else None),
                      "max": _r(ordered[-1] if ordered else None), "samples": len(ordered)},
        "reference_s": reference_s,
        "reference_tokens": config.REFERENCE_TOKENS,
        "drift": _r(drift),
        "bounds": {"busy_other_cpu_share": config.BUSY_OTHER_CPU_SHARE, "drift_max": config.REFERENCE_DRIFT_MAX},
        "busy": mean is not None and mean > config.BUSY_OTHER_CPU_SHARE * cores,
        "drifted": drift is not None and drift > config.REFERENCE_DRIFT_MAX,
    }


def drift_of(reference_s: list[float]) -> float | None:
    """How far the reference step's level moved: (slowest − fastest) / fastest over the medians of
    config.REFERENCE_DRIFT_GROUPS consecutive groups of the timings (fewer timings: one group each)."""
    ts = [float(t) for t in reference_s]
    if len(ts) < 2 or min(ts) <= 0:
        return None
    k = min(config.REFERENCE_DRIFT_GROUPS, len(ts))
    cuts = [round(i * len(ts) / k) for i in range(k + 1)]
    medians = [statistics.median(ts[a:b]) for a, b in zip(cuts, cuts[1:])]
    return (max(medians) - min(medians)) / min(medians)


def unreliable(manifest: dict) -> str | None:
    """One line on why this run's timings cannot be trusted (busy machine, drifting reference), or None.
    The drift is re-read from the stored timings, so files written under an older rule are judged by this one."""
    m = manifest.get("machine")
    if not isinstance(m, dict):
        return None
    why = []
    if m.get("busy"):
        other = (m.get("other_cpu") or {}).get("mean")
        why.append(f"other processes used {other:.2f} of {m.get('cores')} cores on average "
                   f"(bound {m['bounds']['busy_other_cpu_share']:.0%} of the cores)")
    drift = drift_of(m["reference_s"]) if m.get("reference_s") else m.get("drift")
    if drift is not None and drift > config.REFERENCE_DRIFT_MAX:
        why.append(f"a fixed reference step's time moved by {drift:.0%} during the run "
                   f"(bound {config.REFERENCE_DRIFT_MAX:.0%})")
    return "; ".join(why) if why else None


def _r(x):
    return None if x is None else round(float(x), 4)
