"""check_grad: autograd's gradient against central finite differences.

Correct gradients pass at float64 accuracy on several losses; a custom
primitive with a wrong vjp is caught on the right leaf and element; the
caller's arrays come back bit-identical (also when the loss raises); float32
works with its looser tolerance; sampling is reproducible; bad input is
refused with messages that name the argument.
"""

import doctest
import math
from collections import namedtuple

import autograd.numpy as anp
import numpy as np
import pytest
from autograd.extend import defvjp, primitive

from npdownhill import gradcheck
from npdownhill.gradcheck import GradCheckResult, check_grad


# ---------------------------------------------------------------------------
# losses and primitives
# ---------------------------------------------------------------------------

def mlp_params(rng, dtype=np.float64):
    return {"layers": [{"W": (0.5 * rng.normal(size=(4, 6))).astype(dtype),
                        "b": (0.1 * rng.normal(size=6)).astype(dtype)},
                       {"W": (0.5 * rng.normal(size=(6, 1))).astype(dtype),
                        "b": np.zeros(1, dtype=dtype)}],
            "scale": np.array(1.3, dtype=dtype)}


def mlp_data(rng, n=40, dtype=np.float64):
    x = rng.normal(size=(n, 4)).astype(dtype)
    y = (np.sin(x[:, 0]) + 0.5 * x[:, 1] * x[:, 2]).astype(dtype)
    return x, y


def mlp(params, x, y, activation=anp.tanh):
    first, second = params["layers"]
    hidden = activation(x @ first["W"] + first["b"])
    out = (hidden @ second["W"] + second["b"])[:, 0] * params["scale"]
    return anp.mean((out - y) ** 2)


def rosenbrock(x):
    return anp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def smooth_mix(p, t):
    """exp, log and tanh, with a 0-d leaf and a tuple of leaves."""
    u, v = p["uv"]
    return (anp.sum(anp.log(1.0 + anp.exp(u * t))) + anp.sum(anp.tanh(v) ** 2 * t[:4])
            + anp.exp(-p["c"] ** 2) * anp.sum(u[:2] * v[:2]))


@primitive
def wrong_sin(x):
    return np.sin(x)


defvjp(wrong_sin, lambda ans, x: lambda g: g * 2 * np.cos(x))   # should be g * cos(x)


@primitive
def sloppy_square(x):
    return x ** 2


defvjp(sloppy_square, lambda ans, x: lambda g: g * 2 * np.abs(x))   # wrong where x < 0


def snapshot(tree):
    """Bytes, dtype, shape and identity of every leaf, to compare bit for bit."""
    out = []

    def walk(t):
        if isinstance(t, dict):
            for key in t:
                walk(t[key])
        elif isinstance(t, (list, tuple)):
            for item in t:
                walk(item)
        else:
            out.append((id(t), t.dtype, t.shape, t.tobytes()))

    walk(tree)
    return out


def names_of(result):
    return [c.name for c in result.leaves]


# ---------------------------------------------------------------------------
# correct gradients pass
# ---------------------------------------------------------------------------

def test_mlp_on_a_nested_tree_passes_at_float64_accuracy():
    rng = np.random.default_rng(0)
    params = mlp_params(rng)
    x, y = mlp_data(rng)
    result = check_grad(mlp, params, x, y)
    assert isinstance(result, GradCheckResult)
    assert result.ok and result.rtol == 1e-6
    assert list(result.errors) == ["layers.0.W", "layers.0.b", "layers.1.W", "layers.1.b",
                                   "scale"]
    assert all(error < 1e-6 for error in result.errors.values())
    assert result.max_error == max(result.errors.values()) < 1e-7
    assert result.loss == pytest.approx(float(mlp(params, x, y)), rel=0, abs=0)
    # one traced call, two plain calls at the params, two per element
    assert result.evaluations == 3 + 2 * (24 + 6 + 6 + 1 + 1)
    assert result.notes == []
    assert len(result.worst) == 5
    assert all(w.remark == "" for w in result.worst)


