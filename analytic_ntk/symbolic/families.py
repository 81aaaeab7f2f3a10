"""The closed-form dual families of :mod:`analytic_ntk.duals` as SymPy expressions.

For an activation ``phi`` and a centred Gaussian pair ``(u, v)`` with
``Var u = q1``, ``Var v = q2``, ``Cov(u, v) = q12`` the dual is
``F(q1, q2, q12) = E[phi(u) phi(v)]`` and the NTK factor is
``E[phi'(u) phi'(v)] = dF/dq12`` (Price's theorem: R. Price, "A useful theorem for
nonlinear devices having Gaussian inputs", IRE Trans. Inf. Theory 4, 1958).  Each
:class:`Family` holds, with the family's parameters as symbols,

* ``phi``: the pointwise activation in :data:`X`, with the same conventions at kinks as
  ``layers.py`` (``fn``; its ``sympy.diff`` is ``deriv``);
* ``dual``: ``F``, the formula :mod:`analytic_ntk.duals` evaluates (its docstring);
* ``factor``: the NTK factor the library returns;
* ``price_target``: what ``dF/dq12`` must equal -- the factor, except for the step-like
  families (``Sign``, ``RectifiedMonomial(0)``) whose library factor is the a.e.
  derivative 0 while ``dF/dq12`` is the distributional ``E[phi' phi']`` (point masses
  at 0: ``E[delta(u) delta(v)] = 1 / (2 pi sqrt(q1 q2 - q12^2))``);
* ``derivative_dual``: where ``phi'`` is itself in a closed family, the dual of ``phi'``
  taken from that family -- an independent derivation of the factor.

:func:`price_check` proves ``dF/dq12 == price_target`` symbolically
(``simplify(diff(F, q12) - target) == 0``) and falls back to a 50-digit mpmath check at
random points when SymPy cannot.

References: Cho & Saul 2009 ("Kernel methods for deep learning", arc-cosine kernels:
ABRelu, RectifiedMonomial); Sheppard's formula (Sign: ``1 - 2 theta / pi``);
C. K. I. Williams 1997 ("Computing with infinite networks", Erf); Gaussian integrals
by completing the square (Exp, Gaussian, Sin/Cos, Rbf); Stein's lemma (Gelu; cf.
Tsuchida et al. 2021); Mehler's formula (polynomials:
``E[He_j(z1) He_k(z2)] = delta_jk k! rho^k``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import mpmath
import sympy as sp

from . import arccos as _ac

__all__ = [
    "X",
    "Q1",
    "Q2",
    "Q12",
    "MPMATH",
    "NormalCDF",
    "Family",
    "PriceResult",
    "closed_families",
    "derivative_dual_check",
    "diag_derivative",
    "family",
    "family_of",
    "hermite_in_power",
    "lambdify_mp",
    "mehler_dual",
    "moment_dual",
    "numeric_identity",
    "price_check",
    "random_point",
    "rectmono_phi",
]

X = sp.Symbol("x", real=True)
"""The pointwise variable of ``phi``."""
Q1, Q2, Q12 = _ac.Q1, _ac.Q2, _ac.Q12


class NormalCDF(sp.Function):
    """Standard normal CDF ``Phi(x) = erfc(-x / sqrt 2) / 2``.

    A function of its own so that printed code keeps the accurate ``erfc`` form for
    ``x << 0`` (SymPy rewrites ``erfc(-x)`` as ``2 - erfc(x)``); ``rewrite(sp.erf)`` gives
    ``(1 + erf(x / sqrt 2)) / 2``.
    """

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.S.Half
        if x is sp.oo:
            return sp.S.One
        if x is sp.S.NegativeInfinity:
            return sp.S.Zero
        return None

    def fdiff(self, argindex=1):
        (x,) = self.args
        return sp.exp(-(x**2) / 2) / sp.sqrt(2 * sp.pi)

    def _eval_rewrite_as_erf(self, x, **kwargs):
        return (1 + sp.erf(x / sp.sqrt(2))) / 2

    def _eval_rewrite_as_erfc(self, x, **kwargs):
        return sp.erfc(-x / sp.sqrt(2), evaluate=False) / 2

    def _eval_is_real(self):
        return self.args[0].is_real


MPMATH = [{"NormalCDF": mpmath.ncdf}, "mpmath"]
"""``lambdify`` modules for mpmath evaluation of these expressions."""


def _theta():
    return sp.acos(Q12 / sp.sqrt(Q1 * Q2))


@dataclass(frozen=True)
class Family:
    """One closed-form family (see the module docstring for the fields).

    ``params`` are the symbols of the family's parameters, in the order
    ``make_layer`` takes them; ``ranges`` give ``(lo, hi)`` for random test values
    (kept where the dual is finite for ``q1, q2 <= 3``).
    """

    name: str
    params: tuple
    phi: sp.Expr
    dual: sp.Expr
    factor: sp.Expr
    make_layer: Callable = field(compare=False)
    ranges: tuple = ()
    price_target: sp.Expr | None = None
    derivative_dual: sp.Expr | None = None
    reference: str = ""

    @property
    def target(self) -> sp.Expr:
        """What ``dF/dq12`` equals (``price_target`` or else ``factor``)."""
        return self.factor if self.price_target is None else self.price_target

    def layer(self, values):
        """The :mod:`analytic_ntk.layers` activation with these parameter values."""
        return self.make_layer(*values)

    def sample(self, rng: random.Random) -> tuple:
        """Random parameter values (floats) within ``ranges``."""
        return tuple(rng.uniform(lo, hi) for lo, hi in self.ranges)

    def subs(self, expr, values):
        """``expr`` with the parameters replaced by ``values`` (exact if rational)."""
        return expr.subs(dict(zip(self.params, [sp.nsimplify(v) for v in values])))


# ------------------------------------------------------------------ the families


def _layers():
    from .. import layers

    return layers


def _abrelu() -> Family:
    a, b = sp.symbols("a b", real=True)
    th = _theta()
    g = (a**2 + b**2) / 2 - (a - b) ** 2 * th / (2 * sp.pi)
    f = (a - b) ** 2 / (2 * sp.pi) * sp.sqrt(Q1 * Q2 - Q12**2) + g * Q12
    # phi' = a + (b - a) [x > 0]: E = a^2 + a (b - a) + (b - a)^2 (pi - theta) / (2 pi)
    dd = a**2 + a * (b - a) + (b - a) ** 2 * (sp.pi - th) / (2 * sp.pi)
    return Family(
        "abrelu",
        (a, b),
        sp.Piecewise((b * X, X > 0), (a * X, True)),
        f,
        g,
        lambda a_, b_: _layers().ABRelu(a_, b_),
        ((-2.0, 2.0), (-2.0, 2.0)),
        derivative_dual=dd,
        reference="Cho & Saul 2009 (order 1), generalised to a min(x,0) + b max(x,0)",
    )


def _sign() -> Family:
    return Family(
        "sign",
        (),
        sp.Piecewise((1, X > 0), (-1, X < 0), (0, True)),
        1 - 2 * _theta() / sp.pi,
        sp.Integer(0),
        lambda: _layers().Sign(),
        price_target=2 / (sp.pi * sp.sqrt(Q1 * Q2 - Q12**2)),  # E[2 delta(u) 2 delta(v)]
        reference="Sheppard's formula; factor 0 as stax (a.e. derivative)",
    )


def rectmono_phi(n) -> sp.Expr:
    """``max(x, 0)^n`` with ``layers.RectifiedMonomial``'s conventions (``[x > 0]`` for
    ``n = 0``); ``n`` may be a symbol."""
    return sp.Piecewise((0, X <= 0), (1, sp.Eq(n, 0)), (X**n, True))


def _rectmono(n: int) -> Family:
    pt = None
    dd = None
    if n == 0:
        pt = 1 / (2 * sp.pi * sp.sqrt(Q1 * Q2 - Q12**2))  # E[delta(u) delta(v)]
    else:
        dd = n**2 * _ac.dual(n - 1)  # phi' = n max(x, 0)^(n-1)
    return Family(
        f"rectmono{n}",
        (),
        rectmono_phi(n),
        _ac.dual(n),
        _ac.factor(n),
        lambda: _layers().RectifiedMonomial(n),
        price_target=pt,
        derivative_dual=dd,
        reference="Cho & Saul 2009, arc-cosine kernel of order n",
    )


def _gauss_dual(a, b):
    return a**2 / sp.sqrt((1 - 2 * b * Q1) * (1 - 2 * b * Q2) - 4 * b**2 * Q12**2)


def _erf() -> Family:
    a, b, c = sp.symbols("a b c", real=True)
    b2 = 2 * b**2
    f = (
        a**2 * 2 / sp.pi * sp.asin(b2 * Q12 / sp.sqrt((1 + b2 * Q1) * (1 + b2 * Q2)))
        + c**2
    )
    g = 4 * a**2 * b**2 / sp.pi / sp.sqrt((1 + b2 * Q1) * (1 + b2 * Q2) - 4 * b**4 * Q12**2)
    return Family(
        "erf",
        (a, b, c),
        a * sp.erf(b * X) + c,
        f,
        g,
        lambda a_, b_, c_: _layers().Erf(a_, b_, c_),
        ((-2.0, 2.0), (-2.0, 2.0), (-1.0, 1.0)),
        # phi' = (2 a b / sqrt pi) exp(-b^2 x^2): Gaussian(2ab/sqrt(pi), -b^2)
        derivative_dual=_gauss_dual(2 * a * b / sp.sqrt(sp.pi), -(b**2)),
        reference="Williams 1997",
    )


def _trig_dual(a, b, kappa):
    em = sp.exp(-(b**2) * (Q1 + Q2 - 2 * Q12) / 2)
    ep = sp.exp(-(b**2) * (Q1 + Q2 + 2 * Q12) / 2)
    return a**2 / 2 * (em - kappa * ep), a**2 * b**2 / 2 * (em + kappa * ep)


def _sin() -> Family:
    a, b, c = sp.symbols("a b c", real=True)
    f, g = _trig_dual(a, b, sp.cos(2 * c))
    return Family(
        "sin",
        (a, b, c),
        a * sp.sin(b * X + c),
        f,
        g,
        lambda a_, b_, c_: _layers().Sin(a_, b_, c_),
        ((-2.0, 2.0), (-1.5, 1.5), (-3.0, 3.0)),
        # phi' = a b cos(b x + c) = (a b) sin(b x + c + pi/2): kappa -> -cos(2c)
        derivative_dual=_trig_dual(a * b, b, -sp.cos(2 * c))[0],
        reference="characteristic function of (u, v)",
    )


def _cos() -> Family:
    a, b, c = sp.symbols("a b c", real=True)
    f, g = _trig_dual(a, b, -sp.cos(2 * c))
    return Family(
        "cos",
        (a, b, c),
        a * sp.cos(b * X + c),
        f,
        g,
        lambda a_, b_, c_: _layers().Cos(a_, b_, c_),
        ((-2.0, 2.0), (-1.5, 1.5), (-3.0, 3.0)),
        derivative_dual=_trig_dual(a * b, b, sp.cos(2 * c))[0],
        reference="characteristic function of (u, v)",
    )


def _rbf() -> Family:
    gamma = sp.Symbol("gamma", positive=True)
    a, b = sp.sqrt(2), sp.sqrt(2 * gamma)
    f, g = _trig_dual(a, b, sp.cos(2 * sp.pi / 4))
    return Family(
        "rbf",
        (gamma,),
        sp.sqrt(2) * sp.sin(sp.sqrt(2 * gamma) * X + sp.pi / 4),
        f,
        g,
        lambda g_: _layers().Rbf(g_),
        ((0.05, 2.0),),
        derivative_dual=_trig_dual(a * b, b, -sp.cos(2 * sp.pi / 4))[0],
        reference="Rahimi & Recht 2007; F = exp(-gamma (q1 + q2 - 2 q12))",
    )


def _gelu() -> Family:
    t1, t2 = 1 + Q1, 1 + Q2
    det = t1 * t2 - Q12**2
    rho = Q12 / sp.sqrt(t1 * t2)
    num = Q1 * Q2 + Q12**2 * (1 - Q1 * Q2) / (t1 * t2)
    f = Q12 / 4 + Q12 * sp.asin(rho) / (2 * sp.pi) + num / (2 * sp.pi * sp.sqrt(det))
    g = (
        sp.Rational(1, 4)
        + sp.asin(rho) / (2 * sp.pi)
        + Q12
        * (
            (Q1 + Q2 + 2) / (2 * sp.pi * t1 * t2 * sp.sqrt(det))
            + 1 / (2 * sp.pi * det * sp.sqrt(det))
        )
    )
    return Family(
        "gelu",
        (),
        X * NormalCDF(X),
        f,
        g,
        lambda: _layers().Gelu(),
        reference="Stein's lemma; cf. Tsuchida et al. 2021",
    )


def hermite_in_power(i: int, k: int) -> sp.Rational:
    """Coefficient of ``He_k`` in ``x^i``: ``i! / (m! k! 2^m)`` for ``i - k = 2m >= 0``."""
    if k > i or (i - k) % 2:
        return sp.Integer(0)
    m = (i - k) // 2
    return sp.Rational(math.factorial(i), math.factorial(m) * math.factorial(k) * 2**m)


def mehler_dual(coef) -> tuple[sp.Expr, sp.Expr]:
    """``(F, factor)`` of ``phi = sum_i coef[i] x^i`` as the library writes them:
    ``F = sum_k k! alpha_k(q1) alpha_k(q2) q12^k``,
    ``alpha_k(q) = sum_i coef[i] [x^i : He_k] q^((i-k)/2)``,
    factor ``sum_k k k! alpha_k(q1) alpha_k(q2) q12^(k-1)`` (Mehler's formula)."""
    deg = len(coef) - 1

    def alpha(k, q):
        return sum(
            (coef[i] * hermite_in_power(i, k) * q ** ((i - k) // 2) for i in range(k, deg + 1, 2)),
            sp.Integer(0),
        )

    f = sum(
        (sp.factorial(k) * alpha(k, Q1) * alpha(k, Q2) * Q12**k for k in range(deg + 1)),
        sp.Integer(0),
    )
    g = sum(
        (
            k * sp.factorial(k) * alpha(k, Q1) * alpha(k, Q2) * Q12 ** (k - 1)
            for k in range(1, deg + 1)
        ),
        sp.Integer(0),
    )
    return f, g


def moment_dual(phi: sp.Expr) -> sp.Expr:
    """``E[phi(u) phi(v)]`` of a polynomial ``phi`` in :data:`X` by Gaussian moments
    (Isserlis), independently of Mehler's formula: ``u = sqrt(q1) z1``,
    ``v = (q12 / sqrt(q1)) z1 + sqrt(q2 - q12^2 / q1) z2``, ``E[z^(2m)] = (2m-1)!!``."""
    z1, z2 = sp.symbols("z1 z2", real=True)
    u = sp.sqrt(Q1) * z1
    v = Q12 / sp.sqrt(Q1) * z1 + sp.sqrt(Q2 - Q12**2 / Q1) * z2
    prod = sp.Poly(sp.expand(phi.subs(X, u) * phi.subs(X, v)), z1, z2)

    def mom(m):
        return 0 if m % 2 else math.prod(range(m - 1, 0, -2))

    out = sum(
        (cf * mom(i) * mom(j) for (i, j), cf in zip(prod.monoms(), prod.coeffs())),
        sp.Integer(0),
    )
    return sp.expand(out)


def _polynomial(deg: int) -> Family:
    coef = sp.symbols(f"c0:{deg + 1}", real=True)
    f, g = mehler_dual(coef)
    dcoef = [i * coef[i] for i in range(1, deg + 1)] or [sp.Integer(0)]
    return Family(
        f"polynomial{deg}",
        tuple(coef),
        sum((coef[i] * X**i for i in range(deg + 1)), sp.Integer(0)),
        f,
        g,
        lambda *c: _layers().Polynomial(tuple(c)),
        tuple((-1.0, 1.0) for _ in range(deg + 1)),
        derivative_dual=mehler_dual(dcoef)[0],
        reference="Mehler's formula",
    )


def _monomial(n: int) -> Family:
    coef = [sp.Integer(0)] * n + [sp.Integer(1)]
    f, g = mehler_dual(coef)
    dcoef = [sp.Integer(0)] * (n - 1) + [sp.Integer(n)] if n else [sp.Integer(0)]
    return Family(
        f"monomial{n}",
        (),
        X**n,
        f,
        g,
        lambda: _layers().Monomial(n),
        derivative_dual=mehler_dual(dcoef)[0],
        reference="Mehler's formula",
    )


def _exp() -> Family:
    a, b = sp.symbols("a b", real=True)
    e = sp.exp(b**2 * (Q1 + Q2 + 2 * Q12) / 2)
    return Family(
        "exp",
        (a, b),
        a * sp.exp(b * X),
        a**2 * e,
        a**2 * b**2 * e,
        lambda a_, b_: _layers().Exp(a_, b_),
        ((-2.0, 2.0), (-1.0, 1.0)),
        derivative_dual=(a * b) ** 2 * e,  # phi' = Exp(a b, b)
        reference="Gaussian moment generating function",
    )


def _gaussian() -> Family:
    a, b = sp.symbols("a b", real=True)
    det = (1 - 2 * b * Q1) * (1 - 2 * b * Q2) - 4 * b**2 * Q12**2
    return Family(
        "gaussian",
        (a, b),
        a * sp.exp(b * X**2),
        _gauss_dual(a, b),
        4 * a**2 * b**2 * Q12 / det ** sp.Rational(3, 2),
        lambda a_, b_: _layers().Gaussian(a_, b_),
        ((-2.0, 2.0), (-1.0, 0.1)),
        reference="Gaussian integral of exp(b (u^2 + v^2))",
    )


def _identity() -> Family:
    return Family(
        "identity",
        (),
        X,
        Q12,
        sp.Integer(1),
        lambda: _layers().Identity(),
        derivative_dual=sp.Integer(1),
        reference="F = q12",
    )


_SIMPLE = {
    "abrelu": _abrelu,
    "sign": _sign,
    "erf": _erf,
    "sin": _sin,
    "cos": _cos,
    "rbf": _rbf,
    "gelu": _gelu,
    "exp": _exp,
    "gaussian": _gaussian,
    "identity": _identity,
}


@cache
def family(name: str) -> Family:
    """A family by name: ``abrelu``, ``sign``, ``rectmono<n>``, ``erf``, ``sin``, ``cos``,
    ``rbf``, ``gelu``, ``polynomial<degree>``, ``monomial<n>``, ``exp``, ``gaussian``,
    ``identity``."""
    if name in _SIMPLE:
        return _SIMPLE[name]()
    for prefix, maker in (("rectmono", _rectmono), ("polynomial", _polynomial),
                          ("monomial", _monomial)):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            return maker(int(name[len(prefix):]))
    raise KeyError(f"unknown family {name!r}")


def closed_families(max_order: int = 4, poly_degree: int = 4) -> list[Family]:
    """Every closed family: rectified monomials of order ``0..max_order``, monomials of
    degree ``0..poly_degree`` and the general polynomial of degree ``poly_degree``."""
    names = ["abrelu", "sign"]
    names += [f"rectmono{n}" for n in range(max_order + 1)]
    names += ["erf", "sin", "cos", "rbf", "gelu"]
    names += [f"polynomial{poly_degree}"]
    names += [f"monomial{n}" for n in range(poly_degree + 1)]
    names += ["exp", "gaussian", "identity"]
    return [family(n) for n in names]


def family_of(layer) -> tuple[Family, tuple]:
    """``(family, parameter values)`` of a :mod:`analytic_ntk.layers` activation."""
    lay = _layers()
    if isinstance(layer, lay.ABRelu):
        return family("abrelu"), (layer.a, layer.b)
    if isinstance(layer, lay.Sign):
        return family("sign"), ()
    if isinstance(layer, lay.RectifiedMonomial):
        return family(f"rectmono{layer.degree}"), ()
    if isinstance(layer, lay.Polynomial):
        return family(f"polynomial{len(layer.coef) - 1}"), tuple(layer.coef)
    for cls, name, attrs in (
        (lay.Erf, "erf", ("a", "b", "c")),
        (lay.Sin, "sin", ("a", "b", "c")),
        (lay.Cos, "cos", ("a", "b", "c")),
        (lay.Rbf, "rbf", ("gamma",)),
        (lay.Gelu, "gelu", ()),
        (lay.Exp, "exp", ("a", "b")),
        (lay.Gaussian, "gaussian", ("a", "b")),
        (lay.Identity, "identity", ()),
    ):
        if isinstance(layer, cls):
            return family(name), tuple(getattr(layer, k) for k in attrs)
    raise KeyError(f"no closed family for {layer!r}")


# ------------------------------------------------------------------- the proofs


@dataclass(frozen=True)
class PriceResult:
    """Outcome of :func:`price_check`: ``method`` is ``"symbolic"`` (SymPy simplified
    ``dF/dq12 - target`` to 0) or ``"numerical"`` (mpmath at ``dps`` digits at random
    points; ``max_rel_err`` the largest relative difference)."""

    family: str
    method: str
    ok: bool
    max_rel_err: float = 0.0
    dps: int = 0


@cache
def lambdify_mp(expr: sp.Expr, params: tuple) -> Callable:
    """``expr`` as an mpmath function of ``(q1, q2, q12, *params)``."""
    return sp.lambdify((Q1, Q2, Q12, *params), expr, modules=MPMATH)


def random_point(fam: Family, rng: random.Random) -> tuple:
    """Random ``(q1, q2, q12, values)`` with ``|q12| < 0.95 sqrt(q1 q2)``."""
    q1 = rng.uniform(0.1, 3.0)
    q2 = rng.uniform(0.1, 3.0)
    q12 = rng.uniform(-0.95, 0.95) * math.sqrt(q1 * q2)
    return q1, q2, q12, fam.sample(rng)


def numeric_identity(
    fam: Family, lhs: sp.Expr, rhs: sp.Expr, *, dps: int = 50, npoints: int = 6, seed: int = 0
) -> float:
    """Largest relative difference of ``lhs`` and ``rhs`` at ``npoints`` random points in
    ``dps``-digit arithmetic (relative to ``max(|lhs|, |rhs|, 1e-30)``)."""
    rng = random.Random(seed)
    fl = lambdify_mp(lhs, fam.params)
    fr = lambdify_mp(rhs, fam.params)
    worst = mpmath.mpf(0)
    with mpmath.workdps(dps):
        for _ in range(npoints):
            q1, q2, q12, vals = random_point(fam, rng)
            args = [mpmath.mpf(v) for v in (q1, q2, q12, *vals)]
            a, b = fl(*args), fr(*args)
            scale = max(abs(a), abs(b), mpmath.mpf("1e-30"))
            worst = max(worst, abs(a - b) / scale)
    return float(worst)


def price_check(
    fam: Family, *, symbolic: bool = True, dps: int = 50, npoints: int = 6, seed: int = 0
) -> PriceResult:
    """Prove Price's identity ``dF/dq12 == target`` for a family.

    First symbolically, ``simplify(diff(F, q12) - target) == 0`` (``symbolic=True``);
    if SymPy does not reach 0 (or ``symbolic=False``), numerically: the exact
    derivative ``diff(F, q12)`` against the target in ``dps``-digit mpmath at
    ``npoints`` random points; passes when the relative difference is below
    ``10^(10 - dps)``.
    """
    d = sp.diff(fam.dual, Q12)
    if symbolic and sp.simplify(d - fam.target) == 0:
        return PriceResult(fam.name, "symbolic", True)
    err = numeric_identity(fam, d, fam.target, dps=dps, npoints=npoints, seed=seed)
    return PriceResult(fam.name, "numerical", err < 10.0 ** (10 - dps), err, dps)


def derivative_dual_check(fam: Family) -> bool | None:
    """``simplify(derivative_dual - factor) == 0`` (None when ``phi'`` has no closed
    family): the factor re-derived as the dual of ``phi'``."""
    if fam.derivative_dual is None:
        return None
    return sp.simplify(fam.derivative_dual - fam.factor) == 0


def diag_derivative(fam: Family, which: int = 1) -> sp.Expr:
    """``dF/dq1`` (``which=1``) or ``dF/dq2`` of the dual, simplified (by Stein's lemma
    ``dF/dq1 = E[phi''(u) phi(v)] / 2``)."""
    return sp.simplify(sp.diff(fam.dual, Q1 if which == 1 else Q2))
