"""Owen's T function and the bivariate standard normal CDF, accurate in *relative* terms.

Private module.  All kernels are scalar ``numba.njit`` functions in float64; the array
wrappers :func:`owens_t_array`, :func:`bvn_cdf_array` and :func:`bvn_sf_array`
broadcast, validate and loop over them.

Definitions
-----------
Owen's T function (Owen 1956)::

    T(h, a) = 1/(2 pi) int_0^a exp(-h^2 (1 + x^2) / 2) / (1 + x^2) dx

is even in ``h`` and odd in ``a``, ``T(0, a) = atan(a) / (2 pi)``,
``T(h, 1) = Phi(h) Q(h) / 2`` and ``T(h, +inf) = Q(|h|) / 2`` (``h != 0``), with
``Phi`` the standard normal CDF and ``Q = 1 - Phi``.  The bivariate normal CDF with
correlation ``rho`` is (Owen 1956)::

    Phi2(h, k; rho) = (Phi(h) + Phi(k)) / 2 - T(h, a_h) - T(k, a_k) - beta,
    a_h = (k - rho h) / (h s),  a_k = (h - rho k) / (k s),  s = sqrt(1 - rho^2),

with ``beta = 1/2`` when ``h k < 0`` and ``0`` when ``h k > 0``.

Method
------
Everything is reduced to probabilities of plane regions under the *independent*
standard normal ``(Z1, Z2)`` that are computed as sums of positive terms.  For
``h >= 0``, ``a >= 0`` put ``g = a h`` and ``P = (h, g)``; then
``T(h, a) = P(Z1 > h, 0 < Z2 < a Z1)`` and, splitting that region at ``Z2 = g``::

    a <= 1:  T(h, a) = Q(h) (Phi(g) - 1/2) + W(|P|, atan a)
    a >= 1:  T(h, a) = Q(h) / 2 - W(|P|, atan(1/a))

where ``W(r, theta)`` is the probability of a wedge with apex ``P`` (``|P| = r``)
and opening ``theta <= pi/4`` whose first edge points away from the origin.  In
polar coordinates about the apex (integrating the radius in closed form)::

    W(r, theta) = exp(-r^2/2) / (2 pi) int_0^theta R(r cos psi) dpsi,
    R(c) = int_0^inf t exp(-c t - t^2/2) dt = 1 - c Q(c) / phi(c),

a smooth positive integrand that Gauss-Legendre rules of 4 to 10 nodes integrate to
rounding level for every ``r``; the order and the variable (``psi``, or ``tan psi``, in
which the integrand is nearly constant for large ``r``) come from a table by ``r`` and
``theta`` (``_W_RULES``, from a scan of the quadrature error).
``R`` is evaluated from polynomials of degree 13 on 32 intervals of width 1/2 covering
``[0, 16]`` (truncated Chebyshev expansions computed at import time with mpmath, Horner's
rule with fused multiply-adds) and from its asymptotic series
``R ~ 1/c^2 - 3/c^4 + 15/c^6 - ...`` above 16.  The first form
is a sum of positive terms; the second cancels by at most a factor 2, since
``W <= Q(h)^2 / 2``.  (This replaces the usual reflection
``T(h, a) = [Phi(h) + Phi(a h)]/2 - Phi(h) Phi(a h) - T(a h, 1/a) - [h < 0]/2``.)
The exponent ``(h^2 + g^2) / 2`` is carried in double-double arithmetic and ``Q``
is corrected for the rounding of ``h / sqrt(2)``, so that the relative accuracy
holds up to ``h ~ 38`` where ``T`` underflows.  Double-double products use the hardware
fused multiply-add (``llvm.fma``), so this costs a few operations.

For ``Phi2`` each half ``Phi(h)/2 - T(h, a_h)`` (and ``Q(k)/2 + T(k, a_k)`` when
``h k < 0``) is the probability of a region bounded by one threshold line and a ray
from the origin; each is evaluated as a sum of positive terms from the same
ingredients (``Q(h)/2 - T(h, a)`` is ``W`` or ``Q(h) Q(g) - W`` with at most a
factor 2 of cancellation).  The two wedge apexes ``(h, (k - rho h)/s)`` and
``(k, (h - rho k)/s)`` lie at the same distance ``r`` from the origin
(``r^2 = (h^2 - 2 rho h k + k^2) / (1 - rho^2)``), so ``exp(-r^2/2)`` is computed once
and both wedges integrate the same function of ``psi``.  Both halves are added when ``h``
and ``k`` have the same sign.  When the signs differ the halves are subtracted; if that
loses more than one bit the orthant, a wedge with apex ``(h, (k - rho h)/s)`` and opening
``acos(-rho)``, is integrated directly with the polar formula above (this can only
happen for ``rho < 0``, where the opening is below ``pi/2``: the orthant's share of
the subtracted region is at least its share of the angle, and the integrand varies
little across it).  ``(k - rho h)/s`` and ``1 - rho^2 = (1 - rho)(1 + rho)`` are
formed in double-double arithmetic, so ``rho`` within a few ulp of ``+-1`` costs no
accuracy.

Accuracy
--------
Measured against mpmath (40 digits for ``T``, 30 for ``Phi2``; ``tests/test_bvn.py``
and a wider off-line sweep): ``T`` to <= 6e-16 relative on ~9,000 random points with
``|h| <= 40``, ``|a| <= 1e6`` (true value >= 1e-300; values that underflow are within
one subnormal unit); ``Phi2`` to <= 1.4e-15 relative on ~17,000 points (grids of step
0.25-1 in ``h, k in [-8, 8]`` with ``rho`` in {-1+1e-12, -0.999, -0.99, -0.95, -0.9,
-0.5, 0, 0.3, 0.9, 0.99, 0.999999, 1-1e-12}, random ``rho`` within 1e-16..0.1 of
``+-1``, and ``|h|, |k| <= 38``).  Re-measured after the speed-up (polynomial ``R``,
tabulated quadrature orders, shared ``exp(-r^2/2)``): ``T`` <= 4.8e-16 on the test grid
and 3,000 random points; ``Phi2`` <= 1.1e-15 on the test grid and 6,000 random points
(``h, k`` in ``[-3, 3]`` with ``|rho| <= 0.98``, in ``[-8, 8]`` with any ``rho``, and
``rho`` within 1e-15..0.1 of ``+-1``).

References
----------
D. B. Owen, "Tables for computing bivariate normal probabilities",
Ann. Math. Statist. 27 (1956) 1075-1090.

M. Patefield and D. Tandy, "Fast and accurate calculation of Owen's T function",
J. Stat. Softw. 5(5) (2000) -- the standard method (T1..T6, absolute error control,
behind ``scipy.special.owens_t``); not used here, but compared against in the tests.

A. Genz, "Numerical computation of rectangular bivariate and trivariate normal and t
probabilities", Statistics and Computing 14 (2004) 251-260 -- background; its
absolute-accuracy methods are not used.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = [
    "bvn_cdf",
    "bvn_cdf_array",
    "bvn_sf",
    "bvn_sf_array",
    "norm_cdf",
    "norm_sf",
    "owens_t",
    "owens_t_array",
]

# --------------------------------------------------------------------------------------
# constants and tables (computed, not pasted)
# --------------------------------------------------------------------------------------

_INV_2PI = 1.0 / (2.0 * math.pi)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)


def _sqrt_half_dd() -> tuple[float, float]:
    """``1/sqrt(2)`` to double-double accuracy (one exact Newton step on ``hi``)."""
    hi = math.sqrt(0.5)
    # sqrt(1/2) = hi + (1/2 - hi^2) / (2 hi) + O(residual^2); the residual is exact here.
    lo = float((Fraction(1, 2) - Fraction(hi) ** 2) / (2 * Fraction(hi)))
    return hi, lo


_S12_HI, _S12_LO = _sqrt_half_dd()

# Gauss-Legendre rules on [0, 1]
_NF = 16  # thin-orthant fallback
_NP = 16  # P(l < X < u) on a short interval
# wedge W(r, atan(tt)): Gauss-Legendre order and variable ("p": psi, "t": tan psi) by the bin of
# r (edges _WR_EDGES) and of tt (16 bins of width 1/16).  From a scan of the quadrature error
# against a 48-node rule: the smallest order with error below 2e-15 relative at every r, tt in
# the bin, plus one (each node gains a factor >= 10 here, so the error is below ~2e-16)
_WR_EDGES = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0)
_WR_EDGES += (14.0, 16.0, 20.0, 24.0, 28.0, 32.0, 40.0)  # as in _wedge_bin
_W_NTT = 16
_W_RULES = (
    "5p 5p 6p 6p 6p 6p 6p 7p 7p 7p 7p 7p 8p 8p 8p 8p",
    "5p 5p 6p 6p 6p 7p 7p 7p 7p 8p 8p 8p 8p 8p 8p 8p",
    "5p 6p 6p 6p 7p 7p 7p 7p 8p 8p 8p 8p 8p 8p 9p 9p",
    "5p 6p 6p 7p 7p 7p 7p 8p 8p 8p 8p 8p 8p 9p 9p 9p",
    "5p 6p 6p 7p 7p 7p 8p 8p 8p 8p 9p 9p 9p 9p 9p 9p",
    "5p 6p 6p 7p 7p 7p 8p 8p 8p 9p 9p 9p 9p 9p 10p 10p",
    "5p 6p 6p 7p 7p 7t 7t 8p 8t 9p 9p 9p 9p 9t 10p 10p",
    "5p 6p 6t 6t 7p 7t 7t 8p 8t 8t 9p 9p 9t 9t 9t 10p",
    "5p 6p 6t 6t 7p 7t 7t 7t 8t 8t 8t 9t 9t 9t 9t 9t",
    "5p 5t 6t 6t 6t 7t 7t 7t 7t 8t 8t 8t 8t 9t 9t 9t",
    "5p 5t 6t 6t 6t 6t 7t 7t 7t 7t 8t 8t 8t 8t 9t 9t",
    "5p 5t 5t 6t 6t 6t 6t 7t 7t 7t 7t 8t 8t 8t 8t 8t",
    "5p 5t 5t 6t 6t 6t 6t 7t 7t 7t 7t 7t 7t 8t 8t 8t",
    "4t 5t 5t 6t 6t 6t 6t 6t 6t 7t 7t 7t 7t 7t 7t 7t",
    "4t 5t 5t 5t 6t 6t 6t 6t 6t 6t 6t 7t 7t 7t 7t 7t",
    "4t 5t 5t 5t 5t 6t 6t 6t 6t 6t 6t 6t 7t 7t 7t 7t",
    "4t 5t 5t 5t 5t 5t 6t 6t 6t 6t 6t 6t 6t 6t 7t 7t",
    "4t 5t 5t 5t 5t 5t 5t 6t 6t 6t 6t 6t 6t 6t 6t 6t",
    "4t 4t 5t 5t 5t 5t 5t 5t 5t 6t 6t 6t 6t 6t 6t 6t",
    "4t 4t 5t 5t 5t 5t 5t 5t 5t 5t 6t 6t 6t 6t 6t 6t",
    "4t 4t 4t 5t 5t 5t 5t 5t 5t 5t 5t 6t 6t 6t 6t 6t",
)
_W_ORDER = np.array([[int(c[:-1]) for c in row.split()] for row in _W_RULES], dtype=np.int64)
_W_TAN = np.array([[c[-1] == "t" for c in row.split()] for row in _W_RULES], dtype=np.bool_)
_W_NMAX = int(_W_ORDER.max())
# cos(psi) = sum_m (-1)^m psi^(2m) / (2m)!, m <= 8: error < 3e-18 for psi <= pi/4
_COS_TAYLOR = np.array([(-1) ** m / math.factorial(2 * m) for m in range(9)])


def _gl01(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(n)
    return np.ascontiguousarray(0.5 * (x + 1.0)), np.ascontiguousarray(0.5 * w)


def _gl01_table(orders) -> tuple[np.ndarray, np.ndarray]:
    xs = np.zeros((len(orders), max(orders)))
    ws = np.zeros_like(xs)
    for j, n in enumerate(orders):
        xs[j, :n], ws[j, :n] = _gl01(n)
    return xs, ws


_GW_X, _GW_W = _gl01_table(tuple(range(1, _W_NMAX + 1)))  # row n - 1: the n-node rule
_GF_X, _GF_W = _gl01(_NF)
_GP_X, _GP_W = _gl01(_NP)

# R(c) for c >= 0: polynomials of degree _R_DEG in y = (c - c_j) / _R_HALF on the intervals
# [c_j - _R_HALF, c_j + _R_HALF] of width 1/2 covering [0, 16] (truncated Chebyshev expansions
# computed at import time with mpmath, converted to the monomial basis; the truncation error
# is below 3e-17 R, and the monomial coefficients decay so that Horner's rule adds no more
# than an ulp), and the asymptotic series above 16
_R_TOP = 16.0
_R_WIDTH = 0.5
_R_HALF = 0.5 * _R_WIDTH
_R_NINT = int(_R_TOP / _R_WIDTH)
_R_DEG = 13  # fixed: _r_pos evaluates the 14 coefficients by Estrin's scheme
_R_ASYM_N = 13  # terms of R ~ sum_n (-1)^(n+1) (2n-1)!! / c^(2n); error < 4e-18 R at c = 16


def _r_reference(c, mp):
    """``R(c) = 1 - c Q(c) / phi(c)`` in mpmath arithmetic."""
    return 1 - c * mp.erfc(c / mp.sqrt(2)) / 2 * mp.sqrt(2 * mp.pi) * mp.exp(c * c / 2)


def _chebyshev_to_monomial(n: int) -> list[list[int]]:
    """Integer monomial coefficients of the Chebyshev polynomials ``T_0 .. T_{n-1}``."""
    t = [[1], [0, 1]]
    while len(t) < n:
        a, b = t[-1], t[-2]
        nxt = [0] + [2 * x for x in a]
        for i, x in enumerate(b):
            nxt[i] -= x
        t.append(nxt)
    return t[:n]


def _r_poly_table() -> np.ndarray:
    """Monomial coefficients (in ``y``, lowest first) of ``R`` on each interval."""
    import mpmath

    npts = _R_DEG + 9
    cheb_mono = _chebyshev_to_monomial(_R_DEG + 1)
    table = np.zeros((_R_NINT, _R_DEG + 1))
    with mpmath.workdps(40):
        mp = mpmath.mp
        theta = [mp.pi * (j + mp.mpf(1) / 2) / npts for j in range(npts)]
        for i in range(_R_NINT):
            mid = mp.mpf(_R_WIDTH) * i + _R_HALF
            vals = [_r_reference(mid + _R_HALF * mp.cos(t), mp) for t in theta]
            cheb = [
                mp.fsum(vals[j] * mp.cos(m * theta[j]) for j in range(npts)) * 2 / npts
                for m in range(_R_DEG + 1)
            ]
            cheb[0] /= 2
            mono = [mp.mpf(0)] * (_R_DEG + 1)
            for m, cm in enumerate(cheb):
                for p, tp in enumerate(cheb_mono[m]):
                    mono[p] += cm * tp
            table[i] = [float(x) for x in mono]
    return table


_R_POLY = _r_poly_table()
# (-1)^(n+1) (2n - 1)!!, n = 1 .. _R_ASYM_N (exact integers)
_R_ASYM = np.array(
    [(-1) ** (n + 1) * math.prod(range(1, 2 * n, 2)) for n in range(1, _R_ASYM_N + 1)],
    dtype=np.float64,
)

# --------------------------------------------------------------------------------------
# double-double primitives
# --------------------------------------------------------------------------------------

_jit = numba.njit(cache=True, fastmath=False, error_model="numpy")


@intrinsic
def _fma(typingctx, a, b, c):
    """Fused multiply-add ``a * b + c`` with one rounding (``llvm.fma.f64``)."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        d = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [d], ir.FunctionType(d, [d, d, d]))
        return builder.call(fn, args)

    return sig, codegen


