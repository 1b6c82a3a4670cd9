r"""Per-parameter adaptive rules: RMSProp, RProp, ADAGRAD, ADADELTA, ESGD.

Each rule writes :math:`u_t`, the amount it would subtract from the
parameters, into a flat buffer with in-place NumPy operations; the shared
pipeline of :class:`~npdownhill.Optimizer` adds momentum, weight decay and
the step itself. The Adam family lives in :mod:`npdownhill.adam`.
"""

import numpy as np
from autograd import make_hvp, make_vjp
from autograd.extend import vspace
from autograd.tracer import getval

from . import hyper as H
from .diagnostics import explain_trace_error
from .monitors import check_loss_value
from .optimizer import Optimizer
from .pipeline import adam_constants, adam_step, ema, ema_square, rms_step
from .registry import register

__all__ = ["RMSProp", "RProp", "ADAGRAD", "AdaGrad", "ADADELTA", "Adadelta", "ESGD"]

_lr = H.learning_rate
_EPS_ALIAS = {"rms_regularizer": H.identity_alias}
_RHO_ALIAS = H.decay_aliases("rms")


def _rho(default, doc="decay of the moving average of g^2, in [0, 1)"):
    return H.Hyper(default, H.unit_interval, doc, aliases=_RHO_ALIAS)


def _eps(default):
    return H.Hyper(default, H.nonnegative, "regularizer of the denominator (may be 0)",
                   aliases=_EPS_ALIAS)


@register
class RMSProp(Optimizer):
    r"""RMSProp: divide the gradient by a running RMS of recent gradients.

    .. math::

        r_t &= \rho\, r_{t-1} + (1 - \rho)\, g_t^2 \\
        u_t &= \eta\, \frac{g_t}{\sqrt{r_t + \epsilon}}

    With ``centered=True`` (Graves 2013, downhill's form) the denominator uses
    the variance instead of the second moment:

    .. math::

        f_t = \rho\, f_{t-1} + (1 - \rho)\, g_t, \qquad
        u_t = \eta\, \frac{g_t}{\sqrt{r_t - f_t^2 + \epsilon}}

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`.
    learning_rate : float or schedule, default 1e-3
        :math:`\eta` (pycmtensor's default and Hinton's lecture; Lasagne's
        ``rmsprop`` defaults to 1.0).
    rho : float, default 0.9
        Decay :math:`\rho` (Lasagne, pycmtensor); downhill's ``rms_halflife``
        ``h`` gives :math:`\rho = e^{-\ln 2 / h}`.
    epsilon : float, default 1e-6
        :math:`\epsilon` (Lasagne); downhill calls it ``rms_regularizer``.
    centered : bool, default False
    epsilon_inside : bool, default True
        :math:`\epsilon` under the square root (Lasagne, Keras, pycmtensor,
        TF1). ``False`` puts it outside, :math:`g / (\sqrt{r} + \epsilon)`,
        which is torch.optim.RMSprop (with ``alpha`` = ``rho``); its
        ``momentum`` option equals the shared ``momentum`` here.
    **kwargs
        The shared hyperparameters of :class:`~npdownhill.Optimizer`.

    Notes
    -----
    autograd's ``rmsprop`` starts :math:`r_0` at ones, not zeros. In the
    centered form :math:`r_t - f_t^2` is clamped at 0: with a nearly constant
    gradient rounding can make it slightly negative, which would give NaN
    (torch does not clamp).

    References
    ----------
    Tieleman, T. and Hinton, G. (2012). Lecture 6.5 - rmsprop. COURSERA:
    Neural Networks for Machine Learning.

    Graves, A. (2013). Generating sequences with recurrent neural networks.
    arXiv:1308.0850.
    """

    name = "rmsprop"
    summary = "eps inside the root (Lasagne); `epsilon_inside=False` = torch; `centered=True` = Graves / downhill"
    hyperparameters = {
        "learning_rate": _lr(1e-3),
        "rho": _rho(0.9),
        "epsilon": _eps(1e-6),
        "centered": H.Hyper(False, H.boolean, "divide by the variance (Graves' form)"),
        "epsilon_inside": H.Hyper(True, H.boolean, "epsilon under the square root (False: torch's form)"),
    }
    state_names = ("r",)

    def _state_spec(self, hyper):
        spec = super()._state_spec(hyper)
        if hyper["centered"]:
            spec["f"] = 0.0          # the running mean of g, only for the centered form
        return spec

    nonfinite_spreads = True

    def _rule(self, t, lr, new):
        h = self._hyper
        inside = h["epsilon_inside"]
        rho, eps, step = h["rho"], h["epsilon"], -lr

        def scale(g, u, tmp, second):
            # u = -lr g / sqrt(r + eps)   or   -lr g / (sqrt(r) + eps)
            rms_step(g, second, u, tmp, eps, step, inside)

        rho, a, eps, step = self._constants(rho, 1 - rho, eps, step)

        def rmsprop(g, u, tmp, r, r_new):
            # r = rho r + (1 - rho) g^2
            scale(g, u, tmp, ema_square(r, g, rho, tmp, r_new, a))

        def centered(g, u, tmp, r, r_new, f, f_new):
            ema_square(r, g, rho, tmp, r_new, a)
            # f = rho f + (1 - rho) g;  second moment -> variance r - f^2
            ema(f, g, rho, tmp, f_new, a)
            np.square(f_new, tmp)
            np.subtract(r_new, tmp, tmp)
            np.maximum(tmp, 0, out=tmp)   # a variance: rounding must not make it negative
            scale(g, u, tmp, tmp)

        return centered if h["centered"] else rmsprop


