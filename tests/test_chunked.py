"""The chunked update: same numbers in any number of chunks, no full-size temporaries,
bounded memory, and a refused update that changes nothing wherever it is refused.

An update runs the pipeline a chunk at a time (``Optimizer.chunk_bytes`` of
each buffer), writes the new state into a second set of buffers that is
swapped in only when every chunk's step is finite, and adds the step to the
params only then (issue 11).
"""

import gc
import tracemalloc

import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npdownhill as dh
from npdownhill import pipeline as P
from npdownhill.tree import Layout

GRADIENT_ALGORITHMS = [name for name in dh.algorithms()
                       if not dh.registry.lookup(name).full_batch and name != "esgd"]
#: Flat state buffers of each algorithm with its default hyperparameters.
STATE_BUFFERS = {"sgd": 0, "momentum": 1, "nag": 1, "rmsprop": 1, "rprop": 2, "adagrad": 1,
                 "adadelta": 2, "adam": 2, "adamax": 2, "amsgrad": 3, "nadam": 2, "adamw": 2,
                 "radam": 2, "esgd": 1, "lion": 1, "yogi": 2, "adabelief": 2, "prodigy": 4,
                 "schedule_free_sgd": 2, "schedule_free_adamw": 3}
#: Scalar state besides them (NAdam's mu_product; Prodigy's d and numerator; the
#: schedule-free rules' weight sum and largest rate).
SCALARS = {"nadam": 1, "prodigy": 2, "schedule_free_sgd": 2, "schedule_free_adamw": 2}

def fit(algo, hyper):
    """The pipeline ``hyper`` as ``algo`` takes it: the schedule-free rules refuse
    momentum, per-leaf rates, and weight decay with frozen leaves or per leaf (they decay
    inside their average)."""
    if not dh.registry.lookup(algo).own_weight_decay:
        return dict(hyper)
    out = {k: v for k, v in hyper.items()
           if k not in ("momentum", "nesterov", "learning_rate_multipliers")}
    if "frozen" in out or isinstance(out.get("weight_decay"), dict):
        out.pop("weight_decay", None)
    return out


PIPELINES = {
    "plain": {},
    "momentum": {"momentum": 0.9},
    "nesterov": {"momentum": 0.8, "nesterov": True},
    "weight decay": {"weight_decay": 0.1},
    "momentum and decay": {"momentum": 0.5, "weight_decay": 0.01},
    "elementwise clip": {"max_gradient_elem": 0.3},
    "leaf-norm clip": {"max_gradient_norm": 0.5},
    "global clip": {"clip_gradients": 0.7},
    "noise": {"gradient_noise_scale": 0.1, "gradient_noise_decay": 0.55},
    "multipliers": {"gradient_multipliers": {"big": 0.5}},
    "frozen, decay, clip": {"frozen": ["b"], "momentum": 0.9, "weight_decay": 0.1,
                            "max_gradient_elem": 1.0},
    "rates and decay by pattern": {"learning_rate_multipliers": {"b*": 0.5, "mat": 2.0},
                                   "weight_decay": {"?": 0.1, "big": 0.01}, "momentum": 0.9},
    "rates, frozen, decay dict": {"learning_rate_multipliers": {"*": 0.3}, "frozen": ["c"],
                                  "weight_decay": {"mat": 0.1}},
    "accumulate": {"accumulate": 2, "momentum": 0.5},
}


def tree(dtype=np.float64, seed=0):
    """Leaves of every kind a chunk plan meets: small ones sharing a chunk, a 0-d
    leaf, and leaves larger than a chunk (split across chunks)."""
    r = np.random.default_rng(seed)
    return {"w": r.standard_normal((30, 7)).astype(dtype), "b": r.standard_normal(7).astype(dtype),
            "c": r.standard_normal(()).astype(dtype),
            "big": r.standard_normal(3001).astype(dtype),
            "mat": r.standard_normal((40, 50)).astype(dtype)}


def loss(p, x):
    return (anp.sum(p["w"] ** 2) * x + anp.sum(anp.sin(p["b"])) + p["c"] ** 4
            + anp.sum(p["big"] ** 2) + anp.sum(anp.cos(p["mat"])))


