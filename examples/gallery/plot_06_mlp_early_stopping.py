"""
An MLP classifier with early stopping
=====================================

A small neural network with two hidden layers of 64 units learns three overlapping
classes from only 60 training samples, so it soon starts to memorise them: the training
loss keeps falling while the loss on 400 held-out samples turns up. The driver validates
every 5 epochs, tolerates ``patience=10`` validations in a row without improvement, then
stops, and puts the parameters of the best validation back into your arrays.
"""

# %%
# Data and network
# ----------------
import autograd.numpy as anp
import matplotlib.pyplot as plt
import numpy as np

import npdownhill as dh
from npdownhill import plot, problems

X, y = problems.blobs(n_samples=460, centers=3, spread=2.2, seed=3)
mean, std = X[:60].mean(axis=0), X[:60].std(axis=0)
X = (X - mean) / std                                   # scaled by the training statistics
X_train, y_train, X_valid, y_valid = X[:60], y[:60], X[60:], y[60:]

HIDDEN = 64
rng = np.random.default_rng(0)
params = {
    "W1": rng.normal(size=(2, HIDDEN)) / np.sqrt(2), "b1": np.zeros(HIDDEN),
    "W2": rng.normal(size=(HIDDEN, HIDDEN)) / np.sqrt(HIDDEN), "b2": np.zeros(HIDDEN),
    "W3": rng.normal(size=(HIDDEN, 3)) / np.sqrt(HIDDEN), "b3": np.zeros(3),
}


def logits(p, X):
    h = anp.tanh(anp.dot(X, p["W1"]) + p["b1"])
    h = anp.tanh(anp.dot(h, p["W2"]) + p["b2"])
    return anp.dot(h, p["W3"]) + p["b3"]


def loss(p, X, y):
    """Mean cross-entropy."""
    z = logits(p, X)
    z = z - anp.max(z, axis=1, keepdims=True)
    log_p = z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True))
    return -anp.mean(log_p[anp.arange(len(y)), y])


def accuracy(p, X, y):
    return np.mean(np.argmax(logits(p, X), axis=1) == y)


# %%
# Train with early stopping
# -------------------------
# A callback keeps a copy of the parameters after every epoch, to compare the last ones
# with what the run leaves in ``params``.
last = {}


def keep_last(info):
    last.update({name: value.copy() for name, value in params.items()})


result = dh.minimize(loss, params, [X_train, y_train], [X_valid, y_valid], algo="adam",
                     learning_rate=0.01, batch_size=20, max_epochs=1000, validate_every=5,
                     patience=10, monitors={"accuracy": accuracy}, callback=keep_last,
                     rng=0, progress=False)
print(result.message)
print(f"stopped by {result.stop!r} after {result.epochs} epochs; best epoch {result.best_epoch}")

# %%
# The learning curves
# -------------------
# The dashed line marks the best validation, the epoch whose parameters are kept.
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
plot.history(result, keys=("train.loss", "valid.loss"), ax=ax_loss)
plot.history(result, keys=("train.accuracy", "valid.accuracy"), logy=False, ax=ax_acc)
for ax in (ax_loss, ax_acc):
    ax.axvline(result.best_epoch, color="gray", linestyle="--")
ax_loss.set_title("loss: the validation loss turns up")
ax_acc.set_title("accuracy")

# %%
# Your arrays hold the best parameters
# ------------------------------------
# ``params`` now scores the best validation loss again, not the last epoch's.
# (The run validates in batches of 20 and averages them; the single full-batch
# evaluation here agrees up to rounding.)
best_now = loss(params, X_valid, y_valid)
last_loss = loss(last, X_valid, y_valid)
print(f"validation loss of params now:    {best_now:.6f}  (result.best_loss {result.best_loss:.6f})")
print(f"validation loss of the last epoch: {last_loss:.6f}  (result.valid['loss'] "
      f"{result.valid['loss']:.6f})")
print(f"validation accuracy: best {accuracy(params, X_valid, y_valid):.3f}, "
      f"last {accuracy(last, X_valid, y_valid):.3f}")
assert np.isclose(best_now, result.best_loss) and best_now < last_loss

# %%
# What the two networks draw
# --------------------------
# Decision regions of the kept (best) parameters and of the last epoch's, with the
# training samples on top: the overfitted network bends its borders around single points.
gx, gy = np.meshgrid(np.linspace(-3, 3, 200), np.linspace(-3, 3, 200))
grid = np.column_stack([gx.ravel(), gy.ravel()])
fig, axes = plt.subplots(1, 2, figsize=(11, 5), sharey=True, layout="constrained")
for ax, (title, p) in zip(axes, [(f"kept: epoch {result.best_epoch}", params),
                                 (f"last: epoch {result.epochs}", last)]):
    regions = np.argmax(logits(p, grid), axis=1).reshape(gx.shape)
    ax.contourf(gx, gy, regions, levels=[-0.5, 0.5, 1.5, 2.5], alpha=0.3,
                colors=["C0", "C1", "C2"])
    for k in range(3):
        ax.plot(*X_train[y_train == k].T, "o", color=f"C{k}", markeredgecolor="black")
    ax.set_title(f"{title}: validation accuracy {accuracy(p, X_valid, y_valid):.2f}")
    ax.set_aspect("equal")

plt.show()
