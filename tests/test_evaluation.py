"""Evaluation params: lookahead and parameter averaging on every first-order rule.

The engine's slow weights and averages are checked against the independent
transcriptions of reference.py (lookahead as a hook of its trajectory; the
averages summed directly from the plain trajectory) and against optax
(optax.lookahead, optax.ema(debias=True)), then what a run does
with them: validation, the best params, the arrays at the end, evaluate(),
refused updates, state dicts, bad values and combinations that cannot work.
Resume through a checkpoint file in a new process is in test_checkpoint.py.
"""

import json
import math
import os
import sys

import autograd.numpy as anp
import numpy as np
import pytest

import npdownhill as dh
from npdownhill import optimizer_state
from npdownhill.errors import NonFiniteError

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reference as R  # noqa: E402
from recorded import trained_and_evaluated  # noqa: E402

STEPS = 100
A, B, X0 = R.quadratic_data(7, 0)
_, GRAD, _, X0 = R.quadratic_from(A, B, X0)

# (algorithm, hyperparameters) on the 7-d quadratic: a plain rule, momentum, an adaptive one
RULES = [("sgd", dict(learning_rate=0.01)),
         ("sgd", dict(learning_rate=0.01, momentum=0.5, weight_decay=0.1)),
         ("adam", dict(learning_rate=0.05))]
RULE_IDS = ["sgd", "sgd-momentum-wd", "adam"]


def run(algo, hyper, steps=STEPS):
    """(params after each update, evaluation params after each update), x_0 first."""
    x = X0.copy()
    opt = dh.build(algo, None, x, **hyper)
    xs, evals = [x.copy()], [opt.evaluation_params().copy()]
    for _ in range(steps):
        opt.apply(GRAD(x))
        xs.append(x.copy())
        evals.append(opt.evaluation_params())
    return np.array(xs), np.array(evals), opt


@pytest.mark.parametrize("algo, hyper", RULES, ids=RULE_IDS)
@pytest.mark.parametrize("average", [dict(average="ema", average_decay=0.9),
                                     dict(average="ema"),
                                     dict(average="polyak"),
                                     dict(average="polyak", average_start=30)],
                         ids=["ema0.9", "ema", "polyak", "polyak30"])
def test_average_matches_reference_and_leaves_training_alone(algo, hyper, average):
    xs, evals, _ = run(algo, dict(hyper, **average))
    plain, same, _ = run(algo, hyper)
    np.testing.assert_array_equal(xs, plain)         # averaging never touches training
    np.testing.assert_array_equal(same, plain)       # without it, evaluation = params
    if average["average"] == "ema":
        expected = R.ema_average(plain, average.get("average_decay", 0.999))
    else:
        expected = R.polyak_average(plain, average.get("average_start", 0))
    np.testing.assert_allclose(evals, expected, rtol=1e-11, atol=1e-14)
    assert not np.allclose(evals[-1], xs[-1])         # it is another point


@pytest.mark.parametrize("algo, hyper", RULES, ids=RULE_IDS)
@pytest.mark.parametrize("k, alpha", [(5, 0.5), (1, 0.8), (7, 1.0)])
def test_lookahead_matches_reference(algo, hyper, k, alpha):
    xs, evals, _ = run(algo, dict(hyper, lookahead=k, lookahead_alpha=alpha))
    ref_hyper = {key: value for key, value in hyper.items() if key != "momentum"}
    hook = R.lookahead(X0, k, alpha)
    ref = R.trajectory(algo, GRAD, X0, STEPS, momentum=hyper.get("momentum"),
                       after_update=hook, **ref_hyper)
    np.testing.assert_allclose(xs, ref, rtol=1e-10)
    np.testing.assert_allclose(evals, np.array(hook.slow), rtol=1e-10)
    np.testing.assert_array_equal(xs[k::k], evals[k::k])    # the fast restart at the slow
    if alpha < 1:
        plain, _, _ = run(algo, hyper)
        assert not np.allclose(xs[-1], plain[-1])


# Lookahead and the EMA against optax (data/optax_evaluation.npz, written by
# data/make_optax_evaluation_reference.py: optax.lookahead and optax.ema(debias=True)),
# rtol 1e-9 and atol 1e-12 as for every recorded artifact.
with np.load(os.path.join(HERE, "data", "optax_evaluation.npz"), allow_pickle=False) as _npz:
    OPTAX = {key: _npz[key] for key in _npz.files}
OPTAX_CASES = [c for c in json.loads(str(OPTAX["cases"])) if c["kind"] in ("lookahead", "ema")]


