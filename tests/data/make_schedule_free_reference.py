"""Generate optax_schedule_free.npz: schedule-free trajectories recorded from optax.

Run by hand, from anywhere (needs jax and optax; nothing else in the test
suite does):

    python tests/data/make_schedule_free_reference.py

It rewrites tests/data/optax_schedule_free.npz next to this script. The
versions used are stored in the file ('jax_version', 'optax_version',
'numpy_version').

Each case runs 100 float64 updates (jax_enable_x64) of
``optax.contrib.schedule_free_sgd`` / ``schedule_free_adamw`` on the random
7-D quadratic ``reference.quadratic(7, 0)`` and on 2-D Rosenbrock from
(-3, -3), the gradients computed by the numpy functions of
tests/reference.py at the params optax returns, and records both the params
(the points y where gradients are taken) and
``optax.contrib.schedule_free_eval_params`` (the averages x).

With warm-up, optax's shortcuts step z with the learning rate of the update
before (their SGD / learning-rate scaling counts from 0 while the wrapper
counts from 1); npdownhill, like the paper, uses one rate for both. The
warm-up cases are therefore built from ``optax.contrib.schedule_free``
around the same base transformations as the shortcuts, with the base's
schedule shifted by one update (see warmup_base below).

Contents (np.load(path, allow_pickle=False)):

* 'cases': 0-d unicode JSON list; each entry has id, algo (npdownhill's
  name), hyper (npdownhill kwargs), problem ("quadratic" / "rosenbrock"),
  steps and optax (a description of what optax ran).
* '<id>.y' and '<id>.x': float64 arrays of shape (steps + 1, n).
* 'quadratic_A', 'quadratic_b', 'quadratic_x0', 'rosenbrock_x0'.

Before writing, every case is checked against the transcription
reference.schedule_free_averages (|optax - reference| <= 1e-12 + 1e-9
|reference|); the script refuses to write the file otherwise.
"""

import json
import os
import sys

import numpy as np
import jax
import jax.numpy as jnp
import optax

jax.config.update("jax_enable_x64", True)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import reference as R  # noqa: E402

OUT = os.path.join(HERE, "optax_schedule_free.npz")
STEPS = 100
RTOL, ATOL = 1e-9, 1e-12


def warmup_base(lr, warmup, base):
    """The schedule of the wrapper, lr min(1, count / warmup) with count from 1,
    and the base transformation with the same rate at each update."""
    def schedule(count):
        # optax.warmup_constant_schedule would compute in float32 from the int32 count
        return lr * jnp.minimum(jnp.asarray(count, jnp.float64), warmup) / warmup

    shifted = lambda count: schedule(count + 1)  # noqa: E731
    return schedule, base(shifted)


def sgd_case(lr, b1=0.9, weight_decay=None, warmup=None, power=2.0):
    if warmup is None:
        return optax.contrib.schedule_free_sgd(lr, b1=b1, weight_decay=weight_decay,
                                               weight_lr_power=power)

    def base(rate):
        sgd = optax.sgd(rate)
        return sgd if weight_decay is None else optax.chain(
            optax.add_decayed_weights(weight_decay), sgd)
    schedule, tx = warmup_base(lr, warmup, base)
    return optax.contrib.schedule_free(tx, schedule, b1=b1, weight_lr_power=power)


def adamw_case(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, warmup=None, power=2.0):
    if warmup is None:
        return optax.contrib.schedule_free_adamw(lr, b1=b1, b2=b2, eps=eps,
                                                 weight_decay=weight_decay,
                                                 weight_lr_power=power)

    def base(rate):
        return optax.chain(
            optax.scale_by_rms(decay=b2, eps=eps, eps_in_sqrt=False, bias_correction=True),
            optax.add_decayed_weights(weight_decay), optax.scale_by_learning_rate(rate))
    schedule, tx = warmup_base(lr, warmup, base)
    return optax.contrib.schedule_free(tx, schedule, b1=b1, weight_lr_power=power)


