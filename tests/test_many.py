"""Many fits: multistart, sweep and bootstrap, the same on every executor."""

import concurrent.futures as cf
import logging
import signal
import threading

import autograd.numpy as anp
import numpy as np
import pytest

import npdownhill as dh
from npdownhill import problems

HIMMELBLAU = problems.himmelblau()


def himmelblau(p):                  # module level: a process pool can pickle it
    return (p[0] ** 2 + p[1] - 11) ** 2 + (p[0] + p[1] ** 2 - 7) ** 2


def regression(n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = x @ np.array([1.5, -0.7]) + 0.3 + 0.1 * rng.normal(size=n)
    return x, y


def linear_loss(p, x, y):
    return anp.mean((anp.dot(x, p["w"]) + p["b"] - y) ** 2)


def rows_equal(a, b):
    return [(r.fun, r.nfev, tuple(np.ravel(r.x))) for r in a] == \
           [(r.fun, r.nfev, tuple(np.ravel(r.x))) for r in b]


@pytest.fixture(scope="module")
def dask_executor():
    distributed = pytest.importorskip("dask.distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    yield client.get_executor()
    client.close()
    cluster.close()


# ---------------------------------------------------------------------------
# multistart
# ---------------------------------------------------------------------------

def test_multistart_finds_himmelblaus_four_minima_and_keeps_the_best():
    x = np.zeros(2)
    result = dh.multistart(himmelblau, x, 30, bounds=(-5.0, 5.0), seed=1)
    assert result.n_minima == 4 and result.failed == 0 and not result.interrupted
    found = sorted(tuple(np.round(np.ravel(m.x), 5)) for m in result.minima)
    assert found == sorted(tuple(np.round(m, 5)) for m in HIMMELBLAU.minima)
    funs = [r.fun for r in result.results]
    assert funs == sorted(funs) and len(funs) == 30
    # the best is in x (its loss from a plain call: autograd's traced evaluation may differ
    # in the last bit on some numpy versions)
    assert result.best.x is x and himmelblau(x) == pytest.approx(result.best.fun, rel=1e-12)
    assert "4 distinct minima" in repr(result)


def test_the_same_seed_gives_the_same_starts_and_results():
    a = dh.multistart(himmelblau, np.zeros(2), 12, bounds=(-5.0, 5.0), seed=7)
    b = dh.multistart(himmelblau, np.zeros(2), 12, bounds=(-5.0, 5.0), seed=7)
    c = dh.multistart(himmelblau, np.zeros(2), 12, bounds=(-5.0, 5.0), seed=8)
    assert rows_equal(a.results[1:], b.results[1:]) and a.best.fun == b.best.fun
    assert not rows_equal(a.results[1:], c.results[1:])


def test_explicit_start_trees():
    params = {"x": np.array(0.0), "y": np.array(0.0)}
    starts = [{"x": np.array(4.0), "y": np.array(4.0)}, {"x": np.array(-4.0), "y": np.array(4.0)}]
    result = dh.multistart(lambda p: himmelblau([p["x"], p["y"]]), params, starts)
    assert result.n_minima == 2 and len(result.results) == 2
    assert result.best.x is params                               # the best went into params
    assert himmelblau([params["x"], params["y"]]) == result.best.fun < 1e-10
    assert starts[0]["x"] == 4.0                                 # the starts are untouched


def test_a_process_pool_gives_exactly_the_serial_results():
    serial = dh.multistart(himmelblau, np.zeros(2), 16, bounds=(-5.0, 5.0), seed=3)
    with cf.ProcessPoolExecutor(max_workers=2) as pool:
        pooled = dh.multistart(himmelblau, np.zeros(2), 16, bounds=(-5.0, 5.0), seed=3,
                               executor=pool)
    named = dh.multistart(himmelblau, np.zeros(2), 16, bounds=(-5.0, 5.0), seed=3,
                          executor="processes")
    assert rows_equal(serial.results[1:], pooled.results[1:])
    assert rows_equal(serial.results[1:], named.results[1:])


def test_a_dask_cluster_gives_exactly_the_serial_results_and_takes_lambdas(dask_executor):
    loss = lambda p: (p[0] ** 2 + p[1] - 11) ** 2 + (p[0] + p[1] ** 2 - 7) ** 2   # noqa: E731
    serial = dh.multistart(loss, np.zeros(2), 16, bounds=(-5.0, 5.0), seed=3)
    x = np.zeros(2)
    remote = dh.multistart(loss, x, 16, bounds=(-5.0, 5.0), seed=3, executor=dask_executor)
    assert rows_equal(serial.results[1:], remote.results[1:])
    assert np.array_equal(x, np.ravel(serial.best.x)) and remote.n_minima == 4


def test_the_standard_process_pool_refuses_a_lambda_with_a_clear_message():
    with pytest.raises(TypeError, match=r"the loss cannot be sent to the worker processes.*"
                                        r"not a lambda.*Dask client's get_executor"):
        dh.multistart(lambda p: anp.sum(p ** 2), np.zeros(2), 4, bounds=(-1.0, 1.0),
                      executor="processes")


def _failing_far_right(p):
    if p[0] > 2.5:
        raise ValueError("the model is not defined for x > 2.5")
    return himmelblau(p)


def test_a_failing_fit_is_reported_in_its_row_and_the_others_go_on():
    result = dh.multistart(_failing_far_right, np.zeros(2), 20, bounds=(-5.0, 5.0), seed=2)
    assert 0 < result.failed < 20
    failed = [r for r in result.results if "error" in r]
    assert all(r.error.startswith("ValueError: the model is not defined") for r in failed)
    assert result.results[-1] in failed                          # failures come last
    assert result.best.fun < 1e-10


def test_ctrl_c_cancels_the_rest_and_returns_what_finished(caplog):
    calls = []

    def loss(p):
        calls.append(1)
        if len(calls) == 30:                  # during the second or third fit
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        return himmelblau(p)

    with caplog.at_level(logging.WARNING, logger="npdownhill"):
        result = dh.multistart(loss, np.zeros(2), 10, bounds=(-5.0, 5.0), seed=1)
    assert result.interrupted and 0 < len(result.results) < 10
    assert all(r.success for r in result.results)               # the fit under way finished
    assert any("interrupted" in r.getMessage() for r in caplog.records)


def test_a_bar_counts_finished_fits(capsys):
    dh.multistart(himmelblau, np.zeros(2), 6, bounds=(-5.0, 5.0), progress=True)
    final = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert final.startswith("multistart: 100%") and "6/6" in final and "fit" in final


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(starts=5), ValueError, r"random starts are drawn inside bounds"),
    (dict(starts=5, bounds={"": (-1.0, None)}), ValueError, r"need finite bounds"),
    (dict(starts=0, bounds=(-1.0, 1.0)), ValueError, r"starts must be >= 1"),
    (dict(starts="many"), TypeError, r"starts must be a number of random starts or a list"),
    (dict(starts=3, bounds=(-1.0, 1.0), executor="threads"), TypeError,
     r"executor must be None"),
])
def test_bad_multistart_arguments(kwargs, error, match):
    x = np.ones(2)
    with pytest.raises(error, match=match):
        dh.multistart(himmelblau, x, **kwargs)
    assert np.array_equal(x, np.ones(2))