def run(algo, hyper, dtype, chunk_bytes, mode, steps=5, packed=False):
    params = dh.pack(tree(dtype)) if packed else tree(dtype)
    opt = dh.build(algo, loss, params, rng=1, **hyper)
    if chunk_bytes is not None:
        opt.chunk_bytes = chunk_bytes
    r = np.random.default_rng(5)
    for _ in range(steps):
        grads = {k: r.standard_normal(v.shape).astype(dtype) for k, v in params.items()}
        if mode == "apply":
            opt.apply(grads, 1.5)
        elif mode == "step":
            opt.step(1.5)
        elif mode == "update":
            steps_ = opt.update(grads, 1.5)
            for k in params:
                params[k] += steps_[k]
        elif mode == "buffer":
            buf = opt.gradient_buffer()
            for k in params:
                buf[k][...] = grads[k]
            opt.apply(buf, 1.5)
        else:
            dh.apply_updates(opt.get_updates(grads, 1.5))
    out = {f"params.{k}": v.copy() for k, v in params.items()}
    out.update({f"state.{k}": np.array(v) for k, v in opt.state.items()})
    return out


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# -- the same numbers in any number of chunks ----------------------------------
@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
@pytest.mark.parametrize("algo", GRADIENT_ALGORITHMS)
def test_many_chunks_give_the_numbers_of_one(algo, pipeline):
    hyper = fit(algo, PIPELINES[pipeline])
    if algo == "nag" and hyper.get("nesterov") is False:
        pytest.skip("NAG is always Nesterov")
    for dtype in (np.float64, np.float32):
        one = run(algo, hyper, dtype, None, "apply")
        # 1000 bytes: chunks of 125 float64 (250 float32) elements, every kind of span
        assert_same(one, run(algo, hyper, dtype, 1000, "apply"))
        assert_same(one, run(algo, hyper, dtype, 4096, "buffer"))
        # a packed tree: every chunk is one flat view of the params, so apply moves
        # them chunk by chunk in the loop
        assert_same(one, run(algo, hyper, dtype, 1000, "apply", packed=True))


@pytest.mark.parametrize("packed", [False, True], ids=["tree", "packed"])
@pytest.mark.parametrize("mode", ["step", "update", "get_updates", "buffer"])
@pytest.mark.parametrize("algo", ["sgd", "adam", "rprop", "esgd"])
def test_every_entry_point_gives_the_numbers_of_one_chunk(algo, mode, packed):
    hyper = {"momentum": 0.5, "weight_decay": 0.01}
    for dtype in (np.float64, np.float32):
        assert_same(run(algo, hyper, dtype, None, mode, packed=packed),
                    run(algo, hyper, dtype, 1000, mode, packed=packed))


def test_the_chunk_plan_covers_the_buffer_along_leaves():
    layout = Layout(tree())
    for size in (1, 7, 125, 1000, 3001, 10 ** 6):
        spans = layout.chunks(size)
        assert spans[0][0] == 0 and spans[-1][1] == layout.size
        for (start, stop, first, last, lo, hi), following in zip(spans, spans[1:] + [None]):
            assert 0 < stop - start <= max(size, 1)
            if following is not None:
                assert following[0] == stop
            if lo is None:                # whole leaves
                assert start == layout.offsets[first] and stop == layout.offsets[last]
            else:                         # a piece of one leaf larger than a chunk
                assert last == first + 1 and layout.offsets[first + 1] - layout.offsets[first] > size
                assert (start, stop) == (layout.offsets[first] + lo, layout.offsets[first] + hi)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_per_leaf_square_sums_are_reduceats_in_any_chunks(dtype):
    r = np.random.default_rng(3)
    layout = Layout({"a": np.zeros(5), "b": np.zeros(100_003), "c": np.zeros((7, 3)),
                     "d": np.zeros(1)}.copy())
    g = (r.standard_normal(layout.size) * 10.0 ** r.uniform(-3, 3, layout.size)).astype(dtype)
    expected = np.add.reduceat(g * g, layout.offsets[:-1])
    for size in (1, 64, 1000, 4096, 65536, layout.size):
        got = P.leaf_square_sums(g, layout, np.empty(min(size, layout.size), dtype))
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_noise_drawn_in_chunks_is_one_draw(dtype):
    opt = dh.SGD(None, np.zeros(10_001, dtype), rng=4)
    opt.chunk_bytes = 800
    out = np.empty(10_001, dtype)
    opt._normal(out)
    np.testing.assert_array_equal(
        out, np.random.default_rng(4).standard_normal(10_001).astype(dtype))