@_jit
def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@_jit
def _fast_two_sum(a, b):
    s = a + b
    return s, b - (s - a)


@_jit
def _two_prod(a, b):
    p = a * b
    return p, _fma(a, b, -p)


@_jit
def _dd_mul(ah, al, bh, bl):
    p, e = _two_prod(ah, bh)
    e += ah * bl + al * bh
    return _fast_two_sum(p, e)


@_jit
def _dd_div(ah, al, bh, bl):
    q1 = ah / bh
    p, e = _two_prod(q1, bh)
    r = ((ah - p) - e) + al - q1 * bl
    return _fast_two_sum(q1, r / bh)


@_jit
def _dd_sqrt(ah, al):
    r = math.sqrt(ah)
    p, e = _two_prod(r, r)
    return _fast_two_sum(r, (((ah - p) - e) + al) / (2.0 * r))


@_jit
def _exp_neg_half(xh, xl):
    """``exp(-(xh + xl) / 2)`` for a double-double ``x``."""
    return math.exp(-0.5 * xh) * (1.0 - 0.5 * xl)


@_jit
def _hyp2(xh, xl, yh, yl):
    """``x^2 + y^2`` in double-double."""
    a, ae = _two_prod(xh, xh)
    ae += 2.0 * xh * xl
    b, be = _two_prod(yh, yh)
    be += 2.0 * yh * yl
    s, se = _two_sum(a, b)
    return _fast_two_sum(s, se + ae + be)


