#!/usr/bin/env python
"""The cost of npdownhill's driver: one epoch of ``minimize`` against a hand-written loop.

What it measures
----------------
A logistic regression (20 features, 10,000 rows, batch 32: 313 updates per
epoch) with a tiny validation set (64 rows), trained for one epoch with Adam:

* ``minimize``: ``dh.minimize(loss, params, [X, y], valid=[Xv, yv],
  algo="adam", batch_size=32, max_epochs=1, ...)``: shuffled batches from a
  ``Dataset``, ``Optimizer.step`` (autograd's gradient, the loss and
  gradient checks, the update), the epoch's monitors, the validation of the
  start point and of the end, the best parameters kept and put back.
* ``hand loop``: what a user would write instead: a permutation per epoch,
  ``X[idx]`` batches, ``autograd.value_and_grad`` and Adam written per leaf
  in NumPy, the validation loss at the start and at the end.

The issue's target (issue 11, target 4) is ``minimize / hand loop <= 1.05``:
the driver's checks and bookkeeping cost at most 5 % over the bare loop.
Both sides compute the same gradients; most of the time is autograd's.

Timing: the two candidates take turns (``--repeats`` rounds, default 31),
each round one full epoch of each from the same start, back to back. The
estimate is the median over the rounds of each round's ratio (two epochs run
back to back see the same state of a shared machine); the minimum and median
times of each are printed too.

How to run
----------
::

    OMP_NUM_THREADS=1 python benchmarks/driver_epoch.py          # ~1 minute
    OMP_NUM_THREADS=1 python benchmarks/driver_epoch.py --profile   # where minimize's time goes
"""

import argparse
import cProfile
import gc
import logging
import os
import platform
import pstats
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import autograd.numpy as anp  # noqa: E402
import numpy as np  # noqa: E402
from autograd import value_and_grad  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(ROOT, "npdownhill")):
    sys.path.insert(0, ROOT)

import npdownhill as dh  # noqa: E402

TARGET = 1.05
N, D, NV, BATCH, LR = 10_000, 20, 64, 32, 1e-3


def loss(p, X, y):
    z = anp.dot(X, p["w"]) + p["b"]
    return anp.mean(anp.logaddexp(0.0, z) - y * z)


def data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N + NV, D))
    w = rng.standard_normal(D)
    y = (X @ w + 0.5 * rng.standard_normal(N + NV) > 0).astype(float)
    return X[:N], y[:N], X[N:], y[N:]


def fresh():
    return {"w": np.zeros(D), "b": np.zeros(())}


def hand_loop(params, X, y, Xv, yv, seed=0, lr=LR, b1=0.9, b2=0.999, eps=1e-8):
    """One epoch: permutation, batches, value_and_grad, Adam per leaf, two validations."""
    grad = value_and_grad(loss)
    m = {k: np.zeros_like(v) for k, v in params.items()}
    s = {k: np.zeros_like(v) for k, v in params.items()}
    start_valid = loss(params, Xv, yv)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(X))
    t = 0
    for i in range(0, len(X), BATCH):
        idx = perm[i:i + BATCH]
        value, grads = grad(params, X[idx], y[idx])
        t += 1
        for k, p in params.items():
            g = grads[k]
            m[k] = b1 * m[k] + (1 - b1) * g
            s[k] = b2 * s[k] + (1 - b2) * g * g
            p -= lr / (1 - b1 ** t) * m[k] / (np.sqrt(s[k] / (1 - b2 ** t)) + eps)
    return start_valid, loss(params, Xv, yv)


def ours(params, X, y, Xv, yv, seed=0):
    return dh.minimize(loss, params, [X, y], valid=[Xv, yv], algo="adam", learning_rate=LR,
                       batch_size=BATCH, max_epochs=1, rng=seed, progress=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--profile", action="store_true",
                        help="also print cProfile's top functions of one minimize epoch")
    args = parser.parse_args(argv)
    logging.getLogger("npdownhill").setLevel(logging.WARNING)
    X, y, Xv, yv = data()
    print(f"driver cost: one epoch of Adam on a logistic regression ({N:,} x {D}, batch {BATCH}, "
          f"{-(-N // BATCH)} updates, {NV} validation rows)")
    print(f"python {platform.python_version()}, numpy {np.__version__}, npdownhill "
          f"{dh.__version__}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    # both sides train the same model: same start, similar result
    p1, p2 = fresh(), fresh()
    result = ours(p1, X, y, Xv, yv)
    hand_loop(p2, X, y, Xv, yv)
    print(f"validation loss after the epoch: minimize {result.best_loss:.6f}, hand loop "
          f"{loss(p2, Xv, yv):.6f}")
    cands = {"minimize": lambda: ours(fresh(), X, y, Xv, yv),
             "hand loop": lambda: hand_loop(fresh(), X, y, Xv, yv)}
    for f in cands.values():
        f()
    times = {k: [] for k in cands}
    for r in range(args.repeats):
        order = list(cands.items())
        if r % 2:
            order.reverse()
        for k, f in order:
            gc.collect()
            gc.disable()
            try:
                start = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - start)
            finally:
                gc.enable()
    best = {k: min(v) for k, v in times.items()}
    median = {k: float(np.median(v)) for k, v in times.items()}
    for k in cands:
        print(f"  {k:10s} {best[k] * 1e3:8.1f} ms per epoch (median {median[k] * 1e3:.1f} ms), "
              f"{best[k] / -(-N // BATCH) * 1e6:6.1f} us per update")
    # each round's two epochs ran back to back: their ratio is little affected by the
    # slow drifts of a shared machine; the median over the rounds is the estimate
    paired = float(np.median(np.array(times["minimize"]) / np.array(times["hand loop"])))
    ratio = best["minimize"] / best["hand loop"]
    print(f"minimize / hand loop: {paired:.3f} (median of the {args.repeats} rounds' ratios; "
          f"ratio of the minima {ratio:.3f}); target <= {TARGET}: "
          f"{'met' if paired <= TARGET else 'NOT met'}")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        ours(fresh(), X, y, Xv, yv)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
