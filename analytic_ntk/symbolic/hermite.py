"""Hermite coefficients of activations.

With the normalised probabilists' Hermite polynomials ``h_k = He_k / sqrt(k!)``
(orthonormal for the standard normal weight), an activation has the expansion
``phi(z) = sum_k a_k h_k(z)``, ``a_k = E[phi(z) h_k(z)]``, ``z ~ N(0, 1)``, and by
Mehler's formula (``E[h_j(u) h_k(v)] = delta_jk c^k`` for standard normals with
correlation ``c``) the dual on the unit sphere is

.. math::

    F(1, 1, c) = E[\\phi(u)\\phi(v)] = \\sum_k a_k^2 c^k.

:func:`coefficients` computes ``a_k`` exactly with SymPy where it can, numerically in
mpmath otherwise, recording the method per coefficient:

* kinked activations (``Piecewise``, ``Max``, ``Min``, ``Abs``, ``sign``, ``Heaviside``
  with the kink at 0, e.g. ABRelu, Sign, rectified monomials): each piece times
  ``He_k`` integrated exactly on its half-line when its terms are
  ``C z^m exp(alpha z^2 + beta z + gamma)`` (polynomial pieces: the half-line moments
  ``int_0^inf z^m e^{-z^2/2} dz / sqrt(2 pi) = 2^{m/2} Gamma((m+1)/2) / (2 sqrt(pi))``);
* smooth activations: Gaussian integration by parts (Stein; Rodrigues' formula
  ``He_k(z) e^{-z^2/2} = (-1)^k d^k/dz^k e^{-z^2/2}``),
  ``E[phi He_k] = E[phi^(j) He_(k-j)]`` (``j = k`` while the derivatives do not grow,
  else the smallest ``j``) such that every term of ``phi^(j) He_(k-j)`` is
  ``C z^m exp(alpha z^2 + beta z + gamma)`` (polynomials, exp, sin/cos, Gaussians, and
  the derivatives of erf and of Gelu), integrated in closed
  form by completing the square; odd terms vanish by symmetry; else ``sympy.integrate``;
* otherwise mpmath quadrature (``dps`` digits, split at 0).

References: Mehler's formula (F. G. Mehler 1866); the dual-activation view of
A. Daniely, R. Frostig & Y. Singer, "Toward deeper understanding of neural networks"
(NIPS 2016).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import mpmath
import sympy as sp

from .families import MPMATH, NormalCDF, X

__all__ = [
    "Coefficients",
    "coefficients",
    "coefficients_numeric",
    "gaussian_expectation",
    "hermite_normalised",
    "unit_sphere_dual",
]

_KINKS = (sp.Piecewise, sp.Max, sp.Min, sp.Abs, sp.sign, sp.Heaviside)


@cache
def _he_poly(k: int) -> sp.Poly:
    return sp.Poly(sp.hermite_prob(k, X), X)


def hermite_normalised(k: int, z: sp.Symbol = X) -> sp.Expr:
    """``h_k(z) = He_k(z) / sqrt(k!)`` (probabilists' Hermite, orthonormal)."""
    return sp.hermite_prob(k, z) / sp.sqrt(sp.factorial(k))


@dataclass(frozen=True)
class Coefficients:
    """``values[k] = a_k`` (SymPy expressions where exact, mpmath numbers otherwise) and
    ``methods[k]`` in ``{"symbolic", "numerical"}``."""

    values: tuple
    methods: tuple

    def numeric(self, dps: int = 40) -> list:
        """The coefficients as mpmath numbers at ``dps`` digits."""
        with mpmath.workdps(dps):
            return [
                mpmath.mpf(sp.N(v, dps + 5)) if isinstance(v, sp.Basic) else mpmath.mpf(v)
                for v in self.values
            ]


# ------------------------------------------------------------- exact expectations


def _full_moment(m: int, mu, v) -> sp.Expr:
    # E[z^m], z ~ N(mu, v)
    return sum(
        (
            sp.binomial(m, 2 * j) * mu ** (m - 2 * j) * v**j * math.prod(range(2 * j - 1, 0, -2))
            for j in range(m // 2 + 1)
        ),
        sp.Integer(0),
    )


def _term_form(term, z):
    """``(C, m, alpha, beta, gamma)`` with ``term = C z^m exp(alpha z^2 + beta z + gamma)``,
    or None."""
    if term == 0:
        return sp.Integer(0), 0, sp.Integer(0), sp.Integer(0), sp.Integer(0)
    coeff, zpart = term.as_independent(z, as_Add=False)
    m = 0
    arg = sp.Integer(0)
    for f in sp.Mul.make_args(zpart):
        if f == 1:
            continue
        base, e = f.as_base_exp()
        if base == z and e.is_Integer and e >= 0:
            m += int(e)
        elif base == sp.E:
            arg += e
        else:
            return None
    if arg == 0:
        return coeff, m, sp.Integer(0), sp.Integer(0), sp.Integer(0)
    try:
        poly = sp.Poly(sp.expand(arg), z)
    except sp.PolynomialError:
        return None
    if poly.degree() > 2:
        return None
    al = poly.coeff_monomial(z**2)
    be = poly.coeff_monomial(z)
    ga = poly.coeff_monomial(1)
    return coeff, m, al, be, ga


def _is_odd(term, z) -> bool:
    return sp.expand(term.subs(z, -z) + term) == 0


def gaussian_expectation(expr, z: sp.Symbol = X):
    """Exact ``E[expr(z)]``, ``z ~ N(0, 1)``, for a sum of terms
    ``C z^m exp(alpha z^2 + beta z + gamma)`` (``sin``, ``cos``, ``sinh``, ``cosh`` are
    rewritten as exponentials) or odd terms, or terms ``z h(z)`` reduced by Stein's lemma
    ``E[z h(z)] = E[h'(z)]`` (e.g. ``z erf(b z)``); None if some term is of none of
    these kinds.

    With ``v = 1 / (1 - 2 alpha)``, ``mu = beta v`` (completing the square):
    ``E[z^m e^{alpha z^2 + beta z + gamma}] = e^gamma sqrt(v) e^{beta^2 v / 2} E[w^m]``,
    ``w ~ N(mu, v)``, ``E[w^m] = sum_j C(m, 2j) mu^(m-2j) v^j (2j-1)!!``.
    """
    expr = sp.sympify(expr)
    if expr.has(NormalCDF):
        expr = expr.rewrite(sp.erf)
    trig = (sp.sin, sp.cos, sp.sinh, sp.cosh)
    if expr.has(*trig):
        expr = expr.rewrite(sp.exp)
    total = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(expr)):
        form = _term_form(term, z)
        if form is None:
            if _is_odd(term, z):
                continue
            h = sp.cancel(term / z)
            if not h.has(z) or not sp.cancel(h * z - term) == 0 or h.as_numer_denom()[1].has(z):
                return None
            # Stein: E[z h(z)] = E[h'(z)]
            val = gaussian_expectation(sp.diff(h, z), z)
            if val is None:
                return None
            total += val
            continue
        coeff, m, al, be, ga = form
        if al == 0 and be == 0:
            total += coeff * sp.exp(ga) * (math.prod(range(m - 1, 0, -2)) if m % 2 == 0 else 0)
            continue
        v = 1 / (1 - 2 * al)
        mu = be * v
        total += coeff * sp.exp(ga + be**2 * v / 2) * sp.sqrt(v) * _full_moment(m, mu, v)
    if total.has(sp.I):
        total = sp.expand_complex(total)
    return total


def _pieces(phi, z):
    """``(phi on z > 0, phi on z < 0)`` as expressions in ``z`` without kinks, or None."""
    zp = sp.Dummy("zp", positive=True)
    plus = phi.subs(z, zp)
    minus = phi.subs(z, -zp)
    if plus.has(*_KINKS) or minus.has(*_KINKS):
        return None
    return plus.subs(zp, z), minus.subs(zp, -z)


def _half_line_integral(m: int, a, be):
    # I_m = int_0^inf z^m exp(-a z^2 / 2 + be z) dz:
    # I_0 = sqrt(pi / (2a)) e^{be^2 / (2a)} erfc(-be / sqrt(2a)),
    # I_m = ((m - 1) I_(m-2) + be I_(m-1) + [m == 1]) / a  (integration by parts)
    if be == 0:
        return 2 ** sp.Rational(m - 1, 2) * sp.gamma(sp.Rational(m + 1, 2)) / a ** sp.Rational(
            m + 1, 2
        )
    i0 = sp.sqrt(sp.pi / (2 * a)) * sp.exp(be**2 / (2 * a)) * sp.erfc(-be / sp.sqrt(2 * a))
    vals = [i0, (be * i0 + 1) / a]
    for j in range(2, m + 1):
        vals.append(((j - 1) * vals[j - 2] + be * vals[j - 1]) / a)
    return vals[m]


def _half_line(expr, z):
    """Exact ``int_0^inf expr(z) phi(z) dz`` for ``expr`` a sum of terms
    ``C z^m exp(alpha z^2 + beta z + gamma)`` (:func:`_half_line_integral`), else None."""
    expr = sp.sympify(expr)
    if expr.is_polynomial(z):
        # fast path: the half-line moments of a polynomial
        poly = sp.Poly(expr, z)
        return sum(
            (cf * _half_line_integral(m, 1, 0) for (m,), cf in zip(poly.monoms(), poly.coeffs())),
            sp.Integer(0),
        ) / sp.sqrt(2 * sp.pi)
    if expr.has(sp.sin, sp.cos, sp.sinh, sp.cosh):
        expr = expr.rewrite(sp.exp)
    total = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(expr)):
        form = _term_form(term, z)
        if form is None:
            return None
        coeff, m, al, be, ga = form
        total += coeff * sp.exp(ga) * _half_line_integral(m, 1 - 2 * al, be) / sp.sqrt(2 * sp.pi)
    if total.has(sp.I):
        total = sp.expand_complex(total)
    return total


