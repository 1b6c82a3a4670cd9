r"""Schedules for hyperparameters such as the learning rate and the momentum.

The protocol
------------
A *schedule* is anything that can be called as ``f(step) -> float``, where
``step`` is the number of parameter updates already applied (``0`` for the
first update).  The optimizers call it once per update with a Python ``int``
and use the float it returns, so wherever a ``learning_rate`` or ``momentum``
is accepted you may pass either a number or a schedule.

Plain Python functions and lambdas are valid schedules; nothing requires the
:class:`Schedule` base class.  For example, both of these are fine values for
a ``learning_rate``::

    lambda step: 0.1 / (1 + step) ** 0.5
    linear_warmup(cosine_decay(0.1, decay_steps=10_000), warmup_steps=500)

Two optional hooks are looked up by name, so any user-written schedule (with
or without the base class) may implement them:

``on_validation(loss) -> None``
    The training driver calls it with every validation loss, *if* the
    schedule has such a method (``getattr(schedule, "on_validation", None)``).
    This is how :func:`reduce_on_plateau` learns about plateaus.
    :class:`Schedule` defines it as a no-op.

``state_dict() -> dict`` and ``load_state_dict(state) -> None``
    Used for checkpointing stateful schedules.  ``state_dict`` returns plain
    Python numbers or NumPy arrays only, so that the dictionary survives
    ``np.savez`` followed by ``np.load(..., allow_pickle=False)`` (each value
    then comes back as a 0-d array).  ``load_state_dict`` accepts such 0-d
    arrays and raises :class:`ValueError` for missing or unexpected keys.  The
    stateless schedules return ``{}`` and accept only ``{}``.

The schedules
-------------
==========================  ==================================================
:func:`constant`            a fixed value
:func:`exponential_decay`   :math:`\eta_0 r^{t/T}` (TensorFlow)
:func:`inverse_time_decay`  :math:`\eta_0 / (1 + r t / T)` (TensorFlow)
:func:`piecewise_constant`  step function with given boundaries (TensorFlow)
:func:`polynomial_decay`    polynomial decay to an end value (TensorFlow)
:func:`cosine_decay`        half a cosine down to a floor (TensorFlow)
:func:`cosine_restarts`     cosine annealing with warm restarts (SGDR)
:func:`linear_warmup`       linear ramp-up in front of any other schedule
:func:`one_cycle`           Smith's 1cycle policy (as PyTorch ``OneCycleLR``)
:func:`reduce_on_plateau`   shrink the value when the validation loss stalls
==========================  ==================================================

Each name is a class (the CamelCase name is the same class); calling it
returns a :class:`Schedule`.  Arguments are validated when the schedule is
built: a wrong type (``bool`` included where a number is expected) raises
:class:`TypeError`, a bad value (NaN and infinity included) raises
:class:`ValueError`, and the message names the schedule, the argument, the
rule and the offending value.  Calling a schedule with a negative step raises
:class:`ValueError`; a step that is not an integer (``bool`` and ``float``
included; NumPy integer types are fine) raises :class:`TypeError`.
"""

import bisect
import math
import numbers
from collections.abc import Mapping

import numpy as np

__all__ = [
    "Schedule",
    "constant",
    "exponential_decay",
    "inverse_time_decay",
    "piecewise_constant",
    "polynomial_decay",
    "cosine_decay",
    "cosine_restarts",
    "linear_warmup",
    "one_cycle",
    "reduce_on_plateau",
    "Constant",
    "ExponentialDecay",
    "InverseTimeDecay",
    "PiecewiseConstant",
    "PolynomialDecay",
    "CosineDecay",
    "CosineRestarts",
    "LinearWarmup",
    "OneCycle",
    "ReduceOnPlateau",
]

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


def _times_power(scale, base, exponent):
    """``scale * base ** exponent`` for base > 0, giving +-inf instead of OverflowError."""
    try:
        return scale * base ** exponent
    except OverflowError:  # base > 1 and a huge exponent
        return 0.0 if scale == 0 else math.copysign(math.inf, scale)


# ---------------------------------------------------------------------------
# Base class
# ---------------------------------------------------------------------------

