"""Load generators: closed-loop concurrency (C requests always in flight, as `vllm bench serve
--max-concurrency`) and open-loop Poisson arrivals (`--request-rate`), over a list of ready request bodies.

Threads, not asyncio: the client is blocking stdlib http.client and the GIL is released while a
thread waits on its socket, which is all a load generator does. One failed request stops the level:
the remaining requests are not sent, and the caller gets the EngineError and no measurements.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from specdec.engines.client import Endpoint, EngineError, Measurement, stream


@dataclass(frozen=True)
class Job:
    prompt_id: str
    category: str
    body: dict


@dataclass(frozen=True)
class Level:
    """One load level's finished requests (in completion order) and its wall clock, first send to last end."""

    concurrency: int
    request_rate: float | None
    measurements: list[Measurement]
    duration_s: float


def run_level(endpoint: Endpoint, jobs: list[Job], concurrency: int, request_rate: float | None = None,
              seed: int = 0, on_done: Callable[[Measurement], None] | None = None) -> Level:
    """Send every job once. Closed loop: `concurrency` workers each take the next job when their last
    one ends. Open loop (request_rate = r req/s): job k is sent at the k-th arrival of a Poisson process
    (exponential gaps, random.Random(seed)), at most `concurrency` in flight. Raises the first EngineError."""
    if concurrency < 1:
        raise EngineError(f"concurrency must be at least 1, got {concurrency}")
    lock = threading.Lock()
    pending = list(reversed(jobs))
    done: list[Measurement] = []
    errors: list[EngineError] = []
    slots = threading.Semaphore(concurrency)
    arrivals = _arrivals(len(jobs), request_rate, seed)
    t0 = time.perf_counter()

    def take() -> Job | None:
        with lock:
            return pending.pop() if pending and not errors else None

    def send(job: Job) -> None:
        try:
            m = stream(endpoint, job.body, job.prompt_id, job.category)
        except EngineError as exc:
            with lock:
                errors.append(exc)
            return
        except Exception as exc:  # a bug or an odd socket state must still stop the level, with one line
            with lock:
                errors.append(EngineError(f"{endpoint.url}: request failed ({type(exc).__name__}: {exc})"))
            return
        with lock:
            done.append(m)
        if on_done is not None:
            on_done(m)

    def closed_worker() -> None:
        while (job := take()) is not None:
            send(job)

    def open_worker(job: Job) -> None:
        try:
            send(job)
        finally:
            slots.release()

    threads = []
    try:
        if arrivals is None:
            threads = [threading.Thread(target=closed_worker, daemon=True) for _ in range(min(concurrency, len(jobs)))]
            for t in threads:
                t.start()
        else:
            for at in arrivals:
                time.sleep(max(0.0, t0 + at - time.perf_counter()))
                slots.acquire()
                job = take()
                if job is None:
                    slots.release()
                    break
                t = threading.Thread(target=open_worker, args=(job,), daemon=True)
                t.start()
                threads.append(t)
        for t in threads:
            t.join()
    except BaseException:
        # Ctrl-C / Cancel (SIGINT lands in this thread): send nothing more. The app's measuring process
        # outlives the run, so its workers must not go on loading the server with the rest of the level.
        with lock:
            pending.clear()
        raise
    if errors:
        raise errors[0]
    end = max((m.start_s + m.e2e_s for m in done), default=t0)
    return Level(concurrency=concurrency, request_rate=request_rate, measurements=done, duration_s=end - t0)


def _arrivals(n: int, rate: float | None, seed: int) -> list[float] | None:
    """Send times in seconds from the start: cumulative exponential gaps with mean 1/rate; None = closed loop."""
    if rate is None:
        return None
    if not rate > 0:
        raise EngineError(f"--request-rate must be > 0 requests/s, got {rate}")
    rng = random.Random(seed)
    t, out = 0.0, []
    for _ in range(n):
        out.append(t)
        t += rng.expovariate(rate)
    return out
