"""Tests of npdownhill.schedules.

Every schedule is compared with an independent reference written here with
``math`` only (``ref_*`` functions), at hand-picked steps (boundaries in
particular) and at random steps drawn by hypothesis.
"""

import math
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npdownhill import schedules
from npdownhill.schedules import (
    Schedule,
    constant,
    cosine_decay,
    cosine_restarts,
    exponential_decay,
    inverse_time_decay,
    linear_warmup,
    one_cycle,
    piecewise_constant,
    polynomial_decay,
    reduce_on_plateau,
)

SETTINGS = settings(max_examples=150, deadline=None)

steps = st.integers(min_value=0, max_value=10**7)
small_steps = st.integers(min_value=0, max_value=5000)
initials = st.floats(min_value=1e-4, max_value=10.0)
decay_steps_st = st.integers(min_value=1, max_value=2000)
fractions01 = st.floats(min_value=0.0, max_value=1.0)


def close(actual, expected, rel=1e-12, abs_tol=1e-15):
    return math.isclose(actual, expected, rel_tol=rel, abs_tol=abs_tol)


# ---------------------------------------------------------------------------
# Independent references (straightforward transcriptions of the formulas)
# ---------------------------------------------------------------------------

def ref_exponential(initial, rate, T, staircase, t):
    p = t / T
    if staircase:
        p = math.floor(p)
    return initial * math.pow(rate, p)


def ref_inverse_time(initial, rate, T, staircase, t):
    p = t / T
    if staircase:
        p = math.floor(p)
    return initial / (1.0 + rate * p)


def ref_piecewise(boundaries, values, t):
    # TensorFlow: values[0] if t <= b[0]; values[i] if b[i-1] < t <= b[i]; else values[-1].
    for b, v in zip(boundaries, values):
        if t <= b:
            return v
    return values[-1]


def ref_polynomial(initial, T, end, power, cycle, t):
    if cycle:
        mult = 1 if t == 0 else math.ceil(Fraction(t, T))
        T = T * mult
    else:
        t = min(t, T)
    return (initial - end) * (1.0 - t / T) ** power + end


def ref_cosine(initial, T, alpha, t):
    t = min(t, T)
    return initial * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * t / T)) + alpha)


def ref_cosine_restarts(initial, T0, t_mul, m_mul, alpha, t):
    """Walk over the periods one by one in exact rational arithmetic."""
    tau = Fraction(t_mul)
    start, length, i = Fraction(0), Fraction(T0), 0
    while start + length <= t:
        start += length
        length *= tau
        i += 1
    f = float((t - start) / length)
    peak = initial * m_mul ** i
    return peak * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * f)) + alpha)


def ref_cosine_restarts_sequence(initial, T0, t_mul, m_mul, alpha, n):
    """Values at steps 0..n-1, walking the periods along with the step."""
    tau = Fraction(t_mul)
    start, length, i = Fraction(0), Fraction(T0), 0
    out = []
    for t in range(n):
        while start + length <= t:
            start, length, i = start + length, length * tau, i + 1
        f = float((t - start) / length)
        out.append(initial * m_mul ** i * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * f))
                                           + alpha))
    return out


def ref_one_cycle(max_value, N, pct, div, final_div, anneal, t):
    """PyTorch OneCycleLR (three_phase=False), steps past N - 1 clamped."""
    lo_start = max_value / div
    lo_end = lo_start / final_div
    t = min(t, N - 1)
    e1 = pct * N - 1
    e2 = N - 1

    def interp(a, b, x):
        if anneal == "cos":
            return b + (a - b) / 2.0 * (math.cos(math.pi * x) + 1)
        return a + (b - a) * x

    if e1 > 0 and t <= e1:
        return interp(lo_start, max_value, t / e1)
    return interp(max_value, lo_end, (t - e1) / (e2 - e1))


# ---------------------------------------------------------------------------
# constant
# ---------------------------------------------------------------------------

def test_constant():
    s = constant(0.25)
    assert [s(t) for t in (0, 1, 10**9)] == [0.25, 0.25, 0.25]
    assert type(constant(np.float32(0.5))(0)) is float
    assert constant(3)(7) == 3.0


# ---------------------------------------------------------------------------
# exponential_decay / inverse_time_decay
# ---------------------------------------------------------------------------

def test_exponential_decay_values():
    s = exponential_decay(0.1, 0.5, 100)
    assert s(0) == 0.1
    assert close(s(50), 0.1 * math.sqrt(0.5))
    assert close(s(100), 0.05)
    assert close(s(300), 0.0125)
    st_ = exponential_decay(0.1, 0.5, 100, staircase=True)
    assert [st_(t) for t in (0, 99)] == [0.1, 0.1]
    assert close(st_(100), 0.05) and close(st_(199), 0.05)
    assert close(st_(200), 0.025)


def test_exponential_decay_growth_overflows_to_inf():
    s = exponential_decay(1.0, 2.0, 1)
    assert s(10) == 1024.0
    assert s(5000) == math.inf
    assert exponential_decay(-1.0, 2.0, 1)(5000) == -math.inf
    assert exponential_decay(0.0, 2.0, 1)(5000) == 0.0


@SETTINGS
@given(initial=initials, rate=st.floats(min_value=0.01, max_value=1.0),
       T=decay_steps_st, staircase=st.booleans(), t=st.integers(0, 10**5))
def test_exponential_decay_matches_reference(initial, rate, T, staircase, t):
    expected = ref_exponential(initial, rate, T, staircase, t)
    assert close(exponential_decay(initial, rate, T, staircase)(t), expected, rel=1e-11)


