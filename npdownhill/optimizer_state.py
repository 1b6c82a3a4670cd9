"""The engine's state dict: encode an optimizer to plain arrays, check and restore it.

:func:`encode` turns an :class:`~npdownhill.Optimizer` into a flat dict
(``"state.m"``, ``"hyper.beta1"``, ``"params"``, ``"rng.*"``, ...).
Restoring is two steps so that nothing changes unless everything fits:
:func:`decode` checks a dict against an optimizer and returns what it holds,
changing nothing; :func:`apply` writes it. Between the two, a resuming run
can compare the saved hyperparameters with the ones its caller gave
(:func:`changes`) and refuse or report them.

Schedules (callable hyperparameters) cannot be saved; their description
(:func:`npdownhill.hyper.describe`) and their ``state_dict()`` are, and the
optimizer being restored must hold a schedule in that place.
"""

from collections import namedtuple

import numpy as np

from . import codec as C
from . import rngstate
from .evaluation import BUFFERS
from .hyper import describe
from .npzfile import FORMAT

__all__ = ["VERSION", "encode", "decode", "changes", "apply", "floats", "Decoded", "LoadResult",
           "load_leaves"]

#: Version of the state layout (2: a run's own state moved out of the optimizer's).
VERSION = 2


def encode(opt):
    """The state of ``opt`` as a flat dict (see :meth:`Optimizer.state_dict`)."""
    layout = opt.layout
    out = {"format": FORMAT, "version": VERSION, "algorithm": opt.name or type(opt).__name__,
           "class": type(opt).__name__,
           "tree.names": C.names_array(layout.names),
           "tree.ndims": np.array([len(s) for s in layout.shapes], dtype=np.int64),
           "tree.dims": np.array([d for s in layout.shapes for d in s], dtype=np.int64),
           "tree.dtype": layout.dtype.str,
           "updates": opt.updates,
           "params": layout.read(layout.empty())}
    out["state.names"] = C.names_array(opt.state)
    for name, buf in opt.state.items():
        out[f"state.{name}"] = buf.copy()
    for name, value in opt.hyper.items():
        kind, key = f"hyper_kind.{name}", f"hyper.{name}"
        if name == "rng":
            out[kind] = "rng"
        elif value is None:
            out[kind] = "none"
        elif isinstance(value, dict):      # {leaf name or pattern: factor}
            out[kind] = "dict"
            C.encode_floats(key, value, out)
        elif name == "frozen":
            out[kind] = "names"
            out[key] = C.names_array(value)
        elif callable(value):
            out[kind] = "callable"
            out[key] = describe(value)
            getter = getattr(value, "state_dict", None)
            if callable(getter):
                for k, v in getter().items():
                    out[f"schedule.{name}.{k}"] = v
        else:
            out[kind] = "value"
            out[key] = value
    out.update(rngstate.encode("rng", opt._rng))
    # gradient accumulation: the pending sum and how many gradients it holds
    out["accumulated.count"] = opt._accum_count
    if opt._accum_count:
        out["accumulated"] = opt._accum.copy()
    return out


class Decoded:
    """What a checked state dict holds (made by :func:`decode`).

    Attributes
    ----------
    hyper : dict
        Saved hyperparameter values; for a schedule, the optimizer's own
        callable (a schedule cannot be saved).
    described : dict
        ``{name: description}`` of every saved hyperparameter.
    schedules : dict
        ``{name: saved schedule state}`` for schedules that have one.
    buffers, params, updates, rng_state
        The saved state buffers, flat parameters, update count and random
        generator state.
    accumulated, accumulated_count
        The pending sum of gradient accumulation (or None) and its count.
    """

    def __init__(self, **fields):
        self.__dict__.update(fields)


