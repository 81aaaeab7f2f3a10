"""Accuracy of ``analytic_ntk.bvn`` (Owen's T, bivariate normal CDF) against mpmath and scipy.

References are computed here with mpmath and cached for the session:

* ``T(h, a)``, ``0 < a <= 1``: ``exp(-h^2/2)/(2 pi) int_0^a exp(-h^2 x^2/2)/(1 + x^2) dx`` by
  ``mpmath.quad`` at 40 digits, split at ``x = m/h`` (``m = 1/2 ... 16``) and with the
  integrand scaled to O(1) (``mpmath.quad``'s error control is absolute);  ``a > 1`` by the
  reflection ``T(h, a) = [Q(h) + Q(ah)]/2 - Q(h) Q(ah) - T(ah, 1/a)`` in the same arithmetic.
* ``Phi2(h, k; rho) = int_{-inf}^h phi(x) Phi((k - rho x)/s) dx`` at 30 digits: the log-concave
  integrand is scaled by its maximum (found by bisection on its log-derivative) and the
  interval is split around the maximum and around the step of ``Phi`` (width ``s/|rho|``).
"""

from __future__ import annotations

import functools
import math

import mpmath
import numpy as np
import pytest
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

from analytic_ntk import bvn

T_REL_TOL = 1e-14  # measured worst 6e-16 (grid below and ~9,000 random points)
BVN_REL_TOL = 1e-13  # measured worst 1.4e-15 (~17,000 grid and random points)
TINY = 1e-300  # results below this are not checked for relative accuracy

H_GRID = (0.0, 1e-8, 0.1, 0.5, 1.0, 2.0, 4.7, 5.0, 8.0, 12.0, 20.0, 37.0, 40.0)
A_GRID = (0.0, 1e-10, 1e-3, 0.1, 0.5, 0.99, 1.0, 1.01, 2.0, 10.0, 100.0, 1e3, 1e6)
RHO_GRID = (-1.0 + 1e-12, -0.99, -0.5, 0.0, 0.3, 0.9, 0.999999, 1.0 - 1e-12)
# (h, k) pairs covering both tails, mixed signs, zeros and the near-diagonal
HK_PAIRS = (
    (-8.0, -8.0),
    (-8.0, 3.0),
    (-5.0, 6.0),
    (-2.5, -0.7),
    (-1.0, 1.0),
    (-3.0, 0.0),
    (0.5, 2.0),
    (4.0, 8.0),
)


# ------------------------------------------------------------------ mpmath references


def _q_mp(x):
    return mpmath.erfc(x / mpmath.sqrt(2)) / 2


def _t_core_mp(h, a):
    """``T(h, a)`` for ``h >= 0``, ``0 < a <= 1`` (mpmath numbers)."""
    pts = [mpmath.mpf(0)]
    if h > 0:
        pts += [m / h for m in (0.5, 1, 2, 4, 8, 16) if m / h < a]
    pts.append(a)
    integral = mpmath.quad(lambda x: mpmath.exp(-h * h * x * x / 2) / (1 + x * x), pts)
    return mpmath.exp(-h * h / 2) * integral / (2 * mpmath.pi)


@functools.cache
def t_reference(h: float, a: float):
    """``T(h, a)`` for ``h >= 0``, ``a >= 0`` at 40 digits."""
    with mpmath.workdps(40):
        h = mpmath.mpf(h)
        a = mpmath.mpf(a)
        if a == 0:
            return mpmath.mpf(0)
        if a <= 1:
            return _t_core_mp(h, a)
        g = a * h
        return (_q_mp(h) + _q_mp(g)) / 2 - _q_mp(h) * _q_mp(g) - _t_core_mp(g, 1 / a)


