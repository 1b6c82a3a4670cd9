"""npdownhill.problems: the test functions are the standard ones and their listed points are right.

Every listed point is checked independently of how the module found it:
the gradient vanishes there (autograd), the Hessian has the right signs
(autograd, and the function itself on a small sphere around the point), the
global minima are below every point of a dense grid over the plotting box,
and, where a docstring says a list is complete, scipy's root finder started
from all over the box finds no other stationary point. The functions are
compared with formulas written here (and scipy's Rosenbrock), the data makers
with what their docstrings promise.
"""

import doctest
import math

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, hessian

import npdownhill as dh
from npdownhill import problems
from npdownhill.problems import Problem

so = pytest.importorskip("scipy.optimize")


# ---------------------------------------------------------------------------
# the problems under test, and formulas written independently of the module
# ---------------------------------------------------------------------------

CASES = {
    "rosenbrock": problems.rosenbrock,
    "rosenbrock-3": lambda: problems.rosenbrock(3),
    "rosenbrock-5": lambda: problems.rosenbrock(5),
    "beale": problems.beale,
    "booth": problems.booth,
    "himmelblau": problems.himmelblau,
    "matyas": problems.matyas,
    "three_hump_camel": problems.three_hump_camel,
    "rastrigin": problems.rastrigin,
    "rastrigin-3": lambda: problems.rastrigin(3),
    "ackley": problems.ackley,
    "ackley-3": lambda: problems.ackley(3),
    "ackley-17": lambda: problems.ackley(17),
    "ackley-18": lambda: problems.ackley(18),
    "styblinski_tang": problems.styblinski_tang,
    "styblinski_tang-3": lambda: problems.styblinski_tang(3),
    "styblinski_tang-5": lambda: problems.styblinski_tang(5),
    "ill_conditioned_quadratic": problems.ill_conditioned_quadratic,
    "ill_conditioned_quadratic-rotated": lambda: problems.ill_conditioned_quadratic(1e3, 4, 0.6),
    "saddle": problems.saddle,
    "monkey_saddle": problems.monkey_saddle,
}


def reference(name, x):
    """The function ``name`` at one point, written as a plain loop."""
    x = [float(v) for v in x]
    n = len(x)
    if name == "rosenbrock":
        return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(n - 1))
    if name == "beale":
        a, b = x
        return sum((c - a * (1 - b ** k)) ** 2 for k, c in ((1, 1.5), (2, 2.25), (3, 2.625)))
    if name == "booth":
        a, b = x
        return (a + 2 * b - 7) ** 2 + (2 * a + b - 5) ** 2
    if name == "himmelblau":
        a, b = x
        return (a * a + b - 11) ** 2 + (a + b * b - 7) ** 2
    if name == "matyas":
        a, b = x
        return 0.26 * (a * a + b * b) - 0.48 * a * b
    if name == "three_hump_camel":
        a, b = x
        return 2 * a ** 2 - 1.05 * a ** 4 + a ** 6 / 6 + a * b + b ** 2
    if name == "rastrigin":
        return 10 * n + sum(v * v - 10 * math.cos(2 * math.pi * v) for v in x)
    if name == "ackley":
        return (-20 * math.exp(-0.2 * math.sqrt(sum(v * v for v in x) / n))
                - math.exp(sum(math.cos(2 * math.pi * v) for v in x) / n) + 20 + math.e)
    if name == "styblinski_tang":
        return sum(v ** 4 - 16 * v ** 2 + 5 * v for v in x) / 2
    if name == "saddle":
        a, b = x
        return a * a - b * b + b ** 4 / 4
    if name == "monkey_saddle":
        a, b = x
        return a ** 3 - 3 * a * b * b + 0.75 * (a * a + b * b) ** 2
    raise KeyError(name)


@pytest.fixture(params=sorted(CASES))
def problem(request):
    return CASES[request.param]()


def scale_of(p):
    """A typical size of f over the box, for relative tolerances."""
    return max(1.0, float(np.median(np.abs(p.grid(41)[2]))))


