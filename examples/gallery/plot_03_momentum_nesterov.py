r"""
Momentum and Nesterov momentum on an ill-conditioned bowl
=========================================================

A quadratic bowl :math:`f(x) = \frac12 x^T A x` whose eigenvalues run from 1 to
:math:`\kappa = 100` is a long narrow valley: a learning rate small enough for the steep
direction (below :math:`2 / \kappa`) makes gradient descent crawl along the flat one.
Momentum keeps a velocity :math:`v \leftarrow \mu v - \eta g` and moves by it;
Nesterov's form moves by :math:`\mu v - \eta g`, a look-ahead that damps the zig-zag
across the valley. All runs below use the same learning rate :math:`\eta = 1/\kappa`.
"""

# %%
# The bowl and three runs
# -----------------------
import matplotlib.pyplot as plt
import numpy as np

from npdownhill import plot, problems

KAPPA = 100
bowl = problems.ill_conditioned_quadratic(condition=KAPPA, angle=np.pi / 6)
print(bowl)
LR, STEPS = 1.0 / KAPPA, 100

runs = {
    "sgd": ("sgd", {"learning_rate": LR}),
    "momentum 0.9": ("momentum", {"learning_rate": LR, "momentum": 0.9}),
    "nesterov 0.9": ("nag", {"learning_rate": LR, "momentum": 0.9}),
}
fig, ax = plt.subplots(figsize=(7, 5.5), layout="constrained")
plot.trajectories(bowl, runs, steps=STEPS, ax=ax)
ax.set_xlim(-0.6, 1.6)
ax.set_ylim(-0.6, 1.2)
ax.set_aspect("equal")
ax.set_title(rf"$\kappa$ = {KAPPA}, learning rate 1/$\kappa$, {STEPS} updates")

# %%
# ``NAG`` is ``Momentum(nesterov=True)``
# --------------------------------------
# The ``nesterov`` option of any algorithm gives the same update as the ``nag`` rule:
# the two paths are identical, bit for bit.
nag = plot.path(bowl, runs["nesterov 0.9"], steps=STEPS)
flag = plot.path(bowl, ("momentum", {"learning_rate": LR, "momentum": 0.9, "nesterov": True}),
                 steps=STEPS)
print("identical paths:", np.array_equal(nag, flag))

# %%
# The loss along the way
# ----------------------
# With momentum tuned for this bowl (Polyak's heavy ball:
# :math:`\mu = ((\sqrt\kappa - 1) / (\sqrt\kappa + 1))^2` and
# :math:`\eta = 4 / (1 + \sqrt\kappa)^2`) the error shrinks by a constant factor per
# step; untuned, Nesterov's form still beats the classical one.
mu_tuned = ((np.sqrt(KAPPA) - 1) / (np.sqrt(KAPPA) + 1)) ** 2
lr_tuned = 4 / (1 + np.sqrt(KAPPA)) ** 2
curves = dict(runs, **{"heavy ball, tuned": ("momentum", {"learning_rate": lr_tuned,
                                                          "momentum": mu_tuned})})
fig, ax = plt.subplots(layout="constrained")
for label, spec in curves.items():
    points = plot.path(bowl, spec, steps=STEPS)
    ax.semilogy(bowl(points.T), label=label)
ax.set_xlabel("update")
ax.set_ylabel("loss")
ax.legend()

# %%
# How much momentum?
# ------------------
# The loss after 100 updates for a range of :math:`\mu`, at the same learning rate.
# For small :math:`\mu` the two forms behave alike. Classical momentum reaches the lowest
# loss, at its best :math:`\mu` (near 0.8 here), but above it the velocity overshoots
# across the valley and the loss climbs steeply; Nesterov's look-ahead corrects the
# overshoot, so its loss rises less (compare the printed values at :math:`\mu = 0.9`).
mus = np.linspace(0.0, 0.98, 25)
final = {"momentum": [], "nag": []}
for algo in final:
    for mu in mus:
        points = plot.path(bowl, (algo, {"learning_rate": LR, "momentum": mu}), steps=STEPS)
        final[algo].append(bowl(points[-1]))
fig, ax = plt.subplots(layout="constrained")
ax.semilogy(mus, final["momentum"], "o-", label="classical momentum")
ax.semilogy(mus, final["nag"], "s-", label="Nesterov")
ax.set_xlabel(r"momentum $\mu$")
ax.set_ylabel(f"loss after {STEPS} updates")
ax.legend()
at = int(np.argmin(np.abs(mus - 0.9)))
for algo, values in final.items():
    print(f"{algo:9s} best mu {mus[int(np.argmin(values))]:.2f}, loss {min(values):.2g}; "
          f"at mu {mus[at]:.2f}: loss {values[at]:.2g}")

plt.show()