def _initial_step(call, name, value):
    if callable(value):
        raise TypeError(f"{call}({name}={value!r}): RProp's {name} is the initial step size, "
                        "used once, so a schedule cannot take effect; pass a number (and "
                        "change it later with set_hyperparameters if you need to)")
    return H.nonnegative(call, name, value)


@register
class RProp(Optimizer):
    r"""Resilient backpropagation (iRprop-): per-element step sizes driven by sign changes.

    .. math::

        s_t &= \begin{cases}
            \min(s_{t-1}\,\eta^+, s_{\max}) & g_t\, g_{t-1} > 0 \\
            \max(s_{t-1}\,\eta^-, s_{\min}) & g_t\, g_{t-1} < 0 \\
            s_{t-1} & \text{otherwise}
        \end{cases} \\
        g_t &\leftarrow 0 \quad \text{where } g_t\, g_{t-1} < 0 \\
        u_t &= s_t \operatorname{sign}(g_t)

    The (possibly zeroed) gradient is stored as :math:`g_{t-1}` for the next
    update, so after a sign flip the element does not move and the next
    update treats it as fresh. Only the sign of the gradient is used, which
    suits full-batch training; noisy minibatch gradients defeat it.

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`.
    learning_rate : float, default 0.1
        The initial step size :math:`s_0` (Riedmiller & Braun's
        :math:`\Delta_0`). It is used once, so a schedule is refused.
        Changing it later (``set_hyperparameters``, a resumed run) rescales
        every current step size by new / old.
    rprop_increase : float, default 1.2
        :math:`\eta^+ > 1`.
    rprop_decrease : float, default 0.5
        :math:`0 < \eta^- < 1`.
    rprop_min_step : float, default 1e-6
    rprop_max_step : float, default 50
        Bounds of the step sizes, ``0 <= min <= max``.
    **kwargs
        The shared hyperparameters of :class:`~npdownhill.Optimizer`.

    Notes
    -----
    torch.optim.Rprop is the same rule (``etas=(decrease, increase)``,
    ``step_sizes=(min, max)``, default ``lr=0.01``). downhill used
    :math:`\eta^\pm = 1.01, 0.99` and steps in :math:`[0, 100]`.

    References
    ----------
    Riedmiller, M. and Braun, H. (1993). A direct adaptive method for faster
    backpropagation learning: the RPROP algorithm. IEEE ICNN.

    Igel, C. and Hüsken, M. (2000). Improving the Rprop learning algorithm.
    NC 2000.
    """

    name = "rprop"
    summary = "iRprop- (= torch); `learning_rate` is the initial step"
    hyperparameters = {
        "learning_rate": H.Hyper(0.1, _initial_step, "initial step size s_0 (a number)",
                                 aliases={"lr": H.identity_alias}),
        "rprop_increase": H.Hyper(1.2, lambda c, n, v: H.number(c, n, v, low=1, low_open=True),
                                  "step growth factor eta+ > 1"),
        "rprop_decrease": H.Hyper(0.5, lambda c, n, v: H.number(c, n, v, low=0, high=1,
                                                                low_open=True, high_open=True),
                                  "step shrink factor 0 < eta- < 1"),
        "rprop_min_step": H.Hyper(1e-6, H.nonnegative, "smallest step size"),
        "rprop_max_step": H.Hyper(50.0, lambda c, n, v: H.number(c, n, v, low=0, low_open=True),
                                  "largest step size"),
    }
    state_names = ("step_size", "previous")

    def _check_hyper(self, call, hyper):
        super()._check_hyper(call, hyper)
        lo, hi = hyper["rprop_min_step"], hyper["rprop_max_step"]
        if lo > hi:
            raise ValueError(f"{call}: rprop_min_step must be <= rprop_max_step; got {lo} > {hi}")

    def _state_spec(self, hyper):
        spec = super()._state_spec(hyper)
        spec["step_size"] = hyper["learning_rate"]     # s_0
        return spec

    def _hyper_changed(self, old, changed):
        super()._hyper_changed(old, changed)
        if "learning_rate" in changed:
            # a new initial step size: before the first update it is s_0; later every
            # adapted step size is rescaled by new / old, keeping what each learned
            s, new, before = self.state["step_size"], self.hyper["learning_rate"], old["learning_rate"]
            if self.updates == 0 or before == 0:
                s.fill(new)
            else:
                s *= new / before

    def _rule(self, t, lr, new):
        h = self._hyper
        up, down, lo, hi = self._constants(h["rprop_increase"], h["rprop_decrease"],
                                           h["rprop_min_step"], h["rprop_max_step"])
        longest = self._plan.longest
        grew_all = self._chunk_buffer("grew", longest, bool)
        flipped_all = self._chunk_buffer("flipped", longest, bool)

        def rprop(g, u, tmp, s, s_new, previous, previous_new):
            grew, flipped = grew_all[:g.size], flipped_all[:g.size]
            # sign agreement of g_t and g_{t-1}
            np.multiply(g, previous, tmp)
            np.greater(tmp, 0, grew)
            np.less(tmp, 0, flipped)
            # s = s * eta+ where the sign held, s * eta- where it flipped, clipped
            np.copyto(s_new, s)
            np.multiply(s_new, up, out=s_new, where=grew)
            np.multiply(s_new, down, out=s_new, where=flipped)
            np.clip(s_new, lo, hi, out=s_new)
            # after a flip: forget the gradient (no move now, fresh start next time)
            np.copyto(previous_new, g)
            np.copyto(previous_new, 0, where=flipped)
            # u = -s * sign(g)
            np.sign(previous_new, u)
            np.negative(u, u)
            np.multiply(u, s_new, u)

        return rprop


