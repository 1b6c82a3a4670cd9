"""Param trees: named leaves, one flat buffer, and the views between them.

A *param tree* is a floating-point ``ndarray`` or any nesting of ``dict``,
``list`` and ``tuple`` whose leaves are floating-point ``ndarray`` objects
(0-d arrays included)::

    {"w": np.zeros((3, 2)), "layers": [{"W": ..., "b": ...}, ...]}

Every leaf has a *name*: the dict keys and list indices on the way to it,
joined by ``.`` (``"w"``, ``"layers.0.W"``); a bare array is named ``""``.
Leaves are visited in a fixed order (dict insertion order, then list order),
which is also the order in which they are laid out in a :class:`Layout`'s flat
buffer: leaf ``i`` occupies ``flat[offsets[i]:offsets[i + 1]]`` in C order.

The optimizer never copies the user's tree. It updates the user's arrays in
place, so the arrays a caller passed in are the arrays that hold the result.
It follows that a caller must change a parameter in place too
(``params["w"][...] = value``): rebinding it (``params["w"] = value``) leaves
the optimizer updating an array the tree no longer holds, which
:meth:`Layout.check_bound` detects.
When every leaf is already a view into one contiguous buffer, laid out exactly
as above (see :func:`pack`), that buffer is used directly and an update
touches the parameters with a single NumPy operation.
"""

import operator
from collections import deque

import numpy as np

__all__ = ["Layout", "leaves", "pack"]

_dtype = operator.attrgetter("dtype")

#: ``np.concatenate`` and ``np.dot`` called without their ``__array_function__``
#: dispatch (about 0.4 and 0.2 µs a call, a few percent of an update of a small tree):
#: for the update's hot paths, whose arrays are NumPy's own or plain array-likes.
raw_concatenate = getattr(np.concatenate, "_implementation", np.concatenate)
raw_dot = getattr(np.dot, "_implementation", np.dot)

_REAL_DTYPES = set()     # dtypes seen to be real numbers (float, int, uint)


def _real(dtypes):
    """Whether every dtype in a set holds real numbers (not bool, complex or object)."""
    if dtypes <= _REAL_DTYPES:
        return True
    if all(d.kind in "fiu" for d in dtypes):
        _REAL_DTYPES.update(dtypes)
        return True
    return False

_CONTAINERS = (dict, list, tuple)

try:                                    # numpy >= 2.0
    from numpy.lib.array_utils import byte_bounds as _byte_bounds
except ImportError:                     # numpy 1.25 / 1.26
    _byte_bounds = np.byte_bounds


def _walk(tree, prefix, out, where):
    """Append ``(name, leaf)`` pairs of ``tree`` to ``out`` in layout order."""
    if isinstance(tree, dict):
        for key, sub in tree.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise TypeError(
                    f"{where}: dict keys must be str or int; got {key!r} "
                    f"({type(key).__name__}) under {_at(prefix)}")
            _walk(sub, f"{prefix}.{key}" if prefix else str(key), out, where)
    elif isinstance(tree, (list, tuple)):
        for index, sub in enumerate(tree):
            _walk(sub, f"{prefix}.{index}" if prefix else str(index), out, where)
    else:
        out.append((prefix, tree))


def leaves(tree, where="params"):
    """List the ``(name, leaf)`` pairs of a tree in layout order.

    Parameters
    ----------
    tree : ndarray, dict, list or tuple
        A param tree (or any tree of the same shape, such as gradients).
    where : str, optional
        What to call the tree in error messages.

    Returns
    -------
    list of (str, object)
        Leaf names and leaves, in the order the flat buffer uses. Leaves are
        returned as found; nothing is validated beyond the containers.

    Examples
    --------
    >>> [name for name, _ in leaves({"w": np.zeros(2), "b": [np.zeros(()), np.ones(1)]})]
    ['w', 'b.0', 'b.1']
    """
    out = []
    _walk(tree, "", out, where)
    return out


def _display(name):
    return repr(name) if name else "the root array"