# --------------------------------------------------------------------------------------
# normal distribution
# --------------------------------------------------------------------------------------


@_jit
def _q_dd(xh, xl):
    """``Q(x) = 1 - Phi(x) = erfc(x / sqrt 2) / 2`` for a double-double ``x``.

    The rounding of ``x / sqrt(2)`` is corrected to first order, which matters in the
    upper tail where ``erfc`` has relative condition number ``~ x^2``.
    """
    zh, zl = _dd_mul(xh, xl, _S12_HI, _S12_LO)
    q = 0.5 * math.erfc(zh)
    if zl != 0.0 and zh > -6.0:
        q -= zl * _INV_SQRT_PI * math.exp(-zh * zh)
    return q


@_jit
def norm_sf(x):
    """Upper tail ``Q(x) = 1 - Phi(x) = erfc(x / sqrt(2)) / 2``.

    Accurate in relative terms over the whole range (``x / sqrt 2`` is formed in
    double-double arithmetic before ``erfc``).
    """
    if math.isinf(x):
        return 0.0 if x > 0 else 1.0
    if x != x:
        return x
    return _q_dd(x, 0.0)


@_jit
def norm_cdf(x):
    """Standard normal CDF ``Phi(x) = erfc(-x / sqrt(2)) / 2``, accurate in both tails."""
    return norm_sf(-x)


