"""Divergence: a non-finite loss, gradient or step never reaches the parameters.

``on_nonfinite='raise'`` (default) puts the best parameters back and raises
:class:`npdownhill.NonFiniteError` (a ``FloatingPointError``) naming the
epoch, the update and the leaves; ``'skip'`` skips that batch and counts it
in the ``skipped`` monitor; ``'stop'`` ends the run normally with the best
parameters. The single-step API (``step``, ``update``, ``apply``,
``get_updates``) changes nothing when it refuses.
"""

import os
import sys

import autograd.numpy as anp
import numpy as np
import pytest
from autograd.extend import defvjp, primitive

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _resume_run as R  # noqa: E402

import npdownhill as dh  # noqa: E402

BATCHES_PER_EPOCH = R.N_TRAIN // R.BATCH      # 4


@primitive
def _spike(x):
    """Value 0, gradient +inf: a finite loss whose gradient is not finite."""
    return 0.0 * x


defvjp(_spike, lambda ans, x: lambda g: np.full(np.shape(x), np.inf))


def _value(box):
    return getattr(box, "_value", box)


def faulty_loss(at, kind):
    """The regression loss, going non-finite in its ``at``-th training call.

    kind: 'nan_loss', 'inf_loss', 'nan_grad_w' (finite loss, NaN gradient in
    leaf 'w' only), 'inf_grad_b' (finite loss, infinite gradient in 'b').
    ``at`` may be a set of call numbers.
    """
    at = {at} if isinstance(at, int) else set(at)
    calls = [0]

    def loss(params, x, y):
        value = R.mse(params, x, y)
        if isinstance(params["w"], np.ndarray):      # not traced: a validation
            return value
        calls[0] += 1
        if calls[0] not in at:
            return value
        if kind == "nan_loss":
            return value + np.nan
        if kind == "inf_loss":
            return value + np.inf
        if kind == "nan_grad_w":   # sqrt(|w - w_now|^2) = 0, d/dw = 0/0
            return value + anp.sqrt(anp.sum((params["w"] - _value(params["w"])) ** 2))
        if kind == "inf_grad_b":
            return value + anp.sum(_spike(params["b"]))
        raise AssertionError(kind)

    return loss


def make(algo="adam", loss=None, **kwargs):
    params = R.fresh_params()
    kwargs.setdefault("rng", 3)
    opt = dh.build(algo, loss or R.mse, params, **kwargs)
    return opt, params


def copies(opt):
    state = {k: np.array(v, copy=True) for k, v in opt.state_dict().items()}
    return state, [leaf.copy() for leaf in opt.layout.arrays]


def assert_unchanged(opt, before, skip=("run.elapsed", "history.time")):
    state, leaves = copies(opt)
    for a, b in zip(leaves, before[1]):
        assert np.array_equal(a, b), "the parameters changed"
    keys = (set(state) | set(before[0])) - set(skip)
    differ = [k for k in sorted(keys) if k not in state or k not in before[0]
              or not np.array_equal(state[k], before[0][k],
                                    equal_nan=np.asarray(state[k]).dtype.kind == "f")]
    assert not differ, f"the optimizer changed: {differ}"


def assert_is_best(opt, params):
    best = opt.best_params
    assert best is not None
    for name in params:
        assert np.array_equal(params[name], best[name]), name
        assert np.isfinite(params[name]).all()


def load(path):
    """A checkpoint file's entries as Python values."""
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k].item() if f[k].ndim == 0 else f[k] for k in f.files}


# ---------------------------------------------------------------------------
# on_nonfinite='raise'
# ---------------------------------------------------------------------------

def armed_loss(kind):
    """``(loss, callback)``: the loss goes non-finite in the first training call
    after the callback has seen epoch 1, i.e. the first update of epoch 2."""
    failing = faulty_loss(1, kind)
    armed = [False]

    def loss(params, x, y):
        if armed[0] and not isinstance(params["w"], np.ndarray):
            armed[0] = False
            return failing(params, x, y)
        return R.mse(params, x, y)

    def callback(info):
        armed[0] = info.epoch == 1

    return loss, callback