def stationary_points(p):
    """Every kind of listed point, with its kind."""
    return ([("minimum", m) for m in p.minima] + [("local minimum", m) for m in p.local_minima]
            + [("saddle", m) for m in p.saddles] + [("maximum", m) for m in p.maxima])


def sphere_values(p, x, radius, count=64, seed=0):
    """f at ``count`` random points at distance ``radius`` from x (and their mirror images)."""
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((count, p.dim))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    d = np.concatenate([d, -d, np.eye(p.dim), -np.eye(p.dim)])
    return np.array([p(x + radius * u) for u in d])


# ---------------------------------------------------------------------------
# the functions are the standard ones
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", [c for c in sorted(CASES) if not c.startswith("ill_")])
def test_every_function_matches_its_formula_at_random_points(case):
    problem = CASES[case]()                   # (the quadratic: against its matrix, below)
    rng = np.random.default_rng(1)
    (a, b), (c, d) = problem.box
    for _ in range(20):
        x = rng.uniform(-3, 3, problem.dim)
        x[0], x[1] = rng.uniform(a, b), rng.uniform(c, d)
        assert problem(x) == pytest.approx(reference(problem.name, x), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("n", [2, 3, 7])
def test_rosenbrock_matches_scipy(n):
    p = problems.rosenbrock(n)
    rng = np.random.default_rng(n)
    g = grad(p)
    for _ in range(20):
        x = rng.uniform(-2, 2, n)
        assert p(x) == pytest.approx(so.rosen(x), rel=1e-13)
        np.testing.assert_allclose(g(x), so.rosen_der(x), rtol=1e-12, atol=1e-10)
    stacked = rng.uniform(-2, 2, (n, 5, 3))                # scipy's rosen also sums over axis 0
    np.testing.assert_allclose(p(stacked), so.rosen(stacked), rtol=1e-13)


def test_rosenbrock_start_and_box():
    assert np.array_equal(problems.rosenbrock().start, [-1.2, 1.0])
    assert np.array_equal(problems.rosenbrock(5).start, [-1.2, 1, -1.2, 1, -1.2])
    assert problems.rosenbrock(7).box == ((-2.0, 2.0), (-1.0, 3.0))


# ---------------------------------------------------------------------------
# the listed points
# ---------------------------------------------------------------------------

def test_gradient_vanishes_at_every_listed_point(problem):
    g = grad(problem)
    for kind, x in stationary_points(problem):
        assert np.all(np.isfinite(g(x)))
        assert np.max(np.abs(g(x))) <= 1e-8 * max(1.0, abs(float(problem(x)))), (kind, x, g(x))


def test_value_at_the_global_minima(problem):
    assert problem.minima
    for m in problem.minima:
        assert float(problem(m)) == pytest.approx(problem.value, rel=1e-13, abs=1e-13)


def test_global_minima_are_strict_local_minima(problem):
    h = hessian(problem)
    for m in problem.minima:
        eig = np.linalg.eigvalsh(h(m))
        assert eig.min() > 0, (m, eig)
        assert np.all(sphere_values(problem, m, 1e-3) > problem.value)


def test_global_minima_are_below_a_dense_grid_of_the_box(problem):
    X, Y, Z = problem.grid(401)
    assert Z.min() >= problem.value - 1e-12 * max(1.0, abs(problem.value))
    # and the best grid point is next to one of the listed global minima
    i, j = np.unravel_index(np.argmin(Z), Z.shape)
    cell = max(X[0, 1] - X[0, 0], Y[1, 0] - Y[0, 0])
    best = np.array([X[i, j], Y[i, j]])
    assert min(np.linalg.norm(best - m[:2]) for m in problem.minima) < 2 * cell


def test_start_and_global_minima_lie_in_the_box(problem):
    (a, b), (c, d) = problem.box
    for x in [problem.start] + problem.minima:
        assert a < x[0] < b and c < x[1] < d


def test_local_minima_are_minima_above_the_global_value(problem):
    h = hessian(problem)
    for m in problem.local_minima:
        assert np.linalg.eigvalsh(h(m)).min() > 0
        f = float(problem(m))
        assert f > problem.value + 1e-3
        assert np.all(sphere_values(problem, m, 1e-3) > f)


def test_saddles_are_saddles(problem):
    h = hessian(problem)
    for s in problem.saddles:
        eig = np.linalg.eigvalsh(h(s))
        f = float(problem(s))
        around = sphere_values(problem, s, 1e-2)
        assert around.min() < f < around.max()
        if problem.name == "monkey_saddle":                # degenerate: zero Hessian
            assert np.allclose(eig, 0.0)
        else:
            assert eig.min() < 0 < eig.max(), eig


def test_maxima_are_maxima(problem):
    h = hessian(problem)
    for m in problem.maxima:
        assert np.linalg.eigvalsh(h(m)).max() < 0
        assert np.all(sphere_values(problem, m, 1e-3) < float(problem(m)))


def test_listed_points_are_distinct(problem):
    points = [x for _, x in stationary_points(problem)]
    for i, x in enumerate(points):
        for y in points[:i]:
            assert np.linalg.norm(x - y) > 1e-3


COMPLETE = ["rosenbrock", "rosenbrock-3", "beale", "booth", "himmelblau", "matyas",
            "three_hump_camel", "styblinski_tang", "styblinski_tang-3", "ill_conditioned_quadratic",
            "saddle", "monkey_saddle"]


@pytest.mark.parametrize("case", COMPLETE)
def test_the_listed_stationary_points_are_all_those_in_the_box(case):
    """scipy's root finder, started all over the box, finds only the listed points."""
    p = CASES[case]()
    g, h = grad(p), hessian(p)
    listed = [x for _, x in stationary_points(p)]
    (a, b), (c, d) = p.box
    lows = np.array([a, c] + [-5.0] * (p.dim - 2))
    highs = np.array([b, d] + [5.0] * (p.dim - 2))
    rng = np.random.default_rng(0)
    found = 0
    starts = rng.uniform(lows, highs, (100, p.dim))
    for x0 in starts:
        sol = so.root(g, x0, jac=h, method="hybr", tol=1e-14, options={"maxfev": 150})
        x = sol.x
        if not sol.success or np.any(x < lows) or np.any(x > highs):
            continue
        if np.max(np.abs(g(x))) > 1e-9 * max(1.0, abs(float(p(x)))):
            continue
        found += 1
        tol = 1e-3 if case == "monkey_saddle" else 1e-6     # degenerate saddle: slow convergence
        assert min(np.linalg.norm(x - y) for y in listed) < tol, f"unlisted stationary point {x}"
    assert found > 25


def test_himmelblau_minima_match_scipy_roots_of_its_gradient():
    def gradient(z):                      # written by hand, independently of autograd
        x, y = z
        u, v = x * x + y - 11, x + y * y - 7
        return [4 * x * u + 2 * v, 2 * u + 4 * y * v]

    p = problems.himmelblau()
    rounded = [(3, 2), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)]
    assert len(p.minima) == 4
    for m, r in zip(p.minima, rounded):
        sol = so.root(gradient, r, tol=1e-13)
        assert sol.success, sol.message
        np.testing.assert_allclose(m, sol.x, rtol=1e-12, atol=1e-14)
    assert len(p.maxima) == 1 and np.allclose(p.maxima[0], [-0.270845, -0.923039], atol=1e-6)
    assert len(p.saddles) == 4


