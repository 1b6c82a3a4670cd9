r"""The Adam family: Adam, AMSGrad, AdamW, Adamax, NAdam, RAdam.

All keep a first moment :math:`m` and a second statistic of the gradient
with bias corrections :math:`\mathrm{bc}_1 = 1 - \beta_1^t`,
:math:`\mathrm{bc}_2 = 1 - \beta_2^t` (:math:`t` counts updates from 1):

.. math::

    m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2

downhill's halflife spellings are accepted: ``beta1_halflife`` /
``beta2_halflife`` :math:`h` mean :math:`\beta = e^{-\ln 2 / h}` (downhill's
defaults 7 and 69 give 0.9057 and 0.9900); pycmtensor's ``b1`` / ``b2``,
torch's ``betas=(b1, b2)`` and downhill's ``rms_regularizer`` (for
``epsilon``) too.
"""

import math

import numpy as np

from . import hyper as H
from .optimizer import Optimizer
from .pipeline import ema, ema_square
from .registry import register

__all__ = ["Adam", "AMSGrad", "AdamW", "Adamax", "NAdam", "RAdam"]


def _beta(default, n):
    return H.Hyper(default, H.unit_interval, f"decay of moment {n}, in [0, 1)",
                   aliases={f"b{n}": H.identity_alias,
                            f"beta{n}_halflife": H.halflife_to_decay})


class _Moments(Optimizer):
    """Shared hyperparameters and moment updates of the Adam family."""

    hyperparameters = {
        "learning_rate": H.learning_rate(1e-3),
        "beta1": _beta(0.9, 1),
        "beta2": _beta(0.999, 2),
        "epsilon": H.Hyper(1e-8, H.nonnegative, "regularizer of the denominator (may be 0)",
                           aliases={"rms_regularizer": H.identity_alias}),
    }
    state_names = ("m", "v")
    compound_aliases = {"betas": ("beta1", "beta2")}    # torch's spelling

    def _first_moment(self, g):
        # m = b1 m + (1 - b1) g
        return ema(self.state["m"], g, self.hyper["beta1"], self._tmp)

    def _second_moment(self, g):
        # v = b2 v + (1 - b2) g^2
        return ema_square(self.state["v"], g, self.hyper["beta2"], self._tmp)

    def _divide(self, m, v, u, scale, bc2):
        r"""``u = scale * m / (sqrt(v / bc2) + eps)``, or with ``epsilon_hat``
        ``u = scale * sqrt(bc2) * m / (sqrt(v) + eps)``."""
        eps = self.hyper["epsilon"]
        if self.hyper.get("epsilon_hat"):
            np.sqrt(v, out=u)
            scale *= math.sqrt(bc2)
        else:
            np.divide(v, bc2, out=u)
            np.sqrt(u, out=u)
        u += eps
        np.divide(m, u, out=u)
        u *= scale


@register
class Adam(_Moments):
    r"""Adam: steps from bias-corrected running moments of the gradient.

    .. math::

        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        u_t &= \eta\, \frac{m_t / \mathrm{bc}_1}{\sqrt{v_t / \mathrm{bc}_2} + \epsilon}

    This is Algorithm 1 of the paper and equals torch.optim.Adam, optax,
    autograd and pycmtensor.

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`.
    learning_rate : float or schedule, default 1e-3
    beta1 : float, default 0.9
        Also ``b1`` or ``beta1_halflife``.
    beta2 : float, default 0.999
        Also ``b2`` or ``beta2_halflife``; ``betas=(beta1, beta2)`` sets both
        (torch's spelling).
    epsilon : float, default 1e-8
        Also ``rms_regularizer``; may be 0.
    epsilon_hat : bool, default False
        The "epsilon-hat" form of Lasagne, Keras and TF1,
        :math:`u_t = \eta \frac{\sqrt{\mathrm{bc}_2}}{\mathrm{bc}_1}
        \frac{m_t}{\sqrt{v_t} + \epsilon}`: the same as above with
        :math:`\epsilon` scaled by :math:`1/\sqrt{\mathrm{bc}_2}`.
    **kwargs
        The shared hyperparameters of :class:`~npdownhill.Optimizer`.

    References
    ----------
    Kingma, D. P. and Ba, J. (2015). Adam: a method for stochastic
    optimization. ICLR. arXiv:1412.6980.
    """

    name = "adam"
    summary = "Kingma & Ba Algorithm 1 (= torch); `epsilon_hat=True` = Lasagne / Keras"
    hyperparameters = {
        "epsilon_hat": H.Hyper(False, H.boolean, "Lasagne/Keras epsilon-hat form"),
    }

    def _rule(self, g, u, t, lr):
        b1, b2 = self.hyper["beta1"], self.hyper["beta2"]
        m = self._first_moment(g)
        v = self._second_moment(g)
        self._divide(m, self._denominator_source(v), u, lr / (1 - b1 ** t), 1 - b2 ** t)

    def _denominator_source(self, v):
        return v


