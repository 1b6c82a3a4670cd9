"""Generate optax_trajectories.npz: expected trajectories from optax.

Run by hand, from anywhere (needs jax and optax; nothing else in the test
suite does):

    python tests/data/make_optax_reference.py

It rewrites tests/data/optax_trajectories.npz next to this script. The
versions used are stored in the file ('optax_version', 'jax_version',
'numpy_version'); the file in the repository was made with optax 0.2.8 and
jax 0.10.2 on the CPU, with ``jax_enable_x64`` on so that every quantity,
the optimizers' scalar state included, is float64.

For every rule optax has (Lion, Yogi, AdaBelief, Prodigy) each case runs 100
float64 updates on the random 7-D quadratic ``reference.quadratic(7, 0)``
and on 2-D Rosenbrock from (-3, -3), with the hand-written numpy gradients of
tests/reference.py handed to optax, so the data tests only the optimizers'
arithmetic. Each rule has optax's defaults (npdownhill's where optax has
none, e.g. learning rates) mapped explicitly to npdownhill's names, a
non-default set, and decoupled weight decay: optax's own ``weight_decay``
for Lion and Prodigy, and ``optax.chain(scale_by_..., add_decayed_weights,
scale_by_learning_rate)`` for Yogi and AdaBelief, whose aliases have none
(that chain is npdownhill's ``p - lr (u + wd p)``).

Prodigy runs start from ``estim_lr0`` (npdownhill's ``d0``) 0.3 rather than
optax's 1e-6: from 1e-6 the growth of the estimate amplifies rounding about
a millionfold within 100 updates (tests/test_reference.py shows it with
injected noise), so agreement to 1e-9 there is not guaranteed. One pair of
cases, "prodigy-d0default", keeps optax's defaults all the same (optax and
the transcription happen to agree to 1.3e-11 there); they are marked
``"conditioned": false`` and skip the conditioning test.

Contents (loads with np.load(path, allow_pickle=False)):

* 'cases': 0-d unicode array holding a JSON list; each entry has id, algo
  (npdownhill's name), hyper (npdownhill kwargs), problem, steps, optax
  (a text saying what optax ran) and conditioned (see above).
* one float64 array of shape (steps + 1, n) per case id: x_0 .. x_steps.
* 'quadratic_A', 'quadratic_b', 'quadratic_x0', 'rosenbrock_x0'.
* 'optax_version', 'jax_version', 'numpy_version'.

Before writing, the script checks every case against the independent
transcriptions in tests/reference.py (|optax - reference| <= 1e-12 +
1e-9 |reference|), prints the largest relative difference per case, and
refuses to write the file if any case disagrees.
"""

import json
import os
import sys

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_platforms", "cpu")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from optax import contrib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import reference as R  # noqa: E402

OUT = os.path.join(HERE, "optax_trajectories.npz")
STEPS = 100
QUAD = {"name": "quadratic", "n": 7, "seed": 0}
ROSEN = {"name": "rosenbrock"}
RTOL, ATOL = 1e-9, 1e-12


def lion(lr, b1=0.9, b2=0.99, wd=0.0):
    return (optax.lion(lr, b1=b1, b2=b2, weight_decay=wd),
            f"optax.lion({lr}, b1={b1}, b2={b2}, weight_decay={wd})",
            dict(learning_rate=lr, beta1=b1, beta2=b2, weight_decay=wd))


def _chain(scale, text, lr, wd):
    if not wd:
        return optax.chain(scale, optax.scale_by_learning_rate(lr)), text
    return (optax.chain(scale, optax.add_decayed_weights(wd), optax.scale_by_learning_rate(lr)),
            f"chain({text}, add_decayed_weights({wd}), scale_by_learning_rate({lr}))")


def yogi(lr, b1=0.9, b2=0.999, eps=1e-3, init=1e-6, wd=0.0):
    tx, text = _chain(optax.scale_by_yogi(b1=b1, b2=b2, eps=eps, initial_accumulator_value=init),
                      f"scale_by_yogi(b1={b1}, b2={b2}, eps={eps}, "
                      f"initial_accumulator_value={init})", lr, wd)
    return tx, text, dict(learning_rate=lr, beta1=b1, beta2=b2, epsilon=eps,
                          initial_accumulator=init, weight_decay=wd)


def adabelief(lr, b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, wd=0.0):
    tx, text = _chain(optax.scale_by_belief(b1=b1, b2=b2, eps=eps, eps_root=eps_root),
                      f"scale_by_belief(b1={b1}, b2={b2}, eps={eps}, eps_root={eps_root})",
                      lr, wd)
    return tx, text, dict(learning_rate=lr, beta1=b1, beta2=b2, epsilon=eps,
                          epsilon_root=eps_root, weight_decay=wd)


def prodigy(lr=1.0, betas=(0.9, 0.999), beta3=None, eps=1e-8, d0=0.3, coef=1.0, wd=0.0,
            safeguard=False):
    tx = contrib.prodigy(lr, betas=betas, beta3=beta3, eps=eps, estim_lr0=d0,
                         estim_lr_coef=coef, weight_decay=wd, safeguard_warmup=safeguard)
    text = (f"optax.contrib.prodigy({lr}, betas={betas}, beta3={beta3}, eps={eps}, "
            f"estim_lr0={d0}, estim_lr_coef={coef}, weight_decay={wd}, "
            f"safeguard_warmup={safeguard})")
    return tx, text, dict(learning_rate=lr, beta1=betas[0], beta2=betas[1], beta3=beta3,
                          epsilon=eps, d0=d0, d_coef=coef, weight_decay=wd,
                          safeguard_warmup=safeguard)


