"""What the shared battery does not reach in Lion, Yogi, AdaBelief and Prodigy: Prodigy's
estimate and its state (refusals, d0 changes, zero gradients, the sums over a tree),
Yogi's initial accumulator, and the hyperparameters only these rules have.

The update rules themselves are checked against reference.py (test_reference.py) and
against optax (test_optax_reference.py)."""

import logging
import os
import sys

import numpy as np
import pytest

import npdownhill as dh

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as R  # noqa: E402


def quadratic():
    _, grad, _, x0 = R.quadratic(7, 0)
    return grad, x0


def prodigy_reference_states(x0, grad, steps, **hyper):
    """The transcription's iterates and (d, r) after each update."""
    settings = dict(R.record("prodigy").defaults, **hyper)
    x, state, out = x0.copy(), {}, []
    for t in range(1, steps + 1):
        u, state, _ = R.prodigy(grad(x), state, t, x=x, **settings)
        x = x - u
        out.append((x.copy(), state["d"], state["r"]))
    return out


def test_prodigy_estimate_and_numerator_follow_the_transcription():
    grad, x0 = quadratic()
    x = x0.copy()
    opt = dh.Prodigy(None, x)
    assert opt.d == 1e-6 and float(opt.state["numerator"]) == 0.0
    for k, (x_ref, d_ref, r_ref) in enumerate(prodigy_reference_states(x0, grad, 60)):
        opt.apply(grad(x))
        np.testing.assert_allclose(x, x_ref, rtol=1e-10, atol=0)
        assert opt.d == pytest.approx(d_ref, rel=1e-9), k
        assert float(opt.state["numerator"]) == pytest.approx(r_ref, rel=1e-9), k
    assert opt.d > 1e-3                                  # the estimate grew
    np.testing.assert_array_equal(opt.state["x0"], x0)   # x0: the params at update 1


def test_prodigy_x0_is_the_params_at_the_first_update_not_at_construction():
    grad, x0 = quadratic()
    x = np.zeros_like(x0)
    opt = dh.Prodigy(None, x)
    x[...] = x0                                          # set after building
    opt.apply(grad(x))
    np.testing.assert_array_equal(opt.state["x0"], x0)


def test_a_refused_prodigy_update_advances_nothing_and_the_run_continues_identically():
    grad, x0 = quadratic()
    a, b = x0.copy(), x0.copy()
    oa, ob = dh.Prodigy(None, a, d0=0.3), dh.Prodigy(None, b, d0=0.3)
    for _ in range(10):
        oa.apply(grad(a))
        ob.apply(grad(b))
    before = {k: np.array(v, copy=True) for k, v in ob.state_dict().items()}
    bad_gradient = grad(b)
    bad_gradient[3] = np.nan
    huge = np.full_like(b, 1e308)                        # finite; the sums overflow
    for g, what in ((bad_gradient, "gradient"), (huge, "step")):
        with pytest.raises(dh.NonFiniteError) as info:
            ob.apply(g)
        assert info.value.what == what
        after = ob.state_dict()
        for key, value in before.items():
            np.testing.assert_array_equal(after[key], value, err_msg=key)
    for _ in range(10):
        oa.apply(grad(a))
        ob.apply(grad(b))
    np.testing.assert_array_equal(a, b)
    assert oa.d == ob.d and oa.updates == ob.updates == 20


def test_prodigy_resumes_bit_identically_from_a_saved_state(tmp_path):
    grad, x0 = quadratic()
    a, b = x0.copy(), np.zeros_like(x0)
    oa = dh.Prodigy(None, a, weight_decay=0.01, momentum=0.5)
    for _ in range(40):
        oa.apply(grad(a))
    oa.save_state(tmp_path / "prodigy.npz")
    ob = dh.Prodigy(None, b, weight_decay=0.01, momentum=0.5)
    ob.load_state(tmp_path / "prodigy.npz")
    assert ob.d == oa.d > 1e-6
    np.testing.assert_array_equal(ob.state["x0"], x0)
    for _ in range(40):
        oa.apply(grad(a))
        ob.apply(grad(b))
    np.testing.assert_array_equal(a, b)
    for key in oa.state:
        np.testing.assert_array_equal(oa.state[key], ob.state[key])


