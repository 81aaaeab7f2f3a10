"""Closed forms of ``bivariate_expectation`` beyond the orthant: polynomial x
exponential-quadratic pairs (tilt + Gaussian moments), ``Exp``/``Gaussian`` against every
closed family (one-sided tilt), ``Erf`` through the probit form, and the covariance form
of step pairs.

Independent references: the adaptive quadrature route of :mod:`analytic_ntk.expectation`
(a different method: closed inner mean, outer Gauss-Legendre panels), mpmath integrals,
and the SymPy derivation (``derivations/gaussian_integrals.py``).
"""

from __future__ import annotations

import itertools
import math

import mpmath as mp
import numpy as np
import pytest

import analytic_ntk as nt
from analytic_ntk import expectation as ex
from analytic_ntk import gaussian_means as gm
from analytic_ntk.orthant import step_covariance

ACTS = {
    "relu": nt.Relu(), "leaky": nt.LeakyRelu(0.2), "sign": nt.Sign(),
    "step": nt.RectifiedMonomial(0), "rm2": nt.RectifiedMonomial(2), "gelu": nt.Gelu(),
    "erf": nt.Erf(1.3, 0.7, 0.2), "erf1": nt.Erf(), "sin": nt.Sin(1.0, 1.3, 0.4),
    "cos": nt.Cos(0.5, 0.8, 0.1), "rbf": nt.Rbf(0.7), "exp": nt.Exp(1.0, 0.5),
    "cubic": nt.Polynomial((0.2, -0.5, 0.1, 0.3)), "id": nt.Identity(),
    "mono4": nt.Monomial(4), "gauss": nt.Gaussian(1.0, -0.5), "gauss2": nt.Gaussian(0.7, -1.3),
}
QE = ("sin", "cos", "rbf", "exp", "cubic", "id", "mono4", "gauss", "gauss2")
TILT = ("exp", "gauss", "gauss2")
CLOSED_1D = ("relu", "leaky", "sign", "step", "rm2", "gelu", "erf", "erf1")
PROBIT = ("erf", "erf1")
PL = ("relu", "leaky", "sign", "step", "id")

PAIRS = sorted(
    {(a, b) for a in QE for b in QE}
    | {p for a in TILT for b in CLOSED_1D for p in ((a, b), (b, a))}
    | {p for a in PROBIT for b in PL + PROBIT for p in ((a, b), (b, a))}
)


def _entries(n=12, seed=0):
    rng = np.random.default_rng(seed)
    v1 = rng.uniform(0.1, 2.5, n)
    v2 = rng.uniform(0.1, 2.5, n)
    rho = rng.uniform(-0.99, 0.99, n)
    rho[:3] = [0.999999, -0.5, 1e-4]
    m1 = rng.uniform(-3, 3, n) * np.sqrt(v1)
    m2 = rng.uniform(-3, 3, n) * np.sqrt(v2)
    return [v1, v2, rho * np.sqrt(v1 * v2), m1, m2]


@pytest.mark.parametrize("a, b", PAIRS)
def test_closed_route_against_quadrature(a, b):
    """Each pair is computed in closed form for every entry (nothing is left for the
    quadrature), and agrees with the quadrature route: the value to 1e-12 and the five
    derivatives to 1e-9 (of the entry or of 1e-3 of the largest entry)."""
    phi, psi = ACTS[a], ACTS[b]
    flat = _entries(seed=len(a) + 7 * len(b))
    rest = ex._closed_forms(*gm.spec(phi), *gm.spec(psi), flat,
                            np.sqrt(flat[0] * flat[1]), np.empty((6, flat[0].size)))
    assert rest is not None and rest.size == 0
    val, grads = nt.bivariate_expectation(phi, psi, *flat, grad=True)
    ref, status = ex.by_quadrature(phi, psi, flat, True)
    assert np.all(status == 0)
    got = np.vstack([val, *grads])
    ref = ref.T
    scale = np.abs(ref) + 1e-3 * np.abs(ref).max(axis=1, keepdims=True) + 1e-300
    err = np.abs(got - ref) / scale
    assert err[0].max() <= 1e-12, err[0].max()
    assert err[1:].max() <= 1e-9, err[1:].max(axis=1)


@pytest.mark.parametrize("a, b", [("gauss", "sin"), ("exp", "rm2"), ("erf", "erf1"),
                                  ("cubic", "gauss2"), ("sign", "erf")])
def test_degenerate_covariances(a, b):
    """Zero variances and |correlation| = 1: the closed forms (no inverse of the
    covariance) against the quadrature route, which treats them exactly."""
    phi, psi = ACTS[a], ACTS[b]
    v1 = np.array([1.0, 0.7, 0.0, 1.3, 0.0])
    v2 = np.array([0.8, 1.1, 0.9, 0.0, 0.0])
    c = np.array([1.0, -1.0, 0.0, 0.0, 0.0]) * np.sqrt(v1 * v2)
    m1 = np.array([0.3, -0.6, 0.4, 1.1, -0.2])
    m2 = np.array([-0.5, 0.2, 0.9, -0.3, 0.5])
    val = nt.bivariate_expectation(phi, psi, v1, v2, c, m1, m2)
    ref, status = ex.by_quadrature(phi, psi, [v1, v2, c, m1, m2], False)
    assert np.all(status == 0)
    np.testing.assert_allclose(val, ref[:, 0], rtol=1e-12, atol=1e-15)


