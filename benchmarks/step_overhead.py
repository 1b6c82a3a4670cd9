#!/usr/bin/env python
"""Per-step overhead of npdownhill's optimizers on a tree of many small leaves.

What it measures
----------------
The time of one ``opt.apply(grads)`` (gradients supplied by the caller, the
update written into the param arrays in place) on the tree of the issue:
40 float64 leaves, ``layer0.W`` (10x10), ``layer0.b`` (10,), ... ``layer19.b``,
2200 elements in all. On leaves this small the arithmetic is negligible and
what is timed is the per-step overhead: Python calls, NumPy dispatch, one
call per leaf or one per buffer. For every algorithm it times, in one run:

* ``ours``        npdownhill on the plain dict (40 separate arrays);
* ``ours packed`` npdownhill on ``dh.pack(params)`` (40 views of one buffer);
* ``ours buffer`` the packed tree, with the gradients already written into
                  ``opt.gradient_buffer()``: nothing is gathered, exactly as
                  torch reads the ``.grad`` tensors where they are;
* ``torch``       the same rule in torch.optim on 40 float64 tensors whose
                  ``.grad`` is set, ``torch.set_num_threads(1)``, with
                  ``fused=True`` where torch accepts it on CPU, else
                  ``foreach=True``, else torch's default (the mode is printed);
* ``naive``       a plain per-leaf NumPy loop (``for p, g, m, v in zip(...)``)
                  for sgd, momentum, adam and rmsprop: what the flat-buffer
                  design is meant to beat.

A second table runs Adam on 4, 40 and 400 leaves holding 4200 elements in
total: the flat design's step should grow far more slowly with the number
of leaves than the naive loop's.

Timing: every candidate is warmed up, then timed in blocks of calls (a
block is about 0.1 s, at most 2000 calls) with ``time.perf_counter`` and the
garbage collector paused; the blocks of all candidates of a row are
interleaved (ours, packed, torch, naive, ours, ...) so that a slow spell of
the machine hits all of them, and the reported time is the MINIMUM over the
repeats (7 by default) of the mean time per call in a block. The gradients
are the same random arrays at every step and the learning rates are tiny,
so the values stay finite however many steps run (checked at the end).

How to run
----------
::

    python benchmarks/step_overhead.py            # full run, about a minute
    python benchmarks/step_overhead.py --quick    # a few seconds, noisier
    python benchmarks/step_overhead.py --algos adam,sgd --json out.json

``--no-torch`` behaves as if torch were not installed; without torch the
torch columns read ``-`` and the naive comparison still runs.

How to read it
--------------
``ours/torch``, ``packed/torch`` and ``buffer/torch`` are the time of our
step divided by torch's. The targets (issue 11): on the plain tree at most
0.20 for the Adam family and the adaptive rules and at most 0.50 for SGD,
Momentum and NAG; with ``gradient_buffer()`` at most 0.15 for every rule.
The ``target`` column says whether the plain and buffer variants meet
theirs (the packed tree has no target of its own). ``naive/ours`` is how many times slower the
per-leaf loop is. Raw microseconds depend on the machine, its load and the
library versions; compare the ratios within one run, not the times across
runs or machines. ESGD is listed but not timed against torch: it needs a
loss (each step takes a Hessian-vector product with autograd) and torch has
no such optimizer; its own time with a tiny loss is printed below the table.
"""

import argparse
import gc
import json
import os
import platform
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(ROOT, "npdownhill")):
    sys.path.insert(0, ROOT)   # benchmark this checkout, installed or not

import npdownhill as dh  # noqa: E402

#: Targets of ours/torch (issue 11): on the plain tree, and with gradient_buffer().
PLAIN_TARGET = {"sgd": 0.50, "momentum": 0.50, "nag": 0.50}
PLAIN_TARGET_OTHERS = 0.20
BUFFER_TARGET = 0.15


def plain_target(algo):
    return PLAIN_TARGET.get(algo, PLAIN_TARGET_OTHERS)
LR = 1e-6   # tiny: 10^5 steps with the same gradient move a param by about 0.1

