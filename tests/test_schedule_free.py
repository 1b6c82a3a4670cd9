"""ScheduleFreeSGD and ScheduleFreeAdamW against optax, and what is special about them.

The trajectories in data/optax_evaluation.npz (its "schedule_free" cases)
were recorded from optax.contrib (data/make_optax_evaluation_reference.py,
run by hand; jax is not needed here): both the params (the points y where gradients are taken) and
optax's schedule_free_eval_params (the averages x), 100 float64 updates
each. Tolerance rtol 1e-9, atol 1e-12, as for the torch data (a frozen
artifact, the same arithmetic in another order). The shared battery
(test_algorithms.py, test_reference.py, test_checkpoint.py) covers the
rest: convergence, dtypes, trees, state dicts, resume in a new process.
"""

import json
import os
import sys

import numpy as np
import pytest

import npdownhill as dh
from npdownhill.errors import NonFiniteError

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reference as R  # noqa: E402
from recorded import trained_and_evaluated  # noqa: E402

DATA = os.path.join(HERE, "data", "optax_evaluation.npz")
RTOL, ATOL = 1e-9, 1e-12
NAMES = ["schedule_free_sgd", "schedule_free_adamw"]

with np.load(DATA, allow_pickle=False) as _npz:
    ARRAYS = {key: _npz[key] for key in _npz.files}
CASES = [c for c in json.loads(str(ARRAYS["cases"])) if c["kind"] == "schedule_free"]


def _problem(name):
    if name == "quadratic":
        A, b, x0 = ARRAYS["quadratic_A"], ARRAYS["quadratic_b"], ARRAYS["quadratic_x0"]
        return (lambda x: A @ x - b), x0
    _, grad, _, _ = R.rosenbrock()
    return grad, ARRAYS["rosenbrock_x0"]


