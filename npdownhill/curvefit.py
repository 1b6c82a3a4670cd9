"""Curve fitting: ``popt, pcov`` as ``scipy.optimize.curve_fit`` gives them.

* :func:`curve_fit` -- fits a model ``f(xdata, params)`` to ``ydata`` with
  :func:`npdownhill.lsq.least_squares` (Levenberg-Marquardt on the exact
  Jacobian from autograd) and returns ``popt``, a new tree shaped like
  ``p0`` holding the fitted parameters (``p0`` itself is not modified), and
  ``pcov``, the ``n x n`` covariance of the flattened parameters;
* :func:`standard_errors` -- ``sqrt(diag(pcov))`` as a tree shaped like the
  params (also for ``inv(hessian(...))`` of a maximum-likelihood fit, with
  :func:`npdownhill.derivatives.hessian`);
* :class:`CovarianceWarning` -- issued when ``pcov`` cannot be estimated.

**The covariance.** With ``J`` the exact Jacobian of the (whitened)
residuals ``r`` at ``popt``, ``m`` residuals and ``n`` parameters,
``pcov = inv(J^T J)``, scaled by the reduced chi-square
``sum(r**2) / (m - n)`` unless ``absolute_sigma=True`` (then ``sigma`` is
taken as the data's actual standard deviations or covariance, and
``pcov = inv(J^T J)`` as it stands). ``inv(J^T J)`` is computed from the SVD
``J = U S V^T`` as ``V S^{-2} V^T``, without forming ``J^T J``.

**sigma.** A 1-D ``sigma`` of ``m`` standard deviations divides each
residual by its own; a 2-D ``sigma`` is the ``m x m`` covariance matrix
``C`` of ``ydata``, and its Cholesky factor ``C = L L^T`` whitens the
residuals, ``r = L^{-1} (f - y)``, so that ``r^T r = (f - y)^T C^{-1}
(f - y)``. ``J`` is then the Jacobian of these whitened residuals.

**The singular case.** When ``J^T J`` is numerically singular at the
solution (its smallest singular value ``s_min <= eps * max(m, n) * s_max``,
the usual numerical-rank threshold), or when ``m == n`` leaves no degree of
freedom to estimate the residual variance (without ``absolute_sigma``),
``pcov`` is filled with ``inf`` and a :class:`CovarianceWarning` is issued,
as ``scipy.optimize.curve_fit`` does with its ``OptimizeWarning``. A fit
that does not converge raises ``RuntimeError`` instead.

The rows and columns of ``pcov`` follow the leaf order of
:class:`npdownhill.tree.Layout` (dict insertion order, then list order);
``Layout(p0).names`` names them (see :mod:`npdownhill.derivatives`).

References
----------
.. [1] J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed.,
   Springer, 2006, section 10.3.
"""

import numbers
import warnings

import autograd.numpy as anp
import numpy as np
from autograd.tracer import getval

from .derivatives import _check_callable, _name, _shown
from .hyper import suggest
from .lsq import _EPS, _least_squares, _nonfinite_where
from .tree import Layout

__all__ = ["curve_fit", "standard_errors", "CovarianceWarning"]

_OPTIONS = ("method", "ftol", "xtol", "gtol", "max_nfev", "callback")


class CovarianceWarning(RuntimeWarning):
    """The covariance of the parameters could not be estimated.

    Issued by :func:`curve_fit` when ``J^T J`` is singular at the solution
    (numerically: its smallest singular value is below ``eps * max(m, n)``
    times the largest), or when there are no degrees of freedom left to
    estimate the residual variance (``m == n`` and not ``absolute_sigma``).
    ``pcov`` is then filled with ``inf``, as ``scipy.optimize.curve_fit``
    does with its ``OptimizeWarning``.
    """


def _real_array(call, name, value):
    try:
        array = np.asarray(value)
    except Exception as err:  # ragged lists and the like
        raise TypeError(f"{call}({name}=...): {name} must be an array of real numbers; "
                        f"{err}") from None
    if array.dtype.kind not in "fiu":
        raise TypeError(f"{call}({name}=...): {name} must hold real numbers; got dtype "
                        f"{array.dtype}")
    return array.astype(np.float64) if array.dtype.kind in "iu" else array


def _covariance(J, sum_sq, absolute_sigma, call):
    """``inv(J^T J)``, scaled by ``sum_sq / (m - n)`` unless ``absolute_sigma``.

    Computed from the SVD ``J = U S V^T`` as ``V S^{-2} V^T``. ``J^T J`` is
    taken as singular when ``s_min <= eps * max(m, n) * s_max`` (the usual
    numerical-rank threshold; scipy's ``curve_fit`` uses it for 'trf' and
    'dogbox'); ``pcov`` is then all ``inf`` and a :class:`CovarianceWarning`
    is issued, as when ``m == n`` leaves no degree of freedom.
    """
    m, n = J.shape
    singular = True
    if np.all(np.isfinite(J)):
        _, s, Vt = np.linalg.svd(J, full_matrices=False)
        singular = not (s[0] > 0.0 and s[-1] > _EPS * max(m, n) * s[0])
    reason = None
    if singular:
        reason = "the Jacobian at the solution is singular (J^T J cannot be inverted)"
    elif not absolute_sigma and m <= n:
        reason = (f"there are as many residuals as parameters (m = n = {n}): no degree of "
                  "freedom is left to estimate the residual variance")
    if reason is not None:
        warnings.warn(f"{call}: covariance of the parameters could not be estimated: {reason}; "
                      "pcov is filled with inf", CovarianceWarning, stacklevel=3)
        return np.full((n, n), np.inf)
    pcov = (Vt.T / s ** 2) @ Vt
    pcov = 0.5 * (pcov + pcov.T)
    if not absolute_sigma:
        pcov *= sum_sq / (m - n)
    return pcov