@pytest.mark.parametrize("kind, what, leaves", [
    ("nan_loss", "loss", []),
    ("inf_loss", "loss", []),
    ("nan_grad_w", "gradient", ["w"]),
    ("inf_grad_b", "gradient", ["b"]),
])
@pytest.mark.parametrize("algo", ["sgd", "adam", "esgd"])
def test_raise_restores_best_and_names_epoch_update_leaves(algo, kind, what, leaves):
    loss, callback = armed_loss(kind)
    opt, params = make(algo, loss, learning_rate=0.01)
    train, valid = R.problem()
    with pytest.raises(dh.NonFiniteError) as info:
        opt.minimize(train, valid, batch_size=R.BATCH, validate_every=1, max_epochs=5,
                     callback=callback)
    err = info.value
    failing_update = BATCHES_PER_EPOCH + 1
    assert isinstance(err, FloatingPointError)
    assert err.what == what
    assert err.leaves == leaves
    assert err.epoch == 2
    assert err.update == failing_update - 1         # updates applied before the failing one
    message = str(err)
    assert "epoch 2" in message and f"update {failing_update}" in message, message
    for leaf in leaves:
        assert repr(leaf) in message, message
    assert "restored" in message
    assert opt.updates == failing_update - 1
    assert_is_best(opt, params)


def test_raise_with_checkpoint_keeps_the_last_good_file(tmp_path):
    path = tmp_path / "run.npz"
    opt, params = make("adam", faulty_loss(2 * BATCHES_PER_EPOCH + 3, "nan_loss"))
    train, valid = R.problem()
    with pytest.raises(dh.NonFiniteError):
        opt.minimize(train, valid, batch_size=R.BATCH, max_epochs=5, checkpoint=path)
    other, _ = make("adam")
    other.load_state(path)
    assert load(path)["run.epoch"] == 2
    assert all(np.isfinite(leaf).all() for leaf in other.layout.arrays)


def test_nan_validation_is_no_improvement_and_no_error():
    calls = [0]

    def loss(params, x, y):
        value = R.mse(params, x, y)
        if isinstance(params["w"], np.ndarray):
            calls[0] += 1
            if calls[0] in (4, 5, 6):            # every batch of the second validation
                return value + np.nan
        return value

    opt, params = make("sgd", loss)
    train, valid = R.problem()
    opt.minimize(train, valid, batch_size=R.BATCH, validate_every=1, max_epochs=2)
    assert np.isnan(opt.history[1]["valid"]["loss"])      # history[0] is the start point
    assert np.isfinite(opt.best_loss)
    assert_is_best(opt, params)


# ---------------------------------------------------------------------------
# on_nonfinite='skip'
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["nan_loss", "nan_grad_w", "inf_grad_b"])
def test_skip_skips_and_counts(kind):
    bad = {2, BATCHES_PER_EPOCH + 1, BATCHES_PER_EPOCH + 4}
    opt, params = make("adam", faulty_loss(bad, kind))
    train, valid = R.problem()
    history = []
    for train_monitors, _ in opt.iterate(train, valid, batch_size=R.BATCH, max_epochs=3,
                                         on_nonfinite="skip"):
        history.append(train_monitors)
    assert [m["skipped"] for m in history] == [1, 2, 0]
    assert all(np.isfinite(m["loss"]) for m in history)
    assert opt.updates == 3 * BATCHES_PER_EPOCH - 3
    assert all(np.isfinite(leaf).all() for leaf in params.values())


