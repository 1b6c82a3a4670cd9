"""``solve``: the one-call minimizer for small, full-batch fits, as scipy.optimize.minimize.

``solve(loss, params, args)`` minimizes ``loss(params, *args)`` over a param
tree with L-BFGS (default; with ``bounds``), BFGS, or any first-order rule of
npdownhill (run full batch, for teaching comparisons), writes the solution
into the caller's arrays and returns a :class:`~npdownhill.FitResult`.

Status codes (``result.status``):

==  ====================================================================
0   converged: the largest |(projected) gradient| element <= ``gtol``, or
    the loss changed by a relative <= ``ftol``
1   ``max_iter`` iterations were made
2   the callback raised ``StopIteration``
3   interrupted by Ctrl-C (the first press ends the fit after the
    current iteration; a second one interrupts at once)
4   the line search found no point that decreases the loss (usually the
    limit of floating-point precision near a minimum)
==  ====================================================================

``success`` is True for status 0 only.
"""

import logging
import math

import numpy as np

from .fitresult import FitResult
from .interrupt import DeferredInterrupt
from .optimizer import Optimizer
from .progress import Bar, check_progress, number, show_progress
from .registry import build, lookup

__all__ = ["solve", "STATUS"]

logger = logging.getLogger("npdownhill")

#: ``{status: meaning}`` of :func:`solve`'s results.
STATUS = {0: "converged", 1: "max_iter reached", 2: "stopped by the callback",
          3: "interrupted", 4: "the line search found no decrease"}

#: Iterations allowed when ``max_iter`` is None (scipy's L-BFGS-B default).
DEFAULT_MAX_ITER = 15000


def _check(call, loss, args, method, bounds, gtol, ftol, max_iter, callback):
    if not callable(loss):
        raise TypeError(f"{call}(loss=...): loss must be a callable loss(params, *args); "
                        f"got {type(loss).__name__}")
    if not isinstance(args, (tuple, list)):
        raise TypeError(f"{call}(args=...): args must be a tuple of the loss's extra arguments; "
                        f"got {type(args).__name__} (for one array x write args=(x,))")
    if isinstance(method, str):
        cls = lookup(method, call)
    elif isinstance(method, type) and issubclass(method, Optimizer):
        cls = method
    else:
        raise TypeError(f"{call}(method=...): method must be an algorithm name such as "
                        f"'lbfgs'; got {type(method).__name__}")
    if bounds is not None and "bounds" not in cls._hypers:
        raise ValueError(f"{call}(method={cls.name!r}, bounds=...): bounds are supported by "
                         "method='lbfgs' (a projected L-BFGS)")
    for name, value in (("gtol", gtol), ("ftol", ftol)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise TypeError(f"{call}({name}={value!r}): {name} must be a number; "
                            f"got {type(value).__name__}")
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{call}({name}={value!r}): {name} must be a finite number >= 0; "
                             f"got {value!r}")
    if max_iter is not None and (isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer))
                                 or max_iter < 1):
        raise ValueError(f"{call}(max_iter={max_iter!r}): max_iter must be an integer >= 1 or "
                         f"None; got {max_iter!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"{call}(callback=...): callback must be callable; "
                        f"got {type(callback).__name__}")
    return cls


