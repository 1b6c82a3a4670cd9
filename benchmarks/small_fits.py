#!/usr/bin/env python
"""Small fits against scipy.optimize, in the same run: evaluations, accuracy, time.

The problems of the issue that asked for quasi-Newton fits:

* 2-D Rosenbrock from (-1.2, 1);
* the extended (pairwise) Rosenbrock function, n = 100;
* the chained Rosenbrock function (``scipy.optimize.rosen``), n = 100;
* an L2-regularised logistic regression, 1000 x 20;
* a bounded 2-D Rosenbrock (box [-1.5, 0.8] x [-0.5, 2], the x bound active);
* a damped-oscillator curve fit, ``curve_fit`` against scipy's (when
  ``npdownhill.curve_fit`` exists).

``dh.solve(method='lbfgs')`` runs against ``scipy.optimize.minimize(method=
'L-BFGS-B')`` with default tolerances on both sides; scipy gets the exact
gradient from autograd too (a flat wrapper around the same loss), so the two
differ only in the algorithm. Columns:

``evals``       loss + gradient evaluations (``nfev``), ours / scipy, and their ratio;
``excess``      how far above the optimum each stops, ``f - f*`` (``f*`` from a
                scipy run with tolerances at 1e-15); the target: ours at most
                twice scipy's, or within 1e-8 relative of ``f*``;
``|x - x_sp|``  the largest difference between the two solutions;
``time/eval``   wall time per evaluation, ours / scipy (both pay autograd's
                gradient; the target is at most 1.5).

Run: ``OMP_NUM_THREADS=1 python benchmarks/small_fits.py`` (about 20 s).
Times are the minimum over repeats; compare ratios, not seconds.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import autograd  # noqa: E402
import autograd.numpy as anp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import npdownhill as dh  # noqa: E402

try:
    import scipy.optimize as so
except ImportError:                      # the table then shows our columns only
    so = None


def rosen2(p):
    return (1 - p["x"]) ** 2 + 100 * (p["y"] - p["x"] ** 2) ** 2


def chained(p):
    x = p["x"]
    return anp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def extended(p):
    x = p["x"]
    return anp.sum(100.0 * (x[1::2] - x[::2] ** 2) ** 2 + (1 - x[::2]) ** 2)


def rosen_start(n):
    x = np.ones(n)
    x[::2] = -1.2
    return x


def logistic_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 20))
    w = rng.normal(size=20)
    y = (rng.uniform(size=1000) < 1 / (1 + np.exp(-X @ w))).astype(float)
    return X, y


def logistic(p, X, y):
    z = anp.dot(X, p["w"]) + p["b"]
    return anp.mean(anp.logaddexp(0.0, z) - y * z) + 0.01 * anp.sum(p["w"] ** 2)


def problems():
    """``(name, loss, start tree, args, bounds for us, bounds for scipy)``."""
    X, y = logistic_data()
    yield ("rosenbrock 2-d", rosen2, {"x": np.array(-1.2), "y": np.array(1.0)}, (), None, None)
    yield ("extended rosenbrock 100", extended, {"x": rosen_start(100)}, (), None, None)
    yield ("chained rosenbrock 100", chained, {"x": rosen_start(100)}, (), None, None)
    yield ("logistic 1000x20", logistic, {"w": np.zeros(20), "b": np.zeros(())}, (X, y),
           None, None)
    yield ("bounded rosenbrock 2-d", rosen2, {"x": np.array(-1.2), "y": np.array(1.0)}, (),
           {"x": (-1.5, 0.8), "y": (-0.5, 2.0)}, [(-1.5, 0.8), (-0.5, 2.0)])


def copy_tree(tree):
    return {k: np.array(v, copy=True) for k, v in tree.items()}


def flat_wrapper(loss, start, args):
    """scipy's view of the same loss: a flat vector in, a value and autograd's gradient out."""
    names = list(start)
    shapes = [np.shape(start[k]) for k in names]
    sizes = [int(np.prod(s)) for s in shapes]

    def tree(v):
        out, i = {}, 0
        for k, shape, size in zip(names, shapes, sizes):
            out[k] = anp.reshape(v[i:i + size], shape)
            i += size
        return out

    value_and_grad = autograd.value_and_grad(lambda v: loss(tree(v), *args))
    x0 = np.concatenate([np.ravel(start[k]) for k in names])
    return value_and_grad, x0


def timed(fn, repeats=5):
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def run_ours(loss, start, args, bounds):
    def go():
        params = copy_tree(start)
        return params, dh.solve(loss, params, args=args, bounds=bounds)
    seconds, (params, result) = timed(go)
    return seconds, params, result


def run_scipy(loss, start, args, bounds):
    value_and_grad, x0 = flat_wrapper(loss, start, args)
    seconds, result = timed(lambda: so.minimize(value_and_grad, x0, jac=True,
                                                method="L-BFGS-B", bounds=bounds))
    optimum = so.minimize(value_and_grad, result.x, jac=True, method="L-BFGS-B", bounds=bounds,
                          options=dict(ftol=1e-15, gtol=1e-15, maxiter=20000)).fun
    return seconds, result, min(optimum, result.fun)


def curve_fit_row():
    """The damped-oscillator fit, when npdownhill has curve_fit: (cells) or None."""
    if not hasattr(dh, "curve_fit") or so is None:
        return None
    t = np.linspace(0, 10, 200)
    rng = np.random.default_rng(1)

    def model(t, p):
        return p["A"] * anp.exp(-t / p["tau"]) * anp.cos(p["omega"] * t + p["phi"]) + p["c"]

    true = {"A": 2.0, "tau": 3.0, "omega": 2.5, "phi": 0.3, "c": 0.1}
    y = model(t, {k: np.array(v) for k, v in true.items()}) + 0.05 * rng.normal(size=t.size)
    p0 = {"A": np.array(1.0), "tau": np.array(2.0), "omega": np.array(3.0),
          "phi": np.array(0.0), "c": np.array(0.0)}
    names = list(p0)

    def flat_model(t, *v):
        return model(t, dict(zip(names, v)))

    ours_s, (popt, pcov) = timed(lambda: dh.curve_fit(model, t, y, p0))
    counter = {"n": 0}

    def counted(t, *v):
        counter["n"] += 1
        return flat_model(t, *v)

    jac = autograd.jacobian(lambda v: flat_model(t, *v))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sp_s, (sp_popt, sp_pcov) = timed(lambda: so.curve_fit(
            counted, t, y, p0=[float(p0[k]) for k in names], jac=lambda t, *v: jac(np.array(v))))
    ours_x = np.array([float(popt[k]) for k in names])
    rel = np.max(np.abs(ours_x - sp_popt) / np.abs(sp_popt))
    cov = np.max(np.abs(pcov - sp_pcov) / np.abs(sp_pcov))
    return ("curve_fit oscillator", ours_x, sp_popt, rel, cov, ours_s, sp_s)


def main():
    print(f"npdownhill {dh.__version__} vs scipy "
          f"{__import__('scipy').__version__ if so else '(not installed)'}; 1 BLAS thread\n")
    head = (f"{'problem':<24} {'evals ours/scipy':>17} {'ratio':>6} {'excess ours':>12} "
            f"{'excess scipy':>12} {'|x - x_sp|':>10} {'time/eval':>9}")
    print(head)
    print("-" * len(head))
    for name, loss, start, args, bounds, sp_bounds in problems():
        ours_s, params, result = run_ours(loss, start, args, bounds)
        if so is None:
            print(f"{name:<24} {result.nfev:>17} {'-':>6} {'-':>12} {'-':>12} {'-':>10} {'-':>9}")
            continue
        sp_s, reference, optimum = run_scipy(loss, start, args, sp_bounds)
        ours_x = np.concatenate([np.ravel(params[k]) for k in start])
        per_eval = (ours_s / result.nfev) / (sp_s / reference.nfev)
        print(f"{name:<24} {f'{result.nfev}/{reference.nfev}':>17} "
              f"{result.nfev / reference.nfev:>6.2f} {result.fun - optimum:>12.2e} "
              f"{reference.fun - optimum:>12.2e} {np.max(np.abs(ours_x - reference.x)):>10.1e} "
              f"{per_eval:>9.2f}")
    row = curve_fit_row()
    if row is not None:
        name, ours_x, sp_x, rel, cov, ours_s, sp_s = row
        print(f"\n{name}: popt max relative difference {rel:.1e}, pcov {cov:.1e}, "
              f"time ours/scipy {ours_s / sp_s:.2f}")


if __name__ == "__main__":
    main()
