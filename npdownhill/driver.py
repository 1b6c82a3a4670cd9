"""downhill's driver: :func:`iterate`, :func:`minimize` and :func:`evaluate`.

These functions take what the user hands over -- arrays or Datasets, run
options and hyperparameters mixed in one ``**kwargs`` -- check all of it
before anything changes, make the Datasets and a :class:`~npdownhill.run.Run`,
and run it. They are also the run layer behind the engine's thin entry
points :meth:`Optimizer.iterate <npdownhill.Optimizer.iterate>`,
:meth:`~npdownhill.Optimizer.minimize` and :meth:`~npdownhill.Optimizer.evaluate`
(installed with :func:`npdownhill.optimizer.install_run_layer` below).

Nothing a caller asks for is silently dropped: a data option that cannot
apply (``batch_size`` with a ready-made Dataset) is refused, a loss whose
signature does not fit the data is refused before the first step.
"""

import copy
import types
import weakref

import numpy as np

from . import options as O
from .checkpoint import folder_exists
from .dataset import Dataset
from .hyper import suggest
from .optimizer import install_run_layer
from .progress import check_progress
from .registry import build
from .result import history_arrays
from .run import Run, measure

__all__ = ["iterate", "minimize", "evaluate"]


def _split(opt, call, kwargs):
    """``(run options, hyperparameters)`` of mixed keywords, both checked."""
    run_options = {k: v for k, v in kwargs.items() if k in O.RUN_OPTIONS}
    hyper = opt.check_hyperparameters(call, {k: v for k, v in kwargs.items()
                                             if k not in O.RUN_OPTIONS})
    return O.check(call, run_options), hyper


def _uses_batching(data):
    """Whether the run batches ``data`` itself (arrays; not a Dataset, a callable or None)."""
    return data is not None and not isinstance(data, Dataset) and not callable(data)


def _check_data_options(call, train, valid, given, options):
    """Refuse a data option given explicitly that no dataset of this run would use."""
    validation_source = valid if valid is not None else train
    if "batch_size" in given:
        size = options["batch_size"]
        if isinstance(train, Dataset):
            raise ValueError(f"{call}(batch_size={size}): train is already a Dataset (batch_size "
                             f"{train.batch_size}), which makes its own batches; give the batch "
                             f"size when you make it: Dataset(..., batch_size={size})")
        if not (_uses_batching(train) or _uses_batching(validation_source)):
            raise ValueError(f"{call}(batch_size={size}): no data of this run are arrays to "
                             "batch (train and valid are None, Datasets or callables), so "
                             "batch_size cannot take effect")
    if "train_batches" in given and isinstance(train, Dataset):
        raise ValueError(f"{call}(train_batches={options['train_batches']}): train is already a "
                         f"Dataset (iteration_size {train.iteration_size}); give the epoch length "
                         f"when you make it: Dataset(..., iteration_size="
                         f"{options['train_batches']})")
    if "valid_batches" in given:
        if isinstance(valid, Dataset):
            raise ValueError(f"{call}(valid_batches={options['valid_batches']}): valid is already "
                             f"a Dataset (iteration_size {valid.iteration_size}); give it when "
                             f"you make it: Dataset(..., iteration_size="
                             f"{options['valid_batches']})")
        if validation_source is None:
            raise ValueError(f"{call}(valid_batches={options['valid_batches']}): there is no "
                             "validation data (train and valid are None), so valid_batches "
                             "cannot take effect")


def _make_datasets(train, valid, options, seed):
    """The training and validation Datasets of a run (validation on train when valid is None)."""
    def make(data, name, batches, shuffle, rng):
        if data is None or isinstance(data, Dataset):
            return data
        return Dataset(data, name=name, batch_size=options["batch_size"], iteration_size=batches,
                       shuffle=shuffle, rng=rng)

    train_set = make(train, "train", options["train_batches"], True, seed)
    if valid is None and isinstance(train, Dataset):
        # validate on a fresh, ordered reader of the user's Dataset
        valid_set = train.ordered_copy(iteration_size=options["valid_batches"])
    else:
        valid_set = make(train if valid is None else valid, "valid", options["valid_batches"],
                         False, 0)
    return train_set, valid_set


def _check_full_batch(opt, call, train_set):
    """Refuse training data that give a full-batch rule more than one batch per epoch."""
    if train_set is None:
        return
    per_pass = train_set.batches_per_pass or 1
    if train_set.iteration_size > 1 or per_pass > 1:
        raise ValueError(f"{call}: {type(opt).__name__} runs full batch (its line search and "
                         "curvature pairs need the same loss at every step), but the train data "
                         f"give {max(train_set.iteration_size, per_pass)} batches per epoch "
                         f"(batch_size {train_set.batch_size}, {train_set.n_samples} samples); "
                         "pass batch_size=0 and no train_batches (stochastic L-BFGS is a "
                         "different algorithm)")


