"""Declared hyperparameters: defaults, range rules, aliases and error messages.

Every optimizer class declares its hyperparameters as :class:`Hyper` objects
in a class-level dict. The base class merges the declarations of the whole
class hierarchy, so one validation routine serves every algorithm and every
entry point (constructor, :func:`~npdownhill.build`, ``iterate``,
``minimize``). A rejected value raises an error that names the call, the
hyperparameter, the rule and the value::

    Adam(beta1=1.5): beta1 must be in [0, 1); got 1.5

Spellings from downhill and pycmtensor are accepted as *aliases* that convert
to the canonical name: a halflife ``h`` (in updates) means a decay factor
``exp(-ln 2 / h)``, ``rms_regularizer`` means ``epsilon``, ``b1`` / ``b2``
mean ``beta1`` / ``beta2``, and ``lr`` means ``learning_rate``.
"""

import difflib
import math
import numbers
import re

import numpy as np

__all__ = ["Hyper", "suggest", "number", "halflife_to_decay", "learning_rate", "describe"]


def _edit_distance(a, b):
    """Edits (insert, delete, substitute, swap two neighbours) turning ``a`` into ``b``."""
    prev2, prev = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            cost = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, prev2[j - 2] + 1)
            row.append(cost)
        prev2, prev = prev, row
    return prev[-1]


def suggest(name, known):
    """A ``" (did you mean 'x'?)"`` hint for a misspelt name, or ``""``.

    The closest known name by edit distance (a swap of two neighbouring
    letters counts as one edit) is suggested when it is within a third of
    the name's length; otherwise difflib's closest match, if any.
    """
    known = list(known)
    if not known:
        return ""
    best = min(known, key=lambda k: (_edit_distance(name, k), -difflib.SequenceMatcher(None, name, k).ratio()))
    if _edit_distance(name, best) <= max(1, len(name) // 3):
        return f" (did you mean {best!r}?)"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def number(call, name, value, low=None, high=None, low_open=False, high_open=False,
           integer=False):
    """Check that ``value`` is a finite real number in a range; return it as float or int.

    Parameters
    ----------
    call, name : str
        Used in the message: ``f"{call}({name}={value!r}): ..."``.
    value : object
        The value to check. ``bool`` is refused; NumPy scalars and 0-d
        arrays are accepted.
    low, high : float, optional
        Bounds; ``None`` means unbounded.
    low_open, high_open : bool
        Whether the bound itself is excluded.
    integer : bool
        Require an integral value and return an ``int``.

    Raises
    ------
    TypeError
        Not a real number (strings, bools, arrays with more than one element).
    ValueError
        NaN, infinite, not integral when required, or out of range.
    """
    shown = value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if not _is_number(value):
        raise TypeError(f"{call}({name}={value!r}): {name} must be a real number; "
                        f"got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{call}({name}={shown!r}): {name} must be finite; got {shown!r}")
    if integer:
        if value != int(value):
            raise ValueError(f"{call}({name}={shown!r}): {name} must be an integer; got {shown!r}")
        value = int(value)
    else:
        value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        if low is not None and high is not None:
            rule = f"in {'(' if low_open else '['}{_fmt(low)}, {_fmt(high)}{')' if high_open else ']'}"
        elif low is not None:
            rule = f"{'>' if low_open else '>='} {_fmt(low)}"
        else:
            rule = f"{'<' if high_open else '<='} {_fmt(high)}"
        raise ValueError(f"{call}({name}={shown!r}): {name} must be {rule}; got {shown!r}")
    return value


def _fmt(x):
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def halflife_to_decay(call, name, halflife):
    """Convert a halflife ``h`` (in updates) to the decay ``exp(-ln 2 / h)``.

    downhill expressed its moving-average decays as halflives: after ``h``
    updates an old gradient's weight has halved. ``h = 7`` gives 0.9057,
    ``h = 14`` gives 0.9517, ``h = 69`` gives 0.9900.
    """
    h = number(call, name, halflife, low=0, low_open=True)
    return math.exp(-math.log(2.0) / h)


class Hyper:
    """Declaration of one hyperparameter.

    Parameters
    ----------
    default : object
        The value used when the caller gives none.
    check : callable
        ``check(call, name, value) -> value``: returns the normalised value
        or raises ``TypeError`` / ``ValueError`` with a full message.
    doc : str
        One line for the documentation tables.
    schedulable : bool
        If true the value may also be a callable ``f(step) -> float``
        (a schedule); each value it returns is checked by ``check`` when used.
    aliases : dict, optional
        ``{alias: convert}`` where ``convert(call, alias, value)`` returns the
        canonical value (e.g. a halflife converted to a decay factor).
    """

    def __init__(self, default, check, doc, schedulable=False, aliases=None):
        self.default = default
        self.check = check
        self.doc = doc
        self.schedulable = schedulable
        self.aliases = dict(aliases or {})

    def validate(self, call, name, value):
        """Return the checked value (a schedule is checked for being callable)."""
        if self.schedulable and callable(value):
            return value
        return self.check(call, name, value)


# -- reusable checks ------------------------------------------------------

def nonnegative(call, name, value):
    """A finite number ``>= 0``."""
    return number(call, name, value, low=0)


def unit_interval(call, name, value):
    """A finite number in ``[0, 1)`` (decay factors, momentum)."""
    return number(call, name, value, low=0, high=1, high_open=True)


def boolean(call, name, value):
    """A ``bool`` (NumPy bools accepted)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{call}({name}={value!r}): {name} must be True or False; "
                        f"got {type(value).__name__}")
    return bool(value)


def rng_or_seed(call, name, value):
    """None, a seed >= 0 or a ``numpy.random.Generator``."""
    if value is None or isinstance(value, np.random.Generator):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        if value < 0:
            raise ValueError(f"{call}({name}={value!r}): {name} seed must be >= 0; got {value}")
        return int(value)
    raise TypeError(f"{call}({name}={value!r}): {name} must be None, an int seed or a "
                    f"numpy.random.Generator; got {type(value).__name__}")


def clip_spec(call, name, value):
    """None, a callable, or a number > 0."""
    if value is None or callable(value):
        return value
    value = number(call, name, value, low=0, low_open=True)
    return value


def leaf_factors(call, name, value):
    """None or a dict from leaf name to a finite factor."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError(f"{call}({name}=...): {name} must be a dict from leaf name to factor; "
                        f"got {type(value).__name__}")
    return {key: number(call, f"{name}[{key!r}]", factor) for key, factor in value.items()}


