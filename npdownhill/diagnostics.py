"""Diagnostics for the user's loss and monitors: clear messages for common mistakes.

Two checks, both meant to be called by the optimizer code, never by users:

* :func:`check_arity`, before the first step, makes sure the loss (or a
  monitor) can be called as ``fn(params, *batch)`` with the number of data
  arrays it will get, and otherwise raises one ``TypeError`` that says what
  the function takes, what it will be given and how to fix it.
* :func:`explain_trace_error`, when autograd's tracing of the loss failed,
  recognises the usual "this is not autograd-compatible code" mistakes and
  returns a copy of the exception with one more line that names the likely
  cause and the fix; the caller raises it ``from`` the original.

Reading the messages
--------------------
An arity error reads, all on one line::

    Adam.iterate: the loss `loss(p, x)` takes 2 positional arguments but will
    be called with 3 (params + 2 arrays of the train data): make its signature
    `loss(params, x, y)`, or pass the train data as a list of the 1 array it
    takes after params

i.e. *who* complained (``Adam.iterate``), *which* function (the loss, or
``monitor 'err'``) with its parameters as Python sees them, *how many*
positional arguments it accepts against how many it will get and where they
come from, then the fix.

A traced-loss error keeps autograd's / numpy's own message, unchanged, as its
first line(s) and adds one line beginning ``Likely cause:``::

    'ArrayBox' object has no attribute 'copy'
    Likely cause: .copy() is not supported on traced values: drop it ...

"Traced value" means an ``ArrayBox``: while computing gradients, autograd
calls the loss with its parameters wrapped in boxes that record every
operation. Only ``autograd.numpy`` functions (and the operators ``+ - * / **
@``, indexing, and a few methods such as ``.sum()``, ``.reshape()``, ``.T``)
know how to handle them; converting a box to a plain number or numpy array,
or writing into an array in place, breaks the recording. The original
exception stays attached as ``__cause__``, so the full traceback still points
at the offending line of the loss.
"""

import functools
import inspect
import keyword
import linecache
import math
import operator
import re
import types
import warnings
import weakref

import numpy as np
import autograd.numpy as anp
from autograd.tracer import Box

__all__ = ["check_arity", "explain_trace_error"]


# ----------------------------------------------------------------------------
# check_arity
# ----------------------------------------------------------------------------

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_ARRAY_NAMES = {0: [], 1: ["x"], 2: ["x", "y"]}


class _Elided:
    """Stands for a long default value in a rendered signature."""

    def __repr__(self):
        return "..."