def test_styblinski_tang_roots_and_value():
    t1 = min(np.roots([4.0, 0.0, -32.0, 5.0]).real)
    for n in (2, 3, 6):
        p = problems.styblinski_tang(n)
        assert p.minima[0] == pytest.approx(np.full(n, t1), rel=1e-14)
        assert p.minima[0][0] == pytest.approx(-2.903534027771177, rel=1e-15)
        assert p.value == pytest.approx(-39.16616570377142 * n, rel=1e-14)
    assert len(problems.styblinski_tang(2).local_minima) == 3
    assert len(problems.styblinski_tang(3).local_minima) == 7
    assert len(problems.styblinski_tang(3).saddles) == 18           # 27 - 8 minima - 1 maximum
    assert len(problems.styblinski_tang(6).local_minima) == 6


def test_three_hump_camel_closed_forms():
    p = problems.three_hump_camel()
    assert p.local_minima[0] == pytest.approx([1.7475523458302889, -0.8737761729151444], rel=1e-15)
    assert p.saddles[0] == pytest.approx([1.0705422918236598, -0.5352711459118299], rel=1e-15)
    assert float(p(p.local_minima[0])) == pytest.approx(0.29863844223686, rel=1e-12)


def test_rosenbrock_local_minimum_in_higher_dimensions():
    assert problems.rosenbrock(2).local_minima == []
    assert problems.rosenbrock(3).local_minima == []
    values = {4: 3.701428610430017, 5: 3.930839434133028, 7: 3.983600536424854,
              30: 3.9866238543009334}
    for n, value in values.items():
        p = problems.rosenbrock(n)
        (m,) = p.local_minima
        assert float(p(m)) == pytest.approx(value, rel=1e-12)
        assert m[0] < -0.7 and m[1] > 0.6               # near (-1, 1, ...)
        assert np.max(np.abs(so.rosen_der(m))) < 1e-9
        assert np.linalg.eigvalsh(so.rosen_hess(m)).min() > 0