def test_inverse_time_decay_values():
    s = inverse_time_decay(1.0, 0.5, 10)
    assert s(0) == 1.0
    assert close(s(10), 1 / 1.5)
    assert close(s(20), 0.5)
    assert close(s(5), 1 / 1.25)
    st_ = inverse_time_decay(1.0, 0.5, 10, staircase=True)
    assert st_(9) == 1.0
    assert close(st_(10), 1 / 1.5) and close(st_(19), 1 / 1.5)
    assert close(st_(20), 0.5)
    assert inverse_time_decay(0.3, 0.0, 5)(1000) == 0.3


@SETTINGS
@given(initial=initials, rate=st.floats(min_value=0.0, max_value=10.0),
       T=decay_steps_st, staircase=st.booleans(), t=steps)
def test_inverse_time_decay_matches_reference(initial, rate, T, staircase, t):
    expected = ref_inverse_time(initial, rate, T, staircase, t)
    assert close(inverse_time_decay(initial, rate, T, staircase)(t), expected)


# ---------------------------------------------------------------------------
# piecewise_constant
# ---------------------------------------------------------------------------

def test_piecewise_constant_tf_boundary_convention():
    s = piecewise_constant([10, 20], [1.0, 0.5, 0.25])
    # a boundary step still has the value before the boundary
    assert [s(t) for t in (0, 9, 10)] == [1.0, 1.0, 1.0]
    assert [s(t) for t in (11, 19, 20)] == [0.5, 0.5, 0.5]
    assert [s(t) for t in (21, 10**8)] == [0.25, 0.25]


def test_piecewise_constant_boundary_zero_and_empty():
    s = piecewise_constant([0], [3.0, 4.0])
    assert s(0) == 3.0 and s(1) == 4.0
    assert piecewise_constant([], [7.0])(123) == 7.0


def test_piecewise_constant_accepts_arrays_and_tuples():
    s = piecewise_constant(np.array([5, 8]), (1, 2, 3))
    assert [s(t) for t in (5, 6, 8, 9)] == [1.0, 2.0, 2.0, 3.0]
    assert all(type(s(t)) is float for t in (0, 7, 100))


@SETTINGS
@given(data=st.data())
def test_piecewise_constant_matches_reference(data):
    boundaries = sorted(data.draw(st.sets(st.integers(0, 1000), max_size=6)))
    values = data.draw(st.lists(st.floats(-5, 5), min_size=len(boundaries) + 1,
                                max_size=len(boundaries) + 1))
    s = piecewise_constant(boundaries, values)
    for t in [data.draw(st.integers(0, 1100))] + boundaries + [b + 1 for b in boundaries]:
        assert s(t) == ref_piecewise(boundaries, values, t)


# ---------------------------------------------------------------------------
# polynomial_decay
# ---------------------------------------------------------------------------

def test_polynomial_decay_values():
    s = polynomial_decay(1.0, 100, end=0.0, power=2.0)
    assert s(0) == 1.0
    assert close(s(50), 0.25)
    assert s(100) == 0.0 and s(1000) == 0.0
    lin = polynomial_decay(0.1, 10)  # end=1e-4, power=1
    assert close(lin(5), (0.1 - 1e-4) * 0.5 + 1e-4)
    assert close(lin(10), 1e-4) and close(lin(11), 1e-4)


def test_polynomial_decay_cycle():
    s = polynomial_decay(1.0, 100, end=0.0, power=1.0, cycle=True)
    assert s(0) == 1.0
    assert close(s(50), 0.5)
    assert s(100) == 0.0                 # ceil(100/100) = 1: end of the first cycle
    assert close(s(101), 1 - 101 / 200)  # decay length stretched to 200
    assert close(s(150), 0.25)
    assert s(200) == 0.0
    assert close(s(201), 1 - 201 / 300)


@SETTINGS
@given(initial=initials, T=decay_steps_st, end=st.floats(0, 1e-3),
       power=st.floats(min_value=0.1, max_value=4.0), cycle=st.booleans(), t=steps)
def test_polynomial_decay_matches_reference(initial, T, end, power, cycle, t):
    expected = ref_polynomial(initial, T, end, power, cycle, t)
    actual = polynomial_decay(initial, T, end, power, cycle)(t)
    assert close(actual, expected, rel=1e-9, abs_tol=1e-13)


# ---------------------------------------------------------------------------
# cosine_decay
# ---------------------------------------------------------------------------

def test_cosine_decay_values():
    s = cosine_decay(2.0, 100)
    assert s(0) == 2.0
    assert close(s(50), 1.0)
    assert s(100) == 0.0 and s(10**6) == 0.0
    a = cosine_decay(2.0, 100, alpha=0.1)
    assert close(a(100), 0.2) and close(a(500), 0.2)
    assert close(a(50), 2.0 * (0.9 * 0.5 + 0.1))


@SETTINGS
@given(initial=initials, T=decay_steps_st, alpha=fractions01, t=steps)
def test_cosine_decay_matches_reference(initial, T, alpha, t):
    assert close(cosine_decay(initial, T, alpha)(t), ref_cosine(initial, T, alpha, t),
                 abs_tol=1e-14)


# ---------------------------------------------------------------------------
# cosine_restarts
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("t_mul, T0, starts", [
    (1.0, 10, [0, 10, 20, 30, 40]),
    (2.0, 10, [0, 10, 30, 70, 150, 310]),
    (1.5, 8, [0, 8, 20, 38, 65]),        # periods 8, 12, 18, 27, 40.5
    (3.0, 1, [0, 1, 4, 13, 40, 121]),
])
def test_cosine_restarts_exact_at_period_boundaries(t_mul, T0, starts):
    initial, m_mul, alpha = 1.0, 0.5, 0.1
    s = cosine_restarts(initial, T0, t_mul, m_mul, alpha)
    for i, start in enumerate(starts):
        peak = initial * m_mul ** i
        # the restart step itself is the first step of period i: back at the peak
        assert close(s(start), peak), (i, start)
        if i > 0:
            # the step before is the last step of period i - 1 (of length L):
            # f = (L - 1) / L of the way down from peak_{i-1} to alpha * peak_{i-1}
            L = start - starts[i - 1]
            prev_peak = initial * m_mul ** (i - 1)
            f = (L - 1) / L
            expected = prev_peak * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * f)) + alpha)
            assert close(s(start - 1), expected), (i, start)
        assert close(s(start), ref_cosine_restarts(initial, T0, t_mul, m_mul, alpha, start))