def _at(prefix):
    return repr(prefix) if prefix else "the root"


class Layout:
    """The fixed layout of a param tree in one flat buffer.

    A layout is built once from the user's parameters. It validates them,
    remembers leaf names, shapes and offsets, and converts between trees of
    the same structure (gradients, steps) and flat vectors.

    Parameters
    ----------
    params : ndarray, dict, list or tuple
        The param tree. Every leaf must be a writeable, non-empty
        floating-point ``ndarray``; no two leaves may share memory.
    where : str, optional
        The call that received ``params``, used in error messages.

    Attributes
    ----------
    names : list of str
        Leaf names in layout order.
    arrays : list of ndarray
        The user's leaf arrays themselves (not copies).
    shapes : list of tuple
        Leaf shapes.
    offsets : ndarray of int
        ``offsets[i]:offsets[i + 1]`` is leaf ``i``'s slice of a flat buffer.
    size : int
        Total number of elements.
    dtype : numpy.dtype
        Dtype of the flat buffers: the common floating dtype of the leaves
        (``float32`` for an all-``float32`` tree).
    packed : ndarray or None
        When the leaves are consecutive views into one contiguous buffer of
        ``dtype`` (as made by :func:`pack`), that 1-d buffer; else ``None``.

    Raises
    ------
    TypeError
        A leaf that is not a floating-point ``ndarray`` (integers, bools,
        complex numbers, Python floats and objects are refused), a ``float16``
        leaf (too coarse for the optimizers' arithmetic; ``float32``,
        ``float64`` and ``longdouble`` are accepted), or a dict key that is
        neither ``str`` nor ``int``.
    ValueError
        An empty tree, a zero-size or read-only leaf, two leaves with the same
        name, or two leaves that share memory.
    """

    def __init__(self, params, where="params"):
        pairs = leaves(params, where)
        if not pairs:
            raise ValueError(f"{where}: the param tree has no leaves")
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"{where}: leaf names must be unique; {dup} appear more than once "
                             "(a dict key containing '.' can collide with a nested name)")
        for name, leaf in pairs:
            _check_leaf(name, leaf, where)
        self.names = names
        self.arrays = [leaf for _, leaf in pairs]
        self.shapes = [leaf.shape for leaf in self.arrays]
        sizes = [leaf.size for leaf in self.arrays]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
        self.size = int(self.offsets[-1])
        self.dtype = np.result_type(*self.arrays)
        self.structure = _structure(params)
        # autograd differentiates through dicts, lists and tuples; other containers
        # (namedtuples) are handed to it as the flat list of leaves (see Optimizer)
        self.plain = _plain(self.structure)
        self.index = {name: i for i, name in enumerate(names)}
        _check_no_overlap(self, where)
        self.packed = self._find_packed_buffer()
        self._get = _compile_getter(self.structure)
        self._flat = _compile_flat_getter(self.structure, self.shapes)
        self._holds = _compile_identity_check(self.structure, self.arrays)

    # -- conversions -----------------------------------------------------
    def empty(self):
        """A new uninitialised flat buffer of this layout's size and dtype."""
        return np.empty(self.size, dtype=self.dtype)

    def zeros(self):
        """A new zero-filled flat buffer of this layout's size and dtype."""
        return np.zeros(self.size, dtype=self.dtype)

    def views(self, flat):
        """Views of a flat buffer, one per leaf, with the leaves' shapes."""
        off = self.offsets
        return [flat[off[i]:off[i + 1]].reshape(shape) for i, shape in enumerate(self.shapes)]

    def unflatten(self, flat):
        """A tree shaped like the params whose leaves are views of ``flat``."""
        it = iter(self.views(flat))
        return _rebuild(self.structure, it)

    def tree_of(self, values):
        """A tree shaped like the params holding the given per-leaf values."""
        return _rebuild(self.structure, iter(values))

    def gather(self, tree, out, where="grads", out_views=None):
        """Copy a tree shaped like the params into the flat buffer ``out``.

        Parameters
        ----------
        tree : ndarray, dict, list or tuple
            Same containers, keys and leaf shapes as the params. Leaves may
            be arrays or Python/NumPy scalars (for 0-d leaves).
        out : ndarray
            Flat buffer of this layout (written in place and returned).
        where : str
            Name of the tree in error messages.
        out_views : list of ndarray, optional
            ``self.views(out)``: when the tree's leaves are exactly these
            views, the values are already in ``out`` and nothing is copied.

        Raises
        ------
        ValueError
            The tree's structure, names or shapes differ from the params.
        TypeError
            A leaf is not a real number.
        """
        try:
            if out_views is not None and all(map(operator.is_, self._get(tree), out_views)):
                return out            # written in place into out's own views
            flat = self._flat(tree)   # fast path: generated code, no per-leaf walk
            try:                      # leaves of the buffer's dtype: nothing to check
                raw_concatenate(flat, 0, out, casting="equiv")
                return out
            except TypeError:         # other dtypes: cast if they hold real numbers
                if _real(set(map(_dtype, flat))):
                    raw_concatenate(flat, 0, out, casting="same_kind")
                    return out
        except Exception:
            pass
        values = self._checked_slowly(tree, where)
        np.concatenate([np.asarray(v) for v in values], axis=None, out=out, casting="same_kind")
        return out

    def leaves_of(self, tree, where="grads"):
        """The leaves of a tree shaped like the params, checked as :meth:`gather` checks them.

        Returns
        -------
        list
            One value per leaf, in layout order: arrays of the leaves' shapes
            (or scalars for 0-d leaves) holding real numbers.

        Raises
        ------
        ValueError, TypeError
            As :meth:`gather`.
        """
        try:
            values = self._get(tree)
            if [v.shape for v in values] == self.shapes and _real(set(map(_dtype, values))):
                return values
        except Exception:
            pass
        return self._checked_slowly(tree, where)

    def _checked_slowly(self, tree, where):
        values = self.match(tree, where)  # slow path: finds and names the problem
        for name, value in zip(self.names, values):
            kind = np.asarray(value).dtype.kind
            if kind not in "fiu":
                raise TypeError(f"{where}: leaf {_display(name)} must hold real numbers; "
                                f"got dtype {np.asarray(value).dtype}")
        return values

    def chunks(self, size):
        """Split the flat buffer into chunks of at most ``size`` elements, along leaves.

        Consecutive whole leaves share a chunk while they fit; a leaf larger
        than ``size`` is split into chunks of its own.

        Returns
        -------
        list of tuple
            ``(start, stop, first, last, lo, hi)``: elements ``start:stop`` of
            the flat buffer hold leaves ``first`` to ``last - 1`` whole
            (``lo`` and ``hi`` are ``None``), or elements ``lo:hi`` of leaf
            ``first`` (then ``last == first + 1``) in C order.
        """
        off, n, out = [int(o) for o in self.offsets], len(self.arrays), []
        i = 0
        while i < n:
            start, length = off[i], off[i + 1] - off[i]
            if length > size:
                out.extend((start + lo, start + min(lo + size, length), i, i + 1,
                            lo, min(lo + size, length)) for lo in range(0, length, size))
                i += 1
                continue
            j = i + 1
            while j < n and off[j + 1] - start <= size:
                j += 1
            out.append((start, off[j], i, j, None, None))
            i = j
        return out

    def identity_check(self, arrays):
        """A function ``holds(tree) -> bool``: is every leaf of ``tree`` the given array?

        Compiled like the check of :meth:`check_bound` (one generated call,
        leaves compared by identity); for a bare-array layout, ``tree`` itself
        is compared with ``arrays[0]``.
        """
        if not isinstance(self.structure, _CONTAINERS):
            only = arrays[0]
            return lambda tree: tree is only
        return _compile_identity_check(self.structure, arrays)

    def match(self, tree, where="grads"):
        """Return the leaves of ``tree`` after checking it mirrors the params.

        Raises
        ------
        ValueError
            A container, key, length or leaf shape differs from the params.
        """
        if tree is None:
            raise ValueError(f"{where}: expected a tree like the params; got None")
        values = _leaves_like(self.structure, tree, "", where)
        for i, value in enumerate(values):
            shape = np.shape(value)
            if shape != self.shapes[i]:
                raise ValueError(f"{where}: leaf {_display(self.names[i])} has shape {shape}; "
                                 f"the params leaf has shape {self.shapes[i]}")
        return values

    def read(self, out):
        """Copy the current parameter values into the flat buffer ``out``."""
        np.concatenate(self.arrays, axis=None, out=out, casting="same_kind")
        return out

    def write(self, flat):
        """Overwrite the user's parameter arrays with the values in ``flat``."""
        if self.packed is not None:
            np.copyto(self.packed, flat, casting="same_kind")
        else:
            deque(map(np.copyto, self.arrays, self.views(flat)), maxlen=0)

    def adder(self, flat):
        """A function of no arguments that adds ``flat`` to the parameters in place.

        The views of ``flat`` are made once here, so the returned function
        costs one NumPy call per leaf (or a single call for a packed tree).
        ``map`` runs the per-leaf loop in C: no Python bytecode runs between
        leaves, so a ``KeyboardInterrupt`` cannot land half-way through.
        """
        if self.packed is not None:
            packed = self.packed
            return lambda: np.add(packed, flat, out=packed)
        arrays, views = self.arrays, self.views(flat)
        return lambda: deque(map(np.add, arrays, views, arrays), maxlen=0)

    def leaf_sums(self, flat):
        """Per-leaf sums of a flat buffer (one ``np.add.reduceat`` call)."""
        return np.add.reduceat(flat, self.offsets[:-1])

    def check_compatible(self, other_names, other_shapes, other_dtype, where):
        """Raise ``ValueError`` describing how another layout differs from this one."""
        if list(other_names) != self.names:
            missing = [n for n in self.names if n not in other_names]
            extra = [n for n in other_names if n not in self.names]
            raise ValueError(f"{where}: leaf names differ: missing {missing}, unexpected {extra}"
                             if (missing or extra) else
                             f"{where}: leaf order differs: {list(other_names)} vs {self.names}")
        for name, a, b in zip(self.names, other_shapes, self.shapes):
            if tuple(a) != tuple(b):
                raise ValueError(f"{where}: leaf {_display(name)} has shape {tuple(a)}; "
                                 f"the params leaf has shape {b}")
        if np.dtype(other_dtype) != self.dtype:
            raise ValueError(f"{where}: dtype {np.dtype(other_dtype)} differs from the params' "
                             f"{self.dtype}")

    def check_bound(self, tree, where):
        """Check that ``tree`` still holds this layout's arrays themselves.

        The optimizer updates the arrays it was built with, in place. If the
        caller rebinds a leaf (``params["w"] = params["w"] * 1.0``), the loss
        reads the new array while the optimizer keeps updating the old one.
        This check catches that: every leaf position of ``tree`` must hold
        the identical array object (``is``) recorded in :attr:`arrays`, and
        the containers must have no extra keys or items.

        Runs on every step, so the usual case costs one call of a generated
        function that compares the leaves by identity (no per-leaf walk);
        only a failed check walks the tree to explain what changed.

        Parameters
        ----------
        tree : dict, list, tuple or ndarray
            The param tree this layout was built from (the same container
            object), possibly mutated since. A bare-array tree always passes:
            there is no container through which it could be rebound.
        where : str
            The call being checked, used in error messages.

        Returns
        -------
        None

        Raises
        ------
        ValueError
            A leaf position holds another array, another type, or nothing (a
            missing key, a shortened list, a replaced container); or a
            container gained a key or item that the layout does not have.
        """
        if self._holds(tree):
            return None
        problem = _first_difference(self.structure, self.arrays, tree)
        if problem is None:
            return None  # the walk finds nothing wrong: only an exotic container (say a
                         # dict subclass with its own __len__) can make the two disagree
        leaf, clause = problem
        if leaf is None:
            raise ValueError(f"{where}: {clause}; the param tree's structure changed after the "
                             "optimizer was built, and its layout is fixed. Restore the structure, "
                             "or build a new optimizer for the new tree")
        path = _leaf_paths(self.structure)[leaf]
        raise ValueError(f"{where}: leaf {_display(self.names[leaf])} was rebound to another "
                         f"object: {clause}, so the optimizer would update an array the params "
                         f"no longer hold. Assign in place instead, e.g. "
                         f"{_expr(path)}[...] = new_value, or build a new optimizer for the "
                         "new arrays")

    def _find_packed_buffer(self):
        """The 1-d buffer all leaves are consecutive views of, or ``None``."""
        first = self.arrays[0]
        base = first if first.base is None else first.base
        if not (isinstance(base, np.ndarray) and base.flags.c_contiguous and base.flags.writeable
                and base.dtype == self.dtype and base.size == self.size):
            return None
        start = base.__array_interface__["data"][0]
        item = self.dtype.itemsize
        for leaf, off in zip(self.arrays, self.offsets[:-1]):
            if ((leaf is not base and leaf.base is not base) or leaf.dtype != self.dtype
                    or not leaf.flags.c_contiguous
                    or leaf.__array_interface__["data"][0] != start + int(off) * item):
                return None
        return base.reshape(-1)


