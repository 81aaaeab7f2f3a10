"""Closed-form Gaussian expectations of polynomial x exponential-quadratic activations with
means: ``Polynomial``, ``Identity``, ``Monomial``, ``Exp``, ``Sin``, ``Cos``, ``Rbf`` and
``Gaussian`` in any combination, and ``Exp`` or ``Gaussian`` against every family with a
closed one-dimensional mean (:mod:`analytic_ntk.gaussian_means`).

Every activation of the first group is ``phi(x) = Re(p(x) exp(beta x^2 + k x))`` with a
(complex) polynomial ``p``, real ``beta`` and complex ``k``: ``Polynomial`` (``beta = k =
0``), ``a exp(b x)`` (``p = a, k = b``), ``a sin(b x + c) = Re(-i a e^(ic) e^(i b x))``
and ``a exp(b x^2)`` (``p = a, beta = b``).  Its derivative is of the same form,
``(p' + (2 beta x + k) p) exp(beta x^2 + k x)``, so by Price's theorem and Stein's lemma
(``d/dcov = E[phi' psi']``, ``d/dvar1 = E[phi'' psi] / 2``, ``d/dmean1 = E[phi' psi]``)
the five derivatives are expectations of the same kind with other polynomials.

Exponential tilt.  For ``x = (u, v) ~ N(m, C)``, ``B = diag(beta1, beta2)``, ``kk =
(k1, k2)``, put ``M = I - 2 C B``, ``g = 2 B m + kk``, ``C' = M^-1 C`` and ``m' = m + C'
g``.  Completing the square (no inverse of ``C`` is needed, so singular covariances are
allowed):

    E[f(x) exp(x^T B x + kk^T x)] = Z E'[f(x)],   x ~ N(m', C') under E',
    log Z = kk^T m + m^T B m + g^T C' g / 2 - log(det M) / 2,

    C'11 = (C11 - 2 beta2 det C) / det M,  C'22 = (C22 - 2 beta1 det C) / det M,
    C'12 = C12 / det M.

The expectation exists when ``C^-1 - 2 B`` is positive definite, i.e. ``det M > 0`` and
``1 - 2 beta_i C_ii > 0`` (the caller checks).  Then

* both sides polynomial x exponential-quadratic: ``E'[u^i v^j]`` by the Stein recursion
  ``E[u^(i+1) v^j] = m'1 E[u^i v^j] + i C'11 E[u^(i-1) v^j] + j C'12 E[u^i v^(j-1)]``
  (complex ``m'`` for ``Sin``/``Cos``), and with ``Re(z) Re(w) = Re(z w + z conj(w)) / 2``
  the pair is ``Re(E[T1 T2] + E[T1 conj(T2)]) / 2`` (:func:`qe_pairs`);
* ``phi = a exp(beta u^2 + k u)`` (real: ``Exp``, ``Gaussian``) against any ``psi`` with
  a closed mean ``G(mu, t) = E[psi(mu + t xi)]``: tilting by ``phi`` alone,
  ``E'[psi(v)] = G(m'2, sqrt(C'22))``, ``E'[u psi(v)] = m'1 G + C'12 G'`` and ``E'[u^2
  psi(v)] = (m'1^2 + C'11) G + 2 m'1 C'12 G' + C'12^2 G''`` (Stein), which is all that
  the value and the five derivatives need (:func:`tilt_pairs`).

The tilt (``log Z``, ``m'``, ``C'``) is derived by SymPy and written as numba code by
``derivations/gaussian_integrals.py`` (``analytic_ntk/_generated/gaussian_tilt.py``),
which also checks it against two-dimensional quadrature and the derivatives below
against symbolic differentiation.

References: Isserlis 1918 and Stein 1981 (Gaussian moments); Price 1958; the completion
of the square is the standard Gaussian integral (e.g. Rasmussen & Williams 2006, A.2).
"""

from __future__ import annotations

import cmath
import math

import numba
import numpy as np
from numba import prange

from . import gaussian_means as gm
from ._generated.gaussian_tilt import tilt

__all__ = ["qe_form", "qe_pairs", "tilt_form", "tilt_pairs"]

_JIT = {"cache": True, "error_model": "numpy"}
_CHUNK = 256  # entries per parallel task (scratch arrays allocated once per task)


# ------------------------------------------------------------ the family


