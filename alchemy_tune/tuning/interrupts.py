"""Ctrl-C and SIGTERM during a search: Ray Tune's own SIGINT handler ends its loop and saves its state, so
the run can be resumed; SIGTERM is turned into SIGINT for it, and the exit code says which came."""

from __future__ import annotations

import os


class Interrupts:
    """SIGTERM ends a search as Ctrl-C does: Tune's SIGINT handler stops the loop and saves its state, so
    the run can be resumed. Remembers which signal came (the exit code: 130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self):
        self.code = 130
        self._before = None

    def _term(self, signum, frame):
        import signal

        self.code = 143
        os.kill(os.getpid(), signal.SIGINT)

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._before = signal.signal(signal.SIGTERM, self._term)
        return self

    def __exit__(self, *exc):
        import signal

        if self._before is not None:
            signal.signal(signal.SIGTERM, self._before)
        return False
