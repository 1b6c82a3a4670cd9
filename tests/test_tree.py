"""Param trees: names, validation, flat layout, in-place updates, pack()."""

import numpy as np
import pytest

import npdownhill as dh
from npdownhill.tree import Layout, leaves


def nested():
    return {"w": np.arange(6.0).reshape(2, 3),
            "layers": [{"W": np.ones((2, 2)), "b": np.zeros(2)}, (np.array(3.0),)]}


def test_leaf_names_follow_keys_and_indices_in_insertion_order():
    names = [name for name, _ in leaves(nested())]
    assert names == ["w", "layers.0.W", "layers.0.b", "layers.1.0"]


def test_bare_array_is_one_leaf_named_empty():
    layout = Layout(np.zeros(3))
    assert layout.names == [""]
    assert layout.size == 3


def test_layout_offsets_and_views_are_c_order_slices():
    tree = nested()
    layout = Layout(tree)
    assert list(layout.offsets) == [0, 6, 10, 12, 13]
    flat = layout.read(layout.empty())
    np.testing.assert_array_equal(flat, np.concatenate([a.ravel() for a in
                                                        (tree["w"], tree["layers"][0]["W"],
                                                         tree["layers"][0]["b"], tree["layers"][1][0])]))
    back = layout.unflatten(flat)
    assert isinstance(back["layers"][1], tuple)
    np.testing.assert_array_equal(back["w"], tree["w"])
    assert back["layers"][1][0].shape == ()


@pytest.mark.parametrize("leaf, kind", [
    (np.arange(3), "int64"),
    (np.array([True, False]), "bool"),
    (np.zeros(2, complex), "complex128"),
    (np.array([object()]), "object"),
])
def test_non_float_leaves_are_refused_with_the_leaf_name(leaf, kind):
    with pytest.raises(TypeError, match=r"leaf 'layers\.1' must have a floating-point dtype; got " + kind):
        dh.SGD(None, {"layers": [np.zeros(2), leaf]})


def test_float16_leaves_are_refused_with_the_leaf_name_and_the_fix():
    msg = r"leaf {} has dtype float16, which is too coarse.*\.astype\(np\.float32\)"
    with pytest.raises(TypeError, match=r"Adam\(params\): " + msg.format("the root array")):
        dh.Adam(None, np.ones(3, np.float16))
    with pytest.raises(TypeError, match=msg.format(r"'layers\.1\.b'")):
        dh.Adam(None, {"w": np.ones(2), "layers": [np.ones(2, np.float32),
                                                   {"b": np.ones(2, np.float16)}]})
    with pytest.raises(TypeError, match=msg.format("'h'")):
        Layout({"h": np.ones((), np.float16)})


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.longdouble])
def test_float32_float64_and_longdouble_leaves_are_accepted(dtype):
    tree = {"w": np.ones(3, dtype)}
    dh.SGD(None, tree, learning_rate=0.5).apply({"w": np.ones(3)})
    assert tree["w"].dtype == dtype
    np.testing.assert_array_equal(tree["w"], np.full(3, 0.5, dtype))


def test_python_float_leaf_is_refused_with_a_hint():
    with pytest.raises(TypeError, match=r"leaf 'b' must be a floating-point ndarray; got float.*np\.array"):
        dh.SGD(None, {"w": np.zeros(2), "b": 0.0})


def test_zero_size_and_read_only_leaves_are_refused():
    with pytest.raises(ValueError, match=r"leaf 'e' is empty \(shape \(0, 3\)\)"):
        dh.SGD(None, {"e": np.zeros((0, 3))})
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"leaf 'r' is read-only"):
        dh.SGD(None, {"r": ro})


def test_leaves_sharing_memory_are_refused():
    base = np.zeros(10)
    with pytest.raises(ValueError, match=r"leaves 'a' and 'b' share memory"):
        dh.SGD(None, {"a": base[:6], "b": base[4:]})
    same = np.zeros(2)
    with pytest.raises(ValueError, match="share memory"):
        dh.SGD(None, [same, same])
    # interleaved but disjoint views are fine
    m = np.zeros((4, 2))
    dh.SGD(None, {"even": m[:, 0], "odd": m[:, 1]})


