r"""Schedules for hyperparameters such as the learning rate and the momentum.

The protocol
------------
A *schedule* is anything that can be called as ``f(step) -> float``, where
``step`` is the number of parameter updates already applied (``0`` for the
first update).  The optimizers call it once per update with a Python ``int``
and use the float it returns, so wherever a ``learning_rate`` or ``momentum``
is accepted you may pass either a number or a schedule.

Plain Python functions and lambdas are valid schedules; nothing requires the
:class:`Schedule` base class.  For example, both of these are fine values for
a ``learning_rate``::

    lambda step: 0.1 / (1 + step) ** 0.5
    linear_warmup(cosine_decay(0.1, decay_steps=10_000), warmup_steps=500)

Two optional hooks are looked up by name, so any user-written schedule (with
or without the base class) may implement them:

``on_validation(loss) -> None``
    The training driver calls it with every validation loss, *if* the
    schedule has such a method (``getattr(schedule, "on_validation", None)``).
    This is how :func:`reduce_on_plateau` learns about plateaus.
    :class:`Schedule` defines it as a no-op.

``state_dict() -> dict`` and ``load_state_dict(state) -> None``
    Used for checkpointing stateful schedules.  ``state_dict`` returns plain
    Python numbers or NumPy arrays only, so that the dictionary survives
    ``np.savez`` followed by ``np.load(..., allow_pickle=False)`` (each value
    then comes back as a 0-d array).  ``load_state_dict`` accepts such 0-d
    arrays and raises :class:`ValueError` for missing or unexpected keys.  The
    stateless schedules return ``{}`` and accept only ``{}``.

The schedules
-------------
==========================  ==================================================
:func:`constant`            a fixed value
:func:`exponential_decay`   :math:`\eta_0 r^{t/T}` (TensorFlow)
:func:`inverse_time_decay`  :math:`\eta_0 / (1 + r t / T)` (TensorFlow)
:func:`piecewise_constant`  step function with given boundaries (TensorFlow)
:func:`polynomial_decay`    polynomial decay to an end value (TensorFlow)
:func:`cosine_decay`        half a cosine down to a floor (TensorFlow)
:func:`cosine_restarts`     cosine annealing with warm restarts (SGDR)
:func:`linear_warmup`       linear ramp-up in front of any other schedule
:func:`one_cycle`           Smith's 1cycle policy (as PyTorch ``OneCycleLR``)
:func:`reduce_on_plateau`   shrink the value when the validation loss stalls
==========================  ==================================================

Each name is a class (the CamelCase name is the same class); calling it
returns a :class:`Schedule`.  Arguments are validated when the schedule is
built: a wrong type (``bool`` included where a number is expected) raises
:class:`TypeError`, a bad value (NaN and infinity included) raises
:class:`ValueError`, and the message names the schedule, the argument, the
rule and the offending value.  Calling a schedule with a negative step raises
:class:`ValueError`; a step that is not an integer (``bool`` and ``float``
included; NumPy integer types are fine) raises :class:`TypeError`.
"""

from . import cycles, decay, plateau
from .base import Schedule
from .cycles import *  # noqa: F401,F403  (each submodule's __all__)
from .decay import *  # noqa: F401,F403
from .plateau import *  # noqa: F401,F403

__all__ = ["Schedule", *decay.__all__, *cycles.__all__, *plateau.__all__]
