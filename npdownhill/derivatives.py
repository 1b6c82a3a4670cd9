"""Exact derivatives of functions of a param tree, from autograd.

* :func:`jacobian` -- the Jacobian ``J[i, j] = d r_i / d x_j`` of vector-valued
  residuals ``r = residuals(params, *args)``;
* :func:`hessian` -- the Hessian ``H[i, j] = d^2 loss / (d x_i d x_j)`` of a
  scalar loss.

Both see the param tree as one flat vector ``x`` (the ``_Flat`` wrapper
gives the user's function a tree of views of ``x`` and checks what comes
back), and both are exact: autograd traces the user's ``autograd.numpy``
code, there are no finite differences.

**Forward or reverse mode.** A Jacobian with ``m`` residuals and ``n``
parameters can be built two ways:

* forward mode, column by column: one Jacobian-vector product ``J e_j`` per
  parameter, ``n`` traced calls of ``residuals``. Each pass boxes only the
  leaf it differentiates (the other leaves go in as plain arrays), so it
  traces only what depends on that leaf;
* reverse mode, row by row: one traced call, then one vector-Jacobian
  product ``e_i^T J`` (a backward pass) per residual, ``m`` of them.

Forward mode is cheaper when ``n < m`` (a fit: more data than parameters),
reverse mode otherwise; ``jacobian(mode='auto')`` picks between them after
the first forward product has told it ``m``, and falls back to reverse
mode when autograd has no forward-mode rule for a primitive. The Hessian is
the reverse-mode Jacobian of the gradient: one traced gradient, then one
backward pass (a Hessian-vector product) per parameter.

**Layout.** The flat vector lays the parameters out in the leaf order of
:class:`npdownhill.tree.Layout` (dict insertion order, then list order),
each leaf's elements in C order. The columns of a Jacobian, and the rows
and columns of a Hessian (and of the covariance matrices of
:mod:`npdownhill.curvefit`), follow that order; ``Layout(params).names`` names
the leaves and ``Layout(params).offsets`` says where each one starts.
"""

import numbers

import autograd.numpy as anp
import numpy as np
from autograd import grad as _ag_grad
from autograd import make_jvp as _ag_make_jvp
from autograd import make_vjp as _ag_make_vjp
from autograd.tracer import getval

from .hyper import suggest
from .tree import Layout

__all__ = ["jacobian", "hessian"]

_MODES = ("auto", "forward", "reverse")


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------