# -- no full-size temporary, bounded memory -------------------------------------
def peak_of_one_apply(opt, grads):
    opt.apply(grads)                  # the first update makes the spares and scratch
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        opt.apply(grads)
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("pipeline", ["plain", "momentum and decay", "leaf-norm clip",
                                      "global clip", "noise", "frozen, decay, clip",
                                      "rates, frozen, decay dict"])
@pytest.mark.parametrize("algo", GRADIENT_ALGORITHMS)
def test_an_update_allocates_no_full_size_temporary(algo, pipeline):
    n = 1_000_000
    hyper = fit(algo, PIPELINES[pipeline])
    if "frozen" in hyper:
        hyper["frozen"] = ["b"]
    if isinstance(hyper.get("weight_decay"), dict):
        hyper["weight_decay"] = {"big": 0.1}
    for dtype in (np.float64, np.float32):
        params = {"big": np.ones(n, dtype), "b": np.ones(3, dtype)}
        grads = {"big": np.full(n, 1e-3, dtype), "b": np.full(3, 1e-3, dtype)}
        opt = dh.build(algo, None, params, learning_rate=1e-4, **hyper)
        peak = peak_of_one_apply(opt, grads)
        assert peak < 0.3 * params["big"].nbytes, (algo, pipeline, dtype, peak)


@pytest.mark.parametrize("algo", GRADIENT_ALGORITHMS + ["esgd"])
def test_the_optimizer_holds_at_most_two_sets_of_state_and_a_quarter(algo):
    """(2 x state buffers + 1.25) x the params' bytes: the state, the spare set the
    next update writes into, the gradient buffer and chunk-sized scratch."""
    n = 1_000_000
    for dtype in (np.float64, np.float32):
        params = np.ones(n, dtype)
        loss_ = (lambda p: 0.5 * anp.sum(p * p)) if algo == "esgd" else None
        opt = dh.build(algo, loss_, params, learning_rate=1e-4)
        opt.apply(np.full(n, 1e-3, dtype)) if algo != "esgd" else opt.step()
        held = sum(a.nbytes for a in opt._buffers())
        bound = (2 * STATE_BUFFERS[algo] + 1.25) * params.nbytes
        assert held <= bound, (algo, dtype, held / params.nbytes)
        assert len(opt.state) == STATE_BUFFERS[algo] + SCALARS.get(algo, 0)
        assert sum(buf.ndim > 0 for buf in opt.state.values()) == STATE_BUFFERS[algo]


# -- a refused update changes nothing, wherever the chunk -----------------------
def snapshot(opt):
    state = {k: np.array(v, copy=True) for k, v in opt.state_dict().items()}
    return state, [leaf.copy() for leaf in opt.layout.arrays]


def assert_unchanged(opt, before):
    state, leaves = snapshot(opt)
    for a, b in zip(leaves, before[1]):
        np.testing.assert_array_equal(a, b)
    assert state.keys() == before[0].keys()
    for key in state:
        assert np.array_equal(state[key], before[0][key],
                              equal_nan=np.asarray(state[key]).dtype.kind == "f"), key


def big_tree(dtype=np.float64):
    return {"a": np.ones(5000, dtype), "w": np.ones((40, 50), dtype), "z": np.ones(3001, dtype)}


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("pipeline", ["plain", "momentum and decay", "elementwise clip", "noise",
                                      "leaf-norm clip", "global clip"])
