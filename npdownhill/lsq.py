"""Small least-squares fits with exact derivatives from autograd.

Write the residuals with ``autograd.numpy`` over a param tree;
this module fits them with the exact Jacobian of
:func:`npdownhill.derivatives.jacobian`:

* :func:`least_squares` -- Levenberg-Marquardt on that Jacobian, following
  MINPACK's ``lmder`` (Moré 1978), the algorithm behind
  ``scipy.optimize.least_squares(method='lm')``.

Curve fitting on top of it -- :func:`~npdownhill.curvefit.curve_fit`,
:func:`~npdownhill.curvefit.standard_errors` and the covariance of the
parameters -- lives in :mod:`npdownhill.curvefit`.

Parameters are laid out in one flat vector in the leaf order of
:class:`npdownhill.tree.Layout` (dict insertion order, then list order); the
columns of a Jacobian follow that order, and ``Layout(params).names`` names
them (see :mod:`npdownhill.derivatives`).

References
----------
.. [1] J. J. Moré, "The Levenberg-Marquardt algorithm: implementation and
   theory", in *Numerical Analysis*, G. A. Watson (ed.), Lecture Notes in
   Mathematics 630, Springer, 1978, pp. 105-116.
.. [2] J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed.,
   Springer, 2006, chapter 10 (least-squares problems).
"""

import math

import numpy as np

from .derivatives import _check_args, _check_callable, _Flat, _name, _shown
from .errors import NonFiniteError
from .fitresult import FitResult
from .hyper import number, suggest
from .tree import Layout

__all__ = ["least_squares"]

_EPS = float(np.finfo(np.float64).eps)
_DWARF = float(np.finfo(np.float64).tiny)
_FACTOR = 100.0       # initial trust-region radius: factor * ||D x0|| (MINPACK's default)
_METHODS = ("lm",)

MESSAGES = {
    -2: "Stopped because `callback` raised `StopIteration`.",
    -1: "Improper input parameters.",
    0: "The maximum number of function evaluations is exceeded.",
    1: "`gtol` termination condition is satisfied.",
    2: "`ftol` termination condition is satisfied.",
    3: "`xtol` termination condition is satisfied.",
    4: "Both `ftol` and `xtol` termination conditions are satisfied.",
}


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------

def _nonfinite_where(values, limit=5):
    bad = np.flatnonzero(~np.isfinite(values))
    shown = ", ".join(str(i) for i in bad[:limit])
    return f"[{shown}{', ...' if bad.size > limit else ''}]"


# ---------------------------------------------------------------------------
# Levenberg-Marquardt
# ---------------------------------------------------------------------------

def _norm(v):
    """The Euclidean norm of a vector, without overflow or underflow in the squares.

    ``sqrt(v . v)`` when that is safe; else scaled by the largest magnitude,
    as MINPACK's ``enorm`` does, so residuals of 1e200 have a finite norm.
    Returns ``inf`` or ``nan`` when ``v`` holds them.
    """
    big = float(np.max(np.abs(v))) if v.size else 0.0
    if not 0.0 < big < math.inf:
        return big
    if 1e-100 < big < 1e100:
        return math.sqrt(float(np.dot(v, v)))
    w = v / big
    return big * math.sqrt(float(np.dot(w, w)))


def _column_norms(J):
    """The Euclidean norms of the columns of ``J`` (overflow-safe, as :func:`_norm`)."""
    big = np.max(np.abs(J), axis=0)
    if np.all((big > 1e-100) & (big < 1e100)):
        return np.sqrt(np.einsum("ij,ij->j", J, J))
    scale = np.where(big > 0, big, 1.0)
    return big * np.sqrt(np.einsum("ij,ij->j", J / scale, J / scale))


def _solve(A, b):
    """``A^{-1} b`` for a square triangular ``A``; least squares if it is singular."""
    try:
        return np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(A, b, rcond=None)[0]


