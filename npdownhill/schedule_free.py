r"""Schedule-free rules: ScheduleFreeSGD and ScheduleFreeAdamW (Defazio et al. 2024).

Both keep two sequences besides the params: the base iterate :math:`z`,
moved by the base rule's steps, and the average :math:`x`, a weighted mean
of the :math:`z`. Gradients are taken at the interpolation
:math:`y = (1 - \beta_1) z + \beta_1 x`, which is what the user's arrays
hold while training; :math:`x` is what a run validates, keeps as the best,
checkpoints and leaves in the arrays at the end (the optimizer's
*evaluation params*, :meth:`~npdownhill.Optimizer.evaluation_params`).
With :math:`\eta_t` the learning rate of update :math:`t` (from 1), linear
warm-up included, and :math:`d_t` the base rule's direction:

.. math::

    z_t &= z_{t-1} - \eta_t\, (d_t + \lambda\, y_{t-1}) \\
    c_t &= \frac{\bar\eta_t^{\,r}}{\sum_{i \le t} \bar\eta_i^{\,r}}, \qquad
           \bar\eta_t = \max_{i \le t} \eta_i \\
    x_t &= (1 - c_t)\, x_{t-1} + c_t\, z_t \\
    y_t &= (1 - \beta_1)\, z_t + \beta_1\, x_t

starting from :math:`z_0 = x_0 = y_0` the params at the first update
(:math:`c_t = 0` while every :math:`\eta_i` so far is 0). :math:`\lambda` is
the shared ``weight_decay``, applied at :math:`y` inside the rule (the
engine's decoupled decay stage is off), and :math:`r` is
``weight_lr_power``. This is ``optax.contrib.schedule_free`` wrapped around
SGD or RMS scaling, as ``schedule_free_sgd`` / ``schedule_free_adamw`` build
it.
"""

import numpy as np

from . import hyper as H
from .optimizer import Optimizer
from .registry import register

__all__ = ["ScheduleFreeSGD", "ScheduleFreeAdamW"]


def _interpolation(call, name, value):
    return H.number(call, name, value, low=0, high=1, low_open=True)


def _steps(call, name, value):
    return H.number(call, name, value, low=0, integer=True)


class _ScheduleFree(Optimizer):
    """The schedule-free machinery; subclasses give the base direction ``d``."""

    hyperparameters = {
        "beta1": H.Hyper(0.9, _interpolation, "interpolation y = (1 - beta1) z + beta1 x, in (0, 1]",
                         aliases={"b1": H.identity_alias}),
        "warmup_steps": H.Hyper(0, _steps, "linear warm-up of the learning rate over this many "
                                           "updates; 0 = none"),
        "weight_lr_power": H.Hyper(2.0, H.nonnegative, "the average weighs z_t by max lr^power"),
    }
    state_names = ("z", "x")
    param_copies = ("z", "x")
    own_evaluation_params = True
    own_weight_decay = True

    def _check_hyper(self, call, hyper):
        super()._check_hyper(call, hyper)
        name = type(self).__name__
        mu = hyper["momentum"]
        if callable(mu) or mu != 0 or hyper["nesterov"]:
            given = "nesterov=True" if hyper["nesterov"] else f"momentum={mu!r}"
            raise ValueError(f"{call}({given}): {name} takes no momentum: the interpolation "
                             "beta1 between z and the average x takes its place")
        if hyper["frozen"] and hyper["weight_decay"]:
            raise ValueError(f"{call}(frozen={hyper['frozen']!r}, weight_decay="
                             f"{hyper['weight_decay']!r}): {name} applies weight decay inside "
                             "its z sequence, which would move the frozen leaves' average; "
                             "freeze leaves without weight decay")
        if isinstance(hyper["weight_decay"], dict):
            raise ValueError(f"{call}(weight_decay={hyper['weight_decay']!r}): {name} applies "
                             "one weight decay inside its z sequence; per-leaf decay (a dict) "
                             "is not supported: give one number")
        if hyper["learning_rate_multipliers"]:
            raise ValueError(f"{call}(learning_rate_multipliers="
                             f"{hyper['learning_rate_multipliers']!r}): {name} moves the params "
                             "by interpolating z and its average x, both advanced at the full "
                             "rate; scaling the step afterwards would break that interpolation, "
                             "so per-leaf rates are not supported")

    def _state_spec(self, hyper):
        spec = super()._state_spec(hyper)
        spec["weight_sum"] = np.zeros((), np.float64)    # sum of max lr^power so far
        spec["max_lr"] = np.zeros((), np.float64)        # the largest learning rate so far
        return spec

    def _evaluation_flat(self):
        return self.state["x"] if int(self._updates) else None

    def _schedule_free(self, t, lr, new):
        """The constants of update ``t`` and the kernel's wrapper for the first update.

        Returns ``(lr_t, c_t, first)``: ``first(kernel)`` is the kernel to use,
        which at the first update reads ``z = x = y`` from the new state
        buffers, filled with the params here (the old ones are left as they
        are, so that a refused update changes nothing).
        """
        h = self._hyper
        warm = h["warmup_steps"]
        lr_t = lr * min(1.0, t / warm) if warm else lr
        max_lr = max(float(self.state["max_lr"]), lr_t)
        weight = max_lr ** h["weight_lr_power"]
        total = float(self.state["weight_sum"]) + weight
        c = weight / total if total > 0 else 0.0
        new["max_lr"][()] = max_lr
        new["weight_sum"][()] = total
        if t != 1:
            return lr_t, c, lambda kernel: kernel
        self.layout.read(new["z"])
        np.copyto(new["x"], new["z"])

        def first(kernel):
            def start(g, u, tmp, z, z_new, x, x_new, *rest):
                kernel(g, u, tmp, z_new, z_new, x_new, x_new, *rest)
            return start

        return lr_t, c, first

    @staticmethod
    def _decay(x, z, tmp, one_minus_b_over_b, b_wd):
        """``tmp = wd y = wd (beta1 x + (1 - beta1) z)``."""
        np.multiply(z, one_minus_b_over_b, tmp)
        np.add(tmp, x, tmp)
        np.multiply(tmp, b_wd, tmp)

    @staticmethod
    def _average(u, tmp, z, z_new, x, x_new, c, b, neg_one_minus_b):
        """From ``u = lr_t (d + wd y)``: the new ``z`` and ``x``, and in ``u`` the step
        ``y_t - y_{t-1} = beta1 c (z_t - x_{t-1}) - (1 - beta1) lr_t (d + wd y)``.
        Safe when ``z is z_new`` and ``x is x_new``."""
        np.subtract(z, u, z_new)              # z = z - lr (d + wd y)
        np.subtract(z_new, x, tmp)
        np.multiply(tmp, c, tmp)              # c (z - x)
        np.add(x, tmp, x_new)                 # x = x + c (z - x)
        np.multiply(tmp, b, tmp)
        np.multiply(u, neg_one_minus_b, u)
        np.add(u, tmp, u)                     # step = y_new - y


