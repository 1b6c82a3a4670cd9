"""Independent textbook transcriptions of npdownhill's update rules.

This module is the *oracle* of the test suite.  It deliberately shares no code
with the package (it never imports ``npdownhill``) and is written for clarity,
not speed: every rule works on one flat float64 vector, builds new arrays
instead of updating in place, and follows the defining equations line by line.

Notation used in every rule:

* ``g``  -- the gradient at the current iterate ``x``;
* ``t``  -- the update count, starting at 1;
* ``u``  -- the amount the rule "would subtract" from ``x``.

Every rule has the signature ``rule(g, state, t, **hyper) -> (u, new_state)``
where ``state`` is a plain dict of arrays (empty before the first update).
The momentum wrapper and the decoupled weight decay are applied by
:func:`trajectory`, the same way for every algorithm:

* ``mu == 0`` and not Nesterov:  ``x <- x - u``
* classical momentum:            ``v <- mu v - u;  x <- x + v``
* Nesterov momentum:             ``v <- mu v - u;  x <- x + mu v - u``
* weight decay ``wd > 0``:       the step additionally gets ``- lr wd x``
  (``x`` before the update), after the momentum wrapper.

Test problems (:func:`quadratic`, :func:`rosenbrock`,
:func:`ill_conditioned_quadratic`) return ``(f, grad, hvp, x0)`` with
hand-written analytic derivatives.
"""

import math

import numpy as np


def halflife_to_rho(halflife):
    """Decay factor whose weight halves after ``halflife`` updates."""
    return math.exp(-math.log(2.0) / halflife)


# --------------------------------------------------------------------------
# Default hyperparameters, exactly as specified for the package.
# ``momentum`` and ``weight_decay`` are handled by :func:`trajectory`.
# --------------------------------------------------------------------------

ADAM_LIKE = dict(learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8)

DEFAULTS = {
    "sgd": dict(learning_rate=0.01),
    "momentum": dict(learning_rate=0.01, momentum=0.9),
    "nag": dict(learning_rate=0.01, momentum=0.9, nesterov=True),
    "rmsprop": dict(learning_rate=1e-3, rho=0.9, epsilon=1e-6,
                    centered=False, epsilon_inside=True),
    "rprop": dict(learning_rate=0.1, rprop_increase=1.2, rprop_decrease=0.5,
                  rprop_min_step=1e-6, rprop_max_step=50.0),
    "adagrad": dict(learning_rate=1.0, epsilon=1e-6, epsilon_inside=True,
                    initial_accumulator=0.0),
    "adadelta": dict(learning_rate=1.0, rho=0.95, epsilon=1e-6),
    # ESGD: rho = exp(-ln 2 / 14) = 0.951695..., i.e. a half-life of 14
    # updates ("0.9517" in the specification is this number rounded).
    "esgd": dict(learning_rate=0.1, rho=halflife_to_rho(14.0), epsilon=1e-8),
    "adam": dict(ADAM_LIKE, epsilon_hat=False),
    "amsgrad": dict(ADAM_LIKE, epsilon_hat=False),
    "adamw": dict(ADAM_LIKE, epsilon_hat=False, weight_decay=0.01),
    "adamax": dict(learning_rate=2e-3, beta1=0.9, beta2=0.999, epsilon=1e-8,
                   epsilon_in_max=False),
    "nadam": dict(learning_rate=2e-3, beta1=0.9, beta2=0.999, epsilon=1e-8,
                  momentum_decay=4e-3),
    "radam": dict(ADAM_LIKE),
}

ALGORITHMS = tuple(DEFAULTS)


# --------------------------------------------------------------------------
# The rules.
# --------------------------------------------------------------------------

def sgd(g, state, t, learning_rate):
    u = learning_rate * g
    return u, state


def rmsprop(g, state, t, learning_rate, rho, epsilon, centered, epsilon_inside):
    r = state.get("r", np.zeros_like(g))
    f = state.get("f", np.zeros_like(g))

    r = rho * r + (1.0 - rho) * g ** 2
    if centered:
        f = rho * f + (1.0 - rho) * g
        second_moment = r - f ** 2
    else:
        second_moment = r

    if epsilon_inside:
        u = learning_rate * g / np.sqrt(second_moment + epsilon)
    else:
        u = learning_rate * g / (np.sqrt(second_moment) + epsilon)
    return u, {"r": r, "f": f}


