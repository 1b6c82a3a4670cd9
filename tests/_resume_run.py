"""One leg of a checkpointed run, for the resume tests of test_checkpoint.py.

Run as ``python _resume_run.py CONFIG.json``: builds the same small problem
every time (seeded data, fresh parameters), runs ``npdownhill.minimize`` with
the options in the config, and writes the final parameters and the whole
run as a checkpoint would hold it to ``config["out"]`` (an ``.npz``). Running each
leg in its own process makes sure that nothing but the checkpoint file
carries a run from one leg to the next.

Config keys
-----------
algo : str
out : str
    Where to write the result.
options : dict
    Keyword arguments for ``minimize`` (hyperparameters and driver options,
    e.g. ``checkpoint``, ``max_epochs``, ``max_updates``). The special value
    ``{"reduce_on_plateau": {...}}`` for ``learning_rate`` builds a
    ``schedules.reduce_on_plateau(**...)``.
interrupt : dict, optional
    ``{"how": ..., "at": k}``: stop the run by Ctrl-C at the ``k``-th call of
    something (1-based):

    ``"raise_in_train_loss"``
        the loss raises ``KeyboardInterrupt`` in its k-th call under
        autograd (a training step, before anything is applied);
    ``"raise_in_valid_loss"``
        the loss raises ``KeyboardInterrupt`` in its k-th plain call
        (a validation);
    ``"sigint_in_monitor"``
        a monitor sends SIGINT to this process in its k-th call on a
        training batch (the driver defers it to the end of the batch);
    ``"sigint_in_valid_loss"``
        the loss sends SIGINT in its k-th plain call (during a validation).
"""

import json
import os
import signal
import threading
import sys

import autograd.numpy as anp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import npdownhill as dh  # noqa: E402
from npdownhill import checkpoint  # noqa: E402

N_TRAIN, N_VALID, BATCH = 64, 40, 16



def _ctrl_c():
    """Press Ctrl-C, deterministically: a signal sent to the main thread itself is
    delivered before pthread_kill returns, so Python runs its handler at the next
    bytecode of this very function (os.kill may hand it to another thread, later)."""
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

def problem():
    """``(train, valid)`` of a seeded linear regression with noise (fresh arrays)."""
    rng = np.random.default_rng(2024)
    w = np.array([1.0, -2.0, 0.5])
    X = rng.normal(size=(N_TRAIN, 3))
    y = X @ w + 0.3 + 0.1 * rng.normal(size=N_TRAIN)
    Xv = rng.normal(size=(N_VALID, 3))
    yv = Xv @ w + 0.3 + 0.1 * rng.normal(size=N_VALID)
    return [X, y], [Xv, yv]


def fresh_params():
    return {"w": np.zeros(3), "b": np.zeros(())}


def mse(params, x, y):
    return anp.mean((anp.dot(x, params["w"]) + params["b"] - y) ** 2)


def _is_traced(params):
    return not isinstance(params["w"], np.ndarray)


def make_loss_and_monitors(interrupt, valid):
    """The loss and monitors, with the requested Ctrl-C planted in them."""
    how = interrupt.get("how") if interrupt else None
    at = interrupt.get("at") if interrupt else None
    calls = {"train": 0, "valid": 0, "monitor": 0}

    def loss(params, x, y):
        kind = "train" if _is_traced(params) else "valid"
        calls[kind] += 1
        if calls[kind] == at:
            if how == f"raise_in_{kind}_loss":
                raise KeyboardInterrupt
            if how == f"sigint_in_{kind}_loss":
                _ctrl_c()
        return mse(params, x, y)

    def mae(params, x, y):
        if not np.shares_memory(x, valid[0]):   # validation batches are views of valid
            calls["monitor"] += 1
            if how == "sigint_in_monitor" and calls["monitor"] == at:
                _ctrl_c()
        return anp.mean(anp.abs(anp.dot(x, params["w"]) + params["b"] - y))

    return loss, {"mae": mae}


def build_options(options):
    options = dict(options)
    lr = options.get("learning_rate")
    if isinstance(lr, dict) and "reduce_on_plateau" in lr:
        options["learning_rate"] = dh.schedules.reduce_on_plateau(**lr["reduce_on_plateau"])
    return options


def run(config):
    """Run one leg; return ``(params, optimizer)``."""
    train, valid = problem()
    params = fresh_params()
    loss, monitors = make_loss_and_monitors(config.get("interrupt"), valid)
    opt = dh.build(config["algo"], loss, params, monitors=monitors)
    options = build_options(config.get("options", {}))
    batch = 0 if type(opt).full_batch else BATCH        # quasi-Newton rules: full batch
    opt.minimize(train, valid, batch_size=batch, **options)
    return params, opt


def result_arrays(params, opt):
    """Final params and the whole run (optimizer, run state, history, data positions:
    what a checkpoint would hold) as arrays, run time and wall clock left out."""
    out = {f"param.{k}": np.asarray(v) for k, v in params.items()}
    for key, value in checkpoint.encode(opt.run).items():
        if key in ("run.elapsed", "history.time"):
            continue
        out[f"state.{key}"] = np.asarray(value)
    return out


def main():
    with open(sys.argv[1]) as f:
        config = json.load(f)
    params, opt = run(config)
    np.savez(config["out"], **result_arrays(params, opt))


if __name__ == "__main__":
    main()
