"""Gaussian expectations of an arbitrary activation: Hermite (Mehler) series and split
Gauss-Legendre quadrature, compiled with numba.

For an activation ``phi`` without a closed-form dual (``analytic_ntk.Activation``), the
layer map needs, for a centred Gaussian pair ``u = r1 z1``, ``v = r2 (c z1 + s z2)``
(``z1, z2`` independent standard normal, ``r = sqrt(q)``, ``c = cos theta``,
``s = sin theta``),

    f = E[phi(u) phi(v)]   and   g = E[phi'(u) phi'(v)] = df/dq12   (Price's theorem).

Two methods, chosen per entry:

* **Mehler series.**  With the normalised probabilists' Hermite polynomials
  ``h_k = He_k / sqrt(k!)`` and the row coefficients ``a_k(r) = E[phi(r z) h_k(z)]``,
  ``b_k(r) = E[phi'(r z) h_k(z)]`` (Mehler's formula; O'Donnell 2014, ch. 11;
  Daniely, Frostig & Singer 2016),

      f = sum_k a_k(r1) a_k(r2) c^k,    g = sum_k b_k(r1) b_k(r2) c^k.

  The coefficients are computed once per input row and layer (``O(n K)`` work), so an
  entry costs ``O(K)`` multiply-adds (vectorised over columns), and the number of terms
  adapts to ``|c|``.  Truncation after ``K`` terms errs by at most
  ``|c|^K sqrt(tail(r1) tail(r2))``, ``tail(r) = E[phi(r z)^2] - sum_{k<K} a_k(r)^2``
  (Cauchy-Schwarz); an entry uses the series only where that bound is below
  ``1e-14 sqrt(F(r1) F(r2))``.  For smooth activations of moderate variance the series
  converges even at ``|c| = 1``; for kinked ones (ELU, hard-tanh, ReLU6) the Hermite
  coefficients decay algebraically and the series serves ``|c| <~ 0.9``.
* **Direct quadrature** for the remaining entries (``|c|`` close to 1): ``g`` as an
  iterated integral, the outer one over ``z1`` and the inner conditional expectation
  ``E[phi'(m + sigma xi)]``, ``m = r2 c z1``, ``sigma = r2 s``, each split at the kinks
  (and, in the outer integral, around the smoothed kinks of the inner one, whose width is
  ``s / |c|``), by 16-point Gauss-Legendre panels, or Gauss-Hermite where the inner
  window holds no kink.  ``f`` then follows by Price's theorem from ``theta = 0`` (or
  ``pi``): ``f(theta) = f(0) - sqrt(q1 q2) int_0^theta g(t) sin t dt``, with ``f(0)`` a
  one-dimensional integral; this also gives the gap ``sqrt(F1 F2) - f`` without
  cancellation for near-duplicate inputs.  Activations with jumps (``phi`` itself
  discontinuous) have no Price relation in the pointwise derivative; for them ``f`` is
  integrated directly.

The quadrature functions take the activation and its derivative as numba functions
``phi(t, p)``, ``dphi(t, p)`` (``p`` a float64 parameter array) and are compiled once per
activation *structure*; the series kernels only read coefficient arrays and are compiled
once for all activations (cached).
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
from numba import prange
from scipy.special import roots_hermitenorm

from ._fastmath import atan2p
from .duals import _angle_from_gaps, geomean

_GL_X, _GL_W = np.polynomial.legendre.leggauss(16)
_GL6_X, _GL6_W = np.polynomial.legendre.leggauss(6)


def _gh(m):
    x, w = roots_hermitenorm(m)
    return x, w / math.sqrt(2.0 * math.pi)


_GH24_X, _GH24_W = _gh(24)
_GH64_X, _GH64_W = _gh(64)

Z_RANGE = 14.0  # integrals over |z| <= 14: the Gaussian weight beyond is below 1e-42
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
SERIES_TOL = 1e-14  # truncation bound of the series, relative to sqrt(F1 F2)
_GAP_SWITCH = 0.1  # 1 -+ c below this: gap / anti-gap from the tail-sum form
_TINY_ANGLE = 1e-4  # below this angle, norm parts by Lagrange's identity
_PRICE_ANGLE = 0.1  # below this acute angle, direct f by Price's theorem from 0 (or pi)

_JIT = {"error_model": "numpy"}
_CJIT = {"cache": True, "error_model": "numpy"}


# ------------------------------------------------------------------ quadrature nodes


@numba.njit(**_CJIT)
def panel_nodes(lo, hi, breaks, hmax):
    """Gauss-Legendre (16-point) nodes and weights on ``[lo, hi]``, split at the sorted
    ``breaks`` inside it and into panels no longer than ``hmax``."""
    pts = [lo]
    for b in breaks:
        if lo < b < hi and b > pts[-1]:
            pts.append(b)
    pts.append(hi)
    npan = 0
    for k in range(len(pts) - 1):
        npan += max(1, int(math.ceil((pts[k + 1] - pts[k]) / hmax)))
    x = np.empty(npan * 16)
    w = np.empty(npan * 16)
    m = 0
    for k in range(len(pts) - 1):
        a = pts[k]
        b = pts[k + 1]
        nsub = max(1, int(math.ceil((b - a) / hmax)))
        h = (b - a) / nsub
        for p in range(nsub):
            c0 = a + (p + 0.5) * h
            for q in range(16):
                x[m] = c0 + 0.5 * h * _GL_X[q]
                w[m] = 0.5 * h * _GL_W[q]
                m += 1
    return x, w


# ------------------------------------------------------- expectations (per activation)


@numba.njit(**_JIT)
def apply(h, p, x, out):
    """``out[k] = h(x[k], p)``."""
    for k in range(x.size):
        out[k] = h(x[k], p)



@numba.njit(**_JIT, inline="always")
def _term(h, p, t, ref, mode):
    v = h(t, p)
    if mode == 0:
        return v
    d = ref - v if mode == 1 else ref + v
    return d * d


@numba.njit(**_JIT)
def expect(h, p, m, sig, kinks, hlen, ref=0.0, mode=0):
    """``E[h(m + sig xi)]`` (``mode`` 0), ``E[(ref - h(m + sig xi))^2]`` (1) or
    ``E[(ref + h(m + sig xi))^2]`` (2), ``xi`` standard normal: exact for ``sig = 0``;
    Gauss-Hermite (24 or 64 nodes) where ``[m - 14 sig, m + 14 sig]`` holds no kink and
    ``sig`` is below 0.1 (0.3) times the activation's length scale ``hlen`` (the longest
    Gauss-Legendre panel that resolves it, :func:`length_scales`); otherwise
    Gauss-Legendre panels split at the kinks."""
    if sig == 0.0:
        return _term(h, p, m, ref, mode)
    inside = False
    for t in kinks:
        if abs(t - m) < Z_RANGE * sig:
            inside = True
    if not inside and sig <= 0.1 * hlen:
        acc = 0.0
        for k in range(_GH24_X.size):
            acc += _GH24_W[k] * _term(h, p, m + sig * _GH24_X[k], ref, mode)
        return acc
    if not inside and sig <= 0.3 * hlen:
        acc = 0.0
        for k in range(_GH64_X.size):
            acc += _GH64_W[k] * _term(h, p, m + sig * _GH64_X[k], ref, mode)
        return acc
    br = np.sort((kinks - m) / sig)
    x, w = panel_nodes(-Z_RANGE, Z_RANGE, br, min(2.0, hlen / sig))
    acc = 0.0
    for k in range(x.size):
        xi = x[k]
        acc += w[k] * math.exp(-0.5 * xi * xi) * _term(h, p, m + sig * xi, ref, mode)
    return acc * INV_SQRT_2PI


@numba.njit(**_JIT)
def pair_expect(h, p, r1, r2, c, s, kinks, hlen, mode=0):
    """``E[h(u) h(v)]`` (``mode`` 0), ``E[(h(u) - h(v))^2]`` (1) or ``E[(h(u) + h(v))^2]``
    (2) for ``u = r1 z1``, ``v = r2 (c z1 + s z2)``: the outer integral
    over ``z1`` by Gauss-Legendre panels (split at the kinks of ``h(r1 z1)`` and around
    those of the inner expectation, ``z1 = t / (r2 c) + {0, +-1, +-4, +-12} s / |c|``),
    the inner one by :func:`expect`."""
    nk = kinks.size
    br = np.empty(nk * 8)
    m = 0
    if r1 > 0.0:
        for t in kinks:
            br[m] = t / r1
            m += 1
    rc = r2 * abs(c)
    if rc > 0.0:
        wdt = s / abs(c)
        for t in kinks:
            z0 = t / (r2 * c)
            br[m] = z0
            m += 1
            if wdt > 0.0:
                for f in (1.0, 4.0, 12.0):
                    if m + 2 <= br.size:
                        br[m] = z0 - f * wdt
                        br[m + 1] = z0 + f * wdt
                        m += 2
    brs = np.sort(br[:m])
    scale = max(r1, rc)
    hmax = min(1.0, hlen / scale) if scale > 0.0 else 1.0
    x, w = panel_nodes(-Z_RANGE, Z_RANGE, brs, hmax)
    sig = r2 * s
    acc = 0.0
    for k in range(x.size):
        z = x[k]
        hu = h(r1 * z, p)
        mz = rc * z if c >= 0.0 else -rc * z
        if mode != 0:
            acc += w[k] * math.exp(-0.5 * z * z) * expect(h, p, mz, sig, kinks, hlen, hu, mode)
        elif hu != 0.0:
            acc += w[k] * math.exp(-0.5 * z * z) * hu * expect(h, p, mz, sig, kinks, hlen)
    return acc * INV_SQRT_2PI


@numba.njit(**_CJIT)
def lagrange_normpart(a, b):
    """``sqrt(|a|^2 |b|^2) - a.b >= 0`` without cancellation for nearly parallel ``a``,
    ``b``: ``(|a|^2 |b|^2 - (a.b)^2) / (|a| |b| + a.b)`` with the numerator by Lagrange's
    identity ``1/2 sum_(k,l) (a_k b_l - a_l b_k)^2`` (``O(n^2)``; used for pairs at tiny
    angles whose norms differ, where the norm part is all of the gap)."""
    n = a.size
    num = 0.0
    saa = 0.0
    sbb = 0.0
    sab = 0.0
    for k in range(n):
        saa += a[k] * a[k]
        sbb += b[k] * b[k]
        sab += a[k] * b[k]
        for m in range(k):
            d = a[k] * b[m] - a[m] * b[k]
            num += d * d
    den = math.sqrt(saa) * math.sqrt(sbb) + sab
    return num / den if den > 0.0 else 0.0


@numba.njit(**_JIT)
def _norm_part_direct(phi, p, r1, r2, kinks, hlen, zmax):
    """``sqrt(E[phi(r1 z)^2] E[phi(r2 z)^2]) - E[phi(r1 z) phi(r2 z)]`` on one node set
    (split at the kinks of both), by :func:`lagrange_normpart`."""
    nk = kinks.size
    br = np.empty(2 * nk)
    m = 0
    for r in (r1, r2):
        if r > 0.0:
            for t in kinks:
                br[m] = t / r
                m += 1
    rm = max(r1, r2)
    x, w = panel_nodes(-zmax, zmax, np.sort(br[:m]), min(0.5, hlen / rm) if rm > 0.0 else 0.5)
    a = np.empty(x.size)
    b = np.empty(x.size)
    for k in range(x.size):
        z = x[k]
        sw = math.sqrt(w[k] * INV_SQRT_2PI) * math.exp(-0.25 * z * z)
        a[k] = sw * phi(r1 * z, p)
        b[k] = sw * phi(r2 * z, p)
    return lagrange_normpart(a, b)


@numba.njit(**_JIT)
def direct_entry(phi, dphi, p, kinks, hlen, zmax, jumps, r1, r2, c, s, pn):
    """``(f, g, gap, antigap)`` of one pair by direct quadrature (see the module
    docstring); ``pn = sqrt(F(q1) F(q2))`` the outgoing geometric-mean variance,
    ``gap = pn - f``, ``antigap = pn + f``."""
    g = pair_expect(dphi, p, r1, r2, c, s, kinks, hlen)
    x = atan2p(s, abs(c))  # acute angle
    if jumps:
        # no Price relation with the pointwise derivative; near theta = 0 (pi) the gap
        # (anti-gap) from E[(phi(u) -+ phi(v))^2] / 2 - (sqrt F1 - sqrt F2)^2 / 2, whose
        # integrand does not cancel at the jumps
        f = pair_expect(phi, p, r1, r2, c, s, kinks, hlen)
        gap = pn - f
        anti = pn + f
        if x < _PRICE_ANGLE:
            d2 = 0.0
            if r1 != r2:  # (sqrt F1 - sqrt F2)^2
                f1 = pair_expect(phi, p, r1, r1, 1.0, 0.0, kinks, hlen)
                f2 = pair_expect(phi, p, r2, r2, 1.0, 0.0, kinks, hlen)
                d2 = (f1 - f2) / (math.sqrt(f1) + math.sqrt(f2)) if f1 + f2 > 0.0 else 0.0
                d2 *= d2
            half = 0.5 * pair_expect(phi, p, r1, r2, c, s, kinks, hlen, 1 if c > 0 else 2)
            if c > 0.0:
                gap = max(half - 0.5 * d2, 0.0)
            else:
                anti = max(half - 0.5 * d2, 0.0)
        return f, g, gap, anti
    if x >= _PRICE_ANGLE:  # the gaps do not cancel: integrate f itself
        f = pair_expect(phi, p, r1, r2, c, s, kinks, hlen)
        return f, g, pn - f, pn + f
    pp = r1 * r2
    sgn = 1.0 if c >= 0.0 else -1.0
    integ = 0.0
    for k in range(_GL6_X.size):
        t = 0.5 * x * (1.0 + _GL6_X[k])
        integ += _GL6_W[k] * math.sin(t) * pair_expect(
            dphi, p, r1, r2, sgn * math.cos(t), math.sin(t), kinks, hlen
        )
    integ *= 0.5 * x * pp
    f_end = pair_expect(phi, p, r1, r2, sgn, 0.0, kinks, hlen)  # theta = 0 or pi
    if sgn > 0.0:
        f = f_end - integ
        if r1 == r2:
            normpart = 0.0
        elif x < _TINY_ANGLE:  # the norm part may be all of the gap: no cancellation
            normpart = _norm_part_direct(phi, p, r1, r2, kinks, hlen, zmax)
        else:
            normpart = pn - f_end
        return f, g, max(normpart, 0.0) + integ, pn + f
    f = f_end + integ
    return f, g, pn - f, max(pn + f_end, 0.0) + integ


@numba.njit(**_CJIT)
def hermite_functions(x, k):
    """``psi[j, m] = h_j(x_m) phi(x_m)^(1/2)``, ``j < k`` (normalised Hermite functions:
    ``h_j = He_j / sqrt(j!)``, ``phi`` the standard normal density), by the stable
    recurrence ``psi_(j+1) = (x psi_j - sqrt(j) psi_(j-1)) / sqrt(j+1)``, vectorised over
    the nodes."""
    n = x.size
    psi = np.empty((k, n))
    for m in range(n):
        psi[0, m] = math.exp(-0.25 * x[m] * x[m]) * (INV_SQRT_2PI**0.5)
    if k > 1:
        for m in range(n):
            psi[1, m] = x[m] * psi[0, m]
    for j in range(1, k - 1):
        c1 = math.sqrt(j)
        u = 1.0 / math.sqrt(j + 1.0)
        for m in range(n):
            psi[j + 1, m] = (x[m] * psi[j, m] - c1 * psi[j - 1, m]) * u
    return psi


@numba.njit(error_model="numpy", fastmath={"reassoc", "contract"})
def _row_coefficients(phi, dphi, p, r, kinks, hlen, zmax, a, b):
    """Hermite coefficients ``a_k(r)``, ``b_k(r)``, ``k < K = a.size``, and
    ``(F, G, F')``: ``F = E[phi(r z)^2]``, ``G = E[phi'(r z)^2]``,
    ``F' = dF/dr = 2 E[z phi(r z) phi'(r z)]``.

    Nodes: Gauss-Legendre panels on ``[-zmax, zmax]`` no longer than
    ``min(0.5, hlen / r)``, split at the kinks ``t / r``; the normalised Hermite functions
    at the nodes from :func:`hermite_functions`."""
    nk = a.size
    if r > 0.0:
        br = np.sort(kinks / r)
        hmax = min(0.5, hlen / r)
    else:
        br = np.empty(0)
        hmax = 0.5
    x, w = panel_nodes(-zmax, zmax, br, hmax)
    nz = x.size
    fv = np.empty(nz)  # w phi(r z) phi(z)^(1/2)
    fd = np.empty(nz)
    big_f = 0.0
    big_g = 0.0
    d_f = 0.0
    for m in range(nz):
        z = x[m]
        ew = math.exp(-0.25 * z * z) * (INV_SQRT_2PI**0.5)  # phi(z)^(1/2)
        v = phi(r * z, p)
        dv = dphi(r * z, p)
        wm = w[m] * ew
        big_f += wm * ew * v * v
        big_g += wm * ew * dv * dv
        d_f += wm * ew * 2.0 * z * v * dv
        fv[m] = wm * v
        fd[m] = wm * dv
    psi = hermite_functions(x, nk)
    a[:] = np.dot(psi, fv)
    b[:] = np.dot(psi, fd)
    return big_f, big_g, d_f


@numba.njit(**_JIT)
def row_coefficients(phi, dphi, p, r, kinks, hlen, zmax, a, b, fgd):
    """:func:`_row_coefficients` for every ``r[i]`` (in parallel): rows of ``a``, ``b``
    (n, K) and of ``fgd`` (n, 3) = ``(F, G, F')``."""
    for i in range(r.size):
        f, g, d = _row_coefficients(phi, dphi, p, r[i], kinks, hlen, zmax, a[i], b[i])
        fgd[i, 0] = f
        fgd[i, 1] = g
        fgd[i, 2] = d


@numba.njit(**_JIT)
def direct_entries(phi, dphi, p, kinks, hlen, zmax, jumps, rows, cols, r1, r2, pn1, pn2, cc,
                   ss, out):
    """:func:`direct_entry` for the flagged entries ``(rows[e], cols[e])`` (in parallel):
    ``out[e] = (f, g, gap, antigap)``."""
    for e in range(rows.size):
        i = rows[e]
        j = cols[e]
        f, g, gap, anti = direct_entry(
            phi, dphi, p, kinks, hlen, zmax, jumps, r1[i], r2[j], cc[i, j], ss[i, j],
            geomean(pn1[i], pn2[j]),
        )
        out[e, 0] = f
        out[e, 1] = g
        out[e, 2] = gap
        out[e, 3] = anti


# ------------------------------------------------------------ series (all activations)


@numba.njit(**_CJIT)
def series_ok(c, k, lt1, lt2):
    """Whether the ``k``-term series meets :data:`SERIES_TOL` at ``c``: ``lt`` are
    ``log(sqrt(tail / F))`` of the two rows (for ``f`` or ``g``, whichever is worse)."""
    ac = abs(c)
    if ac == 0.0:
        return True
    return k * math.log(ac) + lt1 + lt2 <= math.log(SERIES_TOL)


@numba.njit(parallel=True, **_CJIT)
def count_direct(cc, ss, dr, sym, k, lt1, lt2, counts):
    """Per row, the number of entries that need direct quadrature (``series_ok`` fails;
    exact duplicates -- ``s = 0`` and equal norms -- need neither)."""
    n1, n2 = cc.shape
    for i in prange(n1):
        j0 = np.int64(i) + 1 if sym else np.int64(0)
        cnt = 0
        for j in range(j0, n2):
            if ss[i, j] == 0.0 and dr[i, j] == 0.0 and cc[i, j] > 0.0:
                continue
            if not series_ok(cc[i, j], k, lt1[i], lt2[j]):
                cnt += 1
        counts[i] = cnt


@numba.njit(parallel=True, **_CJIT)
def list_direct(cc, ss, dr, sym, k, lt1, lt2, ptr, cols):
    """Fill ``cols[ptr[i]:ptr[i+1]]`` with the columns counted by :func:`count_direct`."""
    n1, n2 = cc.shape
    for i in prange(n1):
        j0 = np.int64(i) + 1 if sym else np.int64(0)
        m = ptr[i]
        for j in range(j0, n2):
            if ss[i, j] == 0.0 and dr[i, j] == 0.0 and cc[i, j] > 0.0:
                continue
            if not series_ok(cc[i, j], k, lt1[i], lt2[j]):
                cols[m] = j
                m += 1


_CHUNK = 256


@numba.njit(**_CJIT)
def _series_chunk(ai, bi, at, bt, cc, j0, m, kseg, f, g):
    """Horner sums ``f[jj] = sum_k ai[k] at[k, j0+jj] c^k``, same for ``g`` with ``b``."""
    for jj in range(m):
        f[jj] = 0.0
        g[jj] = 0.0
    for k in range(kseg - 1, -1, -1):
        ak = ai[k]
        bk = bi[k]
        arow = at[k]
        brow = bt[k]
        for jj in range(m):
            c = cc[jj]
            f[jj] = f[jj] * c + ak * arow[j0 + jj]
            g[jj] = g[jj] * c + bk * brow[j0 + jj]


@numba.njit(**_CJIT)
def _tail_sum(ai, at, j, kseg, c, alt):
    """``(sum_k alpha_k, H)`` with ``alpha_k = ai[k] at[k, j]`` (times ``(-1)^k`` with
    ``alt``, for the anti-gap near ``c = -1``, called with ``-c``) and
    ``sum_k alpha_k (1 - c^k) = (1 - c) H``, ``H = sum_j c^j sum_{k > j} alpha_k``."""
    tot = 0.0
    hh = 0.0
    for k in range(kseg - 1, 0, -1):
        sg = -1.0 if alt and k % 2 else 1.0
        tot += sg * ai[k] * at[k, j]
        hh = hh * c + tot
    tot += ai[0] * at[0, j]
    return tot, hh


@numba.njit(parallel=True, **_CJIT)
def series_layer(th, cc, ss, dr, nk, sym, ai, bi, at, bt, fo1, fo2, go1, go2, df1, df2, r1s,
                 r2s, rn1, rn2, ptr, cols, dvals, mode, carry_gap):
    """One generic activation layer on the whole row state (rows in parallel; with
    ``sym`` only ``j >= i``).

    Entries listed in ``ptr, cols`` (see :func:`list_direct`) take ``dvals = (f, g, gap,
    antigap)`` from direct quadrature; exact duplicates (``s = 0``, equal norms) take the
    diagonal values; the rest the Mehler series with the row coefficients ``ai, bi``
    (n1, K) and column coefficients ``at, bt`` (K, n2), the number of terms per chunk of
    columns from the largest ``|c|`` in it.  Near ``c = +-1`` the gap (anti-gap) is
    ``normpart + (1 - c) H`` (:func:`_tail_sum`), without cancellation.  Then the NTK
    factor multiplies ``nk``, the next angle comes from the gaps
    (:func:`duals._angle_from_gaps`), the state is left as ``mode`` asks (as the
    closed-form layers do, see :mod:`analytic_ntk.recursion`), and with ``carry_gap`` the
    norm gap ``sqrt(q1') - sqrt(q2')`` is updated from ``F(q1) - F(q2)`` (by the trapezoid
    rule on ``dF/dr`` for ``|dr| < 2e-5 r``, where subtraction would cancel).
    """
    n1, n2 = cc.shape
    kmax = at.shape[0]
    logtol = math.log(SERIES_TOL)
    for i in prange(n1):
        j0 = np.int64(i) if sym else np.int64(0)
        fbuf = np.empty(_CHUNK)
        gbuf = np.empty(_CHUNK)
        e = ptr[i]
        e_end = ptr[i + 1]
        for a in range(j0, n2, _CHUNK):
            b = min(a + _CHUNK, n2)
            m = b - a
            cmax = 0.0
            ee = e
            for j in range(a, b):
                if ee < e_end and cols[ee] == j:
                    ee += 1
                    continue
                if ss[i, j] == 0.0 and dr[i, j] == 0.0 and cc[i, j] > 0.0:
                    continue
                cmax = max(cmax, abs(cc[i, j]))
            if cmax >= 1.0:
                kseg = kmax
            elif cmax > 0.0:
                kseg = min(kmax, int(logtol / math.log(cmax)) + 2)
            else:
                kseg = 1
            _series_chunk(ai[i], bi[i], at, bt, cc[i, a:b], a, m, kseg, fbuf, gbuf)
            for j in range(a, b):
                c = cc[i, j]
                s = ss[i, j]
                pn = geomean(fo1[i], fo2[j])
                if e < e_end and cols[e] == j:
                    f = dvals[e, 0]
                    g = dvals[e, 1]
                    gap = dvals[e, 2]
                    anti = dvals[e, 3]
                    e += 1
                elif s == 0.0 and dr[i, j] == 0.0 and c > 0.0:
                    f = pn
                    g = geomean(go1[i], go2[j])
                    gap = 0.0
                    anti = 2.0 * pn
                else:
                    f = fbuf[j - a]
                    g = gbuf[j - a]
                    gap = pn - f
                    anti = pn + f
                    if c > 0.0 and s * s < _GAP_SWITCH * (1.0 + c):  # 1 - c small
                        tot, hh = _tail_sum(ai[i], at, j, kseg, c, False)
                        if dr[i, j] == 0.0:
                            normpart = 0.0
                        elif s < _TINY_ANGLE:
                            normpart = lagrange_normpart(ai[i, :kseg], at[:kseg, j])
                        else:
                            normpart = max(pn - tot, 0.0)
                        gap = normpart + (s * s / (1.0 + c)) * hh
                    elif c < 0.0 and s * s < _GAP_SWITCH * (1.0 - c):  # 1 + c small
                        tot, hh = _tail_sum(ai[i], at, j, kseg, -c, True)
                        anti = max(pn + tot, 0.0) - (s * s / (1.0 - c)) * hh
                nk[i, j] *= g
                if pn > 0.0:
                    tn, cn, sn = _angle_from_gaps(gap / pn, anti / pn, f / pn, 1.0)
                else:
                    tn, cn, sn = 0.5 * math.pi, 0.0, 1.0
                cc[i, j] = cn
                if mode == 2:  # CS2: cos, sin^2 and 1 - cos
                    s2 = sn * sn
                    ss[i, j] = s2
                    th[i, j] = s2 / (1.0 + cn) if cn > 0.0 else 1.0 - cn
                else:
                    ss[i, j] = sn
                    th[i, j] = tn
                if carry_gap:
                    d = dr[i, j]
                    if abs(d) < 2e-5 * max(r1s[i], r2s[j]):
                        diff = 0.5 * d * (df1[i] + df2[j])
                    else:
                        diff = fo1[i] - fo2[j]
                    den = rn1[i] + rn2[j]
                    dr[i, j] = diff / den if den > 0.0 else 0.0


# ---------------------------------------------------------------- set-up (Python)

K_CAP = 320  # most Hermite terms per row (kinked activations use all of them)
_K_STEP = 8


def _one_row(phi, dphi, p, kinks, r, hlen, zmax, k):
    a = np.empty((1, k))
    b = np.empty((1, k))
    fgd = np.empty((1, 3))
    row_coefficients(phi, dphi, p, np.array([float(r)]), kinks, hlen, zmax, a, b, fgd)
    return a[0], b[0], fgd[0]


def _close(u, v, rtol):
    return all(abs(x - y) <= rtol * max(abs(x), abs(y)) + 1e-300 for x, y in zip(u, v))


def length_scales(phi, dphi, p, kinks, rmax):
    """``(hlen, zmax)``: the panel length (in the activation's argument) and the range of
    ``z`` for which ``F = E[phi(r z)^2]`` and ``G = E[phi'(r z)^2]`` at ``r = rmax``
    are converged to ``1e-14`` relative (halving ``hlen``, widening ``zmax``).

    Raises
    ------
    ValueError
        If no panel length down to 1e-4 or no range up to ``|z| = 60`` converges (the
        activation is too rough, or its Gaussian moments do not exist at this variance).
    """
    hlen = 4.0
    zmax = Z_RANGE
    while True:
        # at a radius where panels of hlen / r (< 0.5) decide the resolution
        rt = max(rmax, 4.0 * hlen)
        ref = _one_row(phi, dphi, p, kinks, rt, hlen, zmax, 1)[2][:2]
        new = _one_row(phi, dphi, p, kinks, rt, 0.5 * hlen, zmax, 1)[2][:2]
        if not (np.all(np.isfinite(new)) and np.all(np.isfinite(ref))):
            raise ValueError(f"E[phi^2] or E[phi'^2] is not finite at variance {rt**2:g}")
        if _close(new, ref, 1e-14):
            break
        hlen *= 0.5
        if hlen < 1e-4:
            raise ValueError("the activation is too rough for the quadrature (no convergence)")
    ref = _one_row(phi, dphi, p, kinks, rmax, hlen, zmax, 1)[2][:2]
    while True:
        new = _one_row(phi, dphi, p, kinks, rmax, hlen, zmax + 6.0, 1)[2][:2]
        if np.all(np.isfinite(new)) and _close(new, ref, 1e-15):
            break
        zmax += 6.0
        ref = new
        if zmax > 60.0:
            raise ValueError(
                f"the Gaussian moments of the activation do not converge at variance {rmax**2:g}"
            )
    return hlen, zmax


def _log_tail(total, coefs):
    """Per row ``log sqrt(tail / total)``, ``tail = total - sum_k coefs^2``, at least
    ``1e-16`` relative (rounding); -40 where ``total`` is 0."""
    tail = total - np.einsum("ik,ik->i", coefs, coefs)
    pos = total > 0.0
    ratio = np.where(pos, tail / np.where(pos, total, 1.0), 0.0)
    return np.where(pos, 0.5 * np.log(np.maximum(ratio, 1e-16)), -40.0)


def choose_terms(phi, dphi, p, kinks, hlen, zmax, radii):
    """The number of Hermite terms ``K <= K_CAP`` after which the sums ``sum a_k^2``,
    ``sum b_k^2`` reach ``F``, ``G`` to rounding (``4e-16``) at every radius in ``radii``;
    ``K_CAP`` where they do not (kinked activations, large variances)."""
    need = _K_STEP
    for r in radii:
        a, b, fgd = _one_row(phi, dphi, p, kinks, r, hlen, zmax, K_CAP)
        for tot, c in ((fgd[0], a), (fgd[1], b)):
            if not tot > 0.0:
                continue
            tail = tot - np.cumsum(c * c)
            ok = np.nonzero(tail <= 4e-16 * tot)[0]
            k = K_CAP if ok.size == 0 else min(K_CAP, int(ok[0]) + 1 + _K_STEP)
            need = max(need, k)
    return int(-(-need // _K_STEP) * _K_STEP) if need < K_CAP else K_CAP


@numba.njit(**_JIT)
def node_values(phi, dphi, p, r, x, v, dv):
    """``v[i, m] = phi(r[i] x[m], p)``, ``dv[i, m] = dphi(r[i] x[m], p)`` (rows in
    parallel)."""
    for i in range(r.size):
        for m in range(x.size):
            v[i, m] = phi(r[i] * x[m], p)
            dv[i, m] = dphi(r[i] * x[m], p)


_ROW_BLOCK = 2048


@functools.lru_cache(maxsize=16)
def _common_nodes(zmax, k, split_at_zero):
    """Nodes, weights, Hermite functions ``psi`` (k, N), ``w phi(x)^(1/2)`` and
    ``w phi(x)`` of the shared node set (cached: they depend on ``zmax, k`` only)."""
    x, w = panel_nodes(-zmax, zmax, np.array([0.0]) if split_at_zero else np.empty(0), 0.5)
    psi = hermite_functions(x, k)
    sw = w * np.exp(-0.25 * x * x) * INV_SQRT_2PI**0.5
    wd = sw * np.exp(-0.25 * x * x) * INV_SQRT_2PI**0.5
    for a in (x, psi, sw, wd):
        a.setflags(write=False)
    return x, w, psi, sw, wd


def coefficients(phi, dphi, p, kinks, hlen, zmax, k, r):
    """``(a, b, fgd)`` of :func:`row_coefficients` for all radii ``r``.  Where every row
    has the same nodes (no kinks away from 0, one panel length), the values
    ``phi(r_i z_m)`` form a matrix and the coefficients are one BLAS product with the
    Hermite functions at the nodes, in blocks of rows; otherwise row by row."""
    n = r.size
    a = np.empty((n, k))
    b = np.empty((n, k))
    fgd = np.empty((n, 3))
    rmax = float(r.max()) if n else 0.0
    if np.any(kinks != 0.0) or rmax > 2.0 * hlen:
        row_coefficients(phi, dphi, p, r, kinks, hlen, zmax, a, b, fgd)
        return a, b, fgd
    x, w, psi, sw, wd = _common_nodes(float(zmax), int(k), bool(kinks.size))
    for s in range(0, n, _ROW_BLOCK):
        e = min(n, s + _ROW_BLOCK)
        v = np.empty((e - s, x.size))
        dv = np.empty((e - s, x.size))
        node_values(phi, dphi, p, np.ascontiguousarray(r[s:e]), x, v, dv)
        np.matmul(v * sw, psi.T, out=a[s:e])
        np.matmul(dv * sw, psi.T, out=b[s:e])
        fgd[s:e, 0] = (v * v) @ wd
        fgd[s:e, 1] = (dv * dv) @ wd
        fgd[s:e, 2] = 2.0 * ((v * dv) @ (wd * x))
    return a, b, fgd


class RowData:
    """Per-row quantities of one generic layer for inputs of radii ``r`` (``sqrt`` of
    the incoming variances): coefficients ``a``, ``b`` (n, K) and transposed ``at``,
    ``bt`` (K, n); ``F``, ``G``, ``dF`` (n,); ``lt`` (n,) the log tail ratio read by
    :func:`series_ok`."""

    def __init__(self, phi, dphi, p, kinks, hlen, zmax, k, r):
        self.a, self.b, fgd = coefficients(phi, dphi, p, kinks, hlen, zmax, k, r)
        self.F = fgd[:, 0].copy()
        self.G = fgd[:, 1].copy()
        self.dF = fgd[:, 2].copy()
        self.lt = np.maximum(_log_tail(self.F, self.a), _log_tail(self.G, self.b))
        self.at = np.ascontiguousarray(self.a.T)
        self.bt = np.ascontiguousarray(self.b.T)


class GenericLayer:
    """Everything the recursion needs of one generic activation layer on given inputs:
    ``rows`` (and ``cols`` for ``x2``) :class:`RowData`, the quadrature scales and
    ``evaluate_direct``."""

    def __init__(self, phi, dphi, p, kinks, jumps, r1, r2=None):
        self.phi, self.dphi = phi, dphi
        self.p = np.asarray(p, dtype=np.float64)
        self.kinks = np.asarray(kinks, dtype=np.float64)
        self.jumps = bool(jumps)
        rall = r1 if r2 is None else np.concatenate([r1, r2])
        rmax = float(rall.max())
        rmin = float(rall.min())
        self.hlen, self.zmax = length_scales(phi, dphi, self.p, self.kinks, rmax)
        self.k = choose_terms(phi, dphi, self.p, self.kinks, self.hlen, self.zmax,
                              sorted({rmin, rmax}))
        self.rows = RowData(phi, dphi, self.p, self.kinks, self.hlen, self.zmax, self.k, r1)
        self.cols = self.rows if r2 is None else RowData(
            phi, dphi, self.p, self.kinks, self.hlen, self.zmax, self.k, r2)

    def direct(self, rows, cols, r1, r2, cc, ss):
        """``(f, g, gap, antigap)`` (m, 4) of the entries ``(rows, cols)``."""
        out = np.empty((rows.size, 4))
        if rows.size:
            direct_entries(self.phi, self.dphi, self.p, self.kinks, self.hlen, self.zmax,
                           self.jumps,
                           rows, cols, r1, r2, self.rows.F, self.cols.F, cc, ss, out)
        return out


def dual_pair(layer, q1, q2, c, s):
    """``(f, g)`` of a generic activation for one pair given by its variances and the
    cosine and sine of its angle (``s >= 0``; pass them accurately, e.g. from the exact
    determinant, for near-duplicate pairs), with the same series / direct quadrature
    choice as the kernel."""
    r1 = math.sqrt(q1)
    r2 = math.sqrt(q2)
    gl = layer._generic_layer(np.array([r1]), np.array([r2]))
    if (s == 0.0 and r1 == r2 and c > 0.0) or not series_ok(
        c, gl.k, gl.rows.lt[0], gl.cols.lt[0]
    ):
        vals = gl.direct(np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64),
                         np.array([r1]), np.array([r2]), np.array([[c]]), np.array([[s]]))
        return float(vals[0, 0]), float(vals[0, 1])
    f = np.empty(1)
    g = np.empty(1)
    _series_chunk(gl.rows.a[0], gl.rows.b[0], gl.cols.at, gl.cols.bt, np.array([c]), 0, 1,
                  gl.k, f, g)
    return float(f[0]), float(g[0])


def dual(layer, q1, q2, q12):
    """``(E[phi(u) phi(v)], E[phi'(u) phi'(v)])`` of a generic activation for flat arrays
    of variances ``q1``, ``q2`` and covariances ``q12`` (validated by the caller,
    :func:`analytic_ntk.duals.evaluate`), entry by entry (:func:`dual_pair`).  The angle
    is ``arccos(q12 / sqrt(q1 q2))``."""
    f = np.empty(q1.size)
    g = np.empty(q1.size)
    for e in range(q1.size):
        pp = math.sqrt(q1[e]) * math.sqrt(q2[e])
        c = min(max(q12[e] / pp, -1.0), 1.0) if pp > 0.0 else 0.0
        f[e], g[e] = dual_pair(layer, q1[e], q2[e], c, math.sqrt((1.0 - c) * (1.0 + c)))
    return f, g