@register
class ScheduleFreeSGD(_ScheduleFree):
    r"""Schedule-free SGD: no learning-rate schedule needed; evaluates the average ``x``.

    .. math::

        z_t &= z_{t-1} - \eta_t\, (g_t + \lambda\, y_{t-1}) \\
        x_t &= (1 - c_t)\, x_{t-1} + c_t\, z_t, \qquad
        c_t = \bar\eta_t^{\,r} / \textstyle\sum_{i \le t} \bar\eta_i^{\,r} \\
        y_t &= (1 - \beta_1)\, z_t + \beta_1\, x_t

    with :math:`g_t` the gradient at :math:`y_{t-1}` (the user's arrays),
    :math:`\eta_t = \eta \min(1, t / w)` over ``warmup_steps`` :math:`w`,
    :math:`\bar\eta_t` the largest :math:`\eta_i` so far; see
    :mod:`npdownhill.schedule_free`. Validation, the best params,
    checkpoints and the arrays at the end of a run hold :math:`x`
    (:meth:`~npdownhill.Optimizer.evaluation_params`).

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`.
    learning_rate : float or schedule, default 1.0
        :math:`\eta` (optax's and the reference implementation's default);
        a schedule multiplies the warm-up.
    beta1 : float, default 0.9
        :math:`\beta_1` in (0, 1] (also ``b1``); 1 gives primal averaging.
    warmup_steps : int, default 0
        Linear warm-up over this many updates.
    weight_lr_power : float, default 2.0
        :math:`r`.
    weight_decay : float, default 0
        :math:`\lambda`, taken at :math:`y` and scaled by the learning rate.
    **kwargs
        The shared hyperparameters of :class:`~npdownhill.Optimizer`;
        ``momentum``, ``lookahead`` and ``average`` are refused (the
        interpolation and the average take their place), and so are
        ``frozen`` leaves with weight decay.

    Notes
    -----
    Equal to ``optax.contrib.schedule_free_sgd`` without warm-up. With
    warm-up, optax's shortcut steps :math:`z` with the rate of the update
    before (its SGD counts from 0 while the wrapper counts from 1); here one
    :math:`\eta_t` serves both, as in the paper and its PyTorch code
    (``optax.contrib.schedule_free`` around ``optax.sgd`` with a schedule
    shifted by one matches this). optax derives :math:`x` from :math:`y` and
    :math:`z`; here :math:`x` is kept and :math:`y` follows from the steps.
    The reported ``learning_rate`` is :math:`\eta` before warm-up.

    References
    ----------
    Defazio, A., Yang, X. A., Mehta, H., Mishchenko, K., Khaled, A. and
    Cutkosky, A. (2024). The road less scheduled. NeurIPS. arXiv:2405.15682.
    """

    name = "schedule_free_sgd"
    summary = "schedule-free SGD (= optax.contrib); evaluates the average x"
    hyperparameters = {
        "learning_rate": H.learning_rate(1.0),
    }

    def _rule(self, t, lr, new):
        h = self._hyper
        lr_t, c, first = self._schedule_free(t, lr, new)
        b, wd = h["beta1"], h["weight_decay"]
        lr_t, c, b, one_minus_b_over_b, b_wd, neg = self._constants(
            lr_t, c, b, (1 - b) / b, b * wd, -(1 - b))
        decay, average = self._decay, self._average

        def schedule_free_sgd(g, u, tmp, z, z_new, x, x_new):
            # u = lr_t (g + wd y)
            if wd:
                decay(x, z, tmp, one_minus_b_over_b, b_wd)
                np.add(g, tmp, u)
                np.multiply(u, lr_t, u)
            else:
                np.multiply(g, lr_t, u)
            average(u, tmp, z, z_new, x, x_new, c, b, neg)

        return first(schedule_free_sgd)