def test_rosenbrock_passes_and_matches_the_analytic_gradient():
    x = np.array([-1.2, 1.0, 0.7, 1.9, -0.4])
    result = check_grad(rosenbrock, x)
    assert result.ok and result.max_error < 1e-6
    assert names_of(result) == [""]
    (leaf,) = result.leaves
    # analytic derivative, independent of both autograd and the check
    g = np.zeros_like(x)
    g[:-1] += -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    np.testing.assert_allclose(leaf.autograd, g, rtol=1e-12)
    np.testing.assert_allclose(leaf.finite_difference, g, rtol=1e-7)


def test_exp_log_tanh_with_a_tuple_and_a_0d_leaf_passes():
    rng = np.random.default_rng(1)
    params = {"uv": (rng.normal(size=5), rng.normal(size=4)), "c": np.array(0.4)}
    t = rng.uniform(0.5, 1.5, size=5)
    result = check_grad(smooth_mix, params, t)
    assert result.ok
    assert set(result.errors) == {"uv.0", "uv.1", "c"}
    assert all(error < 1e-6 for error in result.errors.values())
    assert [c.size for c in result.leaves] == [5, 4, 1]


def test_a_namedtuple_tree_and_large_parameter_values_pass():
    Pair = namedtuple("Pair", "big small")
    params = Pair(np.array([3e4, -2e5]), np.array([1e-3, 2.0]))

    def loss(p):
        return anp.sum(anp.log(p.big ** 2)) + anp.sum(p.small ** 3) * anp.sum(p.big) * 1e-5

    result = check_grad(loss, params)
    assert result.ok and list(result.errors) == ["0", "1"]     # named by position
    # the step is relative for |x| > 1: h = eps**(1/3) * |x|
    h = np.finfo(np.float64).eps ** (1 / 3)
    np.testing.assert_allclose(result.leaves[0].step, h * np.abs(params.big), rtol=1e-9)
    np.testing.assert_allclose(result.leaves[1].step, [h, 2 * h], rtol=1e-9)


def test_a_leaf_whose_true_derivative_is_zero_does_not_fail():
    # d/db of (b - 0.3)**2 at b = 0.3 is exactly 0 for autograd, while the finite
    # difference sees rounding noise: the floor keeps it from looking wrong
    params = {"w": np.array([0.5, -1.5, 2.0]), "b": np.array(0.3)}

    def loss(p):
        return anp.sum(p["w"] ** 3) + 5.0 * (p["b"] - 0.3) ** 2 + 10.0

    result = check_grad(loss, params)
    assert result.leaves[1].autograd[0] == 0.0
    assert result.ok and result.errors["b"] < 1e-6


def test_errors_follow_their_documented_definitions():
    rng = np.random.default_rng(2)
    params = mlp_params(rng)
    x, y = mlp_data(rng)
    result = check_grad(wrongly_activated, params, x, y)
    a = np.concatenate([c.autograd for c in result.leaves])
    d = np.concatenate([c.finite_difference for c in result.leaves])
    floor = 1e-3 * max(np.linalg.norm(a), np.linalg.norm(d))
    assert result.floor == pytest.approx(floor, rel=1e-12)
    for c in result.leaves:
        expected = np.linalg.norm(c.autograd - c.finite_difference) / max(
            np.linalg.norm(c.autograd), np.linalg.norm(c.finite_difference), floor)
        assert c.error == pytest.approx(expected, rel=1e-12)
        per_element = np.abs(c.autograd - c.finite_difference) / np.maximum(
            np.maximum(np.abs(c.autograd), np.abs(c.finite_difference)), floor)
        np.testing.assert_allclose(c.errors, per_element, rtol=1e-12)
    errors = np.concatenate([c.errors for c in result.leaves])
    assert [w.error for w in result.worst] == pytest.approx(np.sort(errors)[::-1][:5])
    assert result.ok == (result.max_error <= result.rtol)


# ---------------------------------------------------------------------------
# wrong gradients are caught, on the right leaf and element
# ---------------------------------------------------------------------------

