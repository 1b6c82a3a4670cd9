r"""
What gradient clipping and gradient noise do
============================================

Two options that every algorithm takes, applied to the gradient before the rule sees
it (see :class:`npdownhill.Optimizer`):

* **clipping** bounds the gradient: ``clip_gradients=c`` rescales the whole gradient to a
  norm of at most ``c``; ``max_gradient_elem=c`` clips each element to ``[-c, c]``;
* **noise** adds :math:`N(0, \sigma_t^2)` to each gradient element, with
  :math:`\sigma_t` = ``gradient_noise_scale`` :math:`/ (1 + t)^{d/2}`, ``d`` =
  ``gradient_noise_decay``.
"""

# %%
# Clipping: gradient descent on a steep wall
# ------------------------------------------
# From :math:`(-1.5, -0.5)` Rosenbrock's gradient has a norm near 1700. Plain gradient
# descent with learning rate 0.002 jumps far out, the loss overflows, and the optimizer
# refuses the step with :class:`~npdownhill.NonFiniteError` (nothing non-finite ever
# reaches the parameters). With the gradient clipped, the same learning rate walks down
# the wall and along the valley.
import matplotlib.pyplot as plt
import numpy as np

import npdownhill as dh
from npdownhill import plot, problems

rosen = problems.rosenbrock()
START, LR, STEPS = (-1.5, -0.5), 2e-3, 1000


def run(problem, start, steps, **hyper):
    """The points plain SGD visits, up to a NonFiniteError."""
    x = np.array(start, dtype=float)
    opt = dh.SGD(problem, x, **hyper)
    points = [x.copy()]
    for _ in range(steps):
        try:
            opt.step()
        except dh.NonFiniteError as error:
            print("plain SGD:", error)
            break
        points.append(x.copy())
    return np.array(points)


with np.errstate(over="ignore"):       # the diverging run overflows on purpose
    plain = run(rosen, START, STEPS, learning_rate=LR)
print(f"plain SGD made {len(plain) - 1} updates; its last point: {plain[-1]}")
clipped = {
    "clip_gradients=5 (global norm)": ("sgd", {"learning_rate": LR, "clip_gradients": 5.0}),
    "max_gradient_elem=5": ("sgd", {"learning_rate": LR, "max_gradient_elem": 5.0}),
}
fig, ax = plt.subplots(figsize=(7, 6), layout="constrained")
plot.trajectories(rosen, clipped, start=START, steps=STEPS, ax=ax)
ax.plot(plain[:3, 0], plain[:3, 1], "x-", color="red", label="plain: leaves the picture")
ax.legend(loc="upper left")
ax.set_title(f"SGD, learning rate {LR}, from {START}")
for label, spec in clipped.items():
    end = plot.path(rosen, spec, start=START, steps=STEPS)[-1]
    print(f"{label}: loss {rosen(end):.3g} at {np.round(end, 3)} after {STEPS} updates")

# %%
# Noise: leaving a point where the gradient vanishes
# --------------------------------------------------
# Himmelblau's function has a local maximum near :math:`(-0.27, -0.92)`. Started there,
# gradient descent never moves: the gradient is zero. Gradient noise pushes it off, and
# it rolls down to a minimum. Each seed takes its own path; with these settings all four
# end in the bottom-left minimum.
himmelblau = problems.himmelblau()
top = himmelblau.maxima[0]
runs = {"no noise": ("sgd", {"learning_rate": 0.01})}
for seed in range(4):
    runs[f"noise 3, seed {seed}"] = ("sgd", {"learning_rate": 0.01,
                                             "gradient_noise_scale": 3.0, "rng": seed})
fig, ax = plt.subplots(figsize=(7, 6), layout="constrained")
plot.trajectories(himmelblau, runs, start=top, steps=300, ax=ax)
ax.set_title("SGD started on Himmelblau's maximum")
still = plot.path(himmelblau, runs["no noise"], start=top, steps=300)
print(f"without noise, after 300 updates: moved {np.linalg.norm(still[-1] - top):.2g}")

# %%
# The price of noise, and why it decays
# -------------------------------------
# Constant noise keeps shaking the parameters at the minimum: the loss stops falling at a
# level set by the noise. Decaying noise (``gradient_noise_decay=1``: :math:`\sigma_t`
# falls as :math:`1 / \sqrt{1 + t}`) still gets the run off the maximum, and then lets
# it settle far lower.
fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
for label, decay in [("constant noise", 0.0), ("decaying noise", 1.0)]:
    points = plot.path(himmelblau, ("sgd", {"learning_rate": 0.01, "gradient_noise_scale": 3.0,
                                           "gradient_noise_decay": decay, "rng": 0}),
                       start=top, steps=2000)
    values = himmelblau(points.T)
    ax.semilogy(np.maximum(values, 1e-20), label=label)
    print(f"{label}: loss after 2000 updates {values[-1]:.2g}")
ax.set_xlabel("update")
ax.set_ylabel("loss")
ax.legend()

plt.show()