@_jit
def _phi_half(x):
    """``Phi(x) - 1/2 = erf(x / sqrt 2) / 2`` (no cancellation for small ``x``)."""
    if x > 6.0:
        return 0.5 - _q_dd(x, 0.0)
    if x < -6.0:
        return _q_dd(-x, 0.0) - 0.5
    return 0.5 * math.erf(x * _S12_HI)


@_jit
def _normal_interval(lo, hi):
    """``P(lo < X < hi) = Phi(hi) - Phi(lo)`` for ``lo < hi``, accurate in relative terms."""
    if hi <= lo:
        return 0.0
    if lo < 0.0 < hi and not (hi - lo < 1.0):
        return 1.0 - _q_dd(hi, 0.0) - _q_dd(-lo, 0.0)
    # one-sided (or short) interval: reflect into the upper tail, l = nearer end to 0
    if hi <= 0.0:
        lo, hi = -hi, -lo
    # now 0 <= lo < hi, or a short interval straddling 0
    width = hi - lo
    base = max(lo, 0.0)
    if width * max(base, 1.0) > 1.0:
        return _q_dd(lo, 0.0) - _q_dd(hi, 0.0)
    # int_lo^hi phi(x) dx = phi(lo) int_0^width exp(-lo t - t^2 / 2) dt  (Gauss-Legendre)
    x2h, x2l = _two_prod(lo, lo)
    s = 0.0
    for i in range(_NP):
        t = width * _GP_X[i]
        s += _GP_W[i] * math.exp(-(lo * t + 0.5 * t * t))
    return _INV_SQRT_2PI * _exp_neg_half(x2h, x2l) * width * s


