"""The high-precision reference for activations given as expressions
(:func:`analytic_ntk._reference.generic_dual`), against independent checks.

1. The closed-form reference duals of :func:`analytic_ntk._reference.dual` (60 digits),
   with each activation written as a SymPy expression instead (erf, ReLU as ``Max``,
   sin, sign, exact GELU): ~25 digits, for generic, near-duplicate (``1 - c = 1e-20``),
   near-antipodal and exactly (anti)collinear covariances.
2. Price's theorem ``dF/dq12 = G`` for tanh by :func:`mpmath.diff` (Richardson-extrapolated
   central differences).
3. :func:`~analytic_ntk._reference.dual` and
   :func:`~analytic_ntk._reference.reference` on layer objects that only *have* the
   attributes ``expr``, ``deriv_expr``, ``kinks`` (duck typing: a stand-in dataclass here,
   the library's expression-defined layer later).

The 2-D cases cost 1-15 s each in pure mpmath; the expensive ones are marked slow.
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import numpy as np
import pytest
import sympy

from analytic_ntk import Dense, Erf, Gelu, Network, Relu, Sign, Sin
from analytic_ntk import _reference as R

T = sympy.Symbol("t", real=True)
DPS = 28  # generic_dual's target; every comparison asks for 1e-25
TOL = mpmath.mpf("1e-25")


@dataclass(frozen=True)
class StandIn:
    """The attributes of an expression-defined activation layer, nothing else."""

    expr: object
    deriv_expr: object
    kinks: tuple = ()


def standin(expr, kinks=()):
    expr = sympy.sympify(expr, locals={"t": T})
    return StandIn(expr, sympy.diff(expr, T), tuple(kinks))


GELU_EXPR = T * (1 + sympy.erf(T / sympy.sqrt(2))) / 2
CASES = {
    "erf": (standin(sympy.erf(T)), Erf()),
    "relu": (standin(sympy.Max(T, 0), (0.0,)), Relu()),
    "sin": (standin(sympy.sin(T)), Sin()),
    "sign": (standin(sympy.sign(T), (0.0,)), Sign()),  # phi' = 2 DiracDelta -> 0, as Sign
    "gelu": (standin(GELU_EXPR), Gelu()),
}
Q1, Q2 = "1.3", "0.7"
# correlations c: exactly collinear (1-D integrals), generic, near-duplicate, near-antipodal
RHOS = {
    "+1": "1",
    "-1": "-1",
    "0.3": "0.3",
    "-0.7": "-0.7",
    "1-1e-20": ("1", "-1e-20"),
    "-1+1e-20": ("-1", "1e-20"),
}
FAST_2D = {("relu", "1-1e-20"), ("sin", "-0.7"), ("sign", "-1+1e-20")}


def _cov(rho):
    """``(q1, q2, q12)`` at 60 digits (the correlation ``1 - 1e-20`` formed exactly)."""
    with mpmath.workdps(60):
        q1, q2 = mpmath.mpf(Q1), mpmath.mpf(Q2)
        c = mpmath.mpf(rho[0]) + mpmath.mpf(rho[1]) if isinstance(rho, tuple) else mpmath.mpf(rho)
        return q1, q2, c * mpmath.sqrt(q1 * q2)


def _params():
    out = []
    for name in CASES:
        for rk in RHOS:
            # the 1-D cases (c = +-1) cost well under a second
            slow = rk not in ("+1", "-1") and (name, rk) not in FAST_2D
            marks = [pytest.mark.slow] if slow else []
            out.append(pytest.param(name, rk, marks=marks, id=f"{name}-c={rk}"))
    return out


@pytest.mark.parametrize("name, rho", _params())
def test_matches_closed_form(name, rho):
    layer, closed = CASES[name]
    q1, q2, q12 = _cov(RHOS[rho])
    with mpmath.workdps(60):
        f0, g0 = R.dual(closed, q1, q2, q12)
    fn, dfn = R.generic_callables(layer)
    f, g = R.generic_dual(fn, dfn, layer.kinks, q1, q2, q12, dps=DPS)
    with mpmath.workdps(60):
        assert abs(f - f0) <= TOL * max(abs(f0), 1), (f, f0)
        assert abs(g - g0) <= TOL * max(abs(g0), 1), (g, g0)


def _price(expr, kinks, q1, q2, q12, h, dps=24):
    """``(dF/dq12, G)``: ``mpmath.diff`` central differences with steps ``h`` and ``2h``,
    Richardson-combined (error ``O(h^4)`` plus ``~10^-dps / h`` from ``F``)."""
    layer = standin(expr, kinks)
    fn, dfn = R.generic_callables(layer)

    def f(x):
        return R.generic_dual(fn, dfn, kinks, q1, q2, x, dps=dps)[0]

    with mpmath.workdps(dps):
        d1 = mpmath.diff(f, q12, h=h)
        d2 = mpmath.diff(f, q12, h=2 * h)
        deriv = (4 * d1 - d2) / 3
    return deriv, R.generic_dual(fn, dfn, kinks, q1, q2, q12, dps=dps)[1]


def test_price_theorem_tanh():
    """``d E[tanh(u) tanh(v)] / d q12 = E[tanh'(u) tanh'(v)]`` at (1.3, 0.7, 0.4)."""
    deriv, g = _price(sympy.tanh(T), (), mpmath.mpf(Q1), mpmath.mpf(Q2), mpmath.mpf("0.4"), 1e-5)
    assert abs(deriv - g) <= mpmath.mpf("1e-18") * abs(g), (deriv, g)


@pytest.mark.slow
def test_price_theorem_elu():
    """The same for ELU (a kink in phi'' at 0), at a negative covariance."""
    elu = sympy.Piecewise((T, T > 0), (sympy.exp(T) - 1, True))
    deriv, g = _price(elu, (0.0,), mpmath.mpf("2.1"), mpmath.mpf("0.9"), mpmath.mpf("-0.6"), 1e-5)
    assert abs(deriv - g) <= mpmath.mpf("1e-18") * abs(g), (deriv, g)


# ------------------------------------------------------------ cheap special cases


def test_gauss_legendre_nodes():
    """The nodes integrate ``x^k`` exactly up to degree ``2n - 1`` (40 digits)."""
    with mpmath.workdps(40):
        for n in (8, 20, 40):
            xs, ws = R._gl_nodes(n, mpmath.mp.prec)
            assert len(xs) == n
            for k in range(0, 2 * n, 3):
                exact = mpmath.mpf(2) / (k + 1) if k % 2 == 0 else 0
                assert abs(mpmath.fdot(ws, [x**k for x in xs]) - exact) < mpmath.mpf(10) ** -38


def test_zero_variance_and_independence():
    """``q1 = 0``: ``phi(0) E[phi(v)]``; ``q12 = 0``: ``E[phi(u)] E[phi(v)]`` (cos: closed
    form ``exp(-q/2)`` for the mean)."""
    fn, dfn = R.generic_callables(standin(sympy.cos(T)))
    with mpmath.workdps(DPS):
        f, g = R.generic_dual(fn, dfn, (), 0, 0.7, 0, dps=DPS)
        assert abs(f - mpmath.exp(-0.35)) < TOL and g == 0
        f, g = R.generic_dual(fn, dfn, (), 1.3, 0.7, 0, dps=DPS)
        assert abs(f - mpmath.exp(-1.0)) < TOL and abs(g - 0) < TOL
        f, g = R.generic_dual(fn, dfn, (), 0, 0, 0, dps=DPS)
        assert f == 1 and g == 0


def test_bad_covariance_and_missing_kink():
    fn, dfn = R.generic_callables(standin(sympy.tanh(T)))
    with pytest.raises(ValueError, match="negative variance"):
        R.generic_dual(fn, dfn, (), -1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="not a covariance"):
        R.generic_dual(fn, dfn, (), 1.0, 1.0, 1.001)
    # |t - 1/2| without its kink: the rules converge only algebraically
    fn, dfn = R.generic_callables(standin(sympy.Abs(T - sympy.Rational(1, 2))))
    with pytest.raises(RuntimeError, match="kink"):  # c = -1: 1-D rules, kinks at +-1/2
        R.generic_dual(fn, dfn, (), 1.0, 1.0, -1.0, dps=15)
    f, _ = R.generic_dual(fn, dfn, (0.5,), 1.0, 1.0, -1.0, dps=15)
    with mpmath.workdps(15):  # E|z^2 - 1/4| by mpmath.quad split at the kinks
        exact = mpmath.quad(
            lambda z: mpmath.npdf(z) * abs(z * z - 0.25), [-mpmath.inf, -0.5, 0.5, mpmath.inf]
        )
        assert abs(f - exact) < 1e-13


def test_callables():
    """Symbol detection, strings, ``DiracDelta -> 0``, more than one symbol refused."""
    x = sympy.Symbol("x")
    fn, dfn = R.generic_callables(StandIn("x**3", "3*x**2"))
    with mpmath.workdps(30):
        assert fn(mpmath.mpf(2)) == 8 and dfn(mpmath.mpf(2)) == 12
        fn, dfn = R.generic_callables(standin(sympy.sign(T)))
        assert fn(mpmath.mpf(-3)) == -1 and dfn(mpmath.mpf(0)) == 0
        # sqrt(2) evaluated at the working precision, not as a float
        fn, _ = R.generic_callables(standin(sympy.sqrt(2) * T))
        assert abs(fn(mpmath.mpf(1)) - mpmath.sqrt(2)) < mpmath.mpf(10) ** -29
    with pytest.raises(ValueError, match="more than one symbol"):
        R.generic_callables(StandIn(x * T, T))


# ------------------------------------------------------ dual / reference by duck typing


def test_dual_duck_typing():
    layer = standin(sympy.sin(T))
    with mpmath.workdps(60):
        q = mpmath.mpf("0.9")
        f, g = R.dual(layer, q, q, q)  # c = 1: 1-D
        f0, g0 = R.dual(Sin(), q, q, q)
        assert abs(f - f0) < TOL and abs(g - g0) < TOL
    with pytest.raises(NotImplementedError):
        R.dual(object(), q, q, q)
    with pytest.raises(NotImplementedError, match="without an expression"):
        R.dual(StandIn(None, None, ()), q, q, q)  # a layer built from functions


def test_reference_network_with_standin():
    """``reference`` through ``Dense -> sin(t) -> Dense`` (a stand-in layer) equals the
    same network with the closed-form ``Sin()``; x2 = None is mirrored, x2 given is not."""
    x = np.array([[0.3, -1.2, 0.5], [1.1, 0.4, -0.2]])
    layers = [Dense(weight_std=1.2, bias_std=0.3), None, Dense(weight_std=0.9, bias_std=0.1)]
    generic = Network(tuple(standin(sympy.sin(T)) if v is None else v for v in layers))
    closed = Network(tuple(Sin() if v is None else v for v in layers))
    ref_g = R.reference(generic, x, dps=40)
    ref_c = R.reference(closed, x, dps=40)
    for name in ("nngp", "ntk", "nngp_diag1", "ntk_diag1"):
        a, b = getattr(ref_g, name), getattr(ref_c, name)
        for idx in np.ndindex(a.shape):
            assert abs(a[idx] - b[idx]) < TOL * max(abs(b[idx]), 1), (name, idx)
    assert ref_g.nngp[0, 1] == ref_g.nngp[1, 0]
    ref_x2 = R.reference(generic, x[:1], x[1:], dps=40)
    assert abs(ref_x2.nngp[0, 0] - ref_g.nngp[0, 1]) < TOL
