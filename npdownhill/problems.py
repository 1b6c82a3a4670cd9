r"""Test problems for optimizers: the classic functions, and small data sets for lessons.

Each constructor returns a :class:`Problem`: a function written with
``autograd.numpy`` (so npdownhill can differentiate it) together with what is
known about it: its global minima and their value, a start point, a box to
plot, and the other stationary points worth marking on a contour plot (local
minima, saddles, maxima)::

    import npdownhill as dh
    from npdownhill import problems

    p = problems.rosenbrock()
    x = p.start.copy()             # start is read-only: optimizers update in place
    result = dh.solve(p, x)        # x ends near p.minima[0] == [1, 1]
    X, Y, Z = p.grid(200)          # for matplotlib's contour(X, Y, Z)

Every listed point is checked by the test suite: the gradient vanishes there,
the global minima are global over the plotting box, the local minima are
minima and the saddles are saddles. The points are given to full float
precision: from closed forms where they exist; else found when the problem is
made (by bisection on a 1-D derivative, or Newton's method for the n-d
Rosenbrock), or, for Beale's and Himmelblau's, found once by Newton's method on
the gradient and stored here.

:func:`all_problems` gives one 2-D instance of each, for galleries.
:func:`blobs` and :func:`damped_oscillator` make small seeded data sets for
classification and curve-fitting lessons.

The main reference for the test functions is M. Jamil and X.-S. Yang (2013),
"A literature survey of benchmark functions for global optimization
problems", Int. J. Mathematical Modelling and Numerical Optimisation 4(2),
150-194 (arXiv:1308.4008); the original source of each function is given in
its constructor's docstring.
"""

import math
import numbers

import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp, primitive

from .hyper import number

__all__ = [
    "Problem", "all_problems",
    "rosenbrock", "beale", "booth", "himmelblau", "matyas", "three_hump_camel",
    "rastrigin", "ackley", "styblinski_tang", "ill_conditioned_quadratic",
    "saddle", "monkey_saddle",
    "blobs", "damped_oscillator",
]


# ---------------------------------------------------------------------------
# the Problem class
# ---------------------------------------------------------------------------

def _point(call, name, value, dim):
    """A read-only 1-D float64 copy of ``value``, of length ``dim``, finite."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{call}({name}=...): {name} must be an array of {dim} real numbers; "
                        f"got {value!r}") from None
    if arr.shape != (dim,):
        raise ValueError(f"{call}({name}=...): {name} must be a 1-D array of length {dim}; "
                         f"got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{call}({name}=...): {name} must be finite; got {arr}")
    arr.flags.writeable = False
    return arr


def _points(call, name, values, dim):
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{call}({name}=...): {name} must be a list of points; "
                        f"got {type(values).__name__}")
    return [_point(call, f"{name}[{i}]", v, dim) for i, v in enumerate(values)]


def _check_box(call, box):
    shown = f"{call}(box={box!r}): box must be ((x_low, x_high), (y_low, y_high))"
    try:
        (a, b), (c, d) = box
    except (TypeError, ValueError):
        raise TypeError(f"{shown}; got {type(box).__name__}") from None
    out = []
    for low, high in ((a, b), (c, d)):
        low = number(call, "box", low)
        high = number(call, "box", high)
        if not low < high:
            raise ValueError(f"{shown} with each low < high; got {box!r}")
        out.append((low, high))
    return tuple(out)


def _fmt(arr):
    return np.array2string(np.asarray(arr), precision=6, separator=", ", threshold=8,
                           suppress_small=True)


class Problem:
    r"""A test function with what is known about it.

    The built-in problems come from the constructors of this module
    (:func:`rosenbrock`, :func:`himmelblau`, ...); you can also make your
    own.

    Parameters
    ----------
    name : str
        A short name, e.g. ``"rosenbrock"``.
    function : callable
        ``function(x) -> f`` written with ``autograd.numpy``. ``x`` is indexed
        along its first axis (``x[0]``, ``x[1:]``, sums over ``axis=0``), so
        that the same code takes a 1-D point of length ``dim`` or a stacked
        array of shape ``(dim, ...)`` holding many points (see ``vectorized``).
    dim : int
        The number of variables, >= 2.
    minima : list of array_like
        The global minima, each a point of length ``dim``; at least one.
    value : float
        The function's value at the global minima.
    start : array_like
        The start point, length ``dim``.
    box : ((float, float), (float, float))
        The plotting box ``((x_low, x_high), (y_low, y_high))`` of the first
        two variables.
    local_minima, saddles, maxima : list of array_like, optional
        Other stationary points worth showing on a plot: local minima (not
        global), saddle points and local maxima. Not necessarily all of
        them: each constructor says which are listed.
    formula : str, optional
        The formula in LaTeX (without ``$``), for plot titles.
    vectorized : bool, optional
        Whether ``function`` takes stacked ``(dim, ...)`` arrays (true of
        every built-in problem). If false, :meth:`grid` evaluates the points
        one at a time.

    Attributes
    ----------
    name, dim, value, box, formula
        As given (``value`` a float, ``box`` a tuple of float pairs).
    minima, local_minima, saddles, maxima : list of ndarray
        Read-only 1-D float64 arrays of length ``dim``.
    start : ndarray
        Read-only 1-D float64 array. The optimizers of npdownhill update
        their parameters in place, so **copy it** first:
        ``x = problem.start.copy()`` (passing ``problem.start`` itself is
        refused by the optimizers as a read-only array).

    Notes
    -----
    ``problem(x)`` evaluates the function: ``x`` is a 1-D array of length
    ``dim`` (or an autograd box of one, or a list) and the result a float;
    or ``x`` is a stacked array of shape ``(dim, ...)``, and the result an
    array of shape ``(...)`` holding the value at each point ``x[:, i, j,
    ...]``. A problem is thus a loss function for :func:`npdownhill.solve`
    and :func:`npdownhill.minimize` (``loss(params)``, no data).
    """

    def __init__(self, name, function, dim, minima, value, start, box, local_minima=(),
                 saddles=(), maxima=(), formula="", vectorized=True):
        call = "Problem"
        if not isinstance(name, str) or not name:
            raise TypeError(f"{call}(name={name!r}): name must be a non-empty string")
        if not callable(function):
            raise TypeError(f"{call}(function=...): function must be callable f(x); "
                            f"got {type(function).__name__}")
        dim = number(call, "dim", dim, low=2, integer=True)
        if not isinstance(formula, str):
            raise TypeError(f"{call}(formula=...): formula must be a string; "
                            f"got {type(formula).__name__}")
        if not isinstance(vectorized, (bool, np.bool_)):
            raise TypeError(f"{call}(vectorized={vectorized!r}): vectorized must be True or "
                            f"False; got {type(vectorized).__name__}")
        self.name = name
        self.dim = dim
        self.minima = _points(call, "minima", minima, dim)
        if not self.minima:
            raise ValueError(f"{call}(minima=[]): minima must list at least one global minimum")
        self.value = number(call, "value", value)
        self.start = _point(call, "start", start, dim)
        self.box = _check_box(call, box)
        self.local_minima = _points(call, "local_minima", local_minima, dim)
        self.saddles = _points(call, "saddles", saddles, dim)
        self.maxima = _points(call, "maxima", maxima, dim)
        self.formula = formula
        self.vectorized = bool(vectorized)
        self._function = function

    def __call__(self, x):
        """The function's value at ``x`` (1-D, length ``dim``) or at each point of ``x[:, ...]``."""
        if not hasattr(x, "shape") or isinstance(x, np.ndarray):
            x = np.asarray(x)
            if x.dtype.kind not in "fc":
                x = x.astype(np.float64)
        shape = tuple(x.shape)
        if not shape or shape[0] != self.dim:
            raise ValueError(f"{self.name}(x): x must have length {self.dim} along its first "
                             f"axis (the variables); got shape {shape}")
        return self._function(x)

    def grid(self, n=200):
        """A grid over the plotting box, for contour plots.

        Parameters
        ----------
        n : int, optional
            Points along each side, >= 2.

        Returns
        -------
        X, Y, Z : ndarray, shape (n, n)
            ``X, Y = numpy.meshgrid(linspace(*box[0], n), linspace(*box[1],
            n))`` (so ``X[i, j]`` is the j-th x and ``Y[i, j]`` the i-th y,
            as matplotlib's ``contour(X, Y, Z)`` expects) and ``Z[i, j]`` the
            function at ``(X[i, j], Y[i, j])``, the other variables (if
            ``dim > 2``) held at their values in ``minima[0]``. Computed in
            one vectorised call on a ``(dim, n, n)`` stack of points.
        """
        n = number(f"{self.name}.grid", "n", n, low=2, integer=True)
        xs = np.linspace(self.box[0][0], self.box[0][1], n)
        ys = np.linspace(self.box[1][0], self.box[1][1], n)
        X, Y = np.meshgrid(xs, ys)
        points = np.empty((self.dim, n, n))
        points[0], points[1] = X, Y
        points[2:] = self.minima[0][2:, None, None]
        if self.vectorized:
            Z = np.asarray(self._function(points), dtype=np.float64)
        else:
            Z = np.array([[float(self._function(points[:, i, j])) for j in range(n)]
                          for i in range(n)])
        if Z.shape != (n, n):
            raise ValueError(f"{self.name}.grid: the function returned shape {Z.shape} for "
                             f"points of shape {points.shape}; expected {(n, n)} (make it take "
                             f"stacked points, or build the Problem with vectorized=False)")
        return X, Y, Z

    def __repr__(self):
        k = len(self.minima)
        first = _fmt(self.minima[0])
        where = f"at {first}" if k == 1 else f"at {k} minima, the first {first}"
        return (f"<Problem {self.name}: dim={self.dim}, value={self.value:.10g} {where}, "
                f"start {_fmt(self.start)}, box {self.box}>")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def _dimension(call, n):
    return number(call, "n", n, low=2, integer=True)


