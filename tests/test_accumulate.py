"""Gradient accumulation, ``accumulate=k`` (issue 12, item 9).

Every ``k``-th call of ``step`` / ``apply`` / ``update`` makes one update
from the mean of the ``k`` batch gradients; the others only add to a pending
sum, which is part of the state dict and of run checkpoints, so that a
resume mid-accumulation continues bit for bit. Schedules, ``updates`` and
``max_updates`` count updates; a partial sum at the end of an epoch carries
over into the next.
"""

import gc
import os
import signal
import tracemalloc

import autograd.numpy as anp
import numpy as np
import pytest

import npdownhill as dh
from npdownhill.errors import NonFiniteError
from npdownhill.npzfile import load_npz

GRADIENT_ALGORITHMS = [name for name in dh.algorithms()
                       if not dh.registry.lookup(name).full_batch and name != "esgd"]


def tree():
    return {"w": np.array([[1.0, -2.0], [0.5, 3.0]]), "b": np.array([0.25, -0.75, 1.5])}


def gradients(n, seed=11):
    r = np.random.default_rng(seed)
    return [{"w": r.standard_normal((2, 2)), "b": r.standard_normal(3)} for _ in range(n)]


def mean_of(grads):
    """(g1 + g2 + ... + gk) / k, added left to right."""
    total = {k: v.copy() for k, v in grads[0].items()}
    for g in grads[1:]:
        for k in total:
            total[k] = total[k] + g[k]
    return {k: v / len(grads) for k, v in total.items()}


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("algo", GRADIENT_ALGORITHMS)
def test_k_batches_make_one_update_on_their_mean(algo, k):
    hyper = dict(momentum=0.5, weight_decay=0.01, learning_rate_multipliers={"b": 0.5},
                 learning_rate=lambda t: 0.01 / (1 + t), rng=2)
    if algo == "rprop":                     # its learning_rate is the initial step size
        hyper["learning_rate"] = 0.01
    if dh.registry.lookup(algo).own_weight_decay:     # schedule-free: no momentum, no rates
        del hyper["momentum"], hyper["learning_rate_multipliers"]
    accumulated, plain = tree(), tree()
    acc = dh.build(algo, None, accumulated, accumulate=k, **hyper)
    ref = dh.build(algo, None, plain, **hyper)
    grads = gradients(4 * k)
    for i in range(4):
        batch = grads[i * k:(i + 1) * k]
        for j, g in enumerate(batch):
            before = {name: v.copy() for name, v in accumulated.items()}
            acc.apply(g)
            if j < k - 1:          # only accumulated: nothing moves
                for name in before:
                    np.testing.assert_array_equal(accumulated[name], before[name])
        ref.apply(mean_of(batch))
        assert acc.updates == ref.updates == i + 1
        for name in plain:
            np.testing.assert_array_equal(accumulated[name], plain[name])
        for name in ref.state:
            np.testing.assert_array_equal(acc.state[name], ref.state[name])


def test_sgd_by_hand():
    """accumulate=3 with SGD: x -= lr * (g1 + g2 + g3) / 3, lr scheduled by updates."""
    x = np.zeros(1)
    seen = []
    opt = dh.SGD(None, x, accumulate=3, learning_rate=lambda t: seen.append(t) or 0.3 / (1 + t))
    for g in [1.0, 2.0, 6.0, -3.0, 0.0, 0.0]:
        opt.apply(np.array([g]))
    assert x[0] == pytest.approx(-0.3 * 3.0 - 0.15 * -1.0, rel=1e-15)
    assert seen == [0, 1] and opt.updates == 2


def test_step_reports_every_batch_and_the_rate_of_the_pending_update():
    x = {"w": np.array([2.0])}
    opt = dh.SGD(lambda p, c: c * anp.sum(p["w"] ** 2), x, accumulate=2,
                 learning_rate=lambda t: 0.1 / (1 + t))
    first = opt.step(1.0)           # gradient 4
    assert first == {"loss": 4.0, "learning_rate": 0.1} and x["w"][0] == 2.0
    second = opt.step(3.0)          # gradient 12; mean 8
    assert second == {"loss": 12.0, "learning_rate": 0.1}
    assert x["w"][0] == pytest.approx(2.0 - 0.1 * 8, rel=1e-15)
    assert opt.step(1.0)["learning_rate"] == 0.05


