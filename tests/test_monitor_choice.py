"""Early stopping and best-param selection on any monitor (issue 12, item 10).

``monitor='dist'`` (default ``'loss'``) with ``mode='min'|'max'`` picks the
best validation, drives patience and ``reduce_on_plateau``. The runs below
are deterministic (no data: one SGD update per epoch on ``(x - 3)^2``), so
every number is computed by hand: ``x_k = 3 (1 - 0.8^k)`` at learning rate
0.1, closest to 1 at epoch 2.
"""

import logging
import math

import autograd.numpy as anp
import numpy as np
import pytest

import npdownhill as dh
from npdownhill import schedules
from npdownhill.npzfile import load_npz, save_npz


def loss(p):
    return (p["x"][0] - 3.0) ** 2


MONITORS = {"dist": lambda p: anp.abs(p["x"][0] - 1.0),
            "closeness": lambda p: -anp.abs(p["x"][0] - 1.0)}


def hand_run(lr_of, epochs, patience, better):
    """The same run by hand: x after each epoch, the best epoch and the stop epoch.

    ``better(value, best)`` says whether ``value`` (of the monitor |x - 1|) improves.
    """
    x, best, best_epoch, bad = 0.0, None, 0, 0
    xs = [x]
    best_x = x
    best = abs(x - 1)
    for epoch in range(1, epochs + 1):
        x = x - lr_of(epoch - 1) * 2 * (x - 3)
        xs.append(x)
        value = abs(x - 1)
        if better(value, best):
            best, best_epoch, best_x, bad = value, epoch, x, 0
        else:
            bad += 1
        if bad > patience:
            return xs, best_epoch, best_x, epoch
    return xs, best_epoch, best_x, epochs


def run(**options):
    params = {"x": np.zeros(1)}
    settings = dict(algo="sgd", learning_rate=0.1, validate_every=1, max_epochs=12,
                    monitors=MONITORS)
    settings.update(options)
    result = dh.minimize(loss, params, **settings)
    return params, result


