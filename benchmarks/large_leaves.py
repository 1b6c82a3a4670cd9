#!/usr/bin/env python
"""One update on large leaves: npdownhill against torch.optim, memory, and scaling.

What it measures
----------------
1. **Large leaves.** For every algorithm, the time of one ``opt.apply(g)`` on
   one leaf of 10 million elements (``--size``), float64 and float32, next
   to the same rule in torch.optim on one tensor with ``.grad`` set, in its
   fastest form (``fused=True`` where torch accepts it on CPU, else
   ``foreach=True``, else its default). The gradient is a separate array,
   read where it is (a leaf larger than a chunk is not gathered). The
   issue's target is ``ours/torch <= 3.5``. A few rows add pipeline stages with their torch
   counterparts (global-norm clipping: ``clip_grad_norm_`` before the step;
   elementwise clipping: ``clip_grad_value_``; gradient noise: ``randn_like``).
2. **Memory.** Everything the optimizer holds (state, the spare state it
   writes each update into, the gradient buffer, scratch), in multiples of
   the params' bytes, against the target ``2 x state buffers + 1.25``; and
   the peak of the memory one ``apply`` allocates (``tracemalloc``), which
   should be no full-size temporary.
3. **Scaling.** Adam's update time (a) on trees of 4 to 4000 leaves holding
   the same number of elements, plain and packed, next to torch fused, and
   (b) on one leaf of 100 to 10 million elements.

Timing: each candidate is warmed up, then timed in blocks of calls (about
0.2 s) with the garbage collector paused; the blocks of a row's candidates
take turns, and the reported time is the minimum over the repeats of the
mean time per call in a block. BLAS and torch run on one thread. The
machine this runs on may be shared and noisy: compare the ratios of one run.

How to run
----------
::

    OMP_NUM_THREADS=1 python benchmarks/large_leaves.py            # ~6 minutes
    OMP_NUM_THREADS=1 python benchmarks/large_leaves.py --quick    # ~2 minutes, noisier
    python benchmarks/large_leaves.py --algos adam,sgd --dtypes float64 --json out.json

Without torch (or with ``--no-torch``) the torch columns read ``-`` and the
targets are not judged; memory and scaling still run.
"""

import argparse
import gc
import json
import os
import platform
import sys
import time
import tracemalloc

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if os.path.isdir(os.path.join(ROOT, "npdownhill")):
    sys.path.insert(0, ROOT)   # benchmark this checkout, installed or not
sys.path.insert(0, HERE)

import npdownhill as dh  # noqa: E402
from step_overhead import SPECS  # noqa: E402  (the same hyperparameters on both sides)
from step_overhead import Candidate, load_torch, measure  # noqa: E402  (the same timing)

TARGET = 3.5
STATE_BUFFERS = {"sgd": 0, "momentum": 1, "nag": 1, "rmsprop": 1, "rprop": 2, "adagrad": 1,
                 "adadelta": 2, "adam": 2, "adamax": 2, "amsgrad": 3, "nadam": 2, "adamw": 2,
                 "radam": 2, "esgd": 1}
# extra rows: (label, algorithm, our extra hyperparameters, torch preparation before step)
PIPELINE = [
    ("adam+clip_gradients", "adam", {"clip_gradients": 1.0}, "clip_norm"),
    ("momentum+max_gradient_elem", "momentum", {"max_gradient_elem": 1.0}, "clip_value"),
    ("adam+gradient_noise", "adam", {"gradient_noise_scale": 1e-3}, "noise"),
]


def torch_mode(torch, algo):
    """The fastest form torch accepts for this rule: ``(mode, extra kwargs)``."""
    name, kwargs = SPECS[algo][1]
    cls = getattr(torch.optim, name)
    for mode, extra in (("fused", {"fused": True}), ("foreach", {"foreach": True}),
                        ("default", {})):
        try:
            t = torch.zeros(8, dtype=torch.float64, requires_grad=True)
            t.grad = torch.ones(8, dtype=torch.float64)
            opt = cls([t], **dict(kwargs, **extra))
            opt.step()
            opt.step()
        except Exception:  # noqa: BLE001 - a refusal means "try the next form"
            continue
        return mode, extra
    return None, None


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt(x, spec=".2f"):
    return "-" if x is None else format(x, spec)