def test_the_optax_file_has_lookahead_and_ema_cases():
    assert {c["kind"] for c in OPTAX_CASES} == {"lookahead", "ema"}
    assert {c["problem"] for c in OPTAX_CASES} == {"quadratic", "rosenbrock"}


@pytest.mark.parametrize("case", OPTAX_CASES, ids=[c["id"] for c in OPTAX_CASES])
def test_lookahead_and_ema_match_optax(case):
    if case["problem"] == "quadratic":
        A, b = OPTAX["quadratic_A"], OPTAX["quadratic_b"]
        x = OPTAX["quadratic_x0"].copy()

        def grad(p):
            return A @ p - b
    else:
        _, grad, _, _ = R.rosenbrock()
        x = OPTAX["rosenbrock_x0"].copy()
    ys, xs, _ = trained_and_evaluated(dh, case, grad, x)
    np.testing.assert_allclose(ys, OPTAX[case["id"] + ".y"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(xs, OPTAX[case["id"] + ".x"], rtol=1e-9, atol=1e-12)


OPTIONS = [dict(lookahead=3), dict(lookahead=1, lookahead_alpha=0.3),
           dict(average="ema", average_decay=0.8), dict(average="polyak", average_start=2)]
OPTION_IDS = ["lookahead3", "lookahead1", "ema", "polyak"]


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_update_apply_and_get_updates_agree(options):
    rng = np.random.default_rng(2)
    x1, x2, x3 = (np.array([0.5, -1.0, 2.0]) for _ in range(3))
    o1, o2, o3 = (dh.build("adam", None, x, learning_rate=0.1, **options) for x in (x1, x2, x3))
    for _ in range(10):
        g = rng.normal(size=3)
        o1.apply(g)
        x2 += o2.update(g)
        before = {k: v.copy() for k, v in o3.state.items()}
        x3_before = x3.copy()
        pairs = o3.get_updates(g)
        np.testing.assert_array_equal(x3, x3_before)                  # nothing mutated...
        for k, v in o3.state.items():
            np.testing.assert_array_equal(v, before[k])
        dh.apply_updates(pairs)                                        # ...until applied
        np.testing.assert_array_equal(x1, x3)
        # update() returns new - old, which the caller adds back: an ulp may differ
        np.testing.assert_allclose(x2, x1, rtol=1e-15, atol=1e-16)
        for name in o1.state:
            np.testing.assert_array_equal(o1.state[name], o3.state[name])
        np.testing.assert_array_equal(o1.evaluation_params(), o3.evaluation_params())


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_a_refused_update_changes_nothing(options):
    x = np.array([0.5, -1.0, 2.0])
    opt = dh.build("momentum", None, x, learning_rate=0.1, **options)
    for step in range(5):
        if step:
            opt.apply(np.array([1.0, -2.0, 0.5]))
        before = {k: v.copy() for k, v in opt.state.items()}
        x_before, eval_before = x.copy(), opt.evaluation_params()
        with pytest.raises(NonFiniteError):
            opt.apply(np.array([1.0, np.nan, 0.5]))
        np.testing.assert_array_equal(x, x_before)
        assert sorted(opt.state) == sorted(before)
        for k, v in opt.state.items():
            np.testing.assert_array_equal(v, before[k])
        np.testing.assert_array_equal(opt.evaluation_params(), eval_before)


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_state_dict_round_trip_continues_identically(options):
    a, b = X0.copy(), X0 + 10.0
    oa = dh.build("adam", None, a, learning_rate=0.05, **options)
    ob = dh.build("adam", None, b, learning_rate=0.05, **options)
    for _ in range(7):
        oa.apply(GRAD(a))
    state = oa.state_dict()
    assert {"slow", "average"} & set(str(n) for n in state["state.names"])
    ob.load_state_dict(state)
    for _ in range(8):
        oa.apply(GRAD(a))
        ob.apply(GRAD(b))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(oa.evaluation_params(), ob.evaluation_params())
    for key, buf in oa.state.items():
        np.testing.assert_array_equal(buf, ob.state[key])


def test_turning_an_option_on_mid_run_starts_from_the_current_params():
    x = X0.copy()
    opt = dh.SGD(None, x, learning_rate=0.01)
    for _ in range(10):
        opt.apply(GRAD(x))
    now = x.copy()
    opt.set_hyperparameters(lookahead=4, lookahead_alpha=0.5)
    np.testing.assert_array_equal(opt.state["slow"], now)
    fast = []
    for _ in range(2):            # updates 11, 12: the sync is at 12
        opt.apply(GRAD(x))
        fast.append(x.copy())
    # the sync at update 12 pulled the fast weights half way back to where lookahead began
    plain = now.copy()
    for _ in range(2):
        plain = plain - 0.01 * GRAD(plain)
    np.testing.assert_allclose(x, now + 0.5 * (plain - now), rtol=1e-13)
    opt.set_hyperparameters(lookahead=0, average="polyak", average_start=12)
    assert "slow" not in opt.state
    np.testing.assert_array_equal(opt.state["average"], x)
    opt.apply(GRAD(x))
    np.testing.assert_array_equal(opt.evaluation_params(), x)    # the mean of one


# ---------------------------------------------------------------------------
# Bad values and combinations that cannot work
# ---------------------------------------------------------------------------

BAD = [
    (dict(lookahead=-1), ValueError, r"^SGD\(lookahead=-1\): lookahead must be >= 0; got -1$"),
    (dict(lookahead=2.5), ValueError, r"^SGD\(lookahead=2\.5\): lookahead must be an integer"),
    (dict(lookahead="5"), TypeError, r"^SGD\(lookahead='5'\): lookahead must be a real number"),
    (dict(lookahead_alpha=0), ValueError,
     r"^SGD\(lookahead_alpha=0\): lookahead_alpha must be in \(0, 1\]; got 0$"),
    (dict(lookahead_alpha=1.5), ValueError, r"lookahead_alpha must be in \(0, 1\]; got 1\.5$"),
    (dict(average="foo"), ValueError,
     r"^SGD\(average='foo'\): average must be None, 'ema' or 'polyak'; got 'foo'$"),
    (dict(average=1), TypeError, r"^SGD\(average=1\): average must be None, 'ema' or 'polyak'"),
    (dict(average_decay=1.5), ValueError,
     r"^SGD\(average_decay=1\.5\): average_decay must be in \[0, 1\); got 1\.5$"),
    (dict(average_start=-1), ValueError, r"^SGD\(average_start=-1\): average_start must be >= 0"),
    (dict(average="ema", lookahead=3), ValueError,
     r"^SGD\(lookahead=3, average='ema'\): lookahead and average cannot be combined"),
]


@pytest.mark.parametrize("kwargs, kind, message", BAD, ids=[str(b[0]) for b in BAD])
def test_bad_values_are_refused_with_their_name(kwargs, kind, message):
    with pytest.raises(kind, match=message):
        dh.SGD(None, np.zeros(2), **kwargs)
    opt = dh.SGD(None, np.zeros(2))
    with pytest.raises(kind):                   # and later, changing nothing
        opt.set_hyperparameters(**kwargs)
    assert opt.hyper["lookahead"] == 0 and opt.hyper["average"] is None


@pytest.mark.parametrize("algo", ["schedule_free_sgd", "schedule_free_adamw"])
@pytest.mark.parametrize("option", [dict(lookahead=5), dict(average="polyak")])
def test_schedule_free_rules_take_neither_option(algo, option):
    with pytest.raises(ValueError, match=r"already evaluates an average of its iterates"):
        dh.build(algo, None, np.zeros(2), **option)


@pytest.mark.parametrize("algo", ["lbfgs", "bfgs"])
def test_line_search_rules_take_neither_option(algo):
    for option in (dict(lookahead=5), dict(average="ema")):
        with pytest.raises(ValueError, match=r"line search .* lookahead and averaging apply to "
                                             r"the first-order rules"):
            dh.build(algo, lambda p: anp.sum(p ** 2), np.zeros(2), **option)


# ---------------------------------------------------------------------------
# What a run does with the evaluation params
# ---------------------------------------------------------------------------

def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(96, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.5 * rng.normal(size=96)
    return (x[:64], y[:64]), (x[64:], y[64:])


def _mse(params, x, y):
    return anp.mean((anp.dot(x, params["w"]) + params["b"] - y) ** 2)


@pytest.mark.parametrize("algo, options", [("sgd", dict(average="polyak", average_start=4)),
                                           ("adam", dict(average="ema", average_decay=0.95)),
                                           ("momentum", dict(lookahead=3)),
                                           ("schedule_free_sgd", dict(learning_rate=0.05)),
                                           ("schedule_free_adamw", dict(learning_rate=0.05))])
def test_a_run_validates_keeps_and_leaves_the_evaluation_params(algo, options):
    train, valid = _data()
    params = {"w": np.zeros(3), "b": np.zeros(())}
    seen = {}

    def callback(info):
        ev = info.optimizer.evaluation_params()
        trained = {k: v.copy() for k, v in params.items()}
        seen[info.epoch] = (ev, trained, info.valid.get("loss") if info.validated else None)

    opt = dh.build(algo, _mse, params, **{"learning_rate": 0.02, **options})
    result = opt.minimize(train, valid, batch_size=8, max_epochs=12, patience=100, rng=3,
                          validate_every=1, callback=callback)
    differ = 0
    for epoch, (ev, trained, loss) in seen.items():
        # the arrays held the trained params between epochs; validation scored the others
        differ += not np.allclose(ev["w"], trained["w"])
        assert loss == pytest.approx(float(_mse(ev, *valid)), rel=1e-12)
    # (lookahead every 3 updates, 8 per epoch: the slow and fast weights meet every 3rd epoch)
    assert len(seen) == 12 and differ >= 8
    best = seen[result.best_epoch][0]
    for key in params:                              # the best evaluation params, left in place
        np.testing.assert_array_equal(params[key], best[key])
        np.testing.assert_array_equal(opt.best_params[key], best[key])
    assert result.best_loss == pytest.approx(float(_mse(best, *valid)), rel=1e-12)


def test_evaluate_scores_the_evaluation_params_and_restores_the_arrays():
    train, valid = _data()
    params = {"w": np.zeros(3), "b": np.zeros(())}
    opt = dh.SGD(_mse, params, learning_rate=0.05, average="polyak")
    for i in range(10):
        opt.step(train[0][i * 6:(i + 1) * 6], train[1][i * 6:(i + 1) * 6])
    trained = {k: v.copy() for k, v in params.items()}
    ev = opt.evaluation_params()
    got = opt.evaluate(valid)
    assert got["loss"] == pytest.approx(float(_mse(ev, *valid)), rel=1e-12)
    assert got["loss"] != pytest.approx(float(_mse(trained, *valid)), rel=1e-6)
    for key in params:
        np.testing.assert_array_equal(params[key], trained[key])


def test_use_evaluation_params_swaps_and_restores_even_on_an_error():
    x = np.array([1.0, 2.0])
    opt = dh.SGD(None, x, learning_rate=0.5, average="polyak")
    with opt.use_evaluation_params() as p:          # before any update: the params themselves
        assert p is x
        np.testing.assert_array_equal(x, [1.0, 2.0])
    opt.apply(np.array([1.0, 1.0]))
    opt.apply(np.array([1.0, 1.0]))
    np.testing.assert_array_equal(x, [0.0, 1.0])
    with pytest.raises(RuntimeError):
        with opt.use_evaluation_params():
            np.testing.assert_array_equal(x, [0.25, 1.25])      # the mean of 0.5 and 0
            raise RuntimeError("boom")
    np.testing.assert_array_equal(x, [0.0, 1.0])
    assert opt.evaluates_elsewhere


def test_a_run_interrupted_leaves_the_best_evaluation_params():
    train, valid = _data()
    params = {"w": np.zeros(3), "b": np.zeros(())}
    calls = {"n": 0}

    def loss(p, x, y):
        calls["n"] += 1
        if calls["n"] == 40:
            raise KeyboardInterrupt
        return _mse(p, x, y)

    opt = dh.build("adam", loss, params, learning_rate=0.05, average="ema", average_decay=0.9)
    result = opt.minimize(train, valid, batch_size=8, max_epochs=20, rng=1)
    assert result.stop == "interrupted"
    for key in params:
        np.testing.assert_array_equal(params[key], opt.best_params[key])
    assert math.isfinite(result.best_loss)


@pytest.mark.parametrize("method, option", [("sgd", dict(lookahead=5)),
                                            ("adam", dict(average="ema")),
                                            ("schedule_free_sgd", {})])
def test_solve_refuses_what_evaluates_other_params(method, option):
    params = np.array([1.0, 2.0])
    with pytest.raises(ValueError, match=rf"^solve\(method='{method}'\): solve keeps the "
                                         r"trained point of lowest loss.*use minimize"):
        dh.solve(lambda p: anp.sum(p ** 2), params, method=method, **option)
    np.testing.assert_array_equal(params, [1.0, 2.0])


def test_a_state_without_the_option_starts_it_at_the_loaded_params():
    """A resume that keeps an explicit average= the checkpoint did not have (what
    checkpoint.resume does with the caller's hyperparameters)."""
    a = X0.copy()
    plain = dh.SGD(None, a, learning_rate=0.01)
    for _ in range(5):
        plain.apply(GRAD(a))
    b = np.zeros_like(X0)
    opt = dh.SGD(None, b, learning_rate=0.01, average="polyak")
    decoded = optimizer_state.decode(opt, plain.state_dict(), "test")
    optimizer_state.apply(opt, decoded, "test", keep={"average"})
    assert opt.hyper["average"] == "polyak"
    np.testing.assert_array_equal(b, a)
    np.testing.assert_array_equal(opt.state["average"], a)     # not the zeros it replaced