def test_cosine_restarts_non_integer_boundary():
    # t_mul = 1.5, T0 = 10: periods 10, 15, 22.5 -> the third restart is at 47.5
    s = cosine_restarts(1.0, 10, 1.5, alpha=0.0)
    assert close(s(25), 1.0)
    f47 = (47 - 25) / 22.5
    assert close(s(47), 0.5 * (1 + math.cos(math.pi * f47)))
    assert close(s(48), 0.5 * (1 + math.cos(math.pi * 0.5 / 33.75)))


def test_cosine_restarts_large_period_index():
    # T0 = 1, t_mul = 2: period i starts at 2**i - 1
    s = cosine_restarts(1.0, 1, 2.0, m_mul=0.9)
    for i in (40, 50, 60):
        start = 2**i - 1
        assert close(s(start), 0.9**i)
        assert s(start - 1) < 1e-20                 # end of period i - 1 (alpha = 0)
        assert close(s(start + 2 ** (i - 1)), 0.5 * 0.9**i)   # middle of period i


@SETTINGS
@given(initial=initials, T0=st.integers(1, 50),
       t_mul=st.sampled_from([1.0, 2.0, 1.5, 1.1, 3.0, 1.25, 1.0625, 1.03125]),
       m_mul=st.floats(min_value=0.5, max_value=1.0), alpha=fractions01,
       t=st.integers(0, 10**6))
def test_cosine_restarts_matches_reference(initial, T0, t_mul, m_mul, alpha, t):
    expected = ref_cosine_restarts(initial, T0, t_mul, m_mul, alpha, t)
    actual = cosine_restarts(initial, T0, t_mul, m_mul, alpha)(t)
    assert close(actual, expected, rel=1e-9, abs_tol=1e-12 * initial)


def test_cosine_restarts_every_step_against_reference():
    for t_mul, T0 in [(1.0, 7), (2.0, 3), (1.5, 4), (1.1, 5), (1.01, 1)]:
        s = cosine_restarts(1.0, T0, t_mul, 0.8, 0.05)
        expected = ref_cosine_restarts_sequence(1.0, T0, t_mul, 0.8, 0.05, 2000)
        for t, value in enumerate(expected):
            assert close(s(t), value, rel=1e-10, abs_tol=1e-13), (t_mul, T0, t)


def test_cosine_restarts_matches_cosine_decay_in_first_period():
    s = cosine_restarts(0.3, 100, 2.0, alpha=0.2)
    c = cosine_decay(0.3, 100, alpha=0.2)
    assert all(close(s(t), c(t)) for t in range(100))


# ---------------------------------------------------------------------------
# linear_warmup
# ---------------------------------------------------------------------------

def test_linear_warmup_with_number():
    s = linear_warmup(0.1, 10)
    assert s(0) == 0.0
    assert close(s(5), 0.05)
    assert close(s(9), 0.09)
    assert s(10) == 0.1 and s(10**6) == 0.1
    assert isinstance(s.schedule, Schedule) and s.schedule(3) == 0.1


def test_linear_warmup_with_start():
    s = linear_warmup(1.0, 4, start=0.2)
    assert [round(s(t), 12) for t in range(6)] == [0.2, 0.4, 0.6, 0.8, 1.0, 1.0]


def test_linear_warmup_with_schedule_shifts_it():
    inner = exponential_decay(1.0, 0.5, 10)
    s = linear_warmup(inner, 5)
    assert s(0) == 0.0
    assert close(s(2), 0.4)                # 2/5 of the way to inner(0) = 1
    assert s(5) == 1.0                     # inner(0)
    assert close(s(15), 0.5)               # inner(10)
    assert close(s(25), 0.25)              # inner(20)
    for t in range(5, 200):
        assert s(t) == inner(t - 5)


def test_linear_warmup_with_lambda_and_zero_warmup():
    s = linear_warmup(lambda t: 1.0 / (1 + t), 4)
    assert [s(t) for t in (0, 2, 4, 5)] == [0.0, 0.5, 1.0, 0.5]
    assert s.state_dict() == {}
    s.load_state_dict({})
    s.on_validation(1.0)                    # the lambda has no hook: nothing happens
    z = linear_warmup(cosine_decay(1.0, 10), 0)
    assert z(0) == 1.0 and close(z(5), 0.5)


def test_linear_warmup_forwards_hooks_and_state():
    s = linear_warmup(reduce_on_plateau(1.0, factor=0.5, patience=0), 3)
    s.on_validation(2.0)
    s.on_validation(3.0)                    # bad, patience 0 -> reduce to 0.5
    assert s(3) == 0.5 and close(s(1), 0.5 / 3)
    state = s.state_dict()
    assert set(state) == {"schedule.value", "schedule.best", "schedule.num_bad",
                          "schedule.cooldown_counter", "schedule.num_validations"}
    assert state["schedule.value"] == 0.5
    fresh = linear_warmup(reduce_on_plateau(1.0, factor=0.5, patience=0), 3)
    fresh.load_state_dict({k: np.asarray(v) for k, v in state.items()})
    assert fresh(3) == 0.5 and fresh.schedule.best == 2.0
    with pytest.raises(ValueError, match=re.escape("missing keys ['schedule.best']")):
        fresh.load_state_dict({k: v for k, v in state.items() if k != "schedule.best"})
    with pytest.raises(ValueError, match="unexpected keys"):
        fresh.load_state_dict({**state, "value": 1.0})