def decode(opt, state, where):
    """Check ``state`` against ``opt``; return a :class:`Decoded`, changing nothing.

    Raises
    ------
    TypeError
        ``state`` is not a dict.
    ValueError
        Another algorithm, another tree (names, shapes, dtype), missing or
        mis-shaped state buffers, invalid hyperparameter values, or any other
        damage; the message says what.
    """
    if not hasattr(state, "keys"):
        raise TypeError(f"{where}: state must be a dict; got {type(state).__name__}")
    try:
        return _decode(opt, state, where)
    except (TypeError, IndexError, KeyError, AttributeError, OverflowError) as err:
        # a damaged or hand-made dict broke a check: refuse it like any other misfit
        raise ValueError(f"{where}: the state is damaged ({type(err).__name__}: {err})") from None


def _decode(opt, state, where):
    fmt = state.get("format")
    if fmt is None or str(np.asarray(fmt)) != FORMAT:
        raise ValueError(f"{where}: not an npdownhill optimizer state (no {FORMAT!r} marker)")
    version = C.scalar(state, "version", int, where)
    if version != VERSION:
        raise ValueError(f"{where}: state version {version} is not supported (expected "
                         f"{VERSION}; version 1 was written by npdownhill 0.1)")
    algorithm = C.scalar(state, "algorithm", str, where)
    mine = opt.name or type(opt).__name__
    if algorithm != mine:
        raise ValueError(f"{where}: the state is from algorithm {algorithm!r}; "
                         f"this optimizer is {mine!r}")
    layout = opt.layout
    names, shapes = _saved_tree(state, where)
    layout.check_compatible(names, shapes, C.scalar(state, "tree.dtype", str, where), where)
    params = floats(state, "params", (layout.size,), where)
    hyper, described, schedules = _decode_hyper(opt, state, where)
    # the buffers must be exactly those the saved hyperparameters use
    spec = opt._state_spec(dict(opt.hyper, **hyper))
    saved_names = C.vector(state, "state.names", "U", where).tolist()
    extra = [n for n in saved_names if n not in spec]
    missing = [n for n in spec if n not in saved_names]
    if extra or missing:
        raise ValueError(f"{where}: the state buffers {saved_names} do not fit {type(opt).__name__} "
                         f"with the saved hyperparameters (expected {sorted(spec)}; missing "
                         f"{missing}, unexpected {extra})")
    buffers = {}
    for name, init in spec.items():
        buffers[name] = floats(state, f"state.{name}", opt.buffer_shape(init), where)
    rng_state = rngstate.decode("rng", opt._rng, state, where)
    try:   # try the generator state on a spare generator of the same kind
        type(opt._rng.bit_generator)().state = rng_state
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: the random generator state was refused: {err}") from None
    updates = C.scalar(state, "updates", int, where)
    if updates < 0:
        raise ValueError(f"{where}: updates must be >= 0; got {updates}")
    # states written before gradient accumulation existed have no pending sum
    count = C.scalar(state, "accumulated.count", int, where) if "accumulated.count" in state else 0
    if count < 0:
        raise ValueError(f"{where}: accumulated.count must be >= 0; got {count}")
    accumulated = floats(state, "accumulated", (layout.size,), where) if count else None
    return Decoded(hyper=hyper, described=described, schedules=schedules, buffers=buffers,
                   params=params, updates=updates, rng_state=rng_state,
                   accumulated=accumulated, accumulated_count=count)


def _saved_tree(state, where):
    """The saved tree's leaf names and shapes, checked to fit together."""
    names = C.vector(state, "tree.names", "U", where).tolist()
    ndims = C.vector(state, "tree.ndims", "iu", where).tolist()
    dims = C.vector(state, "tree.dims", "iu", where).tolist()
    if len(ndims) != len(names) or sum(ndims) != len(dims) or min(ndims + dims, default=0) < 0:
        raise ValueError(f"{where}: tree.names, tree.ndims and tree.dims do not fit together")
    shapes, i = [], 0
    for nd in ndims:
        shapes.append(tuple(dims[i:i + nd]))
        i += nd
    return names, shapes


