"""Checkpoints: state dicts, atomic files that never execute code, exact resume.

The requirements proven here:

1. ``state_dict()`` is a plain dict of arrays / numbers / strings holding
   everything needed to continue; ``load_state_dict`` restores it and refuses
   a dict from another algorithm or another tree with a ``ValueError`` that
   says what differs, changing nothing.
2. ``save_state`` is atomic (a process killed at any stage of a save leaves a
   loadable file and at most one stray temporary file: test_checkpoint_kill.py
   kills writers at every stage); ``load_state``
   never unpickles and refuses truncated, foreign and pickled files with a
   ``ValueError``, changing nothing.
3. ``minimize(..., checkpoint=...)`` resumes a run in a new process so that it
   ends bit-identical to the run that never stopped, for every algorithm,
   whether it was stopped by ``max_epochs``, ``max_updates`` or Ctrl-C.
"""

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _resume_run as R  # noqa: E402
import reference as REF  # noqa: E402

import npdownhill as dh  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESUME_SCRIPT = os.path.join(HERE, "_resume_run.py")
WRITER_SCRIPT = os.path.join(HERE, "_checkpoint_writer.py")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def full_batch(algo):
    return dh.registry.lookup(algo).full_batch


def pipeline(algo, **kwargs):
    """``kwargs`` (gradient noise, momentum...) unless the algorithm is a quasi-Newton
    rule, which refuses the gradient pipeline's options; without momentum for the rules
    that refuse it (the schedule-free rules)."""
    if full_batch(algo):
        return {}
    if REF.record(algo).takes_momentum:
        return kwargs
    return {k: v for k, v in kwargs.items() if k not in ("momentum", "nesterov")}


def trained(algo="adam", steps=3, **kwargs):
    """An optimizer on the resume problem after a short run of ``steps`` updates
    (so it has state buffers, best parameters, run counters and a history)."""
    train, valid = R.problem()
    kwargs.setdefault("rng", 7)
    opt = dh.build(algo, R.mse, R.fresh_params(), **kwargs)
    opt.minimize(train, valid, batch_size=0 if full_batch(algo) else 8, max_updates=steps)
    return opt


def snapshot(opt):
    """Copies of everything an optimizer holds, to check that nothing changed."""
    state = {k: np.array(v, copy=True) for k, v in opt.state_dict().items()}
    params = {name: leaf.copy() for name, leaf in zip(opt.layout.names, opt.layout.arrays)}
    return state, params