# ---------------------------------------------------------------------------
# one_cycle
# ---------------------------------------------------------------------------

def test_one_cycle_endpoints():
    s = one_cycle(1.0, 100)                 # pct_start 0.3, div 25, final_div 1e4
    assert close(s(0), 1.0 / 25)
    peak = round(0.3 * 100) - 1             # 29
    assert s(peak) == 1.0
    assert all(s(t) < 1.0 for t in range(100) if t != peak)
    assert close(s(99), 1.0 / 25 / 1e4)
    # after the cycle: clamped to the final value (PyTorch would raise)
    assert s(100) == s(99) and s(10**7) == s(99)
    values = [s(t) for t in range(100)]
    assert all(a < b for a, b in zip(values[:peak], values[1:peak + 1]))
    assert all(a > b for a, b in zip(values[peak:-1], values[peak + 1:]))


def test_one_cycle_linear_endpoints():
    s = one_cycle(2.0, 11, pct_start=0.5, div_factor=4.0,
                  final_div_factor=5.0, anneal="linear")
    # e1 = 0.5 * 11 - 1 = 4.5: up linearly from 0.5 to 2.0 over 4.5 steps
    assert s(0) == 0.5
    assert close(s(3), 0.5 + 1.5 * 3 / 4.5)
    assert close(s(5), 2.0 + (0.1 - 2.0) * 0.5 / 5.5)
    assert close(s(10), 0.1)


def test_one_cycle_matches_values_printed_by_pytorch():
    # Printed once by torch.optim.lr_scheduler.OneCycleLR (torch 2.13) with
    # max_lr=0.5, total_steps=37, pct_start=0.25, div_factor=10,
    # final_div_factor=100; torch is not imported by the tests.
    torch_cos = {0: 0.04999999999999999, 3: 0.18153162207457552, 8: 0.498981182578944,
                 9: 0.49910027276349594, 20: 0.30975508320793543, 36: 0.0005}
    torch_lin = {0: 0.05, 3: 0.21363636363636362, 8: 0.4863636363636364, 9: 0.4865,
                 20: 0.2885, 36: 0.0005000000000000004}
    for anneal, table in (("cos", torch_cos), ("linear", torch_lin)):
        s = one_cycle(0.5, 37, pct_start=0.25, div_factor=10.0,
                      final_div_factor=100.0, anneal=anneal)
        for t, expected in table.items():
            assert close(s(t), expected, rel=1e-14), (anneal, t)


@SETTINGS
@given(max_value=initials, N=st.integers(1, 5000),
       pct=st.floats(min_value=0.01, max_value=0.99),
       div=st.floats(min_value=1.0, max_value=100.0),
       final_div=st.floats(min_value=1.0, max_value=1e5),
       anneal=st.sampled_from(["cos", "linear"]), data=st.data())
def test_one_cycle_matches_reference(max_value, N, pct, div, final_div, anneal, data):
    s = one_cycle(max_value, N, pct, div, final_div, anneal)
    e1 = pct * N - 1
    candidates = [0, N - 1, N, max(0, math.floor(e1)), max(0, math.ceil(e1)),
                  data.draw(st.integers(0, 2 * N))]
    for t in candidates:
        expected = ref_one_cycle(max_value, N, pct, div, final_div, anneal, t)
        assert close(s(t), expected, rel=1e-10, abs_tol=1e-15), t


def test_one_cycle_without_warmup_phase():
    # pct_start * total_steps = 1 -> e1 = 0: PyTorch divides by zero; we start at the peak
    s = one_cycle(1.0, 10, pct_start=0.1)
    assert s(0) == 1.0
    assert close(s(9), 1.0 / 25 / 1e4)


# ---------------------------------------------------------------------------
# reduce_on_plateau
# ---------------------------------------------------------------------------

def test_reduce_on_plateau_hand_worked_sequence():
    s = reduce_on_plateau(1.0, factor=0.5, patience=2, min_value=0.2, threshold=0.1,
                          threshold_mode="rel", cooldown=1)
    # (loss, value after, best after, num_bad after), worked out by hand.
    # Improvement means loss < best - |best| * 0.1; a reduction happens at the
    # 3rd bad validation in a row (num_bad > patience = 2), then 1 cooldown
    # validation is not counted.
    nan, inf = math.nan, math.inf
    trace = [
        (10.0, 1.0, 10.0, 0),   # best was inf: any finite loss improves
        (9.5, 1.0, 10.0, 1),    # needs < 9.0
        (8.9, 1.0, 8.9, 0),     # < 9.0: improvement
        (9.0, 1.0, 8.9, 1),     # needs < 8.01
        (8.5, 1.0, 8.9, 2),
        (8.2, 0.5, 8.9, 0),     # 3rd bad: reduce 1.0 -> 0.5, cooldown 1
        (8.3, 0.5, 8.9, 0),     # bad, but in cooldown: not counted (cooldown -> 0)
        (8.3, 0.5, 8.9, 1),
        (8.3, 0.5, 8.9, 2),
        (8.3, 0.25, 8.9, 0),    # 3rd bad: reduce 0.5 -> 0.25, cooldown 1
        (1.0, 0.25, 1.0, 0),    # improvement (during cooldown: best updated)
        (nan, 0.25, 1.0, 1),    # non-finite losses are bad validations
        (inf, 0.25, 1.0, 2),
        (0.95, 0.2, 1.0, 0),    # needs < 0.9: 3rd bad: max(0.125, 0.2) = 0.2
        (5.0, 0.2, 1.0, 0),     # cooldown
        (5.0, 0.2, 1.0, 1),
        (-inf, 0.2, 1.0, 2),    # -inf does not become the best
        (5.0, 0.2, 1.0, 0),     # reduce again: max(0.1, 0.2) = 0.2 (floor)
    ]
    for k, (loss, value, best, num_bad) in enumerate(trace):
        s.on_validation(loss)
        assert (s.value, s.best, s.num_bad) == (value, best, num_bad), k
        assert s(k) == value and s(10**6) == value
    assert s.num_validations == len(trace)
    assert s.cooldown_counter == 1