#: What ``load_state_dict`` loaded: leaf names, in the order of this optimizer's tree
#: (``loaded``, ``missing``, ``mismatched``) or of the saved one (``unexpected``).
LoadResult = namedtuple("LoadResult", ["loaded", "missing", "unexpected", "mismatched"])
LoadResult.__doc__ = """What :meth:`Optimizer.load_state_dict` loaded.

Attributes
----------
loaded : list of str
    Leaves whose values were loaded (same name and shape in the state).
missing : list of str
    Leaves of this optimizer's tree that the state does not have.
unexpected : list of str
    Leaves of the state that this tree does not have.
mismatched : list of str
    Leaves present in both with different shapes (not loaded).
"""


def load_leaves(opt, state, where):
    """``strict=False``: load the saved values of the leaves whose name and shape match.

    Only the parameters are read: the optimizer's state buffers, update
    count, hyperparameters and generator stay as they are. The algorithm
    that wrote the state does not matter, and float values of another
    dtype are cast (``same_kind``). Checked fully before anything changes.
    An optimizer that has made updates and keeps copies of the params in
    its state (lookahead's slow weights, an average, the schedule-free
    sequences, Prodigy's start point) is refused: those copies would go on
    describing the old params.

    Returns
    -------
    LoadResult
    """
    if not hasattr(state, "keys"):
        raise TypeError(f"{where}: state must be a dict; got {type(state).__name__}")
    copies = [name for name in (*type(opt).param_copies, *BUFFERS) if name in opt.state]
    if copies and opt.updates > 0:
        raise ValueError(f"{where}: this {type(opt).__name__} has made {opt.updates} updates and "
                         f"its state keeps copies of the params ({', '.join(copies)}), which "
                         "would go on describing the old values; warm-start a new optimizer "
                         "(build it, then load_state_dict(state, strict=False)) instead")
    try:
        fmt = state.get("format")
        if fmt is None or str(np.asarray(fmt)) != FORMAT:
            raise ValueError(f"{where}: not an npdownhill optimizer state (no {FORMAT!r} marker)")
        names, shapes = _saved_tree(state, where)
        sizes = [int(np.prod(shape, dtype=np.int64)) for shape in shapes]
        saved = floats(state, "params", (sum(sizes),), where)
    except (TypeError, IndexError, KeyError, AttributeError, OverflowError) as err:
        raise ValueError(f"{where}: the state is damaged ({type(err).__name__}: {err})") from None
    offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
    saved_at = {name: (shape, offsets[i]) for i, (name, shape) in enumerate(zip(names, shapes))}
    layout = opt.layout
    loaded, missing, mismatched, pairs = [], [], [], []
    for name, shape, leaf in zip(layout.names, layout.shapes, layout.arrays):
        if name not in saved_at:
            missing.append(name)
        elif tuple(saved_at[name][0]) != tuple(shape):
            mismatched.append(name)
        else:
            start = saved_at[name][1]
            pairs.append((leaf, saved[start:start + leaf.size].reshape(shape)))
            loaded.append(name)
    for leaf, value in pairs:
        np.copyto(leaf, value, casting="same_kind")
    unexpected = [name for name in names if name not in set(layout.names)]
    return LoadResult(loaded, missing, unexpected, mismatched)


def floats(state, key, shape, where):
    """A float entry of exactly ``shape``; ``ValueError`` otherwise."""
    value = C.get(state, key, where)
    if value.shape != tuple(shape) or value.dtype.kind != "f":
        raise ValueError(f"{where}: {key!r} has shape {value.shape} and dtype {value.dtype}; "
                         f"expected floats of shape {tuple(shape)}")
    return value


