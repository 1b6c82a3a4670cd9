"""check_arity and explain_trace_error, on real callables and real autograd failures."""

import functools
import math
import re

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

from numpy.linalg import inv

from npdownhill.diagnostics import check_arity, explain_trace_error

CALL = "Adam.iterate"


# ----------------------------------------------------------------------------
# check_arity
# ----------------------------------------------------------------------------

def loss_px(p, x):
    return 0.0


def loss_pxy(p, x, y):
    return 0.0


def loss_default(p, x, y=None):
    return 0.0


def loss_star(p, *batch):
    return 0.0


def loss_at_least_two(p, x, *rest):
    return 0.0


def loss_kwonly(p, x, *, scale):
    return 0.0


def loss_kwonly_default(p, x, *, scale=1.0):
    return 0.0


class Model:
    def loss(self, p, x):
        return 0.0


class CallableLoss:
    def __call__(self, p, x, y):
        return 0.0


ACCEPTED = [
    ("lambda", lambda p, x, y: 0.0, 2),
    ("params alone", lambda params: 0.0, 0),
    ("default unused", loss_default, 1),
    ("default used", loss_default, 2),
    ("*batch, no data", loss_star, 0),
    ("*batch, 3 arrays", loss_star, 3),
    ("kw-only with default", loss_kwonly_default, 1),
    ("partial binding a keyword", functools.partial(loss_pxy, y=1.0), 1),
    ("partial binding the first argument", functools.partial(loss_pxy, None), 1),
    ("bound method", Model().loss, 1),
    ("callable object", CallableLoss(), 2),
    ("print (a signature with *args, or none at all)", print, 4),
    ("max (no signature)", max, 3),
    ("len (has a signature)", len, 0),
]


@pytest.mark.parametrize("fn, n_arrays", [case[1:] for case in ACCEPTED],
                         ids=[case[0] for case in ACCEPTED])
def test_check_arity_accepts_callables_that_bind(fn, n_arrays):
    assert check_arity(fn, n_arrays, CALL, data="train") is None


REFUSED = [
    ("def takes fewer", loss_px, 2, "loss", "train",
     r"^Adam\.iterate: the loss `loss_px\(p, x\)` takes 2 positional arguments but will be "
     r"called with 3 \(params \+ 2 arrays of the train data\): make its signature "
     r"`loss_px\(params, x, y\)`, or pass the train data as a list of the 1 array it takes "
     r"after params$"),
    ("def takes more, data unknown", loss_pxy, 1, "loss", None,
     r"`loss_pxy\(p, x, y\)` takes 3 positional arguments but will be called with 2 "
     r"\(params \+ 1 batch array\): make its signature `loss_pxy\(params, x\)`, or pass the "
     r"data as a list of the 2 arrays it takes after params"),
    ("no data given", loss_px, 0, "loss", "train",
     r"will be called with 1 \(params alone: no train data was given\): make its signature "
     r"`loss_px\(params\)`"),
    ("loss of params alone", lambda p: 0.0, 2, "loss", "train",
     r"the loss `lambda p` takes 1 positional argument but .*: make its signature "
     r"`loss\(params, x, y\)`, or pass train=None for a loss of params alone"),
    ("defaults", loss_default, 3, "loss", "valid",
     r"`loss_default\(p, x, y=None\)` takes 2 to 3 positional arguments but will be called "
     r"with 4 \(params \+ 3 arrays of the valid data\)"),
    ("*rest", loss_at_least_two, 0, "loss", None,
     r"`loss_at_least_two\(p, x, \*rest\)` takes at least 2 positional arguments but will "
     r"be called with 1 \(params alone\)"),
    ("required keyword-only", loss_kwonly, 1, "loss", "train",
     r"the loss `loss_kwonly\(p, x, \*, scale\)` has a required keyword-only argument "
     r"'scale', which Adam\.iterate never passes: give it a default or bind it first with "
     r"functools\.partial\(loss_kwonly, scale=\.\.\.\)"),
    ("required keyword-only and wrong arity", loss_kwonly, 2, "loss", "train",
     r"takes 2 positional arguments .*; it also has a required keyword-only argument 'scale'"),
    ("monitor", lambda p: 0.0, 2, "monitor 'err'", "valid",
     r"^Adam\.iterate: monitor 'err' `lambda p` takes 1 positional argument but will be "
     r"called with 3 \(params \+ 2 arrays of the valid data\): make its signature "
     r"`err\(params, x, y\)`, or `err\(params, \*batch\)` to accept the batch arrays"),
    ("bound method: self is not counted", Model().loss, 2, "loss", "train",
     r"`Model\.loss\(p, x\)` takes 2 positional arguments"),
    ("callable object", CallableLoss(), 1, "loss", "train",
     r"`CallableLoss\.__call__\(p, x, y\)` takes 3 positional arguments"),
    ("partial", functools.partial(loss_pxy, None), 2, "monitor 'err'", "train",
     r"monitor 'err' `partial\(loss_pxy, \.\.\.\)\(x, y\)` takes 2 positional arguments"),
    ("builtin with a signature", len, 1, "monitor 'n'", None,
     r"monitor 'n' `len\(obj, /\)` takes 1 positional argument but will be called with 2"),
]