def _check_leaf(name, leaf, where):
    label = f"{where}: leaf {_display(name)}"
    if not isinstance(leaf, np.ndarray):
        hint = " (wrap it with np.array(..., dtype=float))" if isinstance(leaf, (float, int, np.generic)) else ""
        raise TypeError(f"{label} must be a floating-point ndarray; got {type(leaf).__name__}{hint}")
    if leaf.dtype.kind != "f":
        raise TypeError(f"{label} must have a floating-point dtype; got {leaf.dtype} "
                        "(integer, bool, complex and object leaves cannot be optimized)")
    if leaf.dtype == np.float16:
        # float16 cannot hold the optimizer's arithmetic: Adam's epsilon (1e-8) and
        # squared small gradients underflow to 0, and small steps round away.
        raise TypeError(f"{label} has dtype float16, which is too coarse to optimize (epsilon "
                        "and squared gradients underflow, small steps round away); convert it "
                        "before building the optimizer, e.g. with .astype(np.float32)")
    if leaf.size == 0:
        raise ValueError(f"{label} is empty (shape {leaf.shape}); every leaf needs at least one element")
    if not leaf.flags.writeable:
        raise ValueError(f"{label} is read-only; the optimizer updates parameters in place")


def _check_no_overlap(layout, where):
    """Refuse trees in which two leaves share memory (updates would double up)."""
    spans = []
    for i, leaf in enumerate(layout.arrays):
        lo, hi = _byte_bounds(leaf)
        spans.append((lo, hi, i))
    spans.sort()
    for (lo1, hi1, i), (lo2, hi2, j) in zip(spans, spans[1:]):
        if lo2 < hi1 and np.shares_memory(layout.arrays[i], layout.arrays[j]):
            raise ValueError(f"{where}: leaves {_display(layout.names[i])} and "
                             f"{_display(layout.names[j])} share memory; each leaf must be "
                             "its own array")