def qe_form(kind, params):
    """``(p, beta, k)`` with ``phi(x) = Re(p(x) exp(beta x^2 + k x))`` (``p`` complex
    coefficients, lowest first), or None for the other families."""
    if kind == gm.POLY:
        return np.asarray(params, dtype=np.complex128), 0.0, 0j
    if kind == gm.EXP:
        a, b = params
        return np.array([a], dtype=np.complex128), 0.0, complex(b)
    if kind == gm.SIN:
        a, b, c = params
        return np.array([-1j * a * cmath.exp(1j * c)]), 0.0, 1j * b
    if kind == gm.GAUSS:
        a, b = params
        return np.array([a], dtype=np.complex128), float(b), 0j
    return None


def tilt_form(kind, params):
    """``(a, beta, k)`` (real) with ``phi(x) = a exp(beta x^2 + k x)``: ``Exp`` and
    ``Gaussian``; None otherwise."""
    if kind == gm.EXP:
        return float(params[0]), 0.0, float(params[1])
    if kind == gm.GAUSS:
        return float(params[0]), float(params[1]), 0.0
    return None


def _derivative(p, beta, k):
    """Coefficients of ``q`` with ``(p e^(beta x^2 + k x))' = q e^(beta x^2 + k x)``."""
    q = np.zeros(p.size + (1 if beta != 0.0 else 0), dtype=np.complex128)
    q[: p.size - 1] += p[1:] * np.arange(1, p.size)
    q[: p.size] += k * p
    if beta != 0.0:
        q[1: p.size + 1] += 2.0 * beta * p
    return q


def derivative_table(p, beta, k):
    """``(3, D)`` complex array: the polynomials of ``phi, phi', phi''`` (zero-padded)."""
    d1 = _derivative(p, beta, k)
    d2 = _derivative(d1, beta, k)
    out = np.zeros((3, d2.size), dtype=np.complex128)
    out[0, : p.size] = p
    out[1, : d1.size] = d1
    out[2, : d2.size] = d2
    return out


# ------------------------------------------------------------ tilt and moments


@numba.njit(**_JIT)
def _moments(mu1, mu2, c11, c22, c12, n1, n2, mom):
    """``mom[i, j] = E[u^i v^j]``, ``i < n1``, ``j < n2``, for ``(u, v) ~ N((mu1, mu2),
    C)`` (complex means allowed), by the Stein recursion."""
    mom[0, 0] = 1.0
    for j in range(1, n2):
        mom[0, j] = mu2 * mom[0, j - 1]
        if j >= 2:
            mom[0, j] += (j - 1) * c22 * mom[0, j - 2]
    for i in range(1, n1):
        for j in range(n2):
            acc = mu1 * mom[i - 1, j]
            if i >= 2:
                acc += (i - 1) * c11 * mom[i - 2, j]
            if j >= 1:
                acc += j * c12 * mom[i - 1, j - 1]
            mom[i, j] = acc


@numba.njit(**_JIT)
def _contract(pa, ia, mom, pb, ib):
    acc = 0j
    for i in range(pa.shape[1]):
        if pa[ia, i] != 0:
            row = 0j
            for j in range(pb.shape[1]):
                row += mom[i, j] * pb[ib, j]
            acc += pa[ia, i] * row
    return acc


@numba.njit(**_JIT)
def _qe_term(pa, b1, k1, pb, b2, k2, v1, v2, c, det_c, m1, m2, mom, res):
    """``res[0..5] = E[T1 T2]`` and its five derivatives (complex) for ``T = p(x)
    exp(beta x^2 + k x)`` with the derivative tables ``pa``, ``pb``."""
    log_z, mu1, mu2, c11, c22, c12 = tilt(b1, b2, k1, k2, v1, v2, c, det_c, m1, m2)
    z = cmath.exp(log_z)
    _moments(mu1, mu2, c11, c22, c12, pa.shape[1], pb.shape[1], mom)
    res[0] = z * _contract(pa, 0, mom, pb, 0)
    if res.size > 1:
        res[1] = 0.5 * z * _contract(pa, 2, mom, pb, 0)
        res[2] = 0.5 * z * _contract(pa, 0, mom, pb, 2)
        res[3] = z * _contract(pa, 1, mom, pb, 1)
        res[4] = z * _contract(pa, 1, mom, pb, 0)
        res[5] = z * _contract(pa, 0, mom, pb, 1)