def _bisect(fun, low, high):
    """The root of ``fun`` in ``[low, high]`` (a sign change) to the last bit of a float."""
    f_low = fun(low)
    if f_low == 0:
        return low
    while True:
        mid = 0.5 * (low + high)
        if not low < mid < high:
            break
        f_mid = fun(mid)
        if f_mid == 0:
            return mid
        if (f_mid < 0) == (f_low < 0):
            low, f_low = mid, f_mid
        else:
            high = mid
    return low if abs(fun(low)) <= abs(fun(high)) else high


def _axis_points(t, n):
    """The ``2 n`` points ``+t e_i`` and ``-t e_i``."""
    out = []
    for i in range(n):
        for sign in (1.0, -1.0):
            p = np.zeros(n)
            p[i] = sign * t
            out.append(p)
    return out


# ---------------------------------------------------------------------------
# Rosenbrock
# ---------------------------------------------------------------------------

def _rosenbrock(x):
    return anp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2, axis=0)


def _rosenbrock_local_minimum(n):
    """Newton's method from ``(-1, 1, ..., 1)`` with the exact tridiagonal Hessian.

    Returns the local minimum near ``(-1, 1, ..., 1)`` (Shang & Qiu 2006), or
    None if Newton's method does not end at a point with a vanishing gradient
    and a positive definite Hessian that is not the global minimum (n = 3).
    """
    x = np.ones(n)
    x[0] = -1.0
    for _ in range(100):
        u = x[1:] - x[:-1] ** 2
        g = np.zeros(n)
        g[:-1] = -400.0 * x[:-1] * u - 2.0 * (1.0 - x[:-1])
        g[1:] += 200.0 * u
        d = np.zeros(n)
        d[:-1] = 1200.0 * x[:-1] ** 2 - 400.0 * x[1:] + 2.0
        d[1:] += 200.0
        e = -400.0 * x[:-1]
        step = _solve_tridiagonal(d, e, g)
        if step is None:                         # Hessian not positive definite
            return None
        x = x - step
        if np.max(np.abs(step)) <= 4e-16 * np.max(np.abs(x)):
            break
    u = x[1:] - x[:-1] ** 2
    g = np.zeros(n)
    g[:-1] = -400.0 * x[:-1] * u - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * u
    d = np.zeros(n)
    d[:-1] = 1200.0 * x[:-1] ** 2 - 400.0 * x[1:] + 2.0
    d[1:] += 200.0
    if (np.max(np.abs(g)) > 1e-10 or _solve_tridiagonal(d, -400.0 * x[:-1], g) is None
            or np.max(np.abs(x - 1.0)) < 1e-6):
        return None
    return x


