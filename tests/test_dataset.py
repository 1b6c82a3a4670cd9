"""Tests for npdownhill.dataset.Dataset."""
import re
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from npdownhill.dataset import Dataset


def take(dataset, count):
    """Return a list of ``count`` batches from ``dataset``."""
    return list(dataset.batches(count))


def assert_same_batches(left, right):
    """Assert two lists of batches are identical, bit for bit."""
    assert len(left) == len(right)
    for a, b in zip(left, right):
        assert isinstance(a, tuple) and isinstance(b, tuple)
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert x.dtype == y.dtype and x.shape == y.shape
            assert x.tobytes() == y.tobytes()


def expected_sizes(n, batch_size):
    """Batch sizes of one pass over ``n`` samples."""
    if batch_size <= 0 or batch_size >= n:
        return [n]
    return [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])


# ---------------------------------------------------------------- passes


@pytest.mark.parametrize('shuffle', [True, False])
@pytest.mark.parametrize('n', [1, 7, 10, 33])
@pytest.mark.parametrize('batch_size', [1, 3, 10, 50, 0, -1])
def test_every_sample_once_per_pass(n, batch_size, shuffle):
    data = Dataset(np.arange(n), batch_size=batch_size, shuffle=shuffle, rng=0)
    sizes = expected_sizes(n, batch_size)
    assert data.batches_per_pass == len(sizes)
    assert data.iteration_size == len(sizes)
    for _ in range(3):  # three passes, each a default iteration
        batches = list(data)
        assert [len(b[0]) for b in batches] == sizes  # last short batch kept
        seen = np.concatenate([b[0] for b in batches])
        assert sorted(seen.tolist()) == list(range(n))
        if not shuffle:
            assert seen.tolist() == list(range(n))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 120), batch_size=st.integers(-3, 150),
       shuffle=st.booleans(), seed=st.integers(0, 2**32),
       passes=st.integers(1, 3))
def test_property_passes_are_permutations(n, batch_size, shuffle, seed, passes):
    data = Dataset(np.arange(n, dtype=np.int32), batch_size=batch_size,
                   shuffle=shuffle, rng=seed)
    per_pass = data.batches_per_pass
    batches = take(data, per_pass * passes)
    for p in range(passes):
        chunk = batches[p * per_pass:(p + 1) * per_pass]
        assert all(isinstance(b, tuple) and len(b) == 1 for b in chunk)
        assert [len(b[0]) for b in chunk] == expected_sizes(n, batch_size)
        seen = np.concatenate([b[0] for b in chunk])
        assert seen.dtype == np.int32
        assert np.array_equal(np.sort(seen), np.arange(n))


def test_rows_stay_aligned_across_inputs():
    n = 53
    x = np.arange(n * 3).reshape(n, 3)           # row i starts with 3 * i
    y = np.arange(n) * 10.0                      # entry i is 10 * i
    z = np.repeat(np.arange(n), 4).reshape(n, 2, 2)  # every entry is i
    data = Dataset((x, y, z), batch_size=8, rng=5)
    batches = take(data, 3 * data.batches_per_pass)
    for bx, by, bz in batches:
        index = bx[:, 0] // 3
        assert np.array_equal(by, index * 10.0)
        assert np.array_equal(bz[:, 0, 0], index)
        assert np.array_equal(bz.reshape(len(index), -1).min(axis=1), index)


def test_unshuffled_batches_are_views_in_order():
    x = np.arange(20.0).reshape(10, 2)
    data = Dataset(x, batch_size=4, shuffle=False)
    batches = list(data)
    assert [b[0][0, 0] for b in batches] == [0.0, 8.0, 16.0]
    assert all(np.shares_memory(b[0], x) for b in batches)


def test_shuffled_batches_sort_indices_within_a_batch():
    data = Dataset(np.arange(100), batch_size=10, rng=0)
    for (batch,) in data:
        assert np.all(np.diff(batch) > 0)


# ---------------------------------------------------------------- randomness


def test_same_seed_same_order_and_different_seed_differs():
    def order(seed):
        return np.concatenate([b[0] for b in take(Dataset(np.arange(200), batch_size=16,
                                                          rng=seed), 26)])
    assert np.array_equal(order(7), order(7))
    assert not np.array_equal(order(7), order(8))


def test_each_pass_is_reshuffled():
    data = Dataset(np.arange(100), batch_size=10, rng=1)
    first = np.concatenate([b[0] for b in data])
    second = np.concatenate([b[0] for b in data])
    assert not np.array_equal(first, second)


def test_generator_object_is_used():
    def order(rng):
        return np.concatenate([b[0] for b in Dataset(np.arange(100), batch_size=10, rng=rng)])
    a = order(np.random.Generator(np.random.MT19937(3)))
    b = order(np.random.Generator(np.random.MT19937(3)))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, np.arange(100))
    assert np.array_equal(order(np.random.default_rng(4)), order(4))


