"""Bad input everywhere: every public entry point refuses it cleanly.

Property-based tests throw random bad values at the public API. Each call
must fail with a ``ValueError``, ``TypeError`` or ``NonFiniteError`` that

* has a message, naming the offending argument, leaf or key where there is one;
* is raised by npdownhill itself (the innermost frame of the traceback is in
  the package), never from deep inside NumPy or autograd;
* leaves the parameters (and the optimizer's state) exactly as they were.
"""

import math
import os
import warnings

import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import npdownhill as dh
from npdownhill import hyper as H
from npdownhill.registry import _REGISTRY
from npdownhill.options import RUN_OPTIONS as DRIVER_OPTIONS

PACKAGE = os.path.dirname(os.path.abspath(dh.__file__))
ALGORITHMS = dh.algorithms()
# the algorithms that take gradients from the caller (update / apply / get_updates);
# the quasi-Newton rules refuse those verbs: their line search needs the loss
GRADIENT_ALGORITHMS = [name for name in ALGORITHMS if not dh.registry.lookup(name).full_batch]
CLEAN = (ValueError, TypeError, dh.NonFiniteError)
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def loss(params, x, y):
    return anp.mean((anp.dot(x, params["w"]) + params["b"] - y) ** 2)


def data(n=24):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    return [x, x @ [1.0, -2.0, 0.5] + 0.25]


def fresh():
    return {"w": np.array([0.5, -0.25, 1.0]), "b": np.array(0.125)}