_INTEGRABLE = (sp.exp, sp.erf, sp.erfc, sp.sin, sp.cos)


def _integrate(expr, z, lo, hi):
    """``sympy.integrate`` of ``expr phi(z)``; None if it stays unevaluated, or without
    trying when ``expr`` has functions other than exp, erf, erfc, sin, cos (SymPy can
    take very long on those)."""
    e = expr.rewrite(sp.erf) if expr.has(NormalCDF) else expr
    funcs = {type(f) for f in e.atoms(sp.Function)}
    if not all(issubclass(f, _INTEGRABLE) for f in funcs):
        return None
    res = sp.integrate(e * sp.exp(-(z**2) / 2) / sp.sqrt(2 * sp.pi), (z, lo, hi))
    if res.has(sp.Integral) or res.has(sp.nan) or res.has(sp.zoo):
        return None
    return res


def _mp_expectation(expr, z, dps):
    # E[expr(z)] by tanh-sinh quadrature on (-inf, 0) and (0, inf) (kinks sit at 0)
    f = sp.lambdify(z, expr * sp.exp(-(z**2) / 2) / sp.sqrt(2 * sp.pi), modules=MPMATH)
    with mpmath.workdps(dps):
        return mpmath.quad(f, [-mpmath.inf, 0, mpmath.inf])