def check_arity(fn, n_arrays, call, role="loss", data=None):
    """Check that ``fn(params, *batch)`` can be called with ``n_arrays`` batch arrays.

    The check binds ``1 + n_arrays`` placeholder positional arguments to
    ``inspect.signature(fn)``, so it follows what Python itself would accept:
    defaults, ``*args``, ``functools.partial`` objects, bound methods and
    callable objects (their ``__call__``) are all handled. A function with a
    required keyword-only parameter can never be called correctly (nothing
    passes keywords) and is refused too. When no signature can be obtained
    (some builtins and C callables), nothing is checked.

    Parameters
    ----------
    fn : callable
        The loss or monitor, to be called as ``fn(params, *batch)``.
    n_arrays : int
        How many batch arrays follow ``params`` (0 for a loss of params alone).
    call : str
        The public call being checked, used as the message prefix, e.g.
        ``"Adam.iterate"``.
    role : str, optional
        ``"loss"`` (shown as "the loss") or a description of a monitor such as
        ``"monitor 'err'"``, shown as given.
    data : {'train', 'valid', None}, optional
        Where the arrays come from, to say "2 arrays of the train data";
        ``None`` says "2 batch arrays".

    Returns
    -------
    None
        When ``fn`` accepts the call, or has no signature to check.

    Raises
    ------
    TypeError
        When the call cannot bind. The message names `call` and `role`, shows
        the function's parameters (``loss(p, x)``), says how many positional
        arguments it takes against how many it will get (``params + 2 arrays
        of the train data``) and ends with the fix: the signature to use, or
        how to pass the data so it matches (``train=None`` for a loss of
        params alone), or, for a required keyword-only parameter, to give it a
        default or bind it with ``functools.partial``.
    ValueError
        If `n_arrays` is negative.

    Examples
    --------
    >>> def loss(params, x, y):
    ...     return ((x @ params - y) ** 2).mean()
    >>> check_arity(loss, 2, "Adam.iterate", data="train")   # fine: None
    >>> check_arity(loss, 1, "Adam.iterate", data="train")
    Traceback (most recent call last):
    ...
    TypeError: Adam.iterate: the loss `loss(params, x, y)` takes 3 positional arguments but will be called with 2 (params + 1 array of the train data): make its signature `loss(params, x)`, or pass the train data as a list of the 2 arrays it takes after params
    """
    n_arrays = operator.index(n_arrays)
    if n_arrays < 0:
        raise ValueError(f"check_arity: n_arrays must be >= 0; got {n_arrays}")
    key = _signature_key(fn)
    accepted = _ACCEPTED.get(fn, (None, ())) if key is not None else (None, ())
    if accepted[0] == key and n_arrays in accepted[1]:
        return None
    try:
        sig = inspect.signature(fn)
    except Exception:               # builtins / C callables without a signature
        return None
    marker = object()
    try:
        sig.bind(*([marker] * (1 + n_arrays)))
    except TypeError:
        pass
    else:
        if key is not None:
            _ACCEPTED[fn] = (key, (accepted[1] if accepted[0] == key else frozenset())
                             | {n_arrays})
        return None
    raise TypeError(_arity_message(fn, sig, n_arrays, call, role, data))


#: Plain functions already seen to accept ``params`` plus so many arrays, with what
#: their signature comes from (a signature check costs as much as a small update, and
#: a run checks its loss for every dataset).
_ACCEPTED = weakref.WeakKeyDictionary()


def _signature_key(fn):
    """What the signature of a plain function comes from, or ``None`` for other
    callables (and functions that carry their own ``__signature__`` or ``__wrapped__``),
    which are inspected every time."""
    if type(fn) is not types.FunctionType or "__signature__" in fn.__dict__ \
            or "__wrapped__" in fn.__dict__:
        return None
    return fn.__code__, fn.__defaults__, fn.__kwdefaults__


def _arity_message(fn, sig, n_arrays, call, role, data):
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in _POSITIONAL]
    required = [p for p in positional if p.default is p.empty]
    var_positional = any(p.kind == p.VAR_POSITIONAL for p in params)
    kw_required = [p.name for p in params
                   if p.kind == p.KEYWORD_ONLY and p.default is p.empty]
    given = 1 + n_arrays
    low, high = len(required), len(positional)
    positional_ok = low <= given and (var_positional or high >= given)

    is_loss = role == "loss"
    who = "the loss" if is_loss else str(role)
    shown = _render(fn, sig)
    base = _fix_name(fn, role)
    where = f"of the {data} data" if data is not None else None

    parts = []
    if not positional_ok:
        if var_positional:
            takes = f"at least {_plural(low, 'positional argument')}"
        elif low == high:
            takes = (f"{_plural(low, 'positional argument')}" if low
                     else "no positional arguments")
        else:
            takes = f"{low} to {high} positional arguments"
        if n_arrays == 0:
            what = "params alone" + (f": no {data} data was given" if data is not None else "")
        elif where is not None:
            what = f"params + {_plural(n_arrays, 'array')} {where}"
        else:
            what = f"params + {_plural(n_arrays, 'batch array')}"
        fixes = [f"make its signature `{base}({', '.join(['params'] + _array_names(n_arrays))})`"]
        if is_loss and low >= 1:
            fewest, most = low - 1, (None if var_positional else high - 1)
            if most == 0:
                fixes.append(f"pass {data}=None for a loss of params alone" if data
                             else "pass no data for a loss of params alone")
            else:
                count = (f"the {_plural(fewest, 'array')}" if fewest == most
                         else f"at least {_plural(fewest, 'array')}" if most is None
                         else f"the {fewest} to {most} arrays")
                fixes.append(f"pass the {data + ' ' if data else ''}data as a list of "
                             f"{count} it takes after params")
        elif n_arrays > 0:
            fixes.append(f"`{base}(params, *batch)` to accept the batch arrays and ignore them")
        parts.append(f"{who} `{shown}` takes {takes} but will be called with {given} "
                     f"({what}): {', or '.join(fixes)}")
    if kw_required:
        names = ", ".join(repr(name) for name in kw_required)
        one = len(kw_required) == 1
        lead = (f"{who} `{shown}`" if positional_ok else "it also")
        parts.append(f"{lead} has {'a ' if one else ''}required keyword-only "
                     f"argument{'' if one else 's'} {names}, which {call} never passes: "
                     f"give {'it a default' if one else 'them defaults'} or bind "
                     f"{'it' if one else 'them'} first with functools.partial("
                     f"{base}, {kw_required[0]}=...)")
    if not parts:                       # bind failed for a reason not analysed above
        parts.append(f"{who} `{shown}` cannot be called with {given} positional "
                     f"argument{'s' if given != 1 else ''} (params + "
                     f"{_plural(n_arrays, 'array')})")
    return f"{call}: " + "; ".join(parts)


