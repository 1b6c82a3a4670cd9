"""Small fits: solve() with L-BFGS (and bounds), BFGS and first-order rules.

Independent references: scipy.optimize's solutions and evaluation counts for
the same problems and starts, and test functions with known minima.
"""

import logging

import autograd.numpy as anp
import numpy as np
import pytest
import scipy.optimize as so

import npdownhill as dh


def rosen2(p):
    return (1 - p["x"]) ** 2 + 100 * (p["y"] - p["x"] ** 2) ** 2


def start2():
    return {"x": np.array(-1.2), "y": np.array(1.0)}


def chained_rosenbrock(p):                      # scipy.optimize.rosen
    x = p["x"]
    return anp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def extended_rosenbrock(p):                     # independent pairs (x1, x2), (x3, x4), ...
    x = p["x"]
    return anp.sum(100.0 * (x[1::2] - x[::2] ** 2) ** 2 + (1 - x[::2]) ** 2)


def extended_rosenbrock_np(x):
    return np.sum(100.0 * (x[1::2] - x[::2] ** 2) ** 2 + (1 - x[::2]) ** 2)


def extended_rosenbrock_grad(x):
    g = np.zeros_like(x)
    r = x[1::2] - x[::2] ** 2
    g[::2] = -400.0 * x[::2] * r - 2 * (1 - x[::2])
    g[1::2] = 200.0 * r
    return g


def rosenbrock_start(n):
    x0 = np.ones(n)
    x0[::2] = -1.2
    return x0


def logistic_problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 20))
    w_true = rng.normal(size=20)
    y = (rng.uniform(size=1000) < 1 / (1 + np.exp(-X @ w_true))).astype(float)
    return X, y


def logistic_loss(p, X, y):
    z = anp.dot(X, p["w"]) + p["b"]
    return anp.mean(anp.logaddexp(0.0, z) - y * z) + 0.01 * anp.sum(p["w"] ** 2)


def logistic_np(v, X, y):
    z = X @ v[:-1] + v[-1]
    return np.mean(np.logaddexp(0.0, z) - y * z) + 0.01 * np.sum(v[:-1] ** 2)


def logistic_grad_np(v, X, y):
    z = X @ v[:-1] + v[-1]
    r = (1 / (1 + np.exp(-z)) - y) / len(y)
    return np.concatenate([X.T @ r + 0.02 * v[:-1], [r.sum()]])


# ---------------------------------------------------------------------------
# against scipy: the same solution, in about as many evaluations
# ---------------------------------------------------------------------------

def test_lbfgs_solves_2d_rosenbrock_like_scipy():
    params = start2()
    result = dh.solve(rosen2, params)
    reference = so.minimize(so.rosen, [-1.2, 1.0], jac=so.rosen_der, method="L-BFGS-B")
    assert result.success and result.status == 0 and "converged" in result.message
    assert result.x is params
    np.testing.assert_allclose([params["x"], params["y"]], [1.0, 1.0], atol=1e-6)
    assert result.fun <= max(reference.fun, 1e-12)
    assert result.nfev <= 1.2 * reference.nfev
    assert result.nfev == result.njev


@pytest.mark.parametrize("loss, scipy_f, scipy_g", [
    (chained_rosenbrock, so.rosen, so.rosen_der),
    (extended_rosenbrock, extended_rosenbrock_np, extended_rosenbrock_grad),
], ids=["chained", "extended"])
def test_lbfgs_solves_100d_rosenbrock_like_scipy(loss, scipy_f, scipy_g):
    x0 = rosenbrock_start(100)
    params = {"x": x0.copy()}
    result = dh.solve(loss, params)
    reference = so.minimize(scipy_f, x0, jac=scipy_g, method="L-BFGS-B")
    assert result.success
    # no further above the optimum (0) than twice where scipy's stop leaves it, or 1e-8
    assert result.fun <= max(2 * reference.fun, 1e-8)
    assert result.nfev <= 1.2 * reference.nfev
    np.testing.assert_allclose(params["x"], np.ones(100), atol=1e-3)


def test_lbfgs_fits_a_logistic_regression_like_scipy():
    X, y = logistic_problem()
    params = {"w": np.zeros(20), "b": np.zeros(())}
    result = dh.solve(logistic_loss, params, args=(X, y))
    reference = so.minimize(logistic_np, np.zeros(21), args=(X, y), jac=logistic_grad_np,
                            method="L-BFGS-B")
    optimum = so.minimize(logistic_np, reference.x, args=(X, y), jac=logistic_grad_np,
                          method="L-BFGS-B", options=dict(gtol=1e-12, ftol=1e-15)).fun
    assert result.success
    # no further above the optimum than twice where scipy's default stop leaves it
    assert result.fun - optimum <= max(2 * (reference.fun - optimum), 1e-8 * abs(optimum))
    np.testing.assert_allclose(np.append(params["w"], params["b"]), reference.x, atol=1e-4)
    assert result.nfev <= 1.2 * reference.nfev