class Schedule:
    """Base class of the schedules in this module.

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


# ---------------------------------------------------------------------------
# Stateless schedules
# ---------------------------------------------------------------------------

class Constant(Schedule):
    r"""A schedule that always returns the same value.

    .. math:: \eta(t) = c

    Parameters
    ----------
    value : float
        The value ``c`` (any finite real number).
    """

    _name = "constant"
    _arg_names = ("value",)

    def __init__(self, value):
        self._value = _real(self._name, "value", value)

    def _compute(self, step):
        return self._value


class ExponentialDecay(Schedule):
    r"""Exponential decay by ``decay_rate`` every ``decay_steps`` updates.

    .. math::

        \eta(t) = \eta_0 \, r^{\,t / T}
        \qquad\text{or, with staircase,}\qquad
        \eta(t) = \eta_0 \, r^{\,\lfloor t / T \rfloor}

    with :math:`\eta_0` = ``initial``, :math:`r` = ``decay_rate`` and
    :math:`T` = ``decay_steps``.  With ``decay_rate > 1`` the value grows; if
    it overflows the result is an infinity (of the sign of ``initial``).

    Parameters
    ----------
    initial : float
        Value at step 0 (finite).
    decay_rate : float
        Factor applied every ``decay_steps`` updates; must be > 0.
    decay_steps : int
        Number of updates per factor ``decay_rate``; must be > 0.
    staircase : bool, default False
        If true, the value changes in discrete jumps every ``decay_steps``.

    References
    ----------
    TensorFlow, ``tf.compat.v1.train.exponential_decay``.
    """

    _name = "exponential_decay"
    _arg_names = ("initial", "decay_rate", "decay_steps", "staircase")

    def __init__(self, initial, decay_rate, decay_steps, staircase=False):
        n = self._name
        self._initial = _real(n, "initial", initial)
        self._decay_rate = _real(n, "decay_rate", decay_rate, gt=0)
        self._decay_steps = _integer(n, "decay_steps", decay_steps, gt=0)
        self._staircase = _flag(n, "staircase", staircase)

    def _compute(self, step):
        if self._staircase:
            exponent = step // self._decay_steps          # floor(t / T)
        else:
            exponent = step / self._decay_steps           # t / T
        return _times_power(self._initial, self._decay_rate, exponent)


class InverseTimeDecay(Schedule):
    r"""Inverse-time decay.

    .. math::

        \eta(t) = \frac{\eta_0}{1 + r \, t / T}
        \qquad\text{or, with staircase,}\qquad
        \eta(t) = \frac{\eta_0}{1 + r \lfloor t / T \rfloor}

    with :math:`\eta_0` = ``initial``, :math:`r` = ``decay_rate`` and
    :math:`T` = ``decay_steps``.

    Parameters
    ----------
    initial : float
        Value at step 0 (finite).
    decay_rate : float
        Must be >= 0 (0 gives a constant).
    decay_steps : int
        Must be > 0.
    staircase : bool, default False
        If true, use the floor of :math:`t / T`.

    References
    ----------
    TensorFlow, ``tf.compat.v1.train.inverse_time_decay``.
    """

    _name = "inverse_time_decay"
    _arg_names = ("initial", "decay_rate", "decay_steps", "staircase")

    def __init__(self, initial, decay_rate, decay_steps, staircase=False):
        n = self._name
        self._initial = _real(n, "initial", initial)
        self._decay_rate = _real(n, "decay_rate", decay_rate, ge=0)
        self._decay_steps = _integer(n, "decay_steps", decay_steps, gt=0)
        self._staircase = _flag(n, "staircase", staircase)

    def _compute(self, step):
        if self._staircase:
            p = step // self._decay_steps                 # floor(t / T)
        else:
            p = step / self._decay_steps                  # t / T
        return self._initial / (1 + self._decay_rate * p)


class PiecewiseConstant(Schedule):
    r"""A step function, with TensorFlow's boundary convention.

    .. math::

        \eta(t) = \begin{cases}
            v_0 & t \le b_0 \\
            v_i & b_{i-1} < t \le b_i \\
            v_n & t > b_{n-1}
        \end{cases}

    A boundary step itself still gets the value *before* the boundary: with
    ``boundaries=[100]`` and ``values=[1.0, 0.5]`` steps 0..100 give 1.0 and
    steps from 101 on give 0.5.

    Parameters
    ----------
    boundaries : sequence of int
        Strictly increasing, non-negative integers :math:`b_0 < b_1 < \dots`
        (may be empty, giving a constant).
    values : sequence of float
        Finite values; exactly ``len(boundaries) + 1`` of them.

    References
    ----------
    TensorFlow, ``tf.compat.v1.train.piecewise_constant``.
    """

    _name = "piecewise_constant"
    _arg_names = ("boundaries", "values")

    def __init__(self, boundaries, values):
        n = self._name
        bounds = _sequence(n, "boundaries", boundaries)
        vals = _sequence(n, "values", values)
        self._boundaries = [
            _integer(n, "boundaries", b, ge=0, subject=f"boundaries[{k}]", shown=bounds)
            for k, b in enumerate(bounds)]
        for k in range(1, len(self._boundaries)):
            if not self._boundaries[k] > self._boundaries[k - 1]:
                raise _error(ValueError, n, "boundaries", bounds, "boundaries",
                             "strictly increasing", bounds)
        self._values = [
            _real(n, "values", v, subject=f"values[{k}]", shown=vals)
            for k, v in enumerate(vals)]
        if len(self._values) != len(self._boundaries) + 1:
            raise _error(ValueError, n, "values", vals, "len(values)",
                         f"len(boundaries) + 1 = {len(self._boundaries) + 1}",
                         len(self._values))

    def _compute(self, step):
        # bisect_left gives the number of boundaries b with b < step, which is
        # exactly the index i of the interval b[i-1] < step <= b[i].
        return self._values[bisect.bisect_left(self._boundaries, step)]


class PolynomialDecay(Schedule):
    r"""Polynomial decay from ``initial`` to ``end`` over ``decay_steps`` updates.

    Without cycling the value stays at ``end`` after ``decay_steps``:

    .. math::

        s = \min(t, T), \qquad
        \eta(t) = (\eta_0 - \eta_\text{end}) \left(1 - \frac{s}{T}\right)^p
                  + \eta_\text{end}

    With ``cycle=True`` the decay length is stretched to the next multiple of
    :math:`T` instead, :math:`T' = T \max(1, \lceil t / T \rceil)`, and
    :math:`\eta(t) = (\eta_0 - \eta_\text{end}) (1 - t / T')^p + \eta_\text{end}`.
    (This is TensorFlow's formula: after each multiple of :math:`T` the value
    jumps up, but not back to ``initial``.)

    Parameters
    ----------
    initial : float
        Value at step 0 (finite).
    decay_steps : int
        :math:`T`, must be > 0.
    end : float, default 0.0001
        Final value (finite).
    power : float, default 1.0
        Exponent :math:`p`, must be > 0 (1 is a linear decay).
    cycle : bool, default False
        Whether to restart the decay as described above.

    References
    ----------
    TensorFlow, ``tf.compat.v1.train.polynomial_decay``.
    """

    _name = "polynomial_decay"
    _arg_names = ("initial", "decay_steps", "end", "power", "cycle")

    def __init__(self, initial, decay_steps, end=0.0001, power=1.0, cycle=False):
        n = self._name
        self._initial = _real(n, "initial", initial)
        self._decay_steps = _integer(n, "decay_steps", decay_steps, gt=0)
        self._end = _real(n, "end", end)
        self._power = _real(n, "power", power, gt=0)
        self._cycle = _flag(n, "cycle", cycle)

    def _compute(self, step):
        T = self._decay_steps
        if self._cycle:
            T = T * max(1, -(-step // T))                 # T * max(1, ceil(t / T))
            s = step
        else:
            s = min(step, T)
        return (self._initial - self._end) * (1 - s / T) ** self._power + self._end


def _cosine_factor(fraction, alpha):
    r""":math:`(1 - \alpha) \tfrac12 (1 + \cos \pi f) + \alpha`: 1 at f = 0, alpha at f = 1."""
    return (1 - alpha) * (0.5 * (1 + math.cos(math.pi * fraction))) + alpha


class CosineDecay(Schedule):
    r"""Half a cosine from ``initial`` down to ``alpha * initial``.

    .. math::

        s = \min(t, T), \qquad
        \eta(t) = \eta_0 \left[(1 - \alpha)\,
                  \tfrac12 \left(1 + \cos\frac{\pi s}{T}\right) + \alpha\right]

    After ``decay_steps`` the value stays at ``alpha * initial``.

    Parameters
    ----------
    initial : float
        Value at step 0 (finite).
    decay_steps : int
        :math:`T`, must be > 0.
    alpha : float, default 0.0
        Final value as a fraction of ``initial``, in [0, 1].

    References
    ----------
    TensorFlow, ``tf.compat.v1.train.cosine_decay``; I. Loshchilov and
    F. Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts",
    ICLR 2017.
    """

    _name = "cosine_decay"
    _arg_names = ("initial", "decay_steps", "alpha")

    def __init__(self, initial, decay_steps, alpha=0.0):
        n = self._name
        self._initial = _real(n, "initial", initial)
        self._decay_steps = _integer(n, "decay_steps", decay_steps, gt=0)
        self._alpha = _real(n, "alpha", alpha, ge=0, le=1)

    def _compute(self, step):
        s = min(step, self._decay_steps)
        return self._initial * _cosine_factor(s / self._decay_steps, self._alpha)


class CosineRestarts(Schedule):
    r"""Cosine annealing with warm restarts (SGDR).

    Period :math:`i = 0, 1, 2, \dots` lasts :math:`T_i = T_0 \tau^i` updates
    and starts at update :math:`S_i = T_0 (1 + \tau + \dots + \tau^{i-1})`,
    i.e. :math:`S_i = i T_0` for :math:`\tau = 1` and
    :math:`S_i = T_0 (\tau^i - 1) / (\tau - 1)` otherwise.  Inside period
    :math:`i` the value is a cosine from :math:`\eta_0 \mu^i` down towards
    :math:`\alpha \eta_0 \mu^i`:

    .. math::

        f = \frac{t - S_i}{T_i}, \qquad
        \eta(t) = \eta_0 \, \mu^i \left[(1 - \alpha)\,
                  \tfrac12 (1 + \cos \pi f) + \alpha\right]

    with :math:`T_0` = ``first_decay_steps``, :math:`\tau` = ``t_mul``,
    :math:`\mu` = ``m_mul`` and :math:`\alpha` = ``alpha``.  At a restart,
    :math:`t = S_{i+1}`, the new period begins (:math:`f = 0`) and the value
    jumps back up to :math:`\eta_0 \mu^{i+1}`.

    The period index is found without looping over periods: the estimate
    :math:`i = \lfloor \log(1 + t (\tau - 1) / T_0) / \log \tau \rfloor` is
    corrected by :math:`\pm 1` until :math:`S_i \le t < S_{i+1}`.  When
    :math:`t` lies within a rounding margin of a restart, that comparison and
    :math:`f` are computed in exact integer arithmetic (``t_mul`` taken as the
    exact rational number its float represents), so restarts happen exactly
    at the right step, e.g. at steps 10, 30, 70 for ``first_decay_steps=10,
    t_mul=2`` and 10, 25 for ``t_mul=1.5``.

    Note: TensorFlow's ``cosine_decay_restarts`` applies ``alpha`` to
    ``initial`` instead of to the period's peak :math:`\eta_0 \mu^i`; both
    agree when ``m_mul == 1``.

    Parameters
    ----------
    initial : float
        Value at step 0 (finite).
    first_decay_steps : int
        :math:`T_0`, length of the first period; must be > 0.
    t_mul : float, default 2.0
        :math:`\tau`, factor by which each period is longer than the
        previous one; must be >= 1.
    m_mul : float, default 1.0
        :math:`\mu`, factor applied to the peak value at each restart;
        must be > 0.
    alpha : float, default 0.0
        Floor of each period as a fraction of its peak, in [0, 1].

    References
    ----------
    I. Loshchilov and F. Hutter, "SGDR: Stochastic Gradient Descent with Warm
    Restarts", ICLR 2017; TensorFlow, ``tf.compat.v1.train.cosine_decay_restarts``.
    """

    _name = "cosine_restarts"
    _arg_names = ("initial", "first_decay_steps", "t_mul", "m_mul", "alpha")

    def __init__(self, initial, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0):
        n = self._name
        self._initial = _real(n, "initial", initial)
        self._first_decay_steps = _integer(n, "first_decay_steps", first_decay_steps, gt=0)
        self._t_mul = _real(n, "t_mul", t_mul, ge=1)
        self._m_mul = _real(n, "m_mul", m_mul, gt=0)
        self._alpha = _real(n, "alpha", alpha, ge=0, le=1)
        # t_mul = p / q exactly, with p >= q > 0 (for the exact restart checks).
        self._p, self._q = self._t_mul.as_integer_ratio()
        self._log_tau = math.log1p(self._t_mul - 1)       # log(tau), accurate near 1

    def _starts_by(self, i, step):
        r"""Exactly whether :math:`S_i \le t`, for :math:`\tau = p/q > 1`.

        :math:`S_i = T_0 q (p^i - q^i) / (q^i (p - q))`, so
        :math:`S_i \le t \iff T_0 q (p^i - q^i) \le t (p - q) q^i`.
        """
        p, q, T0 = self._p, self._q, self._first_decay_steps
        return T0 * q * (p ** i - q ** i) <= step * (p - q) * q ** i

    def _exact_fraction(self, i, step):
        r""":math:`f = (t - S_i) / T_i` from one exact fraction of integers.

        With :math:`T_i = T_0 p^i / q^i`:
        :math:`f = (t (p - q) q^i - T_0 q (p^i - q^i)) / ((p - q) T_0 p^i)`.
        """
        p, q, T0 = self._p, self._q, self._first_decay_steps
        num = step * (p - q) * q ** i - T0 * q * (p ** i - q ** i)
        den = (p - q) * T0 * p ** i
        return num / den                                  # int / int is correctly rounded

    def _period(self, step):
        """Return ``(i, f)``: the period index and the fraction of it elapsed."""
        T0 = self._first_decay_steps
        if self._t_mul == 1.0:
            i, into = divmod(step, T0)                    # S_i = i T_0, T_i = T_0
            return i, into / T0
        tau, log_tau = self._t_mul, self._log_tau

        def start(k):                                     # S_k in floating point
            return T0 * math.expm1(k * log_tau) / (tau - 1)

        # Estimate i = floor(log(1 + t (tau - 1) / T_0) / log(tau)), then fix it
        # by +-1 until S_i <= t < S_{i+1} holds in floating point.
        i = int(math.log1p(step * (tau - 1) / T0) / log_tau)
        while True:
            lo, hi = start(i), start(i + 1)
            if i > 0 and lo > step:
                i -= 1
            elif hi <= step:
                i += 1
            else:
                break
        # S_k is accurate to ~1e-14 relative, so far from a restart the answer
        # is certain.  Within a rounding margin of one, decide exactly.
        margin = 1e-11 * (1.0 + step)
        if abs(step - lo) <= margin or abs(hi - step) <= margin:
            while i > 0 and not self._starts_by(i, step):
                i -= 1
            while self._starts_by(i + 1, step):
                i += 1
            return i, self._exact_fraction(i, step)
        return i, (step - lo) / (T0 * math.exp(i * log_tau))   # (t - S_i) / T_i

    def _compute(self, step):
        i, f = self._period(step)
        peak = _times_power(self._initial, self._m_mul, i)   # eta_0 mu^i
        return peak * _cosine_factor(f, self._alpha)


class LinearWarmup(Schedule):
    r"""Linear warm-up in front of another schedule.

    .. math::

        \eta(t) = \begin{cases}
            s_0 + \bigl(g(0) - s_0\bigr)\, t / W & t < W \\
            g(t - W) & t \ge W
        \end{cases}

    The value ramps linearly from ``start`` (:math:`s_0`) at step 0 towards
    ``schedule(0)`` (:math:`g(0)`), which it reaches at step ``warmup_steps``
    (:math:`W`); from then on the wrapped schedule runs as if it had started at
    step :math:`W`, so ``schedule`` sees the steps 0, 1, 2, ... after the
    warm-up.  ``warmup_steps=0`` means no warm-up at all.

    The hooks are forwarded: :meth:`on_validation` passes every loss to the
    wrapped schedule (during the warm-up too) if it has an ``on_validation``
    method, and :meth:`state_dict` / :meth:`load_state_dict` return / accept the
    wrapped schedule's state with every key prefixed by ``"schedule."``.

    Parameters
    ----------
    schedule : float or callable
        The schedule to run after the warm-up: a number (used as
        :func:`constant`) or any callable ``f(step) -> float``.
    warmup_steps : int
        :math:`W`, must be >= 0.
    start : float, default 0.0
        Value at step 0 (finite).

    References
    ----------
    P. Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in
    1 Hour", arXiv:1706.02677, 2017 (gradual warm-up).
    """

    _name = "linear_warmup"
    _arg_names = ("schedule", "warmup_steps", "start")
    _PREFIX = "schedule."

    def __init__(self, schedule, warmup_steps, start=0.0):
        n = self._name
        if isinstance(schedule, (bool, np.bool_)) or not (
                isinstance(schedule, numbers.Real) or callable(schedule)):
            raise _error(TypeError, n, "schedule", schedule, "schedule",
                         "a real number or a callable f(step) -> float",
                         schedule, show_type=True)
        if isinstance(schedule, numbers.Real):
            schedule = Constant(schedule)
        self._schedule = schedule
        self._warmup_steps = _integer(n, "warmup_steps", warmup_steps, ge=0)
        self._start = _real(n, "start", start)

    @property
    def schedule(self):
        """The wrapped schedule (a number given at construction is a :func:`constant`)."""
        return self._schedule

    def _compute(self, step):
        W = self._warmup_steps
        if step < W:
            target = float(self._schedule(0))
            return self._start + (target - self._start) * step / W
        return float(self._schedule(step - W))

    def on_validation(self, loss):
        """Forward ``loss`` to the wrapped schedule's ``on_validation``, if any."""
        hook = getattr(self._schedule, "on_validation", None)
        if hook is not None:
            hook(loss)

    def state_dict(self):
        """The wrapped schedule's state, keys prefixed with ``"schedule."``."""
        inner = getattr(self._schedule, "state_dict", None)
        if inner is None:
            return {}
        return {self._PREFIX + key: value for key, value in inner().items()}

    def _load_state(self, state):
        if not state:
            return
        loader = getattr(self._schedule, "load_state_dict", None)
        if loader is None:
            raise TypeError(f"{self._name}.load_state_dict: the wrapped schedule has "
                            "state_dict() but no load_state_dict()")
        loader({key[len(self._PREFIX):]: value for key, value in state.items()})


