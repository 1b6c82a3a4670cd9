"""Many fits at once: multi-start, hyperparameter sweeps and the bootstrap, on any executor.

A small fit is rarely run once: local minima call for many starts, error bars
for a bootstrap, an unfamiliar model for a sweep over algorithms and learning
rates. These independent fits run on the standard
``concurrent.futures.Executor`` interface, which a local process pool and a
Dask cluster both provide:

``executor=None``
    In the calling process, one fit after another (for debugging and teaching).
``executor="processes"``
    A local ``ProcessPoolExecutor`` with one worker per core, made and shut
    down here. The loss and the data travel to the workers by ``pickle``: a
    lambda or a closure cannot, and is refused up front with a message saying
    so.
any ``concurrent.futures.Executor``
    Used as given and left running, e.g. a Dask cluster's
    ``dask.distributed.Client(...).get_executor()``, which sends functions
    with cloudpickle, so lambdas and closures work.

Every fit gets its inputs from the calling process (random starts and
resamples are drawn there from ``seed``), so the same seed gives the same
results whichever executor runs them and in whatever order they finish. A fit
that fails (an exception, a non-finite loss) is reported in its own row and
does not stop the others. Ctrl-C cancels the fits that have not started and
returns those that finished. ``progress=`` shows a bar counting finished fits.
"""

import concurrent.futures as cf
import gc
import logging
import math
import os
import pickle
import time
import traceback
from itertools import product

import numpy as np

from .driver import minimize
from .fitresult import FitResult
from .interrupt import DeferredInterrupt
from .progress import Bar, check_progress, show_progress
from .solve import solve
from .tree import Layout

__all__ = ["multistart", "sweep", "bootstrap", "MultistartResult", "SweepResult",
           "BootstrapResult"]

logger = logging.getLogger("npdownhill")


# -- executors ----------------------------------------------------------------

class _Serial(cf.Executor):
    """Runs each task when it is submitted, in the calling process."""

    def submit(self, fn, /, *args, **kwargs):
        future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:          # noqa: BLE001 (KeyboardInterrupt included)
            if isinstance(err, KeyboardInterrupt):
                raise
            future.set_exception(err)
        return future


def _executor(call, executor):
    """``(executor, owned)``: the executor to use and whether we shut it down."""
    if executor is None:
        return _Serial(), True
    if executor == "processes":
        return cf.ProcessPoolExecutor(max_workers=os.cpu_count() or 1), True
    if isinstance(executor, cf.Executor):
        return executor, False
    raise TypeError(f"{call}(executor={executor!r}): executor must be None (this process), "
                    "'processes' (a local process pool) or a concurrent.futures.Executor "
                    f"(e.g. a Dask client's get_executor()); got {type(executor).__name__}")


def _check_picklable(call, executor, what):
    """The standard process pool pickles its tasks: refuse what it cannot send, up front."""
    if not (executor == "processes" or isinstance(executor, cf.ProcessPoolExecutor)):
        return
    for name, value in what.items():
        try:
            pickle.dumps(value)
        except Exception as err:                       # noqa: BLE001
            raise TypeError(f"{call}: the {name} cannot be sent to the worker processes of "
                            f"a ProcessPoolExecutor, which pickle their tasks ({err}); define "
                            "it with def at module level (not a lambda or a closure), or use "
                            "an executor that uses cloudpickle, such as a Dask client's "
                            "get_executor()") from None