def test_reduce_on_plateau_negative_losses():
    s = reduce_on_plateau(1.0, factor=0.5, patience=0, threshold=0.1)
    s.on_validation(-10.0)
    assert s.best == -10.0 and s.value == 1.0
    # -10.5 is lower but not by 10 % of |best|: a bad validation.  (PyTorch's
    # best * (1 - threshold) = -9 would call it an improvement.)
    s.on_validation(-10.5)
    assert s.best == -10.0 and s.value == 0.5
    # -9.5 is worse than the best: must never count as an improvement
    s.on_validation(-9.5)
    assert s.best == -10.0 and s.value == 0.25
    s.on_validation(-11.5)                     # < -11: improvement
    assert s.best == -11.5 and s.value == 0.25 and s.num_bad == 0


def test_reduce_on_plateau_abs_mode():
    s = reduce_on_plateau(1.0, factor=0.5, patience=1, threshold=0.5, threshold_mode="abs")
    for loss, value, best in [(3.0, 1.0, 3.0), (2.6, 1.0, 3.0), (2.4, 1.0, 2.4),
                              (2.0, 1.0, 2.4), (1.95, 0.5, 2.4), (-1.0, 0.5, -1.0),
                              (-1.4, 0.5, -1.0), (-1.6, 0.5, -1.6)]:
        s.on_validation(loss)
        assert (s.value, s.best) == (value, best)


def test_reduce_on_plateau_cooldown():
    s = reduce_on_plateau(1.0, factor=0.5, patience=0, cooldown=2)
    values = []
    for _ in range(8):
        s.on_validation(1.0)                   # first one improves, then all bad
        values.append(s(0))
    # reduce at once (patience 0), then 2 validations ignored, then reduce again
    assert values == [1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]


def test_reduce_on_plateau_min_value_floor():
    s = reduce_on_plateau(1.0, factor=0.1, patience=0, min_value=0.05)
    s.on_validation(1.0)
    s.on_validation(1.0)
    assert close(s.value, 0.1)
    s.on_validation(1.0)
    assert s.value == 0.05
    s.on_validation(1.0)
    assert s.value == 0.05


def test_reduce_on_plateau_accepts_numpy_losses():
    s = reduce_on_plateau(1.0, patience=0, factor=0.5)
    s.on_validation(np.float32(2.0))
    s.on_validation(np.array(3.0))
    s.on_validation(4)
    assert s.best == 2.0 and s.value == 0.25
    with pytest.raises(TypeError, match=r"loss must be a real scalar; got True \(bool\)"):
        s.on_validation(True)
    with pytest.raises(TypeError, match="loss must be a real scalar"):
        s.on_validation("1.0")
    with pytest.raises(ValueError, match=re.escape("loss must be a scalar; got an array "
                                                   "of shape (2,)")):
        s.on_validation(np.array([1.0, 2.0]))


def test_reduce_on_plateau_state_round_trip_through_npz(tmp_path):
    losses = [5.0, 4.0, 4.1, 4.2, 3.0, 3.5, 3.6, 3.7, 3.8]
    s = reduce_on_plateau(0.1, factor=0.5, patience=1, cooldown=1, min_value=0.01)
    for loss in losses:
        s.on_validation(loss)
    state = s.state_dict()
    assert set(state) == {"value", "best", "num_bad", "cooldown_counter", "num_validations"}
    path = tmp_path / "state.npz"
    np.savez(path, **state)
    with np.load(path, allow_pickle=False) as data:
        loaded = {k: np.asarray(data[k]) for k in data.files}
    assert all(v.shape == () for v in loaded.values())
    t = reduce_on_plateau(0.1, factor=0.5, patience=1, cooldown=1, min_value=0.01)
    t.load_state_dict(loaded)
    assert t.state_dict() == state
    assert all(type(v) in (int, float) for v in t.state_dict().values())
    for loss in [3.9, 4.0, 4.1, 2.0, 2.5, 2.6]:
        s.on_validation(loss)
        t.on_validation(loss)
        assert s(0) == t(0) and s.state_dict() == t.state_dict()


def test_reduce_on_plateau_initial_state_round_trip(tmp_path):
    s = reduce_on_plateau(0.3)
    path = tmp_path / "s.npz"
    np.savez(path, **s.state_dict())
    with np.load(path, allow_pickle=False) as data:
        loaded = dict(data)
    t = reduce_on_plateau(0.3)
    t.load_state_dict(loaded)
    assert t.best == math.inf and t.num_validations == 0 and t.value == 0.3


