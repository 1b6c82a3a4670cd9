"""npdownhill: minimize loss functions written in plain NumPy.

Write ``loss(params, *batch)`` with ``autograd.numpy``; npdownhill takes the
gradients with autograd and fits ``params`` (an array or a dict / list /
tuple of arrays, updated in place) with one of its optimizers::

    import npdownhill as dh
    train_monitors, valid_monitors = dh.minimize(loss, params, train=[X, y],
                                                 valid=[Xv, yv], algo="adam")

Three levels of use:

* :func:`minimize` runs a whole fit: batches, validation, patience, the
  best parameters restored at the end. Its :class:`RunResult` unpacks as
  the pair above and carries the history, the best validation and the
  stop reason.
* :func:`build` gives an :class:`Optimizer` whose :meth:`~Optimizer.iterate`
  yields the monitors of each epoch to your own loop.
* :meth:`Optimizer.step`, :meth:`~Optimizer.update`, :meth:`~Optimizer.apply`
  and :meth:`~Optimizer.get_updates` take one step inside a loop you own.

The package is layered, each layer using only those below it:
foundations (:mod:`~npdownhill.tree`, :mod:`~npdownhill.hyper`,
:mod:`~npdownhill.options`, :mod:`~npdownhill.codec`,
:mod:`~npdownhill.npzfile`, :mod:`~npdownhill.rngstate`,
:mod:`~npdownhill.errors`); the engine (:mod:`~npdownhill.optimizer`,
:mod:`~npdownhill.pipeline`, :mod:`~npdownhill.optimizer_state`,
:mod:`~npdownhill.monitors`, :mod:`~npdownhill.diagnostics`,
:mod:`~npdownhill.registry`, the rules and :mod:`~npdownhill.schedules`);
the run (:mod:`~npdownhill.dataset`, :mod:`~npdownhill.runstate`,
:mod:`~npdownhill.checkpoint`, :mod:`~npdownhill.run`,
:mod:`~npdownhill.result`, :mod:`~npdownhill.driver`).
"""

from . import plot, problems, schedules
from .adam import AMSGrad, Adam, Adamax, AdamW, NAdam, RAdam
from .adaptive import ADADELTA, ADAGRAD, ESGD, Adadelta, AdaGrad, RMSProp, RProp
from .dataset import Dataset
from .driver import minimize
from .errors import NonFiniteError
from .first_order import NAG, SGD, Momentum
from .optimizer import Optimizer, apply_updates
from .quasi_newton import BFGS, LBFGS
from .registry import algorithms, build
from .schedule_free import ScheduleFreeAdamW, ScheduleFreeSGD
from .fitresult import FitResult
from .gradcheck import GradCheckResult, check_grad
from .many import bootstrap, multistart, sweep
from .modern import AdaBelief, Lion, Prodigy, Yogi
from .derivatives import hessian, jacobian
from .curvefit import CovarianceWarning, curve_fit, standard_errors
from .lsq import least_squares
from .result import EpochInfo, RunResult
from .solve import solve
from .tree import pack

__version__ = "0.2.0"

__all__ = [
    "minimize", "solve", "least_squares", "curve_fit", "standard_errors", "hessian", "jacobian",
    "FitResult", "CovarianceWarning", "check_grad", "GradCheckResult", "multistart", "sweep",
    "bootstrap", "build", "algorithms", "apply_updates", "pack", "Optimizer", "Dataset",
    "EpochInfo", "RunResult", "NonFiniteError", "schedules", "problems", "plot",
    "SGD", "NAG", "Momentum", "RMSProp", "RProp", "ADAGRAD", "AdaGrad", "ADADELTA", "Adadelta",
    "ESGD", "Adam", "Adamax", "AMSGrad", "NAdam", "AdamW", "RAdam", "Lion", "Yogi", "AdaBelief",
    "Prodigy", "ScheduleFreeSGD", "ScheduleFreeAdamW", "LBFGS", "BFGS",
]
