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


def _is_int(value):
    """Return True for Python/NumPy integers, but not for bools."""
    return (isinstance(value, (int, np.integer))
            and not isinstance(value, (bool, np.bool_)))


def _check_int(call, name, value, minimum=None):
    """Return ``value`` as an int; raise TypeError/ValueError naming ``call``."""
    if not _is_int(value):
        raise TypeError(f'{call}({name}={value!r}): {name} must be an integer; '
                        f'got {value!r}')
    if minimum is not None and value < minimum:
        rule = {0: 'non-negative', 1: 'positive'}[minimum]
        raise ValueError(f'{call}({name}={value!r}): {name} must be {rule}; '
                         f'got {value!r}')
    return int(value)


def _is_sparse(value):
    """Return True for a scipy.sparse matrix/array, without importing scipy."""
    sparse = sys.modules.get('scipy.sparse')
    return sparse is not None and sparse.issparse(value)


def _is_memmap(array):
    """Return True if ``array`` (or one of its bases) is memory-mapped."""
    while array is not None:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, 'base', None)
    return False


def _to_array(value, where):
    """Convert one input to ``(array, storage)``; storage is 'memory', 'memmap' or 'sparse'."""
    if _is_sparse(value):
        return value.tocsr(), 'sparse'
    if type(value).__module__.startswith('pandas') and hasattr(value, 'to_numpy'):
        return value.to_numpy(), 'memory'
    if isinstance(value, np.ndarray):
        return value, ('memmap' if _is_memmap(value) else 'memory')
    allowed = _ARRAY_TYPES
    if where == 'inputs':
        allowed += ', a list or tuple of those, or a callable'
    raise TypeError(f'Dataset(inputs): {where} must be {allowed}; '
                    f'got {type(value).__name__}')


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
        If an argument has the wrong type.
    ValueError
        If an argument has a bad value, the inputs have different lengths
        along ``axis`` or the dataset is empty.

    Warns
    -----
    RuntimeWarning
        If an in-memory floating or complex input holds NaN or infinity.
        Memory-mapped inputs and callables are not scanned.

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
        if not isinstance(name, str):
            raise TypeError(f'Dataset(name={name!r}): name must be a string; '
                            f'got {type(name).__name__}')
        batch_size = _check_int('Dataset', 'batch_size', batch_size)
        axis = _check_int('Dataset', 'axis', axis)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f'Dataset(shuffle={shuffle!r}): shuffle must be a '
                            f'bool; got {type(shuffle).__name__}')
        if isinstance(rng, np.random.Generator):
            self._rng = rng
        elif rng is None or _is_int(rng):
            seed = None if rng is None else _check_int('Dataset', 'rng', rng, 0)
            self._rng = np.random.default_rng(seed)
        else:
            raise TypeError(f'Dataset(rng={rng!r}): rng must be None, an integer '
                            f'seed or a numpy.random.Generator; got {type(rng).__name__}')
        self._name = name
        self._batch_size = batch_size
        self._shuffle = bool(shuffle)
        self._position = 0        # index (within the pass) of the next sample
        self._perm = None         # permutation of the current pass, drawn lazily
        self._batches_served = 0  # batches handed out since construction

        if callable(inputs) and not isinstance(inputs, (np.ndarray, list, tuple)):
            self._callable, self._arrays, self._storage = inputs, None, None
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
        self._iteration_size = _check_int('Dataset', 'iteration_size',
                                          iteration_size, 1)

    def _setup_arrays(self, inputs, axis):
        """Validate and store array inputs, the axis and the pass arithmetic."""
        if isinstance(inputs, (list, tuple)):
            if not inputs:
                raise ValueError('Dataset(inputs): need at least one array; '
                                 f'got an empty {type(inputs).__name__}')
            converted = [_to_array(x, f'inputs[{i}]') for i, x in enumerate(inputs)]
        else:
            converted = [_to_array(inputs, 'inputs')]
        self._arrays = [array for array, _ in converted]
        self._storage = [storage for _, storage in converted]
        shapes = ', '.join(str(tuple(a.shape)) for a in self._arrays)

        ndim = min(len(a.shape) for a in self._arrays)
        if ndim == 0:
            raise ValueError('Dataset(inputs): every array needs at least one '
                             f'dimension; got shapes {shapes}')
        original, axis = axis, (axis + ndim if axis < 0 else axis)
        if not 0 <= axis < ndim:
            raise ValueError(f'Dataset(axis={original}): axis must satisfy '
                             f'{-ndim} <= axis < {ndim} for inputs of shapes '
                             f'{shapes}; got {original}')
        if axis != 0 and 'sparse' in self._storage:
            raise ValueError(f'Dataset(axis={original}): scipy.sparse inputs '
                             f'only support axis 0; got {original}')
        self._axis = axis

        lengths = {a.shape[axis] for a in self._arrays}
        if len(lengths) > 1:
            raise ValueError('Dataset(inputs): arrays must have the same length '
                             f'along axis {axis}; got shapes {shapes}')
        self._n = lengths.pop()
        if self._n == 0:
            raise ValueError(f'Dataset(inputs): the dataset is empty (0 samples '
                             f'along axis {axis}); got shapes {shapes}')
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
                found.append(f'input {i} holds {bad} non-finite value(s)')
        if found:
            warnings.warn(f'Dataset {self._name!r}: {"; ".join(found)} '
                          '(NaN or infinity)', RuntimeWarning, stacklevel=3)

    def __iter__(self):
        """Yield the next ``iteration_size`` batches.

        Returns
        -------
        iterator of tuple of ndarray
            Batches, continuing from where the previous iteration stopped.
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
            If ``count`` is not an integer.
        ValueError
            If ``count`` is negative.

        Examples
        --------
        >>> data = Dataset(np.arange(5), batch_size=2, shuffle=False)
        >>> [b[0].tolist() for b in data.batches(4)]
        [[0, 1], [2, 3], [4], [0, 1]]
        """
        count = _check_int('Dataset.batches', 'count', count, 0)
        return (self._next_batch() for _ in range(count))

    def _next_batch(self):
        """Return the next batch and advance the position."""
        if self._callable is not None:
            batch = self._call()
        else:
            start = self._position
            stop = min(start + self._step, self._n)
            if self._shuffle:
                if self._perm is None:  # first batch of a pass
                    self._perm = self._rng.permutation(self._n)
                index = np.sort(self._perm[start:stop])
            else:
                index = slice(start, stop)
            if stop - start == self._n:  # one batch covers everything: no copy
                index = slice(0, self._n)
            batch = tuple(self._take(a, s, index)
                          for a, s in zip(self._arrays, self._storage))
            self._position = stop if stop < self._n else 0
            if self._position == 0:
                self._perm = None  # the next pass draws a new permutation
        self._batches_served += 1
        return batch

    def _call(self):
        """Call the callable input and check its result."""
        out = self._callable()
        if isinstance(out, np.ndarray):
            return (out,)
        if not isinstance(out, (tuple, list)):
            raise TypeError(f'Dataset {self._name!r}: the callable must return a '
                            f'tuple or list of arrays; got {type(out).__name__}')
        if not out:
            raise ValueError(f'Dataset {self._name!r}: the callable must return '
                             f'at least one array; got an empty {type(out).__name__}')
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
        other._iteration_size = _check_int('Dataset', 'iteration_size', size, 1)
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
        where = f'Dataset {self._name!r}.load_state_dict(state)'
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
