"""Checkpoints: optimizer state as plain arrays, atomic ``.npz`` files, exact resume.

State dicts
    :func:`optimizer_state` turns an optimizer into a flat dict of NumPy
    arrays, numbers and strings (keys such as ``"state.m"``, ``"hyper.beta1"``,
    ``"run.epoch"``); :func:`load_optimizer_state` checks such a dict against an
    optimizer and restores it, changing nothing if anything does not fit.

Files
    :func:`save_npz` writes one ``.npz`` atomically: into ``<path>.tmp`` in the
    same folder, flushed and ``fsync``-ed, then renamed over ``path`` with
    ``os.replace``. A crash at any instant leaves the old file or the new one,
    plus at most that one temporary file. :func:`load_npz` reads with
    ``allow_pickle=False`` and refuses anything it cannot read as plain arrays.

Resume
    :func:`save_run` adds the datasets' shuffle positions and random
    generators to the optimizer's state; :func:`resume` restores all of it, so
    a run stopped after N epochs and resumed finishes bit-identical to a run
    that never stopped.
"""

import math
import os
import zipfile

import numpy as np

from . import rngstate

__all__ = ["save_npz", "load_npz", "optimizer_state", "load_optimizer_state", "save_run", "resume"]

FORMAT = "npdownhill-optimizer-state"
VERSION = 1

_RUN_SCALARS = {"epoch": int, "updates": int, "bad": int, "elapsed": float, "stop": str,
                "validated_start": bool, "partial_batches": int, "partial_weight": float,
                "partial_skipped": int}


# -- files ------------------------------------------------------------------

def save_npz(path, state):
    """Write a dict of arrays / numbers / strings to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination. ``<path>.tmp`` in the same folder is used on the way.
    state : dict
        Values convertible by ``np.asarray`` to non-object arrays.

    Raises
    ------
    TypeError
        A value that would need pickling.
    """
    path = os.fspath(path)
    arrays = {}
    for key, value in state.items():
        array = np.asarray(value)
        if array.dtype.kind == "O":
            raise TypeError(f"save_state: {key!r} holds a Python object ({type(value).__name__}); "
                            "only arrays, numbers and strings can be saved")
        arrays[key] = array
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_npz(path):
    """Read an ``.npz`` written by :func:`save_npz`, without ever unpickling.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict of ndarray

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The file is truncated or corrupt, is not an ``.npz`` archive, holds
        pickled objects, or is not an npdownhill state.
    """
    path = os.fspath(path)
    where = f"load_state({path!r})"
    if not os.path.exists(path):
        raise FileNotFoundError(f"{where}: no such file")
    unreadable = (f"{where}: cannot read the file: it is truncated or corrupt, not an .npz "
                  "archive, or holds pickled objects, which are refused")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, TypeError) as err:
        raise ValueError(f"{unreadable} ({err})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{where}: not an npdownhill state file (a plain .npy array)")
    try:
        with archive:
            state = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, TypeError,
            MemoryError) as err:   # MemoryError: a damaged header claiming a huge shape
        raise ValueError(f"{unreadable} ({err})") from None
    for key, value in state.items():
        if not isinstance(value, np.ndarray):   # a member without an .npy header comes as bytes
            raise ValueError(f"{where}: not an npdownhill state file (member {key!r} is not "
                             "an array)")
    fmt = state.get("format")
    if fmt is None or fmt.dtype.kind != "U" or str(fmt) != FORMAT:
        raise ValueError(f"{where}: not an npdownhill state file (no {FORMAT!r} marker)")
    return state


# -- optimizer state --------------------------------------------------------

def _names_array(names):
    return np.array(list(names), dtype=str) if names else np.zeros(0, dtype="<U1")


def _encode_dict(prefix, values, out):
    out[f"{prefix}.names"] = _names_array(values)
    out[f"{prefix}.values"] = np.array([float(v) for v in values.values()], dtype=float)


def _decode_dict(prefix, state, where):
    names = _get(state, f"{prefix}.names", where)
    values = _get(state, f"{prefix}.values", where)
    if names.shape != values.shape:
        raise ValueError(f"{where}: {prefix}.names and {prefix}.values differ in length")
    return {str(k): float(v) for k, v in zip(names.tolist(), values.tolist())}


def _get(state, key, where):
    if key not in state:
        raise ValueError(f"{where}: the state has no {key!r}")
    return np.asarray(state[key])


