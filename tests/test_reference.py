"""npdownhill's optimizers against the textbook transcriptions in reference.py.

Every registered algorithm runs 100 float64 updates on a random 7-D SPD
quadratic and on the 2-D Rosenbrock function from (-3, -3), with

  (a) default hyperparameters ("default"; on Rosenbrock the learning rate of
      the record's default_lr where the default would diverge),
  (b) one or more non-default sets ("custom1", "custom2", ...),
  (c) classical momentum 0.5 ("momentum0.5"),
  (d) Nesterov momentum 0.5 ("nesterov0.5") -- (c) and (d) for the rules
      that take momentum (not the schedule-free rules),
  (e) the record's weight-decay / momentum-wrapper sets, if any,

each with the record's table_base added (Prodigy's d0; see reference.Record), and the whole trajectory x_0 .. x_100 must agree with the transcription to
rtol 1e-10.  The algorithms are the package's registry; every setting (the
transcription, the learning rates, the custom sets, the aliases, which runs
need an absolute tolerance) comes from the algorithm's record in
reference.py.  A failure here means the package and the equations disagree --
or, if the package is not written yet, that it is missing: such tests fail on
purpose rather than being skipped.
"""

import math
import os
import sys

import autograd.numpy as anp
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as R  # noqa: E402

try:
    import npdownhill as dh
    _IMPORT_ERROR = None
except ImportError as exc:  # fail every test, but do not abort collection
    dh = None
    _IMPORT_ERROR = exc


def _dh():
    if dh is None:
        pytest.fail(f"npdownhill cannot be imported: {_IMPORT_ERROR!r}")
    return dh


# The registry (every test below then fails on the import error if the
# package cannot be imported; the transcription-only tests still run).
NAMES = dh.algorithms() if dh is not None else sorted(R.RECORDS)


STEPS = 100
QUAD_N, QUAD_SEED = 7, 0      # eigenvalues of A from 1 to 58.2
ESGD_SEED = 1234
RTOL = 1e-10

# ---------------------------------------------------------------------------
# Problems.  The numpy versions (reference.py) give the gradients handed to
# opt.apply(); ESGD takes Hessian-vector products of the loss with autograd,
# so it gets separate autograd.numpy versions of the same functions.
# ---------------------------------------------------------------------------


def anp_quadratic_loss(A, b):
    def loss(x):
        return 0.5 * anp.dot(x, anp.dot(A, x)) - anp.dot(b, x)
    return loss


def anp_rosenbrock_loss(p):
    return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


def anp_diagonal_loss(h):
    def loss(x):
        return 0.5 * anp.sum(h * x ** 2)
    return loss


def problem(name):
    """(f, grad, hvp, x0, autograd loss) of a named test problem."""
    if name == "quadratic":
        A, b, x0 = R.quadratic_data(QUAD_N, QUAD_SEED)
        f, grad, hvp, x0 = R.quadratic_from(A, b, x0)
        return f, grad, hvp, x0, anp_quadratic_loss(A, b)
    if name == "rosenbrock":
        f, grad, hvp, x0 = R.rosenbrock()
        return f, grad, hvp, x0, anp_rosenbrock_loss
    raise KeyError(name)


def run_package(algo, problem_name, steps, seed=ESGD_SEED, **kwargs):
    """Iterates x_0 .. x_steps of the package's optimizer, shape (steps+1, n)."""
    dh_ = _dh()
    f, grad, hvp, x0, loss = problem(problem_name)
    x = x0.copy()
    xs = [x.copy()]
    if R.record(algo).needs_loss:
        opt = dh_.build(algo, loss, x, rng=seed, **kwargs)
        for _ in range(steps):
            opt.step()
            xs.append(x.copy())
    else:
        opt = dh_.build(algo, None, x, **kwargs)
        for _ in range(steps):
            opt.apply(grad(x))
            xs.append(x.copy())
    return np.array(xs)


def run_reference(algo, problem_name, steps, seed=ESGD_SEED, **kwargs):
    f, grad, hvp, x0, loss = problem(problem_name)
    if R.record(algo).needs_loss:
        return R.trajectory(algo, grad, x0, steps, hvp_fn=hvp, seed=seed,
                            **kwargs)
    return R.trajectory(algo, grad, x0, steps, **kwargs)


