"""The stages of the gradient pipeline, as functions on flat buffers.

:meth:`Optimizer._advance <npdownhill.Optimizer>` runs them in this order
on the flat gradient ``g`` (DESIGN.md section 3)::

    noise -> multipliers -> clipping -> the rule -> momentum -> weight decay -> step

Each stage is a fixed number of whole-buffer NumPy operations written in
place, whatever the number of leaves. The moving averages used by the rules
(:func:`ema`, :func:`ema_square`) and the numeric checks live here too.
"""

import math

import numpy as np

from . import hyper as H

__all__ = ["multipliers", "clip", "momentum", "weight_decay", "ema", "ema_square", "norm",
           "finite", "leaf_list"]


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


def clip(g, layout, max_elem, max_leaf_norm, global_clip, tmp, where):
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
        Scratch buffer.
    where : str
        Names the callable's result in error messages.
    """
    if max_elem:
        np.clip(g, -max_elem, max_elem, out=g)
    c = max_leaf_norm
    if c:
        with np.errstate(over="ignore"):      # overflowing squares are handled below
            np.multiply(g, g, out=tmp)
            norms = np.sqrt(layout.leaf_sums(tmp))
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


def momentum(step, velocity, mu, nesterov, tmp):
    """Turn ``u`` (held in ``step``) into the step to add, in place.

    ``velocity`` is None without momentum: ``step = -u``. Otherwise
    ``v = mu v - u`` and ``step = v`` (classical) or ``step = mu v - u``
    (Nesterov).
    """
    u = step
    if velocity is None:
        np.negative(u, out=step)
        return
    velocity *= mu
    velocity -= u
    if nesterov:
        np.multiply(velocity, mu, out=tmp)
        np.subtract(tmp, u, out=step)
    else:
        np.copyto(step, velocity)


def weight_decay(step, params, factor, tmp):
    """Decoupled weight decay: ``step -= factor * params`` (``factor = lr * wd``)."""
    np.multiply(params, factor, out=tmp)
    step -= tmp


def ema(average, x, decay, tmp):
    """``average = decay * average + (1 - decay) * x``, in place (``tmp``: scratch)."""
    np.multiply(x, 1 - decay, out=tmp)
    average *= decay
    average += tmp
    return average


def ema_square(average, x, decay, tmp):
    """``average = decay * average + (1 - decay) * x**2``, in place (``tmp``: scratch)."""
    np.multiply(x, x, out=tmp)
    tmp *= 1 - decay
    average *= decay
    average += tmp
    return average


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


def finite(flat):
    """Whether every element is finite: one sum (NaN and inf propagate), and an
    exact look only in the rare case that the sum of finite values overflows."""
    return math.isfinite(flat.sum()) or bool(np.isfinite(flat).all())