_KINDS = {int: ("iu", "an integer"), float: ("iuf", "a real number"), bool: ("b", "a bool"),
          str: ("U", "a string")}


def _scalar(state, key, kind, where):
    value = _get(state, key, where)
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


def optimizer_state(opt):
    """The state of ``opt`` as a flat dict (see :meth:`Optimizer.state_dict`)."""
    layout = opt.layout
    out = {"format": FORMAT, "version": VERSION, "algorithm": opt.name or type(opt).__name__,
           "class": type(opt).__name__,
           "tree.names": _names_array(layout.names),
           "tree.ndims": np.array([len(s) for s in layout.shapes], dtype=np.int64),
           "tree.dims": np.array([d for s in layout.shapes for d in s], dtype=np.int64),
           "tree.dtype": layout.dtype.str,
           "updates": opt.updates,
           "params": layout.read(layout.empty()),
           "best_loss": opt.best_loss}
    if opt._best is not None:
        out["best"] = opt._best.copy()
    out["state.names"] = _names_array(opt.state)
    for name, buf in opt.state.items():
        out[f"state.{name}"] = buf.copy()
    for name, value in opt.hyper.items():
        key = f"hyper.{name}"
        if name == "rng":
            out[f"hyper_kind.{name}"] = "rng"
        elif value is None:
            out[f"hyper_kind.{name}"] = "none"
        elif name == "gradient_multipliers":
            out[f"hyper_kind.{name}"] = "dict"
            _encode_dict(key, value, out)
        elif name == "frozen":
            out[f"hyper_kind.{name}"] = "names"
            out[key] = _names_array(value)
        elif callable(value):
            out[f"hyper_kind.{name}"] = "callable"
            out[key] = repr(value)
            getter = getattr(value, "state_dict", None)
            if callable(getter):
                for k, v in getter().items():
                    out[f"schedule.{name}.{k}"] = v
        else:
            out[f"hyper_kind.{name}"] = "value"
            out[key] = value
    out.update(rngstate.encode("rng", opt._rng))
    run = opt.run or {}
    for name in _RUN_SCALARS:
        if name in run:
            out[f"run.{name}"] = run[name]
    if run:
        lr = run.get("learning_rate")
        out["run.learning_rate"] = math.nan if lr is None else lr
        _encode_dict("run.partial_sums", run.get("partial_sums", {}), out)
        _encode_dict("run.last_valid", run.get("last_valid") or {}, out)
    if opt.history:
        from .driver import history_arrays
        arrays = history_arrays(opt.history)
        out["history.keys"] = _names_array(arrays)
        for k, v in arrays.items():
            out[f"history.{k}"] = v
    return out


def load_optimizer_state(opt, state, where=None):
    """Check ``state`` against ``opt`` and restore it; nothing changes on failure.

    Raises
    ------
    ValueError
        Another algorithm, another tree (names, shapes, dtype), missing or
        mis-shaped state buffers, invalid hyperparameter values, or any other
        damage.
    """
    where = where or f"{type(opt).__name__}.load_state_dict"
    if not hasattr(state, "keys"):
        raise TypeError(f"{where}: state must be a dict; got {type(state).__name__}")
    try:
        checked = _check_state(opt, state, where)
    except (TypeError, IndexError, KeyError, AttributeError, OverflowError) as err:
        # a damaged or hand-made dict broke a check: refuse it like any other misfit
        raise ValueError(f"{where}: the state is damaged ({type(err).__name__}: {err})") from None
    hyper, schedule_states, buffers, rng_state, params, best, best_loss, updates, run, history \
        = checked
    # everything checked; only the schedules and the hyperparameters' cross-checks can
    # still refuse, so they go first and are undone if either does
    layout = opt.layout
    old_schedules = {name: opt.hyper[name].state_dict() for name in schedule_states}
    try:
        for name, value in schedule_states.items():
            opt.hyper[name].load_state_dict(value)
        opt._commit_hyper(where, hyper)
    except (TypeError, ValueError) as err:
        for name, value in old_schedules.items():
            opt.hyper[name].load_state_dict(value)
        raise ValueError(f"{where}: the saved hyperparameters were refused: {err}") from None
    if "velocity" not in buffers:         # saved without momentum
        opt.state.pop("velocity", None)
    for name, value in buffers.items():
        if name not in opt.state:
            opt.state[name] = layout.zeros()
        np.copyto(opt.state[name], value, casting="same_kind")
    opt._rng.bit_generator.state = rng_state
    opt._updates[...] = updates
    layout.write(params.astype(layout.dtype, copy=False))
    if best is not None:
        opt._best = best.astype(layout.dtype, copy=True)
    else:
        opt._best = None
    opt.best_loss = best_loss
    if run is not None:
        opt.run = run
    opt.history = history


