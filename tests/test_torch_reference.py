"""npdownhill's optimizers against trajectories recorded from torch.optim.

The expected trajectories live in data/torch_trajectories.npz, written by
data/make_torch_reference.py (run by hand; torch is not needed here).  Each
case is 100 float64 updates on the stored random quadratic or on Rosenbrock
from (-3, -3), with the gradients of reference.py handed to the optimizer.

Tolerance: rtol 1e-9, atol 1e-12.  Not tighter, because the file is a frozen
artifact: torch orders the same arithmetic differently from any numpy code
(lerp for moving averages, sqrt(v)/sqrt(bc2) for sqrt(v/bc2), x *= 1 - lr wd
before the step, ...), and the gradient A @ x is re-evaluated here with
whatever BLAS this machine has, which may sum in another order than the one
that made the file.  Each of those costs an ulp or so per update; the
transcriptions of reference.py reproduce the file to at worst 1.3e-12
relative, and test_torch_case_is_well_conditioned shows that no case
amplifies 1e-15 noise beyond a tenth of the tolerance.  atol 1e-12 covers
coordinates that pass close to zero (|x| ~ 3 at most, so 3e-13 of the scale).
"""

import json
import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reference as R  # noqa: E402

try:
    import npdownhill as dh
    _IMPORT_ERROR = None
except ImportError as exc:  # fail every test, but do not abort collection
    dh = None
    _IMPORT_ERROR = exc

DATA = os.path.join(HERE, "data", "torch_trajectories.npz")
RTOL, ATOL = 1e-9, 1e-12

# Which rules run here is the data file's own list of cases; the records of
# reference.py only say which rules torch.optim has a counterpart of
# (torch_counterpart), and test_every_torch_counterpart_has_cases checks that
# the file agrees.
TORCH_RULES = {name for name, rec in R.RECORDS.items() if rec.torch_counterpart}


def _load():
    with np.load(DATA, allow_pickle=False) as npz:
        data = {key: npz[key] for key in npz.files}
    cases = json.loads(str(data["cases"]))
    return data, cases


try:
    DATA_ARRAYS, CASES = _load()
    _LOAD_ERROR = None
except Exception as exc:  # noqa: BLE001  (report it in a test, not at collection)
    DATA_ARRAYS, CASES = {}, []
    _LOAD_ERROR = exc


def test_data_file_loads():
    assert _LOAD_ERROR is None, f"cannot load {DATA}: {_LOAD_ERROR!r}"
    assert str(DATA_ARRAYS["torch_version"])
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids))
    assert {c["problem"]["name"] for c in CASES} == {"quadratic", "rosenbrock"}


def test_every_torch_counterpart_has_cases():
    """The rules recorded in reference.py with torch_counterpart=True are
    exactly the rules the data file has cases for."""
    assert _LOAD_ERROR is None, f"cannot load {DATA}: {_LOAD_ERROR!r}"
    in_file = {c["algo"] for c in CASES}
    missing = sorted(TORCH_RULES - in_file)
    assert not missing, (f"recorded in tests/reference.py with torch_counterpart=True "
                         f"but without cases in {DATA}: {missing} (regenerate it "
                         f"with data/make_torch_reference.py)")
    unexpected = sorted(in_file - TORCH_RULES)
    assert not unexpected, (f"{DATA} has cases for rules that reference.py does not "
                            f"record with torch_counterpart=True: {unexpected}")


def test_stored_quadratic_is_reference_quadratic():
    """The stored problem is reference.quadratic_data(7, 0) (up to rounding
    in the QR factorization, should another LAPACK compute it here)."""
    A, b, x0 = R.quadratic_data(7, 0)
    np.testing.assert_allclose(DATA_ARRAYS["quadratic_A"], A, rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_array_equal(DATA_ARRAYS["quadratic_b"], b)
    np.testing.assert_array_equal(DATA_ARRAYS["quadratic_x0"], x0)
    np.testing.assert_array_equal(DATA_ARRAYS["rosenbrock_x0"],
                                  R.rosenbrock()[3])


def problem(spec):
    """(grad, x0) of a stored problem, built from the stored arrays."""
    if spec["name"] == "quadratic":
        assert (spec["n"], spec["seed"]) == (7, 0)
        f, grad, hvp, x0 = R.quadratic_from(DATA_ARRAYS["quadratic_A"],
                                            DATA_ARRAYS["quadratic_b"],
                                            DATA_ARRAYS["quadratic_x0"])
        return grad, x0
    if spec["name"] == "rosenbrock":
        f, grad, hvp, x0 = R.rosenbrock()
        return grad, DATA_ARRAYS["rosenbrock_x0"].copy()
    raise KeyError(spec["name"])


def expected(case):
    traj = DATA_ARRAYS[case["id"]]
    assert traj.dtype == np.float64
    assert traj.shape[0] == case["steps"] + 1
    return traj


def _params(cases):
    return pytest.mark.parametrize("case", cases,
                                   ids=[c["id"] for c in cases])


@_params(CASES)
def test_package_matches_torch(case):
    if dh is None:
        pytest.fail(f"npdownhill cannot be imported: {_IMPORT_ERROR!r}")
    want = expected(case)
    grad, x0 = problem(case["problem"])
    x = x0.copy()
    opt = dh.build(case["algo"], None, x, **case["hyper"])
    xs = [x.copy()]
    for _ in range(case["steps"]):
        opt.apply(grad(x))
        xs.append(x.copy())
    np.testing.assert_allclose(np.array(xs), want, rtol=RTOL, atol=ATOL)


@_params(CASES)
def test_reference_matches_torch(case):
    """The transcriptions themselves agree with torch (needs no package)."""
    want = expected(case)
    grad, x0 = problem(case["problem"])
    ref = R.trajectory(case["algo"], grad, x0, case["steps"], **case["hyper"])
    np.testing.assert_allclose(ref, want, rtol=RTOL, atol=ATOL)


@_params(CASES)
def test_torch_case_is_well_conditioned(case):
    """Relative noise of 1e-15 injected into every quantity of every update
    of the transcription moves the trajectory by less than a tenth of the
    tolerance, so a failure of the comparison above is not bad luck."""
    grad, x0 = problem(case["problem"])
    ref = R.trajectory(case["algo"], grad, x0, case["steps"], **case["hyper"])
    for seed in range(3):
        prng = np.random.default_rng(seed)

        def noise(a):
            return a * (1.0 + 1e-15 * prng.uniform(-1.0, 1.0, np.shape(a)))

        noisy = R.trajectory(case["algo"], grad, x0, case["steps"],
                             noise=noise, **case["hyper"])
        excess = np.abs(noisy - ref) / (RTOL * np.abs(ref) + ATOL)
        assert excess.max() < 0.1, excess.max()