def test_skip_leaves_the_optimizer_as_if_the_batch_was_not_there():
    """Skipping a batch = the same updates as a run that never saw that batch."""
    x, y = R.problem()[0]
    skipping, p1 = make("adam", faulty_loss(3, "nan_grad_w"), gradient_noise_scale=0.01)
    plain, p2 = make("adam", gradient_noise_scale=0.01)
    for i in range(6):
        batch = (x[8 * i:8 * i + 8], y[8 * i:8 * i + 8])
        try:
            skipping.step(*batch)
        except dh.NonFiniteError:
            continue
        plain.step(*batch)
    for name in p1:
        assert np.array_equal(p1[name], p2[name])
    s1, s2 = skipping.state_dict(), plain.state_dict()
    for key in s1:
        if key.startswith("state.") or key.startswith("rng.") or key == "updates":
            assert np.array_equal(s1[key], s2[key]), key


def test_skip_monitor_is_saved_and_resumed(tmp_path):
    path = tmp_path / "skip.npz"
    bad = {BATCHES_PER_EPOCH + 1}
    opt, params = make("sgd", faulty_loss(bad, "nan_loss"))
    train, valid = R.problem()
    opt.minimize(train, valid, batch_size=R.BATCH, max_updates=BATCHES_PER_EPOCH + 2,
                 on_nonfinite="skip", checkpoint=path)
    assert opt.run.state.partial.skipped == 1
    saved = load(path)
    assert saved["run.partial.skipped"] == 1 and saved["run.partial.batches"] == 3


# ---------------------------------------------------------------------------
# on_nonfinite='stop'
# ---------------------------------------------------------------------------

def test_stop_ends_normally_with_the_best_parameters(tmp_path):
    path = tmp_path / "stop.npz"
    opt, params = make("rmsprop", faulty_loss(BATCHES_PER_EPOCH + 3, "inf_loss"))
    train, valid = R.problem()
    train_monitors, valid_monitors = opt.minimize(train, valid, batch_size=R.BATCH,
                                                  validate_every=1, max_epochs=5,
                                                  on_nonfinite="stop", checkpoint=path)
    assert "loss" in valid_monitors
    assert opt.run.state.stop == "nonfinite"
    assert opt.updates == BATCHES_PER_EPOCH + 2
    assert_is_best(opt, params)
    saved = load(path)
    assert saved["run.stop"] == "nonfinite" and saved["updates"] == BATCHES_PER_EPOCH + 2


def test_a_run_stopped_on_a_nonfinite_value_can_be_continued(tmp_path):
    """The checkpoint of a run that ended with on_nonfinite='stop' is not a dead end:
    the same command with a loss that behaves now continues it to max_epochs."""
    path = tmp_path / "stop.npz"
    opt, params = make("rmsprop", faulty_loss(BATCHES_PER_EPOCH + 3, "inf_loss"))
    train, valid = R.problem()
    opt.minimize(train, valid, batch_size=R.BATCH, validate_every=1, max_epochs=5,
                 on_nonfinite="stop", checkpoint=path)
    assert opt.updates == BATCHES_PER_EPOCH + 2
    opt2, params2 = make("rmsprop", R.mse)
    result = opt2.minimize(train, valid, batch_size=R.BATCH, validate_every=1, max_epochs=5,
                           on_nonfinite="stop", checkpoint=path)
    assert result.stop == "max_epochs" and result.epochs == 5
    # the failing batch was used up (not applied): 5 epochs of batches minus that one
    assert opt2.updates == 5 * BATCHES_PER_EPOCH - 1
    assert_is_best(opt2, params2)


def test_on_nonfinite_is_validated():
    opt, params = make("sgd")
    train, valid = R.problem()
    with pytest.raises(ValueError, match="on_nonfinite"):
        opt.minimize(train, valid, on_nonfinite="ignore")
    with pytest.raises(ValueError, match="on_nonfinite"):
        dh.minimize(R.mse, params, train, valid, on_nonfinite=None)
    assert params["w"].tolist() == [0, 0, 0]


