"""Per-leaf learning rates and weight decay by leaf name or pattern (issue 12, item 8).

``learning_rate_multipliers={"a": c}`` scales leaf ``a``'s whole step (the
rule's, momentum and weight decay included), which is what a torch parameter
group with learning rate ``c * lr`` does; ``weight_decay`` may be a dict of
patterns (other leaves 0). The numbers are checked against the independent
transcriptions of tests/reference.py run on each leaf alone.
"""

import autograd.numpy as anp
import numpy as np
import pytest

import npdownhill as dh
import reference as R

#: Rules whose step is proportional to the learning rate and whose state does not
#: depend on it: a leaf at rate c*lr moves exactly as it would alone at that rate.
LINEAR_IN_LR = ["sgd", "momentum", "nag", "rmsprop", "adagrad", "adam", "adamax", "amsgrad",
                "nadam", "adamw", "radam"]
#: The rules that take per-leaf rates (the schedule-free rules refuse them: see below).
GRADIENT_ALGORITHMS = [name for name in dh.algorithms()
                       if not dh.registry.lookup(name).full_batch and name != "esgd"
                       and not dh.registry.lookup(name).own_weight_decay]

D = {"a": np.array([1.0, 3.0, 0.5]), "b": np.array([2.0, 0.25])}
M = {"a": np.array([0.3, -1.0, 2.0]), "b": np.array([-0.5, 1.5])}


def loss(p):
    """Separable: each leaf is its own quadratic 0.5 sum d (x - m)^2."""
    return sum(0.5 * anp.sum(D[k] * (p[k] - M[k]) ** 2) for k in ("a", "b"))


def grad_of(key):
    return lambda x: D[key] * (x - M[key])


def start():
    return {"a": np.array([1.0, -2.0, 0.5]), "b": np.array([0.75, -1.25])}


