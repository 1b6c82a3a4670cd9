"""Gradient checking: autograd's gradient against central finite differences.

:func:`check_grad` answers one question: *is the gradient that autograd
computes for my loss the derivative of my loss?* It nudges every parameter
(or a seeded sample of them) up and down by a small step, evaluates the loss
at both points, and compares the slope it measures with autograd's value.
The answer comes back as a :class:`GradCheckResult`, which prints as a
report naming the leaves and the elements where the two disagree.

autograd differentiates ``autograd.numpy`` code exactly, so for ordinary
losses the check passes. It earns its keep when the gradient comes from
somewhere a human wrote it: a custom primitive with its own ``defvjp``, a
hand-derived gradient, or code that hides a non-differentiable point.

The check never writes to the caller's arrays: the loss is evaluated on
private copies of the param tree (read-only while the loss runs), so the
user's parameters come back bit-identical, also when the loss raises.
"""

import math
import numbers
import textwrap
from collections import namedtuple

import numpy as np
from autograd import make_vjp
from autograd.core import vspace

from .diagnostics import check_arity, explain_trace_error
from .monitors import check_loss_value
from .tree import Layout

__all__ = ["check_grad", "GradCheckResult", "WorstElement", "LeafCheck"]

#: The absolute floor of the relative errors, as a fraction of the gradient's
#: overall norm (see :func:`check_grad`, "Relative errors").
FLOOR = 1e-3

#: One-sided slopes differing by more than this fraction suggest a kink.
KINK = 0.1

#: A gradient norm below this many times the finite differences' estimated
#: rounding error is too small to check (for instance at a minimum).
NOISE_MARGIN = 100.0

#: Default tolerance on the per-leaf relative error, by working precision.
RTOL_FLOAT64 = 1e-6
RTOL_FLOAT32 = 1e-2

_CALL = "check_grad"


WorstElement = namedtuple(
    "WorstElement", "leaf index autograd finite_difference difference error remark")
WorstElement.__doc__ = """One checked element of the gradient.

Attributes
----------
leaf : str
    The leaf's name (``""`` for a bare-array param tree).
index : tuple of int
    The element's index in the leaf (``()`` for a 0-d leaf).
autograd : float
    autograd's partial derivative.
finite_difference : float
    The central finite difference.
difference : float
    ``autograd - finite_difference``.
error : float
    The element's relative error (see :func:`check_grad`).
remark : str
    For an element whose error exceeds ``rtol`` (and a deterministic loss),
    the verdict of two more evaluations at half the step:

    * ``"kink"``: the slopes ``(f(x+h) - f(x)) / h`` and
      ``(f(x) - f(x-h)) / h`` differ, and still do with half the step: the
      loss has a non-differentiable point (``abs``, ``relu``, ``max``) within
      a step of ``x``, where the central difference is no reference;
    * ``"step-sensitive"``: the central difference changes, when the step is
      halved, by more than a quarter of its disagreement with autograd: it
      is not accurate here, and the disagreement may be its own;
    * ``""``: the finite difference is stable; if the error is large, suspect
      the gradient.
"""

LeafCheck = namedtuple(
    "LeafCheck", "name size indices autograd finite_difference errors error step")
LeafCheck.__doc__ = """The check of one leaf, element by element.

Attributes
----------
name : str
    The leaf's name.
size : int
    The leaf's number of elements.
indices : ndarray of int
    The flat (C-order) indices of the checked elements, increasing: all of
    ``range(size)``, or a sample when the leaf has more than ``max_elements``.
autograd, finite_difference : ndarray of float64
    The two derivatives at those elements.
errors : ndarray of float64
    Per-element relative errors.
error : float
    The leaf's relative error (the number compared with ``rtol``).
step : ndarray of float64
    The step actually taken, ``((x + h) - (x - h)) / 2`` as stored.
"""


# ---------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------