# ---------------------------------------------------------------------------
# The cases: every registered algorithm, with the settings of its record.
# ---------------------------------------------------------------------------

PROBLEMS = ("quadratic", "rosenbrock")


def _with_lr(hyper, lr, base=None):
    hyper = dict(base or {}, **hyper)
    return hyper if lr is None else dict(hyper, learning_rate=lr)


def _label(hyper):
    return "-".join(f"{key}{val}" if not isinstance(val, bool) else key
                    for key, val in hyper.items())


def _cases():
    cases = []
    for algo in NAMES:
        rec = R.RECORDS.get(algo)
        if rec is None:         # its test fails, saying the record is missing
            cases.append((algo, "quadratic", "default", {}))
            continue
        if rec.line_search:     # checked step by step below, not as a trajectory
            continue
        for k, name in enumerate(PROBLEMS):
            lr = rec.default_lr[k]
            base = rec.table_base
            cases.append((algo, name, "default", _with_lr({}, lr, base)))
            for j, (lrs, hyper) in enumerate(rec.custom, start=1):
                cases.append((algo, name, f"custom{j}",
                              _with_lr(hyper, lrs[k], base)))
            if not rec.takes_momentum:
                continue
            cases.append((algo, name, "momentum0.5",
                          _with_lr(dict(momentum=0.5), lr, base)))
            cases.append((algo, name, "nesterov0.5",
                          _with_lr(dict(momentum=0.5, nesterov=True), lr, base)))
        for hyper in rec.wrapped:
            for k, name in enumerate(PROBLEMS):
                cases.append((algo, name, _label(hyper),
                              _with_lr(hyper, rec.default_lr[k], rec.table_base)))
    return cases


CASES = _cases()
CASE_IDS = [f"{a}-{p}-{v}" for a, p, v, _ in CASES]

# The runs listed in a record's zero_crossing (see reference.Record) pass a
# coordinate close to zero and get this absolute tolerance besides RTOL.
ZERO_CROSSING_ATOL = 1e-13


def tolerance(algo, problem_name, variant):
    crossing = f"{problem_name}-{variant}" in R.record(algo).zero_crossing
    return RTOL, (ZERO_CROSSING_ATOL if crossing else 0.0)


def test_zero_crossing_labels_name_cases():
    """Every run a record lists in zero_crossing is one of its cases (a stale
    or misspelt label would silently leave a case without the tolerance it
    was meant to have, or give a case one it no longer needs)."""
    labels = {(a, f"{p}-{v}") for a, p, v, _ in CASES}
    stale = sorted(f"{algo}: {label}" for algo in NAMES if algo in R.RECORDS
                   for label in R.RECORDS[algo].zero_crossing
                   if (algo, label) not in labels)
    assert not stale, f"zero_crossing labels that name no case: {stale}"


@pytest.mark.parametrize("algo, problem_name, variant, hyper", CASES,
                         ids=CASE_IDS)
def test_trajectory_matches_reference(algo, problem_name, variant, hyper):
    rtol, atol = tolerance(algo, problem_name, variant)
    ref = run_reference(algo, problem_name, STEPS, **hyper)
    ours = run_package(algo, problem_name, STEPS, **hyper)
    assert ours.shape == ref.shape
    # rtol 1e-10: the package and the transcription evaluate the same
    # equations in a different order, which costs a few ulps per update; over
    # 100 updates every case of the table amplifies that to less than 1e-11
    # (test_table_case_is_well_conditioned checks it).
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol)


NOISE = 1e-15   # relative perturbation, about 4.5 ulps


def rounding_noise(seed):
    prng = np.random.default_rng(seed)

    def noise(a):
        return a * (1.0 + NOISE * prng.uniform(-1.0, 1.0, np.shape(a)))
    return noise


@pytest.mark.parametrize("algo, problem_name, variant, hyper", CASES,
                         ids=CASE_IDS)
