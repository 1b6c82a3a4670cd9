"""Training controls: schedules, noise, multipliers, frozen leaves, clipping, weight decay."""

import logging
import math

import autograd.numpy as anp
import numpy as np
import pytest

import npdownhill as dh
from npdownhill import schedules


def tree():
    return {"a": np.array([1.0, -2.0, 3.0]), "b": np.array([[0.5, 0.5], [-1.0, 2.0]])}


def zero_grads():
    return {"a": np.zeros(3), "b": np.zeros((2, 2))}


# -- schedules -----------------------------------------------------------------

def test_learning_rate_schedule_is_called_with_updates_already_applied():
    seen = []

    def schedule(step):
        seen.append(step)
        return 0.1 / (1 + step)

    x = np.array([0.0])
    opt = dh.SGD(None, x, learning_rate=schedule)
    for _ in range(4):
        opt.apply(np.array([1.0]))
    assert seen == [0, 1, 2, 3]
    assert x[0] == pytest.approx(-(0.1 + 0.05 + 0.1 / 3 + 0.025), rel=1e-15)


def test_exponential_decay_trajectory_matches_its_closed_form():
    x = np.array([0.0])
    opt = dh.SGD(None, x, learning_rate=schedules.exponential_decay(0.2, 0.5, 10))
    for _ in range(30):
        opt.apply(np.array([1.0]))
    assert x[0] == pytest.approx(-sum(0.2 * 0.5 ** (k / 10) for k in range(30)), rel=1e-13)


def test_momentum_schedule():
    x = np.array([0.0])
    mus = [0.0, 0.5, 0.9]
    opt = dh.SGD(None, x, learning_rate=1.0, momentum=lambda step: mus[step])
    v, expected = 0.0, 0.0
    for mu in mus:
        opt.apply(np.array([1.0]))
        v = mu * v - 1.0
        expected += v
    assert x[0] == pytest.approx(expected, rel=1e-15)


def test_a_schedule_returning_a_bad_value_is_reported_with_the_step():
    opt = dh.SGD(None, np.zeros(1), learning_rate=lambda step: -0.1 if step == 2 else 0.1)
    opt.apply(np.ones(1))
    opt.apply(np.ones(1))
    with pytest.raises(ValueError, match=r"SGD learning_rate schedule at step 2\(learning_rate=-0.1\): "
                                         r"learning_rate must be >= 0"):
        opt.apply(np.ones(1))


def test_reduce_on_plateau_is_told_every_validation_loss():
    plateau = schedules.reduce_on_plateau(0.1, factor=0.5, patience=1)
    opt = dh.SGD(lambda p, x: anp.mean((p - x) ** 2) + 1.0, np.zeros(1), learning_rate=plateau)
    # lr never lowers this loss below 1 + ...: the validation loss is constant once w is 1
    list(opt.iterate([np.ones((4, 1))], batch_size=0, validate_every=1, max_epochs=60,
                     patience=1000))
    assert plateau.num_validations == 61                    # epoch 0 + 60 regular ones
    assert plateau.value < 0.1
    lrs = opt.history_arrays()["train.learning_rate"][1:]      # [0]: the start, no training
    assert np.all(np.diff(lrs) <= 0) and lrs[-1] == plateau.value


def test_warmup_then_cosine():
    s = schedules.linear_warmup(schedules.cosine_decay(1.0, 10), 5)
    x = np.array([0.0])
    opt = dh.SGD(None, x, learning_rate=s)
    lrs = []
    for _ in range(15):
        opt.apply(np.array([1.0]))
        lrs.append(opt.last_learning_rate)
    assert lrs[:6] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert lrs[10] == pytest.approx(0.5 * (1 + math.cos(math.pi * 5 / 10)))


# -- gradient noise --------------------------------------------------------------

