"""One-dimensional Gaussian expectations with a mean: ``G(mu, t) = E[psi(mu + t xi)]``,
``xi ~ N(0, 1)``, and its derivatives ``G' = dG/dmu``, ``G'' = d^2G/dmu^2`` in closed
form for every closed activation family of :mod:`analytic_ntk.layers`.

These are the inner (conditional) expectations of :mod:`analytic_ntk.expectation`: for a
Gaussian pair, ``v | u`` is Gaussian, so ``E[phi(u) psi(v)] = E[phi(u) G(mu(u), t)]``.
The heat equation ``dG/dt = t G''`` (Price's theorem in one dimension) turns derivatives
in the variance into ``G''``.

With ``r = mu / t``, ``Phi`` and ``phi_n`` the standard normal CDF and density and
``I_n(r) = E[(xi + r)_+^n]`` (``I_0 = Phi(r)``, ``I_1 = r Phi(r) + phi_n(r)``,
``I_n = r I_(n-1) + (n - 1) I_(n-2)``, Stein's lemma):

* ``ABRELU (a, b)``: ``G = a mu + (b - a) t I_1(r)``, ``G' = a + (b - a) Phi(r)``,
  ``G'' = (b - a) phi_n(r) / t``.
* ``SIGN``: ``G = erf(r / sqrt 2)``, ``G' = 2 phi_n(r) / t``, ``G'' = -2 r phi_n(r) / t^2``.
* ``RECTMONO (n)``: ``G = t^n I_n(r)``, ``G' = n t^(n-1) I_(n-1)(r)``,
  ``G'' = n (n - 1) t^(n-2) I_(n-2)(r)`` (``n = 0``: the step; ``n = 1``: ReLU).
* ``ERF (a, b, c)``: with ``S = sqrt(1 + 2 b^2 t^2)``, ``G = a erf(b mu / S) + c``
  (the probit identity ``E[Phi(X)] = Phi(mu / sqrt(1 + t^2))``).
* ``SIN (a, b, c)``: ``G = a exp(-b^2 t^2 / 2) sin(b mu + c)`` (characteristic
  function); ``Cos`` and ``Rbf`` are phase shifts.
* ``GELU``: with ``S = sqrt(1 + t^2)``, ``rho = mu / S``,
  ``G = mu Phi(rho) + (t^2 / S) phi_n(rho)``.
* ``POLY (c_0..c_D)``: Gaussian moments ``E[(mu + t xi)^k]``.
* ``EXP (a, b)``: ``G = a exp(b mu + b^2 t^2 / 2)``.
* ``GAUSS (a, b)``: with ``D = 1 - 2 b t^2 > 0``, ``G = a D^(-1/2) exp(b mu^2 / D)``.

At ``t = 0`` they are the pointwise ``psi, psi', psi''`` (kinks contribute Dirac terms
that the caller adds).  ``I_n`` for ``r < -1.5`` (the lower tail, where the recurrence
cancels) is computed from ``I_n(r) = phi_n(r) int_0^inf y^n exp(r y - y^2 / 2) dy`` by
Gauss-Legendre quadrature of the positive integrand on the range that holds it,
keeping ~1e-14 relative accuracy in the tail.

References: Stein 1981 (Stein's lemma); Price 1958; Williams 1997 (probit/erf);
Cho & Saul 2009 (rectified monomials).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from . import layers as L

GENERIC = 0
ABRELU = 1
SIGN = 2
RECTMONO = 3
ERF = 4
SIN = 5
GELU = 6
POLY = 7
EXP = 8
GAUSS = 9

INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
SQRT_HALF = math.sqrt(0.5)
TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_TAIL_R = -1.5  # below this r, I_n by Gauss-Laguerre
_GL_X, _GL_W = np.polynomial.legendre.leggauss(48)


def spec(act) -> tuple[int, np.ndarray]:
    """``(kind, params)`` of an activation for :func:`inner`; ``(GENERIC, empty)`` when
    the family has no closed-form one-dimensional mean here."""
    if isinstance(act, L.ABRelu):
        return ABRELU, np.array([act.a, act.b], dtype=np.float64)
    if isinstance(act, L.Sign):
        return SIGN, np.zeros(1)
    if isinstance(act, L.RectifiedMonomial):
        return RECTMONO, np.array([float(act.degree)])
    if isinstance(act, L.Erf):
        return ERF, np.array([act.a, act.b, act.c], dtype=np.float64)
    if isinstance(act, L.Sin):
        return SIN, np.array([act.a, act.b, act.c], dtype=np.float64)
    if isinstance(act, L.Cos):
        return SIN, np.array([act.a, act.b, act.c + 0.5 * math.pi], dtype=np.float64)
    if isinstance(act, L.Rbf):
        return SIN, np.array([math.sqrt(2.0), math.sqrt(2.0 * act.gamma), 0.25 * math.pi])
    if isinstance(act, L.Gelu):
        return GELU, np.zeros(1)
    if isinstance(act, L.Polynomial):
        return POLY, np.asarray(act.coef, dtype=np.float64)
    if isinstance(act, L.Identity):
        return POLY, np.array([0.0, 1.0])
    if isinstance(act, L.Exp):
        return EXP, np.array([act.a, act.b], dtype=np.float64)
    if isinstance(act, L.Gaussian):
        return GAUSS, np.array([act.a, act.b], dtype=np.float64)
    return GENERIC, np.zeros(1)


@numba.njit(cache=True, error_model="numpy", inline="always")
def norm_pdf(x):
    return INV_SQRT_2PI * math.exp(-0.5 * x * x)


@numba.njit(cache=True, error_model="numpy", inline="always")
def norm_cdf(x):
    return 0.5 * math.erfc(-x * SQRT_HALF)


@numba.njit(cache=True, error_model="numpy")
def rect_moments(n, r, out):
    """``out[k] = I_k(r) = E[(xi + r)_+^k]`` for ``k = 0..n``."""
    if r < _TAIL_R:
        # I_k = phi_n(r) int_0^Y y^k exp(r y - y^2/2) dy (the rest is below 1e-18 of it),
        # by 48-point Gauss-Legendre: a positive integrand, no cancellation
        x = -r
        pr = norm_pdf(r)
        out[0] = norm_cdf(r)
        ymax = min((42.0 + 3.0 * n) / x, 9.5 + n)
        for k in range(1, n + 1):
            acc = 0.0
            for j in range(_GL_X.size):
                y = 0.5 * ymax * (_GL_X[j] + 1.0)
                acc += _GL_W[j] * y**k * math.exp(-x * y - 0.5 * y * y)
            out[k] = pr * 0.5 * ymax * acc
        return
    out[0] = norm_cdf(r)
    if n >= 1:
        out[1] = r * out[0] + norm_pdf(r)
    for k in range(2, n + 1):
        out[k] = r * out[k - 1] + (k - 1) * out[k - 2]


@numba.njit(cache=True, error_model="numpy")
def _poly_mean(p, mu, t, deriv):
    """``E[P^(deriv)(mu + t xi)]`` for ``P = sum_k p[k] x^k``."""
    acc = 0.0
    for k in range(deriv, p.size):
        ck = p[k]
        for d in range(deriv):
            ck *= k - d
        kk = k - deriv
        # E[(mu + t xi)^kk] = sum_{j even} C(kk, j) mu^(kk-j) t^j (j-1)!!
        m = 0.0
        binom = 1.0
        dfact = 1.0
        for j in range(kk + 1):
            if j > 0:
                binom = binom * (kk - j + 1) / j
            if j % 2 == 0:
                if j > 0:
                    dfact *= j - 1
                m += binom * mu ** (kk - j) * t**j * dfact
        acc += ck * m
    return acc


@numba.njit(cache=True, error_model="numpy")
def inner(kind, p, mu, t, out):
    """``out = (G, G', G'')`` of ``E[psi(mu + t xi)]`` (module docstring); ``t >= 0``;
    at ``t = 0`` the pointwise values (Dirac parts at kinks are the caller's)."""
    if kind == ABRELU:
        a = p[0]
        b = p[1]
        if t == 0.0:
            out[0] = b * mu if mu > 0.0 else a * mu
            out[1] = b if mu > 0.0 else a
            out[2] = 0.0
            return
        r = mu / t
        im = np.empty(2)
        rect_moments(1, r, im)
        if a == 0.0:
            out[0] = b * t * im[1]
        else:
            out[0] = a * mu + (b - a) * t * im[1]
        out[1] = a + (b - a) * im[0]
        out[2] = (b - a) * norm_pdf(r) / t
    elif kind == SIGN:
        if t == 0.0:
            out[0] = 1.0 if mu > 0.0 else (-1.0 if mu < 0.0 else 0.0)
            out[1] = 0.0
            out[2] = 0.0
            return
        r = mu / t
        out[0] = math.erf(r * SQRT_HALF)
        out[1] = 2.0 * norm_pdf(r) / t
        out[2] = -2.0 * r * norm_pdf(r) / (t * t)
    elif kind == RECTMONO:
        n = int(p[0])
        if t == 0.0:
            pos = mu > 0.0
            out[0] = (1.0 if n == 0 else mu**n) if pos else 0.0
            out[1] = (0.0 if n == 0 else (1.0 if n == 1 else n * mu ** (n - 1))) if pos else 0.0
            out[2] = (n * (n - 1) * mu ** (n - 2) if n >= 2 else 0.0) if pos else 0.0
            return
        r = mu / t
        im = np.empty(n + 1)
        rect_moments(n, r, im)
        out[0] = t**n * im[n]
        if n == 0:
            out[1] = norm_pdf(r) / t
            out[2] = -r * norm_pdf(r) / (t * t)
        elif n == 1:
            out[1] = im[0]
            out[2] = norm_pdf(r) / t
        else:
            out[1] = n * t ** (n - 1) * im[n - 1]
            out[2] = n * (n - 1) * t ** (n - 2) * im[n - 2]
    elif kind == ERF:
        a = p[0]
        b = p[1]
        s = math.sqrt(1.0 + 2.0 * b * b * t * t)
        x = b * mu / s
        out[0] = a * math.erf(x) + p[2]
        out[1] = a * TWO_OVER_SQRT_PI * (b / s) * math.exp(-x * x)
        out[2] = out[1] * (-2.0 * (b / s) * x)
    elif kind == SIN:
        a = p[0]
        b = p[1]
        damp = a * math.exp(-0.5 * b * b * t * t)
        arg = b * mu + p[2]
        out[0] = damp * math.sin(arg)
        out[1] = damp * b * math.cos(arg)
        out[2] = -b * b * out[0]
    elif kind == GELU:
        s = math.sqrt(1.0 + t * t)
        rho = mu / s
        pd = norm_pdf(rho)
        out[0] = mu * norm_cdf(rho) + (t * t / s) * pd
        out[1] = norm_cdf(rho) + rho * pd / (s * s)
        out[2] = pd / s + pd * (1.0 - rho * rho) / (s * s * s)
    elif kind == POLY:
        out[0] = _poly_mean(p, mu, t, 0)
        out[1] = _poly_mean(p, mu, t, 1)
        out[2] = _poly_mean(p, mu, t, 2)
    elif kind == EXP:
        a = p[0]
        b = p[1]
        out[0] = a * math.exp(b * mu + 0.5 * b * b * t * t)
        out[1] = b * out[0]
        out[2] = b * b * out[0]
    elif kind == GAUSS:
        a = p[0]
        b = p[1]
        d = 1.0 - 2.0 * b * t * t
        g = a / math.sqrt(d) * math.exp(b * mu * mu / d)
        k1 = 2.0 * b * mu / d
        out[0] = g
        out[1] = g * k1
        out[2] = g * (k1 * k1 + 2.0 * b / d)
    else:
        out[0] = math.nan
        out[1] = math.nan
        out[2] = math.nan


def evaluate(act, mu, t) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(G, G', G'')`` of ``E[act(mu + t xi)]`` for arrays ``mu``, ``t >= 0``
    (broadcast); for tests and users who need the one-dimensional means."""
    kind, p = spec(act)
    if kind == GENERIC:
        raise ValueError(f"{act!r} has no closed-form Gaussian mean here")
    mu, t = np.broadcast_arrays(np.asarray(mu, dtype=np.float64), np.asarray(t, dtype=np.float64))
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(t))):
        raise ValueError("mu and t must be finite")
    if np.any(t < 0):
        raise ValueError("t (a standard deviation) must be non-negative")
    out = np.empty((3, mu.size))
    _evaluate_flat(kind, p, np.ascontiguousarray(mu).ravel(), np.ascontiguousarray(t).ravel(),
                   out)
    return tuple(o.reshape(mu.shape) for o in out)


@numba.njit(cache=True, error_model="numpy")
def _evaluate_flat(kind, p, mu, t, out):
    o = np.empty(3)
    for i in range(mu.size):
        inner(kind, p, mu[i], t[i], o)
        out[0, i] = o[0]
        out[1, i] = o[1]
        out[2, i] = o[2]
