"""The training driver: epochs, validation, patience, best parameters, checkpoints.

:func:`iterate` is a generator that trains one *epoch* at a time (by default
one pass over the training data; ``train_batches`` batches if given) and
yields ``(train_monitors, valid_monitors)`` after each. It is separate from
the update rules: it only calls :meth:`Optimizer.step` and
:meth:`Optimizer.evaluate`.

A *run* is one call of :func:`iterate` (or :func:`minimize`), or, with a
``checkpoint`` file, every call that continues the run stored in that file.
During a run:

* validation happens before the first epoch, every ``validate_every``
  epochs, and once more at the end;
* ``patience`` failed validations in a row end the run; a validation loss
  improves on the best one when ``loss < best - |best| * min_improvement``;
* the parameters of the best validation are written back into the caller's
  arrays when the run ends, whatever the reason: ``max_epochs`` or
  ``max_updates`` reached, patience exhausted, ``StopIteration`` raised by the
  callback, Ctrl-C, the caller leaving the loop (when the generator is
  closed), a non-finite loss, or any exception.

Progress is logged to the standard :mod:`logging` logger ``"npdownhill"``,
one line per epoch in downhill's format::

    SGD 12 loss=0.123456 err=0.010000
    validation 20 loss=0.120000 err=0.010000 *

where ``*`` marks an improvement.
"""

import logging
import math
import os
import signal
import threading
import time

import numpy as np

from . import hyper as H
from .errors import NonFiniteError

__all__ = ["iterate", "minimize", "evaluate", "EpochInfo", "DRIVER_OPTIONS", "history_arrays"]

logger = logging.getLogger("npdownhill")


def _positive_int_or_none(call, name, value):
    if value is None:
        return None
    return _positive_int(call, name, value)


def _positive_int(call, name, value):
    return H.number(call, name, value, low=1, integer=True)


def _nonneg_int_or_none(call, name, value):
    if value is None:
        return None
    return H.number(call, name, value, low=0, integer=True)


def _int(call, name, value):
    return H.number(call, name, value, integer=True)


def _callback_check(call, name, value):
    if value is not None and not callable(value):
        raise TypeError(f"{call}({name}=...): {name} must be callable; got {type(value).__name__}")
    return value


def _path_check(call, name, value):
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{call}({name}={value!r}): {name} must be a file path; "
                        f"got {type(value).__name__}")
    return os.fspath(value)


def _nonfinite_check(call, name, value):
    if value not in ("raise", "skip", "stop"):
        raise ValueError(f"{call}({name}={value!r}): {name} must be 'raise', 'skip' or 'stop'; "
                         f"got {value!r}")
    return value


#: Driver options: ``{name: (default, check, doc)}``.
DRIVER_OPTIONS = {
    "batch_size": (32, _int, "samples per batch when the driver makes the Datasets (<= 0: all)"),
    "train_batches": (None, _positive_int_or_none, "batches per training epoch (None: one pass)"),
    "valid_batches": (None, _positive_int_or_none, "batches per validation (None: one pass)"),
    "max_updates": (None, _nonneg_int_or_none, "total gradient updates in the run"),
    "max_epochs": (None, _nonneg_int_or_none, "total epochs in the run"),
    "validate_every": (10, _positive_int, "validate every this many epochs"),
    "patience": (5, _nonneg_int_or_none, "failed validations in a row that end the run"),
    "min_improvement": (0.0, H.nonnegative, "relative improvement a validation needs"),
    "callback": (None, _callback_check, "callback(info) after every epoch"),
    "checkpoint": (None, _path_check, "file to save the run to and resume it from"),
    "checkpoint_every": (1, _positive_int, "save the checkpoint every this many epochs"),
    "on_nonfinite": ("raise", _nonfinite_check, "'raise', 'skip' or 'stop' on a non-finite loss or gradient"),
}


def check_driver_options(call, options):
    """Validate driver options; return them normalised (unknown names are not checked here)."""
    out = {}
    for key, value in options.items():
        default, check, _ = DRIVER_OPTIONS[key]
        out[key] = check(call, key, value)
    return out


