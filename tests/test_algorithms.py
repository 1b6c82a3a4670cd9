"""The shared battery: every registered algorithm, with its settings read from
its record in reference.py.

Exact update rules are checked against independent transcriptions in
``test_reference.py`` and against torch trajectories in
``test_torch_reference.py``; this file checks behaviour every algorithm must
share: convergence, dtypes, trees, state round trips, the three update
entry points, and hyperparameter validation.
"""

import collections
import math
import os
import sys

import autograd.numpy as anp
import numpy as np
import pytest

import npdownhill as dh
from npdownhill.tree import Layout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as R  # noqa: E402

# Every test "for every algorithm" runs over the registry; each algorithm's
# settings (convergence on the quadratic and on Rosenbrock, whether it needs
# the loss, ...) are in its record in reference.py.
NAMES = dh.algorithms()


def quadratic():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    a = q @ np.diag(np.linspace(1, 10, 5)) @ q.T
    b = rng.normal(size=5)
    return a, b, np.linalg.solve(a, b)


def rosenbrock(p):
    return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2


def test_every_registered_algorithm_has_a_record_in_reference_py():
    missing = sorted(set(dh.algorithms()) - set(R.RECORDS))
    assert not missing, (f"registered algorithms without a record in tests/reference.py: "
                         f"{missing}; add each one's transcription and Record there")


def test_every_record_in_reference_py_is_a_registered_algorithm():
    unknown = sorted(set(R.RECORDS) - set(dh.algorithms()))
    assert not unknown, (f"tests/reference.py has records for names npdownhill does not register: "
                         f"{unknown} (registered: {dh.algorithms()})")


@pytest.mark.parametrize("name", NAMES)
def test_record_says_whether_the_algorithm_needs_the_loss(name):
    cls, rec = type(dh.build(name, rosenbrock, np.zeros(2))), R.record(name)
    assert cls.needs_loss == rec.needs_loss, \
        f"{name}: needs_loss is {cls.needs_loss} in the package, {rec.needs_loss} in its record"


def _unless_kept(name, **kwargs):
    """``kwargs`` without what the record keeps at its defaults (NAG's momentum)."""
    keep = R.record(name).keep_default
    return {key: value for key, value in kwargs.items() if key not in keep}


@pytest.mark.parametrize("name", NAMES)
def test_converges_on_a_quadratic(name):
    a, b, x_star = quadratic()
    rec = R.record(name)
    kwargs = dict(rec.quad)
    if rec.quad_decay:
        lr0 = kwargs.pop("learning_rate",
                         dh.build(name, rosenbrock, np.zeros(2)).hyper["learning_rate"])
        kwargs["learning_rate"] = dh.schedules.exponential_decay(lr0, 0.1, 1000)
    x = np.zeros(5)
    opt = dh.build(name, lambda p: 0.5 * anp.dot(p, anp.dot(a, p)) - anp.dot(b, p), x,
                   rng=0, **kwargs)
    for _ in range(3000):
        opt.step()
    assert np.linalg.norm(x - x_star) < 1e-5


@pytest.mark.parametrize("name", NAMES)
def test_descends_rosenbrock(name):
    rec = R.record(name)
    y = np.array([-1.5, 2.0])
    opt = dh.build(name, rosenbrock, y, rng=0, learning_rate=rec.rosen_lr)
    for _ in range(3000):
        opt.step()
    assert rosenbrock(y) < rec.rosen_bar


def _tree(dtype):
    rng = np.random.default_rng(3)
    return {"layers": [{"W": rng.normal(size=(3, 2)).astype(dtype),
                        "b": rng.normal(size=2).astype(dtype)}],
            "scale": (np.array(1.5, dtype=dtype),)}


def _tree_loss(p):
    w, b = p["layers"][0]["W"], p["layers"][0]["b"]
    return anp.sum((anp.dot(np.ones(3), w) + b - 1.0) ** 2) + (p["scale"][0] - 2.0) ** 2


