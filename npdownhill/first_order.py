r"""First-order rules without per-parameter scaling: SGD, Momentum, NAG.

All three share one rule, :math:`u = \eta\, g`; they differ only in the
defaults of the shared ``momentum`` / ``nesterov`` hyperparameters, which the
base class applies to every algorithm (see :class:`~npdownhill.Optimizer`).
"""

import numpy as np

from . import hyper as H
from .optimizer import Optimizer
from .registry import register

__all__ = ["SGD", "Momentum", "NAG"]


@register
class SGD(Optimizer):
    r"""Stochastic gradient descent.

    .. math::

        u_t = \eta\, g_t, \qquad p_t = p_{t-1} - u_t

    With ``momentum`` :math:`\mu > 0` the step becomes
    :math:`v_t = \mu v_{t-1} - u_t,\ p_t = p_{t-1} + v_t` (classical) or
    :math:`p_t = p_{t-1} + \mu v_t - u_t` with ``nesterov=True``.

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`.
    learning_rate : float or schedule, default 0.01
        :math:`\eta`. (torch.optim.SGD defaults to 1e-3, Keras to 0.01;
        Lasagne and downhill's SGD require it.)
    momentum : float or schedule, default 0
    nesterov : bool, default False
    **kwargs
        The shared hyperparameters of :class:`~npdownhill.Optimizer`.

    Notes
    -----
    torch writes momentum as :math:`b = \mu b + g,\ p = p - \eta b`; with a
    constant learning rate that is the same sequence of parameters as the
    classical form used here (:math:`v = -\eta b`). They differ when the
    learning rate changes: here a new rate affects only new gradients.
    autograd's ``sgd`` damps, :math:`v = \mu v - (1 - \mu) g`; that is this
    rule with :math:`\eta` scaled by :math:`1 - \mu`.

    References
    ----------
    Robbins, H. and Monro, S. (1951). A stochastic approximation method.
    Annals of Mathematical Statistics 22(3), 400-407.
    """

    name = "sgd"
    summary = "`u = lr g`"
    hyperparameters = {
        "learning_rate": H.learning_rate(1e-2),
    }

    nonfinite_spreads = True

    def _rule(self, t, lr, new):
        step, = self._constants(-lr)

        def sgd(g, u, tmp):
            # u = -lr g
            np.multiply(g, step, u)

        return sgd


@register
class Momentum(SGD):
    r"""SGD with classical (or Nesterov) momentum, 0.9 by default.

    .. math::

        v_t = \mu v_{t-1} - \eta g_t, \qquad p_t = p_{t-1} + v_t

    and with ``nesterov=True``, :math:`p_t = p_{t-1} + \mu v_t - \eta g_t`.

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`.
    learning_rate : float or schedule, default 0.01
    momentum : float or schedule, default 0.9
        :math:`\mu` (Lasagne's ``momentum`` default).
    nesterov : bool, default False
    **kwargs
        The shared hyperparameters of :class:`~npdownhill.Optimizer`.

    References
    ----------
    Polyak, B. T. (1964). Some methods of speeding up the convergence of
    iteration methods. USSR Computational Mathematics and Mathematical
    Physics 4(5), 1-17.

    Sutskever, I., Martens, J., Dahl, G. and Hinton, G. (2013). On the
    importance of initialization and momentum in deep learning. ICML.
    """

    name = "momentum"
    summary = "classical momentum (`nesterov` option)"
    hyperparameters = {
        "momentum": H.Hyper(0.9, H.unit_interval, "momentum factor mu in [0, 1) (or a schedule)",
                            schedulable=True),
    }


@register
class NAG(Momentum):
    r"""Nesterov's accelerated gradient: SGD with Nesterov momentum, 0.9 by default.

    .. math::

        v_t = \mu v_{t-1} - \eta g_t, \qquad p_t = p_{t-1} + \mu v_t - \eta g_t

    This is the reformulation that evaluates the gradient at the current
    parameters (Bengio et al. 2013; Lasagne's ``apply_nesterov_momentum``,
    torch's ``SGD(nesterov=True)``, Keras). downhill's NAG kept the applied
    step as its velocity, :math:`v_t = \mu^2 v_{t-1} - (1 + \mu) u_t`, which
    is a different recursion.

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`.
    learning_rate : float or schedule, default 0.01
    momentum : float or schedule, default 0.9
    nesterov : bool
        Always True; passing ``nesterov=False`` is an error.
    **kwargs
        The shared hyperparameters of :class:`~npdownhill.Optimizer`.

    References
    ----------
    Nesterov, Y. (1983). A method of solving a convex programming problem
    with convergence rate O(1/k^2). Soviet Mathematics Doklady 27, 372-376.

    Bengio, Y., Boulanger-Lewandowski, N. and Pascanu, R. (2013). Advances
    in optimizing recurrent networks. ICASSP.
    """

    name = "nag"
    summary = "Nesterov momentum (Lasagne / torch form)"
    hyperparameters = {
        "nesterov": H.Hyper(True, H.boolean, "always True for NAG"),
    }

    def _check_hyper(self, call, hyper):
        super()._check_hyper(call, hyper)
        if not hyper["nesterov"]:
            raise ValueError(f"{call}(nesterov=False): NAG always uses Nesterov momentum; "
                             "use Momentum for the classical form")
