"""Stateless decay schedules: the value is a function of the step alone.

:func:`constant`, :func:`exponential_decay`, :func:`inverse_time_decay`,
:func:`piecewise_constant`, :func:`polynomial_decay`, :func:`cosine_decay` and
:func:`cosine_restarts` (SGDR).
"""

import bisect
import math

from .base import Schedule, _error, _flag, _integer, _real, _sequence

__all__ = [
    "constant",
    "exponential_decay",
    "inverse_time_decay",
    "piecewise_constant",
    "polynomial_decay",
    "cosine_decay",
    "cosine_restarts",
    "Constant",
    "ExponentialDecay",
    "InverseTimeDecay",
    "PiecewiseConstant",
    "PolynomialDecay",
    "CosineDecay",
    "CosineRestarts",
]


def _times_power(scale, base, exponent):
    """``scale * base ** exponent`` for base > 0, giving +-inf instead of OverflowError."""
    try:
        return scale * base ** exponent
    except OverflowError:  # base > 1 and a huge exponent
        return 0.0 if scale == 0 else math.copysign(math.inf, scale)


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


class _TimeDecay(Schedule):
    """Shared by the decays driven by ``t / T`` (or its floor, with ``staircase``)."""

    _arg_names = ("initial", "decay_rate", "decay_steps", "staircase")
    _rate_bound = {}

    def __init__(self, initial, decay_rate, decay_steps, staircase=False):
        n = self._name
        self._initial = _real(n, "initial", initial)
        self._decay_rate = _real(n, "decay_rate", decay_rate, **self._rate_bound)
        self._decay_steps = _integer(n, "decay_steps", decay_steps, gt=0)
        self._staircase = _flag(n, "staircase", staircase)

    def _progress(self, step):
        if self._staircase:
            return step // self._decay_steps               # floor(t / T)
        return step / self._decay_steps                    # t / T


class ExponentialDecay(_TimeDecay):
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
    _rate_bound = {"gt": 0}

    def _compute(self, step):
        return _times_power(self._initial, self._decay_rate, self._progress(step))


class InverseTimeDecay(_TimeDecay):
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
    _rate_bound = {"ge": 0}

    def _compute(self, step):
        return self._initial / (1 + self._decay_rate * self._progress(step))


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


# The public, lowercase names used throughout npdownhill.
constant = Constant
exponential_decay = ExponentialDecay
inverse_time_decay = InverseTimeDecay
piecewise_constant = PiecewiseConstant
polynomial_decay = PolynomialDecay
cosine_decay = CosineDecay
cosine_restarts = CosineRestarts