def curve_fit(f, xdata, ydata, p0, sigma=None, absolute_sigma=False, **least_squares_options):
    r"""Fit ``f(xdata, params)`` to ``ydata``: ``popt`` and its covariance ``pcov``.

    Minimizes ``sum(((f(xdata, params) - ydata) / sigma)**2)`` with
    :func:`~npdownhill.lsq.least_squares` (Levenberg-Marquardt, exact
    Jacobian) and estimates the covariance of the parameters from the exact
    Jacobian at the solution, as ``scipy.optimize.curve_fit`` does.

    Parameters
    ----------
    f : callable
        The model ``f(xdata, params) -> y`` (note the order: the data first,
        the param tree second), written with ``autograd.numpy``; it must
        return an array of ``ydata``'s shape.
    xdata : object
        The independent variable, passed to ``f`` as given.
    ydata : array_like, shape (m,)
        The data, 1-D, finite real numbers.
    p0 : ndarray, dict, list or tuple
        The starting param tree (floating-point arrays; 0-d arrays for
        scalars). It is **not modified**, as in scipy: the fit runs on a copy.
    sigma : None or array_like, optional
        ``None`` (unit weights); a 1-D array of ``m`` standard deviations
        (the residuals are divided by them); or an ``m x m`` covariance
        matrix ``C`` of the data, whose Cholesky factor ``C = L L^T`` whitens
        the residuals, ``r = L^{-1} (f - y)``, so that ``r^T r =
        (f - y)^T C^{-1} (f - y)``.
    absolute_sigma : bool, optional
        If True, ``sigma`` is taken as absolute and ``pcov = inv(J^T J)``;
        if False (default), only relative, and ``pcov`` is scaled by the
        reduced chi-square ``sum(r**2) / (m - n)``.
    **least_squares_options
        ``method``, ``ftol``, ``xtol``, ``gtol``, ``max_nfev``, ``callback``
        of :func:`~npdownhill.lsq.least_squares`.

    Returns
    -------
    popt : tree shaped like p0
        A new tree (its leaves are views of one new buffer) holding the
        fitted parameters.
    pcov : ndarray, shape (n, n)
        The estimated covariance of the flattened parameters, in the leaf
        order of :class:`npdownhill.tree.Layout` (``Layout(p0).names``).
        With ``J`` the Jacobian of the (whitened) residuals at ``popt``,

        .. math:: \mathrm{pcov} = (J^T J)^{-1} \cdot
                  \begin{cases} 1 & \text{absolute\_sigma} \\
                  \sum_i r_i^2 / (m - n) & \text{otherwise,} \end{cases}

        the inverse of the Gauss-Newton approximation of the Hessian of
        ``0.5 * chi^2`` (Nocedal & Wright, section 10.3). Filled with ``inf``
        (and a :class:`CovarianceWarning`) when ``J^T J`` is singular or
        there is no degree of freedom (``m == n`` without ``absolute_sigma``).
        :func:`standard_errors` turns it into a tree of ``sqrt(diag(pcov))``.

    Raises
    ------
    TypeError
        ``f`` not callable, ``ydata`` or ``sigma`` not real numbers, ``f``
        returning something else, ``absolute_sigma`` not a bool, an unknown
        option.
    ValueError
        ``ydata`` not 1-D or not finite; ``sigma`` of the wrong shape, not
        finite, not positive (1-D) or not positive definite (2-D); ``f``
        returning the wrong shape; ``args`` given (``f`` takes none); and
        what :func:`~npdownhill.lsq.least_squares` refuses.
    RuntimeError
        The fit did not converge (``max_nfev`` reached or a callback stop),
        as scipy raises; the message is :func:`~npdownhill.lsq.least_squares`'s.

    Examples
    --------
    >>> import autograd.numpy as anp
    >>> t = np.linspace(0, 1, 20)
    >>> popt, pcov = curve_fit(lambda t, p: p["a"] * t + p["b"], t, 2 * t + 1,
    ...                        {"a": np.array(0.0), "b": np.array(0.0)})
    >>> float(popt["a"]), float(popt["b"])  # doctest: +SKIP
    (2.0, 1.0)
    """
    call = "curve_fit"
    _check_callable(call, "f", f)
    options = dict(method="lm", ftol=1e-8, xtol=1e-8, gtol=1e-8, max_nfev=None, callback=None)
    for key, value in least_squares_options.items():
        if key == "args":
            raise ValueError(f"{call}(args=...): f(xdata, params) takes no extra arguments; "
                             "put them in xdata or in a closure")
        if key not in options:
            raise TypeError(f"{call}({key}=...): unknown option {key!r}"
                            f"{suggest(key, _OPTIONS)}; the options are "
                            f"{', '.join(_OPTIONS)}")
        options[key] = value
    if not isinstance(absolute_sigma, (bool, np.bool_)):
        raise TypeError(f"{call}(absolute_sigma={_shown(absolute_sigma)}): absolute_sigma must "
                        f"be True or False; got {type(absolute_sigma).__name__}")
    y = _real_array(call, "ydata", ydata)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"{call}(ydata=...): ydata must be a non-empty 1-D array; got shape "
                         f"{y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{call}(ydata=...): ydata must be finite; got NaN or inf at indices "
                         f"{_nonfinite_where(y)}")
    m = y.size
    weights = whitener = None
    if sigma is not None:
        s = _real_array(call, "sigma", sigma)
        if not np.all(np.isfinite(s)):
            raise ValueError(f"{call}(sigma=...): sigma must be finite; got NaN or inf")
        if s.shape == (m,):
            if not np.all(s > 0):
                raise ValueError(f"{call}(sigma=...): the standard deviations in sigma must be "
                                 f"> 0; got {float(s.min())!r} at index {int(np.argmin(s))}")
            weights = 1.0 / s
        elif s.shape == (m, m):
            try:
                lower = np.linalg.cholesky(s)
            except np.linalg.LinAlgError:
                raise ValueError(f"{call}(sigma=...): a 2-D sigma is the covariance matrix of "
                                 "ydata and must be symmetric positive definite; its Cholesky "
                                 "factorization failed") from None
            whitener = np.linalg.solve(lower, np.eye(m))   # L^{-1}
        else:
            raise ValueError(f"{call}(sigma=...): sigma must have shape ({m},) (standard "
                             f"deviations) or ({m}, {m}) (a covariance matrix) for {m} data "
                             f"points; got shape {s.shape}")

    layout = Layout(p0, f"{call}(p0)")
    popt = layout.unflatten(layout.read(layout.empty()))
    label = f"f ({_name(f)})"

    def residuals(params):
        model = f(xdata, params)
        value = getval(model)
        if not isinstance(value, (np.ndarray, np.generic, numbers.Number)):
            raise TypeError(f"{call}: {label} must return an array of ydata's shape {y.shape}; "
                            f"got {type(value).__name__}")
        if np.shape(value) != y.shape:
            raise ValueError(f"{call}: {label} must return an array of ydata's shape {y.shape}; "
                             f"got shape {np.shape(value)}")
        kind = np.asarray(value).dtype.kind
        if kind not in "fiu":
            raise TypeError(f"{call}: {label} must return real numbers; got dtype "
                            f"{np.asarray(value).dtype}")
        diff = model - y
        if weights is not None:
            return diff * weights
        if whitener is not None:
            return anp.dot(whitener, diff)
        return diff

    result = _least_squares(residuals, popt, (), options["method"], options["ftol"],
                            options["xtol"], options["gtol"], options["max_nfev"],
                            options["callback"], call, label)
    if result.status <= 0:
        raise RuntimeError(f"{call}: optimal parameters not found: {result.message} "
                           f"(nfev={result.nfev}, cost={result.cost:.6g})")
    pcov = _covariance(result.jac, 2.0 * result.cost, bool(absolute_sigma), call)
    return popt, pcov