@pytest.mark.parametrize("fn, n_arrays, role, data, message", [case[1:] for case in REFUSED],
                         ids=[case[0] for case in REFUSED])
def test_check_arity_refuses_with_one_clear_message(fn, n_arrays, role, data, message):
    with pytest.raises(TypeError, match=message):
        check_arity(fn, n_arrays, CALL, role=role, data=data)


def test_check_arity_shortens_long_defaults_and_drops_annotations():
    def loss(p: dict, x: np.ndarray, w=np.ones(100)) -> float:
        return 0.0
    with pytest.raises(TypeError, match=r"`loss\(p, x, w=\.\.\.\)` takes 2 to 3"):
        check_arity(loss, 3, CALL)


def test_check_arity_rejects_a_negative_count():
    with pytest.raises(ValueError, match="n_arrays"):
        check_arity(loss_px, -1, CALL)


# ----------------------------------------------------------------------------
# explain_trace_error
# ----------------------------------------------------------------------------

RNG = np.random.default_rng(0)
X = RNG.normal(size=(5, 3))
Y = RNG.normal(size=5)


def params():
    return {"w": RNG.normal(size=3), "b": np.array(0.1)}


def trace_failure(loss, *args):
    """The exception autograd raises while tracing ``loss(*args)``, for real."""
    with pytest.raises(Exception) as info:
        autograd.make_vjp(loss)(*args)
    return info.value


def explained(loss, *args, cls=None, hint):
    """Trace `loss`, explain the failure, check the explanation, return both."""
    err = trace_failure(loss, *args)
    new = explain_trace_error(err, loss, args)
    assert new is not None, f"not recognised: {type(err).__name__}: {err}"
    assert new is not err
    assert type(new) is (cls or type(err))
    original, added = str(new).rsplit("\n", 1)
    assert original == str(err)
    assert added.startswith("Likely cause: ")
    assert hint in added, added
    return err, new


# The mistakes, each written the way a user would, and the hint it must get.

def loss_np_linalg(p, x):
    cov = anp.outer(p["w"], p["w"]) + anp.eye(3)
    sign, logdet = np.linalg.slogdet(cov)               # plain numpy on a traced value
    return logdet + anp.sum(x * anp.linalg.solve(cov, x.T).T)


def loss_np_dot_then_np_exp(p, x, y):
    z = np.dot(x, p["w"]) + p["b"]                      # an object array of traced numbers
    return np.mean(np.log1p(np.exp(-y * z)))


def loss_np_vdot(p, x):
    return np.vdot(p["w"], p["w"]) + anp.mean(x @ p["w"])


def loss_np_percentile(p, x):
    return np.percentile((x @ p["w"]) ** 2, 90)          # numpy's own code fails inside