def _lm_parameter(R, D, qtf, delta, par):
    """The Levenberg-Marquardt parameter and step for a trust radius ``delta``.

    With ``J = Q R`` (``R`` upper triangular, n x n) and ``qtf = Q^T f``,
    the step for a parameter ``lam >= 0`` is ``-s(lam)`` where ``s(lam)``
    solves ``(J^T J + lam D^2) s = J^T f``, i.e. the least-squares problem
    ``[R; sqrt(lam) D] s ~ [qtf; 0]``. Let ``phi(lam) = ||D s(lam)|| - delta``.
    Returns ``lam = 0`` (the Gauss-Newton step) when ``phi(0) <= 0.1 delta``,
    else a ``lam > 0`` with ``|phi(lam)| <= 0.1 delta``, found as in Moré
    (1978, section 5) by Newton's method on ``1/||D s||`` safeguarded by the
    bounds ``l <= lam <= u``:

    * ``u = ||D^{-1} J^T f|| / delta``;
    * ``l = phi(0) / (delta * ||y||^2)`` with ``R^T y = D^2 s(0) / ||D s(0)||``
      when ``J`` has full rank, else 0;
    * the Newton correction ``(phi / delta) / ||y||^2`` with ``S^T y = D^2 s /
      ||D s||``, where ``S^T S = J^T J + lam D^2`` (``S`` from the QR
      factorization of ``[R; sqrt(lam) D]``);

    at most 10 iterations. ``par`` is the previous iteration's parameter, the
    starting guess. Returns ``(lam, s)``.
    """
    n = D.size
    rank_deficient = not np.all(np.diag(R) != 0)
    if rank_deficient:
        step = np.linalg.lstsq(R, qtf, rcond=None)[0]
    else:
        step = _solve(R, qtf)
    Ds = D * step
    dxnorm = _norm(Ds)
    fp = dxnorm - delta
    if fp <= 0.1 * delta:
        return 0.0, step
    if rank_deficient:
        parl = 0.0
    else:
        y = _solve(R.T, D * Ds / dxnorm)
        parl = fp / delta / np.dot(y, y)
    gnorm = _norm((R.T @ qtf) / D)
    paru = gnorm / delta
    if paru == 0.0:
        paru = _DWARF / min(delta, 0.1)
    par = min(max(par, parl), paru)
    if par == 0.0:
        par = gnorm / dxnorm
    stacked = np.zeros((2 * n, n))
    stacked[:n] = R
    diagonal = np.arange(n)
    for iteration in range(1, 11):
        if par == 0.0:
            par = max(_DWARF, 0.001 * paru)
        stacked[n + diagonal, diagonal] = math.sqrt(par) * D
        Q2, S = np.linalg.qr(stacked)
        step = _solve(S, Q2[:n].T @ qtf)
        Ds = D * step
        dxnorm = _norm(Ds)
        previous, fp = fp, dxnorm - delta
        if (abs(fp) <= 0.1 * delta or (parl == 0.0 and fp <= previous < 0.0)
                or iteration == 10):
            break
        y = _solve(S.T, D * Ds / dxnorm)
        correction = fp / delta / np.dot(y, y)
        if fp > 0.0:
            parl = max(parl, par)
        elif fp < 0.0:
            paru = min(paru, par)
        par = max(parl, par + correction)
    return par, step


def _check_jacobian(J, layout, call, nit):
    if np.all(np.isfinite(J)):
        return
    columns = np.flatnonzero(~np.all(np.isfinite(J), axis=0))
    leaves = sorted({layout.names[int(np.searchsorted(layout.offsets, c, side="right")) - 1]
                     for c in columns})
    where = "the starting params" if nit == 0 else f"the params after {nit} iterations"
    shown = ", ".join(str(c) for c in columns[:5]) + (", ..." if columns.size > 5 else "")
    raise NonFiniteError(f"{call}: the Jacobian is not finite at {where} (columns [{shown}], "
                         f"leaves {leaves}); the params hold that point",
                         "gradient", leaves=leaves, update=nit)