@register
class ScheduleFreeAdamW(_ScheduleFree):
    r"""Schedule-free AdamW: RMS-scaled steps on ``z``; evaluates the average ``x``.

    .. math::

        v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
        z_t &= z_{t-1} - \eta_t \left(\frac{g_t}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}
               + \lambda\, y_{t-1}\right) \\
        x_t &= (1 - c_t)\, x_{t-1} + c_t\, z_t, \qquad
        c_t = \bar\eta_t^{\,r} / \textstyle\sum_{i \le t} \bar\eta_i^{\,r} \\
        y_t &= (1 - \beta_1)\, z_t + \beta_1\, x_t

    with :math:`g_t` the gradient at :math:`y_{t-1}` (the user's arrays) and
    :math:`\eta_t`, :math:`\bar\eta_t` as for :class:`ScheduleFreeSGD`.

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`.
    learning_rate : float or schedule, default 0.0025
        :math:`\eta` (optax's and the reference implementation's default).
    beta1 : float, default 0.9
        :math:`\beta_1` in (0, 1] (also ``b1``): the interpolation, not a
        first moment (there is none).
    beta2 : float, default 0.999
        Decay of the second moment (also ``b2``).
    epsilon : float, default 1e-8
        Outside the square root.
    warmup_steps : int, default 0
    weight_lr_power : float, default 2.0
    weight_decay : float, default 0
        :math:`\lambda`, taken at :math:`y` and scaled by the learning rate.
    **kwargs
        As for :class:`ScheduleFreeSGD`.

    Notes
    -----
    Equal to ``optax.contrib.schedule_free_adamw`` without warm-up (with
    warm-up see :class:`ScheduleFreeSGD`). The reference PyTorch code
    (``schedulefree.AdamWScheduleFree``) instead puts the bias correction
    into the learning rate, :math:`\eta_t \sqrt{1 - \beta_2^t}` with
    :math:`\epsilon` added to :math:`\sqrt{v_t}`, which also changes the
    weights :math:`c_t`.

    References
    ----------
    Defazio, A., Yang, X. A., Mehta, H., Mishchenko, K., Khaled, A. and
    Cutkosky, A. (2024). The road less scheduled. NeurIPS. arXiv:2405.15682.
    """

    name = "schedule_free_adamw"
    summary = "schedule-free AdamW (= optax.contrib); evaluates the average x"
    hyperparameters = {
        "learning_rate": H.learning_rate(2.5e-3),
        "beta2": H.Hyper(0.999, H.unit_interval, "decay of the second moment, in [0, 1)",
                         aliases={"b2": H.identity_alias}),
        "epsilon": H.Hyper(1e-8, H.nonnegative, "added to the root of the second moment"),
    }
    state_names = ("z", "x", "v")

    def _rule(self, t, lr, new):
        h = self._hyper
        lr_t, c, first = self._schedule_free(t, lr, new)
        b, wd, b2 = h["beta1"], h["weight_decay"], h["beta2"]
        lr_t, c, b, one_minus_b_over_b, b_wd, neg, b2, a2, bc2, eps = self._constants(
            lr_t, c, b, (1 - b) / b, b * wd, -(1 - b), b2, 1 - b2, 1 - b2 ** t, h["epsilon"])
        decay, average = self._decay, self._average

        def schedule_free_adamw(g, u, tmp, z, z_new, x, x_new, v, v_new):
            # v = b2 v + (1 - b2) g^2
            np.multiply(np.square(g, tmp), a2, tmp)
            np.add(np.multiply(v, b2, v_new), tmp, v_new)
            # u = lr_t (g / (sqrt(v / bc2) + eps) + wd y)
            np.sqrt(np.divide(v_new, bc2, u), u)
            np.add(u, eps, u)
            np.divide(g, u, u)
            if wd:
                decay(x, z, tmp, one_minus_b_over_b, b_wd)
                np.add(u, tmp, u)
            np.multiply(u, lr_t, u)
            average(u, tmp, z, z_new, x, x_new, c, b, neg)

        return first(schedule_free_adamw)
