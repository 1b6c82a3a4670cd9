"""Per-leaf settings by leaf name or glob pattern: rates and weight decay of each leaf.

``learning_rate_multipliers={"layers.0.*": 0.1}`` and
``weight_decay={"*.W": 1e-4}`` name leaves by their dotted names
(``"layers.0.W"``) or by :mod:`fnmatch` patterns over those names
(``*`` matches any characters, dots included; ``?`` one character;
``[seq]`` one of a set; the match is case-sensitive).

Which key applies to a leaf:

* a key equal to the leaf's name wins over every pattern (the most specific
  setting: ``{"*.W": 1e-4, "out.W": 0.0}`` decays every ``W`` but
  ``out.W``);
* otherwise the one pattern that matches it; two patterns matching the same
  leaf are refused with a ``ValueError`` naming the leaf and both patterns,
  as torch refuses a parameter in two parameter groups and optax's
  ``multi_transform`` gives each leaf exactly one label;
* a key that matches no leaf is refused with a ``ValueError`` naming it (a
  typo would otherwise silently set nothing).

:func:`leaf_values` turns such a dict into one number per leaf;
:func:`rate_mask` and :func:`decay_vector` make the flat per-element arrays
the chunked update multiplies by.
"""

import fnmatch

from . import hyper as H

__all__ = ["leaf_values", "rate_mask", "decay_vector"]


def leaf_values(names, spec, default, call, option):
    """One value per leaf from ``{leaf name or pattern: value}``.

    Parameters
    ----------
    names : list of str
        The leaves' dotted names, in layout order.
    spec : dict
        ``{leaf name or pattern: value}``, checked by :mod:`npdownhill.hyper`.
    default : float
        The value of the leaves no key matches.
    call, option : str
        For messages: ``f"{call}({option}=...)"``.

    Returns
    -------
    list of float
        One value per leaf, in layout order.

    Raises
    ------
    ValueError
        Keys that match no leaf (all of them named, with the leaves listed),
        or two patterns that match the same leaf.
    """
    unmatched = [key for key in spec
                 if key not in names and not any(fnmatch.fnmatchcase(n, key) for n in names)]
    if unmatched:
        hint = H.suggest(unmatched[0], names) if len(unmatched) == 1 else ""
        raise ValueError(f"{call}({option}=...): {', '.join(repr(k) for k in unmatched)} "
                         f"{'matches' if len(unmatched) == 1 else 'match'} no leaf; the leaves "
                         f"are {names}{hint}")
    values = []
    for name in names:
        if name in spec:                 # the exact name: the most specific key
            values.append(spec[name])
            continue
        matching = [key for key in spec if fnmatch.fnmatchcase(name, key)]
        if len(matching) > 1:
            raise ValueError(f"{call}({option}=...): leaf {name!r} matches the patterns "
                             f"{', '.join(repr(k) for k in matching)}; a leaf may match one "
                             f"pattern only (give its exact name {name!r} to settle it)")
        values.append(spec[matching[0]] if matching else default)
    return values


def rate_mask(layout, factors, mask, call):
    r"""The step mask with each leaf's learning-rate multiplier folded in.

    The last stage of the update multiplies the step by the mask (0 for
    frozen leaves), so a multiplier :math:`c_\ell` there scales leaf
    :math:`\ell`'s whole step, momentum and weight decay included:
    :math:`p_\ell \leftarrow p_\ell + c_\ell\, \mathrm{step}_\ell`.

    Parameters
    ----------
    layout : Layout
    factors : dict or None
        ``learning_rate_multipliers``.
    mask : ndarray or None
        The frozen-leaf mask of :func:`npdownhill.pipeline.multipliers`.
    call : str

    Returns
    -------
    ndarray or None
        The flat mask (``None`` when no leaf is frozen or scaled).
    """
    if not factors:
        return mask
    values = leaf_values(layout.names, factors, 1.0, call, "learning_rate_multipliers")
    if mask is None:
        mask = layout.empty()
        mask.fill(1)
    off = layout.offsets
    for i, value in enumerate(values):
        mask[off[i]:off[i + 1]] *= value     # a frozen leaf's 0 stays 0
    return mask


def decay_vector(layout, weight_decay, call):
    """Flat per-element weight decay factors for a dict ``weight_decay``, else ``None``.

    ``None`` too when the dict gives every leaf 0 (no decay to apply).
    """
    if not isinstance(weight_decay, dict):
        return None
    values = leaf_values(layout.names, weight_decay, 0.0, call, "weight_decay")
    if not any(values):
        return None
    out = layout.empty()
    off = layout.offsets
    for i, value in enumerate(values):
        out[off[i]:off[i + 1]] = value
    return out