# -- 1. large leaves ----------------------------------------------------------
def torch_side(torch, algo, mode_extra, p, g, prepare=None):
    name, kwargs = SPECS[algo][1]
    tensor = torch.from_numpy(p).requires_grad_(True)
    tensor.grad = torch.from_numpy(g)
    opt = getattr(torch.optim, name)([tensor], **dict(kwargs, **mode_extra))
    if prepare is None:
        return opt.step, tensor
    if prepare == "clip_norm":
        clip = torch.nn.utils.clip_grad_norm_

        def step():
            clip([tensor], 1.0, foreach=True)
            opt.step()
    elif prepare == "clip_value":
        clip = torch.nn.utils.clip_grad_value_

        def step():
            clip([tensor], 1.0, foreach=True)
            opt.step()
    else:
        def step():
            tensor.grad.add_(torch.randn_like(tensor.grad), alpha=1e-3)
            opt.step()
    return step, tensor


def bench_large(algo, label, extra, prepare, dtype, size, torch, cfg):
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(size).astype(dtype)
    g = (rng.standard_normal(size) * 1e-3).astype(dtype)
    kwargs = dict(SPECS[algo][0], **extra)
    if "gradient_noise_scale" in kwargs:
        kwargs["rng"] = 0
    row = {"row": label, "algorithm": algo, "dtype": np.dtype(dtype).name, "size": size}
    ours_p = p0.copy()
    ours = dh.build(algo, None, ours_p, **kwargs)
    cands = [Candidate("ours", lambda: ours.apply(g))]
    mode = None
    if torch is not None:
        mode, mode_extra = torch_mode(torch, algo)
        if mode is not None:
            tp = p0.copy()
            tg = g.copy()
            step, tensor = torch_side(torch, algo, mode_extra, tp, tg, prepare)
            if prepare is not None:       # clipping and noise rewrite .grad each step
                def torch_step(step=step, tensor=tensor):
                    tensor.grad.copy_(torch.from_numpy(g))
                    step()
                cands.append(Candidate("torch", torch_step))
                row["torch_includes_refill"] = True
            else:
                cands.append(Candidate("torch", step))
    row["torch_mode"] = mode
    measure(cands, cfg)
    times = {c.label: c.best for c in cands}
    row.update({f"{k}_ms": (v * 1e3 if v is not None else None) for k, v in times.items()})
    row["errors"] = {c.label: c.error for c in cands if c.error}
    row["ratio"] = ratio(times.get("ours"), times.get("torch"))
    row["target_met"] = None if row["ratio"] is None else row["ratio"] <= TARGET
    row["finite"] = bool(np.isfinite(ours_p).all())
    return row


def print_large(rows):
    print(f"{'row':28s} {'dtype':7s} {'ours ms':>8s} {'torch ms':>8s} "
          f"{'torch mode':10s} {'ours/torch':>10s} {'<= 3.5':>6s}")
    for r in rows:
        met = "-" if r["target_met"] is None else ("yes" if r["target_met"] else "NO")
        print(f"{r['row']:28s} {r['dtype']:7s} {fmt(r.get('ours_ms'), '.1f'):>8s} "
              f"{fmt(r.get('torch_ms'), '.1f'):>8s} "
              f"{str(r['torch_mode'] or '-'):10s} {fmt(r['ratio']):>10s} {met:>6s}"
              + (f"  errors: {r['errors']}" if r["errors"] else "")
              + ("" if r["finite"] else "  NON-FINITE"), flush=True)


# -- 2. memory ------------------------------------------------------------------
def bench_memory(algo, size):
    p = np.random.default_rng(0).standard_normal(size)
    g = np.random.default_rng(1).standard_normal(size) * 1e-3
    kwargs = dict(SPECS[algo][0]) if algo in SPECS else {"learning_rate": 1e-6}
    if algo == "esgd":
        import autograd.numpy as anp
        opt = dh.build(algo, lambda w: 0.5 * anp.sum(w * w), p, **kwargs)
    else:
        opt = dh.build(algo, None, p, **kwargs)
    opt.apply(g)                      # the first update allocates the spares and scratch
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    opt.apply(g)
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    held = sum(a.nbytes for a in opt._buffers())
    n_state = STATE_BUFFERS.get(algo)
    bound = None if n_state is None else 2 * n_state + 1.25
    return {"algorithm": algo, "held_x": held / p.nbytes, "bound_x": bound,
            "peak_x": peak / p.nbytes, "peak_bytes": peak,
            "met": None if bound is None else held / p.nbytes <= bound}


