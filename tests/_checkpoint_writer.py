"""Checkpoint writers to be killed at random moments (for test_checkpoint.py).

Usage: ``python _checkpoint_writer.py PATH``. The process imports everything
once, prints ``ready``, then serves commands read from stdin, one a line:

``write``
    Fork a fresh writer and print its pid. The writer builds an Adam
    optimizer on a problem large enough that a checkpoint takes a few
    milliseconds to write, resumes from ``PATH`` if it exists, then
    alternates one update and ``save_state(PATH)`` until it is killed.
``reap PID``
    Wait for that writer to end and print its raw wait status.

Forking from an already-imported process makes each writer start in a few
milliseconds instead of the half second that importing NumPy and autograd
costs, so the test can afford many kills.
"""

import os
import sys

import autograd.numpy as anp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import npdownhill as dh  # noqa: E402

SHAPE = (200, 250)


def make_optimizer():
    """The optimizer the writers use; the parent builds the same one to load the file."""
    params = {"W": np.zeros(SHAPE), "b": np.zeros(SHAPE[1])}
    target = np.linspace(-1.0, 1.0, SHAPE[0] * SHAPE[1]).reshape(SHAPE)

    def loss(p):
        return anp.mean((p["W"] - target) ** 2) + anp.mean(p["b"] ** 2)

    return dh.Adam(loss, params, learning_rate=1e-3, rng=0)


def write_forever(path):
    opt = make_optimizer()
    if os.path.exists(path):
        opt.load_state(path)
    while True:
        opt.step()
        opt.save_state(path)


def main():
    path = sys.argv[1]
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.split()
        if command == ["write"]:
            pid = os.fork()
            if pid == 0:               # the writer: never returns to this loop
                try:
                    write_forever(path)
                finally:
                    os._exit(1)
            print(pid, flush=True)
        elif command and command[0] == "reap":
            _, status = os.waitpid(int(command[1]), 0)
            print(status, flush=True)


if __name__ == "__main__":
    main()
