r"""Quasi-Newton rules for small, full-batch fits: L-BFGS (with bounds) and BFGS.

Each :meth:`~QuasiNewton.step` is one iteration: from the point :math:`x_k`
with loss :math:`f_k` and gradient :math:`g_k`, a direction
:math:`d_k = -H_k g_k` from the inverse-Hessian approximation :math:`H_k`,
then a line search (:func:`npdownhill.linesearch.strong_wolfe`) for a step
:math:`\alpha_k` meeting the strong Wolfe conditions, then

.. math::

    x_{k+1} = x_k + \alpha_k d_k, \qquad s_k = x_{k+1} - x_k, \qquad
    y_k = g_{k+1} - g_k, \qquad \rho_k = 1 / (y_k^\top s_k).

The loss and gradient the line search computed at the accepted point are
kept for the next iteration, so each iteration costs only the line search's
evaluations (usually one). A pair with
:math:`s^\top y \le \epsilon \lVert s\rVert \lVert y\rVert` (no positive
curvature) is skipped. The run stops itself (``converged``) when the largest
absolute (projected) gradient element is at most ``gtol`` or the loss
decreased by a relative amount of at most ``ftol``:
:math:`(f_k - f_{k+1}) / \max(|f_k|, |f_{k+1}|, 1) \le \mathrm{ftol}`
(scipy's L-BFGS-B tests).

These rules evaluate the loss themselves (a loss is required) and use the
same batch every iteration: in ``minimize`` / ``iterate`` they run full batch
(one batch of everything unless told otherwise; more batches per epoch are
refused: stochastic L-BFGS is another algorithm). The gradient pipeline of
the first-order rules (momentum, noise, multipliers, clipping, weight decay)
does not apply to a step found by a line search and is refused; ``frozen``
leaves work (they never move).

References
----------
Nocedal, J. and Wright, S. J. (2006). Numerical Optimization, 2nd ed.,
chapters 6 (BFGS) and 7.2 (L-BFGS). Springer.

Liu, D. C. and Nocedal, J. (1989). On the limited memory BFGS method for
large scale optimization. Mathematical Programming 45, 503-528.
"""

import logging
import math

import numpy as np

from . import hyper as H
from .errors import NonFiniteError
from .linesearch import strong_wolfe
from .monitors import evaluate_monitors
from .optimizer import Buffer, Optimizer
from .registry import register

__all__ = ["QuasiNewton", "LBFGS", "BFGS", "bounds_arrays"]

logger = logging.getLogger("npdownhill")

#: ``status`` codes kept in the state (so that a resumed run knows it converged)
STATUS = {0: "", 1: "gtol", 2: "ftol", 3: "linesearch"}
_CODE = {v: k for k, v in STATUS.items()}

# the shared pipeline's options, which a line-search step cannot honour
_PIPELINE = ("momentum", "nesterov", "max_gradient_elem", "max_gradient_norm", "clip_gradients",
             "gradient_noise_scale", "gradient_noise_decay", "gradient_multipliers",
             "weight_decay", "learning_rate_multipliers", "accumulate")


def _positive(call, name, value):
    if callable(value):
        raise TypeError(f"{call}({name}={value!r}): a quasi-Newton method's {name} scales the "
                        "first trial step of each line search; a schedule cannot take effect")
    return H.number(call, name, value, low=0, low_open=True)


def _open_unit(call, name, value):
    return H.number(call, name, value, low=0, high=1, low_open=True, high_open=True)


def _count(call, name, value):
    return H.number(call, name, value, low=1, integer=True)


def _bounds_spec(call, name, value):
    """None, ``{leaf name: (low, high)}`` or one ``(low, high)`` pair for every leaf."""
    if value is None:
        return None
    if isinstance(value, dict):
        for key, pair in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{call}({name}=...): bounds keys must be leaf names; got {key!r}")
            _pair(call, name, key, pair)
        return dict(value)
    _pair(call, name, None, value)
    return tuple(value)