def loss_imported_inv(p, x):
    cov = anp.outer(p["w"], p["w"]) + anp.eye(3)
    return anp.sum(x @ inv(cov))                          # from numpy.linalg import inv


def loss_np_exp_of_np_array(p, x):
    scores = np.array([anp.dot(xi, p["w"]) for xi in x])   # object array of traced numbers
    return anp.log(anp.sum(np.exp(scores)))


def loss_np_asarray(p, x):
    w = np.asarray(p["w"], dtype=float)
    return anp.mean((x @ w) ** 2)


def loss_copy(p, x):
    w = p["w"].copy()
    return anp.mean((x @ w) ** 2)


def loss_fill_numpy_array(p, x):
    pred = np.zeros(len(x))
    for i in range(len(x)):
        pred[i] = anp.dot(x[i], p["w"])
    return anp.mean(pred ** 2)


def loss_assign_into_traced(p, x):
    w = p["w"]
    w[0] = 0.0                                          # pin the first weight
    return anp.mean((x @ w) ** 2)


def loss_accumulate_into_numpy(p, x):
    total = np.zeros(())
    for xi in x:
        total += anp.dot(xi, p["w"]) ** 2
    return total


def loss_float(p, x):
    scale = float(anp.sum(p["w"] ** 2))
    return scale * anp.mean(x @ p["w"])


def loss_math(p, x):
    return math.exp(p["b"]) * anp.mean(x @ p["w"])


def loss_item(p, x):
    return p["b"].item() + anp.mean(x @ p["w"])


def loss_copy_tree(p, x):
    q = p.copy()
    q["w"] = q["w"] * 2
    return anp.mean(x @ q["w"])


def loss_astype_int(p, x):
    return anp.sum(p["w"].astype(int)) * anp.mean(x)


def loss_anp_asarray(p, x):
    return anp.mean(x @ anp.asarray(p["w"]))


def loss_checks_its_input(p, x):
    if not isinstance(p["w"], np.ndarray):
        raise TypeError(f"w must be an ndarray; got {type(p['w']).__name__}")   # ArrayBox
    return anp.mean(x @ p["w"])


MISTAKES = [
    ("np.linalg", loss_np_linalg, TypeError,     # UFuncTypeError cannot be rebuilt from a message
     "np.linalg.slogdet was called on a traced value: use autograd.numpy "
     "(import autograd.numpy as anp; anp.linalg.slogdet)"),
    ("np.exp of np.array", loss_np_exp_of_np_array, None,
     "np.exp was applied to a plain numpy array holding traced values"),
    ("np.percentile", loss_np_percentile, None,
     "np.percentile was called on a traced value: use autograd.numpy "
     "(import autograd.numpy as anp; anp.percentile)"),
    ("inv from numpy.linalg", loss_imported_inv, TypeError,
     "np.linalg.inv was called on a traced value: use autograd.numpy "
     "(import autograd.numpy as anp; anp.linalg.inv)"),
    ("np.vdot", loss_np_vdot, None,
     "np.vdot was called on a traced value: use autograd.numpy "
     "(import autograd.numpy as anp; anp.vdot)"),
    ("np.asarray", loss_np_asarray, None,
     "np.asarray turns a traced value into a plain numpy array"),
    (".copy()", loss_copy, None, ".copy() is not supported on traced values"),
    ("a[i] = traced", loss_fill_numpy_array, None,
     "in-place assignment into an array is not differentiable: build the array with "
     "anp.stack / anp.concatenate / anp.where instead"),
    ("traced[i] = x", loss_assign_into_traced, None,
     "in-place assignment into a traced array (a[i] = ...) is not differentiable"),
    ("+= into numpy", loss_accumulate_into_numpy, None,
     "write a = a + b instead of a += b"),
    ("float()", loss_float, None, "float() of a traced value needs a plain Python number"),
    ("math.exp", loss_math, None,
     "math.exp() works on plain Python numbers only, not on traced values: use autograd.numpy "
     "(import autograd.numpy as anp; anp.exp)"),
    (".item()", loss_item, None, ".item() on a traced value needs a plain Python number"),
    ("params.copy()", loss_copy_tree, None,
     "the param tree is traced as a whole and cannot be modified or copied"),
    (".astype(int)", loss_astype_int, None, "turned into integers or booleans"),
    ("anp.asarray", loss_anp_asarray, None,
     "autograd defines no derivative for asarray(): rewrite that step"),
    ("isinstance check", loss_checks_its_input, None,
     "the loss must be written with autograd.numpy (import autograd.numpy as anp) and must "
     "not assign into arrays in place or call .copy(); see https://github.com/HIPS/autograd"),
]