# --------------------------------------------------------------------- the a_k


def _coef_kinked(pieces, k, z):
    plus, minus = pieces
    he = _he_poly(k).as_expr().subs(X, z)
    up = _half_line(plus * he, z)
    dn = _half_line((minus * he).subs(z, -z), z)
    if up is None or dn is None:
        return None
    return (up + dn) / sp.sqrt(sp.factorial(k))


def _deriv(derivs, j, z):
    while len(derivs) <= j:
        derivs.append(sp.expand(sp.diff(derivs[-1], z)))
    return derivs[j]


def _pure(expr, z) -> bool:
    # every term C z^m exp(quadratic): the exact rule applies without Stein steps
    if expr.has(NormalCDF, sp.erf, sp.erfc):
        return False
    return all(_term_form(t, z) is not None for t in sp.Add.make_args(sp.expand(expr)))


def _coef_smooth(derivs, k, z):
    # E[phi He_k] = E[phi^(j) He_(k-j)].  While the derivatives stay as small as phi
    # (exp, sin, cos, polynomials) j = k is cheapest (He_0 = 1); otherwise (erf, Gelu,
    # Gaussian, whose derivatives grow) the smallest j that the exact rule accepts.
    limit = sp.count_ops(derivs[0]) + 8
    while len(derivs) <= k and sp.count_ops(derivs[-1]) <= limit:
        derivs.append(sp.expand(sp.diff(derivs[-1], z)))
    order = list(range(k + 1))
    if len(derivs) > k and sp.count_ops(derivs[k]) <= limit:
        order = [k] + order[:-1]
    else:
        pure = next((j for j in order if _pure(_deriv(derivs, j, z), z)), None)
        if pure is not None:
            order = [pure] + [j for j in order if j != pure]
    for j in order:
        _deriv(derivs, j, z)
        he = _he_poly(k - j).as_expr().subs(X, z)
        val = gaussian_expectation(derivs[j] * he, z)
        if val is not None:
            return val / sp.sqrt(sp.factorial(k))
    return _integrate(derivs[0] * _he_poly(k).as_expr().subs(X, z), z, -sp.oo, sp.oo)