@functools.cache
def bvn_reference(h: float, k: float, rho: float):
    """``P(X <= h, Y <= k)`` at 30 digits by one-dimensional quadrature."""
    with mpmath.workdps(30):
        h, k, rho = mpmath.mpf(h), mpmath.mpf(k), mpmath.mpf(rho)
        s = mpmath.sqrt((1 - rho) * (1 + rho))
        c0 = -mpmath.log(mpmath.sqrt(2 * mpmath.pi))

        def logf(x):
            return c0 - x * x / 2 + mpmath.log(mpmath.ncdf((k - rho * x) / s))

        def dlogf(x):
            z = (k - rho * x) / s
            return -x - (rho / s) * mpmath.npdf(z) / mpmath.ncdf(z)

        # (log f)'' <= -1: the maximiser is h or the root of dlogf in [h + dlogf(h) - 1, h]
        dh = dlogf(h)
        if dh >= 0:
            xs = h
        else:
            lo, hi = h + dh - 1, h
            for _ in range(70):
                mid = (lo + hi) / 2
                if dlogf(mid) > 0:
                    lo = mid
                else:
                    hi = mid
            xs = (lo + hi) / 2
        lf0 = logf(xs)
        bottom = xs - 40  # f(x) <= f(xs) exp(-(x - xs)^2 / 2)
        step = s / abs(rho) if rho != 0 else mpmath.mpf(1)
        width = min(mpmath.mpf(1), step)
        pts = {bottom, h, xs}
        for m in (1, 4, 16):
            pts.update((xs - m * width, xs + m * width))
        if rho != 0:
            for m in (0, 1, 4):
                pts.update((k / rho - m * step, k / rho + m * step))
        pts = sorted(p for p in pts if bottom <= p <= h)
        val = mpmath.quad(lambda x: mpmath.exp(logf(x) - lf0), pts)
        return mpmath.exp(lf0) * val


def _rel_err(got, ref):
    return float(abs(mpmath.mpf(float(got)) - ref) / abs(ref))


# ------------------------------------------------------------------ Owen's T


def test_owens_t_against_mpmath_grid():
    worst = 0.0
    for h in H_GRID:
        for a in A_GRID:
            ref = t_reference(h, a)
            for sh in (1.0, -1.0):
                for sa in (1.0, -1.0):
                    got = bvn.owens_t(sh * h, sa * a)
                    if abs(ref) < TINY:
                        assert abs(got) <= 2 * TINY, (h, a, got)
                        continue
                    err = _rel_err(sa * got, ref)
                    assert err <= T_REL_TOL, (sh * h, sa * a, got, ref, err)
                    worst = max(worst, err)
    assert worst < T_REL_TOL


def test_owens_t_special_values():
    assert bvn.owens_t(1.3, 0.0) == 0.0
    assert bvn.owens_t(0.0, math.inf) == 0.25
    assert bvn.owens_t(0.0, -math.inf) == -0.25
    assert bvn.owens_t(2.0, math.inf) == pytest.approx(0.5 * bvn.norm_sf(2.0), rel=1e-15)
    assert bvn.owens_t(math.inf, 0.5) == 0.0
    assert bvn.owens_t(-math.inf, 3.0) == 0.0
    assert math.isnan(bvn.owens_t(math.nan, 1.0))
    assert math.isnan(bvn.owens_t(1.0, math.nan))


def test_owens_t_symmetries():
    rng = np.random.default_rng(7)
    h = np.concatenate([rng.uniform(-12, 12, 300), 10.0 ** rng.uniform(-12, 0, 50)])
    a = np.concatenate([rng.uniform(-3, 3, 300), 10.0 ** rng.uniform(-8, 6, 50)])
    t = bvn.owens_t_array(h, a)
    assert np.array_equal(bvn.owens_t_array(-h, a), t)  # even in h
    assert np.array_equal(bvn.owens_t_array(h, -a), -t)  # odd in a
    # T(0, a) = atan(a) / (2 pi)
    a0 = np.concatenate([a, [1e-300, 1e300]])
    np.testing.assert_allclose(
        bvn.owens_t_array(0.0, a0), np.arctan(a0) / (2 * np.pi), rtol=4e-16, atol=0
    )
    # T(h, 1) = Phi(h) Q(h) / 2
    hh = np.concatenate([rng.uniform(-37, 37, 200), [0.0, 1e-10, 36.9]])
    expect = np.array([0.5 * bvn.norm_cdf(x) * bvn.norm_sf(x) for x in hh])
    np.testing.assert_allclose(bvn.owens_t_array(hh, 1.0), expect, rtol=2e-15, atol=0)