def test_colliding_names_and_bad_keys_are_refused():
    with pytest.raises(ValueError, match=r"leaf names must be unique; \['a\.b'\]"):
        dh.SGD(None, {"a.b": np.zeros(1), "a": {"b": np.zeros(1)}})
    with pytest.raises(TypeError, match="dict keys must be str or int"):
        dh.SGD(None, {("a", 1): np.zeros(1)})
    with pytest.raises(ValueError, match="no leaves"):
        dh.SGD(None, {})


def test_gather_checks_structure_and_shapes_and_names_the_difference():
    layout = Layout(nested())
    out = layout.empty()
    good = nested()
    layout.gather(good, out)
    with pytest.raises(ValueError, match=r"keys at the root .*missing \['layers'\], unexpected \['extra'\]"):
        layout.gather({"w": good["w"], "extra": 1}, out)
    bad = nested()
    bad["layers"][0]["W"] = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"leaf 'layers\.0\.W' has shape \(2, 3\); the params leaf has shape \(2, 2\)"):
        layout.gather(bad, out)
    transposed = nested()
    transposed["w"] = transposed["w"].T.copy()
    with pytest.raises(ValueError, match=r"leaf 'w' has shape \(3, 2\)"):
        layout.gather(transposed, out)
    short = nested()
    short["layers"] = short["layers"][:1]
    with pytest.raises(ValueError, match=r"expected a list of length 2 at 'layers'; got list of length 1"):
        layout.gather(short, out)
    with pytest.raises(TypeError, match=r"leaf 'w' must hold real numbers; got dtype complex128"):
        layout.gather({**good, "w": good["w"] * 1j}, out)


def test_gather_accepts_scalars_for_0d_leaves_and_any_key_order():
    layout = Layout({"a": np.zeros(2), "s": np.zeros(())})
    out = layout.gather({"s": 2.5, "a": np.array([1, 2])}, layout.empty())
    np.testing.assert_array_equal(out, [1.0, 2.0, 2.5])


def test_updates_happen_in_place_on_the_callers_arrays():
    tree = nested()
    originals = [leaf for _, leaf in leaves(tree)]
    before = [leaf.copy() for leaf in originals]
    opt = dh.SGD(None, tree, learning_rate=0.5)
    opt.apply(Layout(tree).unflatten(np.ones(13)))
    for leaf, old, now in zip(originals, before, [leaf for _, leaf in leaves(tree)]):
        assert leaf is now
        np.testing.assert_array_equal(leaf, old - 0.5)


def test_float32_tree_stays_float32_and_mixed_tree_keeps_each_dtype():
    tree = {"a": np.ones(3, np.float32), "b": np.ones((2, 2), np.float32)}
    opt = dh.Adam(None, tree)
    opt.apply({"a": np.ones(3), "b": np.ones((2, 2))})        # float64 gradients are cast
    assert tree["a"].dtype == np.float32 and tree["b"].dtype == np.float32
    assert all(buf.dtype == np.float32 for buf in opt.state.values())
    mixed = {"a": np.ones(3, np.float32), "b": np.ones(2)}
    opt = dh.SGD(None, mixed, learning_rate=0.25)
    opt.apply({"a": np.ones(3), "b": np.ones(2)})
    assert mixed["a"].dtype == np.float32 and mixed["b"].dtype == np.float64
    np.testing.assert_array_equal(mixed["a"], np.full(3, 0.75, np.float32))


def test_pack_makes_views_of_one_buffer_and_the_optimizer_uses_it():
    tree = nested()
    packed = dh.pack(tree)
    bases = {id(leaf.base) for _, leaf in leaves(packed)}
    assert len(bases) == 1
    for (_, a), (_, b) in zip(leaves(tree), leaves(packed)):
        np.testing.assert_array_equal(a, b)
        assert not np.shares_memory(a, b)
    plain_opt, packed_opt = dh.Adam(None, tree), dh.Adam(None, packed)
    assert plain_opt.layout.packed is None and packed_opt.layout.packed is not None
    rng = np.random.default_rng(0)
    for _ in range(5):
        g = Layout(tree).unflatten(rng.normal(size=13))
        plain_opt.apply(g)
        packed_opt.apply(g)
    for (_, a), (_, b) in zip(leaves(tree), leaves(packed)):
        np.testing.assert_array_equal(a, b)


def test_a_single_contiguous_array_counts_as_packed():
    x = np.zeros((3, 4))
    opt = dh.SGD(None, x, learning_rate=1.0)
    assert opt.layout.packed is not None
    opt.apply(np.ones((3, 4)))
    np.testing.assert_array_equal(x, -np.ones((3, 4)))
