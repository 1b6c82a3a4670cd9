"""The stages of the gradient pipeline, and helpers on flat buffers.

:meth:`Optimizer._advance <npdownhill.Optimizer>` runs the stages in this
order on the flat gradient ``g`` (DESIGN.md section 3)::

    noise -> multipliers -> clipping -> the rule -> momentum -> weight decay -> step

chunk by chunk (:meth:`Layout.chunks <npdownhill.tree.Layout.chunks>`), each
stage a few in-place NumPy operations on a chunk, so that a chunk's
intermediates stay in the CPU cache and no step allocates a full-size
temporary. What must see the whole gradient first (its finiteness when noise
is drawn, per-leaf and global norms, a clipping callable) runs before the
chunk loop: :func:`clip`, :func:`leaf_square_sums`. The moving averages used
by the rules (:func:`ema`, :func:`ema_square`) and the numeric checks live
here too.
"""

import math

import numpy as np

from . import hyper as H

__all__ = ["multipliers", "clip", "ema", "ema_square", "adam_step", "adam_constants", "rms_step",
           "norm", "finite", "leaf_square_sums", "leaf_list"]


def multipliers(layout, factors, frozen, call):
    """Flat per-element gradient factors and a step mask, or ``(None, None)``.

    Parameters
    ----------
    layout : Layout
    factors : dict
        ``{leaf name: factor}`` (``gradient_multipliers``).
    frozen : sequence of str
        Leaf names that never move: factor 0 and step mask 0.
    call : str
        For error messages.

    Returns
    -------
    mult, mask : ndarray or None

    Raises
    ------
    ValueError
        A name that is not a leaf (the message lists the leaves).
    """
    names = layout.names
    for key in list(factors) + list(frozen):
        if key not in layout.index:
            which = "gradient_multipliers" if key in factors else "frozen"
            raise ValueError(f"{call}({which}=...): {key!r} is not a leaf name; "
                             f"the leaves are {names}{H.suggest(key, names)}")
    if not factors and not frozen:
        return None, None
    off = layout.offsets
    mult = layout.empty()
    mult.fill(1)
    for key, factor in factors.items():
        i = layout.index[key]
        mult[off[i]:off[i + 1]] = factor
    mask = None
    if frozen:
        mask = layout.empty()
        mask.fill(1)
        for key in frozen:
            i = layout.index[key]
            mult[off[i]:off[i + 1]] = 0
            mask[off[i]:off[i + 1]] = 0
    return mult, mask


def clip(g, layout, max_elem, max_leaf_norm, global_clip, tmp, where, spans=None):
    """Elementwise, per-leaf and global clipping of the flat gradient, in place.

    Parameters
    ----------
    g : ndarray
        The flat gradient.
    layout : Layout
    max_elem : float
        ``max_gradient_elem``: clip every element to ``[-c, c]``; 0 = off.
    max_leaf_norm : float
        ``max_gradient_norm``: rescale each leaf to an L2 norm ``<= c``; 0 = off.
    global_clip : None, float or callable
        ``clip_gradients``: rescale the whole gradient to a norm ``<= c``, or
        call it with the gradient tree and use the tree it returns.
    tmp : ndarray
        Scratch of a chunk's length (see :func:`leaf_square_sums`).
    where : str
        Names the callable's result in error messages.
    spans : list, optional
        ``layout.chunks(len(tmp))`` (computed if not given).
    """
    if max_elem:
        np.clip(g, -max_elem, max_elem, out=g)
    c = max_leaf_norm
    if c:
        with np.errstate(over="ignore"):      # overflowing squares are handled below
            norms = np.sqrt(leaf_square_sums(g, layout, tmp, spans))
        off = layout.offsets
        for i in np.flatnonzero(norms > c):
            leaf = g[off[i]:off[i + 1]]
            leaf *= c / (norms[i] if math.isfinite(norms[i]) else norm(leaf))
    if global_clip is None:
        return
    if callable(global_clip):
        result = global_clip(layout.unflatten(g.copy()))
        layout.gather(result, g, where)
        return
    total = norm(g)
    if total > global_clip:
        g *= global_clip / total


def leaf_square_sums(g, layout, tmp, spans=None):
    """Per-leaf sums of ``g**2``, equal bit for bit to ``np.add.reduceat(g * g, offsets)``.

    The squares are formed a chunk at a time in ``tmp``, so nothing of the
    buffer's size is allocated. ``reduceat`` adds each leaf's squares as its
    first one plus NumPy's pairwise sum of the others; a leaf larger than
    ``tmp`` is summed in pieces following the pairwise sum's own halving
    (see :func:`_pairwise_squares`), so its sum is the same number.

    Parameters
    ----------
    g : ndarray
        A flat buffer of the layout.
    layout : Layout
    tmp : ndarray
        Scratch: 1-d, the dtype of ``g``.
    spans : list, optional
        ``layout.chunks(len(tmp))`` (computed if not given).

    Returns
    -------
    ndarray
        One sum per leaf, of ``g``'s dtype.
    """
    spans = layout.chunks(len(tmp)) if spans is None else spans
    off = layout.offsets
    sums = np.empty(len(off) - 1, dtype=g.dtype)
    with np.errstate(over="ignore"):
        for start, stop, first, last, lo, _ in spans:
            if lo is None:            # whole leaves: one reduceat over the chunk
                squares = tmp[:stop - start]
                np.multiply(g[start:stop], g[start:stop], squares)
                sums[first:last] = np.add.reduceat(squares, off[first:last] - start)
            elif lo == 0:             # the first chunk of a large leaf: the whole leaf
                leaf = g[off[first]:off[first + 1]]
                sums[first] = leaf[0] * leaf[0] + _pairwise_squares(leaf[1:], tmp)
    return sums