@register
class ADAGRAD(Optimizer):
    r"""ADAGRAD: scale each element by the root of its accumulated squared gradients.

    .. math::

        a_t &= a_{t-1} + g_t^2 \\
        u_t &= \eta\, \frac{g_t}{\sqrt{a_t + \epsilon}}

    The effective step of each element shrinks monotonically, fast for
    elements with large or frequent gradients.

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`.
    learning_rate : float or schedule, default 1.0
        :math:`\eta` (Lasagne and pycmtensor; torch uses 0.01).
    epsilon : float, default 1e-6
        Lasagne's :math:`\epsilon`; downhill used 1e-8 (``rms_regularizer``).
    epsilon_inside : bool, default True
        ``False`` gives torch.optim.Adagrad's :math:`g / (\sqrt{a} + \epsilon)`.
    initial_accumulator : float, default 0
        :math:`a_0`; optax and Keras start at 0.1, torch's
        ``initial_accumulator_value`` is this. Changing it after updates
        shifts the accumulator by new - old (it is :math:`a_0 + \sum g^2`).
    **kwargs
        The shared hyperparameters of :class:`~npdownhill.Optimizer`.

    References
    ----------
    Duchi, J., Hazan, E. and Singer, Y. (2011). Adaptive subgradient methods
    for online learning and stochastic optimization. JMLR 12, 2121-2159.
    """

    name = "adagrad"
    summary = "eps inside (Lasagne); `epsilon_inside=False` = torch; `initial_accumulator`"
    hyperparameters = {
        "learning_rate": _lr(1.0),
        "epsilon": _eps(1e-6),
        "epsilon_inside": H.Hyper(True, H.boolean, "epsilon under the square root (False: torch's form)"),
        "initial_accumulator": H.Hyper(0.0, H.nonnegative, "starting value of the accumulator"),
    }
    state_names = ("accumulator",)

    def _state_spec(self, hyper):
        spec = super()._state_spec(hyper)
        spec["accumulator"] = hyper["initial_accumulator"]   # a_0
        return spec

    def _hyper_changed(self, old, changed):
        super()._hyper_changed(old, changed)
        if "initial_accumulator" in changed:
            # a_t = a_0 + sum g^2: a new a_0 shifts the accumulator by the difference
            self.state["accumulator"] += self.hyper["initial_accumulator"] - old["initial_accumulator"]

    nonfinite_spreads = True

    def _rule(self, t, lr, new):
        h = self._hyper
        inside = h["epsilon_inside"]
        eps, step = self._constants(h["epsilon"], -lr)

        def adagrad(g, u, tmp, a, a_new):
            # a = a + g^2
            np.square(g, tmp)
            np.add(a, tmp, a_new)
            # u = -lr g / sqrt(a + eps)   or   -lr g / (sqrt(a) + eps)
            rms_step(g, a_new, u, tmp, eps, step, inside)

        return adagrad


