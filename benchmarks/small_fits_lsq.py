#!/usr/bin/env python
"""Small least-squares fits: npdownhill.lsq and npdownhill.curvefit against scipy's
MINPACK, in one run.

What it measures
----------------
Three problems, each fitted from the same start by both libraries:

* ``oscillator``: ``y = A exp(-t/tau) cos(omega t + phi) + c``, 200 points,
  seeded noise (sd 0.05), from ``A=1, tau=2, omega=3, phi=0, c=0``;
* ``meyer`` and ``osborne1``: problems 10 and 17 of Moré, Garbow & Hillstrom
  (1981), from their standard starts (m=16, n=3 and m=33, n=5).

For each, these rows (all in the same process, timed interleaved):

* ``ours lsq``    ``npdownhill.lsq.least_squares`` (exact Jacobian from autograd);
* ``scipy lsq``   ``scipy.optimize.least_squares(method='lm')`` given a
                  hand-written NumPy Jacobian (the fastest exact Jacobian a
                  scipy user can supply);
* ``scipy lsq+ag`` the same given ``npdownhill.derivatives.jacobian`` as
                  ``jac``, so both sides pay the same autograd cost per
                  Jacobian;

and, for the oscillator, ``ours curve_fit`` against ``scipy curve_fit``
(its default: MINPACK ``lmdif``, finite-difference Jacobian) and
``scipy curve_fit+jac`` (given the analytic Jacobian).

Columns: ``nfev`` / ``njev`` as each library reports them (MINPACK's
accounting: residual evaluations, Jacobian evaluations; scipy's
``curve_fit`` without ``jac`` counts its finite-difference evaluations in
``nfev``); ``calls``, the calls of the user's residual (or model) function
actually made, traced autograd passes included (``lsq`` computes a
Jacobian with ``n`` traced forward passes when ``n < m``); ``cost``, the
final ``0.5 * sum(r**2)``; ``max rel dx``, the largest relative difference
of the solution from the ``scipy lsq`` one (``curve_fit`` rows: from
``scipy curve_fit``, and ``pcov`` too); ``time``, the best of the repeats
in milliseconds; ``ours/this``, our time divided by that row's time
(``< 1``: we are faster).

BLAS runs on one thread (``OMP_NUM_THREADS=1`` and friends are set before
NumPy is imported). Without scipy, only our rows are printed.

Run: ``python benchmarks/small_fits_lsq.py [--repeats N]``
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import autograd.numpy as anp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from npdownhill import curvefit, derivatives, lsq  # noqa: E402
from npdownhill.tree import Layout  # noqa: E402

try:
    import scipy
    import scipy.optimize as so
except ImportError:  # scipy is a test dependency, not a runtime one
    scipy = so = None


# ---------------------------------------------------------------------------
# problems: autograd residuals over a tree, NumPy residuals and Jacobian over a flat vector
# ---------------------------------------------------------------------------

T = np.linspace(0.0, 10.0, 200)
Y = (2.5 * np.exp(-T / 3.0) * np.cos(3.3 * T + 0.4) + 0.2
     + 0.05 * np.random.default_rng(42).normal(size=T.size))
OSC_KEYS = ["A", "tau", "omega", "phi", "c"]


def osc_model(t, p):
    return p["A"] * anp.exp(-t / p["tau"]) * anp.cos(p["omega"] * t + p["phi"]) + p["c"]


def osc_model_np(t, A, tau, omega, phi, c):
    return A * np.exp(-t / tau) * np.cos(omega * t + phi) + c


def osc_model_jac(t, A, tau, omega, phi, c):
    e = np.exp(-t / tau)
    cos, sin = np.cos(omega * t + phi), np.sin(omega * t + phi)
    return np.stack([e * cos, A * e * cos * t / tau ** 2, -A * e * sin * t, -A * e * sin,
                     np.ones_like(t)], axis=1)


MEYER_Y = np.array([34780, 28610, 23650, 19630, 16370, 13720, 11540, 9744, 8261, 7030, 6005,
                    5147, 4427, 3820, 3307, 2872.0])
MEYER_T = 45 + 5 * np.arange(1, 17.0)
OS1_Y = np.array([0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.850, 0.818, 0.784, 0.751,
                  0.718, 0.685, 0.658, 0.628, 0.603, 0.580, 0.558, 0.538, 0.522, 0.506, 0.490,
                  0.478, 0.467, 0.457, 0.448, 0.438, 0.431, 0.424, 0.420, 0.414, 0.411, 0.406])
OS1_T = 10.0 * np.arange(33)


def meyer(p):
    x = p["x"]
    return x[0] * anp.exp(x[1] / (MEYER_T + x[2])) - MEYER_Y


def meyer_np(x):
    return x[0] * np.exp(x[1] / (MEYER_T + x[2])) - MEYER_Y


def meyer_jac(x):
    e = np.exp(x[1] / (MEYER_T + x[2]))
    return np.stack([e, x[0] * e / (MEYER_T + x[2]),
                     -x[0] * e * x[1] / (MEYER_T + x[2]) ** 2], axis=1)


def osborne1(p):
    x = p["x"]
    return OS1_Y - (x[0] + x[1] * anp.exp(-OS1_T * x[3]) + x[2] * anp.exp(-OS1_T * x[4]))


def osborne1_np(x):
    return OS1_Y - (x[0] + x[1] * np.exp(-OS1_T * x[3]) + x[2] * np.exp(-OS1_T * x[4]))


def osborne1_jac(x):
    e4, e5 = np.exp(-OS1_T * x[3]), np.exp(-OS1_T * x[4])
    return np.stack([-np.ones_like(OS1_T), -e4, -e5, x[1] * OS1_T * e4, x[2] * OS1_T * e5],
                    axis=1)


def osc_residuals(p):
    return osc_model(T, p) - Y


def osc_residuals_np(x):
    return osc_model_np(T, *x) - Y


def osc_residuals_jac(x):
    return osc_model_jac(T, *x)


OSC_START = np.array([1.0, 2.0, 3.0, 0.0, 0.0])
PROBLEMS = [
    # name, residuals over a tree, tree from a flat start, NumPy residuals, NumPy Jacobian, start
    ("oscillator", osc_residuals, lambda x: {k: np.array(v) for k, v in zip(OSC_KEYS, x)},
     osc_residuals_np, osc_residuals_jac, OSC_START),
    ("meyer", meyer, lambda x: {"x": np.array(x, dtype=float)}, meyer_np, meyer_jac,
     np.array([0.02, 4000.0, 250.0])),
    ("osborne1", osborne1, lambda x: {"x": np.array(x, dtype=float)}, osborne1_np, osborne1_jac,
     np.array([0.5, 1.5, -1.0, 0.01, 0.02])),
]


# ---------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------

class Counter:
    """Wrap a function and count its calls."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args):
        self.calls += 1
        return self.fn(*args)