def _plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


def _array_names(n):
    return _ARRAY_NAMES.get(n) or [f"a{i}" for i in range(1, n + 1)]


def _render(fn, sig):
    """``name(p, x, scale=1.0, *, k)``: the parameters as Python sees them."""
    params = []
    for p in sig.parameters.values():
        p = p.replace(annotation=p.empty)
        if p.default is not p.empty and len(repr(p.default)) > 16:
            p = p.replace(default=_Elided())
        params.append(p)
    text = str(sig.replace(parameters=params, return_annotation=sig.empty))
    name = _display_name(fn)
    if name == "<lambda>":
        return f"lambda {text[1:-1]}".rstrip()
    return f"{name}{text}"


def _display_name(fn):
    if isinstance(fn, functools.partial):
        return f"partial({_display_name(fn.func)}, ...)"
    if inspect.ismethod(fn):
        return getattr(fn, "__qualname__", None) or fn.__name__
    name = getattr(fn, "__name__", None)
    if isinstance(name, str):
        return name
    return f"{type(fn).__name__}.__call__"


def _fix_name(fn, role):
    """The function name to use in a suggested signature."""
    func = fn
    while isinstance(func, functools.partial):
        func = func.func
    name = getattr(func, "__name__", None)
    if isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name):
        return name
    if role == "loss":
        return "loss"
    match = re.search(r"'([A-Za-z_]\w*)'", str(role))
    return match.group(1) if match else "monitor"


# ----------------------------------------------------------------------------
# explain_trace_error
# ----------------------------------------------------------------------------

_HINT_PREFIX = "Likely cause: "

_GENERAL = ("the loss must be written with autograd.numpy (import autograd.numpy as anp) and "
            "must not assign into arrays in place or call .copy(); see "
            "https://github.com/HIPS/autograd/blob/master/docs/tutorial.md"
            "#supported-and-unsupported-parts-of-numpyscipy")

_INPLACE_INTO_NUMPY = ("in-place assignment into an array is not differentiable: build the "
                       "array with anp.stack / anp.concatenate / anp.where instead (a numpy "
                       "array cannot hold a traced value)")
_INPLACE_TRACED = ("in-place assignment into a traced array (a[i] = ...) is not "
                   "differentiable: build the array with anp.stack / anp.concatenate / "
                   "anp.where instead")
_INPLACE_OPERATOR = ("an in-place operator (+=, -=, *=, ...) or out= writes a traced value "
                     "into a plain numpy array, which cannot hold it: write a = a + b "
                     "instead of a += b, and drop out=")