def test_rng_none_gives_valid_passes():
    data = Dataset(np.arange(30), batch_size=7)
    assert sorted(np.concatenate([b[0] for b in data]).tolist()) == list(range(30))


# ---------------------------------------------------------------- iteration size


def test_iteration_continues_across_passes_unshuffled():
    data = Dataset(np.arange(100), batch_size=10, iteration_size=4, shuffle=False)
    starts = [[int(b[0][0]) for b in data] for _ in range(3)]
    assert starts == [[0, 10, 20, 30], [40, 50, 60, 70], [80, 90, 0, 10]]


def test_iteration_continues_across_passes_shuffled():
    data = Dataset(np.arange(100), batch_size=10, iteration_size=4, rng=9)
    reference = take(Dataset(np.arange(100), batch_size=10, rng=9), 12)
    got = [b for _ in range(3) for b in data]
    assert_same_batches(got, reference)
    first_pass = np.concatenate([b[0] for b in got[:10]])
    assert sorted(first_pass.tolist()) == list(range(100))
    # the last two batches come from the second, reshuffled pass
    second_pass = np.concatenate([b[0] for b in got[10:]])
    assert not np.array_equal(second_pass, first_pass[:20])


def test_interrupted_iteration_resumes_with_batches():
    data = Dataset(np.arange(50), batch_size=5, iteration_size=6, shuffle=False)
    for i, batch in enumerate(data):
        if i == 1:
            break
    rest = take(data, data.iteration_size - 2)
    assert [int(b[0][0]) for b in rest] == [10, 15, 20, 25]
    assert [int(b[0][0]) for b in data] == [30, 35, 40, 45, 0, 5]


def test_batches_count_validation():
    data = Dataset(np.arange(10), batch_size=3)
    assert take(data, 0) == []
    assert len(take(data, 7)) == 7
    with pytest.raises(ValueError, match=r"^Dataset 'dataset': batches\(count=-1\): count "
                                         r'must be non-negative; got -1$'):
        data.batches(-1)
    with pytest.raises(TypeError, match=r'count must be an integer; got 1.5'):
        data.batches(1.5)
    with pytest.raises(TypeError, match=r'count must be an integer; got True'):
        data.batches(True)


# ---------------------------------------------------------------- axis


def test_axis_one_cuts_along_axis_one():
    n = 23
    x = np.tile(np.arange(n), (3, 1))                # x[:, i] == i
    y = np.tile(np.arange(n)[None, :, None], (2, 1, 4)) * 2  # y[:, i, :] == 2 i
    for axis in (1, -1):
        data = Dataset([x, y], batch_size=5, axis=axis, rng=2)
        assert data.axis == 1 and len(data) == n
        batches = list(data)
        assert [b[0].shape for b in batches] == [(3, 5)] * 4 + [(3, 3)]
        assert all(b[1].shape[::2] == (2, 4) for b in batches)
        for bx, by in batches:
            assert np.array_equal(by[0, :, 0], 2 * bx[0])
            assert np.array_equal(bx[1], bx[0])
        seen = np.concatenate([b[0][0] for b in batches])
        assert sorted(seen.tolist()) == list(range(n))


def test_length_mismatch_quotes_shapes():
    message = re.escape("Dataset 'train': the arrays in inputs must have the same length "
                        'along axis 0; got shapes (100, 3), (99,)')
    with pytest.raises(ValueError, match=message):
        Dataset([np.zeros((100, 3)), np.zeros(99)], name='train')
    with pytest.raises(ValueError, match=re.escape('along axis 1; got shapes (2, 5), (5, 2)')):
        Dataset([np.zeros((2, 5)), np.zeros((5, 2))], axis=1)


@pytest.mark.parametrize('axis', [2, -3, 5])
def test_axis_out_of_range(axis):
    with pytest.raises(ValueError, match=rf"Dataset 'dataset': axis must satisfy "
                                         rf'-2 <= axis < 2 .*; got {axis}'):
        Dataset([np.zeros((4, 3)), np.zeros((4, 3, 2))], axis=axis)


def test_zero_dimensional_input_refused():
    with pytest.raises(ValueError, match='at least one dimension'):
        Dataset(np.array(3.0))


# ---------------------------------------------------------------- memory maps


def test_memmap_matches_in_memory(tmp_path):
    x = np.arange(300.0).reshape(100, 3)
    y = np.arange(100)
    np.save(tmp_path / 'x.npy', x)
    mm = np.load(tmp_path / 'x.npy', mmap_mode='r')
    assert isinstance(mm, np.memmap)
    for shuffle in (True, False):
        on_disk = Dataset([mm, y], batch_size=7, rng=3, shuffle=shuffle)
        in_memory = Dataset([x, y], batch_size=7, rng=3, shuffle=shuffle)
        got = take(on_disk, 40)
        assert_same_batches(got, take(in_memory, 40))
        for bx, by in got:
            assert type(bx) is np.ndarray
            assert not np.shares_memory(bx, mm)  # a fresh copy of just these rows
            assert np.array_equal(bx[:, 0] / 3, by)


