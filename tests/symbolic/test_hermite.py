"""Hermite coefficients (:mod:`analytic_ntk.symbolic.hermite`): exact rules, the numerical
fallback, and the unit-sphere dual ``sum_k a_k^2 c^k`` against the library's closed forms."""

from __future__ import annotations

import mpmath
import pytest
import sympy as sp

from analytic_ntk.symbolic import families as fam
from analytic_ntk.symbolic import hermite as herm
from derivations import hermite as script

X = fam.X
b = sp.Symbol("b", real=True)


@pytest.mark.parametrize(
    "expr, value",
    [
        (X**4, 3),
        (X**3, 0),
        (sp.exp(b * X), sp.exp(b**2 / 2)),
        (sp.cos(b * X), sp.exp(-(b**2) / 2)),
        (X * sp.sin(b * X), b * sp.exp(-(b**2) / 2)),
        (X**2 * sp.exp(-(X**2)), 1 / sp.sqrt(27)),
        (X * sp.erf(X), 2 / sp.sqrt(3 * sp.pi)),  # Stein: E[z f] = E[f']
        (X * fam.NormalCDF(X), 1 / (2 * sp.sqrt(sp.pi))),
    ],
)
def test_gaussian_expectation(expr, value):
    got = herm.gaussian_expectation(expr)
    assert got is not None and sp.simplify(got - value) == 0


def test_gaussian_expectation_unsupported():
    assert herm.gaussian_expectation(sp.tanh(X) * X) is None


@pytest.mark.parametrize("name, values", script.CASES, ids=[f"{n}{v}" for n, v in script.CASES])
def test_unit_sphere_dual(name, values):
    """sum_k a_k^2 c^k equals duals.evaluate(layer, 1, 1, c) and the SymPy dual for
    |c| <= 0.25 (fewer terms than the script: 30 for kinked, 20 for smooth families);
    exact coefficients equal mpmath quadrature for k <= 1 (the script: k <= 6)."""
    kmax = script.n_terms(name, 20, 30)
    r = script.check_family(name, values, kmax, cs=(-0.25, 0.25), kquad=1)
    assert set(r["coefs"].methods) == {"symbolic"}
    assert r["library"] < 1e-13 and r["sympy"] < 1e-13, r
    assert r["quad"] < 1e-30


@pytest.mark.parametrize("name, values", [("polynomial3", (0.5, -1.0, 0.25, 0.5)),
                                          ("monomial4", ())])
def test_polynomial_identity(name, values):
    assert script.polynomial_identity(name, values)


def test_symbolic_parameters():
    """Closed forms with symbolic parameters: Exp, Sin, Erf (a_1), ABRelu (a_1)."""
    a, bb, c = sp.symbols("a b c", real=True)
    co = herm.coefficients(fam.family("exp").phi, 3, allow_numeric=False).values
    for k in range(4):
        assert sp.simplify(co[k] - a * bb**k * sp.exp(bb**2 / 2) / sp.sqrt(sp.factorial(k))) == 0
    co = herm.coefficients(fam.family("sin").phi, 3, allow_numeric=False).values
    for k in range(4):
        ref = a * bb**k * sp.exp(-(bb**2) / 2) * sp.sin(c + k * sp.pi / 2)
        assert sp.simplify(co[k] - ref / sp.sqrt(sp.factorial(k))) == 0
    co = herm.coefficients(fam.family("erf").phi, 1, allow_numeric=False).values
    assert sp.simplify(co[0] - c) == 0
    assert sp.simplify(co[1] - 2 * a * bb / sp.sqrt(sp.pi * (1 + 2 * bb**2))) == 0
    co = herm.coefficients(fam.family("abrelu").phi, 1, allow_numeric=False).values
    assert sp.simplify(co[1] - (a + bb) / 2) == 0


def test_numeric_fallback():
    """tanh has no exact rule: odd-k coefficients by quadrature, even ones 0 by symmetry."""
    co = herm.coefficients(sp.tanh(X), 3)
    assert co.methods == ("symbolic", "numerical", "symbolic", "numerical")
    ref = herm.coefficients_numeric(sp.tanh(X), 3)
    with mpmath.workdps(40):
        for got, want in zip(co.numeric(), ref):
            assert abs(got - want) < mpmath.mpf("1e-35")
    with pytest.raises(ValueError):
        herm.coefficients(sp.tanh(X), 1, allow_numeric=False)


def test_kinked_non_polynomial_piece():
    """relu(x) exp(x/3): half-line integrals with erfc, exact; against quadrature."""
    phi = sp.Max(X, 0) * sp.exp(X / 3)
    co = herm.coefficients(phi, 3)
    assert set(co.methods) == {"symbolic"}
    ref = herm.coefficients_numeric(phi, 3)
    with mpmath.workdps(40):
        for got, want in zip(co.numeric(), ref):
            assert abs(got - want) < mpmath.mpf("1e-30")


def test_hermite_normalised_orthonormal():
    """E[h_j h_k] = delta_jk by the standard normal moments E[z^m] = (m-1)!! (m even)."""
    for j in range(5):
        for k in range(5):
            prod = sp.Poly(sp.expand(herm.hermite_normalised(j) * herm.hermite_normalised(k)), X)
            val = sum(
                cf * sp.factorial2(m - 1)
                for (m,), cf in zip(prod.monoms(), prod.coeffs())
                if m % 2 == 0
            )
            assert sp.simplify(val - (1 if j == k else 0)) == 0
