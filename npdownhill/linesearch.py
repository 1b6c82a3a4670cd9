r"""A line search that satisfies the strong Wolfe conditions.

Given a point :math:`x`, a descent direction :math:`d` and
:math:`\phi(\alpha) = f(x + \alpha d)` with slope
:math:`\phi'(\alpha) = \nabla f(x + \alpha d)^\top d`, :func:`strong_wolfe`
finds a step :math:`\alpha > 0` with

.. math::

    \phi(\alpha) \le \phi(0) + c_1 \alpha \phi'(0)
    \quad\text{(sufficient decrease)}, \qquad
    |\phi'(\alpha)| \le c_2 |\phi'(0)|
    \quad\text{(curvature)},

``c1 = 1e-4`` and ``c2 = 0.9`` by default, in at most ``max_evals``
evaluations of :math:`\phi`. It follows Nocedal & Wright's Algorithm 3.5
(bracketing, the trial step doubling) and 3.6 (zoom), choosing each trial
inside a bracket by the minimizer of the cubic that matches both ends'
values and slopes, moved to at least a tenth of the bracket away from its
ends (bisection when the cubic has no usable minimum).

A trial point where :math:`\phi` or :math:`\phi'` is not finite counts as a
step too long: it becomes the far end of the bracket and the search moves
back towards the last good point, so a non-finite value is never accepted.
An optional ``alpha_max`` caps the step (a box constraint's edge): reaching
it with sufficient decrease is accepted even without the curvature condition.

References
----------
Nocedal, J. and Wright, S. J. (2006). Numerical Optimization, 2nd ed.,
section 3.5 (Algorithms 3.5 and 3.6). Springer.
"""

import math

__all__ = ["strong_wolfe", "LineSearchResult"]


class LineSearchResult:
    """What :func:`strong_wolfe` found.

    Attributes
    ----------
    alpha : float
        The accepted step (0 when the search failed).
    f, slope : float
        :math:`\\phi` and :math:`\\phi'` there.
    extra : object
        What ``phi`` returned as its third value at the accepted step (the
        gradient, kept so that it need not be computed again).
    evals : int
        Evaluations of ``phi`` made.
    status : str
        ``'wolfe'`` (both conditions hold), ``'bound'`` (stopped at
        ``alpha_max`` with sufficient decrease), ``'decrease'`` (the budget
        ran out; the best point with sufficient decrease is returned) or
        ``'failed'`` (no point decreased the function enough).
    """

    def __init__(self, alpha, f, slope, extra, evals, status):
        self.alpha, self.f, self.slope, self.extra = alpha, f, slope, extra
        self.evals, self.status = evals, status

    @property
    def ok(self):
        """Whether a step was found (any status but ``'failed'``)."""
        return self.status != "failed"

    def __repr__(self):
        return (f"LineSearchResult(alpha={self.alpha!r}, f={self.f!r}, evals={self.evals}, "
                f"status={self.status!r})")


def _finite(*values):
    return all(math.isfinite(v) for v in values)


def _cubic_min(a, fa, da, b, fb, db):
    """The minimizer of the cubic through (a, fa, da) and (b, fb, db), or None."""
    if not _finite(fa, da, fb, db) or a == b:
        return None
    d1 = da + db - 3.0 * (fa - fb) / (a - b)
    disc = d1 * d1 - da * db
    if disc < 0:
        return None
    d2 = math.copysign(math.sqrt(disc), b - a)
    denom = db - da + 2.0 * d2
    if denom == 0:
        return None
    x = b - (b - a) * (db + d2 - d1) / denom
    return x if math.isfinite(x) else None


def _trial(lo, flo, dlo, hi, fhi, dhi):
    """A trial step inside the bracket (lo, hi): the cubic minimizer, kept a tenth of the
    bracket away from its ends (the midpoint when the cubic has no usable minimum)."""
    left, right = min(lo, hi), max(lo, hi)
    margin = 0.1 * (right - left)
    x = _cubic_min(lo, flo, dlo, hi, fhi, dhi)
    if x is None:
        return 0.5 * (lo + hi)
    return min(max(x, left + margin), right - margin)


