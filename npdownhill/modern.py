r"""Rules of the 2020s: Lion, Yogi, AdaBelief and Prodigy.

Each equals its optax counterpart (``optax.lion``, ``optax.yogi``,
``optax.adabelief``, ``optax.contrib.prodigy``) given the same values; the
class docstrings say where optax's defaults, the papers and other libraries
differ. As everywhere in npdownhill, :math:`u_t` is the amount the rule would
subtract, :math:`t` counts updates from 1, and the shared pipeline of
:class:`~npdownhill.Optimizer` adds momentum and the decoupled
``weight_decay`` (:math:`p \leftarrow p - \eta \lambda p`; Prodigy scales it
by its estimate, see :class:`Prodigy`).
"""

import logging
import math

import numpy as np

from . import hyper as H
from .errors import NonFiniteError
from .optimizer import Buffer, Optimizer
from .pipeline import adam_constants, adam_step, ema
from .registry import register

__all__ = ["Lion", "Yogi", "AdaBelief", "Prodigy"]

logger = logging.getLogger("npdownhill")


def _beta(default, n):
    return H.Hyper(default, H.unit_interval, f"decay of moment {n}, in [0, 1)",
                   aliases={f"b{n}": H.identity_alias,
                            f"beta{n}_halflife": H.halflife_to_decay})


def _eps(default, doc="regularizer of the denominator (may be 0)"):
    return H.Hyper(default, H.nonnegative, doc)


def _positive(call, name, value):
    """A finite number ``> 0``."""
    return H.number(call, name, value, low=0, low_open=True)


def _optional_decay(call, name, value):
    """None or a finite number in ``[0, 1)``."""
    if value is None:
        return None
    return H.unit_interval(call, name, value)


_BETAS = {"betas": ("beta1", "beta2")}      # torch's and optax.contrib.prodigy's spelling


@register
class Lion(Optimizer):
    r"""Lion: the sign of an interpolation of momentum and gradient.

    .. math::

        c_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        u_t &= \eta\, \operatorname{sign}(c_t) \\
        m_t &= \beta_2 m_{t-1} + (1 - \beta_2) g_t

    with :math:`m_0 = 0`. Every element moves by exactly :math:`\eta` (or
    not at all where :math:`c_t = 0`), so the learning rate is a step length
    in the units of the parameters: the paper advises 3 to 10 times smaller
    than AdamW's, with a weight decay 3 to 10 times larger.

    This equals ``optax.lion`` given the same values. Weight decay is the
    shared decoupled ``weight_decay``, :math:`p \leftarrow p - \eta
    (\operatorname{sign}(c_t) + \lambda p)`, the paper's and optax's form;
    optax's ``weight_decay`` defaults to 1e-3, npdownhill's (as on every
    rule) to 0.

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`.
    learning_rate : float or schedule, default 1e-4
        :math:`\eta` (optax has no default): the paper's advice of 3 to 10
        times smaller than AdamW's, applied to AdamW's usual 1e-3.
    beta1 : float, default 0.9
        :math:`\beta_1`, the interpolation of the sign's argument. Also
        ``b1`` or ``beta1_halflife``.
    beta2 : float, default 0.99
        :math:`\beta_2`, the decay of the momentum. Also ``b2`` or
        ``beta2_halflife``; ``betas=(beta1, beta2)`` sets both.
    **kwargs
        The shared hyperparameters of :class:`~npdownhill.Optimizer`.

    Notes
    -----
    optax's ``mode='smooth'`` and ``'refined'`` variants (tanh or a clipped
    identity instead of the sign) are not provided. The sign of an infinite
    :math:`c_t` is finite, so a non-finite gradient is caught by its own
    check rather than through the step.

    References
    ----------
    Chen, X., Liang, C., Huang, D., Real, E., Wang, K., Pham, H., Dong, X.,
    Luong, T., Hsieh, C.-J., Lu, Y. and Le, Q. V. (2023). Symbolic discovery
    of optimization algorithms. NeurIPS. arXiv:2302.06675.
    """

    name = "lion"
    summary = "`sign(b1 m + (1 - b1) g)` (= optax.lion)"
    hyperparameters = {
        "learning_rate": H.learning_rate(1e-4),
        "beta1": _beta(0.9, 1),
        "beta2": _beta(0.99, 2),
    }
    compound_aliases = _BETAS
    state_names = ("m",)

    def _rule(self, t, lr, new):
        h = self._hyper
        b1, a1, b2, a2, step = self._constants(h["beta1"], 1 - h["beta1"], h["beta2"],
                                               1 - h["beta2"], -lr)

        def lion(g, u, tmp, m, m_new):
            # c = b1 m + (1 - b1) g;  u = -lr sign(c)
            np.multiply(g, a1, tmp)
            np.add(np.multiply(m, b1, u), tmp, u)
            np.sign(u, u)
            np.multiply(u, step, u)
            # m = b2 m + (1 - b2) g
            ema(m, g, b2, tmp, m_new, a2)

        return lion