# ---------------------------------------------------------------------------
# the single-step API
# ---------------------------------------------------------------------------

def _noise(algo):
    """Gradient noise where the algorithm takes it (not the quasi-Newton rules)."""
    return {} if dh.registry.lookup(algo).full_batch else {"gradient_noise_scale": 0.01}


@pytest.mark.parametrize("algo", dh.algorithms())
def test_step_with_non_finite_loss_or_gradient_changes_nothing(algo):
    x, y = R.problem()[0]
    for kind in ("nan_loss", "inf_loss", "nan_grad_w", "inf_grad_b"):
        failing = faulty_loss(1, kind)
        armed = [False]

        def loss(params, *batch):
            if armed[0]:
                armed[0] = False
                return failing(params, *batch)
            return R.mse(params, *batch)

        opt, params = make(algo, loss, **_noise(algo))
        opt.step(x[:8], y[:8])
        opt.step(x[8:16], y[8:16])
        before = copies(opt)
        armed[0] = True
        with pytest.raises(dh.NonFiniteError) as info:
            opt.step(x[16:24], y[16:24])
        assert info.value.update == 2 and "update 3" in str(info.value)
        assert_unchanged(opt, before)
        opt.step(x[16:24], y[16:24])          # and it carries on
        assert opt.updates == 3


@pytest.mark.parametrize("algo", [a for a in dh.algorithms()
                                  if not dh.registry.lookup(a).full_batch])
@pytest.mark.parametrize("method", ["update", "apply", "get_updates"])
def test_non_finite_gradients_change_nothing(algo, method):
    opt, params = make(algo, gradient_noise_scale=0.01)
    batch = tuple(a[:8] for a in R.problem()[0])
    opt.step(*batch)
    before = copies(opt)
    for bad in ({"w": np.array([0.0, np.nan, 0.0]), "b": np.zeros(())},
                {"w": np.zeros(3), "b": np.array(-np.inf)},
                {"w": np.full(3, np.inf), "b": np.array(np.nan)}):
        with pytest.raises(dh.NonFiniteError) as info:
            getattr(opt, method)(bad, *batch)
        names = [n for n in ("w", "b") if not np.isfinite(bad[n]).all()]
        assert info.value.leaves == names
        assert info.value.what == "gradient"
        for name in names:
            assert repr(name) in str(info.value)
        assert_unchanged(opt, before)


def _overflowing_momentum(algo):
    """A huge learning rate: the rule's output overflows into the velocity."""
    opt, params = make(algo, learning_rate=1e300, **({"momentum": 0.5} if algo == "sgd" else {}))
    grads = {"w": np.array([1e10, 0.0, 0.0]), "b": np.array(0.0)}
    return opt, params, lambda: opt.apply(grads)


def _esgd_nan_curvature():
    """|w|^1.5 at w = 0: the gradient is 0 but the Hessian-vector product is NaN."""
    opt, params = make("esgd", lambda p: anp.sum(anp.abs(p["w"]) ** 1.5) + p["b"] ** 2)
    return opt, params, opt.step


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("case", ["momentum", "nag", "sgd", "esgd"])
def test_non_finite_step_from_a_finite_gradient_changes_nothing(case):
    """A step that is not finite although the gradient is (an overflowing learning
    rate, a NaN curvature estimate) is refused, and the optimizer's state (momentum
    velocity, ESGD's curvature, the update count) is left as it was: 'skip' must
    skip the whole update, not leave the state poisoned for every later batch."""
    opt, params, do_step = _esgd_nan_curvature() if case == "esgd" else _overflowing_momentum(case)
    before = copies(opt)
    with pytest.raises(dh.NonFiniteError) as info:
        do_step()
    assert info.value.what == "step"
    assert info.value.leaves == ["w"]
    # (the random generator may advance: ESGD's draw happens inside the rule)
    assert_unchanged(opt, before, skip=[k for k in before[0] if k.startswith("rng.")])
