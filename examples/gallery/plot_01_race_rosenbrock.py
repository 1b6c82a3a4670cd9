"""
Every algorithm racing down Rosenbrock's valley
===============================================

Rosenbrock's function :math:`f(x, y) = (1 - x)^2 + 100 (y - x^2)^2` has a narrow
curved valley whose floor falls gently towards the minimum at :math:`(1, 1)`. From the
customary start :math:`(-1.2, 1)` every registered algorithm makes at most 1000 updates,
each with a learning rate picked by a coarse search (powers of about 3) for a path
that gets far without blowing up. The quasi-Newton methods use their defaults and stop
when they converge.

First-order methods reach the valley floor quickly and then crawl along it; L-BFGS and
BFGS, which build a model of the curvature, finish in a few dozen steps.
"""

# %%
# The problem and the competitors
# -------------------------------
import matplotlib.pyplot as plt
import numpy as np

import npdownhill as dh
from npdownhill import plot, problems

rosen = problems.rosenbrock()
print(rosen)

STEPS = 1000
GROUPS = {
    "gradient descent, momentum, Lion": {
        "sgd": ("sgd", {"learning_rate": 1e-3}),
        "momentum": ("momentum", {"learning_rate": 1e-3, "momentum": 0.9}),
        "nag": ("nag", {"learning_rate": 1e-3, "momentum": 0.9}),
        "lion": ("lion", {"learning_rate": 3e-3}),
        "schedule_free_sgd": ("schedule_free_sgd", {"learning_rate": 0.003}),
    },
    "per-coordinate step sizes": {
        "adagrad": ("adagrad", {"learning_rate": 1.0}),
        "adadelta": ("adadelta", {"learning_rate": 1.0}),
        "rmsprop": ("rmsprop", {"learning_rate": 0.01}),
        "rprop": ("rprop", {"learning_rate": 0.01}),
        "esgd": ("esgd", {"learning_rate": 1.0, "rng": 0}),
    },
    "the Adam family and its successors": {
        "adam": ("adam", {"learning_rate": 0.1}),
        "adamax": ("adamax", {"learning_rate": 0.3}),
        "amsgrad": ("amsgrad", {"learning_rate": 0.1}),
        "nadam": ("nadam", {"learning_rate": 0.03}),
        "adamw": ("adamw", {"learning_rate": 0.1}),
        "radam": ("radam", {"learning_rate": 3e-3}),
        "yogi": ("yogi", {"learning_rate": 0.3}),
        "adabelief": ("adabelief", {"learning_rate": 0.3}),
        "prodigy": ("prodigy", {"learning_rate": 0.1}),
        "schedule_free_adamw": ("schedule_free_adamw", {"learning_rate": 0.3}),
    },
    "quasi-Newton": {"lbfgs": "lbfgs", "bfgs": "bfgs"},
}
assert sorted(n for g in GROUPS.values() for n in g) == dh.algorithms()   # every one

# %%
# Their paths
# -----------
# :func:`npdownhill.plot.trajectories` runs each algorithm from the same start and draws
# its path on the contours (the gold star is the minimum). Each line's data are the
# points it visited, which we keep for the next figure.
fig, axes = plt.subplots(2, 2, figsize=(11, 9.5), layout="constrained")
paths = {}
for ax, (title, algorithms) in zip(axes.flat, GROUPS.items()):
    plot.trajectories(rosen, algorithms, steps=STEPS, ax=ax)
    ax.set_title(title)
    for line in ax.get_lines():
        if line.get_label() in algorithms:
            paths[line.get_label()] = line.get_xydata()
fig.suptitle(f"Rosenbrock from (-1.2, 1): at most {STEPS} updates each")

# %%
# How fast the loss falls
# -----------------------
# The loss along each path (the problem evaluates many points at once: pass them
# stacked as ``(dim, k)``). A loss of exactly 0 is drawn at 1e-20.
fig, ax = plt.subplots(figsize=(9, 5.5), layout="constrained")
styles = ["-", "--", ":", "-."]
for i, (name, points) in enumerate(paths.items()):
    values = np.maximum(rosen(points.T), 1e-20)
    ax.semilogy(values, styles[i % 4], label=name)
ax.set_xlabel("update")
ax.set_ylabel("loss")
ax.set_ylim(1e-16, 1e3)
ax.legend(ncol=4, fontsize="small")
ax.set_title("Rosenbrock: loss against updates")

# %%
# The final scores
# ----------------
print(f"{'algorithm':10s} {'updates':>7s} {'final loss':>11s}  distance to (1, 1)")
for name, points in sorted(paths.items(), key=lambda kv: rosen(kv[1][-1])):
    end = points[-1]
    print(f"{name:10s} {len(points) - 1:7d} {rosen(end):11.3g}  "
          f"{np.linalg.norm(end - rosen.minima[0]):.3g}")

plt.show()