def strong_wolfe(phi, f0, slope0, alpha1, c1=1e-4, c2=0.9, max_evals=20, alpha_max=math.inf):
    """Find a step satisfying the strong Wolfe conditions along a descent direction.

    Parameters
    ----------
    phi : callable
        ``phi(alpha) -> (f, slope, extra)``: the function and its directional
        derivative at ``x + alpha d``; ``extra`` (e.g. the gradient) is
        handed back with the accepted step. Non-finite ``f`` or ``slope``
        mean "too far".
    f0, slope0 : float
        :math:`\\phi(0)` and :math:`\\phi'(0) < 0`.
    alpha1 : float
        The first trial step, > 0.
    c1, c2 : float
        The Wolfe constants, ``0 < c1 < c2 < 1``.
    max_evals : int
        At most this many calls of ``phi``.
    alpha_max : float
        The largest step allowed.

    Returns
    -------
    LineSearchResult

    Raises
    ------
    ValueError
        ``slope0 >= 0`` (not a descent direction) or bad constants.
    """
    if not slope0 < 0:
        raise ValueError(f"strong_wolfe: the direction must descend (slope0 < 0); got {slope0!r}")
    if not (0 < c1 < c2 < 1):
        raise ValueError(f"strong_wolfe: need 0 < c1 < c2 < 1; got c1={c1!r}, c2={c2!r}")
    if not (alpha1 > 0 and alpha_max > 0):
        raise ValueError(f"strong_wolfe: alpha1 and alpha_max must be > 0; got {alpha1!r} "
                         f"and {alpha_max!r}")
    evals = 0
    # the best point with sufficient decrease so far (returned if the budget runs out)
    best = LineSearchResult(0.0, f0, slope0, None, 0, "failed")

    def evaluate(alpha):
        nonlocal evals, best
        f, slope, extra = phi(alpha)
        evals += 1
        if not _finite(f, slope):
            f, slope = math.inf, math.nan
        elif f <= f0 + c1 * alpha * slope0 and f < best.f:
            best = LineSearchResult(alpha, f, slope, extra, evals, "decrease")
        return f, slope, extra

    def done(alpha, f, slope, extra, status):
        return LineSearchResult(alpha, f, slope, extra, evals, status)

    def out_of_budget():
        best.evals = evals
        return best

    def zoom(lo, flo, dlo, hi, fhi, dhi):
        # invariants: lo satisfies sufficient decrease and has the lowest f so far among the
        # bracket's points; (hi - lo) * dlo < 0, so a Wolfe point lies between them
        while evals < max_evals:
            alpha = _trial(lo, flo, dlo, hi, fhi, dhi)
            f, slope, extra = evaluate(alpha)
            if f > f0 + c1 * alpha * slope0 or f >= flo:
                hi, fhi, dhi = alpha, f, slope
            else:
                if abs(slope) <= -c2 * slope0:
                    return done(alpha, f, slope, extra, "wolfe")
                if slope * (hi - lo) >= 0:
                    hi, fhi, dhi = lo, flo, dlo
                lo, flo, dlo = alpha, f, slope
            if abs(hi - lo) <= 1e-12 * max(1.0, abs(lo)):
                break                        # the bracket has collapsed
        return out_of_budget()

    prev, fprev, dprev = 0.0, f0, slope0
    alpha = min(alpha1, alpha_max)
    while evals < max_evals:
        f, slope, extra = evaluate(alpha)
        if f > f0 + c1 * alpha * slope0 or (prev > 0 and f >= fprev):
            return zoom(prev, fprev, dprev, alpha, f, slope)
        if abs(slope) <= -c2 * slope0:
            return done(alpha, f, slope, extra, "wolfe")
        if slope >= 0:
            return zoom(alpha, f, slope, prev, fprev, dprev)
        if alpha >= alpha_max:
            return done(alpha, f, slope, extra, "bound")
        prev, fprev, dprev = alpha, f, slope
        alpha = min(2.0 * alpha, alpha_max)
    return out_of_budget()
