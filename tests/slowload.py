"""A model loader for the measuring process that converts as usual but slowly (0.3 s a progress update)
and, once a de-quantise update with a fraction in (0, 1) has been reported, holds there until the process
is interrupted — so a test can cancel a conversion in flight however loaded the machine is (a cancel that
arrived after a finished conversion would pass for one that failed to stop it). Module-level so it
pickles to the child process."""

import time

from specdec.measure import models

HOLD_STAGE = "de-quantise"


def load_with_drafts(*args, on_progress=None, **kwargs):
    def slow(stage, fraction=None):
        time.sleep(0.3)
        if on_progress is not None:
            on_progress(stage, fraction)
        if stage == HOLD_STAGE and fraction is not None and 0 < fraction < 1:
            while True:  # until Cancel's SIGINT raises KeyboardInterrupt here
                time.sleep(0.1)
    return models.load_with_drafts(*args, on_progress=slow, **kwargs)