def print_memory(rows, size):
    print(f"memory held by the optimizer and peak allocation of one apply, one float64 leaf of "
          f"{size:,} elements (multiples of the params' bytes):")
    print(f"  {'algorithm':10s} {'held':>6s} {'target':>7s} {'met':>4s} {'apply peak':>11s}")
    for r in rows:
        print(f"  {r['algorithm']:10s} {r['held_x']:6.2f} {fmt(r['bound_x']):>7s} "
              f"{('yes' if r['met'] else 'NO') if r['met'] is not None else '-':>4s} "
              f"{r['peak_x']:11.4f}  ({r['peak_bytes'] / 1024:.0f} KiB)"
              + ("  autograd's arrays for the Hessian-vector product" if r["algorithm"] == "esgd"
                 else ""), flush=True)


# -- 3. scaling -----------------------------------------------------------------
def split(n_leaves, total, seed=0):
    rng = np.random.default_rng(seed)
    sizes = [total // n_leaves + (i < total % n_leaves) for i in range(n_leaves)]
    return {f"leaf{i}": rng.standard_normal(s) for i, s in enumerate(sizes)}


def bench_scaling_leaves(torch, cfg, counts, total):
    rows = []
    for n in counts:
        params = split(n, total)
        grads = {k: np.random.default_rng(1).standard_normal(v.shape) * 1e-3
                 for k, v in params.items()}
        plain = {k: v.copy() for k, v in params.items()}
        packed = dh.pack({k: v.copy() for k, v in params.items()})
        o1, o2 = dh.build("adam", None, plain, **SPECS["adam"][0]), \
            dh.build("adam", None, packed, **SPECS["adam"][0])
        cands = [Candidate("ours", lambda: o1.apply(grads)),
                 Candidate("packed", lambda: o2.apply(grads))]
        if torch is not None:
            tensors = [torch.tensor(v).requires_grad_(True) for v in params.values()]
            for t, gv in zip(tensors, grads.values()):
                t.grad = torch.tensor(gv)
            topt = torch.optim.Adam(tensors, lr=1e-6, fused=True)
            cands.append(Candidate("torch", topt.step))
        measure(cands, cfg)
        rows.append({"leaves": n, "elements": total,
                     **{f"{c.label}_us": (c.best * 1e6 if c.best else None) for c in cands}})
    return rows


def bench_scaling_size(torch, cfg, sizes):
    rows = []
    for size in sizes:
        p = np.random.default_rng(0).standard_normal(size)
        g = np.random.default_rng(1).standard_normal(size) * 1e-3
        opt = dh.build("adam", None, p, **SPECS["adam"][0])
        cands = [Candidate("ours", lambda: opt.apply(g))]
        if torch is not None:
            t = torch.tensor(p.copy()).requires_grad_(True)
            t.grad = torch.tensor(g)
            topt = torch.optim.Adam([t], lr=1e-6, fused=True)
            cands.append(Candidate("torch", topt.step))
        measure(cands, cfg)
        rows.append({"size": size, **{f"{c.label}_us": (c.best * 1e6 if c.best else None)
                                      for c in cands}})
    return rows


def print_scaling(leaf_rows, size_rows):
    total = leaf_rows[0]["elements"] if leaf_rows else 0
    print(f"(a) Adam, {total:,} float64 elements split into n leaves: us per update "
          "(growth from the fewest leaves in brackets)")
    print(f"  {'leaves':>7s} {'ours':>16s} {'packed':>16s} {'torch fused':>16s}")
    first = leaf_rows[0]
    for r in leaf_rows:
        cells = []
        for key in ("ours_us", "packed_us", "torch_us"):
            v, v0 = r.get(key), first.get(key)
            cells.append("-" if v is None else f"{v:9.0f} ({v / v0:4.1f}x)")
        print(f"  {r['leaves']:7d} {cells[0]:>16s} {cells[1]:>16s} {cells[2]:>16s}")
    print("(b) Adam, one float64 leaf: us per update and ns per element")
    print(f"  {'elements':>10s} {'ours us':>10s} {'ns/elem':>8s} {'torch us':>10s} {'ns/elem':>8s}"
          f" {'ours/torch':>10s}")
    for r in size_rows:
        o, t = r.get("ours_us"), r.get("torch_us")
        print(f"  {r['size']:10,d} {fmt(o, '.1f'):>10s} {fmt(o and o * 1e3 / r['size'], '.2f'):>8s} "
              f"{fmt(t, '.1f'):>10s} {fmt(t and t * 1e3 / r['size'], '.2f'):>8s} "
              f"{fmt(ratio(o, t)):>10s}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats of short blocks")
    parser.add_argument("--algos", default=None, help="comma-separated algorithms")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--size", type=int, default=10_000_000, help="elements of the leaf")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the pipeline rows")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--json", metavar="PATH", default=None)
    args = parser.parse_args(argv)
    cfg = argparse.Namespace(repeats=args.repeats or (3 if args.quick else 5),
                             block=0.1 if args.quick else 0.25,
                             warm_calls=2, warmup=0.0, min_calls=1, max_calls=200)
    algos = [a.strip() for a in args.algos.split(",")] if args.algos else list(SPECS)
    dtypes = [np.dtype(d.strip()).type for d in args.dtypes.split(",")]
    torch, missing = load_torch(args.no_torch)
    started = time.perf_counter()
    print(f"npdownhill on large leaves: one apply(g) on a leaf of {args.size:,} elements")
    print(f"python {platform.python_version()}, numpy {np.__version__}, npdownhill "
          f"{dh.__version__}, torch {torch.__version__ + ' (1 thread)' if torch else '-'}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; {platform.machine()}, "
          f"{os.cpu_count()} CPUs")
    print(f"timing: min over {cfg.repeats} interleaved blocks of ~{cfg.block} s")
    if missing:
        print(f"note: {missing}: torch columns are '-', the targets are not judged")
    print(flush=True)
    result = {"benchmark": "large_leaves", "size": args.size, "target": TARGET,
              "versions": {"numpy": np.__version__, "npdownhill": dh.__version__,
                           "torch": torch.__version__ if torch else None}}
    rows = []
    for dtype in dtypes:
        for algo in algos:
            print(f"  timing {algo} {np.dtype(dtype).name} ...", file=sys.stderr, flush=True)
            rows.append(bench_large(algo, algo, {}, None, dtype, args.size, torch, cfg))
            gc.collect()
        if not args.no_pipeline:
            for label, algo, extra, prepare in PIPELINE:
                if algos == list(SPECS) or algo in algos:
                    print(f"  timing {label} {np.dtype(dtype).name} ...", file=sys.stderr,
                          flush=True)
                    rows.append(bench_large(algo, label, extra, prepare, dtype, args.size,
                                            torch, cfg))
                    gc.collect()
    print_large(rows)
    judged = [r for r in rows if r["target_met"] is not None and r["row"] in SPECS]
    if judged:
        worst = max(judged, key=lambda r: r["ratio"])
        print(f"target ours/torch <= {TARGET}: met by {sum(r['target_met'] for r in judged)} of "
              f"{len(judged)} algorithm rows; worst {worst['row']} {worst['dtype']} "
              f"{worst['ratio']:.2f}")
    result["large"] = rows
    if not args.no_memory:
        print()
        memory = [bench_memory(a, min(args.size, 2_000_000)) for a in algos + ["esgd"]
                  if a in STATE_BUFFERS]
        print_memory(memory, min(args.size, 2_000_000))
        result["memory"] = memory
    if not args.no_scaling:
        print()
        print("  timing the scaling tables ...", file=sys.stderr, flush=True)
        leaf_rows = bench_scaling_leaves(torch, cfg, (4, 40, 400, 4000), 400_000)
        size_rows = bench_scaling_size(torch, cfg, (100, 1_000, 10_000, 100_000, 1_000_000,
                                                    10_000_000))
        print_scaling(leaf_rows, size_rows)
        result["scaling"] = {"leaves": leaf_rows, "size": size_rows}
    print(f"\n({time.perf_counter() - started:.0f} s)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1, default=float)
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
