"""A training run's counters as one small typed object, and its history records.

:class:`RunState` holds everything a run needs to continue exactly after a
checkpoint, besides the optimizer's own state, the best parameters and the
datasets' positions: epochs and updates done, the patience count, the best
and latest validation, the stop reason, and the epoch under way
(:class:`EpochProgress`).
"""

import math
from dataclasses import dataclass, field
from typing import Optional

__all__ = ["EpochProgress", "RunState", "record"]


@dataclass
class EpochProgress:
    """The training epoch under way: batches done and the weighted sums of their monitors."""

    batches: int = 0          # batches taken (applied or skipped)
    sums: dict = field(default_factory=dict)   # {monitor: sum of batch weight * value}
    weight: float = 0.0       # sum of batch weights (samples)
    skipped: int = 0          # batches skipped for a non-finite loss or gradient

    def means(self):
        """``{monitor: weighted mean}`` of the batches applied so far (NaN if none)."""
        return {k: (v / self.weight if self.weight else math.nan) for k, v in self.sums.items()}


@dataclass
class RunState:
    """Where a run stands; saved in checkpoints (all but ``busy``).

    Attributes
    ----------
    epoch : int
        Epochs completed (0 before the first).
    updates : int
        Updates made by this run, over every resume.
    bad : int
        Validations in a row that did not improve on the best.
    elapsed : float
        Seconds of running, over every resume.
    stop : str
        Why the run ended: ``'max_epochs'``, ``'max_updates'``,
        ``'patience'``, ``'callback'``, ``'interrupted'``, ``'nonfinite'``,
        ``'closed'`` (the caller left the loop), ``'error'``; ``''`` while it
        goes on.
    validated_start : bool
        Whether the start point was validated (epoch 0).
    learning_rate : float or None
        The learning rate of the latest update.
    last_valid : dict
        The latest validation monitors.
    best_loss : float
        The validation loss of the best validation (``inf`` before any).
    monitor, mode : str
        The validation monitor that picks the best validation and drives
        patience (``'loss'``), and whether lower (``'min'``) or higher
        (``'max'``) values are better.
    best_value : float
        That monitor's value at the best validation (``inf`` for 'min',
        ``-inf`` for 'max', before any finite one).
    best_epoch : int
        The epoch of the best validation (-1 before any).
    best_valid : dict
        The monitors of the best validation.
    partial : EpochProgress
        The epoch under way.
    busy : bool
        True while a batch or a validation is under way: the datasets may
        then be ahead of the counters, so nothing is saved (not saved itself).
    """

    epoch: int = 0
    updates: int = 0
    bad: int = 0
    elapsed: float = 0.0
    stop: str = ""
    validated_start: bool = False
    learning_rate: Optional[float] = None
    last_valid: dict = field(default_factory=dict)
    best_loss: float = math.inf
    monitor: str = "loss"
    mode: str = "min"
    best_value: float = math.inf
    best_epoch: int = -1
    best_valid: dict = field(default_factory=dict)
    partial: EpochProgress = field(default_factory=EpochProgress)
    busy: bool = False


def record(epoch, updates, time, train, valid):
    """One history record: ``train`` is None at epoch 0, ``valid`` None when not validated."""
    return {"epoch": epoch, "updates": updates, "time": time, "train": train, "valid": valid,
            "validated": valid is not None}