def test_update_returns_zero_steps_until_the_kth_call():
    x = np.array([1.0, 2.0])
    opt = dh.SGD(None, x, accumulate=2, learning_rate=0.5)
    np.testing.assert_array_equal(opt.update(np.array([1.0, 1.0])), [0.0, 0.0])
    np.testing.assert_array_equal(opt.update(np.array([3.0, 5.0])), [-1.0, -1.5])
    np.testing.assert_array_equal(x, [1.0, 2.0])        # update() never touches the params


def test_a_non_finite_gradient_is_refused_and_the_sum_is_kept():
    x = np.zeros(1)
    opt = dh.SGD(None, x, accumulate=2, learning_rate=1.0)
    opt.apply(np.array([2.0]))
    with pytest.raises(NonFiniteError, match="non-finite gradient"):
        opt.apply(np.array([np.nan]))
    assert opt.state_dict()["accumulated.count"] == 1
    opt.apply(np.array([4.0]))
    assert x[0] == -3.0


def test_an_update_refused_at_the_kth_gradient_leaves_the_sum_as_it_was():
    x = np.zeros(1)
    opt = dh.SGD(None, x, accumulate=2, learning_rate=1e300)
    opt.apply(np.array([2.0]))
    with pytest.raises(NonFiniteError, match="non-finite step"):
        opt.apply(np.array([1e10]))           # the step -1e300 * 5e9 overflows
    assert opt.state_dict()["accumulated.count"] == 1 and opt.updates == 0
    opt.set_hyperparameters(learning_rate=1.0)
    opt.apply(np.array([4.0]))                # the mean of 2 and 4
    assert x[0] == -3.0


@pytest.mark.parametrize("algo", ["sgd", "adam", "rmsprop"])
def test_state_dict_mid_accumulation_resumes_bit_identically(algo):
    grads = gradients(10)
    whole = tree()
    a = dh.build(algo, None, whole, accumulate=3, momentum=0.5)
    for g in grads:
        a.apply(g)
    half = tree()
    b = dh.build(algo, None, half, accumulate=3, momentum=0.5)
    for g in grads[:5]:
        b.apply(g)
    state = b.state_dict()
    assert state["accumulated.count"] == 2
    params = tree()
    c = dh.build(algo, None, params)               # accumulate comes from the state
    c.load_state_dict(state)
    assert c.hyper["accumulate"] == 3
    for g in grads[5:]:
        c.apply(g)
    for name in whole:
        np.testing.assert_array_equal(params[name], whole[name])
    assert c.updates == a.updates == 3


BAD = [
    (dict(accumulate=0), ValueError, r"SGD\(accumulate=0\): accumulate must be >= 1; got 0"),
    (dict(accumulate=2.5), ValueError, r"SGD\(accumulate=2.5\): accumulate must be an integer"),
    (dict(accumulate="2"), TypeError, r"SGD\(accumulate='2'\): accumulate must be a real number"),
]


@pytest.mark.parametrize("hyper, error, message", BAD)
def test_bad_values_are_refused(hyper, error, message):
    with pytest.raises(error, match=message):
        dh.SGD(None, np.zeros(1), **hyper)


def test_what_cannot_accumulate_refuses_it():
    loss = lambda p: anp.sum(p ** 2)      # noqa: E731
    with pytest.raises(ValueError, match=r"ESGD\(accumulate=2\): ESGD evaluates the loss"):
        dh.ESGD(loss, np.ones(2), accumulate=2)
    with pytest.raises(ValueError, match=r"LBFGS\(accumulate=2\): LBFGS evaluates the loss"):
        dh.LBFGS(loss, np.ones(2), accumulate=2)
    opt = dh.SGD(None, np.ones(2), accumulate=2)
    with pytest.raises(ValueError, match=r"SGD.get_updates: gradient accumulation \(accumulate=2, "
                                         r"0 gradients pending\)"):
        opt.get_updates(np.ones(2))


