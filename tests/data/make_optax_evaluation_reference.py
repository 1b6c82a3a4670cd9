"""Generate optax_evaluation.npz: trajectories with evaluation params recorded from optax.

Run by hand, from anywhere (needs jax and optax; nothing else in the test
suite does):

    python tests/data/make_optax_evaluation_reference.py

It rewrites tests/data/optax_evaluation.npz next to this script. The
versions used are stored in the file ('jax_version', 'optax_version',
'numpy_version').

Each case runs 100 float64 updates (jax_enable_x64) on the random 7-D
quadratic ``reference.quadratic(7, 0)`` or on 2-D Rosenbrock from (-3, -3),
the gradients computed by the numpy functions of tests/reference.py at the
params optax trains, and records both the trained params ('<id>.y') and the
evaluation params ('<id>.x'):

* kind "schedule_free": ``optax.contrib.schedule_free_sgd`` /
  ``schedule_free_adamw``; y are the points where gradients are taken, x
  ``optax.contrib.schedule_free_eval_params`` (the averages);
* kind "lookahead": ``optax.lookahead`` around ``optax.sgd`` /
  ``optax.adam`` (y the fast weights, x the slow ones);
* kind "ema": ``optax.ema(decay, debias=True)`` fed the params after each
  update of ``optax.sgd`` / ``optax.adam`` (x its debiased average, x_0 the
  start point).

With warm-up, optax's shortcuts step z with the learning rate of the update
before (their SGD / learning-rate scaling counts from 0 while the wrapper
counts from 1); npdownhill, like the paper, uses one rate for both. The
warm-up cases are therefore built from ``optax.contrib.schedule_free``
around the same base transformations as the shortcuts, with the base's
schedule shifted by one update (see warmup_base below).

Contents (np.load(path, allow_pickle=False)):

* 'cases': 0-d unicode JSON list; each entry has id, kind, algo
  (npdownhill's name), hyper (npdownhill kwargs, options included), problem
  ("quadratic" / "rosenbrock"), steps and optax (what optax ran).
* '<id>.y' and '<id>.x': float64 arrays of shape (steps + 1, n).
* 'quadratic_A', 'quadratic_b', 'quadratic_x0', 'rosenbrock_x0'.

Before writing, every case is checked against the transcriptions of
reference.py (schedule_free_averages; trajectory with the lookahead hook;
ema_average of the plain trajectory): |optax - reference| <= 1e-12 + 1e-9
|reference|; the script refuses to write the file otherwise.
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

OUT = os.path.join(HERE, "optax_evaluation.npz")
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


def lookahead_case(base, sync_period, slow_step_size):
    return optax.lookahead(base, sync_period=sync_period, slow_step_size=slow_step_size)


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


# (id, algo, npdownhill kwargs, problem, optax base rule, option kwargs)
LOOKAHEAD = [
    ("lookahead-sgd-quadratic", "sgd", dict(learning_rate=0.01), "quadratic",
     lambda: optax.sgd(0.01), dict(lookahead=5, lookahead_alpha=0.5)),
    ("lookahead-adam-rosenbrock", "adam", dict(learning_rate=0.1), "rosenbrock",
     lambda: optax.adam(0.1), dict(lookahead=3, lookahead_alpha=0.8)),
]
EMA = [
    ("ema-sgd-quadratic", "sgd", dict(learning_rate=0.01), "quadratic",
     lambda: optax.sgd(0.01), dict(average="ema", average_decay=0.9)),
    ("ema-adam-rosenbrock", "adam", dict(learning_rate=0.1), "rosenbrock",
     lambda: optax.adam(0.1), dict(average="ema", average_decay=0.99)),
]


def run_schedule_free(tx, grad, x0):
    params = jnp.asarray(x0, dtype=jnp.float64)
    state = tx.init(params)
    ys, xs = [np.asarray(params)], [np.asarray(params)]
    for _ in range(STEPS):
        updates, state = tx.update(jnp.asarray(grad(np.asarray(params))), state, params)
        params = optax.apply_updates(params, updates)
        ys.append(np.asarray(params))
        xs.append(np.asarray(optax.contrib.schedule_free_eval_params(state, params)))
    return np.array(ys), np.array(xs)


def run_lookahead(base, option, grad, x0):
    tx = optax.lookahead(base, sync_period=option["lookahead"],
                         slow_step_size=option["lookahead_alpha"])
    params = optax.LookaheadParams.init_synced(jnp.asarray(x0, dtype=jnp.float64))
    state = tx.init(params)
    ys, xs = [np.asarray(params.fast)], [np.asarray(params.slow)]
    for _ in range(STEPS):
        updates, state = tx.update(jnp.asarray(grad(np.asarray(params.fast))), state, params)
        params = optax.apply_updates(params, updates)
        ys.append(np.asarray(params.fast))
        xs.append(np.asarray(params.slow))
    return np.array(ys), np.array(xs)


def run_ema(base, option, grad, x0):
    params = jnp.asarray(x0, dtype=jnp.float64)
    state = base.init(params)
    average = optax.ema(option["average_decay"], debias=True)
    avg_state = average.init(params)
    ys, xs = [np.asarray(params)], [np.asarray(params)]
    for _ in range(STEPS):
        updates, state = base.update(jnp.asarray(grad(np.asarray(params))), state, params)
        params = optax.apply_updates(params, updates)
        avg, avg_state = average.update(params, avg_state)
        ys.append(np.asarray(params))
        xs.append(np.asarray(avg))
    return np.array(ys), np.array(xs)


def check(case_id, got, ref):
    for name, a, b in zip("yx", got, ref):
        err = np.max(np.abs(a - b) / (ATOL + RTOL * np.abs(b)))
        print(f"{case_id}.{name}: largest |optax - reference| / tolerance = {err:.3g}")
        if not err <= 1:
            raise SystemExit(f"{case_id}.{name}: optax and reference.py disagree; "
                             "nothing written")


def main():
    A, b, x0q = R.quadratic_data(7, 0)
    _, grad_q, _, x0q = R.quadratic_from(A, b, x0q)
    _, grad_r, _, x0r = R.rosenbrock()
    problems = {"quadratic": (grad_q, x0q), "rosenbrock": (grad_r, x0r)}
    out = {"quadratic_A": A, "quadratic_b": b, "quadratic_x0": x0q, "rosenbrock_x0": x0r}
    listed = []
    for case_id, algo, hyper, problem, builder, okw in CASES:
        grad, x0 = problems[problem]
        got = run_schedule_free(builder(**okw), grad, x0)
        check(case_id, got, R.schedule_free_averages(algo, grad, x0, STEPS, **hyper))
        out[f"{case_id}.y"], out[f"{case_id}.x"] = got
        listed.append(dict(id=case_id, kind="schedule_free", algo=algo, hyper=hyper,
                           problem=problem, steps=STEPS, optax=f"{builder.__name__}({okw})"))
    for kind, table in (("lookahead", LOOKAHEAD), ("ema", EMA)):
        for case_id, algo, hyper, problem, base, option in table:
            grad, x0 = problems[problem]
            if kind == "lookahead":
                got = run_lookahead(base(), option, grad, x0)
                hook = R.lookahead(x0, option["lookahead"], option["lookahead_alpha"])
                ys = R.trajectory(algo, grad, x0, STEPS, after_update=hook, **hyper)
                ref = ys, np.array(hook.slow)
            else:
                got = run_ema(base(), option, grad, x0)
                ys = R.trajectory(algo, grad, x0, STEPS, **hyper)
                ref = ys, R.ema_average(ys, option["average_decay"])
            check(case_id, got, ref)
            out[f"{case_id}.y"], out[f"{case_id}.x"] = got
            listed.append(dict(id=case_id, kind=kind, algo=algo, hyper=dict(hyper, **option),
                               problem=problem, steps=STEPS,
                               optax=f"optax.{kind} around optax.{algo}"))
    out["cases"] = np.array(json.dumps(listed))
    out["jax_version"] = np.array(jax.__version__)
    out["optax_version"] = np.array(optax.__version__)
    out["numpy_version"] = np.array(np.__version__)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