def _structure(tree):
    """The containers of a tree with leaves replaced by ``None``."""
    if isinstance(tree, dict):
        return {key: _structure(sub) for key, sub in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_structure(sub) for sub in tree) if type(tree) in (list, tuple) \
            else type(tree)(*[_structure(sub) for sub in tree])
    return None


def _plain(structure):
    """Whether every container of a structure is exactly a dict, list or tuple."""
    if isinstance(structure, dict):
        return type(structure) is dict and all(map(_plain, structure.values()))
    if isinstance(structure, (list, tuple)):
        return type(structure) in (list, tuple) and all(map(_plain, structure))
    return True


def _rebuild(structure, values):
    if isinstance(structure, dict):
        return {key: _rebuild(sub, values) for key, sub in structure.items()}
    if isinstance(structure, (list, tuple)):
        items = [_rebuild(sub, values) for sub in structure]
        if type(structure) in (list, tuple):
            return type(structure)(items)
        return type(structure)(*items)  # namedtuple
    return next(values)


_CODE = {}     # generated source -> its code object (trees of one structure share it)


def _compiled(source, filename):
    """``compile(source)``, once per distinct source (compiling costs ~0.1 ms)."""
    code = _CODE.get(source)
    if code is None:
        if len(_CODE) > 256:
            _CODE.clear()
        code = _CODE[source] = compile(source, filename, "exec")
    return code


