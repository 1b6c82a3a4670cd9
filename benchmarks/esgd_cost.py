#!/usr/bin/env python
"""The cost of one ESGD update, in multiples of one ``value_and_grad`` of the same loss.

What it measures
----------------
ESGD preconditions by a running estimate of the Hessian's row norms, which it
takes from one Hessian-vector product per update (autograd, reverse over
reverse). ``opt.step(*batch)`` traces the gradient once: that trace gives the
loss, the gradient and, by one more backward pass, the product with the
random probe. For each loss below the script times, in one run and taking
turns:

* ``value_and_grad``: ``autograd.value_and_grad(loss)(params, *batch)``;
* ``esgd step``: ``dh.ESGD(loss, params).step(*batch)`` (everything: the
  traced gradient, the probe, the product, the checks, the update);
* ``traced grad`` and ``hvp``: autograd's two parts of that step alone (the
  gradient computed under an outer trace, then the product's backward pass),
  which bound what the step can cost.

The issue's target (issue 11, target 5) is ``esgd step / value_and_grad <=
2.5``. Losses: the driver benchmark's logistic regression (20 features,
batch 32), a small MLP (20-64-1, tanh, batch 32) and a quadratic in 1000
parameters.

How to run
----------
::

    OMP_NUM_THREADS=1 python benchmarks/esgd_cost.py
"""

import argparse
import gc
import os
import platform
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import autograd.numpy as anp  # noqa: E402
import numpy as np  # noqa: E402
from autograd import make_vjp, value_and_grad  # noqa: E402
from autograd.extend import vspace  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(ROOT, "npdownhill")):
    sys.path.insert(0, ROOT)

import npdownhill as dh  # noqa: E402

TARGET = 2.5


def logreg(p, X, y):
    z = anp.dot(X, p["w"]) + p["b"]
    return anp.mean(anp.logaddexp(0.0, z) - y * z)


def mlp(p, X, y):
    h = anp.tanh(anp.dot(X, p["W1"]) + p["b1"])
    z = anp.dot(h, p["W2"])[:, 0] + p["b2"]
    return anp.mean(anp.logaddexp(0.0, z) - y * z)


def quadratic(p, A, b):
    return 0.5 * anp.dot(p["x"], anp.dot(A, p["x"])) - anp.dot(b, p["x"])


def problems():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 20))
    y = (rng.standard_normal(32) > 0).astype(float)
    n = 1000
    Q = rng.standard_normal((n, n)) / np.sqrt(n)
    return {
        "logistic regression": (logreg, {"w": np.zeros(20), "b": np.zeros(())}, (X, y)),
        "mlp 20-64-1": (mlp, {"W1": 0.1 * rng.standard_normal((20, 64)), "b1": np.zeros(64),
                              "W2": 0.1 * rng.standard_normal((64, 1)), "b2": np.zeros(())},
                        (X, y)),
        "quadratic n=1000": (quadratic, {"x": rng.standard_normal(n)}, (Q @ Q.T, rng.standard_normal(n))),
    }


def traced_parts(loss, params, batch):
    """autograd's two parts of an ESGD step: the traced gradient, then the product."""
    def gradient(p, *data):
        vjp, value = make_vjp(loss)(p, *data)
        return vjp(vspace(value).ones())

    probe = {k: np.ones_like(v) for k, v in params.items()}
    state = {}

    def traced():
        state["hvp"] = make_vjp(gradient)(params, *batch)[0]

    def hvp():
        state["hvp"](probe)

    traced()
    return traced, hvp


def timed(cands, repeats, block=0.05):
    calls = {}
    for k, f in cands.items():
        f()
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < block / 2:
            f()
            n += 1
        calls[k] = max(3, n)
    times = {k: [] for k in cands}
    gc.disable()
    try:
        for r in range(repeats):
            items = list(cands.items())
            items = items[r % len(items):] + items[:r % len(items)]
            for k, f in items:
                start = time.perf_counter()
                for _ in range(calls[k]):
                    f()
                times[k].append((time.perf_counter() - start) / calls[k])
    finally:
        gc.enable()
    return {k: min(v) for k, v in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    print("ESGD: one step against one value_and_grad of the same loss and batch")
    print(f"python {platform.python_version()}, numpy {np.__version__}, npdownhill "
          f"{dh.__version__}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"{'loss':22s} {'value_and_grad':>15s} {'esgd step':>10s} {'ratio':>6s} "
          f"{'traced grad':>12s} {'hvp':>6s} {'their sum':>9s}  target <= {TARGET}")
    for name, (loss, params, batch) in problems().items():
        opt = dh.ESGD(loss, {k: v.copy() for k, v in params.items()}, learning_rate=1e-6, rng=0)
        vg = value_and_grad(loss)
        traced, hvp = traced_parts(loss, params, batch)
        t = timed({"vg": lambda: vg(params, *batch), "step": lambda: opt.step(*batch),
                   "traced": traced, "hvp": hvp}, args.repeats)
        ratio = t["step"] / t["vg"]
        parts = (t["traced"] + t["hvp"]) / t["vg"]
        print(f"{name:22s} {t['vg'] * 1e6:12.0f} us {t['step'] * 1e6:7.0f} us {ratio:6.2f} "
              f"{t['traced'] / t['vg']:11.2f}x {t['hvp'] / t['vg']:5.2f}x {parts:8.2f}x  "
              f"{'met' if ratio <= TARGET else 'NOT met'}", flush=True)
    print("(traced grad, hvp: autograd's own parts of the step, in multiples of value_and_grad)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
