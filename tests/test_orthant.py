"""Closed-form expectations of piecewise-linear activations with means
(:mod:`analytic_ntk.orthant`) against the independent quadrature route of
:mod:`analytic_ntk.expectation` (itself checked against mpmath in test_expectation.py)
and against finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import analytic_ntk as nt
from analytic_ntk import orthant
from analytic_ntk.expectation import by_quadrature

AB = [(0.0, 1.0), (0.1, 1.0), (-1.0, 1.0), (0.3, -0.5)]


@pytest.mark.parametrize("i, j", [(0, 0), (1, 2), (2, 3), (3, 0)])
def test_against_quadrature(i, j):
    (a1, b1), (a2, b2) = AB[i], AB[j]
    rng = np.random.default_rng(10 * i + j)
    n = 40
    v1, v2 = rng.uniform(0.05, 3.0, (2, n))
    rho = rng.uniform(-1, 1, n)
    rho[:4] = [1 - 1e-6, -1 + 1e-6, 1 - 1e-9, -1 + 1e-9]
    c = rho * np.sqrt(v1 * v2)
    m1 = rng.uniform(-3, 3, n) * np.sqrt(v1)
    m2 = rng.uniform(-3, 3, n) * np.sqrt(v2)
    got = np.empty((6, n))
    orthant.abrelu_pairs(a1, b1 - a1, a2, b2 - a2, v1, v2, c, m1, m2, True, got)
    got = got.T
    ref, status = by_quadrature(nt.ABRelu(a1, b1), nt.ABRelu(a2, b2), (v1, v2, c, m1, m2), True)
    assert not status.any()
    # relative to each entry, with a floor of 1e-3 of the largest of its kind
    scale = np.abs(ref) + 1e-3 * np.abs(ref).max(axis=0) + 1e-300
    assert np.max(np.abs(got - ref) / scale) <= 2e-12


def test_gradient_finite_differences():
    x = np.array([0.9, 1.7, -0.4, 0.35, -0.8])
    out = orthant.abrelu_pair(0.1, 0.9, -1.0, 2.0, *x, True)
    for k in range(5):
        h = 1e-6
        xp, xm = x.copy(), x.copy()
        xp[k] += h
        xm[k] -= h
        p = orthant.abrelu_pair(0.1, 0.9, -1.0, 2.0, *xp, False)
        m = orthant.abrelu_pair(0.1, 0.9, -1.0, 2.0, *xm, False)
        assert out[k + 1] == pytest.approx((p[0] - m[0]) / (2 * h), rel=1e-7, abs=1e-9)


PL = [nt.Relu(), nt.Sign(), nt.RectifiedMonomial(0), nt.LeakyRelu(0.2), nt.Identity(), nt.Abs(),
      nt.Polynomial((0.3, -1.2))]


@pytest.mark.parametrize("i", range(len(PL)))
def test_piecewise_linear_basis_against_quadrature(i):
    """Every pair of piecewise-linear / step activations (value and five derivatives)
    through the basis moments, against the quadrature route."""
    from analytic_ntk import gaussian_means as gm

    rng = np.random.default_rng(100 + i)
    n = 6
    for psi in PL:
        ca = orthant.pl_coefficients(*gm.spec(PL[i]))
        cb = orthant.pl_coefficients(*gm.spec(psi))
        v1, v2 = rng.uniform(0.1, 2.0, (2, n))
        c = rng.uniform(-0.95, 0.95, n) * np.sqrt(v1 * v2)
        m1, m2 = rng.uniform(-2.5, 2.5, (2, n))
        got = np.empty((6, n))
        orthant.pl_pairs(ca, cb, v1, v2, c, m1, m2, True, got)
        ref, status = by_quadrature(PL[i], psi, (v1, v2, c, m1, m2), True)
        assert not status.any()
        ref = ref.T
        scale = np.abs(ref) + 1e-3 * np.abs(ref).max(axis=1, keepdims=True) + 1e-300
        assert np.max(np.abs(got - ref) / scale) <= 1e-11, (PL[i], psi)