def copy_tree(tree):
    if isinstance(tree, dict):
        return {k: copy_tree(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(copy_tree(v) for v in tree)
    return tree.copy() if isinstance(tree, np.ndarray) else tree


def same_tree(a, b):
    if isinstance(a, dict):
        return (isinstance(b, dict) and a.keys() == b.keys()
                and all(same_tree(a[k], b[k]) for k in a))
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same_tree, a, b))
    if isinstance(a, np.ndarray):
        return (isinstance(b, np.ndarray) and a.dtype == b.dtype
                and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    return a is b or a == b


def optimizer_snapshot(opt):
    return {k: np.array(v, copy=True) for k, v in opt.state_dict().items()
            if k not in ("run.elapsed", "history.time")}


def snapshot_changes(a, b):
    """Keys whose values differ between two snapshots (or exist in only one)."""
    return sorted(k for k in set(a) | set(b) if k not in a or k not in b
                  or not np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f"))


def raised_in_package(err):
    """Whether the innermost frame of the exception's traceback is npdownhill code."""
    tb = err.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    return os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(PACKAGE + os.sep)


def check_refusal(call, *names, params=None, opt=None, kinds=CLEAN):
    """Run ``call()``; it must raise a clean error naming ``names``, changing nothing."""
    before_params = copy_tree(params) if params is not None else None
    before_state = optimizer_snapshot(opt) if opt is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            call()
        except kinds as err:
            message = str(err)
            assert message.strip(), f"{type(err).__name__} without a message"
            assert raised_in_package(err), \
                f"{type(err).__name__} raised outside npdownhill: {message}"
            for name in names:
                assert name in message, f"{name!r} not named in: {message}"
            error = err
        except Exception as err:   # noqa: BLE001 - any other type is the failure we look for
            pytest.fail(f"{type(err).__name__} instead of ValueError/TypeError: {err}")
        else:
            pytest.fail("bad input was accepted")
    if params is not None:
        assert same_tree(params, before_params), "the parameters changed"
    if opt is not None:
        changed = snapshot_changes(optimizer_snapshot(opt), before_state)
        assert not changed, f"the optimizer changed: {changed}"
    return error


# ---------------------------------------------------------------------------
# bad hyperparameters, for every algorithm's declared hyperparameters
# ---------------------------------------------------------------------------

class _Opaque:
    def __repr__(self):
        return "<opaque>"


UNIVERSALLY_BAD = [math.nan, math.inf, -math.inf, np.float64(np.nan), "0.1", b"1", [0.1],
                   (0.1, 0.2), complex(0.5, 0.0), np.complex128(0.5), _Opaque(),
                   np.array([0.1, 0.2]), np.array(["x"])]
NUMBER_BAD = [-1, -1e-12, True, False, np.bool_(True), None, np.array(np.nan)]
BY_CHECK = {
    H.nonnegative: NUMBER_BAD,
    H.unit_interval: NUMBER_BAD + [1, 1.0, 1.5, 7, np.float32(1.0)],
    H.boolean: [0, 1, 1.0, None, "True", "yes", np.int64(1)],
}
BY_NAME = {
    "rprop_increase": NUMBER_BAD + [1.0, 0.5, 0],
    "rprop_decrease": NUMBER_BAD + [0, 1.0, 2.0],
    "rprop_max_step": NUMBER_BAD + [0],
    "rng": [-1, True, 1.5, "seed", np.random.RandomState(0)],
    "clip_gradients": [0, -1.0, True, math.nan],
    "gradient_multipliers": [{"w": math.nan}, {"w": "2"}, {"w": True}, {"nope": 1.0},
                             {"w": [1.0]}, ["w"], "w"],
    "frozen": ["w", ["nope"], [1], [None], {"w": 1}, True],
}


NEGATIVE = st.floats(max_value=-1e-300, allow_nan=False) | st.integers(max_value=-1)
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
JUNK = (st.text(max_size=5) | st.binary(max_size=3)
        | st.lists(st.floats(), min_size=1, max_size=3) | st.complex_numbers(allow_nan=False))
GENERATED_BAD = {
    H.nonnegative: NEGATIVE,
    H.unit_interval: NEGATIVE | st.floats(min_value=1.0, allow_infinity=False) | st.integers(1),
    H.boolean: st.integers() | st.floats(),
}
GENERATED_BY_NAME = {
    "rng": st.integers(max_value=-1) | st.floats(allow_nan=False),
    "clip_gradients": NEGATIVE | st.just(0.0),
    "rprop_increase": st.floats(max_value=1.0, allow_nan=False),
    "rprop_decrease": NEGATIVE | st.floats(min_value=1.0, allow_infinity=False),
    "rprop_max_step": NEGATIVE | st.just(0),
}


def bad_values(algo, name):
    """A strategy of values ``name`` must refuse: fixed tricky ones and generated ones."""
    spec = _REGISTRY[algo]._hypers[name]
    fixed = list(BY_NAME.get(name, BY_CHECK.get(spec.check, NUMBER_BAD))) + UNIVERSALLY_BAD
    generated = GENERATED_BY_NAME.get(name, GENERATED_BAD.get(spec.check, NEGATIVE))
    if name in ("gradient_multipliers", "frozen"):
        generated = NON_FINITE | st.floats(allow_nan=False)
    return st.sampled_from(fixed) | generated | NON_FINITE | JUNK


HYPER_CASES = st.sampled_from(ALGORITHMS).flatmap(
    lambda algo: st.tuples(st.just(algo), st.sampled_from(sorted(_REGISTRY[algo]._hypers))).flatmap(
        lambda an: st.tuples(st.just(an[0]), st.just(an[1]), bad_values(*an))))

ENTRY_POINTS = ["build", "class", "set_hyperparameters", "iterate", "minimize", "opt.minimize"]


def call_with_hyper(entry, algo, kwargs, params, opt):
    cls = _REGISTRY[algo]
    if entry == "build":
        return lambda: dh.build(algo, loss, params, **kwargs)
    if entry == "class":
        return lambda: cls(loss, params, **kwargs)
    if entry == "set_hyperparameters":
        return lambda: opt.set_hyperparameters(**kwargs)
    if entry == "iterate":
        return lambda: opt.iterate(data(), **kwargs)
    if entry == "minimize":
        return lambda: dh.minimize(loss, params, data(), algo=algo, max_epochs=1, **kwargs)
    return lambda: opt.minimize(data(), max_epochs=1, **kwargs)


@SETTINGS
@given(case=HYPER_CASES, entry=st.sampled_from(ENTRY_POINTS))
def test_bad_hyperparameter_values_are_refused(case, entry):
    algo, name, value = case
    params = fresh()
    opt = dh.build(algo, loss, params)
    hyper_before = dict(opt.hyper)
    check_refusal(call_with_hyper(entry, algo, {name: value}, params, opt), name,
                  params=params, opt=opt)
    assert opt.hyper.keys() == hyper_before.keys()
    assert all(opt.hyper[k] is hyper_before[k] or opt.hyper[k] == hyper_before[k]
               for k in hyper_before)


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_every_declared_hyperparameter_refuses_nan_and_strings(algo):
    for name in _REGISTRY[algo]._hypers:
        for value in (math.nan, "1e-3", [1.0]):
            check_refusal(lambda: dh.build(algo, loss, fresh(), **{name: value}), name)


@pytest.mark.parametrize("alias, canonical, value", [
    ("lr", "learning_rate", math.nan), ("lr", "learning_rate", -1.0),
    ("b1", "beta1", 1.0), ("beta2_halflife", "beta2", 0), ("rms_regularizer", "epsilon", -1),
    ("rms_halflife", "rms_halflife", math.inf),
])
def test_bad_values_through_aliases(alias, canonical, value):
    algo = "rmsprop" if alias == "rms_halflife" else "adam"
    check_refusal(lambda: dh.build(algo, loss, fresh(), **{alias: value}), canonical)


def test_hyperparameter_given_twice_is_refused():
    check_refusal(lambda: dh.build("adam", loss, fresh(), lr=0.1, learning_rate=0.2),
                  "learning_rate", "lr")


def test_cross_checks_are_refused():
    check_refusal(lambda: dh.build("rprop", loss, fresh(), rprop_min_step=2.0, rprop_max_step=1.0),
                  "rprop_min_step", "rprop_max_step")
    check_refusal(lambda: dh.build("nag", loss, fresh(), nesterov=False), "nesterov")


@SETTINGS
@given(value=st.sampled_from([math.nan, -0.5, math.inf, "x", None, 1.5, np.array([1.0, 2.0])]),
       algo=st.sampled_from(ALGORITHMS), which=st.sampled_from(["learning_rate", "momentum"]))
def test_schedules_returning_bad_values_change_no_parameter(value, algo, which):
    assume(not (which == "learning_rate" and isinstance(value, float) and value == 1.5))
    params = fresh()
    x, y = data()
    # (RProp reads the learning rate at construction already)
    check_refusal(lambda: dh.build(algo, loss, params, **{which: lambda step: value}).step(x, y),
                  which, params=params)


@pytest.mark.parametrize("algo", ["adam", "rmsprop", "esgd"])
def test_bad_momentum_schedule_value_changes_no_state(algo):
    """The momentum schedule is read after the algorithm's rule has run: a value it
    refuses must not leave the rule's state (moments, curvature) advanced."""
    params = fresh()
    opt = dh.build(algo, loss, params, momentum=lambda step: 0.5 if step < 1 else math.nan)
    x, y = data()
    opt.step(x, y)
    check_refusal(lambda: opt.step(x, y), "momentum", params=params, opt=opt)


# ---------------------------------------------------------------------------
# driver options and unknown keywords
# ---------------------------------------------------------------------------

DRIVER_BAD = {
    "batch_size": ["16", 1.5, True, math.nan, [16]],          # None means the default
    "train_batches": [0, -1, 1.5, "2", True, math.inf],
    "valid_batches": [0, -3, 2.5, "1", False],
    "max_updates": [-1, 1.5, "10", math.nan, True],
    "max_epochs": [-1, 0.5, "3", math.inf, False],
    "validate_every": [0, -1, 1.5, "1", True, None],
    "patience": [-1, 2.5, "5", math.nan, True],
    "min_improvement": [-0.1, math.nan, "0.1", True, None],
    "callback": [3, "print", [print]],
    "checkpoint": [3, 1.5, ["a.npz"], True],
    "checkpoint_every": [0, -2, 1.5, "1", True, None],
    "on_nonfinite": ["ignore", None, 1, "RAISE", True],
    "resume_changes": ["ignore", None, 1, "WARN", True],
    "progress": ["yes", 1, 0.5, [True]],
    "monitor": ["err", "Loss", None, 3, ["loss"]],     # only 'loss' is produced here
    "mode": ["MIN", "maximize", None, 1, True],
}


@SETTINGS
@given(option=st.sampled_from(sorted(DRIVER_OPTIONS)).flatmap(
    lambda name: st.tuples(st.just(name), st.sampled_from(DRIVER_BAD[name]))),
    entry=st.sampled_from(["minimize", "opt.minimize", "iterate", "build"]))
def test_bad_driver_options_are_refused(option, entry):
    name, value = option
    params = fresh()
    opt = dh.build("adam", loss, params)
    calls = {
        "minimize": lambda: dh.minimize(loss, params, data(), **{name: value}),
        "opt.minimize": lambda: opt.minimize(data(), **{name: value}),
        "iterate": lambda: opt.iterate(data(), **{name: value}),
        "build": lambda: dh.build("adam", loss, params, **{name: value}),
    }
    check_refusal(calls[entry], name, params=params, opt=opt)


def test_driver_option_names_are_all_covered():
    assert set(DRIVER_BAD) == set(DRIVER_OPTIONS)


KNOWN = set(DRIVER_OPTIONS) | {"loss", "params", "train", "valid", "algo", "monitors",
                               "monitor_gradients", "batch_size", "train_batches",
                               "valid_batches"}
for _cls in _REGISTRY.values():
    KNOWN |= set(_cls._hypers) | set(_cls._aliases)


@SETTINGS
@given(name=st.from_regex(r"[a-z][a-z_0-9]{0,15}", fullmatch=True).filter(lambda n: n not in KNOWN),
       entry=st.sampled_from(["build", "class", "set_hyperparameters", "iterate", "minimize",
                              "opt.minimize"]),
       algo=st.sampled_from(ALGORITHMS))
def test_unknown_keywords_are_refused_by_name(name, entry, algo):
    params = fresh()
    opt = dh.build(algo, loss, params)
    err = check_refusal(call_with_hyper(entry, algo, {name: 0.1}, params, opt), repr(name),
                        params=params, opt=opt, kinds=(TypeError,))
    assert "unknown" in str(err)


@pytest.mark.parametrize("typo, meant", [
    ("learning_rat", "learning_rate"), ("patiense", "patience"), ("max_epoch", "max_epochs"),
    ("beta_1", "beta1"), ("momentun", "momentum")])
def test_typos_get_a_suggestion(typo, meant):
    params = fresh()
    err = check_refusal(lambda: dh.minimize(loss, params, data(), algo="adam", **{typo: 1}),
                        repr(typo), params=params, kinds=(TypeError,))
    assert f"did you mean {meant!r}" in str(err)


# ---------------------------------------------------------------------------
# bad parameter trees
# ---------------------------------------------------------------------------

def _readonly():
    a = np.zeros(2)
    a.flags.writeable = False
    return a


BAD_LEAVES = {
    "int array": lambda: np.arange(3),
    "bool array": lambda: np.zeros(2, dtype=bool),
    "object array": lambda: np.array([1.0, None], dtype=object),
    "complex array": lambda: np.zeros(2, dtype=complex),
    "string array": lambda: np.array(["a", "b"]),
    "python float": lambda: 1.5,
    "python int": lambda: 2,
    "numpy float scalar": lambda: np.float64(1.0),
    "None": lambda: None,
    "string": lambda: "w",
    "empty array": lambda: np.zeros(0),
    "zero-size 2-d": lambda: np.zeros((3, 0)),
    "read-only": _readonly,
    "datetime": lambda: np.array(["2020-01-01"], dtype="datetime64[D]"),
}

NAMES = st.text(alphabet="abcdefgh_", min_size=1, max_size=6)
GOOD_LEAF = st.sampled_from([(), (1,), (3,), (2, 2)]).map(lambda s: np.zeros(s))


@st.composite
def tree_with_one_bad_leaf(draw):
    """A param tree of good leaves with one bad leaf at a random place; its name."""
    keys = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    bad_key = draw(st.sampled_from(keys))
    bad = BAD_LEAVES[draw(st.sampled_from(sorted(BAD_LEAVES)))]()
    nest = draw(st.sampled_from(["dict", "list", "nested"]))
    tree = {k: draw(GOOD_LEAF) for k in keys}
    if nest == "dict":
        tree[bad_key] = bad
        return tree, bad_key
    if nest == "list":
        tree[bad_key] = [draw(GOOD_LEAF), bad]
        return tree, f"{bad_key}.1"
    tree[bad_key] = {"layers": [{"W": draw(GOOD_LEAF), "b": bad}]}
    return tree, f"{bad_key}.layers.0.b"


@SETTINGS
@given(case=tree_with_one_bad_leaf(), algo=st.sampled_from(ALGORITHMS),
       entry=st.sampled_from(["build", "class", "minimize", "pack"]))
def test_bad_leaves_are_refused_by_name(case, algo, entry):
    tree, name = case
    calls = {
        "build": lambda: dh.build(algo, lambda p: 0.0, tree),
        "class": lambda: _REGISTRY[algo](lambda p: 0.0, tree),
        "minimize": lambda: dh.minimize(lambda p: 0.0, tree, algo=algo, max_epochs=1),
        "pack": lambda: dh.pack(tree),
    }
    check_refusal(calls[entry], repr(name), params=tree)


@pytest.mark.parametrize("tree, words", [
    ({}, ["no leaves"]),
    ([], ["no leaves"]),
    ({"a": {}, "b": []}, ["no leaves"]),
    ({1.5: np.zeros(2)}, ["1.5"]),
    ({(1, 2): np.zeros(2)}, ["(1, 2)"]),
    ({True: np.zeros(2)}, ["True"]),
    ({"a.b": np.zeros(1), "a": {"b": np.zeros(1)}}, ["'a.b'"]),
])
def test_bad_tree_shapes_are_refused(tree, words):
    check_refusal(lambda: dh.build("sgd", lambda p: 0.0, tree), *words, params=tree)


def test_leaves_sharing_memory_are_refused():
    base = np.zeros(4)
    tree = {"a": base[:3], "b": base[2:]}
    check_refusal(lambda: dh.build("sgd", lambda p: 0.0, tree), "'a'", "'b'", "share memory",
                  params=tree)
    same = np.zeros(2)
    check_refusal(lambda: dh.build("sgd", lambda p: 0.0, [same, same]), "share memory")


# ---------------------------------------------------------------------------
# gradients that do not match the params: update / apply / get_updates / set_params
# ---------------------------------------------------------------------------

PARAMS_SHAPES = {"w": (3,), "b": (), "layers": [{"W": (2, 2)}, {"W": (2,)}]}


def make_params():
    return {"w": np.linspace(-1, 1, 3), "b": np.array(0.5),
            "layers": [{"W": np.arange(4.0).reshape(2, 2)}, {"W": np.array([1.0, -1.0])}]}


def like(params, fn):
    return {"w": fn(params["w"]), "b": fn(params["b"]),
            "layers": [{"W": fn(params["layers"][0]["W"])}, {"W": fn(params["layers"][1]["W"])}]}


LEAF_PATHS = [("w",), ("b",), ("layers", 0, "W"), ("layers", 1, "W")]


def _set(tree, path, value):
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


def _name(path):
    return ".".join(str(p) for p in path)


MUTATIONS = {
    # name: (mutate(grads, path) -> None, exception kinds, words in the message)
    "wrong shape": (lambda g, p: _set(g, p, np.ones(7)), (ValueError,), ["shape", "(7,)"]),
    "extra axis": (lambda g, p: _set(g, p, np.ones((1, 7))), (ValueError,), ["shape"]),
    "string": (lambda g, p: _set(g, p, "0.1"), (TypeError, ValueError), []),
    "None": (lambda g, p: _set(g, p, None), (TypeError, ValueError), []),
    "complex": (lambda g, p: _set(g, p, np.zeros(np.shape(_get(g, p)), complex)), (TypeError,),
                ["complex"]),
    "object": (lambda g, p: _set(g, p, np.zeros(np.shape(_get(g, p)), object)), (TypeError,), []),
    "nested dict": (lambda g, p: _set(g, p, {"x": _get(g, p)}), (ValueError,), []),
    "list leaf": (lambda g, p: _set(g, p, [0.0] * 3), (ValueError, TypeError), []),
    "nan": (lambda g, p: _get(g, p).__setitem__(..., np.nan), (dh.NonFiniteError,), []),
    "inf": (lambda g, p: _get(g, p).__setitem__(..., -np.inf), (dh.NonFiniteError,), []),
}


def _get(tree, path):
    for key in path:
        tree = tree[key]
    return tree


STRUCTURE_MUTATIONS = {
    "missing key": (lambda g: g.pop("b"), ["missing", "'b'"]),
    "extra key": (lambda g: g.__setitem__("extra", np.zeros(1)), ["unexpected", "'extra'"]),
    "short list": (lambda g: g["layers"].pop(), ["length 2"]),
    "long list": (lambda g: g["layers"].append({"W": np.zeros(2)}), ["length 2"]),
    "tuple for dict": (lambda g: g.__setitem__("layers", ({"W": np.zeros((2, 2))}, 3)), []),
    "dict for list": (lambda g: g.__setitem__("layers", {"0": {"W": np.zeros((2, 2))}}), ["list"]),
    "renamed key": (lambda g: g.__setitem__("bb", g.pop("b")), ["'b'", "'bb'"]),
}


def _grads_call(opt, method, grads):
    if method == "set_params":
        return lambda: opt.set_params(grads)
    return lambda: getattr(opt, method)(grads, *data(8))


METHODS = ["update", "apply", "get_updates", "set_params"]


@SETTINGS
@given(algo=st.sampled_from(GRADIENT_ALGORITHMS), method=st.sampled_from(METHODS),
       mutation=st.sampled_from(sorted(MUTATIONS)), path=st.sampled_from(LEAF_PATHS))
def test_mismatched_gradient_leaves_are_refused(algo, method, mutation, path):
    assume(not (method == "set_params" and mutation in ("nan", "inf")))
    params = make_params()
    loss_fn = lambda p, x, y: anp.sum(p["w"] ** 2) + p["b"] ** 2  # noqa: E731
    opt = dh.build(algo, loss_fn, params, gradient_noise_scale=0.01, rng=0)
    grads = like(params, lambda a: np.full(np.shape(a), 0.1))
    mutate, kinds, words = MUTATIONS[mutation]
    mutate(grads, path)
    err = check_refusal(_grads_call(opt, method, grads), *words, params=params, opt=opt,
                        kinds=kinds)
    if mutation not in ("nested dict",):
        assert _name(path) in str(err) or repr(_name(path)) in str(err), str(err)


@pytest.mark.parametrize("method", METHODS)
def test_bool_gradients_are_refused(method):
    """Booleans are not real numbers: refused like complex or object leaves, whatever the
    shape (the fast path of Layout.gather must not cast them to 0.0 / 1.0 silently)."""
    params = make_params()
    opt = dh.build("sgd", lambda p, x, y: anp.sum(p["w"] ** 2), params, rng=0)
    grads = like(params, lambda a: np.ones(np.shape(a), dtype=bool))
    check_refusal(_grads_call(opt, method, grads), "bool", params=params, opt=opt,
                  kinds=(TypeError,))


@SETTINGS
@given(algo=st.sampled_from(GRADIENT_ALGORITHMS), method=st.sampled_from(METHODS),
       mutation=st.sampled_from(sorted(STRUCTURE_MUTATIONS)))
def test_mismatched_gradient_structures_are_refused(algo, method, mutation):
    params = make_params()
    loss_fn = lambda p, x, y: anp.sum(p["w"] ** 2)  # noqa: E731
    opt = dh.build(algo, loss_fn, params, rng=0)
    grads = like(params, lambda a: np.full(np.shape(a), 0.1))
    mutate, words = STRUCTURE_MUTATIONS[mutation]
    mutate(grads)
    check_refusal(_grads_call(opt, method, grads), *words, params=params, opt=opt,
                  kinds=(ValueError, TypeError))


@pytest.mark.parametrize("method", METHODS)
def test_non_trees_as_gradients(method):
    params = make_params()
    opt = dh.build("adam", lambda p, x, y: anp.sum(p["w"] ** 2), params)
    for grads in (None, 3.0, "grads", [1.0, 2.0], np.zeros(10)):
        check_refusal(_grads_call(opt, method, grads), params=params, opt=opt)


def test_set_params_refuses_bad_targets():
    params = make_params()
    opt = dh.build("adam", lambda p: anp.sum(p["w"] ** 2), params)
    check_refusal(lambda: opt.set_params("best"), "best", params=params, opt=opt)
    check_refusal(lambda: opt.set_params("worst"), "'worst'", params=params, opt=opt)
    check_refusal(lambda: opt.set_params(None), params=params, opt=opt)


def test_apply_updates_refuses_bad_pairs():
    target = np.zeros(3)
    for pairs, words in (([(target, np.ones(4))], ["shape"]), ([(target,)], ["pair"]),
                         ([([0.0], np.ones(1))], ["ndarray"]), ([3], ["pair"]),
                         ([(target, np.ones(3)), (target, np.ones(2))], ["item 1"])):
        check_refusal(lambda: dh.apply_updates(pairs), *words)
        assert np.array_equal(target, np.zeros(3)), "apply_updates wrote before refusing"


# ---------------------------------------------------------------------------
# bad losses and monitors
# ---------------------------------------------------------------------------

NOT_CALLABLE = [3, "loss", [lambda p: 0.0], np.zeros(2), {"loss": 1}]


@pytest.mark.parametrize("bad", NOT_CALLABLE)
@pytest.mark.parametrize("algo", ["sgd", "adam", "esgd"])
def test_non_callable_losses_are_refused(bad, algo):
    params = fresh()
    check_refusal(lambda: dh.build(algo, bad, params), "loss", params=params)
    check_refusal(lambda: dh.minimize(bad, params, data(), algo=algo), "loss", params=params)


BAD_RESULTS = {
    # name: (fn(value) -> bad result, exception kinds, words in the message)
    "vector": (lambda v: anp.stack([v, v]), (ValueError,), ["(2,)"]),
    "matrix": (lambda v: anp.reshape(anp.stack([v, v, v, v]), (2, 2)), (ValueError,), ["(2, 2)"]),
    "size-1 vector": (lambda v: anp.reshape(v, (1,)), (ValueError,), ["(1,)"]),
    "python int": (lambda v: 3, (TypeError,), ["int"]),
    "numpy int": (lambda v: np.int64(3), (TypeError,), ["int64"]),
    "bool": (lambda v: True, (TypeError,), ["bool"]),
    "string": (lambda v: "0.5", (TypeError,), ["str"]),
    "None": (lambda v: None, (TypeError,), ["NoneType"]),
    "complex": (lambda v: complex(1.0, 0.0), (TypeError,), ["complex"]),
    "complex array": (lambda v: np.complex128(1.0), (TypeError,), ["complex"]),
    "list": (lambda v: [0.5], (ValueError, TypeError), ["(1,)"]),
    "dict": (lambda v: {"loss": 0.5}, (TypeError,), ["dict"]),
}


@SETTINGS
@given(result=st.sampled_from(sorted(BAD_RESULTS)), algo=st.sampled_from(ALGORITHMS),
       entry=st.sampled_from(["step", "evaluate", "minimize", "opt.minimize"]))
def test_losses_returning_bad_values_are_refused(result, algo, entry):
    make_bad, kinds, words = BAD_RESULTS[result]

    def bad_loss(params, x, y):
        return make_bad(loss(params, x, y))

    params = fresh()
    opt = dh.build(algo, bad_loss, params)
    calls = {
        "step": lambda: opt.step(*data(8)),
        "evaluate": lambda: opt.evaluate(data()),
        "minimize": lambda: dh.minimize(bad_loss, params, data(), algo=algo, max_epochs=2),
        "opt.minimize": lambda: opt.minimize(data(), max_epochs=2),
    }
    # (a failed run may leave its counters on the optimizer; the parameters must not move)
    check_refusal(calls[entry], "loss", *words, params=params,
                  opt=opt if entry in ("step", "evaluate") else None, kinds=kinds)


@pytest.mark.parametrize("monitors, words", [
    ({"m": 3}, ["'m'", "callable"]),
    ([("m",)], ["pair"]),
    ([(3, lambda p, x, y: 0.0)], ["names"]),
    ({"loss": lambda p, x, y: 0.0}, ["'loss'"]),
    ([("m", lambda p, x, y: 0.0), ("m", lambda p, x, y: 1.0)], ["'m'", "twice"]),
    (42, ["monitors"]),
])
def test_bad_monitors_are_refused(monitors, words):
    params = fresh()
    check_refusal(lambda: dh.build("adam", loss, params, monitors=monitors), *words, params=params)
    check_refusal(lambda: dh.minimize(loss, params, data(), monitors=monitors), *words,
                  params=params)


@pytest.mark.parametrize("value", [np.zeros(3), "x", None, {"a": 1}, complex(1, 1)])
def test_monitors_returning_non_numbers_are_refused(value):
    params = fresh()
    opt = dh.build("adam", loss, params, monitors={"odd": lambda p, x, y: value})
    check_refusal(lambda: opt.step(*data(8)), "'odd'", params=params, opt=opt)
    check_refusal(lambda: opt.minimize(data(), max_epochs=1), "'odd'", params=params)


def test_monitor_gradients_must_be_a_bool():
    params = fresh()
    check_refusal(lambda: dh.build("adam", loss, params, monitor_gradients="yes"),
                  "monitor_gradients", params=params)


# ---------------------------------------------------------------------------
# build and algorithm names
# ---------------------------------------------------------------------------

@SETTINGS
@given(name=st.text(min_size=0, max_size=12).filter(lambda n: n.lower() not in ALGORITHMS))
def test_unknown_algorithm_names_are_refused(name):
    params = fresh()
    err = check_refusal(lambda: dh.build(name, loss, params), repr(name), params=params,
                        kinds=(ValueError,))
    assert "adam" in str(err) and "sgd" in str(err)       # the known names are listed
    check_refusal(lambda: dh.minimize(loss, params, data(), algo=name), repr(name),
                  params=params, kinds=(ValueError,))


def test_close_algorithm_names_get_a_suggestion():
    err = check_refusal(lambda: dh.build("adamm", loss, fresh()), "'adamm'", kinds=(ValueError,))
    assert "did you mean 'adam'" in str(err)
    assert dh.build("ADAM", loss, fresh()).name == "adam"


@pytest.mark.parametrize("algo", [3, None, 1.5, dh.Dataset, object, ["adam"]])
def test_algo_of_another_type_is_refused(algo):
    params = fresh()
    check_refusal(lambda: dh.build(algo, loss, params), "algo", params=params, kinds=(TypeError,))


def test_build_needs_params_and_own_instance():
    check_refusal(lambda: dh.build("adam", loss), "params", kinds=(TypeError,))
    opt = dh.build("adam", loss, fresh())
    check_refusal(lambda: dh.build(opt, loss, fresh()), "params")
    check_refusal(lambda: dh.build(opt, lambda p: 0.0), "loss")


# ---------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------

EMPTY_INPUTS = [
    np.zeros((0, 3)), [np.zeros((0, 3)), np.zeros(0)], [], (), np.zeros((4, 0)).T,
]


@pytest.mark.parametrize("inputs", EMPTY_INPUTS, ids=range(len(EMPTY_INPUTS)))
def test_empty_datasets_are_refused(inputs):
    check_refusal(lambda: dh.Dataset(inputs), kinds=(ValueError,))
    params = fresh()
    check_refusal(lambda: dh.minimize(loss, params, inputs, max_epochs=1), params=params,
                  kinds=(ValueError,))
    check_refusal(lambda: dh.minimize(loss, params, data(), valid=inputs, max_epochs=1),
                  params=params, kinds=(ValueError,))


@SETTINGS
@given(inputs=st.sampled_from([
    [np.zeros((5, 3)), np.zeros(4)], np.float64(1.0), np.array(1.0), "data", {"x": np.zeros(3)},
    [np.zeros(3), "y"], [[1.0, 2.0]], 5, [None],
]), entry=st.sampled_from(["Dataset", "minimize", "evaluate"]))
def test_bad_dataset_inputs_are_refused(inputs, entry):
    params = fresh()
    opt = dh.build("sgd", loss, params)
    calls = {
        "Dataset": lambda: dh.Dataset(inputs),
        "minimize": lambda: dh.minimize(loss, params, inputs, max_epochs=1),
        "evaluate": lambda: opt.evaluate(inputs),
    }
    check_refusal(calls[entry], params=params, opt=opt)


@pytest.mark.parametrize("kwargs, name", [
    ({"batch_size": "8"}, "batch_size"), ({"batch_size": 2.0}, "batch_size"),
    ({"iteration_size": 0}, "iteration_size"), ({"axis": 3}, "axis"), ({"axis": 1.0}, "axis"),
    ({"rng": -1}, "rng"), ({"rng": "seed"}, "rng"), ({"shuffle": 1}, "shuffle"),
    ({"name": 3}, "name"),
])
def test_bad_dataset_arguments_are_refused(kwargs, name):
    check_refusal(lambda: dh.Dataset(data(), **kwargs), name)


def test_data_with_nan_warns_on_construction_and_does_not_crash():
    x, y = data()
    x = x.copy()
    x[3, 1] = np.nan
    with pytest.warns(RuntimeWarning, match="non-finite"):
        dh.Dataset([x, y])
    params = fresh()
    with pytest.warns(RuntimeWarning, match="non-finite"):
        dh.minimize(loss, params, [x, y], valid=data(), algo="sgd", batch_size=8, max_epochs=2,
                    on_nonfinite="skip", rng=0)
    assert all(np.isfinite(v).all() for v in params.values())
    params = fresh()
    with pytest.warns(RuntimeWarning, match="non-finite"):
        with pytest.raises(dh.NonFiniteError, match="epoch 1"):
            dh.minimize(loss, params, [x, y], valid=data(), algo="sgd", batch_size=8,
                        max_epochs=2, rng=0)
    assert all(np.isfinite(v).all() for v in params.values())
