"""Checkpoint writers to be killed with SIGKILL (for test_checkpoint_kill.py; the
older random-kill test in test_checkpoint.py uses ``write`` only).

Usage: ``python _checkpoint_writer.py PATH [ROWS COLS]``: writers use
``make_optimizer((ROWS, COLS))`` (default :data:`SHAPE`). The process imports
everything once, prints ``ready``, then serves commands read from stdin, one a line,
answering on stdout:

``write``
    Fork a free-running writer and print its pid. The writer builds the
    optimizer of :func:`make_optimizer`, resumes from ``PATH`` if it exists,
    then alternates one update and ``save_state(PATH)`` until it is killed.
``stop POINT [OFFSET]``
    Fork a writer that resumes from ``PATH`` (if it exists), makes one update
    and saves it, but halts at ``POINT`` of that save. Print its pid at once,
    then, once it has halted there, ``stopped POINT UPDATES`` (``UPDATES``:
    the update count it was saving). If the save went by without passing
    ``POINT`` the second line is ``missed POINT``; if the writer died,
    ``died`` (its traceback is on stderr).
``reap PID``
    Wait for that writer to end and print its raw wait status.

The stop points, in the order a save passes them (``save_npz`` in
npdownhill/checkpoint.py: ``np.savez`` into ``PATH.tmp``, flush, ``os.fsync``,
``os.replace``, ``os.fsync`` of the folder):

``data OFFSET``
    While the archive is written into ``PATH.tmp``: at the first write that
    would make the file longer than ``OFFSET`` bytes, the writer writes the
    part up to ``OFFSET``, flushes it to the OS and halts, so the temporary
    file holds exactly ``OFFSET`` bytes (``data 0``: it was just created).
``before-fsync``
    All the data written and flushed; the file's ``os.fsync`` not yet called.
``before-replace``
    After that fsync, before ``os.replace(PATH.tmp, PATH)``.
``after-replace``
    After the replace, before the ``os.fsync`` of the folder.
``saved``
    ``save_state`` has returned.

How a writer halts at a point: after its update, and only in its own memory
(it is a forked child; neither the server nor the test is touched), it
replaces ``np.savez`` by a wrapper that hands the real one a file object
which counts, and ``os.fsync`` / ``os.replace`` by wrappers that halt before
or after the real call. The library's own code runs unchanged up to the
point. Halting means: write the ``stopped`` line into a pipe the server
relays to the test, then block reading the *lifeline*, a pipe whose write
end only the server holds. The test, told that the writer sits at the
point, kills it there: where the kill lands is certain, not a matter of
timing.

No writer outlives the server: when the server's stdin closes it kills and
reaps the writers it has not reaped yet, and should the server die anyhow,
the lifeline reaches end-of-file, on which halted writers exit and
free-running ones exit before their next update.

Forking from an already-imported process makes each writer start in a few
milliseconds instead of the half second that importing NumPy and autograd
costs, so the test can afford many kills.
"""

import os
import select
import signal
import stat
import sys
import traceback

import autograd.numpy as anp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import npdownhill as dh  # noqa: E402

SHAPE = (200, 250)
POINTS = ("data", "before-fsync", "before-replace", "after-replace", "saved")
LIFELINE_GONE = 3          # exit status of a writer whose server has gone


def make_optimizer(shape=SHAPE):
    """The optimizer the writers use; the test builds the same one to load the file.

    The default shape makes a checkpoint of 1.2 MB, a few milliseconds to write.
    """
    params = {"W": np.zeros(shape), "b": np.zeros(shape[1])}
    target = np.linspace(-1.0, 1.0, shape[0] * shape[1]).reshape(shape)

    def loss(p):
        return anp.mean((p["W"] - target) ** 2) + anp.mean(p["b"] ** 2)

    return dh.Adam(loss, params, learning_rate=1e-3, rng=0)


def resume(path, shape):
    opt = make_optimizer(shape)
    if os.path.exists(path):
        opt.load_state(path)
    return opt


# -- the writers (forked children) --------------------------------------------

