"""Pictures of runs, schedules and test problems, for learning what an optimizer does.

Needs matplotlib (``pip install 'npdownhill[plot]'``), imported only when a
function here is called. Every function draws on the ``matplotlib.axes.Axes``
it is given (``ax=...``) or on a new one, and returns it, so pictures can be
combined::

    import npdownhill as dh
    from npdownhill import plot, problems

    result = dh.minimize(loss, params, train, valid, algo="adam")
    plot.history(result)                                  # learning curves
    plot.schedule(dh.schedules.cosine_decay(0.1, 1000), 1000)

    rosen = problems.rosenbrock()
    ax = plot.trajectories(rosen, {"sgd": ("sgd", {"learning_rate": 1e-3}),
                                   "adam": ("adam", {"learning_rate": 0.05}),
                                   "lbfgs": "lbfgs"}, steps=200)
    ax.figure.savefig("race.png")
"""

import math

import numpy as np

from .optimizer import Optimizer
from .registry import build
from .result import history_arrays

__all__ = ["history", "schedule", "contour", "trajectories", "path"]

INSTALL = "pip install 'npdownhill[plot]'  (or: pip install matplotlib)"


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(f"npdownhill.plot needs matplotlib, which is not installed: "
                          f"{INSTALL}") from None
    return plt


def _axes(ax):
    if ax is None:
        _, ax = _pyplot().subplots()
    else:
        _pyplot()
    return ax


def _history_of(run):
    """The history arrays of a RunResult, a Run, an Optimizer or such a dict."""
    if isinstance(run, dict) and "epoch" in run:
        return run
    arrays = getattr(run, "history", None)
    if isinstance(arrays, dict) and "epoch" in arrays:             # a RunResult
        return arrays
    if isinstance(run, Optimizer):
        return run.history_arrays()
    if isinstance(arrays, list):                                   # a Run
        return history_arrays(arrays)
    raise TypeError(f"plot.history(run=...): run must be a RunResult (what minimize returns), "
                    f"an Optimizer that has run, or a dict of history arrays; got "
                    f"{type(run).__name__}")


def history(run, keys=("train.loss", "valid.loss"), logy=True, ax=None):
    """Draw learning curves: the chosen history columns against the epoch.

    Parameters
    ----------
    run : RunResult, Optimizer or dict
        What :func:`~npdownhill.minimize` returned, an optimizer after
        ``iterate`` / ``minimize`` (its latest run), or history arrays.
    keys : sequence of str
        Columns of the history: ``'train.<monitor>'``, ``'valid.<monitor>'``.
        Validation columns are drawn at the validated epochs only (with
        markers); epoch 0 is the start point.
    logy : bool
        A logarithmic y axis (when every value drawn is positive).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        One line per key, labelled with it.

    Raises
    ------
    KeyError
        A key that is not in the history (the message lists those that are).
    """
    arrays = _history_of(run)
    if isinstance(keys, str):
        keys = (keys,)
    missing = [k for k in keys if k not in arrays]
    if missing:
        known = sorted(k for k in arrays if "." in k)
        raise KeyError(f"plot.history: {missing} not in the run's history; it has {known}")
    ax = _axes(ax)
    epochs = arrays["epoch"]
    drawn = []
    for key in keys:
        values = np.asarray(arrays[key], dtype=float)
        keep = np.isfinite(values)
        style = {"marker": "o", "markersize": 4} if key.startswith("valid.") else {}
        ax.plot(epochs[keep], values[keep], label=key, **style)
        drawn.append(values[keep])
    ax.set_xlabel("epoch")
    ax.set_ylabel(", ".join(sorted({k.split(".", 1)[1] for k in keys})))
    values = np.concatenate(drawn) if drawn else np.zeros(0)
    if logy and values.size and np.all(values > 0):
        ax.set_yscale("log")
    ax.legend()
    return ax