def _solve_tridiagonal(d, e, r):
    """Solve ``T z = r`` for the symmetric tridiagonal ``T`` (diagonal d, off-diagonal e).

    LDL^T elimination without pivoting; returns None if a pivot is <= 0,
    i.e. if ``T`` is not positive definite.
    """
    n = len(d)
    c = np.empty(max(n - 1, 0))
    z = np.empty(n)
    pivot = d[0]
    if not pivot > 0:
        return None
    z[0] = r[0] / pivot
    for i in range(1, n):
        c[i - 1] = e[i - 1] / pivot
        pivot = d[i] - e[i - 1] * c[i - 1]
        if not pivot > 0:
            return None
        z[i] = (r[i] - e[i - 1] * z[i - 1]) / pivot
    for i in range(n - 2, -1, -1):
        z[i] -= c[i] * z[i + 1]
    return z


def rosenbrock(n=2):
    r"""Rosenbrock's banana valley, chained over ``n`` variables.

    .. math:: f(x) = \sum_{i=1}^{n-1} 100 \, (x_{i+1} - x_i^2)^2 + (1 - x_i)^2

    The curved, narrow valley ``x_{i+1} = x_i^2`` is easy to find and slow
    to follow: the classic test of whether an optimizer copes with
    curvature and poor conditioning (the Hessian at the minimum of the 2-D
    function has condition number about 2508).

    Parameters
    ----------
    n : int, optional
        The number of variables, >= 2 (the same chained sum as
        ``scipy.optimize.rosen``).

    Returns
    -------
    Problem
        * global minimum: ``(1, ..., 1)``, ``value`` 0;
        * start: ``(-1.2, 1, -1.2, 1, ...)``, Rosenbrock's own start for
          ``n = 2`` (Rosenbrock 1960; problem 1 of Moré, Garbow & Hillstrom
          1981), repeated;
        * box: ``((-2, 2), (-1, 3))``;
        * local minima: for ``n >= 4``, the one near ``(-1, 1, ..., 1)``
          (value about 3.70 for n = 4, 3.93 for n = 5, tending to 3.9866),
          found when the problem is made by Newton's method from
          ``(-1, 1, ..., 1)`` and listed only if it ends at a vanishing
          gradient and a positive definite Hessian (as it does for every n
          from 4 to 300, and 1000, 5000, 10000). Shang & Qiu (2006) prove it
          exists for ``4 <= n <= 7``. None for ``n = 2`` and ``n = 3``,
          which have no other minimum.

    References
    ----------
    H. H. Rosenbrock (1960), "An automatic method for finding the greatest
    or least value of a function", The Computer Journal 3(3), 175-184.
    J. J. Moré, B. S. Garbow and K. E. Hillstrom (1981), "Testing
    unconstrained optimization software", ACM TOMS 7(1), 17-41.
    Y.-W. Shang and Y.-H. Qiu (2006), "A note on the extended Rosenbrock
    function", Evolutionary Computation 14(1), 119-126.
    S. Kok and C. Sandrock (2009), "Locating and characterizing the
    stationary points of the extended Rosenbrock function", Evolutionary
    Computation 17(3), 437-453.
    """
    n = _dimension("rosenbrock", n)
    start = np.where(np.arange(n) % 2 == 0, -1.2, 1.0)
    local = _rosenbrock_local_minimum(n) if n >= 4 else None
    return Problem("rosenbrock", _rosenbrock, n, [np.ones(n)], 0.0, start, ((-2, 2), (-1, 3)),
                   local_minima=[] if local is None else [local],
                   formula=r"\sum_{i=1}^{n-1} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2")


# ---------------------------------------------------------------------------
# Beale, Booth, Himmelblau, Matyas, three-hump camel
# ---------------------------------------------------------------------------

def _beale(x):
    a, b = x[0], x[1]
    return ((1.5 - a + a * b) ** 2 + (2.25 - a + a * b ** 2) ** 2
            + (2.625 - a + a * b ** 3) ** 2)


def beale():
    r"""Beale's function: a flat plateau and sharp ridges around a narrow valley.

    .. math:: f(x, y) = (1.5 - x + x y)^2 + (2.25 - x + x y^2)^2
              + (2.625 - x + x y^3)^2

    Returns
    -------
    Problem
        * global minimum: ``(3, 0.5)``, ``value`` 0;
        * start: ``(1, 1)`` (problem 5 of Moré, Garbow & Hillstrom 1981);
        * box: ``((-4.5, 4.5), (-4.5, 4.5))``;
        * saddles: ``(0, 1)`` (on the line ``x = 0`` where f is the
          constant 14.203125) and ``(0.10053793732415821,
          -2.6445135850231263)``, the only other stationary points in the
          box.

    References
    ----------
    E. M. L. Beale (1958), "On an iterative method for finding a local
    minimum of a function of more than one variable", Technical Report 25,
    Statistical Techniques Research Group, Princeton University.
    Moré, Garbow & Hillstrom (1981), see :func:`rosenbrock`.
    """
    return Problem("beale", _beale, 2, [(3.0, 0.5)], 0.0, (1.0, 1.0), ((-4.5, 4.5), (-4.5, 4.5)),
                   saddles=[(0.0, 1.0), (0.10053793732415821, -2.6445135850231263)],
                   formula=r"(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2")


def _booth(x):
    return (x[0] + 2.0 * x[1] - 7.0) ** 2 + (2.0 * x[0] + x[1] - 5.0) ** 2


def booth():
    r"""Booth's function: a convex quadratic with a tilted elliptic bowl.

    .. math:: f(x, y) = (x + 2 y - 7)^2 + (2 x + y - 5)^2

    Its Hessian is ``[[10, 8], [8, 10]]`` everywhere: eigenvalues 2 (along
    ``(1, 1)``) and 18 (along ``(1, -1)``), condition number 9, so gradient
    descent converges for a learning rate below ``2 / 18``.

    Returns
    -------
    Problem
        * global minimum: ``(1, 3)``, ``value`` 0;
        * start: ``(-5, -5)``, where f = 884. The literature defines Booth's
          function by its search box ``[-10, 10]^2`` only (Jamil & Yang
          2013) and has no customary start; this one is off both eigen-
          directions, so both matter;
        * box: ``((-10, 10), (-10, 10))``.

    References
    ----------
    Jamil & Yang (2013), see the module's docstring.
    """
    return Problem("booth", _booth, 2, [(1.0, 3.0)], 0.0, (-5.0, -5.0), ((-10, 10), (-10, 10)),
                   formula=r"(x + 2y - 7)^2 + (2x + y - 5)^2")


