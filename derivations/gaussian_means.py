"""Derive the one-dimensional Gaussian means of :mod:`analytic_ntk.gaussian_means` and the
derivatives of the orthant closed form of :mod:`analytic_ntk.orthant` with SymPy, and
check the compiled code against them.

Run from the repository root::

    python -m derivations.gaussian_means

1. For each family, ``G(mu, t) = E[psi(mu + t xi)]`` is integrated symbolically
   (``xi ~ N(0, 1)``, ``t > 0``; erf through its derivative, a Gaussian integral, and
   ``G(0) = c``), ``G'`` and ``G''`` by differentiation in ``mu``; the heat equation
   ``dG/dt = t G''`` (Price's theorem in one dimension) is checked symbolically, and
   ``gaussian_means.inner`` against the expressions at random points in 30-digit mpmath.
2. The ABRelu pair ``E[phi(u) psi(v)]`` of :mod:`analytic_ntk.orthant` is written with
   ``Phi2(h1, h2; rho)`` as a SymPy function whose partials are the standard ones
   (``dPhi2/dh1 = phi_n(h1) Phi((h2 - rho h1) / sqrt(1 - rho^2))``, ``dPhi2/drho =`` the
   bivariate density), in terms of ``(var1, var2, cov, mean1, mean2)``; its five
   derivatives are taken by the chain rule and compared at random points (30 digits,
   ``Phi2`` by mpmath quadrature) with the Price / Stein forms that ``orthant.py``
   evaluates.

Nothing is generated yet: the numba code in ``gaussian_means.py`` and ``orthant.py`` is
hand-written from these formulas and checked against them here (and in the tests).
"""

from __future__ import annotations

import random

import mpmath as mp
import numpy as np
import sympy as sp

mu, x = sp.symbols("mu x", real=True)
t = sp.Symbol("t", positive=True)
a, b, c = sp.symbols("a b c", real=True)
bp = sp.Symbol("b", positive=True)
PDF = sp.exp(-x**2 / 2) / sp.sqrt(2 * sp.pi)


def _gauss_mean(expr, lower=-sp.oo):
    """``int_lower^oo expr(mu + t x) phi_n(x) dx``."""
    return _clean(sp.integrate(expr * PDF, (x, lower, sp.oo)))


def _clean(expr):
    """Remove the ``exp_polar`` artefacts of SymPy's integrator."""
    return sp.simplify(sp.expand_complex(sp.unpolarify(expr)))


def families():
    """``name -> (G(mu, t), parameters for the compiled kind, kind)``."""
    from analytic_ntk import gaussian_means as gm

    z = mu + t * x
    relu = _gauss_mean(z, -mu / t)
    step = _gauss_mean(sp.Integer(1), -mu / t)
    rm2 = _gauss_mean(z**2, -mu / t)
    # erf(b z): G' = E[a b (2/sqrt(pi)) exp(-b^2 z^2)], G(mu = 0) = c (odd part vanishes)
    derf = _gauss_mean(a * bp * 2 / sp.sqrt(sp.pi) * sp.exp(-bp**2 * z**2))
    # the antiderivative in mu (SymPy's own integral carries exp_polar artefacts): the
    # probit form, checked to have derivative derf and value c at mu = 0
    erf = a * sp.erf(bp * mu / sp.sqrt(1 + 2 * bp**2 * t**2)) + c
    if sp.simplify(sp.diff(erf, mu) - derf) != 0 or erf.subs(mu, 0) != c:
        raise AssertionError(f"erf mean: d/dmu {erf} != {derf}")
    sin = _gauss_mean(a * sp.sin(b * z + c))
    exp = _gauss_mean(a * sp.exp(b * z))
    bn = sp.Symbol("b", negative=True)
    gauss = _gauss_mean(a * sp.exp(bn * z**2))
    p = sp.symbols("p0:4", real=True)
    poly = sp.expand(_gauss_mean(sum(p[k] * z**k for k in range(4))))
    return {
        "relu (ABRelu(0, 1))": (relu, {}, gm.ABRELU, [0.0, 1.0]),
        "step (RectifiedMonomial(0))": (step, {}, gm.RECTMONO, [0.0]),
        "RectifiedMonomial(2)": (rm2, {}, gm.RECTMONO, [2.0]),
        "Erf(a, b, c)": (erf, {a: 1.3, bp: 0.7, c: -0.2}, gm.ERF, [1.3, 0.7, -0.2]),
        "Sin(a, b, c)": (sin, {a: 0.9, b: 1.4, c: 0.3}, gm.SIN, [0.9, 1.4, 0.3]),
        "Exp(a, b)": (exp, {a: 0.8, b: 0.6}, gm.EXP, [0.8, 0.6]),
        "Gaussian(a, b)": (gauss, {a: 1.1, bn: -0.4}, gm.GAUSS, [1.1, -0.4]),
        "Polynomial(p0..p3)": (poly, dict(zip(p, (0.1, -1.0, 0.3, 0.05))), gm.POLY,
                               [0.1, -1.0, 0.3, 0.05]),
    }


def check_means(rng, n_points=6):
    from analytic_ntk import gaussian_means as gm

    worst = 0.0
    for name, (g, subs, kind, prm) in families().items():
        g1 = sp.diff(g, mu)
        g2 = sp.diff(g, mu, 2)
        heat = sp.simplify(sp.diff(g, t) - t * g2)
        print(f"{name}:\n  G = {g}\n  dG/dt - t G'' = {heat}")
        if heat != 0:
            raise AssertionError(f"{name}: the heat equation fails: {heat}")
        fs = [sp.lambdify((mu, t), e.subs(subs), "mpmath") for e in (g, g1, g2)]
        out = np.empty(3)
        for _ in range(n_points):
            m, s = rng.uniform(-3, 3), rng.uniform(0.05, 2.5)
            gm.inner(kind, np.asarray(prm, dtype=np.float64), m, s, out)
            with mp.workdps(30):
                ref = [f(mp.mpf(m), mp.mpf(s)) for f in fs]
            for k in range(3):
                err = float(abs(out[k] - ref[k]) / max(abs(ref[k]), mp.mpf(1e-300)))
                worst = max(worst, err)
                if err > 1e-12:
                    raise AssertionError(f"{name}: G^({k}) at ({m}, {s}): {out[k]} vs {ref[k]}")
    print(f"gaussian_means.inner against the SymPy means: max relative error {worst:.1e}")
    return worst