_TREE_MODIFIED = ("the param tree is traced as a whole and cannot be modified or copied "
                  "inside the loss: read its leaves (params['w'], params[0]) and build any "
                  "new dict / list from them")
_TO_PYTHON = ("{what} needs a plain Python number, which autograd cannot differentiate: "
              "keep it an array and use autograd.numpy (anp.exp, anp.sqrt, ...); compute "
              "numbers to print or log outside the loss (e.g. in a monitor)")
_TO_NUMPY = ("{name} turns a traced value into a plain numpy {kind}, which autograd cannot "
             "differentiate: drop the conversion (a traced value already behaves as an "
             "array) or build arrays with anp.array / anp.stack")
_ARRAY_CONVERSIONS = {"array", "asarray", "asanyarray", "ascontiguousarray", "asfortranarray",
                      "asarray_chkfinite", "require", "copy", "fromiter", "frombuffer"}
_TO_INTEGER = ("a traced value was turned into integers or booleans (e.g. .astype(int)), "
               "which autograd cannot differentiate: keep values floating-point")
_CONVERTED = ("a traced value was converted to a plain numpy float array (np.array / "
              "np.asarray(..., dtype=float) / np.float64(...)) or assigned into one "
              "(a[i] = ...); neither is differentiable: use autograd.numpy (anp.array, "
              "anp.stack) and build arrays instead of filling them")

_BOX_TYPES = r"(?:Array|Sequence|Dict)Box"
_BOX_RE = re.compile(rf"\b{_BOX_TYPES}\b|numpy_boxes")
_NO_ATTR_RE = re.compile(rf"'({_BOX_TYPES}|Box)' object has no attribute '(\w+)'")
_NO_METHOD_RE = re.compile(rf"type {_BOX_TYPES} which has no callable (\w+) method")
_NO_VJP_RE = re.compile(r"VJP of (\w+) wrt argnums? .* not defined")
_TO_PYTHON_PATTERNS = [
    (re.compile(r"^(float|int|complex)\(\) (?:first )?argument"), "{0}() of a traced value"),
    (re.compile(r"must be real number, not \w*Box"), None),           # math.*
    (re.compile(r"\w*Box doesn't define __(round|trunc|floor|ceil)__"),
     "{0}() of a traced value"),
    (re.compile(r"'\w*Box' object cannot be interpreted as an integer"),
     "using a traced value as an integer (range(), an index, ...)"),
    (re.compile(r"format string passed to \w*Box\.__format__"),
     "formatting a traced value (f'{{x:.3f}}')"),
]
_SUBSCRIPT_ASSIGN_RE = re.compile(r"\]\s*(?:[-+*/%@&|^]|//|\*\*|<<|>>)?=(?!=)")
_IN_PLACE_METHODS = {"fill", "sort", "resize", "put", "itemset", "partition", "setfield",
                     "setflags", "byteswap"}
_TO_PYTHON_METHODS = {"item", "tolist", "tobytes", "tostring", "__float__", "__int__",
                      "__index__"}
_LIBRARIES = ("numpy", "autograd")