def _levenberg_marquardt(flat, layout, x, r, J, mode, tols, max_nfev, callback, params, call):
    """MINPACK lmder's iteration; see :func:`least_squares` for the math.

    Returns ``(x, r, J, mode, nfev, njev, nit, status, stale)``; ``stale``
    says that ``J`` is not the Jacobian at ``x`` (the last step was accepted).
    """
    ftol, xtol, gtol = tols
    dtype = layout.dtype
    nfev, njev, nit = 1, 1, 0
    fnorm = _norm(r)
    par = 0.0
    D = delta = xnorm = None
    stale = False
    rejected = None     # (point, residuals) of the last rejected trial
    while True:
        # -- one outer iteration at x: J, its QR factorization, the gtol test --
        if stale:
            _, J, mode = flat.jacobian(x.astype(dtype), mode, fallback=True)
            J = np.asarray(J, dtype=np.float64)
            njev += 1
            stale = False
            _check_jacobian(J, layout, call, nit)
        Q, R = np.linalg.qr(J)
        colnorms = _column_norms(J)
        if D is None:
            D = np.where(colnorms == 0.0, 1.0, colnorms)
            xnorm = _norm(D * x)
            delta = _FACTOR * xnorm if xnorm != 0.0 else _FACTOR
        qtf = Q.T @ r
        gnorm = 0.0
        if fnorm != 0.0:
            g = J.T @ r
            live = colnorms != 0.0
            if live.any():
                gnorm = float(np.max(np.abs(g[live]) / (colnorms[live] * fnorm)))
        if gnorm <= gtol:
            return x, r, J, mode, nfev, njev, nit, 1, stale
        D = np.maximum(D, colnorms)
        # -- inner loop: trial steps until one is accepted ---------------------
        while True:
            par, s = _lm_parameter(R, D, qtf, delta, par)
            p = -s
            trial = (x + p).astype(dtype)
            pnorm = _norm(D * p)
            if nit == 0:
                delta = min(delta, pnorm)
            if rejected is not None and np.array_equal(trial, rejected[0]):
                r_trial = rejected[1]    # the same point again (see Notes): no new call
            else:
                r_trial = flat.value(trial)
                nfev += 1
            fnorm1 = _norm(r_trial)
            # a trial with NaN or infinite residuals is a failed step with actred = -1,
            # the radius shrunk by the formula below; never accepted (see Notes)
            finite = math.isfinite(fnorm1)
            actred = 1.0 - (fnorm1 / fnorm) ** 2 if finite and 0.1 * fnorm1 < fnorm else -1.0
            temp1 = _norm(R @ p) / fnorm
            temp2 = math.sqrt(par) * pnorm / fnorm
            prered = temp1 ** 2 + temp2 ** 2 / 0.5
            dirder = -(temp1 ** 2 + temp2 ** 2)
            ratio = actred / prered if prered != 0.0 else 0.0
            if ratio <= 0.25:
                shrink = 0.5 if actred >= 0.0 else 0.5 * dirder / (dirder + 0.5 * actred)
                if (finite and 0.1 * fnorm1 >= fnorm) or shrink < 0.1:
                    shrink = 0.1
                delta = shrink * min(delta, pnorm / 0.1)
                par = par / shrink
            elif par == 0.0 or ratio >= 0.75:
                delta = pnorm / 0.5
                par = 0.5 * par
            accepted = ratio >= 1e-4
            rejected = None if accepted else (trial, r_trial)
            if accepted:
                x = trial.astype(np.float64)
                r = r_trial
                fnorm = fnorm1
                xnorm = _norm(D * x)
                nit += 1
                stale = True
                layout.write(x)          # the caller's arrays always hold the best point
                if callback is not None:
                    so_far = FitResult(x=params, cost=0.5 * float(np.dot(r, r)), fun=r.copy(),
                                       nfev=nfev, njev=njev, nit=nit)
                    try:
                        callback(so_far)
                    except StopIteration:
                        return x, r, J, mode, nfev, njev, nit, -2, stale
            ftol_met = abs(actred) <= ftol and prered <= ftol and 0.5 * ratio <= 1.0
            # (delta can only reach 0 by underflow, when x = 0 and steps keep failing)
            xtol_met = delta <= xtol * xnorm or delta == 0.0
            if ftol_met or xtol_met:
                status = 4 if ftol_met and xtol_met else 2 if ftol_met else 3
                return x, r, J, mode, nfev, njev, nit, status, stale
            if nfev >= max_nfev:
                return x, r, J, mode, nfev, njev, nit, 0, stale
            if accepted:
                break