#: NumPy's pairwise summation adds up to this many numbers in one unrolled loop.
_PAIRWISE_BLOCK = 128


def _pairwise_squares(x, tmp):
    """``np.add.reduce(x * x)``, squaring at most ``len(tmp)`` elements at a time.

    NumPy sums a contiguous array pairwise: more than 128 numbers are split
    at half their count rounded down to a multiple of 8, and the two halves'
    sums are added. Splitting the same way down to pieces that fit in
    ``tmp`` reproduces the sum exactly (a test checks it against NumPy).
    """
    n = x.size
    if n <= _PAIRWISE_BLOCK or n <= tmp.size:
        squares = tmp[:n] if n <= tmp.size else np.empty(n, x.dtype)
        np.square(x, squares)
        return np.add.reduce(squares)
    half = n // 2
    half -= half % 8
    return _pairwise_squares(x[:half], tmp) + _pairwise_squares(x[half:], tmp)


def ema(average, x, decay, tmp, out=None, rest=None):
    """``out = decay * average + (1 - decay) * x`` (``out``: default ``average``, in place).

    ``tmp`` is scratch; all arguments are arrays of one shape (or chunks).
    ``rest`` is ``1 - decay`` when the caller has it already (as a 0-d array).
    """
    out = average if out is None else out
    np.multiply(x, 1 - decay if rest is None else rest, tmp)
    np.multiply(average, decay, out)
    np.add(out, tmp, out)
    return out


def ema_square(average, x, decay, tmp, out=None, rest=None):
    """``out = decay * average + (1 - decay) * x**2`` (``out``: default ``average``)."""
    out = average if out is None else out
    np.square(x, tmp)
    np.multiply(tmp, 1 - decay if rest is None else rest, tmp)
    np.multiply(average, decay, out)
    np.add(out, tmp, out)
    return out


def adam_step(m, v, u, tmp, eps, step):
    r"""Adam's step from its moments, into ``u``: :math:`u = s\, m / (\sqrt{v} + \epsilon)`,
    with ``eps`` and ``step`` from :func:`adam_constants`.

    Shared by the Adam family, Yogi, AdaBelief and ESGD (their ``v`` differ). The
    square root is the first to write ``u``: its wait for ``u``'s memory (a
    chunk of the gradient buffer, cold in the cache) overlaps the slowest
    operation. ``tmp`` is scratch; all arrays have one shape.
    """
    np.sqrt(v, u)
    np.add(u, eps, u)
    np.divide(m, u, u)
    np.multiply(u, step, u)
    return u


def adam_constants(lr, eps, bc1, bc2, hat=False):
    r"""``(eps', s)`` for :func:`adam_step`: Adam's bias-corrected step in one form.

    Algorithm 1 of Kingma and Ba divides the moments by their bias
    corrections :math:`bc_1, bc_2`; the same step, up to rounding, comes
    without dividing every element of :math:`v` by :math:`bc_2`:

    .. math::

        -\eta\, \frac{m / bc_1}{\sqrt{v / bc_2} + \epsilon}
        = s\, \frac{m}{\sqrt{v} + \epsilon'}, \qquad
        s = -\eta\, \frac{\sqrt{bc_2}}{bc_1}, \quad \epsilon' = \epsilon \sqrt{bc_2}

    (one NumPy pass fewer of the dozen an update makes). With ``hat`` (the
    epsilon-hat form of Lasagne and Keras, :math:`-\eta \sqrt{bc_2} / bc_1\;
    m / (\sqrt{v} + \epsilon)`) :math:`\epsilon' = \epsilon`.
    """
    root = math.sqrt(bc2)
    return (eps if hat else eps * root), -lr * root / bc1


def rms_step(g, second, u, tmp, eps, step, inside=False):
    r"""A step scaled by a second moment, into ``u``: :math:`u = s\, g / \sqrt{r + \epsilon}`
    with ``inside`` (epsilon inside the root), else :math:`u = s\, g / (\sqrt{r} + \epsilon)`,
    where ``step`` :math:`s` is :math:`-\eta` and ``second`` :math:`r` the moment.

    Shared by RMSProp and ADAGRAD (their ``r`` differ). As in :func:`adam_step`
    the square root writes ``u`` first. ``tmp`` is scratch.
    """
    if inside:
        np.sqrt(np.add(second, eps, tmp), u)
    else:
        np.sqrt(second, u)
        np.add(u, eps, u)
    np.divide(g, u, u)
    np.multiply(u, step, u)
    return u


def norm(x):
    """L2 norm of a flat vector, without overflow for elements beyond 1e154."""
    with np.errstate(over="ignore"):
        norm = math.sqrt(float(np.dot(x, x)))
    if math.isinf(norm):       # the squares overflowed: scale by the largest element first
        largest = float(np.max(np.abs(x)))
        norm = largest * math.sqrt(float(np.dot(x / largest, x / largest)))
    return norm


def leaf_list(names):
    """``leaves ['w', 'b']`` for messages (the root array of a bare-array tree is unnamed)."""
    return "leaves " + ", ".join(repr(n) for n in names) if any(names) else "the params array"


def finite(flat, ones=None):
    """Whether every element of a 1-d array is finite.

    One sum (NaN and inf propagate), taken as a dot product with ``ones``
    (an array of ones of ``flat``'s length and dtype) when given, which is
    faster; an exact look only in the rare case that a sum of finite values
    overflows.
    """
    total = flat.sum() if ones is None else np.dot(flat, ones)
    return math.isfinite(total) or bool(np.isfinite(flat).all())