@numba.njit(**_JIT, parallel=True)
def qe_pairs(pa, b1, k1, pb, b2, k2, v1, v2, cov, m1, m2, out):
    """``out[:, i]``: value (and, for ``out`` of 6 rows, ``d/d(var1, var2, cov, mean1,
    mean2)``) of ``E[phi(u) psi(v)]`` for ``phi = Re(p_a e^(b1 x^2 + k1 x))``, ``psi =
    Re(p_b e^(b2 x^2 + k2 x))``; ``pa``, ``pb`` from :func:`derivative_table`."""
    pbc = np.conj(pb)
    k2c = np.conj(k2)
    nrow = out.shape[0]
    n = v1.size
    nchunk = (n + _CHUNK - 1) // _CHUNK
    for ch in prange(nchunk):
        mom = np.empty((pa.shape[1], pb.shape[1]), dtype=np.complex128)
        r1 = np.empty(nrow, dtype=np.complex128)
        r2 = np.empty(nrow, dtype=np.complex128)
        for i in range(ch * _CHUNK, min(n, (ch + 1) * _CHUNK)):
            s1 = math.sqrt(v1[i])
            s2 = math.sqrt(v2[i])
            rho = cov[i] / (s1 * s2) if s1 * s2 > 0.0 else 0.0
            det_c = v1[i] * v2[i] * (1.0 - rho) * (1.0 + rho)
            _qe_term(pa, b1, k1, pb, b2, k2, v1[i], v2[i], cov[i], det_c, m1[i], m2[i], mom,
                     r1)
            _qe_term(pa, b1, k1, pbc, b2, k2c, v1[i], v2[i], cov[i], det_c, m1[i], m2[i],
                     mom, r2)
            for r in range(nrow):
                out[r, i] = 0.5 * (r1[r] + r2[r]).real


@numba.njit(**_JIT, parallel=True)
def tilt_pairs(a, beta, k, kind, p, v1, v2, cov, m1, m2, out):
    """``out[:, i]`` as in :func:`qe_pairs` for ``phi = a exp(beta x^2 + k x)`` (real) and
    ``psi`` of the closed family ``kind`` with parameters ``p``
    (:func:`analytic_ntk.gaussian_means.inner`); requires ``var2 > 0``."""
    nrow = out.shape[0]
    n = v1.size
    nchunk = (n + _CHUNK - 1) // _CHUNK
    for ch in prange(nchunk):
        g = np.empty(3)
        for i in range(ch * _CHUNK, min(n, (ch + 1) * _CHUNK)):
            _tilt_entry(a, beta, k, kind, p, v1[i], v2[i], cov[i], m1[i], m2[i], g, out, i,
                        nrow)


@numba.njit(**_JIT)
def _tilt_entry(a, beta, k, kind, p, v1, v2, cov, m1, m2, g, out, i, nrow):
    s1 = math.sqrt(v1)
    s2 = math.sqrt(v2)
    rho = cov / (s1 * s2) if s1 * s2 > 0.0 else 0.0
    det_c = v1 * v2 * (1.0 - rho) * (1.0 + rho)
    log_z, mu1, mu2, c11, c22, c12 = tilt(beta, 0.0, k, 0.0, v1, v2, cov, det_c, m1, m2)
    az = a * math.exp(log_z)
    gm.inner(kind, p, mu2, math.sqrt(c22), g)
    out[0, i] = az * g[0]
    if nrow > 1:
        e_u = mu1 * g[0] + c12 * g[1]  # E'[u psi]
        e_uu = (mu1 * mu1 + c11) * g[0] + 2.0 * mu1 * c12 * g[1] + c12 * c12 * g[2]
        e_ud = mu1 * g[1] + c12 * g[2]  # E'[u psi']
        out[1, i] = 0.5 * az * ((k * k + 2.0 * beta) * g[0] + 4.0 * beta * k * e_u
                                + 4.0 * beta * beta * e_uu)
        out[2, i] = 0.5 * az * g[2]
        out[3, i] = az * (k * g[1] + 2.0 * beta * e_ud)
        out[4, i] = az * (k * g[0] + 2.0 * beta * e_u)
        out[5, i] = az * g[1]