def test_changing_d0_mid_run_rescales_the_sums_and_keeps_the_estimate():
    grad, x0 = quadratic()
    a, b = x0.copy(), x0.copy()
    oa, ob = dh.Prodigy(None, a, d0=1e-3), dh.Prodigy(None, b, d0=1e-3)
    for _ in range(20):
        oa.apply(grad(a))
        ob.apply(grad(b))
    ratio = float(ob.state["numerator"]) / np.abs(ob.state["s"]).sum()
    ob.set_hyperparameters(d0=1e-1)
    assert float(ob.state["numerator"]) / np.abs(ob.state["s"]).sum() == pytest.approx(ratio,
                                                                                       rel=1e-14)
    assert ob.d == oa.d
    for _ in range(40):
        oa.apply(grad(a))
        ob.apply(grad(b))
    np.testing.assert_allclose(b, a, rtol=1e-12)
    assert ob.d == pytest.approx(oa.d, rel=1e-12)


def test_changing_d0_before_the_first_update_restarts_the_estimate():
    opt = dh.Prodigy(None, np.zeros(3))
    opt.set_hyperparameters(d0=0.5)
    assert opt.d == 0.5


def test_prodigy_keeps_its_estimate_while_every_gradient_is_zero():
    x = np.array([1.0, -2.0])
    opt = dh.Prodigy(None, x)
    for _ in range(3):
        opt.apply(np.zeros(2))
    assert opt.d == 1e-6 and float(opt.state["numerator"]) == 0.0
    np.testing.assert_array_equal(x, [1.0, -2.0])
    opt.apply(np.array([1.0, 1.0]))
    assert np.all(np.isfinite(x)) and not np.array_equal(x, [1.0, -2.0])


def test_prodigy_weight_decay_is_scaled_by_the_estimate():
    """p <- p - (u + dlr wd p), dlr = lr d bc (not lr wd p as on the other rules)."""
    x = np.array([2.0])
    opt = dh.Prodigy(None, x, weight_decay=0.1, d0=0.5, learning_rate=0.2)
    opt.apply(np.array([0.0]))                            # u = 0: only the decay moves x
    dlr = 0.2 * 0.5 * np.sqrt(1 - 0.999) / (1 - 0.9)
    np.testing.assert_allclose(x, [2.0 - dlr * 0.1 * 2.0], rtol=1e-15)


def test_prodigy_sums_cover_the_whole_tree_in_blocks_fixed_whatever_the_chunks():
    """A tree of several leaves, one split across the sums' blocks: bit-identical in
    any number of chunks, and like one flat vector up to the order of the sums (the
    blocks follow the leaves)."""
    r = np.random.default_rng(0)
    grads = [r.standard_normal(21006) for _ in range(8)]
    runs = []
    for chunk_bytes, as_tree in ((None, True), (1000, True), (4096, True), (None, False)):
        tree = {"a": np.linspace(-1, 1, 21000).reshape(70, 300), "b": np.ones(5),
                "c": np.array(0.5)}
        layout = dh.tree.Layout(tree)
        params = tree if as_tree else layout.read(layout.empty())
        opt = dh.Prodigy(None, params, d0=1e-3)
        if chunk_bytes:
            opt.chunk_bytes = chunk_bytes
        for g in grads:
            opt.apply(layout.unflatten(g) if as_tree else g)
        flat = layout.read(layout.empty()) if as_tree else params
        runs.append((flat, opt.d, float(opt.state["numerator"])))
    for flat, d, r_ in runs[1:3]:
        np.testing.assert_array_equal(flat, runs[0][0])
        assert (d, r_) == runs[0][1:]
    flat, d, r_ = runs[3]
    np.testing.assert_allclose(flat, runs[0][0], rtol=1e-12)
    assert r_ == pytest.approx(runs[0][2], rel=1e-12) and r_ != 0


