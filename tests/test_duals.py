"""Closed-form duals and NTK factors (``analytic_ntk.duals``) against independent checks.

1. The reference integrator :mod:`validation.integrals` against analytically known
   Gaussian expectations (Isserlis, Sheppard, Stein, characteristic functions) and
   mpmath at 30 digits -- none of them taken from ``duals.py``.
2. Every closed form ``F = E[phi(u) phi(v)]`` and factor ``G = E[phi'(u) phi'(v)]``
   against that integrator, to ``1e-12`` (relative, with the floor of
   :func:`validation.duals_check.rel_err`).
3. Price's theorem ``G = dF/dq12`` by an 8th-order central difference of ``F``.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from analytic_ntk import Cos, Erf, Exp, Gaussian, Gelu, Monomial, Polynomial, Rbf, Sin, duals
from analytic_ntk._reference import dual as ref_dual
from validation import duals_check as dc
from validation.integrals import (
    bivariate_rule,
    gaussian_expectation,
    gaussian_expectation_1d,
    half_range_rule,
)

EPS = np.finfo(float).eps
ACTS = dict(dc.ACTIVATIONS)
NAMES = list(ACTS)

HYP = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

# Regression cases (once real defects, fixed in duals.py): Relu / RectifiedMonomial(n)
# as rho -> -1, where sin + (pi - theta) cos and the forward J_n recurrence cancel to
# O((pi - theta)^(2n+1)) (now a series in pi - theta); the step (pi - theta)/(2 pi)
# at rho = -1 + 1e-12 (now pi - theta is carried exactly); Sin()/Cos() at small
# b^2 q12, where exp(-x) - exp(-y) cancels (now sinh/cosh).
ANTIPODAL_CASES = {"Relu()", *(f"RectifiedMonomial({n})" for n in range(0, 5))}
SMALL_Q12_CASES = {"Sin()", "Cos()"}


def mp_rho(q1, q2, q12):
    """Correlation of the float64 covariance at the current mpmath precision, clipped."""
    r = mpmath.mpf(q12) / mpmath.sqrt(mpmath.mpf(q1) * mpmath.mpf(q2))
    return max(min(r, mpmath.mpf(1)), mpmath.mpf(-1))


COVS = [
    (1.0, 1.0),
    (0.5, 2.0),
    (3.7, 0.21),
    (1e-3, 10.0),
]
RHOS = [-1.0, -0.999999, -0.999, -0.5, 0.0, 0.3, 0.9, 0.999999, 1.0]
GRID = [(q1, q2, r * math.sqrt(q1 * q2)) for q1, q2 in COVS for r in RHOS]


# ---------------------------------------------------------------- 1. the integrator


@pytest.mark.parametrize("gamma", [0, 1])
def test_half_range_rule_moments(gamma):
    """``sum w x^k = int_0^inf r^(k+gamma) e^(-r^2/2) dr = 2^((k+gamma-1)/2) Gamma((k+gamma+1)/2)``
    for every degree the 128-point rule integrates exactly (``k <= 255``, in log form)."""
    x, w = half_range_rule(128, gamma)
    assert np.all(np.diff(x) > 0) and np.all(w > 0)
    for k in range(0, 256, 3):
        ex = ((k + gamma - 1) / 2) * math.log(2) + math.lgamma((k + gamma + 1) / 2)
        got = math.log(np.sum(w * np.exp(k * np.log(x) - ex)))
        assert abs(got) < 2e-14 * max(1, k / 8), (k, got)


@pytest.mark.parametrize("q1, q2, q12", GRID)
def test_isserlis(q1, q2, q12):
    """``E[uv] = q12``, ``E[u^2 v^2] = q1 q2 + 2 q12^2``, ``E[u^3 v] = 3 q1 q12`` (Isserlis)."""
    p = math.sqrt(q1 * q2)
    assert abs(gaussian_expectation(lambda x: x, lambda y: y, q1, q2, q12) - q12) <= 4e-15 * p
    e22 = gaussian_expectation(np.square, np.square, q1, q2, q12)
    assert e22 == pytest.approx(q1 * q2 + 2 * q12**2, rel=5e-15, abs=0)
    e31 = gaussian_expectation(lambda x: x**3, lambda y: y, q1, q2, q12)
    assert abs(e31 - 3 * q1 * q12) <= 1e-14 * q1 * p


@pytest.mark.parametrize("q1, q2, q12", GRID)
def test_orthant_and_stein(q1, q2, q12):
    """Kinks and jumps at 0, relative accuracy even where the result is tiny.

    * Sheppard: ``P(u > 0, v > 0) = 1/4 + asin(rho) / (2 pi)``;
    * Stein: ``E[relu(u) 1(v > 0)] = sqrt(q1 / (2 pi)) (1 + rho) / 2``,
      ``E[sign(u) v] = sqrt(2 / pi) q12 / sqrt(q1)``;
    * ``E[relu(u)] = sqrt(q1 / (2 pi))``, ``E[|u|^3] = 2 sqrt(2 / pi) q1^(3/2)``.
    """
    step = lambda x: (x > 0).astype(float)  # noqa: E731
    relu = lambda x: np.maximum(x, 0.0)  # noqa: E731
    one = np.ones_like
    with mpmath.workdps(40):
        rho = mp_rho(q1, q2, q12)  # 40 digits: 1 + rho keeps >= 30 of them
        sheppard = float(mpmath.mpf(1) / 4 + mpmath.asin(rho) / (2 * mpmath.pi))
        stein = float(mpmath.sqrt(mpmath.mpf(q1) / (2 * mpmath.pi)) * (1 + rho) / 2)
    got = gaussian_expectation(step, step, q1, q2, q12)
    assert got == pytest.approx(sheppard, rel=1e-13, abs=0)
    got = gaussian_expectation(relu, step, q1, q2, q12)
    assert got == pytest.approx(stein, rel=1e-13, abs=0)
    got = gaussian_expectation(np.sign, lambda y: y, q1, q2, q12)
    assert abs(got - math.sqrt(2 / math.pi) * q12 / math.sqrt(q1)) <= 1e-14 * math.sqrt(q2)
    assert gaussian_expectation(relu, one, q1, q2, q12) == pytest.approx(
        math.sqrt(q1 / (2 * math.pi)), rel=1e-14, abs=0
    )
    assert gaussian_expectation(lambda x: np.abs(x) ** 3, one, q1, q2, q12) == pytest.approx(
        2 * math.sqrt(2 / math.pi) * q1**1.5, rel=1e-14, abs=0
    )


@pytest.mark.parametrize("q1, q2, q12", GRID)
@pytest.mark.parametrize("kinks", [True, False])
def test_smooth_closed_forms(q1, q2, q12, kinks):
    """Moment generating and characteristic functions:
    ``E[exp(a u + b v)] = exp((a^2 q1 + 2 a b q12 + b^2 q2) / 2)``,
    ``E[cos(a u) cos(b v)] = (exp(-(a^2 q1 + b^2 q2 - 2ab q12)/2)
    + exp(-(a^2 q1 + b^2 q2 + 2ab q12)/2)) / 2``."""
    a, b = 0.7, -0.4
    mgf = math.exp((a * a * q1 + 2 * a * b * q12 + b * b * q2) / 2)
    got = gaussian_expectation(
        lambda x: np.exp(a * x), lambda y: np.exp(b * y), q1, q2, q12, kinks=kinks
    )
    assert got == pytest.approx(mgf, rel=5e-15, abs=0)
    a, b = 1.3, 0.8
    s = a * a * q1 + b * b * q2
    ref = 0.5 * (math.exp(-(s - 2 * a * b * q12) / 2) + math.exp(-(s + 2 * a * b * q12) / 2))
    got, l1 = gaussian_expectation(
        lambda x: np.cos(a * x),
        lambda y: np.cos(b * y),
        q1,
        q2,
        q12,
        kinks=kinks,
        with_abs=True,
    )
    assert abs(got - ref) <= 5e-15 * abs(ref) + dc.RES * l1


def test_cancellation_resolution():
    """Where the integrand cancels to far below its size, the absolute error stays within
    the resolution ``RES E[|f g|]`` used by the ``duals`` experiment."""
    worst = 0.0
    for q in (2.0, 10.0):
        for rho in (-0.9, 0.0, 0.5):
            for om in (1.0, 3.0):
                q12 = rho * q
                got, l1 = gaussian_expectation(
                    lambda x, om=om: np.sin(om * x),
                    lambda y, om=om: np.sin(om * y),
                    q,
                    q,
                    q12,
                    with_abs=True,
                )
                ref = 0.5 * (math.exp(-om * om * (q - q12)) - math.exp(-om * om * (q + q12)))
                worst = max(worst, abs(got - ref) / l1)
    assert worst <= dc.RES / 2, worst / EPS


def _mp_conditional(f_mp, inner, q1, q2, q12):
    """``E[f(u) g(v)] = E_z[f(a z) E[g(v) | u = a z]]`` by mpmath.quad at 30 digits, with
    the conditional expectation ``inner(mean, var)`` in closed form."""
    with mpmath.workdps(30):
        q1m, q2m, q12m = mpmath.mpf(q1), mpmath.mpf(q2), mpmath.mpf(q12)
        a = mpmath.sqrt(q1m)
        var = q2m - q12m**2 / q1m

        def h(z):
            return mpmath.npdf(z) * f_mp(a * z) * inner(q12m / q1m * a * z, var)

        return mpmath.quad(h, [-mpmath.inf, -4, 0, 4, mpmath.inf])


@pytest.mark.parametrize("q1, q2, q12", [(1.3, 0.7, 0.4), (0.4, 5.0, -1.3), (2.0, 2.0, 1.999)])
def test_mpmath_conditional(q1, q2, q12):
    """Against mpmath at 30 digits (conditioning on ``u``; ``v | u`` is Gaussian):
    ``E[tanh(u) cos(b v + c)]`` (smooth) and ``E[tanh(u) 1(v > 0)]`` (jump in ``v``)."""
    b, c = 1.7, 0.3

    def cond_cos(m, s2):  # E[cos(b v + c) | u] for v | u ~ N(m, s2)
        return mpmath.cos(b * m + c) * mpmath.exp(-b * b * s2 / 2)

    ref = _mp_conditional(mpmath.tanh, cond_cos, q1, q2, q12)
    got = gaussian_expectation(np.tanh, lambda y: np.cos(b * y + c), q1, q2, q12)
    assert got == pytest.approx(float(ref), rel=2e-14, abs=0)
    ref = _mp_conditional(mpmath.tanh, lambda m, s2: mpmath.ncdf(m / mpmath.sqrt(s2)), q1, q2, q12)
    got = gaussian_expectation(np.tanh, lambda y: (y > 0).astype(float), q1, q2, q12)
    assert got == pytest.approx(float(ref), rel=2e-14, abs=0)


# E[tanh(u) atan(v + 1/2)] at (q1, q2, q12) = (1.3, 0.7, 0.4): 2-D mpmath.quad at 30
# digits (``test_mpmath_2d_reference_slow`` recomputes it, ~10 s).
MP2D = (1.3, 0.7, 0.4, "0.148122741694913999516487520443")


def _mp_2d(q1, q2, q12):
    with mpmath.workdps(30):
        a, b = mpmath.sqrt(mpmath.mpf(q1)), mpmath.sqrt(mpmath.mpf(q2))
        rho = mpmath.mpf(q12) / (a * b)
        s = mpmath.sqrt(1 - rho**2)

        def h(z1, z2):
            u, v = a * z1, b * (rho * z1 + s * z2)
            return mpmath.exp(-(z1 * z1 + z2 * z2) / 2) * mpmath.tanh(u) * mpmath.atan(v + 0.5)

        r = mpmath.quad(h, [-14, 0, 14], [-14, 0, 14], method="gauss-legendre")
        return r / (2 * mpmath.pi)


@pytest.mark.parametrize("kinks", [True, False])
def test_mpmath_2d(kinks):
    """``E[tanh(u) atan(v + 1/2)]`` (no closed form) against a 30-digit 2-D mpmath.quad."""
    q1, q2, q12, ref = MP2D
    got = gaussian_expectation(np.tanh, lambda y: np.arctan(y + 0.5), q1, q2, q12, kinks=kinks)
    assert got == pytest.approx(float(ref), rel=5e-15, abs=0)


@pytest.mark.slow
def test_mpmath_2d_reference_slow():
    q1, q2, q12, ref = MP2D
    with mpmath.workdps(30):
        assert abs(_mp_2d(q1, q2, q12) - mpmath.mpf(ref)) < mpmath.mpf(10) ** -27


def test_degenerate_covariances():
    """Rank 0 and 1: ``q1 = 0`` gives ``f(0) E[g(v)]``; ``rho = +-1`` is the 1-D integral,
    continuous with the 2-D rule as ``det -> 0``; an invalid covariance raises."""
    cos2 = lambda y: np.cos(2 * y)  # noqa: E731
    assert gaussian_expectation(np.cos, cos2, 0.0, 1.5, 0.0) == pytest.approx(
        math.exp(-2 * 1.5), rel=1e-14, abs=0
    )
    assert gaussian_expectation(np.cos, cos2, 0.0, 0.0, 0.0) == pytest.approx(1.0, rel=1e-15, abs=0)
    relu = lambda x: np.maximum(x, 0.0)  # noqa: E731
    # E[relu(u) relu(v)] at rho = 1 is sqrt(q1 q2) / 2; at rho = -1 it is 0
    assert gaussian_expectation(relu, relu, 0.5, 2.0, 1.0) == pytest.approx(0.5, rel=1e-15, abs=0)
    assert gaussian_expectation(relu, relu, 0.5, 2.0, -1.0) == 0.0
    u, v, w = bivariate_rule(0.5, 2.0, 1.0)
    assert u.size == 256 and np.allclose(v, 2 * u, rtol=1e-15)
    for q12 in (1.0 - 1e-12, -1.0 + 1e-12):
        near = gaussian_expectation(relu, np.tanh, 0.5, 2.0, q12)
        exact = gaussian_expectation(relu, np.tanh, 0.5, 2.0, math.copysign(1.0, q12))
        assert near == pytest.approx(exact, rel=1e-11, abs=0)
    # |q12| above sqrt(q1 q2) by an ulp is rank one; by more, an error
    p = math.sqrt(3.7 * 0.21)
    assert np.isfinite(gaussian_expectation(relu, relu, 3.7, 0.21, math.nextafter(p, 2)))
    with pytest.raises(ValueError):
        gaussian_expectation(relu, relu, 1.0, 1.0, 1.0 + 1e-9)
    with pytest.raises(ValueError):
        gaussian_expectation(relu, relu, -1.0, 1.0, 0.0)
    with pytest.raises(ValueError):
        gaussian_expectation(relu, relu, 0.0, 1.0, 0.1)
    assert gaussian_expectation_1d(np.cos, 0.0) == 1.0
    assert gaussian_expectation_1d(lambda x: np.abs(x), 2.0) == pytest.approx(
        2 / math.sqrt(math.pi), rel=1e-15, abs=0
    )


# ----------------------------------------------------------- 2. closed forms vs integral


def _assert_point(name, q1, q2, q12, methods=dc.METHODS):
    res = dc.compare(ACTS[name], q1, q2, q12, methods)
    for m in methods:
        for k in ("F", "G"):
            r = res[m][k]
            assert r["passed"], (
                f"{name} {m} {k} at ({q1}, {q2}, {q12}): closed {r['value']!r} "
                f"quad {res[k + '_quad']!r} err {r['err']:.2e} "
                f"(tol {dc.TOL:g} + res {r['res']:.1e})"
            )
    return res


@pytest.mark.parametrize("name", NAMES)
def test_closed_form_grid(name):
    """Both routes (``evaluate``, exact angle) on fixed covariances, ``rho > -0.99``."""
    for q1, q2 in COVS:
        for rho in (-0.5, 0.0, 0.3, 0.9, 0.999999, 1.0):
            _assert_point(name, q1, q2, rho * math.sqrt(q1 * q2))


@pytest.mark.parametrize("name", NAMES)
def test_closed_form_near_antipodal(name):
    """``rho = -1, -0.999`` (both routes) and ``-0.999999`` (exact-angle route: ``evaluate``
    takes ``arccos`` of the rounded correlation, documented)."""
    for q1, q2 in COVS:
        p = math.sqrt(q1 * q2)
        _assert_point(name, q1, q2, -p)
        _assert_point(name, q1, q2, -0.999 * p)
        _assert_point(name, q1, q2, -0.999999 * p, methods=("angle",))


def test_step_extreme_antipodal():
    """``E[1(u > 0) 1(v > 0)] = (pi - theta) / (2 pi)`` at ``rho = -1 + 1e-12`` on the
    exact-angle route, to 1e-12 relative (needs ``pi - theta`` carried exactly)."""
    _assert_point("RectifiedMonomial(0)", 1.0, 1.0, -1 + 1e-12, methods=("angle",))


variances = st.floats(1e-3, 10.0)
correlations = st.floats(-1.0, 1.0)


@pytest.mark.parametrize("name", NAMES)
@HYP
@given(q1=variances, q2=variances, rho=correlations)
def test_closed_form_random(name, q1, q2, rho):
    """Random covariances.  ``evaluate`` where ``1 - |rho| >= 1e-3`` (its ``arccos`` of the
    rounded correlation costs ``~eps / (1 - |rho|)`` relative in ``theta``); the
    exact-angle route everywhere."""
    q12 = rho * math.sqrt(q1 * q2)
    methods = dc.METHODS if 1 - abs(rho) >= 1e-3 else ("angle",)
    _assert_point(name, q1, q2, q12, methods)


@pytest.mark.parametrize("name", sorted(SMALL_Q12_CASES))
def test_trig_small_correlation(name):
    """``E[sin u sin v] = exp(-(q1+q2)/2) sinh(q12)`` (characteristic function; also the
    factor of Cos()) at ``q12 = 1e-7``, ``q1 = q2 = 1``, against mpmath, to 1e-12
    relative (a difference of exponentials gave ~5e-10).  (The quadrature cannot
    referee this point: the integrand cancels to 1e-7 of its size.)"""
    q1, q2, q12 = 1.0, 1.0, 1e-7
    with mpmath.workdps(30):
        ref = float(mpmath.exp(-(mpmath.mpf(q1) + q2) / 2) * mpmath.sinh(mpmath.mpf(q12)))
    f, g = duals.evaluate(ACTS[name], q1, q2, q12)
    got = float(f) if name == "Sin()" else float(g)
    assert got == pytest.approx(ref, rel=1e-12, abs=0)


# ---------------------------------------------------------------- 3. Price's theorem

# 8th-order central difference: f'(x) = sum_k C_k (f(x + k h) - f(x - k h)) / h + O(h^8)
_C8 = np.array([4 / 5, -1 / 5, 4 / 105, -1 / 280])
PRICE_TOL = 1e-8
PRICE_SKIP = {"Sign()", "RectifiedMonomial(0)"}  # factor 0 by convention (point-mass phi')


def numerical_factor(act, q1, q2, q12):
    """``(dF/dq12, noise)``: ``duals.evaluate``'s ``F`` differentiated by the 8th-order
    stencil, and the stencil's rounding-noise bound ``16 eps max|F| / h``.

    Step ``h = P min(1e-2, (1 - |rho|) / 32)``: the stencil (``+-4h``) stays inside
    ``|q12| <= P`` and 8 half-widths away from ``rho = +-1``, where the arc-cosine
    duals are not analytic, so the truncation error ``~(h / dist)^8`` is ~1e-12; the
    rounding error ``~eps F / h`` is ~1e-11 relative for ``1 - |rho| >= 1e-3``.
    """
    p = math.sqrt(q1 * q2)
    rho = q12 / p
    h = p * min(1e-2, (1 - abs(rho)) / 32)
    k = np.arange(1, 5)
    x = np.concatenate([q12 + k * h, q12 - k * h])
    f, _ = duals.evaluate(act, q1, q2, x)
    return float(np.sum(_C8 * (f[:4] - f[4:])) / h), 16 * EPS * float(np.max(np.abs(f))) / h


@pytest.mark.parametrize("name", [n for n in NAMES if n not in PRICE_SKIP])
@settings(max_examples=40, deadline=None, derandomize=True)
@given(q1=variances, q2=variances, rho=correlations)
def test_price_theorem(name, q1, q2, rho):
    """``G = dF/dq12`` (Price 1958) to ``1e-8`` relative (floor ``1e-2 * sqrt(G11 G22)``)
    plus the stencil's rounding noise ``16 eps max|F| / h``: a finite difference of
    float64 values cannot do much better (rounding ``eps/h`` vs truncation ``h^8``).
    ``|rho| <= 0.999`` leaves room for the stencil."""
    assume(abs(rho) <= 0.999)
    act = ACTS[name]
    q12 = rho * math.sqrt(q1 * q2)
    _, g = duals.evaluate(act, q1, q2, q12)
    g = float(g)
    _, g11 = duals.evaluate(act, q1, q1, q1)
    _, g22 = duals.evaluate(act, q2, q2, q2)
    floor = 1e-2 * math.sqrt(abs(float(g11) * float(g22)))
    fd, noise = numerical_factor(act, q1, q2, q12)
    err = abs(fd - g)
    assert err <= PRICE_TOL * max(abs(g), floor) + noise, (fd, g, err / max(abs(g), floor))


@pytest.mark.parametrize("name", sorted(PRICE_SKIP))
def test_point_mass_factor_is_zero(name):
    """Sign and step: the factor is 0 by convention (stax), as is the quadrature of
    ``deriv``, although ``dF/dq12 != 0``."""
    act = ACTS[name]
    _, g = duals.evaluate(act, 1.0, 2.0, 0.3)
    assert float(g) == 0.0
    assert abs(numerical_factor(act, 1.0, 2.0, 0.3)[0]) > 0.1


# ------------------------------------------------- norm parts (pairs differing in norm)

_NORM_ACTS = {
    "erf": Erf(),
    "erf_shift": Erf(0.7, 2.0, 0.3),
    "sin": Sin(),
    "cos": Cos(1.2, 0.7, 0.3),
    "rbf": Rbf(0.5),
    "exp": Exp(0.5, 0.4),
    "gaussian": Gaussian(),
    "gaussian_small": Gaussian(0.8, -0.3),
    "polynomial": Polynomial([0.2, 1.0, 0.3]),
    "polynomial_odd": Polynomial([0.0, 1.0, 0.0, -0.2, 0.05]),
    "monomial": Monomial(3),
    "gelu": Gelu(),
}


@pytest.mark.parametrize("name", sorted(_NORM_ACTS))
@pytest.mark.parametrize("q1", [0.03, 0.8, 6.0])
@pytest.mark.parametrize("eps", [1e-12, 1e-7, 1e-3, 0.3])
def test_norm_part_and_diagonal_difference(name, q1, eps):
    """``smooth_norm_part`` = sqrt(F(q1) F(q2)) - f(q1, q2, sqrt(q1 q2)) and
    ``smooth_diag_diff`` = F(q1) - F(q2) against 60-digit mpmath, for
    sqrt(q2) = sqrt(q1) (1 + eps): both are O(eps^2) and O(eps) differences of O(1)
    quantities, which float64 subtraction gets only to ~1e-16 absolute (for the
    homogeneous Monomial(3) the norm part is exactly zero)."""
    act = _NORM_ACTS[name]
    code, _ = act._dual_spec()
    p = duals.dual_params(act)
    q2 = q1 * (1.0 + eps) ** 2
    with mpmath.workdps(60):
        m1, m2 = mpmath.mpf(q1), mpmath.mpf(q2)
        f1 = ref_dual(act, m1, m1, m1)[0]
        f2 = ref_dual(act, m2, m2, m2)[0]
        f12 = ref_dual(act, m1, m2, mpmath.sqrt(m1 * m2))[0]
        n_ref = mpmath.sqrt(f1 * f2) - f12
        d_ref = f1 - f2
        dr = float(mpmath.sqrt(m1) - mpmath.sqrt(m2))
    n = duals.smooth_norm_part(code, q1, q2, dr, p)
    d = duals.smooth_diag_diff(code, q1, q2, dr, p)
    if name == "gelu" and eps > 0.05:
        # beyond its switch (|tau|, |dq|/q > 0.1) Gelu leaves these to the subtraction
        assert math.isnan(n) and math.isnan(d)
        return
    floor = 1e-45 * abs(mpmath.sqrt(f1 * f2))  # below the 60-digit reference's noise
    assert abs(n - n_ref) <= 1e-13 * abs(n_ref) + floor, (n, n_ref)
    assert abs(d - d_ref) <= 1e-14 * abs(d_ref) + floor, (d, d_ref)


def test_generated_gelu_norm_is_current(tmp_path):
    """``_generated/gelu_norm.py`` is exactly what ``derivations/gelu_norm.py`` writes
    (SymPy derivation, deterministic).  The script's own 40-digit checks of the integral
    identities take ~25 s and run with ``python -m derivations``; the generated
    functions are checked against mpmath by ``test_norm_part_and_diagonal_difference``."""
    from derivations import gelu_norm

    out = tmp_path / "gelu_norm.py"
    gelu_norm.write(out)
    assert out.read_text() == gelu_norm.OUTPUT.read_text()


# ------------------------------------------- the angle part of the gap near c = +-1

_INTEGRAL_ACTS = {
    **_NORM_ACTS,
    "erf_steep": Erf(1.0, 2.0),  # g has a singularity at o = -1/(8 q): the CI regression
    "exp_steep": Exp(1.0, 1.5),
}


@pytest.mark.parametrize("name", sorted(_INTEGRAL_ACTS))
@pytest.mark.parametrize("q1, q2", [(0.8, 0.8), (0.03, 0.05), (6.0, 5.0), (40.0, 40.0)])
@pytest.mark.parametrize("m", [1e-12, 1e-6, 0.0149])
@pytest.mark.parametrize("anti", [False, True])
def test_factor_integral(name, q1, q2, m, anti):
    """``smooth_factor_integral`` against 60-digit mpmath differences of the dual:
    ``F(P) - F(P c)`` at ``c = 1 - m`` and ``F(P c) - F(-P)`` at ``c = -1 + m``
    (``P = sqrt(q1 q2)``), the part of the gap (anti-gap) that ``smooth_pair`` adds to
    the norm part below ``1 - |c| = 0.02``.  The 5-point Gauss-Legendre rule on the factor
    used before was off by 3.4e-5 (relative) for ``Erf(1, 2)`` and 3.9e-11 for ``Gelu`` at
    variance 40, m = 0.0149; a milder case of it was the 1.6e-13 NTK error of the 9-layer
    Erf stack in ``tests/test_recursion.py``."""
    act = _INTEGRAL_ACTS[name]
    code, _ = act._dual_spec()
    p = duals.dual_params(act)
    if name.startswith("gaussian") or name == "rbf":
        b = p[1]
        if not 1.0 - 4.0 * b * max(q1, q2) > 0.0:
            pytest.skip("E[phi(z)^2] diverges at this variance")
    if name.startswith("exp") and max(q1, q2) > 10.0:
        pytest.skip("E[exp(b z)^2] overflows nothing here but is 1e30; covered at q <= 6")
    c = -1.0 + m if anti else 1.0 - m
    omc, opc = (2.0 - m, m) if anti else (m, 2.0 - m)
    p12 = duals.geomean(q1, q2)
    with mpmath.workdps(60):
        m1, m2 = mpmath.mpf(q1), mpmath.mpf(q2)
        big_p = mpmath.sqrt(m1 * m2)
        mc = mpmath.mpf(-1) + mpmath.mpf(m) if anti else 1 - mpmath.mpf(m)
        f_c = ref_dual(act, m1, m2, big_p * mc)[0]
        if anti:
            ref = f_c - ref_dual(act, m1, m2, -big_p)[0]
        else:
            ref = ref_dual(act, m1, m2, big_p)[0] - f_c
        dsq = float(mpmath.sqrt(m1) - mpmath.sqrt(m2))
    got = duals.smooth_factor_integral(code, q1, q2, p12, c, omc, opc, dsq, p, anti)
    scale = abs(ref_dual(act, m1, m1, m1)[0] * ref_dual(act, m2, m2, m2)[0]) ** 0.5
    assert abs(got - ref) <= 1e-13 * abs(ref) + 1e-40 * scale, (got, float(ref))


@pytest.mark.parametrize("q1", [1e-3, 0.3, 40.0, 1e3, 1e5])
@pytest.mark.parametrize("ratio", [1.0, 0.5])
@pytest.mark.parametrize("m", [1e-14, 1e-8, 1e-3, 0.3, 0.9, 0.999, 1.0])
def test_gelu_negative_covariance(q1, ratio, m):
    """Gelu's dual and factor at ``c = -1 + m`` against 60-digit mpmath: the direct closed
    form is a difference of terms ``~ sqrt(q)`` with a result ``~ 1/sqrt(q)`` near
    ``c = -1`` (it lost 5e-7 at variance 1e5, 2e-11 at 1e3); now ``_gelu_negative``."""
    act = Gelu()
    code, _ = act._dual_spec()
    p = duals.dual_params(act)
    q2 = q1 * ratio
    big_p = math.sqrt(q1 * q2)
    f = duals.smooth_f(code, q1, q2, big_p, -1.0 + m, 2.0 - m, m, p)
    g = duals.smooth_g(code, q1, q2, big_p, -1.0 + m, 2.0 - m, m, p)
    with mpmath.workdps(60):
        m1, m2 = mpmath.mpf(q1), mpmath.mpf(q2)
        ref_f, ref_g = ref_dual(act, m1, m2, mpmath.sqrt(m1 * m2) * (mpmath.mpf(m) - 1))
    assert abs(f - ref_f) <= 1e-14 * abs(ref_f) + 1e-300
    assert abs(g - ref_g) <= 1e-14 * abs(ref_g)