def least_squares(residuals, params, args=(), method="lm", ftol=1e-8, xtol=1e-8, gtol=1e-8,
                  max_nfev=None, callback=None):
    r"""Minimize ``0.5 * sum(residuals(params, *args)**2)`` by Levenberg-Marquardt.

    The Jacobian is exact (:func:`~npdownhill.derivatives.jacobian`,
    autograd), and the iteration is MINPACK's ``lmder`` as described by
    Moré [1]_, the algorithm of ``scipy.optimize.least_squares(method='lm')``,
    written here from the paper's formulas with ``numpy.linalg`` for the
    linear algebra.

    Parameters
    ----------
    residuals : callable
        ``residuals(params, *args) -> r``, written with ``autograd.numpy``,
        returning a 1-D array of ``m >= n`` real residuals (``n`` the number
        of parameter elements). It receives a tree shaped like ``params``
        whose leaves are read-only arrays (not the caller's own arrays).
    params : ndarray, dict, list or tuple
        The starting point, a param tree of floating-point arrays. It is
        updated in place: on return (and after every accepted step) its
        arrays hold the solution, and ``result.x`` is this same tree.
    args : tuple, optional
        Extra positional arguments of ``residuals``.
    method : {'lm'}, optional
        Levenberg-Marquardt, the only method implemented.
    ftol, xtol, gtol : float, optional
        Termination tolerances, each at least the float64 machine epsilon
        (2.22e-16), as scipy requires for ``'lm'``. With ``f`` the residuals,
        ``D`` the scaling, ``delta`` the trust radius and ``p`` the step:

        * ``ftol``: both the actual and the predicted relative reductions of
          ``||f||^2`` are at most ``ftol`` (and the ratio of the two at most
          2); status 2;
        * ``xtol``: ``delta <= xtol * ||D x||``; status 3 (4 when both hold);
        * ``gtol``: the largest cosine between ``f`` and a column of ``J``,
          ``max_j |J_j^T f| / (||J_j|| ||f||)``, is at most ``gtol``; status 1.

        For ``float32`` params the trial points are rounded to ``float32``,
        and ``ftol`` and ``xtol`` are raised to at least float32's epsilon
        (1.19e-7), since no reduction below that can be resolved. Expect
        the cost within about 1e-6 (relative) of a float64 fit's, and the
        params of a well-conditioned fit within about 1e-5 (the tests hold
        the damped-oscillator fit to these; ill-conditioned problems lose
        more, in proportion to their conditioning).
    max_nfev : int, optional
        Stop after this many residual evaluations (see Notes for what is
        counted); default ``100 * n``, as scipy's ``'lm'``.
    callback : callable, optional
        ``callback(result_so_far)`` after each iteration (each accepted
        step), with a :class:`FitResult` holding ``x`` (the params tree, now
        holding the new point), ``cost``, ``fun``, ``nfev``, ``njev`` and
        ``nit``. Raising ``StopIteration`` stops the fit (status -2).

    Returns
    -------
    FitResult
        With scipy's fields: ``x`` (the ``params`` tree itself, holding the
        solution), ``cost`` (``0.5 * sum(fun**2)``), ``fun`` (residuals at the
        solution, float64), ``jac`` (the exact ``m x n`` Jacobian there),
        ``grad`` (``jac.T @ fun``), ``optimality`` (``max |grad|``), ``nfev``,
        ``njev``, ``nit`` (accepted steps), ``status``, ``success``
        (``status > 0``) and ``message``. Status codes are scipy's: -2
        callback stop, 0 ``max_nfev`` reached, 1 ``gtol``, 2 ``ftol``,
        3 ``xtol``, 4 ``ftol`` and ``xtol``. (Improper input raises instead
        of returning status -1.)

    Raises
    ------
    TypeError
        ``residuals`` or ``callback`` not callable, ``args`` not a tuple,
        residuals that are not real numbers, a tolerance that is not a number.
    ValueError
        An unknown ``method``; a tolerance below 2.22e-16; ``max_nfev < 1``;
        residuals that are not 1-D or change length; fewer residuals than
        parameters (``m < n``, which ``'lm'`` cannot solve); residuals that
        are not finite at the start; a bad param tree.
    NonFiniteError
        The Jacobian is not finite at the start or at an accepted point.

    If anything raises mid-way (these errors, ``residuals`` itself, the
    callback, a ``KeyboardInterrupt``), ``params`` hold the best point found
    so far: every accepted point is written into them at once.

    Notes
    -----
    **The step.** At ``x`` with residuals ``f`` and Jacobian ``J``, the
    Levenberg-Marquardt step ``p`` solves

    .. math:: \min_p \|J p + f\|^2 \quad \text{subject to} \quad \|D p\| \le \Delta,

    whose solution is ``p(lam) = -(J^T J + lam D^2)^{-1} J^T f`` with
    ``lam = 0`` if the Gauss-Newton step is inside the region, else the
    ``lam > 0`` with ``||D p(lam)|| ~ Delta`` (within 10%), found by
    Moré's safeguarded Newton iteration on ``lam`` from the QR
    factorization ``J = Q R`` (``_lm_parameter``). ``D`` is diagonal, the
    running maximum of the column norms of ``J`` (scipy's default
    ``x_scale='jac'``), which makes the iteration invariant to a rescaling
    of the parameters.

    **The trust region.** The first radius is ``100 ||D x0||`` (or 100),
    cut to the first step's length. A trial point is judged by the ratio
    ``rho`` of the actual to the predicted reduction of ``||f||^2``, both
    relative to ``||f||^2``; the prediction is
    ``(||J p||^2 + 2 lam ||D p||^2) / ||f||^2``. If ``rho <= 1/4`` the radius
    shrinks by a factor between 1/10 and 1/2 (from a quadratic fit of
    ``||f(x + t p)||^2`` in ``t``)
    and ``lam`` grows by its inverse; if ``rho >= 3/4`` (or ``lam = 0``) the
    radius becomes ``2 ||D p||`` and ``lam`` halves. The point is accepted
    if ``rho >= 1e-4``. A trial point whose residuals are not all finite (NaN
    or infinite) counts as a failed step whose sum of squares doubled
    (actual reduction -1): it is never accepted, the radius shrinks by a
    factor in [1/10, 1/2] and ``lam`` grows. (MINPACK does the same, by
    way of IEEE comparisons, for NaN and for two or more infinite
    residuals, whose norm its ``enorm`` makes NaN.) Norms are computed
    without overflow, so residuals as large as 1e200 still work.

    **Accounting.** ``nfev`` and ``njev`` count as MINPACK (and therefore
    scipy's ``'lm'`` given a callable ``jac``) counts: ``nfev`` is the number
    of points at which the residuals were needed (the start and every trial
    point), ``njev`` the number of points at which the Jacobian was needed
    (the start and every accepted point that begins a new iteration), so
    the two libraries' numbers compare one for one. The calls of
    ``residuals`` itself differ: a Jacobian evaluation runs ``residuals``
    traced (``n`` forward-mode passes, or one traced pass and ``m`` backward
    passes when ``m == n``) and gives the residuals as well, so the start
    costs no separate plain call; and when the fit ends right after an
    accepted step, one more Jacobian evaluation at the solution fills
    ``jac`` and ``grad`` (scipy also calls its ``jac`` there without
    counting it).

    **One saving over MINPACK.** After a failed step MINPACK can propose the
    very same trial point again: the Gauss-Newton step, when the shrunken
    radius still holds it. Here the residuals of the last rejected point are
    reused for it instead of being evaluated again (``residuals`` must be a
    deterministic function of the params). The iterates are MINPACK's; only
    ``nfev`` is smaller (so ``max_nfev`` allows a few more of them).

    Linear algebra is in float64 whatever the params' dtype.

    References
    ----------
    .. [1] J. J. Moré, "The Levenberg-Marquardt algorithm: implementation
       and theory", in *Numerical Analysis*, Lecture Notes in Mathematics
       630, Springer, 1978, pp. 105-116.
    .. [2] J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed.,
       Springer, 2006, section 10.3.

    Examples
    --------
    >>> import autograd.numpy as anp
    >>> p = {"x": np.array([-1.2, 1.0])}
    >>> res = least_squares(lambda p: anp.array([10 * (p["x"][1] - p["x"][0] ** 2),
    ...                                          1 - p["x"][0]]), p)
    >>> res.success, np.allclose(p["x"], [1.0, 1.0])
    (True, True)
    """
    return _least_squares(residuals, params, args, method, ftol, xtol, gtol, max_nfev, callback,
                          "least_squares", f"residuals ({_name(residuals)})")