class EpochInfo:
    """What the ``callback`` of :func:`iterate` receives after every epoch.

    Attributes
    ----------
    epoch : int
        Epochs completed in this run (1 for the first).
    updates : int
        Updates applied by the optimizer in total.
    train : dict
        This epoch's training monitors.
    valid : dict
        The most recent validation monitors.
    validated : bool
        Whether a validation ran after this epoch.
    improved : bool
        Whether that validation improved on the best loss.
    optimizer : Optimizer
        The optimizer (read its ``history``, ``best_loss``, hyperparameters).

    Raising ``StopIteration`` in the callback ends the run cleanly.
    """

    def __init__(self, epoch, updates, train, valid, validated, improved, optimizer):
        self.epoch = epoch
        self.updates = updates
        self.train = train
        self.valid = valid
        self.validated = validated
        self.improved = improved
        self.optimizer = optimizer

    def __repr__(self):
        return (f"EpochInfo(epoch={self.epoch}, updates={self.updates}, "
                f"train_loss={self.train.get('loss')}, validated={self.validated})")


def _fmt(value):
    if isinstance(value, (int, np.integer)):
        return str(value)
    a = abs(value)
    return f"{value:.6f}" if a == 0 or 1e-4 <= a < 1e9 or not math.isfinite(a) else f"{value:.6e}"


def _format(monitors):
    return " ".join(f"{k}={_fmt(v)}" for k, v in monitors.items())


class _DeferredInterrupt:
    """Turn the first Ctrl-C into a flag checked between batches.

    A batch is never interrupted half-way through its update, so the state
    saved on Ctrl-C is consistent. A second Ctrl-C interrupts at once.
    Only active in the main thread when Python's default handler is installed.
    """

    def __init__(self):
        self.hit = False
        self.old = None

    def __enter__(self):
        self.hit = False
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self.old = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.hit:
            raise KeyboardInterrupt
        self.hit = True

    def check(self):
        if self.hit:
            self.hit = False
            raise KeyboardInterrupt

    def __exit__(self, exc_type, exc, tb):
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
            self.old = None
        if self.hit and exc_type is None:   # pressed during the block: stop now
            self.hit = False
            raise KeyboardInterrupt
        return False


def _as_dataset(data, name, batch_size, batches, shuffle, rng):
    from .dataset import Dataset
    if data is None or isinstance(data, Dataset):
        return data
    return Dataset(data, name=name, batch_size=batch_size, iteration_size=batches,
                   shuffle=shuffle, rng=rng)


def _batch_weight(dataset, batch):
    if not batch:
        return 1.0
    first = batch[0]
    axis = getattr(dataset, "axis", 0) if dataset is not None else 0
    shape = np.shape(first)
    return float(shape[axis]) if len(shape) > axis else 1.0


def _weighted(sums, weight):
    return {k: (v / weight if weight else math.nan) for k, v in sums.items()}


def evaluate(opt, dataset):
    """Batch-size-weighted means of the loss and monitors over one iteration of ``dataset``.

    Parameters
    ----------
    opt : Optimizer
    dataset : Dataset, arrays, callable or None
        ``None`` evaluates ``loss(params)`` once.

    Returns
    -------
    dict
        ``'loss'`` first, then each monitor. Nothing is updated.
    """
    from .monitors import check_loss_value
    call = f"{type(opt).__name__}.evaluate"
    if opt.loss is None:
        raise TypeError(f"{call}: this optimizer was built with loss=None; there is nothing to evaluate")
    data = _as_dataset(dataset, "evaluate", 32, None, False, None)
    batches = [()] if data is None else data
    sums, weight = {}, 0.0
    for batch in batches:
        value = float(check_loss_value(call, opt.loss(opt.params, *batch)))
        row = {"loss": value}
        row.update(opt._eval_monitors(batch))
        w = _batch_weight(data, batch)
        for k, v in row.items():
            sums[k] = sums.get(k, 0.0) + w * v
        weight += w
    return _weighted(sums, weight)