@register
class Yogi(Optimizer):
    r"""Yogi: Adam whose second moment moves by a signed additive step.

    .. math::

        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        v_t &= v_{t-1} - (1 - \beta_2) \operatorname{sign}(v_{t-1} - g_t^2)\, g_t^2 \\
        u_t &= \eta\, \frac{m_t / \mathrm{bc}_1}{\sqrt{v_t / \mathrm{bc}_2} + \epsilon}

    with :math:`\mathrm{bc}_i = 1 - \beta_i^t` and both moments starting at
    :math:`m_0 = v_0 =` ``initial_accumulator``. Adam's
    :math:`v_t - v_{t-1} = -(1 - \beta_2)(v_{t-1} - g_t^2)` is proportional
    to :math:`v_{t-1}` when the gradients shrink; Yogi's change is bounded by
    :math:`(1 - \beta_2) g_t^2`, so the effective step grows back slowly
    after a burst of large gradients.

    This equals ``optax.yogi`` (its defaults are these: epsilon 1e-3, both
    moments at 1e-6; optax's ``eps_root`` is 0 there and not provided here).
    The paper's algorithm is written without bias correction; optax's, and
    this, bias-correct both moments as Adam does (the tiny
    :math:`\beta^t` share of the initial value included).

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`.
    learning_rate : float or schedule, default 1e-2
        :math:`\eta` (optax has none; the paper recommends 1e-2 with
        :math:`\epsilon` = 1e-3).
    beta1 : float, default 0.9
        Also ``b1`` or ``beta1_halflife``.
    beta2 : float, default 0.999
        Also ``b2`` or ``beta2_halflife``; ``betas=(beta1, beta2)`` sets both.
    epsilon : float, default 1e-3
        :math:`\epsilon`, outside the square root; may be 0.
    initial_accumulator : float, default 1e-6
        :math:`m_0` and :math:`v_0`. It sets the state of a fresh optimizer:
        changed before the first update it refills both moments; changed
        later it cannot change the moments already built, and a WARNING
        says so.
    **kwargs
        The shared hyperparameters of :class:`~npdownhill.Optimizer`.

    References
    ----------
    Zaheer, M., Reddi, S., Sachan, D., Kale, S. and Kumar, S. (2018).
    Adaptive methods for nonconvex optimization. NeurIPS.
    """

    name = "yogi"
    summary = "`v -= (1 - b2) sign(v - g^2) g^2` (= optax.yogi)"
    hyperparameters = {
        "learning_rate": H.learning_rate(1e-2),
        "beta1": _beta(0.9, 1),
        "beta2": _beta(0.999, 2),
        "epsilon": _eps(1e-3),
        "initial_accumulator": H.Hyper(1e-6, H.nonnegative, "starting value of both moments"),
    }
    compound_aliases = _BETAS
    state_names = ("m", "v")

    nonfinite_spreads = True

    def _state_spec(self, hyper):
        spec = super()._state_spec(hyper)
        spec["m"] = spec["v"] = hyper["initial_accumulator"]    # m_0 = v_0
        return spec

    def _hyper_changed(self, old, changed):
        super()._hyper_changed(old, changed)
        if "initial_accumulator" in changed:
            if self.updates == 0:
                self.state["m"].fill(self.hyper["initial_accumulator"])
                self.state["v"].fill(self.hyper["initial_accumulator"])
            else:
                logger.warning("Yogi: initial_accumulator=%r is the moments' starting "
                               "value; after %d updates it does not change them",
                               self.hyper["initial_accumulator"], self.updates)

    def _rule(self, t, lr, new):
        h = self._hyper
        b1, b2 = h["beta1"], h["beta2"]
        b1, a1, a2, eps, step = self._constants(
            b1, 1 - b1, 1 - b2, *adam_constants(lr, h["epsilon"], 1 - b1 ** t, 1 - b2 ** t))

        def yogi(g, u, tmp, m, m_new, v, v_new):
            # m = b1 m + (1 - b1) g
            ema(m, g, b1, tmp, m_new, a1)
            # v = v - (1 - b2) sign(v - g^2) g^2
            np.square(g, tmp)
            np.sign(np.subtract(v, tmp, u), u)
            np.multiply(u, tmp, u)
            np.subtract(v, np.multiply(u, a2, u), v_new)
            # u = -lr / bc1 * m / (sqrt(v / bc2) + eps)   (pipeline.adam_constants)
            adam_step(m_new, v_new, u, tmp, eps, step)

        return yogi


