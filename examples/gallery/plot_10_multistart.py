r"""
Many starts for a multimodal fit, then the same on a Dask cluster
=================================================================

A quasi-Newton method finds *a* minimum: the one whose basin holds its start.
:func:`npdownhill.multistart` solves from many starts, sorts the results, counts the
distinct minima and writes the best into the parameters. Two lessons:
Himmelblau's function, with its four global minima, and a fit of two Gaussian peaks,
where a single start can lock onto one peak. Finally the same fits run on a Dask
cluster by changing one argument, ``executor``; the results are the same.
"""

# %%
# Himmelblau's four minima
# ------------------------
# Thirty random starts inside the plotting box: each L-BFGS fit ends in one of the four
# basins.
import autograd.numpy as anp
import matplotlib.pyplot as plt
import numpy as np

import npdownhill as dh
from npdownhill import plot, problems

himmelblau = problems.himmelblau()
x = np.zeros(2)
result = dh.multistart(himmelblau, x, 30, bounds=himmelblau.box[0], seed=1)
print(result)
for m in result.minima:
    print(f"minimum at ({m.x[0]:+.6f}, {m.x[1]:+.6f}), loss {m.fun:.1e}")

starts = np.random.default_rng(1).uniform(*himmelblau.box[0], size=(30, 2))   # the same draws
ends = np.array([np.ravel(r.x) for r in result.results])
ax = plot.contour(himmelblau)
ax.plot(starts[:, 0], starts[:, 1], "o", color="gray", markersize=4, label="starts")
ax.plot(ends[:, 0], ends[:, 1], "x", color="crimson", markersize=9, label="ends")
ax.legend(loc="lower right")
ax.set_title(f"Himmelblau: {result.n_minima} distinct minima from 30 starts")

# %%
# Two Gaussian peaks
# ------------------
# A spectrum with two overlapping peaks and noise. From a start with both centres on the
# same side, a fit can put both Gaussians on one peak (a local minimum); many starts find
# the global one.
rng = np.random.default_rng(3)
t = np.linspace(0, 10, 200)
truth = {"a1": 1.0, "m1": 3.5, "s1": 0.6, "a2": 0.7, "m2": 6.0, "s2": 0.9}


def peaks(p, t):
    return (p["a1"] * anp.exp(-0.5 * ((t - p["m1"]) / p["s1"]) ** 2)
            + p["a2"] * anp.exp(-0.5 * ((t - p["m2"]) / p["s2"]) ** 2))


y = peaks(truth, t) + 0.03 * rng.normal(size=t.size)


def loss(p, t, y):
    r = peaks(p, t) - y
    return 0.5 * (r * r).sum()


params = {k: np.array(1.0) for k in truth}
bounds = {"a1": (0.1, 2), "m1": (0, 10), "s1": (0.2, 2), "a2": (0.1, 2), "m2": (0, 10),
          "s2": (0.2, 2)}
fits = dh.multistart(loss, params, 24, args=(t, y), bounds=bounds, seed=0)
print(fits)
losses = [r.fun for r in fits.results]
print(f"final losses: best {losses[0]:.4f}, worst {losses[-1]:.4f}")
# the best fit has one Gaussian per peak (in either order)
print("centres found:", sorted([float(params["m1"]), float(params["m2"])]))

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
left.plot(t, y, ".", color="black", markersize=3, label="data")
left.plot(t, peaks(params, t), color="C1", label="best of 24 starts")
worst = fits.results[-1].x
left.plot(t, peaks(worst, t), "--", color="C3", label="a local minimum")
left.legend()
left.set_xlabel("t")
right.plot(np.arange(1, len(losses) + 1), losses, "o-")
right.set_yscale("log")
right.set_xlabel("fit, sorted by final loss")
right.set_ylabel("final loss")
right.set_title("every start's outcome")

# %%
# The same on a Dask cluster
# --------------------------
# Any ``concurrent.futures.Executor`` runs the fits; a Dask client's
# ``get_executor()`` sends the loss with cloudpickle, so the lambda below travels too.
# Here an in-process cluster; a real one only changes the address given to ``Client``.
# The starts come from the same seed in this process, so the results are the same.
try:
    from dask.distributed import Client, LocalCluster
except ImportError:                  # pip install "npdownhill[dask]"
    Client = None

if Client is not None:
    with LocalCluster(n_workers=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        remote = dh.multistart(lambda p: himmelblau(p), np.zeros(2), 30,
                               bounds=himmelblau.box[0], seed=1,
                               executor=client.get_executor())
    same = [r.fun for r in remote.results] == [r.fun for r in result.results]
    print(f"on Dask: {remote}; the same results as above: {same}")
    assert same