def test_owens_t_against_scipy():
    rng = np.random.default_rng(11)
    n = 4000
    h = rng.uniform(-20, 20, n)
    a = np.where(
        rng.uniform(size=n) < 0.5,
        rng.uniform(-3, 3, n),
        rng.choice([-1, 1], n) * 10.0 ** rng.uniform(-8, 6, n),
    )
    mine = bvn.owens_t_array(h, a)
    ref = scipy.special.owens_t(h, a)
    # scipy (Patefield-Tandy) is accurate to ~1e-16 absolute, ~1e-13 relative
    np.testing.assert_allclose(mine, ref, rtol=1e-12, atol=3e-16)


def test_norm_helpers():
    for x in (-37.0, -20.0, -5.0, -1.0, 0.0, 1e-9, 0.7, 3.0, 9.0, 25.0, 37.0):
        with mpmath.workdps(30):
            q = mpmath.ncdf(-mpmath.mpf(x))
            p = mpmath.ncdf(mpmath.mpf(x))
        assert _rel_err(bvn.norm_sf(x), q) <= 2e-15, x
        assert _rel_err(bvn.norm_cdf(x), p) <= 2e-15, x
    assert bvn.norm_cdf(math.inf) == 1.0 and bvn.norm_cdf(-math.inf) == 0.0
    assert bvn.norm_sf(math.inf) == 0.0 and bvn.norm_sf(-math.inf) == 1.0


def test_r_function_chebyshev_table():
    """The import-time polynomial table of ``R`` reproduces it (recomputed here), edges included."""
    with mpmath.workdps(30):
        for c in (
            0.0,
            1e-3,
            0.25,
            0.3,
            0.5,
            1.0,
            2.2,
            3.7,
            5.0,
            6.6,
            7.99,
            8.0,
            8.5,
            12.0,
            15.75,
            15.999,
            16.0,
            17.0,
            40.0,
        ):
            cm = mpmath.mpf(c)
            ref = 1 - cm * mpmath.ncdf(-cm) / mpmath.npdf(cm)
            assert _rel_err(bvn._r_pos(c), ref) <= 1e-15, c


# ------------------------------------------------------------------ bivariate normal


@pytest.mark.parametrize("rho", RHO_GRID)
def test_bvn_against_mpmath(rho):
    for h, k in HK_PAIRS:
        ref = bvn_reference(h, k, rho)
        for a, b in ((h, k), (k, h)):
            got = bvn.bvn_cdf(a, b, rho)
            if ref < TINY:
                assert 0.0 <= got <= 2 * TINY
                continue
            err = _rel_err(got, ref)
            assert err <= BVN_REL_TOL, (a, b, rho, got, ref, err)
            # the upper orthant through the same code path
            assert bvn.bvn_sf(-a, -b, rho) == got


def test_bvn_benchmark_range_random():
    """Random points in the range of the expectation benchmark (all quadrature rules of the wedge
    table by ``r`` and ``theta`` are exercised here)."""
    rng = np.random.default_rng(2024)
    worst = 0.0
    for _ in range(40):
        h, k, rho = rng.uniform(-3, 3), rng.uniform(-3, 3), rng.uniform(-0.98, 0.98)
        ref = bvn_reference(h, k, rho)
        err = _rel_err(bvn.bvn_cdf(h, k, rho), ref)
        assert err <= BVN_REL_TOL, (h, k, rho, err)
        worst = max(worst, err)
    assert worst < BVN_REL_TOL