@register
class AdaBelief(Optimizer):
    r"""AdaBelief: Adam with the second moment of the gradient's surprise :math:`g - m`.

    .. math::

        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        s_t &= \beta_2 s_{t-1} + (1 - \beta_2) (g_t - m_t)^2 + \epsilon_{root} \\
        u_t &= \eta\, \frac{m_t / \mathrm{bc}_1}{\sqrt{s_t / \mathrm{bc}_2} + \epsilon}

    with :math:`\mathrm{bc}_i = 1 - \beta_i^t` and :math:`m_0 = s_0 = 0`.
    Where the gradient agrees with its running mean (a smooth valley) the
    step is large; where it keeps surprising the step is small.

    This equals ``optax.adabelief`` (same defaults). :math:`\epsilon_{root}`
    is added to the state at every update, so :math:`s_t` holds up to
    :math:`\epsilon_{root} / (1 - \beta_2)` of it. The paper's algorithm
    adds one :math:`\epsilon` in both places (``epsilon_root = epsilon``);
    a transcription that adds it only outside the root, as Adam does,
    differs by that term.

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`.
    learning_rate : float or schedule, default 1e-3
        :math:`\eta` (Adam's; optax has none).
    beta1 : float, default 0.9
        Also ``b1`` or ``beta1_halflife``.
    beta2 : float, default 0.999
        Also ``b2`` or ``beta2_halflife``; ``betas=(beta1, beta2)`` sets both.
    epsilon : float, default 1e-16
        :math:`\epsilon`, outside the square root; may be 0.
    epsilon_root : float, default 1e-16
        :math:`\epsilon_{root}`, added to :math:`s_t` (optax's
        ``eps_root``); may be 0.
    **kwargs
        The shared hyperparameters of :class:`~npdownhill.Optimizer`.

    Notes
    -----
    optax's ``nesterov=True`` variant is not provided (npdownhill's
    ``nesterov`` is the shared momentum wrapper's).

    References
    ----------
    Zhuang, J., Tang, T., Ding, Y., Tatikonda, S., Dvornek, N.,
    Papademetris, X. and Duncan, J. S. (2020). AdaBelief optimizer: adapting
    stepsizes by the belief in observed gradients. NeurIPS. arXiv:2010.07468.
    """

    name = "adabelief"
    summary = "second moment of `g - m` (= optax.adabelief)"
    hyperparameters = {
        "learning_rate": H.learning_rate(1e-3),
        "beta1": _beta(0.9, 1),
        "beta2": _beta(0.999, 2),
        "epsilon": _eps(1e-16),
        "epsilon_root": _eps(1e-16, "added to the second moment at every update (may be 0)"),
    }
    compound_aliases = _BETAS
    state_names = ("m", "s")

    nonfinite_spreads = True

    def _rule(self, t, lr, new):
        h = self._hyper
        b1, b2 = h["beta1"], h["beta2"]
        b1, a1, b2, a2, eps_root, eps, step = self._constants(
            b1, 1 - b1, b2, 1 - b2, h["epsilon_root"],
            *adam_constants(lr, h["epsilon"], 1 - b1 ** t, 1 - b2 ** t))

        def adabelief(g, u, tmp, m, m_new, s, s_new):
            # m = b1 m + (1 - b1) g
            ema(m, g, b1, tmp, m_new, a1)
            # s = b2 s + (1 - b2) (g - m)^2 + eps_root
            np.subtract(g, m_new, tmp)
            np.square(tmp, tmp)
            np.multiply(tmp, a2, tmp)
            np.add(np.multiply(s, b2, s_new), tmp, s_new)
            np.add(s_new, eps_root, s_new)
            # u = -lr / bc1 * m / (sqrt(s / bc2) + eps)   (pipeline.adam_constants)
            adam_step(m_new, s_new, u, tmp, eps, step)

        return adabelief