def test_memmap_view_with_memmap_base_is_detected(tmp_path):
    x = np.arange(40.0).reshape(20, 2)
    np.save(tmp_path / 'x.npy', x)
    view = np.load(tmp_path / 'x.npy', mmap_mode='r').view(np.ndarray)
    assert not isinstance(view, np.memmap)
    data = Dataset(view, batch_size=6, shuffle=False)
    for (batch,) in data:
        assert not np.shares_memory(batch, view)


def test_memmap_is_read_batch_by_batch(tmp_path):
    rows, cols = 20_000, 256  # about 41 MB of float64
    path = tmp_path / 'big.npy'
    big = np.lib.format.open_memmap(path, mode='w+', dtype=np.float64, shape=(rows, cols))
    big[:, 0] = np.arange(rows)
    big.flush()
    del big
    mm = np.load(path, mmap_mode='r')
    tracemalloc.start()
    try:
        data = Dataset(mm, batch_size=256, rng=0)
        seen = np.zeros(rows, dtype=bool)
        for (batch,) in data:
            assert batch.shape[1] == cols
            seen[batch[:, 0].astype(np.int64)] = True
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen.all()
    # a full copy would take 41 MB, and even a NaN scan of the memmap 5 MB
    assert peak < 3_000_000, f'peak traced memory {peak} bytes'


def test_memmap_not_scanned_for_nan(tmp_path):
    np.save(tmp_path / 'x.npy', np.array([1.0, np.nan, 3.0]))
    mm = np.load(tmp_path / 'x.npy', mmap_mode='r')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        Dataset(mm)


# ---------------------------------------------------------------- pandas, scipy


def test_pandas_gives_same_batches_as_arrays():
    pd = pytest.importorskip('pandas')
    x = np.arange(120.0).reshape(40, 3)
    y = np.arange(40) * 2
    frame = pd.DataFrame(x, columns=['a', 'b', 'c'])
    series = pd.Series(y)
    got = take(Dataset([frame, series], batch_size=6, rng=11), 20)
    assert_same_batches(got, take(Dataset([x, y], batch_size=6, rng=11), 20))
    single = take(Dataset(frame, batch_size=6, rng=11), 3)
    assert all(type(b[0]) is np.ndarray for b in single)


@pytest.mark.parametrize('fmt', ['csr', 'csc', 'coo', 'lil'])
def test_sparse_gives_same_dense_batches(fmt):
    sparse = pytest.importorskip('scipy.sparse')
    dense = np.zeros((50, 6))
    dense[np.arange(50), np.arange(50) % 6] = np.arange(1.0, 51.0)
    matrix = sparse.csr_matrix(dense).asformat(fmt)
    y = np.arange(50)
    for shuffle in (True, False):
        got = take(Dataset([matrix, y], batch_size=8, rng=4, shuffle=shuffle), 15)
        want = take(Dataset([dense, y], batch_size=8, rng=4, shuffle=shuffle), 15)
        assert_same_batches(got, want)
        assert all(type(b[0]) is np.ndarray for b in got)


def test_sparse_array_and_axis_restriction():
    sparse = pytest.importorskip('scipy.sparse')
    dense = np.eye(10)
    got = take(Dataset(sparse.csr_array(dense), batch_size=3, rng=0), 4)
    assert_same_batches(got, take(Dataset(dense, batch_size=3, rng=0), 4))
    with pytest.raises(ValueError, match=r"Dataset 'dataset': axis must be 0 .*for "
                                         r'scipy.sparse inputs; got 1'):
        Dataset(sparse.csr_matrix(dense), axis=1)


def test_sparse_nan_warns():
    sparse = pytest.importorskip('scipy.sparse')
    matrix = sparse.csr_matrix(np.array([[0.0, np.nan], [np.inf, 1.0]]))
    with pytest.warns(RuntimeWarning, match="Dataset 'sp': inputs holds 2 non-finite"):
        Dataset(matrix, name='sp')


# ---------------------------------------------------------------- callables


class Sampler:
    """A callable with a length, returning two arrays."""

    def __init__(self):
        self.calls = 0

    def __len__(self):
        return 7

    def __call__(self):
        self.calls += 1
        return [np.full(3, self.calls), np.zeros(3)]


def test_callable_with_len_sets_iteration_size():
    sampler = Sampler()
    data = Dataset(sampler, name='gen')
    assert data.iteration_size == 7 and len(data) == 7
    assert data.n_samples is None and data.batches_per_pass is None
    batches = list(data)
    assert len(batches) == 7 and sampler.calls == 7
    assert all(isinstance(b, tuple) and len(b) == 2 for b in batches)
    assert [int(b[0][0]) for b in batches] == list(range(1, 8))
    assert 'gen' in repr(data)


