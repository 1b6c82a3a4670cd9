"""Declared run options: the keywords of ``iterate`` / ``minimize`` that shape a run.

A *run option* says how a training run goes (how the data are batched, when
it validates and stops, where it saves); a *hyperparameter* (see
:mod:`npdownhill.hyper`) says how the optimizer steps. Both arrive through
the same ``**kwargs`` of :func:`~npdownhill.minimize` and
:meth:`Optimizer.iterate <npdownhill.Optimizer.iterate>`; the run layer splits
them with :data:`RUN_OPTIONS`. The engine only reads the names, to tell a
user who passes ``patience=5`` to an optimizer's constructor where it belongs.

Every option is declared once here with its default, its check and one line
of documentation; :func:`check` validates a dict of them with messages that
name the call, the option, the rule and the value::

    Adam.iterate(patience=-1): patience must be >= 0; got -1
"""

import os

from . import hyper as H

__all__ = ["RUN_OPTIONS", "DATA_OPTIONS", "defaults", "check"]


def _int_or_none(call, name, value):
    return None if value is None else H.number(call, name, value, integer=True)


def _positive_int(call, name, value):
    return H.number(call, name, value, low=1, integer=True)


def _positive_int_or_none(call, name, value):
    return None if value is None else _positive_int(call, name, value)


def _nonneg_int_or_none(call, name, value):
    return None if value is None else H.number(call, name, value, low=0, integer=True)


def _limit(call, name, value):
    """``max_epochs`` / ``max_updates``: None or an integer >= 1 (0 would train nothing)."""
    if value is None:
        return None
    value = H.number(call, name, value, low=0, integer=True)
    if value == 0:
        raise ValueError(f"{call}({name}=0): {name} must be >= 1 or None; got 0 (a run of 0 "
                         "would train nothing; to score the params use opt.evaluate(data))")
    return value


def _callable_or_none(call, name, value):
    if value is not None and not callable(value):
        raise TypeError(f"{call}({name}=...): {name} must be callable; got {type(value).__name__}")
    return value


def _path_or_none(call, name, value):
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{call}({name}={value!r}): {name} must be a file path; "
                        f"got {type(value).__name__}")
    return os.fspath(value)


def _choice(*choices):
    def check(call, name, value):
        if not isinstance(value, str) or value not in choices:
            rule = ", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
            raise ValueError(f"{call}({name}={value!r}): {name} must be {rule}; got {value!r}")
        return value
    return check


def _name(call, name, value):
    if not isinstance(value, str):
        raise TypeError(f"{call}({name}={value!r}): {name} must be the name of a validation "
                        f"monitor (a str); got {type(value).__name__}")
    return value


def _progress(call, name, value):
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{call}({name}={value!r}): {name} must be None, True or False; "
                        f"got {type(value).__name__}")
    return value


#: ``{name: (default, check, doc)}`` for every run option.
RUN_OPTIONS = {
    "batch_size": (32, _int_or_none,
                   "samples per batch when the run makes the Datasets (<= 0: all; None: 32)"),
    "train_batches": (None, _positive_int_or_none, "batches per training epoch (None: one pass)"),
    "valid_batches": (None, _positive_int_or_none, "batches per validation (None: one pass)"),
    "max_updates": (None, _limit, "total gradient updates of the run (None: no limit)"),
    "max_epochs": (None, _limit, "total epochs of the run (None: no limit)"),
    "validate_every": (10, _positive_int, "validate every this many epochs"),
    "patience": (5, _nonneg_int_or_none,
                 "failed validations in a row that are tolerated; the next one ends the run"),
    "min_improvement": (0.0, H.nonnegative, "relative improvement a validation needs"),
    "monitor": ("loss", _name, "the validation monitor that selects the best params, drives "
                               "patience and reduce_on_plateau"),
    "mode": ("min", _choice("min", "max"), "'min': lower monitor values are better; 'max': "
                                           "higher"),
    "callback": (None, _callable_or_none, "callback(info) after every epoch"),
    "checkpoint": (None, _path_or_none, "file to save the run to and resume it from"),
    "checkpoint_every": (1, _positive_int, "save the checkpoint every this many epochs"),
    "on_nonfinite": ("raise", _choice("raise", "skip", "stop"),
                     "'raise', 'skip' or 'stop' on a non-finite loss or gradient"),
    "progress": (None, _progress, "None (a bar in a terminal or notebook when tqdm is "
                                  "installed), True or False"),
    "resume_changes": ("warn", _choice("warn", "raise"),
                       "hyperparameters given on resume that differ from the checkpoint's: "
                       "'warn' applies them with a WARNING, 'raise' refuses them"),
}

#: The options that say how the run makes Datasets from arrays.
DATA_OPTIONS = ("batch_size", "train_batches", "valid_batches")


def defaults():
    """A fresh dict of every run option at its default value."""
    return {name: spec[0] for name, spec in RUN_OPTIONS.items()}


def check(call, options):
    """Validate run options; return them normalised.

    Parameters
    ----------
    call : str
        The call that received them, for messages (``"Adam.iterate"``).
    options : dict
        ``{name: value}``; every name must be in :data:`RUN_OPTIONS`.

    Returns
    -------
    dict
        The checked values (paths as ``str``, numbers as ``int`` / ``float``);
        a data option (:data:`DATA_OPTIONS`) given as ``None`` means its
        default and is left out, as if not given.

    Raises
    ------
    TypeError, ValueError
        A value of the wrong type or out of range, named in the message.
    """
    checked = {key: RUN_OPTIONS[key][1](call, key, value) for key, value in options.items()}
    return {k: v for k, v in checked.items() if not (k in DATA_OPTIONS and v is None)}