def _himmelblau(x):
    return (x[0] ** 2 + x[1] - 11.0) ** 2 + (x[0] + x[1] ** 2 - 7.0) ** 2


def himmelblau():
    r"""Himmelblau's function: four global minima of equal value.

    .. math:: f(x, y) = (x^2 + y - 11)^2 + (x + y^2 - 7)^2

    Which minimum an optimizer reaches depends on where it starts and how
    it moves: a lesson in basins of attraction.

    Returns
    -------
    Problem
        * global minima, ``value`` 0: ``(3, 2)``,
          ``(-2.805118086952745, 3.131312518250573)``,
          ``(-3.779310253377747, -3.283185991286169)``,
          ``(3.5844283403304917, -1.8481265269644034)`` (Newton's method on
          the gradient, polished to the float with the smallest gradient:
          the gradient there is below 2e-14);
        * start: ``(0, 0)``, near the local maximum. Himmelblau's function
          is defined by its box and has no customary start;
        * box: ``((-5, 5), (-5, 5))``;
        * saddles: the four between the minima, near ``(3.385, 0.074)``,
          ``(0.087, 2.884)``, ``(-3.073, -0.081)``, ``(-0.128, -1.954)``;
        * maxima: the local maximum near ``(-0.270845, -0.923039)``, where
          f = 181.617. These nine are all its stationary points.

    References
    ----------
    D. M. Himmelblau (1972), Applied Nonlinear Programming, McGraw-Hill.
    """
    return Problem(
        "himmelblau", _himmelblau, 2,
        [(3.0, 2.0), (-2.805118086952745, 3.131312518250573),
         (-3.779310253377747, -3.283185991286169), (3.5844283403304917, -1.8481265269644034)],
        0.0, (0.0, 0.0), ((-5, 5), (-5, 5)),
        saddles=[(3.385154183607021, 0.0738518798377492), (0.08667750455539626, 2.884254701174776),
                 (-3.0730257507643897, -0.08135304428796743),
                 (-0.12796134673068005, -1.9537149802445766)],
        maxima=[(-0.2708445906673476, -0.9230385564799813)],
        formula=r"(x^2 + y - 11)^2 + (x + y^2 - 7)^2")


def _matyas(x):
    return 0.26 * (x[0] ** 2 + x[1] ** 2) - 0.48 * x[0] * x[1]


def matyas():
    r"""Matyas' function: a convex quadratic with a flat valley along ``x = y``.

    .. math:: f(x, y) = 0.26 \, (x^2 + y^2) - 0.48 \, x y

    Its Hessian is ``[[0.52, -0.48], [-0.48, 0.52]]``: eigenvalues 0.04
    (along ``(1, 1)``) and 1 (along ``(1, -1)``), condition number 25.

    Returns
    -------
    Problem
        * global minimum: ``(0, 0)``, ``value`` 0;
        * start: ``(8, 2)``, where f = 10. Matyas' function is defined by
          its box and has no customary start; this one has components along
          both eigen-directions;
        * box: ``((-10, 10), (-10, 10))``.

    References
    ----------
    Jamil & Yang (2013), see the module's docstring.
    """
    return Problem("matyas", _matyas, 2, [(0.0, 0.0)], 0.0, (8.0, 2.0), ((-10, 10), (-10, 10)),
                   formula=r"0.26 (x^2 + y^2) - 0.48 x y")


def _three_hump_camel(x):
    a, b = x[0], x[1]
    return 2.0 * a ** 2 - 1.05 * a ** 4 + a ** 6 / 6.0 + a * b + b ** 2


def three_hump_camel():
    r"""The three-hump camel function: one global and two local minima.

    .. math:: f(x, y) = 2 x^2 - 1.05 x^4 + \frac{x^6}{6} + x y + y^2

    Its stationary points lie on the line ``y = -x / 2``, where
    ``x (x^4 - 4.2 x^2 + 3.5) = 0``, so ``x = 0`` or
    :math:`x^2 = 2.1 \pm \sqrt{0.91}`.

    Returns
    -------
    Problem
        * global minimum: ``(0, 0)``, ``value`` 0;
        * local minima: :math:`\pm (1.7475523458302889, -0.8737761729151444)`
          (:math:`x^2 = 2.1 + \sqrt{0.91}`), where f = 0.29864;
        * saddles: :math:`\pm (1.0705422918236598, -0.5352711459118299)`
          (:math:`x^2 = 2.1 - \sqrt{0.91}`), where f = 0.87736;
        * start: ``(2, 1)``, where f = 4.867. The function has no customary
          start; from this one, plain gradient descent with a small step
          (0.005) ends in the local minimum ``(1.7476, -0.8738)``, and
          heavy-ball momentum (0.9, same step) carries on to the global one;
        * box: ``((-5, 5), (-5, 5))`` (Jamil & Yang 2013); the ``x^6`` term
          makes f reach about 2600 at its edges, so plot log-spaced levels.

    References
    ----------
    Jamil & Yang (2013), see the module's docstring.
    """
    outer = math.sqrt(2.1 + math.sqrt(0.91))
    inner = math.sqrt(2.1 - math.sqrt(0.91))
    return Problem("three_hump_camel", _three_hump_camel, 2, [(0.0, 0.0)], 0.0, (2.0, 1.0),
                   ((-5, 5), (-5, 5)),
                   local_minima=[(outer, -outer / 2), (-outer, outer / 2)],
                   saddles=[(inner, -inner / 2), (-inner, inner / 2)],
                   formula=r"2x^2 - 1.05x^4 + x^6/6 + xy + y^2")


# ---------------------------------------------------------------------------
# Rastrigin, Ackley, Styblinski-Tang
# ---------------------------------------------------------------------------

def _rastrigin(x):
    n = x.shape[0]
    return 10.0 * n + anp.sum(x ** 2 - 10.0 * anp.cos(2.0 * np.pi * x), axis=0)


