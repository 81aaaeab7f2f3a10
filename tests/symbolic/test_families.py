"""Closed-form duals as SymPy expressions (:mod:`analytic_ntk.symbolic.families`):
Price's theorem for every family, the factor re-derived from ``phi'``, Mehler against
Isserlis for polynomials, and the expressions against ``duals.evaluate``."""

from __future__ import annotations

import random

import mpmath
import pytest
import sympy as sp

from analytic_ntk import duals, layers
from analytic_ntk.symbolic import families as fam

FAMILIES = fam.closed_families(max_order=3, poly_degree=4)
IDS = [f.name for f in FAMILIES]


@pytest.mark.parametrize("f", FAMILIES, ids=IDS)
def test_price_symbolic(f):
    """simplify(dF/dq12 - factor) == 0 (Sign and the step: dF/dq12 = E[phi' phi'] with
    point masses; their library factor is 0)."""
    r = fam.price_check(f)
    assert r.ok and r.method == "symbolic", r


@pytest.mark.parametrize("name", ["erf", "gelu", "gaussian", "sign"])
def test_price_numerical_fallback(name):
    """The 50-digit fallback also confirms the identity (and would catch a wrong factor)."""
    f = fam.family(name)
    r = fam.price_check(f, symbolic=False, npoints=3)
    assert r.ok and r.method == "numerical" and r.max_rel_err < 1e-40, r
    wrong = fam.numeric_identity(f, sp.diff(f.dual, fam.Q12), f.target * 1.001, npoints=2)
    assert wrong > 1e-4


def test_sign_and_step_library_factor_is_zero():
    for name in ("sign", "rectmono0"):
        f = fam.family(name)
        assert f.factor == 0 and f.price_target is not None


@pytest.mark.parametrize("f", [f for f in FAMILIES if f.derivative_dual is not None],
                         ids=[f.name for f in FAMILIES if f.derivative_dual is not None])
def test_factor_is_dual_of_derivative(f):
    """The factor equals the dual of phi' taken from its own closed family."""
    assert fam.derivative_dual_check(f) is True


@pytest.mark.parametrize("name", ["polynomial4", "monomial0", "monomial3", "monomial4"])
def test_mehler_equals_isserlis(name):
    f = fam.family(name)
    assert sp.expand(fam.moment_dual(f.phi) - sp.expand(f.dual)) == 0


@pytest.mark.parametrize("f", FAMILIES, ids=IDS)
def test_against_library(f):
    """F and the factor against duals.evaluate at random points, relative 1e-12."""
    rng = random.Random(7)
    ff = fam.lambdify_mp(f.dual, f.params)
    fg = fam.lambdify_mp(f.factor, f.params)
    for _ in range(6):
        q1, q2, q12, vals = fam.random_point(f, rng)
        got_f, got_g = duals.evaluate(f.layer(vals), q1, q2, q12)
        with mpmath.workdps(30):
            args = [mpmath.mpf(v) for v in (q1, q2, q12, *vals)]
            ref_f, ref_g = ff(*args), fg(*args)
        assert abs(got_f - ref_f) <= 1e-12 * abs(ref_f) + 1e-300, (vals, q1, q2, q12)
        assert abs(got_g - ref_g) <= 1e-12 * abs(ref_g) + 1e-300, (vals, q1, q2, q12)


@pytest.mark.parametrize("f", FAMILIES, ids=IDS)
def test_diag_derivative(f):
    """dF/dq1 (simplified) against a central difference of F at one point (40 digits)."""
    rng = random.Random(3)
    q1, q2, q12, vals = fam.random_point(f, rng)
    d = fam.lambdify_mp(fam.diag_derivative(f, 1), f.params)
    ff = fam.lambdify_mp(f.dual, f.params)
    with mpmath.workdps(40):
        args = [mpmath.mpf(v) for v in (q1, q2, q12, *vals)]
        h = mpmath.mpf("1e-15")
        fd = (ff(args[0] + h, *args[1:]) - ff(args[0] - h, *args[1:])) / (2 * h)
        assert abs(fd - d(*args)) <= mpmath.mpf("1e-20") * max(1, abs(fd))


@pytest.mark.parametrize(
    "layer",
    [
        layers.Relu(), layers.LeakyRelu(0.2), layers.Abs(), layers.ABRelu(0.3, -1.1),
        layers.Sign(), layers.RectifiedMonomial(2), layers.Erf(1.2, 0.4, -0.3),
        layers.Sin(0.7, 1.3, 0.2), layers.Cos(0.7, 1.3, 0.2), layers.Rbf(0.8), layers.Gelu(),
        layers.Polynomial((0.1, -0.5, 0.3)), layers.Monomial(3), layers.Exp(0.9, -0.4),
        layers.Gaussian(1.1, -0.6), layers.Identity(),
    ],
    ids=repr,
)
def test_family_of_layer(layer):
    """family_of maps every closed layer to its family; F agrees with duals.evaluate."""
    f, vals = fam.family_of(layer)
    q1, q2, q12 = 0.8, 1.7, -0.6
    got_f, got_g = duals.evaluate(layer, q1, q2, q12)
    with mpmath.workdps(30):
        args = [mpmath.mpf(v) for v in (q1, q2, q12, *vals)]
        ref_f = fam.lambdify_mp(f.dual, f.params)(*args)
        ref_g = fam.lambdify_mp(f.factor, f.params)(*args)
    assert abs(got_f - ref_f) <= 1e-12 * abs(ref_f)
    assert abs(got_g - ref_g) <= 1e-12 * abs(ref_g) + 1e-300


def test_unknown_family():
    with pytest.raises(KeyError):
        fam.family("tanh")
