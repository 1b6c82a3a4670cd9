"""Minibatch datasets.

A :class:`Dataset` hands out minibatches of training data. Every batch is a
tuple of arrays, one entry per input, so a training driver can always call
``loss(params, *batch)``.

Terminology
-----------
pass
    Every sample handed out exactly once. With shuffling, each pass visits
    the samples in a fresh random order; the last batch of a pass may be
    shorter than ``batch_size`` and is kept.
iteration
    ``iteration_size`` consecutive batches, i.e. one ``for batch in dataset``
    loop. The training driver calls this an *epoch*. An iteration need not
    line up with a pass: each iteration continues where the previous one
    stopped, crossing into the next (reshuffled) pass when needed.

Shuffling
---------
The permutation of a pass, ``rng.permutation(n_samples)``, is drawn when the
first batch of that pass is requested. Batch ``k`` of a pass holds the samples
``perm[k * batch_size:(k + 1) * batch_size]``, sorted (without shuffling: that
slice of ``arange(n_samples)``). The position moves on by the batch length and
wraps to 0 at the end of the pass, which discards the permutation, so a state
saved exactly at a pass boundary holds none.

Storage
-------
In-memory arrays are sliced (views) when ``shuffle=False`` and gathered with
fancy indexing when ``shuffle=True``. Memory-mapped arrays (``np.memmap`` or
``np.load(..., mmap_mode='r')``) are never loaded whole: each batch reads only
its own rows into a fresh in-memory array. When shuffling, the sample indices
inside each batch are sorted, so reads from disk go forward; this is done for
every kind of input, so a memory-mapped file and the same data in memory give
identical batches for the same seed. pandas objects are converted once with
``.to_numpy()``; scipy.sparse matrices are converted once to CSR and each
batch is returned dense (``.toarray()``). Neither library is imported here.

Data types
----------
Only bool, integer, float and complex data reach the loss: autograd cannot use
object, text, bytes, structured or datetime data. Such inputs are refused when
the Dataset is made, with the offending DataFrame columns named; pandas
'category' and 'string' columns count as text. Memory-mapped and sparse inputs
are checked by their dtype alone. A DataFrame whose numeric columns
``.to_numpy()`` turns into objects (bool beside float columns, nullable Int64 or
boolean columns) is converted to the columns' common NumPy dtype instead, with
missing values as NaN when that dtype is floating. A callable's batches are
checked as they come, one dtype test per array.
"""
import copy
import mmap
import sys
import warnings
from collections.abc import Mapping

import numpy as np

from .rngstate import _flatten, _unflatten

__all__ = ['Dataset']

_ARRAY_TYPES = 'an ndarray, a pandas DataFrame or Series, or a scipy.sparse matrix'

# dtype kinds autograd can work with: bool, signed/unsigned integer, float, complex
_NUMERIC_KINDS = 'biufc'
_NEEDS = 'autograd needs bool, integer, float or complex data'
# what a refused dtype kind holds, and what to do about it
_KIND_ADVICE = {
    'O': ('Python objects', 'convert it to a numeric dtype (e.g. .astype(float) if it '
          'holds numbers), encode it as numbers, or drop it'),
    'U': ('text', 'encode it as numbers (e.g. category codes or one-hot columns) or drop it'),
    'T': ('text', 'encode it as numbers (e.g. category codes or one-hot columns) or drop it'),
    'S': ('bytes', 'encode it as numbers or drop it'),
    'V': ('a structured/void record', 'pass each field as its own input, as a numeric '
          'array, or drop it'),
    'M': ('dates and times', 'encode it as numbers (e.g. seconds since a reference time) '
          'or drop it'),
    'm': ('time intervals', 'encode it as numbers (e.g. seconds: '
          'array / np.timedelta64(1, "s")) or drop it'),
}
_MAX_LISTED = 10  # non-numeric DataFrame columns named in one message


def _is_int(value):
    """Return True for Python/NumPy integers, but not for bools."""
    return (isinstance(value, (int, np.integer))
            and not isinstance(value, (bool, np.bool_)))


def _check_int(where, name, value, minimum=None):
    """Return ``value`` as an int; raise TypeError/ValueError prefixed with ``where``."""
    if not _is_int(value):
        raise TypeError(f'{where}: {name} must be an integer; got {value!r}')
    if minimum is not None and value < minimum:
        rule = {0: 'non-negative', 1: 'positive'}[minimum]
        raise ValueError(f'{where}: {name} must be {rule}; got {value!r}')
    return int(value)


