"""
Every algorithm racing on Himmelblau's function
===============================================

Himmelblau's function :math:`f(x, y) = (x^2 + y - 11)^2 + (x + y^2 - 7)^2` has four
minima of value 0, a local maximum near :math:`(-0.27, -0.92)` and four saddle points
between the minima. Every registered algorithm starts at :math:`(0, -1)`, close to the
maximum, and makes at most 300 updates, each with a learning rate picked by a coarse
search; the quasi-Newton methods use their defaults.

Near the maximum the ground is almost flat and slopes towards two different minima, so
*which* minimum an algorithm reaches depends on its first steps, and those differ: plain
gradient descent follows the steepest slope, Adam's first step has the same length in
every coordinate, a sign-based rule such as RProp moves along the diagonals.
"""

# %%
# The problem and the competitors
# -------------------------------
import matplotlib.pyplot as plt
import numpy as np

import npdownhill as dh
from npdownhill import plot, problems

himmelblau = problems.himmelblau()
print(himmelblau)
print("minima:", np.round(himmelblau.minima, 3).tolist())

STEPS = 300
START = (0.0, -1.0)
GROUPS = {
    "gradient descent, momentum, Lion": {
        "sgd": ("sgd", {"learning_rate": 0.01}),
        "momentum": ("momentum", {"learning_rate": 3e-3, "momentum": 0.9}),
        "nag": ("nag", {"learning_rate": 3e-3, "momentum": 0.9}),
        "lion": ("lion", {"learning_rate": 0.01}),
        "schedule_free_sgd": ("schedule_free_sgd", {"learning_rate": 0.01}),
    },
    "per-coordinate step sizes": {
        "adagrad": ("adagrad", {"learning_rate": 1.0}),
        "adadelta": ("adadelta", {"learning_rate": 3.0}),
        "rmsprop": ("rmsprop", {"learning_rate": 0.03}),
        "rprop": ("rprop", {"learning_rate": 0.01}),
        "esgd": ("esgd", {"learning_rate": 0.1, "rng": 0}),
    },
    "the Adam family and its successors": {
        "adam": ("adam", {"learning_rate": 0.1}),
        "adamax": ("adamax", {"learning_rate": 0.3}),
        "amsgrad": ("amsgrad", {"learning_rate": 0.1}),
        "nadam": ("nadam", {"learning_rate": 0.1}),
        "adamw": ("adamw", {"learning_rate": 0.1}),
        "radam": ("radam", {"learning_rate": 0.03}),
        "yogi": ("yogi", {"learning_rate": 0.1}),
        "adabelief": ("adabelief", {"learning_rate": 0.1}),
        "prodigy": ("prodigy", {"learning_rate": 1.0}),
        "schedule_free_adamw": ("schedule_free_adamw", {"learning_rate": 0.3}),
    },
    "quasi-Newton": {"lbfgs": "lbfgs", "bfgs": "bfgs"},
}
assert sorted(n for g in GROUPS.values() for n in g) == dh.algorithms()   # every one

# %%
# Their paths
# -----------
# The four gold stars are the minima. Each line's data are the points visited.
fig, axes = plt.subplots(2, 2, figsize=(11, 10), layout="constrained")
paths = {}
for ax, (title, algorithms) in zip(axes.flat, GROUPS.items()):
    plot.trajectories(himmelblau, algorithms, start=START, steps=STEPS, ax=ax)
    ax.set_title(title)
    for line in ax.get_lines():
        if line.get_label() in algorithms:
            paths[line.get_label()] = line.get_xydata()
fig.suptitle(f"Himmelblau from {START}: at most {STEPS} updates each")

# %%
# How fast the loss falls
# -----------------------
# A loss of exactly 0 is drawn at 1e-20.
fig, ax = plt.subplots(figsize=(9, 5.5), layout="constrained")
styles = ["-", "--", ":", "-."]
for i, (name, points) in enumerate(paths.items()):
    values = np.maximum(himmelblau(points.T), 1e-20)
    ax.semilogy(values, styles[i % 4], label=name)
ax.set_xlabel("update")
ax.set_ylabel("loss")
ax.set_ylim(1e-20, 1e3)
ax.legend(ncol=4, fontsize="small")
ax.set_title("Himmelblau: loss against updates")

# %%
# Which minimum each one found
# ----------------------------
print(f"{'algorithm':10s} {'updates':>7s} {'final loss':>11s}  nearest minimum")
for name, points in sorted(paths.items(), key=lambda kv: himmelblau(kv[1][-1])):
    end = points[-1]
    nearest = min(himmelblau.minima, key=lambda m: np.linalg.norm(end - m))
    print(f"{name:10s} {len(points) - 1:7d} {himmelblau(end):11.3g}  "
          f"({nearest[0]:.3f}, {nearest[1]:.3f})")

plt.show()