def _validate(opt, valid_set, epoch, opts, regular):
    """Evaluate, update best/patience, tell schedules; return (monitors, improved)."""
    monitors = evaluate(opt, valid_set)
    loss = monitors["loss"]
    best = opt.best_loss
    improved = math.isfinite(loss) and (
        opt._best is None or loss < best - abs(best) * opts["min_improvement"])
    run = opt.run
    if improved:
        opt._remember_best(loss)
    if regular:
        run["bad"] = 0 if improved else run["bad"] + 1
        for name in ("learning_rate", "momentum"):
            hook = getattr(opt.hyper[name], "on_validation", None)
            if callable(hook):
                hook(loss)
    run["last_valid"] = monitors
    logger.info("validation %d %s%s", epoch, _format(monitors), " *" if improved else "")
    return monitors, improved


def _train_epoch(opt, train_set, n_batches, max_updates, opts, interrupt):
    """Train the rest of the current epoch; return True if it is complete.

    Stops early, leaving the epoch partial, once the run has made
    ``max_updates`` updates; the next batch is not even drawn then, so the
    dataset's position matches the updates made.
    """
    run = opt.run
    remaining = n_batches - run["partial_batches"]
    source = None if train_set is None else train_set.batches(remaining)
    for _ in range(remaining):
        if max_updates is not None and run["updates"] >= max_updates:
            break
        run["busy"] = True        # until this batch is counted: see new_run()
        batch = () if source is None else next(source)
        try:
            monitors = opt.step(*batch)
        except NonFiniteError as err:
            err.epoch = run["epoch"] + 1
            if opts["on_nonfinite"] != "skip":
                raise
            logger.warning("%s epoch %d: skipped: %s", type(opt).__name__, run["epoch"] + 1, err)
            run["partial_batches"] += 1
            run["partial_skipped"] += 1
            run["busy"] = False
            interrupt.check()
            continue
        w = _batch_weight(train_set, batch)
        sums = run["partial_sums"]
        for k, v in monitors.items():
            if k != "learning_rate":
                sums[k] = sums.get(k, 0.0) + w * v
        run["partial_weight"] += w
        run["learning_rate"] = monitors["learning_rate"]
        run["partial_batches"] += 1
        run["updates"] += 1
        run["busy"] = False
        interrupt.check()
    return run["partial_batches"] >= n_batches


def _epoch_monitors(opt, opts):
    run = opt.run
    out = _weighted(run["partial_sums"], run["partial_weight"])
    if "loss" not in out:
        out = {"loss": math.nan, **out}
    if run.get("learning_rate") is not None:
        out["learning_rate"] = run["learning_rate"]
    if opts["on_nonfinite"] == "skip":
        out["skipped"] = run["partial_skipped"]
    return out


def _reset_epoch(run):
    run.update(partial_batches=0, partial_sums={}, partial_weight=0.0, partial_skipped=0)


def new_run():
    """The counters of a fresh run (stored in ``Optimizer.run`` and in checkpoints).

    ``busy`` (never saved) is True while a batch or a validation is under way:
    the dataset may then be ahead of the counters, or an epoch counted but not
    yet validated, so a ``KeyboardInterrupt`` raised at such a moment (a second
    Ctrl-C, or one from code) saves nothing and the last checkpoint stands.
    """
    run = {"epoch": 0, "updates": 0, "bad": 0, "elapsed": 0.0, "stop": "",
           "validated_start": False, "learning_rate": None, "last_valid": {}, "busy": False}
    _reset_epoch(run)
    return run