class OneCycle(Schedule):
    r"""Smith's one-cycle policy, as PyTorch's ``OneCycleLR`` (two phases).

    With :math:`\eta_\max` = ``max_value``, the schedule starts at
    :math:`\eta_\text{init} = \eta_\max / d` (``d`` = ``div_factor``) and ends
    at :math:`\eta_\min = \eta_\text{init} / d_f` (``d_f`` =
    ``final_div_factor``).  With :math:`N` = ``total_steps`` and the phase
    boundaries :math:`e_1 = p N - 1` (``p`` = ``pct_start``, computed in
    floating point as PyTorch does) and :math:`e_2 = N - 1`:

    .. math::

        \eta(t) = \begin{cases}
            A\bigl(\eta_\text{init}, \eta_\max, \; t / e_1\bigr)
                & t \le e_1 \\
            A\bigl(\eta_\max, \eta_\min, \; (t - e_1) / (e_2 - e_1)\bigr)
                & e_1 < t \le e_2
        \end{cases}

    where the annealing function is, for ``anneal='cos'`` and ``'linear'``,

    .. math::

        A_\text{cos}(a, b, x) = b + \frac{a - b}{2} (1 + \cos \pi x), \qquad
        A_\text{linear}(a, b, x) = (b - a) x + a .

    So step 0 gives :math:`\eta_\text{init}`, step :math:`e_1` (when it is an
    integer) gives :math:`\eta_\max` and step :math:`N - 1` gives
    :math:`\eta_\min`.  Steps after :math:`N - 1` return :math:`\eta_\min`
    (PyTorch raises an error instead).  When :math:`e_1 \le 0` there is no
    warm-up phase (PyTorch divides by zero for :math:`e_1 = 0`; here step 0
    then gives :math:`\eta_\max`).  Otherwise the values equal PyTorch's
    ``OneCycleLR(..., three_phase=False)`` learning rates.

    Parameters
    ----------
    max_value : float
        Peak value, > 0.
    total_steps : int
        :math:`N`, number of updates in the cycle, > 0.
    pct_start : float, default 0.3
        Fraction of the cycle spent increasing, in (0, 1).
    div_factor : float, default 25.0
        :math:`\eta_\text{init} = \eta_\max / d`, > 0.
    final_div_factor : float, default 1e4
        :math:`\eta_\min = \eta_\text{init} / d_f`, > 0.
    anneal : {'cos', 'linear'}, default 'cos'
        Shape of both phases.

    References
    ----------
    L. N. Smith and N. Topin, "Super-Convergence: Very Fast Training of Neural
    Networks Using Large Learning Rates", 2019 (arXiv:1708.07120); L. N. Smith,
    "A disciplined approach to neural network hyper-parameters: Part 1",
    arXiv:1803.09820, 2018; PyTorch, ``torch.optim.lr_scheduler.OneCycleLR``.
    """

    _name = "one_cycle"
    _arg_names = ("max_value", "total_steps", "pct_start", "div_factor",
                  "final_div_factor", "anneal")

    def __init__(self, max_value, total_steps, pct_start=0.3, div_factor=25.0,
                 final_div_factor=1e4, anneal="cos"):
        n = self._name
        self._max_value = _real(n, "max_value", max_value, gt=0)
        self._total_steps = _integer(n, "total_steps", total_steps, gt=0)
        self._pct_start = _real(n, "pct_start", pct_start, gt=0, lt=1)
        self._div_factor = _real(n, "div_factor", div_factor, gt=0)
        self._final_div_factor = _real(n, "final_div_factor", final_div_factor, gt=0)
        self._anneal = _choice(n, "anneal", anneal, ("cos", "linear"))
        self._initial_value = self._max_value / self._div_factor
        self._min_value = self._initial_value / self._final_div_factor
        self._end1 = float(self._pct_start * self._total_steps) - 1   # e_1
        self._end2 = self._total_steps - 1                            # e_2
        if not self._end2 > self._end1:  # only possible through rounding
            raise _error(ValueError, n, "pct_start", pct_start, "pct_start",
                         "small enough that pct_start * total_steps < total_steps",
                         pct_start)

    def _anneal_between(self, a, b, x):
        if self._anneal == "cos":
            return b + (a - b) / 2.0 * (math.cos(math.pi * x) + 1)   # A_cos
        return (b - a) * x + a                                       # A_linear

    def _compute(self, step):
        t = min(step, self._end2)                         # clamp after the cycle
        e1, e2 = self._end1, self._end2
        if t <= e1 and e1 > 0:                            # phase 1: up
            return self._anneal_between(self._initial_value, self._max_value, t / e1)
        return self._anneal_between(self._max_value, self._min_value,   # phase 2: down
                                    (t - e1) / (e2 - e1))


