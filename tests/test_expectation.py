"""``bivariate_expectation``: E[phi(u) psi(v)] with means, two activations, gradients.

Independent checks:
1. mpmath at 20+ digits: the outer integral over ``z`` by tanh-sinh quadrature with the
   inner Gaussian mean of ``psi`` in closed form written here (not the library's).
2. The centred dual of :mod:`analytic_ntk.duals` for zero means and ``phi = psi``.
3. Central finite differences of the value for all five derivatives.
4. Price / Stein identities evaluated with the function itself, where the derivative of
   an activation is again an activation of the library (``relu' = step``, ``erf'`` a
   Gaussian, ``sin' = cos``, ``exp' = exp``, polynomials).
5. Properties (hypothesis): the exchange symmetry and the Cauchy-Schwarz bound.
"""

from __future__ import annotations

import functools
import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import analytic_ntk as nt
from analytic_ntk import bivariate_expectation as be
from analytic_ntk import duals
from analytic_ntk.testing import gaussian_pairs

TANH = nt.Activation("tanh(x)")

ACTS = {
    "relu": nt.Relu(), "leaky": nt.LeakyRelu(0.1), "abs": nt.Abs(), "sign": nt.Sign(),
    "erf": nt.Erf(), "sin": nt.Sin(b=1.3, c=0.4), "gelu": nt.Gelu(), "exp": nt.Exp(1.0, 0.5),
    "poly": nt.Polynomial((0.1, 1.0, 0.3)), "rm2": nt.RectifiedMonomial(2),
    "gauss": nt.Gaussian(1.0, -0.5), "tanh": TANH,
}

# ------------------------------------------------------------------ mpmath reference

_MP_OUTER = {
    "relu": (lambda x: max(x, 0), [0]),
    "leaky": (lambda x: x if x > 0 else mp.mpf("0.1") * x, [0]),
    "abs": (lambda x: abs(x), [0]),
    "sign": (lambda x: mp.sign(x), [0]),
    "erf": (lambda x: mp.erf(x), []),
    "sin": (lambda x: mp.sin(mp.mpf("1.3") * x + mp.mpf("0.4")), []),
    "gelu": (lambda x: x * mp.ncdf(x), []),
    "exp": (lambda x: mp.exp(x / 2), []),
    "poly": (lambda x: mp.mpf("0.1") + x + mp.mpf("0.3") * x * x, []),
    "rm2": (lambda x: max(x, 0) ** 2, [0]),
    "gauss": (lambda x: mp.exp(-x * x / 2), []),
    "tanh": (lambda x: mp.tanh(x), []),
}


def _mp_inner(name, mu, t):
    """E[psi(mu + t xi)] in closed form (mpmath)."""
    if name == "relu":
        return max(mu, 0) if t == 0 else mu * mp.ncdf(mu / t) + t * mp.npdf(mu / t)
    if name == "sign":
        return mp.sign(mu) if t == 0 else mp.erf(mu / (t * mp.sqrt(2)))
    if name == "erf":
        return mp.erf(mu / mp.sqrt(1 + 2 * t * t))
    if name == "sin":
        b, c = mp.mpf("1.3"), mp.mpf("0.4")
        return mp.exp(-b * b * t * t / 2) * mp.sin(b * mu + c)
    if name == "gauss":
        return mp.exp(-mu * mu / (2 * (1 + t * t))) / mp.sqrt(1 + t * t)
    if name == "poly":
        return mp.mpf("0.1") + mu + mp.mpf("0.3") * (mu * mu + t * t)
    if name == "exp":
        return mp.exp(mu / 2 + t * t / 8)
    raise KeyError(name)


_INNER_KINKS = {"relu": [0], "sign": [0], "erf": [], "sin": [], "gauss": [], "poly": [],
                "exp": []}