def iterate(opt, train=None, valid=None, max_updates=None, **kwargs):
    """Train ``opt`` epoch by epoch, yielding ``(train_monitors, valid_monitors)``.

    Parameters
    ----------
    opt : Optimizer
    train : Dataset, arrays, callable or None
        Training data: a :class:`~npdownhill.Dataset` or anything it accepts
        (then batched by ``batch_size``, shuffled). ``None``: the loss takes
        only the params and an epoch is one update.
    valid : Dataset, arrays, callable or None
        Validation data, batched in order. ``None``: the training data is used
        (downhill's behaviour), read in order.
    max_updates : int, optional
        Total gradient updates of the run; it stops after exactly that many,
        mid-epoch if need be (that partial epoch is yielded too).
    **kwargs
        Hyperparameters (they persist on the optimizer) and driver options
        (for this call; defaults may be given to the constructor):

        ``batch_size`` (32), ``train_batches`` (None: one pass per epoch),
        ``valid_batches`` (None: one pass), ``max_epochs`` (None),
        ``validate_every`` (10), ``patience`` (5), ``min_improvement`` (0),
        ``callback`` (None: ``callback(EpochInfo)`` after every epoch; raise
        ``StopIteration`` in it to stop), ``checkpoint`` (None: a file path;
        the run is saved there every ``checkpoint_every`` (1) epochs, at the
        end and on Ctrl-C, and resumed from it when it exists),
        ``on_nonfinite`` ('raise', 'skip' or 'stop').

    Yields
    ------
    train_monitors, valid_monitors : dict
        The epoch's batch-size-weighted training means (``'loss'`` first,
        then monitors, gradient norms, ``learning_rate`` of the epoch's last
        update, ``skipped`` with ``on_nonfinite='skip'``) and the most
        recent validation monitors.

    Raises
    ------
    NonFiniteError
        With ``on_nonfinite='raise'``, after the best parameters are restored.
    """
    call = f"{type(opt).__name__}.iterate"
    hyper, driver = opt._split_kwargs(call, kwargs)
    if max_updates is not None:
        driver["max_updates"] = max_updates
    options = {name: spec[0] for name, spec in DRIVER_OPTIONS.items()}
    options.update(opt.driver_defaults)
    options.update(check_driver_options(call, driver))
    if opt.loss is None:
        raise TypeError(f"{call}: this optimizer was built with loss=None; the driver needs a loss")
    path = options["checkpoint"]
    if path is not None and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        # refused now rather than at the first save, possibly hours into the run
        raise ValueError(f"{call}(checkpoint={path!r}): the folder "
                         f"{os.path.dirname(os.path.abspath(path))!r} does not exist")
    opt._commit_hyper(call, hyper)
    return _iterate(opt, train, valid, options)


def _make_datasets(opt, train, valid, opts):
    seed = int(opt._rng.integers(2 ** 63))
    train_set = _as_dataset(train, "train", opts["batch_size"], opts["train_batches"], True, seed)
    if valid is None and train is not None:
        if train_set is train:   # a user's Dataset: validate on a fresh, ordered reader of it
            valid_set = train.ordered_copy(iteration_size=opts["valid_batches"])
        else:
            valid_set = _as_dataset(train, "valid", opts["batch_size"], opts["valid_batches"], False, 0)
    else:
        valid_set = _as_dataset(valid, "valid", opts["batch_size"], opts["valid_batches"], False, 0)
    return train_set, valid_set