@pytest.mark.parametrize("algo", ["sgd", "adam"])
def test_accumulating_allocates_no_full_size_temporary(algo):
    n = 1_000_000
    params = {"big": np.ones(n), "b": np.ones(3)}
    grads = {"big": np.full(n, 1e-3), "b": np.full(3, 1e-3)}
    opt = dh.build(algo, None, params, learning_rate=1e-4, accumulate=3, momentum=0.5)
    for _ in range(3):
        opt.apply(grads)            # the sum, the spares and the scratch are made
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(3):          # two gradients only added, then an update
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            opt.apply(grads)
            assert tracemalloc.get_traced_memory()[1] - before < 0.3 * params["big"].nbytes
    finally:
        tracemalloc.stop()
    assert opt.updates == 2


# -- the run layer ---------------------------------------------------------------

X = np.random.default_rng(3).standard_normal((30, 2))
Y = X @ np.array([1.5, -0.5]) + 0.1


def fit_loss(p, x, y):
    return anp.mean((anp.dot(x, p["w"]) + p["b"] - y) ** 2)


def fit(**options):
    params = {"w": np.zeros(2), "b": np.zeros(())}
    settings = dict(algo="adam", learning_rate=0.05, batch_size=10, accumulate=2, rng=4,
                    validate_every=1, patience=None, momentum=0.3,
                    learning_rate_multipliers={"b": 0.5}, weight_decay={"w": 0.01})
    settings.update(options)
    return params, dh.minimize(fit_loss, params, [X, Y], **settings)


def test_updates_are_counted_and_a_partial_sum_carries_over_epochs():
    # 3 batches per epoch, 2 per update: updates after batches 2, 4, 6, 8, ...
    _, result = fit(max_epochs=4)
    np.testing.assert_array_equal(result.history["updates"], [0, 1, 3, 4, 6])
    assert result.updates == result.optimizer.updates == 6
    assert result.optimizer.state_dict()["accumulated.count"] == 0
    _, result = fit(max_epochs=3)
    assert result.updates == 4 and result.optimizer.state_dict()["accumulated.count"] == 1


def test_max_updates_counts_updates():
    _, result = fit(max_updates=4)
    assert result.stop == "max_updates" and result.updates == 4
    np.testing.assert_array_equal(result.history["updates"][-1], 4)
    assert result.epochs == 3        # batch 8 of 9: the third epoch is partial


@pytest.mark.parametrize("first", [dict(max_epochs=1), dict(max_epochs=3), dict(max_updates=4)])
def test_a_checkpoint_resume_mid_accumulation_is_bit_identical(tmp_path, first):
    whole, whole_result = fit(max_epochs=5)
    path = str(tmp_path / "run.npz")
    fit(checkpoint=path, **first)
    params, result = fit(checkpoint=path, max_epochs=5)
    for name in whole:
        np.testing.assert_array_equal(params[name], whole[name])
    assert result.updates == whole_result.updates
    np.testing.assert_array_equal(result.history["valid.loss"], whole_result.history["valid.loss"])
    np.testing.assert_array_equal(result.history["train.loss"], whole_result.history["train.loss"])


def test_ctrl_c_mid_epoch_and_mid_accumulation_resumes_bit_identically(tmp_path):
    """SIGINT after the 5th training batch (mid-epoch 2, one gradient pending): the run
    saves and ends; the same call resumes it and ends where an uninterrupted run does."""
    calls = []

    def interrupter(at):
        def monitor(p, x, y):
            calls.append(1)
            if len(calls) == at:
                os.kill(os.getpid(), signal.SIGINT)
            return 0.0
        return monitor

    whole, whole_result = fit(max_epochs=4, monitors={"m": interrupter(None)})
    path = str(tmp_path / "run.npz")
    calls.clear()
    # calls 1-3: validation at epoch 0; 4-6: epoch 1; 7-9: validation; 10, 11: epoch 2
    _, stopped = fit(max_epochs=4, checkpoint=path, monitors={"m": interrupter(11)})
    assert stopped.stop == "interrupted"
    saved = load_npz(path)
    assert int(saved["accumulated.count"]) == 1 and int(saved["run.partial.batches"]) == 2
    params, result = fit(max_epochs=4, checkpoint=path, monitors={"m": interrupter(None)})
    for name in whole:
        np.testing.assert_array_equal(params[name], whole[name])
    assert result.updates == whole_result.updates == 6
    np.testing.assert_array_equal(result.history["train.loss"], whole_result.history["train.loss"])