@functools.cache
def mp_reference(outer, inner, v1, v2, c, m1, m2, dps=20):
    """``(E[phi psi], E|phi psi|)`` by tanh-sinh over ``z`` split at the kinks."""
    with mp.workdps(dps):
        v1, v2, c, m1, m2 = (mp.mpf(x) for x in (v1, v2, c, m1, m2))
        f, kinks = _MP_OUTER[outer]
        s1 = mp.sqrt(v1)
        if s1 == 0:
            v = f(m1) * _mp_inner(inner, m2, mp.sqrt(v2))
            return float(v), float(abs(v))
        beta = c / s1
        t = mp.sqrt(max(v2 - beta * beta, 0))
        pts = {(k - m1) / s1 for k in kinks}
        if beta != 0:
            for k in _INNER_KINKS[inner]:
                z0, w = (k - m2) / beta, t / abs(beta)
                pts |= {z0 + f * w for f in (-12, -4, -1, 0, 1, 4, 12)}
        grid = sorted({-40, -20, -10, -6, -3, -1.5, 0, 1.5, 3, 6, 10, 20, 40}
                      | {p for p in pts if -40 < p < 40})

        def g(z):
            return mp.npdf(z) * f(m1 + s1 * z) * _mp_inner(inner, m2 + beta * z, t)

        return float(mp.quad(g, grid)), float(mp.quad(lambda z: abs(g(z)), grid))


# (var1, var2, correlation, mean1, mean2)
CASES = {
    "generic": (1.0, 2.0, 0.3, 0.5, -0.4),
    "negative": (0.7, 1.3, -0.7, -1.0, 2.0),
    "near1": (1.0, 1.0, 0.999999, 0.2, 0.1),
    "1-1e-12": (2.0, 0.5, 1 - 1e-12, -0.3, 0.6),
    "rho=1": (1.0, 1.0, 1.0, 0.3, -0.5),
    "rho=-1": (1.0, 1.0, -1.0, 1.0, 1.0),
    "var2=0": (1.0, 0.0, 0.0, 0.4, 0.7),
    "var1=0": (0.0, 1.5, 0.0, 0.8, -0.2),
    "3sd": (1.0, 1.0, 0.5, -3.0, 3.0),
}
MP_PAIRS = [
    ("relu", "relu", "generic"), ("relu", "relu", "1-1e-12"), ("relu", "relu", "rho=1"),
    ("relu", "relu", "3sd"), ("sign", "relu", "near1"), ("sign", "sign", "rho=-1"),
    ("leaky", "sign", "negative"), ("abs", "erf", "1-1e-12"), ("erf", "sin", "generic"),
    ("gelu", "relu", "3sd"), ("sin", "sign", "var1=0"), ("exp", "erf", "negative"),
    ("poly", "relu", "near1"), ("rm2", "relu", "rho=-1"), ("gauss", "sin", "var2=0"),
    ("tanh", "relu", "generic"), ("tanh", "sign", "1-1e-12"), ("tanh", "erf", "rho=1"),
    # probit (Erf as a step of an auxiliary Gaussian), tilt and Gaussian-moment routes
    ("erf", "erf", "3sd"), ("erf", "erf", "1-1e-12"), ("erf", "relu", "negative"),
    ("sign", "erf", "rho=-1"), ("gauss", "erf", "generic"), ("rm2", "gauss", "3sd"),
    ("gelu", "exp", "near1"), ("relu", "gauss", "rho=1"), ("poly", "sin", "negative"),
    ("gauss", "poly", "1-1e-12"), ("gauss", "gauss", "3sd"), ("poly", "exp", "var1=0"),
]


def _args(case):
    v1, v2, r, m1, m2 = CASES[case]
    return v1, v2, r * math.sqrt(v1 * v2), m1, m2