def _iterate(opt, train, valid, opts):
    from . import checkpoint as ckpt
    train_set, valid_set = _make_datasets(opt, train, valid, opts)
    n_batches = 1 if train_set is None else train_set.iteration_size
    path = opts["checkpoint"]
    if path is not None and os.path.exists(path):
        ckpt.resume(opt, path, train_set, valid_set)
        logger.info("%s: resumed from %s at epoch %d (%d updates)", type(opt).__name__, path,
                    opt.run["epoch"], opt.updates)
    else:
        opt.run = new_run()
        opt.history = []
        opt._best, opt.best_loss = None, math.inf
    run = opt.run
    started = time.perf_counter() - run["elapsed"]
    interrupt = _DeferredInterrupt()
    name = type(opt).__name__
    ended = False           # True once the run has been wrapped up
    fresh = False           # True when the current params were just validated
    final = False           # True once the run's final state is saved

    def save(last=False):
        nonlocal final
        if path is not None:
            run["elapsed"] = time.perf_counter() - started
            ckpt.save_run(opt, path, train_set, valid_set)
        final = final or last

    def wrap_up():
        """Validate the current params unless just done, then put the best ones back."""
        nonlocal ended
        ended = True
        if not fresh:
            _validate(opt, valid_set, run["epoch"], opts, regular=False)
        _restore_best(opt)

    try:
        if not run["validated_start"]:
            with interrupt:
                run["busy"] = True
                _validate(opt, valid_set, 0, opts, regular=True)
                run["validated_start"] = fresh = True
                run["busy"] = False
        while True:
            stop = _stop_reason(run, opts)
            if stop:                      # e.g. a resumed run that had already finished
                run["stop"] = stop
                save(last=True)
                break
            fresh = False
            with interrupt:
                complete = _train_epoch(opt, train_set, n_batches, opts["max_updates"], opts, interrupt)
            if not complete and run["partial_batches"] == 0:
                break                     # nothing left to train
            train_monitors = _epoch_monitors(opt, opts)
            if not complete:
                # stopped mid-epoch (max_updates or on_nonfinite='stop'): save before
                # counting the epoch, so that a resumed run finishes this same epoch
                run["stop"] = run["stop"] or "max_updates"
                save(last=True)
            improved = False
            with interrupt:
                run["busy"] = True        # until the epoch is counted, validated if due, recorded
                run["epoch"] += 1
                epoch = run["epoch"]
                logger.info("%s %d %s", name, epoch, _format(train_monitors))
                if complete:
                    _reset_epoch(run)
                    if epoch % opts["validate_every"] == 0:
                        _, improved = _validate(opt, valid_set, epoch, opts, regular=True)
                        fresh = True
                record = {"epoch": epoch, "updates": opt.updates,
                          "time": time.perf_counter() - started, "train": train_monitors,
                          "valid": run["last_valid"] if fresh else None, "validated": fresh}
                opt.history.append(record)
                run["busy"] = False
            stop = run["stop"] if not complete else _stop_reason(run, opts)
            if opts["callback"] is not None:
                try:
                    opts["callback"](EpochInfo(epoch, opt.updates, train_monitors,
                                               run["last_valid"], fresh, improved, opt))
                except StopIteration:
                    stop = stop or "callback"
            if stop:
                run["stop"] = stop
                if complete:
                    save(last=True)
                if not fresh:             # the end-of-run validation (not saved)
                    _validate(opt, valid_set, epoch, opts, regular=False)
                    fresh = True
                    record.update(valid=run["last_valid"], validated=True)
            elif path is not None and epoch % opts["checkpoint_every"] == 0:
                save()
            yield train_monitors, run["last_valid"]
            if stop:
                break
        logger.info("%s: run ended (%s) at epoch %d, best validation loss %s", name,
                    run["stop"] or "done", run["epoch"], _fmt(opt.best_loss))
        wrap_up()
    except KeyboardInterrupt:
        if ended:                     # interrupted again while wrapping up
            _restore_best(opt)
            return
        logger.info("%s: interrupted at epoch %d", name, run["epoch"])
        if not (run["busy"] or final):    # never save a half-done batch or validation,
            save()                        # nor over the run's final state
        wrap_up()
    except NonFiniteError as err:
        if opts["on_nonfinite"] == "stop":
            run["stop"] = "nonfinite"
            save(last=True)
            logger.info("%s: stopped on a non-finite value: %s", name, err)
            wrap_up()
            return
        ended = True
        _restore_best(opt)
        raise NonFiniteError(f"{err} (epoch {err.epoch}); the best parameters were restored",
                             err.what, err.leaves, err.update, err.epoch) from None
    except GeneratorExit:
        if not ended:                 # the caller left the loop early
            wrap_up()
        raise
    except BaseException:
        if not ended:
            ended = True
            _restore_best(opt)
        raise


def _restore_best(opt):
    if opt._best is not None:
        opt.set_params("best")


def _stop_reason(run, opts):
    if run["stop"] == "nonfinite":
        return "nonfinite"
    if opts["max_epochs"] is not None and run["epoch"] >= opts["max_epochs"]:
        return "max_epochs"
    if opts["max_updates"] is not None and run["updates"] >= opts["max_updates"]:
        return "max_updates"
    if opts["patience"] is not None and run["bad"] > 0 and run["bad"] >= opts["patience"]:
        return "patience"
    return ""


