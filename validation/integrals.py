"""Independent Gaussian expectations ``E[f(u) g(v)]`` by product quadrature in polar coordinates.

This module is the reference the closed-form duals are checked against, so it uses
no dual formula at all: only the pointwise functions ``f`` and ``g``.

Method
------
Let ``(u, v)`` be centred Gaussian with covariance ``[[q1, q12], [q12, q2]]`` and write
``a = sqrt(q1)``, ``b = sqrt(q2)``, ``q12 = a b cos(theta)``, ``theta in [0, pi]``.  With
``(z1, z2)`` standard normal in polar form ``z = r (cos phi, sin phi)``,

    u = a r cos(phi),    v = b r cos(phi - theta),

    E[f(u) g(v)] = 1/(2 pi) int_0^{2 pi} dphi int_0^inf r exp(-r^2/2) f(u) g(v) dr.

The lines ``u = 0`` and ``v = 0`` are the rays ``phi = +-pi/2`` and
``phi = theta +- pi/2``; they cut the circle into two arcs of width ``theta`` (where
``u`` and ``v`` have opposite signs) and two of width ``pi - theta`` (same signs).
On each arc ``f(u) g(v)`` is as smooth as ``f`` and ``g`` away from 0, so

* in angle: Gauss-Legendre on each arc (``n_angle`` nodes per arc), with
  ``cos(phi)`` and ``cos(phi - theta)`` written as sines of the offsets from the arc's
  end points (no cancellation on thin arcs, ``theta -> 0`` or ``pi``); the arc widths
  ``theta = atan2(sqrt(det), q12)`` and ``pi - theta = atan2(sqrt(det), -q12)`` come from
  the determinant ``det = q1 q2 - q12^2`` computed exactly (rational arithmetic), so
  the quadrature is on the covariance as given, not on a rounded correlation;
* in radius: the ``n_radial``-point Gauss rule for the weight ``r exp(-r^2/2)`` on
  ``[0, inf)``.  Along a ray, ``max(x, 0)^n``, ``|x|``, ``sign(x)``, polynomials... are
  polynomials in ``r``, so piecewise-polynomial integrands are integrated exactly
  (degree ``<= 2 n_radial - 1``).

Rank-deficient covariances (``det = 0``, or ``q1 = 0`` / ``q2 = 0``) reduce to the
1-D expectation ``E[h(z)] = (2 pi)^(-1/2) int_0^inf exp(-z^2/2) (h(z) + h(-z)) dz``
with the Gauss rule for ``exp(-z^2/2)`` on ``[0, inf)`` (split at the kink ``z = 0``).

The Gauss rules for the weights ``r^gamma exp(-r^2/2)`` on ``[0, inf)``
(``gamma = 1, 0``; "half-range Hermite", cf. Gautschi 2004, *Orthogonal Polynomials:
Computation and Approximation*, sec. 2.1 and 3.1) are built from their moments
``m_k = 2^((k+gamma-1)/2) Gamma((k+gamma+1)/2)`` by the Chebyshev algorithm in
high-precision arithmetic (mpmath); nodes are the eigenvalues of the Jacobi matrix
(Golub & Welsch 1969) refined by Newton's method and weights from the
Christoffel function ``1 / sum_k p_k(x)^2`` of the orthonormal polynomials, both in
extended precision, so weights are accurate to a few ulp *relative* even in the far
tail (where they are ~1e-130) and integrands growing like ``exp(c r)`` are safe.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import cache

import mpmath
import numpy as np

__all__ = [
    "half_range_rule",
    "bivariate_rule",
    "gaussian_expectation",
    "gaussian_expectation_1d",
    "covariance_det",
]

N_RADIAL = 128
N_ANGLE = 64


# ------------------------------------------------------------------ Gauss rules


def _recurrence(n: int, gamma: int):
    """Recurrence coefficients ``(alpha_k, sqrt(beta_k))``, ``k < n``, of the monic
    orthogonal polynomials for ``r^gamma exp(-r^2/2)`` on ``[0, inf)``, by the
    Chebyshev algorithm from the ordinary moments (Gautschi 2004, Alg. 2.1) at
    ``2 n + 60`` digits (the algorithm loses about ``1.2 n`` digits).  ``beta_0`` is
    the total mass.  Returned as mpmath numbers."""
    with mpmath.workdps(2 * n + 60):
        g = mpmath.mpf(gamma)
        mu = [
            mpmath.mpf(2) ** ((k + g - 1) / 2) * mpmath.gamma((k + g + 1) / 2) for k in range(2 * n)
        ]
        sig_prev = [mpmath.mpf(0)] * (2 * n)
        sig = list(mu)
        alpha = [mu[1] / mu[0]]
        beta = [mu[0]]
        for k in range(1, n):
            new = [mpmath.mpf(0)] * (2 * n)
            for m in range(k, 2 * n - k):
                new[m] = sig[m + 1] - alpha[k - 1] * sig[m] - beta[k - 1] * sig_prev[m]
            alpha.append(new[k + 1] / new[k] - sig[k] / sig[k - 1])
            beta.append(new[k] / sig[k - 1])
            sig_prev, sig = sig, new
        return alpha, [mpmath.sqrt(x) for x in beta]


def _orthonormal(x, alpha, sb, n):
    """``(p_n, p_n', sum_{k<n} p_k^2)`` at ``x`` for the orthonormal recurrence
    (``p_n`` and ``p_n'`` unnormalised by the last ``sqrt(beta_n)``)."""
    p_prev = x * 0
    p = x * 0 + 1 / sb[0]
    dp_prev = x * 0
    dp = x * 0
    s = p * p
    for k in range(n):
        c = sb[k] if k > 0 else 0
        pn = (x - alpha[k]) * p - c * p_prev
        dpn = p + (x - alpha[k]) * dp - c * dp_prev
        if k + 1 < n:
            pn = pn / sb[k + 1]
            dpn = dpn / sb[k + 1]
            s = s + pn * pn
        p_prev, p = p, pn
        dp_prev, dp = dp, dpn
    return p, dp, s


@cache
def half_range_rule(n: int, gamma: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss rule for ``int_0^inf r^gamma exp(-r^2/2) h(r) dr``.

    Parameters
    ----------
    n : int
        Number of nodes; exact for polynomials ``h`` of degree ``<= 2n - 1``.
    gamma : int
        Power of ``r`` in the weight (1 for the polar radius, 0 for the half line).

    Returns
    -------
    (nodes, weights) : float64 arrays of length ``n`` (read-only, cached).
        ``weights.sum() = 2^((gamma-1)/2) Gamma((gamma+1)/2)``.
    """
    alpha, sb = _recurrence(n, gamma)
    a64 = np.array([float(x) for x in alpha])
    s64 = np.array([float(x) for x in sb])
    jac = np.diag(a64) + np.diag(s64[1:], 1) + np.diag(s64[1:], -1)
    x0 = np.linalg.eigvalsh(jac)
    if np.finfo(np.longdouble).eps < 1e-18:
        # 80-bit extended precision: Newton + Christoffel, vectorised.
        ld = np.longdouble
        al = np.array([ld(mpmath.nstr(v, 30)) for v in alpha])
        sl = np.array([ld(mpmath.nstr(v, 30)) for v in sb])
        x = x0.astype(ld)
        for _ in range(2):
            p, dp, _s = _orthonormal(x, al, sl, n)
            x = x - p / dp
        _p, _dp, s = _orthonormal(x, al, sl, n)
        nodes, weights = x.astype(np.float64), (1 / s).astype(np.float64)
    else:  # pragma: no cover - platforms without extended precision
        nodes, weights = np.empty(n), np.empty(n)
        with mpmath.workdps(30):
            for i, xi in enumerate(x0):
                x = mpmath.mpf(float(xi))
                for _ in range(2):
                    p, dp, _s = _orthonormal(x, alpha, sb, n)
                    x = x - p / dp
                _p, _dp, s = _orthonormal(x, alpha, sb, n)
                nodes[i], weights[i] = float(x), float(1 / s)
    nodes.setflags(write=False)
    weights.setflags(write=False)
    return nodes, weights


@cache
def _legendre(m: int) -> tuple[np.ndarray, np.ndarray]:
    t, w = np.polynomial.legendre.leggauss(m)
    return t, w


# ------------------------------------------------------------------ covariance


def covariance_det(q1: float, q2: float, q12: float) -> float:
    """``q1 q2 - q12^2`` computed exactly from the float64 inputs, then rounded once."""
    return float(Fraction(q1) * Fraction(q2) - Fraction(q12) ** 2)


def _check_cov(q1, q2, q12):
    q1, q2, q12 = float(q1), float(q2), float(q12)
    if not all(math.isfinite(x) for x in (q1, q2, q12)):
        raise ValueError("covariance entries must be finite")
    if q1 < 0 or q2 < 0:
        raise ValueError("variances must be non-negative")
    det = covariance_det(q1, q2, q12)
    if det < 0:
        # |q12| = sqrt(q1 q2) rounded up by an ulp or so: treat as rank one.
        if -det > 8 * np.finfo(float).eps * q1 * q2:
            raise ValueError(f"not a covariance: q1 q2 - q12^2 = {det} < 0")
        det = 0.0
    return q1, q2, q12, det


# ------------------------------------------------------------------ rules


def bivariate_rule(
    q1, q2, q12, kinks: bool = True, *, n_radial: int = N_RADIAL, n_angle: int = N_ANGLE
):
    """Points and weights with ``E[f(u) g(v)] ~= sum_i w_i f(u_i) g(v_i)``.

    Parameters
    ----------
    q1, q2, q12 : float
        Covariance ``[[q1, q12], [q12, q2]]`` of the centred pair ``(u, v)``
        (positive semi-definite; ``|q12|`` may exceed ``sqrt(q1 q2)`` by rounding only).
    kinks : bool
        True: Gauss-Legendre on the four arcs between the rays ``u = 0`` and ``v = 0``
        (exact treatment of kinks and jumps at 0).  False: periodic trapezoidal rule
        with ``2 n_angle`` equispaced angles (spectrally accurate for smooth ``f, g``).
    n_radial, n_angle : int
        Radial nodes (weight ``r exp(-r^2/2)``) and angular nodes per arc.

    Returns
    -------
    (u, v, w) : float64 arrays of equal length.
    """
    q1, q2, q12, det = _check_cov(q1, q2, q12)
    a, b = math.sqrt(q1), math.sqrt(q2)
    if q1 == 0 or q2 == 0 or det == 0:
        if q12 != 0 and (q1 == 0 or q2 == 0):
            raise ValueError("q12 must be 0 when a variance is 0")
        z, wz = half_range_rule(n_radial, 0)
        z = np.concatenate([z, -z])
        w = np.concatenate([wz, wz]) / math.sqrt(2 * math.pi)
        sgn = 1.0 if q12 >= 0 else -1.0
        return a * z, sgn * b * z, w
    r, wr = half_range_rule(n_radial, 1)
    sdet = math.sqrt(det)
    if not kinks:
        m = 2 * n_angle
        phi = 2 * math.pi * np.arange(m) / m
        cphi, sphi = np.cos(phi), np.sin(phi)
        ab = a * b
        c1 = cphi
        c2 = cphi * (q12 / ab) + sphi * (sdet / ab)
        wphi = np.full(m, 1.0 / m)
    else:
        t, wt = _legendre(n_angle)
        theta = math.atan2(sdet, q12)  # arc where sign(u) != sign(v)
        thbar = math.atan2(sdet, -q12)  # pi - theta, without cancellation
        c1s, c2s, ws = [], [], []
        if theta > 0:
            tau, taub = 0.5 * theta * (1 + t), 0.5 * theta * (1 - t)
            # phi = -pi/2 + tau: cos(phi) = sin(tau), cos(phi - theta) = -sin(theta - tau)
            c1s += [np.sin(tau), -np.sin(tau)]
            c2s += [-np.sin(taub), np.sin(taub)]
            ws += [0.5 * theta * wt] * 2
        if thbar > 0:
            sig, sigb = 0.5 * thbar * (1 + t), 0.5 * thbar * (1 - t)
            # phi = theta - pi/2 + sig:
            # cos(phi) = sin(pi - theta - sig), cos(phi - theta) = sin(sig)
            c1s += [np.sin(sigb), -np.sin(sigb)]
            c2s += [np.sin(sig), -np.sin(sig)]
            ws += [0.5 * thbar * wt] * 2
        c1, c2 = np.concatenate(c1s), np.concatenate(c2s)
        wphi = np.concatenate(ws) / (2 * math.pi)
    u = a * np.outer(c1, r).ravel()
    v = b * np.outer(c2, r).ravel()
    w = np.outer(wphi, wr).ravel()
    return u, v, w


def gaussian_expectation(
    f,
    g,
    q1,
    q2,
    q12,
    kinks: bool = True,
    *,
    n_radial: int = N_RADIAL,
    n_angle: int = N_ANGLE,
    with_abs: bool = False,
):
    """``E[f(u) g(v)]`` for ``(u, v) ~ N(0, [[q1, q12], [q12, q2]])``, by quadrature.

    Parameters
    ----------
    f, g : callable
        Vectorised (numpy) pointwise functions.  Kinks and jumps are allowed at 0
        only (with ``kinks=True``); the values at exactly 0 matter only where a variance
        is 0.
    q1, q2, q12 : float
        The covariance (see :func:`bivariate_rule`).
    kinks : bool
        Split the angular integral at the rays ``u = 0``, ``v = 0`` (default).  Use
        False only for smooth ``f, g``.

    with_abs : bool
        Also return ``E[|f(u) g(v)|]`` (same rule), the size of the terms summed: the
        rounding error of the result is a small multiple of ``eps * E[|f(u) g(v)|]``.

    Returns
    -------
    float, or (float, float) with ``with_abs``
        ``E[f(u) g(v)]``; for the activations of :mod:`analytic_ntk.layers` at
        moderate variances accurate to ~1e-15 relative where the integrand has one sign,
        and to ~10 eps ``E[|f(u) g(v)|]`` absolute in general (``tests/test_duals.py``).

    Notes
    -----
    Polar-coordinate product rule, see the module docstring; no closed form is used.
    """
    u, v, w = bivariate_rule(q1, q2, q12, kinks, n_radial=n_radial, n_angle=n_angle)
    fu = np.broadcast_to(np.asarray(f(u), dtype=np.float64), u.shape)
    gv = np.broadcast_to(np.asarray(g(v), dtype=np.float64), v.shape)
    terms = w * fu * gv
    if with_abs:
        return float(np.sum(terms)), float(np.sum(np.abs(terms)))
    return float(np.sum(terms))


def gaussian_expectation_1d(h, q, *, n: int = N_RADIAL) -> float:
    """``E[h(u)]`` for ``u ~ N(0, q)``: ``(2 pi)^(-1/2) int_0^inf e^(-z^2/2) (h(a z) + h(-a z)) dz``
    with ``a = sqrt(q)``, by the half-range Gauss rule (exact for piecewise polynomials
    with a break at 0); ``q = 0`` gives ``h(0)``."""
    q = float(q)
    if not (math.isfinite(q) and q >= 0):
        raise ValueError("variance must be finite and non-negative")
    if q == 0:
        return float(np.asarray(h(np.zeros(1)), dtype=np.float64).reshape(-1)[0])
    z, wz = half_range_rule(n, 0)
    a = math.sqrt(q)
    x = np.concatenate([a * z, -a * z])
    w = np.concatenate([wz, wz]) / math.sqrt(2 * math.pi)
    hx = np.broadcast_to(np.asarray(h(x), dtype=np.float64), x.shape)
    return float(np.sum(w * hx))