@pytest.mark.parametrize("outer, inner, case", MP_PAIRS)
def test_against_mpmath(outer, inner, case):
    """Closed-form inner means and the quadrature pairs (tanh) to 1e-12 of the result or
    of 1e-3 E|phi psi| (values that cancel to near zero)."""
    args = _args(case)
    ref, scale = mp_reference(outer, inner, *args)
    got = be(ACTS[outer], ACTS[inner], *args)
    assert isinstance(got, float)
    err = abs(got - ref) / max(abs(ref), 1e-3 * scale, 1e-300)
    assert err <= 1e-12, (got, ref, err)
    # and with the roles exchanged (the other ordering of the quadrature)
    v1, v2, c, m1, m2 = args
    swapped = be(ACTS[inner], ACTS[outer], v2, v1, c, m2, m1)
    assert abs(swapped - ref) / max(abs(ref), 1e-3 * scale, 1e-300) <= 1e-12


@pytest.mark.parametrize("m", [-8.0, 5.0])
def test_tails(m):
    """Means up to 8 standard deviations: relative accuracy 1e-8 (issue 10) of tiny
    values (``E[relu(u) relu(v)]`` at 8 sd below is about 1e-16)."""
    for outer, inner in (("relu", "relu"), ("tanh", "relu"), ("erf", "sign")):
        args = (1.0, 1.0, 0.6, m, 0.5 * m)
        ref, _ = mp_reference(outer, inner, *args, dps=25)
        got = be(ACTS[outer], ACTS[inner], *args)
        assert abs(got - ref) <= 1e-8 * abs(ref), (outer, inner, got, ref)


# ------------------------------------------------------------------ the centred dual


@pytest.mark.parametrize("name", ["relu", "leaky", "sign", "erf", "sin", "gelu", "exp",
                                  "poly", "rm2", "gauss"])
def test_centred_equal_is_the_dual(name):
    act = ACTS[name]
    rng = np.random.default_rng(1)
    v1 = rng.uniform(0.1, 2.0, 20)
    v2 = rng.uniform(0.1, 2.0, 20)
    c = rng.uniform(-1, 1, 20) * np.sqrt(v1 * v2)
    c[:2] = np.sqrt(v1[:2] * v2[:2]) * np.array([1.0, -1.0])
    f, g = duals.evaluate(act, v1, v2, c)
    np.testing.assert_array_equal(be(act, act, v1, v2, c), f)
    value, grads = be(act, act, v1, v2, c, grad=True)
    np.testing.assert_array_equal(value, f)
    if name != "sign":  # the dual's factor is stax's (0 for sign), not d/dcov
        np.testing.assert_array_equal(grads[2], g)
    # the quadrature route agrees with the dual
    q = be(act, act, v1, v2, c, 1e-300, 0.0)
    np.testing.assert_allclose(q, f, rtol=1e-13, atol=1e-15 * np.max(np.abs(f)))


# ------------------------------------------------------------------ gradients


def _fd(phi, psi, x, k, h=1e-5):
    xp, xm = list(x), list(x)
    xp[k] += h
    xm[k] -= h
    return (be(phi, psi, *xp) - be(phi, psi, *xm)) / (2 * h)


@pytest.mark.parametrize("outer", ["relu", "sign", "erf", "gelu", "exp", "rm2", "tanh",
                                   "gauss", "poly"])
@pytest.mark.parametrize("inner", ["relu", "sign", "sin", "tanh", "erf"])
def test_gradients_against_finite_differences(outer, inner):
    x = (1.0, 2.0, 0.5, 0.3, -0.2)
    _, grads = be(ACTS[outer], ACTS[inner], *x, grad=True)
    for k in range(5):
        fd = _fd(ACTS[outer], ACTS[inner], x, k)
        assert abs(grads[k] - fd) <= 1e-6 * max(1.0, abs(fd)), (k, grads[k], fd)


def _derivative(name):
    """The derivative of an activation as an activation of the library."""
    a = ACTS[name]
    if name == "relu":
        return nt.RectifiedMonomial(0)
    if name == "erf":
        return nt.Gaussian(2.0 / math.sqrt(math.pi), -1.0)
    if name == "sin":
        return nt.Sin(a.a * a.b, a.b, a.c + math.pi / 2)
    if name == "exp":
        return nt.Exp(a.a * a.b, a.b)
    if name == "poly":
        return nt.Polynomial((1.0, 0.6))
    raise KeyError(name)