def rprop(g, state, t, learning_rate, rprop_increase, rprop_decrease,
          rprop_min_step, rprop_max_step):
    """iRprop- (the variant torch.optim.Rprop implements)."""
    s = state.get("s", np.full_like(g, learning_rate))
    gp = state.get("gp", np.zeros_like(g))

    prod = g * gp
    s = np.where(prod > 0, s * rprop_increase, s)
    s = np.where(prod < 0, s * rprop_decrease, s)
    s = np.clip(s, rprop_min_step, rprop_max_step)
    geff = np.where(prod < 0, 0.0, g)
    u = s * np.sign(geff)
    return u, {"s": s, "gp": geff}


def adagrad(g, state, t, learning_rate, epsilon, epsilon_inside,
            initial_accumulator):
    a = state.get("a", np.full_like(g, initial_accumulator))

    a = a + g ** 2
    if epsilon_inside:
        u = learning_rate * g / np.sqrt(a + epsilon)
    else:
        u = learning_rate * g / (np.sqrt(a) + epsilon)
    return u, {"a": a}


def adadelta(g, state, t, learning_rate, rho, epsilon):
    a = state.get("a", np.zeros_like(g))
    dx = state.get("dx", np.zeros_like(g))

    a = rho * a + (1.0 - rho) * g ** 2
    d = g * np.sqrt(dx + epsilon) / np.sqrt(a + epsilon)   # uses the OLD dx
    dx = rho * dx + (1.0 - rho) * d ** 2
    u = learning_rate * d
    return u, {"a": a, "dx": dx}


def esgd(g, state, t, hv, learning_rate, rho, epsilon):
    """Equilibrated SGD.  ``hv`` = H(x) r for this update's random r."""
    D = state.get("D", np.zeros_like(g))

    D = rho * D + (1.0 - rho) * hv ** 2
    Dhat = D / (1.0 - rho ** t)
    u = learning_rate * g / (np.sqrt(Dhat) + epsilon)
    return u, {"D": D}


def adam(g, state, t, learning_rate, beta1, beta2, epsilon, epsilon_hat):
    m = state.get("m", np.zeros_like(g))
    v = state.get("v", np.zeros_like(g))

    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g ** 2
    bc1 = 1.0 - beta1 ** t
    bc2 = 1.0 - beta2 ** t
    if epsilon_hat:
        u = learning_rate * math.sqrt(bc2) / bc1 * m / (np.sqrt(v) + epsilon)
    else:
        u = learning_rate * (m / bc1) / (np.sqrt(v / bc2) + epsilon)
    return u, {"m": m, "v": v}


def amsgrad(g, state, t, learning_rate, beta1, beta2, epsilon, epsilon_hat):
    m = state.get("m", np.zeros_like(g))
    v = state.get("v", np.zeros_like(g))
    vmax = state.get("vmax", np.zeros_like(g))

    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g ** 2
    vmax = np.maximum(vmax, v)
    bc1 = 1.0 - beta1 ** t
    bc2 = 1.0 - beta2 ** t
    if epsilon_hat:
        u = learning_rate * math.sqrt(bc2) / bc1 * m / (np.sqrt(vmax) + epsilon)
    else:
        u = learning_rate * (m / bc1) / (np.sqrt(vmax / bc2) + epsilon)
    return u, {"m": m, "v": v, "vmax": vmax}


def adamax(g, state, t, learning_rate, beta1, beta2, epsilon, epsilon_in_max):
    m = state.get("m", np.zeros_like(g))
    w = state.get("w", np.zeros_like(g))

    m = beta1 * m + (1.0 - beta1) * g
    bc1 = 1.0 - beta1 ** t
    if epsilon_in_max:                       # torch's form
        w = np.maximum(beta2 * w, np.abs(g) + epsilon)
        u = learning_rate / bc1 * m / w
    else:                                    # Lasagne's form
        w = np.maximum(beta2 * w, np.abs(g))
        u = learning_rate / bc1 * m / (w + epsilon)
    return u, {"m": m, "w": w}