@pytest.mark.parametrize("algo", GRADIENT_ALGORITHMS)
def test_a_non_finite_gradient_in_the_last_chunk_is_refused_and_changes_nothing(algo, pipeline,
                                                                                bad):
    hyper = fit(algo, PIPELINES[pipeline])
    params = big_tree()
    opt = dh.build(algo, None, params, learning_rate=1e-3, rng=0, **hyper)
    opt.chunk_bytes = 4096
    grads = {k: np.full(v.shape, 0.01) for k, v in params.items()}
    opt.apply(grads)
    grads["z"][-1] = bad                  # only the very last chunk
    before = snapshot(opt)
    for call in (opt.apply, opt.update, opt.get_updates):
        with pytest.raises(dh.NonFiniteError) as info:
            call(grads)
        assert info.value.what == "gradient" and info.value.leaves == ["z"]
        assert_unchanged(opt, before)
    buf = opt.gradient_buffer()           # the same through the gradient buffer
    for key in buf:
        buf[key][...] = grads[key]
    with pytest.raises(dh.NonFiniteError) as info:
        opt.apply(buf)
    assert info.value.what == "gradient" and info.value.leaves == ["z"]
    assert_unchanged(opt, before)


@pytest.mark.parametrize("hyper", [{}, {"momentum": 0.9}, {"weight_decay": 0.5},
                                   {"momentum": 0.9, "nesterov": True, "weight_decay": 0.5}])
def test_a_step_overflowing_only_in_the_last_chunk_is_refused_and_changes_nothing(hyper):
    params = big_tree()
    opt = dh.SGD(None, params, learning_rate=10.0, **hyper)
    opt.chunk_bytes = 4096
    grads = {k: np.full(v.shape, 0.01) for k, v in params.items()}
    opt.apply(grads)
    grads["z"][-1] = 1e308                # finite, but lr * g overflows
    before = snapshot(opt)
    for call in (opt.apply, opt.update, opt.get_updates):
        with pytest.raises(dh.NonFiniteError) as info:
            call(grads)
        assert info.value.what == "step" and info.value.leaves == ["z"]
        assert_unchanged(opt, before)


def test_a_non_finite_gradient_outranks_an_earlier_non_finite_step():
    """As when the gradient was checked whole before the update: a non-finite
    gradient anywhere is what is reported, even after a chunk's step overflowed."""
    params = big_tree()
    opt = dh.SGD(None, params, learning_rate=10.0)
    opt.chunk_bytes = 4096
    grads = {k: np.full(v.shape, 0.01) for k, v in params.items()}
    grads["a"][0] = 1e308                 # the first chunk's step overflows
    grads["z"][-1] = np.nan               # the last chunk's gradient is NaN
    before = snapshot(opt)
    with pytest.raises(dh.NonFiniteError) as info:
        opt.apply(grads)
    assert info.value.what == "gradient" and info.value.leaves == ["z"]
    assert_unchanged(opt, before)


def test_every_leaf_with_a_non_finite_step_is_named():
    params = big_tree()
    opt = dh.SGD(None, params, learning_rate=10.0)
    opt.chunk_bytes = 4096
    grads = {k: np.full(v.shape, 0.01) for k, v in params.items()}
    grads["a"][-1] = grads["z"][0] = 1e308
    with pytest.raises(dh.NonFiniteError) as info:
        opt.apply(grads)
    assert info.value.what == "step" and info.value.leaves == ["a", "z"]


def test_a_step_refused_in_a_middle_chunk_puts_back_the_params_moved_before_it():
    """With weight decay, apply moves the params chunk by chunk as each step is found
    finite; a later chunk's refusal puts the earlier chunks' params back, bit for bit."""
    params = big_tree()
    r = np.random.default_rng(3)
    for leaf in params.values():
        leaf[...] = r.standard_normal(leaf.shape)
    opt = dh.Adam(None, params, learning_rate=0.1, weight_decay=0.1)
    opt.chunk_bytes = 4096
    assert opt._make_plan().new_params                # the loop moves the params
    grads = {k: r.standard_normal(v.shape) for k, v in params.items()}
    opt.apply(grads)
    before = snapshot(opt)
    grads["w"][20, 7] = np.inf                        # a chunk in the middle of the tree
    with pytest.raises(dh.NonFiniteError) as info:
        opt.apply(grads)
    assert info.value.what == "gradient" and info.value.leaves == ["w"]
    assert_unchanged(opt, before)