def wrongly_activated(params, x, y):
    return mlp(params, x, y, activation=wrong_sin)


def test_a_wrong_vjp_is_flagged_on_the_leaves_it_feeds():
    rng = np.random.default_rng(3)
    params = mlp_params(rng)
    x, y = mlp_data(rng)
    result = check_grad(wrongly_activated, params, x, y)
    assert not result.ok
    # the vjp is twice the true derivative: |2c - c| / |2c| = 1/2 on the first layer
    assert result.errors["layers.0.W"] == pytest.approx(0.5, abs=1e-6)
    assert result.errors["layers.0.b"] == pytest.approx(0.5, abs=1e-6)
    assert result.max_error > 0.1
    # the layers after the primitive are differentiated correctly
    for name in ("layers.1.W", "layers.1.b", "scale"):
        assert result.errors[name] < 1e-6
    for w in result.worst:
        assert w.leaf.startswith("layers.0.")
        assert w.autograd == pytest.approx(2 * w.finite_difference, rel=1e-6)
        assert w.difference == w.autograd - w.finite_difference
        assert w.remark == ""                       # the finite differences are sound
    text = repr(result)
    assert "FAILED" in text and "means a wrong derivative" in " ".join(text.split())
    assert "'layers.0.W'" in text.split("worst")[0]
    line = next(l for l in text.splitlines() if l.strip().startswith("'layers.0.b'"))
    assert "above rtol" in line
    line = next(l for l in text.splitlines() if l.strip().startswith("'scale'"))
    assert "above rtol" not in line


def test_a_primitive_wrong_on_one_leaf_is_pinned_to_that_leaf_and_element():
    params = {"a": np.array([[0.7, 1.2, 0.3], [0.9, -0.8, 1.1]]),
              "b": np.array([0.2, -0.4]),
              "c": np.array(1.5)}

    def loss(p):
        # sloppy_square's vjp is wrong only where its input is negative: a[1, 1]
        return (anp.sum(sloppy_square(p["a"]) * anp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
                + anp.sum(p["b"] ** 2) * p["c"] + anp.sin(p["c"]))

    result = check_grad(loss, params)
    assert not result.ok
    assert result.errors["a"] > 0.1
    assert result.errors["b"] < 1e-6 and result.errors["c"] < 1e-6
    top = result.worst[0]
    assert (top.leaf, top.index) == ("a", (1, 1))
    # true derivative 2 * 5 * (-0.8) = -8; the sloppy vjp says +8: the sign is wrong
    assert top.finite_difference == pytest.approx(-8.0, rel=1e-8)
    assert top.autograd == 8.0
    assert top.difference == pytest.approx(16.0, rel=1e-8)
    assert top.error == pytest.approx(2.0, rel=1e-8)
    assert top.remark == ""
    assert all(w.error < 1e-6 for w in result.worst[1:])
    assert "a[1, 1]" in str(result)


def test_a_kink_is_told_apart_from_a_wrong_gradient():
    def loss(p):
        # slopes 2 (right) and 1 (left) at 0; autograd takes the left one at x = 0
        return anp.sum(anp.where(p > 0, 2.0 * p, p) * anp.array([1.0, 1.0])) + anp.sum(p ** 2)

    result = check_grad(loss, np.array([0.0, 0.8]))
    assert not result.ok
    top = result.worst[0]
    assert top.index == (0,) and top.remark == "kink"
    assert top.autograd == 1.0 and top.finite_difference == pytest.approx(1.5, rel=1e-6)
    assert any(note.startswith("'kink'") for note in result.notes)
    assert result.worst[1].error < 1e-6
    assert "wrong derivative" not in " ".join(str(result).split())   # the kink explains it


def test_at_a_minimum_the_report_blames_the_finite_differences():
    result = check_grad(rosenbrock, np.ones(4))
    assert not result.ok                          # autograd's 0 against truncation error
    assert all(w.autograd == 0.0 for w in result.worst)
    assert result.worst[0].remark == "step-sensitive"
    assert any("gradient is tiny here" in note for note in result.notes)


def test_a_random_loss_is_reported_as_not_deterministic_and_a_seeded_one_passes():
    rng = np.random.default_rng(4)
    params = mlp_params(rng)
    x, y = mlp_data(rng)

    def dropout_loss(p, x, y, seed=None):
        mask_rng = np.random.default_rng(seed)
        # one mask per example and unit: two unseeded calls never draw the same one
        mask = (mask_rng.uniform(size=(len(x), 6)) > 0.3) / 0.7
        first, second = p["layers"]
        hidden = anp.tanh(x @ first["W"] + first["b"]) * mask
        return anp.mean(((hidden @ second["W"])[:, 0] * p["scale"] - y) ** 2)

    random = check_grad(dropout_loss, params, x, y)
    assert not random.ok and not random.deterministic
    assert any("not deterministic" in note for note in random.notes)
    assert all(w.remark == "" for w in random.worst)     # no half-step verdicts on noise
    seeded = check_grad(dropout_loss, params, x, y, 123)
    assert seeded.ok and seeded.deterministic and seeded.notes == []


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning",
                            "ignore:invalid value:RuntimeWarning")
