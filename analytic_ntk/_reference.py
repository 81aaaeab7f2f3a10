"""High-precision reference kernels (a test oracle, independent of the library's numerics).

The float64 inputs are taken as exact numbers.  The input kernel ``x1 x2^T / d`` and the
variances ``|x|^2 / d`` are formed in mpmath, and the layer recursion of ``design.md``
section 1 is run with the *naive* closed forms at ``dps`` significant digits: the angle is
``atan2(sqrt(cov1 cov2 - nngp^2), nngp)`` (as naive as ``arccos(nngp / sqrt(cov1 cov2))``).
At 50 digits the half of the digits lost near ``c = +-1`` still leaves ~25 correct
digits, far more than float64 needs.

Only the layer *specifications* of :mod:`analytic_ntk.layers` are used (their parameter
fields); nothing from :mod:`analytic_ntk.duals` or :mod:`analytic_ntk.recursion`, so this
module checks them independently.  Every dual below is written out here from the
formulas of ``design.md`` section 2 (references in :func:`dual`).  It is slow (pure
mpmath, loops over entries): use a handful of inputs.

Angles below the working precision are snapped to 0 or pi (see ``_angle``).

Activations without a closed form (any layer object with the attributes ``expr``,
``deriv_expr`` and ``kinks``: a SymPy expression of phi, one of phi', and the points where
phi, phi' or phi'' is not smooth) are integrated numerically by :func:`generic_dual`:
iterated mpmath tanh-sinh quadrature split at the kinks, independent of the library's
Gauss-Hermite rules.

Conventions for zero variance (``P = sqrt(cov1 cov2) = 0``): the positively homogeneous
families (ABRelu, RectifiedMonomial, Sign) give ``nngp' = 0`` (``sign(0) = step(0) = 0``,
as in the library), and their NTK factor is evaluated at ``theta = pi/2``; it multiplies an
NTK entry that is itself 0 whenever the variance is 0, so its value does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from math import comb

import mpmath
import numpy as np

from .layers import (
    ABRelu,
    Cos,
    Dense,
    Erf,
    Exp,
    Gaussian,
    Gelu,
    Identity,
    Network,
    Polynomial,
    Rbf,
    RectifiedMonomial,
    Sign,
    Sin,
)

__all__ = [
    "ReferenceKernel",
    "dual",
    "generic_callables",
    "generic_dual",
    "GENERIC_DPS",
    "reference",
    "reference_kernel",
    "scaled_error",
]


def _mp(v):
    """A float64 value as an exact mpf (no rounding: 53 bits fit in any dps >= 16)."""
    return mpmath.mpf(float(v))


def _angle(q1, q2, q12):
    """``(P, theta)`` with ``theta = atan2(sqrt(q1 q2 - q12^2), q12)``; ``pi/2`` when P = 0.

    Angles below ``~10^-(dps/2 - 2)`` cannot be told from the rounding of
    ``q1 q2 - q12^2`` at this precision and are snapped to 0 (or pi): exactly collinear
    pairs (duplicates, ``d = 1``) stay exactly collinear, which matters because the
    Sign and step duals map an angle ``t`` to one of order ``sqrt(t)``.
    """
    p2 = q1 * q2
    if p2 == 0:
        return mpmath.mpf(0), mpmath.pi / 2
    det = p2 - q12 * q12
    if det <= p2 * mpmath.mpf(10) ** (4 - mpmath.mp.dps):
        det = mpmath.mpf(0)
    return mpmath.sqrt(p2), mpmath.atan2(mpmath.sqrt(det), q12)


def _odd_double_factorial(m):
    """``m!!`` for odd ``m >= -1`` (``(-1)!! = 1``)."""
    r = 1
    while m > 1:
        r *= m
        m -= 2
    return r


def _gauss_moment(i, j, q1, q2, q12):
    """``(E[u^i v^j], d/dq12 E[u^i v^j])`` for centred Gaussian ``(u, v)`` (Isserlis).

    Counting pairings: ``k`` cross pairs ``(u, v)`` can be chosen in
    ``C(i, k) C(j, k) k!`` ways, the remaining ``i - k`` copies of ``u`` pair among
    themselves in ``(i-k-1)!!`` ways (likewise for ``v``).
    """
    m = mpmath.mpf(0)
    dm = mpmath.mpf(0)
    for k in range(min(i, j) + 1):
        if (i - k) % 2 or (j - k) % 2:
            continue
        w = (
            comb(i, k)
            * comb(j, k)
            * mpmath.factorial(k)
            * _odd_double_factorial(i - k - 1)
            * _odd_double_factorial(j - k - 1)
        )
        rest = q1 ** ((i - k) // 2) * q2 ** ((j - k) // 2)
        m += w * rest * q12**k
        if k > 0:
            dm += w * rest * k * q12 ** (k - 1)
    return m, dm


def _arccos_j(n, theta):
    """Cho & Saul's ``J_n(theta)`` by ``J_n = (2n-1) cos J_(n-1) + (n-1)^2 sin^2 J_(n-2)``."""
    c, s = mpmath.cos(theta), mpmath.sin(theta)
    j0 = mpmath.pi - theta
    if n == 0:
        return j0
    jm, jn = j0, s + j0 * c
    for k in range(2, n + 1):
        jm, jn = jn, (2 * k - 1) * c * jn + (k - 1) ** 2 * s * s * jm
    return jn