def _is_sparse(value):
    """Return True for a scipy.sparse matrix/array, without importing scipy."""
    sparse = sys.modules.get('scipy.sparse')
    return sparse is not None and sparse.issparse(value)


def _is_pandas(value):
    """Return True for a pandas object that converts with ``.to_numpy()``."""
    return type(value).__module__.startswith('pandas') and hasattr(value, 'to_numpy')


def _is_memmap(array):
    """Return True if ``array`` (or one of its bases) is memory-mapped."""
    while array is not None:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, 'base', None)
    return False


def _dtype_refusal(where, subject, dtype):
    """Return the TypeError for ``subject`` (e.g. ``'inputs[1] is an array of dtype'``)."""
    what, advice = _KIND_ADVICE.get(dtype.kind, (None, 'encode it as numbers or drop it'))
    if dtype.kind == 'O' and not isinstance(dtype, np.dtype):  # pandas category, string, ...
        what, advice = None, _KIND_ADVICE['U'][1]
    shown = dtype if what is None else f'{dtype} ({what})'
    return TypeError(f'{where}: {subject} {shown}; {_NEEDS}; {advice}')


def _check_dtype(where, label, dtype, kind='an array'):
    """Raise TypeError unless ``dtype`` is bool, integer, float or complex."""
    if dtype.kind not in _NUMERIC_KINDS:
        raise _dtype_refusal(where, f'{label} is {kind} of dtype', dtype)


def _numpy_dtype(dtype):
    """Return the NumPy dtype behind a NumPy or pandas extension dtype (TypeError if none)."""
    for attr in ('numpy_dtype', 'subtype'):  # pandas nullable and sparse dtypes
        inner = getattr(dtype, attr, None)
        if isinstance(inner, np.dtype):
            return inner
    return np.dtype(dtype)


def _pandas_to_array(where, label, value):
    """Convert a pandas object with ``.to_numpy()``, refusing non-numeric columns."""
    kind = f'a pandas {type(value).__name__}'
    if hasattr(value, 'columns'):  # a DataFrame: check every column before converting
        dtypes = list(value.dtypes)
        bad = [f'{column!r} ({dtype})' for column, dtype in value.dtypes.items()
               if dtype.kind not in _NUMERIC_KINDS]
        if bad:
            listed = ', '.join(bad[:_MAX_LISTED])
            if len(bad) > _MAX_LISTED:
                listed += f' and {len(bad) - _MAX_LISTED} more'
            raise TypeError(f'{where}: {label} is {kind} with non-numeric column(s) '
                            f'{listed}; {_NEEDS}; encode these columns as numbers '
                            '(e.g. category codes or one-hot columns) or drop them')
    else:  # a Series (or Index, or pandas array): one dtype
        dtypes = [value.dtype]
        named = getattr(value, 'name', None)
        if named is not None:
            kind += f' {named!r}'
        _check_dtype(where, label, value.dtype, kind)
    array = value.to_numpy()
    if array.dtype.kind in _NUMERIC_KINDS:
        return array
    # Numeric columns can still come out as objects: bool next to float columns,
    # or pandas' nullable dtypes (Int64, boolean, ...). Convert to their common dtype.
    try:
        common = np.result_type(*{_numpy_dtype(dtype) for dtype in dtypes})
    except TypeError:
        common = None
    if common is not None and common.kind in 'fc':
        array = value.to_numpy(dtype=common, na_value=np.nan)
    elif common is not None and not np.asarray(value.isna()).any():
        array = value.to_numpy(dtype=common)
    if array.dtype.kind in _NUMERIC_KINDS:
        return array
    if common is None or common.kind in 'fc':
        problem = f'that .to_numpy() turns into dtype {array.dtype}'
    elif hasattr(value, 'columns'):
        missing = np.asarray(value.isna().any())
        named = ', '.join(f'{column!r} ({dtype})' for column, dtype, bad
                          in zip(value.columns, dtypes, missing) if bad)
        problem = (f'whose column(s) {named} hold missing values (NA), which dtype '
                   f'{common} cannot represent')
    else:
        problem = (f'of dtype {value.dtype} holding missing values (NA), which dtype '
                   f'{common} cannot represent')
    raise TypeError(f'{where}: {label} is {kind} {problem}; {_NEEDS}; fill the missing '
                    'values (.fillna) or convert to float (.astype(float))')


