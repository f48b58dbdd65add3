"""A model loader for the measuring process that converts as usual but slowly (0.3 s a progress update),
so a test can cancel a conversion in flight. Module-level so it pickles to the child process."""

import time

from specdec.measure import models


def load_with_drafts(*args, on_progress=None, **kwargs):
    def slow(stage, fraction=None):
        time.sleep(0.3)
        if on_progress is not None:
            on_progress(stage, fraction)
    return models.load_with_drafts(*args, on_progress=slow, **kwargs)