def test_callable_defaults_and_wrapping():
    data = Dataset(lambda: np.ones(4))
    assert data.iteration_size == 100
    batches = list(data)
    assert len(batches) == 100
    assert all(isinstance(b, tuple) and len(b) == 1 and b[0].shape == (4,) for b in batches)
    assert len(list(Dataset(lambda: (np.ones(2),), iteration_size=3))) == 3


def test_callable_bad_results():
    with pytest.raises(ValueError, match=r"^Dataset 'empty': inputs \(a callable\) must return "
                                         r'at least one array; got an empty tuple$'):
        next(iter(Dataset(lambda: (), name='empty')))
    with pytest.raises(TypeError, match=r"^Dataset 'dataset': inputs \(a callable\) must "
                                        r'return a tuple or list of arrays, or one array; '
                                        r'got NoneType$'):
        next(iter(Dataset(lambda: None)))


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize('kwargs, error, message', [
    (dict(batch_size=1.5), TypeError,
     "Dataset 'train': batch_size must be an integer; got 1.5"),
    (dict(batch_size=True), TypeError,
     "Dataset 'train': batch_size must be an integer; got True"),
    (dict(rng='abc'), TypeError,
     "Dataset 'train': rng must be None, an integer seed or a numpy.random.Generator; "
     "got 'abc' (str)"),
    (dict(rng=True), TypeError, "Dataset 'train': rng must be None, an integer seed"),
    (dict(rng=-1), ValueError, "Dataset 'train': rng must be non-negative; got -1"),
    (dict(iteration_size=0), ValueError,
     "Dataset 'train': iteration_size must be positive; got 0"),
    (dict(iteration_size=2.0), TypeError,
     "Dataset 'train': iteration_size must be an integer; got 2.0"),
    (dict(axis=1.0), TypeError, "Dataset 'train': axis must be an integer; got 1.0"),
    (dict(axis=1), ValueError, "Dataset 'train': axis must satisfy -1 <= axis < 1"),
    (dict(shuffle='yes'), TypeError, "Dataset 'train': shuffle must be a bool; got 'yes' (str)"),
])
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match='^' + re.escape(message)):
        Dataset(np.arange(10.0), name='train', **kwargs)


@pytest.mark.parametrize('name', [3, b'train', ['train']])
def test_bad_name_is_refused_before_it_is_quoted(name):
    # the name is checked first, so a bad batch_size is not reported with it
    with pytest.raises(TypeError, match='^' + re.escape(
            f'Dataset(name={name!r}): name must be a string; got {type(name).__name__}')):
        Dataset(np.arange(10.0), name=name, batch_size=1.5)


def test_name_is_quoted_with_repr():
    with pytest.raises(TypeError, match=re.escape('Dataset "it\'s": batch_size')):
        Dataset(np.arange(3.0), name="it's", batch_size='2')