def _pair(call, name, key, pair):
    where = f"{name}[{key!r}]" if key is not None else name
    if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2:
        raise TypeError(f"{call}({where}=...): bounds must be (low, high) pairs, each a number, "
                        f"an array or None; got {pair!r}")


def bounds_arrays(layout, spec, call):
    """Flat lower and upper bounds for a layout, or ``(None, None)`` without bounds.

    Parameters
    ----------
    layout : Layout
    spec : None, dict or pair
        ``{leaf name: (low, high)}`` (each a number, an array broadcastable to
        the leaf, or None for no bound) or one pair for every leaf.
    call : str
        For messages.

    Raises
    ------
    ValueError
        A bound on an unknown leaf, a bound that does not broadcast to its
        leaf, NaN, or ``low > high``; the message names the leaf.
    """
    if spec is None:
        return None, None
    pairs = spec if isinstance(spec, dict) else {name: spec for name in layout.names}
    for key in pairs:
        if key not in layout.index:
            raise ValueError(f"{call}(bounds=...): {key!r} is not a leaf name; the leaves are "
                             f"{layout.names}{H.suggest(key, layout.names)}")
    lower = np.full(layout.size, -np.inf, dtype=layout.dtype)
    upper = np.full(layout.size, np.inf, dtype=layout.dtype)
    for key, (low, high) in pairs.items():
        i = layout.index[key]
        shape = layout.shapes[i]
        sl = slice(layout.offsets[i], layout.offsets[i + 1])
        for value, out, side in ((low, lower, "low"), (high, upper, "high")):
            if value is None:
                continue
            try:
                arr = np.broadcast_to(np.asarray(value, dtype=float), shape)
            except (ValueError, TypeError):
                raise ValueError(f"{call}(bounds=...): the {side} bound of leaf {key!r} must be a "
                                 f"number or an array broadcastable to its shape {shape}; got "
                                 f"{value!r}") from None
            if np.isnan(arr).any():
                raise ValueError(f"{call}(bounds=...): the {side} bound of leaf {key!r} holds NaN")
            out[sl] = arr.ravel()
        if np.any(lower[sl] > upper[sl]):
            raise ValueError(f"{call}(bounds=...): leaf {key!r} has low > high (low {low!r}, "
                             f"high {high!r})")
    return lower, upper


