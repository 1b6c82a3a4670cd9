"""Schedules that shape a run in phases around a peak.

:func:`linear_warmup` puts a linear ramp-up in front of any other schedule and
:func:`one_cycle` is Smith's 1cycle policy (as PyTorch ``OneCycleLR``).
"""

import math
import numbers

import numpy as np

from .base import Schedule, _choice, _error, _integer, _real
from .decay import Constant

__all__ = ["linear_warmup", "one_cycle", "LinearWarmup", "OneCycle"]


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


# The public, lowercase names used throughout npdownhill.
linear_warmup = LinearWarmup
one_cycle = OneCycle
