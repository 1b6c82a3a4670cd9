"""Run checkpoints: a run saved to one atomic ``.npz`` file and resumed exactly.

A checkpoint holds, as plain arrays (see :mod:`npdownhill.codec`):

* the optimizer's own state dict (:mod:`npdownhill.optimizer_state`):
  hyperparameters, state buffers, update count, parameters, random generator;
* the run's :class:`~npdownhill.runstate.RunState` under ``run.*``, its best
  parameters under ``run.best`` and its history under ``history.*``;
* the datasets' positions and random generators under ``data.train.*`` and
  ``data.valid.*``;
* ``content = "run"``, which tells it from a bare optimizer state written by
  :meth:`Optimizer.save_state <npdownhill.Optimizer.save_state>`.

:func:`save` writes it atomically (:func:`npdownhill.npzfile.save_npz`).
:func:`resume` checks the whole file against the run before it changes
anything, then restores it; hyperparameters that the caller gave explicitly
and that differ from the saved ones are applied with a WARNING naming each
change, or refused with ``resume_changes='raise'``. The run options that
give the saved counters their meaning, ``monitor`` and ``mode``, follow the
same rule: given explicitly and different, they apply with a WARNING (the
best validation's value is then re-read from its saved monitors) or are
refused; not given, the saved ones are used.
"""

import logging
import math
import os
from dataclasses import fields

import numpy as np

from . import codec as C
from . import optimizer_state
from .npzfile import load_npz, save_npz
from .result import history_arrays
from .runstate import EpochProgress, RunState, record

__all__ = ["encode", "save", "resume"]

logger = logging.getLogger("npdownhill")

CONTENT = "run"

# RunState fields saved as scalars (the dicts, the partial epoch and busy are handled apart)
_SCALARS = {f.name: f.type for f in fields(RunState)
            if f.name not in ("learning_rate", "last_valid", "best_valid", "partial", "busy")}
# run options saved with the run state (older checkpoints lack them: these defaults)
_RUN_SETTINGS = ("monitor", "mode")
_KIND = {"int": int, "float": float, "str": str, "bool": bool}


def _kind(annotation):
    return annotation if isinstance(annotation, type) else _KIND[annotation]


def encode(run):
    """The whole run as a flat dict of plain arrays (see the module docstring)."""
    out = run.optimizer.state_dict()
    out["content"] = CONTENT
    st = run.state
    for name in _SCALARS:
        out[f"run.{name}"] = getattr(st, name)
    out["run.learning_rate"] = math.nan if st.learning_rate is None else st.learning_rate
    C.encode_floats("run.last_valid", st.last_valid, out)
    C.encode_floats("run.best_valid", st.best_valid, out)
    out["run.partial.batches"] = st.partial.batches
    out["run.partial.weight"] = st.partial.weight
    out["run.partial.skipped"] = st.partial.skipped
    C.encode_floats("run.partial.sums", st.partial.sums, out)
    if run.best is not None:
        out["run.best"] = run.best.copy()
    if run.history:
        arrays = history_arrays(run.history)
        out["history.keys"] = C.names_array(arrays)
        for k, v in arrays.items():
            out[f"history.{k}"] = v
    for prefix, data in (("data.train", run.train_set), ("data.valid", run.valid_set)):
        if data is not None:
            for key, value in data.state_dict().items():
                out[f"{prefix}.{key}"] = value
    return out


def save(run, path):
    """Save ``run`` to ``path`` atomically."""
    save_npz(path, encode(run))


def resume(run, path, where, resume_changes="warn"):
    """Restore the run saved at ``path`` into ``run``; nothing changes if anything does not fit.

    Parameters
    ----------
    run : Run
        A run that has not started: its optimizer, datasets and options.
    path : str
        The checkpoint file.
    where : str
        The call, for messages.
    resume_changes : {'warn', 'raise'}
        What to do when hyperparameters the caller gave explicitly differ
        from the saved ones: apply them and log a WARNING naming each
        change, or refuse with a ``ValueError`` listing them all.

    Returns
    -------
    list of (str, str, str)
        The changes applied: ``(name, saved, given)``.

    Raises
    ------
    ValueError
        The file is not a run checkpoint, does not fit this optimizer or
        these datasets, is damaged, or (with ``'raise'``) a given
        hyperparameter differs from the saved one.
    """
    opt = run.optimizer
    state = load_npz(path)
    if "content" not in state or str(np.asarray(state["content"])) != CONTENT:
        raise ValueError(f"{where}: {path!r} holds an optimizer state written by save_state, not "
                         "a run checkpoint; load it with opt.load_state(path), or give another "
                         "checkpoint path to start a new run")
    engine = {k: v for k, v in state.items() if not k.startswith(("run.", "history.", "data."))}
    decoded = optimizer_state.decode(opt, engine, where)
    try:
        st, best, history = _decode_run(run, state, where)
    except (TypeError, IndexError, KeyError, AttributeError, OverflowError) as err:
        raise ValueError(f"{where}: the checkpoint is damaged ({type(err).__name__}: {err})") from None
    parts = {}
    for prefix, data in (("data.train", run.train_set), ("data.valid", run.valid_set)):
        sub = {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}
        if bool(sub) != (data is not None):
            raise ValueError(f"{where}: the checkpoint {'has' if sub else 'lacks'} "
                             f"{prefix[5:]} data positions but this run "
                             f"{'has no' if data is None else 'has'} {prefix[5:]} data")
        if data is not None:
            parts[prefix] = (data, sub)
    changed = optimizer_state.changes(opt, decoded, opt.explicit)
    settings = _run_settings(run, st, where)
    changed += [(name, repr(saved), repr(given)) for name, (saved, given) in settings.items()
                if saved != given]
    if changed and resume_changes == "raise":
        lines = "; ".join(f"{name}: saved {saved}, given {given}" for name, saved, given in changed)
        raise ValueError(f"{where}: the checkpoint {path!r} was saved with other hyperparameters "
                         f"than the ones given: {lines}. To continue with the given values pass "
                         "resume_changes='warn'; to start afresh delete the file or give "
                         "another checkpoint path")
    saved = {prefix: data.state_dict() for prefix, (data, _) in parts.items()}
    try:
        for prefix, (data, sub) in parts.items():
            data.load_state_dict(sub)
        optimizer_state.apply(opt, decoded, where, keep=opt.explicit)
    except BaseException:
        for prefix, (data, _) in parts.items():
            data.load_state_dict(saved[prefix])
        raise
    run.state, run.best, run.history = st, best, history
    _apply_run_settings(run, settings)
    for name, before, given in changed:
        logger.warning("%s: %s differs from the checkpoint's: saved %s, given %s; the given "
                       "value is used from here on (the run is no longer the one saved)",
                       where, name, before, given)
    return changed


