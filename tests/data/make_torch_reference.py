"""Generate torch_trajectories.npz: expected trajectories from torch.optim.

Run by hand, from anywhere (needs torch; nothing else in the test suite does):

    python tests/data/make_torch_reference.py

It rewrites tests/data/torch_trajectories.npz next to this script.  The file
in the repository was made with torch 2.13.0+cpu (the exact version string is
stored in the file under the key 'torch_version') and numpy 2.4.

For every update rule torch.optim has, each case runs 100 float64 updates
(torch.set_default_dtype(torch.float64), so that torch's scalar state such as
NAdam's mu_product is float64 too; foreach=False pins the single-tensor code
path) on the random 7-D quadratic ``reference.quadratic(7, 0)`` and on 2-D
Rosenbrock from (-3, -3).  The gradients handed to torch are computed by the
hand-written numpy gradients of tests/reference.py, so the data tests only
the optimizers' arithmetic.  Each algorithm has torch's default
hyperparameters mapped explicitly to npdownhill's names (with a smaller
learning rate where the default would diverge on Rosenbrock) and at least
one non-default set.

Contents (loads with np.load(path, allow_pickle=False)):

* 'cases': 0-d unicode array holding a JSON list; each entry has
  id, algo (npdownhill's name), hyper (npdownhill kwargs), problem
  ({"name": "quadratic", "n": 7, "seed": 0} or {"name": "rosenbrock"}),
  steps, torch_class and torch_kwargs (documentation of what torch ran).
* one float64 array of shape (steps + 1, n) per case id: x_0 .. x_steps.
* 'quadratic_A', 'quadratic_b', 'quadratic_x0', 'rosenbrock_x0': the
  problem data actually used, so that the test does not depend on numpy
  regenerating the same random matrix bit for bit.
* 'torch_version', 'numpy_version': 0-d unicode arrays.

Before writing, the script checks every case against the independent
transcriptions in tests/reference.py (|torch - reference| <= 1e-12 +
1e-9 |reference|) and prints the largest relative difference per algorithm;
it refuses to write the file if any case disagrees.
"""

import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import reference as R  # noqa: E402

OUT = os.path.join(HERE, "torch_trajectories.npz")
STEPS = 100
QUAD = {"name": "quadratic", "n": 7, "seed": 0}
ROSEN = {"name": "rosenbrock"}
RTOL, ATOL = 1e-9, 1e-12


def variant(name, algo, hyper, torch_class, torch_kwargs, rosenbrock_lr=None):
    """One set of hyperparameters, run on both problems.

    ``rosenbrock_lr`` replaces the learning rate (on both sides) on
    Rosenbrock, where the quadratic's would diverge or wander off.
    """
    return dict(name=name, algo=algo, hyper=hyper, torch_class=torch_class,
                torch_kwargs=torch_kwargs, rosenbrock_lr=rosenbrock_lr)


