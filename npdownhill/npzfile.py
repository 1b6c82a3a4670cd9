"""Atomic ``.npz`` files of plain arrays that are never unpickled.

:func:`save_npz` writes a dict of arrays, numbers and strings into
``<path>.tmp`` in the same folder, flushes and ``fsync``-s it, then renames it
over ``path`` with ``os.replace`` and ``fsync``-s the folder: a crash at any
instant leaves the old file or the new one, plus at most that one temporary
file. :func:`load_npz` reads with ``allow_pickle=False`` and refuses, with a
``ValueError``, anything it cannot read as plain arrays or that does not carry
npdownhill's :data:`FORMAT` marker under the key ``"format"``.
"""

import os
import zipfile

import numpy as np

__all__ = ["FORMAT", "save_npz", "load_npz"]

#: The marker every npdownhill state file carries under the key ``"format"``.
FORMAT = "npdownhill-optimizer-state"


def save_npz(path, state):
    """Write a dict of arrays / numbers / strings to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination. ``<path>.tmp`` in the same folder is used on the way.
    state : dict
        Values convertible by ``np.asarray`` to non-object arrays.

    Raises
    ------
    TypeError
        A value that would need pickling.
    """
    path = os.fspath(path)
    arrays = {}
    for key, value in state.items():
        array = np.asarray(value)
        if array.dtype.kind == "O":
            raise TypeError(f"save_state: {key!r} holds a Python object ({type(value).__name__}); "
                            "only arrays, numbers and strings can be saved")
        arrays[key] = array
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_npz(path):
    """Read an ``.npz`` written by :func:`save_npz`, without ever unpickling.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict of ndarray

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The file is truncated or corrupt, is not an ``.npz`` archive, holds
        pickled objects, or is not an npdownhill state.
    """
    path = os.fspath(path)
    where = f"load_state({path!r})"
    if not os.path.exists(path):
        raise FileNotFoundError(f"{where}: no such file")
    unreadable = (f"{where}: cannot read the file: it is truncated or corrupt, not an .npz "
                  "archive, or holds pickled objects, which are refused")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, TypeError,
            NotImplementedError) as err:   # NotImplementedError: a damaged zip version field
        raise ValueError(f"{unreadable} ({err})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{where}: not an npdownhill state file (a plain .npy array)")
    try:
        with archive:
            state = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, TypeError,
            MemoryError, NotImplementedError) as err:
        # MemoryError: a damaged header claiming a huge shape; NotImplementedError: a
        # damaged zip version or compression field in a member's header
        raise ValueError(f"{unreadable} ({err})") from None
    for key, value in state.items():
        if not isinstance(value, np.ndarray):   # a member without an .npy header comes as bytes
            raise ValueError(f"{where}: not an npdownhill state file (member {key!r} is not "
                             "an array)")
    fmt = state.get("format")
    if fmt is None or fmt.dtype.kind != "U" or str(fmt) != FORMAT:
        raise ValueError(f"{where}: not an npdownhill state file (no {FORMAT!r} marker)")
    return state