@register
class AMSGrad(Adam):
    r"""AMSGrad: Adam with a never-decreasing second moment.

    .. math::

        \hat v_t = \max(\hat v_{t-1}, v_t), \qquad
        u_t = \eta\, \frac{m_t / \mathrm{bc}_1}{\sqrt{\hat v_t / \mathrm{bc}_2} + \epsilon}

    with :math:`m_t, v_t` as in :class:`Adam`. This equals torch's
    ``Adam(amsgrad=True)`` (and Lasagne's ``amsgrad`` with ``epsilon_hat``).

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`.
    learning_rate, beta1, beta2, epsilon, epsilon_hat
        As for :class:`Adam` (same defaults).
    **kwargs
        The shared hyperparameters of :class:`~npdownhill.Optimizer`.

    References
    ----------
    Reddi, S. J., Kale, S. and Kumar, S. (2018). On the convergence of Adam
    and beyond. ICLR.
    """

    name = "amsgrad"
    summary = "= torch `Adam(amsgrad=True)`"
    state_names = ("m", "v", "v_max")

    def _denominator_source(self, v):
        v_max = self.state["v_max"]
        np.maximum(v_max, v, out=v_max)
        return v_max


@register
class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay, 0.01 by default.

    .. math::

        p_t = p_{t-1} - u_t - \eta\, \lambda\, p_{t-1}

    with :math:`u_t` from :class:`Adam` and :math:`\lambda` = ``weight_decay``.
    This equals torch.optim.AdamW. The same ``weight_decay`` means the same
    thing on every other algorithm of npdownhill.

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`.
    learning_rate, beta1, beta2, epsilon, epsilon_hat
        As for :class:`Adam` (same defaults).
    weight_decay : float, default 0.01
        :math:`\lambda` (torch's default; optax uses 1e-4).
    **kwargs
        The shared hyperparameters of :class:`~npdownhill.Optimizer`.

    References
    ----------
    Loshchilov, I. and Hutter, F. (2019). Decoupled weight decay
    regularization. ICLR.
    """

    name = "adamw"
    summary = "= torch.optim.AdamW"
    hyperparameters = {
        "weight_decay": H.Hyper(1e-2, H.nonnegative, "decoupled weight decay factor"),
    }


@register
class Adamax(_Moments):
    r"""Adamax: Adam with an infinity-norm second statistic.

    .. math::

        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        w_t &= \max(\beta_2 w_{t-1}, |g_t|) \\
        u_t &= \frac{\eta}{\mathrm{bc}_1} \frac{m_t}{w_t + \epsilon}

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`.
    learning_rate : float or schedule, default 2e-3
        The paper's and Lasagne's default.
    beta1, beta2, epsilon
        As for :class:`Adam`.
    epsilon_in_max : bool, default False
        The Lasagne / Keras / pycmtensor form above when False. True gives
        torch.optim.Adamax and optax:
        :math:`w_t = \max(\beta_2 w_{t-1}, |g_t| + \epsilon)`,
        :math:`u_t = \frac{\eta}{\mathrm{bc}_1} \frac{m_t}{w_t}`.
    **kwargs
        The shared hyperparameters of :class:`~npdownhill.Optimizer`.

    References
    ----------
    Kingma, D. P. and Ba, J. (2015). Adam: a method for stochastic
    optimization, section 7.1. ICLR.
    """

    name = "adamax"
    summary = "`m / (u + eps)` (Lasagne); `epsilon_in_max=True` = torch"
    hyperparameters = {
        "learning_rate": H.learning_rate(2e-3),
        "epsilon_in_max": H.Hyper(False, H.boolean, "torch's form: eps inside the max"),
    }
    state_names = ("m", "w")

    def _rule(self, g, u, t, lr):
        h, tmp = self.hyper, self._tmp
        w = self.state["w"]
        m = self._first_moment(g)
        # w = max(b2 w, |g|)   (torch: max(b2 w, |g| + eps))
        np.abs(g, out=tmp)
        w *= h["beta2"]
        if h["epsilon_in_max"]:
            tmp += h["epsilon"]
            np.maximum(w, tmp, out=w)
            np.copyto(u, w)
        else:
            np.maximum(w, tmp, out=w)
            np.add(w, h["epsilon"], out=u)
        # u = lr / bc1 * m / (w [+ eps])
        np.divide(m, u, out=u)
        u *= lr / (1 - h["beta1"] ** t)


@register
class NAdam(_Moments):
    r"""NAdam: Adam with Nesterov momentum and a warming momentum schedule.

    .. math::

        \mu_t &= \beta_1 \left(1 - \tfrac12\, 0.96^{t \psi}\right), \qquad
        \Pi_t = \prod_{i \le t} \mu_i \\
        d_t &= \sqrt{v_t / \mathrm{bc}_2} + \epsilon \\
        u_t &= \eta\, \frac{1 - \mu_t}{1 - \Pi_t} \frac{g_t}{d_t}
             + \eta\, \frac{\mu_{t+1}}{1 - \Pi_t \mu_{t+1}} \frac{m_t}{d_t}

    with :math:`m_t, v_t` as in :class:`Adam` and :math:`\psi` =
    ``momentum_decay``. This equals torch.optim.NAdam.

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`.
    learning_rate : float or schedule, default 2e-3
    beta1, beta2, epsilon
        As for :class:`Adam`.
    momentum_decay : float, default 4e-3
        :math:`\psi` (torch's default, from Dozat's report).
    **kwargs
        The shared hyperparameters of :class:`~npdownhill.Optimizer`.

    References
    ----------
    Dozat, T. (2016). Incorporating Nesterov momentum into Adam. ICLR
    workshop.
    """

    name = "nadam"
    summary = "= torch.optim.NAdam"
    hyperparameters = {
        "learning_rate": H.learning_rate(2e-3),
        "momentum_decay": H.Hyper(4e-3, H.nonnegative, "psi of the momentum schedule"),
    }
    state_names = ("m", "v")

    def _state_spec(self, hyper):
        spec = super()._state_spec(hyper)
        spec["mu_product"] = np.ones((), np.float64)   # Pi_0 = 1
        return spec

    def _rule(self, g, u, t, lr):
        h, tmp = self.hyper, self._tmp
        b1, psi = h["beta1"], h["momentum_decay"]
        mu = b1 * (1 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
        product = self.state["mu_product"]
        product *= mu
        pi = float(product)
        m = self._first_moment(g)
        v = self._second_moment(g)
        # d = sqrt(v / bc2) + eps
        np.divide(v, 1 - h["beta2"] ** t, out=tmp)
        np.sqrt(tmp, out=tmp)
        tmp += h["epsilon"]
        # u = lr (1 - mu) / (1 - Pi) g / d + lr mu_next / (1 - Pi mu_next) m / d
        np.multiply(g, lr * (1 - mu) / (1 - pi), out=u)
        u /= tmp
        np.divide(m, tmp, out=tmp)
        tmp *= lr * mu_next / (1 - pi * mu_next)
        u += tmp


@register
class RAdam(_Moments):
    r"""RAdam: Adam whose adaptive step is switched on once its variance is tractable.

    .. math::

        \rho_\infty &= \frac{2}{1 - \beta_2} - 1, \qquad
        \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{\mathrm{bc}_2} \\
        u_t &= \begin{cases}
            \eta\, r_t\, \frac{m_t}{\mathrm{bc}_1}
                \frac{\sqrt{\mathrm{bc}_2}}{\sqrt{v_t} + \epsilon} & \rho_t > 5 \\
            \eta\, \frac{m_t}{\mathrm{bc}_1} & \text{otherwise}
        \end{cases} \\
        r_t &= \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\rho_\infty}
                          {(\rho_\infty - 4)(\rho_\infty - 2)\rho_t}}

    with :math:`m_t, v_t` as in :class:`Adam`. This equals torch.optim.RAdam
    (note :math:`\epsilon` is added to :math:`\sqrt{v_t}`, not to
    :math:`\sqrt{v_t / \mathrm{bc}_2}`). With the default :math:`\beta_2` the
    first five updates are plain momentum SGD.

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`.
    learning_rate : float or schedule, default 1e-3
    beta1, beta2, epsilon
        As for :class:`Adam`.
    **kwargs
        The shared hyperparameters of :class:`~npdownhill.Optimizer`.

    References
    ----------
    Liu, L., Jiang, H., He, P., Chen, W., Liu, X., Gao, J. and Han, J.
    (2020). On the variance of the adaptive learning rate and beyond. ICLR.
    """

    name = "radam"
    summary = "= torch.optim.RAdam"

    def _rule(self, g, u, t, lr):
        h = self.hyper
        b1, b2 = h["beta1"], h["beta2"]
        m = self._first_moment(g)
        v = self._second_moment(g)
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * t * b2 ** t / bc2
        if rho_t > 5:
            rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                             / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            # u = lr r m / bc1 * sqrt(bc2) / (sqrt(v) + eps)
            np.sqrt(v, out=u)
            u += h["epsilon"]
            np.divide(m, u, out=u)
            u *= lr * rect * math.sqrt(bc2) / bc1
        else:
            # u = lr m / bc1
            np.multiply(m, lr / bc1, out=u)