def test_reduce_on_plateau_load_state_dict_errors():
    s = reduce_on_plateau(0.1)
    good = s.state_dict()
    with pytest.raises(ValueError, match=re.escape("missing keys ['num_bad']")):
        s.load_state_dict({k: v for k, v in good.items() if k != "num_bad"})
    with pytest.raises(ValueError, match=re.escape("unexpected keys ['lr']")):
        s.load_state_dict({**good, "lr": 0.1})
    with pytest.raises(TypeError, match="state must be a mapping"):
        s.load_state_dict([("value", 0.1)])
    with pytest.raises(TypeError, match="'num_bad' must be an integer"):
        s.load_state_dict({**good, "num_bad": 1.5})
    with pytest.raises(ValueError,
                       match=re.escape("'value' must be a scalar; got an array of shape (2,)")):
        s.load_state_dict({**good, "value": np.array([0.1, 0.2])})
    with pytest.raises(ValueError, match="'value' must be finite and >= 0"):
        s.load_state_dict({**good, "value": np.nan})
    with pytest.raises(ValueError, match="'best' must be a number or \\+inf"):
        s.load_state_dict({**good, "best": np.nan})
    with pytest.raises(ValueError, match="'cooldown_counter' must be >= 0; got -1"):
        s.load_state_dict({**good, "cooldown_counter": -1})
    # a refused state leaves the schedule untouched
    with pytest.raises(ValueError):
        s.load_state_dict({**good, "value": 0.5, "num_validations": -3})
    assert s.state_dict() == good


def test_reduce_on_plateau_properties_are_read_only():
    s = reduce_on_plateau(0.1)
    for name in ("value", "best", "num_bad", "cooldown_counter", "num_validations"):
        with pytest.raises(AttributeError):
            setattr(s, name, 1)


# ---------------------------------------------------------------------------
# The base class and the protocol
# ---------------------------------------------------------------------------

def test_base_class_hooks():
    class Halving(Schedule):
        def _compute(self, step):
            return 1.0 / 2 ** step

    s = Halving()
    assert s(3) == 0.125 and type(s(np.int16(1))) is float
    assert s.on_validation(1.0) is None
    assert s.state_dict() == {}
    s.load_state_dict({})
    with pytest.raises(ValueError,
                       match=re.escape("Halving.load_state_dict: unexpected keys ['x']")):
        s.load_state_dict({"x": 1})
    assert repr(s) == "Halving()"
    with pytest.raises(NotImplementedError):
        Schedule()(0)


ALL_SCHEDULES = [
    constant(0.1),
    exponential_decay(0.1, 0.5, 100),
    inverse_time_decay(0.1, 0.5, 100),
    piecewise_constant([10, 20], [0.1, 0.01, 0.001]),
    polynomial_decay(0.1, 100),
    cosine_decay(0.1, 100),
    cosine_restarts(0.1, 10),
    linear_warmup(cosine_decay(0.1, 100), 10),
    one_cycle(0.1, 100),
    reduce_on_plateau(0.1),
]


@pytest.mark.parametrize("s", ALL_SCHEDULES, ids=lambda s: type(s).__name__)
def test_step_validation_and_float_results(s):
    assert isinstance(s, Schedule)
    for t in (0, 1, 10, 99, 100, 10**12, np.int64(5), np.uint8(3), np.int32(0)):
        assert type(s(t)) is float
    name = repr(s).split("(")[0]
    with pytest.raises(ValueError, match=re.escape(f"{name}: step must be >= 0; got -1")):
        s(-1)
    for bad in (1.0, np.float64(2.0), True, np.bool_(False), "3", None):
        with pytest.raises(TypeError, match=f"{name}: step must be an integer"):
            s(bad)


STATELESS = [x for x in ALL_SCHEDULES if not isinstance(x, schedules.ReduceOnPlateau)]


@pytest.mark.parametrize("s", STATELESS, ids=lambda s: type(s).__name__)
def test_stateless_schedules_have_empty_state(s):
    assert s.state_dict() == {}
    s.load_state_dict({})
    assert s.on_validation(0.5) is None


def test_repr_contains_the_arguments():
    assert repr(exponential_decay(0.1, 0.5, 100)) == (
        "exponential_decay(initial=0.1, decay_rate=0.5, decay_steps=100, staircase=False)")
    assert repr(piecewise_constant([10, 20], [1, 0.5, 0.25])) == (
        "piecewise_constant(boundaries=[10, 20], values=[1.0, 0.5, 0.25])")
    assert repr(linear_warmup(0.1, 5, start=0.01)) == (
        "linear_warmup(schedule=constant(value=0.1), warmup_steps=5, start=0.01)")
    assert repr(reduce_on_plateau(0.1, factor=0.5, threshold_mode="abs")) == (
        "reduce_on_plateau(initial=0.1, factor=0.5, patience=10, min_value=0.0, "
        "threshold=0.0001, threshold_mode='abs', cooldown=0)")
    assert "anneal='linear'" in repr(one_cycle(1.0, 10, anneal="linear"))
    assert "t_mul=1.5" in repr(cosine_restarts(1.0, 10, 1.5))
    # the repr of a stateless schedule rebuilds an equivalent schedule
    for s in ALL_SCHEDULES[:-1]:
        rebuilt = eval(repr(s), vars(schedules))
        assert repr(rebuilt) == repr(s)
        assert all(rebuilt(t) == s(t) for t in (0, 7, 10, 55, 100, 1000))


def test_all_is_complete():
    for name in schedules.__all__:
        assert hasattr(schedules, name)
    lowercase = [n for n in schedules.__all__ if n.islower()]
    assert sorted(lowercase) == sorted([
        "constant", "exponential_decay", "inverse_time_decay", "piecewise_constant",
        "polynomial_decay", "cosine_decay", "cosine_restarts", "linear_warmup",
        "one_cycle", "reduce_on_plateau"])


# ---------------------------------------------------------------------------
# Argument validation: every error, type and message
# ---------------------------------------------------------------------------

E = re.escape
NAN, INF = float("nan"), float("inf")