# Each entry: our algorithm + kwargs  <->  torch class + kwargs.
VARIANTS = [
    # SGD.  torch's velocity buf = mu buf + g with x -= lr buf equals ours
    # v = mu v - lr g (v = -lr buf) for a constant learning rate; Nesterov:
    # x -= lr (g + mu buf)  ==  x += mu v - lr g.
    variant("sgd-torchdefault", "sgd", dict(learning_rate=1e-3),
            "SGD", dict(lr=1e-3), rosenbrock_lr=1e-4),
    variant("sgd-custom", "sgd", dict(learning_rate=0.02),
            "SGD", dict(lr=0.02), rosenbrock_lr=5e-5),
    variant("momentum-default", "momentum", dict(),
            "SGD", dict(lr=0.01, momentum=0.9), rosenbrock_lr=1e-4),
    variant("sgd-momentum0.5", "sgd", dict(learning_rate=0.005, momentum=0.5),
            "SGD", dict(lr=0.005, momentum=0.5), rosenbrock_lr=1e-4),
    variant("nag-default", "nag", dict(),
            "SGD", dict(lr=0.01, momentum=0.9, nesterov=True),
            rosenbrock_lr=1e-4),
    variant("sgd-nesterov0.5", "sgd",
            dict(learning_rate=0.005, momentum=0.5, nesterov=True),
            "SGD", dict(lr=0.005, momentum=0.5, nesterov=True),
            rosenbrock_lr=1e-4),

    # RMSprop: torch adds eps outside the square root.
    variant("rmsprop-torchdefault", "rmsprop",
            dict(learning_rate=0.01, rho=0.99, epsilon=1e-8,
                 epsilon_inside=False),
            "RMSprop", dict(lr=0.01, alpha=0.99, eps=1e-8)),
    variant("rmsprop-centered", "rmsprop",
            dict(learning_rate=0.01, rho=0.9, epsilon=1e-4, centered=True,
                 epsilon_inside=False),
            "RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-4, centered=True),
            rosenbrock_lr=0.02),
    variant("rmsprop-momentum0.5", "rmsprop",
            dict(learning_rate=0.003, rho=0.95, epsilon=1e-6,
                 epsilon_inside=False, momentum=0.5),
            "RMSprop", dict(lr=0.003, alpha=0.95, eps=1e-6, momentum=0.5)),

    # Rprop (iRprop-): etas = (decrease, increase), step_sizes = (min, max).
    variant("rprop-torchdefault", "rprop",
            dict(learning_rate=0.01, rprop_decrease=0.5, rprop_increase=1.2,
                 rprop_min_step=1e-6, rprop_max_step=50.0),
            "Rprop", dict(lr=0.01, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0))),
    variant("rprop-custom", "rprop",
            dict(learning_rate=0.05, rprop_decrease=0.3, rprop_increase=1.5,
                 rprop_min_step=1e-4, rprop_max_step=1.0),
            "Rprop", dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-4, 1.0))),

    # Adagrad: torch adds eps outside the square root.
    variant("adagrad-torchdefault", "adagrad",
            dict(learning_rate=0.01, epsilon=1e-10, epsilon_inside=False,
                 initial_accumulator=0.0),
            "Adagrad", dict(lr=0.01, eps=1e-10, initial_accumulator_value=0.0)),
    variant("adagrad-custom", "adagrad",
            dict(learning_rate=0.5, epsilon=1e-3, epsilon_inside=False,
                 initial_accumulator=0.1),
            "Adagrad", dict(lr=0.5, eps=1e-3, initial_accumulator_value=0.1)),

    # Adadelta.
    variant("adadelta-torchdefault", "adadelta",
            dict(learning_rate=1.0, rho=0.9, epsilon=1e-6),
            "Adadelta", dict(lr=1.0, rho=0.9, eps=1e-6)),
    variant("adadelta-custom", "adadelta",
            dict(learning_rate=0.2, rho=0.8, epsilon=1e-3),
            "Adadelta", dict(lr=0.2, rho=0.8, eps=1e-3), rosenbrock_lr=0.5),

    # Adam family.
    variant("adam-torchdefault", "adam",
            dict(learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8),
            "Adam", dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8)),
    variant("adam-custom", "adam",
            dict(learning_rate=0.05, beta1=0.8, beta2=0.99, epsilon=1e-4),
            "Adam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-4),
            rosenbrock_lr=0.1),
    variant("amsgrad-torchdefault", "amsgrad",
            dict(learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8),
            "Adam", dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, amsgrad=True)),
    variant("amsgrad-custom", "amsgrad",
            dict(learning_rate=0.05, beta1=0.7, beta2=0.95, epsilon=1e-3),
            "Adam", dict(lr=0.05, betas=(0.7, 0.95), eps=1e-3, amsgrad=True),
            rosenbrock_lr=0.1),
    variant("adamw-torchdefault", "adamw",
            dict(learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8,
                 weight_decay=0.01),
            "AdamW", dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                          weight_decay=0.01)),
    variant("adamw-custom", "adamw",
            dict(learning_rate=0.05, beta1=0.85, beta2=0.995, epsilon=1e-6,
                 weight_decay=0.1),
            "AdamW", dict(lr=0.05, betas=(0.85, 0.995), eps=1e-6,
                          weight_decay=0.1),
            rosenbrock_lr=0.1),
    # Adamax: torch puts eps inside the max.
    variant("adamax-torchdefault", "adamax",
            dict(learning_rate=2e-3, beta1=0.9, beta2=0.999, epsilon=1e-8,
                 epsilon_in_max=True),
            "Adamax", dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8)),
    variant("adamax-custom", "adamax",
            dict(learning_rate=0.05, beta1=0.8, beta2=0.99, epsilon=1e-4,
                 epsilon_in_max=True),
            "Adamax", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-4),
            rosenbrock_lr=0.1),
    variant("nadam-torchdefault", "nadam",
            dict(learning_rate=2e-3, beta1=0.9, beta2=0.999, epsilon=1e-8,
                 momentum_decay=4e-3),
            "NAdam", dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8,
                          momentum_decay=4e-3)),
    variant("nadam-custom", "nadam",
            dict(learning_rate=0.05, beta1=0.8, beta2=0.99, epsilon=1e-4,
                 momentum_decay=0.01),
            "NAdam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-4,
                          momentum_decay=0.01),
            rosenbrock_lr=0.1),
    variant("radam-torchdefault", "radam",
            dict(learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8),
            "RAdam", dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8),
            rosenbrock_lr=1e-5),
    variant("radam-custom", "radam",
            dict(learning_rate=0.02, beta1=0.8, beta2=0.99, epsilon=1e-4),
            "RAdam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-4),
            rosenbrock_lr=1e-4),
]


