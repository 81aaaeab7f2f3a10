"""Fast ReLU population drift (:mod:`analytic_ntk.meanfield.drift`): agreement with
:func:`population_risk`, with a 40-digit mpmath evaluation of the same formulas, with
central finite differences of its own risk; zero rows, row blocks, bad input."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest

import analytic_ntk as nt
from analytic_ntk.meanfield import Teacher, population_risk
from analytic_ntk.meanfield.drift import _acos, _pair_sums_serial, relu_drift


def _problem(m, d, k=3, seed=0, zero_rows=()):
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(m)
    w = rng.standard_normal((m, d)) / math.sqrt(d)
    w[list(zero_rows)] = 0.0
    tw = rng.standard_normal((k, d)) / math.sqrt(d)
    tc = rng.standard_normal(k)
    return u, w, tw, tc


def _reference(u, w, tw, tc, alpha, noise=0.0):
    t = Teacher(nt.Relu(), tw, np.zeros(tc.size), tc, noise)
    r, (du, dw, _) = population_risk(nt.Relu(), u, w, np.zeros(u.size), t, alpha, grad=True)
    return r, du, dw


def _rel(x, y):
    return float(np.max(np.abs(np.asarray(x) - y)) / np.max(np.abs(y)))


@pytest.mark.parametrize("m,d", [(7, 5), (30, 3)])
@pytest.mark.parametrize("scale", ["mean-field", "lazy"])
def test_agrees_with_population_risk(m, d, scale):
    u, w, tw, tc = _problem(m, d, seed=m, zero_rows=(2,))
    alpha = 1.0 if scale == "mean-field" else math.sqrt(m)
    r, du, dw = relu_drift(u, w, tw, tc, alpha, noise_std=0.3)
    r0, du0, dw0 = _reference(u, w, tw, tc, alpha, noise=0.3)
    assert abs(r - r0) <= 1e-13 * abs(r0)
    assert _rel(du, du0) <= 1e-13
    # the two terms of dw cancel in the lazy scaling, and in d = 3 some pairs are nearly
    # parallel (the quadrature route of bivariate_expectation, ~1e-10 there)
    assert _rel(dw, dw0) <= 1e-9


def _mp_reference(u, w, tw, tc, alpha):
    """``(risk, du, dw)`` from the docstring's formulas in 40-digit arithmetic."""
    mp.mp.dps = 40
    W = [[mp.mpf(float(v)) for v in row] for row in w]
    T = [[mp.mpf(float(v)) for v in row] for row in tw]
    U = [mp.mpf(float(v)) for v in u]
    C = [mp.mpf(float(v)) for v in tc]
    a = mp.mpf(float(alpha)) / len(W)

    def dot(x, y):
        return mp.fsum(p * q for p, q in zip(x, y))

    def dual(x, y, same):
        """``(F, dF/dx)``; ``same``: the diagonal pair."""
        nx, ny = mp.sqrt(dot(x, x)), mp.sqrt(dot(y, y))
        if same:
            return nx * nx / 2, [xx / 2 for xx in x]  # see the diagonal below
        if nx == 0 or ny == 0:
            return mp.mpf(0), [yy / 4 for yy in y]
        c = max(min(dot(x, y) / (nx * ny), 1), -1)
        t = mp.acos(c)
        s = mp.sqrt(1 - c * c)
        f = nx * ny * (s + (mp.pi - t) * c) / (2 * mp.pi)
        g = (mp.pi - t) / (2 * mp.pi)
        return f, [ny * s / (2 * mp.pi * nx) * xx + g * yy for xx, yy in zip(x, y)]

    ey2 = mp.fsum(C[k] * C[q] * dual(T[k], T[q], k == q)[0]
                  for k in range(len(T)) for q in range(len(T)))
    risk = ey2 / 2
    du, dw = [], []
    for j in range(len(W)):
        duj = mp.mpf(0)
        dwj = [mp.mpf(0)] * len(W[j])
        for k in range(len(T)):
            f, df = dual(W[j], T[k], False)
            risk -= a * U[j] * C[k] * f
            duj -= a * C[k] * f
            dwj = [o - a * U[j] * C[k] * v for o, v in zip(dwj, df)]
        for q in range(len(W)):
            f, df = dual(W[j], W[q], j == q)
            risk += a * a / 2 * U[j] * U[q] * f
            duj += a * a * U[q] * f
            # each off-diagonal pair appears twice in the double sum; the diagonal term
            # (a^2 / 2) u_j^2 |w_j|^2 / 2 has derivative a^2 u_j^2 (w_j / 2)
            dwj = [o + a * a * U[j] * U[q] * v for o, v in zip(dwj, df)]
        du.append(float(duj))
        dw.append([float(v) for v in dwj])
    return float(risk), np.array(du), np.array(dw)


@pytest.mark.parametrize("alpha", [1.0, math.sqrt(6.0)])
def test_agrees_with_high_precision(alpha):
    u, w, tw, tc = _problem(6, 4, k=2, seed=3, zero_rows=(4,))
    r, du, dw = relu_drift(u, w, tw, tc, alpha)
    r0, du0, dw0 = _mp_reference(u, w, tw, tc, alpha)
    assert abs(r - r0) <= 1e-14 * abs(r0)
    assert _rel(du, du0) <= 1e-14
    assert _rel(dw, dw0) <= 1e-13