def leaf_names(call, name, value):
    """A list (tuple, set) of leaf names; None means none."""
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise TypeError(f"{call}({name}={value!r}): {name} must be a list of leaf names; "
                        f"got {type(value).__name__}")
    for item in value:
        if not isinstance(item, str):
            raise TypeError(f"{call}({name}=...): leaf names must be strings; got {item!r}")
    return tuple(value)


def same(call, name, value):
    """Accept the value unchanged (for options validated elsewhere)."""
    return value


def learning_rate(default):
    """The ``learning_rate`` declaration (alias ``lr``; a number >= 0 or a schedule)."""
    return Hyper(default, nonnegative, "step size (or a schedule)", schedulable=True,
                 aliases={"lr": identity_alias})


def decay_aliases(prefix="rms"):
    """Aliases for a decay factor: ``<prefix>_halflife``."""
    return {f"{prefix}_halflife": halflife_to_decay}


def identity_alias(call, name, value):
    """Convert an alias that is just another spelling of the canonical name."""
    return value


def describe(value):
    """A stable text for a hyperparameter value, to save and to compare on resume.

    Numbers, strings and containers use ``repr``. A function is named by its
    module and qualified name (``repr`` would show a memory address that
    changes from one process to the next); other callables (schedules) use
    their ``repr`` with any ``at 0x...`` address removed.
    """
    if callable(value) and hasattr(value, "__qualname__") and hasattr(value, "__module__"):
        return f"{value.__module__}.{value.__qualname__}"
    return _ADDRESS.sub("", repr(value))


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


# -- per-leaf settings by leaf name or pattern (learning_rate_multipliers, weight_decay) --

def _pattern_dict(call, name, value, what):
    """A dict from leaf name or glob pattern to a finite number >= 0, checked."""
    if not isinstance(value, dict):
        raise TypeError(f"{call}({name}=...): {name} must be a dict from leaf name or pattern "
                        f"to {what}; got {type(value).__name__}")
    out = {}
    for key, factor in value.items():
        if not isinstance(key, str):
            raise TypeError(f"{call}({name}=...): {name} keys must be leaf names or patterns "
                            f"(strings); got {key!r}")
        out[key] = number(call, f"{name}[{key!r}]", factor, low=0)
    return out


def leaf_pattern_factors(call, name, value):
    """None or ``{leaf name or pattern: factor >= 0}`` (``learning_rate_multipliers``)."""
    if value is None:
        return None
    return _pattern_dict(call, name, value, "a factor >= 0")


def decay_spec(call, name, value):
    """A number >= 0 for every leaf, or ``{leaf name or pattern: number >= 0}`` (others 0)."""
    if isinstance(value, dict):
        return _pattern_dict(call, name, value, "a decay factor >= 0")
    return nonnegative(call, name, value)


def count(call, name, value):
    """An integer >= 1 (``accumulate``)."""
    return number(call, name, value, low=1, integer=True)
