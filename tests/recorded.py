"""Trajectories recorded from another library, for the tests that compare with them.

``data/torch_trajectories.npz`` (torch.optim) and ``data/optax_trajectories.npz``
(optax, jax float64) are written by hand-run scripts in ``data/`` and hold the
same two problems: the random quadratic ``reference.quadratic_data(7, 0)``
and Rosenbrock from (-3, -3), stored as arrays, and one trajectory x_0 ..
x_steps per case, listed as JSON in ``cases``. This module loads such a file
and gives what every comparison needs: a case's problem, its expected
trajectory, npdownhill's trajectory, and the conditioning check.

Tolerance: rtol 1e-9, atol 1e-12. Not tighter, because a file is a frozen
artifact: the other library orders the same arithmetic differently (lerp for
moving averages, sqrt(v)/sqrt(bc2) for sqrt(v/bc2), x *= 1 - lr wd before the
step, ...), and the gradient A @ x is re-evaluated here with whatever BLAS
this machine has. Each costs an ulp or so per update; atol 1e-12 covers
coordinates that pass close to zero (|x| ~ 3 at most).
"""

import json

import numpy as np
import pytest

import reference as R

RTOL, ATOL = 1e-9, 1e-12


class Recorded:
    """One data file: its arrays, its cases, and the error that loading raised (if any:
    reported by a test, not at collection)."""

    def __init__(self, path):
        self.path = path
        try:
            with np.load(path, allow_pickle=False) as npz:
                self.arrays = {key: npz[key] for key in npz.files}
            self.cases = json.loads(str(self.arrays["cases"]))
            self.error = None
        except Exception as exc:  # noqa: BLE001
            self.arrays, self.cases, self.error = {}, [], exc

    def check_loaded(self):
        """The file loads and its case ids are unique, on the two stored problems."""
        assert self.error is None, f"cannot load {self.path}: {self.error!r}"
        ids = [c["id"] for c in self.cases]
        assert len(ids) == len(set(ids))
        assert {c["problem"]["name"] for c in self.cases} == {"quadratic", "rosenbrock"}

    def check_stored_problems(self):
        """The stored problems are reference.py's (up to rounding in the QR
        factorization, should another LAPACK compute it here)."""
        A, b, x0 = R.quadratic_data(7, 0)
        np.testing.assert_allclose(self.arrays["quadratic_A"], A, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(self.arrays["quadratic_b"], b)
        np.testing.assert_array_equal(self.arrays["quadratic_x0"], x0)
        np.testing.assert_array_equal(self.arrays["rosenbrock_x0"], R.rosenbrock()[3])

    def problem(self, spec):
        """``(grad, x0)`` of a stored problem, built from the stored arrays."""
        if spec["name"] == "quadratic":
            assert (spec["n"], spec["seed"]) == (7, 0)
            _, grad, _, x0 = R.quadratic_from(self.arrays["quadratic_A"],
                                              self.arrays["quadratic_b"],
                                              self.arrays["quadratic_x0"])
            return grad, x0
        if spec["name"] == "rosenbrock":
            _, grad, _, _ = R.rosenbrock()
            return grad, self.arrays["rosenbrock_x0"].copy()
        raise KeyError(spec["name"])

    def expected(self, case):
        """The recorded trajectory of ``case``, shape (steps + 1, n)."""
        traj = self.arrays[case["id"]]
        assert traj.dtype == np.float64 and traj.shape[0] == case["steps"] + 1
        return traj


def parametrize(cases):
    """``@pytest.mark.parametrize("case", cases)`` with the cases' ids."""
    return pytest.mark.parametrize("case", cases, ids=[c["id"] for c in cases])


def package_trajectory(dh, case, grad, x0):
    """npdownhill's iterates x_0 .. x_steps of ``case``: ``apply`` of the gradient at each."""
    x = x0.copy()
    opt = dh.build(case["algo"], None, x, **case["hyper"])
    xs = [x.copy()]
    for _ in range(case["steps"]):
        opt.apply(grad(x))
        xs.append(x.copy())
    return np.array(xs)


def assert_well_conditioned(case, grad, x0):
    """Relative noise of 1e-15 injected into every quantity of every update of the
    transcription moves the trajectory by less than a tenth of the tolerance, so a
    failure of a comparison is not bad luck."""
    ref = R.trajectory(case["algo"], grad, x0, case["steps"], **case["hyper"])
    for seed in range(3):
        prng = np.random.default_rng(seed)

        def noise(a):
            return a * (1.0 + 1e-15 * prng.uniform(-1.0, 1.0, np.shape(a)))

        noisy = R.trajectory(case["algo"], grad, x0, case["steps"], noise=noise,
                             **case["hyper"])
        excess = np.abs(noisy - ref) / (RTOL * np.abs(ref) + ATOL)
        assert excess.max() < 0.1, excess.max()


def trained_and_evaluated(dh, case, grad, x0):
    """npdownhill's trained iterates y_0 .. y_steps (the arrays) and evaluation params
    x_0 .. x_steps (``opt.evaluation_params()``) of ``case``, as two arrays, and the
    optimizer."""
    y = x0.copy()
    opt = dh.build(case["algo"], None, y, **case["hyper"])
    ys, xs = [y.copy()], [opt.evaluation_params()]
    for _ in range(case["steps"]):
        opt.apply(grad(y))
        ys.append(y.copy())
        xs.append(opt.evaluation_params())
    return np.array(ys), np.array(xs), opt
