"""The registry of algorithms: lookup by name and :func:`build`."""

from . import hyper as H

__all__ = ["algorithms", "build", "register"]

_REGISTRY = {}


def register(cls):
    """Register an optimizer class under ``cls.name`` (lower case); return it."""
    _REGISTRY[cls.name.lower()] = cls
    return cls


def algorithms():
    """The registered algorithm names, sorted.

    Returns
    -------
    list of str
    """
    return sorted(_REGISTRY)


def build(algo, loss=None, params=None, monitors=(), monitor_gradients=False, **kwargs):
    """Construct an optimizer by name, class or instance.

    Parameters
    ----------
    algo : str, Optimizer subclass or Optimizer
        A registered name (case-insensitive, see :func:`algorithms`), a
        class, or an existing instance (then ``loss`` and ``params`` must be
        ``None`` or its own, and ``kwargs`` update its hyperparameters).
    loss, params, monitors, monitor_gradients, **kwargs
        As for :class:`Optimizer`.

    Returns
    -------
    Optimizer

    Raises
    ------
    ValueError
        An unknown name (the message lists the names and suggests the closest).
    TypeError
        ``algo`` of another type.
    """
    from .base import Optimizer
    if isinstance(algo, Optimizer):
        if (loss is not None and loss is not algo.loss) or (params is not None and params is not algo.params):
            raise ValueError("build(algo=<instance>): loss and params must be None or the "
                             "instance's own")
        if kwargs:
            algo.set_hyperparameters(**kwargs)
        return algo
    if isinstance(algo, type) and issubclass(algo, Optimizer):
        cls = algo
    elif isinstance(algo, str):
        cls = _REGISTRY.get(algo.lower())
        if cls is None:
            raise ValueError(f"build(algo={algo!r}): unknown algorithm; known algorithms are "
                             f"{algorithms()}{H.suggest(algo.lower(), _REGISTRY)}")
    else:
        raise TypeError(f"build(algo=...): algo must be a name, an Optimizer subclass or an "
                        f"instance; got {type(algo).__name__}")
    if params is None:
        raise TypeError(f"build({algo!r}): params is required")
    return cls(loss, params, monitors=monitors, monitor_gradients=monitor_gradients, **kwargs)