def explain_trace_error(err, fn, args):
    """Explain an exception raised while autograd traced the loss, if it is a common mistake.

    Parameters
    ----------
    err : BaseException
        The exception raised by ``autograd.make_vjp(fn)(*args)`` (or any
        other autograd tracing of ``fn``).
    fn : callable
        The traced function (the user's loss).
    args : sequence
        The arguments it was traced with: ``args[0]`` is the param tree, the
        rest the batch arrays. Must be the plain (untraced) values.

    Returns
    -------
    BaseException or None
        ``None`` when `err` is not recognisably autograd-specific: it is then
        an ordinary bug, to be re-raised as it is. Otherwise a new exception
        of the same class as `err` (when that class cannot be built from one
        message string, e.g. numpy's ``UFuncTypeError``, its nearest built-in
        base class such as ``TypeError``, or ``TypeError`` itself) whose
        message is `err`'s message followed by one line starting
        ``Likely cause:`` that names the mistake and the fix. The caller
        should ``raise new from err`` so the original, with its traceback,
        stays attached.

    Notes
    -----
    An error counts as autograd-specific when

    a. its message (or that of an exception it was raised while handling)
       names an autograd box type (``ArrayBox``, ``SequenceBox``,
       ``DictBox``), or it carries a box object (``AttributeError.obj``, its
       ``args``), and it matches one of the known mistakes (an attribute
       that a plain ndarray / dict / list has, ``float()`` of a box, ...); or
       else
    b. calling ``fn(*args)`` on copies of the plain arguments succeeds, which
       shows the failure only happens under tracing. If that call raises too,
       the error is the user's own (a missing key, a shape mismatch) and
       ``None`` is returned. This costs one extra evaluation of the loss, on
       the error path only; the copies keep an in-place write in the loss
       from touching the caller's arrays. Warnings from that call are
       silenced.

    The hint is tailored when the kind of mistake can be told from the
    message, from the traceback (a plain ``numpy`` function called from the
    loss, e.g. ``np.linalg.inv``, and its ``autograd.numpy`` equivalent), or
    from the source line that failed (``a[i] = ...``); otherwise a general
    line points to autograd's list of supported numpy features.

    With autograd >= 1.7, plain numpy ufuncs and reductions of a traced value
    (``np.exp``, ``np.sum``, ``np.mean``, ...) dispatch to autograd and just
    work. Many other plain numpy functions (``np.dot``, ``np.array``,
    ``np.stack``, ``np.where``, ``np.einsum``, ...) return a numpy *object*
    array of traced numbers: operators and ``np.sum`` still work on it, but
    the next ufunc fails ("... has no callable exp method"), which is
    explained as such. ``np.linalg``, ``np.fft``, ``np.asarray(...,
    dtype=float)``, ``np.median`` and the like fail at once.

    This function never raises: if the diagnosis itself fails, it returns
    ``None``.
    """
    if not isinstance(err, Exception) or isinstance(err, (MemoryError, RecursionError)):
        return None
    try:
        hint = _diagnose(err, fn, args)
        if hint is None or hint in str(err):
            return None
        return _rebuild(err, _HINT_PREFIX + hint)
    except Exception:
        return None


def _diagnose(err, fn, args):
    chain = _chain(err)
    text = "\n".join(str(e) for e in chain)
    boxed = bool(_BOX_RE.search(text)) or any(_carries_box(e) for e in chain)
    hint = _specific_hint(err, text)
    if boxed and hint is not None:
        return hint
    # No box named, or named by an error no pattern explains (a typo like
    # params["w"].lenght also names ArrayBox): trust it only if the plain call works.
    if not _plain_call_succeeds(fn, args):
        return None
    return hint or _GENERAL


def _chain(err, limit=5):
    """`err` and the exceptions it was raised from / while handling."""
    out = [err]
    while len(out) < limit:
        nxt = out[-1].__cause__ or out[-1].__context__
        if nxt is None or nxt in out:
            break
        out.append(nxt)
    return out


def _carries_box(e):
    if isinstance(getattr(e, "obj", None), Box):
        return True
    return any(isinstance(a, Box) for a in getattr(e, "args", ()))


