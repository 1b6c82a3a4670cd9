"""Least squares with exact derivatives: npdownhill.lsq and npdownhill.derivatives against
scipy and known answers.

The references are independent of the code under test: scipy's MINPACK
(``least_squares(method='lm')`` and ``curve_fit``), central finite
differences, ``autograd.jacobian`` on a flat wrapper, analytic derivatives,
and the minima published by Moré, Garbow and Hillstrom (1981), "Testing
unconstrained optimization software", ACM TOMS 7, 17-41 (MGH below).
"""

import warnings

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from autograd.extend import defvjp, primitive

from npdownhill.errors import NonFiniteError
from npdownhill.fitresult import FitResult
from npdownhill.derivatives import hessian, jacobian
from npdownhill.curvefit import CovarianceWarning, curve_fit, standard_errors
from npdownhill.lsq import least_squares
from npdownhill.tree import Layout

so = pytest.importorskip("scipy.optimize")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def tree_copy(tree):
    if isinstance(tree, dict):
        return {k: tree_copy(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(tree_copy(v) for v in tree)
    return np.array(tree, copy=True)


def flat_of(tree):
    layout = Layout(tree)
    return layout.read(layout.empty())


def as_tree(template, flat):
    """A new tree shaped like ``template`` holding ``flat`` (copies)."""
    return tree_copy(Layout(template).unflatten(np.asarray(flat, dtype=Layout(template).dtype)))


def flat_problem(residuals, template, args=()):
    """``fun(x)`` and an exact ``jac(x)`` over flat vectors, for scipy."""
    def fun(x):
        return np.asarray(residuals(as_tree(template, x), *args), dtype=float)

    def jac(x):
        return jacobian(residuals, as_tree(template, x), args)[1]
    return fun, jac


def central_differences(fun, x, h=1e-6):
    cols = []
    for j in range(x.size):
        e = np.zeros_like(x)
        e[j] = h * max(1.0, abs(x[j]))
        cols.append((fun(x + e) - fun(x - e)) / (2 * e[j]))
    return np.stack(cols, axis=-1)


# ---------------------------------------------------------------------------
# the damped oscillator of the issue
# ---------------------------------------------------------------------------

T = np.linspace(0.0, 10.0, 200)
TRUE = {"A": 2.5, "tau": 3.0, "omega": 3.3, "phi": 0.4, "c": 0.2}
P0 = {"A": 1.0, "tau": 2.0, "omega": 3.0, "phi": 0.0, "c": 0.0}
KEYS = list(P0)


def oscillator(t, p):
    return p["A"] * anp.exp(-t / p["tau"]) * anp.cos(p["omega"] * t + p["phi"]) + p["c"]


def oscillator_flat(t, A, tau, omega, phi, c):
    return A * np.exp(-t / tau) * np.cos(omega * t + phi) + c


def oscillator_data(seed=42, noise=0.05):
    rng = np.random.default_rng(seed)
    return oscillator_flat(T, **TRUE) + noise * rng.normal(size=T.size)


Y = oscillator_data()


def p0_tree(dtype=np.float64):
    return {k: np.array(v, dtype=dtype) for k, v in P0.items()}


def popt_flat(popt):
    return np.array([float(popt[k]) for k in KEYS])


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def test_curve_fit_damped_oscillator_matches_scipy_in_no_more_evaluations():
    p0 = p0_tree()
    popt, pcov = curve_fit(oscillator, T, Y, p0)
    sp_popt, sp_pcov = so.curve_fit(oscillator_flat, T, Y, p0=np.array(list(P0.values())))
    assert rel(popt_flat(popt), sp_popt) < 1e-6
    assert rel(pcov, sp_pcov) < 1e-4
    # p0 is left untouched; popt is a new tree of the same shape
    assert all(float(p0[k]) == P0[k] for k in KEYS)
    assert list(popt) == KEYS and all(popt[k].shape == () for k in KEYS)
    assert all(popt[k] is not p0[k] for k in KEYS)

    # evaluations: our least_squares against scipy's 'lm' given the exact Jacobian
    def residuals(p):
        return oscillator(T, p) - Y
    ours = least_squares(residuals, p0_tree())
    fun, jac = flat_problem(residuals, p0_tree())
    theirs = so.least_squares(fun, np.array(list(P0.values())), jac=jac, method="lm")
    assert ours.nfev <= theirs.nfev
    assert ours.njev <= theirs.njev
    assert rel(popt_flat(ours.x), theirs.x) < 1e-6
    assert ours.cost == pytest.approx(theirs.cost, rel=1e-10)
    assert ours.status == theirs.status and ours.success


def test_curve_fit_float32_params_promise():
    """float32 params: the cost to 1e-6 relative, the params to 1e-5 relative of the float64 fit.

    (Measured: 3e-8 with float64 data, where only the params are rounded, and
    2e-7 with float32 data and model too.)
    """
    ref, _ = curve_fit(oscillator, T, Y, p0_tree())
    ref_cost = 0.5 * np.sum((oscillator(T, ref) - Y) ** 2)
    for data_dtype in (np.float64, np.float32):
        t, y = T.astype(data_dtype), Y.astype(data_dtype)
        p = p0_tree(np.float32)
        res = least_squares(lambda q: oscillator(t, q) - y, p)
        assert res.success, res.message
        assert all(p[k].dtype == np.float32 for k in KEYS)
        assert rel(popt_flat(p), popt_flat(ref)) < 1e-5
        assert res.cost == pytest.approx(ref_cost, rel=1e-6)
        popt, pcov = curve_fit(oscillator, t, y, p0_tree(np.float32))
        assert all(popt[k].dtype == np.float32 for k in KEYS)
        assert rel(popt_flat(popt), popt_flat(ref)) < 1e-5
        assert np.all(np.isfinite(pcov))


# ---------------------------------------------------------------------------
# MINPACK test problems (MGH 1981), against scipy's MINPACK and the published minima
# ---------------------------------------------------------------------------

def _x(p):
    return p["x"]


def rosenbrock(p):
    x = _x(p)
    return anp.array([10 * (x[1] - x[0] ** 2), 1 - x[0]])


def freudenstein_roth(p):
    x1, x2 = _x(p)[0], _x(p)[1]
    return anp.array([-13 + x1 + ((5 - x2) * x2 - 2) * x2, -29 + x1 + ((x2 + 1) * x2 - 14) * x2])


def powell_badly_scaled(p):
    x1, x2 = _x(p)[0], _x(p)[1]
    return anp.array([1e4 * x1 * x2 - 1, anp.exp(-x1) + anp.exp(-x2) - 1.0001])


def brown_badly_scaled(p):
    x1, x2 = _x(p)[0], _x(p)[1]
    return anp.array([x1 - 1e6, x2 - 2e-6, x1 * x2 - 2])


def beale(p):
    x1, x2 = _x(p)[0], _x(p)[1]
    return np.array([1.5, 2.25, 2.625]) - x1 * (1 - x2 ** np.arange(1, 4))


def jennrich_sampson(p):
    i = np.arange(1, 11.0)
    return 2 + 2 * i - (anp.exp(i * _x(p)[0]) + anp.exp(i * _x(p)[1]))


def helical_valley(p):
    x1, x2, x3 = _x(p)[0], _x(p)[1], _x(p)[2]
    theta = anp.arctan2(x2, x1) / (2 * np.pi)
    return anp.array([10 * (x3 - 10 * theta), 10 * (anp.sqrt(x1 ** 2 + x2 ** 2) - 1), x3])


BARD_Y = np.array([0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96,
                   1.34, 2.10, 4.39])


def bard(p):
    u = np.arange(1, 16.0)
    v = 16 - u
    w = np.minimum(u, v)
    return BARD_Y - (_x(p)[0] + u / (v * _x(p)[1] + w * _x(p)[2]))


MEYER_Y = np.array([34780, 28610, 23650, 19630, 16370, 13720, 11540, 9744, 8261, 7030, 6005,
                    5147, 4427, 3820, 3307, 2872.0])


def meyer(p):
    t = 45 + 5 * np.arange(1, 17.0)
    return _x(p)[0] * anp.exp(_x(p)[1] / (t + _x(p)[2])) - MEYER_Y


def box3d(p):
    t = 0.1 * np.arange(1, 11.0)
    x = _x(p)
    return anp.exp(-t * x[0]) - anp.exp(-t * x[1]) - x[2] * (np.exp(-t) - np.exp(-10 * t))


def powell_singular(p):
    x = _x(p)
    return anp.array([x[0] + 10 * x[1], np.sqrt(5) * (x[2] - x[3]), (x[1] - 2 * x[2]) ** 2,
                      np.sqrt(10) * (x[0] - x[3]) ** 2])


KO_Y = np.array([0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323,
                 0.0235, 0.0246])
KO_U = np.array([4, 2, 1, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625])


def kowalik_osborne(p):
    x = _x(p)
    return KO_Y - x[0] * (KO_U ** 2 + KO_U * x[1]) / (KO_U ** 2 + KO_U * x[2] + x[3])


OS1_Y = np.array([0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.850, 0.818, 0.784, 0.751,
                  0.718, 0.685, 0.658, 0.628, 0.603, 0.580, 0.558, 0.538, 0.522, 0.506, 0.490,
                  0.478, 0.467, 0.457, 0.448, 0.438, 0.431, 0.424, 0.420, 0.414, 0.411, 0.406])


def osborne1(p):
    x, t = _x(p), 10.0 * np.arange(33)
    return OS1_Y - (x[0] + x[1] * anp.exp(-t * x[3]) + x[2] * anp.exp(-t * x[4]))


# name: (residuals, start, MGH's published minimum of sum(r**2) reached from that start)
MINPACK = {
    "rosenbrock": (rosenbrock, [-1.2, 1.0], 0.0),
    "freudenstein_roth": (freudenstein_roth, [0.5, -2.0], 48.9842),
    "powell_badly_scaled": (powell_badly_scaled, [0.0, 1.0], 0.0),
    "brown_badly_scaled": (brown_badly_scaled, [1.0, 1.0], 0.0),
    "beale": (beale, [1.0, 1.0], 0.0),
    "jennrich_sampson": (jennrich_sampson, [0.3, 0.4], 124.362),
    "helical_valley": (helical_valley, [-1.0, 0.0, 0.0], 0.0),
    "bard": (bard, [1.0, 1.0, 1.0], 8.21487e-3),
    "meyer": (meyer, [0.02, 4000.0, 250.0], 87.9458),
    "box3d": (box3d, [0.0, 10.0, 20.0], 0.0),
    "powell_singular": (powell_singular, [3.0, -1.0, 0.0, 1.0], 0.0),
    "kowalik_osborne": (kowalik_osborne, [0.25, 0.39, 0.415, 0.39], 3.07505e-4),
    "osborne1": (osborne1, [0.5, 1.5, -1.0, 0.01, 0.02], 5.46489e-5),
}


@pytest.mark.parametrize("name", list(MINPACK))
def test_minpack_problems_match_scipy_lm_and_the_published_minima(name):
    residuals, start, published = MINPACK[name]
    params = {"x": np.array(start)}
    res = least_squares(residuals, params)
    fun, jac = flat_problem(residuals, params)
    theirs = so.least_squares(fun, np.array(start), jac=jac, method="lm")
    assert res.success and theirs.success
    assert res.x is params
    assert res.nfev <= theirs.nfev
    # the cost: published (5 significant digits) and scipy's
    if published == 0.0:
        assert res.cost < 1e-20 and theirs.cost < 1e-20
    else:
        assert 2 * res.cost == pytest.approx(published, rel=1e-5)
        assert res.cost == pytest.approx(theirs.cost, rel=1e-9)
    # the solution; problems whose minimizer is 0 in some coordinate compare absolutely
    scale = np.maximum(np.abs(theirs.x), 1e-3)
    assert np.max(np.abs(params["x"] - theirs.x) / scale) < 1e-6


def test_minpack_iterates_are_scipys():
    """Same algorithm, so the same evaluation and iteration counts on these problems."""
    for name in ("rosenbrock", "freudenstein_roth", "bard", "kowalik_osborne", "osborne1",
                 "jennrich_sampson", "meyer"):
        residuals, start, _ = MINPACK[name]
        params = {"x": np.array(start)}
        res = least_squares(residuals, params)
        fun, jac = flat_problem(residuals, params)
        theirs = so.least_squares(fun, np.array(start), jac=jac, method="lm")
        assert (res.nfev, res.njev) == (theirs.nfev, theirs.njev), name


def test_max_nfev_stops_like_scipy():
    residuals, start, _ = MINPACK["meyer"]
    params = {"x": np.array(start)}
    res = least_squares(residuals, params, max_nfev=20)
    fun, jac = flat_problem(residuals, params)
    theirs = so.least_squares(fun, np.array(start), jac=jac, method="lm", max_nfev=20)
    assert res.status == theirs.status == 0
    assert not res.success
    assert res.nfev == theirs.nfev == 20
    assert res.message == "The maximum number of function evaluations is exceeded."
    np.testing.assert_allclose(params["x"], theirs.x, rtol=1e-8)


def test_tolerances_change_the_stop_like_scipy():
    residuals, start, _ = MINPACK["osborne1"]
    for options in ({"ftol": 1e-3}, {"xtol": 1e-3}, {"gtol": 1e-2}):
        params = {"x": np.array(start)}
        res = least_squares(residuals, params, **options)
        fun, jac = flat_problem(residuals, params)
        theirs = so.least_squares(fun, np.array(start), jac=jac, method="lm", **options)
        assert (res.status, res.nfev) == (theirs.status, theirs.nfev), options
        np.testing.assert_allclose(params["x"], theirs.x, rtol=1e-8)


def test_result_fields():
    params = {"x": np.array([0.5, -2.0])}
    res = least_squares(freudenstein_roth, params)
    assert isinstance(res, FitResult)
    assert res.x is params
    r, J = jacobian(freudenstein_roth, params)
    np.testing.assert_array_equal(res.fun, r)
    np.testing.assert_allclose(res.jac, J, rtol=1e-14)
    assert res.cost == pytest.approx(0.5 * np.sum(res.fun ** 2), rel=1e-14)
    np.testing.assert_allclose(res.grad, res.jac.T @ res.fun, rtol=1e-12)
    assert res.optimality == np.max(np.abs(res.grad))
    assert res.status == 2 and res.success is True
    assert res.message == "`ftol` termination condition is satisfied."
    assert res.nit >= 1 and res.njev <= res.nfev
    assert "cost" in str(res)


# ---------------------------------------------------------------------------
# jacobian
# ---------------------------------------------------------------------------

def nested_params():
    return {"a": np.array([0.3, -1.2]),
            "b": [{"c": np.array(0.7)}, (np.array([[1.1, -0.4], [0.2, 0.9]]),)]}


def nested_residuals(p, scale):
    a, c, M = p["a"], p["b"][0]["c"], p["b"][1][0]
    v = anp.dot(M, a) * c
    return scale * anp.concatenate([anp.sin(v), a ** 2 * c, anp.ravel(M) * anp.exp(a[0]),
                                    anp.array([c ** 3, anp.sum(M) * a[1], anp.tanh(c * a[0])])])


def nested_flat(x, scale=2.0):
    return nested_residuals(Layout(nested_params()).unflatten(x), scale)


@pytest.mark.parametrize("mode", ["auto", "forward", "reverse"])
def test_jacobian_matches_autograd_and_finite_differences_on_a_nested_tree(mode):
    params = nested_params()
    before = tree_copy(params)
    r, J = jacobian(nested_residuals, params, (2.0,), mode=mode)
    x = flat_of(params)
    assert J.shape == (11, 7) and r.shape == (11,)
    np.testing.assert_allclose(r, nested_flat(x), rtol=0, atol=0)
    np.testing.assert_allclose(J, autograd.jacobian(nested_flat)(x), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(J, central_differences(nested_flat, x), rtol=1e-7, atol=1e-8)
    # params untouched
    np.testing.assert_array_equal(flat_of(params), flat_of(before))


def test_jacobian_modes_agree_and_auto_picks_the_cheaper_direction():
    calls = []

    def wide(p):            # n = 6 parameters, m = 2 residuals: reverse is cheaper
        calls.append(1)
        return anp.array([anp.sum(p["w"] ** 2), anp.prod(p["w"])])

    def tall(p):            # n = 2, m = 30: forward is cheaper
        calls.append(1)
        return anp.sin(np.arange(30.0) * p["w"][0]) + p["w"][1] * np.arange(30.0)

    for fn, n, m in ((wide, 6, 2), (tall, 2, 30)):
        params = {"w": np.linspace(0.5, 1.5, n)}
        results = {}
        for mode in ("auto", "forward", "reverse"):
            calls.clear()
            results[mode] = jacobian(fn, params, mode=mode)
            results[mode + " calls"] = len(calls)
        np.testing.assert_allclose(results["forward"][1], results["reverse"][1], rtol=1e-14)
        np.testing.assert_array_equal(results["auto"][1], results["auto"][1])
        assert results["forward calls"] == n          # one traced pass per column
        assert results["reverse calls"] == 1          # one traced pass, m backward passes
        # auto: one forward product to learn m, then the cheaper direction
        assert results["auto calls"] == (n if n < m else 2)


def test_jacobian_falls_back_to_reverse_mode_without_a_forward_rule():
    @primitive
    def square(x):
        return x ** 2
    defvjp(square, lambda ans, x: lambda g: 2 * g * x)

    def fn(p):
        return anp.concatenate([square(p), p, p])
    params = np.array([1.0, 2.0])
    r, J = jacobian(fn, params)
    np.testing.assert_array_equal(J, [[2, 0], [0, 4], [1, 0], [0, 1], [1, 0], [0, 1]])
    with pytest.raises(NotImplementedError, match=r"jacobian\(mode='forward'\): autograd has no "
                                                  r"forward-mode rule.*mode='auto' or 'reverse'"):
        jacobian(fn, params, mode="forward")
    # least_squares uses the fallback too
    res = least_squares(lambda p: square(p) - np.array([4.0, 9.0]), np.array([1.0, 1.0]))
    assert res.success
    np.testing.assert_allclose(res.x, [2.0, 3.0], rtol=1e-10)


@pytest.mark.parametrize("fn, exc, pattern", [
    (lambda p: anp.sum(p ** 2), ValueError,
     r"must return a 1-D array of residuals; got shape \(\), dtype float64"),
    (lambda p: anp.outer(p, p), ValueError,
     r"must return a 1-D array of residuals; got shape \(2, 2\), dtype float64 "
     r"\(flatten it with \.ravel\(\)\)"),
    (lambda p: p * 1j, TypeError,
     r"must return a 1-D array of real numbers; got shape \(2,\), dtype complex128"),
    (lambda p: [p[0], p[1]], TypeError,
     r"must return a 1-D NumPy array of real numbers; got list"),
    (lambda p: p[:0], ValueError, r"returned no residuals \(shape \(0,\)"),
])
def test_jacobian_and_least_squares_refuse_bad_residuals(fn, exc, pattern):
    params = np.array([1.0, 2.0])
    with pytest.raises(exc, match=r"jacobian: residuals \(<lambda>\) " + pattern):
        jacobian(fn, params)
    with pytest.raises(exc, match=r"least_squares: residuals \(<lambda>\) " + pattern):
        least_squares(fn, params)
    np.testing.assert_array_equal(params, [1.0, 2.0])


def test_residual_count_must_not_change():
    def shifty(p):
        n = 3 if float(getattr(p["x"][0], "_value", p["x"][0])) < 1.5 else 4
        return anp.concatenate([p["x"], anp.zeros(n - 2) + p["x"][0] - 3.0])
    with pytest.raises(ValueError, match=r"returned 4 residuals; it returned 3 before"):
        least_squares(shifty, {"x": np.array([1.0, 1.0])})


def test_residuals_receive_read_only_views_not_the_callers_arrays():
    params = {"x": np.array([1.0, 2.0])}
    seen = []

    def fn(p):
        seen.append(p["x"])
        return p["x"] - np.array([3.0, 4.0])
    least_squares(fn, params)
    plain = [v for v in seen if isinstance(v, np.ndarray)]
    assert plain and all(v is not params["x"] and not v.flags.writeable for v in plain)


# ---------------------------------------------------------------------------
# nested trees, NaN regions, non-finite Jacobians, interruption
# ---------------------------------------------------------------------------

def test_least_squares_on_a_nested_tree_matches_scipy_on_the_flat_problem():
    # a nested parameterization of the oscillator: amplitude block, frequency block, offset
    def model(p):
        amp, (freq,), c = p["amp"], p["wave"], p["offset"]["c"]
        return amp[0] * anp.exp(-T / amp[1]) * anp.cos(freq[0] * T + freq[1]) + c

    def residuals(p):
        return model(p) - Y

    params = {"amp": np.array([1.0, 2.0]), "wave": (np.array([3.0, 0.0]),),
              "offset": {"c": np.array(0.0)}}
    res = least_squares(residuals, params)
    fun, jac = flat_problem(residuals, params)
    theirs = so.least_squares(fun, flat_of({"amp": np.array([1.0, 2.0]),
                                            "wave": (np.array([3.0, 0.0]),),
                                            "offset": {"c": np.array(0.0)}}),
                              jac=jac, method="lm")
    assert res.x is params and isinstance(params["wave"], tuple)
    np.testing.assert_allclose(flat_of(params), theirs.x, rtol=1e-8)
    assert res.nfev <= theirs.nfev
    assert res.jac.shape == (200, 5)


def test_a_nan_region_shrinks_the_step_and_the_fit_converges():
    """log(x) is NaN for x < 0; the first Gauss-Newton step from x = 100 lands there."""
    trials = []

    def residuals(p):
        x = p["x"]
        if isinstance(x, np.ndarray):
            trials.append(float(x[0]))
        with np.errstate(invalid="ignore"):
            return anp.concatenate([anp.log(x) - np.log(0.5), 0.1 * (x - 0.5)])

    params = {"x": np.array([100.0])}
    res = least_squares(residuals, params)
    assert res.success
    assert params["x"][0] == pytest.approx(0.5, rel=1e-12)
    assert any(t < 0 for t in trials)              # NaN residuals were met ...
    assert np.isfinite(res.cost)                   # ... and never accepted

    def fun(x):
        with np.errstate(invalid="ignore"):
            return np.concatenate([np.log(x) - np.log(0.5), 0.1 * (x - 0.5)])
    theirs = so.least_squares(fun, np.array([100.0]), method="lm",
                              jac=lambda x: np.array([[1 / x[0]], [0.1]]))
    assert res.nfev <= theirs.nfev
    # MINPACK retries the same Gauss-Newton point after this failure (same radius test);
    # we reuse the rejected point's residuals instead of evaluating it again
    assert len(set(trials)) == len(trials) == res.nfev - 1   # the start was a traced call
    assert res.nfev < theirs.nfev
    np.testing.assert_allclose(params["x"], theirs.x, rtol=1e-12)


def test_overflowing_and_huge_residuals_are_handled_as_minpack_does():
    # box3d from 10x its start: the first trial overflows exp() to inf residuals
    residuals, start, _ = MINPACK["box3d"]
    start = np.array([0.0, 10.0, 20.0]) * 10
    params = {"x": start.copy()}
    with np.errstate(over="ignore", invalid="ignore"):
        res = least_squares(residuals, params)
        fun, jac = flat_problem(residuals, params)
        theirs = so.least_squares(fun, start, jac=jac, method="lm")
    assert res.success and (res.nfev, res.status) == (theirs.nfev, theirs.status)
    assert res.cost == pytest.approx(theirs.cost, rel=1e-9)
    # Jennrich-Sampson from 100x its start: residuals near 1e174, whose squares overflow
    residuals, start, _ = MINPACK["jennrich_sampson"]
    start = np.array([0.3, 0.4]) * 100
    params = {"x": start.copy()}
    with np.errstate(over="ignore", invalid="ignore"):
        res = least_squares(residuals, params)
        fun, jac = flat_problem(residuals, params)
        theirs = so.least_squares(fun, start, jac=jac, method="lm")
    assert (res.nfev, res.status) == (theirs.nfev, theirs.status) == (200, 0)
    assert np.isfinite(res.cost) and res.cost == pytest.approx(theirs.cost, rel=1e-9)


def test_an_infinite_trial_is_a_failed_step():
    def residuals(p):
        with np.errstate(over="ignore"):
            return anp.concatenate([anp.exp(p) - 2.0, p - np.log(2.0)])
    params = np.array([-5.0])
    res = least_squares(residuals, params)
    assert res.success and params[0] == pytest.approx(np.log(2.0), rel=1e-10)


def test_non_finite_residuals_at_the_start_are_refused():
    with pytest.raises(ValueError, match=r"least_squares: the residuals are not finite at the "
                                         r"starting params \(indices \[0\] of 2\)"):
        with np.errstate(invalid="ignore"):
            least_squares(lambda p: anp.concatenate([anp.log(p), p]), np.array([-1.0]))


def test_a_non_finite_jacobian_raises_nonfinite_error_and_keeps_the_params():
    params = {"a": np.array([4.0]), "b": np.array([0.0])}

    def residuals(p):
        return anp.concatenate([p["a"] - 2.0, anp.sqrt(p["b"]) - 1.0, p["a"] + p["b"]])
    with pytest.raises(NonFiniteError, match=r"least_squares: the Jacobian is not finite at the "
                                             r"starting params \(columns \[.*1\], leaves \[.*'b'\]\); the params hold that point"
                       ) as info, np.errstate(divide="ignore", invalid="ignore"):
        least_squares(residuals, params)
    # (forward mode also makes column 'a' NaN: 0 * inf in the tangent of sqrt(b))
    assert "b" in info.value.leaves and info.value.what == "gradient"
    assert params["a"][0] == 4.0 and params["b"][0] == 0.0


def test_an_exception_mid_way_leaves_the_best_point_in_the_params():
    accepted = []
    calls = [0]

    def residuals(p):
        calls[0] += 1
        if calls[0] > 12:
            raise KeyboardInterrupt
        return oscillator(T, p) - Y

    params = p0_tree()
    with pytest.raises(KeyboardInterrupt):
        least_squares(residuals, params,
                      callback=lambda r: accepted.append((popt_flat(r.x), r.cost)))
    assert accepted
    best_x, best_cost = min(accepted, key=lambda a: a[1])
    np.testing.assert_array_equal(popt_flat(params), best_x)
    assert best_cost < 0.5 * np.sum((oscillator(T, p0_tree()) - Y) ** 2)


# ---------------------------------------------------------------------------
# callback
# ---------------------------------------------------------------------------

def test_callback_sees_every_iteration_and_may_stop_the_fit():
    seen = []

    def callback(r):
        seen.append((r.nit, r.cost, r.nfev, r.njev, popt_flat(r.x)))
        assert r.x is params

    params = p0_tree()
    res = least_squares(lambda p: oscillator(T, p) - Y, params, callback=callback)
    assert [s[0] for s in seen] == list(range(1, res.nit + 1))
    costs = [s[1] for s in seen]
    assert all(b < a for a, b in zip(costs, costs[1:]))

    def stop_at_3(r):
        if r.nit == 3:
            raise StopIteration
    params = p0_tree()
    res = least_squares(lambda p: oscillator(T, p) - Y, params, callback=stop_at_3)
    assert res.status == -2 and not res.success
    assert res.message == "Stopped because `callback` raised `StopIteration`."
    assert res.nit == 3
    np.testing.assert_array_equal(popt_flat(params), seen[2][4])
    assert res.cost == seen[2][1]
    # the result's Jacobian is at the stopping point
    np.testing.assert_allclose(res.jac, jacobian(lambda p: oscillator(T, p) - Y, params)[1],
                               rtol=1e-14)
    with pytest.raises(RuntimeError, match=r"curve_fit: optimal parameters not found: Stopped "
                                           r"because `callback` raised `StopIteration`"):
        curve_fit(oscillator, T, Y, p0_tree(), callback=stop_at_3)


# ---------------------------------------------------------------------------
# sigma, absolute_sigma, singular Jacobians, standard errors
# ---------------------------------------------------------------------------

def _scipy_curve_fit(**kw):
    return so.curve_fit(oscillator_flat, T, Y, p0=np.array(list(P0.values())), **kw)


@pytest.mark.parametrize("absolute_sigma", [False, True])
def test_sigma_1d_matches_scipy(absolute_sigma):
    sigma = 0.03 + 0.04 * np.abs(np.sin(T))
    popt, pcov = curve_fit(oscillator, T, Y, p0_tree(), sigma=sigma, absolute_sigma=absolute_sigma)
    sp_popt, sp_pcov = _scipy_curve_fit(sigma=sigma, absolute_sigma=absolute_sigma)
    assert rel(popt_flat(popt), sp_popt) < 1e-6
    assert rel(pcov, sp_pcov) < 1e-4


@pytest.mark.parametrize("absolute_sigma", [False, True])
def test_sigma_2d_covariance_matches_scipy(absolute_sigma):
    # correlated noise: exponential kernel plus a diagonal
    d = np.abs(T[:, None] - T[None, :])
    cov = 0.05 ** 2 * (np.exp(-d / 0.3) + 0.5 * np.eye(T.size))
    popt, pcov = curve_fit(oscillator, T, Y, p0_tree(), sigma=cov, absolute_sigma=absolute_sigma)
    sp_popt, sp_pcov = _scipy_curve_fit(sigma=cov, absolute_sigma=absolute_sigma)
    assert rel(popt_flat(popt), sp_popt) < 1e-6
    assert rel(pcov, sp_pcov) < 1e-4


def test_absolute_sigma_scaling():
    """pcov(relative) = pcov(absolute) * chi2 / (m - n) with the same sigma."""
    sigma = np.full(T.size, 0.05)
    popt, pabs = curve_fit(oscillator, T, Y, p0_tree(), sigma=sigma, absolute_sigma=True)
    _, prel = curve_fit(oscillator, T, Y, p0_tree(), sigma=sigma)
    chi2 = np.sum(((oscillator(T, popt) - Y) / sigma) ** 2)
    np.testing.assert_allclose(prel, pabs * chi2 / (T.size - 5), rtol=1e-10)


def test_a_singular_jacobian_gives_inf_pcov_and_a_warning():
    t = np.linspace(0, 1, 20)
    y = 2 * t + 1
    p0 = {k: np.array(0.5) for k in "abc"}
    # b does not enter the model: a zero column; scipy also answers inf and warns
    with pytest.warns(CovarianceWarning, match=r"curve_fit: covariance of the parameters could "
                                               r"not be estimated: the Jacobian at the solution "
                                               r"is singular"):
        popt, pcov = curve_fit(lambda t, p: p["a"] * t + p["c"] + 0 * p["b"], t, y, p0)
    assert np.all(np.isinf(pcov)) and pcov.shape == (3, 3)
    assert float(popt["a"]) == pytest.approx(2.0) and float(popt["c"]) == pytest.approx(1.0)
    with pytest.warns(so.OptimizeWarning):
        _, sp_pcov = so.curve_fit(lambda t, a, b, c: a * t + c + 0 * b, t, y, p0=[0.5] * 3)
    assert np.all(np.isinf(sp_pcov))
    # two parameters that only enter as their sum: equal columns
    with pytest.warns(CovarianceWarning, match="singular"):
        popt, pcov = curve_fit(lambda t, p: (p["a"] + p["b"]) * t + p["c"], t, y, p0)
    assert np.all(np.isinf(pcov))
    assert float(popt["a"] + popt["b"]) == pytest.approx(2.0)
    assert issubclass(CovarianceWarning, RuntimeWarning)


def test_no_degree_of_freedom_gives_inf_pcov_unless_absolute_sigma():
    t, y = np.array([0.0, 1.0]), np.array([1.0, 3.0])
    p0 = {"a": np.array(1.0), "b": np.array(0.0)}
    with pytest.warns(CovarianceWarning, match=r"as many residuals as parameters \(m = n = 2\)"):
        _, pcov = curve_fit(lambda t, p: p["a"] * t + p["b"], t, y, p0)
    assert np.all(np.isinf(pcov))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, pcov = curve_fit(lambda t, p: p["a"] * t + p["b"], t, y, p0, absolute_sigma=True)
    np.testing.assert_allclose(pcov, np.linalg.inv(np.array([[1.0, 1.0], [1.0, 2.0]])), rtol=1e-12)


def test_standard_errors_tree():
    p0 = {"A": np.array(1.0), "rest": [np.array([2.0, 3.0]), {"phi": np.array(0.0)},
                                       np.array(0.0)]}

    def f(t, p):
        return p["A"] * anp.exp(-t / p["rest"][0][0]) * anp.cos(p["rest"][0][1] * t
                                                                  + p["rest"][1]["phi"]) \
            + p["rest"][2]
    popt, pcov = curve_fit(f, T, Y, p0)
    se = standard_errors(pcov, popt)
    assert se["rest"][0].shape == (2,) and se["A"].shape == () and se["rest"][1]["phi"].shape == ()
    np.testing.assert_allclose(flat_of(se), np.sqrt(np.diag(pcov)), rtol=0)
    _, sp_pcov = _scipy_curve_fit()
    np.testing.assert_allclose(flat_of(se), np.sqrt(np.diag(sp_pcov)), rtol=1e-4)
    with pytest.raises(ValueError, match=r"standard_errors\(pcov=...\): pcov must have shape "
                                         r"\(5, 5\) for the 5 parameters of params; got shape "
                                         r"\(4, 4\)"):
        standard_errors(np.eye(4), popt)
    bad = np.eye(5)
    bad[2, 2] = -1.0
    with pytest.raises(ValueError, match=r"variances on pcov's diagonal must be >= 0; got -1.0 "
                                         r"at index 2 \(leaf 'rest.0'\)"):
        standard_errors(bad, popt)


# ---------------------------------------------------------------------------
# hessian
# ---------------------------------------------------------------------------

def test_hessian_of_rosenbrock_is_the_analytic_one():
    def f(p):
        x, y = p[0][0], p[1]["y"]
        return 100 * (y - x ** 2) ** 2 + (1 - x) ** 2
    for x, y in ((0.3, 0.7), (-1.2, 1.0), (1.0, 1.0)):
        H = hessian(f, [np.array([x]), {"y": np.array(y)}])
        exact = np.array([[1200 * x ** 2 - 400 * y + 2, -400 * x], [-400 * x, 200.0]])
        np.testing.assert_allclose(H, exact, rtol=1e-14, atol=1e-12)


def test_hessian_matches_finite_differences_of_the_gradient_on_a_nested_tree():
    params = nested_params()

    def loss(p, w):
        return anp.sum(w * nested_residuals(p, 1.0) ** 2) + anp.prod(p["a"]) * p["b"][0]["c"]
    w = np.linspace(0.5, 1.5, 11)
    H = hessian(loss, params, w)
    layout = Layout(params)
    g = autograd.grad(lambda x: loss(layout.unflatten(x), w))
    x = flat_of(params)
    assert H.shape == (7, 7)
    np.testing.assert_array_equal(H, H.T)
    np.testing.assert_allclose(H, central_differences(g, x, h=1e-5), rtol=1e-6, atol=1e-7)


def test_hessian_of_a_gaussian_nll_and_curve_fit_pcov():
    """inv(H) of 0.5 * chi2 is curve_fit's pcov (absolute_sigma) for a model linear in the params.

    For a nonlinear model H = J^T J + sum_i r_i hess(r_i): the identity is checked
    exactly, and inv(H) is close to pcov (the residual term is small here).
    """
    sigma = 0.05

    def linear(t, p):
        return p["a"] + p["b"] * t + p["c"] * anp.sin(t)
    p0 = {k: np.array(0.0) for k in "abc"}
    y = 0.3 + 0.2 * T + 1.5 * np.sin(T) + sigma * np.random.default_rng(1).normal(size=T.size)
    popt, pcov = curve_fit(linear, T, y, p0, sigma=np.full(T.size, sigma), absolute_sigma=True)
    H = hessian(lambda p: 0.5 * anp.sum(((linear(T, p) - y) / sigma) ** 2), popt)
    np.testing.assert_allclose(np.linalg.inv(H), pcov, rtol=1e-9)

    popt, pcov = curve_fit(oscillator, T, Y, p0_tree(), sigma=np.full(T.size, sigma),
                           absolute_sigma=True)

    def whitened(p):
        return (oscillator(T, p) - Y) / sigma
    H = hessian(lambda p: 0.5 * anp.sum(whitened(p) ** 2), popt)
    r, J = jacobian(whitened, popt)
    second_order = hessian(lambda p: anp.dot(r, whitened(p)), popt)  # sum_i r_i hess(r_i)
    np.testing.assert_allclose(H, J.T @ J + second_order, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(np.linalg.inv(H), pcov, rtol=0.05)


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------

def _res(p):
    return p - np.array([1.0, 2.0, 3.0])


GOOD = np.array([0.0, 0.0, 0.0])

BAD_LEAST_SQUARES = [
    (dict(residuals=3), TypeError, r"least_squares\(residuals=3\): residuals must be callable; "
                                   r"got int"),
    (dict(method="trf"), ValueError, r"least_squares\(method='trf'\): method must be 'lm' "
                                     r"\('trf' and 'dogbox' are not implemented\); got 'trf'"),
    (dict(method="ml"), ValueError, r"method must be 'lm'; got 'ml' \(did you mean 'lm'\?\)"),
    (dict(ftol=-1e-3), ValueError, r"least_squares\(ftol=-0.001\): ftol must be >= "
                                   r"2.220446049250313e-16; got -0.001"),
    (dict(xtol=0.0), ValueError, r"least_squares\(xtol=0.0\): xtol must be >= "),
    (dict(gtol="small"), TypeError, r"least_squares\(gtol='small'\): gtol must be a real "
                                    r"number; got str"),
    (dict(gtol=float("nan")), ValueError, r"least_squares\(gtol=nan\): gtol must be finite"),
    (dict(max_nfev=0), ValueError, r"least_squares\(max_nfev=0\): max_nfev must be >= 1; got 0"),
    (dict(max_nfev=2.5), ValueError, r"max_nfev must be an integer; got 2.5"),
    (dict(callback=1), TypeError, r"least_squares\(callback=1\): callback must be callable"),
    (dict(args=np.zeros(3)), TypeError, r"least_squares\(args=array\(.*\)\): args must be a "
                                        r"tuple of extra arguments \(write args=\(x,\) for one\); "
                                        r"got ndarray"),
    (dict(params=[1.0, 2.0]), TypeError, r"least_squares\(params\): leaf '0' must be a "
                                         r"floating-point ndarray; got float"),
    (dict(params=np.zeros(4), residuals=lambda p: p[:3]), ValueError, r"least_squares\(method='lm'\): needs at least as many "
                                           r"residuals as parameters; got m=3 residuals for n=4 "
                                           r"parameters"),
]


@pytest.mark.parametrize("kwargs, exc, pattern", BAD_LEAST_SQUARES,
                         ids=[f"{list(k)[0]}-{i}" for i, (k, _, _) in enumerate(BAD_LEAST_SQUARES)])
def test_least_squares_refuses_bad_input(kwargs, exc, pattern):
    call = dict(residuals=_res, params=GOOD.copy())
    call.update(kwargs)
    before = tree_copy(call["params"])
    with pytest.raises(exc, match=pattern):
        least_squares(**call)
    if isinstance(before, np.ndarray):
        np.testing.assert_array_equal(call["params"], before)


BAD_CURVE_FIT = [
    (dict(f="model"), TypeError, r"curve_fit\(f='model'\): f must be callable; got str"),
    (dict(ydata=np.zeros((10, 2))), ValueError, r"curve_fit\(ydata=...\): ydata must be a "
                                                r"non-empty 1-D array; got shape \(10, 2\)"),
    (dict(ydata=np.array([np.nan] + [0.0] * 9)), ValueError,
     r"curve_fit\(ydata=...\): ydata must be finite; got NaN or inf at indices \[0\]"),
    (dict(ydata=np.zeros(10, complex)), TypeError,
     r"curve_fit\(ydata=...\): ydata must hold real numbers; got dtype complex128"),
    (dict(sigma=np.ones(9)), ValueError, r"curve_fit\(sigma=...\): sigma must have shape \(10,\) "
                                         r"\(standard deviations\) or \(10, 10\) \(a covariance "
                                         r"matrix\) for 10 data points; got shape \(9,\)"),
    (dict(sigma=np.r_[0.0, np.ones(9)]), ValueError, r"the standard deviations in sigma must be "
                                                     r"> 0; got 0.0 at index 0"),
    (dict(sigma=-np.eye(10)), ValueError, r"a 2-D sigma is the covariance matrix of ydata and "
                                          r"must be symmetric positive definite"),
    (dict(absolute_sigma="yes"), TypeError, r"curve_fit\(absolute_sigma='yes'\): absolute_sigma "
                                            r"must be True or False; got str"),
    (dict(args=(1,)), ValueError, r"curve_fit\(args=...\): f\(xdata, params\) takes no extra "
                                  r"arguments"),
    (dict(maxfev=10), TypeError, r"curve_fit\(maxfev=...\): unknown option 'maxfev' \(did you "
                                 r"mean 'max_nfev'\?\); the options are method, ftol"),
    (dict(ftol=-1.0), ValueError, r"curve_fit\(ftol=-1.0\): ftol must be >= "),
    (dict(f=lambda x, p: p["a"] * x[:, None]), ValueError,
     r"curve_fit: f \(.*\) must return an array of ydata's shape \(10,\); got shape \(10, 1\)"),
    (dict(f=lambda x, p: 1j * p["a"] * x), TypeError,
     r"curve_fit: f \(.*\) must return real numbers; got dtype complex128"),
    (dict(p0={"a": 1.0}), TypeError, r"curve_fit\(p0\): leaf 'a' must be a floating-point "
                                     r"ndarray; got float"),
    (dict(max_nfev=2), RuntimeError, r"curve_fit: optimal parameters not found: The maximum "
                                     r"number of function evaluations is exceeded. \(nfev=2, "),
]


@pytest.mark.parametrize("kwargs, exc, pattern", BAD_CURVE_FIT,
                         ids=[f"{list(k)[0]}-{i}" for i, (k, _, _) in enumerate(BAD_CURVE_FIT)])
def test_curve_fit_refuses_bad_input(kwargs, exc, pattern):
    x = np.linspace(0, 1, 10)
    call = dict(f=lambda x, p: p["a"] * anp.exp(x), xdata=x, ydata=2 * np.exp(x) + 0.01 * x,
                p0={"a": np.array(1.0)})
    call.update(kwargs)
    with pytest.raises(exc, match=pattern):
        curve_fit(**call)


def test_other_entry_points_refuse_bad_input():
    with pytest.raises(TypeError, match=r"jacobian\(residuals=None\): residuals must be callable"):
        jacobian(None, GOOD)
    with pytest.raises(ValueError, match=r"jacobian\(mode='backward'\): mode must be one of "
                                         r"'auto', 'forward', 'reverse'; got 'backward'"):
        jacobian(_res, GOOD, mode="backward")
    with pytest.raises(TypeError, match=r"hessian\(loss=1\): loss must be callable; got int"):
        hessian(1, GOOD)
    with pytest.raises(TypeError, match=r"hessian: loss \(.*\) must return a real scalar; got "
                                        r"shape \(3,\), dtype float64"):
        hessian(lambda p: p ** 2, GOOD)
    with pytest.raises(ValueError, match=r"hessian\(params\): the param tree has no leaves"):
        hessian(lambda p: 0.0, {})