def _decode_hyper(opt, state, where):
    hyper, described, schedules = {}, {}, {}
    for name, spec in opt._hypers.items():
        kind_key = f"hyper_kind.{name}"
        if kind_key not in state:
            continue
        kind = C.scalar(state, kind_key, str, where)
        current = opt.hyper[name]
        key = f"hyper.{name}"
        if kind == "rng":
            continue
        if kind == "none":
            value = None
        elif kind == "dict":
            value = C.decode_floats(key, state, where)
        elif kind == "names":
            value = tuple(C.vector(state, key, "U", where).tolist())
        elif kind == "callable":
            text = C.scalar(state, key, str, where)
            described[name] = text
            if not callable(current):
                raise ValueError(f"{where}: the state was saved with {name} = {text} (a schedule); "
                                 f"this optimizer's {name} is {current!r}: pass the same schedule")
            prefix = f"schedule.{name}."
            sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            if sub and callable(getattr(current, "load_state_dict", None)):
                schedules[name] = sub
            hyper[name] = current
            continue
        elif kind == "value":
            value = C.get(state, key, where).item()
        else:
            raise ValueError(f"{where}: unknown kind {kind!r} for hyperparameter {name!r}")
        try:
            hyper[name] = spec.validate(where, name, value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: saved hyperparameter refused: {err}") from None
        described[name] = describe(hyper[name])
    return hyper, described, schedules


def changes(opt, decoded, names):
    """The hyperparameters among ``names`` whose current value differs from the saved one.

    Returns
    -------
    list of (str, str, str)
        ``(name, saved description, current description)``, in declaration
        order. ``rng`` is never compared: its saved generator state is what
        continues a run.
    """
    out = []
    for name in opt._hypers:
        if name in names and name != "rng" and name in decoded.described:
            now = describe(opt.hyper[name])
            if now != decoded.described[name]:
                out.append((name, decoded.described[name], now))
    return out


def apply(opt, decoded, where, keep=()):
    """Restore a :class:`Decoded` into ``opt``; nothing changes if anything is refused.

    Parameters
    ----------
    keep : collection of str
        Hyperparameters that keep their current value instead of the saved
        one. The saved state buffers are loaded, then adjusted to the kept
        values as a change of hyperparameters would (for example RProp
        rescales its step sizes to a new ``learning_rate``). A kept schedule
        whose description differs from the saved one does not get the saved
        schedule's state.

    Raises
    ------
    ValueError
        A saved schedule state or the combination of hyperparameters is
        refused (then nothing has changed).
    """
    keep = set(keep)
    kept_changes = [name for name, _, _ in changes(opt, decoded, keep)]
    hyper = {k: v for k, v in decoded.hyper.items() if k not in keep}
    schedules = {k: v for k, v in decoded.schedules.items() if k not in kept_changes}
    # everything checked; only the schedules and the hyperparameters' cross-checks can
    # still refuse, so they go first and are undone if either does
    old_schedules = {name: opt.hyper[name].state_dict() for name in schedules}
    old_hyper = dict(opt.hyper)
    try:
        for name, value in schedules.items():
            opt.hyper[name].load_state_dict(value)
        opt._commit_hyper(where, hyper, adjust_state=False, explicit=False)
    except (TypeError, ValueError) as err:
        for name, value in old_schedules.items():
            opt.hyper[name].load_state_dict(value)
        opt.hyper = old_hyper
        raise ValueError(f"{where}: the saved hyperparameters were refused: {err}") from None
    saved_spec = set(decoded.buffers)
    for name, buf in opt.state.items():
        if name in saved_spec:
            np.copyto(buf, decoded.buffers[name], casting="same_kind")
    layout = opt.layout
    opt._rng.bit_generator.state = decoded.rng_state
    opt._updates[...] = decoded.updates
    if decoded.accumulated_count:
        np.copyto(opt._accumulation_buffer(), decoded.accumulated, casting="same_kind")
    opt._accum_count = decoded.accumulated_count
    layout.write(decoded.params.astype(layout.dtype, copy=False))
    for name in BUFFERS:      # slow weights / an average the saved run did not have start here
        if name in opt.state and name not in saved_spec:
            layout.read(opt.state[name])
    numeric = [name for name in kept_changes if name not in decoded.schedules]
    if numeric:   # the kept values act on the loaded state as a change would
        opt._hyper_changed(dict(opt.hyper, **{k: decoded.hyper[k] for k in numeric}), numeric)
    return kept_changes