def _leaves(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _leaves(v)
    elif isinstance(tree, (list, tuple)):
        for v in tree:
            yield from _leaves(v)
    else:
        yield tree


def _copy_tree(tree):
    if isinstance(tree, np.ndarray):
        return tree.copy()
    if isinstance(tree, dict):
        items = [(k, _copy_tree(v)) for k, v in tree.items()]
        try:
            return type(tree)(items)
        except Exception:
            return dict(items)
    if isinstance(tree, (list, tuple)):
        items = [_copy_tree(v) for v in tree]
        if hasattr(tree, "_fields"):                       # namedtuple
            return type(tree)(*items)
        try:
            return type(tree)(items)
        except Exception:
            return list(items) if isinstance(tree, list) else tuple(items)
    return tree


def _plain_call_succeeds(fn, args):
    args = tuple(args)
    if any(isinstance(leaf, Box) for leaf in _leaves(list(args))):
        return False                    # nested differentiation: no plain values to try
    plain = [_copy_tree(a) for a in args]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            try:
                fn(*plain)
            except Exception:
                return False
    return True


def _specific_hint(err, text):
    frames = _frames(err.__traceback__)
    entry = _numpy_entry(frames)
    if entry is not None:
        return _numpy_hint(entry)
    message = str(err)

    match = _NO_METHOD_RE.search(text)
    if match:
        name = match.group(1)
        return (f"np.{name} was applied to a plain numpy array holding traced values, which "
                f"is what plain numpy functions such as np.dot, np.array, np.stack, "
                f"np.where, np.einsum return when given traced values (with autograd < 1.7, "
                f"np.{name} of a traced value itself fails the same way): use autograd.numpy "
                f"throughout (import autograd.numpy as anp; anp.{name}, anp.dot, ...)")
    match = _NO_ATTR_RE.search(text)
    if match:
        box, attr = match.groups()
        line = _failing_line(frames) or ""
        calls = _calls_in_line(frames, np, "np")
        if box == "ArrayBox" and calls and not re.search(rf"\.{attr}\b", line):
            return _numpy_hint(calls[0])        # numpy's C code asked the box for .attr
        return _attribute_hint(box, attr)
    if re.search(rf"'{_BOX_TYPES}' object does not support item assignment", text):
        return _INPLACE_TRACED
    if "returned NotImplemented from __array_ufunc__" in text and "out=" in text:
        return _INPLACE_OPERATOR
    for pattern, what in _TO_PYTHON_PATTERNS:
        match = pattern.search(message)
        if match:
            if what is None:
                calls = _calls_in_line(frames, math, "math")
                short = calls[0].split(".")[-1] if calls else None
                if short and hasattr(anp, short):
                    return (f"{calls[0]}() works on plain Python numbers only, not on traced "
                            f"values: use autograd.numpy (import autograd.numpy as anp; "
                            f"anp.{short})")
                what = (f"{calls[0]}() of a traced value" if calls
                        else "a math module function (math.exp, ...) of a traced value")
            return _TO_PYTHON.format(what=what.format(*match.groups()))
    if "Can't differentiate w.r.t. type" in message:
        return _TO_INTEGER
    match = _NO_VJP_RE.search(message)
    if match:
        name = match.group(1)
        extra = (" (to copy or convert an array, use anp.array(a), or just drop the call: "
                 "autograd never modifies arrays in place)" if name in _ARRAY_CONVERSIONS else "")
        return (f"autograd defines no derivative for {name}(): rewrite that step with "
                f"differentiable autograd.numpy functions{extra}")
    if "setting an array element with a sequence" in message or "dtype('O')" in message \
            or "not supported for the input types" in message:
        line = _failing_line(frames)
        if line is not None and _SUBSCRIPT_ASSIGN_RE.search(line):
            return _INPLACE_INTO_NUMPY
        calls = _calls_in_line(frames, np, "np")
        if calls:
            return _numpy_hint(calls[0])
        return _CONVERTED
    return None


def _attribute_hint(box, attr):
    """The hint for a box lacking `attr`; None if the plain container lacks it too."""
    if box in ("SequenceBox", "DictBox"):
        plain = (list, tuple) if box == "SequenceBox" else (dict,)
        if not any(hasattr(t, attr) for t in plain):
            return None                         # a typo, not a tracing problem
        return _TREE_MODIFIED + f" ({box} has no {attr})"
    if not hasattr(np.ndarray, attr):
        return None
    if attr == "copy":
        return (".copy() is not supported on traced values: drop it (autograd never "
                "modifies arrays in place, so no copy is needed) or use anp.array(a)")
    if attr in _TO_PYTHON_METHODS:
        return _TO_PYTHON.format(what=f".{attr}() on a traced value")
    if attr in _IN_PLACE_METHODS:
        alt = f"anp.{attr}(a)" if hasattr(anp, attr) else "anp.where / anp.full_like"
        return (f".{attr}() modifies an array in place, which autograd cannot "
                f"differentiate: compute a new array instead ({alt})")
    alt = (f"anp.{attr}(a, ...)" if hasattr(anp, attr)
           else "rewrite it with autograd.numpy functions")
    return (f".{attr} is not supported on traced values (autograd implements only some "
            f"ndarray methods): use the autograd.numpy function instead ({alt})")


def _numpy_hint(name):
    if not name.startswith("np."):                  # a numpy function with no public name
        return (f"{name} was called on a traced value: use autograd.numpy "
                f"(import autograd.numpy as anp)")
    path = name.split(".")[1:]
    if len(path) == 1:
        if path[0] in _ARRAY_CONVERSIONS:
            return _TO_NUMPY.format(name=name, kind="array")
        if isinstance(getattr(np, path[0], None), type):          # np.float64(...), ...
            return _TO_NUMPY.format(name=name, kind="scalar")
    obj = anp
    for part in path:
        obj = getattr(obj, part, None)
        if obj is None:
            break
    if obj is not None:
        return (f"{name} was called on a traced value: use autograd.numpy "
                f"(import autograd.numpy as anp; anp.{'.'.join(path)})")
    return (f"{name} was called on a traced value and autograd.numpy has no "
            f"{'.'.join(path)}: write it with autograd.numpy functions (import "
            f"autograd.numpy as anp) or define a primitive with autograd.extend.defvjp")


def _frames(tb):
    out = []
    while tb is not None:
        out.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    return out


def _module(frame):
    return str(frame.f_globals.get("__name__", ""))


def _is_library(frame):
    module = _module(frame)
    return any(module == lib or module.startswith(lib + ".") for lib in _LIBRARIES)


def _numpy_entry(frames):
    """``np.linalg.inv`` when the loss called a numpy Python function that raised."""
    for i in range(1, len(frames)):
        frame = frames[i][0]
        module = _module(frame)
        if (module == "numpy" or module.startswith("numpy.")) \
                and not _is_library(frames[i - 1][0]):
            return _public_numpy_name(frame.f_code) or f"numpy's {frame.f_code.co_name}"
    return None


def _public_numpy_name(code):
    name = code.co_name
    for prefix, namespace in (("np", np), ("np.linalg", np.linalg), ("np.fft", np.fft)):
        obj = getattr(namespace, name, None)
        if obj is not None and getattr(inspect.unwrap(obj), "__code__", None) is code:
            return f"{prefix}.{name}"
    return None


def _user_frame(frames):
    for frame, lineno in reversed(frames):
        if not _is_library(frame):
            return frame, lineno
    return None


def _failing_line(frames):
    found = _user_frame(frames)
    if found is None:
        return None
    frame, lineno = found
    return linecache.getline(frame.f_code.co_filename, lineno, frame.f_globals) or None


def _calls_in_line(frames, module, shown):
    """``['np.asarray', ...]``: calls through any alias of `module` on the failing line."""
    found = _user_frame(frames)
    line = _failing_line(frames)
    if found is None or line is None:
        return []
    frame = found[0]
    aliases = [name for name, value in {**frame.f_globals, **frame.f_locals}.items()
               if value is module]
    calls = []
    for alias in aliases:
        for match in re.finditer(rf"(?<![\w.]){re.escape(alias)}((?:\.\w+)+)\s*\(", line):
            calls.append((match.start(), shown + match.group(1)))
    return [name for _, name in sorted(calls)]


def _rebuild(err, hint):
    original = str(err)
    message = f"{original}\n{hint}" if original else hint
    mro = type(err).__mro__
    builtin_bases = tuple(c for c in mro[1:] if c.__module__ == "builtins"
                          and c not in (Exception, BaseException, object))
    for cls in (mro[0],) + builtin_bases:
        try:
            new = cls(message)
        except Exception:
            continue
        if str(new) == message:
            return new
    return TypeError(message)
