"""Closed-form dual activations ("dual kernels") and their NTK factors.

For an activation ``phi`` and a centred Gaussian pair ``(u, v)`` with
``Var u = q1``, ``Var v = q2``, ``Cov(u, v) = q12 = P cos(theta)``,
``P = sqrt(q1 q2)``, the dual is ``F = E[phi(u) phi(v)]`` and the NTK factor is
``E[phi'(u) phi'(v)] = dF/dq12`` (Price's theorem).

Numerical representation
------------------------
A pair is carried as the *acute* angle ``x = min(theta, pi - theta)`` together with
``c = cos(theta)`` (whose sign says which side of ``pi/2`` ``theta`` lies) and
``s = sin(theta)``, each accurate to a few ulp *in its own scale*: ``x`` and ``s``
keep full relative accuracy as ``theta -> 0`` and as ``theta -> pi`` (where
``pi - theta = x`` is held exactly rather than as a difference from a float near
``pi``).  Each map returns the next ``(x', c', s')`` computed from the *gap*
``P' - q12'`` and *anti-gap* ``P' + q12'`` of the output covariance with formulas
that do not cancel, and ``x' = atan2(sqrt(gap * antigap), |q12'|)``.  This keeps near-duplicate and
antipodal inputs accurate through deep stacks (``design.md`` section 2), where
``arccos(q12 / P)`` loses half the digits.

Families (``code``, parameters):

* ``ABRELU (a, b)`` -- ``a min(x,0) + b max(x,0)`` (ReLU, leaky ReLU, |x|).
  With ``D0 = (a^2 + b^2) pi`` and ``S(t) = sin t - t cos t``:
  ``F = P (D0 cos(theta) + (a-b)^2 S(theta)) / (2 pi)``,
  factor ``(D0 - (a-b)^2 theta) / (2 pi)`` (Cho & Saul 2009).
* ``RECTMONO (n)`` -- ``max(x,0)^n``: ``F = P^n J_n(theta)/(2 pi)``,
  ``J_n = (2n-1) cos J_(n-1) + (n-1)^2 sin^2 J_(n-2)``, ``J_0 = pi - theta``,
  ``J_1 = sin + (pi - theta) cos``; factor ``n^2 P^(n-1) J_(n-1)/(2 pi)``
  (Cho & Saul 2009, "Kernel methods for deep learning").
* ``SIGN`` -- ``F = 1 - 2 theta / pi``, factor 0.
* ``ERF (a, b, c)`` -- ``F = a^2 (2/pi) asin(2 b^2 q12 / sqrt((1+2b^2 q1)(1+2b^2 q2))) + c^2``,
  factor ``(4 a^2 b^2 / pi) / sqrt((1+2b^2 q1)(1+2b^2 q2) - 4 b^4 q12^2)`` (Williams 1997).
* ``TRIG (a, b, sin^2 c, cos^2 c)`` -- ``a sin(b x + c)``: with ``kappa = cos 2c``,
  ``F = a^2/2 [exp(-b^2 (q1+q2-2q12)/2) - kappa exp(-b^2 (q1+q2+2q12)/2)]``
  ``= a^2 exp(-b^2 (q1+q2)/2) [sin^2 c cosh(b^2 q12) + cos^2 c sinh(b^2 q12)]`` (the form
  used for ``|b^2 q12| < 1``; the phase enters only through ``sin^2 c``, ``cos^2 c``).
* ``GELU`` -- ``x Phi(x)``: with ``D = (1+q1)(1+q2) - q12^2``,
  ``F = q12/4 + q12 asin(rho)/(2 pi)
  + [q1 q2 + q12^2 (1 - q1 q2)/((1+q1)(1+q2))] / (2 pi sqrt(D))``,
  ``rho = q12 / sqrt((1+q1)(1+q2))`` (by Stein's lemma; cf. Tsuchida et al. 2021).
* ``POLY (coef)`` -- ``F = sum_k k! alpha_k(q1) alpha_k(q2) q12^k`` from the Hermite
  expansion of ``phi(sqrt(q) z)`` (Mehler's formula).
* ``EXP (a, b)`` -- ``F = a^2 exp(b^2 (q1 + q2 + 2 q12)/2)``.
* ``GAUSS (a, b)`` -- ``F = a^2 / sqrt((1-2b q1)(1-2b q2) - 4b^2 q12^2)``.
* ``IDENTITY`` -- ``F = q12``, factor 1.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numba
import numpy as np

from ._fastmath import atan2p
from ._generated.gelu_norm import gelu_dF, gelu_norm_d2

# family codes (DENSE is used by the recursion's layer table)
DENSE = 0
ABRELU = 1
RECTMONO = 2
SIGN = 3
ERF = 4
TRIG = 5
GELU = 6
POLY = 7
EXP = 8
GAUSS = 9
IDENTITY = 10
GENERIC = 11  # no closed form: analytic_ntk.quadrature (per-row Hermite coefficients)

_SMOOTH = (ERF, TRIG, GELU, POLY, EXP, GAUSS)

PI = math.pi
TWO_PI = 2.0 * math.pi
HALF_PI = 0.5 * math.pi


@numba.njit(cache=True, inline="always")
def is_smooth_code(code):
    """:func:`is_smooth` inside numba kernels."""
    return code in _SMOOTH


def is_smooth(code: int) -> bool:
    """True for families whose dual is analytic in ``q12`` on ``[-P, P]``."""
    return code in _SMOOTH


def _s_series_coeffs(nterms=10):
    # S(t) = sin t - t cos t = t^3 sum_k (-1)^k 2 (k+1) t^(2k) / (2k+3)!
    out = []
    for k in range(nterms):
        out.append(float(Fraction((-1) ** k * 2 * (k + 1), math.factorial(2 * k + 3))))
    return tuple(out)


_S_COEF = _s_series_coeffs()


@numba.njit(cache=True, error_model="numpy", inline="always")
def s_minus_tcos(t, s, c):
    """``S(t) = sin t - t cos t`` for ``t in [0, pi]``, given ``s = sin t``, ``c = cos t``.

    Uses the Taylor series ``t^3/3 - t^5/30 + ...`` (10 terms) for ``t < 1`` where
    the direct difference cancels.
    """
    k = _S_COEF
    t2 = t * t
    ser = k[9]
    ser = ser * t2 + k[8]
    ser = ser * t2 + k[7]
    ser = ser * t2 + k[6]
    ser = ser * t2 + k[5]
    ser = ser * t2 + k[4]
    ser = ser * t2 + k[3]
    ser = ser * t2 + k[2]
    ser = ser * t2 + k[1]
    ser = ser * t2 + k[0]
    ser = ser * t2 * t
    direct = s - t * c
    return ser if t < 1.0 else direct


@numba.njit(cache=True, error_model="numpy", inline="always")
def geomean(a, b):
    """``sqrt(a b)`` for ``a, b >= 0``: one rounding (so ``geomean(q, q) == q``, as on
    the diagonal) unless ``a b`` would overflow or underflow, then ``sqrt(a) sqrt(b)``."""
    prod = a * b
    ok = prod < 1e300 and (prod > 1e-300 or prod == 0.0)
    return math.sqrt(prod) if ok else math.sqrt(a) * math.sqrt(b)


@numba.njit(cache=True, error_model="numpy", inline="always")
def one_minus_cos(c, s):
    """``1 - cos(theta)`` without cancellation (``s^2 / (1 + c)`` for ``c > 0``)."""
    return s * s / (1.0 + c) if c > 0.0 else 1.0 - c


@numba.njit(cache=True, error_model="numpy", inline="always")
def one_plus_cos(c, s):
    """``1 + cos(theta)`` without cancellation (``s^2 / (1 - c)`` for ``c < 0``)."""
    return s * s / (1.0 - c) if c < 0.0 else 1.0 + c


@numba.njit(cache=True, error_model="numpy", inline="always")
def _angle_from_gaps(gap, antigap, k, scale):
    """``(x', c', s')`` from ``gap = scale (1 - c')``, ``antigap = scale (1 + c')``,
    ``k = scale c'`` (``x'`` the acute angle); degenerate ``scale = 0`` gives
    ``(pi/2, 0, 1)``."""
    sa, cn, sn = cos_sin_from_gaps(gap, antigap, k, scale)
    th = atan2p(sa, abs(k)) if scale > 0.0 else HALF_PI
    return th, cn, sn


@numba.njit(cache=True, error_model="numpy", inline="always")
def cos_sin_from_gaps(gap, antigap, k, scale):
    """``(scale s', c', s')`` as in :func:`_angle_from_gaps`, without the angle."""
    g = gap if gap > 0.0 else 0.0
    h = antigap if antigap > 0.0 else 0.0
    sa = math.sqrt(g * h)
    ok = scale > 0.0
    inv = 1.0 / scale if ok else 0.0
    cn = k * inv if ok else 0.0
    sn = sa * inv if ok else 1.0
    return sa, cn, sn


# ----------------------------------------------------------------- homogeneous


@numba.njit(cache=True, error_model="numpy", inline="always")
def abrelu_gaps(x, c, s, a, b):
    """ABRelu on a pair: returns ``(K, factor, D0 - K, D0 + K, D0)`` where the
    output covariance is ``q12' = P K / (2 pi)``, ``K = D0 cos(theta) + (a-b)^2 S(theta)``
    and the outgoing cosine is ``K / D0``.

    ``x`` is the acute angle (module docstring). Gap and anti-gap of ``K`` against
    ``D0 = (a^2 + b^2) pi``, without cancellation: for ``theta <= pi/2`` (``x = theta``),
    ``D0 - K = D0 (1 - cos) - (a-b)^2 S(x)``; for ``theta > pi/2`` (``x = pi - theta``),
    ``K = 2 a b pi cos(theta) + (a-b)^2 S(x)`` and
    ``D0 - K = pi ((a+b)^2 - 2ab (1 + cos)) - (a-b)^2 S(x)``; always
    ``D0 + K = D0 (1 + cos) + (a-b)^2 S(theta)`` (both terms >= 0).  The factor is
    ``(D0 - (a-b)^2 theta) / (2 pi)``, i.e. ``(2 a b pi + (a-b)^2 x) / (2 pi)`` for
    ``theta > pi/2``.
    """
    d0 = (a * a + b * b) * PI
    dd = (a - b) * (a - b)
    lo = c >= 0.0
    sx = s_minus_tcos(x, s, abs(c))
    st = sx if lo else s - (PI - x) * c  # S(theta); theta > pi/2 > 1: no cancellation
    r = s * s / (1.0 + abs(c))  # 1 - |c|
    omc = r if lo else 1.0 - c
    opc = 1.0 + c if lo else r
    k = d0 * c + dd * st if lo else 2.0 * a * b * PI * c + dd * sx
    gap = d0 * omc - dd * st if lo else PI * ((a + b) * (a + b) - 2.0 * a * b * opc) - dd * sx
    antigap = d0 * opc + dd * st
    fac = (d0 - dd * x if lo else 2.0 * a * b * PI + dd * x) * (1.0 / TWO_PI)
    return k, fac, gap, antigap, d0


@numba.njit(cache=True, error_model="numpy", inline="always")
def abrelu_pair(x, c, s, a, b):
    """ABRelu on a pair: ``(K / (2 pi), factor, x', c', s')`` (see :func:`abrelu_gaps`)."""
    k, fac, gap, antigap, d0 = abrelu_gaps(x, c, s, a, b)
    tn, cn, sn = _angle_from_gaps(gap, antigap, k, d0)
    return k * (1.0 / TWO_PI), fac, tn, cn, sn


@numba.njit(cache=True, error_model="numpy")
def _double_factorial_odd(n):
    # (2n - 1)!!, with (-1)!! = 1
    r = 1.0
    for k in range(1, n + 1):
        r *= 2.0 * k - 1.0
    return r


_ANTI_TOL = 1e-19  # relative size of the last series term kept at delta = pi / 2


def antipodal_series(n: int, nterms: int | None = None) -> tuple:
    """Taylor coefficients ``h_k`` of ``h_n(delta) = sum_k h_k delta^(2k)`` with
    ``J_n(pi - delta) = sin(delta)^(2n+1) h_n(delta)``.

    From the Cho-Saul operator, ``h_n = (1/sin(delta) d/d delta)^n (delta / sin(delta))``;
    every ``h_n`` is even and analytic for ``|delta| < pi``, with positive coefficients
    (no cancellation in the sum).  Exact rational arithmetic.  ``nterms=None`` takes as
    many terms as :func:`rectmono_pair` needs on its range ``delta <= pi/2`` (``c <= 0``):
    past the largest term, and until a term is below ``1e-19`` of the partial sum at
    ``delta = pi/2`` (the coefficients grow like ``k^(2n) pi^(-2k)``, so the count grows
    with ``n``: 38 terms for ``n = 1``, 52 for ``n = 6``).
    """
    if nterms is not None:
        return _antipodal_exact(int(n), int(nterms))
    d2 = (math.pi / 2) ** 2
    nterms = 32 + 4 * n
    while True:
        h = _antipodal_exact(int(n), nterms)
        total = 0.0
        for k, hk in enumerate(h):
            term = hk * d2**k
            total += term
            if k >= 3 * n and term < _ANTI_TOL * total:
                return h[: k + 1]
        nterms += 16


@functools.cache
def _antipodal_exact(n: int, nterms: int) -> tuple:
    total = nterms + n + 1
    # sin(d)/d = sum (-1)^k d^(2k) / (2k+1)!; g = d / sin(d) is its reciprocal series
    sinc = [Fraction((-1) ** k, math.factorial(2 * k + 1)) for k in range(total)]
    g = [Fraction(0)] * total
    g[0] = Fraction(1)
    for k in range(1, total):
        g[k] = -sum(sinc[j] * g[k - j] for j in range(1, k + 1))
    h = list(g)
    for _ in range(n):
        # (1/sin d) d/dd sum f_k d^(2k) = sum_i d^(2i) sum_{k + j = i + 1, k >= 1} 2k f_k g_j
        h = [
            sum(2 * k * h[k] * g[i + 1 - k] for k in range(1, i + 2))
            for i in range(len(h) - 1)
        ]
    return tuple(float(v) for v in h[:nterms])


@numba.njit(cache=True, error_model="numpy")
def _anti_eval(coef, off, nterms, delta, s, n):
    # J_n = s^(2n+1) sum_k coef[off + k] delta^(2k)
    d2 = delta * delta
    acc = 0.0
    for k in range(nterms - 1, -1, -1):
        acc = acc * d2 + coef[off + k]
    sp = s
    for _ in range(n):
        sp *= s * s
    return sp * acc


@numba.njit(cache=True, error_model="numpy")
def rectmono_pair(x, c, s, p):
    """Arc-cosine kernel of order ``n = p[0]``: returns ``(J_n, J_(n-1), x', c', s')``.

    Forward recurrence ``J_k = (2k-1) cos J_(k-1) + (k-1)^2 sin^2 J_(k-2)`` with the
    matching recurrence for the gap ``G_k = J_k(0) - J_k`` (stable as ``theta -> 0``);
    for ``c < 0`` (``delta = pi - theta < pi/2``), where the recurrence cancels
    (``J_n ~ delta^(2n+1)``), the series ``J_n = sin^(2n+1) h_n(delta)``
    (:func:`antipodal_series`), whose coefficients follow ``p = [n, K, h_n (K),
    h_(n-1) (K)]``.  ``x`` is the acute angle.
    """
    n = int(p[0])
    nterms = int(p[1])
    lo = c >= 0.0
    th = x if lo else PI - x
    delta = PI - x if lo else x  # pi - theta, exact where small
    omc = one_minus_cos(c, s)
    j0 = delta
    g0 = th
    if n == 0:
        jn, jm, gn = j0, 0.0, g0
    else:
        st = s_minus_tcos(x, s, c) if lo else s - th * c
        j1 = s + j0 * c
        g1 = PI * omc - st
        jm, jn, gn = j0, j1, g1
        s2 = s * s
        for k in range(2, n + 1):
            jnew = (2.0 * k - 1.0) * c * jn + (k - 1.0) * (k - 1.0) * s2 * jm
            gnew = (2.0 * k - 1.0) * (gn + omc * jn) - (k - 1.0) * (k - 1.0) * s2 * jm
            jm, jn = jn, jnew
            gn = gnew
        if not lo:  # c < 0: the recurrence cancels, the series does not
            jn = _anti_eval(p, 2, nterms, delta, s, n)
            jm = _anti_eval(p, 2 + nterms, nterms, delta, s, n - 1)
    jzero = PI * _double_factorial_odd(n)
    gap = gn if lo else jzero - jn
    tn, cn, sn = _angle_from_gaps(gap, jzero + jn, jn, jzero)
    return jn, jm, tn, cn, sn


@numba.njit(cache=True, error_model="numpy")
def sign_pair(x, c):
    """Sign: ``c' = 1 - 2 theta / pi``; returns ``(c', x', c', s')`` (``x`` acute)."""
    lo = c >= 0.0
    gap = 2.0 * x if lo else 2.0 * (PI - x)  # pi (1 - c') = 2 theta
    antigap = 2.0 * (PI - x) if lo else 2.0 * x  # pi (1 + c') = 2 (pi - theta)
    k = PI - 2.0 * x if lo else 2.0 * x - PI
    tn, cn, sn = _angle_from_gaps(gap, antigap, k, PI)
    return k / PI, tn, cn, sn


# ---------------------------------------------------------------------- smooth


@numba.njit(cache=True, error_model="numpy")
def _poly_alpha(p, k, q):
    # alpha_k(q) = sum_{i >= k, i - k even} ck[i, k] q^((i - k)/2); p = [deg, ck...]
    deg = int(p[0])
    m = deg + 1
    acc = 0.0
    qp = 1.0
    for i in range(k, deg + 1, 2):
        acc += p[1 + i * m + k] * qp
        qp *= q
    return acc


@numba.njit(cache=True, error_model="numpy", inline="always")
def _one_minus_atan_ratio(u):
    """``1 - atan(u) / u`` without cancellation (series ``u^2/3 - u^4/5 + ...`` below 0.1)."""
    if u < 0.1:
        u2 = u * u
        acc = 0.0
        for k in range(8, 0, -1):  # sum_{k>=1} (-1)^(k+1) u^(2k) / (2k+1)
            acc = acc * u2 + (1.0 if k % 2 == 1 else -1.0) / (2.0 * k + 1.0)
        return acc * u2
    return 1.0 - math.atan(u) / u


@numba.njit(cache=True, error_model="numpy")
def _gelu_negative(q1, q2, p12, q12, s2):
    """Gelu dual and NTK factor for ``q12 < 0`` without the cancellation of the direct
    formulas near ``c = -1`` at large variance (where ``F ~ q^(-1/2)`` is the difference of
    terms ``~ q^(1/2)``); used where ``u < 1`` (for ``u >> 1``, small variances, these
    forms cancel instead and the direct ones do not).  With ``T = (1 + q1)(1 + q2)``,
    ``det = T - q12^2 = 1 + q1 + q2 + P^2 s^2`` (a sum of positive terms),
    ``u = sqrt(det) / |q12|``, ``a = (2 + q1 + q2) / T`` and ``m(u) = 1 - atan(u) / u``:

    * ``2 pi F = 1 / sqrt(det) + sqrt(det) (m(u) - a)`` (from ``q12 / 4 + q12 asin(rho) /
      (2 pi) = q12 atan2(sqrt(det), -q12) / (2 pi)`` and the identity ``num = 1 + det (q1 q2
      - 1) / T`` for the numerator of the closed form);
    * ``2 pi G = (D - u^2 m(u) - 1 / det) / u`` with ``D = u^2 - a = ((1 + q1 + q2)^2 - q1 q2
      + P^2 s^2 (T + 2 + q1 + q2)) / (q12^2 T)``, also a sum of positive terms.

    Derived by hand from the closed form of :func:`smooth_f`; checked against mpmath in
    ``tests/test_duals.py``."""
    tt = (1.0 + q1) * (1.0 + q2)
    ps2 = p12 * p12 * s2
    det = 1.0 + q1 + q2 + ps2
    sd = math.sqrt(det)
    aq = -q12
    u = sd / aq
    m = _one_minus_atan_ratio(u)
    a = (2.0 + q1 + q2) / tt
    f = (1.0 / sd + sd * (m - a)) / TWO_PI
    s12 = 1.0 + q1 + q2
    big_d = (s12 * s12 - q1 * q2 + ps2 * (tt + 2.0 + q1 + q2)) / (aq * aq * tt)
    g = (big_d - u * u * m - 1.0 / det) / (u * TWO_PI)
    return f, g


@numba.njit(cache=True, error_model="numpy")
def smooth_f(code, q1, q2, p12, c, omc, opc, p):
    """Dual ``F`` of a smooth family at ``q12 = p12 * c`` (``p12 = sqrt(q1 q2)``)."""
    q12 = p12 * c
    if code == ERF:
        a, b, cc = p[0], p[1], p[2]
        b2 = 2.0 * b * b
        rho = b2 * q12 / math.sqrt((1.0 + b2 * q1) * (1.0 + b2 * q2))
        return a * a * (2.0 / PI) * math.asin(rho) + cc * cc
    if code == TRIG:
        a, b, sn2, cs2 = p[0], p[1], p[2], p[3]
        kap = cs2 - sn2
        x = b * b * q12
        if abs(x) < 1.0:
            # e^x - kappa e^-x = 2 sin^2(c) cosh x + 2 cos^2(c) sinh x: no cancellation
            w = a * a * math.exp(-0.5 * b * b * (q1 + q2))
            return w * (sn2 * math.cosh(x) + cs2 * math.sinh(x))
        dsq = math.sqrt(q1) - math.sqrt(q2)
        em = dsq * dsq + 2.0 * p12 * omc
        ep = dsq * dsq + 2.0 * p12 * opc
        return 0.5 * a * a * (math.exp(-0.5 * b * b * em) - kap * math.exp(-0.5 * b * b * ep))
    if code == GELU:
        t1 = 1.0 + q1
        t2 = 1.0 + q2
        if q12 < 0.0 and q12 * q12 > 1.0 + q1 + q2 + p12 * p12 * omc * opc:
            return _gelu_negative(q1, q2, p12, q12, omc * opc)[0]
        det = t1 * t2 - q12 * q12
        rho = q12 / math.sqrt(t1 * t2)
        num = q1 * q2 + q12 * q12 * (1.0 - q1 * q2) / (t1 * t2)
        return 0.25 * q12 + q12 * math.asin(rho) / TWO_PI + num / (TWO_PI * math.sqrt(det))
    if code == POLY:
        deg = int(p[0])
        acc = 0.0
        qk = 1.0
        fact = 1.0
        for k in range(deg + 1):
            if k > 0:
                fact *= k
            acc += fact * _poly_alpha(p, k, q1) * _poly_alpha(p, k, q2) * qk
            qk *= q12
        return acc
    if code == EXP:
        a, b = p[0], p[1]
        dsq = math.sqrt(q1) - math.sqrt(q2)
        ep = dsq * dsq + 2.0 * p12 * opc
        return a * a * math.exp(0.5 * b * b * ep)
    # GAUSS
    a, b = p[0], p[1]
    det = 1.0 - 2.0 * b * (q1 + q2) + 4.0 * b * b * p12 * p12 * omc * opc
    return a * a / math.sqrt(det)


@numba.njit(cache=True, error_model="numpy")
def smooth_g(code, q1, q2, p12, c, omc, opc, p):
    """NTK factor ``dF/dq12`` of a smooth family at ``q12 = p12 * c``."""
    q12 = p12 * c
    if code == ERF:
        a, b = p[0], p[1]
        b2 = 2.0 * b * b
        det = 1.0 + b2 * (q1 + q2) + b2 * b2 * p12 * p12 * omc * opc
        return a * a * b * b * (4.0 / PI) / math.sqrt(det)
    if code == TRIG:
        a, b, sn2, cs2 = p[0], p[1], p[2], p[3]
        kap = cs2 - sn2
        x = b * b * q12
        if abs(x) < 1.0:
            w = a * a * b * b * math.exp(-0.5 * b * b * (q1 + q2))
            return w * (cs2 * math.cosh(x) + sn2 * math.sinh(x))
        dsq = math.sqrt(q1) - math.sqrt(q2)
        em = dsq * dsq + 2.0 * p12 * omc
        ep = dsq * dsq + 2.0 * p12 * opc
        return (
            0.5 * a * a * b * b * (math.exp(-0.5 * b * b * em) + kap * math.exp(-0.5 * b * b * ep))
        )
    if code == GELU:
        t1 = 1.0 + q1
        t2 = 1.0 + q2
        if q12 < 0.0 and q12 * q12 > 1.0 + q1 + q2 + p12 * p12 * omc * opc:
            return _gelu_negative(q1, q2, p12, q12, omc * opc)[1]
        det = t1 * t2 - q12 * q12
        rho = q12 / math.sqrt(t1 * t2)
        sd = math.sqrt(det)
        return (
            0.25
            + math.asin(rho) / TWO_PI
            + q12 * ((q1 + q2 + 2.0) / (TWO_PI * t1 * t2 * sd) + 1.0 / (TWO_PI * det * sd))
        )
    if code == POLY:
        deg = int(p[0])
        acc = 0.0
        qk = 1.0
        fact = 1.0
        for k in range(1, deg + 1):
            fact *= k
            acc += k * fact * _poly_alpha(p, k, q1) * _poly_alpha(p, k, q2) * qk
            qk *= q12
        return acc
    if code == EXP:
        a, b = p[0], p[1]
        dsq = math.sqrt(q1) - math.sqrt(q2)
        ep = dsq * dsq + 2.0 * p12 * opc
        return a * a * b * b * math.exp(0.5 * b * b * ep)
    # GAUSS
    a, b = p[0], p[1]
    det = 1.0 - 2.0 * b * (q1 + q2) + 4.0 * b * b * p12 * p12 * omc * opc
    return 4.0 * a * a * b * b * q12 / (det * math.sqrt(det))


_GAP_SWITCH = 0.02  # use the integral form of the gap when 1 -+ c < this


@numba.njit(cache=True, error_model="numpy", inline="always")
def _erf_x(q1, q2, dq, b):
    """Erf's ``x_i = 2 b^2 q_i / (1 + 2 b^2 q_i)`` (the diagonal dual is
    ``(2 a^2 / pi) asin x``) and ``x1 - x2`` without cancellation."""
    b2 = 2.0 * b * b
    t1 = 1.0 + b2 * q1
    t2 = 1.0 + b2 * q2
    return b2 * q1 / t1, b2 * q2 / t2, b2 * dq / (t1 * t2)


@numba.njit(cache=True, error_model="numpy")
def _erf_norm_part(q1, q2, dq, p):
    """Erf norm part.  With ``alpha_i = asin x_i``, ``beta = asin sqrt(x1 x2)`` (the
    dual at ``q12 = sqrt(q1 q2)``), ``K = 2 a^2 / pi``, ``U_i = K alpha_i + c^2``,
    ``V = K beta + c^2``: ``N = (U1 U2 - V^2) / (sqrt(U1 U2) + V)``,
    ``U1 U2 - V^2 = K^2 (beta D1 + e1 e2) + K c^2 D1`` with the first differences
    ``e_i = alpha_i - beta`` (asin subtraction formula, numerator ``x_i (x_i - x_j)``) and
    the second difference ``D1 = alpha1 + alpha2 - 2 beta = 2 asin(dx^2 / (2 (g + h)
    sin((S + T) / 2)))``, from ``cos S - cos T = -dx^2 / (g + h)``, ``S = alpha1 + alpha2``,
    ``T = 2 beta``, ``g = sqrt((1 - x1^2)(1 - x2^2))``, ``h = 1 - x1 x2``."""
    a, b, cc = p[0], p[1], p[2]
    x1, x2, dx = _erf_x(q1, q2, dq, b)
    y = math.sqrt(x1 * x2)
    if not y > 0.0:
        return math.nan
    al1 = math.asin(x1)
    al2 = math.asin(x2)
    beta = math.asin(y)
    cy = math.sqrt((1.0 - y) * (1.0 + y))
    c1 = math.sqrt((1.0 - x1) * (1.0 + x1))
    c2 = math.sqrt((1.0 - x2) * (1.0 + x2))
    e1 = math.asin(x1 * dx / (x1 * cy + y * c1))
    e2 = math.asin(-x2 * dx / (x2 * cy + y * c2))
    half = 0.5 * (al1 + al2 + 2.0 * beta)
    sh = math.sin(half)
    if not sh > 0.0:
        return math.nan
    d1 = 2.0 * math.asin(dx * dx / (2.0 * (c1 * c2 + (1.0 - x1 * x2)) * sh))
    k = a * a * (2.0 / PI)
    c2c = cc * cc
    num = k * k * (beta * d1 + e1 * e2) + k * c2c * d1
    u1 = k * al1 + c2c
    u2 = k * al2 + c2c
    v = k * beta + c2c
    num = num if num > 0.0 else 0.0
    return num / (math.sqrt(u1) * math.sqrt(u2) + v)


_SINH_TERMS = 14
_SINH_S = tuple(1.0 / math.factorial(2 * k + 1) for k in range(_SINH_TERMS))


@numba.njit(cache=True, error_model="numpy")
def _sinh_gap(u, v):
    """``W = sinh(u) sinh(v) - sinh(sqrt(u v))^2 >= 0`` for ``0 <= u <= v``.  For
    ``v <= 1`` by ``sinh x = x S(x^2)``, ``S(y) = sum_k y^k / (2k+1)!``:
    ``W = u v sum_{j<k} s_j s_k (u^j v^k - u^k v^j)^2``, a sum of non-negative terms (the
    direct difference cancels when ``sinh`` is nearly linear); directly otherwise."""
    if v > 1.0:
        g = math.sinh(math.sqrt(u * v))
        return math.sinh(u) * math.sinh(v) - g * g
    acc = 0.0
    for k in range(1, _SINH_TERMS):
        for j in range(k):
            t = u**j * v**k - u**k * v**j
            acc += _SINH_S[j] * _SINH_S[k] * t * t
    return u * v * acc


@numba.njit(cache=True, error_model="numpy")
def _trig_norm_part(q1, q2, r1, r2, dr, p):
    """Sin/Cos (``a sin(b x + c)``, ``kappa = cos 2c``) norm part.  With
    ``u = b^2 dr^2 / 2``, ``v = b^2 (r1 + r2)^2 / 2``, ``g = sqrt(u v)``,
    ``w = a^2 / 2``: ``F1 F2 - f^2 = w^2 e^{-(u+v)} X`` with
    ``X = 2 (1 - kappa^2) sinh u cosh v + 2 (1 - kappa)^2 sinh u sinh v + 4 kappa W``
    for ``kappa >= 0`` (``W`` from :func:`_sinh_gap`) and
    ``X = 2 (1 - kappa^2) sinh u cosh v + 2 (1 + kappa^2) sinh u sinh v - 4 kappa sinh^2 g``
    for ``kappa < 0``: non-negative terms only.  ``N = (F1 F2 - f^2) / (sqrt(F1 F2) + f)``.
    """
    a, b, sn2, cs2 = p[0], p[1], p[2], p[3]
    kap = cs2 - sn2
    bb = b * b
    u = 0.5 * bb * dr * dr
    v = 0.5 * bb * (r1 + r2) * (r1 + r2)
    shu = math.sinh(u)
    x = 2.0 * (1.0 - kap) * (1.0 + kap) * shu * math.cosh(v)
    if kap >= 0.0:
        x += 2.0 * (1.0 - kap) * (1.0 - kap) * shu * math.sinh(v) + 4.0 * kap * _sinh_gap(u, v)
    else:
        g = math.sinh(math.sqrt(u * v))
        x += 2.0 * (1.0 + kap * kap) * shu * math.sinh(v) - 4.0 * kap * g * g
    w = 0.5 * a * a
    det = w * w * math.exp(-(u + v)) * x
    f1 = w * (sn2 + cs2 - kap * math.exp(-2.0 * bb * q1))  # F(q) = w (1 - kappa e^{-2 b^2 q})
    f2 = w * (sn2 + cs2 - kap * math.exp(-2.0 * bb * q2))
    f12 = w * (math.exp(-u) - kap * math.exp(-v))  # f(q1, q2, r1 r2)
    return det / (math.sqrt(f1) * math.sqrt(f2) + f12)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _poly_u(p, k, i):
    """Coefficient of ``r^i`` in ``u_k(r) = sqrt(k!) r^k alpha_k(r^2)``, where the
    polynomial dual is ``f = sum_k u_k(r1) u_k(r2) c^k`` (0 unless ``i >= k``,
    ``i - k`` even)."""
    if i < k or (i - k) % 2 == 1:
        return 0.0
    m = int(p[0]) + 1
    return math.sqrt(math.gamma(k + 1.0)) * p[1 + i * m + k]


@numba.njit(cache=True, error_model="numpy", inline="always")
def _poly_u_at(p, k, r):
    """``u_k(r)`` (see :func:`_poly_u`)."""
    acc = 0.0
    for i in range(int(p[0]) + 1):
        acc += _poly_u(p, k, i) * r**i
    return acc


@numba.njit(cache=True, error_model="numpy", inline="always")
def _power_gap(r1, r2, m):
    """``h_m = (r1^m - r2^m) / (r1 - r2) = sum_t r1^t r2^(m-1-t)``."""
    acc = 0.0
    for t in range(m):
        acc += r1**t * r2 ** (m - 1 - t)
    return acc


@numba.njit(cache=True, error_model="numpy")
def _poly_norm_part(r1, r2, dr, p):
    """Polynomial norm part by the Lagrange identity: with ``u_k`` as in :func:`_poly_u`,
    ``F(q_i) = |u(r_i)|^2``, ``f(q1, q2, r1 r2) = u(r1).u(r2)`` and
    ``|u1|^2 |u2|^2 - (u1.u2)^2 = sum_{j<k} M_jk^2``; each minor
    ``M_jk = dr sum_{i<l} (U_ji U_kl - U_jl U_ki) (r1 r2)^i h_(l-i)`` carries the factor
    ``dr`` exactly (``r1^l r2^i - r1^i r2^l = (r1 r2)^i (r1 - r2) h_(l-i)``).
    ``N = sum M_jk^2 / (|u1| |u2| + u1.u2)``."""
    deg = int(p[0])
    lag = 0.0
    f1 = 0.0
    f2 = 0.0
    f12 = 0.0
    for k in range(deg + 1):
        a1 = _poly_u_at(p, k, r1)
        a2 = _poly_u_at(p, k, r2)
        f1 += a1 * a1
        f2 += a2 * a2
        f12 += a1 * a2
        for j in range(k):
            mjk = 0.0
            for i in range(deg + 1):
                for l in range(i + 1, deg + 1):
                    w = _poly_u(p, j, i) * _poly_u(p, k, l) - _poly_u(p, j, l) * _poly_u(p, k, i)
                    if w != 0.0:
                        mjk += w * (r1 * r2) ** i * _power_gap(r1, r2, l - i)
            mjk *= dr
            lag += mjk * mjk
    den = math.sqrt(f1) * math.sqrt(f2) + f12
    return lag / den if den > 0.0 else math.nan


_GL8_X = tuple(float(v) for v in np.polynomial.legendre.leggauss(8)[0])
_GL8_W = tuple(float(v) for v in np.polynomial.legendre.leggauss(8)[1])
_GELU_TAU = 0.1  # above this |tau| the direct difference keeps ~14 digits


@numba.njit(cache=True, error_model="numpy")
def _gelu_norm_part(r1, r2, dr):
    """Gelu norm part ``N(tau) = int_0^tau (tau - s) N''(s) ds`` (8-point Gauss-Legendre)
    with ``r1 r2 = rho^2``, ``tau = atanh(dr / (r1 + r2))``, ``N''`` derived by SymPy
    (``derivations/gelu_norm.py``); NaN for ``|tau| > 0.1`` (the caller subtracts).
    ``N''`` itself loses digits as the variance grows and Gelu approaches the homogeneous
    ReLU (measured ~1e-12 relative at variance 30, ~1e-9 at 1000)."""
    den = r1 + r2
    if not den > 0.0:
        return math.nan
    t = math.atanh(dr / den)
    if abs(t) > _GELU_TAU:
        return math.nan
    rho2 = r1 * r2
    acc = 0.0
    for k in range(8):
        sk = 0.5 * t * (1.0 + _GL8_X[k])
        acc += _GL8_W[k] * (t - sk) * gelu_norm_d2(rho2, sk)
    return 0.5 * t * acc


@numba.njit(cache=True, error_model="numpy")
def smooth_norm_part(code, q1, q2, dr, p):
    """``N = sqrt(F(q1) F(q2)) - f(q1, q2, sqrt(q1 q2))`` (``F`` the diagonal dual) without
    cancellation, from the norm gap ``dr = sqrt(q1) - sqrt(q2)``, for the families with
    a simple closed form of it; NaN for the others (the caller subtracts directly).

    ``N >= 0`` is the part of the outgoing determinant due to the norms alone (zero for
    equal norms).  With ``dq = q1 - q2 = dr (sqrt q1 + sqrt q2)``:

    * Exp: ``N = -a^2 exp(b^2 (q1 + q2)) expm1(-b^2 dr^2 / 2)``;
    * Gaussian, ``D_i = 1 - 4 b q_i``, ``D = 1 - 2 b (q1 + q2)``, ``u = sqrt(D1 D2)``:
      ``N = 4 a^2 b^2 dq^2 / ((D + u)(sqrt D + sqrt u) sqrt(u D))``;
    * Erf: see :func:`_erf_norm_part`; polynomials: :func:`_poly_norm_part`; Gelu:
      :func:`_gelu_norm_part`;
    * Sin/Cos: see :func:`_trig_norm_part`.
    """
    r1 = math.sqrt(q1)
    r2 = math.sqrt(q2)
    dq = dr * (r1 + r2)
    if code == ERF:
        return _erf_norm_part(q1, q2, dq, p)
    if code == POLY:
        return _poly_norm_part(r1, r2, dr, p)
    if code == GELU:
        return _gelu_norm_part(r1, r2, dr)
    if code == EXP:
        a, b = p[0], p[1]
        return -a * a * math.exp(b * b * (q1 + q2)) * math.expm1(-0.5 * b * b * dr * dr)
    if code == GAUSS:
        a, b = p[0], p[1]
        d1 = 1.0 - 4.0 * b * q1
        d2 = 1.0 - 4.0 * b * q2
        dd = 1.0 - 2.0 * b * (q1 + q2)
        u = math.sqrt(d1 * d2)
        sd = math.sqrt(dd)
        su = math.sqrt(u)
        return 4.0 * a * a * b * b * dq * dq / ((dd + u) * (sd + su) * su * sd)
    if code == TRIG:
        return _trig_norm_part(q1, q2, r1, r2, dr, p)
    return math.nan


@numba.njit(cache=True, error_model="numpy")
def smooth_diag_diff(code, q1, q2, dr, p):
    """``F(q1) - F(q2)`` of the diagonal dual without cancellation, from the norm gap
    ``dr`` (``dq = dr (sqrt q1 + sqrt q2)``), for Erf (``(2 a^2 / pi)(asin x1 - asin x2)``
    by the asin subtraction formula), polynomials (``sum_k (u_k(r1) - u_k(r2))
    (u_k(r1) + u_k(r2))``, each difference with the factor ``dr`` exact), Exp
    (``a^2 e^{2 b^2 q2} expm1(2 b^2 dq)``), Gelu (``int F'`` by Gauss-Legendre, ``F'``
    derived by SymPy, for ``|dq| <= 0.1 q``), Gaussian
    (``4 a^2 b dq / (sqrt(D1 D2)(sqrt D1 + sqrt D2))``) and Sin/Cos
    (``-(a^2 kappa / 2) e^{-2 b^2 q2} expm1(-2 b^2 dq)``); NaN for the others."""
    r1 = math.sqrt(q1)
    r2 = math.sqrt(q2)
    dq = dr * (r1 + r2)
    if code == GELU:
        if abs(dq) > 0.1 * max(q1, q2):
            return math.nan
        acc = 0.0
        for k in range(8):
            acc += _GL8_W[k] * gelu_dF(q2 + 0.5 * dq * (1.0 + _GL8_X[k]))
        return 0.5 * dq * acc
    if code == POLY:
        deg = int(p[0])
        acc = 0.0
        for k in range(deg + 1):
            d_ = 0.0
            for i in range(deg + 1):
                d_ += _poly_u(p, k, i) * _power_gap(r1, r2, i)
            acc += d_ * (_poly_u_at(p, k, r1) + _poly_u_at(p, k, r2))
        return dr * acc
    if code == ERF:
        a, b = p[0], p[1]
        x1, x2, dx = _erf_x(q1, q2, dq, b)
        den = x1 * math.sqrt((1.0 - x2) * (1.0 + x2)) + x2 * math.sqrt((1.0 - x1) * (1.0 + x1))
        if not den > 0.0:
            return math.nan
        return a * a * (2.0 / PI) * math.asin(dx * (x1 + x2) / den)
    if code == EXP:
        a, b = p[0], p[1]
        return a * a * math.exp(2.0 * b * b * q2) * math.expm1(2.0 * b * b * dq)
    if code == GAUSS:
        a, b = p[0], p[1]
        s1 = math.sqrt(1.0 - 4.0 * b * q1)
        s2 = math.sqrt(1.0 - 4.0 * b * q2)
        return 4.0 * a * a * b * dq / (s1 * s2 * (s1 + s2))
    if code == TRIG:
        a, b, sn2, cs2 = p[0], p[1], p[2], p[3]
        bb = b * b
        return -0.5 * a * a * (cs2 - sn2) * math.exp(-2.0 * bb * q2) * math.expm1(-2.0 * bb * dq)
    return math.nan


_GELU_RATIO = 1.4  # panel growth of the Gelu factor integral (see smooth_factor_integral)


@numba.njit(cache=True, error_model="numpy")
def _gelu_factor_integral(q1, q2, p12, width, anti, p):
    """``P int_0^width g(q12(o)) do`` for Gelu, ``q12 = P (1 - o)`` (``anti``: ``P (o - 1)``),
    by 8-point Gauss-Legendre on panels that grow geometrically away from ``o = 0``.

    The factor is analytic except where ``q12^2 = (1 + q1)(1 + q2)``, at ``o = -delta``,
    ``delta = (1 + q1 + q2) / (P (sqrt((1 + q1)(1 + q2)) + P))`` (~``1/q`` for large
    variances).  A panel ``[o0, o1]`` with ``o1 + delta <= 1.4 (o0 + delta)`` has its
    Bernstein ellipse parameter above 11 (``r = 1 + 2 (o0 + delta) / (o1 - o0) >= 6``), so
    8 nodes integrate it to ~``11^-16`` relative."""
    tt = (1.0 + q1) * (1.0 + q2)
    delta = (1.0 + q1 + q2) / (p12 * (math.sqrt(tt) + p12))
    acc = 0.0
    o0 = 0.0
    while o0 < width:
        o1 = _GELU_RATIO * (o0 + delta) - delta
        if not o1 < width:  # also delta = inf (P = 0): one panel
            o1 = width
        h = 0.5 * (o1 - o0)
        part = 0.0
        for k in range(8):
            o = o0 + h * (1.0 + _GL8_X[k])
            if anti:
                part += _GL8_W[k] * smooth_g(GELU, q1, q2, p12, o - 1.0, 2.0 - o, o, p)
            else:
                part += _GL8_W[k] * smooth_g(GELU, q1, q2, p12, 1.0 - o, o, 2.0 - o, p)
        acc += h * part
        o0 = o1
    return acc * p12


@numba.njit(cache=True, error_model="numpy")
def smooth_factor_integral(code, q1, q2, p12, c, omc, opc, dsq, p, anti):
    """The integral of the NTK factor ``g = dF/dq12`` over ``q12`` from ``P c`` to ``P``
    (``F(P) - F(P c)``, the part of the gap ``P' - F(P c)`` due to the angle) or, with
    ``anti``, from ``-P`` to ``P c`` (``F(P c) - F(-P)``), without cancellation
    (``P = sqrt(q1 q2)``, ``s^2 = (1 - c)(1 + c)``, ``m = 1 - |c|``, ``dsq = sqrt q1 -
    sqrt q2``):

    * Erf, ``y = 2 b^2 P / sqrt((1 + 2 b^2 q1)(1 + 2 b^2 q2))``: ``asin y - asin(y |c|) =
      asin(y s^2 / (sqrt(1 - y^2 c^2) + |c| sqrt(1 - y^2)))`` times ``2 a^2 / pi``;
    * Exp: ``a^2 e^{b^2 (dsq^2 / 2 + P (1 + c))} expm1(b^2 P (1 - c))``, anti
      ``a^2 e^{b^2 dsq^2 / 2} expm1(b^2 P (1 + c))``;
    * Sin/Cos (``kappa = cos^2 c - sin^2 c`` of the phase): ``-(a^2 / 2) expm1(-b^2 P
      (1 - c)) (e^{-b^2 dsq^2 / 2} + kappa e^{-b^2 (dsq^2 / 2 + P (1 + c))})`` and the mirror
      image for ``anti``;
    * Gaussian, ``D = 1 - 2 b (q1 + q2)``, ``D_c = D + 4 b^2 P^2 s^2``:
      ``4 a^2 b^2 P^2 s^2 / (sqrt(D D_c)(sqrt D_c + sqrt D))`` (negated for ``anti``);
    * polynomials: ``sum_k k! alpha_k(q1) alpha_k(q2) P^k (1 - c^k)`` with ``1 - |c|^k = m
      sum_{j<k} |c|^j`` (``anti``: the terms times ``-(-1)^k``);
    * Gelu: :func:`_gelu_factor_integral`.

    A fixed 5-point Gauss-Legendre rule on ``g`` (used before) lost digits where ``g`` has
    a singularity just beyond ``c = 1`` (large ``b^2 q``): 3.4e-5 relative for ``Erf(1, 2)``
    at variance 40 and ``1 - c = 0.015``, and through the sine every later layer's NTK
    factor with it."""
    s2 = omc * opc
    if code == ERF:
        a, b = p[0], p[1]
        b2 = 2.0 * b * b
        y = b2 * p12 / math.sqrt((1.0 + b2 * q1) * (1.0 + b2 * q2))
        ac = abs(c)
        den = math.sqrt((1.0 - y * ac) * (1.0 + y * ac)) + ac * math.sqrt((1.0 - y) * (1.0 + y))
        return a * a * (2.0 / PI) * math.asin(y * s2 / den)
    if code == EXP:
        a, b = p[0], p[1]
        bb = b * b
        if anti:
            return a * a * math.exp(0.5 * bb * dsq * dsq) * math.expm1(bb * p12 * opc)
        return a * a * math.exp(bb * (0.5 * dsq * dsq + p12 * opc)) * math.expm1(bb * p12 * omc)
    if code == TRIG:
        a, b, sn2, cs2 = p[0], p[1], p[2], p[3]
        kap = cs2 - sn2
        bb = b * b
        near = math.exp(-0.5 * bb * dsq * dsq)
        if anti:
            far = math.exp(-bb * (0.5 * dsq * dsq + p12 * omc))
            return -0.5 * a * a * math.expm1(-bb * p12 * opc) * (far + kap * near)
        far = math.exp(-bb * (0.5 * dsq * dsq + p12 * opc))
        return -0.5 * a * a * math.expm1(-bb * p12 * omc) * (near + kap * far)
    if code == GAUSS:
        a, b = p[0], p[1]
        d0 = 1.0 - 2.0 * b * (q1 + q2)
        num = 4.0 * b * b * p12 * p12 * s2
        dc = d0 + num
        v = a * a * num / (math.sqrt(d0 * dc) * (math.sqrt(dc) + math.sqrt(d0)))
        return -v if anti else v
    if code == POLY:
        deg = int(p[0])
        ac = abs(c)
        m = opc if anti else omc
        acc = 0.0
        pk = 1.0
        fact = 1.0
        geo = 0.0  # sum_{j<k} |c|^j
        ck = 1.0
        for k in range(1, deg + 1):
            fact *= k
            pk *= -p12 if anti else p12
            geo += ck
            ck *= ac
            term = fact * _poly_alpha(p, k, q1) * _poly_alpha(p, k, q2) * pk * m * geo
            acc += -term if anti else term
        return acc
    if code == GELU:
        return _gelu_factor_integral(q1, q2, p12, opc if anti else omc, anti, p)
    return math.nan


@numba.njit(cache=True, error_model="numpy")
def smooth_pair(code, q1, q2, c, s, qn1, qn2, p, dr):
    """Smooth family on a pair.

    Returns ``(q12', factor, theta', c', s')``.  Near ``c = 1`` the gap is split as
    ``P' - q12' = [P' - F(q12 = P)] + int_{q12}^{P} (dF/dq) dq`` (the integral from
    :func:`smooth_factor_integral`), which does not cancel for equal norms; the first
    bracket, the norm part, from :func:`smooth_norm_part` where it has a closed form
    (``dr = sqrt q1 - sqrt q2``), else by subtraction (accurate to about ``1e-16 P'``
    absolute only).  Likewise the anti-gap near ``c = -1``.
    """
    p12 = geomean(q1, q2)
    omc = one_minus_cos(c, s)
    opc = one_plus_cos(c, s)
    f = smooth_f(code, q1, q2, p12, c, omc, opc, p)
    g = smooth_g(code, q1, q2, p12, c, omc, opc, p)
    pn = geomean(qn1, qn2)
    gap = pn - f
    antigap = pn + f
    if omc < _GAP_SWITCH:
        integ = smooth_factor_integral(code, q1, q2, p12, c, omc, opc, dr, p, False)
        normpart = smooth_norm_part(code, q1, q2, dr, p)
        if normpart != normpart:  # no closed form: subtract
            normpart = pn - smooth_f(code, q1, q2, p12, 1.0, 0.0, 2.0, p)
        gap = (normpart if normpart > 0.0 else 0.0) + integ
    elif opc < _GAP_SWITCH:
        integ = smooth_factor_integral(code, q1, q2, p12, c, omc, opc, dr, p, True)
        fanti = smooth_f(code, q1, q2, p12, -1.0, 2.0, 0.0, p)
        normpart = pn + fanti
        antigap = (normpart if normpart > 0.0 else 0.0) + integ
    if not pn > 0.0:
        return f, g, HALF_PI, 0.0, 1.0
    # normalised (gap * antigap may overflow), by true divisions so that f == pn gives
    # cos' == 1 exactly, as on the diagonal
    tn, cn, sn = _angle_from_gaps(gap / pn, antigap / pn, f / pn, 1.0)
    return f, g, tn, cn, sn


# --------------------------------------------------------------------- diagonal


@numba.njit(cache=True, error_model="numpy")
def diag_map(code, q, p):
    """Dual and factor on the diagonal (``q1 = q2 = q12 = q``): ``(q', factor)``."""
    if code == ABRELU:
        a, b = p[0], p[1]
        return 0.5 * (a * a + b * b) * q, 0.5 * (a * a + b * b)
    if code == RECTMONO:
        n = int(p[0])
        if n == 0:
            return (0.5 if q > 0.0 else 0.0), 0.0
        qn1 = q ** (n - 1)
        return 0.5 * _double_factorial_odd(n) * qn1 * q, 0.5 * n * n * _double_factorial_odd(
            n - 1
        ) * qn1
    if code == SIGN:
        return (1.0 if q > 0.0 else 0.0), 0.0
    if code == IDENTITY:
        return q, 1.0
    return smooth_f(code, q, q, q, 1.0, 0.0, 2.0, p), smooth_g(code, q, q, q, 1.0, 0.0, 2.0, p)


@numba.njit(cache=True, error_model="numpy")
def pair_map(code, q1, q2, th, c, s, qn1, qn2, p, dr):
    """One activation on one pair: ``(q12', factor, x', c', s')``, ``x`` the acute angle.

    ``q1, q2``: incoming variances; ``qn1, qn2``: outgoing variances (from
    :func:`diag_map`); ``dr = sqrt q1 - sqrt q2`` (smooth families only).  Used by the
    scalar paths; the row kernel in :mod:`analytic_ntk.recursion` inlines the same
    functions.
    """
    p12 = geomean(q1, q2)
    if code == ABRELU:
        kk, fac, tn, cn, sn = abrelu_pair(th, c, s, p[0], p[1])
        return p12 * kk, fac, tn, cn, sn
    if code == RECTMONO:
        n = int(p[0])
        jn, jm, tn, cn, sn = rectmono_pair(th, c, s, p)
        if n == 0:
            return (jn / TWO_PI if p12 > 0.0 else 0.0), 0.0, tn, cn, sn
        pm = p12 ** (n - 1)
        return pm * p12 * jn / TWO_PI, n * n * pm * jm / TWO_PI, tn, cn, sn
    if code == SIGN:
        kk, tn, cn, sn = sign_pair(th, c)
        return (kk if p12 > 0.0 else 0.0), 0.0, tn, cn, sn
    if code == IDENTITY:
        return p12 * c, 1.0, th, c, s
    return smooth_pair(code, q1, q2, c, s, qn1, qn2, p, dr)


# ------------------------------------------------------------------ Python API


def dual_params(activation) -> np.ndarray:
    """The float64 parameter vector of an activation for the numba kernels."""
    code, params = activation._dual_spec()
    if code == RECTMONO:
        n = int(params[0])
        hn = antipodal_series(n)
        hm = antipodal_series(n - 1, len(hn)) if n > 0 else (0.0,) * len(hn)
        return np.array([float(n), float(len(hn)), *hn, *hm])
    if code == POLY:
        coef = np.asarray(params, dtype=np.float64)
        deg = coef.size - 1
        ck = coef[:, None] * hermite_matrix(deg)
        return np.concatenate([[float(deg)], ck.ravel()])
    return np.asarray(params, dtype=np.float64).reshape(-1)


def hermite_matrix(deg: int) -> np.ndarray:
    """``H[i, k]``: coefficient of the probabilists' Hermite polynomial ``He_k`` in
    ``x^i`` (``x^i = sum_m i! / (m! (i-2m)! 2^m) He_(i-2m)(x)``)."""
    h = np.zeros((deg + 1, deg + 1))
    for i in range(deg + 1):
        for m in range(i // 2 + 1):
            h[i, i - 2 * m] = math.factorial(i) / (
                math.factorial(m) * math.factorial(i - 2 * m) * 2.0**m
            )
    return h


@numba.njit(cache=True, error_model="numpy")
def _evaluate_flat(code, q1, q2, q12, p, out_f, out_g):
    for i in range(q1.size):
        a, b = q1[i], q2[i]
        qa, _ = diag_map(code, a, p)
        qb, _ = diag_map(code, b, p)
        pp = math.sqrt(a * b)
        if pp > 0.0:
            c = min(max(q12[i] / pp, -1.0), 1.0)
        else:
            c = 0.0
        s = math.sqrt((1.0 - c) * (1.0 + c))
        th = atan2p(s, abs(c))
        f, g, _, _, _ = pair_map(code, a, b, th, c, s, qa, qb, p, math.sqrt(a) - math.sqrt(b))
        out_f[i] = f
        out_g[i] = g


def evaluate(activation, cov1, cov2, nngp):
    """Evaluate the dual of ``activation`` and its NTK factor.

    Parameters
    ----------
    activation : Activation
    cov1, cov2, nngp : array_like, broadcastable
        Variances and covariance of the centred Gaussian pair ``(u, v)``;
        ``|nngp| <= sqrt(cov1 cov2)`` up to rounding.

    Returns
    -------
    (F, factor) : arrays of the broadcast shape
        ``F = E[phi(u) phi(v)]`` and ``factor = E[phi'(u) phi'(v)]``.

    Notes
    -----
    The angle is taken as ``arccos(nngp / sqrt(cov1 cov2))``: convenient for
    tabulating, but for near-duplicate inputs use :meth:`Network.kernel`, which
    carries the angle stably.
    """
    code, _ = activation._dual_spec()
    q1, q2, q12 = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (cov1, cov2, nngp))
    )
    for name, v in (("cov1", q1), ("cov2", q2), ("nngp", q12)):
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{name} contains NaN or inf")
    if np.any(q1 < 0) or np.any(q2 < 0):
        raise ValueError("cov1 and cov2 must be non-negative")
    bound = np.sqrt(q1) * np.sqrt(q2)
    if np.any(np.abs(q12) > bound * (1 + 1e-12) + 1e-300):
        raise ValueError("|nngp| exceeds sqrt(cov1 * cov2): not a covariance")
    shape = q1.shape
    if code == GENERIC:
        from .quadrature import dual

        f, g = dual(
            activation,
            np.ascontiguousarray(q1).ravel(),
            np.ascontiguousarray(q2).ravel(),
            np.ascontiguousarray(q12).ravel(),
        )
        return f.reshape(shape), g.reshape(shape)
    f = np.empty(q1.size)
    g = np.empty(q1.size)
    _evaluate_flat(
        code,
        np.ascontiguousarray(q1).ravel(),
        np.ascontiguousarray(q2).ravel(),
        np.ascontiguousarray(q12).ravel(),
        dual_params(activation),
        f,
        g,
    )
    return f.reshape(shape), g.reshape(shape)