@pytest.mark.parametrize("name", NAMES)
def test_float32_trees_stay_float32_and_follow_the_float64_run(name):
    t32, t64 = _tree(np.float32), _tree(np.float64)
    leaves32 = [leaf for leaf in Layout(t32).arrays]
    extra = R.record(name).short_runs
    o32 = dh.build(name, _tree_loss, t32, rng=0, learning_rate=1e-3, **extra)
    o64 = dh.build(name, _tree_loss, t64, rng=0, learning_rate=1e-3, **extra)
    for _ in range(20):
        o32.step()
        o64.step()
    after = Layout(t32).arrays
    assert all(a is b for a, b in zip(leaves32, after))
    assert all(leaf.dtype == np.float32 for leaf in after)
    assert all(buf.dtype == np.float32 for buf in o32.state.values() if buf.ndim)
    moved = Layout(_tree(np.float64)).read(Layout(t64).empty())
    flat32, flat64 = Layout(t32).read(np.empty(9)), Layout(t64).read(np.empty(9))
    assert not np.allclose(flat64, moved)                    # the params moved
    np.testing.assert_allclose(flat32, flat64, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", R.select(NAMES, lambda rec: not rec.needs_loss))
def test_a_nested_tree_moves_exactly_like_the_same_numbers_in_one_vector(name):
    rng = np.random.default_rng(0)
    tree = _tree(np.float64)
    layout = Layout(tree)
    vector = layout.read(layout.empty())
    kwargs = _unless_kept(name, momentum=0.5, nesterov=True, weight_decay=0.01)
    o_tree = dh.build(name, None, tree, **kwargs)
    o_vec = dh.build(name, None, vector, **kwargs)
    for _ in range(30):
        g = rng.normal(size=vector.size)
        o_tree.apply(layout.unflatten(g))
        o_vec.apply(g)
    np.testing.assert_array_equal(layout.read(layout.empty()), vector)


@pytest.mark.parametrize("name", [name for name in NAMES
                                  if name in R.RECORDS and R.RECORDS[name].needs_loss])
def test_a_loss_needing_rule_on_a_nested_tree_matches_the_flat_vector(name):
    tree = _tree(np.float64)
    layout = Layout(tree)
    vector = layout.read(layout.empty())
    o_tree = dh.build(name, _tree_loss, tree, rng=5)
    o_vec = dh.build(name, lambda v: _tree_loss(layout.unflatten(v)), vector, rng=5)
    for _ in range(30):
        o_tree.step()
        o_vec.step()
    np.testing.assert_allclose(layout.read(layout.empty()), vector, rtol=1e-12)


Point = collections.namedtuple("Point", "w b")


def _pair_loss(w, b):
    return anp.sum((w - anp.array([1.0, -2.0])) ** 2 * anp.array([1.0, 5.0])) + (b - 0.5) ** 2


@pytest.mark.parametrize("name", NAMES)
def test_a_namedtuple_tree_moves_exactly_like_a_plain_tuple(name):
    """autograd cannot trace namedtuples: the package differentiates over their leaves."""
    named = Point(np.array([0.3, 0.1]), np.array(0.0))
    plain = (np.array([0.3, 0.1]), np.array(0.0))
    o_named = dh.build(name, lambda p: _pair_loss(p.w, p.b), named, rng=4)
    o_plain = dh.build(name, lambda p: _pair_loss(p[0], p[1]), plain, rng=4)
    for _ in range(15):
        o_named.step()
        o_plain.step()
    for a, b in zip(named, plain):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(named.w, [0.3, 0.1])                # it moved


def _curved_tree_loss(p):
    """_tree_loss plus a Rosenbrock valley: quasi-Newton rules take more than 14 steps."""
    b = p["layers"][0]["b"]
    return _tree_loss(p) + 100 * (b[1] - b[0] ** 2) ** 2 + (1 - b[0]) ** 2


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_continues_identically(name):
    a = _tree(np.float64)
    b = _tree(np.float64)
    for leaf in Layout(b).arrays:
        leaf += 10.0                       # different values: load must overwrite them
    loss = _curved_tree_loss if R.record(name).line_search else _tree_loss
    oa = dh.build(name, loss, a, rng=1, **_unless_kept(name, momentum=0.3))
    ob = dh.build(name, loss, b, rng=99, **_unless_kept(name, momentum=0.3))
    for _ in range(7):
        oa.step()
    ob.load_state_dict(oa.state_dict())
    for _ in range(7):
        oa.step()
        ob.step()
    for x, y in zip(Layout(a).arrays, Layout(b).arrays):
        np.testing.assert_array_equal(x, y)
    for key, buf in oa.state.items():
        np.testing.assert_array_equal(buf, ob.state[key])
    assert oa.updates == ob.updates == 14


@pytest.mark.parametrize("name", R.select(NAMES, lambda rec: not rec.needs_loss))
def test_update_apply_and_get_updates_take_the_same_step(name):
    rng = np.random.default_rng(2)
    x1, x2, x3 = (np.array([0.5, -1.0, 2.0]) for _ in range(3))
    o1, o2, o3 = (dh.build(name, None, x, **_unless_kept(name, momentum=0.5))
                  for x in (x1, x2, x3))
    for _ in range(10):
        g = rng.normal(size=3)
        o1.apply(g)
        x2 += o2.update(g)
        before = {k: v.copy() for k, v in o3.state.items()}
        x3_before = x3.copy()
        pairs = o3.get_updates(g)
        np.testing.assert_array_equal(x3, x3_before)                  # nothing mutated...
        for k, v in o3.state.items():
            np.testing.assert_array_equal(v, before[k])
        dh.apply_updates(pairs)                                        # ...until applied
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(x1, x3)
    assert o1.updates == o2.updates == o3.updates == 10


def _numeric_hypers(name):
    cls = type(dh.build(name, rosenbrock, np.zeros(2)))
    for hyper, spec in cls._hypers.items():
        if isinstance(spec.default, float) and not isinstance(spec.default, bool):
            yield cls, hyper


@pytest.mark.parametrize("cls, hyper", [pair for name in NAMES for pair in _numeric_hypers(name)],
                         ids=lambda v: v.__name__ if isinstance(v, type) else v)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, "0.1", True])