def run_to_end(opt, train=None, valid=None, **kwargs):
    """Run :func:`iterate` to the end; return ``(train_monitors, valid_monitors)``."""
    train_monitors = None
    for train_monitors, _ in iterate(opt, train, valid, **kwargs):
        pass
    if train_monitors is None:
        train_monitors = opt.history[-1]["train"] if opt.history else {"loss": math.nan}
    return train_monitors, dict(opt.run.get("last_valid") or {})


def minimize(loss, params, train=None, valid=None, algo="rmsprop", monitors=(),
             monitor_gradients=False, batch_size=32, train_batches=None, valid_batches=None,
             **kwargs):
    """Minimize ``loss(params, *batch)`` in place: downhill's one-call driver.

    Parameters
    ----------
    loss : callable
        ``loss(params, *batch) -> float`` written with ``autograd.numpy``.
    params : ndarray, dict, list or tuple
        The param tree; its arrays end up holding the best parameters found.
    train, valid : Dataset, arrays, callable or None
        Training and validation data (see :func:`iterate`).
    algo : str, Optimizer subclass or instance, default 'rmsprop'
        The algorithm (see :func:`~npdownhill.build`).
    monitors : dict or sequence of (str, callable)
        Extra values ``fn(params, *batch)`` to report.
    monitor_gradients : bool
        Also report per-leaf gradient norms and the global norm.
    batch_size, train_batches, valid_batches : int or None
        How the driver batches ``train`` and ``valid``.
    **kwargs
        Hyperparameters of the algorithm and driver options of :func:`iterate`
        (``max_epochs``, ``max_updates``, ``patience``, ``validate_every``,
        ``min_improvement``, ``callback``, ``checkpoint``, ...).

    Returns
    -------
    train_monitors, valid_monitors : dict
        The last epoch's training monitors and the latest validation
        monitors, both with ``'loss'`` first.

    Examples
    --------
    >>> import numpy as np, autograd.numpy as anp, npdownhill as dh
    >>> X = np.random.default_rng(0).normal(size=(64, 3)); y = X @ [1.0, -2.0, 0.5]
    >>> params = {"w": np.zeros(3)}
    >>> loss = lambda p, x, t: anp.mean((anp.dot(x, p["w"]) - t) ** 2)
    >>> _ = dh.minimize(loss, params, [X, y], algo="adam", learning_rate=0.1,
    ...                 max_epochs=200, rng=0)
    >>> bool(np.allclose(params["w"], [1.0, -2.0, 0.5], atol=1e-2))
    True
    """
    from .registry import build
    driver = {k: kwargs.pop(k) for k in list(kwargs) if k in DRIVER_OPTIONS}
    opt = build(algo, loss, params, monitors=monitors, monitor_gradients=monitor_gradients, **kwargs)
    return run_to_end(opt, train, valid, batch_size=batch_size, train_batches=train_batches,
                      valid_batches=valid_batches, **driver)


def history_arrays(history):
    """Turn ``Optimizer.history`` records into a dict of NumPy arrays.

    Parameters
    ----------
    history : list of dict
        Records with ``epoch``, ``updates``, ``time``, ``train``, ``valid``
        and ``validated``.

    Returns
    -------
    dict of ndarray
        ``epoch``, ``updates``, ``time``, ``validated``, and
        ``train.<name>`` / ``valid.<name>`` per monitor (NaN where an epoch
        lacks the value, e.g. validation values in epochs without validation).
    """
    out = {"epoch": np.array([r["epoch"] for r in history], dtype=np.int64),
           "updates": np.array([r["updates"] for r in history], dtype=np.int64),
           "time": np.array([r["time"] for r in history], dtype=float),
           "validated": np.array([r["validated"] for r in history], dtype=bool)}
    for part in ("train", "valid"):
        names = []
        for r in history:
            for k in (r[part] or {}):
                if k not in names:
                    names.append(k)
        for k in names:
            out[f"{part}.{k}"] = np.array([(r[part] or {}).get(k, math.nan) for r in history],
                                          dtype=float)
    return out