def _getter_parts(structure):
    """The test of a tree's containers (types and lengths) and the indexing
    expression of every leaf, for the generated getters."""
    checks, paths = [], []

    def walk(s, expr):
        if isinstance(s, dict):
            checks.append(f"isinstance({expr}, dict) and len({expr}) == {len(s)}")
            for key, sub in s.items():
                walk(sub, f"{expr}[{key!r}]")
        elif isinstance(s, (list, tuple)):
            checks.append(f"isinstance({expr}, (list, tuple)) and len({expr}) == {len(s)}")
            for index, sub in enumerate(s):
                walk(sub, f"{expr}[{index}]")
        else:
            paths.append(expr)

    walk(structure, "t")
    return " and ".join(checks) or "True", paths


def _compile_getter(structure):
    """Generate ``get(tree) -> list of leaves`` specialised to one structure.

    The generated function indexes straight down to every leaf (``t['w']``,
    ``t[1]['b']``, ...) and checks container types and lengths, so that
    gathering a gradient tree costs one Python call instead of a recursive
    walk. Any mismatch raises, and the caller falls back to the slow walk
    that explains the difference.
    """
    test, paths = _getter_parts(structure)
    source = (f"def get(t):\n"
              f"    if not ({test}):\n"
              f"        raise ValueError('structure differs')\n"
              f"    return [{', '.join(paths)}]\n")
    namespace = {}
    exec(_compiled(source, "<npdownhill.tree getter>"), namespace)
    return namespace["get"]