class QuasiNewton(Optimizer):
    """Shared machinery of :class:`LBFGS` and :class:`BFGS`: the iteration, the line
    search, the cached loss and gradient, convergence. Subclasses give the
    direction and the curvature update."""

    needs_loss = True
    #: Runs on the same batch every iteration (the run layer batches everything).
    full_batch = True
    hyperparameters = {
        "learning_rate": H.Hyper(1.0, _positive, "scale of the first trial step of each line "
                                 "search", aliases={"lr": H.identity_alias}),
        "gtol": H.Hyper(1e-5, H.nonnegative, "stop when the largest |(projected) gradient| "
                                             "element is <= gtol"),
        "ftol": H.Hyper(2.2e-9, H.nonnegative, "stop when the loss decreases by a relative "
                                               "<= ftol"),
        "c1": H.Hyper(1e-4, _open_unit, "sufficient-decrease constant of the line search"),
        "c2": H.Hyper(0.9, _open_unit, "curvature constant of the line search"),
        "max_evals": H.Hyper(20, _count, "loss evaluations per line search"),
    }

    def _check_hyper(self, call, hyper):
        super()._check_hyper(call, hyper)
        name = type(self).__name__
        for key in _PIPELINE:
            default = Optimizer.hyperparameters[key].default
            if hyper[key] is not default and hyper[key] != default:
                raise ValueError(f"{call}({key}={hyper[key]!r}): {name} does not take {key}: its "
                                 "step comes from a line search, not from the gradient pipeline "
                                 "(momentum, noise, multipliers, clipping and weight decay do not "
                                 "apply); use a first-order algorithm for those")
        if not hyper["c1"] < hyper["c2"]:
            raise ValueError(f"{call}: the line search needs c1 < c2; got c1={hyper['c1']} and "
                             f"c2={hyper['c2']}")

    def _state_spec(self, hyper):
        spec = super()._state_spec(hyper)
        n = self.layout.size
        spec.update(x=Buffer((n,)), g=Buffer((n,)),            # the point, its gradient
                    f=Buffer((), dtype=np.float64),            # and its loss, when cached
                    cached=Buffer((), dtype=np.float64),       # 1 when x, f, g are valid
                    data_key=Buffer((), dtype=np.float64),     # the batch they belong to
                    status=Buffer((), dtype=np.float64),       # see STATUS
                    nfev=Buffer((), dtype=np.float64))         # evaluations so far
        return spec

    # -- subclasses -------------------------------------------------------
    def _direction(self, g, free, out):
        """Write ``-H g`` into ``out`` (``free``: mask of the free variables, or None)."""
        raise NotImplementedError

    def _remember(self, s, y):
        """Take the curvature pair ``(s, y)`` into the approximation."""
        raise NotImplementedError

    def _forget(self):
        """Drop the curvature information (start again from steepest descent)."""
        raise NotImplementedError

    def _has_memory(self):
        raise NotImplementedError

    # -- public -----------------------------------------------------------
    @property
    def converged(self):
        """Why the latest iteration stopped the method: ``'gtol'``, ``'ftol'``,
        ``'linesearch'`` (no step decreased the loss), or ``''``."""
        return STATUS[int(self.state["status"])]

    @property
    def nfev(self):
        """Loss (and gradient) evaluations made so far."""
        return int(self.state["nfev"])

    def update(self, grads, *batch):
        """Refused: a quasi-Newton step needs the loss for its line search; use :meth:`step`."""
        raise TypeError(f"{type(self).__name__}.update: a quasi-Newton step evaluates the loss "
                        "in its line search; call step(*batch) (or minimize / solve)")

    apply = update
    get_updates = update

    def step(self, *batch):
        """One iteration: direction, line search, move; returns the monitors.

        Parameters
        ----------
        *batch : arrays
            Passed to the loss as ``loss(params, *batch)``; the same every
            call (the loss and gradient of the accepted point are reused by
            the next call when the params and the batch are unchanged).

        Returns
        -------
        dict
            ``'loss'`` (at the start of the iteration), the user's monitors,
            ``learning_rate``, ``step_length`` (the accepted
            :math:`\\alpha`, 0 when nothing moved) and ``evaluations`` (of
            this iteration). :attr:`converged` says whether the method has
            stopped.

        Raises
        ------
        NonFiniteError
            The loss or gradient at the current params is not finite.
        """
        call = f"{type(self).__name__}.step"
        self._check_params(call)
        if len(batch) not in self._arity_checked:
            self.check_batch(len(batch), call)
            self._arity_checked.add(len(batch))
        st = self.state
        self._evals = 0                       # this iteration's evaluations, counted on success
        x = self._start_point(call)
        key = _batch_key(batch)
        if not (st["cached"] == 1 and st["data_key"] == key and np.array_equal(st["x"], x)):
            f, g = self._evaluate(x, batch, call)
            if not (math.isfinite(f) and np.isfinite(g).all()):
                raise NonFiniteError(f"{type(self).__name__}: the loss or gradient is not finite "
                                     f"at the current params (loss {f}) at update "
                                     f"{self.updates + 1}; nothing was applied",
                                     "loss" if not math.isfinite(f) else "gradient",
                                     [] if not math.isfinite(f) else self._nonfinite_leaves(g),
                                     self.updates)
            self._keep(x, f, g, key)
        f, g = float(st["f"]), st["g"].copy()
        monitors = {"loss": f}
        monitors.update(evaluate_monitors(self.monitors, self.params, batch))
        if self.monitor_gradients:
            monitors.update(self._gradient_norms(g))
        alpha, status = self._iterate(x, f, g, batch, call, key)
        st["status"][...] = _CODE[status]
        st["nfev"][...] += self._evals
        self.last_learning_rate = self.hyper["learning_rate"]
        monitors.update(learning_rate=self.last_learning_rate, step_length=alpha,
                        evaluations=float(self._evals))
        return monitors

    # -- the iteration ----------------------------------------------------
    def _start_point(self, call):
        """The current params, flat; clipped into the bounds (with a WARNING) if outside."""
        x = self.layout.read(self.layout.empty())
        lower, upper = self._bounds
        if lower is not None:
            clipped = np.clip(x, lower, upper)
            if not np.array_equal(clipped, x):
                outside = [n for n, a, b in zip(self.layout.names, self.layout.views(x),
                                                self.layout.views(clipped))
                           if not np.array_equal(a, b)]
                logger.warning("%s: the params in %s were outside the bounds; they were clipped "
                               "into the box (as scipy does)", call, outside)
                self.layout.write(clipped)
                x = clipped
        return x

    def _evaluate(self, x, batch, call):
        """Loss and flat gradient at the flat point ``x`` (the user's arrays untouched)."""
        f, grads = self._loss_and_grads(batch, call, self.layout.unflatten(x))
        self._evals += 1
        g = self.layout.gather(grads, self.layout.empty(), f"{call}: gradient")
        if self._mask is not None:
            g *= self._mask                  # frozen leaves have no gradient to follow
        return f, g

    def _keep(self, x, f, g, key):
        st = self.state
        np.copyto(st["x"], x)
        np.copyto(st["g"], g)
        st["f"][...], st["cached"][...], st["data_key"][...] = f, 1.0, key

    def _free(self, x, g):
        """Mask of the variables free to move (not held at a bound by the gradient)."""
        lower, upper = self._bounds
        if lower is None:
            return None
        return ~(((x <= lower) & (g > 0)) | ((x >= upper) & (g < 0)))

    def _projected_gradient(self, x, g):
        lower, upper = self._bounds
        if lower is None:
            return g
        return np.clip(x - g, lower, upper) - x

    def _iterate(self, x, f, g, batch, call, key):
        """Direction, line search and the move; return ``(alpha, status)``."""
        h = self.hyper
        if np.max(np.abs(self._projected_gradient(x, g))) <= h["gtol"]:
            return 0.0, "gtol"
        free = self._free(x, g)
        d = np.empty_like(x)
        for attempt in ("quasi-Newton", "steepest descent"):
            self._direction(g, free, d)
            if free is not None:
                d[~free] = 0
            slope0 = float(np.dot(g, d))
            if not slope0 < 0:               # rounding made it no descent direction: restart
                self._forget()
                continue
            alpha_max = self._max_step(x, d)
            if alpha_max <= 0:
                self._forget()
                continue
            first = 1.0 if self._has_memory() else min(1.0, 1.0 / float(np.linalg.norm(d)))
            result = self._search(x, d, f, slope0, h["learning_rate"] * first, alpha_max,
                                  batch, call)
            if result.ok:
                break
            if not self._has_memory():
                return 0.0, "linesearch"
            self._forget()                   # a stale model: try steepest descent once
        else:
            return 0.0, "linesearch"
        alpha = result.alpha
        x_new, g_new = result.extra
        s, y = x_new - x, g_new - g
        if np.dot(s, y) > np.finfo(float).eps * np.linalg.norm(s) * np.linalg.norm(y):
            self._remember(s, y)
        self.layout.write(x_new)
        self._keep(x_new, result.f, g_new, key)
        self._updates += 1
        if (f - result.f) <= h["ftol"] * max(abs(f), abs(result.f), 1.0):
            return alpha, "ftol"
        if np.max(np.abs(self._projected_gradient(x_new, g_new))) <= h["gtol"]:
            return alpha, "gtol"
        return alpha, ""

    def _max_step(self, x, d):
        """The largest step along ``d`` that stays inside the bounds (inf without bounds)."""
        lower, upper = self._bounds
        if lower is None:
            return math.inf
        with np.errstate(divide="ignore", invalid="ignore"):
            room = np.where(d > 0, (upper - x) / d, np.where(d < 0, (lower - x) / d, np.inf))
        return float(np.min(room)) if room.size else math.inf

    def _search(self, x, d, f, slope0, alpha1, alpha_max, batch, call):
        lower, upper = self._bounds

        def phi(alpha):
            trial = x + alpha * d
            if lower is not None:
                np.clip(trial, lower, upper, out=trial)      # exact at the bound it reaches
            value, grad = self._evaluate(trial, batch, call)
            if not (math.isfinite(value) and np.isfinite(grad).all()):
                return math.inf, math.nan, None
            return value, float(np.dot(grad, d)), (trial, grad)

        h = self.hyper
        return strong_wolfe(phi, f, slope0, alpha1, c1=h["c1"], c2=h["c2"],
                            max_evals=h["max_evals"], alpha_max=alpha_max)

    @property
    def _bounds(self):
        return getattr(self, "_lower_upper", (None, None))


