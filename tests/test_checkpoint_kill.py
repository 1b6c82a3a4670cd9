"""SIGKILL at every stage of ``save_state``: the checkpoint always survives.

``save_state(path)`` writes ``path.tmp``, flushes and fsyncs it, renames it
over ``path`` with ``os.replace``, then fsyncs the folder. What is proven here,
for a process killed with SIGKILL at any stage of that:

* ``path`` always loads into a fresh optimizer, and never holds an older
  state than before;
* killed before the replace, ``path`` is untouched, bit for bit, and the only
  other file in the folder is ``path.tmp``; killed after it, ``path`` holds
  the new state and ``path.tmp`` is gone;
* a stale ``path.tmp`` left by a killed writer does not disturb the next one
  (it truncates the file and writes over it).

How the kills are placed: ``tests/_checkpoint_writer.py`` is a fork server.
On ``stop POINT`` it forks a writer that resumes from ``path``, makes one
update and saves it, halting at ``POINT`` of the save (its module docstring
lists the points and how it halts there); the server answers when the writer
sits there, and only then does the test SIGKILL it. So every kill lands
exactly where it was meant to, on a busy machine as on an idle one: no
sleeps, no luck. Reads from the server have a generous timeout, only so a
hang fails the test instead of blocking it.

Stages covered (``test_sigkill_at_every_stage_of_a_save``): nine offsets into
the data, from an empty ``path.tmp`` to all but its last byte, chosen from the
archive's zip layout; after the data, before the fsync; before the replace;
after the replace, before the folder's fsync; after ``save_state`` returned.
Each stage is run once from a clean folder and once over a stale, complete
``path.tmp``, plus a seeded random choice of stages and offsets, and the
very first save is killed before there is any ``path``.

``test_sigkill_at_random_moments`` kills free-running writers after seeded
random delays and checks only the invariants; it claims nothing about where
the kills land.
"""

import os
import random
import select
import signal
import struct
import subprocess
import sys
import time
import zipfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _checkpoint_writer as W  # noqa: E402

WRITER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_checkpoint_writer.py")
ANSWER_TIMEOUT = 60.0             # seconds; a safety net against hangs, never reached normally

NAME, TMP = "ckpt.npz", "ckpt.npz.tmp"
BEFORE_REPLACE = ("data", "before-fsync", "before-replace")
AFTER_REPLACE = ("after-replace", "saved")
SMALL = (20, 25)                  # a 26 kB checkpoint: the stops need no big file, and are quick