def _run_settings(run, st, where):
    """``{name: (saved, in force)}`` of the saved run settings (``monitor``, ``mode``).

    One not given explicitly takes the saved value (it is in force from now on).
    """
    out = {}
    for name in _RUN_SETTINGS:
        saved = getattr(st, name)
        out[name] = (saved, run.options[name] if name in run.given else saved)
    available = ["loss"] + [name for name, _ in run.optimizer.monitors]
    monitor = out["monitor"][1]
    if monitor not in available:
        raise ValueError(f"{where}: the checkpoint's run chose its best validation by monitor "
                         f"{monitor!r}, which this run's validation does not produce (it "
                         f"produces {', '.join(repr(a) for a in available)}); pass the same "
                         "monitors, or monitor=... to choose another")
    return out


def _apply_run_settings(run, settings):
    """Put the run settings in force; re-read the best value for a changed monitor or mode."""
    st = run.state
    for name, (saved, value) in settings.items():
        run.options[name] = value
        setattr(st, name, value)
    if any(saved != value for saved, value in settings.values()):
        # the best validation stays the saved one; its value is read in the new monitor
        fallback = math.inf if st.mode == "min" else -math.inf
        st.best_value = float(st.best_valid.get(st.monitor, fallback))


def _decode_run(run, state, where):
    """The run's own part of a checkpoint, checked: ``(RunState, best, history)``."""
    older = {"monitor": "loss", "mode": "min"}      # checkpoints written before these existed
    if "run.best_value" not in state:
        older["best_value"] = C.scalar(state, "run.best_loss", float, where)
    values = {name: (older[name] if f"run.{name}" not in state and name in older
                     else C.scalar(state, f"run.{name}", _kind(kind), where))
              for name, kind in _SCALARS.items()}
    if values["mode"] not in ("min", "max"):
        raise ValueError(f"{where}: run.mode must be 'min' or 'max'; got {values['mode']!r}")
    negative = [name for name in ("epoch", "updates", "bad", "elapsed") if values[name] < 0]
    if negative or math.isnan(values["best_loss"]) or math.isnan(values["best_value"]):
        raise ValueError(f"{where}: run counters {negative or ['best_loss', 'best_value']} are "
                         "damaged")
    lr = C.scalar(state, "run.learning_rate", float, where)
    partial = EpochProgress(batches=C.scalar(state, "run.partial.batches", int, where),
                            sums=C.decode_floats("run.partial.sums", state, where),
                            weight=C.scalar(state, "run.partial.weight", float, where),
                            skipped=C.scalar(state, "run.partial.skipped", int, where))
    if min(partial.batches, partial.weight, partial.skipped) < 0:
        raise ValueError(f"{where}: the partial epoch's counters must be >= 0")
    st = RunState(**values, learning_rate=None if math.isnan(lr) else lr,
                  last_valid=C.decode_floats("run.last_valid", state, where),
                  best_valid=C.decode_floats("run.best_valid", state, where),
                  partial=partial)
    layout = run.optimizer.layout
    best = None
    if "run.best" in state:
        best = optimizer_state.floats(state, "run.best", (layout.size,), where)
        best = best.astype(layout.dtype, copy=True)
    return st, best, _decode_history(state, where)


def _decode_history(state, where):
    if "history.keys" not in state:
        return []
    keys = [str(k) for k in C.vector(state, "history.keys", "U", where).tolist()]
    arrays = {k: C.get(state, f"history.{k}", where) for k in keys}
    if not {"epoch", "updates", "time", "validated"} <= set(arrays):
        raise ValueError(f"{where}: the history lacks its 'epoch', 'updates', 'time' or "
                         "'validated' column")
    n = len(arrays["epoch"])
    for k, v in arrays.items():
        if v.shape != (n,) or v.dtype.kind not in ("b" if k == "validated" else "iuf"):
            raise ValueError(f"{where}: history column {k!r} has shape {v.shape} and dtype "
                             f"{v.dtype}; expected {n} real numbers")
    records = []
    for i in range(n):
        epoch = int(arrays["epoch"][i])
        train = {k[6:]: float(v[i]) for k, v in arrays.items() if k.startswith("train.")}
        valid = {k[6:]: float(v[i]) for k, v in arrays.items() if k.startswith("valid.")}
        records.append(record(epoch, int(arrays["updates"][i]), float(arrays["time"][i]),
                              None if epoch == 0 else train,
                              valid if bool(arrays["validated"][i]) else None))
    return records


def folder_exists(path):
    """Whether the folder a checkpoint path would be written in exists."""
    return os.path.isdir(os.path.dirname(os.path.abspath(path)))
