"""The :class:`Schedule` base class and the checks shared by all schedules.

The ``_real`` / ``_integer`` / ``_flag`` / ``_choice`` / ``_sequence`` helpers
validate constructor arguments (raising :class:`TypeError` or
:class:`ValueError` with a message naming the schedule, the argument, the rule
and the value), ``_check_step`` validates the ``step`` a schedule is called
with, and ``_state_scalar`` reads one entry of a state dict.
"""

import math
import numbers
from collections.abc import Mapping

import numpy as np

__all__ = ["Schedule"]

_NOT_GIVEN = object()


# ---------------------------------------------------------------------------
# Argument validation
# ---------------------------------------------------------------------------

def _error(exc, owner, arg, shown, subject, rule, value, show_type=False):
    """Build ``exc`` with the message ``owner(arg=shown): subject must be rule; got value``."""
    got = repr(value)
    if show_type:
        got += f" ({type(value).__name__})"
    return exc(f"{owner}({arg}={shown!r}): {subject} must be {rule}; got {got}")


def _bound_rule(gt, ge, lt, le):
    """Describe numeric bounds, e.g. ``"> 0"`` or ``"in (0, 1)"``; None if unbounded."""
    low = gt if gt is not None else ge
    high = lt if lt is not None else le
    if low is not None and high is not None:
        left = "(" if gt is not None else "["
        right = ")" if lt is not None else "]"
        return f"in {left}{low}, {high}{right}"
    if low is not None:
        return f"{'>' if gt is not None else '>='} {low}"
    if high is not None:
        return f"{'<' if lt is not None else '<='} {high}"
    return None


def _real(owner, arg, value, *, gt=None, ge=None, lt=None, le=None,
          subject=None, shown=_NOT_GIVEN):
    """Check that ``value`` is a finite real number within the bounds; return a float.

    ``subject`` and ``shown`` let an element of a list be checked while the
    message still names the whole argument.
    """
    subject = arg if subject is None else subject
    shown = value if shown is _NOT_GIVEN else shown
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise _error(TypeError, owner, arg, shown, subject, "a real number",
                     value, show_type=True)
    try:
        x = float(value)
    except OverflowError:  # e.g. an int too large for a float
        x = math.inf
    if not math.isfinite(x):
        raise _error(ValueError, owner, arg, shown, subject, "finite", value)
    ok = ((gt is None or x > gt) and (ge is None or x >= ge)
          and (lt is None or x < lt) and (le is None or x <= le))
    if not ok:
        raise _error(ValueError, owner, arg, shown, subject,
                     _bound_rule(gt, ge, lt, le), value)
    return x


def _integer(owner, arg, value, *, gt=None, ge=None, subject=None, shown=_NOT_GIVEN):
    """Check that ``value`` is an integer (not a bool, not a float) within the bounds."""
    subject = arg if subject is None else subject
    shown = value if shown is _NOT_GIVEN else shown
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise _error(TypeError, owner, arg, shown, subject, "an integer",
                     value, show_type=True)
    n = int(value)
    if (gt is not None and not n > gt) or (ge is not None and not n >= ge):
        raise _error(ValueError, owner, arg, shown, subject,
                     _bound_rule(gt, ge, None, None), value)
    return n


def _flag(owner, arg, value):
    """Check that ``value`` is a bool (NumPy bools included)."""
    if not isinstance(value, (bool, np.bool_)):
        raise _error(TypeError, owner, arg, value, arg, "a bool", value, show_type=True)
    return bool(value)


def _choice(owner, arg, value, choices):
    """Check that ``value`` is one of the strings in ``choices``."""
    rule = "one of " + ", ".join(repr(c) for c in choices)
    if not isinstance(value, str):
        raise _error(TypeError, owner, arg, value, arg, rule, value, show_type=True)
    if value not in choices:
        raise _error(ValueError, owner, arg, value, arg, rule, value)
    return value


