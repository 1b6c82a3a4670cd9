"""Public API: build, keywords and aliases, step and its monitors, loss checks."""

import math

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import npdownhill as dh


def regression(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.3
    return x, y


def loss(p, x, y):
    return anp.mean((anp.dot(x, p["w"]) + p["b"] - y) ** 2)


def params():
    return {"w": np.zeros(3), "b": np.zeros(())}


# -- build and the registry ---------------------------------------------------

def test_every_documented_algorithm_is_registered_and_exported():
    import reference  # tests/reference.py: each algorithm's record names its exported class
    expected = {name: getattr(dh, rec.class_name) for name, rec in reference.RECORDS.items()}
    assert dh.algorithms() == sorted(expected)
    for name, cls in expected.items():
        assert type(dh.build(name.upper(), loss, params())) is cls
    assert dh.AdaGrad is dh.ADAGRAD and dh.Adadelta is dh.ADADELTA


def test_build_accepts_a_class_and_an_instance():
    p = params()
    assert type(dh.build(dh.Adam, loss, p)) is dh.Adam
    opt = dh.SGD(loss, p)
    assert dh.build(opt, learning_rate=0.5) is opt
    assert opt.hyper["learning_rate"] == 0.5
    with pytest.raises(ValueError, match="must be None or the instance's own"):
        dh.build(opt, loss, params())


def test_unknown_algorithm_lists_the_names_and_suggests_the_closest():
    with pytest.raises(ValueError, match=r"build\(algo='adma'\): unknown algorithm; known algorithms "
                                         r"are \['[a-z_]+', .*'adam', .*'sgd', .*\] \(did you mean 'adam'\?\)"):
        dh.build("adma", loss, params())
    with pytest.raises(TypeError, match="algo must be a name"):
        dh.build(3, loss, params())


def test_unknown_keyword_names_it_and_suggests_the_closest():
    with pytest.raises(TypeError, match=r"Adam: unknown keyword argument 'learning_rte' "
                                        r"\(did you mean 'learning_rate'\?\)"):
        dh.Adam(loss, params(), learning_rte=0.1)
    with pytest.raises(TypeError, match=r"unknown keyword argument 'patiense' \(did you mean 'patience'\?\)"):
        dh.minimize(loss, params(), list(regression()), algo="sgd", patiense=3)
    with pytest.raises(TypeError, match=r"SGD: unknown keyword argument 'beta1'"):
        dh.SGD(loss, params(), beta1=0.9)     # a hyperparameter of another algorithm


def test_nothing_changes_when_a_keyword_is_refused():
    opt = dh.Adam(loss, params(), learning_rate=0.1)
    with pytest.raises(ValueError):
        opt.set_hyperparameters(learning_rate=0.5, beta1=2.0)
    assert opt.hyper["learning_rate"] == 0.1 and opt.hyper["beta1"] == 0.9


@pytest.mark.parametrize("alias, value, canonical, expected", [
    ("lr", 0.25, "learning_rate", 0.25),
    ("b1", 0.8, "beta1", 0.8),
    ("b2", 0.95, "beta2", 0.95),
    ("beta1_halflife", 7, "beta1", math.exp(-math.log(2) / 7)),
    ("beta2_halflife", 69, "beta2", math.exp(-math.log(2) / 69)),
    ("rms_regularizer", 1e-4, "epsilon", 1e-4),
])
def test_downhill_and_pycmtensor_spellings(alias, value, canonical, expected):
    opt = dh.Adam(loss, params(), **{alias: value})
    assert opt.hyper[canonical] == pytest.approx(expected, rel=1e-15)


def test_halflives_match_downhill_defaults_and_rms_halflife():
    assert dh.Adam(loss, params(), beta1_halflife=7).hyper["beta1"] == pytest.approx(0.9057, abs=1e-4)
    assert dh.Adam(loss, params(), beta2_halflife=69).hyper["beta2"] == pytest.approx(0.9900, abs=1e-4)
    assert dh.RMSProp(loss, params(), rms_halflife=14).hyper["rho"] == pytest.approx(0.9517, abs=1e-4)
    with pytest.raises(ValueError, match=r"RMSProp\(rms_halflife=0\): rms_halflife must be > 0; got 0"):
        dh.RMSProp(loss, params(), rms_halflife=0)


def test_both_spellings_of_one_hyperparameter_is_a_type_error():
    with pytest.raises(TypeError, match=r"Adam: beta1 given twice, as 'beta1' and 'b1'"):
        dh.Adam(loss, params(), beta1=0.9, b1=0.8)
    with pytest.raises(TypeError, match=r"RMSProp: epsilon given twice"):
        dh.RMSProp(loss, params(), epsilon=1e-6, rms_regularizer=1e-8)


def test_hyperparameters_given_later_win_and_persist():
    x, y = regression()
    opt = dh.SGD(loss, params(), learning_rate=0.1)
    for _ in opt.iterate([x, y], learning_rate=0.01, max_epochs=1):
        pass
    assert opt.hyper["learning_rate"] == 0.01
    assert opt.history[-1]["train"]["learning_rate"] == 0.01


def test_nag_always_uses_nesterov_and_momentum_defaults():
    assert dh.NAG(loss, params()).hyper["nesterov"] is True
    assert dh.NAG(loss, params()).hyper["momentum"] == 0.9
    assert dh.Momentum(loss, params()).hyper["momentum"] == 0.9
    assert dh.Momentum(loss, params()).hyper["nesterov"] is False
    with pytest.raises(ValueError, match=r"NAG always uses Nesterov momentum"):
        dh.NAG(loss, params(), nesterov=False)


def test_rprop_step_bounds_are_cross_checked():
    with pytest.raises(ValueError, match=r"rprop_min_step must be <= rprop_max_step; got 2.0 > 1.0"):
        dh.RProp(None, np.zeros(2), rprop_min_step=2.0, rprop_max_step=1.0)
    with pytest.raises(ValueError, match=r"rprop_decrease must be in \(0, 1\); got 1.0"):
        dh.RProp(None, np.zeros(2), rprop_decrease=1.0)
    with pytest.raises(ValueError, match=r"rprop_increase must be > 1; got 1.0"):
        dh.RProp(None, np.zeros(2), rprop_increase=1.0)


# -- step ---------------------------------------------------------------------

def test_step_returns_the_batch_monitors_before_the_update():
    x, y = regression()
    p = params()
    opt = dh.SGD(loss, p, learning_rate=0.1, monitor_gradients=True,
                 monitors={"mae": lambda q, a, b: anp.mean(anp.abs(anp.dot(a, q["w"]) + q["b"] - b))})
    grads = autograd.grad(loss)(params(), x, y)
    monitors = opt.step(x, y)
    assert list(monitors) == ["loss", "mae", "grad(w)", "grad(b)", "grad_norm", "learning_rate"]
    assert monitors["loss"] == pytest.approx(np.mean((y - 0) ** 2), rel=1e-14)
    assert monitors["mae"] == pytest.approx(np.mean(np.abs(y)), rel=1e-14)
    assert monitors["grad(w)"] == pytest.approx(np.linalg.norm(grads["w"]), rel=1e-14)
    assert monitors["grad(b)"] == pytest.approx(abs(float(grads["b"])), rel=1e-14)
    assert monitors["grad_norm"] == pytest.approx(math.hypot(np.linalg.norm(grads["w"]),
                                                             float(grads["b"])), rel=1e-14)
    assert monitors["learning_rate"] == 0.1
    np.testing.assert_allclose(p["w"], -0.1 * grads["w"], rtol=1e-14)


def test_step_runs_the_loss_forward_once():
    calls = []

    def counted(p, x, y):
        calls.append(1)
        return loss(p, x, y)

    opt = dh.Adam(counted, params())
    x, y = regression()
    for _ in range(5):
        opt.step(x, y)
    assert len(calls) == 5


def test_loss_none_forbids_step_and_esgd_needs_a_loss():
    opt = dh.SGD(None, params())
    with pytest.raises(TypeError, match="built with loss=None"):
        opt.step()
    with pytest.raises(TypeError, match=r"ESGD\(loss=None\): ESGD evaluates the loss itself"):
        dh.ESGD(None, params())
    with pytest.raises(TypeError, match=r"SGD\(loss=\.\.\.\): loss must be a callable"):
        dh.SGD("mse", params())


@pytest.mark.filterwarnings("ignore:Output seems independent of input")
@pytest.mark.parametrize("bad, kind, message", [
    (lambda p: anp.ones(3) * p["b"], ValueError, r"the loss must return a scalar; got an array of shape \(3,\)"),
    (lambda p: anp.sum(p["w"]) * 0 + 3, None, None),     # a float expression: fine
    (lambda p: 3, TypeError, r"the loss must return a real floating-point number; got int"),
    (lambda p: "x", ValueError, r"got an array of shape|floating-point"),
    (lambda p: anp.sum(p["w"]) * 1j, TypeError, r"real floating-point number; got complex128"),
])
def test_loss_values_are_checked(bad, kind, message):
    p = params()
    opt = dh.SGD(bad, p)
    if kind is None:
        opt.step()
        return
    with pytest.raises((TypeError, ValueError), match=message):
        opt.step()
    np.testing.assert_array_equal(p["w"], np.zeros(3))


def test_monitors_are_validated():
    with pytest.raises(TypeError, match=r"monitor 'm' must be callable"):
        dh.SGD(loss, params(), monitors={"m": 3})
    with pytest.raises(ValueError, match=r"monitor name 'loss' is used twice"):
        dh.SGD(loss, params(), monitors=[("loss", lambda p: 0.0)])
    with pytest.raises(TypeError, match=r"each monitor must be a \(name, fn\) pair"):
        dh.SGD(loss, params(), monitors=["m"])
    opt = dh.SGD(loss, params(), monitors={"v": lambda p, x, y: np.ones(2)})
    with pytest.raises(TypeError, match=r"monitor 'v' must return a number; got ndarray of shape \(2,\)"):
        opt.step(*regression())


def test_update_and_apply_refuse_mismatched_gradients_and_leave_params_alone():
    p = params()
    opt = dh.Adam(None, p)
    with pytest.raises(ValueError, match=r"Adam.update\(grads\): keys at the root differ from the "
                                         r"params: missing \['b'\], unexpected \[\]"):
        opt.update({"w": np.ones(3)})
    with pytest.raises(ValueError, match=r"leaf 'w' has shape \(2,\)"):
        opt.apply({"w": np.ones(2), "b": 1.0})
    with pytest.raises(ValueError, match=r"expected a tree like the params; got None"):
        opt.get_updates(None)
    np.testing.assert_array_equal(p["w"], np.zeros(3))
    assert opt.updates == 0 and not opt.state["m"].any()


def test_apply_updates_checks_every_pair_before_writing():
    a, b = np.zeros(2), np.zeros(3)
    with pytest.raises(ValueError, match=r"item 1: new value has shape \(2,\); target has shape \(3,\)"):
        dh.apply_updates([(a, np.ones(2)), (b, np.ones(2))])
    np.testing.assert_array_equal(a, 0)
    with pytest.raises(TypeError, match=r"item 0: target must be an ndarray"):
        dh.apply_updates([([0.0], [1.0])])
    with pytest.raises(TypeError, match=r"item 0 must be an \(array, new_value\) pair"):
        dh.apply_updates([a])


def test_get_updates_pairs_cover_params_state_and_counter():
    p = params()
    opt = dh.Adam(None, p)
    pairs = opt.get_updates({"w": np.ones(3), "b": 1.0})
    targets = [id(t) for t, _ in pairs]
    assert id(p["w"]) in targets and id(p["b"]) in targets
    assert all(id(buf) in targets for buf in opt.state.values())
    dh.apply_updates(pairs)
    assert opt.updates == 1
    np.testing.assert_allclose(p["w"], -1e-3)


def test_set_params_best_needs_a_validation_and_accepts_a_tree():
    p = params()
    opt = dh.SGD(loss, p)
    with pytest.raises(ValueError, match=r"no best parameters yet"):
        opt.set_params("best")
    with pytest.raises(ValueError, match=r"targets must be 'best' or a tree"):
        opt.set_params("last")
    opt.set_params({"w": np.array([1.0, 2.0, 3.0]), "b": np.array(4.0)})
    np.testing.assert_array_equal(p["w"], [1, 2, 3])
    assert p["b"] == 4.0


def test_evaluate_weights_batches_by_their_size():
    x = np.arange(10.0)[:, None]
    opt = dh.SGD(lambda p, a: anp.mean(a) + 0 * p[0], np.zeros(1))
    # batches of 4, 4 and 2 samples: the weighted mean is the plain mean of x
    assert opt.evaluate(dh.Dataset(x, batch_size=4, shuffle=False))["loss"] == pytest.approx(4.5)
    assert opt.evaluate([x])["loss"] == pytest.approx(4.5)
    with pytest.raises(TypeError, match="nothing to evaluate"):
        dh.SGD(None, np.zeros(1)).evaluate([x])


def test_repr_shows_changed_hyperparameters():
    assert repr(dh.Adam(loss, params(), beta1=0.8)) == "Adam(beta1=0.8)"


def test_gradients_written_into_the_gradient_buffer_are_used_in_place(monkeypatch):
    p, q = dh.pack(params()), dh.pack(params())
    a, b = dh.Adam(None, p, learning_rate=0.1), dh.Adam(None, q, learning_rate=0.1)
    buf = a.gradient_buffer()
    assert all(np.shares_memory(leaf, a._g) for leaf in (buf["w"], buf["b"]))
    copies = []
    real = np.concatenate
    monkeypatch.setattr(np, "concatenate", lambda *args, **kw: copies.append(1) or real(*args, **kw))
    for k in range(3):
        g = {"w": np.array([1.0, -2.0, 0.5]) * (k + 1), "b": np.array(0.3)}
        buf["w"][...] = g["w"]
        buf["b"][...] = g["b"]
        a.apply(buf)
        monkeypatch.setattr(np, "concatenate", real)
        b.apply(g)
        monkeypatch.setattr(np, "concatenate", lambda *args, **kw: copies.append(1) or real(*args, **kw))
    assert copies == []                      # the buffer was used where it is
    np.testing.assert_array_equal(p["w"], q["w"])
    np.testing.assert_array_equal(p["b"], q["b"])
