"""
Resuming a run from a checkpoint
================================

``minimize(..., checkpoint="run.npz")`` saves the whole run to a file: parameters,
optimizer state, the shuffling position of the data, every random generator, the
patience counters and the history. Called again with the same file, it continues the
run from there, and ``max_epochs`` counts the whole run. Here a run of 60 epochs is
made in two sessions, 25 epochs, then the rest from the file, and compared with one
made without a break: they are the same run, to the last bit.
"""

# %%
# A model with every source of randomness
# ---------------------------------------
# Softmax regression trained with Adam on shuffled minibatches, plus gradient noise
# (drawn from the optimizer's generator), so that an inexact resume would show.
import os
import tempfile

import autograd.numpy as anp
import matplotlib.pyplot as plt
import numpy as np

import npdownhill as dh
from npdownhill import plot, problems

X, y = problems.blobs(n_samples=400, centers=4, n_features=5, spread=2.0, seed=0)
train, valid = [X[:300], y[:300]], [X[300:], y[300:]]


def loss(p, X, y):
    z = anp.dot(X, p["w"]) + p["b"]
    z = z - anp.max(z, axis=1, keepdims=True)
    log_p = z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True))
    return -anp.mean(log_p[anp.arange(len(y)), y])


def fresh_params():
    return {"w": np.zeros((5, 4)), "b": np.zeros(4)}


options = dict(algo="adam", learning_rate=0.003, batch_size=16, gradient_noise_scale=0.02,
               validate_every=5, patience=100, rng=0, progress=False)

# %%
# The run without a break
# -----------------------
straight_params = fresh_params()
straight = dh.minimize(loss, straight_params, train, valid, max_epochs=60, **options)
print(straight.message)

# %%
# The same run in two sessions
# ----------------------------
# The first session stops after 25 epochs (as if the machine went down there). The
# second starts from nothing but the file: new arrays filled with zeros, a new
# optimizer, and the same call with ``max_epochs=60``.
with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "run.npz")
    first = dh.minimize(loss, fresh_params(), train, valid, max_epochs=25, checkpoint=path,
                        **options)
    print(f"first session: {first.epochs} epochs; saved {os.path.getsize(path)} bytes "
          f"to {os.path.basename(path)}")
    del first

    resumed_params = fresh_params()
    resumed = dh.minimize(loss, resumed_params, train, valid, max_epochs=60,
                          checkpoint=path, **options)
    print(f"second session: now at epoch {resumed.epochs}, {resumed.updates} updates")

# %%
# The same run, to the last bit
# -----------------------------
same_history = all(np.array_equal(straight.history[k], resumed.history[k], equal_nan=True)
                   for k in ("epoch", "updates", "train.loss", "valid.loss"))
same_params = all(np.array_equal(straight_params[k], resumed_params[k]) for k in ("w", "b"))
state, resumed_state = straight.optimizer.state, resumed.optimizer.state
same_state = state.keys() == resumed_state.keys() and all(
    np.array_equal(state[k], resumed_state[k]) for k in state)
print("identical histories:", same_history)
print("identical parameters:", same_params)
print(f"identical optimizer state ({', '.join(state)}) after {resumed.updates} updates:",
      same_state)
print("identical best validation:", straight.best_loss == resumed.best_loss,
      f"(loss {resumed.best_loss:.6f} at epoch {resumed.best_epoch})")
assert same_history and same_params and same_state

# %%
# The resumed run's history holds both sessions (it was saved in the file); drawn over
# the run without a break, it continues the curve exactly.
h = resumed.history
fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
plot.history(straight, keys=("train.loss",), ax=ax)
ax.get_lines()[-1].set(color="lightgray", linewidth=6, label="without a break")
first_part, second_part = h["epoch"] <= 25, h["epoch"] >= 25
ax.plot(h["epoch"][first_part], h["train.loss"][first_part], color="C0",
        label="first session")
ax.plot(h["epoch"][second_part], h["train.loss"][second_part], "--", color="C1",
        label="resumed from the file")
ax.axvline(25, color="gray", linestyle=":")
ax.set_ylabel("training loss")
ax.legend()

plt.show()