@pytest.mark.parametrize("phi_name, psi_name", [("relu", "erf"), ("sin", "exp"),
                                                ("poly", "relu"), ("erf", "sin")])
def test_price_stein_identities(phi_name, psi_name):
    """d/dcov = E[phi' psi'], d/dmean = E[phi' psi], d/dvar1 = E[phi'' psi] / 2, each
    evaluated with the function itself."""
    phi, psi = ACTS[phi_name], ACTS[psi_name]
    dphi, dpsi = _derivative(phi_name), _derivative(psi_name)
    x = (0.8, 1.4, -0.6, 0.4, -0.3)
    _, (dv1, dv2, dc, dm1, dm2) = be(phi, psi, *x, grad=True)
    tol = 1e-10
    assert dc == pytest.approx(be(dphi, dpsi, *x), rel=tol, abs=tol)
    assert dm1 == pytest.approx(be(dphi, psi, *x), rel=tol, abs=tol)
    assert dm2 == pytest.approx(be(phi, dpsi, *x), rel=tol, abs=tol)
    if phi_name in ("sin", "exp", "poly"):
        ddphi = {"sin": nt.Sin(-phi.a * phi.b**2, phi.b, phi.c) if phi_name == "sin" else None,
                 "exp": nt.Exp(phi.a * phi.b**2, phi.b) if phi_name == "exp" else None,
                 "poly": nt.Polynomial((0.6,))}[phi_name]
        assert dv1 == pytest.approx(0.5 * be(ddphi, psi, *x), rel=tol, abs=tol)


def test_jump_at_full_correlation_raises():
    with pytest.raises(ValueError, match="jump"):
        be(nt.Relu(), nt.Sign(), 1.0, 1.0, 1.0, 0.2, 0.1, grad=True)
    # the value itself is fine
    ref, _ = mp_reference("relu", "sign", 1.0, 1.0, 1.0, 0.2, 0.1)
    assert be(nt.Relu(), nt.Sign(), 1.0, 1.0, 1.0, 0.2, 0.1) == pytest.approx(ref, rel=1e-12)


# ------------------------------------------------------------------ properties


PAIR_ACTS = [ACTS[k] for k in ("relu", "sign", "erf", "sin", "gelu", "leaky", "poly")]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PAIR_ACTS), st.sampled_from(PAIR_ACTS), gaussian_pairs())
def test_symmetry_and_cauchy_schwarz(phi, psi, pair):
    v1, v2, c, m1, m2 = pair
    e = be(phi, psi, v1, v2, c, m1, m2)
    assert np.isfinite(e)
    assert e == pytest.approx(be(psi, phi, v2, v1, c, m2, m1), rel=1e-12, abs=1e-14)
    p2 = be(phi, phi, v1, v1, v1, m1, m1)
    q2 = be(psi, psi, v2, v2, v2, m2, m2)
    assert abs(e) <= math.sqrt(p2 * q2) * (1 + 1e-12) + 1e-15


# ------------------------------------------------------------------ API


def test_broadcasting_and_types():
    v = be(nt.Relu(), nt.Erf(), np.ones((3, 1)), 2.0, 0.5, np.linspace(-1, 1, 4))
    assert v.shape == (3, 4) and v.dtype == np.float64
    value, grads = be(nt.Relu(), nt.Erf(), np.ones(2), 2.0, 0.5, grad=True)
    assert value.shape == (2,) and len(grads) == 5 and all(g.shape == (2,) for g in grads)
    assert isinstance(be(nt.Relu(), nt.Relu(), 1.0, 1.0, 0.5), float)