def _compile_flat_getter(structure, shapes):
    """Generate ``flat(tree) -> list of 1-d arrays``, ready for ``np.concatenate``.

    As :func:`_compile_getter`, and it also checks every leaf's shape
    against the params' and returns the leaves raveled: ``v0.ravel()`` for
    a leaf of another dimension, the leaf itself for a 1-d one. One Python
    call then does what a list of leaves, a list of their shapes and a
    list of raveled views did (about a tenth of a microsecond per leaf
    less). Any mismatch raises, and the caller falls back to the checked
    path that explains it.
    """
    test, paths = _getter_parts(structure)
    names = [f"s{i}" for i in range(len(shapes))]
    fetch = "".join(f"    v{i} = {p}\n" for i, p in enumerate(paths))
    same = " and ".join(f"v{i}.shape == {n}" for i, n in enumerate(names))
    flat = ", ".join(f"v{i}" if len(shape) == 1 else f"v{i}.ravel()"
                     for i, shape in enumerate(shapes))
    source = (f"def flat(t, {', '.join(f'{n}={n}' for n in names)}):\n"
              f"    if not ({test}):\n"
              f"        raise ValueError('structure differs')\n"
              f"{fetch}"
              f"    if not ({same}):\n"
              f"        raise ValueError('shapes differ')\n"
              f"    return [{flat}]\n")
    namespace = dict(zip(names, shapes))  # the defaults are evaluated at definition
    exec(_compiled(source, "<npdownhill.tree flat getter>"), namespace)
    return namespace["flat"]


