"""What a run hands back: :class:`RunResult`, :class:`EpochInfo` and history arrays."""

import math

import numpy as np

__all__ = ["RunResult", "EpochInfo", "history_arrays"]


def history_arrays(history):
    """Turn a run's history records into a dict of NumPy arrays, ready to plot.

    Parameters
    ----------
    history : list of dict
        Records with ``epoch``, ``updates``, ``time``, ``train``, ``valid``
        and ``validated`` (``train`` is None for epoch 0, the start).

    Returns
    -------
    dict of ndarray
        ``epoch``, ``updates``, ``time``, ``validated``, and
        ``train.<name>`` / ``valid.<name>`` per monitor (NaN where an epoch
        lacks the value: no training values at epoch 0, no validation values
        in epochs without validation).

    Examples
    --------
    >>> h = history_arrays([
    ...     {"epoch": 0, "updates": 0, "time": 0.0, "train": None,
    ...      "valid": {"loss": 2.0}, "validated": True},
    ...     {"epoch": 1, "updates": 5, "time": 0.1, "train": {"loss": 1.5},
    ...      "valid": None, "validated": False}])
    >>> h["train.loss"].tolist(), h["valid.loss"].tolist()
    ([nan, 1.5], [2.0, nan])
    """
    out = {"epoch": np.array([r["epoch"] for r in history], dtype=np.int64),
           "updates": np.array([r["updates"] for r in history], dtype=np.int64),
           "time": np.array([r["time"] for r in history], dtype=float),
           "validated": np.array([r["validated"] for r in history], dtype=bool)}
    for part in ("train", "valid"):
        names = []
        for r in history:
            for k in (r[part] or {}):
                if k not in names:
                    names.append(k)
        for k in names:
            out[f"{part}.{k}"] = np.array([(r[part] or {}).get(k, math.nan) for r in history],
                                          dtype=float)
    return out


class EpochInfo:
    """What the ``callback`` of ``iterate`` / ``minimize`` receives after every epoch.

    Attributes
    ----------
    epoch : int
        Epochs completed in this run (1 for the first).
    updates : int
        Updates applied by the optimizer in total.
    train : dict
        This epoch's training monitors.
    valid : dict
        The most recent validation monitors.
    validated : bool
        Whether a validation ran after this epoch.
    improved : bool
        Whether that validation improved on the best loss.
    optimizer : Optimizer
        The optimizer (read its ``history``, ``best_loss``, hyperparameters).

    Raising ``StopIteration`` in the callback ends the run cleanly.
    """

    def __init__(self, epoch, updates, train, valid, validated, improved, optimizer):
        self.epoch = epoch
        self.updates = updates
        self.train = train
        self.valid = valid
        self.validated = validated
        self.improved = improved
        self.optimizer = optimizer

    def __repr__(self):
        return (f"EpochInfo(epoch={self.epoch}, updates={self.updates}, "
                f"train_loss={self.train.get('loss')}, validated={self.validated})")


class RunResult(tuple):
    """The outcome of ``minimize``: unpacks as ``(train_monitors, valid_monitors)``.

    ``train_monitors, valid_monitors = dh.minimize(...)`` keeps working as
    in downhill; the result also carries what a teacher or a script wants
    to look at afterwards.

    Attributes
    ----------
    train : dict
        The last epoch's training monitors (``'loss'`` first); ``result[0]``.
    valid : dict
        The latest validation monitors (``'loss'`` first); ``result[1]``.
    best_valid : dict
        The monitors of the best validation: the parameters left in the
        caller's arrays.
    best_loss : float
        Its loss (``inf`` if no validation gave a finite loss).
    monitor, mode : str
        The validation monitor that chose the best validation and drove
        patience, and whether lower (``'min'``) or higher (``'max'``) is better.
    best_value : float
        That monitor's value at the best validation (``best_loss`` when
        ``monitor='loss'``).
    best_epoch : int
        Its epoch (0 is the start point; -1 if none).
    improved : bool
        Whether any epoch improved on the start point.
    history : dict of ndarray
        Per-epoch arrays from epoch 0, as :func:`history_arrays` gives them.
    stop : str
        Why the run ended (see :class:`~npdownhill.runstate.RunState`).
    message : str
        One sentence saying why, and what the caller's arrays hold.
    epochs, updates : int
        Epochs and updates of the run (over every resume).
    elapsed : float
        Seconds of running (over every resume).
    optimizer : Optimizer
        The optimizer that ran.
    """

    def __new__(cls, train, valid, **fields):
        self = super().__new__(cls, (train, valid))
        self.__dict__.update(fields)
        return self

    @property
    def train(self):
        """The last epoch's training monitors (``result[0]``)."""
        return self[0]

    @property
    def valid(self):
        """The latest validation monitors (``result[1]``)."""
        return self[1]

    def __repr__(self):
        best = self.__dict__.get("best_loss", math.nan)
        return (f"RunResult(stop={self.__dict__.get('stop')!r}, "
                f"epochs={self.__dict__.get('epochs')}, updates={self.__dict__.get('updates')}, "
                f"train_loss={self[0].get('loss')}, best_loss={best}, "
                f"best_epoch={self.__dict__.get('best_epoch')})")

    def __str__(self):
        lines = [self.__dict__.get("message", ""),
                 f"  epochs {self.__dict__.get('epochs')}, updates {self.__dict__.get('updates')}, "
                 f"{self.__dict__.get('elapsed', 0.0):.3g} s",
                 f"  last training loss   {self[0].get('loss')}",
                 f"  best validation loss {self.__dict__.get('best_loss')} at epoch "
                 f"{self.__dict__.get('best_epoch')}"]
        return "\n".join(lines)