def _mp_step_covariance(h, k, r):
    """``Phi2(h, k; r) - Phi(h) Phi(k)``: Sheppard's integral in the angle, 30 digits."""
    with mp.workdps(25):
        h, k, r = mp.mpf(h), mp.mpf(k), mp.mpf(r)
        top = mp.asin(r)
        return mp.quad(lambda t: mp.exp(-(h * h + k * k - 2 * h * k * mp.sin(t))
                                         / (2 * mp.cos(t) ** 2)) / (2 * mp.pi),
                       mp.linspace(0, top, 12))


@pytest.mark.parametrize("r", [-0.999999, -0.9, -0.5, -1e-3, 1e-7, 0.3, 0.51, 0.99,
                               0.999999])
def test_step_covariance_against_mpmath(r):
    """``D = Phi2 - Phi Phi`` to 1e-13 relative for |h|, |k| <= 5 (both branches: the
    angle quadrature for |rho| <= 1/2 and the reflected orthant probability above)."""
    worst = 0.0
    for h, k in itertools.product((-5.0, -0.01, 0.3, 5.0), (-4.5, 1e-3, 1.0, 3.0)):
        ref = _mp_step_covariance(h, k, r)
        if ref == 0:
            continue
        worst = max(worst, float(abs((step_covariance(h, k, r) - ref) / ref)))
    assert worst <= 1e-13


def test_step_pairs_do_not_cancel():
    """Small means and correlations, where ``1 - 2 Phi - 2 Phi + 4 Phi2`` would cancel:
    ``E[sign(u) sign(v)]`` and ``E[erf(u) erf(v)]`` to 1e-13 relative, and the
    deterministic case equals ``erf(m)^2``."""
    m1, m2, r = 1e-3, -2e-3, 1e-4
    with mp.workdps(30):
        d = _mp_step_covariance(m1, m2, r)
        ref = mp.erf(mp.mpf(m1) / mp.sqrt(2)) * mp.erf(mp.mpf(m2) / mp.sqrt(2)) + 4 * d
    got = nt.bivariate_expectation(nt.Sign(), nt.Sign(), 1.0, 1.0, r, m1, m2)
    assert abs(got - ref) <= 1e-13 * abs(ref)
    # erf(u), u ~ N(m, v): the probit variable has variance 2 v + 1 and mean sqrt(2) m
    v, c = 0.5, 1e-4
    h = math.sqrt(2) * m1 / math.sqrt(2 * v + 1)
    k = math.sqrt(2) * m2 / math.sqrt(2 * v + 1)
    with mp.workdps(30):
        ref = (mp.erf(mp.mpf(h) / mp.sqrt(2)) * mp.erf(mp.mpf(k) / mp.sqrt(2))
               + 4 * _mp_step_covariance(h, k, 2 * c / (2 * v + 1)))
    got = nt.bivariate_expectation(nt.Erf(), nt.Erf(), v, v, c, m1, m2)
    assert abs(got - ref) <= 1e-13 * abs(ref)
    m = 0.00390625
    got = nt.bivariate_expectation(nt.Erf(), nt.Erf(), 0.0, 0.0, 0.0, m, m)
    assert got == pytest.approx(math.erf(m) ** 2, rel=1e-14)


def test_gaussian_times_gaussian_against_mpmath():
    """``E[exp(-u^2/2) exp(-1.3 v^2)]`` with means: the tilt against 30-digit quadrature,
    and the derivatives against central differences of the value."""
    g1, g2 = nt.Gaussian(1.0, -0.5), nt.Gaussian(1.0, -1.3)
    v1, v2, rho, m1, m2 = 1.2, 0.7, -0.6, 0.9, -1.4
    c = rho * math.sqrt(v1 * v2)
    with mp.workdps(30):
        s1 = mp.sqrt(v1)
        beta = mp.mpf(c) / s1
        t = mp.sqrt(v2 - beta**2)

        def inner(z):
            mu = m2 + beta * z
            return mp.exp(-1.3 * mu * mu / (1 + 2.6 * t * t)) / mp.sqrt(1 + 2.6 * t * t)

        ref = mp.quad(lambda z: mp.npdf(z) * mp.exp(-(m1 + s1 * z) ** 2 / 2) * inner(z),
                      [-mp.inf, 0, mp.inf])
    val, grads = nt.bivariate_expectation(g1, g2, v1, v2, c, m1, m2, grad=True)
    assert abs(val - ref) <= 1e-14 * abs(ref)
    args = [v1, v2, c, m1, m2]
    for i, g in enumerate(grads):
        h = 1e-5
        up, dn = list(args), list(args)
        up[i] += h
        dn[i] -= h
        fd = (nt.bivariate_expectation(g1, g2, *up) - nt.bivariate_expectation(g1, g2, *dn))
        assert fd / (2 * h) == pytest.approx(g, rel=1e-7, abs=1e-10)


def test_generated_tilt_is_current(tmp_path):
    """``_generated/gaussian_tilt.py`` is exactly what the SymPy derivation writes."""
    from derivations import gaussian_integrals

    out = tmp_path / "gaussian_tilt.py"
    gaussian_integrals.write(out)
    assert out.read_text() == gaussian_integrals.OUTPUT.read_text()


def test_derivation_checks():
    """The derivation's symbolic identities and its numerical checks (tilt against 2-D
    Gauss-Hermite, symbolic derivatives against the compiled Price / Stein forms)."""
    from derivations import gaussian_integrals as gd

    derived = gd.derive()
    assert all(r == 0 for r in gd.verify_symbolic(derived))
    assert gd.check_tilt_by_quadrature(derived, n=5) <= 1e-12
    assert gd.check_price_stein(derived, n=5) <= 1e-13


def test_divergent_gaussian_raises():
    with pytest.raises(ValueError, match="diverges"):
        nt.bivariate_expectation(nt.Gaussian(1.0, 0.6), nt.Exp(), 1.0, 1.0, 0.5)