def same_arrays(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    return a.shape == b.shape and np.array_equal(a, b)


def assert_same_dicts(a, b, skip=()):
    keys_a = set(a) - set(skip)
    keys_b = set(b) - set(skip)
    assert keys_a == keys_b, f"keys differ: {sorted(keys_a ^ keys_b)}"
    differ = [k for k in sorted(keys_a) if not same_arrays(a[k], b[k])]
    assert not differ, f"entries differ: {differ}"


def assert_unchanged(opt, before):
    state, params = snapshot(opt)
    assert_same_dicts(state, before[0], skip=("run.elapsed", "history.time"))
    for name in params:
        assert np.array_equal(params[name], before[1][name]), f"param {name!r} changed"


def is_plain(value):
    if isinstance(value, (bool, int, float, str, np.generic)):
        return True
    return isinstance(value, np.ndarray) and value.dtype.kind != "O"


# ---------------------------------------------------------------------------
# 1. state dicts
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("algo", dh.algorithms())
def test_state_dict_is_plain_and_complete(algo):
    opt = trained(algo, **pipeline(algo, gradient_noise_scale=0.01))
    state = opt.state_dict()
    bad = {k: type(v).__name__ for k, v in state.items() if not is_plain(v)}
    assert not bad, f"values that are not plain arrays/numbers/strings: {bad}"
    assert str(state["algorithm"]) == algo
    assert int(state["updates"]) == 3
    assert np.array_equal(state["params"], opt.layout.read(opt.layout.empty()))
    assert not any(k.startswith(("run.", "history.", "best")) for k in state), \
        "the engine's state holds the run's"
    for name in opt.state:
        assert np.array_equal(state[f"state.{name}"], opt.state[name])
    for name in type(opt)._hypers:
        assert f"hyper_kind.{name}" in state, name
    assert any(k.startswith("rng.") for k in state), "no random generator state"
    # it survives np.savez / np.load without pickle
    buf = io.BytesIO()
    np.savez(buf, **state)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as f:
        assert set(f.files) == set(state)


def test_checkpoint_holds_run_counters_best_params_and_dataset_positions(tmp_path):
    train, valid = R.problem()
    params = R.fresh_params()
    opt = dh.build("adam", R.mse, params, rng=3)
    path = tmp_path / "run.npz"
    opt.minimize(train, valid, batch_size=16, max_epochs=2, validate_every=1,
                 patience=1, checkpoint=path)
    state = _load(path)
    for key in ("run.epoch", "run.updates", "run.bad", "run.partial.batches", "run.best",
                "run.best_loss", "run.best_epoch", "history.epoch", "content"):
        assert key in state, key
    assert int(state["run.epoch"]) == 2 and int(state["run.updates"]) == 8
    assert float(state["run.best_loss"]) == opt.best_loss
    assert np.array_equal(state["run.best"], opt.run.best)
    assert state["history.epoch"].tolist() == [0, 1, 2]
    assert {"data.train.position", "data.train.permutation", "data.valid.position"} <= set(state)
    assert any(k.startswith("data.train.rng.") for k in state)


@pytest.mark.parametrize("algo", dh.algorithms())
def test_load_state_dict_round_trip_continues_identically(algo):
    momentum = pipeline(algo, momentum=0.5 if algo != "nag" else 0.9)
    a = trained(algo, **pipeline(algo, gradient_noise_scale=0.01), **momentum)
    state = a.state_dict()
    b = dh.build(algo, R.mse, R.fresh_params(), rng=123, **momentum)
    b.load_state_dict(state)
    assert_same_dicts(a.state_dict(), b.state_dict())
    (x, y), _ = R.problem()
    for i in range(3):
        a.step(x[i::4], y[i::4])
        b.step(x[i::4], y[i::4])
    assert_same_dicts(a.state_dict(), b.state_dict())
    for leaf_a, leaf_b in zip(a.layout.arrays, b.layout.arrays):
        assert np.array_equal(leaf_a, leaf_b)


def test_load_state_dict_refuses_another_algorithm():
    state = trained("adam").state_dict()
    opt = trained("rmsprop")
    before = snapshot(opt)
    with pytest.raises(ValueError, match="'adam'.*'rmsprop'"):
        opt.load_state_dict(state)
    assert_unchanged(opt, before)


def _with_params(params, algo="adam"):
    return dh.build(algo, R.mse, params, rng=0)


@pytest.mark.parametrize("other, words", [
    ({"weights": np.zeros(3), "b": np.zeros(())}, ["missing", "'w'", "unexpected", "'weights'"]),
    ({"w": np.zeros(3)}, ["missing", "'b'"]),
    ({"b": np.zeros(()), "w": np.zeros(3)}, ["order"]),
    ({"w": np.zeros(4), "b": np.zeros(())}, ["'w'", "(4,)", "(3,)"]),
    ({"w": np.zeros(3, np.float32), "b": np.zeros((), np.float32)}, ["float32", "float64"]),
])
def test_load_state_dict_refuses_another_tree(other, words):
    state = trained("adam").state_dict()
    opt = _with_params(other)
    before = snapshot(opt)
    with pytest.raises(ValueError) as info:
        opt.load_state_dict(state)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert_unchanged(opt, before)


def test_load_state_dict_refuses_non_dicts_and_foreign_dicts():
    opt = trained("sgd")
    before = snapshot(opt)
    with pytest.raises(TypeError, match="dict"):
        opt.load_state_dict([1, 2])
    with pytest.raises(ValueError, match="npdownhill"):
        opt.load_state_dict({})
    with pytest.raises(ValueError, match="npdownhill"):
        opt.load_state_dict({"params": np.zeros(4)})
    assert_unchanged(opt, before)


def test_load_state_dict_restores_hyperparameters_without_momentum_buffer():
    # saved without momentum (no velocity buffer), loaded into one built with momentum
    state = trained("adam").state_dict()
    opt = dh.build("adam", R.mse, R.fresh_params(), momentum=0.9)
    opt.load_state_dict(state)
    assert opt.hyper["momentum"] == 0.0
    assert_same_dicts(opt.state_dict(), state, skip=[k for k in state if k.startswith("rng.")])
    # momentum switched off after use: the velocity is kept and round-trips
    a = trained("adam", momentum=0.9)
    a.set_hyperparameters(momentum=0.0)
    b = dh.build("adam", R.mse, R.fresh_params())
    b.load_state_dict(a.state_dict())
    assert_same_dicts(b.state_dict(), a.state_dict())


def test_load_state_dict_is_all_or_nothing_with_schedules():
    a = trained("adam", learning_rate=dh.schedules.reduce_on_plateau(0.1), beta1=0.5)
    state = a.state_dict()
    b = dh.build("adam", R.mse, R.fresh_params(),
                 learning_rate=dh.schedules.exponential_decay(0.1, 0.5, 10))
    before = snapshot(b)
    with pytest.raises(ValueError):
        b.load_state_dict(state)
    assert b.hyper["beta1"] == 0.9
    assert_unchanged(b, before)


def test_load_state_dict_restores_schedule_state():
    a = trained("sgd", learning_rate=dh.schedules.reduce_on_plateau(0.1, patience=0, factor=0.5))
    for loss in (1.0, 2.0, 3.0):
        a.hyper["learning_rate"].on_validation(loss)
    sched = dh.schedules.reduce_on_plateau(0.1, patience=0, factor=0.5)
    b = dh.build("sgd", R.mse, R.fresh_params(), learning_rate=sched)
    b.load_state_dict(a.state_dict())
    assert sched.state_dict() == a.hyper["learning_rate"].state_dict()
    assert sched(0) == 0.025


# A checkpoint whose entries were damaged one at a time: a clean refusal, nothing changed.
_STATE = trained("adam", momentum=0.5,
                 learning_rate=dh.schedules.reduce_on_plateau(0.1)).state_dict()
_DAMAGE = st.sampled_from([
    "delete", np.array("garbage"), np.array(["a", "b"]), np.zeros(0), np.zeros((2, 2)),
    np.array(np.nan), np.array(-1), np.array(1.5), np.array([1, 2, 3]), np.array(True),
    np.zeros(4, dtype=np.complex128), np.array(2 ** 62), np.array("-5"),
])


@settings(max_examples=100, deadline=None)
@given(key=st.sampled_from(sorted(_STATE)), damage=_DAMAGE)
def test_damaged_state_is_refused_cleanly(key, damage):
    state = dict(_STATE)
    if isinstance(damage, str):
        del state[key]
    else:
        state[key] = damage
    opt = dh.build("adam", R.mse, R.fresh_params(), momentum=0.5,
                   learning_rate=dh.schedules.reduce_on_plateau(0.1))
    opt.step(*[a[:8] for a in R.problem()[0]])
    before = snapshot(opt)
    sched_before = opt.hyper["learning_rate"].state_dict()
    try:
        opt.load_state_dict(state)
    except ValueError as err:
        assert str(err)
        assert_unchanged(opt, before)
        assert opt.hyper["learning_rate"].state_dict() == sched_before
    else:
        # accepted: then it must be usable, with finite parameters and a valid state
        opt.step(*[a[:8] for a in R.problem()[0]])
        assert all(np.isfinite(leaf).all() for leaf in opt.layout.arrays)


# ---------------------------------------------------------------------------
# 2. files: atomic writes, never any code execution
# ---------------------------------------------------------------------------

def test_save_state_writes_one_file_and_no_temporary(tmp_path):
    opt = trained("adam")
    path = tmp_path / "state.npz"
    opt.save_state(path)
    opt.step(*[a[:8] for a in R.problem()[0]])
    opt.save_state(str(path))      # overwrite, str path
    assert sorted(os.listdir(tmp_path)) == ["state.npz"]
    other = dh.build("adam", R.mse, R.fresh_params())
    other.load_state(path)
    assert_same_dicts(other.state_dict(), opt.state_dict())


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    opt = trained("adam")
    path = tmp_path / "state.npz"
    opt.save_state(path)
    old = path.read_bytes()
    opt.step(*[a[:8] for a in R.problem()[0]])

    real_savez = np.savez

    def crash_half_way(f, **arrays):     # writes part of the archive, then fails
        real_savez(f, **dict(list(arrays.items())[:3]))
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash_half_way)
    with pytest.raises(OSError, match="disk full"):
        opt.save_state(path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["state.npz"]


class _Evil:
    """Creates a marker file if it is ever unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_payload_is_never_run_and_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    # positive control: this payload does run when unpickled
    pickle.loads(pickle.dumps(_Evil(str(marker)))).close()
    assert marker.exists()
    marker.unlink()

    opt = trained("adam")
    before = snapshot(opt)
    evil = np.empty(1, dtype=object)
    evil[0] = _Evil(str(marker))
    files = {
        "payload.npz": dict(format=np.array("npdownhill-optimizer-state"), evil=evil),
        "payload_in_marker.npz": dict(format=evil),
        "payload_with_real_state.npz": {**opt.state_dict(), "zzz": evil},
    }
    for name, arrays in files.items():
        path = tmp_path / name
        np.savez(path, **arrays)
        with pytest.raises(ValueError) as info:
            opt.load_state(path)
        assert "pickle" in str(info.value), str(info.value)
        assert not marker.exists(), f"{name}: the pickled payload was executed"
        assert_unchanged(opt, before)
    # a bare pickle file, and an .npy of objects
    with open(tmp_path / "raw.pkl", "wb") as f:
        pickle.dump({"format": "npdownhill-optimizer-state", "x": _Evil(str(marker))}, f)
    np.save(tmp_path / "objects.npy", evil, allow_pickle=True)
    for name in ("raw.pkl", "objects.npy"):
        with pytest.raises(ValueError):
            opt.load_state(tmp_path / name)
        assert not marker.exists(), f"{name}: the pickled payload was executed"
    assert_unchanged(opt, before)


def test_truncated_files_are_refused(tmp_path):
    opt = trained("adam")
    path = tmp_path / "good.npz"
    opt.save_state(path)
    data = path.read_bytes()
    target = trained("adam", steps=1)
    before = snapshot(target)
    cuts = sorted({0, 1, 10, 100, len(data) // 3, len(data) // 2, len(data) - 100,
                   len(data) - 22, len(data) - 1})
    for cut in cuts:
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError) as info:
            target.load_state(bad)
        assert "load_state" in str(info.value)
        assert_unchanged(target, before)


def test_corrupted_bytes_are_refused_or_detected(tmp_path):
    opt = trained("adam")
    path = tmp_path / "good.npz"
    opt.save_state(path)
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    target = trained("adam", steps=1)
    before = snapshot(target)
    for i in range(40):
        damaged = bytearray(data)
        pos = int(rng.integers(len(damaged)))
        damaged[pos] ^= 0xFF
        bad = tmp_path / f"flip{i}.npz"
        bad.write_bytes(bytes(damaged))
        try:
            target.load_state(bad)
        except ValueError as err:
            assert str(err)
            assert_unchanged(target, before)
        else:   # a flipped byte the zip CRC cannot see (headers): must still be a valid state
            before = snapshot(target)


def test_foreign_files_are_refused(tmp_path):
    opt = trained("adam")
    before = snapshot(opt)
    cases = {}
    cases["random.npz"] = np.random.default_rng(1).bytes(5000)
    cases["empty.npz"] = b""
    cases["text.npz"] = b"hello, this is not a checkpoint\n"
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    np.save(tmp_path / "plain.npy", np.zeros(3))
    np.savez(tmp_path / "nomarker.npz", params=np.zeros(4), updates=np.array(3))
    np.savez(tmp_path / "othermarker.npz", format=np.array("something-else"))
    np.savez(tmp_path / "bytesmarker.npz", format=np.array(b"npdownhill-optimizer-state"))
    with zipfile.ZipFile(tmp_path / "rawmember.npz", "w") as z:   # a member that is no .npy
        z.writestr("format.npy", b"npdownhill-optimizer-state")
    with zipfile.ZipFile(tmp_path / "rawextra.npz", "w") as z:
        for key, value in opt.state_dict().items():
            buf = io.BytesIO()
            np.save(buf, np.asarray(value))
            z.writestr(f"{key}.npy", buf.getvalue())
        z.writestr("extra", b"raw bytes")
    names = sorted(os.listdir(tmp_path))
    for name in names:
        with pytest.raises(ValueError) as info:
            opt.load_state(tmp_path / name)
        assert "load_state" in str(info.value), (name, str(info.value))
        assert_unchanged(opt, before)
    with pytest.raises(FileNotFoundError):
        opt.load_state(tmp_path / "missing.npz")
    assert_unchanged(opt, before)


def _npy_with_shape_in_header(array, fake_shape):
    """An .npy file whose header claims ``fake_shape`` but which holds ``array``'s data."""
    buf = io.BytesIO()
    np.save(buf, array)
    raw = buf.getvalue()
    length = struct.unpack("<H", raw[8:10])[0]
    header = raw[10:10 + length].decode("latin1").replace(str(array.shape), str(fake_shape))
    header = header.rstrip().ljust(length - 1) + "\n"
    assert len(header) == length
    return raw[:10] + header.encode("latin1") + raw[10 + length:]


def test_header_claiming_a_huge_array_is_refused(tmp_path):
    opt = trained("adam")
    before = snapshot(opt)
    for shape in ((10 ** 13,), (10 ** 6, 10 ** 6), (10 ** 9,)):
        path = tmp_path / "huge.npz"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("format.npy", _npy_with_shape_in_header(np.zeros(3), shape))
        with pytest.raises(ValueError, match="load_state"):
            opt.load_state(path)
        assert_unchanged(opt, before)


def test_plain_npy_message(tmp_path):
    np.save(tmp_path / "plain.npy", np.zeros(3))
    with pytest.raises(ValueError, match="not an npdownhill state"):
        trained("sgd").load_state(tmp_path / "plain.npy")


def test_checkpoint_of_another_run_is_refused_by_minimize(tmp_path):
    train, valid = R.problem()
    path = tmp_path / "other.npz"
    dh.minimize(R.mse, R.fresh_params(), train, valid, algo="rmsprop", max_epochs=1,
                checkpoint=path)
    old = path.read_bytes()
    for algo, words in (("adam", ["'rmsprop'", "'adam'"]), ("RMSProp", ["'b'"])):
        params = R.fresh_params()
        params["w"][:] = [1.0, 2.0, 3.0]
        if algo == "RMSProp":
            params = {"w": params["w"]}          # another tree
        with pytest.raises(ValueError) as info:
            dh.minimize(R.mse, params, train, valid, algo=algo, checkpoint=path, max_epochs=2)
        for word in words:
            assert word in str(info.value), str(info.value)
        assert np.array_equal(params["w"], [1.0, 2.0, 3.0])
        assert path.read_bytes() == old
    # a bare optimizer state is not a run checkpoint: refused, saying so
    trained("rmsprop").save_state(path)
    with pytest.raises(ValueError, match="optimizer state written by save_state, not a run "
                                         "checkpoint"):
        dh.minimize(R.mse, R.fresh_params(), train, valid, algo="rmsprop", checkpoint=path)


# ---------------------------------------------------------------------------
# 3. resume in a new process, bit-identical
# ---------------------------------------------------------------------------

def _spawn(config, tmp_path, tag):
    cfg = tmp_path / f"{tag}.json"
    cfg.write_text(json.dumps(config))
    with open(tmp_path / f"{tag}.err", "w") as err:     # a file: a full pipe cannot block
        proc = subprocess.Popen([sys.executable, RESUME_SCRIPT, str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=err)
    proc.err_path = tmp_path / f"{tag}.err"
    return proc


def _wait(proc):
    proc.wait(timeout=120)
    assert proc.returncode == 0, f"leg failed:\n{proc.err_path.read_text()[-3000:]}"


def _legs(tmp_path, tag, algo, options, first, second, interrupt=None):
    """Config pairs (first leg, resumed leg) sharing one checkpoint file."""
    ckpt = str(tmp_path / f"{tag}.ckpt.npz")
    out = str(tmp_path / f"{tag}.out.npz")
    a = {"algo": algo, "out": out + ".1.npz", "interrupt": interrupt,
         "options": {**options, **first, "checkpoint": ckpt}}
    b = {"algo": algo, "out": out, "options": {**options, **second, "checkpoint": ckpt}}
    return a, b


def _reference(algo, options):
    params, opt = R.run({"algo": algo, "options": options})
    return R.result_arrays(params, opt)


def _load(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _check_identical(resumed, reference, label):
    for key in ("param.w", "param.b"):
        assert np.array_equal(resumed[key], reference[key]), \
            f"{label}: {key} differs: {resumed[key]} vs {reference[key]}"
    assert_same_dicts(resumed, reference)


def _run_resume_cases(tmp_path, cases):
    """cases: {tag: (algo, options, first, second, interrupt)}; check each against a
    reference run with ``options + second`` in this process, legs in new processes."""
    legs = {tag: _legs(tmp_path, tag, *case) for tag, case in cases.items()}
    firsts = {tag: _spawn(a, tmp_path, tag + ".1") for tag, (a, _) in legs.items()}
    references = {tag: _reference(algo, {**options, **second})
                  for tag, (algo, options, first, second, _) in cases.items()}
    seconds = {}
    for tag, proc in firsts.items():
        _wait(proc)
        if not cases[tag][4]:   # (a Ctrl-C in the first epoch may come before any save)
            assert os.path.exists(legs[tag][0]["options"]["checkpoint"]), f"{tag}: no checkpoint"
        seconds[tag] = _spawn(legs[tag][1], tmp_path, tag + ".2")
    failures = []
    for tag, proc in seconds.items():
        _wait(proc)
        try:
            _check_identical(_load(legs[tag][1]["out"]), references[tag], tag)
        except AssertionError as err:
            failures.append(f"{tag}: {str(err).splitlines()[0]}")
    assert not failures, "resumed runs that differ:\n" + "\n".join(failures)
    return legs


BASE = {"rng": 11, "validate_every": 2, "patience": 50}


def test_resume_every_algorithm_in_a_new_process(tmp_path):
    """N epochs, then a new process for M more == N + M epochs in one go."""
    cases = {}
    for algo in dh.algorithms():
        options = dict(BASE)
        if algo in ("sgd", "adam", "esgd"):
            options["gradient_noise_scale"] = 0.01
        if algo == "rprop":
            options["learning_rate"] = 1e-3
        cases[algo] = (algo, options, {"max_epochs": 3}, {"max_epochs": 5}, None)
    _run_resume_cases(tmp_path, cases)


def test_resume_after_max_updates_mid_epoch(tmp_path):
    options = {**BASE, "gradient_noise_scale": 0.01, "momentum": 0.5}
    cases = {
        "adam_upd": ("adam", options, {"max_updates": 6}, {"max_updates": 15}, None),
        "esgd_upd": ("esgd", options, {"max_updates": 3}, {"max_updates": 9}, None),
        # max_updates first, then a max_epochs total
        "sgd_upd": ("sgd", options, {"max_updates": 5}, {"max_epochs": 4}, None),
    }
    _run_resume_cases(tmp_path, cases)


def test_resume_with_plateau_schedule_and_noise(tmp_path):
    plateau = {"reduce_on_plateau": {"initial": 0.05, "factor": 0.5, "patience": 0}}
    options = {"rng": 5, "validate_every": 1, "patience": 50, "learning_rate": plateau,
               "gradient_noise_scale": 0.01}
    cases = {
        "plateau_sgd": ("sgd", options, {"max_epochs": 3}, {"max_epochs": 7}, None),
        "plateau_rms": ("rmsprop", options, {"max_epochs": 4}, {"max_epochs": 7}, None),
    }
    _run_resume_cases(tmp_path, cases)


def test_resume_after_ctrl_c(tmp_path):
    """Stopped by Ctrl-C at various moments, resumed with the same command."""
    options = {**BASE, "gradient_noise_scale": 0.01, "validate_every": 2}
    total = {"max_epochs": 5}
    # a schedule told every validation: a validation counted twice would show
    plateau = {**options, "learning_rate": {"reduce_on_plateau": {
        "initial": 0.05, "factor": 0.5, "patience": 0}}}
    cases = {
        # a deferred SIGINT from a monitor: the driver stops after that batch
        "sigint_batch2": ("adam", options, total, total, {"how": "sigint_in_monitor", "at": 2}),
        "sigint_batch7": ("esgd", options, total, total, {"how": "sigint_in_monitor", "at": 7}),
        # KeyboardInterrupt inside a training step (second Ctrl-C, or no deferral)
        "raise_step3": ("adam", options, total, total, {"how": "raise_in_train_loss", "at": 3}),
        "raise_step6": ("momentum", options, total, total,
                        {"how": "raise_in_train_loss", "at": 6}),
        # during validations: the first one, and the one after epoch 2
        "sigint_valid1": ("sgd", plateau, total, total,
                          {"how": "sigint_in_valid_loss", "at": 1}),
        "raise_valid5": ("adam", options, total, total,
                         {"how": "raise_in_valid_loss", "at": 5}),
        "sigint_valid5": ("rmsprop", options, total, total,
                          {"how": "sigint_in_valid_loss", "at": 5}),
        # in the end-of-run validation after a mid-epoch max_updates stop (plain calls
        # 1-3 are the first validation): the state saved at the stop must stand
        "raise_end_valid": ("sgd", options, {"max_updates": 6}, {"max_updates": 15},
                            {"how": "raise_in_valid_loss", "at": 4}),
    }
    _run_resume_cases(tmp_path, cases)


def test_ctrl_c_saves_the_checkpoint_at_once(tmp_path):
    """A deferred Ctrl-C in the 2nd batch of the 1st epoch saves that point, although
    no epoch has ended (and checkpoint_every is large)."""
    ckpt = tmp_path / "ctrl_c.npz"
    config = {"algo": "adam", "out": str(tmp_path / "out.npz"),
              "interrupt": {"how": "sigint_in_monitor", "at": 2},
              "options": {**BASE, "max_epochs": 5, "checkpoint": str(ckpt),
                          "checkpoint_every": 100}}
    _wait(_spawn(config, tmp_path, "ctrl_c"))
    saved = _load(ckpt)
    assert saved["run.epoch"].item() == 0 and saved["run.partial.batches"].item() == 2
    assert saved["updates"].item() == 2 and saved["data.train.position"].item() == 32
    final = _load(config["out"])                # the run ended there, with the best params
    assert final["state.run.partial.batches"].item() == 2
    assert final["state.run.stop"].item() == "interrupted"
    assert np.array_equal(final["param.w"], final["state.run.best"][:3])


def test_rerunning_a_finished_run_changes_nothing(tmp_path):
    train, valid = R.problem()
    path = tmp_path / "done.npz"
    p1 = R.fresh_params()
    dh.minimize(R.mse, p1, train, valid, algo="adam", rng=1, max_epochs=3, checkpoint=path)
    state1 = dh.build("adam", R.mse, R.fresh_params())
    state1.load_state(path)
    p2 = R.fresh_params()
    dh.minimize(R.mse, p2, train, valid, algo="adam", rng=1, max_epochs=3, checkpoint=path)
    for k in p1:
        assert np.array_equal(p1[k], p2[k])
    state2 = dh.build("adam", R.mse, R.fresh_params())
    state2.load_state(path)
    assert state2.updates == state1.updates == 6      # 3 epochs of 2 batches
    assert _load(path)["run.epoch"].item() == 3


def test_checkpoint_in_a_missing_folder_is_refused_before_training(tmp_path):
    train, valid = R.problem()
    params = R.fresh_params()
    path = tmp_path / "no" / "such" / "folder" / "run.npz"
    with pytest.raises(ValueError, match="checkpoint.*does not exist"):
        dh.minimize(R.mse, params, train, valid, algo="adam", max_epochs=2, checkpoint=path)
    assert np.array_equal(params["w"], np.zeros(3))
    opt = dh.build("adam", R.mse, params, learning_rate=0.5)
    with pytest.raises(ValueError, match="does not exist"):
        opt.iterate(train, valid, learning_rate=0.1, checkpoint=path)
    assert opt.hyper["learning_rate"] == 0.5      # a refused call changes nothing


def test_checkpoint_every_and_at_the_end(tmp_path):
    train, valid = R.problem()
    path = tmp_path / "every.npz"
    seen = []

    def callback(info):
        seen.append((info.epoch, os.path.exists(path) and _load(path)["run.epoch"].item()))

    dh.minimize(R.mse, R.fresh_params(), train, valid, algo="sgd", rng=1, max_epochs=5,
                checkpoint=path, checkpoint_every=2, callback=callback)
    # the callback runs before that epoch's save: it sees the previous save
    assert seen == [(1, False), (2, False), (3, 2), (4, 2), (5, 4)]
    assert _load(path)["run.epoch"].item() == 5


def test_a_damaged_zip_version_field_is_refused_as_corrupt(tmp_path):
    """zipfile raises NotImplementedError for an unknown 'version needed to extract'."""
    opt = trained("adam")
    path = tmp_path / "good.npz"
    opt.save_state(path)
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")        # the first central directory entry
    data[central + 6:central + 8] = (210).to_bytes(2, "little")   # "version 21.0"
    bad = tmp_path / "version.npz"
    bad.write_bytes(bytes(data))
    target = trained("adam", steps=1)
    before = snapshot(target)
    with pytest.raises(ValueError, match="cannot read the file: it is truncated or corrupt"):
        target.load_state(bad)
    assert_unchanged(target, before)


def test_resume_with_evaluation_params(tmp_path):
    """Lookahead, the averages and the schedule-free rules (whose runs validate, keep and
    save other params than they train) resume bit-identically: after whole epochs, mid-epoch
    (max_updates), and after a Ctrl-C during a validation, when the evaluation params are in
    the arrays."""
    total = {"max_epochs": 5}
    cases = {
        "lookahead": ("momentum", {**BASE, "lookahead": 3}, {"max_epochs": 3}, total, None),
        "ema_mid": ("adam", {**BASE, "average": "ema", "average_decay": 0.9},
                    {"max_updates": 6}, {"max_updates": 15}, None),
        "polyak": ("sgd", {**BASE, "average": "polyak", "average_start": 4,
                           "gradient_noise_scale": 0.01}, {"max_epochs": 2}, total, None),
        "sf_adamw_mid": ("schedule_free_adamw", {**BASE, "warmup_steps": 5,
                                                 "learning_rate": 0.05, "weight_decay": 0.01},
                         {"max_updates": 7}, {"max_updates": 15}, None),
        "sf_sgd": ("schedule_free_sgd", {**BASE, "learning_rate": 0.05}, {"max_epochs": 2},
                   total, None),
        "la_valid_ctrl_c": ("adam", {**BASE, "lookahead": 4}, total, total,
                            {"how": "raise_in_valid_loss", "at": 5}),
        "ema_valid_sigint": ("sgd", {**BASE, "average": "ema"}, total, total,
                             {"how": "sigint_in_valid_loss", "at": 5}),
        "sf_step_ctrl_c": ("schedule_free_sgd", {**BASE, "learning_rate": 0.05}, total, total,
                           {"how": "raise_in_train_loss", "at": 6}),
    }
    legs = _run_resume_cases(tmp_path, cases)
    # the checkpoints hold the evaluation state, and the run's best params are evaluation params
    state = _load(legs["sf_sgd"][1]["out"])
    assert "state.state.x" in state and "state.run.best" in state
    assert "state.state.slow" in _load(legs["lookahead"][1]["out"])
    assert "state.state.average" in _load(legs["polyak"][1]["out"])


def test_resume_with_the_new_controls_combined(tmp_path):
    """Issue 12's controls together (accumulation across epochs, per-leaf rates and decay,
    lookahead or an average, best params on another monitor; Prodigy and a schedule-free
    rule) resume bit-identically in a new process, mid-accumulation included."""
    total = {"max_epochs": 5}
    cases = {
        "adam_all": ("adam", {**BASE, "accumulate": 3, "lookahead": 2,
                              "learning_rate_multipliers": {"b": 0.5},
                              "weight_decay": {"w": 0.01}, "monitor": "mae"},
                     {"max_updates": 5}, {"max_updates": 12}, None),
        "prodigy_ema": ("prodigy", {**BASE, "accumulate": 2, "average": "ema",
                                    "average_decay": 0.9, "monitor": "mae", "mode": "min",
                                    "weight_decay": 0.01},
                        {"max_epochs": 3}, total, None),
        "sf_ctrl_c": ("schedule_free_adamw", {**BASE, "accumulate": 2, "warmup_steps": 3,
                                              "learning_rate": 0.05},
                      total, total, {"how": "raise_in_train_loss", "at": 6}),
    }
    legs = _run_resume_cases(tmp_path, cases)
    # the Ctrl-C came in the 6th training call: batches 1-4 made 2 updates, batch 5 waits in
    # the sum (the 6th applied nothing), so the checkpoint the run left was mid-accumulation
    first = _load(legs["sf_ctrl_c"][0]["out"])
    assert int(first["state.updates"]) == 2 and int(first["state.accumulated.count"]) == 1
