"""The README, the demo, the example and the generated docs do what they say."""

import importlib.util
import inspect
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import npdownhill as dh

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


def run(*args, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def test_readme_states_the_two_fresh_machine_commands():
    text = read("README.md")
    assert "pip install . && python -m npdownhill" in text
    assert 'pip install ".[test]" && pytest' in text
    assert 'pip install ".[test]" && pytest' in read(".ci", "run")


def test_readme_quick_start_runs_and_updates_params_in_place():
    block = re.findall(r"```python\n(.*?)```", read("README.md"), re.S)[0]
    namespace = {}
    exec(compile(block, "README quick start", "exec"), namespace)
    params, train = namespace["params"], namespace["train"]
    assert params["u"].shape == (20, 3)
    assert train["loss"] < 2.5                        # from about 12.8 at the start


def test_readme_small_fits_example_runs():
    section = read("README.md").split("## Small fits", 1)[1]
    block = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    namespace = {}
    exec(compile(block, "README small fits", "exec"), namespace)
    assert namespace["result"].success
    assert float(namespace["params"]["x"]) == 0.8               # held at its bound
    popt, errors, truth = namespace["popt"], namespace["errors"], namespace["truth"]
    for name, value in truth.items():                           # within 4 standard errors
        assert abs(float(popt[name]) - value) < 4 * float(errors[name])


def test_readme_many_fits_example_runs():
    section = read("README.md").split("## Many fits", 1)[1]
    block = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    namespace = {}
    exec(compile(block, "README many fits", "exec"), namespace)
    result = namespace["result"]
    assert result.n_minima == 4
    assert result.best.x is namespace["x"] and result.best.fun < 1e-10


def test_demo_runs_and_reports_the_fit():
    result = run("-m", "npdownhill", "--quiet", "--algo", "adam", "--learning-rate", "0.05",
                 "--max-epochs", "300")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "npdownhill demo: Adam" in out
    before, after = map(float, re.search(r"loss\s+([\d.]+) -> ([\d.]+)", out).groups())
    assert after < before / 3


def test_demo_shows_a_compact_live_view_or_the_full_log_and_rejects_unknown_algorithms():
    result = run("-m", "npdownhill", "--max-epochs", "300")
    assert result.returncode == 0
    lines = result.stderr.strip().splitlines()          # a pipe: no bar, a line per 100 epochs
    assert [line.split()[1] for line in lines] == ["100", "200", "300"]
    assert all(re.match(r"^epoch +\d+  train loss \d+\.\d{6}  best validation", l) for l in lines)
    result = run("-m", "npdownhill", "--max-epochs", "20", "--log")
    assert re.search(r"^RMSProp 1 loss=\d+\.\d{6} err=", result.stderr, re.M)
    assert re.search(r"^validation 0 loss=\d+\.\d{6} .* \*$", result.stderr, re.M)
    bad = run("-m", "npdownhill", "--algo", "nope")
    assert bad.returncode == 2 and "invalid choice: 'nope'" in bad.stderr
    assert run("-m", "npdownhill", "--help").returncode == 0


def test_demo_saves_a_picture_of_its_run(tmp_path):
    picture = tmp_path / "run.png"
    result = run("-m", "npdownhill", "--quiet", "--max-epochs", "50", "--plot", str(picture))
    assert result.returncode == 0, result.stderr
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"picture of the run  {picture}" in result.stdout


def test_example_script_runs():
    result = run(os.path.join("examples", "quickstart.py"))
    assert result.returncode == 0, result.stderr
    assert "holds the best factor found" in result.stdout


def _builder():
    spec = importlib.util.spec_from_file_location("build_algorithms",
                                                  os.path.join(ROOT, "docs", "build_algorithms.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_algorithm_docs_are_up_to_date():
    assert read("docs", "algorithms.md") == _builder().render(), \
        "docs/algorithms.md is stale: run python docs/build_algorithms.py"


def test_readme_algorithm_table_is_generated_from_the_registry():
    builder = _builder()
    readme = read("README.md")
    assert builder.update_readme(readme) == readme, \
        "the README's algorithm table is stale: run python docs/build_algorithms.py"
    table = builder.render_readme_table()
    for name in dh.algorithms():                     # one row per registered algorithm
        assert f"| `{name}` |" in table
        assert dh.registry.lookup(name).summary, f"{name} has no summary line"


def _public_members():
    for name in dh.__all__:
        obj = getattr(dh, name)
        yield name, obj
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if not attr.startswith("_") and (inspect.isfunction(member) or isinstance(member, property)):
                    yield f"{name}.{attr}", member


@pytest.mark.parametrize("name, obj", list(_public_members()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_public_name_has_a_docstring(name, obj):
    doc = inspect.getdoc(obj)
    assert doc and len(doc) > 20, f"{name} has no real docstring"


@pytest.mark.parametrize("name", dh.algorithms())
def test_algorithm_docstrings_give_equations_defaults_and_references(name):
    cls = type(dh.build(name, lambda p: 0.0, np.zeros(1)))
    doc = inspect.getdoc(cls)
    assert ".. math::" in doc and "References" in doc and "Parameters" in doc
    assert "learning_rate" in doc


@pytest.mark.parametrize("module", ["tree", "optimizer", "driver", "dataset", "schedules", "hyper",
                                    "adaptive", "adam", "first_order", "checkpoint", "result",
                                    "run", "registry", "options", "diagnostics", "solve",
                                    "lsq", "curvefit", "derivatives", "fitresult", "gradcheck", "plot"])
def test_docstring_examples_run(module):
    import doctest
    import importlib
    mod = importlib.import_module(f"npdownhill.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


# -- the documentation site (docs/, examples/gallery/) ------------------------------------
# These tests need neither Sphinx nor the docs extra: they check the sources the site is
# built from, and run every gallery example as a plain script. .ci/run builds the site.

DOCS_COMMAND = 'pip install ".[docs]" && sphinx-build -W --keep-going -b html docs docs/_build/html'
GALLERY = os.path.join(ROOT, "examples", "gallery")
EXAMPLES = sorted(name for name in os.listdir(GALLERY) if name.endswith(".py"))

# Saves every open figure of the example it runs; matplotlib draws off-screen (Agg).
_RUN_EXAMPLE = """
import os, runpy, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
plt.show = lambda *args, **kwargs: None          # as sphinx-gallery: nothing to show
runpy.run_path(sys.argv[1], run_name="__main__")
for number in plt.get_fignums():
    plt.figure(number).savefig(os.path.join(sys.argv[2], f"figure{number}.png"), dpi=40)
print("figures:", len(plt.get_fignums()))
"""


def test_readme_and_ci_build_the_docs_with_one_command():
    assert DOCS_COMMAND in read("README.md")
    ci = read(".ci", "run")
    assert 'pip install --quiet ".[docs]" && sphinx-build -W --keep-going' in ci
    assert ci.index("pytest") < ci.index("sphinx-build")          # after the tests


def test_docs_extra_and_the_library_python_minimum():
    text = read("pyproject.toml")
    assert 'requires-python = ">=3.10"' in text
    extra = re.search(r"^docs = \[(.*?)\]", text, re.S | re.M).group(1)
    for package in ("sphinx", "numpydoc", "myst-parser", "sphinx-gallery", "furo",
                    "matplotlib", "tqdm"):
        assert f'"{package}>=' in extra, package


def _conf():
    spec = importlib.util.spec_from_file_location("docs_conf", os.path.join(ROOT, "docs", "conf.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)                # imports npdownhill, not Sphinx
    return module


def test_docs_conf_uses_the_chosen_toolchain_and_fetches_nothing():
    conf = _conf()
    assert conf.extensions == ["sphinx.ext.autodoc", "sphinx.ext.autosummary",
                               "sphinx.ext.mathjax", "numpydoc", "myst_parser",
                               "sphinx_gallery.gen_gallery"]
    assert conf.html_theme == "furo"
    assert not any("intersphinx" in e for e in conf.extensions)
    gallery = conf.sphinx_gallery_conf
    assert os.path.normpath(os.path.join(ROOT, "docs", gallery["examples_dirs"])) == GALLERY
    assert re.fullmatch(gallery["filename_pattern"], "/x/plot_01.py")   # every example runs


def _toctree_entries(path):
    text = read("docs", path)
    entries = []
    for block in re.findall(r"```\{toctree\}\n(.*?)```", text, re.S):
        entries += [line.strip() for line in block.splitlines()
                    if line.strip() and not line.startswith(":")]
    for block in re.findall(r"\.\. toctree::\n((?:\n|   .*\n)*)", text):
        entries += [line.strip() for line in block.splitlines()
                    if line.strip() and not line.strip().startswith(":")]
    return entries


def test_the_site_has_its_pages_and_each_is_in_a_table_of_contents():
    root = _toctree_entries("index.md")
    assert root == ["getting_started", "user_guide", "teaching", "auto_examples/index",
                    "algorithms", "api/index", "coming_from"]
    guide = _toctree_entries("user_guide.md")
    assert guide == ["levels", "params", "datasets", "controls", "checkpoints", "small_fits",
                     "many_fits", "promises", "training"]
    api = ["api/" + e for e in _toctree_entries(os.path.join("api", "index.rst"))]
    assert api == ["api/schedules", "api/problems", "api/plot"]
    for page in root + guide + api:
        if page != "auto_examples/index":                  # generated by sphinx-gallery
            assert any(os.path.exists(os.path.join(ROOT, "docs", page + ext))
                       for ext in (".md", ".rst")), page
    assert os.path.exists(os.path.join(GALLERY, "GALLERY_HEADER.rst"))


def test_the_api_reference_lists_every_public_name():
    from npdownhill import plot, problems, schedules

    def listed(page):
        return set(re.findall(r"^   ([A-Za-z_][A-Za-z0-9_]*)$", read("docs", "api", page), re.M))

    index = listed("index.rst")
    for name in dh.__all__:
        obj = getattr(dh, name)
        # another name of a class (AdaGrad is ADAGRAD) is documented under the class's own
        assert name in index or getattr(obj, "__name__", name) in index, name
    # each schedule is one class with two names; the CamelCase one is listed
    assert listed("schedules.rst") == {getattr(schedules, n).__name__ for n in schedules.__all__}
    assert listed("problems.rst") == set(problems.__all__)
    assert listed("plot.rst") == set(plot.__all__)


def test_readme_sections_included_by_the_docs_exist_once():
    readme = read("README.md")
    pages = [p for p in os.listdir(os.path.join(ROOT, "docs")) if p.endswith(".md")]
    markers = []
    for page in pages:
        markers += re.findall(r":(?:start-after|end-before): (<!-- .*? -->)", read("docs", page))
    assert len(markers) >= 16
    for marker in markers:
        assert readme.count(marker) == 1, marker


@pytest.mark.parametrize("page", ["teaching.md", "datasets.md"])
def test_code_on_the_docs_pages_runs(page, tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", read("docs", page), re.S)
    assert blocks
    script = tmp_path / "page.py"
    script.write_text("import matplotlib\nmatplotlib.use('Agg')\n" + "\n".join(blocks))
    result = run(str(script), cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr


def test_the_gallery_has_the_examples_the_site_promises():
    assert len(EXAMPLES) >= 8
    for name in EXAMPLES:
        text = read("examples", "gallery", name)
        # sphinx-gallery's format: a module docstring with a title, cells marked "# %%"
        assert re.match(r'r?"""\n[^\n]+\n=+\n', text), f"{name}: no title in its docstring"
        assert "\n# %%\n" in text, name


@pytest.mark.parametrize("name", EXAMPLES)
def test_gallery_example_runs_as_a_script_and_draws(name, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", _RUN_EXAMPLE,
                             os.path.join(GALLERY, name), str(tmp_path)],
                            capture_output=True, text=True, cwd=str(tmp_path), env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    pictures = sorted(tmp_path.glob("figure*.png"))
    assert pictures, f"{name} drew no figure"
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pictures)