# --------------------------------------------------------------------------------------
# the wedge integral and Owen's T
# --------------------------------------------------------------------------------------


@_jit
def _r_pos(c):
    """``R(c) = 1 - c Q(c) / phi(c) = int_0^inf t exp(-c t - t^2/2) dt`` for ``c >= 0``."""
    if c < _R_TOP:
        j = int(c * (1.0 / _R_WIDTH))
        y = (c - (j * _R_WIDTH + _R_HALF)) * (1.0 / _R_HALF)
        # Estrin's scheme (short dependency chains; the coefficients decay like 4^-m)
        c = _R_POLY[j]
        y2 = y * y
        y4 = y2 * y2
        p0 = _fma(c[1], y, c[0])
        p1 = _fma(c[3], y, c[2])
        p2 = _fma(c[5], y, c[4])
        p3 = _fma(c[7], y, c[6])
        p4 = _fma(c[9], y, c[8])
        p5 = _fma(c[11], y, c[10])
        p6 = _fma(c[13], y, c[12])
        q0 = _fma(p1, y2, p0)
        q1 = _fma(p3, y2, p2)
        q2 = _fma(p5, y2, p4)
        s1 = _fma(_fma(p6, y4, q2), y4, q1)
        return _fma(s1, y4, q0)
    # asymptotic series in u = 1/c^2 (alternating; the omitted term is below 4e-18 R)
    u = 1.0 / (c * c)
    acc = 0.0
    for i in range(_R_ASYM_N - 1, -1, -1):
        acc = _fma(acc, u, _R_ASYM[i])
    return acc * u


@_jit
def _cos_small(x):
    """``cos(x)`` for ``0 <= x <= pi/4`` (Taylor polynomial)."""
    c = _COS_TAYLOR
    z = x * x
    z2 = z * z
    z4 = z2 * z2
    lo = _fma(_fma(c[3], z, c[2]), z2, _fma(c[1], z, c[0]))
    hi = _fma(_fma(c[7], z, c[6]), z2, _fma(c[5], z, c[4]))
    return _fma(_fma(c[8], z4, hi), z4, lo)


@_jit
def _wedge_bin(r):
    if r < 4.0:
        return int(2.0 * r)
    if r < 8.0:
        return 4 + int(r)
    if r < 16.0:
        return 8 + int(0.5 * r)
    if r < 32.0:
        return 12 + int(0.25 * r)
    return 20


@_jit
def _wedge_int(r, tt):
    """``int_0^theta R(r cos psi) dpsi`` for ``theta = atan(tt)``, ``0 < tt <= 1``, ``r < 40``.

    Gauss-Legendre in ``psi`` or in ``t = tan(psi)`` (integrand
    ``R(r / sqrt(1 + t^2)) / (1 + t^2)``, nearly constant for large ``r``); order and variable
    from the table ``_W_RULES`` (by ``r`` and ``tt``).
    """
    i = _wedge_bin(r)
    j = min(int(tt * _W_NTT), _W_NTT - 1)
    n = _W_ORDER[i, j]
    s = 0.0
    if _W_TAN[i, j]:
        for m in range(n):
            t = tt * _GW_X[n - 1, m]
            u = _fma(t, t, 1.0)
            s += _GW_W[n - 1, m] * _r_pos(r / math.sqrt(u)) / u
        return tt * s
    theta = math.atan(tt)
    for m in range(n):
        s += _GW_W[n - 1, m] * _r_pos(r * _cos_small(theta * _GW_X[n - 1, m]))
    return theta * s