def _name(fn):
    """How to call a function in a message: its qualified name, else its repr."""
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _shown(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_callable(call, name, value):
    if not callable(value):
        raise TypeError(f"{call}({name}={_shown(value)}): {name} must be callable; "
                        f"got {type(value).__name__}")


def _check_args(call, args):
    if not isinstance(args, (tuple, list)):
        raise TypeError(f"{call}(args={_shown(args)}): args must be a tuple of extra "
                        f"arguments (write args=(x,) for one); got {type(args).__name__}")
    return tuple(args)


def _describe_array(v):
    return f"shape {v.shape}, dtype {v.dtype}"


class _Flat:
    """A user function of a param tree seen as a function of one flat vector.

    ``self(x)`` calls ``fn(tree, *args)`` (or ``fn(xdata, tree)``-like
    wrappers made by :func:`npdownhill.curvefit.curve_fit`) with ``tree`` a tree
    of views of ``x`` (read-only when ``x`` is a plain array), and checks
    what comes back. ``x`` may be an autograd box: the views are then boxes too, so
    autograd traces through the user's code.
    """

    def __init__(self, fn, layout, args, call, label):
        self.fn, self.layout, self.args = fn, layout, args
        self.call, self.label = call, label
        self.m = None           # number of residuals, fixed by the first call

    def tree(self, x):
        if isinstance(x, np.ndarray):
            x = x.view()
            x.flags.writeable = False
        return self.layout.unflatten(x)

    def __call__(self, x):
        out = self.fn(self.tree(x), *self.args)
        self.check(out)
        return out

    def check(self, out):
        value = getval(out)
        where = f"{self.call}: {self.label}"
        if isinstance(value, (numbers.Number, np.generic)) and not isinstance(value, np.ndarray):
            value = np.asarray(value)
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{where} must return a 1-D NumPy array of real numbers; got "
                            f"{type(value).__name__} (build it with autograd.numpy, e.g. "
                            "anp.array([...]) or anp.concatenate([...]))")
        if value.dtype.kind not in "fiu":
            raise TypeError(f"{where} must return a 1-D array of real numbers; got "
                            f"{_describe_array(value)}")
        if value.ndim != 1:
            hint = " (flatten it with .ravel())" if value.ndim > 1 else ""
            raise ValueError(f"{where} must return a 1-D array of residuals; got "
                             f"{_describe_array(value)}{hint}")
        if value.size == 0:
            raise ValueError(f"{where} returned no residuals ({_describe_array(value)})")
        if self.m is None:
            self.m = value.size
        elif value.size != self.m:
            raise ValueError(f"{where} returned {value.size} residuals; it returned "
                             f"{self.m} before (the number of residuals must not change)")

    def value(self, x):
        """Residuals at a plain flat vector, as float64."""
        return np.asarray(self(x), dtype=np.float64)

    # -- the Jacobian ------------------------------------------------------
    def _leaf_jvps(self, x):
        """Yield ``jvp(tangent) -> (r, J @ tangent)`` makers, one per element of ``x``.

        Forward mode boxes only the leaf being differentiated: the other
        leaves are passed as plain read-only views, so autograd traces only
        the operations downstream of that leaf (a column for ``c`` in
        ``A * exp(-t / tau) + c`` traces one addition).
        """
        x = x.view()
        x.flags.writeable = False
        views = self.layout.views(x)
        for k, leaf in enumerate(views):
            def of_leaf(value, k=k):
                values = list(views)
                values[k] = value
                out = self.fn(self.layout.tree_of(values), *self.args)
                self.check(out)
                return out
            jvp = _ag_make_jvp(of_leaf)(leaf)
            for e in range(leaf.size):
                tangent = np.zeros(leaf.shape, dtype=leaf.dtype)
                tangent.flat[e] = 1
                yield jvp, tangent

    def jacobian(self, x, mode="auto", fallback=None):
        """``(r, J, mode_used)`` at the plain flat vector ``x``.

        ``fallback`` (default: only in auto mode) switches to reverse mode
        when autograd has no forward-mode rule for a primitive.
        """
        n = x.size
        if mode == "reverse":
            r, J = self._reverse(x)
            return r, J, "reverse"
        directions = self._leaf_jvps(x)
        jvp, tangent = next(directions)
        try:
            r, first = jvp(tangent)
        except NotImplementedError as err:
            if not str(err).startswith("JVP of"):
                raise
            if fallback or (fallback is None and mode == "auto"):
                r, J = self._reverse(x)  # a primitive without a forward-mode rule
                return r, J, "reverse"
            raise NotImplementedError(
                f"{self.call}(mode='forward'): autograd has no forward-mode rule for a "
                f"primitive that {self.label} uses ({err}); use mode='auto' or "
                "'reverse'") from None
        m = getval(r).size
        if mode == "auto" and n > 1 and n >= m:
            r, J = self._reverse(x)
            return r, J, "reverse"
        columns = [first]
        columns.extend(jvp(tangent)[1] for jvp, tangent in directions)
        J = np.empty((m, n), dtype=np.result_type(*columns, np.float32))
        for j, col in enumerate(columns):
            J[:, j] = col
        return np.asarray(r), J, "forward"

    def _reverse(self, x):
        vjp, r = _ag_make_vjp(self)(x)
        r = np.asarray(r)
        m = r.size
        seeds = np.eye(m, dtype=r.dtype if r.dtype.kind == "f" else np.float64)
        J = np.empty((m, x.size), dtype=np.result_type(r.dtype, x.dtype, np.float32))
        for i in range(m):
            J[i] = vjp(seeds[i])
        return r, J


# ---------------------------------------------------------------------------
# jacobian
# ---------------------------------------------------------------------------