class Phi2(sp.Function):
    """The bivariate standard normal CDF ``Phi2(h, k; rho)`` with its partials."""

    nargs = 3

    def fdiff(self, argindex=1):
        h, k, r = self.args
        s = sp.sqrt(1 - r**2)
        if argindex == 1:
            return _pdf(h) * _cdf((k - r * h) / s)
        if argindex == 2:
            return _pdf(k) * _cdf((h - r * k) / s)
        return sp.exp(-(h**2 - 2 * r * h * k + k**2) / (2 * s**2)) / (2 * sp.pi * s)


def _pdf(z):
    return sp.exp(-z**2 / 2) / sp.sqrt(2 * sp.pi)


def _cdf(z):
    return (1 + sp.erf(z / sp.sqrt(2))) / 2


def orthant_value():
    """``E[phi(u) psi(v)]`` of :mod:`analytic_ntk.orthant` as a SymPy expression in
    ``(v1, v2, cov, m1, m2)`` and the ABRelu parameters."""
    v1, v2 = sp.symbols("v1 v2", positive=True)
    cov, m1, m2, a1, c1, a2, c2 = sp.symbols("cov m1 m2 a1 c1 a2 c2", real=True)
    s1, s2 = sp.sqrt(v1), sp.sqrt(v2)
    rho = cov / (s1 * s2)
    h1, h2 = m1 / s1, m2 / s2
    r = sp.sqrt(1 - rho**2)
    big_l = Phi2(h1, h2, rho)
    q12 = 1 - _cdf((-h2 + rho * h1) / r)
    q21 = 1 - _cdf((-h1 + rho * h2) / r)
    ez1 = _pdf(h1) * q12 + rho * _pdf(h2) * q21
    ez2 = _pdf(h2) * q21 + rho * _pdf(h1) * q12
    quad = (h1**2 - 2 * rho * h1 * h2 + h2**2) / r**2
    ez12 = (rho * big_l - rho * h1 * _pdf(h1) * q12 - rho * h2 * _pdf(h2) * q21
            + r / (2 * sp.pi) * sp.exp(-quad / 2))
    e_rr = m1 * m2 * big_l + m1 * s2 * ez2 + m2 * s1 * ez1 + s1 * s2 * ez12
    e_r1 = m1 * _cdf(h1) + s1 * _pdf(h1)
    e_r2 = m2 * _cdf(h2) + s2 * _pdf(h2)
    value = (a1 * a2 * (cov + m1 * m2) + a1 * c2 * (m1 * e_r2 + cov * _cdf(h2))
             + c1 * a2 * (m2 * e_r1 + cov * _cdf(h1)) + c1 * c2 * e_rr)
    return value, (v1, v2, cov, m1, m2), (a1, c1, a2, c2)


def _mp_phi2(h, k, r):
    """``Phi2`` by 1-D quadrature: ``int_-inf^h phi_n(x) Phi((k - r x)/sqrt(1 - r^2))``."""
    s = mp.sqrt(1 - r * r)
    return mp.quad(lambda z: mp.npdf(z) * mp.ncdf((k - r * z) / s), [-mp.inf, h])


def check_orthant(rng, n_points=5):
    from analytic_ntk import orthant

    value, xs, prm = orthant_value()
    derivs = [sp.diff(value, v) for v in xs]
    mods = [{"Phi2": _mp_phi2}, "mpmath"]
    fns = [sp.lambdify((*xs, *prm), e, mods) for e in (value, *derivs)]
    worst = 0.0
    for _ in range(n_points):
        v1, v2 = rng.uniform(0.3, 2.5, 2)
        rho = rng.uniform(-0.9, 0.9)
        cov = rho * np.sqrt(v1 * v2)
        m1, m2 = rng.uniform(-2, 2, 2)
        ab = (rng.choice([0.0, 0.1, -1.0]), 1.0, rng.choice([0.0, 0.3, -1.0]), 1.5)
        got = orthant.abrelu_pair(ab[0], ab[1] - ab[0], ab[2], ab[3] - ab[2], v1, v2, cov, m1,
                                  m2, True)
        with mp.workdps(30):
            args = [mp.mpf(float(q)) for q in (v1, v2, cov, m1, m2)]
            pr = [mp.mpf(float(q)) for q in (ab[0], ab[1] - ab[0], ab[2], ab[3] - ab[2])]
            ref = [f(*args, *pr) for f in fns]
        scale = max(abs(q) for q in ref)
        for k in range(6):
            err = float(abs(got[k] - ref[k]) / max(abs(ref[k]), 1e-3 * scale))
            worst = max(worst, err)
            if err > 1e-11:
                raise AssertionError(f"orthant component {k}: {got[k]} vs {ref[k]}")
    print("orthant.abrelu_pair (Price / Stein forms) against the SymPy chain-rule derivatives "
          f"of its value: max relative error {worst:.1e}")
    return worst


def main() -> None:
    rng = np.random.default_rng(random.Random(0).randrange(2**32))
    check_means(rng)
    check_orthant(rng)


if __name__ == "__main__":
    main()