def nadam(g, state, t, learning_rate, beta1, beta2, epsilon, momentum_decay):
    """NAdam as in torch.optim.NAdam (Dozat's momentum schedule)."""
    m = state.get("m", np.zeros_like(g))
    v = state.get("v", np.zeros_like(g))
    P_prev = state.get("P", 1.0)             # prod of mu_1..mu_{t-1}

    mu_t = beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    P_t = P_prev * mu_t

    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g ** 2
    bc2 = 1.0 - beta2 ** t
    denom = np.sqrt(v / bc2) + epsilon
    u = (learning_rate * (1.0 - mu_t) / (1.0 - P_t) * g / denom
         + learning_rate * mu_next / (1.0 - P_t * mu_next) * m / denom)
    return u, {"m": m, "v": v, "P": P_t}


def radam(g, state, t, learning_rate, beta1, beta2, epsilon):
    """Rectified Adam as in torch.optim.RAdam."""
    m = state.get("m", np.zeros_like(g))
    v = state.get("v", np.zeros_like(g))

    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g ** 2
    bc1 = 1.0 - beta1 ** t
    bc2 = 1.0 - beta2 ** t
    mhat = m / bc1
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    rho_t = rho_inf - 2.0 * t * beta2 ** t / bc2
    if rho_t > 5.0:
        rect = math.sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                         / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
        u = learning_rate * mhat * rect * math.sqrt(bc2) / (np.sqrt(v) + epsilon)
    else:
        u = learning_rate * mhat
    return u, {"m": m, "v": v}


RULES = {
    "sgd": sgd,
    "momentum": sgd,
    "nag": sgd,
    "rmsprop": rmsprop,
    "rprop": rprop,
    "adagrad": adagrad,
    "adadelta": adadelta,
    "esgd": esgd,
    "adam": adam,
    "amsgrad": amsgrad,
    "adamw": adam,
    "adamax": adamax,
    "nadam": nadam,
    "radam": radam,
}


# --------------------------------------------------------------------------
# The driver.
# --------------------------------------------------------------------------

def trajectory(algo, grad_fn, x0, steps, momentum=None, nesterov=False,
               hvp_fn=None, seed=None, noise=None, **hyper):
    """Iterates x_0 .. x_steps of ``algo`` as an array of shape (steps+1, n).

    ``momentum=None`` means the algorithm's default (0.9 for ``momentum`` and
    ``nag``, 0 for everything else).  ``nag`` always uses Nesterov momentum.
    ``hyper`` takes canonical hyperparameter names only (no aliases);
    ``weight_decay`` is accepted by every algorithm.
    ESGD additionally needs ``hvp_fn(x, v)`` and ``seed``: each update draws
    ``r = rng.standard_normal(n)`` from ``rng = np.random.default_rng(seed)``.

    ``noise`` is a testing aid, None for the exact transcription: a function
    applied to the gradient (and Hessian-vector product) and to every
    quantity carried from one update to the next (u, the rule's state, the
    velocity, the new x), used by test_reference.py to
    inject rounding-sized perturbations and measure how much the trajectory
    amplifies them.
    """
    if noise is None:
        def noise(a):
            return a

    settings = dict(DEFAULTS[algo])
    settings.setdefault("momentum", 0.0)
    settings.setdefault("nesterov", False)
    settings.setdefault("weight_decay", 0.0)
    for name, value in hyper.items():
        if name not in settings:
            raise TypeError(f"{algo}: unknown hyperparameter {name!r}")
        settings[name] = value
    if momentum is not None:
        settings["momentum"] = momentum
    if nesterov:
        settings["nesterov"] = True

    mu = settings.pop("momentum")
    use_nesterov = settings.pop("nesterov")
    wd = settings.pop("weight_decay")
    lr = settings["learning_rate"]
    rule = RULES[algo]

    x = np.array(x0, dtype=np.float64).ravel().copy()
    n = x.size
    if algo == "esgd":
        if hvp_fn is None or seed is None:
            raise TypeError("esgd needs hvp_fn and seed")
        rng = np.random.default_rng(seed)

    v = np.zeros(n)
    state = {}
    xs = [x.copy()]
    for t in range(1, steps + 1):
        g = noise(np.asarray(grad_fn(x), dtype=np.float64))
        if algo == "esgd":
            r = rng.standard_normal(n)
            hv = noise(np.asarray(hvp_fn(x, r), dtype=np.float64))
            u, state = rule(g, state, t, hv, **settings)
        else:
            u, state = rule(g, state, t, **settings)
        u = noise(u)
        state = {name: noise(value) for name, value in state.items()}

        if mu == 0 and not use_nesterov:
            step = -u
        elif not use_nesterov:
            v = noise(mu * v - u)
            step = v
        else:
            v = noise(mu * v - u)
            step = mu * v - u

        if wd > 0:
            x_new = x + step - lr * wd * x
        else:
            x_new = x + step
        x = noise(x_new)
        xs.append(x.copy())
    return np.array(xs)