def solve(loss, params, args=(), method="lbfgs", bounds=None, gtol=1e-5, ftol=2.2e-9,
          max_iter=None, callback=None, progress=None, **hyperparameters):
    """Minimize ``loss(params, *args)`` in place, as ``scipy.optimize.minimize`` would.

    Parameters
    ----------
    loss : callable
        ``loss(params, *args) -> float``, written with ``autograd.numpy``;
        its exact gradient comes from autograd.
    params : ndarray, dict, list or tuple
        The param tree: the start point, and where the solution is written.
    args : tuple
        Extra arguments of the loss (the data), the same at every iteration.
    method : str or Optimizer subclass, default 'lbfgs'
        ``'lbfgs'`` (bounds allowed), ``'bfgs'`` (up to 5000 parameters; the
        result has ``hess_inv``), or any first-order algorithm name
        (``'adam'``, ``'sgd'``, ...), run full batch until the same
        tolerances or ``max_iter``: slower, for comparisons.
    bounds : dict or (low, high), optional
        ``{leaf name: (low, high)}``, each a number, an array broadcastable
        to the leaf, or None; or one pair for every leaf. A start point
        outside the box is clipped into it (as scipy does), with a WARNING.
    gtol : float, default 1e-5
        Converged when the largest absolute (projected) gradient element is
        at most this (scipy's ``gtol``).
    ftol : float, default 2.2e-9
        Converged when :math:`(f_k - f_{k+1}) / \\max(|f_k|, |f_{k+1}|, 1)`
        is at most this (scipy L-BFGS-B's ``ftol``); for a first-order rule,
        whose loss may rise, the absolute change is tested.
    max_iter : int, optional
        Iterations allowed (15000 when None).
    callback : callable, optional
        ``callback(result_so_far)`` after every iteration, with a
        :class:`~npdownhill.FitResult` (``x`` is the params tree, ``fun``,
        ``nit``, ``nfev``); raising ``StopIteration`` stops the fit (status 2).
    progress : None, True or False
        A progress bar over the iterations showing the loss and the largest
        gradient element: None shows one in a terminal or a notebook when
        tqdm is installed (never in a pipe or on CI), True always (tqdm
        needed), False never.
    **hyperparameters
        Passed to the algorithm (``history_size=20``, ``learning_rate=0.01``, ...).

    Returns
    -------
    FitResult
        ``x`` (the params tree, now holding the solution), ``fun`` (its loss),
        ``jac`` (the gradient tree there), ``nit`` (iterations), ``nfev`` /
        ``njev`` (loss and gradient evaluations, always equal: autograd gives
        both in one pass), ``status`` and ``message`` (see :data:`STATUS`),
        ``success``, ``method``, and ``hess_inv`` for ``'bfgs'``.

    Raises
    ------
    TypeError, ValueError
        Bad arguments, named in the message; nothing is changed then.
    NonFiniteError
        The loss or gradient is not finite at the start, or (first-order
        rules) after a step; the params then hold the best point found.

    Notes
    -----
    The params keep the lowest loss seen: a quasi-Newton method only ever
    moves downhill; for a first-order rule, whose loss can rise, the best
    point is written back at the end. The fit runs on the CPU in the calling
    thread; for many fits at once see :func:`~npdownhill.minimize`'s
    relatives in the docs.

    Examples
    --------
    >>> import numpy as np, autograd.numpy as anp, npdownhill as dh
    >>> rosen = lambda p: (1 - p["x"]) ** 2 + 100 * (p["y"] - p["x"] ** 2) ** 2
    >>> params = {"x": np.array(-1.2), "y": np.array(1.0)}
    >>> result = dh.solve(rosen, params)
    >>> result.success, round(float(params["x"]), 5), round(float(params["y"]), 5)
    (True, 1.0, 1.0)
    """
    call = "solve"
    cls = _check(call, loss, args, method, bounds, gtol, ftol, max_iter, callback)
    check_progress(call, progress)
    args = tuple(args)
    limit = DEFAULT_MAX_ITER if max_iter is None else int(max_iter)
    if cls.full_batch:
        extra = {"gtol": gtol, "ftol": ftol}
        if bounds is not None:
            extra["bounds"] = bounds
        opt = build(cls, loss, params, **extra, **hyperparameters)
    else:
        opt = build(cls, loss, params, **hyperparameters)
    if opt.own_evaluation_params or opt.hyper["lookahead"] or opt.hyper["average"] is not None:
        raise ValueError(f"{call}(method={cls.name!r}): solve keeps the trained point of lowest "
                         "loss, but lookahead, averaging and the schedule-free rules evaluate "
                         "other params than they train; use minimize for them")
    if opt.hyper["accumulate"] > 1:
        raise ValueError(f"{call}(accumulate={opt.hyper['accumulate']}): solve evaluates the "
                         "whole data set at every iteration, so accumulating would average the "
                         "same gradient several times (and an iteration that only accumulates "
                         "would look converged); leave accumulate at 1")
    opt.check_batch(len(args), call)
    bar = Bar(show_progress(progress), max_iter, f"solve {opt.name}", "it")
    try:
        if cls.full_batch:
            return _quasi_newton(opt, args, limit, callback, bar)
        return _first_order(opt, args, gtol, ftol, limit, callback, bar)
    finally:
        bar.close()