@pytest.mark.parametrize("kwargs, kind, message", [
    (dict(d0=0.0), ValueError, r"^Prodigy\(d0=0\.0\): d0 must be > 0; got 0\.0$"),
    (dict(d_coef=-1.0), ValueError, r"^Prodigy\(d_coef=-1\.0\): d_coef must be > 0; got -1\.0$"),
    (dict(beta3=1.0), ValueError, r"^Prodigy\(beta3=1\.0\): beta3 must be in \[0, 1\); got 1\.0$"),
    (dict(beta3="0.9"), TypeError, r"^Prodigy\(beta3='0\.9'\): beta3 must be a real number"),
    (dict(safeguard_warmup=1), TypeError, r"^Prodigy\(safeguard_warmup=1\): safeguard_warmup "
                                          r"must be True or False"),
    (dict(bias_correction="yes"), TypeError, r"^Prodigy\(bias_correction='yes'\)"),
])
def test_prodigy_refuses_bad_hyperparameters(kwargs, kind, message):
    with pytest.raises(kind, match=message):
        dh.Prodigy(None, np.zeros(2), **kwargs)


def test_beta3_none_means_the_root_of_beta2():
    grad, x0 = quadratic()
    a, b = x0.copy(), x0.copy()
    oa = dh.Prodigy(None, a, beta2=0.99, d0=0.1)
    ob = dh.Prodigy(None, b, beta2=0.99, beta3=float(np.sqrt(0.99)), d0=0.1)
    for _ in range(30):
        oa.apply(grad(a))
        ob.apply(grad(b))
    np.testing.assert_array_equal(a, b)


def test_yogi_initial_accumulator_fills_both_moments():
    opt = dh.Yogi(None, np.zeros(4), initial_accumulator=0.25)
    assert np.all(opt.state["m"] == 0.25) and np.all(opt.state["v"] == 0.25)
    opt.set_hyperparameters(initial_accumulator=0.5)      # before any update: refilled
    assert np.all(opt.state["m"] == 0.5) and np.all(opt.state["v"] == 0.5)


def test_yogi_initial_accumulator_after_updates_is_reported_not_ignored(caplog):
    opt = dh.Yogi(None, np.zeros(4))
    opt.apply(np.ones(4))
    m, v = opt.state["m"].copy(), opt.state["v"].copy()
    with caplog.at_level(logging.WARNING, logger="npdownhill"):
        opt.set_hyperparameters(initial_accumulator=0.5)
    assert "initial_accumulator=0.5" in caplog.text and "after 1 updates" in caplog.text
    np.testing.assert_array_equal(opt.state["m"], m)
    np.testing.assert_array_equal(opt.state["v"], v)


def test_lion_moves_every_element_by_the_learning_rate():
    x = np.array([1.0, -1.0, 0.5, 3.0])
    opt = dh.Lion(None, x, learning_rate=0.01)
    opt.apply(np.array([1e-8, -5.0, 0.0, 1e6]))
    np.testing.assert_array_equal(x, [0.99, -0.99, 0.5, 2.99])


def test_lion_refuses_an_infinite_gradient_although_its_sign_is_finite():
    x = np.array([1.0, 2.0])
    opt = dh.Lion(None, x)
    with pytest.raises(dh.NonFiniteError) as info:
        opt.apply(np.array([np.inf, 1.0]))
    assert info.value.what == "gradient"
    np.testing.assert_array_equal(x, [1.0, 2.0])
    assert np.all(opt.state["m"] == 0) and opt.updates == 0


@pytest.mark.parametrize("cls", [dh.Lion, dh.Yogi, dh.AdaBelief, dh.Prodigy])
def test_betas_sets_both(cls):
    opt = cls(None, np.zeros(2), betas=(0.8, 0.95))
    assert opt.hyper["beta1"] == 0.8 and opt.hyper["beta2"] == 0.95