def _run_all(call, executor, tasks, progress, desc):
    """Submit ``tasks`` ([(fn, args)]), collect their results in task order.

    Returns ``(results, interrupted)``; a task's result is what ``fn`` returned,
    or a dict with ``error`` when it raised or could not be run.
    """
    check_progress(call, progress)
    pool, owned = _executor(call, executor)
    bar = Bar(show_progress(progress), len(tasks), desc, "fit")
    results = [None] * len(tasks)
    futures = {}
    interrupted = False
    # Our own pool's workers are forked from this process at the first submit. Frozen
    # objects are skipped by the workers' garbage collector, so it does not touch (and
    # copy) every page of memory they share with this process: about 5 % of a pool run
    # of small fits (benchmarks/many_fits.py).
    frozen = owned and isinstance(pool, cf.ProcessPoolExecutor)
    if frozen:
        gc.freeze()
    try:
        with DeferredInterrupt() as interrupt:
            for i, (fn, args) in enumerate(tasks):
                futures[pool.submit(fn, *args)] = i
                if isinstance(pool, _Serial):
                    bar.update(1)
                interrupt.check()
            for future in cf.as_completed(futures):
                i = futures[future]
                results[i] = _outcome(future)
                if not isinstance(pool, _Serial):
                    bar.update(1)
                interrupt.check()
    except KeyboardInterrupt:
        interrupted = True
        for future, i in futures.items():
            if not future.cancel() and future.done() and results[i] is None:
                results[i] = _outcome(future)
        logger.warning("%s: interrupted; %d of %d fits finished, the others were cancelled",
                       call, sum(r is not None for r in results), len(tasks))
    finally:
        bar.close()
        if owned:
            pool.shutdown(wait=not interrupted, cancel_futures=True)
        if frozen:
            gc.unfreeze()
    return results, interrupted


def _outcome(future):
    try:
        return future.result()
    except cf.CancelledError:
        return None
    except Exception as err:                           # noqa: BLE001: reported in its row
        return {"error": f"{type(err).__name__}: {err}"}


def _failure(err):
    return {"error": f"{type(err).__name__}: {err}",
            "traceback": "".join(traceback.format_exception(type(err), err, err.__traceback__))}


# -- the tasks (module level: they travel to worker processes) ---------------

def _solve_task(loss, start, args, method, bounds, options):
    """Run one solve in a worker; return a plain FitResult (errors as a row)."""
    began = time.perf_counter()
    try:
        result = solve(loss, start, args=args, method=method, bounds=bounds, progress=False,
                       **options)
    except Exception as err:                           # noqa: BLE001
        return _failure(err)
    result["time"] = time.perf_counter() - began
    return result


def _minimize_task(loss, params, train, valid, options, keep):
    began = time.perf_counter()
    try:
        result = minimize(loss, params, train, valid, progress=False, **options)
    except Exception as err:                           # noqa: BLE001
        return _failure(err)
    row = {"best_loss": result.best_loss, "best_epoch": result.best_epoch,
           "epochs": result.epochs, "updates": result.updates, "stop": result.stop,
           "time": time.perf_counter() - began}
    if keep:
        row["params"] = params
    return row


# -- helpers ----------------------------------------------------------------

def _copy_tree(layout, tree):
    flat = layout.gather(tree, layout.empty(), "start")
    return layout.unflatten(flat.copy())


def _random_starts(call, layout, params, bounds, count, rng):
    """``count`` trees drawn uniformly inside ``bounds`` (others at the params' values)."""
    if isinstance(bounds, (tuple, list)) and len(bounds) == 2:
        bounds = {name: bounds for name in layout.names}      # one box for every leaf
    if not isinstance(bounds, dict) or not bounds:
        raise ValueError(f"{call}(starts={count}): random starts are drawn inside bounds; "
                         "give bounds={leaf name: (low, high)} (or one (low, high) for every "
                         "leaf) with finite limits")
    base = layout.read(layout.empty())
    low, high = base.copy(), base.copy()
    for name, pair in bounds.items():
        if name not in layout.index:
            raise ValueError(f"{call}(bounds=...): {name!r} is not a leaf name; the leaves "
                             f"are {layout.names}")
        i = layout.index[name]
        sl = slice(layout.offsets[i], layout.offsets[i + 1])
        for value, out, side in ((pair[0], low, "low"), (pair[1], high, "high")):
            arr = np.broadcast_to(np.asarray(np.nan if value is None else value, dtype=float),
                                  layout.shapes[i]).ravel()
            if not np.isfinite(arr).all():
                raise ValueError(f"{call}(bounds=...): random starts need finite bounds; the "
                                 f"{side} bound of leaf {name!r} is {value!r}")
            out[sl] = arr
    draws = rng.uniform(size=(count, layout.size))
    starts = low + draws * (high - low)
    return [layout.unflatten(row.astype(layout.dtype)) for row in starts]


