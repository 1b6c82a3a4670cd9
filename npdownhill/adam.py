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
from .pipeline import adam_constants, adam_step, ema
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

    nonfinite_spreads = True

    def _moments(self, *more):
        """``b1, 1 - b1, b2, 1 - b2`` and ``more``, as the kernel's 0-d constants."""
        b1, b2 = self._hyper["beta1"], self._hyper["beta2"]
        return self._constants(b1, 1 - b1, b2, 1 - b2, *more)

    @staticmethod
    def _update_moments(g, tmp, m, m_new, v, v_new, b1, a1, b2, a2):
        """``m = b1 m + (1 - b1) g``;  ``v = b2 v + (1 - b2) g^2`` (as :func:`ema` and
        :func:`~npdownhill.pipeline.ema_square` compute them), into the new state."""
        np.multiply(g, a1, tmp)
        np.add(np.multiply(m, b1, m_new), tmp, m_new)
        np.multiply(np.square(g, tmp), a2, tmp)
        np.add(np.multiply(v, b2, v_new), tmp, v_new)

    def _adam_constants(self, t, lr):
        """Adam's constants of update ``t``: ``b1, 1 - b1, b2, 1 - b2, eps, step`` for
        :func:`~npdownhill.pipeline.adam_step` (see
        :func:`~npdownhill.pipeline.adam_constants`)."""
        h = self._hyper
        b1, b2 = h["beta1"], h["beta2"]
        eps, step = adam_constants(lr, h["epsilon"], 1 - b1 ** t, 1 - b2 ** t,
                                   h.get("epsilon_hat", False))
        return self._constants(b1, 1 - b1, b2, 1 - b2, eps, step)


@register
class Adam(_Moments):
    r"""Adam: steps from bias-corrected running moments of the gradient.

    .. math::

        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        u_t &= \eta\, \frac{m_t / \mathrm{bc}_1}{\sqrt{v_t / \mathrm{bc}_2} + \epsilon}

    This is Algorithm 1 of the paper and equals torch.optim.Adam, optax,
    autograd and pycmtensor. It is computed as
    :math:`u_t = \eta \frac{\sqrt{\mathrm{bc}_2}}{\mathrm{bc}_1}
    \frac{m_t}{\sqrt{v_t} + \epsilon \sqrt{\mathrm{bc}_2}}`, the same up to
    rounding with one pass over the state fewer
    (:func:`~npdownhill.pipeline.adam_constants`).

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

    def _rule(self, t, lr, new):
        b1, a1, b2, a2, eps, step = self._adam_constants(t, lr)

        def adam(g, u, tmp, m, m_new, v, v_new):
            # m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2   (as ema and ema_square)
            np.multiply(g, a1, tmp)
            np.add(np.multiply(m, b1, m_new), tmp, m_new)
            np.multiply(np.square(g, tmp), a2, tmp)
            np.add(np.multiply(v, b2, v_new), tmp, v_new)
            # u = -lr / bc1 * m / (sqrt(v / bc2) + eps), as -lr sqrt(bc2) / bc1 * m /
            # (sqrt(v) + eps sqrt(bc2)) (pipeline.adam_constants)
            adam_step(m_new, v_new, u, tmp, eps, step)

        return adam


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

    def _rule(self, t, lr, new):
        b1, a1, b2, a2, eps, step = self._adam_constants(t, lr)
        moments = self._update_moments

        def amsgrad(g, u, tmp, m, m_new, v, v_new, v_max, v_max_new):
            moments(g, tmp, m, m_new, v, v_new, b1, a1, b2, a2)
            # v_max = max(v_max, v);  u = -lr / bc1 * m / (sqrt(v_max / bc2) + eps)
            # (as Adam computes it)
            np.maximum(v_max, v_new, out=v_max_new)
            adam_step(m_new, v_max_new, u, tmp, eps, step)

        return amsgrad


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
        "weight_decay": H.Hyper(1e-2, H.decay_spec, "decoupled weight decay factor, or "
                                "{leaf name or pattern: factor} (others 0)"),
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

    def _rule(self, t, lr, new):
        h = self._hyper
        in_max = h["epsilon_in_max"]
        b1, a1, b2, _, eps, step = self._moments(h["epsilon"], -(lr / (1 - h["beta1"] ** t)))

        def adamax(g, u, tmp, m, m_new, w, w_new):
            ema(m, g, b1, tmp, m_new, a1)
            # w = max(b2 w, |g|)   (torch: max(b2 w, |g| + eps))
            np.abs(g, tmp)
            np.multiply(w, b2, w_new)
            if in_max:
                np.add(tmp, eps, tmp)
                np.maximum(w_new, tmp, out=w_new)
                np.divide(m_new, w_new, u)
            else:
                np.maximum(w_new, tmp, out=w_new)
                np.add(w_new, eps, u)
                np.divide(m_new, u, u)
            # u = -lr / bc1 * m / (w [+ eps])
            np.multiply(u, step, u)

        return adamax


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

    def _rule(self, t, lr, new):
        h = self._hyper
        b1, b2, eps, psi = h["beta1"], h["beta2"], h["epsilon"], h["momentum_decay"]
        mu = b1 * (1 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
        # Pi_t = Pi_{t-1} mu_t, into the new state
        pi = float(np.multiply(self.state["mu_product"], mu, new["mu_product"]))
        b1, a1, b2, a2, bc2, eps, step_g, step_m = self._moments(
            1 - b2 ** t, eps, -(lr * (1 - mu) / (1 - pi)), -(lr * mu_next / (1 - pi * mu_next)))
        moments = self._update_moments

        def nadam(g, u, tmp, m, m_new, v, v_new):
            moments(g, tmp, m, m_new, v, v_new, b1, a1, b2, a2)
            # d = sqrt(v / bc2) + eps
            np.divide(v_new, bc2, tmp)
            np.sqrt(tmp, tmp)
            np.add(tmp, eps, tmp)
            # u = -lr (1 - mu) / (1 - Pi) g / d - lr mu_next / (1 - Pi mu_next) m / d
            np.multiply(g, step_g, u)
            np.divide(u, tmp, u)
            np.divide(m_new, tmp, tmp)
            np.multiply(tmp, step_m, tmp)
            np.add(u, tmp, u)

        return nadam


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

    def _rule(self, t, lr, new):
        h = self._hyper
        b1, b2, eps = h["beta1"], h["beta2"], h["epsilon"]
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * t * b2 ** t / bc2
        adaptive = rho_t > 5
        if adaptive:
            rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                             / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            step = -(lr * rect * math.sqrt(bc2) / bc1)
        else:
            step = -(lr / bc1)
        b1, a1, b2, a2, eps, step = self._moments(eps, step)
        moments = self._update_moments

        def radam(g, u, tmp, m, m_new, v, v_new):
            moments(g, tmp, m, m_new, v, v_new, b1, a1, b2, a2)
            if adaptive:
                # u = -lr r m / bc1 * sqrt(bc2) / (sqrt(v) + eps)   (the epsilon-hat form)
                adam_step(m_new, v_new, u, tmp, eps, step)
            else:
                # u = -lr m / bc1
                np.multiply(m_new, step, u)

        return radam