@pytest.mark.parametrize('inputs, error, message', [
    (np.zeros((0, 3)), ValueError, "Dataset 'valid': inputs must hold at least one sample; "
                                   'got 0 along axis 0 (the dataset is empty; shapes (0, 3))'),
    ([np.zeros(0), np.zeros(0)], ValueError, 'the dataset is empty'),
    ([], ValueError, "Dataset 'valid': inputs must hold at least one array; got an empty list"),
    ('abc', TypeError, "Dataset 'valid': inputs must be an ndarray"),
    ({'x': np.zeros(3)}, TypeError, 'got dict'),
    ([np.zeros(3), [1, 2, 3]], TypeError, "Dataset 'valid': inputs[1] must be an ndarray"),
    (5, TypeError, 'got int'),
    (np.array(3.0), ValueError, "Dataset 'valid': every array in inputs needs at least one "
                                'dimension; got shapes ()'),
])
def test_bad_inputs(inputs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        Dataset(inputs, name='valid')


# ---------------------------------------------------------------- dtypes autograd cannot use


def text_frame():
    """A DataFrame with two numeric columns, a text column and a categorical column."""
    pd = pytest.importorskip('pandas')
    return pd.DataFrame({'age': [31.0, 45.0, 27.0], 'visits': [1, 4, 2],
                         'city': ['Oslo', 'Lima', 'Pune'],
                         'grade': pd.Categorical(['a', 'b', 'a'])})


def test_dataframe_text_and_category_columns_are_named():
    frame = text_frame()
    message = (r"^Dataset 'train': inputs\[1\] is a pandas DataFrame with non-numeric "
               r"column\(s\) 'city' \((str|object|string)\), 'grade' \(category\); "
               r'autograd needs bool, integer, float or complex data; encode these columns '
               r'as numbers .* or drop them$')
    with pytest.raises(TypeError, match=message) as info:
        Dataset([np.zeros(3), frame], name='train')
    assert "'age'" not in str(info.value) and "'visits'" not in str(info.value)
    # without the offending columns the same frame is accepted
    data = Dataset([np.zeros(3), frame[['age', 'visits']]], name='train', shuffle=False)
    (_, batch), = data.batches(1)
    assert batch.dtype == np.float64 and batch.tolist() == [[31, 1], [45, 4], [27, 2]]


def test_dataframe_category_column_alone_is_refused():
    pd = pytest.importorskip('pandas')
    frame = pd.DataFrame({'x': [1.0, 2.0], 'level': pd.Categorical([1, 2])})  # numeric categories
    with pytest.raises(TypeError, match=r"^Dataset 'valid': inputs is a pandas DataFrame "
                                        r"with non-numeric column\(s\) 'level' \(category\);"):
        Dataset(frame, name='valid')


def test_dataframe_string_and_datetime_columns_are_refused():
    pd = pytest.importorskip('pandas')
    frame = pd.DataFrame({'note': pd.array(['a', 'b'], dtype='string'),
                          'when': pd.to_datetime(['2024-01-01', '2024-01-02']),
                          'x': [1.0, 2.0]})
    with pytest.raises(TypeError, match=r"column\(s\) 'note' \(string\), 'when' "
                                        r'\(datetime64\[\w+\]\);'):
        Dataset(frame)


def test_many_bad_columns_are_listed_up_to_ten():
    pd = pytest.importorskip('pandas')
    frame = pd.DataFrame({f'c{i}': ['x', 'y'] for i in range(13)})
    with pytest.raises(TypeError, match=r"'c9' \(\w+\) and 3 more;") as info:
        Dataset(frame)
    assert "'c10'" not in str(info.value)


def test_series_of_text_is_refused_with_its_name():
    pd = pytest.importorskip('pandas')
    with pytest.raises(TypeError, match=r"^Dataset 'train': inputs\[0\] is a pandas Series "
                                        r"'label' of dtype object \(Python objects\); "
                                        r'autograd needs bool, integer, float or complex data; '
                                        r'convert it to a numeric dtype'):
        Dataset([pd.Series([1, 'x'], dtype=object, name='label'), np.zeros(2)], name='train')
    with pytest.raises(TypeError, match=r"^Dataset 'train': inputs is a pandas Series of "
                                        r'dtype category;'):
        Dataset(pd.Series(['a', 'b'], dtype='category'), name='train')


@pytest.mark.parametrize('array, shown', [
    (np.array([1, 'two', None], dtype=object), r'object \(Python objects\)'),
    (np.array(['a', 'b', 'c']), r'<U1 \(text\)'),
    (np.array([b'a', b'b', b'c']), r'\|S1 \(bytes\)'),
    (np.array(['2024-01-01', '2024-01-02', '2024-01-03'], dtype='datetime64[D]'),
     r'datetime64\[D\] \(dates and times\)'),
    (np.array([1, 2, 3], dtype='timedelta64[s]'), r'timedelta64\[s\] \(time intervals\)'),
    (np.zeros(3, dtype=[('a', 'f8'), ('b', 'i8')]), r".*\(a structured/void record\)"),
], ids=['object', 'str', 'bytes', 'datetime64', 'timedelta64', 'structured'])
def test_non_numeric_arrays_are_refused(array, shown):
    message = (rf"^Dataset 'valid': inputs\[1\] is an array of dtype {shown}; autograd needs "
               rf'bool, integer, float or complex data; .* drop it$')
    with pytest.raises(TypeError, match=message):
        Dataset([np.zeros(3), array], name='valid')


def test_non_numeric_memmap_is_refused_by_dtype(tmp_path):
    np.save(tmp_path / 'words.npy', np.array(['a', 'bb', 'ccc']))
    mm = np.load(tmp_path / 'words.npy', mmap_mode='r')
    with pytest.raises(TypeError, match=r"^Dataset 'train': inputs is an array of dtype "
                                        r'<U3 \(text\)'):
        Dataset(mm, name='train')


def test_numeric_dtypes_are_accepted():
    columns = [np.array([True, False, True, False]), np.arange(4, dtype=np.int8),
               np.arange(4, dtype=np.uint16), np.arange(4, dtype=np.float32),
               np.arange(4) * (1 + 2j)]
    data = Dataset(columns, batch_size=4, shuffle=False)
    (batch,) = data.batches(1)
    assert [b.dtype for b in batch] == [c.dtype for c in columns]
    assert all(np.array_equal(b, c) for b, c in zip(batch, columns))


def test_sparse_bool_and_complex_are_accepted():
    sparse = pytest.importorskip('scipy.sparse')
    for dense in (np.eye(4, dtype=bool), np.eye(4) * 1j):
        (batch,) = Dataset(sparse.csr_matrix(dense), batch_size=4, shuffle=False).batches(1)
        assert batch[0].dtype == dense.dtype and np.array_equal(batch[0], dense)


def test_numeric_pandas_frames_are_accepted():
    pd = pytest.importorskip('pandas')
    frame = pd.DataFrame({'i': np.arange(4), 'f': np.arange(4.0) / 2,
                          'u': np.arange(4, dtype=np.uint8), 'c': np.arange(4) * 1j})
    (batch,) = Dataset(frame, batch_size=4, shuffle=False).batches(1)
    assert batch[0].dtype == np.complex128
    assert np.array_equal(batch[0], frame.to_numpy())


def test_bool_beside_float_columns_become_float_not_object():
    pd = pytest.importorskip('pandas')
    frame = pd.DataFrame({'x': [0.5, 1.5, 2.5], 'flag': [True, False, True]})
    assert frame.to_numpy().dtype == object  # what pandas itself gives
    (batch,) = Dataset(frame, batch_size=3, shuffle=False).batches(1)
    assert batch[0].dtype == np.float64
    assert batch[0].tolist() == [[0.5, 1.0], [1.5, 0.0], [2.5, 1.0]]


def test_nullable_pandas_columns():
    pd = pytest.importorskip('pandas')
    ints = pd.DataFrame({'n': pd.array([1, 2, 3], dtype='Int64'), 'flag': [True, False, True]})
    (batch,) = Dataset(ints, batch_size=3, shuffle=False).batches(1)
    assert batch[0].dtype == np.int64 and batch[0].tolist() == [[1, 1], [2, 0], [3, 1]]
    # a missing value next to a float column becomes NaN, and is warned about
    with_float = pd.DataFrame({'n': pd.array([1, None, 3], dtype='Int64'), 'x': [0.5, 1.0, 2.0]})
    with pytest.warns(RuntimeWarning, match=r"^Dataset 'train': inputs holds 1 non-finite"):
        data = Dataset(with_float, name='train', batch_size=3, shuffle=False)
    (batch,) = data.batches(1)
    assert batch[0].dtype == np.float64 and np.isnan(batch[0][1, 0])
    # but an integer or bool column cannot hold it
    with_int = pd.DataFrame({'n': pd.array([1, None, 3], dtype='Int64'),
                             'flag': [True, False, True]})
    with pytest.raises(TypeError, match=r"^Dataset 'train': inputs is a pandas DataFrame whose "
                                        r"column\(s\) 'n' \(Int64\) hold missing values \(NA\), "
                                        r'which dtype int64 cannot represent; .*\.fillna'):
        Dataset(with_int, name='train')
    flags = pd.Series([True, None], dtype='boolean', name='flag')
    with pytest.raises(TypeError, match=r"^Dataset 'train': inputs is a pandas Series 'flag' "
                                        r'of dtype boolean holding missing values'):
        Dataset(flags, name='train')


def test_callable_returning_non_numeric_arrays_is_refused_per_batch():
    calls = []

    def sample():
        calls.append(1)
        labels = np.array(['cat', 'dog'], dtype=object) if len(calls) == 2 else np.zeros(2)
        return np.ones((2, 3)), labels

    data = Dataset(sample, name='gen', iteration_size=3)
    batches = data.batches(3)
    assert not calls  # checked as the batches come, not when the Dataset is made
    assert next(batches)[1].dtype == np.float64
    with pytest.raises(TypeError, match=r"^Dataset 'gen': inputs \(a callable\) returned "
                                        r'batch\[1\] of dtype object \(Python objects\); '
                                        r'autograd needs bool, integer, float or complex data'):
        next(batches)
    with pytest.raises(TypeError, match=r"^Dataset 'gen': .*batch\[0\] of dtype <U3 \(text\)"):
        next(iter(Dataset(lambda: ('cat',), name='gen')))
    with pytest.raises(TypeError, match=r"^Dataset 'gen': .*batch\[0\] of dtype "
                                        r'datetime64\[D\]'):
        next(iter(Dataset(lambda: [np.array(['2024-01-01'], dtype='datetime64[D]')],
                          name='gen')))
    pd = pytest.importorskip('pandas')
    with pytest.raises(TypeError, match=r"^Dataset 'gen': .*batch\[1\] of dtype category;"):
        next(iter(Dataset(lambda: (np.zeros(2), pd.Series(['a', 'b'], dtype='category')),
                          name='gen')))
    # Python numbers and numeric arrays pass unchanged
    batch = next(iter(Dataset(lambda: (np.arange(3), 2.0, np.ones(3, dtype=bool)))))
    assert batch[1] == 2.0 and batch[2].dtype == bool


# ---------------------------------------------------------------- the name in every message


def names_dataset(call, name):
    """Run ``call``; it must raise TypeError/ValueError whose message starts with the name."""
    with pytest.raises((TypeError, ValueError)) as info:
        call()
    assert str(info.value).startswith(f'Dataset {name!r}: '), str(info.value)


@pytest.mark.parametrize('name', ['train', 'valid', 'my data'])
def test_every_refusal_starts_with_the_name(name):
    good = Dataset(np.arange(10.0), name=name)
    calls = [
        lambda: Dataset(np.arange(10.0), name=name, batch_size='8'),
        lambda: Dataset(np.arange(10.0), name=name, iteration_size=0),
        lambda: Dataset(np.arange(10.0), name=name, axis=2),
        lambda: Dataset(np.arange(10.0), name=name, rng=-1),
        lambda: Dataset(np.arange(10.0), name=name, shuffle=None),
        lambda: Dataset([np.zeros(3), np.zeros(4)], name=name),
        lambda: Dataset([np.zeros(3), 'text'], name=name),
        lambda: Dataset(np.array(['a', 'b']), name=name),
        lambda: Dataset(np.zeros((0, 2)), name=name),
        lambda: good.batches(-1),
        lambda: good.ordered_copy(iteration_size=0),
        lambda: good.load_state_dict({}),
        lambda: next(iter(Dataset(lambda: None, name=name))),
        lambda: next(iter(Dataset(lambda: [np.array([None])], name=name))),
    ]
    for call in calls:
        names_dataset(call, name)


def test_driver_errors_say_train_or_valid():
    pd = pytest.importorskip('pandas')
    import npdownhill as dh

    def loss(params, x, y):
        return ((x * params['w'] - y) ** 2).mean()

    x, y = np.arange(8.0), np.arange(8.0) * 2
    bad = pd.DataFrame({'x': x, 'label': ['a', 'b'] * 4})
    with pytest.raises(TypeError, match=r"^Dataset 'valid': inputs\[0\] is a pandas "
                                        r"DataFrame with non-numeric column\(s\) 'label'"):
        dh.minimize(loss, {'w': np.zeros(1)}, [x, y], valid=[bad, y], max_epochs=1)
    with pytest.raises(TypeError, match=r"^Dataset 'train': inputs\[1\] is an array of "
                                        r'dtype object'):
        dh.minimize(loss, {'w': np.zeros(1)}, [x, y.astype(object)], valid=[x, y],
                    max_epochs=1)


# ---------------------------------------------------------------- NaN check


def test_nan_warning_names_dataset_and_input():
    x = np.arange(10.0)
    y = np.ones((10, 2))
    y[3, 1] = np.nan
    y[5, 0] = -np.inf
    with pytest.warns(RuntimeWarning, match=r"^Dataset 'train': inputs\[1\] holds 2 "
                                            r'non-finite value\(s\) \(NaN or infinity\)$'):
        data = Dataset([x, y], name='train')
    assert len(data) == 10  # a warning, not an error
    with pytest.warns(RuntimeWarning, match=r"^Dataset 'dataset': inputs holds 1 non-finite"):
        Dataset(np.array([1 + 0j, complex(np.inf, 0)]))


def test_finite_and_integer_data_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        Dataset([np.arange(5.0), np.arange(5), np.ones(5, dtype=bool)])


# ---------------------------------------------------------------- state


def save_and_load(state, path):
    np.savez(path, **{key: np.asarray(value) for key, value in state.items()})
    with np.load(path, allow_pickle=False) as loaded:
        return dict(loaded)


@pytest.mark.parametrize('consumed', [0, 3, 10, 13, 20])
def test_state_round_trip_through_npz(tmp_path, consumed):
    x = np.random.default_rng(0).normal(size=(100, 4))
    y = np.arange(100)
    b = Dataset([x, y], batch_size=10, rng=1)
    take(b, consumed)
    state = save_and_load(b.state_dict(), tmp_path / 'state.npz')
    c = Dataset([x, y], batch_size=10, rng=999)
    c.load_state_dict(state)
    assert c.state_dict()['batches_served'] == consumed
    assert_same_batches(take(b, 57), take(c, 57))


def test_state_round_trip_other_bit_generators(tmp_path):
    for make in (np.random.MT19937, np.random.Philox, np.random.SFC64):
        b = Dataset(np.arange(30), batch_size=4, rng=np.random.Generator(make(5)))
        take(b, 5)
        state = save_and_load(b.state_dict(), tmp_path / 'state.npz')
        c = Dataset(np.arange(30), batch_size=4, rng=np.random.Generator(make(6)))
        c.load_state_dict(state)
        assert_same_batches(take(b, 40), take(c, 40))


def test_state_keys_and_exact_pcg64_state():
    data = Dataset(np.arange(10), batch_size=3, rng=1)
    take(data, 2)
    state = data.state_dict()
    for key in ('rng.bit_generator', 'rng.state.state', 'rng.state.inc',
                'rng.has_uint32', 'rng.uinteger', 'permutation', 'position',
                'batches_served', 'n_samples'):
        assert key in state
    assert state['rng.bit_generator'] == 'PCG64'
    assert int(state['rng.state.state']) == data._rng.bit_generator.state['state']['state']
    assert state['permutation'].dtype == np.int64 and state['position'] == 6


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 60), batch_size=st.integers(-1, 70), shuffle=st.booleans(),
       consumed=st.integers(0, 40), seed=st.integers(0, 1000))
