"""Stopping a training run cleanly on SIGTERM (preemption) or Ctrl-C.

`StopRequest` turns the first signal into a flag and says so in the log; the training loop
(hdrjax.training.loop) reads the flag at each step boundary -- in a multi-process run all processes
agree on it there (`parallel.agree`), so a signal to any one stops all -- saves a checkpoint
and returns, and the next start continues from it.  A second signal exits the process at
once without saving; the previous complete checkpoint stays the latest.
"""
from __future__ import annotations

import logging
import os
import signal
import sys

logger = logging.getLogger(__name__)


class StopRequest:
    """SIGTERM / SIGINT set `requested`; the loop saves a checkpoint and returns at the next step.

    `install=False` (or a thread other than the main one, e.g. a notebook worker) installs no
    handler: the flag then only changes if someone sets it.  `restore()` puts back the
    handlers that were there before.
    """

    def __init__(self, install: bool):
        self.requested = False
        self.signal_name = ""
        self._old = {}
        if install:
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    self._old[sig] = signal.signal(sig, self._handle)
                except ValueError:  # not the main thread (e.g. a notebook worker): no handler
                    pass

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.requested:
            if signum == signal.SIGINT and hasattr(sys, "ps1"):
                raise KeyboardInterrupt  # an interactive session keeps its interpreter
            # A second signal: exit now, without waiting for the step or a save in progress.
            # An unfinished save is a tmp folder that orbax ignores (and removes at the next
            # start), so the previous checkpoint stays the latest and intact.
            os.write(2, f"{name} again: exiting without saving; the last complete checkpoint "
                        f"is kept\n".encode())
            os._exit(128 + signum)
        self.requested = True
        self.signal_name = name
        # Said at once: the save follows when the step in flight has finished.
        logger.info("%s: stopping after the step in flight (a second signal exits at once)", name)

    def restore(self):
        for sig, old in self._old.items():
            signal.signal(sig, old)