def _compile_identity_check(structure, arrays):
    """Generate ``holds(tree) -> bool``: is every leaf of ``tree`` the recorded array?

    Like :func:`_compile_getter`, the generated function indexes straight
    down to every leaf and compares it with its recorded array by identity,
    short-circuiting at the first difference::

        return len(t) == 2 and t[o0] is o1 and len((c0 := t[o2])) == 1 and c0[0] is o3

    The ``len`` tests catch extra keys and items; a missing key, a shortened
    list or a replaced container raises, and any exception means "no". Dict
    keys are indexed with the dict's own key objects, so the lookup matches
    by identity without comparing strings; these and the arrays are bound
    as default arguments (fast locals), and each container is fetched once.
    Order-insensitive: a dict whose keys were re-inserted still passes.

    A bare-array tree cannot be rebound through a container, so its check
    always answers ``True``.
    """
    if not isinstance(structure, _CONTAINERS):
        return lambda tree: True
    tests, bound = [], {}
    arrays = iter(arrays)

    def bind(obj):
        name = f"o{len(bound)}"
        bound[name] = obj
        return name

    def walk(s, first, name):
        # ``first`` is how the container is reached on first use (binding it
        # to ``name`` with :=), which is the len test, always evaluated first
        tests.append(f"len({first}) == {len(s)}")
        for key, sub in (s.items() if isinstance(s, dict) else enumerate(s)):
            child = f"{name}[{bind(key) if isinstance(s, dict) else key}]"
            if isinstance(sub, _CONTAINERS):
                var = f"c{len(tests)}"
                walk(sub, f"({var} := {child})", var)
            else:
                tests.append(f"{child} is {bind(next(arrays))}")

    walk(structure, "t", "t")
    source = (f"def holds(t, {', '.join(f'{n}={n}' for n in bound)}):\n"
              f"    try:\n"
              f"        return {' and '.join(tests)}\n"
              f"    except Exception:\n"
              f"        return False\n")
    namespace = dict(bound)  # the defaults are evaluated here, at definition
    exec(_compiled(source, "<npdownhill.tree identity check>"), namespace)
    return namespace["holds"]


def _count_leaves(structure):
    if isinstance(structure, dict):
        return sum(map(_count_leaves, structure.values()))
    if isinstance(structure, (list, tuple)):
        return sum(map(_count_leaves, structure))
    return 1


def _leaf_paths(structure, path=()):
    """The key/index path of every leaf, in layout order."""
    if isinstance(structure, dict):
        return [p for key, sub in structure.items() for p in _leaf_paths(sub, path + (key,))]
    if isinstance(structure, (list, tuple)):
        return [p for index, sub in enumerate(structure) for p in _leaf_paths(sub, path + (index,))]
    return [path]


def _expr(path):
    """Python indexing expression for a path: ``params["layers"][0]["W"]``."""
    parts = []
    for key in path:
        if isinstance(key, str) and key.isprintable() and '"' not in key and "\\" not in key:
            parts.append(f'["{key}"]')
        else:
            parts.append(f"[{key!r}]")
    return "params" + "".join(parts)