def test_table_case_is_well_conditioned(algo, problem_name, variant, hyper):
    """The table is usable at rtol 1e-10: each run stays bounded, and random
    relative perturbations of 1e-15 injected into the gradient, the update,
    the optimizer state, the velocity and every iterate (more than the
    rounding differences of two honest implementations) move the trajectory
    by less than a tenth of the tolerance.  Runs far enough to bounce around
    the minimum with sign-like steps (RMSProp, Adadelta, Adam with a large
    learning rate) fail this: they amplify 1 ulp to O(1) within 100 updates.
    (Needs only reference.py.)"""
    rtol, atol = tolerance(algo, problem_name, variant)
    ref = run_reference(algo, problem_name, STEPS, **hyper)
    assert np.all(np.isfinite(ref)) and np.abs(ref).max() < 10
    for k in range(5):
        noisy = run_reference(algo, problem_name, STEPS,
                              noise=rounding_noise(k), **hyper)
        excess = np.abs(noisy - ref) / (rtol * np.abs(ref) + atol)
        assert excess.max() < 0.1, excess.max()


# ---------------------------------------------------------------------------
# Hyperparameter aliases.
# ---------------------------------------------------------------------------

# (algorithm, kwargs given to the package, canonical kwargs for the reference),
# from the records' aliases.
ALIASES = [(algo, alias_kwargs, canonical)
           for algo in NAMES if algo in R.RECORDS
           for alias_kwargs, canonical in R.RECORDS[algo].aliases]

# Aliases that only rename a number (no halflife conversion): the run must be
# bit-identical to the one with the canonical name.
PURE_RENAMES = [a for a in ALIASES
                if not any(k.endswith("halflife") for k in a[1])]


def _alias_id(case):
    return f"{case[0]}-" + "-".join(sorted(case[1]))


@pytest.mark.parametrize("algo, alias_kwargs, canonical", ALIASES,
                         ids=[_alias_id(c) for c in ALIASES])
def test_alias_matches_reference(algo, alias_kwargs, canonical):
    ref = run_reference(algo, "quadratic", STEPS, **canonical)
    ours = run_package(algo, "quadratic", STEPS, **alias_kwargs)
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=0)


@pytest.mark.parametrize("algo, alias_kwargs, canonical", PURE_RENAMES,
                         ids=[_alias_id(c) for c in PURE_RENAMES])
def test_alias_is_a_pure_rename(algo, alias_kwargs, canonical):
    a = run_package(algo, "quadratic", STEPS, **alias_kwargs)
    b = run_package(algo, "quadratic", STEPS, **canonical)
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# ESGD: seeded randomness, and what it is for.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("problem_name", PROBLEMS)
def test_esgd_same_seed_is_bit_identical(problem_name):
    a = run_package("esgd", problem_name, STEPS, seed=7)
    b = run_package("esgd", problem_name, STEPS, seed=7)
    np.testing.assert_array_equal(a, b)
    ref = run_reference("esgd", problem_name, STEPS, seed=7)
    np.testing.assert_allclose(a, ref, rtol=RTOL, atol=0)


@pytest.mark.parametrize("problem_name", PROBLEMS)
def test_esgd_different_seeds_differ(problem_name):
    a = run_package("esgd", problem_name, STEPS, seed=7)
    b = run_package("esgd", problem_name, STEPS, seed=8)
    assert np.all(a[0] == b[0])
    assert np.max(np.abs(a[1:] - b[1:])) > 1e-3


ESGD_ILL_STEPS = 200


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_esgd_equilibrates_an_ill_conditioned_quadratic(seed):
    """Diagonal Hessian, eigenvalues 1 .. 1e4, each coordinate starting with
    loss 0.5 (f(x0) = 4).  ESGD's preconditioner estimates |h_i|, so each
    coordinate contracts by about (1 - lr) per update whatever its curvature:
    the transcription gets f(x_200)/f(x0) between 3e-19 and 8e-19 for seeds
    0, 1, 2 (about 1e-9 after 100 updates).  Plain SGD at its best stable
    learning rate (2/1e4) only reaches 0.22 after 300 updates.
    """
    dh_ = _dh()
    f, grad, hvp, x0 = R.ill_conditioned_quadratic()
    h = np.geomspace(1.0, 1e4, x0.size)
    x = x0.copy()
    opt = dh_.build("esgd", anp_diagonal_loss(h), x, rng=seed)
    for _ in range(ESGD_ILL_STEPS):
        opt.step()
    ratio = f(x) / f(x0)
    assert ratio < 1e-15, ratio
    ref = R.trajectory("esgd", grad, x0, ESGD_ILL_STEPS, hvp_fn=hvp, seed=seed)
    # Same random draws: the package lands where the transcription does.
    np.testing.assert_allclose(x, ref[-1], rtol=RTOL, atol=0)


