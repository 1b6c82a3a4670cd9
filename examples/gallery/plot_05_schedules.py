"""
The shapes of the built-in schedules
====================================

A schedule is any callable ``f(step) -> float``, ``step`` counting the updates already
applied; ``learning_rate`` and ``momentum`` accept one wherever they accept a number.
:mod:`npdownhill.schedules` has the usual ones; :func:`npdownhill.plot.schedule` draws
any of them over a number of steps.
"""

# %%
# Each schedule over 1000 steps
# -----------------------------
import matplotlib.pyplot as plt
import numpy as np

from npdownhill import plot, schedules

STEPS = 1000
shapes = {
    "constant(0.1)": schedules.constant(0.1),
    "exponential_decay(0.1, 0.1, 500)": schedules.exponential_decay(0.1, 0.1, 500),
    "exponential_decay(0.1, 0.1, 250, staircase=True)": schedules.exponential_decay(
        0.1, 0.1, 250, staircase=True),
    "inverse_time_decay(0.1, 1, 100)": schedules.inverse_time_decay(0.1, 1.0, 100),
    "piecewise_constant": schedules.piecewise_constant([300, 700], [0.1, 0.03, 0.01]),
    "polynomial_decay(0.1, 800, power=2)": schedules.polynomial_decay(0.1, 800, end=0.001,
                                                                      power=2.0),
    "cosine_decay(0.1, 1000)": schedules.cosine_decay(0.1, STEPS),
    "cosine_restarts(0.1, 100) (SGDR)": schedules.cosine_restarts(0.1, 100, t_mul=2.0),
    "linear_warmup(cosine_decay, 200)": schedules.linear_warmup(
        schedules.cosine_decay(0.1, STEPS - 200), 200),
    "one_cycle(0.1, 1000)": schedules.one_cycle(0.1, STEPS),
}
fig, axes = plt.subplots(5, 2, figsize=(10, 13), sharex=True, layout="constrained")
for ax, (title, fn) in zip(axes.flat, shapes.items()):
    plot.schedule(fn, STEPS, ax=ax)
    ax.set_title(title, fontsize="medium")
    ax.get_legend().remove()          # the title says what it is
    ax.set_ylim(0, 0.11)
for ax in axes[:-1].flat:
    ax.set_xlabel("")

# %%
# A schedule's repr says what it is (and is the default label of
# :func:`~npdownhill.plot.schedule`):
for fn in shapes.values():
    print(repr(fn))

# %%
# ``reduce_on_plateau``: a schedule that listens
# ----------------------------------------------
# :func:`~npdownhill.schedules.reduce_on_plateau` does not depend on the step alone: the
# training driver tells it every validation loss through its ``on_validation(loss)``
# method, and it multiplies the value by ``factor`` after ``patience`` validations
# without improvement. Here we play the driver by hand, with a made-up validation loss
# that improves, stalls, improves again and stalls.
plateau = schedules.reduce_on_plateau(0.1, factor=0.5, patience=3)
fake_losses = np.concatenate([np.linspace(1.0, 0.5, 10), np.full(8, 0.5),
                              np.linspace(0.5, 0.3, 6), np.full(10, 0.3)])
values = []
for loss in fake_losses:            # one validation every 10 updates
    values.append(plateau(len(values) * 10))
    plateau.on_validation(loss)
fig, ax1 = plt.subplots(figsize=(8, 3.5), layout="constrained")
ax1.step(np.arange(len(values)), values, where="post", color="C0", label="learning rate")
ax1.set_xlabel("validation")
ax1.set_ylabel("learning rate", color="C0")
ax2 = ax1.twinx()
ax2.plot(fake_losses, "o", color="C1", markersize=3)
ax2.set_ylabel("validation loss (made up)", color="C1")
ax1.set_title("reduce_on_plateau(0.1, factor=0.5, patience=3)")

plt.show()