def _to_array(where, label, value):
    """Convert one input to ``(array, storage)``; storage is 'memory', 'memmap' or 'sparse'."""
    if _is_sparse(value):
        _check_dtype(where, label, value.dtype, 'a scipy.sparse matrix')
        return value.tocsr(), 'sparse'
    if _is_pandas(value):
        return _pandas_to_array(where, label, value), 'memory'
    if isinstance(value, np.ndarray):
        _check_dtype(where, label, value.dtype)  # dtype only: memmaps are not read
        return value, ('memmap' if _is_memmap(value) else 'memory')
    allowed = _ARRAY_TYPES
    if label == 'inputs':
        allowed += ', a list or tuple of those, or a callable'
    raise TypeError(f'{where}: {label} must be {allowed}; got {type(value).__name__}')


def _sorted_batches(perm, step):
    """The sorted indices of each batch of a pass: ``np.sort(perm[k * step:(k + 1) * step])``
    for every ``k``, from one sort of the whole pass."""
    full = len(perm) - len(perm) % step
    rows = list(np.sort(perm[:full].reshape(-1, step), axis=1))
    if full < len(perm):
        rows.append(np.sort(perm[full:]))
    return rows


class Dataset:
    """Hand out minibatches of one or more arrays.

    Parameters
    ----------
    inputs : ndarray, list or tuple of arrays, DataFrame, Series, sparse matrix or callable
        The data. Arrays in a list/tuple must have the same length along
        ``axis``; the same sample indices are taken from each of them.
        Memory-mapped arrays are read batch by batch. pandas objects are
        converted with ``.to_numpy()``; scipy.sparse inputs are converted to
        CSR and batches come out dense (only ``axis=0`` is allowed). A
        callable takes no arguments and returns a tuple (or list) of arrays,
        or a single array, which is one batch; shuffling does not apply.
    name : str, optional
        Name used in logs, warnings and errors. Default ``'dataset'``.
    batch_size : int, optional
        Samples per batch (default 32). ``batch_size <= 0`` means one batch
        holding the whole dataset. The last batch of a pass may be shorter.
    iteration_size : int, optional
        Batches per iteration (``for batch in dataset``). Default: the number
        of batches in one pass; for callables ``len(inputs)`` if defined,
        else 100.
    axis : int, optional
        The sample axis (default 0). Negative values count from the end of
        the input with the fewest dimensions.
    rng : None, int or numpy.random.Generator, optional
        Source of randomness for shuffling. ``None`` gives a fresh
        unpredictable generator, an int is a seed; a Generator is used (and
        advanced, and overwritten by :meth:`load_state_dict`) as is.
    shuffle : bool, optional
        If True (default), each pass visits the samples in a new random order.
        If False, batches are contiguous slices in order.

    Raises
    ------
    TypeError
        If an argument has the wrong type, or an input holds data autograd
        cannot use: a dtype other than bool, integer, float or complex
        (object, text, bytes, structured, datetime64 or timedelta64 arrays,
        pandas columns of those or of the 'category' or 'string' dtypes).
        Memory-mapped and sparse inputs are checked by dtype only.
    ValueError
        If an argument has a bad value, the inputs have different lengths
        along ``axis`` or the dataset is empty.

    Warns
    -----
    RuntimeWarning
        If an in-memory floating or complex input holds NaN or infinity.
        Memory-mapped inputs and callables are not scanned.

    Notes
    -----
    Every error and warning starts with ``Dataset '<name>':`` (only the error
    for a bad ``name`` itself reads ``Dataset(name=...)``), so messages about
    the ``'train'`` and ``'valid'`` datasets the training driver makes can be
    told apart. Inputs are then named as ``inputs`` (a single input) or
    ``inputs[i]`` (the i-th of a list or tuple).

    Examples
    --------
    >>> x = np.arange(10.0).reshape(5, 2)
    >>> y = np.arange(5)
    >>> data = Dataset([x, y], batch_size=2, shuffle=False)
    >>> [batch[1].tolist() for batch in data]
    [[0, 1], [2, 3], [4]]
    """

    def __init__(self, inputs, name=None, batch_size=32, iteration_size=None,
                 axis=0, rng=None, shuffle=True):
        if name is None:
            name = 'dataset'
        if not isinstance(name, str):  # checked first: every other message quotes it
            raise TypeError(f'Dataset(name={name!r}): name must be a string; '
                            f'got {type(name).__name__}')
        self._name = name
        where = self._where = f'Dataset {name!r}'
        batch_size = _check_int(where, 'batch_size', batch_size)
        axis = _check_int(where, 'axis', axis)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f'{where}: shuffle must be a bool; got {shuffle!r} '
                            f'({type(shuffle).__name__})')
        if isinstance(rng, np.random.Generator):
            self._rng = rng
        elif rng is None or _is_int(rng):
            seed = None if rng is None else _check_int(where, 'rng', rng, 0)
            self._rng = np.random.default_rng(seed)
        else:
            raise TypeError(f'{where}: rng must be None, an integer seed or a '
                            f'numpy.random.Generator; got {rng!r} ({type(rng).__name__})')
        self._batch_size = batch_size
        self._shuffle = bool(shuffle)
        self._position = 0        # index (within the pass) of the next sample
        self._perm = None         # permutation of the current pass, drawn lazily
        self._rows = None         # (perm, its batches' sorted indices), see _sorted_batches
        self._batches_served = 0  # batches handed out since construction

        if callable(inputs) and not isinstance(inputs, (np.ndarray, list, tuple)):
            self._callable, self._arrays, self._storage = inputs, None, None
            self._plain = False
            self._axis = axis
            self._n = self._step = self._batches_per_pass = None
            if iteration_size is None:
                iteration_size = len(inputs) if hasattr(inputs, '__len__') else 100
        else:
            self._callable = None
            self._setup_arrays(inputs, axis)
            if iteration_size is None:
                iteration_size = self._batches_per_pass
            self._check_finite()
        self._iteration_size = _check_int(where, 'iteration_size', iteration_size, 1)

    def _setup_arrays(self, inputs, axis):
        """Validate and store array inputs, the axis and the pass arithmetic."""
        where = self._where
        if isinstance(inputs, (list, tuple)):
            if not inputs:
                raise ValueError(f'{where}: inputs must hold at least one array; '
                                 f'got an empty {type(inputs).__name__}')
            self._labels = [f'inputs[{i}]' for i in range(len(inputs))]
        else:
            inputs, self._labels = [inputs], ['inputs']
        converted = [_to_array(where, label, x) for label, x in zip(self._labels, inputs)]
        self._arrays = [array for array, _ in converted]
        self._storage = [storage for _, storage in converted]
        # plain in-memory ndarrays: batches are taken with ndarray.take directly
        self._plain = all(storage == 'memory' and type(array) is np.ndarray
                          for array, storage in converted)
        shapes = ', '.join(str(tuple(a.shape)) for a in self._arrays)

        ndim = min(len(a.shape) for a in self._arrays)
        if ndim == 0:
            raise ValueError(f'{where}: every array in inputs needs at least one '
                             f'dimension; got shapes {shapes}')
        original, axis = axis, (axis + ndim if axis < 0 else axis)
        if not 0 <= axis < ndim:
            raise ValueError(f'{where}: axis must satisfy {-ndim} <= axis < {ndim} '
                             f'for inputs of shapes {shapes}; got {original}')
        if axis != 0 and 'sparse' in self._storage:
            raise ValueError(f'{where}: axis must be 0 (or -{ndim}) for scipy.sparse '
                             f'inputs; got {original}')
        self._axis = axis

        lengths = {a.shape[axis] for a in self._arrays}
        if len(lengths) > 1:
            raise ValueError(f'{where}: the arrays in inputs must have the same length '
                             f'along axis {axis}; got shapes {shapes}')
        self._n = lengths.pop()
        if self._n == 0:
            raise ValueError(f'{where}: inputs must hold at least one sample; got 0 '
                             f'along axis {axis} (the dataset is empty; shapes {shapes})')
        self._step = self._n if self._batch_size <= 0 else min(self._batch_size, self._n)
        self._batches_per_pass = -(-self._n // self._step)  # ceil(n / step)

    def _check_finite(self):
        """Warn once about NaN/infinity in in-memory floating inputs."""
        found = []
        for i, (array, storage) in enumerate(zip(self._arrays, self._storage)):
            values = array.data if storage == 'sparse' else array
            if storage == 'memmap' or values.dtype.kind not in 'fc':
                continue
            bad = values.size - np.count_nonzero(np.isfinite(values))
            if bad:
                found.append(f'{self._labels[i]} holds {bad} non-finite value(s)')
        if found:
            warnings.warn(f'{self._where}: {"; ".join(found)} (NaN or infinity)',
                          RuntimeWarning, stacklevel=3)

    def __iter__(self):
        """Yield the next ``iteration_size`` batches.

        Returns
        -------
        iterator of tuple of ndarray
            Batches, continuing from where the previous iteration stopped.

        Raises
        ------
        TypeError
            While iterating, if a callable input returns something other than
            a tuple or list of arrays (or one array), or an array whose dtype
            is not bool, integer, float or complex.
        ValueError
            While iterating, if a callable input returns an empty tuple or list.
        """
        return self.batches(self._iteration_size)

    def batches(self, count):
        """Return a generator of exactly ``count`` batches from the current position.

        The position advances as batches are consumed, so a generator that is
        abandoned early leaves the dataset just after the last batch taken.

        Parameters
        ----------
        count : int
            Number of batches; must be non-negative.

        Returns
        -------
        generator of tuple of ndarray
            The batches; each is a tuple with one array per input.

        Raises
        ------
        TypeError
            If ``count`` is not an integer; while iterating, if a callable
            input returns a bad batch (see :meth:`__iter__`).
        ValueError
            If ``count`` is negative; while iterating, if a callable input
            returns an empty batch.

        Examples
        --------
        >>> data = Dataset(np.arange(5), batch_size=2, shuffle=False)
        >>> [b[0].tolist() for b in data.batches(4)]
        [[0, 1], [2, 3], [4], [0, 1]]
        """
        count = _check_int(f'{self._where}: batches(count={count!r})', 'count', count, 0)
        if self._callable is None and self._plain and self._shuffle and self._step < self._n:
            return self._shuffled_in_memory(count)
        return (self._next_batch() for _ in range(count))

    def _shuffled_in_memory(self, count):
        """:meth:`batches` of in-memory arrays, shuffled: the batches of
        :meth:`_next_batch`, with what never changes looked up once."""
        arrays, axis, step, n = self._arrays, self._axis, self._step, self._n
        for _ in range(count):
            start, perm, rows = self._position, self._perm, self._rows
            if start % step:               # a position between batches (not made here)
                yield self._next_batch()
                continue
            if perm is None:               # first batch of a pass
                perm = self._perm = self._rng.permutation(n)
            if rows is None or rows[0] is not perm:
                rows = self._rows = (perm, _sorted_batches(perm, step))
            index = rows[1][start // step]
            if start + step < n:
                self._position = start + step
            else:
                self._position, self._perm = 0, None   # the next pass draws a new permutation
            self._batches_served += 1
            yield tuple([a.take(index, axis) for a in arrays])

    def _next_batch(self):
        """Return the next batch and advance the position."""
        if self._callable is not None:
            batch = self._call()
        else:
            start, step, n = self._position, self._step, self._n
            stop = min(start + step, n)
            if self._shuffle:
                perm = self._perm
                if perm is None:        # first batch of a pass
                    perm = self._perm = self._rng.permutation(n)
                if start % step == 0:   # each batch's sorted indices, sorted once per pass
                    rows = self._rows
                    if rows is None or rows[0] is not perm:
                        rows = self._rows = (perm, _sorted_batches(perm, step))
                    index = rows[1][start // step]
                else:
                    index = np.sort(perm[start:stop])
            else:
                index = slice(start, stop)
            if stop - start == self._n:  # one batch covers everything: no copy
                index = slice(0, self._n)
            if self._plain and index.__class__ is not slice:
                axis = self._axis
                batch = tuple([a.take(index, axis) for a in self._arrays])
            else:
                batch = tuple(self._take(a, s, index)
                              for a, s in zip(self._arrays, self._storage))
            self._position = stop if stop < self._n else 0
            if self._position == 0:
                self._perm = None  # the next pass draws a new permutation
        self._batches_served += 1
        return batch

    def _call(self):
        """Call the callable input and check its result (one dtype test per array)."""
        out = self._callable()
        where = self._where
        if isinstance(out, np.ndarray):
            out = (out,)
        elif not isinstance(out, (tuple, list)):
            raise TypeError(f'{where}: inputs (a callable) must return a tuple or list '
                            f'of arrays, or one array; got {type(out).__name__}')
        if not out:
            raise ValueError(f'{where}: inputs (a callable) must return at least one '
                             f'array; got an empty {type(out).__name__}')
        for i, item in enumerate(out):
            if isinstance(item, (str, bytes)):
                dtype = np.asarray(item).dtype
            else:
                dtype = getattr(item, 'dtype', None)
            if getattr(dtype, 'kind', 'f') not in _NUMERIC_KINDS:  # no dtype: not checked
                raise _dtype_refusal(where, f'inputs (a callable) returned batch[{i}] '
                                            'of dtype', dtype)
        return tuple(out)

    def _take(self, array, storage, index):
        """Take the samples ``index`` (a slice or sorted int array) along the axis."""
        if storage == 'sparse':
            return array[index].toarray()
        if isinstance(index, slice):
            rows = array[(slice(None),) * self._axis + (index,)]
            return np.array(rows) if storage == 'memmap' else rows
        return np.asarray(np.take(array, index, axis=self._axis))

    def __len__(self):
        """Return the number of samples along ``axis``.

        Returns
        -------
        int
            ``n_samples``; for a callable input, ``iteration_size``.
        """
        return self._iteration_size if self._n is None else self._n

    @property
    def name(self):
        """str: Name used in logs, warnings and errors."""
        return self._name

    @property
    def batch_size(self):
        """int: Requested batch size (``<= 0`` means the whole dataset)."""
        return self._batch_size

    @property
    def iteration_size(self):
        """int: Number of batches handed out by one iteration."""
        return self._iteration_size

    @property
    def axis(self):
        """int: The sample axis (normalized to be non-negative for arrays)."""
        return self._axis

    @property
    def shuffle(self):
        """bool: Whether each pass visits the samples in a new random order."""
        return self._shuffle

    @property
    def n_samples(self):
        """int or None: Number of samples; None for a callable input."""
        return self._n

    @property
    def n_inputs(self):
        """int or None: Arrays in each batch; None for a callable input (known per batch)."""
        return None if self._arrays is None else len(self._arrays)

    @property
    def batches_per_pass(self):
        """int or None: Batches in one pass; None for a callable input."""
        return self._batches_per_pass

    def ordered_copy(self, iteration_size=None):
        """A new Dataset over the same inputs (no data copied), in order, at the start.

        The training driver validates on the training data with it when no
        validation set is given, without disturbing this dataset's position.

        Parameters
        ----------
        iteration_size : int, optional
            Batches per iteration of the copy; default one pass (for a
            callable input: this dataset's iteration size).

        Returns
        -------
        Dataset

        Raises
        ------
        TypeError
            If ``iteration_size`` is not an integer.
        ValueError
            If ``iteration_size`` is not positive.
        """
        other = copy.copy(self)
        other._shuffle = False
        other._position = 0
        other._perm = None
        other._batches_served = 0
        other._rng = np.random.default_rng(0)
        size = iteration_size
        if size is None:
            size = self._iteration_size if self._n is None else self._batches_per_pass
        other._iteration_size = _check_int(
            f'{self._where}: ordered_copy(iteration_size={iteration_size!r})',
            'iteration_size', size, 1)
        return other

    def state_dict(self):
        """Return the iteration state as a plain dict.

        Every value is a str, int, bool or ndarray, so the dict survives
        ``np.savez`` and ``np.load(allow_pickle=False)``. Keys: ``kind``,
        ``batches_served`` and, for array inputs, ``n_samples``, ``shuffle``,
        ``position`` (next sample of the pass), ``permutation`` (int64, empty
        if none is drawn) and ``rng.*`` (the bit-generator state; its
        integers are stored as decimal strings so 128-bit values are exact).
        For a callable input only the counters are saved: the callable's own
        randomness is the caller's responsibility.

        Returns
        -------
        dict
            The state; pass it to :meth:`load_state_dict`.

        Examples
        --------
        >>> a = Dataset(np.arange(10), batch_size=3, rng=1)
        >>> _ = next(iter(a))
        >>> b = Dataset(np.arange(10), batch_size=3, rng=2)
        >>> b.load_state_dict(a.state_dict())
        >>> next(iter(a))[0].tolist() == next(iter(b))[0].tolist()
        True
        """
        state = {'kind': 'callable' if self._n is None else 'arrays',
                 'batches_served': self._batches_served}
        if self._n is not None:
            perm = np.zeros(0, np.int64) if self._perm is None else self._perm
            state.update(n_samples=self._n, shuffle=self._shuffle,
                         position=self._position,
                         permutation=np.array(perm, dtype=np.int64))
            _flatten('rng', self._rng.bit_generator.state, state)
        return state

    def _snapshot(self):
        """The iteration state, for :meth:`_rewind` (a run's validations start there)."""
        rng = None if self._n is None else self._rng.bit_generator.state
        return self._position, self._perm, self._batches_served, rng

    def _rewind(self, snapshot):
        """Go back to a :meth:`_snapshot` of this dataset (as :meth:`load_state_dict`
        does with its :meth:`state_dict`, without the checks)."""
        self._position, self._perm, self._batches_served, rng = snapshot
        if rng is not None:
            self._rng.bit_generator.state = rng

    def load_state_dict(self, state):
        """Restore a state saved by :meth:`state_dict`.

        Values may be 0-d arrays, as returned by ``np.load``. Afterwards the
        dataset hands out exactly the batches the saved one would have.

        Parameters
        ----------
        state : Mapping
            The saved state.

        Raises
        ------
        TypeError
            If ``state`` is not a mapping.
        ValueError
            If a key is missing or the state does not match this dataset
            (kind, number of samples, shuffle, permutation, bit generator).
        """
        where = f'{self._where}: load_state_dict(state)'
        if not isinstance(state, Mapping):
            raise TypeError(f'{where}: state must be a mapping; got '
                            f'{type(state).__name__}')

        def get(key):
            if key not in state:
                raise ValueError(f'{where}: missing key {key!r}')
            return np.asarray(state[key])

        def scalar(key, check, rule):
            value = get(key)
            if value.ndim != 0 or not check(value.item()):
                shown = value.item() if value.ndim == 0 else value
                raise ValueError(f'{where}: {key} must be {rule}; got {shown!r}')
            return value.item()

        kind = 'callable' if self._n is None else 'arrays'
        scalar('kind', lambda v: v == kind, f'{kind!r} for this dataset')
        served = scalar('batches_served', lambda v: _is_int(v) and v >= 0,
                        'a non-negative integer')
        if self._n is None:
            self._batches_served = served
            return
        n = self._n
        scalar('n_samples', lambda v: v == n, f'{n} for this dataset')
        scalar('shuffle', lambda v: v is self._shuffle, f'{self._shuffle} for this dataset')
        position = scalar('position', lambda v: _is_int(v) and 0 <= v < n,
                          f'an integer in [0, {n})')
        perm = get('permutation')
        if perm.size == 0 and not (self._shuffle and position > 0):
            perm = None
        elif not (self._shuffle and perm.shape == (n,) and perm.dtype.kind in 'iu'
                  and np.array_equal(np.sort(perm), np.arange(n))):
            raise ValueError(f'{where}: permutation must be empty or, when shuffling, '
                             f'a permutation of {n} samples; got shape {perm.shape}')
        template = self._rng.bit_generator.state
        name = template['bit_generator']
        scalar('rng.bit_generator', lambda v: v == name, f'{name!r} for this dataset')
        rng_state = _unflatten('rng', template, state, where)
        try:
            self._rng.bit_generator.state = rng_state
        except (TypeError, ValueError) as err:
            raise ValueError(f'{where}: the rng state was refused: {err}') from None
        self._position = position
        self._perm = None if perm is None else perm.astype(np.int64)
        self._batches_served = served

    def __repr__(self):
        """Return a short description, e.g. ``Dataset('train', n_samples=100, ...)``."""
        if self._n is None:
            source = f'callable={getattr(self._callable, "__name__", "<callable>")}'
        else:
            source = (f'n_samples={self._n}, batch_size={self._batch_size}, '
                      f'batches_per_pass={self._batches_per_pass}')
        return (f'Dataset({self._name!r}, {source}, iteration_size='
                f'{self._iteration_size}, shuffle={self._shuffle})')