def _rastrigin_slope(t):
    """d/dt of one term, ``t^2 - 10 cos(2 pi t)``."""
    return 2.0 * t + 20.0 * math.pi * math.sin(2.0 * math.pi * t)


def rastrigin(n=2):
    r"""Rastrigin's function: a bowl covered with a regular egg-box of local minima.

    .. math:: f(x) = 10 n + \sum_{i=1}^{n} \left( x_i^2 - 10 \cos(2 \pi x_i) \right)

    Separable: each variable's term has local minima near the integers and
    maxima near the half-integers, so f has a local minimum near every
    integer point (121 in the 2-D box) and gradient methods stop in the
    first one they meet.

    Parameters
    ----------
    n : int, optional
        The number of variables, >= 2.

    Returns
    -------
    Problem
        * global minimum: ``(0, ..., 0)``, ``value`` 0;
        * local minima: the ``2 n`` nearest, :math:`\pm a e_i` with
          ``a = 0.9949586...`` (the root of :math:`2 t + 20 \pi \sin(2 \pi t)`
          near 1), where f = 0.99496;
        * saddles: the ``2 n`` between them and the global minimum,
          :math:`\pm b e_i` with ``b = 0.5025...`` (the root near 1/2), where
          f = 20.25;
        * start: ``(3.3, -2.7, 3.3, -2.7, ...)``, 0.3 off the integer
          lattice, far from the global minimum: gradient descent stops in
          the local minimum near ``(3, -3, 3, ...)``. The function has no
          customary start;
        * box: ``((-5.12, 5.12), (-5.12, 5.12))``, the customary search box.

    References
    ----------
    L. A. Rastrigin (1974), Systems of Extremal Control (in Russian), Nauka,
    Moscow (the 2-D function). H. Mühlenbein, M. Schomisch and J. Born
    (1991), "The parallel genetic algorithm as function optimizer", Parallel
    Computing 17, 619-632 (the n-dimensional form).
    """
    n = _dimension("rastrigin", n)
    a = _bisect(_rastrigin_slope, 0.9, 1.0)
    b = _bisect(_rastrigin_slope, 0.5, 0.6)
    start = np.where(np.arange(n) % 2 == 0, 3.3, -2.7)
    return Problem("rastrigin", _rastrigin, n, [np.zeros(n)], 0.0, start,
                   ((-5.12, 5.12), (-5.12, 5.12)),
                   local_minima=_axis_points(a, n), saddles=_axis_points(b, n),
                   formula=r"10n + \sum_{i=1}^{n} (x_i^2 - 10 \cos(2 \pi x_i))")


@primitive
def _root_mean_square(x):
    """``sqrt(mean(x**2, axis=0))``, scaled to avoid underflow; its gradient at 0 is 0."""
    scale = np.max(np.abs(x), axis=0)
    safe = np.where(scale > 0, scale, 1.0)
    return scale * np.sqrt(np.mean((x / safe) ** 2, axis=0))


def _root_mean_square_vjp(ans, x):
    n = x.shape[0]

    def vjp(g):
        positive = ans > 0
        safe = anp.where(positive, ans, 1.0)
        return anp.where(positive, g * x / (n * safe), 0.0)
    return vjp


defvjp(_root_mean_square, _root_mean_square_vjp)

_ACKLEY_A, _ACKLEY_B = 20.0, 0.2


def _ackley(x):
    return (_ACKLEY_A * (1.0 - anp.exp(-_ACKLEY_B * _root_mean_square(x)))
            + (np.e - anp.exp(anp.mean(anp.cos(2.0 * np.pi * x), axis=0))))


def ackley(n=2):
    r"""Ackley's function: a nearly flat plain of local minima around a deep funnel.

    .. math:: f(x) = a \left(1 - e^{-b \sqrt{\frac{1}{n} \sum_i x_i^2}}\right)
              + \left(e - e^{\frac{1}{n} \sum_i \cos(2 \pi x_i)}\right),
              \quad a = 20, \; b = 0.2

    (the usual ``-a e^{...} - e^{...} + a + e``, grouped so that ``f(0)`` is
    exactly 0 in floating point).

    **The minimum is a kink.** Near 0 the first term is a cone,
    :math:`a b \|x\| / \sqrt{n}`: f is not differentiable at 0, and its gradient
    has length about :math:`4 / \sqrt{n}` arbitrarily close to 0. The function
    here is the exact Ackley function, not a smoothed one (smoothing, e.g.
    :math:`\sqrt{mean(x^2) + \epsilon}`, would move the minimum's value or the
    function near it). Only the derivative of the root mean square is
    defined specially at 0, as 0 (autograd would give 0/0 = nan): 0 is a
    subgradient there (it is in the cone's subdifferential), so autograd's
    gradient is finite everywhere and zero at the minimum, which satisfies
    the optimality condition of a non-smooth minimum. The second derivative
    autograd reports at 0 is that of the smooth cosine term only. Gradient
    methods with a fixed step do not settle at 0 but rattle around it at a
    distance of the order of ``learning_rate * 4 / sqrt(n)``: a lesson on
    non-smooth minima and decaying step sizes.

    Parameters
    ----------
    n : int, optional
        The number of variables, >= 2.

    Returns
    -------
    Problem
        * global minimum: ``(0, ..., 0)``, ``value`` 0;
        * local minima: the ``2 n`` nearest, :math:`\pm c e_i` with ``c`` about
          0.952 for n = 2 (f = 2.58), found when the problem is made as the
          root of the derivative along an axis. For ``n >= 18`` the cone
          outweighs the cosine term and there are no local minima on the
          axes, so none are listed;
        * saddles: the ``2 n`` between them and the global minimum, at about
          :math:`\pm 0.626 e_i` for n = 2 (f = 3.25); none for ``n >= 18``;
        * start: ``(3.3, -2.7, 3.3, ...)`` as for :func:`rastrigin`; the
          function has no customary start;
        * box: ``((-5, 5), (-5, 5))``.

    References
    ----------
    D. H. Ackley (1987), A Connectionist Machine for Genetic Hillclimbing,
    Kluwer. T. Bäck (1996), Evolutionary Algorithms in Theory and Practice,
    Oxford University Press (the n-dimensional form).
    """
    n = _dimension("ackley", n)

    def slope(t):                       # d/dt f(t e_1), t > 0
        return (_ACKLEY_A * _ACKLEY_B / math.sqrt(n) * math.exp(-_ACKLEY_B * t / math.sqrt(n))
                + math.exp((math.cos(2 * math.pi * t) + n - 1) / n)
                * 2 * math.pi * math.sin(2 * math.pi * t) / n)

    ts = np.linspace(1e-3, 1.5, 3001)
    signs = [slope(t) > 0 for t in ts]
    local, saddles = [], []
    for i in range(len(ts) - 1):
        if signs[i] and not signs[i + 1]:          # f rises, then falls: a maximum along the axis
            saddles = _axis_points(_bisect(slope, ts[i], ts[i + 1]), n)
        elif signs[i + 1] and not signs[i]:        # f falls, then rises: a minimum
            local = _axis_points(_bisect(slope, ts[i], ts[i + 1]), n)
    start = np.where(np.arange(n) % 2 == 0, 3.3, -2.7)
    return Problem("ackley", _ackley, n, [np.zeros(n)], 0.0, start, ((-5, 5), (-5, 5)),
                   local_minima=local, saddles=saddles,
                   formula=r"20 (1 - e^{-0.2 \sqrt{\frac{1}{n} \sum x_i^2}}) + e "
                           r"- e^{\frac{1}{n} \sum \cos(2 \pi x_i)}")