def test_bfgs_matches_scipy_and_gives_the_inverse_hessian():
    params = start2()
    result = dh.solve(rosen2, params, method="bfgs")
    reference = so.minimize(so.rosen, [-1.2, 1.0], jac=so.rosen_der, method="BFGS")
    assert result.success and result.method == "bfgs"
    np.testing.assert_allclose([params["x"], params["y"]], reference.x, atol=1e-5)
    # the inverse Hessian approximation is close to the true one at the minimum
    hess = np.array([[802.0, -400.0], [-400.0, 200.0]])
    np.testing.assert_allclose(result.hess_inv, np.linalg.inv(hess), rtol=0.05, atol=1e-3)
    assert result.nfev <= 1.5 * reference.nfev


def test_bfgs_refuses_more_parameters_than_a_dense_matrix_allows():
    with pytest.raises(ValueError, match=r"5001 parameters are too many.*use 'lbfgs'"):
        dh.BFGS(lambda p: anp.sum(p ** 2), np.zeros(5001))


# ---------------------------------------------------------------------------
# test functions with known minima
# ---------------------------------------------------------------------------

HIMMELBLAU_MINIMA = [(3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186),
                     (3.584428, -1.848126)]


def himmelblau(p):
    x, y = p[0], p[1]
    return (x ** 2 + y - 11) ** 2 + (x + y ** 2 - 7) ** 2


def beale(p):
    x, y = p[0], p[1]
    return ((1.5 - x + x * y) ** 2 + (2.25 - x + x * y ** 2) ** 2
            + (2.625 - x + x * y ** 3) ** 2)


def matyas(p):
    return 0.26 * (p[0] ** 2 + p[1] ** 2) - 0.48 * p[0] * p[1]


@pytest.mark.parametrize("method", ["lbfgs", "bfgs"])
@pytest.mark.parametrize("start", [(-40.0, 35.0), (25.0, -30.0)])
def test_himmelblau_from_far_starts_ends_at_one_of_its_minima(method, start):
    x = np.array(start)
    result = dh.solve(himmelblau, x, method=method)
    assert result.success
    assert min(np.hypot(x[0] - a, x[1] - b) for a, b in HIMMELBLAU_MINIMA) < 1e-5
    assert result.fun < 1e-9


@pytest.mark.parametrize("method", ["lbfgs", "bfgs"])
@pytest.mark.parametrize("loss, start, minimum", [
    (beale, (1.0, 1.0), (3.0, 0.5)),
    (matyas, (5.0, -7.0), (0.0, 0.0)),
    (lambda p: 1e4 * anp.sum(p ** 2), (3.0, -2.0), (0.0, 0.0)),   # a steep quadratic
], ids=["beale", "matyas", "steep"])
def test_known_minima(method, loss, start, minimum):
    x = np.array(start)
    result = dh.solve(loss, x, method=method)
    assert result.success, result.message
    np.testing.assert_allclose(x, minimum, atol=1e-5)
    np.testing.assert_allclose(dh.FitResult(result).jac, np.zeros(2), atol=1e-4)


# ---------------------------------------------------------------------------
# bounds
# ---------------------------------------------------------------------------

def test_active_bounds_give_scipys_solution():
    bounds = [(-1.5, 0.8), (-0.5, 2.0)]
    params = start2()
    result = dh.solve(rosen2, params, bounds={"x": bounds[0], "y": bounds[1]})
    reference = so.minimize(so.rosen, [-1.2, 1.0], jac=so.rosen_der, method="L-BFGS-B",
                            bounds=bounds)
    assert result.success
    np.testing.assert_allclose([params["x"], params["y"]], reference.x, rtol=1e-8, atol=1e-8)
    assert params["x"] == 0.8                                # exactly at its bound
    assert result.nfev <= 1.5 * reference.nfev
    # the gradient test is on the projected gradient: the raw one is not small
    assert abs(result.jac["x"]) > 0.1


def test_inactive_bounds_change_nothing():
    free, boxed = start2(), start2()
    r1 = dh.solve(rosen2, free)
    r2 = dh.solve(rosen2, boxed, bounds=(-5.0, 5.0))
    assert r1.nfev == r2.nfev
    assert free["x"] == boxed["x"] and free["y"] == boxed["y"]


