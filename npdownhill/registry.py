"""The registry of algorithms: names, lookup and :func:`build`.

Each rule module registers its classes with the :func:`register` decorator;
everything that lists the algorithms (``dh.algorithms()``, the demo's
``--algo`` choices, the generated docs and README tables, the shared test
battery) reads this registry, so adding a rule touches only the rule's own
file and its reference transcription in the tests.
"""

from . import hyper as H
from .optimizer import Optimizer

__all__ = ["register", "algorithms", "lookup", "build"]

_REGISTRY = {}


def register(cls):
    """Class decorator: register an :class:`Optimizer` subclass under ``cls.name``.

    Parameters
    ----------
    cls : type
        A subclass of :class:`~npdownhill.Optimizer` with a lower-case
        ``name`` attribute.

    Returns
    -------
    type
        ``cls`` itself.

    Raises
    ------
    TypeError
        ``cls`` is not an Optimizer subclass or has no ``name``.
    ValueError
        Another class is registered under the same name.
    """
    if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
        raise TypeError(f"register: expected an Optimizer subclass; got {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"register({cls.__name__}): the class needs a 'name' attribute")
    key = name.lower()
    if _REGISTRY.get(key, cls) is not cls:
        raise ValueError(f"register({cls.__name__}): the name {key!r} is taken by "
                         f"{_REGISTRY[key].__name__}")
    _REGISTRY[key] = cls
    return cls


def algorithms():
    """The registered algorithm names, sorted.

    Returns
    -------
    list of str
    """
    return sorted(_REGISTRY)


def lookup(name, call="build"):
    """The class registered under ``name`` (case-insensitive).

    Raises
    ------
    ValueError
        An unknown name; the message lists the known names and suggests the
        closest one.
    """
    cls = _REGISTRY.get(name.lower())
    if cls is None:
        raise ValueError(f"{call}(algo={name!r}): unknown algorithm; known algorithms are "
                         f"{algorithms()}{H.suggest(name.lower(), _REGISTRY)}")
    return cls


def build(algo, loss=None, params=None, monitors=(), monitor_gradients=False, **kwargs):
    """Construct an optimizer by name, class or instance.

    Parameters
    ----------
    algo : str, Optimizer subclass or Optimizer
        A registered name (case-insensitive, see :func:`algorithms`), a
        class, or an existing instance (then ``loss`` and ``params`` must be
        ``None`` or its own, and ``kwargs`` update its hyperparameters).
    loss, params, monitors, monitor_gradients, **kwargs
        As for :class:`~npdownhill.Optimizer`.

    Returns
    -------
    Optimizer

    Raises
    ------
    ValueError
        An unknown name (the message lists the names and suggests the closest).
    TypeError
        ``algo`` of another type, or ``params`` missing.
    """
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
        cls = lookup(algo)
    else:
        raise TypeError(f"build(algo=...): algo must be a name, an Optimizer subclass or an "
                        f"instance; got {type(algo).__name__}")
    if params is None:
        raise TypeError(f"build({algo!r}): params is required")
    return cls(loss, params, monitors=monitors, monitor_gradients=monitor_gradients, **kwargs)
