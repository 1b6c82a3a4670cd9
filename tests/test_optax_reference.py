"""npdownhill's optimizers against trajectories recorded from optax.

The expected trajectories live in data/optax_trajectories.npz, written by
data/make_optax_reference.py (run by hand with jax float64 on the CPU; jax
and optax are not needed here). Each case is 100 float64 updates on the
stored random quadratic or on Rosenbrock from (-3, -3), with the gradients
of reference.py handed to the optimizer; the tolerance (rtol 1e-9, atol
1e-12, as for the torch data) is explained in recorded.py. The
transcriptions of reference.py reproduce the file to at worst 1.3e-11
relative. Every case but the two marked ``conditioned: false`` (Prodigy from
optax's d0 1e-6, whose growth phase amplifies rounding about a millionfold)
passes the conditioning test.
"""

import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reference as R  # noqa: E402
from recorded import ATOL, RTOL, Recorded, assert_well_conditioned, package_trajectory  # noqa: E402
from recorded import parametrize  # noqa: E402

try:
    import npdownhill as dh
    _IMPORT_ERROR = None
except ImportError as exc:  # fail every test, but do not abort collection
    dh = None
    _IMPORT_ERROR = exc

DATA = Recorded(os.path.join(HERE, "data", "optax_trajectories.npz"))

OPTAX_RULES = {name for name, rec in R.RECORDS.items() if rec.optax_counterpart}


def test_data_file_loads():
    DATA.check_loaded()
    assert str(DATA.arrays["optax_version"]) and str(DATA.arrays["jax_version"])


def test_every_optax_counterpart_has_cases():
    """The rules recorded with optax_counterpart=True are exactly those the
    data file has cases for, each with weight decay among them."""
    DATA.check_loaded()
    in_file = {c["algo"] for c in DATA.cases}
    assert in_file == OPTAX_RULES, (f"{DATA.path} has cases for {sorted(in_file)}; "
                                    f"reference.py records optax counterparts "
                                    f"{sorted(OPTAX_RULES)} (regenerate with "
                                    f"data/make_optax_reference.py)")
    decayed = {c["algo"] for c in DATA.cases if c["hyper"].get("weight_decay")}
    assert decayed == OPTAX_RULES


def test_only_prodigys_default_d0_is_marked_ill_conditioned():
    marked = {c["id"] for c in DATA.cases if not c["conditioned"]}
    assert marked == {"prodigy-d0default-quadratic", "prodigy-d0default-rosenbrock"}
    for c in DATA.cases:
        if c["id"] in marked:
            assert c["hyper"]["d0"] == 1e-6 and c["hyper"]["learning_rate"] == 1.0


def test_stored_problems_are_the_reference_problems():
    DATA.check_stored_problems()


@parametrize(DATA.cases)
def test_package_matches_optax(case):
    if dh is None:
        pytest.fail(f"npdownhill cannot be imported: {_IMPORT_ERROR!r}")
    want = DATA.expected(case)
    grad, x0 = DATA.problem(case["problem"])
    assert np.abs(want[-1] - want[0]).max() > 0.05          # the case moves
    np.testing.assert_allclose(package_trajectory(dh, case, grad, x0), want,
                               rtol=RTOL, atol=ATOL)


@parametrize(DATA.cases)
def test_reference_matches_optax(case):
    """The transcriptions themselves agree with optax (needs no package)."""
    grad, x0 = DATA.problem(case["problem"])
    ref = R.trajectory(case["algo"], grad, x0, case["steps"], **case["hyper"])
    np.testing.assert_allclose(ref, DATA.expected(case), rtol=RTOL, atol=ATOL)


@parametrize([c for c in DATA.cases if c["conditioned"]])
def test_optax_case_is_well_conditioned(case):
    assert_well_conditioned(case, *DATA.problem(case["problem"]))
