#!/usr/bin/env python
"""One update of this checkout against the same update at another git revision.

What it measures
----------------
For each algorithm, the time of one ``opt.apply(grads)`` with the package of
this checkout and with the package as it was at ``REV`` (``git archive`` into
a temporary folder, imported under another name), in one process: on one
leaf of ``--size`` elements (default 10 million), or with ``--small`` on the
40-leaf tree of ``step_overhead.py`` (20 10x10 matrices and 20 10-vectors).
The two take turns block by block, so a slow spell of a shared machine hits
both; the table gives the minimum time of each and two ratios, new / old: of
the minima, and the median of the blocks' paired ratios. Below 1 is faster.

Use it to check that a change to the update is the speed-up (or not the
slow-down) it should be: the ratio of one run is what counts, not raw times.

How to run
----------
::

    OMP_NUM_THREADS=1 python benchmarks/compare_revisions.py HEAD~3 --algos adam,adamw
    OMP_NUM_THREADS=1 python benchmarks/compare_revisions.py v0.2.0 --small --repeats 31
"""

import argparse
import gc
import importlib
import os
import subprocess
import sys
import tarfile
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import npdownhill as dh  # noqa: E402


def load_revision(rev, folder):
    """Import the package as it was at ``rev`` (as ``npdownhill_at_rev``)."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", rev, "npdownhill"],
                             check=True, capture_output=True).stdout
    path = os.path.join(folder, "archive.tar")
    with open(path, "wb") as f:
        f.write(archive)
    with tarfile.open(path) as tar:
        tar.extractall(folder, filter="data")
    os.rename(os.path.join(folder, "npdownhill"), os.path.join(folder, "npdownhill_at_rev"))
    sys.path.insert(0, folder)
    return importlib.import_module("npdownhill_at_rev")


def problem(size, small, dtype, seed=0):
    """Fresh params and a gradient tree: one leaf, or the 40-leaf tree."""
    rng = np.random.default_rng(seed)
    if small:
        params = {}
        for i in range(20):
            params[f"layer{i}.W"] = np.zeros((10, 10), dtype)
            params[f"layer{i}.b"] = np.zeros(10, dtype)
    else:
        params = {"w": np.zeros(size, dtype)}
    grads = {k: (1e-3 * rng.standard_normal(v.shape)).astype(dtype) for k, v in params.items()}
    return params, grads


def compare(algo, packages, args, dtype):
    calls = 2000 if args.small else max(1, int(2e7 // args.size))
    opts = []
    for package in packages:
        params, grads = problem(args.size, args.small, dtype)
        opt = package.build(algo, None, params, learning_rate=1e-4)
        opt.apply(grads)
        opts.append((opt, grads))
    times = [[], []]
    gc.disable()
    try:
        for block in range(args.repeats):
            order = (0, 1) if block % 2 == 0 else (1, 0)
            for k in order:
                opt, grads = opts[k]
                start = time.perf_counter()
                for _ in range(calls):
                    opt.apply(grads)
                times[k].append((time.perf_counter() - start) / calls)
    finally:
        gc.enable()
    old, new = np.array(times[0]), np.array(times[1])
    return old.min(), new.min(), new.min() / old.min(), float(np.median(new / old))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rev", help="the git revision to compare with (e.g. HEAD~1, a tag)")
    parser.add_argument("--algos", default="sgd,momentum,adagrad,rmsprop,adam,amsgrad,adamw")
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--size", type=lambda s: int(float(s)), default=10_000_000,
                        help="elements of the one leaf (default 1e7)")
    parser.add_argument("--small", action="store_true", help="the 40-leaf tree instead")
    parser.add_argument("--repeats", type=int, default=15, help="blocks of each (default 15)")
    args = parser.parse_args(argv)
    dtype = np.dtype(args.dtype)
    with tempfile.TemporaryDirectory() as folder:
        old = load_revision(args.rev, folder)
        where = "40 leaves" if args.small else f"one leaf of {args.size:,} elements"
        print(f"one apply(grads), {where}, {dtype}: this checkout against {args.rev}")
        print(f"python {sys.version.split()[0]}, numpy {np.__version__}; "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; "
              f"min over {args.repeats} blocks taken in turns")
        unit, scale = ("us", 1e6) if args.small else ("ms", 1e3)
        print(f"{'algorithm':12s} {'at rev ' + unit:>10s} {'now ' + unit:>10s} "
              f"{'now/rev':>8s} {'median paired':>14s}")
        for algo in args.algos.split(","):
            t_old, t_new, ratio, paired = compare(algo.strip(), (old, dh), args, dtype)
            print(f"{algo:12s} {t_old * scale:10.1f} {t_new * scale:10.1f} {ratio:8.3f} "
                  f"{paired:14.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
