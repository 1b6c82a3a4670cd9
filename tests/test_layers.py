"""The package's layers: modules import in one direction, never inside functions.

DESIGN.md section 3: foundations, then the engine (which knows nothing of
datasets, epochs or files), then the run, then small fits, then the package's
entry points.
Each module may import only from its own layer or those below; the import
graph has no cycle; and no module imports one of the package's modules
inside a function (the usual way to dodge a cycle, and a hazard in a
finalizer at interpreter exit).
"""

import ast
import os

import pytest

import npdownhill

PACKAGE = os.path.dirname(os.path.abspath(npdownhill.__file__))

LAYERS = {
    "foundations": ["errors", "tree", "hyper", "options", "codec", "npzfile", "rngstate"],
    "engine": ["diagnostics", "monitors", "pipeline", "leafpatterns", "evaluation",
               "optimizer_state", "update", "optimizer", "registry", "linesearch", "quasi_newton",
               "first_order", "adaptive", "adam", "modern", "schedule_free", "schedules"],
    "run": ["dataset", "runstate", "interrupt", "progress", "result", "checkpoint", "run", "driver"],
    "fitting": ["fitresult", "derivatives", "lsq", "curvefit", "solve"],
    "teaching": ["plot", "problems", "gradcheck"],
    "many fits": ["many"],
    "entry points": ["__init__", "__main__"],
}
RANK = {module: rank for rank, modules in enumerate(LAYERS.values()) for module in modules}


def modules():
    """``{dotted name relative to the package: path}`` of every module."""
    out = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), PACKAGE)[:-3]
                out[rel.replace(os.sep, ".")] = os.path.join(folder, name)
    return out


def layer_of(module):
    top = module.split(".")[0]
    return RANK[top]


def _module_or_package(name, package):
    """``from . import x``: x is a module of the package, or a name its __init__ defines."""
    if name in ALL or name + ".__init__" in ALL:
        return name
    return package + ".__init__" if package else "__init__"


def own_imports(module, path):
    """``[(imported module, line, inside a function)]`` of the package's own modules."""
    tree = ast.parse(open(path).read())
    package = module.split(".")[:-1] if not module.endswith("__init__") else module.split(".")[:-1]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                       ast.Lambda))
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package[:len(package) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                    names = [target] if child.module else [
                        _module_or_package(".".join(base + [a.name]), ".".join(base))
                        for a in child.names]
                    found.extend((n or "__init__", child.lineno, in_function) for n in names)
                elif child.module and child.module.startswith("npdownhill"):
                    found.append((child.module[len("npdownhill."):] or "__init__", child.lineno,
                                  in_function))
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith("npdownhill"):
                        found.append((alias.name[len("npdownhill."):] or "__init__",
                                      child.lineno, in_function))
            visit(child, inside)

    visit(tree, False)
    return found


ALL = modules()


def test_every_module_has_a_layer():
    missing = sorted({m.split(".")[0] for m in ALL} - set(RANK))
    assert not missing, f"modules without a layer in this test: {missing}"


@pytest.mark.parametrize("module", sorted(ALL))
def test_imports_go_down_the_layers_and_never_hide_in_functions(module):
    for target, line, in_function in own_imports(module, ALL[module]):
        assert not in_function, f"{module}:{line} imports {target} inside a function"
        if target.split(".")[0] == module.split(".")[0]:
            continue                                   # inside a subpackage (schedules)
        assert layer_of(target) <= layer_of(module), \
            f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)}) from a layer above"


def test_the_import_graph_has_no_cycle():
    graph = {m: {t for t, _, _ in own_imports(m, p)} for m, p in ALL.items()}
    graph = {m: {t if t in graph else t + ".__init__" for t in ts} for m, ts in graph.items()}
    state = {}

    def visit(node, path):
        if state.get(node) == "done":
            return
        assert state.get(node) != "active", "import cycle: " + " -> ".join(path + [node])
        state[node] = "active"
        for target in sorted(graph.get(node, ())):
            if target != node and not target.startswith("__init__"):
                visit(target, path + [node])
        state[node] = "done"

    for node in sorted(graph):
        if not node.startswith("__"):
            visit(node, [])


def test_the_engine_knows_nothing_of_datasets_epochs_or_files():
    run_layer = set(LAYERS["run"])
    for module in LAYERS["engine"]:
        for path_module, path in ALL.items():
            if path_module.split(".")[0] != module:
                continue
            imported = {t.split(".")[0] for t, _, _ in own_imports(path_module, path)}
            assert not imported & run_layer, f"{path_module} imports {imported & run_layer}"
