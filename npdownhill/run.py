"""A training run: epochs, validation, patience, best parameters, history and clean-up.

A :class:`Run` drives an optimizer (the engine, which only steps) over a
training and a validation :class:`~npdownhill.Dataset`. Its counters live in
one typed :class:`~npdownhill.runstate.RunState`; its best parameters and
history belong to it alone. :meth:`Run.epochs` is the generator behind
``iterate``:

* it validates the start point (epoch 0), then every ``validate_every``
  epochs and once more at the end; every validation scores the same samples
  (the validation set is rewound to where the run found it);
* ``patience`` failed validations in a row are tolerated and the next one
  ends the run; a validation improves on the best when its ``monitor``
  (``'loss'`` by default) gives ``value < best - |best| * min_improvement``
  (``mode='min'``) or ``value > best + |best| * min_improvement``
  (``mode='max'``); ``reduce_on_plateau`` schedules are told the same value
  (negated for 'max', since they count lower as better);
* every way a run ends -- its limits, patience, the callback, Ctrl-C, the
  caller leaving the loop, a non-finite value, any exception -- goes through
  one clean-up, :meth:`Run._finish`, which validates the current parameters
  if they were not just validated, writes this run's best parameters back
  into the caller's arrays and logs why the run ended (a WARNING when no
  epoch improved on the start point).

Validation, the best parameters and the end of a run use the optimizer's
*evaluation params* (:meth:`Optimizer.evaluation_params
<npdownhill.Optimizer.evaluation_params>`): the params themselves for most
rules; lookahead's slow weights, the average, or the schedule-free rules'
``x`` otherwise. They are swapped into the caller's arrays for each
validation and the trained params put back after.

A run left suspended (an ``iterate`` generator neither exhausted nor
closed) is ended by the next run of the same optimizer before it begins, so
one run's clean-up never writes into another's.

Progress goes to the :mod:`logging` logger ``"npdownhill"``, one line per
epoch in downhill's format (``*`` marks an improvement)::

    SGD 12 loss=0.123456 err=0.010000
    validation 20 loss=0.120000 err=0.010000 *
"""

import logging
import math
import os
import sys
import time

import numpy as np

from . import checkpoint
from .errors import NonFiniteError
from .interrupt import DeferredInterrupt
from .progress import Bar, hint_once, number, show_progress
from .result import EpochInfo, RunResult, history_arrays
from .runstate import EpochProgress, RunState, record

__all__ = ["Run", "measure", "batch_weight"]

logger = logging.getLogger("npdownhill")

_REASONS = {
    "max_epochs": "it reached max_epochs",
    "max_updates": "it reached max_updates",
    "patience": "the validation loss stopped improving (patience ran out)",
    "callback": "the callback raised StopIteration",
    "interrupted": "it was interrupted (Ctrl-C)",
    "nonfinite": "a loss or gradient was not finite",
    "gtol": "the gradient became small enough (gtol)",
    "ftol": "the loss stopped decreasing (ftol)",
    "linesearch": "no step along the search direction decreased the loss",
    "closed": "the caller left the loop",
    "error": "an exception was raised",
}


def _fmt(value):
    if isinstance(value, (int, np.integer)):
        return str(value)
    a = abs(value)
    return f"{value:.6f}" if a == 0 or 1e-4 <= a < 1e9 or not math.isfinite(a) else f"{value:.6e}"


def format_monitors(monitors):
    """``"loss=0.123456 err=0.010000"``: monitors as downhill logged them."""
    return " ".join(f"{k}={_fmt(v)}" for k, v in monitors.items())


def batch_weight(dataset, batch):
    """The weight of a batch in epoch means: its number of samples (1 without data)."""
    if not batch:
        return 1.0
    axis = getattr(dataset, "axis", 0) if dataset is not None else 0
    shape = np.shape(batch[0])
    return float(shape[axis]) if len(shape) > axis else 1.0


def _batch_weigher(dataset):
    """``batch_weight(dataset, batch)`` as a function of the batch alone, for the training loop."""
    axis = getattr(dataset, "axis", 0) if dataset is not None else 0

    def weigh(batch):
        if not batch:
            return 1.0
        first = batch[0]
        shape = first.shape if first.__class__ is np.ndarray else np.shape(first)
        return float(shape[axis]) if len(shape) > axis else 1.0

    return weigh