@pytest.mark.parametrize("loss, cls, hint", [case[1:] for case in MISTAKES],
                         ids=[case[0] for case in MISTAKES])
def test_explain_trace_error_names_the_mistake_and_the_fix(loss, cls, hint):
    explained(loss, params(), X, cls=cls, hint=hint)


def test_the_messages_measured_for_each_mistake():
    # What autograd 1.9 / numpy 2.4 actually raise; the hints above rely on these.
    p = params()
    expected = [
        (loss_copy, AttributeError, r"^'ArrayBox' object has no attribute 'copy'$"),
        (loss_fill_numpy_array, ValueError, r"^setting an array element with a sequence\.$"),
        (loss_assign_into_traced, TypeError, r"^'ArrayBox' object does not support item "
                                             r"assignment$"),
        (loss_accumulate_into_numpy, TypeError, r"returned NotImplemented from "
                                                r"__array_ufunc__.*out="),
        (loss_float, TypeError, r"^float\(\) argument must be .* not 'ArrayBox'$"),
        (loss_np_linalg, TypeError, r"^Cannot cast ufunc 'slogdet' input from dtype\('O'\)"),
        (loss_np_exp_of_np_array, TypeError, r"type ArrayBox which has no callable exp method"),
    ]
    for loss, cls, message in expected:
        err = trace_failure(loss, p, X)
        assert isinstance(err, cls) and re.search(message, str(err)), (loss.__name__, err)


def test_np_dot_poisons_the_ufuncs_that_follow():
    # np.dot of a traced value returns a numpy object array; np.exp then fails on it.
    err, _ = explained(loss_np_dot_then_np_exp, params(), X, Y,
                       hint="np.exp was applied to a plain numpy array holding traced values, "
                            "which is what plain numpy functions such as np.dot")
    assert "no callable exp method" in str(err)


def test_a_list_param_tree_modified_in_the_loss():
    def loss(p, x):
        p.append(1.0)
        return anp.mean(x @ p[0])
    explained(loss, [np.ones(3)], X, hint="(SequenceBox has no append)")


def test_plain_numpy_ufuncs_and_reductions_trace_fine_so_there_is_nothing_to_explain():
    # With autograd >= 1.7, np.exp / np.sum / np.mean of traced values dispatch to autograd,
    # and np.dot makes an object array of traced numbers that ** and np.sum can still
    # handle (np.exp or np.mean of it would fail): no error, and the gradient is right.
    def plain(p, x, y):
        return np.sum(np.exp(-(x @ p["w"]) * y)) + np.mean(p["w"] ** 2) + \
            np.sum(np.dot(x, p["w"]) ** 2)

    def auto(p, x, y):
        return anp.sum(anp.exp(-(x @ p["w"]) * y)) + anp.mean(p["w"] ** 2) + \
            anp.sum(anp.dot(x, p["w"]) ** 2)
    p = params()
    grad_plain = autograd.grad(plain)(p, X, Y)
    grad_auto = autograd.grad(auto)(p, X, Y)
    np.testing.assert_allclose(np.asarray(grad_plain["w"], float), grad_auto["w"])


def test_the_fallback_recognises_errors_that_do_not_mention_boxes():
    err, _ = explained(loss_np_linalg, params(), X, cls=TypeError, hint="np.linalg.slogdet")
    assert err.__context__ is None and err.__cause__ is None
    assert "Box" not in str(err)                      # found by the plain call succeeding