# ---------------------------------------------------------------------------
# NAG solves Rosenbrock.
# ---------------------------------------------------------------------------

NAG_LR = 1.25e-4
NAG_STEPS = 15000


def test_nag_solves_rosenbrock():
    """Nesterov momentum 0.9, lr 1.25e-4: the transcription stays within 1e-3
    of (1, 1) from update 11379 on and is 1.6e-4 away after 15000 updates
    (lr 1.2e-4 and 1.3e-4 also get there, by update 13350 and 11613)."""
    dh_ = _dh()
    f, grad, hvp, x0 = R.rosenbrock()
    x = x0.copy()
    opt = dh_.build("nag", None, x, learning_rate=NAG_LR, momentum=0.9)
    for _ in range(NAG_STEPS):
        opt.apply(grad(x))
    assert np.max(np.abs(x - 1.0)) < 1e-3, x


# ---------------------------------------------------------------------------
# Checks of the transcription itself (these pass without the package).
# ---------------------------------------------------------------------------

def _central_difference(fun, x, h=1e-6):
    x = np.asarray(x, dtype=np.float64)
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        cols.append((np.asarray(fun(x + e)) - np.asarray(fun(x - e))) / (2 * h))
    return np.array(cols).T


@pytest.mark.parametrize("name", ["quadratic", "rosenbrock", "ill"])
def test_reference_problem_derivatives(name):
    if name == "ill":
        f, grad, hvp, x0 = R.ill_conditioned_quadratic()
        x = x0 + 0.1
    else:
        f, grad, hvp, x0, loss = problem(name)
        x = x0 + np.linspace(-0.3, 0.4, x0.size)
    g_fd = _central_difference(lambda y: np.array([f(y)]), x)[0]
    np.testing.assert_allclose(grad(x), g_fd, rtol=1e-6, atol=1e-6)
    H_fd = _central_difference(grad, x)
    v = np.cos(np.arange(x.size) + 1.0)
    np.testing.assert_allclose(hvp(x, v), H_fd @ v, rtol=1e-6, atol=1e-5)


def test_reference_quadratic_is_well_posed():
    A, b, x0 = R.quadratic_data(QUAD_N, QUAD_SEED)
    np.testing.assert_array_equal(A, A.T)
    lam = np.linalg.eigvalsh(A)
    assert lam[0] > 0
    assert 10 <= lam[-1] / lam[0] <= 100
    A2, b2, x02 = R.quadratic_data(QUAD_N, QUAD_SEED)
    np.testing.assert_array_equal(A, A2)


def test_reference_first_updates_by_hand():
    g0 = np.array([3.0, -0.5, 2e-3])
    x0 = np.array([1.0, 2.0, -1.0])
    grad = lambda x: g0  # noqa: E731  (constant gradient)
    # Adam's first update is lr * sign(g) when eps is negligible.
    tr = R.trajectory("adam", grad, x0, 1, epsilon=0.0)
    np.testing.assert_allclose(tr[1], x0 - 1e-3 * np.sign(g0), rtol=1e-15)
    # Rprop's first update is the initial step size times sign(g), then the
    # step grows by rprop_increase while the sign stays.
    tr = R.trajectory("rprop", grad, x0, 2)
    np.testing.assert_allclose(tr[1], x0 - 0.1 * np.sign(g0), rtol=1e-15)
    np.testing.assert_allclose(tr[2], tr[1] - 0.12 * np.sign(g0), rtol=1e-15)
    # Momentum: the second update is (1 + mu) times the first.
    tr = R.trajectory("momentum", grad, x0, 2)
    np.testing.assert_allclose(tr[1], x0 - 0.01 * g0, rtol=1e-14)
    np.testing.assert_allclose(tr[2], x0 - (1 + 1.9) * 0.01 * g0, rtol=1e-14)
    # Nesterov: first update (1 + mu) lr g, second (1 + mu + mu^2) lr g.
    tr = R.trajectory("nag", grad, x0, 2)
    np.testing.assert_allclose(tr[1], x0 - 1.9 * 0.01 * g0, rtol=1e-14)
    np.testing.assert_allclose(tr[2], x0 - (1.9 + 2.71) * 0.01 * g0,
                               rtol=1e-14)
    # Weight decay: x1 = x0 - lr g - lr wd x0.
    tr = R.trajectory("sgd", grad, x0, 1, weight_decay=0.1)
    np.testing.assert_allclose(tr[1], x0 - 0.01 * g0 - 0.001 * x0, rtol=1e-15)
    # RAdam: the first updates (rho_t <= 5) are lr * m / bc1 = lr * g here.
    tr = R.trajectory("radam", grad, x0, 5)
    expected = x0 - 1e-3 * np.arange(6)[:, None] * g0
    np.testing.assert_allclose(tr, expected, rtol=1e-14)
    # ESGD's default decay has a half-life of 14 updates.
    assert math.isclose(R.record("esgd").defaults["rho"] ** 14, 0.5, rel_tol=1e-14)