# (id, algo, npdownhill kwargs, problem, optax builder, its kwargs)
CASES = [
    ("sgd-quadratic", "schedule_free_sgd", dict(learning_rate=0.01), "quadratic",
     sgd_case, dict(lr=0.01)),
    ("sgd-rosenbrock", "schedule_free_sgd", dict(learning_rate=1e-4), "rosenbrock",
     sgd_case, dict(lr=1e-4)),
    ("sgd-custom-quadratic", "schedule_free_sgd",
     dict(learning_rate=0.01, beta1=0.8, weight_decay=0.1, weight_lr_power=1.0),
     "quadratic", sgd_case, dict(lr=0.01, b1=0.8, weight_decay=0.1, power=1.0)),
    ("sgd-warmup-quadratic", "schedule_free_sgd",
     dict(learning_rate=0.01, beta1=0.95, warmup_steps=10), "quadratic",
     sgd_case, dict(lr=0.01, b1=0.95, warmup=10)),
    ("sgd-warmup-rosenbrock", "schedule_free_sgd",
     dict(learning_rate=5e-5, warmup_steps=10, weight_decay=0.1), "rosenbrock",
     sgd_case, dict(lr=5e-5, warmup=10, weight_decay=0.1)),
    ("adamw-quadratic", "schedule_free_adamw", dict(), "quadratic", adamw_case, dict(lr=2.5e-3)),
    ("adamw-rosenbrock", "schedule_free_adamw", dict(), "rosenbrock", adamw_case,
     dict(lr=2.5e-3)),
    ("adamw-custom-quadratic", "schedule_free_adamw",
     dict(learning_rate=0.01, beta1=0.8, beta2=0.99, epsilon=1e-6, weight_decay=0.1),
     "quadratic", adamw_case, dict(lr=0.01, b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.1)),
    ("adamw-warmup-rosenbrock", "schedule_free_adamw",
     dict(learning_rate=0.01, warmup_steps=10, weight_lr_power=3.0, weight_decay=0.01),
     "rosenbrock", adamw_case, dict(lr=0.01, warmup=10, power=3.0, weight_decay=0.01)),
]


def main():
    A, b, x0q = R.quadratic_data(7, 0)
    _, grad_q, _, x0q = R.quadratic_from(A, b, x0q)
    _, grad_r, _, x0r = R.rosenbrock()
    problems = {"quadratic": (grad_q, x0q), "rosenbrock": (grad_r, x0r)}
    out = {"quadratic_A": A, "quadratic_b": b, "quadratic_x0": x0q, "rosenbrock_x0": x0r}
    listed = []
    for case_id, algo, hyper, problem, builder, okw in CASES:
        grad, x0 = problems[problem]
        tx = builder(**okw)
        params = jnp.asarray(x0, dtype=jnp.float64)
        state = tx.init(params)
        ys, xs = [np.asarray(params)], [np.asarray(params)]
        for _ in range(STEPS):
            g = jnp.asarray(grad(np.asarray(params)))
            updates, state = tx.update(g, state, params)
            params = optax.apply_updates(params, updates)
            ys.append(np.asarray(params))
            xs.append(np.asarray(optax.contrib.schedule_free_eval_params(state, params)))
        ys, xs = np.array(ys), np.array(xs)
        ref_y, ref_x = R.schedule_free_averages(algo, grad, x0, STEPS, **hyper)
        for name, got, ref in (("y", ys, ref_y), ("x", xs, ref_x)):
            err = np.max(np.abs(got - ref) / (ATOL + RTOL * np.abs(ref)))
            print(f"{case_id}.{name}: largest |optax - reference| / tolerance = {err:.3g}")
            if not err <= 1:
                raise SystemExit(f"{case_id}.{name}: optax and reference.py disagree; "
                                 "nothing written")
        out[f"{case_id}.y"], out[f"{case_id}.x"] = ys, xs
        listed.append(dict(id=case_id, algo=algo, hyper=hyper, problem=problem, steps=STEPS,
                           optax=f"{builder.__name__}({okw})"))
    out["cases"] = np.array(json.dumps(listed))
    out["jax_version"] = np.array(jax.__version__)
    out["optax_version"] = np.array(optax.__version__)
    out["numpy_version"] = np.array(np.__version__)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