def _first_difference(structure, arrays, tree):
    """Explain the first way ``tree`` no longer matches ``structure`` holding ``arrays``.

    Walks in layout order and returns ``(leaf, clause)``: ``leaf`` is the
    index of the first leaf affected, ``clause`` says what is there now
    (another array, another type, a missing key or item). A container that
    gained keys or items, with every leaf still in place, gives
    ``(None, clause)``. Returns ``None`` when nothing differs.
    """
    position = 0     # index of the next leaf in layout order
    extra = []       # the first container with extra keys/items, reported last

    def kind(s):
        return "a dict" if isinstance(s, dict) else "a list or tuple"

    def replaced(s, node, path):
        # the first leaf under ``s`` is affected (None if ``s`` holds no leaves)
        first = position if _count_leaves(s) else None
        if isinstance(s, _CONTAINERS):
            return first, f"{_expr(path)} is now {_a(node)}, not {kind(s)} (another type)"
        if isinstance(node, np.ndarray):
            return first, (f"{_expr(path)} is now another array (shape {node.shape}, "
                           f"dtype {node.dtype})")
        return first, f"{_expr(path)} is now {_a(node)} (another type)"

    def visit(s, node, path):
        nonlocal position
        if isinstance(s, dict):
            if not isinstance(node, dict):
                return replaced(s, node, path)
            unexpected = [key for key in node if key not in s]
            for key, sub in s.items():
                if key not in node:
                    hint = f"; it has unexpected keys {unexpected}" if unexpected else ""
                    return (position if _count_leaves(sub) else None,
                            f"{_expr(path)} has no key {key!r} any more (a missing key{hint})")
                found = visit(sub, node[key], path + (key,))
                if found:
                    return found
            if unexpected and not extra:
                extra.append(f"{_expr(path)} gained key {unexpected[0]!r}")
        elif isinstance(s, (list, tuple)):
            if not isinstance(node, (list, tuple)):
                return replaced(s, node, path)
            for index, sub in enumerate(s):
                if index >= len(node):
                    return (position if _count_leaves(sub) else None,
                            f"{_expr(path)} has only {_items(len(node))} (index {index} is "
                            "missing)")
                found = visit(sub, node[index], path + (index,))
                if found:
                    return found
            if len(node) > len(s) and not extra:
                extra.append(f"{_expr(path)} gained items: it has {_items(len(node))} where "
                             f"the layout has {len(s)}")
        else:
            if node is not arrays[position]:
                return replaced(s, node, path)
            position += 1
        return None

    found = visit(structure, tree, ())
    if found:
        return found
    return (None, extra[0]) if extra else None


def _items(n):
    return f"{n} item" if n == 1 else f"{n} items"


def _a(obj):
    """``a list``, ``an int``, ``None``: what an object is, for messages."""
    if obj is None:
        return "None"
    name = type(obj).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _leaves_like(structure, tree, prefix, where):
    """Leaves of ``tree`` in layout order, checking containers against ``structure``."""
    if isinstance(structure, dict):
        if not isinstance(tree, dict):
            raise ValueError(f"{where}: expected a dict at {_at(prefix)}; "
                             f"got {type(tree).__name__}")
        if tree.keys() != structure.keys():
            missing = [k for k in structure if k not in tree]
            extra = [k for k in tree if k not in structure]
            raise ValueError(f"{where}: keys at {_at(prefix)} differ from the params: "
                             f"missing {missing}, unexpected {extra}")
        out = []
        for key, sub in structure.items():
            out.extend(_leaves_like(sub, tree[key], f"{prefix}.{key}" if prefix else str(key), where))
        return out
    if isinstance(structure, (list, tuple)):
        if not isinstance(tree, (list, tuple)) or len(tree) != len(structure):
            got = f"{type(tree).__name__} of length {len(tree)}" if isinstance(tree, (list, tuple)) \
                else type(tree).__name__
            raise ValueError(f"{where}: expected a {type(structure).__name__} of length "
                             f"{len(structure)} at {_at(prefix)}; got {got}")
        out = []
        for index, (sub, item) in enumerate(zip(structure, tree)):
            out.extend(_leaves_like(sub, item, f"{prefix}.{index}" if prefix else str(index), where))
        return out
    if isinstance(tree, _CONTAINERS):
        raise ValueError(f"{where}: expected an array at {_at(prefix)}; "
                         f"got a {type(tree).__name__}")
    return [tree]


def pack(params):
    """Copy a param tree into one contiguous buffer and return views of it.

    The returned tree has the same structure, names, shapes and values as
    ``params``, but every leaf is a view into a single 1-d array laid out in
    leaf order. An optimizer built on such a tree updates all parameters with
    one whole-buffer operation instead of one operation per leaf, which
    matters for trees of many small leaves.

    Parameters
    ----------
    params : ndarray, dict, list or tuple
        A param tree (validated as by :class:`Layout`). It is not modified.

    Returns
    -------
    tree
        A new tree of views; use it in place of ``params`` from then on.

    Examples
    --------
    >>> p = pack({"W": np.ones((2, 2)), "b": np.zeros(2)})
    >>> p["W"].base is p["b"].base
    True
    """
    layout = Layout(params, "pack(params)")
    flat = layout.read(layout.empty())
    return layout.unflatten(flat)
