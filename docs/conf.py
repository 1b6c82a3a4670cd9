"""Sphinx configuration of npdownhill's documentation.

Build (from the repository's root; needs ``pip install ".[docs]"``, Python >= 3.11)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

The build runs every example of ``examples/gallery`` (a broken one fails it) and
fetches nothing from the network: there is no intersphinx, and MathJax is loaded
by the reader's browser, not by the build.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)          # document the package of this checkout
sys.path.insert(0, HERE)          # build_algorithms

import build_algorithms  # noqa: E402

import npdownhill  # noqa: E402

# docs/algorithms.md is generated from the registry: refuse to publish a stale one.
with open(os.path.join(HERE, "algorithms.md")) as _f:
    if _f.read() != build_algorithms.render():
        raise RuntimeError("docs/algorithms.md is stale: run python docs/build_algorithms.py")

project = "npdownhill"
author = "npdownhill developers"
copyright = "npdownhill developers"
release = npdownhill.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints",
                    "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip",
                    "auto_examples/*.codeobj.json"]
templates_path = ["_templates"]

# -- MyST: the Markdown pages (README sections are included with start-after / end-before)
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3          # links such as training.md#datasets resolve

# -- autodoc / autosummary / numpydoc
autosummary_generate = True
autodoc_member_order = "bysource"
autodoc_typehints = "none"        # the docstrings give the types, in numpydoc form
autodoc_inherit_docstrings = True
# The classes' methods are documented by the autosummary class template (autoclass with
# :members:), so numpydoc must not add a second, stub-less table of them.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- sphinx-gallery: every example runs at build time; an error fails the build
sphinx_gallery_conf = {
    "examples_dirs": os.path.join("..", "examples", "gallery"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r".*\.py$",             # run them all
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": ("matplotlib",),
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "plot_gallery": "True",
    "min_reported_time": 1,
    "capture_repr": ("_repr_html_",),           # show prints, not the last value of a cell
}

# -- HTML
html_theme = "furo"
html_title = f"npdownhill {release}"
html_static_path = []
pygments_style = "sphinx"
pygments_dark_style = "monokai"

