"""The result of a small fit: :class:`FitResult`, read as attributes or as a dict.

``solve`` and ``least_squares`` return one, with the fields scientists know
from ``scipy.optimize.OptimizeResult`` (``x``, ``fun``, ``jac``, ``nit``,
``nfev``, ``njev``, ``status``, ``success``, ``message``, ...). ``x`` and
``jac`` are trees shaped like the params; printing a result gives a short
report.
"""

import numpy as np

__all__ = ["FitResult"]


def _short(value):
    if isinstance(value, np.ndarray):
        if value.size <= 6:
            return np.array2string(value, precision=6, separator=", ")
        return f"array of shape {value.shape}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        items = ", ".join(_short(v) for v in value)
        return f"[{items}]" if isinstance(value, list) else f"({items})"
    if isinstance(value, float):
        return f"{value:.10g}"
    return repr(value)


class FitResult(dict):
    """A fit's outcome: a dict whose keys are also attributes.

    Which fields are present depends on the method; ``solve`` gives ``x``
    (the params tree, holding the solution), ``fun`` (the final loss),
    ``jac`` (the gradient tree), ``nit``, ``nfev``, ``njev``, ``status``,
    ``success``, ``message``; ``least_squares`` gives ``x``, ``cost``,
    ``fun`` (the residuals), ``jac`` (the Jacobian matrix), ``grad``,
    ``nfev``, ``njev``, ``status``, ``success``, ``message``.

    Examples
    --------
    >>> r = FitResult(x=np.array([1.0, 2.0]), fun=0.5, success=True, message="done")
    >>> r.fun, r["success"]
    (0.5, True)
    """

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"FitResult has no field {name!r}; its fields are "
                                 f"{sorted(self)}") from None

    def __setattr__(self, name, value):
        self[name] = value

    def __dir__(self):
        return list(self) + list(super().__dir__())

    def __repr__(self):
        if not self:
            return "FitResult()"
        width = max(len(k) for k in self)
        lines = [f"{k.rjust(width)}: {_short(v)}" for k, v in self.items()]
        return "\n".join(lines)

    __str__ = __repr__
