"""Arc-cosine kernels of any order (Cho & Saul 2009) with SymPy.

For ``phi(x) = max(x, 0)^n`` and a centred Gaussian pair ``(u, v)`` with variances
``q1, q2`` and covariance ``q12 = sqrt(q1 q2) cos(theta)``,

.. math::

    k_n(q_1, q_2, q_{12}) = E[\\phi(u)\\phi(v)]
        = \\frac{(q_1 q_2)^{n/2}}{2\\pi} J_n(\\theta), \\qquad
    J_n(\\theta) = (-1)^n (\\sin\\theta)^{2n+1}
        \\Big(\\frac{1}{\\sin\\theta}\\frac{\\partial}{\\partial\\theta}\\Big)^n
        \\frac{\\pi - \\theta}{\\sin\\theta}

(Y. Cho and L. K. Saul, "Kernel methods for deep learning", NIPS 2009, eq. (4)).
Expanding the operator gives ``J_n = (pi - theta) B_n(cos, sin) + A_n(cos, sin)`` with
``A_n``, ``B_n`` homogeneous integer polynomials of degree ``n`` (:func:`j_parts`).

The NTK factor is ``E[phi'(u) phi'(v)] = dk_n/dq12`` (Price's theorem: R. Price, "A
useful theorem for nonlinear devices having Gaussian inputs", IRE Trans. Inf. Theory
4, 1958); it equals

.. math::

    \\frac{\\partial k_n}{\\partial q_{12}}
        = \\frac{n^2 (q_1 q_2)^{(n-1)/2}}{2\\pi} J_{n-1}(\\theta),

which follows from ``dJ_n/dtheta = -n^2 sin(theta) J_(n-1)`` (equivalently
``dJ_n/dcos(theta) = n^2 J_(n-1)``; for ``n = 1``: ``dJ_1/dc = J_0 = pi - theta``, the
ReLU factor ``(pi - theta)/(2 pi)``).  For ``n = 0`` (the step ``[x > 0]``) the formula
gives 0, the almost-everywhere derivative the library uses (as ``stax``), whereas
``dk_0/dq12 = 1/(2 pi sqrt(q1 q2 - q12^2)) = E[delta(u) delta(v)]``.

Zero tests of trigonometric polynomials are exact: :func:`is_trig_zero` replaces
``sin``, ``cos`` by symbols ``s``, ``c`` and reduces modulo ``s^2 + c^2 - 1``.
"""

from __future__ import annotations

from functools import cache

import sympy as sp

__all__ = [
    "C",
    "S",
    "THETA",
    "Q1",
    "Q2",
    "Q12",
    "diag_derivative",
    "double_factorial_odd",
    "dual",
    "factor",
    "is_trig_zero",
    "j_operator",
    "j_parts",
    "j_recurrence",
    "j_theta",
    "j_checks",
    "price_residual",
    "step_price_residual",
]

THETA = sp.Symbol("t", real=True)
"""The angle ``theta`` (printed ``t`` in generated code)."""
S, C = sp.symbols("s c", real=True)
"""Stand-ins for ``sin(theta)`` and ``cos(theta)``."""
Q1, Q2 = sp.symbols("q1 q2", positive=True)
Q12 = sp.Symbol("q12", real=True)


def double_factorial_odd(n: int) -> int:
    """``(2n - 1)!!`` with ``(-1)!! = 1``."""
    out = 1
    for k in range(1, n + 1):
        out *= 2 * k - 1
    return out


@cache
def j_operator(n: int) -> sp.Expr:
    """``J_n(theta)`` straight from the Cho-Saul operator, expanded (a polynomial in
    ``theta``, ``sin theta``, ``cos theta``)."""
    if n < 0:
        raise ValueError("order n must be >= 0")
    t = THETA
    f = (sp.pi - t) / sp.sin(t)
    for _ in range(n):
        f = sp.diff(f, t) / sp.sin(t)
    return sp.expand((-1) ** n * sp.sin(t) ** (2 * n + 1) * f)


@cache
def j_parts(n: int) -> tuple[sp.Expr, sp.Expr]:
    """``(A_n, B_n)`` with ``J_n = (pi - theta) B_n + A_n``, polynomials in :data:`C`,
    :data:`S` (homogeneous of degree ``n``, integer coefficients)."""
    t = THETA
    e = j_operator(n).subs({sp.sin(t): S, sp.cos(t): C})
    e = sp.expand(e)
    b = -e.coeff(t, 1)
    a = sp.expand(e - (sp.pi - t) * b)
    if a.has(t) or a.has(sp.pi) or b.has(t) or b.has(sp.pi):
        raise AssertionError(f"J_{n} is not of the form (pi - t) B + A")
    return a, b


def j_theta(n: int) -> sp.Expr:
    """Simplified ``J_n(theta) = (pi - theta) B_n(cos theta, sin theta) + A_n(...)``."""
    a, b = j_parts(n)
    sub = {S: sp.sin(THETA), C: sp.cos(THETA)}
    return (sp.pi - THETA) * b.subs(sub) + a.subs(sub)


