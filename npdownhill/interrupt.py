"""Ctrl-C between batches: the first press becomes a flag, a second one interrupts.

A run checks the flag only between batches, so an update is never cut in
half and the state it saves on Ctrl-C is consistent.
"""

import signal
import threading

__all__ = ["DeferredInterrupt"]


class DeferredInterrupt:
    """Context manager that turns the first SIGINT into a flag checked by :meth:`check`.

    While the block runs, a first Ctrl-C only sets :attr:`hit`; :meth:`check`
    (called between batches) and the end of the block raise
    ``KeyboardInterrupt`` if it was pressed. A second Ctrl-C raises at once.
    It is only active in the main thread while Python's default handler is
    installed; elsewhere Ctrl-C behaves as usual.

    Attributes
    ----------
    hit : bool
        Whether Ctrl-C was pressed and not yet acted on.
    """

    def __init__(self):
        self.hit = False
        self.old = None

    def __enter__(self):
        self.hit = False
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self.old = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.hit:
            raise KeyboardInterrupt
        self.hit = True

    def check(self):
        """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed since the last check."""
        if self.hit:
            self.hit = False
            raise KeyboardInterrupt

    def __exit__(self, exc_type, exc, tb):
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
            self.old = None
        if self.hit and exc_type is None:   # pressed during the block: stop now
            self.hit = False
            raise KeyboardInterrupt
        return False