def _least_squares(residuals, params, args, method, ftol, xtol, gtol, max_nfev, callback, call,
                   label):
    _check_callable(call, "residuals" if call == "least_squares" else "f", residuals)
    args = _check_args(call, args)
    if not isinstance(method, str) or method not in _METHODS:
        hint = suggest(method, _METHODS) if isinstance(method, str) else ""
        extra = (" ('trf' and 'dogbox' are not implemented)"
                 if method in ("trf", "dogbox") else "")
        raise ValueError(f"{call}(method={_shown(method)}): method must be 'lm'{extra}; "
                         f"got {_shown(method)}{hint}")
    tolerances = {}
    for name, value in (("ftol", ftol), ("xtol", xtol), ("gtol", gtol)):
        tolerances[name] = number(call, name, value, low=_EPS)
    if callback is not None:
        _check_callable(call, "callback", callback)
    layout = Layout(params, f"{call}(params)")
    n = layout.size
    if max_nfev is None:
        max_nfev = 100 * n
    else:
        max_nfev = number(call, "max_nfev", max_nfev, low=1, integer=True)
    floor = float(np.finfo(layout.dtype).eps) if layout.dtype.itemsize < 8 else 0.0
    ftol = max(tolerances["ftol"], floor)
    xtol = max(tolerances["xtol"], floor)
    gtol = tolerances["gtol"]

    flat = _Flat(residuals, layout, args, call, label)
    x = layout.read(layout.empty()).astype(np.float64)
    r, J, mode = flat.jacobian(x.astype(layout.dtype), "auto")
    r = np.asarray(r, dtype=np.float64)
    m = r.size
    if m < n:
        raise ValueError(f"{call}(method='lm'): needs at least as many residuals as "
                         f"parameters; got m={m} residuals for n={n} parameters")
    if not np.all(np.isfinite(r)):
        raise ValueError(f"{call}: the residuals are not finite at the starting params "
                         f"(indices {_nonfinite_where(r)} of {m})")
    J = np.asarray(J, dtype=np.float64)
    _check_jacobian(J, layout, call, 0)

    x, r, J, mode, nfev, njev, nit, status, stale = _levenberg_marquardt(
        flat, layout, x, r, J, mode, (ftol, xtol, gtol), max_nfev, callback, params, call)
    if stale:   # the last step was accepted: the Jacobian at the solution (not counted)
        _, J, _ = flat.jacobian(x.astype(layout.dtype), mode, fallback=True)
        J = np.asarray(J, dtype=np.float64)
    g = J.T @ r
    return FitResult(x=params, cost=0.5 * float(np.dot(r, r)), fun=r, jac=J, grad=g,
                     optimality=float(np.max(np.abs(g))), nfev=nfev, njev=njev, nit=nit,
                     status=status, success=status > 0, message=MESSAGES[status])