def test_bvn_thin_orthant_and_near_singular():
    """Mixed signs with rho near -1 (thin orthant, direct wedge quadrature); |rho| ~ 1 - 1e-16."""
    cases = [
        (-7.0, 7.0, -1.0 + 1e-12),
        (-1.0, 1.0 + 1e-7, -1.0 + 1e-12),
        (-2.0, 2.5, -0.999),
        (-0.3, 1.0, 1.0 - 2.0**-52),
        (0.4, -0.3, -1.0 + 2.0**-52),
    ]
    for h, k, rho in cases:
        ref = bvn_reference(h, k, rho)
        err = _rel_err(bvn.bvn_cdf(h, k, rho), ref)
        assert err <= BVN_REL_TOL, (h, k, rho, err)


def test_bvn_special_cases():
    cdf, n = bvn.bvn_cdf, bvn.norm_cdf
    for rho in (-1.0 + 1e-12, -0.99, -0.5, 0.0, 0.3, 0.999999, 1.0 - 1e-12):
        # h = k = 0: 1/4 + asin(rho) / (2 pi)
        with mpmath.workdps(30):
            ref = mpmath.mpf(0.25) + mpmath.asin(rho) / (2 * mpmath.pi)
        assert _rel_err(cdf(0.0, 0.0, rho), ref) <= 1e-15, rho
        for x in (-6.0, -1.5, 0.0, 0.5, 3.0):
            assert cdf(math.inf, x, rho) == n(x)
            assert cdf(x, math.inf, rho) == n(x)
            assert cdf(-math.inf, x, rho) == 0.0
            assert cdf(x, -math.inf, rho) == 0.0
    # h = 0 or k = 0 (both orders)
    for rho in (-0.99, 0.0, 0.9):
        for x in (-6.0, -1.5, 0.5):
            ref = bvn_reference(0.0, x, rho)
            if ref < TINY:
                assert cdf(0.0, x, rho) <= 2 * TINY and cdf(x, 0.0, rho) <= 2 * TINY
                continue
            assert _rel_err(cdf(0.0, x, rho), ref) <= BVN_REL_TOL, (x, rho)
            assert _rel_err(cdf(x, 0.0, rho), ref) <= BVN_REL_TOL, (x, rho)
    assert cdf(math.inf, math.inf, 0.3) == 1.0
    # rho = 0: Phi(h) Phi(k)
    for h, k in ((-7.0, -3.0), (-1.0, 2.0), (0.3, 0.4), (5.0, -8.0)):
        assert cdf(h, k, 0.0) == pytest.approx(n(h) * n(k), rel=2e-15)
    # rho = +1: Phi(min(h, k)); rho = -1: max(0, Phi(h) - Phi(-k))
    for h, k in ((-7.0, -3.0), (-1.0, 2.0), (0.3, 0.4), (5.0, -8.0), (2.0, -2.0)):
        assert cdf(h, k, 1.0) == n(min(h, k))
    assert cdf(-1.0, 0.5, -1.0) == 0.0
    assert cdf(2.0, -2.0, -1.0) == 0.0
    with mpmath.workdps(40):
        for h, k in ((1.0, 0.5), (-1.0, 3.0), (8.0, -7.9), (0.2, -0.2 + 1e-9), (6.0, 6.0)):
            ref = mpmath.ncdf(h) - mpmath.ncdf(-k)
            assert _rel_err(cdf(h, k, -1.0), ref) <= 1e-14, (h, k)
    assert math.isnan(cdf(math.nan, 0.0, 0.1))
    assert math.isnan(cdf(0.0, 0.0, 1.5))