class WriterServer:
    """The test's end of ``_checkpoint_writer.py``: commands, answers, cleanup."""

    def __init__(self, path, shape, log_path):
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        self.shape, self.log_path = shape, log_path
        self._log = open(log_path, "w")   # a file: a full stderr pipe could block the server
        self.proc = subprocess.Popen([sys.executable, WRITER_SCRIPT, str(path), *map(str, shape)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, bufsize=0, env=env)
        self._buffer = b""
        self.unreaped = set()             # writers the server has not reaped yet
        line = self._readline()
        assert line == "ready", f"the writer server did not start: {line!r}"

    def _fail(self, what):
        with open(self.log_path) as log:
            raise AssertionError(f"{what}; the server's stderr ends with:\n{log.read()[-3000:]}")

    def _readline(self):
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                self._fail(f"the writer server gave no answer within {ANSWER_TIMEOUT} s")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                self._fail("the writer server died")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def _ask(self, command):
        self.proc.stdin.write(command.encode() + b"\n")
        return self._readline()

    def _writer(self, command):
        pid = int(self._ask(command))
        self.unreaped.add(pid)
        return pid

    def free_writer(self):
        """Start a writer that saves in a loop; return its pid."""
        return self._writer("write")

    def stopped_writer(self, point, offset=None):
        """Start a writer that halts at ``point`` of a save; return (pid, update count
        it was saving) once it sits there."""
        pid = self._writer(f"stop {point}" + ("" if offset is None else f" {offset}"))
        report = self._readline().split()
        if report[:2] != ["stopped", point]:
            self._fail(f"the writer did not halt at {point} {offset}: {' '.join(report)!r}")
        return pid, int(report[2])

    def kill(self, pid):
        """SIGKILL a writer and check that SIGKILL, nothing else, ended it."""
        os.kill(pid, signal.SIGKILL)
        status = int(self._ask(f"reap {pid}"))
        self.unreaped.discard(pid)
        if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
            self._fail(f"writer {pid} ended by itself (wait status {status})")

    def close(self):
        """End every writer and the server, whatever state they are in."""
        if self.proc.poll() is None:      # its unreaped writers' pids cannot have been reused
            for pid in self.unreaped:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc.stdin.close()           # the server kills and reaps its writers, then ends
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()              # its writers then see their lifeline close and exit
            self.proc.wait()
        self.proc.stdout.close()
        self._log.close()


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "checkpoints"
    path.mkdir()
    return path


@pytest.fixture
def start_server(folder, tmp_path):
    """``start_server(shape)``: a writer server for ``folder/ckpt.npz``, closed at the end."""
    servers = []

    def start(shape):
        servers.append(WriterServer(folder / NAME, shape, tmp_path / "server.err"))
        return servers[-1]

    try:
        yield start
    finally:
        for server in servers:
            server.close()


def load(path, shape):
    opt = W.make_optimizer(shape)
    opt.load_state(path)
    return opt


def files(folder):
    return sorted(os.listdir(folder))


def data_offsets(path):
    """Offsets into the archive worth stopping at, from a complete checkpoint's zip layout."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        f.seek(-22, os.SEEK_END)
        signature, *_, directory_start, comment = struct.unpack("<4s4H2LH", f.read())
    assert signature == b"PK\x05\x06" and comment == 0   # a plain end record, last in the file
    with zipfile.ZipFile(path) as archive:
        members = sorted(archive.infolist(), key=lambda m: m.header_offset)
    largest = max(members, key=lambda m: m.file_size)
    offsets = [0,                                          # just created, empty
               1,
               10,                                         # inside the first member's header
               members[1].header_offset,                   # one member complete, no more
               largest.header_offset + largest.file_size // 2,   # half-way through an array
               size // 2,
               directory_start,                            # every member, no directory
               size - 22,                                  # all but the end record
               size - 1]                                   # all but the last byte
    assert offsets == sorted(offsets) and offsets[-1] < size
    return offsets


def kill_at(server, folder, point, offset=None, *, updates):
    """Halt a writer at ``point`` of a save, SIGKILL it there, check the folder.

    ``updates``: the update count the checkpoint holds (None: no checkpoint
    yet). Returns the count it holds after the kill.
    """
    path, tmp, shape = folder / NAME, folder / TMP, server.shape
    assert path.exists() == (updates is not None)
    old = path.read_bytes() if path.exists() else None
    pid, written = server.stopped_writer(point, offset)
    assert written == (updates or 0) + 1, "the writer did not resume from the checkpoint"
    server.kill(pid)

    if point in BEFORE_REPLACE:
        if old is None:                   # the very first save: still no checkpoint
            assert files(folder) == [TMP]
            with pytest.raises(FileNotFoundError):
                load(path, shape)
        else:
            assert files(folder) == [NAME, TMP]
            assert path.read_bytes() == old, "the checkpoint changed before the replace"
            assert load(path, shape).updates == updates
        if point == "data":               # a torn archive, stale bytes truncated away
            assert os.path.getsize(tmp) == offset
            with pytest.raises(ValueError):
                load(tmp, shape)
        else:                             # complete: only the rename was missing
            assert load(tmp, shape).updates == written
        return updates

    assert point in AFTER_REPLACE
    assert files(folder) == [NAME], "the temporary file outlived the replace"
    assert load(path, shape).updates == written
    return written


def test_sigkill_at_every_stage_of_a_save(start_server, folder):
    server = start_server(SMALL)
    path = folder / NAME

    # the very first save, killed before its replace; then one that completes
    assert kill_at(server, folder, "before-replace", updates=None) is None
    assert kill_at(server, folder, "saved", updates=None) == 1

    stages = ([("data", offset) for offset in data_offsets(path)]
              + [("before-fsync", None), ("before-replace", None), ("after-replace", None),
                 ("saved", None)])
    plan = []
    for stage in stages:
        plan += [("saved", None), stage]              # from a clean folder
    for stage in stages:
        plan += [("before-replace", None), stage]     # over a stale, complete tmp file
    rng = random.Random(20240607)
    size = os.path.getsize(path)
    for _ in range(8):                                # and a few chosen at random
        point = rng.choice(W.POINTS)
        plan.append((point, rng.randrange(size) if point == "data" else None))

    updates = 1
    for i, (point, offset) in enumerate(plan):
        try:
            now = kill_at(server, folder, point, offset, updates=updates)
        except AssertionError as err:
            where = point if offset is None else f"{point} {offset}"
            raise AssertionError(f"round {i}, killed at {where}: {err}") from err
        assert now >= updates, f"round {i}: the checkpoint went back from {updates} to {now}"
        updates = now
    # one update per completed save: 1, then the post-replace stages' rounds
    assert updates == 1 + sum(point in AFTER_REPLACE for point, _ in plan)

    # a normal save afterwards leaves no stray file
    load(path, SMALL).save_state(path)
    assert files(folder) == [NAME]


def test_sigkill_at_random_moments(start_server, folder):
    """Free-running writers killed after seeded random delays: wherever the kill
    lands (in an update, a resume, a save), the invariants hold."""
    server = start_server(W.SHAPE)       # 1.2 MB: a save takes a few milliseconds
    path = folder / NAME
    W.make_optimizer().save_state(path)
    rng = random.Random(4321)
    updates = 0
    for i in range(12):
        pid = server.free_writer()
        time.sleep(rng.uniform(0.0, 0.03))
        server.kill(pid)
        assert files(folder) in ([NAME], [NAME, TMP]), f"round {i}: {files(folder)}"
        now = load(path, W.SHAPE).updates
        assert now >= updates, f"round {i}: the checkpoint went back from {updates} to {now}"
        updates = now
    load(path, W.SHAPE).save_state(path)
    assert files(folder) == [NAME]
