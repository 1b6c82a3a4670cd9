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
(ESGD's takes the Hessian-vector product ``hv`` after ``t``)
where ``state`` is a plain dict of arrays (empty before the first update).
The momentum wrapper and the decoupled weight decay are applied by
:func:`trajectory`, the same way for every algorithm:

* ``mu == 0`` and not Nesterov:  ``x <- x - u``
* classical momentum:            ``v <- mu v - u;  x <- x + v``
* Nesterov momentum:             ``v <- mu v - u;  x <- x + mu v - u``
* weight decay ``wd > 0``:       the step additionally gets ``- lr wd x``
  (``x`` before the update), after the momentum wrapper.

Every rule is followed by the records of the algorithm names that use it
(one :class:`Record` per name, in :data:`RECORDS`): the transcription, its
default hyperparameters, and all the per-algorithm settings of the test suite
(convergence settings, non-default hyperparameter sets, aliases, ...).  Every
test that runs "for every algorithm" parametrizes over the package's registry
and looks its settings up here, so adding a rule means adding its
transcription and its record to this file and nothing else in tests/
(test_algorithms.py fails, saying so, while a registered algorithm has no
record or a record has no registered algorithm) -- except that a rule
recorded with a torch counterpart also needs its cases in
data/torch_trajectories.npz (data/make_torch_reference.py).

Test problems (:func:`quadratic`, :func:`rosenbrock`,
:func:`ill_conditioned_quadratic`) return ``(f, grad, hvp, x0)`` with
hand-written analytic derivatives.
"""

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


def halflife_to_rho(halflife):
    """Decay factor whose weight halves after ``halflife`` updates."""
    return math.exp(-math.log(2.0) / halflife)


HL = halflife_to_rho


# --------------------------------------------------------------------------
# One record per algorithm name.
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Record:
    """Everything the tests know about one algorithm name.

    The rule itself:

    ``rule``
        The transcription, ``rule(g, state, t, **hyper) -> (u, new_state)``
        (with ``hv`` after ``t`` when ``needs_loss``).
    ``defaults``
        Its default hyperparameters, exactly as specified for the package.
        ``momentum``, ``nesterov`` and ``weight_decay`` are handled by
        :func:`trajectory` (0, False and 0 unless given here).
    ``class_name``
        The class the package exports for it (test_api.py).
    ``needs_loss``
        The rule needs the loss, not just a gradient (ESGD: Hessian-vector
        products ``H(x) r`` with a random ``r``); the package is driven with
        ``step()`` and the transcription gets ``hvp_fn`` and ``seed``.
    ``torch_counterpart``
        torch.optim has the rule: data/torch_trajectories.npz must hold cases
        for it (test_torch_reference.py; the file decides which cases run).
    ``optax_counterpart``
        optax has the rule: data/optax_trajectories.npz must hold cases for
        it (test_optax_reference.py, data/make_optax_reference.py).
    ``takes_x``
        The rule also reads the current iterate (Prodigy's inner product
        with ``x0 - x``) and scales the decoupled weight decay itself: it is
        called as ``rule(g, state, t, x=x, **hyper)`` and returns
        ``(u, new_state, decay_lr)``, and :func:`trajectory` subtracts
        ``decay_lr * wd * x`` instead of ``lr * wd * x``.
    ``line_search``
        The rule finds each step by a line search along its own direction
        (the quasi-Newton rules): the package is driven with ``step()``,
        ``rule`` is the transcription of the direction,
        ``rule(g, pairs, **hyper) -> d`` with ``pairs`` the curvature pairs
        ``(s, y)`` seen so far (oldest first), and test_reference.py checks
        every step the package takes against it (the step lengths come from
        the line search, which is checked on its own). The trajectory tables
        below do not apply (``custom`` is empty).
    ``keep_default``
        Hyperparameters the shared battery of test_algorithms.py leaves at
        the default instead of its own test values (NAG keeps its Nesterov
        momentum 0.9; the quasi-Newton rules take no momentum).
    ``start``
        ``start(x0) -> state``: the rule's state before the first update,
        for rules that start from the params (the schedule-free rules:
        z = x = x0); None = an empty dict.
    ``takes_momentum``
        False for rules that refuse the momentum wrapper (the schedule-free
        rules): test_reference.py runs no momentum cases for them.
    ``decay_in_rule``
        The rule takes ``weight_decay`` itself (the schedule-free rules
        decay at their point y inside z's step); :func:`trajectory` then
        passes it to the rule instead of adding the decoupled decay.

    Convergence settings (test_algorithms.py):

    ``quad``, ``quad_decay``
        Keyword arguments for 3000 steps on a 5-d quadratic, the learning
        rate (given or default) decayed 10x per 1000 steps when
        ``quad_decay``; the run must end within 1e-5 of the minimum.
    ``rosen_lr``, ``rosen_bar``
        Learning rate for 3000 steps on Rosenbrock from (-1.5, 2)
        (f(x0) = 12.5), and the loss the run must get below.
    ``short_runs``
        Hyperparameters added to the battery's 20-step float32 / float64
        runs at learning rate 1e-3 (Prodigy: d0 1e-2, without which its
        estimate has not grown enough in 20 steps for the params to move).

    Trajectories against the transcription (test_reference.py: 100 float64
    updates on the random 7-d quadratic and on Rosenbrock from (-3, -3), to
    rtol 1e-10):

    ``default_lr``
        (quadratic, rosenbrock) learning rate of the "default",
        "momentum0.5" and "nesterov0.5" runs and of the ``wrapped`` runs;
        None = the rule's own default.  Rosenbrock's gradient at (-3, -3) is
        (-14408, -2400): plain gradient steps need lr ~1e-4, and RAdam's
        first 5 updates (rho_t <= 5) are un-normalized momentum steps
        lr * mhat, so it needs 1e-5.  Every other default stays bounded.
    ``custom``
        Non-default hyperparameter sets, ``((lr on the quadratic, lr on
        Rosenbrock), other hyperparameters)``, run as "custom1",
        "custom2", ...  The learning rates are small enough that no run
        reaches the chaotic regime of sign-like methods bouncing around the
        minimum within 100 updates (there a 1-ulp difference grows to O(1)
        -- e.g. RMSProp with eps 1e-5 outside the root and lr 0.01 on the
        quadratic); see test_table_case_is_well_conditioned.
    ``table_base``
        Hyperparameters added to every trajectory case of the table (a
        case's own values win): Prodigy's runs start from d0 = 0.3, since
        its growth phase from the default d0 = 1e-6 amplifies rounding
        about 1e6-fold within 100 updates (data/optax_trajectories.npz has
        optax's defaults too, outside the conditioning test).
    ``wrapped``
        Extra hyperparameter sets exercising the shared wrapper: decoupled
        weight decay on rules whose default is 0, alone and combined with
        the momentum wrapper (decay is added after it); labelled by their
        keys ("weight_decay0.1-momentum0.5").
    ``zero_crossing``
        "problem-variant" labels of the runs in which some coordinate of
        some iterate lands close to zero (down to |x| ~ 2.6e-5) while
        passing from its start to the minimum: there a relative tolerance
        alone asks for more than the ~1e-14 absolute agreement that any two
        orderings of the same float64 arithmetic can promise, so these get a
        tiny absolute tolerance, 1e-13 (3e-14 of the trajectory's scale,
        |x| <= 3.5).  Listed: every case where the perturbation of
        test_table_case_is_well_conditioned, with atol = 0, reaches a
        twentieth of the tolerance for some noise seed among 0..4 (all
        others stay below 1/20).  The comments give the smallest
        |coordinate| of the trajectory.
    ``aliases``
        ``(kwargs given to the package, canonical kwargs for the
        reference)`` pairs checking the package's hyperparameter aliases.
    """

    # (required fields first: Python 3.9's dataclasses have no kw_only; records are
    # made with keywords only, by _add)
    rule: Callable
    defaults: dict
    class_name: str
    torch_counterpart: bool
    quad: dict
    quad_decay: bool
    rosen_lr: float
    rosen_bar: float
    custom: tuple
    optax_counterpart: bool = False
    takes_x: bool = False
    needs_loss: bool = False
    line_search: bool = False
    keep_default: tuple = ()
    start: Callable = None
    takes_momentum: bool = True
    decay_in_rule: bool = False
    short_runs: dict = field(default_factory=dict)
    default_lr: tuple = (None, None)
    table_base: dict = field(default_factory=dict)
    wrapped: tuple = ()
    zero_crossing: frozenset = field(default_factory=frozenset)
    aliases: tuple = ()


RECORDS = {}


def _add(name, **fields):
    if name in RECORDS:
        raise ValueError(f"two records for {name!r}")
    fields["custom"] = tuple(fields["custom"])
    fields["wrapped"] = tuple(fields.get("wrapped", ()))
    fields["zero_crossing"] = frozenset(fields.get("zero_crossing", ()))
    fields["aliases"] = tuple(fields.get("aliases", ()))
    RECORDS[name] = Record(**fields)


def record(name):
    """The record of ``name``; a clear error if there is none."""
    try:
        return RECORDS[name]
    except KeyError:
        raise LookupError(
            f"{name!r} has no record in tests/reference.py: add its "
            f"transcription and a Record for it there (known: "
            f"{sorted(RECORDS)})") from None


def select(names, predicate):
    """The ``names`` whose record satisfies ``predicate``, and those that have
    no record at all (so that their tests run and fail, saying so)."""
    return [name for name in names
            if name not in RECORDS or predicate(RECORDS[name])]


# --------------------------------------------------------------------------
# The rules, each followed by the records of the algorithms that use it.
# --------------------------------------------------------------------------

ADAM_LIKE = dict(learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8)


def sgd(g, state, t, learning_rate):
    u = learning_rate * g
    return u, state


_add("sgd", rule=sgd, class_name="SGD", torch_counterpart=True,
     defaults=dict(learning_rate=0.01),
     quad={"learning_rate": 0.1}, quad_decay=True,
     rosen_lr=2e-3, rosen_bar=1e-4,
     default_lr=(None, 1e-4),
     custom=[((0.02, 5e-5), dict())],
     wrapped=[dict(weight_decay=0.1),
              dict(weight_decay=0.1, momentum=0.5)],
     zero_crossing={"quadratic-weight_decay0.1"},        # 1.6e-4
     aliases=[(dict(lr=0.02), dict(learning_rate=0.02))])

_add("momentum", rule=sgd, class_name="Momentum", torch_counterpart=True,
     defaults=dict(learning_rate=0.01, momentum=0.9),
     quad={"learning_rate": 0.02}, quad_decay=True,
     rosen_lr=1e-3, rosen_bar=1e-9,
     default_lr=(None, 1e-4),
     custom=[((0.005, 5e-5), dict(momentum=0.8))],
     zero_crossing={"quadratic-default",                 # 8.2e-5
                    "quadratic-custom1"})                # 6.6e-4

_add("nag", rule=sgd, class_name="NAG", torch_counterpart=True,
     defaults=dict(learning_rate=0.01, momentum=0.9, nesterov=True),
     keep_default=("momentum", "nesterov"),
     quad={"learning_rate": 0.02}, quad_decay=True,
     rosen_lr=1e-3, rosen_bar=1e-9,
     default_lr=(None, 1e-4),
     custom=[((0.005, 5e-5), dict(momentum=0.95))],
     zero_crossing={"quadratic-custom1"})                # 3.0e-4


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


_add("rmsprop", rule=rmsprop, class_name="RMSProp", torch_counterpart=True,
     defaults=dict(learning_rate=1e-3, rho=0.9, epsilon=1e-6,
                   centered=False, epsilon_inside=True),
     quad={"learning_rate": 0.01}, quad_decay=True,
     rosen_lr=1e-3, rosen_bar=0.5,
     custom=[
         ((0.01, 0.02), dict(rho=0.9, epsilon=1e-4, centered=True,
                             epsilon_inside=False)),
         ((0.02, 0.02), dict(rho=0.95, epsilon=1e-3, centered=True,
                             epsilon_inside=True)),
         ((0.005, 0.02), dict(rho=0.7, epsilon=1e-5, centered=False,
                              epsilon_inside=False)),
     ],
     wrapped=[dict(weight_decay=0.1),
              dict(weight_decay=0.1, momentum=0.5, nesterov=True)],
     aliases=[(dict(rms_halflife=5, learning_rate=0.005),
               dict(rho=HL(5), learning_rate=0.005)),
              (dict(rms_regularizer=1e-4, learning_rate=0.005),
               dict(epsilon=1e-4, learning_rate=0.005))])


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


_add("rprop", rule=rprop, class_name="RProp", torch_counterpart=True,
     defaults=dict(learning_rate=0.1, rprop_increase=1.2, rprop_decrease=0.5,
                   rprop_min_step=1e-6, rprop_max_step=50.0),
     quad={}, quad_decay=False,
     rosen_lr=1e-3, rosen_bar=1e-4,
     custom=[
         ((0.05, 0.05), dict(rprop_increase=1.5, rprop_decrease=0.3,
                             rprop_min_step=1e-4, rprop_max_step=1.0)),
     ],
     zero_crossing={"quadratic-custom1",                 # 1.4e-4
                    "quadratic-momentum0.5",             # 2.6e-5
                    "quadratic-nesterov0.5"})            # 8.8e-4


def adagrad(g, state, t, learning_rate, epsilon, epsilon_inside,
            initial_accumulator):
    a = state.get("a", np.full_like(g, initial_accumulator))

    a = a + g ** 2
    if epsilon_inside:
        u = learning_rate * g / np.sqrt(a + epsilon)
    else:
        u = learning_rate * g / (np.sqrt(a) + epsilon)
    return u, {"a": a}


_add("adagrad", rule=adagrad, class_name="ADAGRAD", torch_counterpart=True,
     defaults=dict(learning_rate=1.0, epsilon=1e-6, epsilon_inside=True,
                   initial_accumulator=0.0),
     quad={"learning_rate": 0.5}, quad_decay=True,
     rosen_lr=1.0, rosen_bar=0.1,
     custom=[
         ((0.5, 0.5), dict(epsilon=1e-3, epsilon_inside=False,
                           initial_accumulator=0.1)),
         ((0.5, 0.5), dict(epsilon=1e-4, epsilon_inside=True,
                           initial_accumulator=1.0)),
     ],
     zero_crossing={"quadratic-custom1",                 # 2.2e-4
                    "quadratic-custom2",                 # 1.4e-4
                    "quadratic-nesterov0.5",             # 1.7e-4
                    "rosenbrock-custom1",                # 5.9e-4
                    "rosenbrock-custom2"},               # 5.9e-4
     aliases=[(dict(lr=0.5, rms_regularizer=1e-3),
               dict(learning_rate=0.5, epsilon=1e-3))])


def adadelta(g, state, t, learning_rate, rho, epsilon):
    a = state.get("a", np.zeros_like(g))
    dx = state.get("dx", np.zeros_like(g))

    a = rho * a + (1.0 - rho) * g ** 2
    d = g * np.sqrt(dx + epsilon) / np.sqrt(a + epsilon)   # uses the OLD dx
    dx = rho * dx + (1.0 - rho) * d ** 2
    u = learning_rate * d
    return u, {"a": a, "dx": dx}


_add("adadelta", rule=adadelta, class_name="ADADELTA", torch_counterpart=True,
     defaults=dict(learning_rate=1.0, rho=0.95, epsilon=1e-6),
     quad={}, quad_decay=True,
     rosen_lr=1.0, rosen_bar=1.0,
     custom=[((0.2, 0.5), dict(rho=0.8, epsilon=1e-3))],
     aliases=[(dict(rms_halflife=10), dict(rho=HL(10)))])


def esgd(g, state, t, hv, learning_rate, rho, epsilon):
    """Equilibrated SGD.  ``hv`` = H(x) r for this update's random r."""
    D = state.get("D", np.zeros_like(g))

    D = rho * D + (1.0 - rho) * hv ** 2
    Dhat = D / (1.0 - rho ** t)
    u = learning_rate * g / (np.sqrt(Dhat) + epsilon)
    return u, {"D": D}


_add("esgd", rule=esgd, class_name="ESGD", torch_counterpart=False,
     needs_loss=True,
     # rho = exp(-ln 2 / 14) = 0.951695..., i.e. a half-life of 14 updates
     # ("0.9517" in the specification is this number rounded).
     defaults=dict(learning_rate=0.1, rho=halflife_to_rho(14.0), epsilon=1e-8),
     quad={"learning_rate": 0.1}, quad_decay=False,
     rosen_lr=0.3, rosen_bar=0.5,
     custom=[((0.05, 0.05), dict(rho=0.9, epsilon=1e-4))],
     aliases=[(dict(rms_halflife=7), dict(rho=HL(7)))])


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


_add("adam", rule=adam, class_name="Adam", torch_counterpart=True,
     defaults=dict(ADAM_LIKE, epsilon_hat=False),
     quad={"learning_rate": 0.05}, quad_decay=True,
     rosen_lr=0.1, rosen_bar=1e-3,
     custom=[
         ((0.05, 0.1), dict(beta1=0.8, beta2=0.99, epsilon=1e-4,
                            epsilon_hat=True)),
         ((0.05, 0.1), dict(beta1=0.7, beta2=0.95, epsilon=1e-3,
                            epsilon_hat=False)),
     ],
     wrapped=[dict(weight_decay=0.1, momentum=0.5)],
     aliases=[(dict(beta1_halflife=3, beta2_halflife=200, learning_rate=0.05),
               dict(beta1=HL(3), beta2=HL(200), learning_rate=0.05)),
              (dict(rms_regularizer=1e-4, learning_rate=0.02),
               dict(epsilon=1e-4, learning_rate=0.02)),
              (dict(b1=0.8, b2=0.99, learning_rate=0.05),
               dict(beta1=0.8, beta2=0.99, learning_rate=0.05))])

_add("adamw", rule=adam, class_name="AdamW", torch_counterpart=True,
     defaults=dict(ADAM_LIKE, epsilon_hat=False, weight_decay=0.01),
     quad={"learning_rate": 0.05, "weight_decay": 0.0}, quad_decay=True,
     rosen_lr=0.03, rosen_bar=1e-3,
     custom=[((0.05, 0.1), dict(beta1=0.85, beta2=0.995, epsilon=1e-6,
                                weight_decay=0.1))],
     wrapped=[dict(momentum=0.5, nesterov=True)])


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


_add("amsgrad", rule=amsgrad, class_name="AMSGrad", torch_counterpart=True,
     defaults=dict(ADAM_LIKE, epsilon_hat=False),
     quad={"learning_rate": 0.05}, quad_decay=True,
     rosen_lr=0.1, rosen_bar=1e-12,
     custom=[
         ((0.05, 0.1), dict(beta1=0.8, beta2=0.99, epsilon=1e-4,
                            epsilon_hat=True)),
         ((0.05, 0.1), dict(beta1=0.7, beta2=0.95, epsilon=1e-3,
                            epsilon_hat=False)),
     ])


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


_add("adamax", rule=adamax, class_name="Adamax", torch_counterpart=True,
     defaults=dict(learning_rate=2e-3, beta1=0.9, beta2=0.999, epsilon=1e-8,
                   epsilon_in_max=False),
     quad={"learning_rate": 0.05}, quad_decay=True,
     rosen_lr=0.1, rosen_bar=1e-8,
     custom=[
         ((0.05, 0.1), dict(beta1=0.8, beta2=0.99, epsilon=1e-4,
                            epsilon_in_max=True)),
         ((0.03, 0.1), dict(beta1=0.7, beta2=0.95, epsilon=1e-3,
                            epsilon_in_max=False)),
     ],
     zero_crossing={"quadratic-custom1"})                # 1.6e-4


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


_add("nadam", rule=nadam, class_name="NAdam", torch_counterpart=True,
     defaults=dict(learning_rate=2e-3, beta1=0.9, beta2=0.999, epsilon=1e-8,
                   momentum_decay=4e-3),
     quad={"learning_rate": 0.05}, quad_decay=True,
     rosen_lr=0.01, rosen_bar=1e-4,
     custom=[((0.05, 0.1), dict(beta1=0.8, beta2=0.99, epsilon=1e-4,
                                momentum_decay=0.01))],
     aliases=[(dict(b1=0.8, b2=0.99, lr=0.05),
               dict(beta1=0.8, beta2=0.99, learning_rate=0.05))])


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


_add("radam", rule=radam, class_name="RAdam", torch_counterpart=True,
     defaults=dict(ADAM_LIKE),
     quad={"learning_rate": 0.05}, quad_decay=True,
     rosen_lr=0.01, rosen_bar=0.5,
     default_lr=(None, 1e-5),
     custom=[((0.02, 1e-4), dict(beta1=0.8, beta2=0.99, epsilon=1e-4))],
     zero_crossing={"quadratic-custom1"})                # 5.2e-4


def lion(g, state, t, learning_rate, beta1, beta2):
    """Lion (Chen et al. 2023, Program 1), as optax.lion."""
    m = state.get("m", np.zeros_like(g))

    c = beta1 * m + (1.0 - beta1) * g
    u = learning_rate * np.sign(c)
    m = beta2 * m + (1.0 - beta2) * g
    return u, {"m": m}


_add("lion", rule=lion, class_name="Lion", torch_counterpart=False,
     optax_counterpart=True,
     defaults=dict(learning_rate=1e-4, beta1=0.9, beta2=0.99),
     quad={"learning_rate": 3e-3}, quad_decay=True,
     rosen_lr=2e-3, rosen_bar=1e-4,
     default_lr=(1e-3, 1e-3),
     custom=[((2e-3, 2e-3), dict(beta1=0.8, beta2=0.95))],
     wrapped=[dict(weight_decay=0.1), dict(weight_decay=0.1, momentum=0.5)],
     aliases=[(dict(b1=0.8, b2=0.95, lr=1e-3),
               dict(beta1=0.8, beta2=0.95, learning_rate=1e-3))])


def yogi(g, state, t, learning_rate, beta1, beta2, epsilon,
         initial_accumulator):
    """Yogi (Zaheer et al. 2018) with Adam's bias correction, as optax.yogi:
    both moments start at initial_accumulator."""
    m = state.get("m", np.full_like(g, initial_accumulator))
    v = state.get("v", np.full_like(g, initial_accumulator))

    m = beta1 * m + (1.0 - beta1) * g
    v = v - (1.0 - beta2) * np.sign(v - g ** 2) * g ** 2
    mhat = m / (1.0 - beta1 ** t)
    vhat = v / (1.0 - beta2 ** t)
    u = learning_rate * mhat / (np.sqrt(vhat) + epsilon)
    return u, {"m": m, "v": v}


_add("yogi", rule=yogi, class_name="Yogi", torch_counterpart=False,
     optax_counterpart=True,
     defaults=dict(learning_rate=1e-2, beta1=0.9, beta2=0.999, epsilon=1e-3,
                   initial_accumulator=1e-6),
     quad={"learning_rate": 0.05}, quad_decay=True,
     rosen_lr=0.05, rosen_bar=1e-3,
     default_lr=(None, 1e-3),
     custom=[((0.02, 2e-3), dict(beta1=0.8, beta2=0.99, epsilon=1e-4,
                                 initial_accumulator=0.01))],
     wrapped=[dict(weight_decay=0.1), dict(weight_decay=0.1, momentum=0.5)],
     zero_crossing={"quadratic-weight_decay0.1-momentum0.5"},     # 1.8e-4
     aliases=[(dict(betas=(0.8, 0.99)), dict(beta1=0.8, beta2=0.99))])


def adabelief(g, state, t, learning_rate, beta1, beta2, epsilon,
              epsilon_root):
    """AdaBelief (Zhuang et al. 2020, Algorithm 2), as optax.adabelief."""
    m = state.get("m", np.zeros_like(g))
    s = state.get("s", np.zeros_like(g))

    m = beta1 * m + (1.0 - beta1) * g
    s = beta2 * s + (1.0 - beta2) * (g - m) ** 2 + epsilon_root
    mhat = m / (1.0 - beta1 ** t)
    shat = s / (1.0 - beta2 ** t)
    u = learning_rate * mhat / (np.sqrt(shat) + epsilon)
    return u, {"m": m, "s": s}


_add("adabelief", rule=adabelief, class_name="AdaBelief",
     torch_counterpart=False, optax_counterpart=True,
     defaults=dict(learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-16,
                   epsilon_root=1e-16),
     quad={"learning_rate": 0.05}, quad_decay=True,
     rosen_lr=0.01, rosen_bar=1e-3,
     custom=[((0.01, 1e-3), dict(beta1=0.8, beta2=0.99, epsilon=1e-8,
                                 epsilon_root=1e-10))],
     wrapped=[dict(weight_decay=0.1), dict(weight_decay=0.1, momentum=0.5)],
     aliases=[(dict(b1=0.8, b2=0.99), dict(beta1=0.8, beta2=0.99))])


def prodigy(g, state, t, x, learning_rate, beta1, beta2, beta3, epsilon, d0,
            d_coef, safeguard_warmup, bias_correction):
    """Prodigy (Mishchenko & Defazio 2024, Adam version) as
    optax.contrib.prodigy: the step uses d_t, epsilon the new estimate
    d_{t+1}; r and s carry a factor 1/d0 that cancels in their ratio."""
    if not state:
        state = {"m": np.zeros_like(g), "v": np.zeros_like(g),
                 "s": np.zeros_like(g), "x0": x.copy(), "d": d0, "r": 0.0}
    m, v, s, x0, d, r = (state[k] for k in ("m", "v", "s", "x0", "d", "r"))
    b3 = math.sqrt(beta2) if beta3 is None else beta3
    if bias_correction:
        bc = math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)
    else:
        bc = 1.0
    dlr = d * learning_rate * bc

    m = beta1 * m + (1.0 - beta1) * d * g
    v = beta2 * v + (1.0 - beta2) * (d * g) ** 2
    r = b3 * r + (d / d0) * dlr * float(np.dot(g, x0 - x))
    if safeguard_warmup:
        s = b3 * s + d * d * g / d0
    else:
        s = b3 * s + d * dlr * g / d0
    denominator = float(np.sum(np.abs(s)))
    d_next = max(d, d_coef * r / denominator) if denominator > 0 else d
    u = dlr * m / (np.sqrt(v) + d_next * epsilon)
    return u, {"m": m, "v": v, "s": s, "x0": x0, "d": d_next, "r": r}, dlr


_add("prodigy", rule=prodigy, class_name="Prodigy", torch_counterpart=False,
     optax_counterpart=True, takes_x=True,
     defaults=dict(learning_rate=1.0, beta1=0.9, beta2=0.999, beta3=None,
                   epsilon=1e-8, d0=1e-6, d_coef=1.0, safeguard_warmup=False,
                   bias_correction=True),
     quad={}, quad_decay=True,
     rosen_lr=0.3, rosen_bar=1e-3,
     short_runs=dict(d0=1e-2),
     default_lr=(0.3, 0.3),
     table_base=dict(d0=0.3),
     custom=[((0.3, 0.3), dict(beta1=0.8, beta2=0.99, beta3=0.9,
                               epsilon=1e-6, d0=0.2, d_coef=0.5)),
             ((0.3, 0.3), dict(safeguard_warmup=True)),
             ((0.3, 0.3), dict(bias_correction=False))],
     wrapped=[dict(weight_decay=0.1), dict(weight_decay=0.1, momentum=0.5)],
     zero_crossing={"quadratic-default",                          # 1.3e-4
                    "quadratic-custom2",                          # 2.8e-4
                    "quadratic-weight_decay0.1-momentum0.5"},     # 3.0e-3
     aliases=[(dict(betas=(0.8, 0.99), d0=0.3, lr=0.3),
               dict(beta1=0.8, beta2=0.99, d0=0.3, learning_rate=0.3))])


def schedule_free(g, state, t, learning_rate, beta1, warmup_steps,
                  weight_lr_power, weight_decay, direction):
    """Defazio et al. (2024), "The Road Less Scheduled": u = y_{t-1} - y_t.

    ``direction(g, state, t) -> (d, new entries)`` is the base rule (SGD:
    d = g).  The state holds z, x (the average, what is evaluated), the sum
    of the weights and the largest learning rate so far.
    """
    z, x = state["z"], state["x"]
    y = (1.0 - beta1) * z + beta1 * x               # where g was taken
    if warmup_steps > 0:
        lr = learning_rate * min(1.0, t / warmup_steps)
    else:
        lr = learning_rate
    max_lr = max(state["max_lr"], lr)
    weight = max_lr ** weight_lr_power
    weight_sum = state["weight_sum"] + weight
    c = weight / weight_sum if weight_sum > 0 else 0.0
    d, more = direction(g, state, t)
    z_new = z - lr * (d + weight_decay * y)
    x_new = (1.0 - c) * x + c * z_new
    y_new = (1.0 - beta1) * z_new + beta1 * x_new
    new_state = dict(state, z=z_new, x=x_new, weight_sum=weight_sum,
                     max_lr=max_lr, **more)
    return y - y_new, new_state


def schedule_free_averages(algo, grad_fn, x0, steps, **hyper):
    """(ys, xs): the points y_0 .. y_steps where the gradients are taken (the
    params) and the averages x_0 .. x_steps (what is evaluated), each of
    shape (steps+1, n), for "schedule_free_sgd" or "schedule_free_adamw"
    with the record's defaults updated by ``hyper``."""
    rec = record(algo)
    settings = dict(rec.defaults, **hyper)
    state = schedule_free_start(np.array(x0, dtype=np.float64).ravel())
    ys, xs = [state["z"].copy()], [state["x"].copy()]
    for t in range(1, steps + 1):
        y = (1.0 - settings["beta1"]) * state["z"] + settings["beta1"] * state["x"]
        _, state = rec.rule(np.asarray(grad_fn(y), dtype=np.float64), state, t,
                            **settings)
        ys.append((1.0 - settings["beta1"]) * state["z"]
                  + settings["beta1"] * state["x"])
        xs.append(state["x"].copy())
    return np.array(ys), np.array(xs)


def schedule_free_start(x0):
    return {"z": x0.copy(), "x": x0.copy(), "weight_sum": 0.0, "max_lr": 0.0}


def schedule_free_sgd(g, state, t, **hyper):
    return schedule_free(g, state, t, direction=lambda g, state, t: (g, {}),
                         **hyper)


def schedule_free_adamw(g, state, t, beta2, epsilon, **hyper):
    def rms(g, state, t):
        v = beta2 * state.get("v", np.zeros_like(g)) + (1.0 - beta2) * g ** 2
        return g / (np.sqrt(v / (1.0 - beta2 ** t)) + epsilon), {"v": v}
    return schedule_free(g, state, t, direction=rms, **hyper)


SCHEDULE_FREE = dict(beta1=0.9, warmup_steps=0, weight_lr_power=2.0,
                     weight_decay=0.0)

_add("schedule_free_sgd", rule=schedule_free_sgd, class_name="ScheduleFreeSGD",
     torch_counterpart=False, start=schedule_free_start,
     takes_momentum=False, decay_in_rule=True,
     keep_default=("momentum", "nesterov"),
     defaults=dict(SCHEDULE_FREE, learning_rate=1.0),
     quad={"learning_rate": 0.1}, quad_decay=False,
     rosen_lr=0.01, rosen_bar=1e-3,
     # the default rate 1.0 diverges on both problems (largest curvature 58)
     default_lr=(0.01, 1e-4),
     custom=[((0.01, 1e-4), dict(beta1=0.8, weight_decay=0.1)),
             ((0.01, 5e-5), dict(beta1=0.95, warmup_steps=10,
                                 weight_lr_power=1.0))],
     aliases=[(dict(b1=0.8, learning_rate=0.01),
               dict(beta1=0.8, learning_rate=0.01))])

_add("schedule_free_adamw", rule=schedule_free_adamw,
     class_name="ScheduleFreeAdamW", torch_counterpart=False,
     start=schedule_free_start, takes_momentum=False, decay_in_rule=True,
     keep_default=("momentum", "nesterov"),
     defaults=dict(SCHEDULE_FREE, learning_rate=2.5e-3, beta2=0.999,
                   epsilon=1e-8),
     quad={"learning_rate": 0.05}, quad_decay=True,
     rosen_lr=0.05, rosen_bar=5e-3,
     custom=[((0.01, 0.01), dict(beta1=0.8, beta2=0.99, epsilon=1e-6,
                                 weight_decay=0.1)),
             ((0.01, 0.01), dict(warmup_steps=10, weight_lr_power=3.0))],
     aliases=[(dict(b1=0.8, b2=0.99, learning_rate=0.01),
               dict(beta1=0.8, beta2=0.99, learning_rate=0.01))])


def _curvature_ok(s, y):
    """A pair is used only when it shows positive curvature: s'y > eps |s| |y|."""
    return s @ y > np.finfo(float).eps * np.linalg.norm(s) * np.linalg.norm(y)


def lbfgs(g, pairs, history_size):
    """L-BFGS direction -H g by the two-loop recursion (Nocedal & Wright, Alg. 7.4),
    over the last ``history_size`` pairs with positive curvature, with the initial
    matrix H0 = (s'y / y'y) I from the newest pair (and H0 = I without pairs)."""
    kept = [(s, y) for s, y in pairs if _curvature_ok(s, y)][-history_size:]
    q = np.array(g, dtype=np.float64)
    alphas = []
    for s, y in reversed(kept):              # newest first
        a = (s @ q) / (y @ s)
        alphas.append(a)
        q = q - a * y
    if kept:
        s, y = kept[-1]
        q = (s @ y) / (y @ y) * q
    for (s, y), a in zip(kept, reversed(alphas)):   # oldest first
        b = (y @ q) / (y @ s)
        q = q + (a - b) * s
    return -q


_add("lbfgs", rule=lbfgs, class_name="LBFGS", torch_counterpart=False,
     needs_loss=True, line_search=True,
     defaults=dict(history_size=10),
     keep_default=("momentum", "weight_decay"),
     quad={}, quad_decay=False,
     rosen_lr=1.0, rosen_bar=1e-10,
     custom=[])


def bfgs(g, pairs):
    """BFGS direction -H g, H built from H0 = I by the inverse update
    H <- (I - rho s y') H (I - rho y s') + rho s s' (Nocedal & Wright eq. 6.17),
    H0 rescaled to (y's / y'y) I before the first update (eq. 6.20)."""
    n = len(g)
    H = np.eye(n)
    first = True
    for s, y in pairs:
        if not _curvature_ok(s, y):
            continue
        if first:
            H = (y @ s) / (y @ y) * np.eye(n)
            first = False
        rho = 1.0 / (y @ s)
        V = np.eye(n) - rho * np.outer(y, s)
        H = V.T @ H @ V + rho * np.outer(s, s)
    return -(H @ g)


_add("bfgs", rule=bfgs, class_name="BFGS", torch_counterpart=False,
     needs_loss=True, line_search=True,
     defaults={},
     keep_default=("momentum", "weight_decay"),
     quad={}, quad_decay=False,
     rosen_lr=1.0, rosen_bar=1e-10,
     custom=[])


# --------------------------------------------------------------------------
# The driver.
# --------------------------------------------------------------------------

def trajectory(algo, grad_fn, x0, steps, momentum=None, nesterov=False,
               hvp_fn=None, seed=None, noise=None, after_update=None, **hyper):
    """Iterates x_0 .. x_steps of ``algo`` as an array of shape (steps+1, n).

    ``momentum=None`` means the algorithm's default (0.9 for ``momentum`` and
    ``nag``, 0 for everything else).  ``nag`` always uses Nesterov momentum.
    ``hyper`` takes canonical hyperparameter names only (no aliases);
    ``weight_decay`` is accepted by every algorithm.
    A rule whose record ``needs_loss`` (ESGD) additionally needs
    ``hvp_fn(x, v)`` and ``seed``: each update draws
    ``r = rng.standard_normal(n)`` from ``rng = np.random.default_rng(seed)``.

    ``noise`` is a testing aid, None for the exact transcription: a function
    applied to the gradient (and Hessian-vector product) and to every
    quantity carried from one update to the next (u, the rule's state, the
    velocity, the new x), used by test_reference.py to
    inject rounding-sized perturbations and measure how much the trajectory
    amplifies them.

    ``after_update(t, x) -> x``, if given, sees each new iterate and may
    replace it (lookahead's sync, see :func:`lookahead`).
    """
    if noise is None:
        def noise(a):
            return a

    rec = record(algo)
    settings = dict(rec.defaults)
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
    wd = 0.0 if rec.decay_in_rule else settings.pop("weight_decay")
    lr = settings["learning_rate"]
    rule = rec.rule

    x = np.array(x0, dtype=np.float64).ravel().copy()
    n = x.size
    if rec.needs_loss:
        if hvp_fn is None or seed is None:
            raise TypeError(f"{algo} needs hvp_fn and seed")
        rng = np.random.default_rng(seed)

    v = np.zeros(n)
    state = {} if rec.start is None else rec.start(x.copy())
    xs = [x.copy()]
    for t in range(1, steps + 1):
        g = noise(np.asarray(grad_fn(x), dtype=np.float64))
        if rec.needs_loss:
            r = rng.standard_normal(n)
            hv = noise(np.asarray(hvp_fn(x, r), dtype=np.float64))
            u, state = rule(g, state, t, hv, **settings)
        elif rec.takes_x:
            u, state, decay_lr = rule(g, state, t, x=x, **settings)
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
            x_new = x + step - (decay_lr if rec.takes_x else lr) * wd * x
        else:
            x_new = x + step
        x = noise(x_new)
        if after_update is not None:
            x = after_update(t, x)
        xs.append(x.copy())
    return np.array(xs)


# --------------------------------------------------------------------------
# Shared options: lookahead and parameter averaging.
# --------------------------------------------------------------------------

def lookahead(x0, k, alpha):
    """Lookahead (Zhang et al. 2019) as an ``after_update`` hook of
    :func:`trajectory`; ``hook.slow`` lists the slow weights after each
    update (x0 before the first).  Every k updates the slow weights move
    alpha of the way to the fast ones and the fast ones restart there; the
    inner rule's state carries on (as in optax.lookahead)."""
    slow = [np.array(x0, dtype=np.float64).ravel().copy()]

    def hook(t, x):
        current = slow[-1]
        if t % k == 0:
            current = current + alpha * (x - current)
            x = current.copy()
        slow.append(current.copy())
        return x

    hook.slow = slow
    return hook


def ema_average(xs, decay):
    """Bias-corrected EMA of the iterates x_1 .. x_t (x_0 before the first):
    sum_i (1 - d) d^(t-i) x_i / (1 - d^t), summed directly."""
    out = [xs[0].copy()]
    for t in range(1, len(xs)):
        weights = np.array([(1.0 - decay) * decay ** (t - i)
                            for i in range(1, t + 1)])
        out.append(weights @ xs[1:t + 1] / weights.sum())
    return np.array(out)


def polyak_average(xs, start):
    """The mean of the iterates x_{start+1} .. x_t for t > start, x_t before
    (x_0 before the first update)."""
    out = [xs[0].copy()]
    for t in range(1, len(xs)):
        if t <= start:
            out.append(xs[t].copy())
        else:
            out.append(xs[start + 1:t + 1].mean(axis=0))
    return np.array(out)


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