# ---------------------------------------------------------------------------
# Ackley's kink, Rastrigin's lattice
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 10])
def test_ackley_is_exact_and_its_gradient_finite_at_the_kink(n):
    p = problems.ackley(n)
    g = grad(p)
    zero = np.zeros(n)
    assert float(p(zero)) == 0.0                       # exactly, by the grouping of the terms
    assert np.array_equal(g(zero), zero)               # the zero subgradient
    assert np.all(np.isfinite(hessian(p)(zero)))
    # right next to the kink the gradient is the cone's: length a b / sqrt(n) = 4 / sqrt(n)
    for x in (1e-9 * np.eye(n)[0], 1e-200 * np.eye(n)[1], np.full(n, -1e-12)):
        gx = g(x)
        assert np.linalg.norm(gx) == pytest.approx(4 / math.sqrt(n), rel=1e-6)
        direction = x / np.abs(x).max()                 # (norm(x) would underflow at 1e-200)
        np.testing.assert_allclose(gx / np.linalg.norm(gx), direction / np.linalg.norm(direction),
                                   atol=1e-9)
    # away from the kink it is the ordinary derivative of the standard formula
    rng = np.random.default_rng(n)
    for _ in range(5):
        x = rng.uniform(-3, 3, n)
        e = 1e-6
        fd = [(reference("ackley", x + e * u) - reference("ackley", x - e * u)) / (2 * e)
              for u in np.eye(n)]
        np.testing.assert_allclose(g(x), fd, rtol=1e-6, atol=1e-7)


def test_ackley_local_minima_disappear_from_the_axes_at_18_variables():
    assert len(problems.ackley(17).local_minima) == 34
    assert problems.ackley(18).local_minima == [] and problems.ackley(18).saddles == []
    assert problems.ackley().local_minima[0] == pytest.approx([0.9521665459501717, 0], abs=1e-12)


def test_rastrigin_lists_the_nearest_local_minima_and_saddles():
    p = problems.rastrigin(3)
    assert len(p.local_minima) == 6 and len(p.saddles) == 6
    a = max(abs(m).max() for m in p.local_minima)
    assert a == pytest.approx(0.9949586, abs=1e-7)
    assert float(p(p.local_minima[0])) == pytest.approx(0.9949590570932898, rel=1e-12)


# ---------------------------------------------------------------------------
# the quadratic and the saddles: the lessons their docstrings promise
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("condition, n, angle", [(100.0, 2, 0.0), (100.0, 2, math.pi / 4),
                                                 (1e4, 5, 0.7), (1.0, 3, 1.0)])