def _check_state(opt, state, where):
    """Decode and check everything :func:`load_optimizer_state` restores, changing nothing."""
    fmt = state.get("format")
    if fmt is None or str(np.asarray(fmt)) != FORMAT:
        raise ValueError(f"{where}: not an npdownhill optimizer state (no {FORMAT!r} marker)")
    version = _scalar(state, "version", int, where)
    if version != VERSION:
        raise ValueError(f"{where}: state version {version} is not supported (expected {VERSION})")
    algorithm = _scalar(state, "algorithm", str, where)
    mine = opt.name or type(opt).__name__
    if algorithm != mine:
        raise ValueError(f"{where}: the state is from algorithm {algorithm!r}; "
                         f"this optimizer is {mine!r}")
    layout = opt.layout
    names = _vector(state, "tree.names", "U", where).tolist()
    ndims = _vector(state, "tree.ndims", "iu", where).tolist()
    dims = _vector(state, "tree.dims", "iu", where).tolist()
    if len(ndims) != len(names) or sum(ndims) != len(dims) or min(ndims + dims, default=0) < 0:
        raise ValueError(f"{where}: tree.names, tree.ndims and tree.dims do not fit together")
    shapes, i = [], 0
    for nd in ndims:
        shapes.append(tuple(dims[i:i + nd]))
        i += nd
    layout.check_compatible(names, shapes, _scalar(state, "tree.dtype", str, where), where)

    def floats(key, shape=(layout.size,)):
        value = _get(state, key, where)
        if value.shape != shape or value.dtype.kind != "f":
            raise ValueError(f"{where}: {key!r} has shape {value.shape} and dtype {value.dtype}; "
                             f"expected floats of shape {shape}")
        return value

    params = floats("params")
    best = floats("best") if "best" in state else None
    buffers = {}
    for name in _vector(state, "state.names", "U", where).tolist():
        if name not in opt.state and name != "velocity":
            raise ValueError(f"{where}: state buffer {name!r} does not belong to {type(opt).__name__} "
                             f"(its buffers are {sorted(opt.state)})")
        shape = opt.state[name].shape if name in opt.state else (layout.size,)
        buffers[name] = floats(f"state.{name}", shape)
    missing = [n for n in opt.state if n not in buffers and n != "velocity"]
    if missing:
        raise ValueError(f"{where}: the state lacks buffers {missing}")
    hyper, schedule_states = _decode_hyper(opt, state, where)
    mu = hyper.get("momentum", opt.hyper["momentum"])
    if (callable(mu) or mu > 0) and "velocity" not in buffers:
        raise ValueError(f"{where}: the state has momentum {mu!r} but no velocity buffer")
    rng_state = rngstate.decode("rng", opt._rng, state, where)
    try:   # try the generator state on a spare generator of the same kind
        type(opt._rng.bit_generator)().state = rng_state
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: the random generator state was refused: {err}") from None
    run = _decode_run(state, where)
    history = _decode_history(state, where)
    updates = _scalar(state, "updates", int, where)
    best_loss = _scalar(state, "best_loss", float, where)
    if updates < 0 or math.isnan(best_loss):
        raise ValueError(f"{where}: updates must be >= 0 and best_loss a number; "
                         f"got {updates} and {best_loss}")
    return (hyper, schedule_states, buffers, rng_state, params, best, best_loss, updates, run,
            history)


def _vector(state, key, kinds, where):
    value = _get(state, key, where)
    if value.ndim != 1 or (value.size and value.dtype.kind not in kinds):
        raise ValueError(f"{where}: {key!r} must be a 1-d array; got shape {value.shape} "
                         f"and dtype {value.dtype}")
    return value