def coefficients(
    phi, kmax: int, z: sp.Symbol = X, *, dps: int = 40, allow_numeric: bool = True
) -> Coefficients:
    """``a_0, ..., a_kmax`` of ``phi`` (an expression in ``z``; parameters may be
    symbols where the exact methods apply).

    Exact where possible (see the module docstring); otherwise, when ``allow_numeric``,
    mpmath quadrature at ``dps`` digits (split at 0), which needs numeric parameters.
    """
    phi = sp.sympify(phi)
    vals, methods = [], []
    pieces = _pieces(phi, z) if phi.has(*_KINKS) else None
    derivs = [phi]
    for k in range(kmax + 1):
        if pieces is not None:
            val = _coef_kinked(pieces, k, z)
        elif phi.has(*_KINKS):
            val = None
        else:
            val = _coef_smooth(derivs, k, z)
        if val is not None:
            vals.append(val)
            methods.append("symbolic")
            continue
        if not allow_numeric:
            raise ValueError(f"no exact Hermite coefficient a_{k} for {phi}")
        hk = hermite_normalised(k, z)
        vals.append(_mp_expectation(phi * hk, z, dps))
        methods.append("numerical")
    return Coefficients(tuple(vals), tuple(methods))


def coefficients_numeric(phi, kmax: int, z: sp.Symbol = X, *, dps: int = 40) -> list:
    """``a_0, ..., a_kmax`` by mpmath quadrature at ``dps`` digits (split at 0);
    ``phi`` must have numeric parameters."""
    return [
        _mp_expectation(sp.sympify(phi) * hermite_normalised(k, z), z, dps)
        for k in range(kmax + 1)
    ]


def unit_sphere_dual(coefs, c, dps: int = 40):
    """``sum_k a_k^2 c^k`` in mpmath (``coefs`` a :class:`Coefficients` or numbers)."""
    vals = coefs.numeric(dps) if isinstance(coefs, Coefficients) else coefs
    with mpmath.workdps(dps):
        c = mpmath.mpf(c)
        return mpmath.fsum(a * a * c**k for k, a in enumerate(vals))