@register
class Prodigy(Optimizer):
    r"""Prodigy: Adam that estimates its own learning rate :math:`d` (D-Adaptation).

    With :math:`x_0` the parameters at the first update, :math:`d_1 = d_0`,
    :math:`\mathrm{bc}_t = \sqrt{1 - \beta_2^t} / (1 - \beta_1^t)` and
    :math:`\hat\eta_t = \eta_t\, d_t\, \mathrm{bc}_t`:

    .. math::

        m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, d_t g_t \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, d_t^2 g_t^2 \\
        r_t &= \beta_3 r_{t-1} + \frac{d_t}{d_0} \hat\eta_t
               \langle g_t, x_0 - x_t \rangle \\
        s_t &= \beta_3 s_{t-1} + \frac{d_t}{d_0} \hat\eta_t\, g_t \\
        d_{t+1} &= \max\!\left(d_t,\ c\, \frac{r_t}{\lVert s_t \rVert_1}\right) \\
        u_t &= \hat\eta_t\, \frac{m_t}{\sqrt{v_t} + d_{t+1} \epsilon}

    with :math:`\beta_3 = \sqrt{\beta_2}` unless given, :math:`c` =
    ``d_coef``, and the sum and the inner product over the whole parameter
    tree. :math:`d_t` grows from :math:`d_0` to about the distance from
    :math:`x_0` to the solution, so the learning rate :math:`\eta` stays
    1.0 (or a schedule whose peak is 1.0). The decoupled ``weight_decay``
    :math:`\lambda` is scaled by the estimate, :math:`p \leftarrow p -
    \hat\eta_t \lambda p`, as in the paper's implementation and optax.

    This equals ``optax.contrib.prodigy`` of optax 0.2.8 (same defaults;
    ``d0`` is its ``estim_lr0``, ``d_coef`` its ``estim_lr_coef``). The
    :math:`1/d_0` in :math:`r` and :math:`s` cancels in the ratio and only
    keeps them of order one. :math:`d_t` and :math:`r_t` (``state['d']``,
    ``state['numerator']``), :math:`s_t` and :math:`x_0` are state: saved,
    resumed, and not advanced by a refused update.

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`.
    learning_rate : float or schedule, default 1.0
        :math:`\eta`, a multiplier of the estimate.
    beta1 : float, default 0.9
        Also ``b1`` or ``beta1_halflife``.
    beta2 : float, default 0.999
        Also ``b2`` or ``beta2_halflife``; ``betas=(beta1, beta2)`` sets both.
    beta3 : float or None, default None
        :math:`\beta_3`, the decay of :math:`r` and :math:`s`;
        None means :math:`\sqrt{\beta_2}`.
    epsilon : float, default 1e-8
        :math:`\epsilon`, scaled by :math:`d_{t+1}`; may be 0.
    d0 : float, default 1e-6
        The initial (under-)estimate :math:`d_0 > 0`. Changing it after
        updates rescales :math:`r` and :math:`s` by old / new, so the
        estimate carries on unchanged.
    d_coef : float, default 1.0
        :math:`c > 0`, a multiplier of every new estimate.
    safeguard_warmup : bool, default False
        Use :math:`d_t^2 / d_0` instead of :math:`d_t \hat\eta_t / d_0` in
        :math:`s_t`, so that a warm-up schedule (small :math:`\eta_t`) does
        not shrink the denominator (the paper's advice with warm-up).
    bias_correction : bool, default True
        :math:`\mathrm{bc}_t` as above (optax); False gives
        :math:`\mathrm{bc}_t = 1`, the default of the authors' PyTorch
        implementation.
    **kwargs
        The shared hyperparameters of :class:`~npdownhill.Optimizer`.

    Notes
    -----
    Differences from the authors' PyTorch implementation: bias correction
    is on by default here (off there), and its ``growth_rate`` cap on
    :math:`d_{t+1} / d_t` is not provided (its default is no cap; optax has
    none). While every gradient so far was exactly zero,
    :math:`\lVert s_t \rVert_1 = 0` and :math:`d` stays as it is (optax
    would divide by zero; the authors' code skips the update). An
    :math:`r_t` or :math:`\lVert s_t \rVert_1` that overflows refuses the
    update like a non-finite step. The sums over the tree need the whole
    gradient before the chunked update, so Prodigy makes one extra pass
    over the gradient, the parameters, :math:`x_0` and :math:`s` per update.

    References
    ----------
    Mishchenko, K. and Defazio, A. (2024). Prodigy: an expeditiously
    adaptive parameter-free learner. ICML. arXiv:2306.06101.
    """

    name = "prodigy"
    summary = "learning-rate-free Adam, estimate `d` in the state (= optax.contrib.prodigy)"
    hyperparameters = {
        "learning_rate": H.learning_rate(1.0),
        "beta1": _beta(0.9, 1),
        "beta2": _beta(0.999, 2),
        "beta3": H.Hyper(None, _optional_decay, "decay of the estimate's sums; None = sqrt(beta2)"),
        "epsilon": _eps(1e-8),
        "d0": H.Hyper(1e-6, _positive, "initial estimate d_0 > 0"),
        "d_coef": H.Hyper(1.0, _positive, "multiplier of each new estimate"),
        "safeguard_warmup": H.Hyper(False, H.boolean, "d^2 instead of d * lr in the denominator"),
        "bias_correction": H.Hyper(True, H.boolean, "Adam's bias correction in the step (optax)"),
    }
    compound_aliases = _BETAS
    state_names = ("m", "v", "s", "x0")
    param_copies = ("x0",)
    whole_gradient = True
    nonfinite_spreads = True

    _dlr = 0.0              # eta_t d_t bc_t of the update being computed
    _param_cache = None     # (plan, blocks, their params, flat buffer to read them into, scratch)

    def _state_spec(self, hyper):
        spec = super()._state_spec(hyper)
        spec["d"] = Buffer((), hyper["d0"], np.float64)          # d_1 = d_0
        spec["numerator"] = Buffer((), 0.0, np.float64)          # r_0 = 0
        return spec

    def _hyper_changed(self, old, changed):
        super()._hyper_changed(old, changed)
        if "d0" in changed:
            new = self.hyper["d0"]
            if self.updates == 0:
                self.state["d"][()] = new
            else:
                # r and s are sums of terms divided by d_0: keep their ratio as it is
                ratio = old["d0"] / new
                self.state["numerator"][()] *= ratio
                self.state["s"] *= ratio

    @property
    def d(self):
        """The current estimate :math:`d` (float)."""
        return float(self.state["d"])

    def _decay_lr(self, lr):
        return self._dlr

    #: Elements per block of the sums over the tree. The blocks are fixed, whatever
    #: :attr:`chunk_bytes`, so that the sums (and the whole trajectory) are the same
    #: bit for bit in any number of chunks.
    _block = 1 << 14

    def _blocks(self, plan):
        """The fixed blocks, each one's params (views, or leaves to gather), the flat
        buffer to read all the params into first (or None), and two scratch buffers."""
        cached = self._param_cache
        if cached is None or cached[0] is not plan:
            blocks = self.layout.chunks(self._block)
            params, reread = self._param_chunks(blocks)
            longest = max(stop - start for start, stop, *_ in blocks)
            scratch = [self._chunk_buffer(name, longest) for name in ("sum_a", "sum_b")]
            self._param_cache = cached = (plan, blocks, params, reread, scratch)
        return cached[1:]

    def _rule(self, t, lr, new):
        h, state = self._hyper, self.state
        b1, b2 = h["beta1"], h["beta2"]
        b3 = math.sqrt(b2) if h["beta3"] is None else h["beta3"]
        d, d0 = float(state["d"]), h["d0"]
        bc = math.sqrt(1 - b2 ** t) / (1 - b1 ** t) if h["bias_correction"] else 1.0
        dlr = self._dlr = d * lr * bc
        # the sums over the whole tree, from the gradient in the gradient buffer, block
        # by block:  s = b3 s + (d / d0) dlr g  (safeguard_warmup: d^2 / d0);  l1 = |s|_1;
        # inner = <g, x0 - x>, with x0 the params at the first update
        blocks, params, reread, (a_, b_) = self._blocks(self._plan)
        g_, x0, x0_new, s, s_new = self._g, state["x0"], new["x0"], state["s"], new["s"]
        if t == 1:
            self.layout.read(x0_new)
        else:
            np.copyto(x0_new, x0)
            if reread is not None:
                self.layout.read(reread)
        coef = (d * d if h["safeguard_warmup"] else dlr * d) / d0
        l1 = inner = 0.0
        f64, add = np.float64, np.add.reduce
        for (start, stop, *_), p in zip(blocks, params):
            n = stop - start
            g, a, b, sn = g_[start:stop], a_[:n], b_[:n], s_new[start:stop]
            np.multiply(g, coef, a)
            np.add(np.multiply(s[start:stop], b3, sn), a, sn)
            l1 += float(add(np.abs(sn, a), dtype=f64))
            if t > 1:
                if p.__class__ is list:
                    p = np.concatenate(p, 0, b)
                np.subtract(x0[start:stop], p, b)
                inner += float(add(np.multiply(g, b, b), dtype=f64))
        # r = b3 r + (d / d0) dlr <g, x0 - x>;  d = max(d, d_coef r / |s|_1)
        r = b3 * float(state["numerator"]) + d / d0 * dlr * inner
        if not (math.isfinite(r) and math.isfinite(l1)):
            raise NonFiniteError(
                f"Prodigy: update {t} overflowed the estimate's sums (r = {r}, |s|_1 = {l1}) "
                "although the gradient was finite; nothing was applied", "step",
                list(self.layout.names), t - 1)
        d_next = d
        if l1 > 0:
            d_next = max(d, h["d_coef"] * r / l1)
        new["numerator"][()] = r
        new["d"][()] = d_next
        d, b1, a1, b2, a2, d_eps, step = self._constants(d, b1, 1 - b1, b2, 1 - b2,
                                                         d_next * h["epsilon"], -dlr)

        def prodigy(g, u, tmp, m, m_new, v, v_new, *done):
            # m = b1 m + (1 - b1) d g;  v = b2 v + (1 - b2) (d g)^2
            np.multiply(g, d, tmp)
            np.add(np.multiply(m, b1, m_new), np.multiply(tmp, a1, u), m_new)
            np.square(tmp, tmp)
            np.add(np.multiply(v, b2, v_new), np.multiply(tmp, a2, tmp), v_new)
            # u = -dlr m / (sqrt(v) + d_next eps)
            np.sqrt(v_new, u)
            np.add(u, d_eps, u)
            np.divide(m_new, u, u)
            np.multiply(u, step, u)

        return prodigy