# ours: keyword arguments for dh.build; torch: (class name, keyword arguments).
# Hyperparameters are chosen equal on both sides (our defaults differ from
# torch's in places; the values do not matter for timing, but the rule does).
SPECS = {
    "sgd": ({"learning_rate": LR},
            ("SGD", {"lr": LR})),
    "momentum": ({"learning_rate": LR, "momentum": 0.9},
                 ("SGD", {"lr": LR, "momentum": 0.9})),
    "nag": ({"learning_rate": LR, "momentum": 0.9, "nesterov": True},
            ("SGD", {"lr": LR, "momentum": 0.9, "nesterov": True})),
    "rmsprop": ({"learning_rate": LR, "rho": 0.99, "epsilon": 1e-8, "epsilon_inside": False},
                ("RMSprop", {"lr": LR, "alpha": 0.99, "eps": 1e-8})),
    "rprop": ({"learning_rate": LR, "rprop_increase": 1.2, "rprop_decrease": 0.5,
               "rprop_min_step": 1e-9, "rprop_max_step": 1e-5},
              ("Rprop", {"lr": LR, "etas": (0.5, 1.2), "step_sizes": (1e-9, 1e-5)})),
    "adagrad": ({"learning_rate": 1e-4, "epsilon": 1e-10, "epsilon_inside": False},
                ("Adagrad", {"lr": 1e-4, "eps": 1e-10})),
    "adadelta": ({"learning_rate": 1e-3, "rho": 0.9, "epsilon": 1e-6},
                 ("Adadelta", {"lr": 1e-3, "rho": 0.9, "eps": 1e-6})),
    "adam": ({"learning_rate": LR, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
             ("Adam", {"lr": LR, "betas": (0.9, 0.999), "eps": 1e-8})),
    "adamax": ({"learning_rate": LR, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8,
                "epsilon_in_max": True},
               ("Adamax", {"lr": LR, "betas": (0.9, 0.999), "eps": 1e-8})),
    "amsgrad": ({"learning_rate": LR, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
                ("Adam", {"lr": LR, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": True})),
    "nadam": ({"learning_rate": LR, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8,
               "momentum_decay": 4e-3},
              ("NAdam", {"lr": LR, "betas": (0.9, 0.999), "eps": 1e-8, "momentum_decay": 4e-3})),
    "adamw": ({"learning_rate": LR, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8,
               "weight_decay": 1e-2},
              ("AdamW", {"lr": LR, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2})),
    "radam": ({"learning_rate": LR, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
              ("RAdam", {"lr": LR, "betas": (0.9, 0.999), "eps": 1e-8})),
}
NEEDS_LOSS = {"esgd": {"learning_rate": LR}}


# -- trees -----------------------------------------------------------------
def layer_tree(n_layers=20, seed=0):
    """The issue's tree: n_layers times a 10x10 matrix and a 10-vector, float64."""
    rng = np.random.default_rng(seed)
    params = {}
    for i in range(n_layers):
        params[f"layer{i}.W"] = rng.standard_normal((10, 10))
        params[f"layer{i}.b"] = rng.standard_normal(10)
    return params


def split_tree(n_leaves, total, seed=0):
    """``n_leaves`` vectors with ``total`` elements between them (sizes differ by at most 1)."""
    rng = np.random.default_rng(seed)
    sizes = [total // n_leaves + (i < total % n_leaves) for i in range(n_leaves)]
    return {f"leaf{i}": rng.standard_normal(size) for i, size in enumerate(sizes)}


def grads_like(params, seed=1):
    rng = np.random.default_rng(seed)
    return {key: rng.standard_normal(value.shape) for key, value in params.items()}


def copy_tree(tree):
    return {key: value.copy() for key, value in tree.items()}


def flat(tree):
    return np.concatenate([np.ravel(value) for value in tree.values()])


# -- the naive baseline: one NumPy expression per leaf and per statement ----
class NaiveSGD:
    """``p -= lr g``, or classical momentum ``v = mu v - lr g; p += v``."""

    def __init__(self, params, lr, momentum=0.0):
        self.params = list(params.values())
        self.lr, self.momentum = lr, momentum
        self.velocity = [np.zeros_like(p) for p in self.params]

    def apply(self, grads):
        lr, mu = self.lr, self.momentum
        if mu:
            for p, g, v in zip(self.params, grads.values(), self.velocity):
                v *= mu
                v -= lr * g
                p += v
        else:
            for p, g in zip(self.params, grads.values()):
                p -= lr * g


class NaiveRMSProp:
    """torch's form: ``r = rho r + (1 - rho) g^2; p -= lr g / (sqrt(r) + eps)``."""

    def __init__(self, params, lr, rho=0.99, eps=1e-8):
        self.params = list(params.values())
        self.lr, self.rho, self.eps = lr, rho, eps
        self.r = [np.zeros_like(p) for p in self.params]

    def apply(self, grads):
        lr, rho, eps = self.lr, self.rho, self.eps
        for p, g, r in zip(self.params, grads.values(), self.r):
            r *= rho
            r += (1 - rho) * g * g
            p -= lr * g / (np.sqrt(r) + eps)


class NaiveAdam:
    """Algorithm 1 of Kingma & Ba, one leaf at a time."""

    def __init__(self, params, lr, b1=0.9, b2=0.999, eps=1e-8):
        self.params = list(params.values())
        self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def apply(self, grads):
        self.t += 1
        lr, b1, b2, eps, t = self.lr, self.b1, self.b2, self.eps, self.t
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        for p, g, m, v in zip(self.params, grads.values(), self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= lr / bc1 * m / (np.sqrt(v / bc2) + eps)


def build_naive(algo, params):
    if algo == "sgd":
        return NaiveSGD(params, LR)
    if algo == "momentum":
        return NaiveSGD(params, LR, momentum=0.9)
    if algo == "rmsprop":
        return NaiveRMSProp(params, LR, rho=0.99, eps=1e-8)
    if algo == "adam":
        return NaiveAdam(params, LR)
    return None


# -- ours and torch ----------------------------------------------------------
def build_ours(algo, params):
    return dh.build(algo, None, params, **SPECS[algo][0])


def load_torch(disabled):
    if disabled:
        return None, "torch disabled with --no-torch"
    try:
        import torch
    except ImportError as exc:
        return None, f"torch is not installed ({exc})"
    torch.set_num_threads(1)
    return torch, None


class TorchSide:
    """A torch.optim optimizer over float64 copies of a param tree, ``.grad`` set once."""

    def __init__(self, torch, cls, kwargs, params, grads):
        self.tensors = [torch.tensor(value).requires_grad_(True) for value in params.values()]
        for tensor, g in zip(self.tensors, grads.values()):
            tensor.grad = torch.tensor(g)
        self.opt = cls(self.tensors, **kwargs)
        self.step = self.opt.step

    def values(self):
        return [t.detach().numpy() for t in self.tensors]


def torch_factory(torch, algo, params, grads):
    """Pick the fastest mode torch accepts: fused, then foreach, then its default.

    Returns ``(mode, make, refused)`` where ``make(params, grads)`` builds a
    fresh :class:`TorchSide` and ``refused`` lists why faster modes failed.
    """
    name, kwargs = SPECS[algo][1]
    cls = getattr(torch.optim, name)
    refused = []
    for mode, extra in (("fused", {"fused": True}), ("foreach", {"foreach": True}), ("default", {})):
        try:   # some refusals only come at the first step
            trial = TorchSide(torch, cls, dict(kwargs, **extra), copy_tree(params), grads)
            trial.step()
            trial.step()
        except Exception as exc:  # noqa: BLE001 - any refusal means "try the next mode"
            refused.append(f"{mode}: {type(exc).__name__}: {str(exc).splitlines()[0][:100]}")
            continue
        return mode, (lambda p, g, kw=dict(kwargs, **extra): TorchSide(torch, cls, kw, p, g)), refused
    return None, None, refused


# -- timing ------------------------------------------------------------------
class Candidate:
    """One thing to time: a no-argument callable and its samples."""

    def __init__(self, label, fn):
        self.label, self.fn = label, fn
        self.calls = 0          # calls per block
        self.total_calls = 0    # every call made, warm-up included
        self.samples = []       # mean seconds per call of each block
        self.error = None

    @property
    def best(self):
        return min(self.samples) if self.samples else None

    def summary(self):
        return {"us": None if self.best is None else self.best * 1e6,
                "median_us": None if not self.samples else float(np.median(self.samples)) * 1e6,
                "samples_us": [s * 1e6 for s in self.samples],
                "calls_per_block": self.calls, "total_calls": self.total_calls,
                "error": self.error}


def _block(fn, n):
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n
    finally:
        if enabled:
            gc.enable()


def measure(candidates, cfg):
    """Warm up every candidate, then interleave ``cfg.repeats`` rounds of blocks.

    ``cfg`` has ``repeats``, ``block`` (seconds per block), ``warmup`` (seconds),
    ``min_calls`` and ``max_calls`` (per block), and optionally ``warm_calls``
    (at least this many warm-up calls, default 20).
    """
    for c in candidates:
        try:
            calls, start = 0, time.perf_counter()
            while calls < getattr(cfg, "warm_calls", 20) or time.perf_counter() - start < cfg.warmup:
                c.fn()
                calls += 1
            per_call = (time.perf_counter() - start) / calls
            c.total_calls += calls
            c.calls = int(min(cfg.max_calls, max(cfg.min_calls, round(cfg.block / per_call))))
        except Exception as exc:  # noqa: BLE001 - report it in the table, keep going
            c.error = f"{type(exc).__name__}: {exc}"
    for r in range(cfg.repeats):
        k = r % len(candidates)    # rotate who goes first in each round
        for c in candidates[k:] + candidates[:k]:
            if c.error:
                continue
            try:
                c.samples.append(_block(c.fn, c.calls))
                c.total_calls += c.calls
            except Exception as exc:  # noqa: BLE001
                c.error = f"{type(exc).__name__}: {exc}"


def displacement_gap(reference, other):
    """max |d_other - d_ref| / max |d_ref| for two displacements."""
    scale = np.max(np.abs(reference))
    return float(np.max(np.abs(other - reference)) / (scale if scale > 0 else 1.0))


def check_same_rule(algo, params, grads, make_torch, steps=10):
    """Run ours, torch and naive for a few steps from the same start; compare displacements.

    The start is the params scaled by 1e-3, so that the tiny displacements
    keep their precision (on params of size 1 they would round to the ulp).
    """
    params = {key: 1e-3 * value for key, value in params.items()}
    start = flat(params)
    ours_params = copy_tree(params)
    ours = build_ours(algo, ours_params)
    for _ in range(steps):
        ours.apply(grads)
    d_ours = flat(ours_params) - start
    gaps = {}
    if make_torch is not None:
        side = make_torch(copy_tree(params), grads)
        for _ in range(steps):
            side.step()
        d_torch = np.concatenate([v.ravel() for v in side.values()]) - start
        gaps["torch"] = displacement_gap(d_torch, d_ours)
    naive_params = copy_tree(params)
    naive = build_naive(algo, naive_params)
    if naive is not None:
        for _ in range(steps):
            naive.apply(grads)
        gaps["naive"] = displacement_gap(d_ours, flat(naive_params) - start)
    return gaps


def finite(arrays):
    return all(np.isfinite(a).all() for a in arrays)


# -- the benchmark -----------------------------------------------------------
def bench_algorithm(algo, torch, cfg):
    params, grads = layer_tree(), grads_like(layer_tree())
    row = {"algorithm": algo, "notes": []}
    mode, make_torch, refused = (None, None, [])
    if torch is not None:
        mode, make_torch, refused = torch_factory(torch, algo, params, grads)
        if mode is None:
            row["notes"].append("torch refused every mode")
    row["torch_mode"], row["torch_refused"] = mode, refused

    try:
        gaps = check_same_rule(algo, params, grads, make_torch)
    except Exception as exc:  # noqa: BLE001
        gaps = {}
        row["notes"].append(f"rule check failed: {type(exc).__name__}: {exc}")
    row["rule_gap"] = gaps
    for who, gap in gaps.items():
        if not gap <= 1e-6:
            row["notes"].append(f"{who} moves differently (rel. gap {gap:.1e} after 10 steps)")

    plain_params = copy_tree(params)
    ours = build_ours(algo, plain_params)
    packed_params = dh.pack(copy_tree(params))
    packed = build_ours(algo, packed_params)
    if getattr(getattr(packed, "layout", None), "packed", "?") is None:
        row["notes"].append("pack() not detected as packed")
    buffered_params = dh.pack(copy_tree(params))
    buffered = build_ours(algo, buffered_params)
    buffer = buffered.gradient_buffer()
    for key in buffer:                 # set once, like torch's .grad (no noise/clip to alter it)
        buffer[key][...] = grads[key]
    candidates = {"ours": Candidate("ours", lambda: ours.apply(grads)),
                  "packed": Candidate("packed", lambda: packed.apply(grads)),
                  "buffer": Candidate("buffer", lambda: buffered.apply(buffer))}
    arrays = {"ours": lambda: plain_params.values(), "packed": lambda: packed_params.values(),
              "buffer": lambda: buffered_params.values()}
    if make_torch is not None:
        side = make_torch(copy_tree(params), grads)
        candidates["torch"] = Candidate("torch", side.step)
        arrays["torch"] = side.values
    naive_params = copy_tree(params)
    naive = build_naive(algo, naive_params)
    if naive is not None:
        candidates["naive"] = Candidate("naive", lambda: naive.apply(grads))
        arrays["naive"] = lambda: naive_params.values()

    measure(list(candidates.values()), cfg)

    for key, c in candidates.items():
        row[key] = c.summary()
        if c.error:
            row["notes"].append(f"{key} failed: {c.error}")
    bad = [key for key, get in arrays.items() if not finite(get())]
    row["finite"] = not bad
    if bad:
        row["notes"].append("NON-FINITE values in " + ", ".join(bad))
    row["max_steps"] = max(c.total_calls for c in candidates.values())

    o, p, b = row["ours"]["us"], row["packed"]["us"], row["buffer"]["us"]
    t = row.get("torch", {}).get("us")
    row["ratio_buffer_torch"] = b / t if b and t else None
    row["target_buffer"] = (None if row["ratio_buffer_torch"] is None
                            else row["ratio_buffer_torch"] <= BUFFER_TARGET)
    n = row.get("naive", {}).get("us")
    row["ratio_ours_torch"] = o / t if o and t else None
    row["ratio_packed_torch"] = p / t if p and t else None
    row["ratio_naive_ours"] = n / o if n and o else None
    row["ratio_naive_packed"] = n / p if n and p else None
    row["target_plain"] = (None if row["ratio_ours_torch"] is None
                           else row["ratio_ours_torch"] <= plain_target(algo))
    return row


def bench_esgd(cfg):
    """ESGD with a tiny autograd loss; its time is not comparable with the others."""
    import autograd.numpy as anp

    def loss(params):
        return sum(0.5 * anp.sum(value ** 2) for value in params.values())

    params, grads = layer_tree(), grads_like(layer_tree())
    plain_params = copy_tree(params)
    packed_params = dh.pack(copy_tree(params))
    ours = dh.build("esgd", loss, plain_params, **NEEDS_LOSS["esgd"])
    packed = dh.build("esgd", loss, packed_params, **NEEDS_LOSS["esgd"])
    cands = [Candidate("ours", lambda: ours.apply(grads)),
             Candidate("packed", lambda: packed.apply(grads))]
    measure(cands, cfg)
    return {"algorithm": "esgd", "ours": cands[0].summary(), "packed": cands[1].summary(),
            "finite": finite(plain_params.values()) and finite(packed_params.values()),
            "note": "needs a loss, not comparable; each apply takes an autograd "
                    "Hessian-vector product, here of a tiny quadratic loss"}


def bench_scaling(torch, cfg, leaf_counts, total):
    rows = []
    for n_leaves in leaf_counts:
        params = split_tree(n_leaves, total)
        grads = grads_like(params)
        plain_params, packed_params, naive_params = (copy_tree(params), dh.pack(copy_tree(params)),
                                                     copy_tree(params))
        ours, packed = build_ours("adam", plain_params), build_ours("adam", packed_params)
        naive = build_naive("adam", naive_params)
        cands = {"ours": Candidate("ours", lambda: ours.apply(grads)),
                 "packed": Candidate("packed", lambda: packed.apply(grads)),
                 "naive": Candidate("naive", lambda: naive.apply(grads))}
        mode = None
        if torch is not None:
            mode, make_torch, _ = torch_factory(torch, "adam", params, grads)
            if make_torch is not None:
                side = make_torch(copy_tree(params), grads)
                cands["torch"] = Candidate("torch", side.step)
        measure(list(cands.values()), cfg)
        row = {"leaves": n_leaves, "elements": total, "torch_mode": mode}
        row.update({key: c.summary() for key, c in cands.items()})
        row["finite"] = finite(plain_params.values()) and finite(packed_params.values()) \
            and finite(naive_params.values())
        rows.append(row)
    return rows


# -- printing ----------------------------------------------------------------
def _mu():
    try:
        "µ".encode(sys.stdout.encoding or "ascii")
        return "µs"
    except (UnicodeEncodeError, LookupError):
        return "us"


def _num(x, fmt):
    return "-" if x is None else format(x, fmt)


def _yes(x):
    return "-" if x is None else ("yes" if x else "no")


def print_table(headers, rows, aligns):
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.rjust(w) if a == ">" else c.ljust(w)
                         for c, w, a in zip(cells, widths, aligns)).rstrip()
    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


def print_main(rows, esgd, us):
    headers = ["algorithm", f"ours {us}", f"packed {us}", f"buffer {us}", f"torch {us}",
               "torch mode", "ours/torch", "packed/torch", "buffer/torch", f"naive {us}",
               "naive/ours", f"target plain/buffer<={BUFFER_TARGET}", "notes"]
    aligns = ["<", ">", ">", ">", ">", "<", ">", ">", ">", ">", ">", "<", "<"]
    cells = []
    for r in rows:
        cells.append([r["algorithm"], _num(r["ours"]["us"], ".1f"), _num(r["packed"]["us"], ".1f"),
                      _num(r["buffer"]["us"], ".1f"),
                      _num(r.get("torch", {}).get("us"), ".1f"), r["torch_mode"] or "-",
                      _num(r["ratio_ours_torch"], ".3f"), _num(r["ratio_packed_torch"], ".3f"),
                      _num(r["ratio_buffer_torch"], ".3f"),
                      _num(r.get("naive", {}).get("us"), ".1f"), _num(r["ratio_naive_ours"], ".1f"),
                      f"{_yes(r['target_plain'])} (<={plain_target(r['algorithm']):.2f}) / "
                      f"{_yes(r['target_buffer'])}",
                      "; ".join(r["notes"])])
    if esgd is not None:
        cells.append(["esgd", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "- / -",
                      "needs a loss; not comparable (see below)"])
    print_table(headers, cells, aligns)


def print_scaling(rows, us):
    has_torch = any("torch" in r for r in rows)
    headers = ["leaves", "elements", f"ours {us}", f"packed {us}", f"naive {us}"]
    aligns = [">", ">", ">", ">", ">"]
    if has_torch:
        headers += [f"torch {us}", "torch mode"]
        aligns += [">", "<"]
    headers += ["naive/ours", "naive/packed"]
    aligns += [">", ">"]
    cells = []
    for r in rows:
        o, p, n = r["ours"]["us"], r["packed"]["us"], r["naive"]["us"]
        line = [str(r["leaves"]), str(r["elements"]), _num(o, ".1f"), _num(p, ".1f"), _num(n, ".1f")]
        if has_torch:
            line += [_num(r.get("torch", {}).get("us"), ".1f"), r["torch_mode"] or "-"]
        line += [_num(n / o if n and o else None, ".1f"), _num(n / p if n and p else None, ".1f")]
        cells.append(line)
    print_table(headers, cells, aligns)
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        growth = []
        for key in ("ours", "packed", "naive", "torch"):
            a, b = first.get(key, {}).get("us"), last.get(key, {}).get("us")
            if a and b:
                growth.append(f"{key} x{b / a:.1f}")
        print(f"growth from {first['leaves']} to {last['leaves']} leaves: " + ", ".join(growth))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="3 repeats of short blocks: a few seconds, noisier")
    parser.add_argument("--algos", default=None,
                        help="comma-separated algorithms (default: all of dh.algorithms())")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the results here")
    parser.add_argument("--no-torch", action="store_true", help="act as if torch were not installed")
    parser.add_argument("--repeats", type=int, default=None, help="blocks per candidate (default 7, quick 3)")
    parser.add_argument("--no-scaling", action="store_true", help="skip the leaf-count table")
    args = parser.parse_args(argv)

    cfg = argparse.Namespace(repeats=args.repeats or (3 if args.quick else 7),
                             block=0.02 if args.quick else 0.1,        # seconds per block
                             warmup=0.02 if args.quick else 0.05,      # seconds of warm-up
                             min_calls=5, max_calls=500 if args.quick else 2000)
    known = dh.algorithms()
    if args.algos:
        algos = [a.strip().lower() for a in args.algos.split(",") if a.strip()]
        unknown = [a for a in algos if a not in known]
        if unknown:
            parser.error(f"unknown algorithms {unknown}; known: {', '.join(known)}")
    else:   # the order, then whatever else is registered
        algos = [a for a in SPECS if a in known] + [a for a in known if a not in SPECS]
    untimed = [a for a in algos if a not in SPECS and a not in NEEDS_LOSS]
    if untimed:
        print(f"note: no benchmark spec for {untimed}; skipped", file=sys.stderr)

    torch, torch_missing = load_torch(args.no_torch)
    us = _mu()
    started = time.perf_counter()
    print("npdownhill step overhead: one apply(grads) on 40 float64 leaves "
          "(20 x [10x10 W, 10-vector b], 2200 elements)")
    print(f"python {platform.python_version()}, numpy {np.__version__}, npdownhill {dh.__version__}, "
          f"torch {torch.__version__ + ' (1 thread)' if torch else '-'}; {platform.machine()}, "
          f"{os.cpu_count()} CPUs")
    print(f"timing: min over {cfg.repeats} interleaved blocks of the mean time per call; "
          f"blocks of ~{cfg.block:g} s, at most {cfg.max_calls} calls")
    if torch_missing:
        print(f"note: {torch_missing}: torch columns are '-', the target is not evaluated; "
              "the naive comparison still runs")
    print(flush=True)

    rows = []
    for algo in algos:
        if algo in SPECS:
            print(f"  timing {algo} ...", file=sys.stderr, flush=True)
            rows.append(bench_algorithm(algo, torch, cfg))
    if "esgd" in algos:
        print("  timing esgd (with a tiny loss) ...", file=sys.stderr, flush=True)
    esgd = bench_esgd(cfg) if "esgd" in algos else None

    print_main(rows, esgd, us)
    if esgd is not None:
        print(f"esgd: {esgd['note']}: ours {_num(esgd['ours']['us'], '.0f')} {us}, "
              f"packed {_num(esgd['packed']['us'], '.0f')} {us} per apply")
    refused = [(r["algorithm"], r["torch_refused"]) for r in rows if r["torch_refused"]]
    if refused:
        print("torch modes refused (the next one was used):")
        for algo, reasons in refused:
            for reason in reasons:
                print(f"  {algo}: {reason}")

    scaling = None
    if not args.no_scaling:
        print()
        print("scaling with the number of leaves, Adam, 4200 elements in total:", flush=True)
        print("  timing the leaf-count table ...", file=sys.stderr, flush=True)
        scaling = bench_scaling(torch, cfg, (4, 40, 400), 4200)
        print_scaling(scaling, us)

    judged = [r for r in rows if r["target_plain"] is not None]
    n_plain = sum(bool(r["target_plain"]) for r in judged)
    n_buffer = sum(bool(r["target_buffer"]) for r in judged)
    all_finite = all(r["finite"] for r in rows) and (esgd is None or esgd["finite"]) \
        and (scaling is None or all(r["finite"] for r in scaling))
    most = max([r["max_steps"] for r in rows] or [0])
    print()
    print(f"all values finite at the end (up to {most} steps per optimizer): "
          f"{'yes' if all_finite else 'NO'}")
    elapsed = time.perf_counter() - started
    if judged:
        print(f"summary: the plain-tree target (ours/torch <= {PLAIN_TARGET_OTHERS}, or "
              f"{PLAIN_TARGET['sgd']} for sgd, momentum and nag) met by {n_plain} of "
              f"{len(judged)} algorithms; buffer/torch <= {BUFFER_TARGET} by {n_buffer} of "
              f"{len(judged)} ({elapsed:.0f} s)")
    else:
        speedups = [r["ratio_naive_ours"] for r in rows if r["ratio_naive_ours"]]
        print(f"summary: target not evaluated ({torch_missing or 'no torch timings'}); "
              + (f"ours is {min(speedups):.1f}x to {max(speedups):.1f}x faster than the naive loop "
                 if speedups else "")
              + f"({elapsed:.0f} s)")

    if args.json:
        result = {
            "benchmark": "step_overhead",
            "tree": {"leaves": 40, "elements": 2200, "dtype": "float64"},
            "target": {"plain": dict(PLAIN_TARGET, others=PLAIN_TARGET_OTHERS),
                       "buffer": BUFFER_TARGET},
            "config": {"repeats": cfg.repeats, "block_seconds": cfg.block,
                       "warmup_seconds": cfg.warmup, "max_calls": cfg.max_calls,
                       "quick": args.quick},
            "versions": {"python": platform.python_version(), "numpy": np.__version__,
                         "npdownhill": dh.__version__,
                         "torch": torch.__version__ if torch else None},
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
            "torch_missing": torch_missing,
            "algorithms": rows, "esgd": esgd, "scaling": scaling,
            "summary": {"judged": len(judged), "target_plain": n_plain,
                        "target_buffer": n_buffer, "all_finite": all_finite,
                        "seconds": elapsed},
        }
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