def standard_errors(pcov, params):
    """The standard errors ``sqrt(diag(pcov))`` as a tree shaped like ``params``.

    Parameters
    ----------
    pcov : array_like, shape (n, n)
        A covariance matrix over the flattened parameters in leaf order, as
        returned by :func:`curve_fit` (or ``inv(hessian(...))``).
    params : ndarray, dict, list or tuple
        A param tree with ``n`` elements in all (``popt`` or ``p0``).

    Returns
    -------
    tree
        A new tree shaped like ``params`` (leaves are views of one new
        float64 buffer); ``inf`` where ``pcov`` is ``inf``.

    Raises
    ------
    ValueError
        ``pcov`` is not ``n x n``, or has a negative or NaN diagonal entry.
    """
    call = "standard_errors"
    layout = Layout(params, f"{call}(params)")
    cov = _real_array(call, "pcov", pcov)
    n = layout.size
    if cov.shape != (n, n):
        raise ValueError(f"{call}(pcov=...): pcov must have shape ({n}, {n}) for the {n} "
                         f"parameters of params; got shape {cov.shape}")
    variances = np.array(np.diag(cov), dtype=np.float64)
    bad = np.flatnonzero(~(variances >= 0))
    if bad.size:
        j = int(bad[0])
        leaf = layout.names[int(np.searchsorted(layout.offsets, j, side="right")) - 1]
        raise ValueError(f"{call}(pcov=...): the variances on pcov's diagonal must be >= 0; got "
                         f"{float(variances[j])!r} at index {j} (leaf {leaf!r})")
    return layout.unflatten(np.sqrt(variances))