def test_noise_has_the_requested_standard_deviation_and_decay():
    n = 200_000
    x = np.zeros(n)
    opt = dh.SGD(None, x, learning_rate=1.0, gradient_noise_scale=0.3, gradient_noise_decay=0.55, rng=0)
    opt.apply(np.zeros(n))
    assert np.std(x) == pytest.approx(0.3, rel=0.01)        # sigma_0 = 0.3 / 1^0.275
    assert abs(np.mean(x)) < 0.3 * 5 / math.sqrt(n)
    for _ in range(99):
        opt.apply(np.zeros(n))
    x_prev = x.copy()
    opt.apply(np.zeros(n))                                   # the 101st update, t = 100
    assert np.std(x - x_prev) == pytest.approx(0.3 / 101 ** 0.275, rel=0.01)


def test_noise_repeats_by_seed_and_differs_across_seeds():
    def run(seed):
        x = np.zeros(10)
        opt = dh.Adam(None, x, gradient_noise_scale=0.1, rng=seed)
        for _ in range(5):
            opt.apply(np.ones(10))
        return x

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))
    gen_a, gen_b = np.random.default_rng(7), np.random.default_rng(7)
    xa, xb = np.zeros(4), np.zeros(4)
    dh.SGD(None, xa, gradient_noise_scale=1.0, rng=gen_a).apply(np.zeros(4))
    dh.SGD(None, xb, gradient_noise_scale=1.0, rng=gen_b).apply(np.zeros(4))
    np.testing.assert_array_equal(xa, xb)


# -- multipliers and frozen leaves ---------------------------------------------------

def test_gradient_multipliers_scale_one_leafs_gradient():
    p, q = tree(), tree()
    dh.SGD(None, p, learning_rate=0.1, gradient_multipliers={"b": 3.0}).apply(
        {"a": np.ones(3), "b": np.ones((2, 2))})
    dh.SGD(None, q, learning_rate=0.1).apply({"a": np.ones(3), "b": 3 * np.ones((2, 2))})
    np.testing.assert_array_equal(p["a"], q["a"])
    np.testing.assert_array_equal(p["b"], q["b"])


def test_unknown_leaf_names_are_refused_with_the_list_of_leaves():
    with pytest.raises(ValueError, match=r"SGD\(gradient_multipliers=\.\.\.\): 'c' is not a leaf name; "
                                         r"the leaves are \['a', 'b'\]"):
        dh.SGD(None, tree(), gradient_multipliers={"c": 2.0})
    with pytest.raises(ValueError, match=r"SGD\(frozen=\.\.\.\): 'bb' is not a leaf name; the leaves are "
                                         r"\['a', 'b'\] \(did you mean 'b'\?\)"):
        dh.SGD(None, tree(), frozen=["bb"])
    with pytest.raises(TypeError, match=r"frozen must be a list of leaf names; got str"):
        dh.SGD(None, tree(), frozen="a")


@pytest.mark.parametrize("name", ["sgd", "nag", "adam", "rmsprop", "rprop", "adadelta", "esgd"])
def test_a_frozen_leaf_is_bit_identical_after_a_run(name):
    p = tree()
    frozen = p["b"].copy()

    def loss(q):
        return anp.sum(q["a"] ** 2) + anp.sum(q["b"] ** 2)

    opt = dh.build(name, loss, p, frozen=["b"], weight_decay=0.1, gradient_noise_scale=0.5, rng=0,
                   **({} if name == "nag" else {"momentum": 0.5}))
    list(opt.iterate(None, max_epochs=20, patience=100))
    np.testing.assert_array_equal(p["b"], frozen)
    assert not np.array_equal(p["a"], tree()["a"])


# -- clipping -------------------------------------------------------------------------