@pytest.mark.parametrize("loss", [
    pytest.param(lambda p, x: anp.mean(x @ p["W"]), id="missing param name"),
    pytest.param(lambda p, x: anp.mean(x.T @ p["w"]), id="shape mismatch"),
    pytest.param(lambda p, x: anp.sum(anp.linalg.inv(anp.ones((3, 4)) * p["w"][0])),
                 id="autograd.numpy on a bad shape"),
    pytest.param(lambda p, x: anp.mean(x @ p["w"]) if p["w"] > 0 else 0.0,
                 id="truth value of an array"),
    pytest.param(lambda p, x: anp.mean(x @ p.w), id="attribute of the dict ('DictBox')"),
    pytest.param(lambda p, x: anp.mean(x @ p["w"]) * p["w"].lenght,
                 id="misspelt attribute ('ArrayBox')"),
    pytest.param(lambda p, x: anp.mean(p["w"](x)), id="calling an array ('ArrayBox')"),
    pytest.param(lambda p, x: anp.mean(x @ p["w"]) * (p["b"] // None),
                 id="operand None ('ArrayBox')"),
])
def test_ordinary_bugs_are_left_alone(loss):
    p = params()
    err = trace_failure(loss, p, X)
    assert explain_trace_error(err, loss, (p, X)) is None


def test_errors_whose_chain_names_a_box_need_no_second_call():
    # numpy raises "setting an array element with a sequence." from float()'s TypeError
    # about the ArrayBox: that is evidence enough, the loss is not run again.
    calls = []

    def loss(p, x):
        calls.append(1)
        return loss_fill_numpy_array(p, x)
    err, _ = explained(loss, params(), X, hint="in-place assignment into an array")
    assert "Box" not in str(err) and "ArrayBox" in str(err.__cause__ or err.__context__)
    assert len(calls) == 1


def test_the_plain_confirmation_call_gets_copies_of_the_arrays():
    seen = []

    def loss(p, x):
        seen.append((p["w"], x))
        return np.linalg.det(anp.outer(p["w"], p["w"]) + anp.eye(3)) + anp.mean(x)
    p = params()
    err = trace_failure(loss, p, X)
    assert explain_trace_error(err, loss, (p, X)) is not None
    w, x = seen[-1]                                   # the plain call's arguments
    assert w is not p["w"] and x is not X
    np.testing.assert_array_equal(w, p["w"])
    np.testing.assert_array_equal(x, X)


def test_the_result_is_meant_to_be_raised_from_the_original():
    p = params()
    with pytest.raises(AttributeError, match=r"(?s)no attribute 'copy'.*\nLikely cause") as info:
        try:
            autograd.make_vjp(loss_copy)(p, X)
        except Exception as err:
            raise explain_trace_error(err, loss_copy, (p, X)) from err
    assert isinstance(info.value.__cause__, AttributeError)
    assert "Likely cause" not in str(info.value.__cause__)


def test_an_explained_error_is_not_explained_twice():
    p = params()
    _, new = explained(loss_copy, p, X, hint=".copy()")
    assert explain_trace_error(new, loss_copy, (p, X)) is None


def test_classes_that_need_more_than_a_message_fall_back_to_a_base_class():
    class CodedError(ValueError):
        def __init__(self, code, text):
            super().__init__(text)
    err = CodedError(7, "'ArrayBox' object has no attribute 'copy'")
    new = explain_trace_error(err, loss_copy, (params(), X))
    assert type(new) is ValueError
    assert str(new).startswith(str(err) + "\n")
    err = KeyError("'DictBox' object has no attribute 'copy'")   # str(KeyError) adds quotes
    new = explain_trace_error(err, loss_copy, (params(), X))
    assert type(new) is LookupError
    assert str(new).startswith(str(err) + "\n")


def test_explain_trace_error_never_raises_and_ignores_non_errors():
    assert explain_trace_error(KeyboardInterrupt(), loss_copy, (params(), X)) is None
    assert explain_trace_error(ValueError("boom"), None, (params(), X)) is None
    assert explain_trace_error(ValueError("boom"), loss_copy, None) is None
