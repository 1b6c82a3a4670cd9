"""``load_state_dict(state, strict=False)``: warm starts after the model changed (issue 12, item 11).

The leaves whose name and shape match are loaded and nothing else; the
result says which leaves were loaded, missing, unexpected and mismatched.
``strict=True`` (the default) keeps its errors.
"""

import autograd.numpy as anp
import numpy as np
import pytest

import npdownhill as dh
from npdownhill.npzfile import save_npz


def old_model():
    return {"layers": [{"W": np.arange(6.0).reshape(2, 3), "b": np.array([1.0, 2.0])},
                       {"W": np.arange(4.0).reshape(2, 2) + 10, "b": np.array([3.0, 4.0])}],
            "scale": np.array(7.0)}


def new_model():
    # layer 1 grew (W 2x2 -> 3x2), "scale" was removed, "head" added
    return {"layers": [{"W": np.zeros((2, 3)), "b": np.zeros(2)},
                       {"W": np.zeros((3, 2)), "b": np.zeros(2)}],
            "head": np.zeros(4)}


CASES = {
    # name: (old algorithm, new algorithm, new dtype)
    "same algorithm": ("adam", "adam", np.float64),
    "another algorithm": ("rmsprop", "sgd", np.float64),
    "float64 into float32": ("adam", "momentum", np.float32),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matching_leaves_are_loaded_and_the_rest_reported(case):
    old_algo, new_algo, dtype = CASES[case]
    old = dh.build(old_algo, None, old_model(), learning_rate=0.5, momentum=0.5)
    old.apply({"layers": [{k: np.ones_like(v) for k, v in layer.items()}
                          for layer in old.params["layers"]], "scale": np.ones(())})
    saved = {name: view.copy() for name, view in zip(old.layout.names,
                                                      old.layout.views(old.layout.read(
                                                          old.layout.empty())))}
    params = {"layers": [{k: v.astype(dtype) for k, v in layer.items()}
                         for layer in new_model()["layers"]],
              "head": new_model()["head"].astype(dtype)}
    new = dh.build(new_algo, None, params, learning_rate=0.1)
    before_state = {k: v.copy() for k, v in new.state.items()}
    result = new.load_state_dict(old.state_dict(), strict=False)
    assert result == (["layers.0.W", "layers.0.b", "layers.1.b"], ["head"], ["scale"],
                      ["layers.1.W"])
    assert result.loaded == ["layers.0.W", "layers.0.b", "layers.1.b"]
    assert result.missing == ["head"]
    assert result.unexpected == ["scale"]
    assert result.mismatched == ["layers.1.W"]
    np.testing.assert_array_equal(params["layers"][0]["W"],
                                  saved["layers.0.W"].reshape(2, 3).astype(dtype))
    np.testing.assert_array_equal(params["layers"][0]["b"], saved["layers.0.b"].astype(dtype))
    np.testing.assert_array_equal(params["layers"][1]["b"], saved["layers.1.b"].astype(dtype))
    np.testing.assert_array_equal(params["layers"][1]["W"], np.zeros((3, 2)))
    np.testing.assert_array_equal(params["head"], np.zeros(4))
    assert params["head"].dtype == dtype
    # the optimizer's own state is left alone: a fresh optimization from the loaded values
    assert new.updates == 0 and new.hyper["learning_rate"] == 0.1
    assert before_state.keys() == new.state.keys()
    for k in before_state:
        np.testing.assert_array_equal(before_state[k], new.state[k])


def test_a_checkpoint_file_can_warm_start_a_changed_model(tmp_path):
    old = dh.SGD(None, old_model())
    path = str(tmp_path / "state.npz")
    old.save_state(path)
    new = dh.SGD(None, new_model())
    result = new.load_state(path, strict=False)
    assert result.loaded == ["layers.0.W", "layers.0.b", "layers.1.b"]
    np.testing.assert_array_equal(new.params["layers"][0]["W"], old_model()["layers"][0]["W"])


def test_strict_loading_returns_every_leaf_and_keeps_its_errors():
    a = dh.Adam(None, old_model())
    b = dh.Adam(None, old_model())
    assert b.load_state_dict(a.state_dict()) == (a.layout.names, [], [], [])
    with pytest.raises(ValueError, match=r"Adam.load_state_dict: leaf names differ: "
                                         r"missing \['head'\], unexpected \['scale'\]"):
        dh.Adam(None, new_model()).load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="the state is from algorithm 'adam'"):
        dh.SGD(None, old_model()).load_state_dict(a.state_dict())