def jacobian(residuals, params, args=(), mode="auto"):
    """The exact Jacobian of vector-valued residuals over the flattened params.

    Parameters
    ----------
    residuals : callable
        ``residuals(params, *args) -> r``, written with ``autograd.numpy``;
        ``r`` must be a 1-D array of ``m`` real numbers.
    params : ndarray, dict, list or tuple
        The param tree at which to differentiate (not modified). Its ``n``
        elements are flattened in the leaf order of
        :class:`npdownhill.tree.Layout`.
    args : tuple, optional
        Extra positional arguments of ``residuals``.
    mode : {'auto', 'forward', 'reverse'}, optional
        ``'forward'`` builds ``J`` column by column, one forward-mode
        Jacobian-vector product ``J e_j`` per parameter (``n`` traced calls
        of ``residuals``); ``'reverse'`` builds it row by row, one reverse-mode
        vector-Jacobian product ``e_i^T J`` per residual (one traced call and
        ``m`` backward passes). ``'auto'`` (default) picks the cheaper:
        forward when ``n < m`` (or ``n == 1``), reverse otherwise. It starts
        with the first forward product, which tells ``m``; when reverse mode
        is then chosen that first product is wasted. It also falls back to
        reverse mode when a primitive has no forward-mode rule in autograd.
        A forward pass boxes only the leaf it differentiates (the other
        leaves go in as plain arrays), so it traces only what depends on
        that leaf.

    Returns
    -------
    r : ndarray, shape (m,)
        The residuals at ``params``, from the same traced calls as ``J``
        (no separate evaluation).
    J : ndarray, shape (m, n)
        ``J[i, j] = d r_i / d x_j`` with ``x`` the flattened params.

    Raises
    ------
    TypeError
        ``residuals`` is not callable, or returns something other than an
        array of real numbers; ``args`` is not a tuple.
    ValueError
        ``residuals`` returns an array that is not 1-D or is empty; ``mode``
        is not one of the three; a bad param tree (see ``Layout``).

    Examples
    --------
    >>> import autograd.numpy as anp
    >>> r, J = jacobian(lambda p: anp.array([p["a"] * p["b"], p["a"] ** 2, p["b"]]),
    ...                 {"a": np.array(2.0), "b": np.array(3.0)})
    >>> J
    array([[3., 2.],
           [4., 0.],
           [0., 1.]])
    """
    call = "jacobian"
    _check_callable(call, "residuals", residuals)
    args = _check_args(call, args)
    if mode not in _MODES:
        raise ValueError(f"{call}(mode={_shown(mode)}): mode must be one of "
                         f"{', '.join(map(repr, _MODES))}; got {_shown(mode)}"
                         f"{suggest(str(mode), _MODES)}")
    layout = Layout(params, f"{call}(params)")
    flat = _Flat(residuals, layout, args, call, f"residuals ({_name(residuals)})")
    x = layout.read(layout.empty())
    r, J, _ = flat.jacobian(x, mode)
    return r, J


# ---------------------------------------------------------------------------
# hessian
# ---------------------------------------------------------------------------

def hessian(loss, params, *args):
    r"""The exact Hessian of a scalar loss over the flattened params.

    ``H[i, j] = d^2 loss / (d x_i d x_j)`` with ``x`` the params flattened
    in leaf order. Computed by autograd as the reverse-mode Jacobian of the
    gradient: one traced evaluation of the gradient, then one backward pass
    (a Hessian-vector product) per parameter; symmetrized, ``(H + H^T) / 2``,
    to remove rounding asymmetry.

    For a maximum-likelihood fit, ``inv(hessian(nll, popt, ...))`` at the
    optimum estimates the covariance of the parameters (the inverse observed
    Fisher information). For a Gaussian negative log-likelihood
    ``0.5 * sum(((f - y) / sigma)**2)`` it equals ``J^T J`` plus
    ``sum_i r_i * hess(r_i)``, so its inverse matches ``curve_fit``'s
    ``pcov`` with ``absolute_sigma=True`` exactly when the model is linear
    in the params and up to that residual term otherwise.

    Parameters
    ----------
    loss : callable
        ``loss(params, *args) -> scalar``, written with ``autograd.numpy``.
    params : ndarray, dict, list or tuple
        The point (a param tree; not modified).
    *args
        Extra positional arguments of ``loss``.

    Returns
    -------
    ndarray, shape (n, n)
        The symmetric Hessian, float64.

    Raises
    ------
    TypeError
        ``loss`` not callable, or not returning a real scalar.
    ValueError
        A bad param tree.
    """
    call = "hessian"
    _check_callable(call, "loss", loss)
    layout = Layout(params, f"{call}(params)")
    label = f"loss ({_name(loss)})"

    def scalar(x):
        out = loss(layout.unflatten(x), *args)
        value = getval(out)
        if isinstance(value, (numbers.Number, np.generic)):
            value = np.asarray(value)
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu" or value.size != 1:
            got = (_describe_array(value) if isinstance(value, np.ndarray)
                   else type(value).__name__)
            raise TypeError(f"{call}: {label} must return a real scalar; got {got}")
        return out if np.ndim(value) == 0 else anp.reshape(out, ())

    x = layout.read(layout.empty())
    vjp, g = _ag_make_vjp(_ag_grad(scalar))(x)
    n = x.size
    seeds = np.eye(n, dtype=x.dtype)
    H = np.empty((n, n))
    for i in range(n):
        H[i] = vjp(seeds[i])
    return 0.5 * (H + H.T)