def test_global_clip_gives_exactly_the_requested_norm():
    p = {"a": np.zeros(3), "b": np.zeros((2, 2))}
    g = {"a": np.array([3.0, 4.0, 0.0]), "b": np.array([[12.0, 0.0], [0.0, 0.0]])}   # norm 13
    dh.SGD(None, p, learning_rate=1.0, clip_gradients=2.6).apply(g)
    step_norm = math.sqrt(np.sum(p["a"] ** 2) + np.sum(p["b"] ** 2))
    assert step_norm == pytest.approx(2.6, rel=1e-15)
    np.testing.assert_allclose(p["a"], -0.2 * g["a"], rtol=1e-15)
    q = {"a": np.zeros(3), "b": np.zeros((2, 2))}
    dh.SGD(None, q, learning_rate=1.0, clip_gradients=20.0).apply(g)   # below the bound: untouched
    np.testing.assert_array_equal(q["a"], -g["a"])


def test_callable_clip_receives_and_returns_a_tree():
    seen = []

    def halve(grads):
        seen.append(sorted(grads))
        return {k: v / 2 for k, v in grads.items()}

    p = {"a": np.zeros(3), "b": np.zeros((2, 2))}
    dh.SGD(None, p, learning_rate=1.0, clip_gradients=halve).apply(
        {"a": np.ones(3), "b": np.ones((2, 2))})
    assert seen == [["a", "b"]]
    np.testing.assert_array_equal(p["a"], -0.5)
    bad = dh.SGD(None, {"a": np.zeros(3), "b": np.zeros((2, 2))}, clip_gradients=lambda g: {"a": 1})
    with pytest.raises(ValueError, match=r"clip_gradients=\.\.\.\) result: keys at the root differ"):
        bad.apply({"a": np.ones(3), "b": np.ones((2, 2))})


def test_per_leaf_norm_and_elementwise_clipping():
    p = {"a": np.zeros(3), "b": np.zeros((2, 2))}
    g = {"a": np.array([3.0, 4.0, 0.0]), "b": np.array([[0.1, 0.0], [0.0, 0.2]])}
    dh.SGD(None, p, learning_rate=1.0, max_gradient_norm=1.0).apply(g)
    np.testing.assert_allclose(p["a"], [-0.6, -0.8, 0.0], rtol=1e-15)     # norm 5 -> 1
    np.testing.assert_array_equal(p["b"], -g["b"])                         # norm < 1: untouched
    q = {"a": np.zeros(3), "b": np.zeros((2, 2))}
    dh.SGD(None, q, learning_rate=1.0, max_gradient_elem=0.15).apply(g)
    np.testing.assert_array_equal(q["a"], [-0.15, -0.15, 0.0])
    np.testing.assert_array_equal(q["b"], [[-0.1, 0.0], [0.0, -0.15]])


def test_clipping_comes_after_multipliers_and_noise_before_them():
    # multiplier 10 on 'a' then a global clip to 1: the step has norm exactly 1
    p = {"a": np.zeros(3), "b": np.zeros((2, 2))}
    dh.SGD(None, p, learning_rate=1.0, gradient_multipliers={"a": 10.0}, clip_gradients=1.0).apply(
        {"a": np.array([0.06, 0.08, 0.0]), "b": np.zeros((2, 2))})
    np.testing.assert_allclose(p["a"], [-0.6, -0.8, 0.0], rtol=1e-14)
    # noise on a frozen (multiplier 0) leaf never shows: noise comes first
    q = {"a": np.zeros(3), "b": np.zeros((2, 2))}
    dh.SGD(None, q, learning_rate=1.0, gradient_multipliers={"b": 0.0}, gradient_noise_scale=1.0,
           rng=0).apply(zero_grads())
    np.testing.assert_array_equal(q["b"], 0.0)
    assert np.all(q["a"] != 0)


# -- weight decay -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "adamw", "rmsprop", "adagrad"])
def test_weight_decay_shrinks_a_zero_gradient_parameter_by_exactly_1_minus_lr_wd(name):
    p = tree()
    start = {k: v.copy() for k, v in p.items()}
    opt = dh.build(name, None, p, learning_rate=0.1, weight_decay=0.2, momentum=0.0)
    for step in range(1, 6):
        opt.apply(zero_grads())
        for key in p:
            np.testing.assert_allclose(p[key], start[key] * (1 - 0.1 * 0.2) ** step, rtol=1e-14)


