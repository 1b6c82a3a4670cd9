#!/usr/bin/env python
"""What the rebound-leaf check costs each step.

Every entry point that reads the user's param tree (``step``, ``apply``,
``update``, ``get_updates``, ...) first checks that each leaf is still the
array the optimizer was built with (``Layout.check_bound``), so that a leaf
rebound with ``params["w"] = ...`` is refused instead of silently
disconnected. The issue that asked for it set its cost at about 1 us a step.

This script times, in one run and interleaved, the check alone and one
``Adam.apply(grads)`` (which includes it) on dict trees of 4, 40 and 400
leaves (the 40-leaf tree is step_overhead.py's: 20 10x10 matrices and 20
10-vectors), and prints the check's time and its share of the step. Times
are the minimum over repeats of the mean per call in a block; compare the
shares, not the raw times across machines.

Run: ``OMP_NUM_THREADS=1 python benchmarks/rebound_check.py``
"""

import gc
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import npdownhill as dh  # noqa: E402


def tree(n_pairs, rng):
    out = {}
    for i in range(n_pairs):
        out[f"layer{i}.W"] = rng.normal(size=(10, 10))
        out[f"layer{i}.b"] = rng.normal(size=10)
    return out


def per_call(fn, calls=2000, repeats=9):
    """Minimum over repeats of the mean time per call (seconds)."""
    best = float("inf")
    for _ in range(repeats):
        gc.disable()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
        gc.enable()
    return best


def main():
    rng = np.random.default_rng(0)
    print(f"{'leaves':>6} {'check (us)':>11} {'Adam.apply (us)':>16} {'check / step':>13}")
    for pairs in (2, 20, 200):
        params, grads = tree(pairs, rng), tree(pairs, rng)
        opt = dh.Adam(None, params, learning_rate=1e-9)
        check = (lambda: opt.layout.check_bound(params, "bench"))
        step = (lambda: opt.apply(grads))
        for fn in (check, step):             # warm up
            per_call(fn, calls=200, repeats=1)
        c = min(per_call(check) for _ in range(3))
        s = min(per_call(step, calls=500) for _ in range(3))
        print(f"{2 * pairs:>6} {c * 1e6:>11.2f} {s * 1e6:>16.2f} {c / s:>13.1%}")


if __name__ == "__main__":
    main()