def test_parallel_and_antiparallel_pairs():
    # the angle of a rounded cosine near +-1 is off by ~sqrt(eps): g and sin t (so dw)
    # lose about half the digits, F (so the risk and du) does not
    u, w, tw, tc = _problem(5, 3, k=2, seed=4)
    w[1] = -0.5 * w[0]
    w[2] = 3.0 * w[3]
    r, du, dw = relu_drift(u, w, tw, tc)
    r0, du0, dw0 = _mp_reference(u, w, tw, tc, 1.0)
    assert abs(r - r0) <= 1e-14 * abs(r0)
    assert _rel(du, du0) <= 1e-14
    assert _rel(dw, dw0) <= 1e-7


def test_gradients_against_finite_differences():
    u, w, tw, tc = _problem(9, 4, seed=5)
    alpha = 1.7
    _, du, dw = relu_drift(u, w, tw, tc, alpha)
    h = 1e-5
    for arr, grad in ((u, du), (w, dw)):
        flat, gf = arr.reshape(-1), grad.reshape(-1)
        for i in range(0, flat.size, 2):
            old = flat[i]
            flat[i] = old + h
            rp = relu_drift(u, w, tw, tc, alpha)[0]
            flat[i] = old - h
            rm = relu_drift(u, w, tw, tc, alpha)[0]
            flat[i] = old
            assert (rp - rm) / (2 * h) == pytest.approx(gf[i], rel=1e-7, abs=1e-10)


def test_zero_rows_and_teacher_units():
    u, w, tw, tc = _problem(8, 3, seed=7, zero_rows=(0, 5))
    tw[1] = 0.0  # a zero teacher unit contributes nothing
    r, du, dw = relu_drift(u, w, tw, tc)
    assert np.isfinite(r) and np.all(np.isfinite(du)) and np.all(np.isfinite(dw))
    r0, du0, dw0 = _reference(u, w, tw, tc, 1.0)
    assert abs(r - r0) <= 1e-13 * abs(r0)
    assert _rel(du, du0) <= 1e-13
    # the two terms of dw cancel in the lazy scaling, and in d = 3 some pairs are nearly
    # parallel (the quadrature route of bivariate_expectation, ~1e-10 there)
    assert _rel(dw, dw0) <= 1e-9
    # all-zero student: f = 0, R = E[y^2] / 2, du = 0
    r, du, dw = relu_drift(u, np.zeros_like(w), tw, tc)
    r0, _, _ = _reference(u, np.zeros_like(w), tw, tc, 1.0)
    assert r == pytest.approx(r0, rel=1e-13)
    assert np.all(du == 0.0) and np.all(np.isfinite(dw))


def test_row_blocks_and_parallel_pass_agree():
    u, w, tw, tc = _problem(300, 6, seed=11)  # m^2 > _PARALLEL_PAIRS: threaded pass
    full = relu_drift(u, w, tw, tc, 2.0)
    blocked = relu_drift(u, w, tw, tc, 2.0, _block=7)
    assert blocked[0] == pytest.approx(full[0], rel=1e-14)
    assert _rel(blocked[1], full[1]) <= 1e-14
    assert _rel(blocked[2], full[2]) <= 1e-14
    r0, du0, dw0 = _reference(u, w, tw, tc, 2.0)
    assert abs(full[0] - r0) <= 1e-12 * abs(r0)
    assert _rel(full[1], du0) <= 1e-12
    assert _rel(full[2], dw0) <= 1e-10


def test_acos_kernel():
    x = np.concatenate([np.linspace(-1.0, 1.0, 20001), 1.0 - np.logspace(-16, 0, 200),
                        -1.0 + np.logspace(-16, 0, 200)])
    g = x[None, :].copy()
    one = np.ones(1)
    ones = np.ones(x.size)
    _pair_sums_serial(g, one, one, ones, ones, ones, -1)  # g <- (pi - acos x) / (2 pi)
    t = math.pi - 2.0 * math.pi * g[0]
    assert np.max(np.abs(t - np.arccos(x))) <= 4 * np.finfo(float).eps
    assert _acos.py_func(0.3) == pytest.approx(math.acos(0.3), rel=1e-15)


@pytest.mark.parametrize("args,match", [
    ((np.ones(3), np.ones((4, 2)), np.ones((1, 2)), np.ones(1)), "particles"),
    ((np.ones(3), np.ones((3, 2)), np.ones((1, 3)), np.ones(1)), "input dimension"),
    ((np.ones(3), np.ones((3, 2)), np.ones((2, 2)), np.ones(1)), "units"),
    ((np.ones((3, 1)), np.ones((3, 2)), np.ones((1, 2)), np.ones(1)), "dimension"),
    ((np.ones(3), np.ones(3), np.ones((1, 2)), np.ones(1)), "dimension"),
    ((np.ones(3), np.full((3, 2), np.nan), np.ones((1, 2)), np.ones(1)), "NaN"),
    ((np.array([1.0, np.inf, 0.0]), np.ones((3, 2)), np.ones((1, 2)), np.ones(1)), "NaN"),
    ((np.ones(3), np.ones((3, 2)), np.ones((1, 2)), np.array([np.nan])), "NaN"),
    ((np.ones(0), np.ones((0, 2)), np.ones((1, 2)), np.ones(1)), "at least one"),
])
def test_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        relu_drift(*args)


def test_bad_scalars():
    u, w, tw, tc = _problem(3, 2)
    with pytest.raises(ValueError, match="alpha"):
        relu_drift(u, w, tw, tc, alpha=np.nan)
    with pytest.raises(ValueError, match="alpha"):
        relu_drift(u, w, tw, tc, alpha="x")
    with pytest.raises(ValueError, match="noise_std"):
        relu_drift(u, w, tw, tc, noise_std=-1.0)