def _batch_key(batch):
    """A number that changes when the batch's data change (for the loss cache)."""
    key = 0.0
    for i, a in enumerate(batch):
        a = np.asarray(a)
        with np.errstate(all="ignore"):
            total = float(np.sum(a, dtype=np.float64)) if a.dtype.kind in "biuf" else 0.0
        key += (i + 1) * (total + 0.5 * a.size + 0.25 * a.ndim)
    return key


@register
class LBFGS(QuasiNewton):
    r"""Limited-memory BFGS, with optional bounds (an L-BFGS-B-style projected method).

    The direction comes from the two-loop recursion over the last ``m``
    curvature pairs (computed in its compact matrix form), with the initial
    scaling
    :math:`H_k^0 = \frac{s_{k-1}^\top y_{k-1}}{y_{k-1}^\top y_{k-1}} I`:

    .. math::

        q &= g_k; \quad \text{for } i = k-1, \dots, k-m:\
            a_i = \rho_i s_i^\top q,\ q \leftarrow q - a_i y_i \\
        r &= H_k^0 q; \quad \text{for } i = k-m, \dots, k-1:\
            b = \rho_i y_i^\top r,\ r \leftarrow r + (a_i - b) s_i \\
        d_k &= -r

    The first iteration (and any restart) moves along :math:`-g` with a first
    trial step no longer than one unit (:math:`\alpha_0 = \min(1, 1/\lVert g\rVert)`).
    With ``bounds`` the start point is clipped into the box (as scipy does), a
    variable at a bound whose gradient pushes it outwards is held there, the
    direction is computed for the free variables (the recursion runs on the
    pairs restricted to them), and the line search stops at the box's edge; convergence is tested on the projected gradient
    :math:`P(x - g) - x`. This is simpler than L-BFGS-B's generalized Cauchy
    point (one bound can become active per iteration), which suits the small
    problems it is meant for.

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`; the loss is required.
    history_size : int, default 10
        :math:`m`, the pairs kept (scipy's ``maxcor``, optax's ``memory_size``;
        torch uses 100).
    bounds : None, dict or (low, high), default None
        ``{leaf name: (low, high)}``, each a number, an array broadcastable
        to the leaf, or None for no bound; or one ``(low, high)`` for every leaf.
    gtol : float, default 1e-5
        Stop when :math:`\max_i |(P g)_i| \le` gtol (scipy's ``gtol`` / ``pgtol``).
    ftol : float, default 2.2e-9
        Stop when :math:`(f_k - f_{k+1}) / \max(|f_k|, |f_{k+1}|, 1) \le` ftol
        (scipy's L-BFGS-B ``ftol``).
    learning_rate : float, default 1.0
        Scales the first trial step of each line search.
    c1, c2, max_evals : default 1e-4, 0.9, 20
        The strong Wolfe line search's constants and evaluation budget.
    frozen : list of str
        Leaves that never move.

    Notes
    -----
    One :meth:`step` is one iteration (torch's ``LBFGS.step`` runs up to 20
    and needs a closure; here the loss is given once). The line search's
    loss and gradient at the accepted point are reused by the next
    iteration. scipy's L-BFGS-B uses the Moré-Thuente line search with
    ``c1 = 1e-3``; optax's ``lbfgs`` the same zoom search as here.

    References
    ----------
    Liu, D. C. and Nocedal, J. (1989). On the limited memory BFGS method for
    large scale optimization. Mathematical Programming 45, 503-528.

    Byrd, R. H., Nocedal, J. and Schnabel, R. B. (1994). Representations of
    quasi-Newton matrices and their use in limited memory methods.
    Mathematical Programming 63, 129-156.

    Byrd, R. H., Lu, P., Nocedal, J. and Zhu, C. (1995). A limited memory
    algorithm for bound constrained optimization. SIAM J. Sci. Comput. 16,
    1190-1208.
    """

    name = "lbfgs"
    summary = "limited-memory BFGS, strong Wolfe line search, optional bounds; full batch"
    hyperparameters = {
        "history_size": H.Hyper(10, _count, "curvature pairs kept (m)"),
        "bounds": H.Hyper(None, _bounds_spec, "{leaf: (low, high)} box constraints"),
    }

    def _check_hyper(self, call, hyper):
        super()._check_hyper(call, hyper)
        bounds_arrays(self.layout, hyper["bounds"], call)

    def _commit_hyper(self, call, hyper, **kwargs):
        super()._commit_hyper(call, hyper, **kwargs)
        self._lower_upper = bounds_arrays(self.layout, self.hyper["bounds"], call)

    def _state_spec(self, hyper):
        spec = super()._state_spec(hyper)
        m, n = hyper["history_size"], self.layout.size
        spec.update(S=Buffer((m, n)), Y=Buffer((m, n)), rho=Buffer((m,)),
                    pairs=Buffer((), dtype=np.float64), head=Buffer((), dtype=np.float64))
        return spec

    def _hyper_changed(self, old, changed):
        super()._hyper_changed(old, changed)
        if "history_size" in changed:
            self._forget()                   # the buffers were made afresh
        if "bounds" in changed:
            self.state["cached"][...] = 0.0  # the projected gradient changed meaning

    def _has_memory(self):
        return self.state["pairs"] > 0

    def _forget(self):
        self.state["pairs"][...], self.state["head"][...] = 0.0, 0.0

    def _remember(self, s, y):
        st = self.state
        m, head = st["S"].shape[0], int(st["head"])
        st["S"][head], st["Y"][head] = s, y
        st["rho"][head] = 1.0 / float(np.dot(y, s))
        st["head"][...] = (head + 1) % m
        st["pairs"][...] = min(int(st["pairs"]) + 1, m)

    def _direction(self, g, free, out):
        # The compact form of the two-loop recursion (Byrd, Nocedal & Schnabel 1994):
        # with the pairs as rows of S and Y (oldest first), R = triu(S Y'), D = diag(S Y')
        # and H0 = gamma I, gamma = s'y / y'y of the newest pair,
        #   H q = gamma q + S u + gamma Y' v,   v = -R^-1 (S q),
        #   u = R^-T ((D + gamma Y Y') R^-1 (S q) - gamma Y q)
        # -- the same vector as the two loops, in a dozen whole-array operations.
        st = self.state
        m, k, head = st["S"].shape[0], int(st["pairs"]), int(st["head"])
        q = g if free is None else g * free
        order = [(head - k + i) % m for i in range(k)]
        S, Y = st["S"][order], st["Y"][order]
        if free is not None and k:
            # variables held at a bound take no part: the pairs restricted to the free
            # variables (those with no curvature there are left out)
            S *= free
            Y *= free
            sy = np.einsum("ij,ij->i", S, Y)
            keep = sy > np.finfo(float).eps * np.linalg.norm(S, axis=1) * np.linalg.norm(Y, axis=1)
            S, Y = S[keep], Y[keep]
        if not len(S):
            np.negative(q, out=out)
            return
        SY = S @ Y.T
        R, D = np.triu(SY), np.diag(SY)
        gamma = D[-1] / np.dot(Y[-1], Y[-1])
        Rinv_a = np.linalg.solve(R, S @ q)
        u = np.linalg.solve(R.T, D * Rinv_a + gamma * ((Y @ Y.T) @ Rinv_a) - gamma * (Y @ q))
        out[...] = -(gamma * q + S.T @ u - gamma * (Y.T @ Rinv_a))