# ---------------------------------------------------------------------------
# Stateful schedule
# ---------------------------------------------------------------------------

class ReduceOnPlateau(Schedule):
    r"""Multiply the value by ``factor`` when the validation loss stops improving.

    The value does not depend on the step; it changes only through
    :meth:`on_validation`, which the training driver calls with every
    validation loss :math:`L` ('min' mode: lower is better).  With the best
    loss so far :math:`L^*` (initially :math:`+\infty`) and threshold
    :math:`\theta`, :math:`L` is an *improvement* if

    .. math::

        L < L^* - |L^*| \, \theta \quad\text{('rel')}, \qquad
        L < L^* - \theta \quad\text{('abs')}.

    For :math:`L^* \ge 0`, 'rel' is PyTorch's :math:`L < L^* (1 - \theta)`;
    for negative losses PyTorch's rule would accept a *worse* loss as an
    improvement, whereas :math:`L^* - |L^*|\theta` always demands a decrease.
    While :math:`L^* = +\infty` any finite loss is an improvement.
    Non-finite losses (NaN, :math:`\pm\infty`) never improve: they count as
    bad validations and never become :math:`L^*`.

    Each validation then follows PyTorch's ``ReduceLROnPlateau.step``:

    1. an improvement sets :math:`L^* = L` and the bad count to 0; otherwise
       the bad count grows by 1;
    2. during a cooldown (cooldown counter > 0) the counter decreases by 1 and
       the bad count is reset to 0 (bad validations are ignored);
    3. if the bad count exceeds ``patience`` the value becomes
       :math:`\max(\eta \cdot \text{factor}, \eta_\min)`, the bad count is
       reset to 0 and the cooldown counter is set to ``cooldown``.

    So the first reduction happens at the ``patience + 1``-th bad validation
    in a row.  Unlike PyTorch there is no ``eps``: a reduction is always
    applied, and once the value reaches ``min_value`` it stays there.

    The state (``value``, ``best``, ``num_bad``, ``cooldown_counter``,
    ``num_validations``) is returned by :meth:`state_dict`.

    Parameters
    ----------
    initial : float
        Starting value, finite and >= ``min_value``.
    factor : float, default 0.1
        Multiplier applied at a reduction, in (0, 1).
    patience : int, default 10
        Number of bad validations in a row tolerated before reducing, >= 0.
    min_value : float, default 0.0
        Lower bound of the value, >= 0.
    threshold : float, default 1e-4
        :math:`\theta`, >= 0.
    threshold_mode : {'rel', 'abs'}, default 'rel'
        Whether :math:`\theta` is relative to :math:`|L^*|` or absolute.
    cooldown : int, default 0
        Number of validations after a reduction during which bad validations
        are not counted, >= 0.

    References
    ----------
    PyTorch, ``torch.optim.lr_scheduler.ReduceLROnPlateau``.
    """

    _name = "reduce_on_plateau"
    _arg_names = ("initial", "factor", "patience", "min_value", "threshold",
                  "threshold_mode", "cooldown")

    def __init__(self, initial, factor=0.1, patience=10, min_value=0.0,
                 threshold=1e-4, threshold_mode="rel", cooldown=0):
        n = self._name
        self._initial = _real(n, "initial", initial, ge=0)
        self._factor = _real(n, "factor", factor, gt=0, lt=1)
        self._patience = _integer(n, "patience", patience, ge=0)
        self._min_value = _real(n, "min_value", min_value, ge=0)
        self._threshold = _real(n, "threshold", threshold, ge=0)
        self._threshold_mode = _choice(n, "threshold_mode", threshold_mode, ("rel", "abs"))
        self._cooldown = _integer(n, "cooldown", cooldown, ge=0)
        if self._min_value > self._initial:
            raise _error(ValueError, n, "min_value", min_value, "min_value",
                         f"<= initial = {self._initial!r}", min_value)
        self._value = self._initial
        self._best = math.inf
        self._num_bad = 0
        self._cooldown_counter = 0
        self._num_validations = 0

    # -- read-only views of the state ------------------------------------
    @property
    def value(self):
        """The current value (what ``schedule(step)`` returns)."""
        return self._value

    @property
    def best(self):
        """The best (lowest finite) validation loss so far; ``inf`` before any."""
        return self._best

    @property
    def num_bad(self):
        """Number of bad validations in a row (since the last improvement or reduction)."""
        return self._num_bad

    @property
    def cooldown_counter(self):
        """Validations left in the current cooldown."""
        return self._cooldown_counter

    @property
    def num_validations(self):
        """Number of validation losses received."""
        return self._num_validations

    # -- schedule ---------------------------------------------------------
    def _compute(self, step):
        return self._value

    def _is_improvement(self, loss):
        if not math.isfinite(loss):
            return False
        if math.isinf(self._best):
            return True
        if self._threshold_mode == "rel":
            return loss < self._best - abs(self._best) * self._threshold
        return loss < self._best - self._threshold

    def on_validation(self, loss):
        """Take a validation loss into account (see the class docstring)."""
        if isinstance(loss, (bool, np.bool_)):
            raise TypeError(f"{self._name}.on_validation: loss must be a real scalar; "
                            f"got {loss!r} (bool)")
        arr = np.asarray(loss)
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"{self._name}.on_validation: loss must be a real scalar; "
                            f"got {loss!r} ({type(loss).__name__})")
        if arr.shape != ():
            raise ValueError(f"{self._name}.on_validation: loss must be a scalar; "
                             f"got an array of shape {arr.shape}")
        loss = float(arr)

        self._num_validations += 1
        if self._is_improvement(loss):
            self._best = loss
            self._num_bad = 0
        else:
            self._num_bad += 1
        if self._cooldown_counter > 0:
            self._cooldown_counter -= 1
            self._num_bad = 0
        if self._num_bad > self._patience:
            self._value = max(self._value * self._factor, self._min_value)
            self._cooldown_counter = self._cooldown
            self._num_bad = 0

    # -- checkpointing ------------------------------------------------------
    def state_dict(self):
        """Return ``{'value', 'best', 'num_bad', 'cooldown_counter', 'num_validations'}``."""
        return {
            "value": self._value,
            "best": self._best,
            "num_bad": self._num_bad,
            "cooldown_counter": self._cooldown_counter,
            "num_validations": self._num_validations,
        }

    def _load_state(self, state):
        n = self._name
        value = _state_scalar(n, "value", state["value"])
        best = _state_scalar(n, "best", state["best"])
        ints = {key: _state_scalar(n, key, state[key], integer=True)
                for key in ("num_bad", "cooldown_counter", "num_validations")}
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{n}.load_state_dict: 'value' must be finite and >= 0; "
                             f"got {value!r}")
        if math.isnan(best) or best == -math.inf:
            raise ValueError(f"{n}.load_state_dict: 'best' must be a number or +inf; "
                             f"got {best!r}")
        for key, count in ints.items():
            if count < 0:
                raise ValueError(f"{n}.load_state_dict: {key!r} must be >= 0; got {count!r}")
        # Everything checked: now assign (all or nothing).
        self._value = value
        self._best = best
        self._num_bad = ints["num_bad"]
        self._cooldown_counter = ints["cooldown_counter"]
        self._num_validations = ints["num_validations"]


# The public, lowercase names used throughout npdownhill.
constant = Constant
exponential_decay = ExponentialDecay
inverse_time_decay = InverseTimeDecay
piecewise_constant = PiecewiseConstant
polynomial_decay = PolynomialDecay
cosine_decay = CosineDecay
cosine_restarts = CosineRestarts
linear_warmup = LinearWarmup
one_cycle = OneCycle
reduce_on_plateau = ReduceOnPlateau