# (id, algo, {problem name: (optax transformation, text, npdownhill kwargs)}, steps)
def variants():
    both = ("quadratic", "rosenbrock")
    return [
        ("lion-default", "lion", {p: lion(1e-3) for p in both}, STEPS),
        ("lion-custom", "lion", {p: lion(2e-3, b1=0.8, b2=0.95) for p in both}, STEPS),
        ("lion-decay", "lion", {p: lion(1e-3, wd=0.1) for p in both}, STEPS),
        ("yogi-default", "yogi", {"quadratic": yogi(1e-2), "rosenbrock": yogi(1e-3)}, STEPS),
        ("yogi-custom", "yogi", {"quadratic": yogi(0.02, b1=0.8, b2=0.99, eps=1e-4, init=0.01),
                                 "rosenbrock": yogi(2e-3, b1=0.8, b2=0.99, eps=1e-4, init=0.01)},
         STEPS),
        ("yogi-decay", "yogi", {"quadratic": yogi(1e-2, wd=0.1),
                                "rosenbrock": yogi(1e-3, wd=0.1)}, STEPS),
        ("adabelief-default", "adabelief", {p: adabelief(1e-3) for p in both}, STEPS),
        ("adabelief-custom", "adabelief",
         {"quadratic": adabelief(0.01, b1=0.8, b2=0.99, eps=1e-8, eps_root=1e-10),
          "rosenbrock": adabelief(1e-3, b1=0.8, b2=0.99, eps=1e-8, eps_root=1e-10)}, STEPS),
        ("adabelief-decay", "adabelief", {p: adabelief(1e-3, wd=0.1) for p in both}, STEPS),
        ("prodigy-optaxdefaults", "prodigy", {p: prodigy(0.3) for p in both}, STEPS),
        ("prodigy-custom", "prodigy",
         {p: prodigy(0.3, betas=(0.8, 0.99), beta3=0.9, eps=1e-6, d0=0.2, coef=0.5)
          for p in both}, STEPS),
        ("prodigy-safeguard", "prodigy", {p: prodigy(0.3, safeguard=True) for p in both}, STEPS),
        ("prodigy-decay", "prodigy", {p: prodigy(0.3, wd=0.1) for p in both}, STEPS),
        ("prodigy-d0default", "prodigy", {p: prodigy(1.0, d0=1e-6) for p in both}, STEPS),
    ]


def problem_functions():
    A, b, x0 = R.quadratic_data(QUAD["n"], QUAD["seed"])
    fq, gq, hq, xq = R.quadratic_from(A, b, x0)
    fr, gr, hr, xr = R.rosenbrock()
    return {"quadratic": (gq, xq), "rosenbrock": (gr, xr)}, (A, b, x0, xr)


def optax_trajectory(tx, grad_fn, x0, steps):
    x = jnp.asarray(x0, dtype=jnp.float64)
    state = tx.init(x)
    xs = [np.asarray(x).copy()]
    for _ in range(steps):
        g = jnp.asarray(np.asarray(grad_fn(np.asarray(x).copy()), dtype=np.float64))
        updates, state = tx.update(g, state, x)
        x = optax.apply_updates(x, updates)
        xs.append(np.asarray(x).copy())
    return np.array(xs)


def main():
    funcs, (A, b, x0q, x0r) = problem_functions()
    cases, arrays, bad = [], {}, []
    for name, algo, by_problem, steps in variants():
        for prob in (QUAD, ROSEN):
            tx, text, hyper = by_problem[prob["name"]]
            grad_fn, x0 = funcs[prob["name"]]
            traj = optax_trajectory(tx, grad_fn, x0, steps)
            assert traj.dtype == np.float64
            ref = R.trajectory(algo, grad_fn, x0, steps, **hyper)
            rel = float(np.max(np.abs(traj - ref) / np.abs(ref)))
            ok = bool(np.all(np.isfinite(traj))
                      and np.all(np.abs(traj - ref) <= ATOL + RTOL * np.abs(ref)))
            case_id = f"{name}-{prob['name']}"
            print(f"{case_id:36s} max|x| {np.abs(traj).max():6.3g}  moved "
                  f"{np.abs(traj[-1] - traj[0]).max():8.3g}  max rel diff optax vs reference "
                  f"{rel:.2e}{'' if ok else '  MISMATCH'}")
            if not ok:
                bad.append((case_id, rel))
            cases.append(dict(id=case_id, algo=algo, hyper=hyper, problem=dict(prob),
                              steps=steps, optax=text, conditioned=name != "prodigy-d0default"))
            arrays[case_id] = traj
    if bad:
        raise SystemExit(f"optax and reference.py disagree: {bad}")
    arrays["cases"] = np.array(json.dumps(cases, indent=1))
    arrays["quadratic_A"] = A
    arrays["quadratic_b"] = b
    arrays["quadratic_x0"] = x0q
    arrays["rosenbrock_x0"] = x0r
    arrays["optax_version"] = np.array(optax.__version__)
    arrays["jax_version"] = np.array(jax.__version__)
    arrays["numpy_version"] = np.array(np.__version__)
    np.savez_compressed(OUT, **arrays)
    print(f"\nwrote {OUT} ({len(cases)} cases, optax {optax.__version__}, jax {jax.__version__})")


if __name__ == "__main__":
    main()