def test_non_finite_derivatives_make_the_error_infinite():
    result = check_grad(lambda p: anp.sum(anp.sqrt(p)), np.array([2.0, 0.0, 3.0]))
    assert not result.ok and result.max_error == math.inf
    assert result.worst[0].index == (1,) and result.worst[0].error == math.inf
    assert any("non-finite derivative" in note and "<root>[1]" in note
               for note in result.notes)


# ---------------------------------------------------------------------------
# the caller's arrays are never touched
# ---------------------------------------------------------------------------

def test_the_callers_arrays_are_bit_identical_after_a_check():
    rng = np.random.default_rng(5)
    params = mlp_params(rng)
    params["layers"][0]["b"][2] = -0.0            # a signed zero must survive too
    x, y = mlp_data(rng)
    before = snapshot(params)
    data_before = (x.tobytes(), y.tobytes())
    seen = []

    def loss(p, x, y):
        seen.append(p["layers"][0]["W"])
        return wrongly_activated(p, x, y)

    check_grad(loss, params, x, y)
    assert snapshot(params) == before
    assert (x.tobytes(), y.tobytes()) == data_before
    # the loss is handed copies, never the caller's arrays
    assert all(not np.shares_memory(w, params["layers"][0]["W"]) for w in seen[1:])


def test_the_callers_arrays_are_bit_identical_when_the_loss_raises_midway():
    rng = np.random.default_rng(6)
    params = mlp_params(rng)
    x, y = mlp_data(rng)
    before = snapshot(params)
    calls = []

    def flaky(p, x, y):
        calls.append(1)
        if len(calls) == 10:                      # inside the finite differences
            raise RuntimeError("the loss broke")
        return mlp(p, x, y)

    with pytest.raises(RuntimeError, match="the loss broke") as info:
        check_grad(flaky, params, x, y)
    assert snapshot(params) == before
    if hasattr(info.value, "__notes__"):           # Python >= 3.11 says where it happened
        assert "finite-difference evaluation" in info.value.__notes__[0]
        assert "'layers.0.W'" in info.value.__notes__[0]


def test_read_only_params_are_accepted_and_a_loss_cannot_write_to_its_params():
    w = np.array([0.5, -1.0, 2.0])
    w.flags.writeable = False
    assert check_grad(lambda p: anp.sum(p["w"] ** 2), {"w": w}).ok

    v = np.array([0.5, -1.0, 2.0])
    before = v.tobytes()

    def vandal(p):
        p["v"][0] = 100.0              # refused: traced arrays and the copies alike
        return anp.sum(p["v"] ** 2)

    with pytest.raises((TypeError, ValueError)):
        check_grad(vandal, {"v": v})
    assert v.tobytes() == before

    def sneaky(p):
        if isinstance(p["v"], np.ndarray):         # writes only when not traced
            p["v"][0] = 100.0
        return anp.sum(p["v"] ** 2)

    with pytest.raises(ValueError, match="read-only"):
        check_grad(sneaky, {"v": v})
    assert v.tobytes() == before


