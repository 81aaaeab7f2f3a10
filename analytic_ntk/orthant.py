"""Closed-form Gaussian expectations of piecewise-linear activations with means, through
the bivariate normal orthant probability (``design.md`` section 5a).

For ``phi(u) = a1 u + c1 relu(u)`` and ``psi(v) = a2 v + c2 relu(v)`` (``ABRelu(a, b)``
with ``c = b - a``: ReLU, leaky ReLU, ``|x|``) and ``(u, v) ~ N((m1, m2), C)``, write
``s_i = sqrt(C_ii)``, ``rho = C12 / (s1 s2)``, ``h_i = m_i / s_i``, ``u = m1 + s1 Z1``,
``v = m2 + s2 Z2``, ``1`` the indicator of ``{u > 0, v > 0}`` and ``L = P(u > 0, v >
0) = Phi2(h1, h2; rho)`` (:func:`analytic_ntk.bvn.bvn_cdf`).  With ``r = sqrt(1 -
rho^2)``, ``Q = 1 - Phi`` and ``phi_n`` the standard normal density (Rosenbaum 1961;
Tallis 1961, moments of the truncated bivariate normal):

    E[Z1 1] = phi_n(h1) Q((-h2 + rho h1) / r) + rho phi_n(h2) Q((-h1 + rho h2) / r),
    E[Z1 Z2 1] = rho L - rho h1 phi_n(h1) Q((-h2 + rho h1) / r)
                 - rho h2 phi_n(h2) Q((-h1 + rho h2) / r)
                 + (r / sqrt(2 pi)) phi_n(sqrt((h1^2 - 2 rho h1 h2 + h2^2) / r^2)),
    E[relu(u) relu(v)] = m1 m2 L + m1 s2 E[Z2 1] + m2 s1 E[Z1 1] + s1 s2 E[Z1 Z2 1],
    E[u relu(v)] = m1 E[relu(v)] + C12 Phi(h2)                         (Stein),
    E[u v] = C12 + m1 m2.

The derivatives are again such expectations (Price / Stein, with ``phi' = a1 + c1 H``,
``phi'' = c1 delta``, ``H`` the step):

    d/dC12 = E[phi'(u) psi'(v)] = a1 a2 + a1 c2 Phi(h2) + c1 a2 Phi(h1) + c1 c2 L,
    d/dm1  = E[phi'(u) psi(v)], with E[H(u) v] = m2 Phi(h1) + s2 rho phi_n(h1) and
             E[H(u) relu(v)] = m2 L + s2 E[Z2 1],
    d/dC11 = E[phi''(u) psi(v)] / 2 = (c1 / 2) (phi_n(h1) / s1) E[psi(v) | u = 0],

and ``E[psi(v) | u = 0]`` is the one-dimensional mean of :mod:`gaussian_means` at
``mu = m2 - C12 m1 / C11``, ``t^2 = C22 - C12^2 / C11``.

The same quantities for the basis (1, x, relu, step, delta, delta') give every pair of
piecewise-linear and step activations (:func:`pl_pairs`).

Valid for ``s1, s2 > 0`` and ``|rho| < 1``; the caller sends degenerate entries
(``|rho| > 1 - 1e-9``, zero variances) to the quadrature of :mod:`expectation`.

References: Rosenbaum 1961, "Moments of a truncated bivariate normal distribution",
J. R. Stat. Soc. B 23; Tallis 1961, "The moment generating function of the truncated
multi-normal distribution", J. R. Stat. Soc. B 23; Cho & Saul 2009 (the centred case).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from .bvn import bvn_cdf, norm_cdf, norm_sf

INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
RHO_MAX = 1.0 - 1e-9  # beyond this |rho| the caller uses the quadrature


@numba.njit(cache=True, error_model="numpy", inline="always")
def _pdf(x):
    return INV_SQRT_2PI * math.exp(-0.5 * x * x)


@numba.njit(cache=True, error_model="numpy")
def _relu_mean_tail(m, s):
    """``E[relu(m + s xi)]`` for ``h = m / s < -8``: ``s phi_n(h) int_0^Y y exp(h y - y^2
    / 2) dy`` by 48-point Gauss-Legendre (a positive integrand, no cancellation)."""
    x = -m / s
    ymax = min(45.0 / x, 12.0)
    acc = 0.0
    for j in range(_GL_X.size):
        y = 0.5 * ymax * (_GL_X[j] + 1.0)
        acc += _GL_W[j] * y * math.exp(-x * y - 0.5 * y * y)
    return s * _pdf(x) * 0.5 * ymax * acc


@numba.njit(cache=True, error_model="numpy", inline="always")
def _relu_mean(m, s):
    """``E[relu(m + s xi)] = m Phi(h) + s phi_n(h)``, ``h = m / s``; for ``h < 0`` the two
    terms cancel to ``~ s phi_n(h) / h^2``, losing ``log10(1 + h^2)`` digits (2 at ``h =
    -8``); below ``-8`` by quadrature of the positive integrand."""
    h = m / s
    if h < -8.0:
        return _relu_mean_tail(m, s)
    return m * norm_cdf(h) + s * _pdf(h)


_GL_X, _GL_W = np.polynomial.legendre.leggauss(48)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _orthant_moments(h1, h2, rho, r):
    """``(L, phi_n(h1), phi_n(h2), E[Z1 1], E[Z2 1], E[Z1 Z2 1], quad)`` of the module
    docstring for standardised means ``h``, correlation ``rho``, ``r = sqrt(1 - rho^2)``;
    ``quad`` is the exponent of the bivariate density at the origin."""
    big_l = bvn_cdf(h1, h2, rho)
    p1 = _pdf(h1)
    p2 = _pdf(h2)
    q12 = norm_sf((-h2 + rho * h1) / r)  # Q((a2 - rho a1) / r), a = -h
    q21 = norm_sf((-h1 + rho * h2) / r)
    ez1 = p1 * q12 + rho * p2 * q21
    ez2 = p2 * q21 + rho * p1 * q12
    quad = (h1 * h1 - 2.0 * rho * h1 * h2 + h2 * h2) / (r * r)
    ez12 = (rho * big_l - rho * h1 * p1 * q12 - rho * h2 * p2 * q21
            + r * INV_SQRT_2PI * INV_SQRT_2PI * math.exp(-0.5 * quad))
    return big_l, p1, p2, ez1, ez2, ez12, quad


@numba.njit(cache=True, error_model="numpy")
def abrelu_pair(a1, c1, a2, c2, v1, v2, cov, m1, m2, grad):
    """``(E[phi(u) psi(v)], d/dvar1, d/dvar2, d/dcov, d/dmean1, d/dmean2)`` (the
    derivatives 0 unless ``grad``) for ``phi = a1 x + c1 relu(x)``, ``psi = a2 x + c2
    relu(x)`` (module docstring); requires ``v1, v2 > 0`` and ``|rho| <= RHO_MAX``."""
    s1 = math.sqrt(v1)
    s2 = math.sqrt(v2)
    rho = cov / (s1 * s2)
    h1 = m1 / s1
    h2 = m2 / s2
    r = math.sqrt((1.0 - rho) * (1.0 + rho))
    big_l, p1, p2, ez1, ez2, ez12, quad = _orthant_moments(h1, h2, rho, r)
    e_rr = m1 * m2 * big_l + m1 * s2 * ez2 + m2 * s1 * ez1 + s1 * s2 * ez12
    er1 = _relu_mean(m1, s1)
    er2 = _relu_mean(m2, s2)
    e_ur = m1 * er2 + cov * norm_cdf(h2)  # E[u relu(v)]
    e_ru = m2 * er1 + cov * norm_cdf(h1)  # E[relu(u) v]
    e_uv = cov + m1 * m2
    value = a1 * a2 * e_uv + a1 * c2 * e_ur + c1 * a2 * e_ru + c1 * c2 * e_rr
    if not grad:
        return value, 0.0, 0.0, 0.0, 0.0, 0.0
    cdf1 = norm_cdf(h1)
    cdf2 = norm_cdf(h2)
    # d/dcov = E[phi' psi']
    d_cov = a1 * a2 + a1 * c2 * cdf2 + c1 * a2 * cdf1 + c1 * c2 * big_l
    # d/dm1 = E[phi'(u) psi(v)] = a1 E[psi(v)] + c1 (a2 E[H(u) v] + c2 E[H(u) relu(v)])
    e_psi = a2 * m2 + c2 * er2
    e_phi = a1 * m1 + c1 * er1
    d_m1 = a1 * e_psi + c1 * (a2 * (m2 * cdf1 + s2 * rho * p1)
                                + c2 * (m2 * big_l + s2 * ez2))
    d_m2 = a2 * e_phi + c2 * (a1 * (m1 * cdf2 + s1 * rho * p2)
                                + c1 * (m1 * big_l + s1 * ez1))
    # d/dvar1 = (c1 / 2) p_u(0) E[psi(v) | u = 0]
    mu2 = m2 - cov * m1 / v1
    t2 = s2 * r
    d_v1 = 0.5 * c1 * (p1 / s1) * (a2 * mu2 + c2 * _relu_mean(mu2, t2))
    mu1 = m1 - cov * m2 / v2
    t1 = s1 * r
    d_v2 = 0.5 * c2 * (p2 / s2) * (a1 * mu1 + c1 * _relu_mean(mu1, t1))
    return value, d_v1, d_v2, d_cov, d_m1, d_m2


@numba.njit(cache=True, error_model="numpy", parallel=True)
def abrelu_pairs(a1, c1, a2, c2, v1, v2, cov, m1, m2, grad, out):
    """:func:`abrelu_pair` over arrays: ``out[k, i]``, ``out`` of shape ``(6, n)`` (or
    ``(1, n)`` without ``grad``), in parallel."""
    for i in prange(v1.size):
        r = abrelu_pair(a1, c1, a2, c2, v1[i], v2[i], cov[i], m1[i], m2[i], grad)
        out[0, i] = r[0]
        if grad:
            out[1, i] = r[1]
            out[2, i] = r[2]
            out[3, i] = r[3]
            out[4, i] = r[4]
            out[5, i] = r[5]


# ------------------------------------------------------------ piecewise-linear + step basis
#
# Activations alpha + beta x + gamma relu(x) + kappa H(x) (H the step): ABRelu, Sign
# (2 H - 1), RectifiedMonomial(0) and (1), Identity, affine polynomials.  With the basis
# B = (1, x, R, H, D, D') (R = relu, D = delta at 0, D' its derivative), phi' = beta +
# gamma H + kappa D and phi'' = gamma D + kappa D', so the value and all five derivatives
# are contractions of the matrix M[i, j] = E[B_i(u) B_j(v)].

ONE, LIN, REL, STEP, DEL, DDEL = 0, 1, 2, 3, 4, 5


@numba.njit(cache=True, error_model="numpy")
def _half_moments(m1, s1, m2, s2, cov, rho, r, out):
    """``out[i, j] = E[B_i(u) B_j(v)]`` for ``i`` in (1, x, R, H) and ``j`` in (D, D'):
    expectations against the delta at ``v = 0`` and its derivative (``u | v = y`` is
    Gaussian with mean ``m1 + (cov / v2)(y - m2)`` and sd ``t1 = s1 r``)."""
    v2 = s2 * s2
    h2 = m2 / s2
    p0 = _pdf(h2) / s2  # density of v at 0
    dp0 = h2 * _pdf(h2) / v2  # its derivative
    k = cov / v2  # d E[u | v = y] / dy
    mu1 = m1 - k * m2
    t1 = s1 * r
    gr = _relu_mean(mu1, t1)
    gh = norm_cdf(mu1 / t1)
    gd = _pdf(mu1 / t1) / t1
    # int delta'(y) p(y) g(y) dy = -(p g)'(0)
    out[ONE, 0] = p0
    out[ONE, 1] = -dp0
    out[LIN, 0] = p0 * mu1
    out[LIN, 1] = -(dp0 * mu1 + p0 * k)
    out[REL, 0] = p0 * gr
    out[REL, 1] = -(dp0 * gr + p0 * gh * k)
    out[STEP, 0] = p0 * gh
    out[STEP, 1] = -(dp0 * gh + p0 * gd * k)


@numba.njit(cache=True, error_model="numpy")
def basis_moments(v1, v2, cov, m1, m2):
    """``M[i, j] = E[B_i(u) B_j(v)]`` for the basis (1, x, R, H, D, D') (entries with
    ``D'`` on both sides, and ``D'`` against ``D``, are not needed and left 0); requires
    ``v1, v2 > 0`` and ``|rho| < 1``."""
    mm = np.zeros((6, 6))
    s1 = math.sqrt(v1)
    s2 = math.sqrt(v2)
    rho = cov / (s1 * s2)
    r = math.sqrt((1.0 - rho) * (1.0 + rho))
    h1 = m1 / s1
    h2 = m2 / s2
    big_l, p1, p2, ez1, ez2, ez12, quad = _orthant_moments(h1, h2, rho, r)
    er1 = _relu_mean(m1, s1)
    er2 = _relu_mean(m2, s2)
    c1 = norm_cdf(h1)
    c2 = norm_cdf(h2)
    # one-variable moments
    mm[ONE, ONE] = 1.0
    mm[ONE, LIN] = m2
    mm[LIN, ONE] = m1
    mm[ONE, REL] = er2
    mm[REL, ONE] = er1
    mm[ONE, STEP] = c2
    mm[STEP, ONE] = c1
    # two-variable moments
    mm[LIN, LIN] = cov + m1 * m2
    mm[LIN, REL] = m1 * er2 + cov * c2
    mm[REL, LIN] = m2 * er1 + cov * c1
    mm[LIN, STEP] = m1 * c2 + cov * p2 / s2
    mm[STEP, LIN] = m2 * c1 + cov * p1 / s1
    mm[REL, REL] = m1 * m2 * big_l + m1 * s2 * ez2 + m2 * s1 * ez1 + s1 * s2 * ez12
    mm[REL, STEP] = m1 * big_l + s1 * ez1
    mm[STEP, REL] = m2 * big_l + s2 * ez2
    mm[STEP, STEP] = big_l
    mm[DEL, DEL] = INV_SQRT_2PI * INV_SQRT_2PI * math.exp(-0.5 * quad) / (s1 * s2 * r)
    half = np.empty((4, 2))
    _half_moments(m1, s1, m2, s2, cov, rho, r, half)  # B_i(u) against D(v), D'(v)
    for i in range(4):
        mm[i, DEL] = half[i, 0]
        mm[i, DDEL] = half[i, 1]
    _half_moments(m2, s2, m1, s1, cov, rho, r, half)  # D(u), D'(u) against B_j(v)
    for j in range(4):
        mm[DEL, j] = half[j, 0]
        mm[DDEL, j] = half[j, 1]
    return mm


@numba.njit(cache=True, error_model="numpy")
def _derivative_coefficients(c):
    """``(phi', phi'')`` coefficient vectors in the basis for ``phi = c . (1, x, R, H)``."""
    d1 = np.zeros(6)
    d2 = np.zeros(6)
    d1[ONE] = c[LIN]
    d1[STEP] = c[REL]
    d1[DEL] = c[STEP]
    d2[DEL] = c[REL]
    d2[DDEL] = c[STEP]
    return d1, d2


@numba.njit(cache=True, error_model="numpy", parallel=True)
def pl_pairs(ca, cb, v1, v2, cov, m1, m2, grad, out):
    """Value (and with ``grad`` the five derivatives) of ``E[phi(u) psi(v)]`` for
    ``phi = ca . (1, x, relu, H)``, ``psi = cb . (1, x, relu, H)``: ``out[k, i]``."""
    a = np.zeros(6)
    b = np.zeros(6)
    a[:4] = ca
    b[:4] = cb
    a1, a2 = _derivative_coefficients(ca)
    b1, b2 = _derivative_coefficients(cb)
    for i in prange(v1.size):
        mm = basis_moments(v1[i], v2[i], cov[i], m1[i], m2[i])
        out[0, i] = a @ mm @ b
        if grad:
            out[1, i] = 0.5 * (a2 @ mm @ b)
            out[2, i] = 0.5 * (a @ mm @ b2)
            out[3, i] = a1 @ mm @ b1
            out[4, i] = a1 @ mm @ b
            out[5, i] = a @ mm @ b1


def pl_coefficients(kind, params):
    """``(alpha, beta, gamma, kappa)`` of an activation in the basis (1, x, relu, H), or
    None when it is not of that form."""
    from . import gaussian_means as gm

    if kind == gm.ABRELU:
        a, b = params
        return np.array([0.0, a, b - a, 0.0])
    if kind == gm.SIGN:
        return np.array([-1.0, 0.0, 0.0, 2.0])
    if kind == gm.RECTMONO and params[0] in (0.0, 1.0):
        return np.array([0.0, 0.0, 1.0, 0.0]) if params[0] == 1.0 else np.array([0.0, 0.0,
                                                                                 0.0, 1.0])
    if kind == gm.POLY and params.size <= 2:
        c = np.zeros(4)
        c[: params.size] = params
        return c
    return None


# ------------------------------------------------------------ pairs of steps
#
# For phi = alpha1 + kappa1 H(u), psi = alpha2 + kappa2 H(v) (Sign, the step, and Erf through
# the probit form) the expansion of E[phi psi] in the basis cancels when the result is
# small (e.g. E[sign(u) sign(v)] = 1 - 2 Phi(h1) - 2 Phi(h2) + 4 L near zero means and
# correlation).  Written as mean times mean plus covariance,
#
#     E[phi psi] = E[phi] E[psi] + kappa1 kappa2 D,   D = Phi2(h1, h2; rho) - Phi(h1) Phi(h2),
#     E[phi] = alpha1 + kappa1 / 2 + (kappa1 / 2) erf(h1 / sqrt 2),
#
# each term is accurate: D = (1 / 2 pi) int_0^asin(rho) exp(-(h1^2 + h2^2 - 2 h1 h2 sin t)
# / (2 cos^2 t)) dt (a positive integrand; Sheppard's formula differentiated, as in Genz
# 2004) by 24-point Gauss-Legendre for |rho| <= 1/2, and otherwise from the orthant
# probability after the reflections D(h1, h2; rho) = D(-h1, -h2; rho) = -D(-h1, h2; -rho)
# that put both thresholds in the lower tail, where Phi2 and Phi Phi do not cancel.

_GD_X, _GD_W = np.polynomial.legendre.leggauss(24)
_INV_2PI = 1.0 / (2.0 * math.pi)


@numba.njit(cache=True, error_model="numpy")
def step_covariance(h1, h2, rho):
    """``D = Phi2(h1, h2; rho) - Phi(h1) Phi(h2)`` without cancellation, ``|rho| < 1``."""
    if abs(rho) <= 0.5:
        top = math.asin(rho)
        acc = 0.0
        a = h1 * h1 + h2 * h2
        b = 2.0 * h1 * h2
        for j in range(_GD_X.size):
            t = 0.5 * top * (_GD_X[j] + 1.0)
            st = math.sin(t)
            ct2 = (1.0 - st) * (1.0 + st)
            acc += _GD_W[j] * math.exp(-0.5 * (a - b * st) / ct2)
        return 0.5 * top * acc * _INV_2PI
    if h1 + h2 > 0.0:
        h1 = -h1
        h2 = -h2
    if h1 > 0.0:
        return -(bvn_cdf(-h1, h2, -rho) - norm_cdf(-h1) * norm_cdf(h2))
    if h2 > 0.0:
        return -(bvn_cdf(h1, -h2, -rho) - norm_cdf(h1) * norm_cdf(-h2))
    return bvn_cdf(h1, h2, rho) - norm_cdf(h1) * norm_cdf(h2)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _step_mean(alpha, kappa, h):
    return alpha + 0.5 * kappa + 0.5 * kappa * math.erf(h * _SQRT_HALF)


_SQRT_HALF = math.sqrt(0.5)


@numba.njit(cache=True, error_model="numpy", parallel=True)
def step_values(alpha1, kappa1, alpha2, kappa2, v1, v2, cov, m1, m2, out):
    """``out[i] = E[(alpha1 + kappa1 H(u)) (alpha2 + kappa2 H(v))]`` (module comment above);
    requires ``v1, v2 > 0`` and ``|rho| < 1``."""
    for i in prange(v1.size):
        s1 = math.sqrt(v1[i])
        s2 = math.sqrt(v2[i])
        h1 = m1[i] / s1
        h2 = m2[i] / s2
        rho = cov[i] / (s1 * s2)
        out[i] = (_step_mean(alpha1, kappa1, h1) * _step_mean(alpha2, kappa2, h2)
                  + kappa1 * kappa2 * step_covariance(h1, h2, rho))