def test_bvn_symmetry_and_identity():
    rng = np.random.default_rng(3)
    n = 400
    h = rng.uniform(-8, 8, n)
    k = rng.uniform(-8, 8, n)
    rho = np.concatenate(
        [
            rng.uniform(-1, 1, n - 100),
            1 - 10.0 ** rng.uniform(-16, -1, 50),
            -1 + 10.0 ** rng.uniform(-16, -1, 50),
        ]
    )
    p = bvn.bvn_cdf_array(h, k, rho)
    np.testing.assert_allclose(bvn.bvn_cdf_array(k, h, rho), p, rtol=4e-15, atol=0)
    # Phi2(h, k; rho) + Phi2(h, -k; -rho) = Phi(h)
    total = p + bvn.bvn_cdf_array(h, -k, -rho)
    phi_h = np.array([bvn.norm_cdf(x) for x in h])
    np.testing.assert_allclose(total, phi_h, rtol=4e-15, atol=0)
    # upper orthant
    np.testing.assert_array_equal(bvn.bvn_sf_array(h, k, rho), bvn.bvn_cdf_array(-h, -k, rho))


def test_bvn_against_scipy_grid():
    grid = (-3.0, -1.0, 0.0, 0.5, 2.0)
    for rho in (-0.9, -0.3, 0.0, 0.5, 0.95):
        dist = multivariate_normal(mean=[0.0, 0.0], cov=[[1.0, rho], [rho, 1.0]])
        for h in grid:
            for k in grid:
                assert bvn.bvn_cdf(h, k, rho) == pytest.approx(dist.cdf([h, k]), abs=1e-8)


@settings(max_examples=50, deadline=None)
@given(
    st.floats(-9.0, 9.0),
    st.floats(-9.0, 9.0),
    st.floats(-0.999, 0.999),
    st.floats(-0.999, 0.999),
)
def test_bvn_bounds_monotone_scipy(h, k, r1, r2):
    lo_rho, hi_rho = min(r1, r2), max(r1, r2)
    p_lo = bvn.bvn_cdf(h, k, lo_rho)
    p_hi = bvn.bvn_cdf(h, k, hi_rho)
    ph, pk = bvn.norm_cdf(h), bvn.norm_cdf(k)
    slack = 1 + 1e-14
    for p in (p_lo, p_hi):
        assert max(0.0, ph + pk - 1.0) <= p * slack + 1e-16
        assert p <= min(ph, pk) * slack
    assert p_lo <= p_hi * slack  # d Phi2 / d rho = phi2(h, k; rho) >= 0
    dist = multivariate_normal(mean=[0.0, 0.0], cov=[[1.0, hi_rho], [hi_rho, 1.0]])
    assert abs(p_hi - dist.cdf([h, k])) <= 1e-7


# ------------------------------------------------------------------ array wrappers


def test_array_wrappers_broadcast():
    h = np.array([[-1.0], [0.5]])
    a = np.array([0.1, 2.0, -3.0])
    t = bvn.owens_t_array(h, a)
    assert t.shape == (2, 3)
    assert t[1, 2] == bvn.owens_t(0.5, -3.0)
    p = bvn.bvn_cdf_array(h, a, 0.25)
    assert p.shape == (2, 3)
    assert p[0, 1] == bvn.bvn_cdf(-1.0, 2.0, 0.25)
    assert bvn.bvn_cdf_array(0.1, 0.2, -0.4).shape == ()


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: bvn.owens_t_array([0.0, math.nan], 1.0), "h"),
        (lambda: bvn.owens_t_array(1.0, [math.nan]), "a"),
        (lambda: bvn.bvn_cdf_array(math.nan, 0.0, 0.1), "h"),
        (lambda: bvn.bvn_cdf_array(0.0, [1.0, math.nan], 0.1), "k"),
        (lambda: bvn.bvn_cdf_array(0.0, 0.0, math.nan), "rho"),
        (lambda: bvn.bvn_cdf_array(0.0, 0.0, [0.5, 1.0 + 1e-15]), "rho"),
        (lambda: bvn.bvn_sf_array(0.0, 0.0, -1.5), "rho"),
    ],
)
def test_array_wrappers_validate(call, name):
    with pytest.raises(ValueError, match=name):
        call()