def _check_signatures(opt, call, datasets):
    """Refuse a loss or monitor that cannot take params plus each dataset's arrays.

    ``datasets`` maps a name (``'train'``) to a Dataset or None.
    """
    for name, data in datasets.items():
        n = 0 if data is None else data.n_inputs
        if n is not None:          # a callable's batches are checked at the first step
            opt.check_batch(n, call, name)


def iterate(opt, train=None, valid=None, max_updates=None, **kwargs):
    """Train ``opt`` epoch by epoch, yielding ``(train_monitors, valid_monitors)``.

    Parameters
    ----------
    opt : Optimizer
    train : Dataset, arrays, callable or None
        Training data: a :class:`~npdownhill.Dataset` or anything it accepts
        (then batched by ``batch_size``, shuffled). ``None``: the loss takes
        only the params and an epoch is ``train_batches`` (1) updates.
    valid : Dataset, arrays, callable or None
        Validation data, batched in order. ``None``: the training data is used
        (downhill's behaviour), read in order.
    max_updates : int, optional
        Total gradient updates of the run; it stops after exactly that many,
        mid-epoch if need be (that partial epoch is yielded too).
    **kwargs
        Hyperparameters (they stay set on the optimizer) and run options
        (for this run; see :data:`npdownhill.options.RUN_OPTIONS`):

        ``batch_size`` (32), ``train_batches`` (None: one pass per epoch),
        ``valid_batches`` (None: one pass; every validation scores the same
        batches), ``max_epochs`` (None), ``validate_every`` (10),
        ``patience`` (5: failed validations in a row tolerated; the next one
        ends the run), ``min_improvement`` (0), ``monitor`` ('loss': the
        validation monitor that picks the best parameters and drives patience
        and ``reduce_on_plateau``; refused if the validation does not produce
        it), ``mode`` ('min', or 'max' when higher is better), ``callback`` (None:
        ``callback(EpochInfo)`` after every epoch; raise ``StopIteration``
        in it to stop), ``checkpoint`` (None: a file path; the run is saved
        there every ``checkpoint_every`` (1) epochs, at the end and on
        Ctrl-C, and resumed from it when it exists), ``progress`` (None: a
        tqdm bar in a terminal or notebook when tqdm is installed, never in
        a pipe or on CI; True: always; False: never), ``resume_changes``
        ('warn': hyperparameters given explicitly that differ from the
        checkpoint's are applied with a WARNING; 'raise': refused),
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
    TypeError, ValueError
        Bad options or hyperparameters, a data option that cannot apply, a
        loss that cannot take the data's arrays; raised by this call, before
        anything changes.
    NonFiniteError
        With ``on_nonfinite='raise'``, after the best parameters are restored.

    Notes
    -----
    Leaving a ``for`` loop over the generator ends the run (the current
    params are validated and the best put back). A generator kept in a
    variable ends when it is closed (``it.close()``), collected, or when the
    next run of the same optimizer begins.
    """
    call = f"{type(opt).__name__}.iterate"
    if max_updates is not None:
        kwargs["max_updates"] = max_updates
    run = _prepare(opt, train, valid, kwargs, call)
    generator = run.epochs()
    run.generator = weakref.ref(generator)
    return generator


def _copy_generator(rng):
    """A Generator in the same state as ``rng``, drawing the same numbers (a deep copy
    costs ten times as much)."""
    try:
        bit_generator = type(rng.bit_generator)()
        bit_generator.state = rng.bit_generator.state
    except Exception:          # a bit generator of its own kind: copy the whole thing
        return copy.deepcopy(rng)
    return np.random.Generator(bit_generator)


def _prepare(opt, train, valid, kwargs, call):
    """Check everything and make the Run; the hyperparameters are set last."""
    given, hyper = _split(opt, call, kwargs)
    options = dict(O.defaults(), **given)
    check_progress(call, options["progress"])
    if opt.loss is None:
        raise TypeError(f"{call}: this optimizer was built with loss=None; a run needs a loss")
    opt._check_params(call)
    path = options["checkpoint"]
    if path is not None and not folder_exists(path):
        # refused now rather than at the first save, possibly hours into the run
        raise ValueError(f"{call}(checkpoint={path!r}): the folder of {path!r} does not exist")
    _check_data_options(call, train, valid, given, options)
    _check_monitor(opt, call, options["monitor"], options["mode"])
    if opt.full_batch and "batch_size" not in given:
        options["batch_size"] = 0          # quasi-Newton rules take the whole data at once
    # the training shuffle is seeded from the optimizer's generator as the hyperparameters
    # will set it, drawn from a copy so that a refused call leaves the generator untouched
    rng = np.random.default_rng(hyper["rng"]) if "rng" in hyper else _copy_generator(opt._rng)
    train_set, valid_set = _make_datasets(train, valid, options, int(rng.integers(2 ** 63)))
    _check_signatures(opt, call, {"train": train_set, "valid": valid_set})
    if opt.full_batch:
        _check_full_batch(opt, call, train_set)
    opt._commit_hyper(call, hyper)
    opt._rng = rng
    run = Run(opt, train_set, valid_set, options, call)
    run.given = frozenset(given)       # options given explicitly (a resume keeps them)
    return run


