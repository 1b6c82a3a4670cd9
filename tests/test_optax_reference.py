"""npdownhill's optimizers against trajectories recorded from optax.

The expected trajectories live in data/optax_trajectories.npz, written by
data/make_optax_reference.py (run by hand with jax float64 on the CPU; jax
and optax are not needed here). Each case is 100 float64 updates on the
stored random quadratic or on Rosenbrock from (-3, -3), with the gradients
of reference.py handed to the optimizer.

Tolerance: rtol 1e-9, atol 1e-12, as for the torch data (a frozen artifact:
jax orders the same arithmetic differently, and the gradient is re-evaluated
here with this machine's BLAS). The transcriptions of reference.py reproduce
the file to at worst 1.3e-11 relative. Every case but the two marked
``conditioned: false`` (Prodigy from optax's d0 1e-6, whose growth phase
amplifies rounding about a millionfold) passes the conditioning test below.
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

DATA = os.path.join(HERE, "data", "optax_trajectories.npz")
RTOL, ATOL = 1e-9, 1e-12

OPTAX_RULES = {name for name, rec in R.RECORDS.items() if rec.optax_counterpart}


def _load():
    with np.load(DATA, allow_pickle=False) as npz:
        data = {key: npz[key] for key in npz.files}
    return data, json.loads(str(data["cases"]))


try:
    DATA_ARRAYS, CASES = _load()
    _LOAD_ERROR = None
except Exception as exc:  # noqa: BLE001  (report it in a test, not at collection)
    DATA_ARRAYS, CASES = {}, []
    _LOAD_ERROR = exc


def test_data_file_loads():
    assert _LOAD_ERROR is None, f"cannot load {DATA}: {_LOAD_ERROR!r}"
    assert str(DATA_ARRAYS["optax_version"]) and str(DATA_ARRAYS["jax_version"])
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids))
    assert {c["problem"]["name"] for c in CASES} == {"quadratic", "rosenbrock"}


def test_every_optax_counterpart_has_cases():
    """The rules recorded with optax_counterpart=True are exactly those the
    data file has cases for, each with weight decay among them."""
    assert _LOAD_ERROR is None, f"cannot load {DATA}: {_LOAD_ERROR!r}"
    in_file = {c["algo"] for c in CASES}
    assert in_file == OPTAX_RULES, (f"{DATA} has cases for {sorted(in_file)}; reference.py "
                                    f"records optax counterparts {sorted(OPTAX_RULES)} "
                                    f"(regenerate with data/make_optax_reference.py)")
    decayed = {c["algo"] for c in CASES if c["hyper"].get("weight_decay")}
    assert decayed == OPTAX_RULES


def test_only_prodigys_default_d0_is_marked_ill_conditioned():
    marked = {c["id"] for c in CASES if not c["conditioned"]}
    assert marked == {"prodigy-d0default-quadratic", "prodigy-d0default-rosenbrock"}
    for c in CASES:
        if c["id"] in marked:
            assert c["hyper"]["d0"] == 1e-6 and c["hyper"]["learning_rate"] == 1.0


def test_stored_problems_are_the_reference_problems():
    A, b, x0 = R.quadratic_data(7, 0)
    np.testing.assert_allclose(DATA_ARRAYS["quadratic_A"], A, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(DATA_ARRAYS["quadratic_b"], b)
    np.testing.assert_array_equal(DATA_ARRAYS["quadratic_x0"], x0)
    np.testing.assert_array_equal(DATA_ARRAYS["rosenbrock_x0"], R.rosenbrock()[3])


def problem(spec):
    """(grad, x0) of a stored problem, built from the stored arrays."""
    if spec["name"] == "quadratic":
        assert (spec["n"], spec["seed"]) == (7, 0)
        _, grad, _, x0 = R.quadratic_from(DATA_ARRAYS["quadratic_A"], DATA_ARRAYS["quadratic_b"],
                                          DATA_ARRAYS["quadratic_x0"])
        return grad, x0
    if spec["name"] == "rosenbrock":
        _, grad, _, _ = R.rosenbrock()
        return grad, DATA_ARRAYS["rosenbrock_x0"].copy()
    raise KeyError(spec["name"])


def expected(case):
    traj = DATA_ARRAYS[case["id"]]
    assert traj.dtype == np.float64 and traj.shape[0] == case["steps"] + 1
    return traj


def _params(cases):
    return pytest.mark.parametrize("case", cases, ids=[c["id"] for c in cases])


@_params(CASES)
def test_package_matches_optax(case):
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
    assert np.abs(want[-1] - want[0]).max() > 0.05          # the case moves
    np.testing.assert_allclose(np.array(xs), want, rtol=RTOL, atol=ATOL)


@_params(CASES)
def test_reference_matches_optax(case):
    """The transcriptions themselves agree with optax (needs no package)."""
    want = expected(case)
    grad, x0 = problem(case["problem"])
    ref = R.trajectory(case["algo"], grad, x0, case["steps"], **case["hyper"])
    np.testing.assert_allclose(ref, want, rtol=RTOL, atol=ATOL)


@_params([c for c in CASES if c["conditioned"]])
def test_optax_case_is_well_conditioned(case):
    """Relative noise of 1e-15 injected into every quantity of every update
    of the transcription moves the trajectory by less than a tenth of the
    tolerance, so a failure of the comparisons above is not bad luck."""
    grad, x0 = problem(case["problem"])
    ref = R.trajectory(case["algo"], grad, x0, case["steps"], **case["hyper"])
    for seed in range(3):
        prng = np.random.default_rng(seed)

        def noise(a):
            return a * (1.0 + 1e-15 * prng.uniform(-1.0, 1.0, np.shape(a)))

        noisy = R.trajectory(case["algo"], grad, x0, case["steps"], noise=noise,
                             **case["hyper"])
        excess = np.abs(noisy - ref) / (RTOL * np.abs(ref) + ATOL)
        assert excess.max() < 0.1, excess.max()
