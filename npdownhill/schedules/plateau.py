"""The stateful schedule :func:`reduce_on_plateau`, driven by validation losses.

Its value does not depend on the step: the training driver passes every
validation loss to :meth:`ReduceOnPlateau.on_validation`, and the state is
checkpointed through ``state_dict`` / ``load_state_dict``.
"""

import math

import numpy as np

from .base import Schedule, _choice, _error, _integer, _real, _state_scalar

__all__ = ["reduce_on_plateau", "ReduceOnPlateau"]


class ReduceOnPlateau(Schedule):
    r"""Multiply the value by ``factor`` when the validation loss stops improving.

    The value does not depend on the step; it changes only through
    :meth:`on_validation`, which the training driver calls with every
    validation loss :math:`L` ('min' mode: lower is better); a run with
    ``monitor='err'`` passes that monitor instead, negated with ``mode='max'``.  With the best
    loss so far :math:`L^*` (initially :math:`+\infty`) and threshold
    :math:`\theta`, :math:`L` is an *improvement* if

    .. math::

        L < L^* - |L^*| \, \theta \quad\text{('rel')}, \qquad
        L < L^* - \theta \quad\text{('abs')}.

    For :math:`L^* \ge 0`, 'rel' is PyTorch's :math:`L < L^* (1 - \theta)`;
    for negative losses PyTorch's rule would accept a *worse* loss as an
    improvement, whereas :math:`L^* - |L^*|\theta` always demands a decrease.
    While :math:`L^* = +\infty` any finite loss is an improvement.
    Non-finite losses (NaN, :math:`\pm\infty`) never improve: they count as
    bad validations and never become :math:`L^*`.

    Each validation then follows PyTorch's ``ReduceLROnPlateau.step``:

    1. an improvement sets :math:`L^* = L` and the bad count to 0; otherwise
       the bad count grows by 1;
    2. during a cooldown (cooldown counter > 0) the counter decreases by 1 and
       the bad count is reset to 0 (bad validations are ignored);
    3. if the bad count exceeds ``patience`` the value becomes
       :math:`\max(\eta \cdot \text{factor}, \eta_\min)`, the bad count is
       reset to 0 and the cooldown counter is set to ``cooldown``.

    So the first reduction happens at the ``patience + 1``-th bad validation
    in a row.  Unlike PyTorch there is no ``eps``: a reduction is always
    applied, and once the value reaches ``min_value`` it stays there.

    The state (``value``, ``best``, ``num_bad``, ``cooldown_counter``,
    ``num_validations``) is returned by :meth:`state_dict`.

    Parameters
    ----------
    initial : float
        Starting value, finite and >= ``min_value``.
    factor : float, default 0.1
        Multiplier applied at a reduction, in (0, 1).
    patience : int, default 10
        Number of bad validations in a row tolerated before reducing, >= 0.
    min_value : float, default 0.0
        Lower bound of the value, >= 0.
    threshold : float, default 1e-4
        :math:`\theta`, >= 0.
    threshold_mode : {'rel', 'abs'}, default 'rel'
        Whether :math:`\theta` is relative to :math:`|L^*|` or absolute.
    cooldown : int, default 0
        Number of validations after a reduction during which bad validations
        are not counted, >= 0.

    References
    ----------
    PyTorch, ``torch.optim.lr_scheduler.ReduceLROnPlateau``.
    """

    _name = "reduce_on_plateau"
    _arg_names = ("initial", "factor", "patience", "min_value", "threshold",
                  "threshold_mode", "cooldown")

    def __init__(self, initial, factor=0.1, patience=10, min_value=0.0,
                 threshold=1e-4, threshold_mode="rel", cooldown=0):
        n = self._name
        self._initial = _real(n, "initial", initial, ge=0)
        self._factor = _real(n, "factor", factor, gt=0, lt=1)
        self._patience = _integer(n, "patience", patience, ge=0)
        self._min_value = _real(n, "min_value", min_value, ge=0)
        self._threshold = _real(n, "threshold", threshold, ge=0)
        self._threshold_mode = _choice(n, "threshold_mode", threshold_mode, ("rel", "abs"))
        self._cooldown = _integer(n, "cooldown", cooldown, ge=0)
        if self._min_value > self._initial:
            raise _error(ValueError, n, "min_value", min_value, "min_value",
                         f"<= initial = {self._initial!r}", min_value)
        self._value = self._initial
        self._best = math.inf
        self._num_bad = 0
        self._cooldown_counter = 0
        self._num_validations = 0

    # -- read-only views of the state ------------------------------------
    @property
    def value(self):
        """The current value (what ``schedule(step)`` returns)."""
        return self._value

    @property
    def best(self):
        """The best (lowest finite) validation loss so far; ``inf`` before any."""
        return self._best

    @property
    def num_bad(self):
        """Number of bad validations in a row (since the last improvement or reduction)."""
        return self._num_bad

    @property
    def cooldown_counter(self):
        """Validations left in the current cooldown."""
        return self._cooldown_counter

    @property
    def num_validations(self):
        """Number of validation losses received."""
        return self._num_validations

    # -- schedule ---------------------------------------------------------
    def _compute(self, step):
        return self._value

    def _is_improvement(self, loss):
        if not math.isfinite(loss):
            return False
        if math.isinf(self._best):
            return True
        if self._threshold_mode == "rel":
            return loss < self._best - abs(self._best) * self._threshold
        return loss < self._best - self._threshold

    def on_validation(self, loss):
        """Take a validation loss into account (see the class docstring)."""
        if isinstance(loss, (bool, np.bool_)):
            raise TypeError(f"{self._name}.on_validation: loss must be a real scalar; "
                            f"got {loss!r} (bool)")
        arr = np.asarray(loss)
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"{self._name}.on_validation: loss must be a real scalar; "
                            f"got {loss!r} ({type(loss).__name__})")
        if arr.shape != ():
            raise ValueError(f"{self._name}.on_validation: loss must be a scalar; "
                             f"got an array of shape {arr.shape}")
        loss = float(arr)

        self._num_validations += 1
        if self._is_improvement(loss):
            self._best = loss
            self._num_bad = 0
        else:
            self._num_bad += 1
        if self._cooldown_counter > 0:
            self._cooldown_counter -= 1
            self._num_bad = 0
        if self._num_bad > self._patience:
            self._value = max(self._value * self._factor, self._min_value)
            self._cooldown_counter = self._cooldown
            self._num_bad = 0

    # -- checkpointing ------------------------------------------------------
    def state_dict(self):
        """Return ``{'value', 'best', 'num_bad', 'cooldown_counter', 'num_validations'}``."""
        return {
            "value": self._value,
            "best": self._best,
            "num_bad": self._num_bad,
            "cooldown_counter": self._cooldown_counter,
            "num_validations": self._num_validations,
        }

    def _load_state(self, state):
        n = self._name
        value = _state_scalar(n, "value", state["value"])
        best = _state_scalar(n, "best", state["best"])
        ints = {key: _state_scalar(n, key, state[key], integer=True)
                for key in ("num_bad", "cooldown_counter", "num_validations")}
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{n}.load_state_dict: 'value' must be finite and >= 0; "
                             f"got {value!r}")
        if math.isnan(best) or best == -math.inf:
            raise ValueError(f"{n}.load_state_dict: 'best' must be a number or +inf; "
                             f"got {best!r}")
        for key, count in ints.items():
            if count < 0:
                raise ValueError(f"{n}.load_state_dict: {key!r} must be >= 0; got {count!r}")
        # Everything checked: now assign (all or nothing).
        self._value = value
        self._best = best
        self._num_bad = ints["num_bad"]
        self._cooldown_counter = ints["cooldown_counter"]
        self._num_validations = ints["num_validations"]


# The public, lowercase names used throughout npdownhill.
reduce_on_plateau = ReduceOnPlateau