def schedule(fn, steps, ax=None, label=None):
    """Draw a schedule's value at each step from 0 to ``steps - 1``.

    Parameters
    ----------
    fn : callable
        A schedule ``f(step) -> float`` (any of :mod:`npdownhill.schedules`,
        or a function).
    steps : int
        How many steps to draw, >= 1.
    ax : matplotlib Axes, optional
    label : str, optional
        Default: the schedule's repr.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if not callable(fn):
        raise TypeError(f"plot.schedule(fn=...): fn must be a schedule f(step) -> float; "
                        f"got {type(fn).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"plot.schedule(steps={steps!r}): steps must be an integer >= 1")
    ax = _axes(ax)
    x = np.arange(int(steps))
    ax.plot(x, [float(fn(int(t))) for t in x], label=label or repr(fn))
    ax.set_xlabel("step (updates applied)")
    ax.set_ylabel("value")
    ax.legend()
    return ax


def _check_problem(problem, call):
    if not (callable(problem) and hasattr(problem, "grid") and hasattr(problem, "box")):
        raise TypeError(f"{call}(problem=...): problem must be one of npdownhill.problems "
                        f"(e.g. problems.rosenbrock()); got {type(problem).__name__}")


def contour(problem, ax=None, levels=30, n=200):
    """Draw a test problem's contour lines over its box, its minima marked.

    Parameters
    ----------
    problem : npdownhill.problems.Problem
    ax : matplotlib Axes, optional
    levels : int
        Contour levels, spaced geometrically above the minimum value (the
        valleys of functions such as Rosenbrock's stay visible).
    n : int
        Grid points per axis.

    Returns
    -------
    matplotlib.axes.Axes
    """
    _check_problem(problem, "plot.contour")
    ax = _axes(ax)
    X, Y, Z = problem.grid(n)
    low = problem.value if math.isfinite(problem.value) else float(np.nanmin(Z))
    above = Z - low
    positive = above[above > 0]
    top = float(np.nanmax(above))
    if positive.size and top > 0:
        bottom = max(float(positive.min()), top * 1e-6)
        lines = low + np.geomspace(bottom, top, levels)
    else:
        lines = levels
    ax.contour(X, Y, Z, levels=lines, cmap="viridis", linewidths=0.7)
    for minimum in problem.minima:
        ax.plot(minimum[0], minimum[1], "*", color="gold", markersize=14,
                markeredgecolor="black", label="_minimum")
    (x0, x1), (y0, y1) = problem.box
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(problem.name)
    return ax


def _optimizer_for(label, spec, problem, x):
    """Build the optimizer of a trajectories() entry on the flat point ``x``."""
    call = f"plot.trajectories({label!r}: ...)"
    if isinstance(spec, Optimizer):
        # an optimizer: a fresh one of its class with the hyperparameters given to it, so
        # that it starts from the common start (the instance itself is not touched)
        return type(spec)(problem, x, **{k: v for k, v in spec.hyper.items()
                                         if k in spec.explicit})
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], dict):
        return build(spec[0], problem, x, **spec[1])
    if isinstance(spec, str) or (isinstance(spec, type) and issubclass(spec, Optimizer)):
        return build(spec, problem, x)
    if callable(spec):
        opt = spec(problem, x)
        if not isinstance(opt, Optimizer) or opt.params is not x:
            raise TypeError(f"{call}: the function must return an Optimizer built on the x "
                            "it is given")
        return opt
    raise TypeError(f"{call}: an algorithm must be a name, an Optimizer subclass, a (name, "
                    f"hyperparameters) pair, an optimizer or a function (loss, x) -> "
                    f"optimizer; got {type(spec).__name__}")


def path(problem, algorithm, start=None, steps=100):
    """Run one algorithm on a test problem and return the points it visited.

    Parameters
    ----------
    problem : npdownhill.problems.Problem
    algorithm : str, Optimizer subclass, (name, dict), Optimizer or callable
        As a value of :func:`trajectories`' ``algorithms``.
    start : array_like, optional
        Default: the problem's customary start.
    steps : int
        Updates (iterations), >= 1; a quasi-Newton method that converges
        stops earlier.

    Returns
    -------
    ndarray, shape (k + 1, dim)
        The start, then the point after each step.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"plot.path(steps={steps!r}): steps must be an integer >= 1")
    x = np.array(problem.start if start is None else start, dtype=float)
    if x.shape != (problem.dim,):
        raise ValueError(f"plot.path(start=...): the start must have {problem.dim} values for "
                         f"{problem.name}; got shape {x.shape}")
    opt = _optimizer_for(getattr(algorithm, "__name__", str(algorithm)), algorithm, problem, x)
    points = [x.copy()]
    for _ in range(int(steps)):
        opt.step()
        points.append(x.copy())
        if opt.converged:
            break
    return np.array(points)


def trajectories(problem, algorithms, start=None, steps=100, ax=None, contour_levels=30):
    """Race algorithms from the same start on a test problem: their paths on its contours.

    Parameters
    ----------
    problem : npdownhill.problems.Problem
    algorithms : dict
        ``{label: algorithm}``, each a registered name (``"adam"``), an
        Optimizer subclass, a ``(name, {hyperparameters})`` pair, an
        optimizer (a fresh one of its class with the hyperparameters given to
        it runs; the instance is not touched), or a function
        ``(loss, x) -> optimizer`` building one on the array ``x``.
    start : array_like, optional
        The common start; default the problem's customary one.
    steps : int
        Updates each algorithm makes (quasi-Newton methods stop once
        converged).
    ax : matplotlib Axes, optional
    contour_levels : int

    Returns
    -------
    matplotlib.axes.Axes
        The contours, then one line per algorithm (labelled; its data are the
        visited points, from the start to where the algorithm ended).
    """
    _check_problem(problem, "plot.trajectories")
    if not isinstance(algorithms, dict) or not algorithms:
        raise TypeError("plot.trajectories(algorithms=...): algorithms must be a non-empty "
                        "dict {label: algorithm}")
    paths = {label: path(problem, spec, start, steps) for label, spec in algorithms.items()}
    ax = contour(problem, ax=ax, levels=contour_levels)
    for label, points in paths.items():
        ax.plot(points[:, 0], points[:, 1], "-o", markersize=2.5, linewidth=1.2, label=label)
    ax.legend()
    return ax