# ---------------------------------------------------------------------------
# sweep
# ---------------------------------------------------------------------------

def test_sweep_runs_every_combination_from_the_same_start():
    train, valid = regression(), regression(seed=1)
    params = {"w": np.zeros(2), "b": np.zeros(())}
    rows = dh.sweep(linear_loss, params, list(train), list(valid),
                    {"algo": ["sgd", "adam"], "learning_rate": [0.01, 0.1]}, max_epochs=5,
                    validate_every=1)
    assert [(r["algo"], r["learning_rate"]) for r in rows] == [
        ("sgd", 0.01), ("sgd", 0.1), ("adam", 0.01), ("adam", 0.1)]
    for row in rows:
        assert {"best_loss", "best_epoch", "epochs", "updates", "stop", "time"} <= set(row)
        assert row["epochs"] == 5 and row["stop"] == "max_epochs"
    assert rows.best is min(rows, key=lambda r: r["best_loss"])
    assert np.array_equal(params["w"], np.zeros(2))             # untouched by default
    # every row equals a plain minimize with the same options and rng
    again = {"w": np.zeros(2), "b": np.zeros(())}
    reference = dh.minimize(linear_loss, again, list(train), list(valid), algo="adam",
                            learning_rate=0.1, max_epochs=5, validate_every=1, rng=0)
    assert rows[3]["best_loss"] == reference.best_loss
    frame = rows.frame
    assert list(frame["algo"]) == ["sgd", "sgd", "adam", "adam"]