@_jit
def _wedge(p2h, p2l, tt):
    """``W(r, theta) = exp(-r^2/2)/(2 pi) int_0^theta R(r cos psi) dpsi``, ``r^2 = p2h + p2l``.

    The probability of a wedge of opening ``theta = atan(tt)``, ``0 <= tt <= 1``, whose
    apex is at distance ``r`` from the origin and whose first edge points away from the
    origin (see :func:`_wedge_int`).
    """
    if p2h > 1500.0 or tt <= 0.0:
        return 0.0
    return _INV_2PI * _wedge_int(math.sqrt(p2h), tt) * _exp_neg_half(p2h, p2l)


@_jit
def _owen_parts(x, gh, gl, tt):
    """``(Q(x), W)`` for ``x >= 0``, ``g = gh + gl = a x >= 0`` and ``tt = min(a, 1/a)``."""
    qx = _q_dd(x, 0.0)
    p2h, p2l = _hyp2(x, 0.0, gh, gl)
    return qx, _wedge(p2h, p2l, tt)


@_jit
def owens_t(h, a):
    """Owen's T function ``T(h, a)``.

    Parameters
    ----------
    h, a : float
        Any real numbers (``a = +-inf`` allowed).

    Returns
    -------
    float
        ``T(h, a) = 1/(2 pi) int_0^a exp(-h^2 (1 + x^2)/2) / (1 + x^2) dx``, with a
        relative error of a few ulp wherever the value is a normal double; values that
        underflow come back as 0 or a subnormal.  ``nan`` if either argument is nan.

    Notes
    -----
    ``T(h, a) = Q(h)(Phi(a h) - 1/2) + W`` for ``|a| <= 1`` and
    ``T(h, a) = Q(h)/2 - W`` for ``|a| > 1``, with ``W`` a wedge probability computed
    by Gauss-Legendre quadrature of a smooth positive integrand (see the module
    docstring).  References: Owen (1956); Patefield & Tandy (2000).
    """
    if h != h or a != a:
        return math.nan
    sign = 1.0
    if a < 0.0:
        sign = -1.0
        a = -a
    x = abs(h)
    if a == 0.0:
        return 0.0
    if x == 0.0:
        if math.isinf(a):
            return sign * 0.25
        return sign * _INV_2PI * math.atan(a)
    if x >= 39.0:  # T <= Q(|h|)/2 < 1e-332
        return 0.0
    if math.isinf(a):
        return sign * 0.5 * _q_dd(x, 0.0)
    if a <= 1.0:
        gh, gl = _two_prod(a, x)
        qx, w = _owen_parts(x, gh, gl, a)
        return sign * (qx * _phi_half(gh) + w)
    if a < 1e290:
        gh, gl = _two_prod(a, x)
    else:
        gh = a * x
        gl = 0.0
    if gh > 40.0:  # W <= exp(-g^2/2) / 8: below half an ulp of Q(h)/2
        return sign * 0.5 * _q_dd(x, 0.0)
    qx, w = _owen_parts(x, gh, gl, 1.0 / a)
    return sign * (0.5 * qx - w)


# --------------------------------------------------------------------------------------
# bivariate normal
# --------------------------------------------------------------------------------------


@_jit
def _halves(x, gh, gl, r, e):
    """Positive blocks for threshold ``x != 0`` and ``g = a x`` (signed double-double).

    Returns ``(C, D)`` with ``C = Phi(x)/2 - T(x, a)`` and ``D = Q(x)/2 + T(x, a)``
    (``C + D = 1/2``), both formed from ``Q(|x|)``, ``Phi(g) - 1/2``, ``Q(g)`` and the
    wedge ``W`` as sums of positive terms (``Q(|x|) Q(g) - W`` and ``Q(|x|)/2 - W``
    cancel by at most a factor 2; ``Phi(|x|)/2 - T >= 1/8`` when ``|a| <= 1``).
    ``r = sqrt(x^2 + g^2)`` and ``e = exp(-r^2/2) / (2 pi)`` (0 when ``r >= 40``) are
    passed in: they are the same for both halves of :func:`bvn_cdf`.
    """
    ax = abs(x)
    neg_a = (gh < 0.0) != (x < 0.0)  # sign of a = g / x
    agh = abs(gh)
    agl = gl if gh >= 0.0 else -gl
    qx = _q_dd(ax, 0.0)
    if agh == 0.0:
        t = 0.0
        u = 0.5 * qx
        v = 0.5 - 0.5 * qx
    else:
        small = agh <= ax
        if small:
            tt = agh / ax
        else:
            tt = ax / agh
        w = e * _wedge_int(r, tt) if e > 0.0 else 0.0
        if small:
            # Phi(g) - 1/2 and Q(g) from one erf / erfc (the other by a subtraction of
            # at most a factor 2)
            if agh < 0.67:
                pg = _phi_half(agh)
                qg = 0.5 - pg
            else:
                qg = _q_dd(agh, agl)
                pg = 0.5 - qg
            t = qx * pg + w
            u = qx * qg - w  # Q(x)/2 - T, cancels by <= 2
            v = 0.5 - 0.5 * qx - t  # Phi(x)/2 - T >= Phi(x)^2/2 >= 1/8
        else:
            t = 0.5 * qx - w  # cancels by <= 2
            u = w
            v = _phi_half(ax) + w
    # blocks with |x|: T(|x|, |a|) = t, U = Q/2 - t, V = Phi/2 - t
    if x > 0.0:
        if neg_a:
            c = 0.5 - 0.5 * qx + t
            d = u
        else:
            c = v
            d = 0.5 * qx + t
    else:
        if neg_a:
            c = 0.5 * qx + t
            d = v
        else:
            c = u
            d = 0.5 - 0.5 * qx + t
    return c, d