class MultistartResult:
    """What :func:`multistart` found.

    Attributes
    ----------
    results : list of FitResult
        Every fit, sorted by final loss (failed fits last, with ``error``).
    best : FitResult
        The lowest loss; its solution was written into the caller's arrays.
    minima : list of FitResult
        One result per distinct minimum found (the best of each group), by loss.
    n_minima : int
        ``len(minima)``.
    failed : int
        Fits that raised (their rows carry ``error``).
    interrupted : bool
        Whether Ctrl-C cut the batch short.
    """

    def __init__(self, results, minima, interrupted):
        self.results = results
        self.minima = minima
        self.n_minima = len(minima)
        self.best = minima[0] if minima else None
        self.failed = sum("error" in r for r in results)
        self.interrupted = interrupted

    def __repr__(self):
        best = "none" if self.best is None else f"{self.best.fun:.6g}"
        return (f"MultistartResult({len(self.results)} fits, {self.n_minima} distinct minima, "
                f"best loss {best}, {self.failed} failed"
                f"{', interrupted' if self.interrupted else ''})")


def _distinct(results, layout, tol):
    """Group successful results whose solutions lie within ``tol`` of each other."""
    groups = []
    for r in results:
        if "error" in r or not np.isfinite(r.get("fun", np.nan)):
            continue
        x = layout.gather(r["x"], layout.empty(), "x")
        for g in groups:
            if np.max(np.abs(x - g[0])) <= tol * max(1.0, float(np.max(np.abs(g[0])))):
                break
        else:
            groups.append((x, r))
    return [r for _, r in groups]


def multistart(loss, params, starts, args=(), method="lbfgs", bounds=None, executor=None,
               seed=0, tol=1e-4, progress=None, **options):
    """Solve from many starts; sorted results, the best written into the params.

    Parameters
    ----------
    loss : callable
        ``loss(params, *args)``, as for :func:`~npdownhill.solve`.
    params : param tree
        The layout of the parameters, and where the best solution is written.
    starts : int or list of trees
        A number of random starts drawn uniformly inside ``bounds`` (required
        then; leaves without bounds start at the params' values), or the start
        trees themselves.
    args : tuple
        The loss's extra arguments, the same for every fit.
    method, bounds, **options
        Passed to every :func:`~npdownhill.solve` (``bounds`` also constrain it).
    executor : None, 'processes' or concurrent.futures.Executor
        Where the fits run (see the module docstring).
    seed : int
        Seed of the random starts: the same seed, the same starts and results.
    tol : float
        Two solutions are the same minimum when no element differs by more
        than ``tol`` times their scale (``max(1, max|x|)``).
    progress : None, True or False
        A bar counting finished fits.

    Returns
    -------
    MultistartResult

    Raises
    ------
    TypeError, ValueError
        Bad arguments (before any fit runs), a loss the executor cannot send.
    RuntimeError
        Every fit failed (the first error is quoted).
    """
    call = "multistart"
    layout = Layout(params, f"{call}(params)")
    if isinstance(starts, bool) or not isinstance(starts, (int, np.integer, list, tuple)):
        raise TypeError(f"{call}(starts=...): starts must be a number of random starts or a "
                        f"list of start trees; got {type(starts).__name__}")
    if isinstance(starts, (int, np.integer)):
        if starts < 1:
            raise ValueError(f"{call}(starts={starts}): starts must be >= 1")
        trees = _random_starts(call, layout, params, bounds, int(starts),
                               np.random.default_rng(seed))
    else:
        if not starts:
            raise ValueError(f"{call}(starts=[]): give at least one start")
        trees = [_copy_tree(layout, t) for t in starts]
    if not isinstance(args, (tuple, list)):
        raise TypeError(f"{call}(args=...): args must be a tuple; got {type(args).__name__}")
    _check_picklable(call, executor, {"loss": loss, "args": tuple(args), "options": options})
    tasks = [(_solve_task, (loss, t, tuple(args), method, bounds, options)) for t in trees]
    raw, interrupted = _run_all(call, executor, tasks, progress, "multistart")
    results = [FitResult(r) for r in raw if r is not None]
    ok = [r for r in results if "error" not in r]
    if not ok:
        first = results[0]["error"] if results else "no fit finished"
        raise RuntimeError(f"{call}: every fit failed; the first: {first}")
    ok.sort(key=lambda r: (not np.isfinite(r.fun), r.fun))
    failed = [r for r in results if "error" in r]
    minima = _distinct(ok, layout, tol)
    layout.write(layout.gather(minima[0]["x"], layout.empty(), f"{call}: best"))
    minima[0]["x"] = params
    return MultistartResult(ok + failed, minima, interrupted)