def test_the_file_covers_both_rules_with_and_without_warmup_and_decay():
    for algo in NAMES:
        mine = [c for c in CASES if c["algo"] == algo]
        assert {c["problem"] for c in mine} == {"quadratic", "rosenbrock"}
        assert any(c["hyper"].get("warmup_steps") for c in mine)
        assert any(c["hyper"].get("weight_decay") for c in mine)
        assert any(not c["hyper"] for c in mine) or algo == "schedule_free_sgd"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_trajectory_and_average_match_optax(case):
    ys, xs, opt = trained_and_evaluated(dh, case, *_problem(case["problem"]))
    np.testing.assert_allclose(ys, ARRAYS[case["id"] + ".y"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(xs, ARRAYS[case["id"] + ".x"], rtol=RTOL, atol=ATOL)
    # and the engine's own buffers: y = (1 - beta1) z + beta1 x
    b = opt.hyper["beta1"]
    np.testing.assert_allclose((1 - b) * opt.state["z"] + b * opt.state["x"], ys[-1],
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("algo", NAMES)
def test_the_transcription_agrees_with_the_averages_it_returns(algo):
    grad, x0 = _problem("quadratic")
    ys, xs = R.schedule_free_averages(algo, grad, x0, 50, learning_rate=0.01)
    np.testing.assert_allclose(ys, R.trajectory(algo, grad, x0, 50, learning_rate=0.01),
                               rtol=1e-12)
    assert not np.allclose(xs[-1], ys[-1])


@pytest.mark.parametrize("algo", NAMES)
def test_before_the_first_update_the_evaluation_params_are_the_params(algo):
    x = np.array([1.0, -2.0])
    opt = dh.build(algo, None, x)
    assert not opt.evaluates_elsewhere
    np.testing.assert_array_equal(opt.evaluation_params(), x)
    opt.apply(np.array([0.5, 0.5]))
    assert opt.evaluates_elsewhere


@pytest.mark.parametrize("algo", NAMES)
def test_warmup_starts_from_a_zero_weight(algo):
    """With warm-up 4, update t uses lr t/4; c_t = (max lr)^2 / sum: 1 at the first update."""
    x = np.array([1.0, -2.0])
    opt = dh.build(algo, None, x, learning_rate=0.4, warmup_steps=4)
    opt.apply(np.array([1.0, 1.0]))
    assert float(opt.state["max_lr"]) == pytest.approx(0.1)
    assert float(opt.state["weight_sum"]) == pytest.approx(0.01)
    np.testing.assert_allclose(opt.state["x"], opt.state["z"], rtol=1e-15)   # c_1 = 1
    for _ in range(5):
        opt.apply(np.array([1.0, 1.0]))
    assert float(opt.state["max_lr"]) == pytest.approx(0.4)
    assert float(opt.state["weight_sum"]) == pytest.approx(0.01 + 0.04 + 0.09 + 3 * 0.16)


@pytest.mark.parametrize("algo", NAMES)
@pytest.mark.parametrize("when", [0, 3])
def test_a_refused_update_changes_nothing(algo, when):
    x = np.array([0.5, -1.0, 2.0])
    opt = dh.build(algo, None, x, learning_rate=0.1, weight_decay=0.1)
    for _ in range(when):
        opt.apply(np.array([1.0, -2.0, 0.5]))
    before = {k: v.copy() for k, v in opt.state.items()}
    x_before, eval_before = x.copy(), opt.evaluation_params()
    with pytest.raises(NonFiniteError):
        opt.apply(np.array([1.0, np.inf, 0.5]))
    np.testing.assert_array_equal(x, x_before)
    for k, v in opt.state.items():
        np.testing.assert_array_equal(v, before[k])
    np.testing.assert_array_equal(opt.evaluation_params(), eval_before)
    assert opt.updates == when


@pytest.mark.parametrize("cls", [dh.ScheduleFreeSGD, dh.ScheduleFreeAdamW])
@pytest.mark.parametrize("kwargs, kind, message", [
    (dict(beta1=0), ValueError, r"beta1 must be in \(0, 1\]; got 0$"),
    (dict(beta1=1.5), ValueError, r"beta1 must be in \(0, 1\]; got 1\.5$"),
    (dict(warmup_steps=-1), ValueError, r"warmup_steps must be >= 0; got -1$"),
    (dict(warmup_steps=2.5), ValueError, r"warmup_steps must be an integer; got 2\.5$"),
    (dict(weight_lr_power=-1.0), ValueError, r"weight_lr_power must be >= 0; got -1\.0$"),
    (dict(momentum=0.5), ValueError, r"takes no momentum: the interpolation beta1"),
    (dict(nesterov=True), ValueError, r"True\): \w+ takes no momentum"),
    (dict(frozen=["w"], weight_decay=0.1), ValueError, r"freeze leaves without weight decay"),
])
def test_bad_values_are_refused_with_their_name(cls, kwargs, kind, message):
    key = next(iter(kwargs))
    with pytest.raises(kind, match=rf"^{cls.__name__}\({key}=.*{message}"):
        cls(None, {"w": np.zeros(2)}, **kwargs)


def test_beta1_one_is_primal_averaging():
    """beta1 = 1: gradients are taken at the average itself, y = x."""
    x = np.array([1.0, -2.0])
    opt = dh.ScheduleFreeSGD(None, x, learning_rate=0.1, beta1=1.0)
    for _ in range(5):
        opt.apply(2 * x)
        np.testing.assert_allclose(opt.evaluation_params(), x, rtol=1e-15)


def test_frozen_leaves_never_move_nor_their_average():
    params = {"w": np.array([1.0, 2.0]), "b": np.array(3.0)}
    opt = dh.ScheduleFreeAdamW(None, params, learning_rate=0.1, frozen=["b"])
    for _ in range(5):
        opt.apply({"w": params["w"], "b": np.array(1.0)})
    assert params["b"] == 3.0 and opt.evaluation_params()["b"] == 3.0
    assert not np.array_equal(params["w"], [1.0, 2.0])


def test_changing_beta1_mid_run_keeps_the_average():
    x = np.array([1.0, -2.0])
    opt = dh.ScheduleFreeSGD(None, x, learning_rate=0.1)
    for _ in range(3):
        opt.apply(2 * x)
    avg = opt.evaluation_params()
    opt.set_hyperparameters(beta1=0.5)
    np.testing.assert_array_equal(opt.evaluation_params(), avg)
