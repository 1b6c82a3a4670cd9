"""Flat state dicts: encode values as plain arrays and read them back with checks.

State dicts (an optimizer's, a run's) are flat dicts from dotted keys to
NumPy arrays, numbers and strings, so that they survive ``np.savez`` and
``np.load(allow_pickle=False)``. These helpers write lists of names and
``{name: float}`` dicts that way, and read entries back checking their
shape and kind, raising ``ValueError`` with the key and what was expected.
"""

import numpy as np

__all__ = ["names_array", "encode_floats", "decode_floats", "get", "scalar", "vector"]


def names_array(names):
    """A 1-d unicode array of names (an empty one of dtype ``<U1`` for none)."""
    names = list(names)
    return np.array(names, dtype=str) if names else np.zeros(0, dtype="<U1")


def encode_floats(prefix, values, out):
    """Store ``{name: float}`` as ``<prefix>.names`` and ``<prefix>.values`` in ``out``."""
    out[f"{prefix}.names"] = names_array(values)
    out[f"{prefix}.values"] = np.array([float(v) for v in values.values()], dtype=float)


def decode_floats(prefix, state, where):
    """Read back what :func:`encode_floats` stored."""
    names = vector(state, f"{prefix}.names", "U", where)
    values = vector(state, f"{prefix}.values", "iuf", where)
    if names.shape != values.shape:
        raise ValueError(f"{where}: {prefix}.names and {prefix}.values differ in length")
    return {str(k): float(v) for k, v in zip(names.tolist(), values.tolist())}


def get(state, key, where):
    """``state[key]`` as an array; ``ValueError`` naming the key if it is missing."""
    if key not in state:
        raise ValueError(f"{where}: the state has no {key!r}")
    return np.asarray(state[key])


_KINDS = {int: ("iu", "an integer"), float: ("iuf", "a real number"), bool: ("b", "a bool"),
          str: ("U", "a string")}


def scalar(state, key, kind, where):
    """A scalar entry converted to ``kind`` (int, float, bool or str), checked."""
    value = get(state, key, where)
    if value.ndim != 0:
        raise ValueError(f"{where}: {key!r} must be a scalar; got shape {value.shape}")
    kinds, what = _KINDS[kind]
    if value.dtype.kind not in kinds:
        raise ValueError(f"{where}: {key!r} must be {what}; got dtype {value.dtype}")
    value = value.item()
    if kind is bool:
        return bool(value)
    if kind is str:
        return str(value)
    return kind(value)


def vector(state, key, kinds, where):
    """A 1-d entry whose dtype kind is one of ``kinds`` (any kind when empty)."""
    value = get(state, key, where)
    if value.ndim != 1 or (value.size and value.dtype.kind not in kinds):
        raise ValueError(f"{where}: {key!r} must be a 1-d array; got shape {value.shape} "
                         f"and dtype {value.dtype}")
    return value
