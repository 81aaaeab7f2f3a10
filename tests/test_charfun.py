"""Exponential-type pairs (Sin, Cos, Rbf, Exp) by the moment generating function
(:mod:`analytic_ntk.charfun`) against the quadrature route and exact degenerate cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

import analytic_ntk as nt
from analytic_ntk.expectation import bivariate_expectation as be
from analytic_ntk.expectation import by_quadrature

ACTS = [nt.Sin(1.1, 1.3, 0.4), nt.Cos(0.7, 0.5, -0.2), nt.Exp(0.8, 0.6), nt.Rbf(0.7)]


@pytest.mark.parametrize("i", range(4))
@pytest.mark.parametrize("j", range(4))
def test_against_quadrature(i, j):
    rng = np.random.default_rng(4 * i + j)
    v1, v2 = rng.uniform(0.1, 2.0, (2, 6))
    c = rng.uniform(-1, 1, 6) * np.sqrt(v1 * v2)
    m1, m2 = rng.uniform(-2, 2, (2, 6))
    val, g = be(ACTS[i], ACTS[j], v1, v2, c, m1, m2, grad=True)
    ref, _ = by_quadrature(ACTS[i], ACTS[j], (v1, v2, c, m1, m2), True)
    got = np.vstack([val, *g]).T
    scale = np.abs(ref) + 1e-3 * np.abs(ref).max(axis=0)
    assert np.max(np.abs(got - ref) / scale) <= 1e-12


def test_degenerate_cases_exact():
    s, e = ACTS[0], ACTS[2]
    # zero variance: the pointwise value times the other's mean
    m1, m2, v2 = 0.3, -0.4, 0.9
    want = s.fn(m1) * 0.8 * math.exp(0.6 * m2 + 0.5 * 0.36 * v2)
    assert be(s, e, 0.0, v2, 0.0, m1, m2) == pytest.approx(float(want), rel=1e-14)
    # correlation one: v = u, E[sin(1.3 u + 0.4) 0.8 exp(0.6 u)] by the complex MGF
    k = 1.3j + 0.6
    mgf = np.exp(k * m1 + 0.5 * k * k * 1.0)
    want = 1.1 * 0.8 * (np.exp(0.4j) * mgf).imag
    assert be(s, e, 1.0, 1.0, 1.0, m1, m1) == pytest.approx(float(want), rel=1e-13)