def problem_functions():
    A, b, x0 = R.quadratic_data(QUAD["n"], QUAD["seed"])
    fq, gq, hq, xq = R.quadratic_from(A, b, x0)
    fr, gr, hr, xr = R.rosenbrock()
    return {"quadratic": (gq, xq), "rosenbrock": (gr, xr)}, (A, b, x0, xr)


def torch_trajectory(torch_class, torch_kwargs, grad_fn, x0, steps):
    p = torch.nn.Parameter(torch.tensor(x0, dtype=torch.float64))
    opt = getattr(torch.optim, torch_class)([p], foreach=False,
                                            **torch_kwargs)
    xs = [p.detach().numpy().copy()]
    for _ in range(steps):
        opt.zero_grad()
        g = grad_fn(p.detach().numpy().copy())
        p.grad = torch.tensor(np.asarray(g, dtype=np.float64))
        opt.step()
        xs.append(p.detach().numpy().copy())
    return np.array(xs)


def build_cases():
    cases = []
    for var in VARIANTS:
        for prob in (QUAD, ROSEN):
            hyper = dict(var["hyper"])
            tkw = dict(var["torch_kwargs"])
            if prob is ROSEN and var["rosenbrock_lr"] is not None:
                hyper["learning_rate"] = var["rosenbrock_lr"]
                tkw["lr"] = var["rosenbrock_lr"]
            cases.append(dict(
                id=f"{var['name']}-{prob['name']}",
                algo=var["algo"],
                hyper=hyper,
                problem=dict(prob),
                steps=STEPS,
                torch_class=var["torch_class"],
                torch_kwargs={k: (list(v) if isinstance(v, tuple) else v)
                              for k, v in tkw.items()},
            ))
    return cases


def main():
    torch.set_default_dtype(torch.float64)
    funcs, (A, b, x0q, x0r) = problem_functions()
    cases = build_cases()
    arrays = {}
    worst = {}
    bad = []
    for case in cases:
        grad_fn, x0 = funcs[case["problem"]["name"]]
        tkw = {k: (tuple(v) if isinstance(v, list) else v)
               for k, v in case["torch_kwargs"].items()}
        traj = torch_trajectory(case["torch_class"], tkw, grad_fn, x0,
                                case["steps"])
        ref = R.trajectory(case["algo"], grad_fn, x0, case["steps"],
                           **case["hyper"])
        if not np.all(np.isfinite(traj)):
            bad.append((case["id"], "non-finite"))
        rel = float(np.max(np.abs(traj - ref) / np.abs(ref)))
        ok = np.all(np.abs(traj - ref) <= ATOL + RTOL * np.abs(ref))
        if not ok:
            bad.append((case["id"], rel))
        worst[case["algo"]] = max(worst.get(case["algo"], 0.0), rel)
        print(f"{case['id']:40s} max|x| {np.abs(traj).max():6.3g}  "
              f"max rel diff torch vs reference {rel:.2e}"
              f"{'' if ok else '  MISMATCH'}")
        arrays[case["id"]] = traj

    print("\nlargest relative difference per algorithm:")
    for algo, rel in worst.items():
        print(f"  {algo:10s} {rel:.2e}")
    if bad:
        raise SystemExit(f"torch and reference.py disagree: {bad}")

    arrays["cases"] = np.array(json.dumps(cases, indent=1))
    arrays["quadratic_A"] = A
    arrays["quadratic_b"] = b
    arrays["quadratic_x0"] = x0q
    arrays["rosenbrock_x0"] = x0r
    arrays["torch_version"] = np.array(torch.__version__)
    arrays["numpy_version"] = np.array(np.__version__)
    np.savez_compressed(OUT, **arrays)
    print(f"\nwrote {OUT} ({len(cases)} cases, torch {torch.__version__})")


if __name__ == "__main__":
    main()