def test_sweep_keeps_the_best_params_when_asked_and_matches_a_process_pool():
    train, valid = regression(), regression(seed=1)
    grid = {"learning_rate": [0.001, 0.05]}
    params = {"w": np.zeros(2), "b": np.zeros(())}
    rows = dh.sweep(linear_loss, params, list(train), list(valid), grid, keep="best",
                    algo="adam", max_epochs=4)
    assert not np.array_equal(params["w"], np.zeros(2))
    pooled = dh.sweep(linear_loss, {"w": np.zeros(2), "b": np.zeros(())}, list(train),
                      list(valid), grid, algo="adam", max_epochs=4, executor="processes")
    assert [r["best_loss"] for r in rows] == [r["best_loss"] for r in pooled]


def test_a_failing_sweep_run_is_a_row():
    rows = dh.sweep(linear_loss, {"w": np.zeros(2), "b": np.zeros(())}, list(regression()),
                    None, {"learning_rate": [0.01, -1.0]}, algo="sgd", max_epochs=2)
    assert "error" not in rows[0] and rows[1]["error"].startswith("ValueError")
    assert "learning_rate must be >= 0" in rows[1]["error"]


# ---------------------------------------------------------------------------
# bootstrap
# ---------------------------------------------------------------------------

def test_bootstrap_spread_matches_the_standard_errors_of_least_squares():
    x, y = regression(n=200)
    params = {"w": np.zeros(2), "b": np.zeros(())}
    dh.solve(linear_loss, params, args=(x, y))
    before = {k: v.copy() for k, v in params.items()}
    result = dh.bootstrap(linear_loss, params, (x, y), 200, seed=0)
    # ordinary least squares: cov = sigma^2 inv(A'A), A = [x, 1]
    A = np.column_stack([x, np.ones(len(y))])
    residual = y - A @ np.append(params["w"], params["b"])
    sigma2 = residual @ residual / (len(y) - 3)
    se = np.sqrt(np.diag(sigma2 * np.linalg.inv(A.T @ A)))
    np.testing.assert_allclose(np.append(result.std["w"], result.std["b"]), se, rtol=0.2)
    low, high = result.interval["w"]
    assert np.all(low < params["w"]) and np.all(params["w"] < high)
    assert result.samples.shape == (200, 3) and result.failed == 0
    for k in params:                                              # the params are untouched
        assert np.array_equal(params[k], before[k])


def test_bootstrap_is_the_same_on_a_process_pool():
    x, y = regression(n=60)
    params = {"w": np.zeros(2), "b": np.zeros(())}
    serial = dh.bootstrap(linear_loss, params, (x, y), 8, seed=4)
    pooled = dh.bootstrap(linear_loss, params, (x, y), 8, seed=4, executor="processes")
    np.testing.assert_array_equal(serial.samples, pooled.samples)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(data=np.zeros(3), n=5), TypeError, r"data must be a tuple of arrays"),
    (dict(data=(np.zeros((5, 2)), np.zeros(4)), n=5), ValueError, r"same number of rows"),
    (dict(data=(np.zeros((5, 2)), np.zeros(5)), n=1), ValueError, r"n must be an integer >= 2"),
])
def test_bad_bootstrap_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        dh.bootstrap(linear_loss, {"w": np.zeros(2), "b": np.zeros(())}, **kwargs)