AdaGrad = ADAGRAD


@register
class ADADELTA(Optimizer):
    r"""ADADELTA: a step in the units of the parameters, from two running averages.

    .. math::

        a_t &= \rho\, a_{t-1} + (1 - \rho)\, g_t^2 \\
        d_t &= g_t\, \frac{\sqrt{x_{t-1} + \epsilon}}{\sqrt{a_t + \epsilon}} \\
        x_t &= \rho\, x_{t-1} + (1 - \rho)\, d_t^2 \\
        u_t &= \eta\, d_t

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`.
    learning_rate : float or schedule, default 1.0
        :math:`\eta`; the paper has none (1.0). It does not enter :math:`x_t`.
    rho : float, default 0.95
        Decay :math:`\rho` (the paper, Lasagne, pycmtensor; torch uses 0.9);
        ``rms_halflife`` is accepted.
    epsilon : float, default 1e-6
        :math:`\epsilon` (the paper, Lasagne, torch); it also seeds the very
        first step, whose size is about :math:`\sqrt{\epsilon}`.
    **kwargs
        The shared hyperparameters of :class:`~npdownhill.Optimizer`.

    Notes
    -----
    This is Lasagne's, torch's and Keras' form; downhill had no learning rate.

    References
    ----------
    Zeiler, M. D. (2012). ADADELTA: an adaptive learning rate method.
    arXiv:1212.5701.
    """

    name = "adadelta"
    summary = "Zeiler / Lasagne / torch"
    hyperparameters = {
        "learning_rate": _lr(1.0),
        "rho": _rho(0.95),
        "epsilon": _eps(1e-6),
    }
    state_names = ("grad_sq", "delta_sq")

    nonfinite_spreads = True

    def _rule(self, t, lr, new):
        h = self._hyper
        rho, a1, eps, step = self._constants(h["rho"], 1 - h["rho"], h["epsilon"], -lr)

        def adadelta(g, u, tmp, a, a_new, x, x_new):
            # a = rho a + (1 - rho) g^2
            ema_square(a, g, rho, tmp, a_new, a1)
            # d = g sqrt(x + eps) / sqrt(a + eps)      (x of the previous step)
            np.sqrt(np.add(x, eps, tmp), u)
            np.multiply(u, g, u)
            np.add(a_new, eps, tmp)
            np.sqrt(tmp, tmp)
            np.divide(u, tmp, u)
            # x = rho x + (1 - rho) d^2
            ema_square(x, u, rho, tmp, x_new, a1)
            # u = -lr d
            np.multiply(u, step, u)

        return adadelta


Adadelta = ADADELTA