CASES = {
    # name: (package hyperparameters, {leaf: reference hyperparameters besides momentum})
    "rate only": (dict(learning_rate_multipliers={"a": 0.25}), {"a": dict(c=0.25, wd=0.0),
                                                                "b": dict(c=1.0, wd=0.0)}),
    "rate, momentum, decay by pattern": (
        dict(learning_rate_multipliers={"?": 0.5}, momentum=0.5, weight_decay={"a": 0.1}),
        {"a": dict(c=0.5, wd=0.1), "b": dict(c=0.5, wd=0.0)}),
    "rates 3 and 0.1, nesterov": (
        dict(learning_rate_multipliers={"a": 3.0, "b": 0.1}, momentum=0.8, nesterov=True),
        {"a": dict(c=3.0, wd=0.0), "b": dict(c=0.1, wd=0.0)}),
    "decay dict alone": (dict(weight_decay={"b": 0.2}), {"a": dict(c=1.0, wd=0.0),
                                                         "b": dict(c=1.0, wd=0.2)}),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("algo", LINEAR_IN_LR)
def test_each_leaf_moves_as_the_reference_rule_at_its_own_rate(algo, case):
    hyper, per_leaf = CASES[case]
    if algo == "nag" and not hyper.get("nesterov", True):
        pytest.skip("NAG is always Nesterov")
    lr = 0.01
    params = start()
    settings = dict(hyper, learning_rate=lr)
    if algo == "adamw" and "weight_decay" not in hyper:
        settings["weight_decay"] = 0.0
    opt = dh.build(algo, loss, params, **settings)
    path = {k: [v.copy()] for k, v in params.items()}
    for _ in range(50):
        opt.step()
        for k in params:
            path[k].append(params[k].copy())
    for key, leaf in per_leaf.items():
        extra = {}
        if "momentum" in hyper:
            extra["momentum"] = hyper["momentum"]
        if hyper.get("nesterov"):
            extra["nesterov"] = True
        expected = R.trajectory(algo, grad_of(key), start()[key], 50,
                                learning_rate=lr * leaf["c"], weight_decay=leaf["wd"], **extra)
        np.testing.assert_allclose(np.array(path[key]), expected, rtol=1e-10, atol=1e-14,
                                   err_msg=key)


def test_sgd_with_a_schedule_by_hand():
    """A schedule sets the base rate; the multiplier then scales the step."""
    x = {"w": np.array([0.0]), "b": np.array([0.0])}
    opt = dh.SGD(None, x, learning_rate=lambda t: 0.1 / (1 + t),
                 learning_rate_multipliers={"b": 0.5}, weight_decay={"w": 0.2})
    w = b = 0.0
    for t in range(4):
        opt.apply({"w": np.array([1.0]), "b": np.array([1.0])})
        lr = 0.1 / (1 + t)
        w = w - lr * 1.0 - lr * 0.2 * w
        b = b - 0.5 * lr * 1.0
    assert x["w"][0] == pytest.approx(w, rel=1e-15)
    assert x["b"][0] == pytest.approx(b, rel=1e-15)


def run_steps(algo, steps=4, **hyper):
    params = {"layers": [{"W": np.linspace(-1, 1, 6).reshape(2, 3), "b": np.array([0.5, -0.5])},
                         {"W": np.linspace(0, 2, 4).reshape(2, 2), "b": np.array([1.0, 2.0])}]}
    opt = dh.build(algo, None, params, rng=3, **hyper)
    r = np.random.default_rng(7)
    for _ in range(steps):
        opt.apply({"layers": [{k: r.standard_normal(v.shape) for k, v in layer.items()}
                              for layer in params["layers"]]})
    return params, opt


@pytest.mark.parametrize("algo", GRADIENT_ALGORITHMS)
def test_rate_one_changes_nothing_and_rate_zero_freezes_the_leaf(algo):
    base, _ = run_steps(algo, momentum=0.5)
    same, _ = run_steps(algo, momentum=0.5, learning_rate_multipliers={"layers.*.b": 1.0})
    for a, b in zip(base["layers"], same["layers"]):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    still, _ = run_steps(algo, momentum=0.5, learning_rate_multipliers={"layers.0.*": 0.0})
    np.testing.assert_array_equal(still["layers"][0]["W"], np.linspace(-1, 1, 6).reshape(2, 3))
    np.testing.assert_array_equal(still["layers"][0]["b"], [0.5, -0.5])
    np.testing.assert_array_equal(still["layers"][1]["W"], base["layers"][1]["W"])


def test_an_exact_name_wins_over_a_pattern():
    # zero gradients: only the decay moves the params, at each leaf's rate
    params = {"layers": [{"W": np.ones(2), "b": np.ones(2)}, {"W": np.ones(2), "b": np.ones(2)}]}
    opt = dh.SGD(None, params, learning_rate=1.0,
                 weight_decay={"*.W": 0.1, "layers.1.W": 0.5},
                 learning_rate_multipliers={"layers.*": 2.0, "layers.0.b": 0.0})
    opt.apply({"layers": [{"W": np.zeros(2), "b": np.zeros(2)}] * 2})
    np.testing.assert_array_equal(params["layers"][0]["W"], 1 - 2.0 * 0.1)
    np.testing.assert_array_equal(params["layers"][1]["W"], 1 - 2.0 * 0.5)
    np.testing.assert_array_equal(params["layers"][0]["b"], 1.0)
    np.testing.assert_array_equal(params["layers"][1]["b"], 1.0)


BAD = [
    (dict(learning_rate_multipliers={"layers.2.*": 0.5}), ValueError,
     r"SGD\(learning_rate_multipliers=...\): 'layers.2.\*' matches no leaf; the leaves are "
     r"\['layers.0.W'"),
    (dict(weight_decay={"*.W": 1e-4, "x": 1, "*.c": 2}), ValueError,
     r"SGD\(weight_decay=...\): 'x', '\*.c' match no leaf"),
    (dict(weight_decay={"*.W": 1e-4, "layers.1.*": 0.0}), ValueError,
     r"SGD\(weight_decay=...\): leaf 'layers.1.W' matches the patterns '\*.W', 'layers.1.\*'; "
     r"a leaf may match one pattern only"),
    (dict(learning_rate_multipliers={"*": -1.0}), ValueError,
     r"SGD\(learning_rate_multipliers\['\*'\]=-1.0\): learning_rate_multipliers\['\*'\] must be "
     r">= 0; got -1.0"),
    (dict(learning_rate_multipliers=[("*", 1.0)]), TypeError,
     r"SGD\(learning_rate_multipliers=...\): learning_rate_multipliers must be a dict"),
    (dict(weight_decay={1: 0.1}), TypeError,
     r"SGD\(weight_decay=...\): weight_decay keys must be leaf names or patterns \(strings\); "
     r"got 1"),
    (dict(weight_decay={"*": "big"}), TypeError, r"weight_decay\['\*'\] must be a real number"),
]


@pytest.mark.parametrize("hyper, error, message", BAD)
def test_bad_patterns_are_refused_with_the_call_and_the_value(hyper, error, message):
    with pytest.raises(error, match=message):
        run_steps("sgd", **hyper)


def test_quasi_newton_rules_refuse_per_leaf_rates():
    with pytest.raises(ValueError, match=r"LBFGS\(learning_rate_multipliers=\{'w': 0.5\}\): "
                                         "LBFGS does not take learning_rate_multipliers"):
        dh.LBFGS(lambda p: anp.sum(p["w"] ** 2), {"w": np.ones(2)},
                 learning_rate_multipliers={"w": 0.5})


@pytest.mark.parametrize("algo", ["adam", "sgd", "rprop"])
def test_state_dict_round_trip_resumes_bit_identically(algo):
    hyper = dict(momentum=0.5, learning_rate_multipliers={"layers.0.*": 0.1, "layers.1.b": 2.0},
                 weight_decay={"*.W": 1e-2})
    whole, _ = run_steps(algo, steps=6, **hyper)
    half, opt = run_steps(algo, steps=3, **hyper)
    state = opt.state_dict()
    params = {"layers": [{k: np.zeros_like(v) for k, v in layer.items()}
                         for layer in half["layers"]]}
    fresh = dh.build(algo, None, params)          # the hyperparameters come from the state
    fresh.load_state_dict(state)
    assert fresh.hyper["weight_decay"] == {"*.W": 1e-2}
    assert fresh.hyper["learning_rate_multipliers"] == {"layers.0.*": 0.1, "layers.1.b": 2.0}
    r = np.random.default_rng(7)
    for _ in range(3):                             # the gradients of steps 1-3, drawn again
        [r.standard_normal(v.shape) for layer in params["layers"] for v in layer.values()]
    for _ in range(3):
        fresh.apply({"layers": [{k: r.standard_normal(v.shape) for k, v in layer.items()}
                                for layer in params["layers"]]})
    for a, b in zip(whole["layers"], params["layers"]):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize("algo", ["schedule_free_sgd", "schedule_free_adamw"])
@pytest.mark.parametrize("hyper, message", [
    (dict(learning_rate_multipliers={"a": 0.5}),
     r"\(learning_rate_multipliers=\{'a': 0.5\}\): Schedule\w+ moves the params by "
     r"interpolating z and its average x.*per-leaf rates are not supported"),
    (dict(weight_decay={"a": 0.1}),
     r"\(weight_decay=\{'a': 0.1\}\): Schedule\w+ applies one weight decay inside its z "
     r"sequence; per-leaf decay \(a dict\) is not supported"),
])
def test_the_schedule_free_rules_refuse_per_leaf_rates_and_decay(algo, hyper, message):
    """Their step interpolates z and x, both advanced at the full rate inside the rule:
    scaling the step afterwards, or a decay per leaf, would silently break it."""
    params = {"a": np.ones(3), "b": np.ones(2)}
    with pytest.raises(ValueError, match=message):
        dh.build(algo, None, params, **hyper)