#: Largest problem BFGS takes: its dense n x n matrix costs O(n^2) memory and work.
BFGS_MAX_SIZE = 5000


@register
class BFGS(QuasiNewton):
    r"""BFGS with a dense inverse-Hessian approximation, for up to a few thousand parameters.

    .. math::

        H_{k+1} = (I - \rho_k s_k y_k^\top) H_k (I - \rho_k y_k s_k^\top)
                  + \rho_k s_k s_k^\top

    with :math:`H_0 = I`, rescaled to
    :math:`\frac{y_0^\top s_0}{y_0^\top y_0} I` before the first update
    (Nocedal & Wright eq. 6.20). The first step moves along :math:`-g` no
    longer than one unit. Problems of more than 5000 parameters are refused:
    use :class:`LBFGS`.

    Parameters
    ----------
    loss, params, monitors, monitor_gradients
        See :class:`~npdownhill.Optimizer`; the loss is required.
    gtol, ftol, learning_rate, c1, c2, max_evals, frozen
        As for :class:`LBFGS`. scipy's BFGS stops on ``gtol`` alone; ``ftol``
        here also stops on a stalled loss.

    References
    ----------
    Nocedal, J. and Wright, S. J. (2006). Numerical Optimization, 2nd ed.,
    section 6.1. Springer.
    """

    name = "bfgs"
    summary = "dense BFGS, strong Wolfe line search; full batch, up to 5000 parameters"

    def _state_spec(self, hyper):
        n = self.layout.size
        if n > BFGS_MAX_SIZE:
            raise ValueError(f"BFGS(params): {n} parameters are too many for a dense "
                             f"{n} x {n} inverse Hessian (at most {BFGS_MAX_SIZE}); use 'lbfgs'")
        spec = super()._state_spec(hyper)
        spec.update(H=Buffer((n, n)), updated=Buffer((), dtype=np.float64))
        return spec

    def _has_memory(self):
        return self.state["updated"] > 0

    def _forget(self):
        np.copyto(self.state["H"], np.eye(self.layout.size))
        self.state["updated"][...] = 0.0

    def _sync_state(self):
        fresh = "H" not in self.state
        super()._sync_state()
        if fresh:
            self._forget()

    def _remember(self, s, y):
        Hm = self.state["H"]
        sy = float(np.dot(s, y))
        if self.state["updated"] == 0:
            np.copyto(Hm, np.eye(len(s)) * (sy / float(np.dot(y, y))))
        rho = 1.0 / sy
        Hy = Hm @ y
        # H += rho^2 (s'y + y'Hy) s s' - rho (Hy s' + s Hy')
        Hm += (rho * rho * (sy + float(np.dot(y, Hy)))) * np.outer(s, s)
        Hm -= rho * (np.outer(Hy, s) + np.outer(s, Hy))
        self.state["updated"][...] = 1.0

    def _direction(self, g, free, out):
        np.negative(self.state["H"] @ g, out=out)