def _check_monitor(opt, call, monitor, mode):
    """Refuse a ``monitor`` that the validation does not produce, and ``mode='max'`` on
    the loss (the run minimizes it: the best would be the worst params)."""
    available = ["loss"] + [name for name, _ in opt.monitors]
    if monitor not in available:
        raise ValueError(f"{call}(monitor={monitor!r}): the validation does not produce "
                         f"{monitor!r}; it produces {', '.join(repr(a) for a in available)} "
                         f"(add it with monitors={{{monitor!r}: fn}}){suggest(monitor, available)}")
    if monitor == "loss" and mode == "max":
        raise ValueError(f"{call}(mode='max'): the run minimizes the loss, so selecting the "
                         "largest validation loss would keep the worst params; mode='max' is "
                         "for a score such as accuracy: name it with monitor='...' (and "
                         "monitors={name: fn})")


def run_to_end(opt, train=None, valid=None, **kwargs):
    """Run :func:`iterate` to the end; return its :class:`~npdownhill.RunResult`."""
    call = f"{type(opt).__name__}.minimize"
    run = _prepare(opt, train, valid, kwargs, call)
    generator = run.epochs()
    run.generator = weakref.ref(generator)
    for _ in generator:
        pass
    return run.result()


def minimize(loss, params, train=None, valid=None, algo="rmsprop", monitors=(),
             monitor_gradients=False, batch_size=None, train_batches=None, valid_batches=None,
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
    batch_size : int, optional
        Samples per batch of the arrays the run batches (32 when not given;
        ``<= 0``: one batch of everything). Refused with a ready-made Dataset.
    train_batches, valid_batches : int, optional
        Batches per training epoch and per validation (one pass when not given).
    **kwargs
        Hyperparameters of the algorithm and run options of :func:`iterate`
        (``max_epochs``, ``max_updates``, ``patience``, ``validate_every``,
        ``min_improvement``, ``callback``, ``checkpoint``, ...).

    Returns
    -------
    RunResult
        Unpacks as ``(train_monitors, valid_monitors)`` -- the last epoch's
        training monitors and the latest validation monitors, both with
        ``'loss'`` first, as downhill returned them -- and also carries
        ``best_valid``, ``best_loss``, ``best_epoch``, ``history`` (arrays
        ready to plot), ``stop``, ``message``, ``epochs``, ``updates`` and
        ``optimizer``.

    Examples
    --------
    >>> import numpy as np, autograd.numpy as anp, npdownhill as dh
    >>> X = np.random.default_rng(0).normal(size=(64, 3)); y = X @ [1.0, -2.0, 0.5]
    >>> params = {"w": np.zeros(3)}
    >>> loss = lambda p, x, t: anp.mean((anp.dot(x, p["w"]) - t) ** 2)
    >>> result = dh.minimize(loss, params, [X, y], algo="adam", learning_rate=0.1,
    ...                      max_epochs=200, rng=0)
    >>> bool(np.allclose(params["w"], [1.0, -2.0, 0.5], atol=1e-2)), result.stop
    (True, 'max_epochs')
    """
    data_options = {name: value for name, value in (("batch_size", batch_size),
                                                     ("train_batches", train_batches),
                                                     ("valid_batches", valid_batches))
                    if value is not None}
    run_options = {k: kwargs.pop(k) for k in list(kwargs) if k in O.RUN_OPTIONS}
    opt = build(algo, loss, params, monitors=monitors, monitor_gradients=monitor_gradients, **kwargs)
    return run_to_end(opt, train, valid, **data_options, **run_options)


def evaluate(opt, dataset):
    """Batch-size-weighted means of the loss and monitors over one iteration of ``dataset``.

    Parameters
    ----------
    opt : Optimizer
    dataset : Dataset, arrays, callable or None
        Anything :class:`~npdownhill.Dataset` accepts is batched by 32, in
        order. ``None`` evaluates ``loss(params)`` once.

    Returns
    -------
    dict
        ``'loss'`` first, then each monitor, at the optimizer's evaluation
        params (:meth:`Optimizer.evaluation_params`). Nothing is updated.
    """
    call = f"{type(opt).__name__}.evaluate"
    if opt.loss is None:
        raise TypeError(f"{call}: this optimizer was built with loss=None; there is nothing "
                        "to evaluate")
    data = dataset
    if data is not None and not isinstance(data, Dataset):
        data = Dataset(data, name="evaluate", batch_size=32, shuffle=False)
    _check_signatures(opt, call, {data.name if data is not None else "evaluate": data})
    with opt.use_evaluation_params():
        return measure(opt, data)


install_run_layer(types.SimpleNamespace(iterate=iterate, minimize=run_to_end, evaluate=evaluate,
                                        history_arrays=history_arrays))
