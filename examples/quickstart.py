"""The README's quick start: a regularized low-rank factorization of a matrix.

Run it with ``python examples/quickstart.py``.
"""

import logging

import autograd.numpy as anp
import numpy as np

import npdownhill as dh

logging.basicConfig(level=logging.INFO, format="%(message)s")

A, B, K = 20, 5, 3
rng = np.random.default_rng(0)
y = rng.normal(size=(A, K)) @ rng.normal(size=(K, B)) + rng.normal(size=(A, B))

params = {"u": rng.normal(size=(A, K)), "v": rng.normal(size=(K, B))}


def err(p, z):
    return anp.mean((z - anp.dot(p["u"], p["v"])) ** 2)


def loss(p, z):
    return err(p, z) + anp.mean(anp.abs(p["u"])) + anp.mean(p["v"] ** 2)


train, valid = dh.minimize(
    loss, params, train=[y], batch_size=0,            # one batch: the whole matrix
    algo="rmsprop", learning_rate=0.01, max_gradient_elem=1.0,
    patience=20, validate_every=10, max_epochs=5000, rng=0,
    monitors={"err": err,
              "|u|<0.1": lambda p, z: np.mean(np.abs(p["u"]) < 0.1),
              "|v|<0.1": lambda p, z: np.mean(np.abs(p["v"]) < 0.1)})

print("last validation:", {k: round(v, 4) for k, v in valid.items()})
print("params['u'] now holds the best factor found:", params["u"].shape)