# ---------------------------------------------------------------------------
# float32
# ---------------------------------------------------------------------------

def test_float32_params_pass_with_the_float32_tolerance():
    rng = np.random.default_rng(7)
    params = mlp_params(rng, np.float32)
    x, y = mlp_data(rng, dtype=np.float32)
    assert np.asarray(mlp(params, x, y)).dtype == np.float32
    result = check_grad(mlp, params, x, y)
    assert result.rtol == 1e-2
    assert result.ok
    # float32 arithmetic: well short of float64 accuracy, well within 1e-2
    assert 1e-7 < result.max_error < 1e-2
    h = np.finfo(np.float32).eps ** (1 / 3)          # about 4.9e-3
    assert result.leaves[-1].step[0] == pytest.approx(h * 1.3, rel=1e-3)
    # a strict tolerance is the caller's choice, and float32 cannot meet it
    assert not check_grad(mlp, params, x, y, rtol=1e-9).ok


def test_a_wrong_vjp_is_still_caught_in_float32():
    rng = np.random.default_rng(8)
    params = mlp_params(rng, np.float32)
    x, y = mlp_data(rng, dtype=np.float32)
    result = check_grad(wrongly_activated, params, x, y)
    assert not result.ok
    assert result.errors["layers.0.W"] == pytest.approx(0.5, abs=1e-2)
    assert result.errors["layers.1.W"] < 1e-2


def test_float32_params_with_float64_data_use_the_float32_step():
    rng = np.random.default_rng(9)
    params = mlp_params(rng, np.float32)
    x, y = mlp_data(rng)                             # float64: the loss is float64
    result = check_grad(mlp, params, x, y)
    assert result.ok and result.rtol == 1e-2
    assert all(c.step.min() > 4e-3 for c in result.leaves)


# ---------------------------------------------------------------------------
# sampling and leaf selection
# ---------------------------------------------------------------------------

def big_problem():
    rng = np.random.default_rng(10)
    params = {"W": rng.normal(size=(30, 20)), "b": rng.normal(size=20),
              "s": np.array(0.7)}
    x = rng.normal(size=(15, 30))

    def loss(p, x):
        return anp.mean(anp.tanh(x @ p["W"] + p["b"]) ** 2) * p["s"]

    return loss, params, x


def test_max_elements_samples_reproducibly():
    loss, params, x = big_problem()
    first = check_grad(loss, params, x, max_elements=25)
    again = check_grad(loss, params, x, max_elements=25)
    other = check_grad(loss, params, x, max_elements=25, seed=1)
    w, b, s = first.leaves
    assert (len(w.indices), w.size) == (25, 600)
    assert (len(b.indices), b.size) == (20, 20)    # small leaves are checked in full
    assert (len(s.indices), s.size) == (1, 1)
    assert np.all(np.diff(w.indices) > 0) and 0 <= w.indices[0] and w.indices[-1] < 600
    np.testing.assert_array_equal(w.indices, again.leaves[0].indices)
    np.testing.assert_array_equal(w.finite_difference, again.leaves[0].finite_difference)
    assert first.errors == again.errors
    assert not np.array_equal(w.indices, other.leaves[0].indices)
    assert first.evaluations == 3 + 2 * (25 + 20 + 1)
    assert first.ok
    assert "25 of 600" in str(first)
    # the sample of a leaf does not depend on which other leaves are checked
    alone = check_grad(loss, params, x, max_elements=25, leaves=["W"])
    np.testing.assert_array_equal(alone.leaves[0].indices, w.indices)