CASES = {
    # name: (options, what the hand run calls better)
    "dist, min": (dict(monitor="dist"), lambda v, b: v < b),
    "closeness, max": (dict(monitor="closeness", mode="max"), lambda v, b: v < b),
    "loss (default)": ({}, None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_monitor_picks_the_best_params_and_drives_patience(case):
    options, better = CASES[case]
    params, result = run(patience=1, **options)
    if better is None:            # the loss keeps falling: the last epoch is the best
        x = 3 * (1 - 0.8 ** 12)
        assert result.best_epoch == 12 and result.stop == "max_epochs"
        assert params["x"][0] == pytest.approx(x, rel=1e-14)
        assert result.monitor == "loss" and result.mode == "min"
        assert result.best_value == result.best_loss
        return
    xs, best_epoch, best_x, stop_epoch = hand_run(lambda t: 0.1, 12, 1, better)
    assert (best_epoch, stop_epoch) == (2, 4)
    assert result.best_epoch == 2 and result.epochs == 4 and result.stop == "patience"
    assert params["x"][0] == pytest.approx(best_x, rel=1e-14) == pytest.approx(1.08)
    assert result.monitor == options["monitor"] and result.mode == options.get("mode", "min")
    sign = -1 if result.mode == "max" else 1
    assert result.best_value == pytest.approx(sign * abs(best_x - 1), rel=1e-12)
    assert result.best_loss == pytest.approx((best_x - 3) ** 2, rel=1e-12)
    assert result.best_valid["dist"] == pytest.approx(abs(best_x - 1), rel=1e-12)
    assert f"{options['monitor']} " in result.message and "at epoch 2" in result.message
    assert f"the validation {options['monitor']} stopped improving" in result.message


def test_min_improvement_is_relative_to_the_monitor():
    # with min_improvement 0.9 only a 10x smaller distance counts: 0.6 -> 0.08 (epoch 2) does
    _, result = run(monitor="dist", patience=0, min_improvement=0.9)
    xs, best_epoch, _, stop = hand_run(lambda t: 0.1, 12, 0, lambda v, b: v < b - abs(b) * 0.9)
    assert (result.best_epoch, result.epochs) == (best_epoch, stop)


@pytest.mark.parametrize("monitor, mode", [("dist", "min"), ("closeness", "max")])
def test_reduce_on_plateau_follows_the_monitor(monitor, mode):
    schedule = schedules.reduce_on_plateau(0.1, factor=0.5, patience=0)
    params, result = run(monitor=monitor, mode=mode, learning_rate=schedule, patience=None,
                         max_epochs=6)
    # by hand: every validation that does not bring x closer to 1 halves the rate
    lr, best, x, rates = 0.1, abs(0.0 - 1), 0.0, []
    for epoch in range(1, 7):
        rates.append(lr)
        x = x - lr * 2 * (x - 3)
        if abs(x - 1) < best:
            best = abs(x - 1)
        else:
            lr *= 0.5
    assert schedule.value == pytest.approx(lr, rel=1e-15)
    assert lr < 0.1 / 4                     # the plateau was seen several times
    assert schedule.num_validations == 7    # epoch 0 and 6 epochs
    # the params hold the best validation (x = 1.08 at epoch 2)
    assert params["x"][0] == pytest.approx(1.08, rel=1e-14)


def test_a_monitor_the_validation_does_not_produce_is_refused_up_front():
    params = {"x": np.zeros(1)}
    with pytest.raises(ValueError, match=r"SGD.minimize\(monitor='dst'\): the validation does "
                                         r"not produce 'dst'; it produces 'loss', 'dist', "
                                         r"'closeness' .*\(did you mean 'dist'\?\)"):
        dh.minimize(loss, params, algo="sgd", monitors=MONITORS, monitor="dst")
    np.testing.assert_array_equal(params["x"], 0.0)


def test_a_resume_takes_the_saved_monitor_and_continues_bit_identically(tmp_path):
    path = str(tmp_path / "run.npz")
    whole, whole_result = run(monitor="closeness", mode="max", patience=None, max_epochs=6)
    part, _ = run(monitor="closeness", mode="max", patience=None, max_epochs=3, checkpoint=path)
    params = {"x": part["x"].copy()}
    result = dh.minimize(loss, params, algo="sgd", learning_rate=0.1, validate_every=1,
                         max_epochs=6, monitors=MONITORS, patience=None, checkpoint=path)
    assert result.monitor == "closeness" and result.mode == "max"
    np.testing.assert_array_equal(params["x"], whole["x"])
    assert result.best_epoch == whole_result.best_epoch == 2
    assert result.best_value == whole_result.best_value
    np.testing.assert_array_equal(result.history["valid.dist"], whole_result.history["valid.dist"])


def test_a_changed_monitor_on_resume_warns_or_is_refused(tmp_path, caplog):
    path = str(tmp_path / "run.npz")
    run(monitor="dist", patience=None, max_epochs=3, checkpoint=path)
    params = {"x": np.zeros(1)}
    base = dict(algo="sgd", learning_rate=0.1, validate_every=1, monitors=MONITORS,
                patience=None, checkpoint=path)
    with pytest.raises(ValueError, match=r"monitor: saved 'dist', given 'closeness'; mode: "
                                         r"saved 'min', given 'max'"):
        dh.minimize(loss, params, max_epochs=5, monitor="closeness", mode="max",
                    resume_changes="raise", **base)
    np.testing.assert_array_equal(params["x"], 0.0)
    with caplog.at_level(logging.WARNING, logger="npdownhill"):
        result = dh.minimize(loss, params, max_epochs=5, monitor="loss", **base)
    assert "monitor differs from the checkpoint's: saved 'dist', given 'loss'" in caplog.text
    # the saved best (epoch 2) is re-read in the loss; epochs 3-5 have lower losses
    assert result.monitor == "loss" and result.best_epoch == 5
    assert params["x"][0] == pytest.approx(3 * (1 - 0.8 ** 5), rel=1e-14)


def test_a_checkpoint_written_before_monitors_existed_resumes_on_the_loss(tmp_path):
    path = str(tmp_path / "run.npz")
    run(patience=None, max_epochs=3, checkpoint=path)
    state = load_npz(path)
    for key in ("run.monitor", "run.mode", "run.best_value"):
        del state[key]
    save_npz(path, state)
    params = {"x": np.zeros(1)}
    result = dh.minimize(loss, params, algo="sgd", learning_rate=0.1, validate_every=1,
                         max_epochs=5, monitors=MONITORS, patience=None, checkpoint=path)
    assert result.monitor == "loss" and result.best_epoch == 5 and result.epochs == 5
    assert math.isfinite(result.best_value)


def test_mode_max_on_the_loss_is_refused():
    """The run minimizes the loss: keeping its largest validation value would keep the
    worst params, silently. mode='max' is for a score named with monitor=."""
    params = {"x": np.zeros(1)}
    with pytest.raises(ValueError, match=r"SGD.minimize\(mode='max'\): the run minimizes the "
                                         r"loss, so selecting the largest validation loss would "
                                         r"keep the worst params"):
        dh.minimize(loss, params, algo="sgd", monitors=MONITORS, mode="max", max_epochs=2)
    np.testing.assert_array_equal(params["x"], 0.0)