# ---------------------------------------------------------------------------
# Quasi-Newton rules: every step along the transcribed direction.
# ---------------------------------------------------------------------------

LINE_SEARCH = R.select(NAMES, lambda rec: rec.line_search)
QN_CASES = [(algo, name, hyper) for algo in LINE_SEARCH for name, hyper in (
    ("quadratic", {}), ("rosenbrock", {}),
    *((("quadratic", {"history_size": 3}),) if "history_size" in R.record(algo).defaults
      else ()))]


@pytest.mark.parametrize("algo, problem_name, hyper", QN_CASES,
                         ids=[f"{a}-{p}-{_label(h) or 'default'}" for a, p, h in QN_CASES])
def test_quasi_newton_steps_follow_the_transcribed_direction(algo, problem_name, hyper):
    """Each step x_{k+1} - x_k of the package is a positive multiple of the
    transcription's direction computed from the curvature pairs (s, y) of the
    package's own earlier steps, with gradients from the hand-written derivatives."""
    rec = R.record(algo)
    f, grad, hvp, x0, loss = problem(problem_name)
    x = x0.copy()
    opt = _dh().build(algo, loss, x, **hyper)
    xs = [x.copy()]
    for _ in range(25):
        opt.step()
        if opt.converged:
            break
        xs.append(x.copy())
    assert len(xs) > 5, f"{algo} stopped after {len(xs) - 1} steps"
    settings = dict(rec.defaults, **hyper)
    pairs = []
    for k in range(len(xs) - 1):
        g = grad(xs[k])
        d = rec.rule(g, pairs, **settings)
        step = xs[k + 1] - xs[k]
        cosine = step @ d / (np.linalg.norm(step) * np.linalg.norm(d))
        assert cosine > 1 - 1e-9, f"step {k}: cos(step, direction) = {cosine!r}"
        pairs.append((step, grad(xs[k + 1]) - g))


@pytest.mark.parametrize("algo", LINE_SEARCH)
def test_quasi_newton_with_exact_line_search_ends_a_quadratic_in_n_plus_1_steps(algo):
    """With an (almost) exact line search -- a strong Wolfe search with a tiny c2 --
    L-BFGS (memory >= n) and BFGS reach the minimum of an n-d quadratic in at most
    n + 1 iterations (Nocedal & Wright, Theorem 6.4 / section 7.2)."""
    f, grad, hvp, x0, loss = problem("quadratic")
    A, b, _ = R.quadratic_data(QUAD_N, QUAD_SEED)
    x_star = np.linalg.solve(A, b)
    x = x0.copy()
    extra = {"history_size": QUAD_N} if "history_size" in R.record(algo).defaults else {}
    opt = _dh().build(algo, loss, x, c1=1e-12, c2=1e-9, max_evals=60, gtol=1e-7, ftol=0.0,
                      **extra)
    iterations = 0
    while not opt.converged and iterations < 3 * QUAD_N:
        opt.step()
        iterations += 1
    assert opt.converged == "gtol"
    assert iterations <= QUAD_N + 1
    np.testing.assert_allclose(x, x_star, rtol=1e-8, atol=1e-9)