@_jit
def _thin_orthant(h, gh, gl, sh, rho):
    """``P(X <= h, Y <= k)`` by the polar formula about the apex ``(h, g)``, ``g = (k - rho h)/s``.

    The orthant is the wedge with edge directions ``(0, -1)`` and ``(-s, rho)`` (in the
    coordinates ``X = Z1``, ``Y = rho Z1 + s Z2``), of opening ``alpha = acos(-rho)``;
    directions ``u(t) = (-sin t, -cos t)``, ``0 <= t <= alpha``.  Along each ray the radial
    integral is ``exp(-|P|^2/2) R(P.u)``, rewritten for ``P.u < 0`` as
    ``exp(-|P|^2/2) + |c| sqrt(2 pi) Phi(|c|) exp(-d^2/2)`` with ``d = P x u``.
    """
    alpha = math.atan2(sh, -rho)
    p2h, p2l = _hyp2(h, 0.0, gh, gl)
    e0 = _exp_neg_half(p2h, p2l)
    s = 0.0
    for i in range(_NF):
        t = alpha * _GF_X[i]
        st = math.sin(t)
        ct = math.cos(t)
        # c = P.u and d = P x u in double-double for the (rounded) direction u, then
        # normalised by |u| so that c^2 + d^2 = |P|^2 holds to double-double accuracy
        a1, e1 = _two_prod(-h, st)
        a2, e2 = _two_prod(-gh, ct)
        ch, cl = _two_sum(a1, a2)
        ch, cl = _fast_two_sum(ch, cl + e1 + e2 - gl * ct)
        nh, nl = _hyp2(st, 0.0, ct, 0.0)
        c = (ch + cl) / math.sqrt(nh)
        if c >= 0.0:
            val = e0 * _r_pos(c)
        else:
            a1, e1 = _two_prod(-h, ct)
            a2, e2 = _two_prod(gh, st)
            dh, dl = _two_sum(a1, a2)
            dh, dl = _fast_two_sum(dh, dl + e1 + e2 + gl * st)
            d2h, d2l = _dd_mul(dh, dl, dh, dl)
            d2h, d2l = _dd_div(d2h, d2l, nh, nl)
            phic = 1.0 - _q_dd(-c, 0.0)
            val = e0 - c * _SQRT_2PI * phic * _exp_neg_half(d2h, d2l)
        s += _GF_W[i] * val
    return _INV_2PI * alpha * s


@_jit
def bvn_cdf(h, k, rho):
    """Bivariate standard normal CDF ``Phi2(h, k; rho) = P(X <= h, Y <= k)``.

    Parameters
    ----------
    h, k : float
        Upper limits (``+-inf`` allowed).
    rho : float
        Correlation in ``[-1, 1]``.

    Returns
    -------
    float
        ``Phi2(h, k; rho)`` with a relative error of a few ulp (the bounds measured in
        ``tests/test_bvn.py``); ``nan`` for nan input or ``|rho| > 1``.

    Notes
    -----
    Owen's (1956) formula
    ``Phi2 = (Phi(h) + Phi(k))/2 - T(h, a_h) - T(k, a_k) - beta`` regrouped into
    positive blocks (module docstring); ``rho = 1`` gives ``Phi(min(h, k))`` and
    ``rho = -1`` gives ``max(0, Phi(h) - Phi(-k))``.
    """
    if h != h or k != k or rho != rho or abs(rho) > 1.0:
        return math.nan
    if h <= -40.0 or k <= -40.0:  # below Q(40) < 1e-349
        return 0.0
    if h >= 40.0:
        return norm_cdf(k)
    if k >= 40.0:
        return norm_cdf(h)
    if rho == 1.0:
        return norm_cdf(min(h, k))
    if rho == -1.0:
        return _normal_interval(-k, h)
    # s = sqrt((1 - rho)(1 + rho)) in double-double
    uh, ul = _two_sum(1.0, -rho)
    vh, vl = _two_sum(1.0, rho)
    wh, wl = _dd_mul(uh, ul, vh, vl)
    sh, sl = _dd_sqrt(wh, wl)
    if h == 0.0 and k == 0.0:
        return _INV_2PI * math.atan2(sh, -rho)
    # g_h = (k - rho h)/s, g_k = (h - rho k)/s
    p, pe = _two_prod(rho, h)
    d, de = _two_sum(k, -p)
    nh, nl = _fast_two_sum(d, de - pe)
    ghh, ghl = _dd_div(nh, nl, sh, sl)
    p, pe = _two_prod(rho, k)
    d, de = _two_sum(h, -p)
    nh, nl = _fast_two_sum(d, de - pe)
    gkh, gkl = _dd_div(nh, nl, sh, sl)
    # |(h, g_h)| = |(k, g_k)| = r, r^2 = (h^2 - 2 rho h k + k^2) / (1 - rho^2): the two wedges
    # share r and exp(-r^2/2)
    if h == 0.0:
        p2h, p2l = _hyp2(k, 0.0, gkh, gkl)
    else:
        p2h, p2l = _hyp2(h, 0.0, ghh, ghl)
    if p2h > 1500.0:
        r = 0.0
        e = 0.0
    else:
        r = math.sqrt(p2h)
        e = _INV_2PI * _exp_neg_half(p2h, p2l)
    if h == 0.0:
        return _halves(k, gkh, gkl, r, e)[0]
    if k == 0.0:
        return _halves(h, ghh, ghl, r, e)[0]
    ch, dh = _halves(h, ghh, ghl, r, e)
    ck, dk = _halves(k, gkh, gkl, r, e)
    if (h > 0.0) == (k > 0.0):
        return ch + ck
    if h > 0.0:  # make h the negative one
        h, k = k, h
        ghh, ghl = gkh, gkl
        ch = ck
        dk = dh
    res = ch - dk
    if res >= 0.5 * ch:
        return res
    return _thin_orthant(h, ghh, ghl, sh, rho)