def test_adamw_defaults_to_torchs_weight_decay_and_means_the_same_number():
    assert dh.AdamW(None, np.zeros(1)).hyper["weight_decay"] == 0.01
    assert dh.Adam(None, np.zeros(1)).hyper["weight_decay"] == 0.0
    rng = np.random.default_rng(0)
    x = rng.normal(size=4)
    y = x.copy()
    a, b = dh.AdamW(None, x, weight_decay=0.05), dh.Adam(None, y, weight_decay=0.05)
    for _ in range(10):
        g = rng.normal(size=4)
        a.apply(g)
        b.apply(g)
    np.testing.assert_array_equal(x, y)


# -- monitors -------------------------------------------------------------------------

def test_training_monitors_carry_grad_norm_and_the_last_learning_rate():
    p = {"w": np.zeros(2)}
    opt = dh.SGD(lambda q, x: anp.mean((q["w"] - x) ** 2), p, monitor_gradients=True,
                 learning_rate=schedules.piecewise_constant([1], [0.1, 0.05]))
    x = np.ones((4, 2))
    pairs = list(opt.iterate([x], batch_size=2, max_epochs=1, rng=0))
    train = pairs[0][0]
    assert list(train) == ["loss", "grad(w)", "grad_norm", "learning_rate"]
    assert train["learning_rate"] == 0.1          # step 1 (second update): boundary 1 -> values[0]
    assert train["grad_norm"] == pytest.approx(train["grad(w)"])


def test_clipping_rescales_gradients_whose_squares_overflow():
    g = {"a": np.array([3e200, 4e200, 0.0]), "b": np.zeros((2, 2))}
    p = {"a": np.zeros(3), "b": np.zeros((2, 2))}
    dh.SGD(None, p, learning_rate=1.0, clip_gradients=5.0).apply(g)
    np.testing.assert_allclose(p["a"], [-3.0, -4.0, 0.0], rtol=1e-14)
    q = {"a": np.zeros(3), "b": np.zeros((2, 2))}
    dh.SGD(None, q, learning_rate=1.0, max_gradient_norm=1.0).apply(g)
    np.testing.assert_allclose(q["a"], [-0.6, -0.8, 0.0], rtol=1e-14)


@pytest.mark.parametrize("given, needs", [
    (dict(nesterov=True), "momentum > 0"),
    (dict(gradient_noise_decay=0.55), "gradient_noise_scale > 0"),
    (dict(lookahead_alpha=0.3), "lookahead=k > 0"),
    (dict(average_decay=0.9), "average='ema'"),
    (dict(average="ema", average_start=3), "average='polyak'"),
    (dict(average="polyak", average_decay=0.5), "average='ema'"),
])
def test_a_hyperparameter_that_cannot_act_alone_is_kept_with_a_warning(given, needs, caplog):
    """Given without the option it belongs to, it has no effect: never silently."""
    name = [k for k in given if k not in ("average",)][0]
    with caplog.at_level(logging.WARNING, logger="npdownhill"):
        opt = dh.Adam(None, {"w": np.zeros(2)}, **given)
    assert f"Adam({name}={given[name]!r}): has no effect unless {needs}" in caplog.text
    assert opt.hyper[name] == given[name]                        # kept for later
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="npdownhill"):  # with its option: silent
        partner = {"nesterov": dict(momentum=0.9), "gradient_noise_decay":
                   dict(gradient_noise_scale=0.1), "lookahead_alpha": dict(lookahead=2),
                   "average_decay": dict(average="ema"), "average_start": dict(average="polyak")}
        dh.Adam(None, {"w": np.zeros(2)}, **{**given, **partner[name]})
    assert "has no effect" not in caplog.text
