"""The driver: epochs, validation schedule, patience, best parameters, monitors, logs."""

import logging

import autograd.numpy as anp
import numpy as np
import pytest

import npdownhill as dh


def pull(p, x):
    """Squared distance of w to the targets in x: training pulls w towards mean(x)."""
    return anp.mean((p["w"] - x) ** 2)


def constant_data(value, n=30):
    return np.full((n, 1), float(value))


def test_one_yield_per_epoch_with_batch_size_weighted_means():
    # lr = 0: the params never move, so the epoch's training loss is exactly
    # the sample mean of (0 - x)^2 over the 10 samples, whatever the batches
    x = np.arange(10.0)[:, None]
    opt = dh.SGD(pull, {"w": np.zeros(1)}, learning_rate=0.0)
    pairs = list(opt.iterate([x], batch_size=4, max_epochs=3, rng=0))
    assert len(pairs) == 3
    for train, valid in pairs:
        assert list(train)[0] == "loss" and list(valid)[0] == "loss"
        assert train["loss"] == pytest.approx(np.mean(x ** 2), rel=1e-15)
    assert opt.updates == 9                          # 3 batches (4, 4, 2) per epoch


def test_train_batches_sets_the_epoch_length():
    x = np.arange(10.0)[:, None]
    opt = dh.SGD(pull, {"w": np.zeros(1)}, learning_rate=0.0)
    list(opt.iterate([x], batch_size=2, train_batches=2, max_epochs=4))
    assert opt.updates == 8


def test_max_updates_stops_exactly_and_yields_the_partial_epoch():
    x = np.arange(10.0)[:, None]
    opt = dh.SGD(pull, {"w": np.zeros(1)}, learning_rate=0.01)
    pairs = list(opt.iterate([x], max_updates=12, batch_size=2, rng=0))   # 5 updates per epoch
    assert opt.updates == 12
    assert len(pairs) == 3
    assert [r["updates"] for r in opt.history] == [0, 5, 10, 12]     # epoch 0: the start


def test_validation_before_the_first_epoch_every_n_epochs_and_at_the_end(caplog):
    opt = dh.SGD(pull, {"w": np.zeros(1)}, learning_rate=0.01)
    with caplog.at_level(logging.INFO, logger="npdownhill"):
        list(opt.iterate([constant_data(1.0)], batch_size=0, validate_every=3, max_epochs=7,
                         patience=100))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("validation")]
    assert [int(line.split()[1]) for line in lines] == [0, 3, 6, 7]
    assert opt.history_arrays()["validated"].tolist() == [True, False, False, True, False, False,
                                                         True, True]


def test_log_lines_follow_downhills_format(caplog):
    opt = dh.SGD(pull, {"w": np.zeros(1)}, learning_rate=0.1,
                 monitors={"err": lambda p, x: anp.mean(anp.abs(p["w"] - x))})
    with caplog.at_level(logging.INFO, logger="npdownhill"):
        list(opt.iterate([constant_data(1.0)], batch_size=0, max_epochs=2, validate_every=1))
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "validation 0 loss=1.000000 err=1.000000 *"
    assert messages[1] == "SGD 1 loss=1.000000 err=1.000000 learning_rate=0.100000"
    assert messages[2].startswith("validation 1 loss=0.640000 err=0.800000 *")


def test_patience_counts_failed_validations():
    # lr = 0: nothing ever improves after the first validation. patience=3 tolerates
    # three failed validations (epochs 2, 4, 6) and the fourth (epoch 8) ends the run
    opt = dh.SGD(pull, {"w": np.zeros(1)}, learning_rate=0.0)
    list(opt.iterate([constant_data(1.0)], batch_size=0, validate_every=2, patience=3))
    assert opt.history[-1]["epoch"] == 8
    assert opt.run.state.stop == "patience"


@pytest.mark.parametrize("patience, stop_epoch", [(0, 1), (1, 2), (2, 3)])
def test_patience_is_the_number_of_failures_tolerated(patience, stop_epoch):
    # as downhill and reduce_on_plateau: patience=0 stops at the first failed
    # validation, patience=1 at the second (they used to be the same)
    opt = dh.SGD(pull, {"w": np.zeros(1)}, learning_rate=0.0)
    list(opt.iterate([constant_data(1.0)], batch_size=0, validate_every=1, patience=patience))
    assert opt.history[-1]["epoch"] == stop_epoch and opt.run.state.stop == "patience"


def _scripted_validation(losses, min_improvement, patience):
    """Run a driver whose validation losses are the given sequence; return the stop epoch."""
    sequence = iter(losses)

    def loss(p, x):
        if x.shape[0] == 1:                              # the validation set has one sample
            return next(sequence) + 0.0 * anp.sum(p["w"])
        return pull(p, x)

    opt = dh.SGD(loss, {"w": np.zeros(1)}, learning_rate=0.0)
    list(opt.iterate([constant_data(1.0, 4)], valid=[np.ones((1, 1))], batch_size=0,
                     validate_every=1, patience=patience, min_improvement=min_improvement,
                     max_epochs=len(losses) - 1))
    return opt.history[-1]["epoch"], opt.best_loss