def test_an_interrupt_inside_the_chunk_loop_puts_back_the_params_moved_before_it():
    """A KeyboardInterrupt (or any error) raised half-way through the chunks leaves
    the params and the state as they were, and the next update is the one it would
    have been."""
    params, twin = big_tree(), big_tree()
    grads = {k: np.linspace(-1, 1, v.size).reshape(v.shape) for k, v in params.items()}
    opt, ref = (dh.Adam(None, p, learning_rate=0.1, momentum=0.5, weight_decay=0.1)
                for p in (params, twin))
    opt.chunk_bytes = ref.chunk_bytes = 4096
    opt.apply(grads)
    ref.apply(grads)
    before = snapshot(opt)
    rule, calls = opt._rule, [0]

    def interrupted_rule(t, lr, new):
        kernel = rule(t, lr, new)

        def interrupting(*args):
            calls[0] += 1
            if calls[0] == 7:                         # the 7th of 20 chunks
                raise KeyboardInterrupt
            return kernel(*args)
        return interrupting

    opt._rule = interrupted_rule
    with pytest.raises(KeyboardInterrupt):
        opt.apply(grads)
    assert calls[0] == 7
    assert_unchanged(opt, before)
    del opt._rule
    opt.apply(grads)
    ref.apply(grads)
    for key in params:
        np.testing.assert_array_equal(params[key], twin[key])
    assert_same({k: np.array(v) for k, v in opt.state.items()},
                {k: np.array(v) for k, v in ref.state.items()})


def test_gradients_that_are_the_params_arrays_are_read_before_they_move():
    """apply(params) (the gradient of |p|^2 / 2) reads each chunk's gradient before
    it moves that chunk's params: the same as handing it a copy."""
    params, twin = big_tree(), big_tree()
    for p in (params, twin):
        for leaf in p.values():
            leaf[...] = np.linspace(-2, 3, leaf.size).reshape(leaf.shape)
    opt, ref = (dh.Adam(None, p, learning_rate=0.1, momentum=0.5, weight_decay=0.1)
                for p in (params, twin))
    opt.chunk_bytes = ref.chunk_bytes = 4096
    for _ in range(3):
        opt.apply(params)
        ref.apply({k: v.copy() for k, v in twin.items()})
    for key in params:
        np.testing.assert_array_equal(params[key], twin[key])


@pytest.mark.parametrize("packed", [False, True], ids=["tree", "packed"])
def test_gradients_that_are_other_leaves_params_are_read_before_any_moves(packed):
    """{"a": params["b"], "b": params["a"]}: the loop that moves the params chunk by
    chunk would change b's gradient before reading it; the update takes the step
    after the loop instead, and ends where copies of the gradients lead."""
    trees = [{"a": np.linspace(-1, 1, 4096), "b": np.linspace(2, 3, 4096)} for _ in range(2)]
    if packed:
        trees = [dh.pack(t) for t in trees]
    opts = [dh.Adam(None, t, learning_rate=0.1, weight_decay=0.1) for t in trees]
    for opt in opts:
        opt.chunk_bytes = 4096
    for _ in range(3):
        opts[0].apply({"a": trees[0]["b"], "b": trees[0]["a"]})
        opts[1].apply({"a": trees[1]["b"].copy(), "b": trees[1]["a"].copy()})
    for key in trees[0]:
        np.testing.assert_array_equal(trees[0][key], trees[1][key])


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 700), min_size=1, max_size=5),
       chunk_bytes=st.sampled_from([64, 256, 1000, 4096, 1 << 18]),
       algo=st.sampled_from(["sgd", "adam", "adamw", "rmsprop", "lion"]),
       momentum=st.sampled_from([0.0, 0.7]), packed=st.booleans(),
       bad=st.one_of(st.none(), st.floats(0, 1)), seed=st.integers(0, 2 ** 16))