@_jit
def bvn_sf(h, k, rho):
    """Upper orthant ``P(X > h, Y > k) = Phi2(-h, -k; rho)``, computed directly (not as 1 - ...)."""
    return bvn_cdf(-h, -k, rho)


# --------------------------------------------------------------------------------------
# array wrappers
# --------------------------------------------------------------------------------------


@numba.njit(cache=True)
def _owens_t_loop(h, a, out):
    for i in range(out.size):
        out[i] = owens_t(h[i], a[i])


@numba.njit(cache=True)
def _bvn_loop(h, k, rho, out):
    for i in range(out.size):
        out[i] = bvn_cdf(h[i], k[i], rho[i])


def _as_float_arrays(names, values):
    arrs = []
    for name, v in zip(names, values):
        x = np.asarray(v, dtype=np.float64)
        if np.isnan(x).any():
            raise ValueError(f"{name} contains NaN")
        arrs.append(x)
    b = np.broadcast_arrays(*arrs)
    shape = b[0].shape
    return shape, [np.ascontiguousarray(x).ravel() for x in b]


def owens_t_array(h, a):
    """Owen's T function ``T(h, a)`` on broadcast arrays.

    Parameters
    ----------
    h, a : array_like
        Real arguments, broadcast against each other (``+-inf`` allowed).

    Returns
    -------
    numpy.ndarray
        ``T(h, a)`` (float64, broadcast shape); see :func:`owens_t`.

    Raises
    ------
    ValueError
        If ``h`` or ``a`` contains NaN.
    """
    shape, (hh, aa) = _as_float_arrays(("h", "a"), (h, a))
    out = np.empty(hh.size, dtype=np.float64)
    _owens_t_loop(hh, aa, out)
    return out.reshape(shape)


def _bvn_checked(h, k, rho, sign):
    """``Phi2(sign h, sign k; rho)`` on validated broadcast arrays."""
    shape, (hh, kk, rr) = _as_float_arrays(("h", "k", "rho"), (h, k, rho))
    if (np.abs(rr) > 1.0).any():
        raise ValueError("rho must lie in [-1, 1]")
    out = np.empty(hh.size, dtype=np.float64)
    _bvn_loop(sign * hh, sign * kk, rr, out)
    return out.reshape(shape)


def bvn_cdf_array(h, k, rho):
    """Bivariate normal CDF ``Phi2(h, k; rho)`` on broadcast arrays.

    Parameters
    ----------
    h, k : array_like
        Upper limits (``+-inf`` allowed).
    rho : array_like
        Correlations in ``[-1, 1]``.

    Returns
    -------
    numpy.ndarray
        ``P(X <= h, Y <= k)`` (float64, broadcast shape); see :func:`bvn_cdf`.

    Raises
    ------
    ValueError
        If any argument contains NaN, or ``|rho| > 1``.
    """
    return _bvn_checked(h, k, rho, 1.0)


def bvn_sf_array(h, k, rho):
    """Upper orthant ``P(X > h, Y > k; rho)`` on broadcast arrays (``bvn_cdf_array(-h, -k, rho)``).

    Raises
    ------
    ValueError
        If any argument contains NaN, or ``|rho| > 1``.
    """
    return _bvn_checked(h, k, rho, -1.0)