def write_forever(path, shape, lifeline, report):
    """Alternate one update and one save until killed (or until the server is gone)."""
    os.close(report)                          # a free-running writer reports nothing
    opt = resume(path, shape)
    while not select.select([lifeline], [], [], 0)[0]:   # readable only once the server is gone
        opt.step()
        opt.save_state(path)
    os._exit(LIFELINE_GONE)


def write_and_stop(path, shape, point, offset, lifeline, report):
    """Make one update and save it, halting at ``point`` of the save."""
    opt = resume(path, shape)
    opt.step()
    message = f"stopped {point} {opt.updates}\n".encode()

    def halt():
        os.write(report, message)
        os.read(lifeline, 1)                  # returns only at end-of-file
        os._exit(LIFELINE_GONE)

    _arm(point, offset, halt)
    opt.save_state(path)
    if point == "saved":
        halt()
    os.write(report, f"missed {point}\n".encode())


class _HaltingFile:
    """The file ``np.savez`` writes to; halts before the file grows past ``offset`` bytes.

    Writes that stay within ``offset`` (zipfile also seeks back to rewrite
    each member's header) pass through unchanged.
    """

    def __init__(self, file, offset, halt):
        self._file, self._offset, self._halt = file, offset, halt

    def write(self, data):
        room = self._offset - self._file.tell()
        if memoryview(data).nbytes > room:
            self._file.write(bytes(data)[:max(room, 0)])
            self._file.flush()
            self._halt()
        return self._file.write(data)

    def __getattr__(self, name):              # tell, seek, flush, ...
        return getattr(self._file, name)


def _arm(point, offset, halt):
    """Patch this process's ``np.savez``, ``os.fsync`` or ``os.replace`` to halt at ``point``."""
    real_savez, real_fsync, real_replace = np.savez, os.fsync, os.replace
    if point == "data":
        def savez(file, *args, **kwargs):
            return real_savez(_HaltingFile(file, offset, halt), *args, **kwargs)
        np.savez = savez
    elif point == "before-fsync":
        def fsync(fd):
            if not stat.S_ISDIR(os.fstat(fd).st_mode):   # the file's, not the folder's
                halt()
            real_fsync(fd)
        os.fsync = fsync
    elif point == "before-replace":
        def replace(*args, **kwargs):
            halt()
        os.replace = replace
    elif point == "after-replace":
        def replace(*args, **kwargs):
            real_replace(*args, **kwargs)
            halt()
        os.replace = replace


# -- the server -------------------------------------------------------------

def _fork(run, *args, lifeline, lifeline_end):
    """Fork a writer running ``run(*args, lifeline, report_pipe)``; return (pid, report end)."""
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:                              # the writer: never returns to the server loop
        try:
            os.close(report_r)
            os.close(lifeline_end)            # only the server holds the lifeline
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, 0)               # keep off the server's pipes to the test
            os.dup2(devnull, 1)
            run(*args, lifeline, report_w)
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(1)
    os.close(report_w)
    return pid, report_r


def _read_report(fd):
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 4096)
        if not chunk:                         # the writer died before reporting
            break
        data += chunk
    os.close(fd)
    return data.decode().strip() if data.endswith(b"\n") else "died"


def main():
    path = sys.argv[1]
    shape = tuple(int(n) for n in sys.argv[2:4]) or SHAPE
    lifeline, lifeline_end = os.pipe()
    fork = lambda *args: _fork(*args, lifeline=lifeline, lifeline_end=lifeline_end)  # noqa: E731
    writers = set()
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            command = line.split()
            if command == ["write"]:
                pid, report = fork(write_forever, path, shape)
                os.close(report)
                writers.add(pid)
                print(pid, flush=True)
            elif command and command[0] == "stop":
                point = command[1]
                assert point in POINTS, point
                offset = int(command[2]) if point == "data" else None
                pid, report = fork(write_and_stop, path, shape, point, offset)
                writers.add(pid)
                print(pid, flush=True)
                print(_read_report(report), flush=True)
            elif command and command[0] == "reap":
                pid = int(command[1])
                _, status = os.waitpid(pid, 0)
                writers.discard(pid)
                print(status, flush=True)
    finally:
        for pid in writers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