def test_any_tree_and_chunking_moves_the_params_as_one_chunk_does_or_not_at_all(
        sizes, chunk_bytes, algo, momentum, packed, bad, seed):
    """Property: with weight decay (the loop moves the params chunk by chunk), any tree
    cut into any chunks ends where one chunk ends; and a non-finite gradient anywhere
    (position ``bad`` in [0, 1] of the elements) leaves params and state as they were."""
    r = np.random.default_rng(seed)
    shapes = [(n,) if i % 2 else (1, n) for i, n in enumerate(sizes)]
    trees = [{f"l{i}": r.standard_normal(shape) for i, shape in enumerate(shapes)}]
    trees.append({k: v.copy() for k, v in trees[0].items()})
    if packed:
        trees = [dh.pack(t) for t in trees]
    hyper = {"weight_decay": 0.1, "learning_rate": 0.01}
    if momentum and algo != "lion":
        hyper["momentum"] = momentum
    many, one = (dh.build(algo, None, t, **hyper) for t in trees)
    many.chunk_bytes = chunk_bytes
    grads = [{k: r.standard_normal(v.shape) for k, v in trees[0].items()} for _ in range(3)]
    for g in grads[:2]:
        many.apply(g)
        one.apply(g)
    for key in trees[0]:
        np.testing.assert_array_equal(trees[0][key], trees[1][key])
    if bad is None:
        return
    flat = np.concatenate([v.ravel() for v in grads[2].values()])
    flat[min(int(bad * flat.size), flat.size - 1)] = np.nan
    refused = many.layout.unflatten(flat)
    before = snapshot(many)
    with pytest.raises(dh.NonFiniteError):
        many.apply(refused)
    assert_unchanged(many, before)


@pytest.mark.parametrize("chunk_bytes", [None, 16], ids=["one chunk", "chunks"])
@pytest.mark.parametrize("mode", ["apply", "update", "get_updates", "accumulate"])
def test_gradients_that_are_other_leaves_views_of_the_gradient_buffer_are_read_first(
        mode, chunk_bytes):
    """The update writes into the gradient buffer; a gradient tree built from its views
    at other leaves (here swapped) is read before that, not after."""
    params = {"a": np.zeros(3), "b": np.zeros(3)}
    opt = dh.SGD(None, params, learning_rate=1.0,
                 **({"accumulate": 2} if mode == "accumulate" else {}))
    if chunk_bytes is not None:
        opt.chunk_bytes = chunk_bytes
    buf = opt.gradient_buffer()
    for _ in range(2 if mode == "accumulate" else 1):
        buf["a"][...], buf["b"][...] = 1.0, 2.0
        swapped = {"a": buf["b"], "b": buf["a"]}
        if mode == "update":
            steps = opt.update(swapped)
            for key in params:
                params[key] += steps[key]
        elif mode == "get_updates":
            dh.apply_updates(opt.get_updates(swapped))
        else:
            opt.apply(swapped)
    np.testing.assert_array_equal(params["a"], [-2.0, -2.0, -2.0])
    np.testing.assert_array_equal(params["b"], [-1.0, -1.0, -1.0])


# -- the state buffers alternate -------------------------------------------------
def test_the_state_buffers_alternate_between_two_arrays():
    opt = dh.Adam(None, np.zeros(3))
    first = opt.state["m"]
    opt.apply(np.ones(3))
    second = opt.state["m"]
    assert second is not first and np.all(second != 0)
    opt.apply(np.ones(3))
    assert opt.state["m"] is first
    pairs = opt.get_updates(np.ones(3))       # targets the current buffers, changes none
    assert any(target is opt.state["m"] for target, _ in pairs)
    assert opt.state["m"] is first


def test_esgd_step_traces_the_loss_once():
    calls = [0]

    def counted(p):
        calls[0] += 1
        return 0.5 * anp.sum(p ** 2) + anp.sum(anp.sin(p))

    opt = dh.ESGD(counted, np.ones(4), rng=0)
    opt.step()
    calls[0] = 0
    opt.step()
    assert calls[0] == 1                     # the gradient's trace gives the product too
