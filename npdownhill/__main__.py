"""``python -m npdownhill``: fit the quick start's matrix factorization and print the result.

A data matrix ``y`` (A x B) is approximated by a product ``u @ v`` of rank K
under a regularized squared error (downhill's README example, written with
``autograd.numpy``)::

    loss(u, v) = mean((y - u v)^2) + mean(|u|) + mean(v^2)

Run ``python -m npdownhill --help`` for the options.
"""

import argparse
import logging
import os
import sys

import autograd.numpy as anp
import numpy as np

from . import algorithms, build, plot
from .progress import no_hint, show_progress
from .registry import lookup


def factorization_problem(rows=20, cols=5, rank=3, seed=0):
    """The demo problem: data, initial params, loss and monitors.

    Parameters
    ----------
    rows, cols, rank : int
        ``y`` is ``rows x cols``; ``u`` is ``rows x rank``, ``v`` is ``rank x cols``.
    seed : int
        Seed of the data and the initial parameters.

    Returns
    -------
    y : ndarray
        The data matrix (a low-rank product plus noise), float32.
    params : dict
        ``{"u": ..., "v": ...}``, float32 random starting points.
    loss : callable
        ``loss(params, z)``.
    monitors : list of (str, callable)
        ``err`` (the mean squared error alone) and the fractions of small
        entries of ``u`` and ``v``.
    """
    rng = np.random.default_rng(seed)
    y = (rng.normal(size=(rows, rank)) @ rng.normal(size=(rank, cols))
         + rng.normal(size=(rows, cols))).astype(np.float32)
    params = {"u": rng.normal(size=(rows, rank)).astype(np.float32),
              "v": rng.normal(size=(rank, cols)).astype(np.float32)}

    def err(p, z):
        return anp.mean((z - anp.dot(p["u"], p["v"])) ** 2)

    def loss(p, z):
        return err(p, z) + anp.mean(anp.abs(p["u"])) + anp.mean(p["v"] ** 2)

    monitors = [("err", err),
                ("|u|<0.1", lambda p, z: np.mean(np.abs(p["u"]) < 0.1)),
                ("|v|<0.1", lambda p, z: np.mean(np.abs(p["v"]) < 0.1))]
    return y, params, loss, monitors


def _program_name():
    """``npdownhill-demo`` when run through that script, else ``python -m npdownhill``."""
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return script if script.startswith("npdownhill-demo") else "python -m npdownhill"


def main(argv=None):
    """Entry point of ``python -m npdownhill``; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog=_program_name(),
        description="Fit a regularized rank-3 factorization of a 20x5 matrix and print the "
                    "result: a demo of npdownhill.")
    parser.add_argument("--algo", default="rmsprop", type=str.lower, choices=algorithms(),
                        metavar="NAME", help="algorithm: " + ", ".join(algorithms())
                        + " (default: rmsprop)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="learning rate (default: the algorithm's, or 0.01 for rmsprop)")
    parser.add_argument("--max-epochs", type=int, default=2000, help="epochs (default: 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data and init (default: 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress at all")
    parser.add_argument("--log", action="store_true",
                        help="log every epoch and validation (downhill's format)")
    parser.add_argument("--plot", metavar="FILE", default=None,
                        help="save a picture of the run (learning curves) to FILE, e.g. "
                             "run.png (needs matplotlib)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO if args.log else logging.WARNING,
                        format="%(message)s", stream=sys.stderr)
    if args.plot is not None:
        plot_module()                  # fail now, not after the fit, if matplotlib is missing
    y, params, loss, monitors = factorization_problem(seed=args.seed)
    hyper = {"rng": args.seed}
    cls = lookup(args.algo, "--algo")
    if not cls.full_batch:
        hyper["max_gradient_elem"] = 1.0
    if args.learning_rate is not None:
        hyper["learning_rate"] = args.learning_rate
    elif args.algo == "rmsprop":
        hyper["learning_rate"] = 0.01
    opt = build(args.algo, loss, params, monitors=monitors, **hyper)
    before = opt.evaluate([y])
    # the live view: a progress bar in a terminal (with tqdm), else a line every 100 epochs
    bar = not args.quiet and not args.log and show_progress(None)
    report = None if (args.quiet or args.log or bar) else _every(100)
    no_hint()                      # the demo shows its own progress (or was asked not to)
    result = opt.minimize([y], batch_size=0, max_epochs=args.max_epochs, validate_every=10,
                          patience=20, progress=bar, callback=report)
    after = opt.evaluate([y])      # the params now hold the best values found
    print(f"npdownhill demo: {type(opt).__name__} on a regularized rank-3 factorization "
          f"of a 20x5 matrix")
    print(f"  epochs run          {result.epochs}  ({result.updates} updates, "
          f"stopped by {result.stop}; best at epoch {result.best_epoch})")
    print(f"  loss                {before['loss']:.6f} -> {after['loss']:.6f}")
    print(f"  squared error       {before['err']:.6f} -> {after['err']:.6f}")
    print(f"  |u| < 0.1           {after['|u|<0.1']:.1%} of entries")
    print(f"  |v| < 0.1           {after['|v|<0.1']:.1%} of entries")
    print(f"  params u {params['u'].shape} {params['u'].dtype}, v {params['v'].shape} "
          f"{params['v'].dtype}: hold the best parameters found")
    if args.plot is not None:
        ax = plot_module().history(result, keys=("train.loss", "valid.loss", "train.err"))
        ax.set_title(f"{type(opt).__name__}: {result.message.split(';')[0]}")
        ax.figure.savefig(args.plot, dpi=120, bbox_inches="tight")
        print(f"  picture of the run  {args.plot}")
    return 0


def _every(n):
    """A callback printing one short line every ``n`` epochs (the demo's live view)."""
    def report(info):
        if info.epoch % n == 0:
            best = info.optimizer.best_loss
            print(f"epoch {info.epoch:5d}  train loss {info.train['loss']:.6f}  best validation "
                  f"{best:.6f}", file=sys.stderr)
    return report


def plot_module():
    """:mod:`npdownhill.plot`, checked to have matplotlib (a clear ImportError if not)."""
    plot._pyplot()
    return plot


if __name__ == "__main__":
    sys.exit(main())