def test_a_start_outside_the_bounds_is_clipped_with_a_warning(caplog):
    params = {"x": np.array(-1.2), "y": np.array(1.0)}
    with caplog.at_level(logging.WARNING, logger="npdownhill"):
        result = dh.solve(rosen2, params, bounds={"x": (0.0, 2.0), "y": (1.5, 3.0)})
    assert any("outside the bounds" in r.getMessage() and "clipped" in r.getMessage()
               for r in caplog.records)
    reference = so.minimize(so.rosen, [-1.2, 1.0], jac=so.rosen_der, method="L-BFGS-B",
                            bounds=[(0.0, 2.0), (1.5, 3.0)])
    np.testing.assert_allclose([params["x"], params["y"]], reference.x, rtol=1e-8)
    assert result.success


def test_array_bounds_on_a_vector_leaf():
    x = np.zeros(5)
    target = np.array([3.0, -3.0, 0.5, 2.0, -1.0])
    dh.solve(lambda p: anp.sum((p["x"] - target) ** 2), {"x": x},
             bounds={"x": (np.full(5, -1.0), [1.0, 1.0, 1.0, 1.0, 1.0])})
    np.testing.assert_allclose(x, np.clip(target, -1, 1), atol=1e-8)


@pytest.mark.parametrize("bounds, match", [
    ({"z": (0, 1)}, r"'z' is not a leaf name.*did you mean"),
    ({"x": (2.0, 1.0)}, r"leaf 'x' has low > high"),
    ({"x": (np.nan, 1.0)}, r"low bound of leaf 'x' holds NaN"),
    ({"x": (np.zeros(3), 1.0)}, r"low bound of leaf 'x' must be a number or an array "
                                r"broadcastable"),
])
def test_bad_bounds_are_refused_naming_the_leaf(bounds, match):
    params = start2()
    with pytest.raises(ValueError, match=match):
        dh.solve(rosen2, params, bounds=bounds)
    assert params["x"] == -1.2


def test_bounds_with_another_method_are_refused():
    with pytest.raises(ValueError, match=r"bounds are supported by method='lbfgs'"):
        dh.solve(rosen2, start2(), method="bfgs", bounds={"x": (0, 1)})


# ---------------------------------------------------------------------------
# NaN regions, first-order rules, callbacks, interrupts, bad input
# ---------------------------------------------------------------------------

def test_a_region_where_the_loss_is_nan_shrinks_the_step():
    # log(2 - x) is NaN beyond x = 2; the minimum of (x - 3)^2 - 10 log(2 - x) is inside
    def loss(x):
        return (x[0] - 3.0) ** 2 - 10 * anp.log(2.0 - x[0])

    x = np.array([1.9])
    with np.errstate(invalid="ignore", divide="ignore"):
        result = dh.solve(loss, x)
    assert result.success and np.isfinite(result.fun)
    # d/dx: 2 (x - 3) + 10 / (2 - x) = 0  ->  x = (5 - sqrt(21)) / 2 ... the root below 2
    np.testing.assert_allclose(x[0], 2.5 - np.sqrt(0.25 + 5), atol=1e-6)


def test_a_first_order_rule_runs_full_batch_to_the_same_tolerances():
    a = np.diag([1.0, 4.0])
    x = np.array([2.0, -1.0])
    result = dh.solve(lambda p: 0.5 * anp.dot(p, anp.dot(a, p)), x, method="sgd",
                      learning_rate=0.2, ftol=0.0)
    assert result.success and result.method == "sgd" and "gtol" in result.message
    assert np.abs(a @ x).max() <= 1e-5
    assert result.nfev == result.nit + 1                       # one evaluation per step
    capped = dh.solve(lambda p: 0.5 * anp.dot(p, anp.dot(a, p)), np.array([2.0, -1.0]),
                      method="sgd", learning_rate=0.2, max_iter=5)
    assert capped.status == 1 and not capped.success and capped.nit == 5


def test_a_first_order_rule_leaves_the_best_point_in_the_params():
    x = np.array([1.0])
    result = dh.solve(lambda p: anp.sum(p ** 2), x, method="sgd", learning_rate=1.05,
                      max_iter=20)                               # diverges, slowly
    assert result.status == 1
    assert x[0] == 1.0 and result.fun == 1.0                   # the start was the best


def test_the_callback_sees_the_fit_and_can_stop_it():
    seen = []

    def callback(so_far):
        seen.append((so_far.nit, so_far.fun))
        if so_far.nit == 3:
            raise StopIteration

    params = start2()
    result = dh.solve(rosen2, params, callback=callback)
    assert result.status == 2 and not result.success and result.nit == 3
    assert [n for n, _ in seen] == [1, 2, 3]
    assert seen[-1][1] == result.fun == rosen2(params)