def test_improvement_rule_uses_the_absolute_best_for_negative_losses():
    # best -10: with min_improvement 0.1 an improvement needs loss < -10 - 1 = -11, so
    # -10.5 and -10.9 fail, -11.5 improves, then -11.6, -11.7, -11.8 fail (need < -12.65).
    # (A rule written best * (1 - 0.1) = -9 would wrongly accept -10.5.)
    epochs, best = _scripted_validation([-10.0, -10.5, -10.9, -11.5, -11.6, -11.7, -11.8,
                                         -20.0, -30.0], 0.1, patience=2)
    assert best == -11.5
    assert epochs == 6


def test_improvement_rule_for_positive_losses():
    # best 10: an improvement needs loss < 9; 9.5 fails, 8.9 improves, then 8.5, 8.2
    # and 8.1 fail (need < 8.01): patience 2 tolerates two and stops the run before 5.0
    epochs, best = _scripted_validation([10.0, 9.5, 8.9, 8.5, 8.2, 8.1, 5.0, 5.0], 0.1, patience=2)
    assert best == 8.9
    assert epochs == 5


def _ascent_problem():
    """Training pulls w from 0 towards 1; validation prefers w = 0.3."""
    train = constant_data(1.0, 8)
    valid = np.full((2, 1), 0.3)
    return train, valid


@pytest.mark.parametrize("how", ["patience", "max_updates", "max_epochs"])
def test_the_best_validated_params_are_put_back(how):
    train, valid = _ascent_problem()
    p = {"w": np.zeros(1)}
    stop = {"patience": dict(patience=2), "max_updates": dict(max_updates=9, patience=100),
            "max_epochs": dict(max_epochs=9, patience=100)}[how]
    opt = dh.SGD(pull, p, learning_rate=0.05)
    losses = []
    list(opt.iterate([train], valid=[valid], batch_size=0, validate_every=1,
                     callback=lambda info: losses.append((info.valid["loss"], info.epoch)), **stop))
    # w after k epochs of gradient descent on (w - 1)^2 with lr 0.05: 1 - 0.9^k
    best_epoch = min(range(len(losses) + 1), key=lambda k: (1 - 0.9 ** k - 0.3) ** 2)
    assert p["w"][0] == pytest.approx(1 - 0.9 ** best_epoch, rel=1e-12)
    assert opt.best_loss == pytest.approx((1 - 0.9 ** best_epoch - 0.3) ** 2, rel=1e-9)


def test_breaking_out_of_the_loop_validates_and_restores_the_best():
    train, valid = _ascent_problem()
    p = {"w": np.zeros(1)}
    opt = dh.SGD(pull, p, learning_rate=0.05)
    for epoch, _ in enumerate(opt.iterate([train], valid=[valid], batch_size=0,
                                          validate_every=100, patience=100), 1):
        if epoch == 3:
            break
    # only epochs 0 and 3 were validated: w = 0 (loss 0.09) and w = 0.271 (loss 0.00084)
    assert p["w"][0] == pytest.approx(1 - 0.9 ** 3, rel=1e-12)


def test_keyboard_interrupt_ends_the_run_cleanly_with_the_best_params():
    train, valid = _ascent_problem()
    p = {"w": np.zeros(1)}
    calls = []

    def loss(q, x):
        calls.append(1)
        if len(calls) == 40:
            raise KeyboardInterrupt
        return pull(q, x)

    opt = dh.SGD(loss, p, learning_rate=0.05)
    train_monitors, valid_monitors = opt.minimize([train], valid=[valid], batch_size=0,
                                                  validate_every=1, patience=100)
    assert 1 < len(opt.history) < 40
    best_epoch = min(range(len(opt.history)), key=lambda k: (1 - 0.9 ** k - 0.3) ** 2)
    assert p["w"][0] == pytest.approx(1 - 0.9 ** best_epoch, rel=1e-12)


def test_callback_receives_epoch_info_and_stop_iteration_stops():
    infos = []

    def callback(info):
        infos.append(info)
        if info.epoch == 4:
            raise StopIteration

    opt = dh.SGD(pull, {"w": np.zeros(1)}, learning_rate=0.1)
    pairs = list(opt.iterate([constant_data(1.0)], batch_size=0, validate_every=2,
                             callback=callback))
    assert [i.epoch for i in infos] == [1, 2, 3, 4]
    assert [i.validated for i in infos] == [False, True, False, True]
    assert infos[0].optimizer is opt and infos[1].updates == 2
    assert len(pairs) == 4 and opt.run.state.stop == "callback"