def test_ill_conditioned_quadratic(condition, n, angle):
    p = problems.ill_conditioned_quadratic(condition, n, angle)
    rotation = np.eye(n)
    rotation[:2, :2] = [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    matrix = rotation @ np.diag(np.logspace(0, math.log10(condition), n)) @ rotation.T
    for x in np.random.default_rng(0).standard_normal((5, n)):
        assert p(x) == pytest.approx(0.5 * x @ matrix @ x, rel=1e-12)
    A = hessian(p)(np.zeros(n))
    np.testing.assert_allclose(A, A.T, atol=1e-12 * condition)
    eig, vec = np.linalg.eigh(A)
    np.testing.assert_allclose(eig, condition ** (np.arange(n) / (n - 1)), rtol=1e-10)
    flattest = vec[:, 0] * np.sign(vec[0, 0] if abs(vec[0, 0]) > 1e-8 else vec[1, 0])
    if condition > 1:
        np.testing.assert_allclose(abs(flattest[:2] @ [math.cos(angle), math.sin(angle)]), 1,
                                   atol=1e-10)
    # the start has a loss of 1 along each eigen-direction (any basis when condition is 1)
    if condition > 1:
        per_direction = 0.5 * eig * (vec.T @ p.start) ** 2
        np.testing.assert_allclose(per_direction, 1.0, rtol=1e-10)
    assert float(p(p.start)) == pytest.approx(n)
    (a, b), (c, d) = p.box
    assert a == -b and c == -d and a == c
    assert abs(p.start[0]) < b and abs(p.start[1]) < d


def test_ill_conditioned_quadratic_default_box():
    p = problems.ill_conditioned_quadratic()
    assert p.box == ((-1.8, 1.8), (-1.8, 1.8))
    np.testing.assert_allclose(p.start, [math.sqrt(2), math.sqrt(0.02)])


def gradient_descent(p, x, lr, steps, momentum=0.0, until=None):
    g = grad(p)
    x = np.array(x, dtype=float)
    v = np.zeros_like(x)
    for k in range(steps):
        v = momentum * v - lr * g(x)
        x = x + v
        if until is not None and until(x):
            return x, k + 1
    return x, steps


def test_three_hump_camel_start_traps_gradient_descent_not_momentum():
    p = problems.three_hump_camel()
    x, _ = gradient_descent(p, p.start, 0.005, 4000)
    np.testing.assert_allclose(x, p.local_minima[0], atol=1e-6)
    x, _ = gradient_descent(p, p.start, 0.005, 4000, momentum=0.9)
    np.testing.assert_allclose(x, p.minima[0], atol=1e-6)


def test_saddle_escape_takes_about_56_steps_and_never_happens_on_the_ridge():
    p = problems.saddle()
    x, steps = gradient_descent(p, p.start, 0.1, 1000, until=lambda x: p(x) < -0.99)
    assert 45 <= steps <= 70 and np.allclose(x, p.minima[0], atol=0.1)
    x, _ = gradient_descent(p, [1.0, 0.0], 0.1, 1000)
    np.testing.assert_allclose(x, p.saddles[0], atol=1e-12)


def test_monkey_saddle_escape_takes_about_140_steps():
    p = problems.monkey_saddle()
    x, steps = gradient_descent(p, p.start, 0.1, 2000, until=lambda x: p(x) < -0.2475)
    assert 100 <= steps <= 200
    np.testing.assert_allclose(x, [0.5, math.sqrt(3) / 2], atol=0.05)
    x, _ = gradient_descent(p, [1.0, 0.0], 0.1, 2000)
    assert x[1] == 0.0 and 0 < x[0] < 0.01            # creeping toward the origin


@pytest.mark.parametrize("make", [problems.rosenbrock, problems.beale, problems.booth,
                                  problems.matyas, problems.ill_conditioned_quadratic])
def test_solve_from_the_start_reaches_the_minimum(make):
    p = make()
    x = p.start.copy()
    result = dh.solve(p, x)
    assert result.success
    np.testing.assert_allclose(x, p.minima[0], atol=1e-4)


# ---------------------------------------------------------------------------
# the Problem class
# ---------------------------------------------------------------------------

def test_grid_shapes_and_values(problem):
    X, Y, Z = problem.grid(37)
    assert X.shape == Y.shape == Z.shape == (37, 37)
    (a, b), (c, d) = problem.box
    assert X[0, 0] == a and X[0, -1] == b and Y[0, 0] == c and Y[-1, 0] == d
    assert np.all(X[:, 5] == X[0, 5]) and np.all(Y[5, :] == Y[5, 0])
    rng = np.random.default_rng(3)
    for _ in range(10):
        i, j = rng.integers(0, 37, 2)
        x = problem.minima[0].copy()
        x[0], x[1] = X[i, j], Y[i, j]
        assert Z[i, j] == pytest.approx(float(problem(x)), rel=1e-12, abs=1e-12)


def test_grid_default_size_and_stacked_calls():
    p = problems.himmelblau()
    X, Y, Z = p.grid()
    assert Z.shape == (200, 200)
    stack = np.random.default_rng(0).uniform(-5, 5, (2, 4, 3, 2))
    values = p(stack)
    assert values.shape == (4, 3, 2)
    assert values[1, 2, 0] == pytest.approx(p(stack[:, 1, 2, 0]), rel=1e-14)


def test_calls_take_lists_and_integers_and_return_floats():
    p = problems.booth()
    assert p([1, 3]) == 0.0
    assert isinstance(p(np.array([0, 0])), float)
    assert p((0.0, 0.0)) == 74.0


def test_start_and_points_are_read_only_copies():
    p = problems.rosenbrock()
    with pytest.raises(ValueError):
        p.start[0] = 0.0
    with pytest.raises(ValueError):
        p.minima[0][0] = 0.0
    with pytest.raises(ValueError, match="read-only"):
        dh.solve(p, p.start)                           # the optimizers refuse it: copy it
    assert problems.rosenbrock().start is not p.start


def test_user_problem_not_vectorized():
    def f(x):
        return float(x @ x) if x.ndim == 1 else np.nan
    p = Problem("sphere", f, 2, [(0, 0)], 0.0, (1, 1), ((-1, 1), (-2, 2)), vectorized=False)
    X, Y, Z = p.grid(5)
    np.testing.assert_allclose(Z, X ** 2 + Y ** 2)
    bad = Problem("sphere", lambda x: anp.dot(x, x), 2, [(0, 0)], 0.0, (1, 1), ((-1, 1), (-2, 2)))
    with pytest.raises(ValueError, match="vectorized=False"):
        bad.grid(5)


def test_repr():
    text = repr(problems.himmelblau())
    assert text.startswith("<Problem himmelblau: dim=2, value=0 at 4 minima")
    assert "box ((-5.0, 5.0), (-5.0, 5.0))" in text
    assert "at [1., 1.]" in repr(problems.rosenbrock())


def test_all_problems():
    ps = problems.all_problems()
    names = [p.name for p in ps]
    assert names == ["rosenbrock", "beale", "booth", "himmelblau", "matyas", "three_hump_camel",
                     "rastrigin", "ackley", "styblinski_tang", "ill_conditioned_quadratic",
                     "saddle", "monkey_saddle"]
    assert all(isinstance(p, Problem) and p.dim == 2 and p.formula for p in ps)
    assert problems.all_problems()[0] is not ps[0]


def test_docstring_examples_run():
    result = doctest.testmod(problems, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# ---------------------------------------------------------------------------
# data makers
# ---------------------------------------------------------------------------

def test_blobs_shapes_dtypes_and_balance():
    X, y = problems.blobs()
    assert X.shape == (200, 2) and X.dtype == np.float64
    assert y.shape == (200,) and y.dtype == np.int64
    counts = np.bincount(y)
    assert len(counts) == 3 and counts.max() - counts.min() <= 1
    X, y = problems.blobs(n_samples=101, centers=4, n_features=5, spread=0.5, seed=3)
    assert X.shape == (101, 5) and sorted(np.bincount(y)) == [25, 25, 25, 26]
    assert len(set(y[:12])) > 1                         # shuffled, not sorted by class


def test_blobs_are_deterministic_and_depend_on_the_seed():
    X1, y1 = problems.blobs(seed=7)
    X2, y2 = problems.blobs(seed=7)
    X3, y3 = problems.blobs(seed=8)
    assert np.array_equal(X1, X2) and np.array_equal(y1, y2)
    assert not np.array_equal(X1, X3)
    X4, y4 = problems.blobs(seed=np.random.default_rng(7))
    assert np.array_equal(X1, X4) and np.array_equal(y1, y4)


def test_blobs_centres():
    for centers in (2, 3, 5):
        X, y = problems.blobs(n_samples=10 * centers, centers=centers, spread=0.0)
        means = np.array([X[y == k][0] for k in range(centers)])
        assert all(np.array_equal(X[y == k], np.tile(means[k], (10, 1))) for k in range(centers))
        gaps = np.linalg.norm(means - np.roll(means, 1, axis=0), axis=1)
        np.testing.assert_allclose(gaps, problems.BLOB_SPACING)
        np.testing.assert_allclose(means.mean(axis=0), 0.0, atol=1e-12)
    X, y = problems.blobs(n_samples=30, centers=3, n_features=1, spread=0.0)
    assert sorted(set(X[:, 0])) == [-6.0, 0.0, 6.0]
    X, y = problems.blobs(n_samples=5, centers=1, spread=0.0)
    assert np.all(X == 0) and np.all(y == 0)
    X, y = problems.blobs(n_samples=3000, n_features=4, seed=1)
    for k in range(3):                                  # spread is the blobs' standard deviation
        np.testing.assert_allclose(X[y == k].std(axis=0), 1.0, atol=0.1)
        assert abs(X[y == k][:, 2:].mean()) < 0.1


def test_damped_oscillator():
    t, y, truth, model = problems.damped_oscillator()
    assert t.shape == y.shape == (200,) and y.dtype == np.float64
    np.testing.assert_array_equal(t, np.linspace(0, 10, 200))
    assert truth == {"A": 2.0, "tau": 3.0, "omega": 2.5, "phi": 0.3, "c": 0.1}
    assert all(type(v) is float for v in truth.values())
    clean = truth["A"] * np.exp(-t / truth["tau"]) * np.cos(truth["omega"] * t + truth["phi"]) \
        + truth["c"]
    np.testing.assert_allclose(model(t, truth), clean, rtol=1e-14)
    noise = 0.05 * np.random.default_rng(0).standard_normal(200)
    np.testing.assert_allclose(y - model(t, truth), noise, atol=1e-14)
    t2, y2, _, _ = problems.damped_oscillator()
    assert np.array_equal(y, y2)
    assert not np.array_equal(y, problems.damped_oscillator(seed=1)[1])
    t3, y3, _, _ = problems.damped_oscillator(n=50, noise=0.0, t_max=4.0)
    np.testing.assert_allclose(y3, model(t3, truth), rtol=1e-15)
    assert t3[-1] == 4.0


def test_damped_oscillator_model_fits_with_curve_fit():
    t, y, truth, model = problems.damped_oscillator()
    p0 = {"A": np.array(1.0), "tau": np.array(2.0), "omega": np.array(2.3),
          "phi": np.array(0.0), "c": np.array(0.0)}
    g = grad(lambda p: anp.sum((model(t, p) - y) ** 2))(p0)
    assert set(g) == set(truth) and all(np.isfinite(float(v)) for v in g.values())
    popt, pcov = dh.curve_fit(model, t, y, p0)
    errors = dh.standard_errors(pcov, popt)
    for name, value in truth.items():
        assert abs(float(popt[name]) - value) < 4 * float(errors[name])


# ---------------------------------------------------------------------------
# bad arguments
# ---------------------------------------------------------------------------

BAD = [
    (lambda: problems.rosenbrock(1), ValueError, r"rosenbrock\(n=1\): n must be >= 2; got 1"),
    (lambda: problems.rosenbrock(2.5), ValueError, r"rosenbrock\(n=2\.5\): n must be an integer"),
    (lambda: problems.rastrigin("3"), TypeError, r"rastrigin\(n='3'\): n must be a real number"),
    (lambda: problems.ackley(True), TypeError, r"ackley\(n=True\): n must be a real number"),
    (lambda: problems.styblinski_tang(0), ValueError, r"styblinski_tang\(n=0\): n must be >= 2"),
    (lambda: problems.ill_conditioned_quadratic(0.5), ValueError,
     r"ill_conditioned_quadratic\(condition=0\.5\): condition must be >= 1; got 0\.5"),
    (lambda: problems.ill_conditioned_quadratic(math.inf), ValueError, r"condition must be finite"),
    (lambda: problems.ill_conditioned_quadratic(angle=math.nan), ValueError,
     r"angle=nan\): angle must be finite"),
    (lambda: problems.ill_conditioned_quadratic(n=1), ValueError, r"n must be >= 2"),
    (lambda: problems.blobs(n_samples=2), ValueError,
     r"blobs\(n_samples=2\): n_samples must be >= centers \(3\)"),
    (lambda: problems.blobs(n_samples=0), ValueError, r"n_samples must be >= 1"),
    (lambda: problems.blobs(centers=0), ValueError, r"blobs\(centers=0\): centers must be >= 1"),
    (lambda: problems.blobs(n_features=0), ValueError, r"n_features must be >= 1"),
    (lambda: problems.blobs(spread=-1.0), ValueError,
     r"blobs\(spread=-1\.0\): spread must be >= 0"),
    (lambda: problems.blobs(seed=-1), ValueError, r"blobs\(seed=-1\): seed must be >= 0; got -1"),
    (lambda: problems.blobs(seed=1.5), TypeError, r"blobs\(seed=1\.5\): seed must be an int"),
    (lambda: problems.blobs(seed=None), TypeError, r"seed must be an int >= 0 or a numpy"),
    (lambda: problems.damped_oscillator(n=1), ValueError,
     r"damped_oscillator\(n=1\): n must be >= 2"),
    (lambda: problems.damped_oscillator(noise=-0.1), ValueError, r"noise must be >= 0"),
    (lambda: problems.damped_oscillator(t_max=0), ValueError, r"t_max=0\): t_max must be > 0"),
    (lambda: problems.damped_oscillator(seed="a"), TypeError, r"seed must be an int"),
    (lambda: problems.booth().grid(1), ValueError, r"booth\.grid\(n=1\): n must be >= 2; got 1"),
    (lambda: problems.booth().grid(10.5), ValueError, r"n must be an integer"),
    (lambda: problems.booth()([1.0, 2.0, 3.0]), ValueError,
     r"booth\(x\): x must have length 2 along its first axis \(the variables\); got shape \(3,\)"),
    (lambda: problems.booth()(1.0), ValueError, r"got shape \(\)"),
    (lambda: Problem("p", abs, 1, [(0,)], 0.0, (0,), ((0, 1), (0, 1))), ValueError,
     r"Problem\(dim=1\): dim must be >= 2"),
    (lambda: Problem("p", abs, 2, [], 0.0, (0, 0), ((0, 1), (0, 1))), ValueError,
     r"minima must list at least one"),
    (lambda: Problem("p", abs, 2, [(0, 0)], 0.0, (0, 0, 0), ((0, 1), (0, 1))), ValueError,
     r"start must be a 1-D array of length 2; got shape \(3,\)"),
    (lambda: Problem("p", abs, 2, [(0, 0)], 0.0, (0, 0), ((1, 0), (0, 1))), ValueError,
     r"box must be \(\(x_low, x_high\), \(y_low, y_high\)\) with each low < high"),
    (lambda: Problem("p", abs, 2, [(0, 0)], 0.0, (0, 0), (0, 1)), TypeError, r"box must be"),
    (lambda: Problem("p", 3, 2, [(0, 0)], 0.0, (0, 0), ((0, 1), (0, 1))), TypeError,
     r"function must be callable"),
    (lambda: Problem("p", abs, 2, [(0, np.nan)], 0.0, (0, 0), ((0, 1), (0, 1))), ValueError,
     r"minima\[0\] must be finite"),
    (lambda: Problem("p", abs, 2, [(0, 0)], math.inf, (0, 0), ((0, 1), (0, 1))), ValueError,
     r"value must be finite"),
]


@pytest.mark.parametrize("call, error, message", BAD)
def test_bad_arguments_are_refused_with_a_message(call, error, message):
    with pytest.raises(error, match=message):
        call()
