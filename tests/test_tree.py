"""Param trees: names, validation, flat layout, in-place updates, pack()."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

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


def test_gather_casts_real_leaves_of_other_dtypes_and_refuses_the_rest():
    """The fast gather takes leaves of the buffer's dtype as they are; other real
    dtypes are cast exactly, bool and complex are refused, and a leaf of another
    shape with the same number of elements (a 1-d leaf as a row) is refused."""
    layout = Layout({"m": np.zeros((2, 3)), "v": np.zeros(4), "s": np.zeros(())})
    out = layout.empty()
    m, v = np.arange(6.0).reshape(2, 3), np.linspace(0, 1, 7)[::2]   # v strided
    layout.gather({"m": m, "v": v, "s": np.float64(3)}, out)
    np.testing.assert_array_equal(out, np.concatenate([m.ravel(), v, [3.0]]))
    ints = layout.gather({"m": m.astype(np.int32), "v": v.astype(np.float32), "s": 1}, out)
    np.testing.assert_array_equal(ints, np.concatenate([m.ravel(), v.astype(np.float32), [1.0]]))
    with pytest.raises(TypeError, match=r"leaf 'v' must hold real numbers; got dtype bool"):
        layout.gather({"m": m, "v": v > 0.5, "s": 1.0}, out)
    with pytest.raises(TypeError, match=r"leaf 's' must hold real numbers; got dtype complex128"):
        layout.gather({"m": m, "v": v, "s": np.complex128(1)}, out)
    with pytest.raises(ValueError, match=r"leaf 'v' has shape \(1, 4\); the params leaf has shape \(4,\)"):
        layout.gather({"m": m, "v": v.reshape(1, 4), "s": 1.0}, out)


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


# -- check_bound: the params must still hold the optimizer's arrays ------------

def _rebound(name, now, path):
    """The check_bound message for leaf ``name``, as a regex."""
    return (rf"Adam\.step: leaf {name} was rebound to another object: {now}, so the optimizer "
            rf"would update an array the params no longer hold\. Assign in place instead, "
            rf"e\.g\. {path}\[\.\.\.\] = new_value, or build a new optimizer for the new arrays")


def test_check_bound_passes_while_the_leaves_are_the_same_arrays():
    tree = nested()
    layout = Layout(tree)
    assert layout.check_bound(tree, "Adam.step") is None
    tree["w"][...] = 7.0                      # in place: the same array object
    tree["layers"][0]["W"] += 1.0
    tree["layers"][1] = tuple(tree["layers"][1])   # a new container holding the same array
    assert layout.check_bound(tree, "Adam.step") is None
    tree["w"] = tree.pop("w")                 # another key order, the same arrays
    assert list(tree) == ["layers", "w"]
    assert layout.check_bound(tree, "Adam.step") is None


def test_check_bound_names_a_rebound_top_level_leaf_and_the_in_place_fix():
    tree = nested()
    layout = Layout(tree)
    tree["w"] = tree["w"] * 1.0
    with pytest.raises(ValueError, match=_rebound(
            "'w'", r'params\["w"\] is now another array \(shape \(2, 3\), dtype float64\)',
            r'params\["w"\]')):
        layout.check_bound(tree, "Adam.step")
    tree = nested()
    layout = Layout(tree)
    tree["w"] = 3.0
    with pytest.raises(ValueError, match=r'params\["w"\] is now a float \(another type\)'):
        layout.check_bound(tree, "Adam.step")


def test_check_bound_names_a_rebound_leaf_in_a_nested_list():
    tree = {"layers": [np.zeros(2), [np.ones(3), np.ones(())]]}
    layout = Layout(tree)
    tree["layers"][1][0] = np.ones(3)
    with pytest.raises(ValueError, match=_rebound(
            r"'layers\.1\.0'", r'params\["layers"\]\[1\]\[0\] is now another array \(shape \(3,\), .*\)',
            r'params\["layers"\]\[1\]\[0\]')):
        layout.check_bound(tree, "Adam.step")


def test_check_bound_names_the_first_leaf_of_a_replaced_sub_container():
    tree = nested()
    layout = Layout(tree)
    tree["layers"][0] = {"W": np.ones((2, 2)), "b": np.zeros(2)}      # equal values, new arrays
    with pytest.raises(ValueError, match=_rebound(
            r"'layers\.0\.W'", r'params\["layers"\]\[0\]\["W"\] is now another array .*',
            r'params\["layers"\]\[0\]\["W"\]')):
        layout.check_bound(tree, "Adam.step")
    tree["layers"][0] = None
    with pytest.raises(ValueError, match=_rebound(
            r"'layers\.0\.W'", r'params\["layers"\]\[0\] is now None, not a dict \(another type\)',
            r'params\["layers"\]\[0\]\["W"\]')):
        layout.check_bound(tree, "Adam.step")
    tree = nested()
    layout = Layout(tree)
    tree["layers"] = tree["layers"][:1]
    with pytest.raises(ValueError, match=_rebound(
            r"'layers\.1\.0'", r'params\["layers"\] has only 1 item \(index 1 is missing\)',
            r'params\["layers"\]\[1\]\[0\]')):
        layout.check_bound(tree, "Adam.step")


def test_check_bound_reports_a_deleted_key_and_any_key_that_replaced_it():
    tree = nested()
    layout = Layout(tree)
    del tree["layers"][0]["b"]
    with pytest.raises(ValueError, match=_rebound(
            r"'layers\.0\.b'", r"params\[\"layers\"\]\[0\] has no key 'b' any more \(a missing key\)",
            r'params\["layers"\]\[0\]\["b"\]')):
        layout.check_bound(tree, "Adam.step")
    tree = nested()
    layout = Layout(tree)
    tree["layers"][0]["bias"] = tree["layers"][0].pop("b")   # renamed: same array, same order
    with pytest.raises(ValueError, match=r"leaf 'layers\.0\.b' .* has no key 'b' any more "
                                         r"\(a missing key; it has unexpected keys \['bias'\]\)"):
        layout.check_bound(tree, "Adam.step")


def test_check_bound_reports_an_added_key_or_item():
    tree = nested()
    layout = Layout(tree)
    tree["layers"][0]["c"] = np.zeros(2)
    with pytest.raises(ValueError, match=r"Adam\.step: params\[\"layers\"\]\[0\] gained key 'c'; "
                                         r"the param tree's structure changed .* build a new "
                                         r"optimizer for the new tree"):
        layout.check_bound(tree, "Adam.step")
    tree = nested()
    layout = Layout(tree)
    tree["layers"].append(np.zeros(2))
    with pytest.raises(ValueError, match=r"params\[\"layers\"\] gained items: it has 3 items "
                                         r"where the layout has 2"):
        layout.check_bound(tree, "Adam.step")


def test_check_bound_on_a_wide_dict_checks_every_leaf_and_key():
    def wide():
        return {**{f"W{i}": np.zeros((10, 10)) for i in range(20)},
                **{f"b{i}": np.zeros(10) for i in range(20)}}
    tree = wide()
    layout = Layout(tree)
    assert layout.check_bound(tree, "Adam.step") is None
    tree["b7"] = tree["b7"] + 0.0
    with pytest.raises(ValueError, match=_rebound("'b7'", r'params\["b7"\] is now another array.*',
                                                  r'params\["b7"\]')):
        layout.check_bound(tree, "Adam.step")
    tree = wide()
    layout = Layout(tree)
    tree["last"] = tree.pop("b19")    # the values stay in order; only the last key changed
    with pytest.raises(ValueError, match=r"leaf 'b19' .*unexpected keys \['last'\]"):
        layout.check_bound(tree, "Adam.step")
    tree = wide()
    layout = Layout(tree)
    tree["extra"] = np.zeros(1)
    with pytest.raises(ValueError, match=r"params gained key 'extra'"):
        layout.check_bound(tree, "Adam.step")


def test_check_bound_on_a_namedtuple_or_tuple_root_holding_dicts():
    from collections import namedtuple
    Net = namedtuple("Net", "enc dec")
    for make in (lambda *ds: Net(*ds), lambda *ds: tuple(ds)):
        tree = make({"W": np.ones((2, 2))}, {"W": np.ones((2, 2)), "b": np.zeros(2)})
        layout = Layout(tree)
        tree[1]["b"][...] = 1.0
        assert layout.check_bound(tree, "Adam.step") is None
        tree[1]["b"] = np.ones(2)
        with pytest.raises(ValueError, match=_rebound(r"'1\.b'", r'params\[1\]\["b"\] is now another array.*',
                                                      r'params\[1\]\["b"\]')):
            layout.check_bound(tree, "Adam.step")


def test_check_bound_always_passes_for_a_bare_array():
    x = np.zeros(3)
    layout = Layout(x)
    x[...] = 2.0
    assert layout.check_bound(x, "Adam.step") is None


def test_check_bound_refuses_a_root_of_another_type():
    tree = nested()
    layout = Layout(tree)
    with pytest.raises(ValueError, match=r"leaf 'w' was rebound to another object: params is now "
                                         r"a list, not a dict \(another type\)"):
        layout.check_bound([tree["w"]], "Adam.step")


_leaf_arrays = st.lists(st.integers(1, 3), max_size=2).map(lambda shape: np.zeros(shape))
_trees = st.recursive(_leaf_arrays, lambda sub: st.one_of(
    st.dictionaries(st.sampled_from("abcd"), sub, max_size=3),
    st.lists(sub, max_size=3),
    st.lists(sub, max_size=3).map(tuple)), max_leaves=8)


def _rebindable(tree, path=()):
    """(container, key, path) of every leaf whose container can be assigned to."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    for key, sub in items:
        if isinstance(sub, (dict, list, tuple)):
            yield from _rebindable(sub, path + (key,))
        elif isinstance(tree, (dict, list)):
            yield tree, key, path + (key,)


@settings(max_examples=150, deadline=None)
@given(tree=_trees, data=st.data())
def test_check_bound_detects_and_names_any_single_rebinding(tree, data):
    targets = list(_rebindable(tree)) if isinstance(tree, (dict, list, tuple)) else []
    assume(targets)
    layout = Layout(tree)
    assert layout.check_bound(tree, "Adam.step") is None
    container, key, path = data.draw(st.sampled_from(targets))
    container[key][...] = 1.0                       # in place: still fine
    assert layout.check_bound(tree, "Adam.step") is None
    how = data.draw(st.sampled_from(["copy", "none", "delete"]))
    if how == "copy":
        container[key] = container[key].copy()
    elif how == "none":
        container[key] = None
    else:
        del container[key]
    name = ".".join(map(str, path))
    expr = "params" + "".join(f'["{k}"]' if isinstance(k, str) else f"[{k}]" for k in path)
    with pytest.raises(ValueError) as info:
        layout.check_bound(tree, "Adam.step")
    message = str(info.value)
    assert message.startswith(f"Adam.step: leaf '{name}' was rebound to another object: ")
    assert f"e.g. {expr}[...] = new_value" in message
