"""Random generator states as flat dicts that survive ``np.savez`` without pickle.

``Generator.bit_generator.state`` is a nested dict whose integers can exceed
64 bits (PCG64 keeps 128-bit words). :func:`encode` flattens it to keys such
as ``"rng.state.state"`` holding decimal strings (exact for any size) or
arrays; :func:`decode` rebuilds it, using the target generator's current
state as the template for types and shapes.
"""

import numpy as np

__all__ = ["encode", "decode"]


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _flatten(prefix, value, out):
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, out)
    else:  # str() of an int is exact, even for 128-bit integers
        out[prefix] = value.copy() if isinstance(value, np.ndarray) else str(value)


def _unflatten(prefix, template, state, where):
    if isinstance(template, dict):
        return {key: _unflatten(f"{prefix}.{key}", item, state, where)
                for key, item in template.items()}
    if prefix not in state:
        raise ValueError(f"{where}: missing key {prefix!r}")
    value = np.asarray(state[prefix])
    try:
        if isinstance(template, np.ndarray):
            if value.shape != template.shape:
                raise ValueError
            return value.astype(template.dtype)
        if _is_int(template):
            return int(str(value.item()))
        return str(value.item())
    except (TypeError, ValueError):
        raise ValueError(f"{where}: key {prefix!r} does not match the random generator; "
                         f"got {value!r}") from None


def encode(prefix, generator):
    """Flatten ``generator``'s bit-generator state into ``{prefix.key: value}``.

    Parameters
    ----------
    prefix : str
        Key prefix, e.g. ``"rng"``.
    generator : numpy.random.Generator

    Returns
    -------
    dict
        Strings and arrays only.
    """
    out = {}
    _flatten(prefix, generator.bit_generator.state, out)
    return out


def decode(prefix, generator, state, where):
    """Rebuild the bit-generator state stored by :func:`encode` for ``generator``.

    Nothing is changed: the caller assigns the result to
    ``generator.bit_generator.state``.

    Raises
    ------
    ValueError
        A key is missing, or the stored generator is of another kind.
    """
    template = generator.bit_generator.state
    name = template["bit_generator"]
    stored = np.asarray(state.get(f"{prefix}.bit_generator", ""))
    if stored.ndim != 0 or str(stored.item()) != name:
        raise ValueError(f"{where}: the stored random generator is {stored!r}; this one is {name!r}")
    return _unflatten(prefix, template, state, where)