def _decode_hyper(opt, state, where):
    hyper, schedules = {}, {}
    for name, spec in opt._hypers.items():
        kind_key = f"hyper_kind.{name}"
        if kind_key not in state:
            continue
        kind = _scalar(state, kind_key, str, where)
        current = opt.hyper[name]
        key = f"hyper.{name}"
        if kind == "rng":
            continue
        if kind == "none":
            value = None
        elif kind == "dict":
            value = _decode_dict(key, state, where)
        elif kind == "names":
            value = tuple(_vector(state, key, "U", where).tolist())
        elif kind == "callable":
            if not callable(current):
                raise ValueError(f"{where}: the state was saved with {name} = "
                                 f"{_scalar(state, key, str, where)} (a callable); this optimizer's "
                                 f"{name} is {current!r}: pass the same callable")
            prefix = f"schedule.{name}."
            sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            if sub and callable(getattr(current, "load_state_dict", None)):
                schedules[name] = sub
            continue
        elif kind == "value":
            value = _get(state, key, where).item()
            if callable(current) and spec.schedulable:
                raise ValueError(f"{where}: the state was saved with {name}={value!r}; this "
                                 f"optimizer's {name} is a schedule ({current!r})")
        else:
            raise ValueError(f"{where}: unknown kind {kind!r} for hyperparameter {name!r}")
        try:
            hyper[name] = spec.validate(where, name, value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: saved hyperparameter refused: {err}") from None
    return hyper, schedules


def _decode_run(state, where):
    if "run.epoch" not in state:
        return None
    run = {name: _scalar(state, f"run.{name}", kind, where)
           for name, kind in _RUN_SCALARS.items() if f"run.{name}" in state}
    negative = [name for name, kind in _RUN_SCALARS.items()
                if kind in (int, float) and run.get(name, 0) < 0]
    if negative:
        raise ValueError(f"{where}: run counters {negative} must be >= 0")
    lr = _scalar(state, "run.learning_rate", float, where)
    run["learning_rate"] = None if math.isnan(lr) else lr
    run["partial_sums"] = _decode_dict("run.partial_sums", state, where)
    run["last_valid"] = _decode_dict("run.last_valid", state, where)
    from .driver import new_run
    return {**new_run(), **run}


def _decode_history(state, where):
    if "history.keys" not in state:
        return []
    keys = [str(k) for k in _get(state, "history.keys", where).tolist()]
    arrays = {k: _get(state, f"history.{k}", where) for k in keys}
    if "epoch" not in arrays or "validated" not in arrays:
        raise ValueError(f"{where}: the history lacks its 'epoch' or 'validated' column")
    n = len(arrays["epoch"])
    for k, v in arrays.items():
        if v.shape != (n,) or v.dtype.kind not in ("b" if k == "validated" else "iuf"):
            raise ValueError(f"{where}: history column {k!r} has shape {v.shape} and dtype "
                             f"{v.dtype}; expected {n} real numbers")
    records = []
    for i in range(n):
        validated = bool(arrays["validated"][i])
        train = {k[6:]: float(v[i]) for k, v in arrays.items() if k.startswith("train.")}
        valid = {k[6:]: float(v[i]) for k, v in arrays.items() if k.startswith("valid.")}
        records.append({"epoch": int(arrays["epoch"][i]), "updates": int(arrays["updates"][i]),
                        "time": float(arrays["time"][i]), "train": train,
                        "valid": valid if validated else None, "validated": validated})
    return records


# -- runs -------------------------------------------------------------------

def save_run(opt, path, train_set, valid_set):
    """Save the optimizer and the datasets' positions to ``path`` (atomically)."""
    state = opt.state_dict()
    for prefix, data in (("data.train", train_set), ("data.valid", valid_set)):
        if data is not None:
            for key, value in data.state_dict().items():
                state[f"{prefix}.{key}"] = value
    save_npz(path, state)


def resume(opt, path, train_set, valid_set):
    """Restore a run saved by :func:`save_run`; nothing changes if anything does not fit."""
    where = f"{type(opt).__name__}.iterate(checkpoint={os.fspath(path)!r})"
    state = load_npz(path)
    parts = {}
    for prefix, data in (("data.train", train_set), ("data.valid", valid_set)):
        sub = {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}
        if bool(sub) != (data is not None):
            raise ValueError(f"{where}: the checkpoint {'has' if sub else 'lacks'} "
                             f"{prefix[5:]} data positions but this run "
                             f"{'has no' if data is None else 'has'} {prefix[5:]} data")
        if data is not None:
            parts[prefix] = (data, sub)
    saved = {prefix: data.state_dict() for prefix, (data, _) in parts.items()}
    try:
        for prefix, (data, sub) in parts.items():
            data.load_state_dict(sub)
        optimizer_part = {k: v for k, v in state.items() if not k.startswith("data.")}
        load_optimizer_state(opt, optimizer_part, where)
    except BaseException:
        for prefix, (data, _) in parts.items():
            data.load_state_dict(saved[prefix])
        raise
