"""
Learning curves with and without a learning-rate schedule
=========================================================

Minibatch SGD on a softmax classifier: three classes of overlapping Gaussian blobs
(:func:`npdownhill.problems.blobs`) plus eight features of pure noise. The minibatch
gradients are noisy, and with a constant learning rate the loss never settles: it keeps
bouncing at a level the rate sets. A schedule that lowers the rate lowers that level:
a step decay (:class:`~npdownhill.schedules.PiecewiseConstant`) at once at each step, a
cosine decay (:class:`~npdownhill.schedules.CosineDecay`) gradually.
"""

# %%
# Data and model
# --------------
import autograd.numpy as anp
import matplotlib.pyplot as plt
import numpy as np

import npdownhill as dh
from npdownhill import plot, problems, schedules

X, y = problems.blobs(n_samples=900, centers=3, spread=2.5, seed=1)
X = np.hstack([X, np.random.default_rng(0).normal(size=(900, 8))])   # 8 noise features
X_train, y_train, X_valid, y_valid = X[:600], y[:600], X[600:], y[600:]


def loss(p, X, y):
    """Mean cross-entropy of a softmax regression."""
    z = anp.dot(X, p["w"]) + p["b"]
    z = z - anp.max(z, axis=1, keepdims=True)
    log_p = z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True))
    return -anp.mean(log_p[anp.arange(len(y)), y])


# %%
# Three runs
# ----------
# Same start, same data order (``rng=0``), 40 epochs of 60 minibatches, validated after
# every epoch. Only the learning rate differs.
EPOCHS, BATCH = 40, 10
UPDATES = EPOCHS * len(X_train) // BATCH
rates = {
    "constant 0.5": 0.5,
    "step decay: 0.5, 0.05, 0.005": schedules.piecewise_constant(
        boundaries=[UPDATES // 3, 2 * UPDATES // 3], values=[0.5, 0.05, 0.005]),
    "cosine decay from 0.5": schedules.cosine_decay(0.5, decay_steps=UPDATES),
}
results = {}
for label, rate in rates.items():
    params = {"w": np.zeros((X.shape[1], 3)), "b": np.zeros(3)}
    results[label] = dh.minimize(
        loss, params, [X_train, y_train], [X_valid, y_valid], algo="sgd",
        learning_rate=rate, batch_size=BATCH, max_epochs=EPOCHS, validate_every=1,
        patience=EPOCHS, rng=0, progress=False)
    print(f"{label:30s} best validation loss {results[label].best_loss:.4f} "
          f"at epoch {results[label].best_epoch}")

# %%
# The learning curves
# -------------------
# :func:`npdownhill.plot.history` draws columns of a run's history; here the training
# loss (the mean over each epoch's minibatches) and the validation loss, one panel per
# run, on shared axes.
fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True, layout="constrained")
for ax, (label, result) in zip(axes, results.items()):
    plot.history(result, keys=("train.loss", "valid.loss"), logy=False, ax=ax)
    ax.set_title(label)
axes[0].set_ylim(0.4, 0.9)

# %%
# The validation losses together, and the rate each run used (the history's
# ``train.learning_rate`` column holds the rate of each epoch's last update).
fig, (ax, ax_rate) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
for label, result in results.items():
    h = result.history
    ax.plot(h["epoch"], h["valid.loss"], label=label)
    ax_rate.plot(h["epoch"], h["train.learning_rate"], label=label)
ax.set_ylim(0.44, 0.7)
ax.set_xlabel("epoch")
ax.set_ylabel("validation loss")
ax.legend()
ax_rate.set_xlabel("epoch")
ax_rate.set_ylabel("learning rate")
ax_rate.legend()

# %%
# The best validation losses (printed above) are close, but only the decayed runs end
# *there*: the constant rate's last epochs are as noisy as its first. (On this small
# problem a small constant rate would settle too; a schedule lets the run start with a
# rate large enough to move fast and still end settled.)
plt.show()
