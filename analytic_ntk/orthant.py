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