@cache
def j_recurrence(n: int) -> sp.Expr:
    """``J_n`` from ``J_0 = pi - theta``, ``J_1 = sin + (pi - theta) cos`` and
    ``J_n = (2n-1) cos J_(n-1) + (n-1)^2 sin^2 J_(n-2)``."""
    t = THETA
    if n == 0:
        return sp.pi - t
    if n == 1:
        return sp.sin(t) + (sp.pi - t) * sp.cos(t)
    return sp.expand(
        (2 * n - 1) * sp.cos(t) * j_recurrence(n - 1)
        + (n - 1) ** 2 * sp.sin(t) ** 2 * j_recurrence(n - 2)
    )


def is_trig_zero(expr) -> bool:
    """Exact test that a polynomial in ``theta``, ``pi``, ``sin theta``, ``cos theta``
    vanishes identically: the remainder modulo ``sin^2 + cos^2 - 1`` must be 0."""
    t = THETA
    e = sp.expand(sp.sympify(expr).subs({sp.sin(t): S, sp.cos(t): C}))
    if e == 0:
        return True
    _, rem = sp.reduced(e, [S**2 + C**2 - 1], S, C, t, sp.pi)
    return sp.expand(rem) == 0


def j_checks(n: int) -> dict[str, bool]:
    """Exact checks of ``J_n`` (each value True when proven):

    * ``form``: ``J_0 = pi - theta`` (n = 0), ``J_1 = sin + (pi - theta) cos`` (n = 1);
    * ``at_zero``: ``J_n(0) = pi (2n-1)!!``;  ``at_pi``: ``J_n(pi) = 0``;
    * ``recurrence``: the operator's ``J_n`` equals the recurrence's;
    * ``derivative``: ``dJ_n/dtheta = -n^2 sin(theta) J_(n-1)`` (n >= 1), i.e.
      ``dJ_n/dc = n^2 J_(n-1)`` with ``c = cos theta``;
    * ``simplified``: the canonical form :func:`j_theta` equals the operator's.
    """
    t = THETA
    jn = j_operator(n)
    out = {}
    if n == 0:
        out["form"] = is_trig_zero(jn - (sp.pi - t))
    elif n == 1:
        out["form"] = is_trig_zero(jn - (sp.sin(t) + (sp.pi - t) * sp.cos(t)))
    out["at_zero"] = sp.simplify(jn.subs(t, 0) - sp.pi * double_factorial_odd(n)) == 0
    out["at_pi"] = sp.simplify(jn.subs(t, sp.pi)) == 0
    out["recurrence"] = is_trig_zero(jn - j_recurrence(n))
    if n >= 1:
        out["derivative"] = is_trig_zero(sp.diff(jn, t) + n**2 * sp.sin(t) * j_operator(n - 1))
    out["simplified"] = is_trig_zero(jn - j_theta(n))
    return out


def _theta_q():
    return sp.acos(Q12 / sp.sqrt(Q1 * Q2))


def dual(n: int) -> sp.Expr:
    """``k_n = (q1 q2)^(n/2) J_n(theta) / (2 pi)``, ``theta = acos(q12 / sqrt(q1 q2))``."""
    return (Q1 * Q2) ** sp.Rational(n, 2) * j_theta(n).subs(THETA, _theta_q()) / (2 * sp.pi)


def factor(n: int) -> sp.Expr:
    """The NTK factor ``n^2 (q1 q2)^((n-1)/2) J_(n-1)(theta) / (2 pi)`` (0 for n = 0)."""
    if n == 0:
        return sp.Integer(0)
    jm = j_theta(n - 1).subs(THETA, _theta_q())
    return n**2 * (Q1 * Q2) ** sp.Rational(n - 1, 2) * jm / (2 * sp.pi)


def price_residual(n: int) -> sp.Expr:
    """``simplify(dk_n/dq12 - factor_n)``: 0 proves Price's identity for ``n >= 1``."""
    return sp.simplify(sp.diff(dual(n), Q12) - factor(n))


def step_price_residual() -> sp.Expr:
    """For ``n = 0``: ``simplify(dk_0/dq12 - E[delta(u) delta(v)])`` with
    ``E[delta(u) delta(v)] = 1 / (2 pi sqrt(q1 q2 - q12^2))`` (the bivariate normal
    density at the origin); 0 proves it.  The library's factor is 0 (a.e. derivative)."""
    dens0 = 1 / (2 * sp.pi * sp.sqrt(Q1 * Q2 - Q12**2))
    return sp.simplify(sp.diff(dual(0), Q12) - dens0)


def diag_derivative(n: int, which: int = 1) -> sp.Expr:
    """``dk_n/dq1`` (``which=1``) or ``dk_n/dq2`` (``which=2``), simplified.

    By homogeneity of degree ``n`` (Euler), ``q1 dk/dq1 + q2 dk/dq2 + q12 dk/dq12 = n k``,
    and by the symmetry ``k(q1, q2, q12) = k(q2, q1, q12)`` one has
    ``dk/dq1 = (n k - q12 dk/dq12) / (2 q1)``.
    """
    q = Q1 if which == 1 else Q2
    return sp.simplify(sp.diff(dual(n), q))