def _shown(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_positive(name, value, extra=""):
    if value is None:
        return None
    if not _is_real(value):
        raise TypeError(f"{_CALL}({name}={_shown(value)}): {name} must be a number > 0 "
                        f"or None{extra}; got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{_CALL}({name}={value!r}): {name} must be a finite number > 0 "
                         f"or None{extra}; got {value!r}")
    return float(value)


def _check_count(name, value, allow_none, low):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        rule = f"an integer >= {low}" + (" or None" if allow_none else "")
        raise TypeError(f"{_CALL}({name}={_shown(value)}): {name} must be {rule}; "
                        f"got {type(value).__name__}")
    if value < low:
        rule = f"an integer >= {low}" + (" or None" if allow_none else "")
        raise ValueError(f"{_CALL}({name}={value!r}): {name} must be {rule}; got {value!r}")
    return int(value)


def _select(layout, names):
    """Positions of the leaves to check: all, or those ``names`` selects."""
    if names is None:
        return list(range(len(layout.names)))
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, (list, tuple)):
        raise TypeError(f"{_CALL}(leaves={_shown(names)}): leaves must be a list of leaf "
                        f"names such as {layout.names[:2]!r}, or None for all; "
                        f"got {type(names).__name__}")
    if not names:
        raise ValueError(f"{_CALL}(leaves=[]): leaves must name at least one leaf (or be None "
                         f"for all); the params' leaves are {layout.names!r}")
    chosen = set()
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"{_CALL}(leaves={_shown(names)}): leaf names must be strings; "
                            f"got {name!r} ({type(name).__name__})")
        hits = [i for i, leaf in enumerate(layout.names)
                if leaf == name or (name and leaf.startswith(name + "."))]
        if not hits:
            raise ValueError(f"{_CALL}(leaves={_shown(names)}): unknown leaf name {name!r}; "
                             f"the params' leaves are {layout.names!r}")
        chosen.update(hits)
    return sorted(chosen)


def _copy_tree(tree):
    """A copy of a param tree: same containers, each ndarray leaf copied (C order).

    Anything else is kept as it is, for :class:`~npdownhill.tree.Layout` to refuse
    with a message that names the leaf.
    """
    if isinstance(tree, dict):
        return {key: _copy_tree(sub) for key, sub in tree.items()}
    if isinstance(tree, (list, tuple)):
        items = [_copy_tree(sub) for sub in tree]
        if type(tree) in (list, tuple):
            return type(tree)(items)
        return type(tree)(*items)           # a namedtuple
    if isinstance(tree, np.ndarray):
        return np.array(tree, copy=True, order="C")
    return tree


# ---------------------------------------------------------------------------
# the check
# ---------------------------------------------------------------------------

class _Probe:
    """Evaluates the user's loss on private, read-only copies of the params.

    ``self.tree`` is what the loss receives: a tree of read-only views of
    the copies in ``self.flat``. :meth:`at` writes one perturbed element,
    evaluates, and puts the original value back before returning or raising.
    """

    def __init__(self, loss, params, batch):
        self.loss, self.batch = loss, batch
        copies = _copy_tree(params)
        # validates the tree (names, dtypes, sizes); the copies are writeable
        # even when the user's arrays are not, so read-only params are fine
        self.layout = Layout(copies, f"{_CALL}(params)")
        self.flat = [a.reshape(-1) for a in self.layout.arrays]   # views of the copies
        self.views = []
        for a in self.layout.arrays:
            v = a.view()
            v.flags.writeable = False           # a loss that writes to params fails loudly
            self.views.append(v)
        self.tree = self.layout.tree_of(self.views)
        self.evaluations = 0

    def value(self):
        """The loss at the current (possibly perturbed) copies, checked."""
        self.evaluations += 1
        return check_loss_value(_CALL, self.loss(self.tree, *self.batch))

    def at(self, leaf, i, x):
        """The loss with element ``i`` of leaf ``leaf`` set to ``x``."""
        flat = self.flat[leaf]
        original = flat[i].copy()
        flat[i] = x
        try:
            return self.value()
        except Exception as err:
            name = self.layout.names[leaf] or "<root>"
            index = np.unravel_index(i, self.layout.shapes[leaf])
            if hasattr(err, "add_note"):
                err.add_note(f"{_CALL}: raised by the loss with params leaf {name!r} element "
                             f"{tuple(map(int, index))} moved to {float(x)!r} (a finite-difference "
                             "evaluation); the caller's arrays are unchanged")
            raise
        finally:
            flat[i] = original

    def autograd_gradient(self):
        """The loss and autograd's gradient at the copies (a list of arrays, one per leaf).

        autograd differentiates with respect to the tuple of leaves, and the
        loss gets the user's containers rebuilt around the traced leaves: the
        same tree it sees everywhere else, namedtuples included (autograd
        cannot box a namedtuple argument itself).
        """
        n = len(self.views)

        def of_leaves(values):
            return self.loss(self.layout.tree_of([values[i] for i in range(n)]), *self.batch)

        try:
            vjp, value = make_vjp(of_leaves)(tuple(self.views))
        except Exception as err:
            explained = explain_trace_error(err, self.loss, (self.tree, *self.batch))
            if explained is None:
                raise
            raise explained from err
        self.evaluations += 1
        value = check_loss_value(_CALL, value)
        return value, list(vjp(vspace(value).ones()))


