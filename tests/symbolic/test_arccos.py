"""Arc-cosine kernels ``J_n`` (Cho & Saul 2009) derived with SymPy
(:mod:`analytic_ntk.symbolic.arccos`): the operator, closed forms, recurrence, Price's
theorem, and the library's ``RectifiedMonomial`` against them."""

from __future__ import annotations

import math
import random

import mpmath
import numpy as np
import pytest
import sympy as sp

from analytic_ntk import duals, layers
from analytic_ntk.symbolic import arccos as ac

ORDERS = range(0, 5)  # bounded symbolic work; the script goes to 6


@pytest.mark.parametrize("n", ORDERS)
def test_j_checks(n):
    """J_0, J_1 forms, J_n(0) = pi (2n-1)!!, J_n(pi) = 0, the recurrence, dJ_n/dc = n^2 J_(n-1)
    and the simplified form, all exact."""
    checks = ac.j_checks(n)
    assert checks and all(checks.values()), checks
    if n <= 1:
        assert "form" in checks
    if n >= 1:
        assert "derivative" in checks


def test_j_low_orders_explicit():
    t = ac.THETA
    assert sp.simplify(ac.j_theta(0) - (sp.pi - t)) == 0
    assert sp.simplify(ac.j_theta(1) - (sp.sin(t) + (sp.pi - t) * sp.cos(t))) == 0
    assert sp.simplify(ac.j_theta(2) - (3 * sp.sin(t) * sp.cos(t)
                                        + (sp.pi - t) * (1 + 2 * sp.cos(t) ** 2))) == 0
    for n in ORDERS:
        assert ac.j_operator(n).subs(t, 0) == sp.pi * ac.double_factorial_odd(n)


def test_relu_factor_is_pi_minus_theta():
    """dJ_1/dc = J_0: the ReLU factor (pi - theta) / (2 pi)."""
    t = ac.THETA
    d_dc = sp.diff(ac.j_operator(1), t) / (-sp.sin(t))  # dc = -sin(t) dt
    assert sp.simplify(d_dc - (sp.pi - t)) == 0
    assert sp.simplify(ac.factor(1) - (sp.pi - sp.acos(ac.Q12 / sp.sqrt(ac.Q1 * ac.Q2)))
                       / (2 * sp.pi)) == 0


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_price(n):
    """simplify(dk_n/dq12 - n^2 (q1 q2)^((n-1)/2) J_(n-1) / (2 pi)) == 0."""
    assert ac.price_residual(n) == 0


def test_step_price():
    """n = 0: dk_0/dq12 = E[delta(u) delta(v)] = 1 / (2 pi sqrt(q1 q2 - q12^2)); the
    library's factor is the a.e. derivative 0."""
    assert ac.step_price_residual() == 0
    assert ac.factor(0) == 0


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_diag_derivative_euler(n):
    """dk/dq1 = (n k - q12 dk/dq12) / (2 q1) (homogeneity of degree n and symmetry)."""
    k = ac.dual(n)
    rhs = (n * k - ac.Q12 * sp.diff(k, ac.Q12)) / (2 * ac.Q1)
    assert sp.simplify(ac.diag_derivative(n) - rhs) == 0


def test_recurrence_against_mpmath_quadrature():
    """J_2 at one angle against the defining Gaussian integral, independent of SymPy:
    E[max(u,0)^2 max(v,0)^2] for unit variances and correlation cos(theta)."""
    with mpmath.workdps(25):
        th = mpmath.mpf("1.1")
        c = mpmath.cos(th)
        s = mpmath.sin(th)

        # v = c u + s w; integrate over u > 0 with the inner w-integral in closed form
        def inner(u):
            lo = -c * u / s  # v > 0 <=> w > lo
            # E[(c u + s w)^2 1{w > lo}] for w ~ N(0, 1)
            m0 = mpmath.ncdf(-lo)
            m1 = mpmath.npdf(lo)
            m2 = lo * mpmath.npdf(lo) + m0
            return (c * u) ** 2 * m0 + 2 * c * u * s * m1 + s**2 * m2

        val = mpmath.quad(lambda u: u**2 * inner(u) * mpmath.npdf(u), [0, mpmath.inf])
        jn = sp.lambdify(ac.THETA, ac.j_theta(2), "mpmath")(th)
        assert abs(val - jn / (2 * mpmath.pi)) < mpmath.mpf("1e-20")


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_library_rectmono(n):
    """duals.evaluate(RectifiedMonomial(n)) against the SymPy dual and factor (30 digits)
    at random points, relative 1e-12."""
    f = sp.lambdify((ac.Q1, ac.Q2, ac.Q12), ac.dual(n), "mpmath")
    g = sp.lambdify((ac.Q1, ac.Q2, ac.Q12), ac.factor(n), "mpmath")
    rng = random.Random(n)
    for _ in range(10):
        q1, q2 = rng.uniform(0.1, 3), rng.uniform(0.1, 3)
        q12 = rng.uniform(-0.99, 0.99) * math.sqrt(q1 * q2)
        got_f, got_g = duals.evaluate(layers.RectifiedMonomial(n), q1, q2, q12)
        with mpmath.workdps(30):
            ref_f, ref_g = f(q1, q2, q12), g(q1, q2, q12)
        assert abs(got_f - ref_f) <= 1e-12 * abs(ref_f)
        assert abs(got_g - ref_g) <= 1e-12 * abs(ref_g) if n else got_g == 0.0


@pytest.mark.parametrize("n", [4, 6, 8])
def test_library_rectmono_high_order_near_series_switch(n):
    """Regression: the antipodal series had a fixed 30 terms, too few for n >= 4 near
    its old switch (pi - theta = 1.5): 1.2e-12 at n = 4, 1.3e-10 at n = 6, 5e-9 at n = 8;
    now the term count grows with n and the series covers exactly c < 0."""
    c = np.array([-0.0726, -0.05, -0.2])
    got, _ = duals.evaluate(layers.RectifiedMonomial(n), np.ones(3), np.ones(3), c)
    jn = sp.lambdify(ac.THETA, ac.j_recurrence(n), "mpmath")
    with mpmath.workdps(30):
        for ci, gi in zip(c, got):
            ref = jn(mpmath.acos(mpmath.mpf(ci))) / (2 * mpmath.pi)
            assert abs(gi - ref) <= 1e-13 * abs(ref)