@register
class ESGD(Optimizer):
    r"""Equilibrated SGD: precondition by a running estimate of the Hessian's row norms.

    Each update draws :math:`r_t \sim N(0, I)` over the whole parameter tree
    and takes a Hessian-vector product with autograd:

    .. math::

        D_t &= \rho\, D_{t-1} + (1 - \rho)\, (H_t r_t)^2 \\
        \hat D_t &= D_t / (1 - \rho^t) \\
        u_t &= \eta\, \frac{g_t}{\sqrt{\hat D_t} + \epsilon}

    :math:`E[(H r)^2_i] = \sum_j H_{ij}^2`, so :math:`\sqrt{\hat D}`
    estimates the equilibration preconditioner, which handles ill-conditioned
    and indefinite curvature better than the Jacobi (diagonal) one.

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`. The loss is required (it is
        differentiated twice); ``update`` / ``apply`` / ``get_updates`` need the
        batch as extra arguments.
    learning_rate : float or schedule, default 0.1
    rho : float, default 0.9517
        :math:`\rho = e^{-\ln 2 / 14}`: downhill's ``rms_halflife`` of 14.
    epsilon : float, default 1e-8
        downhill's ``rms_regularizer``.
    rng : None, int or numpy.random.Generator
        Source of :math:`r_t` (one ``standard_normal`` draw over the flat
        parameter vector per update, after any gradient noise): the same
        seed gives the same trajectory.
    **kwargs
        The shared hyperparameters of :class:`~npdownhill.Optimizer`.

    Notes
    -----
    Dauphin et al. average :math:`(H r)^2` over all updates (a :math:`1/t`
    average) and refresh it every 20 updates; downhill used an exponential
    average without bias correction. Here the exponential average is
    bias-corrected, so the first update already uses an unbiased estimate.
    Each update costs about three gradient evaluations.

    References
    ----------
    Dauphin, Y., de Vries, H. and Bengio, Y. (2015). Equilibrated adaptive
    learning rates for non-convex optimization. NIPS.
    """

    name = "esgd"
    summary = "equilibrated preconditioner from autograd Hessian-vector products"
    needs_loss = True
    hyperparameters = {
        "learning_rate": _lr(0.1),
        "rho": _rho(float(np.exp(-np.log(2) / 14)), "decay of the average of (Hr)^2"),
        "epsilon": _eps(1e-8),
    }
    state_names = ("curvature",)

    nonfinite_spreads = True

    def _rule(self, t, lr, new):
        h = self._hyper
        # u = -lr g / (sqrt(D / bc) + eps), computed as -lr sqrt(bc) g / (sqrt(D) + eps sqrt(bc))
        # (the same up to rounding, without dividing every element of D: adam_constants)
        eps, step = adam_constants(lr, h["epsilon"], 1.0, 1 - h["rho"] ** t)
        rho, a, eps, step = self._constants(h["rho"], 1 - h["rho"], eps, step)
        # r ~ N(0, I) over the whole tree, drawn into the buffer of the new D, which then
        # holds Hr (from autograd: a vjp of the gradient) until the kernel overwrites it
        product = new["curvature"]
        self._normal(product)
        self._hessian_product(product)

        def esgd(g, u, tmp, D, D_new):
            # D = rho D + (1 - rho) (Hr)^2
            ema_square(D, D_new, rho, tmp, D_new, a)
            # u = -lr g / (sqrt(D / (1 - rho^t)) + eps)
            adam_step(g, D_new, u, tmp, eps, step)

        return esgd

    _probes = None

    def _hessian_product(self, flat):
        """Replace the flat vector ``flat`` by the Hessian of the loss times it.

        :meth:`step` traces the gradient it computes, and that trace gives the
        product (one backward pass); otherwise the gradient is traced here.
        """
        layout = self.layout
        if self._probes is None:
            self._probes = {}
        if self._traced is not None and self._traced[0] is self._batch:
            hvp = self._traced[1]
        elif layout.plain:
            hvp, _ = make_hvp(self.loss)(self.params, *self._batch)
        else:                        # namedtuples: products over the list of leaves
            hvp, _ = make_hvp(self.differentiable_loss())(layout.match(self.params, "ESGD"),
                                                            *self._batch)
        probes = self._probes                  # the probe as a tree of views of ``flat``
        probe = probes.get(id(flat))
        if probe is None or probe[0] is not flat:
            probe = probes[id(flat)] = (flat, layout.unflatten(flat) if layout.plain
                                        else layout.views(flat))
            if len(probes) > 2:
                probes.clear()
                probes[id(flat)] = probe
        product = hvp(probe[1])
        if not layout.plain:
            product = layout.tree_of(product)
        try:                                   # autograd's product has the params' shapes
            np.concatenate(layout._flat(product), out=flat)
        except Exception:                      # else the checked gather explains it
            layout.gather(product, flat, "ESGD: Hessian-vector product")

    def _loss_and_grads(self, batch, call, params=None):
        """The loss and gradient at the current params from a traced pass whose trace
        is kept for this update's Hessian-vector product (see :meth:`_hessian_product`)."""
        if params is not None:
            return super()._loss_and_grads(batch, call, params)
        layout = self.layout
        loss = self.differentiable_loss()
        point = self.params if layout.plain else layout.match(self.params, call)
        seen, refused = [], []

        cached, trace = self._vjp_of
        if cached is not loss:
            trace = make_vjp(loss)
            self._vjp_of = (loss, trace)

        def gradient(p, *data):
            vjp, value = trace(p, *data)
            try:
                seen.append(check_loss_value(call, getval(value)))
            except (TypeError, ValueError) as err:
                refused.append(err)
                raise
            return vjp(vspace(value).ones())

        try:
            hvp, grads = make_vjp(gradient)(point, *batch)
        except Exception as err:
            if refused and err is refused[0]:
                raise
            explained = explain_trace_error(err, self.loss, (self.params, *batch))
            if explained is None:
                raise
            raise explained from err
        self._traced = (batch, hvp)
        return float(seen[0]), grads if layout.plain else layout.tree_of(grads)