def _wide(*dtypes):
    """The dtype to do the arithmetic in: float64, or longdouble if one is."""
    return np.result_type(np.float64, *dtypes)


def _epsilon(*dtypes):
    """Machine epsilon of the coarsest floating dtype among ``dtypes``."""
    return max(float(np.finfo(d).eps) for d in dtypes if np.dtype(d).kind == "f")


def _relative(diff, a, d, floor):
    """``diff / max(a, d, floor)``, with ``inf`` where a value is not finite."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.abs(diff) / np.maximum(np.maximum(np.abs(a), np.abs(d)), floor)
    out[~(np.isfinite(a) & np.isfinite(d))] = np.inf
    return out


def check_grad(loss, params, *batch, eps=None, leaves=None, max_elements=None, rtol=None,
               seed=0, worst=5):
    r"""Compare autograd's gradient of a loss with central finite differences.

    For every checked element :math:`x_i` of the params, the loss is
    evaluated a step :math:`h_i` above and below, and the slope

    .. math::

        d_i = \frac{f(x + h_i e_i) - f(x - h_i e_i)}{2 h_i}

    is compared with autograd's :math:`a_i = \partial f / \partial x_i`.
    Each element costs two loss evaluations, so a leaf of a million weights
    should be checked on a sample (`max_elements`).

    Parameters
    ----------
    loss : callable
        ``loss(params, *batch)``, written with ``autograd.numpy``, returning
        a real scalar. It is evaluated on private copies of `params` (passed
        read-only), never on the caller's arrays.
    params : ndarray, dict, list or tuple
        The param tree at which to check, as for ``minimize`` (float32,
        float64 or longdouble leaves). Not modified, and read-only arrays are
        accepted.
    *batch
        Passed to the loss after the params, e.g. ``x, y``.
    eps : float, optional
        The relative step: :math:`h_i = \mathrm{eps}\cdot\max(1, |x_i|)`.
        Default: :math:`\epsilon^{1/3}`, where :math:`\epsilon` is the
        machine epsilon of the leaf's dtype (or of the loss value's dtype, if
        that is coarser): about ``6.1e-6`` for float64 and ``4.9e-3`` for
        float32. Must be > 0.
    leaves : list of str, optional
        Check only these leaves (default: all). A name may also be a prefix
        that ends at a ``.``: ``"layers.0"`` selects ``"layers.0.W"`` and
        ``"layers.0.b"``. A single string is taken as one name.
    max_elements : int, optional
        Check at most this many elements per leaf: a larger leaf is checked on
        a random sample of that many distinct elements, the same on every call
        with the same `seed` (the sample of a leaf does not depend on which
        other leaves are checked). Default: every element.
    rtol : float, optional
        The tolerance on each leaf's relative error; ``result.ok`` says
        whether every checked leaf is within it. Default: ``1e-6`` when the
        working precision is float64 (or finer), ``1e-2`` when it is float32.
        The working precision is the coarsest among the checked leaves'
        dtypes and the loss value's dtype, so a tree mixing float32 and
        float64 leaves gets ``1e-2``; check its float64 leaves on their own
        (`leaves`) for the strict tolerance.
    seed : int, optional
        Seed of the sample drawn for `max_elements` (default 0).
    worst : int, optional
        How many of the worst elements to report (default 5).

    Returns
    -------
    GradCheckResult
        ``ok``, ``max_error``, per-leaf ``errors``, the ``worst`` elements,
        ``notes`` and the per-element details; printing it gives a report.

    Raises
    ------
    TypeError
        `loss` not callable or unable to take ``params`` and the `batch`
        arrays; a leaf that is not a floating-point array; a non-number
        option; a loss that returns something other than a real float.
    ValueError
        An empty or malformed param tree, ``eps <= 0``, an unknown leaf name,
        a loss that returns an array instead of a scalar or is not finite at
        `params`, or a step lost in rounding (``x + h == x``).

    Notes
    -----
    **The step.** The central difference has two sources of error. Taylor's
    theorem gives :math:`d_i = a_i + h^2 f'''/6 + O(h^4)`: the *truncation*
    error shrinks as :math:`h^2`. But each loss value is rounded to about
    :math:`\epsilon |f|`, and dividing the difference of two rounded values by
    :math:`2h` gives a *rounding* error of about :math:`\epsilon |f| / h`,
    which grows as the step shrinks. The sum
    :math:`h^2 |f'''|/6 + \epsilon |f| / h` is smallest near
    :math:`h \propto \epsilon^{1/3}`, where both terms are of order
    :math:`\epsilon^{2/3}`: about ``1e-11`` for float64 and ``1e-5`` for
    float32, relative to the scale of :math:`f` and its derivatives. The
    factor :math:`\max(1, |x_i|)` makes the step relative for large
    parameters (``x + h`` must differ from ``x`` in many digits) and absolute
    near zero. The step is rounded to the leaf's dtype, and the quotient uses
    the step actually taken, ``(x + h) - (x - h)`` as stored, not the
    intended ``2h``.

    **Relative errors.** Over the checked elements of all checked leaves let
    :math:`G = \max(\|a\|, \|d\|)` be the gradient's overall norm (2-norms)
    and :math:`\tau = 10^{-3} G` an absolute floor. Element :math:`i` and
    leaf :math:`L` have the relative errors

    .. math::

        e_i = \frac{|a_i - d_i|}{\max(|a_i|, |d_i|, \tau)}, \qquad
        e_L = \frac{\|a_L - d_L\|}{\max(\|a_L\|, \|d_L\|, \tau)},

    (with the smallest positive float as a last floor, so that an all-zero
    gradient gives 0, not 0/0). Without the floor an element whose true
    derivative is 0 would compare two rounding errors, ``1e-17`` against
    ``3e-12``, and show an error near 1 although nothing is wrong; with it,
    such elements (and leaves) are measured against the size of the gradient
    as a whole. The price: a leaf whose gradient is a tiny fraction of the
    whole has its error scaled down in proportion (a wrong leaf at 1e-5 of
    the gradient's norm still shows an error near 1e-2). A non-finite value
    (NaN, inf) on either side makes the error ``inf``. ``max_error`` is the
    largest :math:`e_L`, and ``ok`` is ``max_error <= rtol``. For a sampled
    leaf (`max_elements`) the norms run over its checked elements only.

    **Reading the result.**

    * *Normal*: for a smooth float64 loss the leaf errors are around
      ``1e-8`` to ``1e-11``. In float32 (params and arithmetic) expect
      ``1e-4`` to ``1e-3``: a float32 check cannot see a small mistake, so
      for a sharp check cast the params (and data) to float64, since the
      check is about the code, not the precision.
    * *Wrong*: a wrong gradient gives errors of order 0.1 to 1, not 1e-4.
      A derivative twice too large gives ``1/2``, a flipped sign gives 2
      (the largest possible value). Look at the leaf with the large error
      and at its worst elements.
    * *Typical causes*: a custom primitive (``autograd.extend.primitive``)
      whose ``defvjp`` rule is wrong, or a gradient written by hand; a
      non-differentiable point, e.g. ``abs`` or ``sqrt`` at 0, ``relu`` at
      0, ``max`` or ``sort`` with ties, where autograd returns a convention
      (one of the one-sided slopes, or an even split between tied entries)
      that the central difference need not reproduce; a loss that is not
      deterministic, such as random dropout masks or a random minibatch
      drawn inside the loss: seed the random generator inside the loss (or
      pass the mask in with the batch) so that every evaluation sees the
      same randomness. The report notes when evaluations at the same params
      differ.
    * *Finite differences fail too*: within a step of a kink the central
      difference measures a mixture of the two slopes, so an error there does
      not prove autograd wrong. For each failing worst element the check
      evaluates the loss again at half the step and marks the element
      ``kink`` (the one-sided slopes differ by a jump that does not shrink
      with the step) or ``step-sensitive`` (the central difference itself
      moves by a good part of its disagreement with autograd). An unmarked
      element with a large error points at the gradient. At a minimum, where
      the gradient is near 0, the finite differences' own errors are as large
      as the gradient; the report notes when the gradient is that small.
      Check at a random point instead.

    Examples
    --------
    >>> import autograd.numpy as anp
    >>> def loss(p, x, y):
    ...     return anp.mean((anp.tanh(x @ p["w"] + p["b"]) - y) ** 2)
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    >>> params = {"w": rng.normal(size=3), "b": np.array(0.1)}
    >>> result = check_grad(loss, params, x, y)
    >>> result.ok, result.max_error < 1e-8
    (True, True)
    >>> sorted(result.errors)
    ['b', 'w']
    """
    if not callable(loss):
        raise TypeError(f"{_CALL}(loss={_shown(loss)}): loss must be a callable "
                        f"loss(params, *batch); got {type(loss).__name__}")
    eps = _check_positive("eps", eps, " for the default")
    rtol = _check_positive("rtol", rtol, " for the default")
    max_elements = _check_count("max_elements", max_elements, True, 1)
    seed = _check_count("seed", seed, False, 0)
    worst = _check_count("worst", worst, False, 0)
    if not isinstance(params, (np.ndarray, dict, list, tuple)):
        raise TypeError(f"{_CALL}(params={_shown(params)}): params must be a param tree, a "
                        "floating-point ndarray or a dict / list / tuple of them; got "
                        f"{type(params).__name__}")
    probe = _Probe(loss, params, batch)
    layout = probe.layout
    chosen = _select(layout, leaves)
    check_arity(loss, len(batch), _CALL)
    for name, array in zip(layout.names, layout.arrays):
        if not np.all(np.isfinite(array)):
            first = tuple(int(v) for v in np.argwhere(~np.isfinite(array))[0])
            raise ValueError(f"{_CALL}(params): leaf {_label(name)} holds non-finite values "
                             f"({array[first]} at {first}); a gradient check needs finite params")

    # -- autograd, and the loss twice at the params (is it deterministic?) --
    _, grads = probe.autograd_gradient()
    f0 = probe.value()
    # the plain calls are what the finite differences use; the traced value may
    # differ from them in the last bits (numpy fast paths such as x ** 2)
    f_values = [float(f0), float(probe.value())]
    if not math.isfinite(float(f0)):
        raise ValueError(f"{_CALL}: the loss is {float(f0)} at params; a gradient check "
                         "needs a finite loss (check at another point)")
    loss_dtype = np.asarray(f0).dtype
    precision = max(_epsilon(layout.arrays[k].dtype, loss_dtype) for k in chosen)
    if rtol is None:
        rtol = RTOL_FLOAT64 if precision <= np.finfo(np.float64).eps else RTOL_FLOAT32

    # -- central differences, leaf by leaf, element by element -------------
    checks, slopes = [], []
    for k in chosen:
        dtype = layout.arrays[k].dtype
        rel = eps if eps is not None else _epsilon(dtype, loss_dtype) ** (1 / 3)
        size = int(layout.offsets[k + 1] - layout.offsets[k])
        if max_elements is not None and size > max_elements:
            rng = np.random.default_rng([seed, k])      # per leaf: same sample whatever is checked
            indices = np.sort(rng.choice(size, max_elements, replace=False))
        else:
            indices = np.arange(size)
        a = np.asarray(grads[k], dtype=np.float64).reshape(-1)[indices]
        d, step, forward, backward, noise = (np.empty(len(indices)) for _ in range(5))
        for j, i in enumerate(indices):
            h = rel * max(1.0, abs(float(probe.flat[k][i])))
            result = _central(probe, k, i, h, f0, loss_dtype)
            if result is None:
                x = float(probe.flat[k][i])
                raise ValueError(
                    f"{_CALL}(eps={eps!r}): the step h = eps * max(1, |x|) = {h:.3g} is lost in "
                    f"rounding at {_where(layout, k, i)} (x = {x!r} in {dtype}: x + h == x); "
                    "use a larger eps, or eps=None")
            d[j], forward[j], backward[j], step[j], noise[j] = result
        checks.append(LeafCheck(layout.names[k], size, indices, a, d, None, None, step))
        slopes.append((k, rel, forward, backward, noise))

    # -- relative errors -----------------------------------------------------
    all_a = np.concatenate([c.autograd for c in checks])
    all_d = np.concatenate([c.finite_difference for c in checks])
    finite = np.isfinite(all_a) & np.isfinite(all_d)
    scale = max(np.linalg.norm(all_a[finite]), np.linalg.norm(all_d[finite]))
    floor = max(FLOOR * scale, np.finfo(np.float64).tiny)
    notes = []
    for n, c in enumerate(checks):
        errors = _relative(c.autograd - c.finite_difference, c.autograd, c.finite_difference,
                           floor)
        bad = np.flatnonzero(~(np.isfinite(c.autograd) & np.isfinite(c.finite_difference)))
        if len(bad):
            error = math.inf
            first = bad[0]
            notes.append(
                f"{len(bad)} element(s) of leaf {_label(c.name)} have a non-finite derivative, "
                f"e.g. {_where(layout, chosen[n], c.indices[first])}: autograd "
                f"{c.autograd[first]:.6g}, finite difference {c.finite_difference[first]:.6g}")
        else:
            with np.errstate(over="ignore"):
                error = float(np.linalg.norm(c.autograd - c.finite_difference) / max(
                    np.linalg.norm(c.autograd), np.linalg.norm(c.finite_difference), floor))
        checks[n] = c._replace(errors=errors, error=error)

    # -- the worst elements, largest error first (layout order among ties) --
    every = [(n, j) for n, c in enumerate(checks) for j in range(len(c.indices))]
    every.sort(key=lambda nj: -checks[nj[0]].errors[nj[1]])
    deterministic = len(set(f_values)) == 1
    worst_elements = []
    for n, j in every[:worst]:
        c = checks[n]
        k, rel, forward, backward, noise = slopes[n]
        i = c.indices[j]
        remark = ""
        if deterministic and c.errors[j] > rtol:
            remark = _remark(probe, k, i, rel, f0, loss_dtype, c.autograd[j],
                             c.finite_difference[j], forward[j], backward[j], floor)
        a, d = float(c.autograd[j]), float(c.finite_difference[j])
        worst_elements.append(WorstElement(c.name, _index(layout, k, i), a, d, a - d,
                                           float(c.errors[j]), remark))

    # -- notes about the check itself ------------------------------------------
    if not deterministic:
        notes.append(f"the loss is not deterministic: evaluated twice at the same params it "
                     f"gave {f_values[0]!r} and {f_values[1]!r}; finite differences need a "
                     "deterministic loss (fix the random seed inside the loss, e.g. for "
                     "dropout masks, or pass the randomness in with the batch)")
    rounding = math.sqrt(sum(float(np.sum(np.square(s[4]))) for s in slopes))
    grad_norm = float(np.linalg.norm(all_a[finite]))
    if grad_norm <= NOISE_MARGIN * rounding:
        notes.append(f"the gradient is tiny here (norm {grad_norm:.3g}, against {rounding:.3g} "
                     "for the rounding error of the finite differences alone): relative "
                     "errors measure the finite differences' own errors, not mistakes. Check "
                     "at a point where the gradient is clearly nonzero (a random "
                     "initialisation, not a minimum)")
    remarks = {w.remark for w in worst_elements}
    if "kink" in remarks:
        notes.append("'kink': the slopes just left and right of x differ, also with half the "
                     "step, so the loss has a non-differentiable point (abs, relu, max, sort) "
                     "within a step of x; there the central difference is no reference")
    if "step-sensitive" in remarks:
        notes.append("'step-sensitive': the finite difference changes when the step is halved "
                     "by a good part of its disagreement with autograd, so it is not accurate "
                     "here (strong curvature, a kink nearby, or a gradient near 0); the "
                     "disagreement may be the finite difference's own")
    return GradCheckResult(checks, worst_elements, rtol, layout.names, float(f0),
                           probe.evaluations, floor, notes, deterministic)


def _central(probe, k, i, h, f0, loss_dtype):
    """Central and one-sided differences of the loss at element ``i`` of leaf ``k``.

    Returns ``(central, forward, backward, step, rounding)``, or ``None``
    when the step is lost in rounding. The steps are rounded to the leaf's
    dtype, and the quotients use the steps actually taken.
    """
    x = probe.flat[k][i]
    dtype = x.dtype
    up, down = dtype.type(x + h), dtype.type(x - h)
    if not up > x > down:
        return None
    wide = _wide(dtype, loss_dtype)
    f_up = wide.type(probe.at(k, i, up))
    f_down = wide.type(probe.at(k, i, down))
    base = wide.type(f0)
    lo, mid, hi = wide.type(down), wide.type(x), wide.type(up)
    central = (f_up - f_down) / (hi - lo)
    forward = (f_up - base) / (hi - mid)
    backward = (base - f_down) / (mid - lo)
    rounding = _epsilon(dtype, loss_dtype) * (abs(f_up) + abs(f_down)) / (hi - lo)
    return central, forward, backward, (hi - lo) / 2, rounding


def _remark(probe, k, i, rel, f0, loss_dtype, a, d, forward, backward, floor):
    """Does a failing element look like a kink, or an inaccurate difference?

    Two more evaluations, at half the step. Near a smooth point the gap
    between the one-sided slopes is about ``h f''`` and halves with the step;
    across a kink it is the jump in slope and stays. A central difference
    that moves, when the step is halved, by a good part of its disagreement
    with autograd is not accurate enough to judge autograd.
    """
    h = rel * max(1.0, abs(float(probe.flat[k][i]))) / 2
    result = _central(probe, k, i, h, f0, loss_dtype)
    if result is None:
        return ""
    d_half, forward_half, backward_half, _, _ = result
    gap, gap_half = forward - backward, forward_half - backward_half
    if (abs(gap) > KINK * max(abs(forward), abs(backward), floor)
            and abs(gap_half) > 0.75 * abs(gap)):
        return "kink"
    if abs(d_half - d) > 0.25 * abs(a - d):
        return "step-sensitive"
    return ""


def _label(name):
    return repr(name) if name else "<root>"


def _index(layout, k, flat_index):
    return tuple(int(v) for v in np.unravel_index(flat_index, layout.shapes[k]))


def _where(layout, k, flat_index):
    return _element(layout.names[k], _index(layout, k, flat_index))


def _element(name, index):
    """``W[0, 1]``, ``b`` (0-d), ``<root>[3]``."""
    base = name or "<root>"
    return f"{base}[{', '.join(map(str, index))}]" if index else base


class GradCheckResult:
    """The outcome of :func:`check_grad`; printing it gives a report.

    Attributes
    ----------
    ok : bool
        Every checked leaf's relative error is at most ``rtol``.
    max_error : float
        The largest per-leaf relative error (``inf`` if a derivative was not
        finite).
    errors : dict of str to float
        The relative error of each checked leaf, in layout order.
    worst : list of WorstElement
        The elements with the largest relative errors, worst first:
        ``(leaf, index, autograd, finite_difference, difference, error,
        remark)``.
    rtol : float
        The tolerance used.
    leaves : list of LeafCheck
        Per checked leaf, the checked indices and both derivatives, element
        by element.
    unchecked : list of str
        The leaves left out by ``leaves=``.
    loss : float
        The loss at the params.
    evaluations : int
        How many times the loss was called (one traced call for autograd,
        two at the params to test that the loss is deterministic, two per
        checked element, and two per failing worst element for its remark).
    floor : float
        The absolute floor of the relative errors, ``1e-3`` times the
        gradient's overall norm.
    deterministic : bool
        The loss gave the same value, bit for bit, in two evaluations at the
        params. If not, the finite differences measure its randomness. (A
        loss with little randomness, such as a dropout mask over a handful
        of units, can give the same value twice by chance and pass this test.)
    notes : list of str
        Warnings about the check itself: a non-deterministic loss, a
        gradient too small to check, what the remarks mean, non-finite
        values.
    """

    def __init__(self, leaves, worst, rtol, all_names, loss, evaluations, floor, notes,
                 deterministic):
        self.leaves = leaves
        self.errors = {c.name: c.error for c in leaves}
        self.max_error = max(self.errors.values())
        self.rtol = rtol
        self.ok = bool(self.max_error <= rtol)
        self.worst = worst
        checked = set(self.errors)
        self.unchecked = [n for n in all_names if n not in checked]
        self.loss = loss
        self.evaluations = evaluations
        self.floor = floor
        self.notes = notes
        self.deterministic = deterministic

    def report(self):
        """The multi-line report that printing the result shows."""
        verdict = "passed" if self.ok else "FAILED"
        lines = [f"check_grad {verdict}: largest leaf error {self.max_error:.2e} "
                 f"(rtol {self.rtol:.0e}); loss {self.loss:.10g}, "
                 f"{self.evaluations} loss evaluations"]
        width = max([len(_label(c.name)) for c in self.leaves] + [4])
        lines.append(f"  {'leaf'.ljust(width)}  {'checked':>15}  {'rel. error':>10}")
        for c in self.leaves:
            counted = f"{len(c.indices)} of {c.size}"
            flag = "  <-- above rtol" if not c.error <= self.rtol else ""
            lines.append(f"  {_label(c.name).ljust(width)}  {counted:>15}  "
                         f"{c.error:10.2e}{flag}")
        if self.unchecked:
            lines.append(f"  not checked: {', '.join(map(_label, self.unchecked))}")
        if self.worst:
            names = [_element(w.leaf, w.index) for w in self.worst]
            width = max(len(n) for n in names + ["element"])
            lines.append("worst elements:")
            lines.append(f"  {'element'.ljust(width)}  {'autograd':>13}  {'finite diff.':>13}"
                         f"  {'difference':>10}  {'rel. error':>10}")
            for name, w in zip(names, self.worst):
                lines.append(f"  {name.ljust(width)}  {w.autograd:13.6g}  "
                             f"{w.finite_difference:13.6g}  {w.difference:10.2e}  "
                             f"{w.error:10.2e}  {w.remark}".rstrip())
        notes = list(self.notes)
        unexplained = [w for w in self.worst if w.error > self.rtol and not w.remark]
        if not self.ok and self.deterministic and unexplained:
            notes.append("a leaf error of 0.1 or more, with failing elements that carry no "
                         "remark, means a wrong derivative (0.5: twice too large, 2: the "
                         "wrong sign), e.g. a custom primitive's vjp; help(check_grad) "
                         "explains how to read this report")
        for note in notes:
            lines.extend(textwrap.wrap(note, width=88, initial_indent="note: ",
                                       subsequent_indent="      "))
        return "\n".join(lines)

    __repr__ = report
    __str__ = report