def _styblinski_tang(x):
    return 0.5 * anp.sum(x ** 4 - 16.0 * x ** 2 + 5.0 * x, axis=0)


def _styblinski_tang_slope(t):
    """Twice d/dt of one term: ``4 t^3 - 32 t + 5``."""
    return 4.0 * t ** 3 - 32.0 * t + 5.0


def styblinski_tang(n=2):
    r"""The Styblinski-Tang function: a separable sum of tilted double wells.

    .. math:: f(x) = \frac{1}{2} \sum_{i=1}^{n} \left( x_i^4 - 16 x_i^2 + 5 x_i \right)

    Each term has a deep well at ``t_1 = -2.903534...``, a shallower one at
    ``t_3 = 2.746803...`` and a maximum between them at ``t_2 =
    0.156731...`` (the roots of ``4 t^3 - 32 t + 5``), so f has ``2^n``
    minima, ``3^n`` stationary points in all.

    Parameters
    ----------
    n : int, optional
        The number of variables, >= 2.

    Returns
    -------
    Problem
        * global minimum: ``(t_1, ..., t_1)``, ``value``
          ``-39.16616570377142 n``;
        * local minima: for ``n <= 3`` all ``2^n - 1``; for larger ``n``
          the ``n`` that differ from the global one in one coordinate
          (``t_3`` in place of ``t_1``);
        * saddles: for ``n <= 3`` all (each coordinate ``t_1``, ``t_2`` or
          ``t_3``, with at least one ``t_2`` and one other); for larger
          ``n`` the ``n`` with one coordinate ``t_2`` and the others ``t_1``;
        * maxima: ``(t_2, ..., t_2)``;
        * start: ``(0, ..., 0)``, near the maximum (f = 0 there); the
          function has no customary start;
        * box: ``((-5, 5), (-5, 5))``.

    References
    ----------
    M. A. Styblinski and T.-S. Tang (1990), "Experiments in nonconvex
    optimization: stochastic approximation with function smoothing and
    simulated annealing", Neural Networks 3(4), 467-483.
    """
    n = _dimension("styblinski_tang", n)
    t1 = _bisect(_styblinski_tang_slope, -3.0, -2.8)
    t2 = _bisect(_styblinski_tang_slope, 0.0, 0.5)
    t3 = _bisect(_styblinski_tang_slope, 2.5, 3.0)
    one = 0.5 * (t1 ** 4 - 16.0 * t1 ** 2 + 5.0 * t1)
    local, saddles = [], []
    if n <= 3:
        for combo in np.array(np.meshgrid(*[[t1, t2, t3]] * n, indexing="ij")).reshape(n, -1).T:
            has_max = np.any(combo == t2)
            if not has_max and np.any(combo == t3):
                local.append(combo)
            elif has_max and not np.all(combo == t2):
                saddles.append(combo)
    else:
        for i in range(n):
            p = np.full(n, t1)
            p[i] = t3
            local.append(p)
            q = np.full(n, t1)
            q[i] = t2
            saddles.append(q)
    return Problem("styblinski_tang", _styblinski_tang, n, [np.full(n, t1)], n * one, np.zeros(n),
                   ((-5, 5), (-5, 5)), local_minima=local, saddles=saddles,
                   maxima=[np.full(n, t2)],
                   formula=r"\frac{1}{2} \sum_{i=1}^{n} (x_i^4 - 16 x_i^2 + 5 x_i)")


# ---------------------------------------------------------------------------
# quadratics and saddles for lessons
# ---------------------------------------------------------------------------