def _sequence(owner, arg, value):
    """Turn a list-like argument (list, tuple, 1-d array) into a list."""
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise _error(TypeError, owner, arg, value, arg,
                     "a sequence (list, tuple or 1-d array)", value, show_type=True)
    if isinstance(value, np.ndarray) and value.ndim != 1:
        raise _error(ValueError, owner, arg, value, arg, "one-dimensional",
                     value.shape)
    return list(value)


def _check_step(owner, step):
    """Validate the ``step`` passed to a schedule; return it as a Python int."""
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)):
        raise TypeError(
            f"{owner}: step must be an integer (the number of updates already "
            f"applied); got {step!r} ({type(step).__name__})")
    if step < 0:
        raise ValueError(f"{owner}: step must be >= 0; got {step!r}")
    return int(step)


def _state_scalar(owner, key, value, integer=False):
    """Read one entry of a state dict: a number or a 0-d array (as from np.load)."""
    arr = np.asarray(value)
    if arr.shape != ():
        raise ValueError(f"{owner}.load_state_dict: {key!r} must be a scalar; "
                         f"got an array of shape {arr.shape}")
    kinds = "iu" if integer else "iuf"
    if arr.dtype.kind not in kinds:
        what = "an integer" if integer else "a real number"
        raise TypeError(f"{owner}.load_state_dict: {key!r} must be {what}; "
                        f"got {value!r} (dtype {arr.dtype})")
    return int(arr) if integer else float(arr)


# ---------------------------------------------------------------------------
# Base class
# ---------------------------------------------------------------------------

class Schedule:
    """Base class of the schedules in :mod:`npdownhill.schedules`.

    A schedule is called as ``schedule(step)`` with the number of updates
    already applied and returns a Python float.  Using this base class is
    optional: the optimizers accept any callable ``f(step) -> float``.

    Subclasses implement ``_compute(step)`` (``step`` is already checked to
    be a non-negative Python int) and list their constructor arguments in
    ``_arg_names`` (each stored as attribute ``"_" + name``) for the
    :func:`repr`.  Stateful subclasses override :meth:`state_dict` and
    ``_load_state(state)``.
    """

    #: Name used in messages and in the repr (defaults to the class name).
    _name = None
    #: Constructor arguments shown by ``repr``; each is stored as ``"_" + name``.
    _arg_names = ()

    @property
    def _label(self):
        return self._name or type(self).__name__

    def __call__(self, step):
        """Return the value for ``step`` (updates already applied) as a float."""
        return float(self._compute(_check_step(self._label, step)))

    def _compute(self, step):
        raise NotImplementedError(f"{type(self).__name__} must implement _compute(step)")

    def __repr__(self):
        args = ", ".join(f"{n}={getattr(self, '_' + n)!r}" for n in self._arg_names)
        return f"{self._label}({args})"

    def on_validation(self, loss):
        """Receive a validation loss.  The base class ignores it."""
        return None

    def state_dict(self):
        """Return the mutable state as a dict of numbers / NumPy arrays (``{}`` here)."""
        return {}

    def load_state_dict(self, state):
        """Restore a state produced by :meth:`state_dict`.

        Values may be plain numbers or 0-d arrays (as returned by
        ``np.load``).  Missing or unexpected keys raise :class:`ValueError`.
        """
        self._check_state_keys(state)
        self._load_state(state)

    def _check_state_keys(self, state):
        if not isinstance(state, Mapping):
            raise TypeError(f"{self._label}.load_state_dict: state must be a mapping; "
                            f"got {type(state).__name__}")
        expected = set(self.state_dict())
        given = set(state)
        if given != expected:
            problems = []
            if expected - given:
                problems.append(f"missing keys {sorted(expected - given)}")
            if given - expected:
                problems.append(f"unexpected keys {sorted(given - expected, key=str)}")
            raise ValueError(f"{self._label}.load_state_dict: " + "; ".join(problems)
                             + f" (expected exactly {sorted(expected)})")

    def _load_state(self, state):
        pass

