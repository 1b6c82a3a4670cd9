"""Progress bars for runs and fits (tqdm, optional), and the one-time hint.

``progress=None`` (the default of ``iterate``, ``minimize`` and ``solve``)
shows a bar when tqdm is installed and the output is a terminal or a Jupyter
notebook, and never in a pipe or on CI (when the ``CI`` environment variable
is set); ``True`` always shows one (tqdm must be installed: ``pip install
'npdownhill[progress]'``); ``False`` never does. The bar counts epochs (or
iterations) and its postfix shows the training loss, the validation loss
(``*`` when it is the best so far) and the learning rate. While a bar is
shown, the ``npdownhill`` log lines are written above it instead of breaking
it.

A run left at ``progress=None`` that shows no bar and whose INFO log lines
reach no handler says once per process, as a WARNING, how to see its progress.
"""

import contextlib
import logging
import os
import sys

__all__ = ["check_progress", "show_progress", "Bar", "hint_once", "no_hint"]

logger = logging.getLogger("npdownhill")

INSTALL = "pip install 'npdownhill[progress]'"

_hinted = []


def check_progress(call, value):
    """Validate a ``progress`` argument: None, True or False."""
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{call}(progress={value!r}): progress must be None, True or False; "
                        f"got {type(value).__name__}")
    if value is True and _tqdm() is None:
        raise ImportError(f"{call}(progress=True): progress bars need tqdm, which is not "
                          f"installed: {INSTALL}")
    return value


def _tqdm():
    try:
        import tqdm.auto
    except ImportError:
        return None
    return tqdm.auto


def _in_notebook():
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    try:
        return type(shell.get_ipython()).__name__ == "ZMQInteractiveShell"
    except Exception:          # an IPython we do not know: no bar by default
        return False


def show_progress(progress):
    """Whether a bar is shown for this ``progress`` value (see the module docstring)."""
    if progress is not None:
        return bool(progress)
    if os.environ.get("CI") or _tqdm() is None:
        return False
    stream = sys.stderr
    return _in_notebook() or bool(getattr(stream, "isatty", lambda: False)())


def hint_once(shown):
    """Tell the user once how to see progress, when neither a bar nor an INFO handler will."""
    if shown or _hinted or _info_reaches_a_handler():
        return
    _hinted.append(True)
    logger.warning("npdownhill logs each epoch at INFO level, which no handler shows now: "
                   "call logging.basicConfig(level=logging.INFO) to see the log, or pass "
                   "progress=True for a progress bar (%s)", INSTALL)


def no_hint():
    """Declare that the user sees the progress another way: no hint from then on."""
    _hinted.append(True)


def _info_reaches_a_handler():
    if not logger.isEnabledFor(logging.INFO):
        return False
    node = logger
    while node is not None:
        if any(h.level <= logging.INFO for h in node.handlers):
            return True
        if not node.propagate:
            return False
        node = node.parent
    return False


class Bar:
    """A tqdm bar with the run's postfix, or nothing at all.

    Parameters
    ----------
    shown : bool
        Whether to draw it (see :func:`show_progress`).
    total : int or None
        Epochs (or iterations) expected; None when unknown.
    desc : str
        The label, e.g. the optimizer's name.
    unit : str
        ``'epoch'`` or ``'it'``.
    initial : int
        Already done (a resumed run).
    """

    def __init__(self, shown, total, desc, unit="epoch", initial=0):
        self.bar = None
        self._redirect = contextlib.nullcontext()
        if not shown:
            return
        tqdm = _tqdm()
        self.bar = tqdm.tqdm(total=total, desc=desc, unit=unit, initial=initial,
                             file=sys.stderr, dynamic_ncols=True, leave=True)
        from tqdm.contrib.logging import logging_redirect_tqdm
        # log lines go above the bar: the console handlers of the root logger (where
        # logging.basicConfig puts them) and of ours, if it has its own
        loggers = [logging.root] + ([logger] if logger.handlers else [])
        self._redirect = logging_redirect_tqdm(loggers=loggers, tqdm_class=tqdm.tqdm)
        self._redirect.__enter__()

    def update(self, steps=1, **postfix):
        """Advance by ``steps`` and show ``postfix`` (name -> text)."""
        if self.bar is None:
            return
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(steps)

    def close(self):
        """Close the bar and give the log lines back to their handlers."""
        if self.bar is None:
            return
        bar, self.bar = self.bar, None
        try:
            bar.close()
        finally:
            self._redirect.__exit__(None, None, None)


def number(value):
    """A short text for a loss or a rate in the bar's postfix."""
    return f"{value:.4g}"