def test_a_failing_loss_restores_the_best_params_and_raises():
    train, valid = _ascent_problem()
    p = {"w": np.zeros(1)}
    calls = []

    def loss(q, x):
        calls.append(1)
        if len(calls) == 10:
            raise RuntimeError("boom")
        return pull(q, x)

    opt = dh.SGD(loss, p, learning_rate=0.05)
    with pytest.raises(RuntimeError, match="boom"):
        opt.minimize([train], valid=[valid], batch_size=0, validate_every=1, patience=100)
    # one loss call per training step and per validation: call 10 is epoch 5's step,
    # so epochs 0-4 were validated (w = 1 - 0.9^k); w = 0.271 (k = 3) is closest to 0.3
    assert p["w"][0] == opt.best_params["w"][0]
    assert p["w"][0] == pytest.approx(1 - 0.9 ** 3, rel=1e-12)


def test_state_persists_across_iterate_calls():
    x = constant_data(1.0)
    p = {"w": np.zeros(1)}
    opt = dh.Adam(pull, p, learning_rate=0.1)
    list(opt.iterate([x], batch_size=0, max_epochs=3))
    m_after_first = opt.state["m"].copy()
    list(opt.iterate([x], batch_size=0, max_epochs=3))
    assert opt.updates == 6
    reference = {"w": np.zeros(1)}
    ref = dh.Adam(pull, reference, learning_rate=0.1)
    for _ in range(6):
        ref.step(x)
    np.testing.assert_array_equal(p["w"], reference["w"])
    assert not np.array_equal(m_after_first, opt.state["m"])


def test_valid_none_validates_on_the_training_data_in_order():
    x = np.arange(8.0)[:, None]
    opt = dh.SGD(pull, {"w": np.zeros(1)}, learning_rate=0.0)
    train, valid = opt.minimize([x], batch_size=3, max_epochs=1, rng=0)
    assert valid["loss"] == pytest.approx(np.mean(x ** 2), rel=1e-15)
    data = dh.Dataset([x], batch_size=3, rng=0)
    opt.minimize(data, max_epochs=1)
    assert opt.run.state.last_valid["loss"] == pytest.approx(np.mean(x ** 2), rel=1e-15)


def test_train_none_means_one_update_per_epoch_on_params_alone():
    p = np.array([3.0])
    opt = dh.SGD(lambda q: anp.sum((q - 1.0) ** 2), p, learning_rate=0.25)
    train, valid = opt.minimize(max_epochs=5, patience=100)
    assert opt.updates == 5
    assert p[0] == pytest.approx(1 + 2 * 0.5 ** 5, rel=1e-14)      # w - 1 halves each step
    assert valid["loss"] == pytest.approx((2 * 0.5 ** 5) ** 2, rel=1e-12)


def test_minimize_returns_loss_first_and_the_doc_example_works():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3))
    y = x @ np.array([1.0, -2.0, 0.5])
    params = {"w": np.zeros(3)}
    train, valid = dh.minimize(lambda p, a, b: anp.mean((anp.dot(a, p["w"]) - b) ** 2), params,
                               [x, y], algo="adam", learning_rate=0.1, max_epochs=200, rng=0,
                               monitors={"mae": lambda p, a, b: anp.mean(anp.abs(anp.dot(a, p["w"]) - b))})
    assert list(train)[:2] == ["loss", "mae"] and list(valid) == ["loss", "mae"]
    np.testing.assert_allclose(params["w"], [1.0, -2.0, 0.5], atol=1e-2)


def test_history_arrays_are_ready_to_plot():
    opt = dh.SGD(pull, {"w": np.zeros(1)}, learning_rate=0.1)
    list(opt.iterate([constant_data(1.0)], batch_size=0, max_epochs=5, validate_every=2))
    h = opt.history_arrays()
    assert h["epoch"].tolist() == [0, 1, 2, 3, 4, 5]
    assert h["updates"].tolist() == [0, 1, 2, 3, 4, 5]
    assert np.all(np.diff(h["time"]) >= 0)
    assert np.isnan(h["train.loss"][0])              # epoch 0 is the start: validated only
    np.testing.assert_allclose(h["train.loss"][1:], [(1 - (1 - 0.8 ** k)) ** 2 for k in range(5)])
    assert h["valid.loss"][0] == 1.0                 # the start point's validation is kept
    assert np.isnan(h["valid.loss"][[1, 3]]).all()
    assert h["valid.loss"][2] == pytest.approx((0.8 ** 2) ** 2)
    assert h["validated"].tolist() == [True, False, True, False, True, True]


def test_driver_options_are_validated():
    opt = dh.SGD(pull, {"w": np.zeros(1)})
    x = [constant_data(1.0)]
    with pytest.raises(ValueError, match=r"SGD.iterate\(validate_every=0\): validate_every must be >= 1"):
        opt.iterate(x, validate_every=0)
    with pytest.raises(TypeError, match=r"callback must be callable"):
        opt.iterate(x, callback=3)
    with pytest.raises(ValueError, match=r"on_nonfinite must be 'raise', 'skip' or 'stop'; got 'ignore'"):
        opt.iterate(x, on_nonfinite="ignore")
    with pytest.raises(ValueError, match=r"max_updates must be >= 0; got -1"):
        opt.iterate(x, max_updates=-1)
    with pytest.raises(TypeError, match=r"a run needs a loss"):
        dh.SGD(None, np.zeros(1)).iterate(x)