def ill_conditioned_quadratic(condition=100.0, n=2, angle=0.0):
    r"""A quadratic bowl with a chosen condition number, for momentum lessons.

    .. math:: f(x) = \frac{1}{2} x^T A x, \qquad A = R \, \mathrm{diag}(\lambda) \, R^T,
              \qquad \lambda_i = \kappa^{i / (n - 1)}, \; i = 0, \dots, n-1

    The eigenvalues run geometrically from 1 to :math:`\kappa` =
    ``condition``; ``R`` rotates the first two variables by ``angle``, so
    the flattest direction is :math:`(\cos\theta, \sin\theta, 0, ...)` and the
    steepest (for n = 2) :math:`(-\sin\theta, \cos\theta)`. Gradient descent
    converges for a learning rate below :math:`2 / \kappa`, at best (learning
    rate :math:`2 / (1 + \kappa)`) by a factor :math:`(\kappa - 1) / (\kappa + 1)`
    per step; heavy-ball momentum tuned for the bowl by :math:`(\sqrt\kappa - 1)
    / (\sqrt\kappa + 1)` (Polyak 1964).

    Parameters
    ----------
    condition : float, optional
        The condition number :math:`\kappa`, >= 1.
    n : int, optional
        The number of variables, >= 2.
    angle : float, optional
        The rotation, in radians, of the eigen-directions in the first two
        variables.

    Returns
    -------
    Problem
        * global minimum: ``(0, ..., 0)``, ``value`` 0;
        * start: ``R u`` with :math:`u_i = \sqrt{2 / \lambda_i}`: a loss of
          exactly 1 along each eigen-direction (f = n), so the flat and the
          steep directions both matter; for the defaults ``(1.4142,
          0.1414)``;
        * box: the square ``(-w, w)^2`` with ``w`` = 1.25 times the length
          of the start's first two coordinates, rounded up to a tenth (1.8
          for the defaults). Equal sides show the ellipses' true shape.

    References
    ----------
    B. T. Polyak (1964), "Some methods of speeding up the convergence of
    iteration methods", USSR Computational Mathematics and Mathematical
    Physics 4(5), 1-17. J. Nocedal and S. J. Wright (2006), Numerical
    Optimization, 2nd ed., Springer, section 3.3. G. Goh (2017), "Why
    momentum really works", Distill.
    """
    call = "ill_conditioned_quadratic"
    condition = number(call, "condition", condition, low=1)
    n = _dimension(call, n)
    angle = number(call, "angle", angle)
    eigenvalues = condition ** (np.arange(n) / (n - 1))
    rotation = np.eye(n)
    c, s = math.cos(angle), math.sin(angle)
    rotation[:2, :2] = [[c, -s], [s, c]]
    matrix = rotation @ np.diag(eigenvalues) @ rotation.T
    matrix = 0.5 * (matrix + matrix.T)
    start = rotation @ np.sqrt(2.0 / eigenvalues)
    w = math.ceil(12.5 * float(np.hypot(start[0], start[1])) - 1e-9) / 10.0

    def quadratic(x):
        return 0.5 * anp.sum(x * anp.tensordot(matrix, x, axes=1), axis=0)

    shown = f"{condition:g}"
    return Problem("ill_conditioned_quadratic", quadratic, n, [np.zeros(n)], 0.0, start,
                   ((-w, w), (-w, w)),
                   formula=r"\frac{1}{2} x^T A x, \; \kappa(A) = " + shown)


def _saddle(x):
    return x[0] ** 2 - x[1] ** 2 + x[1] ** 4 / 4.0


def saddle():
    r"""A saddle at the origin between two minima: does the optimizer escape?

    .. math:: f(x, y) = x^2 - y^2 + \frac{y^4}{4}

    The pure saddle ``x^2 - y^2`` has no minimum (it falls to minus
    infinity along ``y``); the quartic term keeps the saddle at the origin
    (Hessian ``diag(2, -2)``) and adds two minima where ``y^3 = 2 y``.

    Returns
    -------
    Problem
        * global minima: :math:`(0, \pm\sqrt 2)`, ``value`` -1;
        * saddles: ``(0, 0)``, f = 0;
        * start: ``(1, 1e-4)``, almost on the ridge ``y = 0`` that leads
          into the saddle: gradient descent first slides toward the saddle
          (x shrinks by ``1 - 2 lr`` a step) and leaves it only as the tiny
          y grows (by ``1 + 2 lr`` a step): about 56 steps for a learning
          rate of 0.1, most of them spent near the saddle. From ``y = 0``
          exactly it never escapes;
        * box: ``((-2, 2), (-2, 2))``.

    References
    ----------
    Y. Dauphin, R. Pascanu, C. Gulcehre, K. Cho, S. Ganguli and Y. Bengio
    (2014), "Identifying and attacking the saddle point problem in
    high-dimensional non-convex optimization", NeurIPS.
    """
    root2 = math.sqrt(2.0)
    return Problem("saddle", _saddle, 2, [(0.0, root2), (0.0, -root2)], -1.0, (1.0, 1e-4),
                   ((-2, 2), (-2, 2)), saddles=[(0.0, 0.0)],
                   formula=r"x^2 - y^2 + y^4/4")


def _monkey_saddle(x):
    return x[0] ** 3 - 3.0 * x[0] * x[1] ** 2 + 0.75 * (x[0] ** 2 + x[1] ** 2) ** 2


def monkey_saddle():
    r"""A monkey saddle (three valleys meet at a flat point) walled in by a quartic.

    .. math:: f(x, y) = x^3 - 3 x y^2 + \frac{3}{4} (x^2 + y^2)^2

    In polar coordinates :math:`f = r^3 \cos 3\theta + \frac34 r^4`. The pure
    monkey saddle ``x^3 - 3 x y^2`` has no minimum (it falls to minus
    infinity in three directions); the quartic wall, invisible near the
    origin, turns the three valleys into three minima. The origin is a
    *degenerate* saddle: gradient and Hessian are both zero there, so
    second-order information sees nothing, and gradient descent slows down
    by a lot near it (the gradient is of order ``r^2``).

    Returns
    -------
    Problem
        * global minima: ``(-1, 0)`` and :math:`(1/2, \pm\sqrt 3 / 2)` (at
          ``r = 1``, :math:`\cos 3\theta = -1`), ``value`` -1/4; these and the
          origin are all its stationary points;
        * saddles: ``(0, 0)``, degenerate (zero Hessian), f = 0;
        * start: ``(1, 1e-3)``: gradient descent follows the ridge ``y = 0``
          toward the origin, slows down, and turns off to the minimum
          :math:`(1/2, \sqrt 3 / 2)` (about 140 steps for a learning rate of
          0.1). On ``y = 0`` exactly it creeps toward the origin forever;
        * box: ``((-2, 2), (-2, 2))``.
    """
    half = math.sqrt(3.0) / 2.0
    return Problem("monkey_saddle", _monkey_saddle, 2, [(-1.0, 0.0), (0.5, half), (0.5, -half)],
                   -0.25, (1.0, 1e-3), ((-2, 2), (-2, 2)), saddles=[(0.0, 0.0)],
                   formula=r"x^3 - 3xy^2 + \frac{3}{4}(x^2 + y^2)^2")


def all_problems():
    """One 2-D instance of each problem of this module, new ones at each call, for galleries.

    Returns
    -------
    list of Problem
        rosenbrock, beale, booth, himmelblau, matyas, three_hump_camel,
        rastrigin, ackley, styblinski_tang, ill_conditioned_quadratic,
        saddle, monkey_saddle (each with its default arguments).
    """
    return [rosenbrock(), beale(), booth(), himmelblau(), matyas(), three_hump_camel(),
            rastrigin(), ackley(), styblinski_tang(), ill_conditioned_quadratic(), saddle(),
            monkey_saddle()]