def test_bad_hyperparameters_are_refused_with_their_name(cls, hyper, bad):
    loss = rosenbrock if cls.needs_loss else None
    kind = TypeError if isinstance(bad, (str, bool)) else ValueError
    with pytest.raises(kind, match=rf"^{cls.__name__}\({hyper}=.*\): {hyper} must be"):
        cls(loss, np.zeros(2), **{hyper: bad})


# (the schedule-free rules' beta1 is an interpolation in (0, 1], not a decay factor:
# test_schedule_free.py checks it)
@pytest.mark.parametrize("cls, hyper", [(c, h) for name in NAMES for c, h in _numeric_hypers(name)
                                        if h in ("rho", "beta1", "beta2", "momentum")
                                        and not (h == "beta1" and c.own_evaluation_params)],
                         ids=lambda v: v.__name__ if isinstance(v, type) else v)
def test_decay_factors_must_be_below_one(cls, hyper):
    loss = rosenbrock if cls.needs_loss else None
    with pytest.raises(ValueError, match=rf"^{cls.__name__}\({hyper}=1\.5\): {hyper} must be in "
                                         rf"\[0, 1\); got 1\.5$"):
        cls(loss, np.zeros(2), **{hyper: 1.5})


def test_epsilon_may_be_zero():
    x = np.array([1.0, -1.0])
    opt = dh.Adam(None, x, epsilon=0.0, learning_rate=0.1)
    opt.apply(np.array([2.0, -3.0]))
    np.testing.assert_allclose(x, [0.9, -0.9])      # first Adam step is lr * sign(g)
