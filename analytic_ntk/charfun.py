"""Closed-form Gaussian expectations of exponential-type activations with means, through
the moment generating function (characteristic function for the trigonometric ones).

Each of ``Sin(a, b, c)`` (``a sin(b x + c)``; ``Cos`` and ``Rbf`` are phase shifts) and
``Exp(a, b)`` (``a exp(b x)``) is ``phi(x) = Re(A exp(k x))`` with complex ``A, k``:
``a sin(b x + c) = Re(-i a e^(i c) e^(i b x))``, ``a exp(b x) = Re(a e^(b x))``.  For
``(u, v) ~ N((m1, m2), C)`` and complex ``k1, k2``

    E[exp(k1 u + k2 v)] = exp(k1 m1 + k2 m2 + (k1^2 C11 + 2 k1 k2 C12 + k2^2 C22) / 2),

so, with ``Re(z) Re(w) = Re(z w + z conj(w)) / 2``,

    E[phi(u) psi(v)] = Re(A1 A2 M(k1, k2) + A1 conj(A2) M(k1, conj(k2))) / 2,

and the five derivatives multiply each term by ``k1^2 / 2``, ``k2^2 / 2``, ``k1 k2``,
``k1``, ``k2`` (with ``conj(k2)`` in the second term): exact for every covariance,
including zero variances and ``|correlation| = 1``.
"""

from __future__ import annotations

import cmath

import numba
import numpy as np
from numba import prange

from . import gaussian_means as gm


def coefficients(kind, params) -> tuple[complex, complex] | None:
    """``(A, k)`` with ``phi(x) = Re(A exp(k x))``, or None for other families."""
    if kind == gm.SIN:
        a, b, c = params
        return -1j * a * cmath.exp(1j * c), 1j * b
    if kind == gm.EXP:
        a, b = params
        return complex(a), complex(b)
    return None


@numba.njit(cache=True, error_model="numpy")
def _term(amp, k1, k2, v1, v2, cov, m1, m2):
    e = amp * cmath.exp(k1 * m1 + k2 * m2 + 0.5 * (k1 * k1 * v1 + 2.0 * k1 * k2 * cov
                                                  + k2 * k2 * v2))
    return e, 0.5 * k1 * k1 * e, 0.5 * k2 * k2 * e, k1 * k2 * e, k1 * e, k2 * e


@numba.njit(cache=True, error_model="numpy", parallel=True)
def pairs(a1, k1, a2, k2, v1, v2, cov, m1, m2, out):
    """``out[:, i]``: value and ``d/d(var1, var2, cov, mean1, mean2)`` (``out`` of shape
    ``(6, n)`` or ``(1, n)``)."""
    p = a1 * a2
    q = a1 * np.conj(a2)
    k2c = np.conj(k2)
    nrow = out.shape[0]
    for i in prange(v1.size):
        s = _term(p, k1, k2, v1[i], v2[i], cov[i], m1[i], m2[i])
        t = _term(q, k1, k2c, v1[i], v2[i], cov[i], m1[i], m2[i])
        for r in range(nrow):
            out[r, i] = 0.5 * (s[r] + t[r]).real


def evaluate(spec1, spec2, flat, grad):
    """``(6 or 1, n)`` array for the flat validated arrays ``flat``; ``spec`` from
    :func:`coefficients`."""
    out = np.empty((6 if grad else 1, flat[0].size))
    (a1, k1), (a2, k2) = spec1, spec2
    pairs(complex(a1), complex(k1), complex(a2), complex(k2), *flat, out)
    return out


__all__ = ["coefficients", "evaluate", "pairs"]

