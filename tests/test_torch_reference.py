"""npdownhill's optimizers against trajectories recorded from torch.optim.

The expected trajectories live in data/torch_trajectories.npz, written by
data/make_torch_reference.py (run by hand; torch is not needed here). Each
case is 100 float64 updates on the stored random quadratic or on Rosenbrock
from (-3, -3), with the gradients of reference.py handed to the optimizer;
the tolerance (rtol 1e-9, atol 1e-12) is explained in recorded.py. The
transcriptions of reference.py reproduce the file to at worst 1.3e-12
relative, and test_torch_case_is_well_conditioned shows that no case
amplifies 1e-15 noise beyond a tenth of the tolerance.
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

DATA = Recorded(os.path.join(HERE, "data", "torch_trajectories.npz"))

# Which rules run here is the data file's own list of cases; the records of
# reference.py only say which rules torch.optim has a counterpart of
# (torch_counterpart), and test_every_torch_counterpart_has_cases checks that
# the file agrees.
TORCH_RULES = {name for name, rec in R.RECORDS.items() if rec.torch_counterpart}


def test_data_file_loads():
    DATA.check_loaded()
    assert str(DATA.arrays["torch_version"])


def test_every_torch_counterpart_has_cases():
    """The rules recorded in reference.py with torch_counterpart=True are
    exactly the rules the data file has cases for."""
    DATA.check_loaded()
    in_file = {c["algo"] for c in DATA.cases}
    missing = sorted(TORCH_RULES - in_file)
    assert not missing, (f"recorded in tests/reference.py with torch_counterpart=True "
                         f"but without cases in {DATA.path}: {missing} (regenerate it "
                         f"with data/make_torch_reference.py)")
    unexpected = sorted(in_file - TORCH_RULES)
    assert not unexpected, (f"{DATA.path} has cases for rules that reference.py does not "
                            f"record with torch_counterpart=True: {unexpected}")


def test_stored_quadratic_is_reference_quadratic():
    DATA.check_stored_problems()


@parametrize(DATA.cases)
def test_package_matches_torch(case):
    if dh is None:
        pytest.fail(f"npdownhill cannot be imported: {_IMPORT_ERROR!r}")
    grad, x0 = DATA.problem(case["problem"])
    np.testing.assert_allclose(package_trajectory(dh, case, grad, x0), DATA.expected(case),
                               rtol=RTOL, atol=ATOL)


@parametrize(DATA.cases)
def test_reference_matches_torch(case):
    """The transcriptions themselves agree with torch (needs no package)."""
    grad, x0 = DATA.problem(case["problem"])
    ref = R.trajectory(case["algo"], grad, x0, case["steps"], **case["hyper"])
    np.testing.assert_allclose(ref, DATA.expected(case), rtol=RTOL, atol=ATOL)


@parametrize(DATA.cases)
def test_torch_case_is_well_conditioned(case):
    assert_well_conditioned(case, *DATA.problem(case["problem"]))