# ------------------------------------------------------------ generic activations

#: Node counts per piece of the Gauss-Legendre rules of :func:`generic_dual`, tried in
#: turn (each result checked against the next one).
_GL_SIZES = (8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 128, 160, 192)

#: Fixed breakpoints of every rule besides 0 and the kinks (shorter pieces near the
#: mass of the Gaussian converge faster for functions with poles near the real axis).
_BASE_SPLITS = (-4, -2, 2, 4)

#: Precision (decimal digits) of the numerical duals inside :func:`dual` and hence
#: :func:`reference`: ``min(mpmath.mp.dps, GENERIC_DPS)``.  30 digits are far more than
#: a float64 check needs, and the cost grows quickly with the precision.
GENERIC_DPS = 30


def _mp_number(k):
    """A kink location as an mpf: floats and ints exactly, SymPy numbers to 20 extra digits."""
    try:
        return mpmath.mpf(k)
    except (TypeError, ValueError):
        import sympy

        return mpmath.mpf(str(sympy.N(sympy.sympify(k), mpmath.mp.dps + 20)))


@cache
def _gl_nodes(n: int, prec: int):
    """Gauss-Legendre nodes and weights on ``[-1, 1]`` at ``prec`` bits (Newton on the
    three-term recurrence of ``P_n`` from Tricomi's initial guesses; ``n`` even)."""
    if n % 2:
        raise ValueError("n must be even")
    with mpmath.workprec(prec + 20):
        xs, ws = [], []
        tol = mpmath.mpf(2) ** (-prec - 10)
        for i in range(1, n // 2 + 1):
            x = mpmath.cos(mpmath.pi * (4 * i - 1) / (4 * n + 2))
            for _ in range(100):
                p0, p1 = mpmath.mpf(1), x
                for k in range(2, n + 1):
                    p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
                dp = n * (x * p1 - p0) / (x * x - 1)
                dx = p1 / dp
                x -= dx
                if abs(dx) < tol:
                    break
            w = 2 / ((1 - x * x) * dp * dp)
            xs += [x, -x]
            ws += [w, w]
    with mpmath.workprec(prec):
        return tuple(+x for x in xs), tuple(+w for w in ws)


def _breakpoints(splits, half):
    """``[-half, ..., half]`` with 0, +-2, +-4 and the ``splits`` inside ``(-half, half)``."""
    inside = {mpmath.mpf(0), *(mpmath.mpf(p) for p in _BASE_SPLITS)}
    inside.update(p for p in splits if -half < p < half)
    return [-half, *sorted(inside), half]


def _normal_rule(pts, n):
    """Nodes and weights of ``E[f(Z)] ~ sum_k w_k f(z_k)``, ``Z ~ N(0, 1)`` truncated to
    ``[pts[0], pts[-1]]``: an ``n``-point Gauss-Legendre rule on each piece, times the
    density."""
    xs, ws = _gl_nodes(n, mpmath.mp.prec)
    c0 = 1 / mpmath.sqrt(2 * mpmath.pi)
    zs, wz = [], []
    for lo, hi in zip(pts[:-1], pts[1:]):
        h, m = (hi - lo) / 2, (hi + lo) / 2
        for x, w in zip(xs, ws):
            z = m + h * x
            zs.append(z)
            wz.append(c0 * h * w * mpmath.exp(-z * z / 2))
    return zs, wz


def _expect(pair, scale, ks, half, n):
    """``(E[phi(s Z)], E[phi'(s Z)], E[phi(s Z)^2], E[phi'(s Z)^2])`` for ``s = scale``."""
    zs, wz = _normal_rule(_breakpoints([k / scale for k in ks], half), n)
    vals = [pair(scale * z) for z in zs]
    f = [v[0] for v in vals]
    g = [v[1] for v in vals]
    return (
        mpmath.fdot(wz, f),
        mpmath.fdot(wz, g),
        mpmath.fdot(wz, [v * v for v in f]),
        mpmath.fdot(wz, [v * v for v in g]),
    )


def _start_size(dps):
    """Index in ``_GL_SIZES`` of the first node count per piece for ``dps`` digits: the
    largest not above ``1.1 dps`` (about ``1.2 dps`` nodes per piece are needed for the
    smooth activations tried, tanh, erf, sin, softplus, elu, at variances ~1-3)."""
    k = 0
    while k + 2 < len(_GL_SIZES) and _GL_SIZES[k + 1] <= 1.1 * dps:
        k += 1
    return k


def _generic_dual_pair(pair, kinks, q1, q2, q12, dps):
    """:func:`generic_dual` with ``pair(x) = (phi(x), phi'(x))``."""
    with mpmath.workdps(dps + 5):
        # not rounded: near c = +-1 the angle depends on the last digits of q12
        q1, q2, q12 = (v if isinstance(v, mpmath.mpf) else mpmath.mpf(v) for v in (q1, q2, q12))
        if q1 < 0 or q2 < 0:
            raise ValueError(f"negative variance: q1 = {q1}, q2 = {q2}")
        ks = [_mp_number(k) for k in kinks]
        zero = mpmath.mpf(0)
        # the standard normal density is below 10^-(dps + 5) beyond |z| = half (the 2-D
        # one outside the disc of that radius), and the transition of a smoothed kink has
        # decayed below it half widths from its centre
        half = mpmath.sqrt(2 * (dps + 5) * mpmath.log(10))
        half2 = float(half) ** 2

        if q1 == 0 and q2 == 0:
            f0, g0 = pair(zero)
            return mpmath.mpf(f0) ** 2, mpmath.mpf(g0) ** 2
        p2 = mpmath.fmul(q1, q2, exact=True)
        det = mpmath.fsub(p2, mpmath.fmul(q12, q12, exact=True), exact=True)
        if det < 0:
            if -det > p2 * mpmath.mpf(10) ** (4 - dps):
                raise ValueError(f"not a covariance: q12^2 - q1 q2 = {-det} > 0")
            det = zero
        a = mpmath.sqrt(q1)
        b = mpmath.sqrt(q2)

        # scale of the result: E|phi(u) phi(v)| + E|phi'(u) phi'(v)| <= this (Cauchy-Schwarz)
        n_scale = _GL_SIZES[_start_size(dps)]
        _, _, f1, g1 = _expect(pair, a, ks, half, n_scale) if q1 > 0 else (0, 0, 0, 0)
        _, _, f2, g2 = _expect(pair, b, ks, half, n_scale) if q2 > 0 else (0, 0, 0, 0)
        f0, g0 = pair(zero)
        f1, g1 = (f1, g1) if q1 > 0 else (f0 * f0, g0 * g0)
        f2, g2 = (f2, g2) if q2 > 0 else (f0 * f0, g0 * g0)
        scale = mpmath.sqrt(f1 * f2) + mpmath.sqrt(g1 * g2)

        if q1 == 0 or q2 == 0:  # phi(0) E[phi(v)] (or with u and v swapped)

            def rule(n):
                ef, eg, _, _ = _expect(pair, a + b, ks, half, n)
                return f0 * ef, g0 * eg

        elif q12 == 0:  # independent: a product of two 1-D expectations

            def rule(n):
                fa, ga, _, _ = _expect(pair, a, ks, half, n)
                fb, gb, _, _ = _expect(pair, b, ks, half, n)
                return fa * fb, ga * gb

        elif det == 0:  # c = +-1: v = (q12 / a) z exactly
            bc = q12 / a
            pts = _breakpoints([k / a for k in ks] + [k / bc for k in ks], half)

            def rule(n):
                zs, wz = _normal_rule(pts, n)
                f, g = [], []
                for z in zs:
                    fu, gu = pair(a * z)
                    fv, gv = pair(bc * z)
                    f.append(fu * fv)
                    g.append(gu * gv)
                return mpmath.fdot(wz, f), mpmath.fdot(wz, g)

        else:  # u = a z1, v = bc z1 + bs z2
            bc = q12 / a
            bs = mpmath.sqrt(det) / a
            w = bs / abs(bc)  # width in z1 of a kink of v smoothed by the inner integral
            outer_splits = [k / a for k in ks]
            for k in ks:
                centre = k / bc
                outer_splits += [centre, centre - half * w, centre + half * w]
            outer_pts = _breakpoints(outer_splits, half)
            plain_pts = _breakpoints((), half)

            def rule(n):
                z1s, w1 = _normal_rule(outer_pts, n)
                z2s, w2 = _normal_rule(plain_pts, n)
                plain = [(float(z) ** 2, bs * z, wz) for z, wz in zip(z2s, w2)]
                f, g = [], []
                for z1 in z1s:
                    mean = bc * z1
                    room = half2 - float(z1) ** 2  # the disc: z2^2 < half^2 - z1^2
                    inner = [(k - mean) / bs for k in ks]
                    if any(-half < p < half for p in inner):
                        z2s, w2 = _normal_rule(_breakpoints(inner, half), n)
                        nodes = [(float(z) ** 2, bs * z, wz) for z, wz in zip(z2s, w2)]
                    else:
                        nodes = plain
                    ws, fv, gv = [], [], []
                    for z2sq, shift, wz in nodes:
                        if z2sq < room:
                            fx, gx = pair(mean + shift)
                            ws.append(wz)
                            fv.append(fx)
                            gv.append(gx)
                    fu, gu = pair(a * z1)
                    f.append(fu * mpmath.fdot(ws, fv))
                    g.append(gu * mpmath.fdot(ws, gv))
                return mpmath.fdot(w1, f), mpmath.fdot(w1, g)

        # geometric convergence of the Gauss-Legendre rules, err(n) ~ rho^(-2n): the
        # error of the finer result is about (diff / scale)^(n_cur / n_prev) * scale
        scale = max(scale, mpmath.mpf(10) ** (-3 * dps))
        tol = mpmath.mpf(10) ** -(dps + 1)
        start = _start_size(dps)
        prev = rule(_GL_SIZES[start])
        for k in range(start + 1, len(_GL_SIZES)):
            cur = rule(_GL_SIZES[k])
            diff = max(abs(cur[0] - prev[0]), abs(cur[1] - prev[1])) / scale
            if diff == 0 or diff ** (mpmath.mpf(_GL_SIZES[k]) / _GL_SIZES[k - 1]) <= tol:
                return cur
            prev = cur
        raise RuntimeError(
            f"generic_dual: no convergence with {_GL_SIZES[-1]} nodes per piece (last change "
            f"{mpmath.nstr(diff, 3)} of the scale); is a kink missing from kinks?"
        )


def generic_dual(fn, dfn, kinks, q1, q2, q12, dps: int = 30):
    """``(E[phi(u) phi(v)], E[phi'(u) phi'(v)])`` for any activation, by quadrature.

    ``(u, v) ~ N(0, [[q1, q12], [q12, q2]])`` is written ``u = a z1``,
    ``v = (q12 / a) z1 + (sqrt(q1 q2 - q12^2) / a) z2`` with ``a = sqrt(q1)`` and
    independent standard normal ``z1, z2`` (that is ``v = sqrt(q2) (c z1 + s z2)`` with
    ``c = q12 / sqrt(q1 q2)`` and ``s = sqrt(1 - c^2)``, without forming ``c`` or ``s``).
    Iterated quadrature, outer over ``z1`` and inner over ``z2``, both on
    ``|z| < r = sqrt(2 (dps + 5) ln 10)`` (the 2-D rule on the disc of that radius; the
    density is below ``10^-(dps+5)`` outside), cut into pieces at 0, +-2, +-4 and the
    kinks, with an ``n``-point Gauss-Legendre rule on each piece (nodes computed here, by
    Newton's method in mpmath; nothing is taken from the library).  ``n`` runs through
    ..., 20, 24, 28, 32, 40, 48, ... from about ``dps`` until two successive results
    ``I(n_prev)``, ``I(n)`` differ by ``delta`` (relative to the Cauchy-Schwarz scale
    ``sqrt(E phi(u)^2 E phi(v)^2) + sqrt(E phi'(u)^2 E phi'(v)^2)``) with
    ``delta^(n / n_prev) <= 10^-(dps+1)``: Gauss-Legendre converges geometrically on
    pieces where the integrand is analytic, ``err(n) ~ rho^(-2n)``, so that is the
    predicted error of ``I(n)``, which is returned.

    Nested adaptive ``mpmath.quad`` (tanh-sinh) gives the same digits but took 20-200 s
    per call at 30 digits; this takes about 0.5-3 s (15 s for erf, whose mpmath
    evaluation is slow).

    Parameters
    ----------
    fn, dfn : callable
        ``phi`` and ``phi'`` on mpmath numbers (for instance ``sympy.lambdify(t, expr,
        "mpmath")``, see :func:`generic_callables`).  Values at a kink are used only when
        a variance is 0.
    kinks : sequence of float
        Points where ``phi``, ``phi'`` or ``phi''`` is not smooth (jumps of ``phi`` too).
        Both integrals are split there: the outer one at ``z1 = k / a`` (kinks of ``u``),
        the inner one at the ``z2`` where ``v`` crosses ``k``, which depends on ``z1``.
    q1, q2, q12 : number
        Variances and covariance, taken as exact (mpf of any precision, or floats).
    dps : int
        Target accuracy in decimal digits (the work is done at ``dps + 5``).  The error
        is about ``10^-dps`` times the scale above (an absolute, not a relative error
        when ``F`` or ``G`` is much smaller than that scale, e.g. odd ``phi`` at
        ``q12 ~ 0``).  Against the closed forms at ``dps = 28-30`` the errors seen are
        ~1e-32 (tests: ``tests/test_reference_generic.py``).

    Returns
    -------
    (F, G) : tuple of mpf

    Raises
    ------
    ValueError
        For a negative variance, or ``q12^2 > q1 q2`` beyond rounding.
    RuntimeError
        When the rules do not converge (typically a kink missing from ``kinks``).

    Notes
    -----
    * The inputs are not rounded to the working precision, and the determinant
      ``q1 q2 - q12^2`` is formed exactly (``mpmath.fmul``/``fsub`` with ``exact=True``),
      so near-duplicate inputs (``1 - c = 1e-20``) keep every digit of ``s``.  It is 0,
      and the integral 1-D along ``v = (q12 / a) z``, only for exactly collinear inputs
      (``c = +-1``) or when it is negative by rounding (by at most ``10^(4 - dps) q1 q2``).
    * As ``s -> 0`` the inner integral, as a function of ``z1``, is a copy of ``phi(v)``
      smoothed over the width ``w = s / |c| = sqrt(det) / |q12|`` (in ``z1``) around the
      centres ``z1 = k a / q12`` of the kinks of ``v``.  The outer integral is also cut at
      each centre and at ``centre +- r w``: outside them the integrand is smooth to the
      working precision, inside them the transition fills the piece.
    * ``q12 = 0``: the product of two 1-D expectations.  A zero variance: ``u = 0`` (or
      ``v = 0``): ``F = phi(0) E[phi(v)]``, ``G = phi'(0) E[phi'(v)]``.
    * The truncation assumes that ``phi`` grows slowly: polynomially, or like ``exp(b t)``
      with ``b sqrt(q)`` of order 1 at most.
    """

    def pair(x):
        return fn(x), dfn(x)

    f, g = _generic_dual_pair(pair, kinks, q1, q2, q12, dps)
    with mpmath.workdps(dps):
        return +f, +g


def _dirac_delta(*args):
    """``DiracDelta`` in a derivative: 0, the convention of ``Sign`` (stax)."""
    return 0


def _heaviside(x, h0=None):
    """``Heaviside`` on mpmath numbers (``h0`` at 0, default 1/2 as in SymPy)."""
    if x > 0:
        return mpmath.mpf(1)
    if x < 0:
        return mpmath.mpf(0)
    return mpmath.mpf(1) / 2 if h0 is None else mpmath.mpf(h0)


_MODULES = [{"DiracDelta": _dirac_delta, "Heaviside": _heaviside}, "mpmath"]


def _generic_symbol(act):
    import sympy

    expr, deriv_expr = sympy.sympify(act.expr), sympy.sympify(act.deriv_expr)
    sym = getattr(act, "symbol", None)
    if not isinstance(sym, sympy.Symbol):
        free = expr.free_symbols | deriv_expr.free_symbols
        if len(free) > 1:
            names = ", ".join(sorted(str(v) for v in free))
            raise ValueError(f"activation expression in more than one symbol: {names}")
        sym = next(iter(free)) if free else sympy.Symbol("t", real=True)
    return expr, deriv_expr, sym


@lru_cache(maxsize=64)
def _lambdify(expr, deriv_expr, sym):
    import sympy

    return (
        sympy.lambdify(sym, expr, modules=_MODULES),
        sympy.lambdify(sym, deriv_expr, modules=_MODULES),
        sympy.lambdify(sym, (expr, deriv_expr), modules=_MODULES, cse=True),
    )


def generic_callables(act):
    """``(fn, dfn)``: mpmath callables for ``act.expr`` and ``act.deriv_expr``.

    Parameters
    ----------
    act : object
        Any object with SymPy expressions (or strings) ``expr`` (phi) and ``deriv_expr``
        (phi') in one real symbol: ``act.symbol`` if the object has a SymPy ``Symbol``
        there, otherwise the one free symbol of the two expressions (``t`` if none).

    Returns
    -------
    (fn, dfn) : tuple of callable
        ``sympy.lambdify(..., "mpmath")``: constants such as ``sqrt(2)`` or ``pi`` are
        evaluated at the working precision of each call.  ``DiracDelta`` (the derivative
        of a jump) is 0, as for ``Sign``; ``Heaviside(0)`` is SymPy's 1/2.  Cached by the
        expressions.

    Raises
    ------
    ValueError
        When the expressions have more than one free symbol.
    """
    fn, dfn, _ = _lambdify(*_generic_symbol(act))
    return fn, dfn


def _is_generic(act) -> bool:
    """Duck typing for the expression-defined activations (no class needed)."""
    return all(hasattr(act, k) for k in ("expr", "deriv_expr", "kinks"))


def _generic_dual_of(act, q1, q2, q12):
    if act.expr is None or act.deriv_expr is None:
        raise NotImplementedError(
            f"no reference dual for {type(act).__name__} without an expression (built from "
            "functions): the reference integrates expr and deriv_expr"
        )
    pair = _lambdify(*_generic_symbol(act))[2]
    kinks = tuple(act.kinks or ())
    f, g = _generic_dual_pair(pair, kinks, q1, q2, q12, min(mpmath.mp.dps, GENERIC_DPS))
    return +f, +g


def dual(act, q1, q2, q12):
    """``(E[phi(u) phi(v)], E[phi'(u) phi'(v)])`` for ``(u, v) ~ N(0, [[q1, q12], [q12, q2]])``.

    Parameters
    ----------
    act : Activation
        An activation spec from :mod:`analytic_ntk.layers`.
    q1, q2, q12 : mpf
        Variances and covariance (evaluated at the current mpmath precision).

    Returns
    -------
    (F, G) : tuple of mpf
        The dual and the NTK factor ``G = dF/dq12`` (Price's theorem).

    Notes
    -----
    * ABRelu ``a min(x,0) + b max(x,0)``: ``F = (a-b)^2/(2 pi) P sin(theta)
      + ((a^2+b^2)/2 - (a-b)^2 theta/(2 pi)) q12``, ``G = (a^2+b^2)/2 - (a-b)^2 theta/(2 pi)``
      (Cho & Saul 2009, generalised).
    * RectifiedMonomial(n): ``F = P^n J_n / (2 pi)``, ``G = n^2 P^(n-1) J_(n-1) / (2 pi)``.
    * Sign: ``F = 1 - 2 theta / pi``, ``G = 0`` (stax convention).
    * Erf ``a erf(bx) + c`` (Williams 1997): ``F = a^2 (2/pi) asin(2 b^2 q12 / R) + c^2``,
      ``R^2 = (1 + 2b^2 q1)(1 + 2b^2 q2)``, ``G = (4 a^2 b^2 / pi) / sqrt(R^2 - 4 b^4 q12^2)``.
    * Sin/Cos ``a sin(bx + c)``: ``F = a^2/2 [exp(-b^2 (q1+q2-2q12)/2)
      - cos(2c) exp(-b^2 (q1+q2+2q12)/2)]`` (product-to-sum and the Gaussian
      characteristic function); Cos is Sin with ``c + pi/2``.  Rbf(gamma):
      ``F = exp(-gamma (q1 + q2 - 2 q12))``.
    * Gelu ``x Phi(x)``: ``F = q12/4 + q12 asin(rho)/(2 pi) + [q1 q2 + q12^2 (1 - q1 q2)
      / ((1+q1)(1+q2))] / (2 pi sqrt(D))``, ``D = (1+q1)(1+q2) - q12^2``,
      ``rho = q12 / sqrt((1+q1)(1+q2))``; ``G`` by mpmath's numerical derivative.
      (Checked against quadrature of ``act.fn`` in the tests.)
    * Polynomial / Monomial: ``sum_ij coef_i coef_j E[u^i v^j]`` by Isserlis' theorem.
    * Exp ``a exp(bx)``: ``F = a^2 exp(b^2 (q1 + q2 + 2 q12) / 2)``, ``G = b^2 F``.
    * Gaussian ``a exp(b x^2)``: ``F = a^2 / sqrt(Delta)``,
      ``Delta = (1 - 2b q1)(1 - 2b q2) - 4 b^2 q12^2``, ``G = 4 a^2 b^2 q12 / Delta^(3/2)``.
    * Identity: ``F = q12``, ``G = 1``.
    * Any other object with the attributes ``expr``, ``deriv_expr`` and ``kinks`` (an
      activation defined by a SymPy expression; duck typing, checked after the
      closed-form classes): :func:`generic_dual` of :func:`generic_callables` at
      ``min(mpmath.mp.dps, GENERIC_DPS)`` digits.
    """
    pi = mpmath.pi
    if isinstance(act, ABRelu):  # Relu, LeakyRelu, Abs
        a, b = _mp(act.a), _mp(act.b)
        p, th = _angle(q1, q2, q12)
        g = (a * a + b * b) / 2 - (a - b) ** 2 * th / (2 * pi)
        return (a - b) ** 2 / (2 * pi) * p * mpmath.sin(th) + g * q12, g
    if isinstance(act, RectifiedMonomial):
        n = act.degree
        p, th = _angle(q1, q2, q12)
        # step(0) = 0: the order-0 dual vanishes with the variance like the others
        f = p**n * _arccos_j(n, th) / (2 * pi) if p > 0 else mpmath.mpf(0)
        g = n * n * p ** (n - 1) * _arccos_j(n - 1, th) / (2 * pi) if n > 0 else mpmath.mpf(0)
        return f, g
    if isinstance(act, Sign):
        p, th = _angle(q1, q2, q12)
        return (mpmath.mpf(0) if p == 0 else 1 - 2 * th / pi), mpmath.mpf(0)
    if isinstance(act, Erf):
        a, b, c = _mp(act.a), _mp(act.b), _mp(act.c)
        b2 = 2 * b * b
        r2 = (1 + b2 * q1) * (1 + b2 * q2)
        f = a * a * (2 / pi) * mpmath.asin(b2 * q12 / mpmath.sqrt(r2)) + c * c
        g = 4 * a * a * b * b / pi / mpmath.sqrt(r2 - b2 * b2 * q12 * q12)
        return f, g
    if isinstance(act, (Sin, Cos, Rbf)):
        if isinstance(act, Rbf):
            gam = _mp(act.gamma)
            a2, b2, kap = mpmath.mpf(2), 2 * gam, mpmath.mpf(0)
        else:
            a, b, c = _mp(act.a), _mp(act.b), _mp(act.c)
            a2, b2 = a * a, b * b
            kap = mpmath.cos(2 * c) if isinstance(act, Sin) else -mpmath.cos(2 * c)
        em = mpmath.exp(-b2 * (q1 + q2 - 2 * q12) / 2)
        ep = mpmath.exp(-b2 * (q1 + q2 + 2 * q12) / 2)
        return a2 / 2 * (em - kap * ep), a2 * b2 / 2 * (em + kap * ep)
    if isinstance(act, Gelu):

        def f(t):
            t1, t2 = 1 + q1, 1 + q2
            rho = t / mpmath.sqrt(t1 * t2)
            num = q1 * q2 + t * t * (1 - q1 * q2) / (t1 * t2)
            return (
                t / 4
                + t * mpmath.asin(rho) / (2 * pi)
                + num / (2 * pi * mpmath.sqrt(t1 * t2 - t * t))
            )

        return f(q12), mpmath.diff(f, q12)
    if isinstance(act, Polynomial):  # Monomial too
        coef = [_mp(v) for v in act.coef]
        fs = mpmath.mpf(0)
        gs = mpmath.mpf(0)
        for i, ci in enumerate(coef):
            for j, cj in enumerate(coef):
                if ci == 0 or cj == 0:
                    continue
                m, dm = _gauss_moment(i, j, q1, q2, q12)
                fs += ci * cj * m
                gs += ci * cj * dm
        return fs, gs
    if isinstance(act, Exp):
        a, b = _mp(act.a), _mp(act.b)
        f = a * a * mpmath.exp(b * b * (q1 + q2 + 2 * q12) / 2)
        return f, b * b * f
    if isinstance(act, Gaussian):
        a, b = _mp(act.a), _mp(act.b)
        det = (1 - 2 * b * q1) * (1 - 2 * b * q2) - 4 * b * b * q12 * q12
        if det <= 0 or 1 - 2 * b * q1 <= 0 or 1 - 2 * b * q2 <= 0:
            raise ValueError("Gaussian activation: E[phi(u) phi(v)] diverges (b > 0)")
        return a * a / mpmath.sqrt(det), 4 * a * a * b * b * q12 / det ** mpmath.mpf(1.5)
    if isinstance(act, Identity):
        return q12, mpmath.mpf(1)
    if _is_generic(act):
        return _generic_dual_of(act, q1, q2, q12)
    raise NotImplementedError(f"no reference dual for {type(act).__name__}")


@dataclass(frozen=True)
class ReferenceKernel:
    """Reference kernels as object arrays of ``mpmath.mpf``.

    Attributes
    ----------
    nngp, ntk : ndarray of mpf, (n1, n2)
    nngp_diag1, ntk_diag1 : ndarray of mpf, (n1,)
        ``K(x1_i, x1_i)``.
    nngp_diag2, ntk_diag2 : ndarray of mpf, (n2,)
        ``K(x2_j, x2_j)``.
    """

    nngp: np.ndarray
    ntk: np.ndarray
    nngp_diag1: np.ndarray
    ntk_diag1: np.ndarray
    nngp_diag2: np.ndarray
    ntk_diag2: np.ndarray

    def as_float(self):
        """``(nngp, ntk)`` rounded to float64 arrays."""
        return self.nngp.astype(float), self.ntk.astype(float)


def _dense(layer, n_in, q, t):
    w2, b2 = _mp(layer.weight_std) ** 2, _mp(layer.bias_std) ** 2
    qn = w2 * q + b2
    if layer.parameterization == "standard":
        return qn, n_in * q + w2 * t + (1 if layer.bias_std > 0 else 0)
    return qn, qn + w2 * t


def _act_diag(act, q, t):
    f, g = dual(act, q, q, q)
    return f, g * t


def reference(network: Network, x1, x2=None, dps: int = 50) -> ReferenceKernel:
    """NNGP and NTK of ``network`` in ``dps``-digit arithmetic.

    Parameters
    ----------
    network : Network
        Built with :func:`analytic_ntk.serial` (only ``network.layers`` is read).
    x1 : array (n1, d)
    x2 : array (n2, d) or None
        ``None`` means ``x2 = x1``; then only the entries ``j >= i`` are computed and
        mirrored (the state is exactly symmetric).
    dps : int
        Working precision in decimal digits.  Layers defined by an expression (see
        :func:`dual`) are integrated at ``min(dps, GENERIC_DPS)`` digits, about 0.3-3 s
        per entry and layer in pure mpmath.

    Returns
    -------
    ReferenceKernel
    """
    sym = x2 is None
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = x1 if x2 is None else np.asarray(x2, dtype=np.float64)
    n1, d = x1.shape
    n2 = x2.shape[0]
    with mpmath.workdps(dps):
        a = [[_mp(v) for v in row] for row in x1]
        b = [[_mp(v) for v in row] for row in x2]
        # state: (nngp, ntk) for the diagonals of x1, of x2, and for every pair
        s1 = [(mpmath.fsum(u * u for u in r) / d, mpmath.mpf(0)) for r in a]
        s2 = [(mpmath.fsum(u * u for u in r) / d, mpmath.mpf(0)) for r in b]
        s12 = [
            [(mpmath.fsum(u * v for u, v in zip(ra, rb)) / d, mpmath.mpf(0)) for rb in b]
            for ra in a
        ]
        n_in = d
        for layer in network.layers:
            if isinstance(layer, Dense):
                s1 = [_dense(layer, n_in, q, t) for q, t in s1]
                s2 = [_dense(layer, n_in, q, t) for q, t in s2]
                s12 = [[_dense(layer, n_in, q, t) for q, t in row] for row in s12]
                if layer.width is not None:
                    n_in = layer.width
                continue
            new12 = []
            for i in range(n1):
                row = []
                for j in range(n2):
                    if sym and j < i:  # x2 = None: the state is symmetric, mirror it
                        row.append(new12[j][i])
                        continue
                    f, g = dual(layer, s1[i][0], s2[j][0], s12[i][j][0])
                    row.append((f, g * s12[i][j][1]))
                new12.append(row)
            s12 = new12
            s1 = [_act_diag(layer, q, t) for q, t in s1]
            s2 = [_act_diag(layer, q, t) for q, t in s2]

    def obj(vals, shape):
        out = np.empty(len(vals), dtype=object)
        out[:] = vals
        return out.reshape(shape)

    return ReferenceKernel(
        nngp=obj([s12[i][j][0] for i in range(n1) for j in range(n2)], (n1, n2)),
        ntk=obj([s12[i][j][1] for i in range(n1) for j in range(n2)], (n1, n2)),
        nngp_diag1=obj([q for q, _ in s1], (n1,)),
        ntk_diag1=obj([t for _, t in s1], (n1,)),
        nngp_diag2=obj([q for q, _ in s2], (n2,)),
        ntk_diag2=obj([t for _, t in s2], (n2,)),
    )


def reference_kernel(network: Network, x1, x2=None, dps: int = 50):
    """``(nngp, ntk)`` of ``network`` as object arrays of mpf (see :func:`reference`)."""
    ref = reference(network, x1, x2, dps)
    return ref.nngp, ref.ntk


def scaled_error(got, ref, diag1=None, diag2=None, floor: float = 1e-6) -> np.ndarray:
    """Entrywise ``|K - K_ref| / max(|K_ref|, floor * sqrt(K_ref(x,x) K_ref(x',x')))``.

    Parameters
    ----------
    got : array (n1, n2) or (n,) of float64
    ref : object array of mpf, same shape
    diag1, diag2 : object arrays (n1,), (n2,) of mpf, or None
        Reference diagonals ``K_ref(x1_i, x1_i)`` and ``K_ref(x2_j, x2_j)``.  ``None``
        (only for 1-D ``got``, whose entries are themselves diagonal values): plain
        relative error.
    floor : float
        Entries much smaller than the diagonal scale are measured against
        ``floor`` times that scale.

    Returns
    -------
    ndarray of float64
        The errors; ``inf`` where ``got`` is not finite, or where the scale is 0 and
        ``got`` differs from the reference.
    """
    got = np.asarray(got, dtype=np.float64)
    out = np.empty(got.shape)
    with mpmath.workdps(30):
        for idx, g in np.ndenumerate(got):
            r = ref[idx]
            if not np.isfinite(g):
                out[idx] = np.inf
                continue
            err = abs(_mp(g) - r)
            if diag1 is None:
                den = abs(r)
            else:
                i, j = idx
                den = max(abs(r), floor * mpmath.sqrt(abs(diag1[i] * diag2[j])))
            if den == 0:
                out[idx] = 0.0 if err == 0 else np.inf
            else:
                out[idx] = float(err / den)
    return out