class SweepResult(list):
    """The rows of :func:`sweep`: a list of dicts, one per combination, in grid order.

    Parameters
    ----------
    rows : iterable of dict
    best : dict or None
    interrupted : bool

    Each row holds the combination's options, ``best_loss`` (the best
    validation loss), ``best_epoch``, ``epochs``, ``updates``, ``stop``,
    ``time`` (seconds), and ``error`` for a run that failed.

    Attributes
    ----------
    best : dict
        The row with the lowest ``best_loss``.
    interrupted : bool
        Whether Ctrl-C cut the sweep short (missing rows have ``stop='cancelled'``).
    """

    def __init__(self, rows=(), best=None, interrupted=False):
        super().__init__(rows)
        self.best, self.interrupted = best, interrupted

    @property
    def frame(self):
        """The rows as a pandas DataFrame (pandas must be installed)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("SweepResult.frame needs pandas: pip install "
                              "'npdownhill[pandas]'") from None
        return pandas.DataFrame([{k: v for k, v in row.items() if k != "params"}
                                 for row in self])


def sweep(loss, params, train, valid, grid, executor=None, keep=None, seed=0, progress=None,
          **fixed):
    """Run :func:`~npdownhill.minimize` for every combination of a grid, from the same start.

    Parameters
    ----------
    loss, params, train, valid
        As for :func:`~npdownhill.minimize`; every run starts from the params'
        values (each works on its own copy).
    grid : dict
        ``{option: [values]}``: every combination is one run, e.g.
        ``{"algo": ["adam", "sgd"], "learning_rate": [1e-3, 1e-2]}``.
    executor : None, 'processes' or concurrent.futures.Executor
        Where the runs go (see the module docstring).
    keep : None or 'best'
        ``'best'`` writes the parameters of the best combination (lowest best
        validation loss) into the caller's arrays; by default they are left
        untouched.
    seed : int
        Used as every run's ``rng`` (its shuffling and noise) unless ``rng``
        is fixed or in the grid: the same seed, the same rows.
    progress : None, True or False
        A bar counting finished runs.
    **fixed
        Options and hyperparameters shared by every run (``max_epochs``, ...).

    Returns
    -------
    SweepResult
        One row per combination (a list of dicts; ``.frame`` as a DataFrame).
    """
    call = "sweep"
    layout = Layout(params, f"{call}(params)")
    if not isinstance(grid, dict) or not grid:
        raise TypeError(f"{call}(grid=...): grid must be a non-empty dict {{option: [values]}}")
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise TypeError(f"{call}(grid=...): the values of {name!r} must be a list; "
                            f"got {values!r}")
        if name in fixed:
            raise ValueError(f"{call}: {name!r} is both in the grid and fixed")
    if keep not in (None, "best"):
        raise ValueError(f"{call}(keep={keep!r}): keep must be None or 'best'")
    names = list(grid)
    combos = [dict(zip(names, values)) for values in product(*(list(grid[n]) for n in names))]
    if not combos:
        raise ValueError(f"{call}(grid=...): the grid has no combination (an empty list)")
    _check_picklable(call, executor, {"loss": loss, "train": train, "valid": valid,
                                      "fixed": fixed})
    tasks = []
    for combo in combos:
        options = dict(fixed, **combo)
        if "rng" not in options:
            options["rng"] = seed
        tasks.append((_minimize_task, (loss, _copy_tree(layout, params), train, valid, options,
                                       keep == "best")))
    raw, interrupted = _run_all(call, executor, tasks, progress, "sweep")
    rows = [dict(combo, **(r if r is not None else {"stop": "cancelled"}))
            for combo, r in zip(combos, raw)]
    finished = [r for r in rows if "best_loss" in r and math.isfinite(r["best_loss"])]
    best = min(finished, key=lambda r: r["best_loss"]) if finished else None
    if keep == "best" and best is not None:
        layout.write(layout.gather(best["params"], layout.empty(), f"{call}: best"))
    for row in rows:
        row.pop("params", None)
    return SweepResult(rows, best, interrupted)


class BootstrapResult:
    """The spread of the parameters over bootstrap refits.

    Attributes
    ----------
    std : tree
        The standard deviation of each parameter over the refits, shaped like
        the params.
    interval : tree
        ``(low, high)`` percentile bounds of each parameter (``level`` of
        the refits between them), each shaped like its leaf.
    samples : ndarray, shape (n_ok, n_params)
        The refitted parameters, flattened in leaf order.
    results : list
        Every refit's FitResult (or its error row), in resample order.
    failed : int
        Refits that raised or did not converge (they are left out of the spread).
    """

    def __init__(self, std, interval, samples, results, failed, interrupted):
        self.std, self.interval, self.samples = std, interval, samples
        self.results, self.failed, self.interrupted = results, failed, interrupted

    def __repr__(self):
        return (f"BootstrapResult({len(self.samples)} refits, {self.failed} failed"
                f"{', interrupted' if self.interrupted else ''})")


def bootstrap(loss, params, data, n, executor=None, seed=0, level=0.95, progress=None,
              **solve_options):
    """Refit on ``n`` resamples of the data's rows; the spread of every parameter.

    Parameters
    ----------
    loss : callable
        ``loss(params, *data)``.
    params : param tree
        The start of every refit (fit the full data first); it is not changed.
    data : tuple of arrays
        The data, rows along axis 0 (all the same length); each resample draws
        as many rows with replacement, the same rows from every array.
    n : int
        Resamples, >= 2.
    executor, seed, progress
        As for :func:`multistart`: the resamples are drawn here from ``seed``.
    level : float
        The central share of the refits between the interval's bounds.
    **solve_options
        Passed to every :func:`~npdownhill.solve` (``method``, ``gtol``, ...).

    Returns
    -------
    BootstrapResult
    """
    call = "bootstrap"
    layout = Layout(params, f"{call}(params)")
    if not isinstance(data, (tuple, list)) or not data:
        raise TypeError(f"{call}(data=...): data must be a tuple of arrays (rows along axis 0)")
    arrays = [np.asarray(a) for a in data]
    rows = {a.shape[0] if a.ndim else None for a in arrays}
    if len(rows) != 1 or None in rows:
        raise ValueError(f"{call}(data=...): every array needs the same number of rows; got "
                         f"shapes {[a.shape for a in arrays]}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"{call}(n={n!r}): n must be an integer >= 2")
    if not 0 < level < 1:
        raise ValueError(f"{call}(level={level!r}): level must be in (0, 1)")
    count = rows.pop()
    rng = np.random.default_rng(seed)
    picks = [rng.integers(0, count, size=count) for _ in range(int(n))]
    _check_picklable(call, executor, {"loss": loss, "options": solve_options})
    method = solve_options.pop("method", "lbfgs")
    bounds = solve_options.pop("bounds", None)
    tasks = [(_solve_task, (loss, _copy_tree(layout, params), tuple(a[p] for a in arrays),
                            method, bounds, solve_options)) for p in picks]
    raw, interrupted = _run_all(call, executor, tasks, progress, "bootstrap")
    results = [FitResult(r) if r is not None else FitResult(error="cancelled") for r in raw]
    ok = [r for r in results if "error" not in r and r.get("success")]
    if len(ok) < 2:
        problems = [r.get("error") or r.get("message") for r in results if r not in ok]
        raise RuntimeError(f"{call}: fewer than 2 refits succeeded ({len(ok)} of {n}); the "
                           f"first problem: {problems[0] if problems else 'none'}")
    samples = np.array([layout.gather(r["x"], layout.empty(), "x") for r in ok], dtype=float)
    half = (1 - level) / 2 * 100
    low, high = np.percentile(samples, [half, 100 - half], axis=0)
    std = layout.unflatten(samples.std(axis=0, ddof=1).astype(layout.dtype))
    interval = layout.tree_of([(lo, hi) for lo, hi in zip(layout.views(low.astype(layout.dtype)),
                                                         layout.views(high.astype(layout.dtype)))])
    return BootstrapResult(std, interval, samples, results, len(results) - len(ok), interrupted)