def _result(opt, x_flat_g, fun, nit, nfev, status, detail):
    layout = opt.layout
    message = STATUS[status] + (f": {detail}" if detail else "")
    out = FitResult(x=opt.params, fun=float(fun), jac=layout.unflatten(x_flat_g.copy()),
                    nit=int(nit), nfev=int(nfev), njev=int(nfev), status=status,
                    success=status == 0, message=message, method=opt.name)
    if "H" in opt.state:
        out["hess_inv"] = opt.state["H"].copy()
    return out


_CONVERGED = {"gtol": "the largest |gradient| element is <= gtol",
              "ftol": "the relative reduction of the loss is <= ftol"}


def _callback_stops(callback, so_far):
    """Call ``callback(so_far())``; True when it raised StopIteration (status 2)."""
    if callback is None:
        return False
    try:
        callback(so_far())
    except StopIteration:
        return True
    return False


def _interrupted(iterations):
    """Ctrl-C ended the fit: say so; ``(status, detail)`` of the result."""
    logger.warning("solve: interrupted after %d iterations; the params hold the best point so "
                   "far", iterations)
    return 3, ""


def _quasi_newton(opt, args, limit, callback, bar):
    status, detail = 1, f"{limit} iterations"
    try:
        with DeferredInterrupt() as interrupt:
            for _ in range(limit):
                opt.step(*args)
                bar.update(1, loss=number(float(opt.state["f"])),
                           grad=number(float(np.max(np.abs(opt.state["g"])))))
                if opt.converged == "linesearch":
                    status, detail = 4, ""
                    break
                if opt.converged:
                    status, detail = 0, _CONVERGED[opt.converged]
                    break
                if _callback_stops(callback, lambda: _result(
                        opt, opt.state["g"], opt.state["f"], opt.updates, opt.nfev, 1, "running")):
                    status, detail = 2, ""
                    break
                interrupt.check()
    except KeyboardInterrupt:
        status, detail = _interrupted(opt.updates)
    return _result(opt, opt.state["g"], opt.state["f"], opt.updates, opt.nfev, status, detail)


def _first_order(opt, args, gtol, ftol, limit, callback, bar):
    """A first-order rule run full batch, with solve's tolerances; keeps the best point."""
    layout = opt.layout
    call = "solve"

    def evaluate():
        f, grads = opt._value_and_grad(args, call)
        return f, opt._gather_grads(grads, f"{call}: gradient").copy()

    f, g = evaluate()
    nfev, nit = 1, 0
    best_f, best_x, best_g = f, layout.read(layout.empty()), g.copy()
    status, detail = 1, f"{limit} iterations"
    try:
        with DeferredInterrupt() as interrupt:
            while nit < limit:
                if np.max(np.abs(g)) <= gtol:
                    status, detail = 0, _CONVERGED["gtol"]
                    break
                opt._take_step(g.copy(), args)
                nit += 1
                f_old = f
                f, g = evaluate()
                nfev += 1
                bar.update(1, loss=number(f), grad=number(float(np.max(np.abs(g)))))
                if f < best_f:
                    best_f, best_g = f, g.copy()
                    layout.read(best_x)
                if abs(f_old - f) <= ftol * max(abs(f_old), abs(f), 1.0):
                    status, detail = 0, "the relative change of the loss is <= ftol"
                    break
                if _callback_stops(callback, lambda: _result(opt, g, f, nit, nfev, 1, "running")):
                    status, detail = 2, ""
                    break
                interrupt.check()
    except KeyboardInterrupt:
        status, detail = _interrupted(nit)
    finally:                               # whatever happens, the params hold the best point
        layout.write(best_x)
    return _result(opt, best_g, best_f, nit, nfev, status, detail)