def test_leaves_restricts_the_check():
    rng = np.random.default_rng(11)
    params = mlp_params(rng)
    x, y = mlp_data(rng)
    result = check_grad(wrongly_activated, params, x, y, leaves=["layers.1.W", "scale"])
    assert names_of(result) == ["layers.1.W", "scale"]
    assert result.ok                       # the wrong primitive only feeds layers.0
    assert result.unchecked == ["layers.0.W", "layers.0.b", "layers.1.b"]
    assert result.evaluations == 3 + 2 * (6 + 1)
    assert "not checked: 'layers.0.W', 'layers.0.b', 'layers.1.b'" in str(result)
    # a prefix ending at a '.' selects a subtree; a single string is one name
    prefix = check_grad(wrongly_activated, params, x, y, leaves=["layers.0"])
    assert names_of(prefix) == ["layers.0.W", "layers.0.b"] and not prefix.ok
    assert names_of(check_grad(mlp, params, x, y, leaves="scale")) == ["scale"]
    # layout order, whatever the order asked for
    assert names_of(check_grad(mlp, params, x, y, leaves=["scale", "layers.1.b"])) == [
        "layers.1.b", "scale"]


def test_worst_sets_how_many_elements_are_listed():
    loss, params, x = big_problem()
    assert len(check_grad(loss, params, x, max_elements=5, worst=3).worst) == 3
    assert check_grad(loss, params, x, max_elements=5, worst=0).worst == []


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------

def test_the_report_lists_leaves_worst_elements_and_notes():
    result = check_grad(lambda p: anp.sum(anp.sin(p["w"])) * anp.sum(p["b"] ** 2),
                        {"w": np.array([0.1, 0.2]), "b": np.array([[1.0, 2.0]])})
    text = str(result)
    assert text == repr(result) == result.report()
    lines = text.splitlines()
    assert lines[0].startswith("check_grad passed: largest leaf error ")
    assert "rtol 1e-06" in lines[0] and f"{result.evaluations} loss evaluations" in lines[0]
    assert lines[1].split() == ["leaf", "checked", "rel.", "error"]
    assert lines[2].split()[:4] == ["'w'", "2", "of", "2"]
    assert "worst elements:" in lines
    assert any(line.strip().startswith("b[0, 1]") for line in lines)


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------

def ok_loss(p, x):
    return anp.sum((x @ p["w"]) ** 2)


GOOD = {"w": np.array([0.5, -0.25])}
X = np.ones((3, 2))