VALIDATION_CASES = [
    # constant
    (constant, (NAN,), {}, ValueError, E("constant(value=nan): value must be finite; got nan")),
    (constant, (INF,), {}, ValueError, E("constant(value=inf): value must be finite; got inf")),
    (constant, (True,), {}, TypeError,
     E("constant(value=True): value must be a real number; got True (bool)")),
    (constant, ("0.1",), {}, TypeError,
     E("constant(value='0.1'): value must be a real number; got '0.1' (str)")),
    (constant, (10**400,), {}, ValueError, "value must be finite"),
    # exponential_decay
    (exponential_decay, (0.1, 0.5, 0), {}, ValueError,
     E("exponential_decay(decay_steps=0): decay_steps must be > 0; got 0")),
    (exponential_decay, (0.1, 0.5, 10.0), {}, TypeError,
     E("exponential_decay(decay_steps=10.0): decay_steps must be an integer; got 10.0 (float)")),
    (exponential_decay, (0.1, 0.5, True), {}, TypeError,
     E("exponential_decay(decay_steps=True): decay_steps must be an integer; got True (bool)")),
    (exponential_decay, (0.1, 0.0, 10), {}, ValueError,
     E("exponential_decay(decay_rate=0.0): decay_rate must be > 0; got 0.0")),
    (exponential_decay, (0.1, -0.5, 10), {}, ValueError, "decay_rate must be > 0; got -0.5"),
    (exponential_decay, (0.1, NAN, 10), {}, ValueError, "decay_rate must be finite; got nan"),
    (exponential_decay, (INF, 0.5, 10), {}, ValueError, "initial must be finite; got inf"),
    (exponential_decay, (0.1, 0.5, 10), {"staircase": 1}, TypeError,
     E("exponential_decay(staircase=1): staircase must be a bool; got 1 (int)")),
    # inverse_time_decay
    (inverse_time_decay, (0.1, -1.0, 10), {}, ValueError,
     E("inverse_time_decay(decay_rate=-1.0): decay_rate must be >= 0; got -1.0")),
    (inverse_time_decay, (0.1, 1.0, -3), {}, ValueError,
     E("inverse_time_decay(decay_steps=-3): decay_steps must be > 0; got -3")),
    (inverse_time_decay, (None, 1.0, 3), {}, TypeError,
     E("inverse_time_decay(initial=None): initial must be a real number; got None (NoneType)")),
    (inverse_time_decay, (0.1, 1.0, 3), {"staircase": "yes"}, TypeError,
     "staircase must be a bool"),
    # piecewise_constant
    (piecewise_constant, ([10, 10], [1, 2, 3]), {}, ValueError,
     E("piecewise_constant(boundaries=[10, 10]): boundaries must be strictly increasing; "
       "got [10, 10]")),
    (piecewise_constant, ([20, 10], [1, 2, 3]), {}, ValueError, "strictly increasing"),
    (piecewise_constant, ([-1, 10], [1, 2, 3]), {}, ValueError,
     E("piecewise_constant(boundaries=[-1, 10]): boundaries[0] must be >= 0; got -1")),
    (piecewise_constant, ([5, 10.5], [1, 2, 3]), {}, TypeError,
     E("piecewise_constant(boundaries=[5, 10.5]): boundaries[1] must be an integer; "
       "got 10.5 (float)")),
    (piecewise_constant, ([5, True], [1, 2, 3]), {}, TypeError,
     "boundaries\\[1\\] must be an integer; got True \\(bool\\)"),
    (piecewise_constant, ([5, 10], [1, 2]), {}, ValueError,
     E("piecewise_constant(values=[1, 2]): len(values) must be len(boundaries) + 1 = 3; got 2")),
    (piecewise_constant, ([5], [1, NAN]), {}, ValueError,
     E("piecewise_constant(values=[1, nan]): values[1] must be finite; got nan")),
    (piecewise_constant, ([5], [1, "a"]), {}, TypeError,
     E("piecewise_constant(values=[1, 'a']): values[1] must be a real number; got 'a' (str)")),
    (piecewise_constant, (5, [1, 2]), {}, TypeError,
     E("piecewise_constant(boundaries=5): boundaries must be a sequence (list, tuple or "
       "1-d array); got 5 (int)")),
    (piecewise_constant, ([5], "ab"), {}, TypeError, "values must be a sequence"),
    (piecewise_constant, (np.array([[1, 2]]), [1, 2, 3]), {}, ValueError,
     "boundaries must be one-dimensional"),
    # polynomial_decay
    (polynomial_decay, (0.1, 0), {}, ValueError,
     E("polynomial_decay(decay_steps=0): decay_steps must be > 0; got 0")),
    (polynomial_decay, (0.1, 10), {"power": 0.0}, ValueError,
     E("polynomial_decay(power=0.0): power must be > 0; got 0.0")),
    (polynomial_decay, (0.1, 10), {"end": NAN}, ValueError,
     E("polynomial_decay(end=nan): end must be finite; got nan")),
    (polynomial_decay, (0.1, 10), {"cycle": None}, TypeError,
     E("polynomial_decay(cycle=None): cycle must be a bool; got None (NoneType)")),
    # cosine_decay
    (cosine_decay, (0.1, 0), {}, ValueError,
     E("cosine_decay(decay_steps=0): decay_steps must be > 0; got 0")),
    (cosine_decay, (0.1, 10), {"alpha": 1.5}, ValueError,
     E("cosine_decay(alpha=1.5): alpha must be in [0, 1]; got 1.5")),
    (cosine_decay, (0.1, 10), {"alpha": -0.1}, ValueError, "alpha must be in \\[0, 1\\]"),
    # cosine_restarts
    (cosine_restarts, (0.1, 0), {}, ValueError,
     E("cosine_restarts(first_decay_steps=0): first_decay_steps must be > 0; got 0")),
    (cosine_restarts, (0.1, 10), {"t_mul": 0.5}, ValueError,
     E("cosine_restarts(t_mul=0.5): t_mul must be >= 1; got 0.5")),
    (cosine_restarts, (0.1, 10), {"t_mul": INF}, ValueError, "t_mul must be finite; got inf"),
    (cosine_restarts, (0.1, 10), {"m_mul": 0.0}, ValueError,
     E("cosine_restarts(m_mul=0.0): m_mul must be > 0; got 0.0")),
    (cosine_restarts, (0.1, 10), {"alpha": 2.0}, ValueError, "alpha must be in \\[0, 1\\]"),
    (cosine_restarts, (0.1, 10), {"t_mul": False}, TypeError,
     "t_mul must be a real number; got False \\(bool\\)"),
    # linear_warmup
    (linear_warmup, ("0.1", 10), {}, TypeError,
     E("linear_warmup(schedule='0.1'): schedule must be a real number or a callable "
       "f(step) -> float; got '0.1' (str)")),
    (linear_warmup, (True, 10), {}, TypeError, "schedule must be a real number or a callable"),
    (linear_warmup, (NAN, 10), {}, ValueError, "constant\\(value=nan\\): value must be finite"),
    (linear_warmup, (0.1, -1), {}, ValueError,
     E("linear_warmup(warmup_steps=-1): warmup_steps must be >= 0; got -1")),
    (linear_warmup, (0.1, 2.5), {}, TypeError,
     E("linear_warmup(warmup_steps=2.5): warmup_steps must be an integer; got 2.5 (float)")),
    (linear_warmup, (0.1, 5), {"start": INF}, ValueError,
     E("linear_warmup(start=inf): start must be finite; got inf")),
    # one_cycle
    (one_cycle, (0.0, 100), {}, ValueError,
     E("one_cycle(max_value=0.0): max_value must be > 0; got 0.0")),
    (one_cycle, (1.0, 0), {}, ValueError,
     E("one_cycle(total_steps=0): total_steps must be > 0; got 0")),
    (one_cycle, (1.0, 100.0), {}, TypeError,
     E("one_cycle(total_steps=100.0): total_steps must be an integer; got 100.0 (float)")),
    (one_cycle, (1.0, 100), {"pct_start": 1.0}, ValueError,
     E("one_cycle(pct_start=1.0): pct_start must be in (0, 1); got 1.0")),
    (one_cycle, (1.0, 100), {"pct_start": 0}, ValueError, "pct_start must be in \\(0, 1\\)"),
    (one_cycle, (1.0, 100), {"div_factor": 0.0}, ValueError,
     E("one_cycle(div_factor=0.0): div_factor must be > 0; got 0.0")),
    (one_cycle, (1.0, 100), {"final_div_factor": -1.0}, ValueError,
     "final_div_factor must be > 0; got -1.0"),
    (one_cycle, (1.0, 100), {"anneal": "exp"}, ValueError,
     E("one_cycle(anneal='exp'): anneal must be one of 'cos', 'linear'; got 'exp'")),
    (one_cycle, (1.0, 100), {"anneal": None}, TypeError,
     E("one_cycle(anneal=None): anneal must be one of 'cos', 'linear'; got None (NoneType)")),
    # reduce_on_plateau
    (reduce_on_plateau, (-0.1,), {}, ValueError,
     E("reduce_on_plateau(initial=-0.1): initial must be >= 0; got -0.1")),
    (reduce_on_plateau, (0.1,), {"factor": 1.0}, ValueError,
     E("reduce_on_plateau(factor=1.0): factor must be in (0, 1); got 1.0")),
    (reduce_on_plateau, (0.1,), {"factor": 0.0}, ValueError, "factor must be in \\(0, 1\\)"),
    (reduce_on_plateau, (0.1,), {"patience": -1}, ValueError,
     E("reduce_on_plateau(patience=-1): patience must be >= 0; got -1")),
    (reduce_on_plateau, (0.1,), {"patience": 2.0}, TypeError,
     "patience must be an integer; got 2.0 \\(float\\)"),
    (reduce_on_plateau, (0.1,), {"min_value": -1e-3}, ValueError,
     "min_value must be >= 0; got -0.001"),
    (reduce_on_plateau, (0.1,), {"min_value": 0.5}, ValueError,
     E("reduce_on_plateau(min_value=0.5): min_value must be <= initial = 0.1; got 0.5")),
    (reduce_on_plateau, (0.1,), {"threshold": -1e-4}, ValueError,
     "threshold must be >= 0; got -0.0001"),
    (reduce_on_plateau, (0.1,), {"threshold": NAN}, ValueError, "threshold must be finite"),
    (reduce_on_plateau, (0.1,), {"threshold_mode": "max"}, ValueError,
     E("reduce_on_plateau(threshold_mode='max'): threshold_mode must be one of 'rel', "
       "'abs'; got 'max'")),
    (reduce_on_plateau, (0.1,), {"cooldown": -2}, ValueError,
     E("reduce_on_plateau(cooldown=-2): cooldown must be >= 0; got -2")),
    (reduce_on_plateau, (0.1,), {"cooldown": np.bool_(True)}, TypeError,
     "cooldown must be an integer"),
]


@pytest.mark.parametrize("factory, args, kwargs, exc, pattern", VALIDATION_CASES,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(VALIDATION_CASES)])
def test_argument_validation(factory, args, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        factory(*args, **kwargs)


def test_numpy_scalar_arguments_are_accepted():
    s = exponential_decay(np.float32(0.5), np.float64(0.5), np.int64(10), np.bool_(True))
    assert s(10) == 0.25
    assert repr(s) == ("exponential_decay(initial=0.5, decay_rate=0.5, decay_steps=10, "
                       "staircase=True)")
    assert close(one_cycle(np.float64(1.0), np.int32(10))(0), 1.0 / 25)