@pytest.mark.parametrize("args, match", [
    ((1.0, 1.0, 0.5, math.nan), "mean1"),
    ((-1.0, 1.0, 0.0), "non-negative"),
    ((1.0, 1.0, 1.1), "covariance"),
    ((1.0, np.inf, 0.0), "var2"),
    ((np.ones(2), np.ones(3), 0.0), "broadcast"),
])
def test_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        be(nt.Relu(), nt.Erf(), *args)


def test_bad_activation_and_divergence():
    with pytest.raises(ValueError, match="phi"):
        be(nt.Dense(), nt.Relu(), 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="diverges"):
        be(nt.Gaussian(1.0, 0.5), nt.Relu(), 1.5, 1.0, 0.0)


@pytest.mark.parametrize("rho, m1, m2", [(0.3, 20.0, -50.0), (-0.6, -10.0, 5.0),
                                         (0.999, 3.0, 1.0), (0.0, 0.0, 0.0)])
def test_near_step_against_probit_closed_form(rho, m1, m2):
    """erf of pre-activations with standard deviation 100 (near-steps, as in a
    teacher-student run with inputs 100 N(0, I)): the adaptive outer quadrature against
    the probit identity ``E[Phi(a u) Phi(b v)] = Phi2(a m1 / sqrt(1 + a^2 C11), b m2 /
    sqrt(1 + b^2 C22); a b C12 / sqrt((1 + a^2 C11)(1 + b^2 C22)))`` with ``erf(t) =
    2 Phi(sqrt(2) t) - 1``, evaluated with the independently tested bvn_cdf."""
    from analytic_ntk.bvn import bvn_cdf, norm_cdf

    v1, v2 = 1e4, 2.5e3
    c = rho * math.sqrt(v1 * v2)
    a = math.sqrt(2.0)
    d1, d2 = math.sqrt(1 + a * a * v1), math.sqrt(1 + a * a * v2)
    e_pp = bvn_cdf(a * m1 / d1, a * m2 / d2, a * a * c / (d1 * d2))
    ref = 4 * e_pp - 2 * norm_cdf(a * m1 / d1) - 2 * norm_cdf(a * m2 / d2) + 1
    got = be(nt.Erf(), nt.Erf(), v1, v2, c, m1, m2)
    assert abs(got - ref) <= 1e-8 * abs(ref) + 1e-15, (got, ref)
    # the generic route (numerical erf, quadrature inner) as well
    num = nt.Erf().numerical()
    got2 = be(num, num, v1, v2, c, m1, m2)
    assert abs(got2 - ref) <= 1e-8 * abs(ref) + 1e-15, (got2, ref)


def test_correlation_one_up_to_rounding():
    """``w w'`` against ``|w|^2 |w'|^2`` for one-dimensional weights: |correlation| = 1 up
    to the rounding of ``c^2`` (here ``v1 v2 - c^2 = +2e-18``).  The quadrature once ran
    out of panels resolving the resulting 1e-9-wide near-Dirac ``G''``; the gradients now
    exist and agree with exact correlation 1 and with finite differences in the means."""
    v1, v2, c = 0.01580808849619356, 1.7004161176994, 0.16395221398000698
    m1, m2 = -0.5685494541476426, -0.013914668524093734
    relu = nt.Relu()
    val, grads = be(relu, relu, v1, v2, c, m1, m2, grad=True)
    exact = be(relu, relu, v1, v2, math.sqrt(v1 * v2), m1, m2)
    assert val == pytest.approx(exact, rel=1e-12)
    h = 1e-6
    fd1 = (be(relu, relu, v1, v2, c, m1 + h, m2) - be(relu, relu, v1, v2, c, m1 - h, m2)) / (2 * h)
    fd2 = (be(relu, relu, v1, v2, c, m1, m2 + h) - be(relu, relu, v1, v2, c, m1, m2 - h)) / (2 * h)
    assert grads[3] == pytest.approx(fd1, rel=1e-6)
    assert grads[4] == pytest.approx(fd2, rel=1e-6)