def test_property_state_resumes_exactly(n, batch_size, shuffle, consumed, seed):
    b = Dataset(np.arange(n), batch_size=batch_size, shuffle=shuffle, rng=seed)
    take(b, consumed)
    state = {key: np.asarray(value) for key, value in b.state_dict().items()}
    c = Dataset(np.arange(n), batch_size=batch_size, shuffle=shuffle, rng=seed + 1)
    c.load_state_dict(state)
    assert_same_batches(take(b, 25), take(c, 25))


def test_callable_state_holds_counters():
    data = Dataset(Sampler())
    take(data, 3)
    state = data.state_dict()
    assert state == {'kind': 'callable', 'batches_served': 3}
    other = Dataset(Sampler())
    other.load_state_dict({k: np.asarray(v) for k, v in state.items()})
    assert other.state_dict()['batches_served'] == 3
    with pytest.raises(ValueError, match=r"^Dataset 'gen': load_state_dict\(state\): kind "
                                         r"must be 'arrays' for this dataset; got 'callable'$"):
        Dataset(np.arange(5), name='gen').load_state_dict(state)


def test_mismatched_state_refused():
    source = Dataset(np.arange(20), batch_size=3, rng=1)
    take(source, 2)
    state = source.state_dict()
    with pytest.raises(ValueError, match='n_samples must be 21 for this dataset; got 20'):
        Dataset(np.arange(21), rng=1).load_state_dict(state)
    with pytest.raises(ValueError, match="missing key 'position'"):
        Dataset(np.arange(20)).load_state_dict({k: v for k, v in state.items() if k != 'position'})
    with pytest.raises(ValueError, match="missing key 'rng.state.inc'"):
        Dataset(np.arange(20)).load_state_dict(
            {k: v for k, v in state.items() if k != 'rng.state.inc'})
    with pytest.raises(ValueError, match="rng.bit_generator must be 'MT19937'"):
        mt = np.random.Generator(np.random.MT19937(0))
        Dataset(np.arange(20), rng=mt).load_state_dict(state)
    with pytest.raises(ValueError, match='shuffle must be False'):
        Dataset(np.arange(20), shuffle=False).load_state_dict(state)
    with pytest.raises(ValueError, match="kind must be 'callable'"):
        Dataset(Sampler()).load_state_dict(state)
    with pytest.raises(ValueError, match='permutation must be'):
        Dataset(np.arange(20)).load_state_dict(dict(state, permutation=np.zeros(20, np.int64)))
    with pytest.raises(ValueError, match='permutation must be'):
        Dataset(np.arange(20)).load_state_dict(dict(state, permutation=np.arange(21)))
    with pytest.raises(ValueError, match=r'position must be an integer in \[0, 20\)'):
        Dataset(np.arange(20)).load_state_dict(dict(state, position=20))
    with pytest.raises(ValueError, match="key 'rng.state.state' does not match"):
        Dataset(np.arange(20)).load_state_dict(dict(state, **{'rng.state.state': 'x'}))
    with pytest.raises(TypeError, match='state must be a mapping; got list'):
        Dataset(np.arange(20)).load_state_dict([])
    # every refusal names the dataset it was meant for
    with pytest.raises(ValueError, match=r"^Dataset 'valid': load_state_dict\(state\): "
                                         r'n_samples must be 21 for this dataset; got 20$'):
        Dataset(np.arange(21), name='valid').load_state_dict(state)
    with pytest.raises(ValueError, match=r"^Dataset 'valid': load_state_dict\(state\): "
                                         r"key 'rng.state.state' does not match"):
        Dataset(np.arange(20), name='valid').load_state_dict(
            dict(state, **{'rng.state.state': 'x'}))
    with pytest.raises(TypeError, match=r"^Dataset 'valid': load_state_dict\(state\): state "
                                        r'must be a mapping; got list$'):
        Dataset(np.arange(20), name='valid').load_state_dict([])
    # a refused state leaves the dataset untouched
    target = Dataset(np.arange(20), batch_size=3, rng=1)
    with pytest.raises(ValueError):
        target.load_state_dict(dict(state, permutation=np.arange(21)))
    assert_same_batches(take(target, 10), take(Dataset(np.arange(20), batch_size=3, rng=1), 10))


# ---------------------------------------------------------------- misc


def test_properties_and_repr():
    data = Dataset([np.zeros((10, 2)), np.zeros(10)], name='train', batch_size=4,
                   rng=0, shuffle=False)
    assert (data.name, data.batch_size, data.iteration_size, data.axis) == ('train', 4, 3, 0)
    assert (data.shuffle, data.n_samples, data.batches_per_pass, len(data)) == (False, 10, 3, 10)
    assert repr(data) == ("Dataset('train', n_samples=10, batch_size=4, batches_per_pass=3, "
                          "iteration_size=3, shuffle=False)")
    assert Dataset(np.zeros(5)).name == 'dataset'
    whole = Dataset(np.zeros(5), batch_size=0)
    assert whole.batches_per_pass == 1 and whole.iteration_size == 1