@pytest.mark.parametrize("call, error, message", [
    (lambda: check_grad(3, GOOD, X), TypeError,
     r"check_grad\(loss=3\): loss must be a callable loss\(params, \*batch\); got int"),
    (lambda: check_grad(ok_loss, 1.5, X), TypeError,
     r"check_grad\(params=1.5\): params must be a param tree.*got float"),
    (lambda: check_grad(ok_loss, {"w": [0.5, 1.0]}, X), TypeError,
     r"check_grad\(params\).*'w.0'"),
    (lambda: check_grad(ok_loss, {"w": np.array([1, 2])}, X), TypeError,
     r"check_grad\(params\).*'w'"),
    (lambda: check_grad(ok_loss, {}, X), ValueError,
     r"check_grad\(params\): the param tree has no leaves"),
    (lambda: check_grad(ok_loss, {"w": np.array([0.5, np.nan])}, X), ValueError,
     r"check_grad\(params\): leaf 'w' holds non-finite values \(nan at \(1,\)\)"),
    (lambda: check_grad(ok_loss, GOOD), TypeError,
     r"check_grad: the loss `ok_loss\(p, x\)` takes 2 positional arguments but will be "
     r"called with 1"),
    (lambda: check_grad(ok_loss, GOOD, X, X), TypeError,
     r"check_grad: the loss `ok_loss\(p, x\)` takes 2 positional arguments but will be "
     r"called with 3"),
    (lambda: check_grad(ok_loss, GOOD, X, eps=0.0), ValueError,
     r"check_grad\(eps=0.0\): eps must be a finite number > 0 or None for the default; "
     r"got 0.0"),
    (lambda: check_grad(ok_loss, GOOD, X, eps=-1e-6), ValueError,
     r"check_grad\(eps=-1e-06\): eps must be a finite number > 0"),
    (lambda: check_grad(ok_loss, GOOD, X, eps=math.inf), ValueError,
     r"check_grad\(eps=inf\): eps must be a finite number > 0"),
    (lambda: check_grad(ok_loss, GOOD, X, eps="small"), TypeError,
     r"check_grad\(eps='small'\): eps must be a number > 0 or None.*got str"),
    (lambda: check_grad(ok_loss, GOOD, X, eps=1e-300), ValueError,
     r"check_grad\(eps=1e-300\): the step h = eps \* max\(1, \|x\|\) = 1e-300 is lost in "
     r"rounding at w\[0\]"),
    (lambda: check_grad(ok_loss, GOOD, X, rtol=0), ValueError,
     r"check_grad\(rtol=0\): rtol must be a finite number > 0"),
    (lambda: check_grad(ok_loss, GOOD, X, leaves=["v"]), ValueError,
     r"check_grad\(leaves=\['v'\]\): unknown leaf name 'v'; the params' leaves are \['w'\]"),
    (lambda: check_grad(ok_loss, GOOD, X, leaves=["w."]), ValueError,
     r"unknown leaf name 'w.'"),
    (lambda: check_grad(ok_loss, GOOD, X, leaves=[]), ValueError,
     r"check_grad\(leaves=\[\]\): leaves must name at least one leaf"),
    (lambda: check_grad(ok_loss, GOOD, X, leaves=[0]), TypeError,
     r"check_grad\(leaves=\[0\]\): leaf names must be strings; got 0 \(int\)"),
    (lambda: check_grad(ok_loss, GOOD, X, leaves={"w"}), TypeError,
     r"check_grad\(leaves=\{'w'\}\): leaves must be a list of leaf names.*got set"),
    (lambda: check_grad(ok_loss, GOOD, X, max_elements=0), ValueError,
     r"check_grad\(max_elements=0\): max_elements must be an integer >= 1 or None; got 0"),
    (lambda: check_grad(ok_loss, GOOD, X, max_elements=2.5), TypeError,
     r"check_grad\(max_elements=2.5\): max_elements must be an integer >= 1 or None; "
     r"got float"),
    (lambda: check_grad(ok_loss, GOOD, X, seed=-1), ValueError,
     r"check_grad\(seed=-1\): seed must be an integer >= 0; got -1"),
    (lambda: check_grad(ok_loss, GOOD, X, worst=True), TypeError,
     r"check_grad\(worst=True\): worst must be an integer >= 0; got bool"),
])
def test_bad_input_is_refused_with_a_message(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.filterwarnings("ignore:Output seems independent of input",
                            "ignore:invalid value:RuntimeWarning")
def test_a_non_scalar_or_non_float_or_non_finite_loss_is_refused():
    with pytest.raises(ValueError, match=r"check_grad: the loss must return a scalar; got an "
                                         r"array of shape \(3,\) \(reduce it"):
        check_grad(lambda p, x: x @ p["w"], GOOD, X)
    with pytest.raises(TypeError, match=r"check_grad: the loss must return a real "
                                        r"floating-point number; got str"):
        check_grad(lambda p: "0.5", GOOD)
    with pytest.raises(ValueError, match=r"check_grad: the loss is nan at params; a gradient "
                                         r"check needs a finite loss"):
        check_grad(lambda p: anp.sum(anp.log(p["w"])), GOOD)


def test_bad_input_leaves_the_params_alone():
    params = {"w": np.array([0.5, -0.25])}
    before = snapshot(params)
    for kwargs in ({"eps": -1.0}, {"leaves": ["nope"]}, {"max_elements": 0}):
        with pytest.raises((TypeError, ValueError)):
            check_grad(ok_loss, params, X, **kwargs)
    with pytest.raises(ValueError):
        check_grad(lambda p, x: x @ p["w"], params, X)
    assert snapshot(params) == before


def test_the_docstring_examples_run():
    result = doctest.testmod(gradcheck, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
