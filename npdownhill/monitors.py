"""Loss values and monitors: checking what the user's functions return."""

import numpy as np

__all__ = ["check_loss_value", "parse_monitors", "evaluate_monitors"]


_FLOAT_SCALARS = (float, np.float64, np.float32)


def check_loss_value(call, value):
    """Refuse losses that are not real float scalars, naming the shape or type."""
    if value.__class__ in _FLOAT_SCALARS:
        return value
    shape = np.shape(value)
    if shape != ():
        raise ValueError(f"{call}: the loss must return a scalar; got an array of shape {shape} "
                         "(reduce it, e.g. with anp.mean or anp.sum)")
    dtype = getattr(value, "dtype", None)
    kind = dtype.kind if dtype is not None else ("f" if isinstance(value, float) else None)
    if kind != "f":
        kind_name = dtype if dtype is not None else type(value).__name__
        raise TypeError(f"{call}: the loss must return a real floating-point number; "
                        f"got {kind_name}")
    return value


def parse_monitors(monitors, call):
    """Monitors as a list of ``(name, fn)`` pairs, checked (names unique, not 'loss')."""
    if monitors is None:
        return []
    items = list(monitors.items()) if isinstance(monitors, dict) else monitors
    out, seen = [], {"loss"}
    try:
        items = list(items)
    except TypeError:
        raise TypeError(f"{call}(monitors=...): monitors must be a dict or a sequence of "
                        f"(name, fn) pairs; got {type(monitors).__name__}") from None
    for item in items:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise TypeError(f"{call}(monitors=...): each monitor must be a (name, fn) pair; got {item!r}")
        name, fn = item
        if not isinstance(name, str):
            raise TypeError(f"{call}(monitors=...): monitor names must be strings; got {name!r}")
        if not callable(fn):
            raise TypeError(f"{call}(monitors=...): monitor {name!r} must be callable; "
                            f"got {type(fn).__name__}")
        if name in seen:
            raise ValueError(f"{call}(monitors=...): monitor name {name!r} is used twice "
                             "('loss' is reserved)")
        seen.add(name)
        out.append((name, fn))
    return out


def evaluate_monitors(monitors, params, batch):
    """``{name: float}`` of every monitor on one batch; non-numbers are a TypeError."""
    out = {}
    for name, fn in monitors:
        value = fn(params, *batch)
        try:
            out[name] = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"monitor {name!r} must return a number; got "
                            f"{type(value).__name__} of shape {np.shape(value)}") from None
    return out