def measure(opt, dataset):
    """Batch-size-weighted means of the loss and monitors over one iteration of ``dataset``.

    Parameters
    ----------
    opt : Optimizer
    dataset : Dataset or None
        ``None`` evaluates ``loss(params)`` once.

    Returns
    -------
    dict
        ``'loss'`` first, then each monitor. Nothing is updated.
    """
    sums, weight = {}, 0.0
    for batch in ([()] if dataset is None else dataset):
        w = batch_weight(dataset, batch)
        for k, v in opt.score(*batch).items():
            sums[k] = sums.get(k, 0.0) + w * v
        weight += w
    return {k: (v / weight if weight else math.nan) for k, v in sums.items()}


class Run:
    """One training run of an optimizer over datasets.

    Made by :func:`npdownhill.driver.iterate`; the optimizer keeps the latest
    one as ``opt.run``.

    Parameters
    ----------
    optimizer : Optimizer
    train_set, valid_set : Dataset or None
        ``train_set=None``: the loss takes only the params.
    options : dict
        Every run option (see :data:`npdownhill.options.RUN_OPTIONS`), checked.
    call : str
        The call that made the run, for messages.

    Attributes
    ----------
    state : RunState
        The counters, the best and latest validation and the stop reason.
    best : ndarray or None
        Flat copy of the best parameters (in the optimizer's layout).
    history : list of dict
        One record per epoch, from epoch 0 (the start point).
    finished : bool
        Whether the run has ended and cleaned up.
    """

    def __init__(self, optimizer, train_set, valid_set, options, call):
        self.optimizer = optimizer
        self.train_set = train_set
        self.valid_set = valid_set
        self.options = options
        self.call = call
        self.state = RunState(monitor=options["monitor"], mode=options["mode"],
                              best_value=math.inf if options["mode"] == "min" else -math.inf)
        self.given = frozenset()      # the run options given explicitly (set by the driver)
        self.best = None
        self.history = []
        self.finished = False
        self.generator = None         # weakref to the generator running it (see driver.iterate)
        self._begun = False
        self._fresh = False           # the current params were just validated
        self._final_saved = False     # the run's final state is in the checkpoint
        self._started = time.perf_counter()
        self._valid_snapshot = None   # the validation set's position, rewound to each time
        self._bar = Bar(False, None, "")
        self._trust_converged = False  # opt.converged speaks for this run (after a step of it)
        if train_set is None:
            self.n_batches = options["train_batches"] or 1
        else:
            self.n_batches = train_set.iteration_size

    @property
    def name(self):
        """The optimizer's class name, as in the log lines."""
        return type(self.optimizer).__name__

    # -- beginning --------------------------------------------------------
    def _begin(self):
        """End an earlier suspended run, resume from the checkpoint if there is one."""
        opt = self.optimizer
        previous = opt.run
        if previous is not None and previous is not self:
            previous._supersede(self.call)
        path = self.options["checkpoint"]
        if path is not None and os.path.exists(path):
            checkpoint.resume(self, path, f"{self.call}(checkpoint={path!r})",
                              self.options["resume_changes"])
            self.state.stop = ""      # a finished run can be extended: the options decide
            self._trust_converged = True   # a saved convergence still holds at these params
            logger.info("%s: resumed from %s at epoch %d (%d updates)", self.name, path,
                        self.state.epoch, opt.updates)
        opt.run = self
        self._begun = True
        self._started = time.perf_counter() - self.state.elapsed
        shown = show_progress(self.options["progress"])
        if self.options["progress"] is None:      # progress=False: the caller chose silence
            hint_once(shown)
        self._bar = Bar(shown, self.options["max_epochs"], self.name, "epoch", self.state.epoch)
        valid = self.valid_set
        if valid is not None and valid.n_samples is None:
            logger.warning("%s: the validation data come from a callable, so each validation "
                           "may score different samples; patience and the best parameters "
                           "then compare unlike numbers", self.name)
        elif valid is not None:
            self._valid_snapshot = valid._snapshot()

    def _supersede(self, call):
        """End this run (left suspended by its caller) before a newer one begins."""
        generator = self.generator() if self.generator is not None else None
        if self.finished or generator is None:
            return
        if generator.gi_running:
            raise RuntimeError(f"{call}: another run of this optimizer is executing (was "
                               "iterate or minimize called from its callback?); a run cannot "
                               "start inside another")
        logger.warning("%s: an earlier run of this optimizer was left suspended at epoch %d (its "
                       "iterate() generator was neither exhausted nor closed); it is ended now, "
                       "putting its best parameters back, before the new run begins. Call "
                       ".close() on an iterate() generator you stop using", call, self.state.epoch)
        generator.close()

    def _now(self):
        return time.perf_counter() - self._started

    # -- the loop ---------------------------------------------------------
    def epochs(self):
        """Train epoch by epoch, yielding ``(train_monitors, valid_monitors)``; see the module."""
        opt, opts = self.optimizer, self.options
        interrupt = DeferredInterrupt()
        try:
            self._begin()
            st = self.state
            if not st.validated_start:
                with interrupt:
                    st.busy = True
                    self._validate(0, regular=True)
                    st.validated_start = True
                    self.history.append(record(0, opt.updates, self._now(), None, st.last_valid))
                    st.busy = False
            while True:
                stop = self._stop_reason()
                if stop:                  # resumed, and finished under these options
                    st.stop = stop
                    self._save(final=True)
                    break
                self._fresh = False
                with interrupt:
                    complete = self._train_epoch(interrupt)
                self._trust_converged = True
                if not complete and st.partial.batches == 0:
                    break                 # nothing was left to train
                train = self._epoch_monitors()
                if not complete:
                    # stopped mid-epoch (max_updates, or a non-finite value with
                    # on_nonfinite='stop'): save before counting the epoch, so that a
                    # resumed run finishes this same epoch
                    st.stop = st.stop or "max_updates"
                    self._save(final=True)
                improved = False
                with interrupt:
                    st.busy = True        # until the epoch is counted, validated if due, recorded
                    st.epoch += 1
                    epoch = st.epoch
                    logger.info("%s %d %s", self.name, epoch, format_monitors(train))
                    if complete:
                        st.partial = EpochProgress()
                        if epoch % opts["validate_every"] == 0:
                            _, improved = self._validate(epoch, regular=True)
                    row = record(epoch, opt.updates, self._now(), train,
                                 st.last_valid if self._fresh else None)
                    self.history.append(row)
                    st.busy = False
                stop = st.stop or self._stop_reason()
                if opts["callback"] is not None:
                    try:
                        opts["callback"](EpochInfo(epoch, opt.updates, train, st.last_valid,
                                                   self._fresh, improved, opt))
                    except StopIteration:
                        stop = stop or "callback"
                if stop:
                    st.stop = stop
                    if complete:
                        self._save(final=True)
                    if not self._fresh:   # the end-of-run validation (not saved)
                        self._validate(epoch, regular=False)
                        row.update(valid=st.last_valid, validated=True)
                elif opts["checkpoint"] is not None and epoch % opts["checkpoint_every"] == 0:
                    self._save()
                self._show(train)
                yield train, st.last_valid
                if stop:
                    break
            self._finish()
        except KeyboardInterrupt:
            if not self._begun or self.finished:   # a second Ctrl-C while wrapping up
                return
            self.state.stop = "interrupted"
            logger.warning("%s: interrupted at epoch %d; the run ends here and the best "
                           "parameters are put back", self.name, self.state.epoch)
            if not (self.state.busy or self._final_saved):
                self._save()      # never a half-done batch or validation, nor over the final state
            self._finish()
        except NonFiniteError as err:
            if not self._begun:
                raise
            self.state.stop = "nonfinite"
            self._finish(validate=False)
            raise NonFiniteError(f"{err} (epoch {err.epoch}); the best parameters were restored",
                                 err.what, err.leaves, err.update, err.epoch) from None
        except GeneratorExit:
            if self._begun and not self.finished:    # the caller left the loop early
                self.state.stop = self.state.stop or "closed"
                self._finish()
            raise
        except BaseException:
            if self._begun and not self.finished:
                self.state.stop = "error"
                self._finish(validate=False)
            raise

    def _show(self, train):
        """Advance the progress bar: training loss, latest validation (* if best), rate."""
        st = self.state
        postfix = {"loss": number(train["loss"])}
        if st.last_valid:
            best = " *" if st.best_epoch == st.epoch else ""
            postfix["valid"] = number(st.last_valid["loss"]) + best
        if st.learning_rate is not None:
            postfix["lr"] = number(st.learning_rate)
        self._bar.update(1, **postfix)

    def _stop_reason(self):
        st, opts = self.state, self.options
        if self._trust_converged and self.optimizer.converged:
            return self.optimizer.converged           # e.g. 'gtol' from a quasi-Newton rule
        if opts["max_epochs"] is not None and st.epoch >= opts["max_epochs"]:
            return "max_epochs"
        if opts["max_updates"] is not None and st.updates >= opts["max_updates"]:
            return "max_updates"
        if opts["patience"] is not None and st.bad > opts["patience"]:
            return "patience"
        return ""

    def _train_epoch(self, interrupt):
        """Train the rest of the current epoch; return True if it is complete.

        Stops early, leaving the epoch partial, once the run has made
        ``max_updates`` updates (the next batch is not even drawn, so the
        dataset's position matches the updates made) or, with
        ``on_nonfinite='stop'``, at a non-finite loss or gradient.
        """
        opt, st, opts = self.optimizer, self.state, self.options
        remaining = self.n_batches - st.partial.batches
        source = None if self.train_set is None else self.train_set.batches(remaining)
        max_updates, step, partial = opts["max_updates"], opt.step, st.partial
        weigh = _batch_weigher(self.train_set)
        for _ in range(remaining):
            if max_updates is not None and st.updates >= max_updates:
                break
            st.busy = True            # until this batch is counted
            batch = () if source is None else next(source)
            before = opt.updates
            try:
                monitors = step(*batch)
            except NonFiniteError as err:
                err.epoch = st.epoch + 1
                if opts["on_nonfinite"] == "raise":
                    raise
                st.partial.batches += 1       # the batch is used up, though not applied
                st.partial.skipped += 1
                st.busy = False
                if opts["on_nonfinite"] == "stop":
                    st.stop = "nonfinite"
                    logger.warning("%s epoch %d: stopped on a non-finite value: %s",
                                   self.name, st.epoch + 1, err)
                    return False
                logger.warning("%s epoch %d: skipped: %s", self.name, st.epoch + 1, err)
                interrupt.check()
                continue
            w = weigh(batch)
            sums = partial.sums
            for k, v in monitors.items():
                if k != "learning_rate":
                    sums[k] = sums.get(k, 0.0) + w * v
            partial.weight += w
            st.learning_rate = monitors["learning_rate"]
            partial.batches += 1
            st.updates += opt.updates - before   # 0 for a batch only accumulated
            st.busy = False
            if interrupt.hit:
                interrupt.check()
        return st.partial.batches >= self.n_batches

    def _epoch_monitors(self):
        st = self.state
        out = st.partial.means()
        if "loss" not in out:
            out = {"loss": math.nan, **out}
        if st.learning_rate is not None:
            out["learning_rate"] = st.learning_rate
        if self.options["on_nonfinite"] == "skip":
            out["skipped"] = st.partial.skipped
        return out

    def _validate(self, epoch, regular):
        """Score the current params on the validation set; keep the best; return (monitors, improved).

        ``regular`` validations (the scheduled ones) count for patience and
        are told to ``on_validation`` schedules; the end-of-run one is not.
        """
        opt, st = self.optimizer, self.state
        if self._valid_snapshot is not None:     # every validation scores the same samples
            self.valid_set._rewind(self._valid_snapshot)
        try:
            with opt.use_evaluation_params():     # lookahead's slow weights, an average, ...
                monitors = measure(opt, self.valid_set)
        finally:
            if self._valid_snapshot is not None:
                self.valid_set._rewind(self._valid_snapshot)
        # the monitor that decides: lower is better ('min') or higher ('max')
        value, best, margin = monitors[st.monitor], st.best_value, self.options["min_improvement"]
        if st.mode == "min":
            better = value < best - abs(best) * margin
        else:
            better = value > best + abs(best) * margin
        improved = math.isfinite(value) and (self.best is None or better)
        if improved:
            if self.best is None:
                self.best = opt.layout.empty()
            opt.read_evaluation_params(self.best)
            st.best_loss, st.best_epoch, st.best_valid = float(monitors["loss"]), epoch, dict(monitors)
            st.best_value = float(value)
        if regular:
            st.bad = 0 if improved else st.bad + 1
            told = value if st.mode == "min" else -value     # schedules count lower as better
            for name in ("learning_rate", "momentum"):
                hook = getattr(opt.hyper[name], "on_validation", None)
                if callable(hook):
                    hook(told)
        st.last_valid = monitors
        self._fresh = True
        logger.info("validation %d %s%s", epoch, format_monitors(monitors), " *" if improved else "")
        return monitors, improved

    def _save(self, final=False):
        path = self.options["checkpoint"]
        if path is None:
            return
        self.state.elapsed = self._now()
        checkpoint.save(self, path)
        self._final_saved = self._final_saved or final

    # -- the end ----------------------------------------------------------
    def _finish(self, validate=True):
        """The one clean-up of every run: validate if due, put the best params back, say why.

        Touches only this run: its own best parameters, written into the
        caller's arrays. At interpreter shutdown (a generator collected at
        exit) it only writes the parameters back: no loss is evaluated and
        nothing is logged.
        """
        if self.finished:
            return
        self.finished = True
        st = self.state
        st.elapsed = self._now()
        exiting = sys.is_finalizing()
        try:
            if validate and not self._fresh and not exiting:
                self._validate(st.epoch, regular=False)
                if self.history and self.history[-1]["epoch"] == st.epoch:
                    self.history[-1].update(valid=st.last_valid, validated=True)
        finally:
            if self.best is not None:
                self.optimizer.layout.write(self.best)
            elif self.optimizer.evaluates_elsewhere:     # no finite validation: the last ones
                layout = self.optimizer.layout
                layout.write(self.optimizer.read_evaluation_params(layout.empty()))
            self._bar.close()
            if not exiting:
                self._log_end()

    def _log_end(self):
        st = self.state
        logger.info("%s: run ended (%s) at epoch %d after %d updates; best validation loss %s "
                    "at epoch %d%s", self.name, st.stop or "done", st.epoch, st.updates,
                    _fmt(st.best_loss), st.best_epoch,
                    "" if st.monitor == "loss" else
                    f" (chosen by {st.monitor} = {_fmt(st.best_value)}, mode {st.mode!r})")
        if st.stop == "error" or st.epoch == 0:
            return
        if self.best is None:
            logger.warning("%s: no validation gave a finite loss; the parameters hold their "
                           "last values", self.name)
        elif st.best_epoch == 0:
            logger.warning("%s: no epoch improved on the start point (validation loss %s at "
                           "epoch 0, %s at the end); the parameters were put back to their "
                           "starting values. A smaller learning_rate may help", self.name,
                           _fmt(st.best_loss), _fmt(st.last_valid.get("loss", math.nan)))

    def message(self):
        """One sentence: why the run ended and what the caller's arrays hold."""
        st = self.state
        reason = _REASONS.get(st.stop, "it has not ended")
        if st.stop == "patience" and st.monitor != "loss":
            reason = reason.replace("validation loss", f"validation {st.monitor}")
        if self.best is None:
            holds = ("no validation gave a finite loss, so the params hold their last values "
                     "(the last evaluation params)")
        elif st.best_epoch == 0 and st.epoch > 0:
            holds = ("no epoch improved on the start point, so the params were put back to "
                     "their starting values")
        else:
            shown = (f"loss {_fmt(st.best_loss)}" if st.monitor == "loss" and st.mode == "min"
                     else f"{st.monitor} {_fmt(st.best_value)}, mode {st.mode!r}")
            holds = f"the params hold the best validation ({shown} at epoch {st.best_epoch})"
        return f"Stopped at epoch {st.epoch} after {st.updates} updates because {reason}; {holds}."

    def last_train_monitors(self):
        """The last epoch's training monitors (of the epoch under way if none is complete)."""
        for row in reversed(self.history):
            if row["train"] is not None:
                return dict(row["train"])
        means = self.state.partial.means()
        return {"loss": means.pop("loss", math.nan), **means}

    def result(self):
        """The run as a :class:`~npdownhill.RunResult`."""
        st = self.state
        return RunResult(self.last_train_monitors(), dict(st.last_valid),
                         best_valid=dict(st.best_valid), best_loss=st.best_loss,
                         best_epoch=st.best_epoch, improved=st.best_epoch > 0,
                         monitor=st.monitor, mode=st.mode, best_value=st.best_value,
                         history=history_arrays(self.history), stop=st.stop,
                         message=self.message(), epochs=st.epoch, updates=st.updates,
                         elapsed=st.elapsed, optimizer=self.optimizer)