def test_an_interrupt_ends_the_fit_with_the_best_point():
    calls = []

    def loss(p):
        calls.append(1)
        if len(calls) == 15:
            raise KeyboardInterrupt
        return rosen2(p)

    params = start2()
    result = dh.solve(loss, params)
    assert result.status == 3 and "interrupted" in result.message
    # the loss autograd computed at the params (equal to a plain call up to rounding)
    assert result.fun == pytest.approx(rosen2(params), rel=1e-14)
    assert result.fun < rosen2(start2())


def test_the_result_reports_the_solution():
    params = start2()
    result = dh.solve(rosen2, params)
    grad = dh.build("lbfgs", rosen2, params)._loss_and_grads((), "t")[1]
    np.testing.assert_allclose(result.jac["x"], grad["x"], rtol=1e-12)
    assert set(result) >= {"x", "fun", "jac", "nit", "nfev", "njev", "status", "success",
                           "message"}
    text = str(result)
    assert "message: 'converged" in text and "nfev" in text


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(args=np.zeros(3)), TypeError, r"args must be a tuple.*args=\(x,\)"),
    (dict(method="lbgfs"), ValueError, r"unknown algorithm.*did you mean 'lbfgs'"),
    (dict(gtol=-1.0), ValueError, r"gtol must be a finite number >= 0"),
    (dict(ftol="0"), TypeError, r"ftol must be a number"),
    (dict(max_iter=0), ValueError, r"max_iter must be an integer >= 1"),
    (dict(callback=3), TypeError, r"callback must be callable"),
    (dict(patience=3), TypeError, r"'patience' is an option of the training run"),
    (dict(momentum=0.9), ValueError, r"LBFGS does not take momentum"),
])
def test_bad_arguments_are_refused(kwargs, error, match):
    params = start2()
    with pytest.raises(error, match=match):
        dh.solve(rosen2, params, **kwargs)
    assert params["x"] == -1.2 and params["y"] == 1.0


def test_a_loss_that_cannot_take_the_args_is_refused():
    with pytest.raises(TypeError, match=r"takes 1 positional argument"):
        dh.solve(rosen2, start2(), args=(np.zeros(2),))


def test_frozen_leaves_stay_put():
    params = {"x": np.array(0.5), "y": np.array(1.0)}
    dh.solve(rosen2, params, frozen=["y"])
    assert params["y"] == 1.0
    assert params["x"] == pytest.approx(1.0, abs=1e-5)          # the best x for y = 1


def test_float32_params_are_fitted_in_float32():
    x = np.array([-1.2, 1.0], dtype=np.float32)
    result = dh.solve(lambda p: (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2, x)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, [1.0, 1.0], atol=2e-3)
    assert result.status in (0, 4)


# ---------------------------------------------------------------------------
# quasi-Newton rules in minimize / iterate
# ---------------------------------------------------------------------------

def test_minimize_runs_lbfgs_full_batch_and_stops_on_convergence():
    X, y = logistic_problem()
    params = {"w": np.zeros(20), "b": np.zeros(())}
    result = dh.minimize(logistic_loss, params, [X, y], algo="lbfgs", validate_every=1,
                         max_epochs=500)
    assert result.stop in ("gtol", "ftol") and result.epochs < 60
    reference = so.minimize(logistic_np, np.zeros(21), args=(X, y), jac=logistic_grad_np,
                            method="L-BFGS-B")
    np.testing.assert_allclose(np.append(params["w"], params["b"]), reference.x, atol=1e-4)


def test_minimize_refuses_minibatches_for_a_full_batch_rule():
    X, y = logistic_problem()
    with pytest.raises(ValueError, match=r"LBFGS runs full batch.*32 batches per epoch.*"
                                         r"batch_size=0"):
        dh.minimize(logistic_loss, {"w": np.zeros(20), "b": np.zeros(())}, [X, y],
                    algo="lbfgs", batch_size=32)


def test_quasi_newton_rules_refuse_the_gradient_verbs():
    opt = dh.LBFGS(rosen2, start2())
    for verb in ("update", "apply", "get_updates"):
        with pytest.raises(TypeError, match=r"evaluates the loss in its line search"):
            getattr(opt, verb)({"x": np.array(1.0), "y": np.array(1.0)})


def test_solve_refuses_gradient_accumulation():
    """solve evaluates the whole data set each iteration; an iteration that only
    accumulated would not move and would look converged (ftol)."""
    def loss(p, x):
        return anp.sum((p["w"] - x) ** 2)

    params = {"w": np.zeros(3)}
    with pytest.raises(ValueError, match=r"solve\(accumulate=2\): solve evaluates the whole "
                                         r"data set at every iteration"):
        dh.solve(loss, params, args=(np.ones(3),), method="adam", accumulate=2)
    np.testing.assert_array_equal(params["w"], 0.0)
