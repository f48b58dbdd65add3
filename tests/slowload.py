"""Model loaders for the measuring process that hold a job still until Cancel's SIGINT, so a test can cancel
it in flight however loaded the machine is (a cancel that arrived after the job finished would pass for one
that failed to stop it). Module-level so they pickle to the child process.

load_with_drafts: converts as usual but slowly (0.3 s a progress update) and, once a de-quantise update with a
fraction in (0, 1) has been reported, holds there.
load_then_hold_after_first_prompt: loads as usual; the run then holds once its first prompt is stored, saved and
reported as progress, so the run cannot finish before the cancel arrives (real and traced mode alike).
fit_holding_once: Medusa training as usual, except that the process's first training job holds at its second
reported step (loss and time left are on screen) — later jobs train to the end."""

import time

from specdec.decoding import medusa
from specdec.measure import models, runner

HOLD_STAGE = "de-quantise"


def load_with_drafts(*args, on_progress=None, **kwargs):
    def slow(stage, fraction=None):
        time.sleep(0.3)
        if on_progress is not None:
            on_progress(stage, fraction)
        if stage == HOLD_STAGE and fraction is not None and 0 < fraction < 1:
            _hold_until_interrupted()
    return models.load_with_drafts(*args, on_progress=slow, **kwargs)


def _hold_until_interrupted():
    while True:  # until Cancel's SIGINT raises KeyboardInterrupt here
        time.sleep(0.1)


def load_then_hold_after_first_prompt(*args, **kwargs):
    advance = runner._Meter.advance  # noqa: SLF001

    def advance_then_hold(meter, record):
        advance(meter, record)  # the prompt is stored and saved, and its progress reported
        _hold_until_interrupted()
    runner._Meter.advance = advance_then_hold  # noqa: SLF001 — in the measuring process only: it runs this loader
    return models.load_with_drafts(*args, **kwargs)


_held = []  # per measuring process: fit_holding_once holds its first training job only


def fit_holding_once(*args, on_progress=None, **kwargs):
    def report(stage, done, total, detail=""):
        if on_progress is not None:
            on_progress(stage, done, total, detail)
        if stage == "training" and done >= 2 and not _held:  # two steps in: the page has a rate for the time left
            _held.append(stage)
            _hold_until_interrupted()
    return medusa.fit(*args, on_progress=report, **kwargs)
