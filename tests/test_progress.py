"""Progress: a tqdm bar when asked or in a terminal, none in a pipe, and one hint."""

import io
import logging
import os
import subprocess
import sys
import textwrap

import autograd.numpy as anp
import numpy as np
import pytest

import npdownhill as dh
from npdownhill import progress as P

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def loss(p, x, y):
    return anp.mean((anp.dot(x, p["w"]) - y) ** 2)


def data():
    x = np.random.default_rng(0).normal(size=(64, 3))
    return [x, x @ np.array([1.0, -2.0, 0.5])]


def test_a_forced_bar_counts_epochs_and_shows_the_losses(capsys):
    dh.minimize(loss, {"w": np.zeros(3)}, data(), algo="adam", learning_rate=0.1,
                max_epochs=12, validate_every=4, progress=True)
    err = capsys.readouterr().err
    final = err.replace("\r", "\n").strip().splitlines()[-1]
    assert final.startswith("Adam: 100%") and "12/12" in final and "epoch" in final
    assert "loss=" in final and "lr=0.1" in final
    assert "valid=" in final and final.split("valid=")[1].split(",")[0].endswith("*")


def test_no_bar_in_a_pipe_by_default(capsys):
    dh.minimize(loss, {"w": np.zeros(3)}, data(), algo="adam", max_epochs=3)
    assert "epoch/s" not in capsys.readouterr().err       # stderr is not a terminal here


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_default_shows_a_bar_in_a_terminal_but_never_on_ci(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    monkeypatch.delenv("CI", raising=False)
    assert P.show_progress(None)
    monkeypatch.setenv("CI", "true")
    assert not P.show_progress(None)
    assert P.show_progress(True) and not P.show_progress(False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.delenv("CI")
    assert not P.show_progress(None)


def test_log_lines_go_above_the_bar(capsys):
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("LOG %(message)s"))
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        dh.minimize(loss, {"w": np.zeros(3)}, data(), algo="sgd", max_epochs=3, progress=True)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    err = capsys.readouterr().err
    assert "LOG validation 0" in err and "LOG SGD 3 loss=" in err
    assert "SGD: 100%" in err
    assert root.handlers.count(handler) == 0                 # the handlers are given back


def test_progress_true_without_tqdm_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(P, "_tqdm", lambda: None)
    with pytest.raises(ImportError, match=r"progress bars need tqdm.*pip install "
                                          r"'npdownhill\[progress\]'"):
        dh.minimize(loss, {"w": np.zeros(3)}, data(), algo="sgd", max_epochs=1, progress=True)
    with pytest.raises(ImportError, match=r"solve\(progress=True\)"):
        dh.solve(lambda p: anp.sum(p ** 2), np.ones(2), progress=True)


@pytest.mark.parametrize("bad", ["yes", 1, 0.5])
def test_bad_progress_values_are_refused(bad):
    with pytest.raises(TypeError, match=r"progress must be None, True or False"):
        dh.minimize(loss, {"w": np.zeros(3)}, data(), algo="sgd", max_epochs=1, progress=bad)
    with pytest.raises(TypeError, match=r"progress must be None, True or False"):
        dh.solve(lambda p: anp.sum(p ** 2), np.ones(2), progress=bad)


def test_solve_shows_iterations_with_loss_and_gradient(capsys):
    dh.solve(lambda p: (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2, np.array([-1.2, 1.0]),
             progress=True)
    final = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert final.startswith("solve lbfgs:") and "it" in final
    assert "loss=" in final and "grad=" in final


def _run_script(body):
    script = textwrap.dedent("""
        import numpy as np, autograd.numpy as anp, npdownhill as dh
        x = np.random.default_rng(0).normal(size=(16, 2)); y = x @ [1.0, 2.0]
        loss = lambda p, a, b: anp.mean((anp.dot(a, p) - b) ** 2)
    """) + textwrap.dedent(body)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("CI", None)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=120)


def test_a_run_without_bar_or_logging_says_once_how_to_see_progress():
    out = _run_script("""
        dh.minimize(loss, np.zeros(2), [x, y], algo="sgd", max_epochs=2)
        dh.minimize(loss, np.zeros(2), [x, y], algo="sgd", max_epochs=2)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("logs each epoch at INFO level") == 1
    assert "logging.basicConfig(level=logging.INFO)" in out.stderr and "progress=True" in out.stderr


def test_no_hint_when_the_log_is_shown():
    out = _run_script("""
        import logging
        logging.basicConfig(level=logging.INFO)
        dh.minimize(loss, np.zeros(2), [x, y], algo="sgd", max_epochs=2)
    """)
    assert out.returncode == 0, out.stderr
    assert "INFO level" not in out.stderr and "validation 0" in out.stderr