def best_time(fn, repeats):
    """Best wall time of ``fn()`` over ``repeats`` runs (seconds), and its last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        gc.disable()
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
        gc.enable()
    return best, out


def flat_of(tree):
    layout = Layout(tree)
    return layout.read(layout.empty())


def rel_diff(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def run(repeats):
    rows = []
    for name, residuals, to_tree, fun_np, jac_np, start in PROBLEMS:
        # -- ours -------------------------------------------------------------
        counted = Counter(residuals)
        lsq.least_squares(counted, to_tree(start))           # warm up, count calls
        calls = counted.calls
        t_ours, res = best_time(lambda: lsq.least_squares(residuals, to_tree(start)), repeats)
        x_ours = flat_of(res.x)
        ours = dict(problem=name, what="ours lsq", nfev=res.nfev, njev=res.njev, calls=calls,
                    cost=res.cost, dx=None, time=t_ours)
        rows.append(ours)
        if so is None:
            continue
        # -- scipy with a hand-written NumPy Jacobian ---------------------------
        f_c, j_c = Counter(fun_np), Counter(jac_np)
        so.least_squares(f_c, start, jac=j_c, method="lm")
        t_sp, sp = best_time(lambda: so.least_squares(fun_np, start, jac=jac_np, method="lm"),
                             repeats)
        rows.append(dict(problem=name, what="scipy lsq", nfev=sp.nfev, njev=sp.njev,
                         calls=f_c.calls + j_c.calls, cost=sp.cost,
                         dx=rel_diff(x_ours, sp.x), time=t_sp))
        # -- scipy with our autograd Jacobian ----------------------------------
        def ag_jac(x):
            return derivatives.jacobian(residuals, to_tree(x))[1]
        f_c, j_c = Counter(fun_np), Counter(ag_jac)
        so.least_squares(f_c, start, jac=j_c, method="lm")
        t_ag, sp_ag = best_time(lambda: so.least_squares(fun_np, start, jac=ag_jac, method="lm"),
                                repeats)
        rows.append(dict(problem=name, what="scipy lsq+ag", nfev=sp_ag.nfev, njev=sp_ag.njev,
                         calls=None, cost=sp_ag.cost, dx=rel_diff(x_ours, sp_ag.x), time=t_ag))
        for row in rows[-2:]:
            row["ratio"] = t_ours / row["time"]

    # -- curve_fit on the oscillator -------------------------------------------
    p0 = {k: np.array(v) for k, v in zip(OSC_KEYS, OSC_START)}
    counted = Counter(osc_model)
    popt, pcov = curvefit.curve_fit(counted, T, Y, p0)
    calls = counted.calls
    fit = {}

    def ours_fit():
        fit["res"] = curvefit.curve_fit(osc_model, T, Y, p0)
        return fit["res"]
    t_ours, (popt, pcov) = best_time(ours_fit, repeats)
    # nfev/njev of the same fit, from least_squares on the same residuals
    res = lsq.least_squares(osc_residuals, {k: np.array(v) for k, v in zip(OSC_KEYS, OSC_START)})
    rows.append(dict(problem="oscillator", what="ours curve_fit", nfev=res.nfev, njev=res.njev,
                     calls=calls, cost=0.5 * float(np.sum((osc_model(T, popt) - Y) ** 2)),
                     dx=None, time=t_ours))
    if so is not None:
        x_ours = np.array([float(popt[k]) for k in OSC_KEYS])
        m_c = Counter(osc_model_np)
        sp_popt, sp_pcov, info, _, _ = so.curve_fit(m_c, T, Y, p0=OSC_START, full_output=True)
        t_sp, _ = best_time(lambda: so.curve_fit(osc_model_np, T, Y, p0=OSC_START), repeats)
        rows.append(dict(problem="oscillator", what="scipy curve_fit", nfev=info["nfev"],
                         njev=None, calls=m_c.calls,
                         cost=0.5 * float(np.sum((osc_model_np(T, *sp_popt) - Y) ** 2)),
                         dx=rel_diff(x_ours, sp_popt), dcov=rel_diff(pcov, sp_pcov), time=t_sp,
                         ratio=t_ours / t_sp))
        m_c, j_c = Counter(osc_model_np), Counter(osc_model_jac)
        sp_popt, sp_pcov, info, _, _ = so.curve_fit(m_c, T, Y, p0=OSC_START, jac=j_c,
                                                    full_output=True)
        t_sj, _ = best_time(lambda: so.curve_fit(osc_model_np, T, Y, p0=OSC_START,
                                                 jac=osc_model_jac), repeats)
        rows.append(dict(problem="oscillator", what="scipy curve_fit+jac", nfev=info["nfev"],
                         njev=info.get("njev"), calls=m_c.calls + j_c.calls,
                         cost=0.5 * float(np.sum((osc_model_np(T, *sp_popt) - Y) ** 2)),
                         dx=rel_diff(x_ours, sp_popt), dcov=rel_diff(pcov, sp_pcov), time=t_sj,
                         ratio=t_ours / t_sj))
    return rows


def fmt(value, spec):
    width = int("".join(ch for ch in spec.split(".")[0] if ch.isdigit()) or 0)
    return "-".rjust(width) if value is None else format(value, spec)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per row (best kept)")
    args = parser.parse_args(argv)
    versions = f"numpy {np.__version__}" + (f", scipy {scipy.__version__}" if so else "")
    print(f"small least-squares fits, 1 BLAS thread, best of {args.repeats} ({versions})\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rows = run(args.repeats)
    header = (f"{'problem':<11} {'fit':<20} {'nfev':>5} {'njev':>5} {'calls':>6} "
              f"{'cost':>14} {'max rel dx':>11} {'pcov rel':>9} {'time ms':>8} {'ours/this':>9}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['problem']:<11} {row['what']:<20} {fmt(row['nfev'], '5d')} "
              f"{fmt(row['njev'], '5d')} {fmt(row['calls'], '6d')} {row['cost']:14.8g} "
              f"{fmt(row['dx'], '11.1e')} {fmt(row.get('dcov'), '9.1e')} "
              f"{row['time'] * 1e3:8.3f} {fmt(row.get('ratio'), '9.2f')}")
    if so is None:
        print("\nscipy is not installed: the scipy rows are skipped.")
    print("\ncalls: calls of the residual/model function, traced autograd passes included "
          "('-': not counted).\nscipy curve_fit without jac counts its finite-difference "
          "evaluations in nfev.")


if __name__ == "__main__":
    main()