BAD = [
    ([1, 2], TypeError, r"SGD.load_state_dict\(strict=False\): state must be a dict; got list"),
    ({}, ValueError, r"SGD.load_state_dict\(strict=False\): not an npdownhill optimizer state"),
    ("params", ValueError, r"SGD.load_state_dict\(strict=False\): 'params' has shape \(3,\)"),
    ("names", ValueError, r"SGD.load_state_dict\(strict=False\): tree.names, tree.ndims and "
                          r"tree.dims do not fit together"),
]


@pytest.mark.parametrize("state, error, message", BAD)
def test_a_damaged_state_is_refused_and_nothing_changes(state, error, message):
    good = dh.SGD(None, old_model()).state_dict()
    if state == "params":
        state = dict(good, params=np.zeros(3))
    elif state == "names":
        state = dict(good, **{"tree.names": np.array(["a"])})
    params = new_model()
    opt = dh.SGD(None, params)
    with pytest.raises(error, match=message):
        opt.load_state_dict(state, strict=False)
    np.testing.assert_array_equal(params["layers"][0]["W"], np.zeros((2, 3)))


def test_strict_must_be_a_bool():
    opt = dh.SGD(None, new_model())
    with pytest.raises(TypeError, match=r"SGD.load_state_dict\(strict='no'\): strict must be "
                                        "True or False; got str"):
        opt.load_state_dict(opt.state_dict(), strict="no")


def test_warm_start_then_training_moves_from_the_loaded_values():
    """After a warm start, an SGD step is taken from the loaded values (by hand)."""
    old = dh.SGD(None, old_model())
    new_params = new_model()
    new = dh.SGD(None, new_params, learning_rate=0.5)
    new.load_state_dict(old.state_dict(), strict=False)
    grads = {"layers": [{k: np.ones_like(v) for k, v in layer.items()}
                        for layer in new_params["layers"]], "head": np.ones(4)}
    new.apply(grads)
    np.testing.assert_array_equal(new_params["layers"][0]["b"], np.array([1.0, 2.0]) - 0.5)
    np.testing.assert_array_equal(new_params["head"], -0.5 * np.ones(4))


def test_save_npz_round_trip_keeps_strict_false_working(tmp_path):
    path = str(tmp_path / "s.npz")
    save_npz(path, dh.SGD(None, old_model()).state_dict())
    assert dh.Adam(None, {"scale": np.zeros(())}).load_state(path, strict=False).loaded == ["scale"]


@pytest.mark.parametrize("algo, extra, copies", [
    ("schedule_free_sgd", {}, "z, x"),
    ("prodigy", {}, "x0"),
    ("adam", {"lookahead": 2}, "slow"),
    ("sgd", {"average": "polyak"}, "average"),
])
def test_a_warm_start_into_a_trained_optimizer_keeping_param_copies_is_refused(algo, extra,
                                                                               copies):
    """Slow weights, averages, schedule-free sequences and Prodigy's start point are copies
    of the params: after updates they would keep describing the old values."""
    def loss(p, x):
        return anp.sum((p["w"] - x) ** 2)

    source = dh.SGD(loss, {"w": np.full(3, 5.0)}).state_dict()
    fresh = dh.build(algo, loss, {"w": np.zeros(3)}, learning_rate=0.01, **extra)
    assert fresh.load_state_dict(source, strict=False).loaded == ["w"]   # fresh: fine
    params = {"w": np.zeros(3)}
    opt = dh.build(algo, loss, params, learning_rate=0.01, **extra)
    opt.step(np.ones(3))
    before = params["w"].copy()
    with pytest.raises(ValueError, match=rf"has made 1 updates and its state keeps copies of "
                                         rf"the params \({copies}\).*warm-start a new optimizer"):
        opt.load_state_dict(source, strict=False)
    np.testing.assert_array_equal(params["w"], before)
    # an optimizer without such copies takes the values (its moments carry on)
    plain = dh.Adam(loss, {"w": np.zeros(3)})
    plain.step(np.ones(3))
    assert plain.load_state_dict(source, strict=False).loaded == ["w"]