# ---------------------------------------------------------------------------
# data sets
# ---------------------------------------------------------------------------

def _seed(call, seed):
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)):
        if seed < 0:
            raise ValueError(f"{call}(seed={seed!r}): seed must be >= 0; got {seed}")
        return np.random.default_rng(int(seed))
    raise TypeError(f"{call}(seed={seed!r}): seed must be an int >= 0 or a "
                    f"numpy.random.Generator; got {type(seed).__name__}")


#: Distance between neighbouring centres in :func:`blobs`.
BLOB_SPACING = 6.0


def blobs(n_samples=200, centers=3, n_features=2, spread=1.0, seed=0):
    r"""Gaussian blobs for classification lessons.

    The ``centers`` class centres are placed the same way for every seed:
    on a circle in the plane of the first two features, ``k``-th at angle
    :math:`2 \pi k / centers`, with neighbouring centres :data:`BLOB_SPACING` =
    6 apart (radius :math:`3 / \sin(\pi / centers)`); on a line with spacing 6,
    centred on 0, when ``n_features`` is 1; at the origin when ``centers``
    is 1. The other features have centre 0 (pure noise). Each sample is its
    class's centre plus ``spread`` times standard normal noise in every
    feature, so ``spread`` alone sets how much the classes overlap (they
    are well separated at 1, overlap at 3).

    Parameters
    ----------
    n_samples : int, optional
        The number of samples, >= ``centers``.
    centers : int, optional
        The number of classes, >= 1.
    n_features : int, optional
        The number of features, >= 1.
    spread : float, optional
        The standard deviation of each blob, >= 0.
    seed : int or numpy.random.Generator, optional
        The seed (>= 0) of the noise and the order of the samples, or a
        generator to draw from.

    Returns
    -------
    X : ndarray, shape (n_samples, n_features), float64
        The samples, in random order.
    y : ndarray, shape (n_samples,), int64
        The labels ``0 .. centers - 1``, balanced: each class has
        ``n_samples // centers`` or one more samples.
    """
    call = "blobs"
    n_samples = number(call, "n_samples", n_samples, low=1, integer=True)
    centers = number(call, "centers", centers, low=1, integer=True)
    n_features = number(call, "n_features", n_features, low=1, integer=True)
    spread = number(call, "spread", spread, low=0)
    rng = _seed(call, seed)
    if n_samples < centers:
        raise ValueError(f"{call}(n_samples={n_samples}): n_samples must be >= centers "
                         f"({centers}) so that every class has a sample; got {n_samples}")
    means = np.zeros((centers, n_features))
    if centers > 1 and n_features == 1:
        means[:, 0] = BLOB_SPACING * (np.arange(centers) - (centers - 1) / 2)
    elif centers > 1:
        radius = BLOB_SPACING / 2 / math.sin(math.pi / centers)
        angles = 2 * np.pi * np.arange(centers) / centers
        means[:, 0] = radius * np.cos(angles)
        means[:, 1] = radius * np.sin(angles)
    y = rng.permutation(np.arange(n_samples) % centers).astype(np.int64)
    X = means[y] + spread * rng.standard_normal((n_samples, n_features))
    return X, y


_OSCILLATOR_TRUTH = {"A": 2.0, "tau": 3.0, "omega": 2.5, "phi": 0.3, "c": 0.1}


def _damped_oscillator_model(t, params):
    """``A exp(-t / tau) cos(omega t + phi) + c`` with the params of a dict."""
    return (params["A"] * anp.exp(-t / params["tau"])
            * anp.cos(params["omega"] * t + params["phi"]) + params["c"])


def damped_oscillator(n=200, noise=0.05, seed=0, t_max=10.0):
    r"""Noisy samples of a damped oscillation, for curve-fitting lessons.

    .. math:: y(t) = A \, e^{-t / \tau} \cos(\omega t + \phi) + c + \sigma \varepsilon,
              \qquad \varepsilon \sim N(0, 1)

    with ``A = 2``, ``tau = 3``, ``omega = 2.5``, ``phi = 0.3``, ``c =
    0.1`` and :math:`\sigma` = ``noise``, at ``n`` evenly spaced times from 0 to
    ``t_max``.

    Parameters
    ----------
    n : int, optional
        The number of samples, >= 2.
    noise : float, optional
        The standard deviation of the noise, >= 0.
    seed : int or numpy.random.Generator, optional
        The seed (>= 0) of the noise, or a generator to draw from.
    t_max : float, optional
        The last time, > 0.

    Returns
    -------
    t : ndarray, shape (n,)
        The times, ``linspace(0, t_max, n)``.
    y : ndarray, shape (n,)
        The noisy samples.
    truth : dict of float
        The true parameters ``{"A", "tau", "omega", "phi", "c"}`` (a new
        dict at each call).
    model : callable
        ``model(t, params)``, the curve written with ``autograd.numpy``,
        ``params`` a dict with those keys: the form
        :func:`npdownhill.curve_fit` takes (``f(xdata, params)``);
        ``model(t, truth)`` is the noise-free curve.

    Examples
    --------
    >>> import numpy as np, npdownhill as dh
    >>> from npdownhill.problems import damped_oscillator
    >>> t, y, truth, model = damped_oscillator()
    >>> p0 = {"A": np.array(1.0), "tau": np.array(2.0), "omega": np.array(2.3),
    ...       "phi": np.array(0.0), "c": np.array(0.0)}
    >>> popt, pcov = dh.curve_fit(model, t, y, p0)
    >>> round(float(popt["omega"]), 2)
    2.5
    """
    call = "damped_oscillator"
    n = number(call, "n", n, low=2, integer=True)
    noise = number(call, "noise", noise, low=0)
    rng = _seed(call, seed)
    t_max = number(call, "t_max", t_max, low=0, low_open=True)
    t = np.linspace(0.0, t_max, n)
    truth = dict(_OSCILLATOR_TRUTH)
    y = _damped_oscillator_model(t, truth) + noise * rng.standard_normal(n)
    return t, y, truth, _damped_oscillator_model