# --------------------------------------------------------------------------
# Test problems: (f, grad, hvp, x0) with hand-written derivatives.
# --------------------------------------------------------------------------

def quadratic_data(n, seed):
    """(A, b, x0) for the random quadratic of :func:`quadratic`.

    A = Q diag(lam) Q^T with Q a random orthogonal matrix and eigenvalues
    lam geometrically spaced from 1 to a random condition number in
    [20, 80] (so the largest eigenvalue, and the Lipschitz constant, is at
    most 80).
    """
    rng = np.random.default_rng(seed)
    cond = rng.uniform(20.0, 80.0)
    lam = np.geomspace(1.0, cond, n)
    Q, R = np.linalg.qr(rng.standard_normal((n, n)))
    Q = Q * np.sign(np.diag(R))          # make Q unique (Haar distributed)
    A = Q @ np.diag(lam) @ Q.T
    A = 0.5 * (A + A.T)                  # exactly symmetric
    b = rng.standard_normal(n)
    x0 = 2.0 * rng.standard_normal(n)
    return A, b, x0


def quadratic_from(A, b, x0):
    """(f, grad, hvp, x0) for f(x) = 0.5 x^T A x - b^T x."""
    A = np.array(A, dtype=np.float64)
    b = np.array(b, dtype=np.float64)

    def f(x):
        return 0.5 * x @ (A @ x) - b @ x

    def grad(x):
        return A @ x - b

    def hvp(x, v):
        return A @ v

    return f, grad, hvp, np.array(x0, dtype=np.float64)


def quadratic(n, seed):
    """Random SPD quadratic 0.5 x^T A x - b^T x: (f, grad, hvp, x0)."""
    return quadratic_from(*quadratic_data(n, seed))


def rosenbrock():
    """2-D Rosenbrock f = (1-x)^2 + 100 (y-x^2)^2 from (-3, -3)."""

    def f(p):
        x, y = p
        return (1.0 - x) ** 2 + 100.0 * (y - x ** 2) ** 2

    def grad(p):
        x, y = p
        dfdx = -2.0 * (1.0 - x) - 400.0 * x * (y - x ** 2)
        dfdy = 200.0 * (y - x ** 2)
        return np.array([dfdx, dfdy])

    def hessian(p):
        x, y = p
        return np.array([[2.0 - 400.0 * y + 1200.0 * x ** 2, -400.0 * x],
                         [-400.0 * x, 200.0]])

    def hvp(p, v):
        return hessian(p) @ v

    return f, grad, hvp, np.array([-3.0, -3.0])


def ill_conditioned_quadratic(n=8):
    """Diagonal quadratic 0.5 sum h_i x_i^2 with h from 1 to 1e4.

    The starting point has |x0_i| = 1/sqrt(h_i) (alternating signs), so that
    every coordinate contributes the same 0.5 to the initial loss (f(x0) =
    n/2) and the minimum is f = 0 at x = 0.
    """
    h = np.geomspace(1.0, 1e4, n)
    signs = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    x0 = signs / np.sqrt(h)

    def f(x):
        return 0.5 * np.sum(h * x ** 2)

    def grad(x):
        return h * x

    def hvp(x, v):
        return h * v

    return f, grad, hvp, x0
