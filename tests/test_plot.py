"""npdownhill.plot on the Agg backend: what is drawn is the run's own data."""

import sys

import matplotlib

matplotlib.use("Agg")

import autograd.numpy as anp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import npdownhill as dh  # noqa: E402
from npdownhill import plot, problems, schedules  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def fitted():
    x = np.random.default_rng(0).normal(size=(64, 3))
    y = x @ np.array([1.0, -2.0, 0.5])
    loss = lambda p, a, b: anp.mean((anp.dot(a, p["w"]) - b) ** 2)     # noqa: E731
    return dh.minimize(loss, {"w": np.zeros(3)}, [x, y], algo="adam", learning_rate=0.05,
                       max_epochs=25, validate_every=5)


def test_history_draws_the_runs_own_numbers():
    result = fitted()
    ax = plot.history(result)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"train.loss", "valid.loss"}
    h = result.history
    x, y = lines["train.loss"].get_data()
    np.testing.assert_array_equal(x, h["epoch"][1:])              # epoch 0 has no training
    np.testing.assert_array_equal(y, h["train.loss"][1:])
    x, y = lines["valid.loss"].get_data()
    np.testing.assert_array_equal(x, [0, 5, 10, 15, 20, 25])      # the validated epochs
    np.testing.assert_array_equal(y, h["valid.loss"][h["validated"]])
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "epoch"


def test_history_from_the_optimizer_and_chosen_keys():
    result = fitted()
    ax = plot.history(result.optimizer, keys=["train.learning_rate"], logy=False)
    [line] = ax.get_lines()
    np.testing.assert_array_equal(line.get_ydata(), np.full(25, 0.05))
    assert ax.get_yscale() == "linear"
    with pytest.raises(KeyError, match=r"\['valid.err'\] not in the run's history"):
        plot.history(result, keys=["valid.err"])
    with pytest.raises(TypeError, match=r"run must be a RunResult"):
        plot.history([1, 2, 3])


def test_schedule_draws_its_values():
    s = schedules.cosine_decay(0.1, 50)
    fig, ax = plt.subplots()
    assert plot.schedule(s, 60, ax=ax) is ax                        # the given Axes
    [line] = ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), np.arange(60))
    np.testing.assert_allclose(line.get_ydata(), [s(t) for t in range(60)], rtol=0)
    with pytest.raises(ValueError, match=r"steps must be an integer >= 1"):
        plot.schedule(s, 0)
    with pytest.raises(TypeError, match=r"fn must be a schedule"):
        plot.schedule(0.1, 10)


def test_contour_draws_the_box_and_marks_the_minima():
    h = problems.himmelblau()
    ax = plot.contour(h)
    assert ax.get_xlim() == h.box[0] and ax.get_ylim() == h.box[1]
    stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
    marked = sorted((float(s.get_xdata()[0]), float(s.get_ydata()[0])) for s in stars)
    np.testing.assert_allclose(marked, sorted(map(tuple, h.minima)))
    assert ax.collections, "no contour lines"


def test_trajectories_start_at_the_start_and_end_where_the_optimizer_ended():
    rosen = problems.rosenbrock()
    algorithms = {"adam": ("adam", {"learning_rate": 0.05}), "lbfgs": "lbfgs",
                  "nag": dh.NAG(rosen, np.zeros(2), learning_rate=2e-4)}
    ax = plot.trajectories(rosen, algorithms, steps=150)
    lines = {line.get_label(): line for line in ax.get_lines() if line.get_marker() != "*"}
    assert set(lines) == set(algorithms)
    # an independent run of each algorithm from the same start
    for label, (algo, hyper) in {"adam": ("adam", {"learning_rate": 0.05}),
                                 "nag": ("nag", {"learning_rate": 2e-4}),
                                 "lbfgs": ("lbfgs", {})}.items():
        x = rosen.start.copy()
        opt = dh.build(algo, rosen, x, **hyper)
        visited = [x.copy()]
        for _ in range(150):
            opt.step()
            visited.append(x.copy())
            if opt.converged:
                break
        xs, ys = lines[label].get_data()
        np.testing.assert_array_equal(np.column_stack([xs, ys]), np.array(visited))
        assert (xs[0], ys[0]) == tuple(rosen.start)
    xs, ys = lines["lbfgs"].get_data()
    np.testing.assert_allclose([xs[-1], ys[-1]], [1.0, 1.0], atol=1e-5)   # converged early
    assert len(xs) < 151


def test_trajectories_from_a_chosen_start_and_bad_input():
    h = problems.himmelblau()
    ax = plot.trajectories(h, {"bfgs": "bfgs"}, start=[-1.0, -1.0], steps=50)
    line = [line for line in ax.get_lines() if line.get_label() == "bfgs"][0]
    assert (line.get_xdata()[0], line.get_ydata()[0]) == (-1.0, -1.0)
    end = np.array([line.get_xdata()[-1], line.get_ydata()[-1]])
    assert min(np.linalg.norm(end - m) for m in h.minima) < 1e-5
    with pytest.raises(ValueError, match=r"the start must have 2 values for himmelblau"):
        plot.trajectories(h, {"sgd": "sgd"}, start=[1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match=r"algorithms must be a non-empty dict"):
        plot.trajectories(h, ["sgd"])
    with pytest.raises(TypeError, match=r"an algorithm must be a name"):
        plot.trajectories(h, {"x": 3})
    with pytest.raises(TypeError, match=r"problem must be one of npdownhill.problems"):
        plot.contour(lambda x: 0.0)


def test_a_missing_matplotlib_gives_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)       # import fails
    with pytest.raises(ImportError, match=r"npdownhill.plot needs matplotlib.*pip install "
                                          r"'npdownhill\[plot\]'"):
        plot.schedule(schedules.constant(0.1), 5)
