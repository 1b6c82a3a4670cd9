"""Honest runs: nothing a caller asks for is silently ignored or silently undone.

Each test here reproduces one way npdownhill 0.1 did something other than what
the user asked, without a word (issue 8), and proves that now the request is
applied, refused with an error that says why, or reported with a WARNING.
"""

import gc
import logging
import os
import subprocess
import sys
import textwrap

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import npdownhill as dh
from npdownhill import schedules
from npdownhill.__main__ import main as demo_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def loss(p, x, y):
    return anp.mean((anp.dot(x, p["w"]) + p["b"] - y) ** 2)


def regression(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    return [x, x @ np.array([1.0, -2.0, 0.5]) + 0.3]


def fresh():
    return {"w": np.zeros(3), "b": np.zeros(())}


def pull(p, x):
    """Training pulls w towards the data."""
    return anp.mean((p["w"] - x) ** 2)


def messages(caplog, level=logging.WARNING):
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


# ---------------------------------------------------------------------------
# A1. a rebound leaf is refused by every entry point that reads the params
# ---------------------------------------------------------------------------

ENTRIES = {
    "step": lambda opt, data: opt.step(*data),
    "apply": lambda opt, data: opt.apply(fresh()),
    "update": lambda opt, data: opt.update(fresh()),
    "get_updates": lambda opt, data: opt.get_updates(fresh()),
    "iterate": lambda opt, data: opt.iterate(data, max_epochs=1),
    "minimize": lambda opt, data: opt.minimize(data, max_epochs=1),
    "set_params": lambda opt, data: opt.set_params(fresh()),
    "evaluate": lambda opt, data: opt.evaluate(data),
    "load_state_dict": lambda opt, data: opt.load_state_dict(opt.state_dict()),
}


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_a_rebound_leaf_is_refused_naming_it_and_the_in_place_fix(entry):
    params = fresh()
    opt = dh.SGD(loss, params, learning_rate=0.1)
    data = regression()
    opt.step(*data)
    old = params["w"]
    params["w"] = params["w"] * 1.0          # a projection that rebinds instead of assigning
    before_old, before_new = old.copy(), params["w"].copy()
    with pytest.raises(ValueError, match=r"leaf 'w' was rebound.*params\[\"w\"\]\[\.\.\.\] = "):
        ENTRIES[entry](opt, data)
    assert np.array_equal(old, before_old) and np.array_equal(params["w"], before_new)


def test_assigning_in_place_keeps_the_optimizer_connected():
    params = fresh()
    opt = dh.SGD(loss, params, learning_rate=0.05)
    data = regression()
    # the same projected gradient descent written out by hand
    grad = autograd.grad(loss)
    w, b = np.zeros(3), np.zeros(())
    for _ in range(200):
        opt.step(*data)
        params["w"][...] = np.clip(params["w"], -1.5, 1.5)     # a projection, in place
        g = grad({"w": w, "b": b}, *data)
        w, b = np.clip(w - 0.05 * g["w"], -1.5, 1.5), b - 0.05 * g["b"]
    assert opt.layout.arrays[0] is params["w"]
    np.testing.assert_allclose(params["w"], w, rtol=1e-12)
    assert params["w"][1] == -1.5                              # the bound is active


# ---------------------------------------------------------------------------
# A2. explicit hyperparameters on resume: applied with a WARNING, or refused
# ---------------------------------------------------------------------------

def _first_leg(path, **hyper):
    dh.minimize(loss, fresh(), regression(), algo="sgd", batch_size=16, max_epochs=2,
                checkpoint=path, rng=0, **hyper)


def test_a_changed_hyperparameter_on_resume_is_applied_with_a_warning(tmp_path, caplog):
    path = str(tmp_path / "run.npz")
    _first_leg(path, learning_rate=0.01, momentum=0.5)
    params = fresh()
    with caplog.at_level(logging.WARNING, logger="npdownhill"):
        result = dh.minimize(loss, params, regression(), algo="sgd", batch_size=16,
                             max_epochs=4, checkpoint=path, rng=0, learning_rate=0.05,
                             momentum=0.5)
    warnings = [m for m in messages(caplog) if "differs from the checkpoint" in m]
    assert len(warnings) == 1, messages(caplog)
    assert "learning_rate" in warnings[0] and "saved 0.01, given 0.05" in warnings[0]
    lrs = result.history["train.learning_rate"]
    assert lrs[1:3].tolist() == [0.01, 0.01] and lrs[3:].tolist() == [0.05, 0.05]
    assert result.optimizer.hyper["learning_rate"] == 0.05


def test_a_changed_hyperparameter_on_resume_can_be_refused(tmp_path):
    path = str(tmp_path / "run.npz")
    _first_leg(path, learning_rate=0.01, momentum=0.5)
    saved = open(path, "rb").read()
    params = fresh()
    with pytest.raises(ValueError) as info:
        dh.minimize(loss, params, regression(), algo="sgd", batch_size=16, max_epochs=4,
                    checkpoint=path, rng=0, learning_rate=0.05, momentum=0.9,
                    resume_changes="raise")
    text = str(info.value)
    for part in ("learning_rate: saved 0.01, given 0.05", "momentum: saved 0.5, given 0.9",
                 "resume_changes='warn'", "delete the file"):
        assert part in text, text
    assert np.array_equal(params["w"], np.zeros(3))          # nothing changed
    assert open(path, "rb").read() == saved


def test_hyperparameters_not_given_take_the_saved_values_silently(tmp_path, caplog):
    path = str(tmp_path / "run.npz")
    _first_leg(path, learning_rate=0.03)
    opt = dh.SGD(loss, fresh())                                # default learning rate 0.01
    with caplog.at_level(logging.WARNING, logger="npdownhill"):
        opt.minimize(regression(), batch_size=16, max_epochs=3, checkpoint=path)
    assert opt.hyper["learning_rate"] == 0.03
    assert not [m for m in messages(caplog) if "differs" in m]


def test_a_changed_schedule_on_resume_is_named(tmp_path, caplog):
    path = str(tmp_path / "run.npz")
    _first_leg(path, learning_rate=schedules.cosine_decay(0.05, 100))
    with caplog.at_level(logging.WARNING, logger="npdownhill"):
        dh.minimize(loss, fresh(), regression(), algo="sgd", batch_size=16, max_epochs=3,
                    checkpoint=path, rng=0, learning_rate=schedules.cosine_decay(0.1, 100))
    [warning] = [m for m in messages(caplog) if "differs" in m]
    assert "cosine_decay(initial=0.05" in warning and "cosine_decay(initial=0.1" in warning


def test_a_new_rprop_step_size_on_resume_rescales_the_saved_step_sizes(tmp_path):
    path = str(tmp_path / "run.npz")
    dh.minimize(loss, fresh(), regression(), algo="rprop", batch_size=16, max_epochs=2,
                checkpoint=path, learning_rate=0.01)
    saved = dh.RProp(loss, fresh())
    saved.load_state(path)
    opt = dh.RProp(loss, fresh(), learning_rate=0.04)
    opt.iterate(regression(), batch_size=16, max_epochs=2, checkpoint=path).close()
    gen = opt.iterate(regression(), batch_size=16, max_epochs=2, checkpoint=path)
    next(gen, None)                     # resumes; the run is already finished
    np.testing.assert_allclose(opt.state["step_size"], saved.state["step_size"] * 4, rtol=1e-15)


# ---------------------------------------------------------------------------
# A3. a leftover iterate generator never writes into a later run
# ---------------------------------------------------------------------------

def test_a_suspended_run_is_ended_before_the_next_begins(caplog):
    params = {"w": np.zeros(1)}
    opt = dh.SGD(pull, params, learning_rate=0.1)
    data = [np.ones((4, 1))]
    first = opt.iterate(data, batch_size=0, validate_every=100, patience=100)
    for _ in range(3):
        next(first)
    run1 = opt.run
    with caplog.at_level(logging.WARNING, logger="npdownhill"):
        second = opt.iterate(data, batch_size=0, validate_every=100, patience=100)
        next(second)
    assert run1.finished and opt.run is not run1
    assert any("left suspended" in m for m in messages(caplog))
    # the first run ended at once: validated (epoch 3) and its best, w = 1 - 0.9^3, put back
    assert run1.state.best_epoch == 3 and run1.state.stop == "closed"
    w_during_second = params["w"].copy()
    first.close()                       # closing or collecting the old one changes nothing
    del first
    gc.collect()
    assert np.array_equal(params["w"], w_during_second)
    second.close()


def test_a_run_cannot_start_inside_its_own_callback():
    params = {"w": np.zeros(1)}
    opt = dh.SGD(pull, params, learning_rate=0.1)
    data = [np.ones((4, 1))]

    def callback(info):
        opt.minimize(data, batch_size=0, max_epochs=1)

    with pytest.raises(RuntimeError, match="cannot start inside another"):
        opt.minimize(data, batch_size=0, max_epochs=3, callback=callback)


def test_a_generator_left_at_interpreter_exit_ends_quietly(tmp_path):
    script = tmp_path / "left.py"
    script.write_text(textwrap.dedent("""
        import numpy as np, autograd.numpy as anp, npdownhill as dh
        import logging; logging.getLogger("npdownhill").setLevel(logging.ERROR)  # no hint
        p = {"w": np.zeros(1)}
        opt = dh.SGD(lambda q, x: anp.mean((q["w"] - x) ** 2), p, learning_rate=0.1)
        it = opt.iterate([np.ones((4, 1))], batch_size=0, validate_every=100)
        cycle = [it]
        cycle.append(cycle)        # collected by the last garbage collection at exit
        for i, _ in enumerate(it):
            if i == 2:
                break
        print("done")
    """))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "done"
    assert out.stderr == "", out.stderr


# ---------------------------------------------------------------------------
# A4. every validation scores the same samples
# ---------------------------------------------------------------------------

def test_valid_batches_shorter_than_a_pass_score_the_same_samples():
    valid = np.arange(6.0)[:, None]                 # 3 batches of 2, very different
    opt = dh.SGD(pull, {"w": np.zeros(1)}, learning_rate=0.0)
    result = opt.minimize([np.ones((4, 1))], valid=[valid], batch_size=2, valid_batches=1,
                          validate_every=1, max_epochs=4, patience=10)
    losses = result.history["valid.loss"]
    assert losses.tolist() == [0.5] * 5            # the first batch, (0 + 1) / 2, every time


# ---------------------------------------------------------------------------
# A5. float16 leaves are refused, A6. data options a Dataset cannot take
# ---------------------------------------------------------------------------

def test_float16_leaves_are_refused_naming_the_leaf():
    with pytest.raises(TypeError, match=r"leaf 'b' has dtype float16.*astype\(np.float32\)"):
        dh.Adam(loss, {"w": np.zeros(3, np.float32), "b": np.zeros((), np.float16)})


@pytest.mark.parametrize("option, value, words", [
    ("batch_size", 8, "train is already a Dataset"),
    ("train_batches", 2, "train is already a Dataset"),
])
def test_data_options_with_a_ready_made_train_dataset_are_refused(option, value, words):
    data = dh.Dataset(regression(), batch_size=16)
    params = fresh()
    with pytest.raises(ValueError, match=f"{option}={value}.*{words}"):
        dh.minimize(loss, params, data, algo="sgd", max_epochs=1, **{option: value})
    assert np.array_equal(params["w"], np.zeros(3))


def test_valid_batches_with_a_ready_made_valid_dataset_is_refused():
    valid = dh.Dataset(regression(seed=1), batch_size=16)
    with pytest.raises(ValueError, match="valid_batches=1.*valid is already a Dataset"):
        dh.minimize(loss, fresh(), regression(), valid, algo="sgd", max_epochs=1,
                    valid_batches=1)


def test_data_options_without_data_to_batch_are_refused():
    with pytest.raises(ValueError, match="batch_size=8.*cannot take effect"):
        dh.SGD(lambda p: anp.sum(p ** 2), np.ones(2)).minimize(batch_size=8, max_epochs=1)
    with pytest.raises(ValueError, match="valid_batches=2.*no validation data"):
        dh.SGD(lambda p: anp.sum(p ** 2), np.ones(2)).minimize(valid_batches=2, max_epochs=1)


def test_data_options_that_apply_to_some_data_are_applied():
    # a ready-made valid Dataset with train arrays: batch_size batches the training arrays
    valid = dh.Dataset(regression(seed=1), batch_size=16)
    opt = dh.SGD(loss, fresh())
    opt.minimize(regression(n=48), valid, batch_size=8, max_epochs=1)
    assert opt.updates == 6
    # train=None: train_batches is the number of updates per epoch
    opt = dh.SGD(lambda p: anp.sum(p ** 2), np.ones(2))
    opt.minimize(train_batches=3, max_epochs=2)
    assert opt.updates == 6


# ---------------------------------------------------------------------------
# A7. Ctrl-C, A8. extending a finished run, A11. a run that never improved
# ---------------------------------------------------------------------------

def test_ctrl_c_is_recorded_warned_and_keeps_the_best(caplog):
    params = {"w": np.zeros(1)}
    calls = []

    def interrupted(q, x):
        calls.append(1)
        if len(calls) == 12:
            raise KeyboardInterrupt
        return pull(q, x)

    opt = dh.SGD(interrupted, params, learning_rate=0.1)
    with caplog.at_level(logging.WARNING, logger="npdownhill"):
        result = opt.minimize([np.ones((4, 1))], batch_size=0, validate_every=1, patience=100)
    assert result.stop == "interrupted" and "interrupted" in result.message
    assert any("interrupted at epoch" in m for m in messages(caplog))
    # w_k = 1 - 0.8^k (lr 0.1 on (w - 1)^2); every epoch improves, so the best is the last
    assert result.best_epoch == result.epochs > 0
    assert params["w"][0] == opt.best_params["w"][0] == pytest.approx(1 - 0.8 ** result.epochs)


def test_a_finished_run_can_be_extended_with_other_options(tmp_path):
    path = str(tmp_path / "run.npz")
    params = {"w": np.zeros(1)}
    first = dh.SGD(pull, params, learning_rate=0.0).minimize(
        [np.ones((4, 1))], batch_size=0, validate_every=1, patience=1, checkpoint=path)
    assert first.stop == "patience" and first.epochs == 2
    again = dh.SGD(pull, {"w": np.zeros(1)}, learning_rate=0.0).minimize(
        [np.ones((4, 1))], batch_size=0, validate_every=1, patience=1, checkpoint=path)
    assert again.epochs == 2                                  # the same command: done
    more = dh.SGD(pull, {"w": np.zeros(1)}, learning_rate=0.0).minimize(
        [np.ones((4, 1))], batch_size=0, validate_every=1, patience=3, checkpoint=path)
    assert more.stop == "patience" and more.epochs == 4       # more patience: extended


def test_a_run_that_never_improved_says_so(caplog):
    params = {"w": np.full(2, 0.5)}
    opt = dh.SGD(lambda p, x: anp.mean((p["w"] - x) ** 2), params, learning_rate=3.0)
    with caplog.at_level(logging.WARNING, logger="npdownhill"):
        result = opt.minimize([np.zeros((3, 2))], batch_size=0, validate_every=1, patience=2)
    assert result.best_epoch == 0 and not result.improved
    assert "put back to their starting values" in result.message
    assert any("no epoch improved on the start point" in m for m in messages(caplog))
    assert np.array_equal(params["w"], [0.5, 0.5])


# ---------------------------------------------------------------------------
# A9. changing hyperparameters between calls is applied to the state
# ---------------------------------------------------------------------------

def test_momentum_turned_off_and_on_starts_from_zero_velocity():
    p = np.array([1.0, -2.0])
    opt = dh.SGD(None, p, learning_rate=0.1, momentum=0.9)
    for _ in range(5):
        opt.apply(np.array([1.0, 1.0]))
    opt.set_hyperparameters(momentum=0.0)
    assert "velocity" not in opt.state
    opt.set_hyperparameters(momentum=0.9)
    assert np.array_equal(opt.state["velocity"], [0.0, 0.0])
    before = p.copy()
    opt.apply(np.array([1.0, 1.0]))
    np.testing.assert_allclose(p, before - 0.1, rtol=0, atol=1e-15)   # v = -lr g from zero


def test_a_new_rprop_initial_step_rescales_the_step_sizes():
    p = np.array([1.0, -2.0, 3.0])
    opt = dh.RProp(None, p, learning_rate=0.1)
    for g in ([1.0, 1.0, 1.0], [1.0, -1.0, 1.0]):
        opt.apply(np.array(g))
    sizes = opt.state["step_size"].copy()
    np.testing.assert_allclose(sizes, [0.12, 0.05, 0.12])   # grown by 1.2, shrunk by 0.5
    opt.set_hyperparameters(learning_rate=0.05)
    np.testing.assert_allclose(opt.state["step_size"], sizes / 2, rtol=1e-15)


def test_rprop_refuses_a_learning_rate_schedule():
    with pytest.raises(TypeError, match="RProp's learning_rate is the initial step size"):
        dh.RProp(None, np.zeros(2), learning_rate=schedules.cosine_decay(0.1, 10))


def test_a_new_initial_accumulator_shifts_adagrad_accumulator():
    p = np.array([1.0, -2.0])
    opt = dh.AdaGrad(None, p, initial_accumulator=0.1)
    opt.apply(np.array([2.0, 3.0]))
    np.testing.assert_allclose(opt.state["accumulator"], [4.1, 9.1])
    opt.set_hyperparameters(initial_accumulator=0.5)
    np.testing.assert_allclose(opt.state["accumulator"], [4.5, 9.5], rtol=1e-15)


# ---------------------------------------------------------------------------
# A13. a loss that cannot take the data, A14. the commonest autograd mistakes
# ---------------------------------------------------------------------------

def test_a_loss_that_cannot_take_the_batch_is_refused_before_the_first_step():
    params = fresh()
    with pytest.raises(TypeError, match=r"takes 2 positional arguments but will be called with "
                                        r"3 \(params \+ 2 arrays of the train data\)"):
        dh.minimize(lambda p, x: anp.sum(p["w"] * x), params, regression(), algo="sgd")
    assert np.array_equal(params["w"], np.zeros(3))
    with pytest.raises(TypeError, match=r"monitor 'err'"):
        dh.minimize(loss, params, regression(), algo="sgd", monitors={"err": lambda p: 0.0})


def test_an_autograd_mistake_in_the_loss_gets_a_hint():
    def copying(p, x, y):
        w = p["w"].copy()                    # not differentiable: a traced value has no copy
        return anp.mean((anp.dot(x, w) - y) ** 2)

    opt = dh.SGD(copying, fresh())
    with pytest.raises(AttributeError, match=r"no attribute 'copy'[\s\S]*Likely cause") as info:
        opt.step(*regression())
    assert isinstance(info.value.__cause__, AttributeError)   # the original is chained


# ---------------------------------------------------------------------------
# A15. state only for the options in use, A16 / B. history and the run result
# ---------------------------------------------------------------------------

def test_state_is_allocated_only_for_the_options_in_use():
    opt = dh.RMSProp(None, np.zeros(4))
    assert set(opt.state) == {"r"} and "state.f" not in opt.state_dict()
    opt.set_hyperparameters(centered=True)
    assert set(opt.state) == {"r", "f"} and np.array_equal(opt.state["f"], np.zeros(4))
    assert set(dh.SGD(None, np.zeros(4)).state) == set()
    assert set(dh.SGD(None, np.zeros(4), momentum=0.5).state) == {"velocity"}


def test_minimize_returns_a_result_that_unpacks_as_the_pair_and_carries_the_run():
    x, y = regression()
    params = fresh()
    result = dh.minimize(loss, params, [x, y], valid=regression(seed=1), algo="adam",
                         learning_rate=0.05, batch_size=16, validate_every=2, max_epochs=9,
                         rng=0)
    train, valid = result                                  # downhill's contract
    assert train is result.train and valid is result.valid and list(train)[0] == "loss"
    opt = result.optimizer
    assert result.stop == "max_epochs" and result.epochs == 9 and result.updates == 27
    h = result.history
    assert h["epoch"].tolist() == list(range(10))
    for key, values in opt.history_arrays().items():
        np.testing.assert_array_equal(values, h[key])
    validated = np.flatnonzero(h["validated"])
    best = validated[np.nanargmin(h["valid.loss"][validated])]
    assert result.best_epoch == best and result.best_loss == h["valid.loss"][best]
    assert result.best_valid["loss"] == result.best_loss
    assert valid["loss"] == h["valid.loss"][-1]           # the latest validation
    assert opt.evaluate(regression(seed=1))["loss"] == pytest.approx(result.best_loss, rel=1e-12)
    assert "Stopped at epoch 9" in str(result) and "RunResult(stop='max_epochs'" in repr(result)


# ---------------------------------------------------------------------------
# A18. the small ones
# ---------------------------------------------------------------------------

def test_torch_betas_spelling_sets_both_betas():
    opt = dh.Adam(None, np.zeros(2), betas=(0.8, 0.95))
    assert opt.hyper["beta1"] == 0.8 and opt.hyper["beta2"] == 0.95
    with pytest.raises(TypeError, match="beta1 given twice, as 'betas' and 'beta1'"):
        dh.Adam(None, np.zeros(2), betas=(0.8, 0.95), beta1=0.9)
    with pytest.raises(TypeError, match=r"betas must be a sequence of 2 numbers"):
        dh.Adam(None, np.zeros(2), betas=0.9)
    with pytest.raises(ValueError, match=r"beta2 must be in \[0, 1\); got 1.5"):
        dh.AdamW(None, np.zeros(2), betas=(0.9, 1.5))


def test_the_demo_script_names_itself_in_its_help(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [os.path.join("venv", "bin", "npdownhill-demo"), "--help"])
    with pytest.raises(SystemExit):
        demo_main(["--help"])
    assert capsys.readouterr().out.startswith("usage: npdownhill-demo")
    monkeypatch.setattr(sys, "argv", ["-m"])
    with pytest.raises(SystemExit):
        demo_main(["--help"])
    assert capsys.readouterr().out.startswith("usage: python -m npdownhill")


@pytest.mark.parametrize("option", ["max_epochs", "max_updates"])
def test_a_run_of_nothing_is_refused(option):
    with pytest.raises(ValueError, match=f"{option}=0.*would train nothing"):
        dh.minimize(loss, fresh(), regression(), algo="sgd", **{option: 0})


def test_rerunning_a_finished_run_logs_its_last_validation_before_the_end(tmp_path, caplog):
    path = str(tmp_path / "run.npz")
    dh.minimize(loss, fresh(), regression(), algo="sgd", max_epochs=3, checkpoint=path)
    with caplog.at_level(logging.INFO, logger="npdownhill"):
        dh.minimize(loss, fresh(), regression(), algo="sgd", max_epochs=3, checkpoint=path)
    lines = [m for m in messages(caplog, logging.INFO) if m.startswith(("validation", "SGD:"))]
    assert lines[-2].startswith("validation 3") and "run ended (max_epochs)" in lines[-1]
