"""The layer recursion over kernel matrices: one fused, parallel numba kernel.

For each row ``i`` (rows in parallel; with ``x2 = None`` only ``j >= i``, in blocks
of rows mirrored into the lower triangle as soon as they are done) the kernel runs
*all* layers on segments of the row's entries ``j`` before moving on, holding per
entry only ``(min(theta, pi - theta), cos theta, sin theta, sqrt(q1) - sqrt(q2), ntk)``
(see :mod:`analytic_ntk.duals`) in small buffers: no per-layer ``n1 x n2``
temporaries.  Each layer leaves only what the next reader needs (:func:`_flags`:
the angle only before ABRelu / rectified monomials / Sign, ``sin^2`` and ``1 - cos``
before a Dense layer with bias, the cosine alone in the final run of Dense layers).
Inside a layer the loop over ``j`` has a fixed body, so it vectorises for the ReLU
family and Dense layers (all maths is inlined, including
:func:`analytic_ntk._fastmath.atan2p`).  The diagonals of every layer are computed once
per input (``O(n L)``).

Input layer (design.md section 2): ``nngp = x1 x2^T / d``, the Gram product by BLAS
(``dsyrk`` for ``x2 = None``).  The cosine comes from the Gram product; where
``|cos| > 0.95`` the angle is recomputed from the vectors themselves
(:func:`exact_angle`, compensated dot products), to a few ulp relative even for
near-duplicate or antipodal inputs, and exactly zero for exactly parallel ones.

References: Jacot, Gabriel & Hongler 2018 (NTK recursion); Lee et al. 2018 (NNGP);
Novak et al. 2020 (neural-tangents conventions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba import prange
from scipy.linalg.blas import dsyrk

from . import duals, quadrature
from ._fastmath import _fma, _store_nt, atan2p
from .duals import (
    ABRELU,
    DENSE,
    GENERIC,
    IDENTITY,
    PI,
    RECTMONO,
    SIGN,
    abrelu_gaps,
    abrelu_pair,
    cos_sin_from_gaps,
    diag_map,
    is_smooth_code,
    pair_map,
    smooth_diag_diff,
)
from .layers import Dense, Network

__all__ = ["Kernel", "kernel"]

_EXACT_ANGLE = 0.95  # |cos| above this: angle from the vectors themselves


@dataclass(frozen=True)
class Kernel:
    """Infinite-width kernels of a network on inputs ``x1`` (n1, d), ``x2`` (n2, d).

    Attributes
    ----------
    nngp, ntk : ndarray
        (n1, n2) float64, or (n1,) when computed with ``diagonal=True``.
    cov1, cov2 : ndarray
        NNGP diagonals ``K(x1_i, x1_i)`` (n1,) and ``K(x2_j, x2_j)`` (n2,).
    """

    nngp: np.ndarray
    ntk: np.ndarray
    cov1: np.ndarray
    cov2: np.ndarray


# ----------------------------------------------------------------- layer table


def _layer_table(network: Network, d: int):
    """Codes (L,) and parameters (L, P) of the layers, as the numba kernels read them.

    Dense parameters are ``(weight_std, bias_std, is_standard, n_in)``.
    """
    rows = []
    n_in = d
    for layer in network.layers:
        if isinstance(layer, Dense):
            std = layer.parameterization == "standard"
            rows.append(
                (DENSE, np.array([layer.weight_std, layer.bias_std, float(std), float(n_in)]))
            )
            n_in = layer.width if layer.width is not None else n_in
        else:
            code, _ = layer._dual_spec()
            rows.append((code, np.zeros(0) if code == GENERIC else duals.dual_params(layer)))
    width = max(max((p.size for _, p in rows), default=1), 1)
    codes = np.array([c for c, _ in rows], dtype=np.int64)
    params = np.zeros((len(rows), width))
    for k, (_, p) in enumerate(rows):
        params[k, : p.size] = p
    return codes, params


@numba.njit(cache=True, error_model="numpy")
def _diag_recursion(codes, params, q0, n0, dq, dn):
    """Diagonal NNGP ``dq[l]`` and NTK ``dn[l]`` after each layer (row 0: the incoming
    ``q0``, ``n0``)."""
    n = q0.size
    for j in range(n):
        dq[0, j] = q0[j]
        dn[0, j] = n0[j]
    for layer in range(codes.size):
        code = codes[layer]
        p = params[layer]
        for j in range(n):
            q = dq[layer, j]
            if code == DENSE:
                w2 = p[0] * p[0]
                b2 = p[1] * p[1]
                qn = w2 * q + b2
                if p[2] > 0.0:
                    dn[layer + 1, j] = p[3] * q + w2 * dn[layer, j] + (1.0 if b2 > 0.0 else 0.0)
                else:
                    dn[layer + 1, j] = qn + w2 * dn[layer, j]
                dq[layer + 1, j] = qn
            else:
                qn, fac = diag_map(code, q, p)
                dq[layer + 1, j] = qn
                dn[layer + 1, j] = fac * dn[layer, j]


# ---------------------------------------------------------------- fused kernel


@numba.njit(cache=True, error_model="numpy", inline="always")
def _dense_gaps(c, s2, omc, w2, b2, pp, dsq):
    """After ``z' = w z + b``: ``(det', q12')`` with the output determinant
    ``q1'q2' - q12'^2 = w^4 P^2 s^2 + w^2 b^2 ((sqrt q1 - sqrt q2)^2 + 2 P (1 - c))``,
    a sum of non-negative terms (no cancellation); ``s2 = sin^2``, ``omc = 1 - cos``,
    ``P = sqrt(q1 q2)``, ``dsq`` the norm gap ``sqrt q1 - sqrt q2``."""
    q12n = w2 * pp * c + b2
    det = w2 * w2 * pp * pp * s2 + w2 * b2 * (dsq * dsq + 2.0 * pp * omc)
    return det, q12n


_JIT = {"cache": True, "error_model": "numpy"}

# What a layer leaves in the row state for the next reader (``flags >> 8``):
CS = 0  # cos and sin (smooth duals)
FULL = 1  # angle, cos and sin (ABRelu, rectified monomials, Sign)
CS2 = 2  # cos, sin^2 and (in th) 1 - cos: a Dense layer with bias reads these
C_ONLY = 3  # cos alone (only Dense / Identity layers follow)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _two_prod(a, b):
    h = a * b
    return h, _fma(a, b, -h)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _two_sum(a, b):
    s = a + b
    z = s - a
    return s, (a - (s - z)) + (b - z)


@numba.njit(**_JIT)
def _dot2(a, b):
    """``a . b`` as an unevaluated sum ``hi + lo``, accurate as if computed in twice the
    working precision (Ogita, Rump & Oishi 2005, "Accurate sum and dot product", Dot2)."""
    hi = 0.0
    lo = 0.0
    for k in range(a.size):
        h, r = _two_prod(a[k], b[k])
        hi, q = _two_sum(hi, h)
        lo += q + r
    return hi, lo


@numba.njit(**_JIT)
def _exactly_parallel(a, b):
    """Whether ``b = lambda a`` exactly for a real ``lambda``: ``a_k b_p == a_p b_k`` for
    every ``k`` with ``p = argmax |a_k|``, each product compared exactly (value and
    rounding error, by fused multiply-add)."""
    p = 0
    for k in range(a.size):
        if abs(a[k]) > abs(a[p]):
            p = k
    ap = a[p]
    bp = b[p]
    for k in range(a.size):
        u = a[k] * bp
        v = ap * b[k]
        if u != v or _fma(a[k], bp, -u) != _fma(ap, b[k], -v):
            return False
    return True


@numba.njit(**_JIT)
def exact_angle(a, b):
    """Acute angle ``x = min(theta, pi - theta)``, ``cos(theta)`` and ``sin(theta)`` of
    two non-zero vectors, each to a few ulp *relative* (also for near-parallel and
    near-antipodal pairs).

    With ``t = (a.b) / (a.a)`` in double-double (compensated dot products), the
    residual ``r = b - t a`` is formed with fused multiply-adds, so ``|r| = |b| sin(theta)``
    keeps its relative accuracy however small it is; then
    ``x = atan2(|r|, |t| |a|)``, ``cos = t |a| / h``, ``sin = |r| / h``,
    ``h = sqrt(t^2 |a|^2 + |r|^2)``.
    """
    aa_hi, aa_lo = _dot2(a, a)
    ab_hi, ab_lo = _dot2(a, b)
    t_hi = ab_hi / aa_hi
    t_lo = (_fma(-t_hi, aa_hi, ab_hi) + ab_lo - t_hi * aa_lo) / aa_hi
    rr = 0.0
    for k in range(a.size):
        r = _fma(-t_hi, a[k], b[k]) - t_lo * a[k]
        rr += r * r
    rn = np.sqrt(rr)
    proj = abs(t_hi) * np.sqrt(aa_hi)
    if rn <= 1e-28 * proj and _exactly_parallel(a, b):
        # the residual is rounding (~1e-32 relative); the true angle is exactly zero,
        # which matters because sqrt-type duals (Sign, step) amplify theta to sqrt(theta)
        return 0.0, 1.0 if t_hi > 0.0 else -1.0, 0.0
    h = np.sqrt(proj * proj + rr)
    x = atan2p(rn, proj)
    c = proj / h if t_hi >= 0.0 else -proj / h
    return x, c, rn / h


@numba.njit(**_JIT)
def _init_row(grow, r1, nrow, ir1, inrow, xa, x2, j0, th, cc, ss, dr, rscale, mode, diag):
    """Input-layer angles of one row: cosine from the Gram row (vectorised loop), and
    :func:`exact_angle` from the vectors themselves where ``|cos| > 0.95``; the angle
    and sine only as ``mode`` asks (``ss`` holds ``sin^2`` for ``CS2``).  ``ir1``,
    ``inrow``: inverse norms;
    ``diag``: the column of the entry ``(x, x)`` when ``x2`` is ``x1`` (else -1).

    ``dr`` gets ``rscale (|x1| - |x2|)``, the difference of the input-layer ``sqrt(q)``;
    where ``|cos| > 0.95`` it is formed as ``sum (a - b)(a + b) / (|a| + |b|)`` so that
    it keeps its relative accuracy for pairs that differ mainly in norm.
    """
    m = th.size
    top = 0.0
    for jj in range(m):
        c = min(max(grow[jj] * (ir1 * inrow[jj]), -1.0), 1.0)
        cc[jj] = c
        ss[jj] = (1.0 - c) * (1.0 + c)
        dr[jj] = rscale * (r1 - nrow[jj])
        top = max(top, abs(c) if jj != diag else 0.0)
    if mode == FULL or mode == CS:
        for jj in range(m):
            ss[jj] = np.sqrt(ss[jj])
    if mode == CS2:
        for jj in range(m):
            th[jj] = 1.0 - cc[jj]
    if mode == FULL:
        for jj in range(m):
            th[jj] = atan2p(ss[jj], abs(cc[jj]))
    if diag >= 0:  # the pair (x, x) itself: angle exactly zero
        th[diag] = 0.0
        cc[diag] = 1.0
        ss[diag] = 0.0
        dr[diag] = 0.0
    if top <= _EXACT_ANGLE:
        return
    for jj in range(m):
        if jj != diag and abs(cc[jj]) > _EXACT_ANGLE:
            b = x2[j0 + jj]
            th[jj], cc[jj], ss[jj] = exact_angle(xa, b)
            if mode == CS2:
                c = cc[jj]
                ss[jj] *= ss[jj]
                th[jj] = ss[jj] / (1.0 + c) if c > 0.0 else 1.0 - c
            acc = 0.0
            for k in range(b.size):
                acc += (xa[k] - b[k]) * (xa[k] + b[k])
            den = r1 + nrow[jj]
            dr[jj] = rscale * acc / den if den > 0.0 else 0.0


@numba.njit(**_JIT)
def _dense_gap(dr, r1, srow, rn1, snrow, w2):
    """``r1' - r2'`` after ``q' = w^2 q + b^2`` from ``r1 - r2`` without cancellation:
    ``w^2 (r1 - r2)(r1 + r2) / (r1' + r2')``."""
    for jj in range(dr.size):
        den = rn1 + snrow[jj]
        dr[jj] = w2 * dr[jj] * (r1 + srow[jj]) / den if den > 0.0 else 0.0


@numba.njit(**_JIT)
def _act_gap(code, dr, r1, srow, rn1, snrow, p):
    """``r1' - r2'`` after an activation: exactly scaled for the homogeneous ones
    (ABRelu: ``sqrt((a^2 + b^2) / 2)``; rectified monomial of degree ``n >= 1``:
    ``r' = sqrt(C) r^n`` so ``r1' - r2' = sqrt(C) (r1 - r2) sum_k r1^k r2^(n-1-k)``);
    smooth families: ``(F(q1) - F(q2)) / (r1' + r2')`` with :func:`duals.smooth_diag_diff`
    where it has a closed form; otherwise the difference of the outgoing ``sqrt(q')``."""
    if code == IDENTITY:
        return
    if code == ABRELU:
        f = np.sqrt(0.5 * (p[0] * p[0] + p[1] * p[1]))
        for jj in range(dr.size):
            dr[jj] *= f
        return
    n = int(p[0])
    if code == RECTMONO and n >= 1:
        f = np.sqrt(diag_map(code, 1.0, p)[0])
        for jj in range(dr.size):
            r2 = srow[jj]
            acc = 0.0
            for k in range(n):
                acc += r1**k * r2 ** (n - 1 - k)
            dr[jj] = f * dr[jj] * acc
        return
    if is_smooth_code(code):
        q1 = r1 * r1
        for jj in range(dr.size):
            r2 = srow[jj]
            diff = smooth_diag_diff(code, q1, r2 * r2, dr[jj], p)
            den = rn1 + snrow[jj]
            if diff == diff:
                dr[jj] = diff / den if den > 0.0 else 0.0
            else:
                dr[jj] = rn1 - snrow[jj]
        return
    for jj in range(dr.size):
        dr[jj] = rn1 - snrow[jj]


@numba.njit(**_JIT)
def _dense_ntk(cc, nk, r1, srow, w2, b2, std, nin):
    """NTK of a Dense layer: ``w^2 q12 + b^2 + w^2 ntk`` (NTK param.) or
    ``n_in q12 + w^2 ntk + [b > 0]`` (standard), with the incoming ``q12``."""
    if std:
        bias_term = 1.0 if b2 > 0.0 else 0.0
        for jj in range(nk.size):
            nk[jj] = nin * (r1 * srow[jj] * cc[jj]) + w2 * nk[jj] + bias_term
    else:
        for jj in range(nk.size):
            nk[jj] = w2 * (r1 * srow[jj] * cc[jj]) + b2 + w2 * nk[jj]


@numba.njit(**_JIT)
def _dense_angle(th, cc, ss, r1, srow, dr, iq1, iqrow, w2, b2, mode):
    """A Dense layer with bias (see :func:`_dense_gaps`): reads the ``CS2`` state, leaves
    what ``mode`` asks.  ``dr`` holds ``sqrt(q1) - sqrt(q2)`` of the incoming variances,
    ``iq1``, ``iqrow`` the inverse outgoing ``sqrt(q')``."""
    if mode == FULL:
        for jj in range(th.size):
            det, k = _dense_gaps(cc[jj], ss[jj], th[jj], w2, b2, r1 * srow[jj], dr[jj])
            inv = iq1 * iqrow[jj]
            sa = np.sqrt(det)
            th[jj] = atan2p(sa, abs(k))
            cc[jj] = k * inv
            ss[jj] = sa * inv
    elif mode == CS:
        for jj in range(th.size):
            det, k = _dense_gaps(cc[jj], ss[jj], th[jj], w2, b2, r1 * srow[jj], dr[jj])
            inv = iq1 * iqrow[jj]
            cc[jj] = k * inv
            ss[jj] = np.sqrt(det) * inv
    else:
        for jj in range(th.size):
            det, k = _dense_gaps(cc[jj], ss[jj], th[jj], w2, b2, r1 * srow[jj], dr[jj])
            inv = iq1 * iqrow[jj]
            c = k * inv
            s2 = det * (inv * inv)
            cc[jj] = c
            ss[jj] = s2
            th[jj] = s2 / (1.0 + c) if c > 0.0 else 1.0 - c


@numba.njit(**_JIT)
def _dense_cos(cc, r1, srow, iq1, iqrow, w2, b2):
    """Cosine alone after a Dense layer with bias: ``(w^2 P c + b^2) / sqrt(q1' q2')``."""
    for jj in range(cc.size):
        cc[jj] = (w2 * (r1 * srow[jj]) * cc[jj] + b2) * (iq1 * iqrow[jj])


@numba.njit(**_JIT)
def _abrelu_row(th, cc, ss, nk, a, b, mode):
    """ABRelu on a row (see :func:`duals.abrelu_gaps`); leaves what ``mode`` asks."""
    if mode == FULL:
        for jj in range(th.size):
            _, fac, t, c, s = abrelu_pair(th[jj], cc[jj], ss[jj], a, b)
            nk[jj] *= fac
            th[jj] = t
            cc[jj] = c
            ss[jj] = s
    elif mode == CS:
        for jj in range(th.size):
            k, fac, gap, antigap, d0 = abrelu_gaps(th[jj], cc[jj], ss[jj], a, b)
            _, c, s = cos_sin_from_gaps(gap, antigap, k, d0)
            nk[jj] *= fac
            cc[jj] = c
            ss[jj] = s
    else:
        d0 = (a * a + b * b) * PI
        inv = 1.0 / d0 if d0 > 0.0 else 0.0
        for jj in range(th.size):
            k, fac, gap, antigap, _ = abrelu_gaps(th[jj], cc[jj], ss[jj], a, b)
            nk[jj] *= fac
            g = max(gap, 0.0) * inv  # 1 - cos'
            c = k * inv
            cc[jj] = c
            ss[jj] = g * (max(antigap, 0.0) * inv)
            th[jj] = g if c > 0.0 else 1.0 - c


@numba.njit(**_JIT)
def _generic_row(code, th, cc, ss, nk, dr, q1, q2row, qn1, qn2row, p, mode):
    for jj in range(th.size):
        _, fac, t, c, s = pair_map(
            code, q1, q2row[jj], th[jj], cc[jj], ss[jj], qn1, qn2row[jj], p, dr[jj]
        )
        nk[jj] *= fac
        th[jj] = t
        cc[jj] = c
        ss[jj] = s
    if mode == CS2:
        for jj in range(ss.size):
            c = cc[jj]
            s2 = ss[jj] * ss[jj]
            ss[jj] = s2
            th[jj] = s2 / (1.0 + c) if c > 0.0 else 1.0 - c


@numba.njit(**_JIT)
def _final_row(grow, krow, r1, srow, cc, nk):
    bad = False
    for jj in range(nk.size):
        v = r1 * srow[jj] * cc[jj]
        k = nk[jj]
        grow[jj] = v
        krow[jj] = k
        bad |= ((v - v) != 0.0) | ((k - k) != 0.0)  # NaN or inf
    return bad


@numba.njit(**_JIT)
def _layer_step(layer, i, j0, j1, th, cc, ss, dr, nk, codes, params, dq1, dq2, sq1, sq2, iq1,
                iq2, flags):
    """Layer ``layer`` (Dense or a closed-form activation) on the entries ``(i, j)``,
    ``j0 <= j < j1``, whose state is in the row buffers ``th, cc, ss, dr, nk`` (see
    :func:`_segment`)."""
    code = codes[layer]
    p = params[layer]
    r1 = sq1[layer, i]
    srow = sq2[layer, j0:j1]
    mode = flags[layer + 1] >> 8  # what the next reader needs
    gap = flags[layer] & 2
    if code == DENSE:
        w2 = p[0] * p[0]
        b2 = p[1] * p[1]
        _dense_ntk(cc, nk, r1, srow, w2, b2, p[2] > 0.0, p[3])
        if b2 > 0.0 and flags[layer] & 4:
            _dense_cos(cc, r1, srow, iq1[layer + 1, i], iq2[layer + 1, j0:j1], w2, b2)
        elif b2 > 0.0:
            _dense_angle(
                th, cc, ss, r1, srow, dr, iq1[layer + 1, i], iq2[layer + 1, j0:j1], w2, b2,
                mode,
            )
        if gap:
            _dense_gap(dr, r1, srow, sq1[layer + 1, i], sq2[layer + 1, j0:j1], w2)
        return
    if code == ABRELU:
        _abrelu_row(th, cc, ss, nk, p[0], p[1], mode)
    elif code != IDENTITY:
        _generic_row(
            code, th, cc, ss, nk, dr, dq1[layer, i], dq2[layer, j0:j1], dq1[layer + 1, i],
            dq2[layer + 1, j0:j1], p, mode,
        )
    if gap:
        _act_gap(code, dr, r1, srow, sq1[layer + 1, i], sq2[layer + 1, j0:j1], p)


@numba.njit(**_JIT)
def _segment(i, j0, j1, work, nngp, ntk, x1, x2, pre, codes, params, dq1, dq2, sq1, sq2, iq1,
             iq2, flags, diag):
    """All layers for the entries ``(i, j)``, ``j0 <= j < j1``, of one row; ``work``
    (5, >= j1 - j0) holds the per-entry state.

    ``pre = (nrm1, nrm2, inrm1, inrm2)``: input norms and their inverses; ``iq``: inverse
    ``sqrt(q)`` per layer.  ``flags`` (see :func:`_flags`): ``flags[l] >> 8``, what layer
    ``l`` reads (``CS``, ``FULL``, ``CS2``, ``C_ONLY``; row ``L``: after the last
    layer); bit 1, carry the norm gap ``sqrt(q1) - sqrt(q2)`` through layer ``l`` (a later
    Dense layer with a bias needs it); bit 2, layer ``l`` is in the final run of
    Dense/Identity layers and only the cosine is carried.
    """
    nrm1, nrm2, inrm1, inrm2 = pre
    m = j1 - j0
    th = work[0, :m]
    cc = work[1, :m]
    ss = work[2, :m]
    dr = work[3, :m]
    nk = work[4, :m]
    nk[:] = 0.0
    grow = nngp[i, j0:j1]
    rscale = 1.0 / np.sqrt(x1.shape[1])  # sqrt(q) = |x| / sqrt(d) at the input
    _init_row(
        grow, nrm1[i], nrm2[j0:j1], inrm1[i], inrm2[j0:j1], x1[i], x2, j0, th, cc, ss, dr, rscale,
        flags[0] >> 8, diag,
    )
    for layer in range(codes.size):
        _layer_step(layer, i, j0, j1, th, cc, ss, dr, nk, codes, params, dq1, dq2, sq1, sq2,
                    iq1, iq2, flags)
    last = codes.size
    return _final_row(grow, ntk[i, j0:j1], sq1[last, i], sq2[last, j0:j1], cc, nk)


_CHUNK = 512  # columns per segment: the per-entry state stays in the L1/L2 cache


@numba.njit(**_JIT)
def _row(i, j0, nngp, ntk, x1, x2, pre, codes, params, dq1, dq2, sq1, sq2, iq1, iq2, flags, sym):
    """All layers for the entries ``(i, j)``, ``j >= j0``, of one row, in segments of
    ``_CHUNK`` columns (see :func:`_segment`); True if any entry is not finite.  With
    ``sym`` (``x2`` is ``x1``) the entry ``(i, i)`` gets the angle zero directly."""
    n2 = nngp.shape[1]
    work = np.empty((5, min(_CHUNK, n2 - j0)))
    bad = False
    for a in range(j0, n2, _CHUNK):
        b = min(a + _CHUNK, n2)
        diag = i - a if sym and a <= i < b else -1
        bad |= _segment(
            i, a, b, work, nngp, ntk, x1, x2, pre, codes, params, dq1, dq2, sq1, sq2, iq1, iq2,
            flags, diag,
        )
    return bad


_BLOCK = 32  # rows per block of the symmetric pass


@numba.njit(**_JIT)
def _mirror_rows(a, b, i0, i1):
    """Copy the upper-triangle entries of rows ``i0 <= i < i1`` of ``a`` and ``b`` to
    their mirror images ``(j, i)``, ``j > i``, while those rows are still in cache
    (streaming stores: the lower triangle is not read back)."""
    n = a.shape[0]
    for j in range(i0 + 1, n):
        for i in range(i0, min(i1, j)):
            _store_nt(a, j, i, a[i, j])
            _store_nt(b, j, i, b[i, j])


@numba.njit(**_JIT)
def _sym_block(blk, nngp, ntk, x, pre, codes, params, dq, sq, iq, flags, bad):
    """Rows ``blk * _BLOCK ...`` of the symmetric kernel (``j >= i``), then their mirror."""
    i0 = blk * _BLOCK
    i1 = min(nngp.shape[0], i0 + _BLOCK)
    for i in range(i0, i1):
        bad[i] = _row(
            i, i, nngp, ntk, x, x, pre, codes, params, dq, dq, sq, sq, iq, iq, flags, True
        )
    _mirror_rows(nngp, ntk, i0, i1)


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _fused(nngp, ntk, x1, x2, pre, codes, params, dq1, dq2, sq1, sq2, iq1, iq2, flags, sym, bad):
    """Overwrite ``nngp`` (holding ``x1 x2^T`` on entry) with the output NNGP and fill
    ``ntk``.  With ``sym`` only ``j >= i`` is computed, in blocks of ``_BLOCK`` rows
    paired ``(p, nb-1-p)`` so that every parallel task has the same amount of work; each
    block is mirrored into the lower triangle as soon as it is done."""
    n1 = nngp.shape[0]
    if sym:
        nb = (n1 + _BLOCK - 1) // _BLOCK
        for pidx in prange((nb + 1) // 2):
            _sym_block(pidx, nngp, ntk, x1, pre, codes, params, dq1, sq1, iq1, flags, bad)
            if nb - 1 - pidx != pidx:
                _sym_block(
                    nb - 1 - pidx, nngp, ntk, x1, pre, codes, params, dq1, sq1, iq1, flags, bad
                )
    else:
        for i in prange(n1):
            bad[i] = _row(i, 0, nngp, ntk, x1, x2, pre, codes, params, dq1, dq2, sq1, sq2,
                          iq1, iq2, flags, False)


# ------------------------------------------------------------------ Python API


def _as_inputs(x, name):
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a real array: {err}") from None
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return np.ascontiguousarray(arr)


def _norms(x):
    return np.sqrt(np.einsum("ij,ij->i", x, x))


def _gram(x1, x2, sym):
    """``x1 x2^T`` as a C-ordered array; for ``x2 = x1`` only its upper triangle, by BLAS
    ``dsyrk`` (half the products, and no copy into the lower triangle, which
    :func:`_fused` fills by symmetry)."""
    if sym:
        # dsyrk on the Fortran-ordered view x1^T (no copy) gives C = x1 x1^T in Fortran
        # order, lower triangle; its transpose is C-ordered with the upper triangle.
        return dsyrk(1.0, x1.T, trans=1, lower=1).T
    out = np.empty((x1.shape[0], x2.shape[0]))
    np.matmul(x1, x2.T, out=out)
    return out


def _inverse(a):
    """``1 / a`` where ``a > 0``, else 0."""
    out = np.zeros_like(a)
    np.divide(1.0, a, out=out, where=a > 0.0)
    return out


def _flags(codes, params):
    """Per layer boundary ``l = 0..L`` (row ``L``: the output): bits 8 and up, what the
    state entering layer ``l`` must hold: ``FULL`` (angle, cos, sin) for ABRelu,
    rectified monomials and Sign; ``CS`` for smooth duals; ``CS2`` (cos, ``sin^2``) for a
    Dense layer with bias; ``C_ONLY`` in the final run of Dense and Identity layers (the
    output NNGP reads the cosine alone); Identity and bias-free Dense layers pass the
    state through.  Bit 1: the norm gap is carried through layer ``l`` (some later Dense
    layer outside that final run has a bias, or a later smooth activation reads it).
    Bit 2: layer ``l`` is in that final run."""
    n = codes.size
    flags = np.zeros(n + 1, dtype=np.int64)
    mode = C_ONLY
    flags[n] = (C_ONLY << 8) | 4
    later_bias = False
    tail = True
    for k in range(n - 1, -1, -1):
        code = codes[k]
        tail = tail and code in (DENSE, IDENTITY)
        if later_bias:
            flags[k] |= 2
        if tail:
            flags[k] |= 4
            mode = C_ONLY
        elif code == DENSE:
            if params[k, 1] != 0.0:
                mode = CS2
                later_bias = True
        elif code in (ABRELU, RECTMONO, SIGN):
            mode = FULL
        elif code != IDENTITY:
            mode = CS
            later_bias = True  # the norm part of a smooth dual reads the gap
        flags[k] |= mode << 8
    return flags


def _row_state(codes, params, x1, x2, dq1, dq2, sym):
    """The per-row inputs of :func:`_fused` after ``x1, x2``: ``(pre, codes, params, dq1,
    dq2, sq1, sq2, iq1, iq2, flags)`` (O(n L) work)."""
    sq1 = np.sqrt(dq1)
    sq2 = sq1 if sym else np.sqrt(dq2)
    iq1 = _inverse(sq1)
    iq2 = iq1 if sym else _inverse(sq2)
    nrm1 = _norms(x1)
    nrm2 = nrm1 if sym else _norms(x2)
    inrm1 = _inverse(nrm1)
    pre = (nrm1, nrm2, inrm1, inrm1 if sym else _inverse(nrm2))
    return pre, codes, params, dq1, dq2, sq1, sq2, iq1, iq2, _flags(codes, params)


def _diagonals(codes, params, x):
    d = x.shape[1]
    q0 = np.einsum("ij,ij->i", x, x) / d
    dq = np.empty((codes.size + 1, x.shape[0]))
    dn = np.empty_like(dq)
    _diag_recursion(codes, params, q0, np.zeros_like(q0), dq, dn)
    if not (np.all(np.isfinite(dq)) and np.all(np.isfinite(dn))):
        layer = int(np.argmax(~(np.isfinite(dq).all(1) & np.isfinite(dn).all(1))))
        raise ValueError(
            f"kernel diagonal is not finite after layer {layer - 1} (overflow, or a "
            "Gaussian activation with b > 0 whose expectation diverges)"
        )
    return dq, dn


# ------------------------------------------------- layer by layer (generic activations)


@numba.njit(parallel=True, **_JIT)
def _lw_init(nngp, ntk, x1, x2, pre, th, cc, ss, dr, mode, sym):
    """Input-layer state of every entry (``j >= i`` with ``sym``), as :func:`_segment`."""
    nrm1, nrm2, inrm1, inrm2 = pre
    n1, n2 = nngp.shape
    rscale = 1.0 / np.sqrt(x1.shape[1])
    for i in prange(n1):
        j0 = np.int64(i) if sym else np.int64(0)
        for j in range(j0, n2):
            ntk[i, j] = 0.0
        _init_row(
            nngp[i, j0:], nrm1[i], nrm2[j0:], inrm1[i], inrm2[j0:], x1[i], x2, j0, th[i, j0:],
            cc[i, j0:], ss[i, j0:], dr[i, j0:], rscale, mode, np.int64(0) if sym else np.int64(-1),
        )


@numba.njit(parallel=True, **_JIT)
def _lw_layer(layer, th, cc, ss, dr, ntk, codes, params, dq1, dq2, sq1, sq2, iq1, iq2, flags,
              sym):
    """One Dense or closed-form layer on every entry (:func:`_layer_step` per row)."""
    n1, n2 = cc.shape
    for i in prange(n1):
        j0 = np.int64(i) if sym else np.int64(0)
        _layer_step(layer, i, j0, n2, th[i, j0:], cc[i, j0:], ss[i, j0:], dr[i, j0:],
                    ntk[i, j0:], codes, params, dq1, dq2, sq1, sq2, iq1, iq2, flags)


@numba.njit(parallel=True, **_JIT)
def _lw_final(nngp, ntk, sq1, sq2, cc, sym, bad):
    n1, n2 = cc.shape
    for i in prange(n1):
        j0 = np.int64(i) if sym else np.int64(0)
        bad[i] = _final_row(nngp[i, j0:], ntk[i, j0:], sq1[i], sq2[j0:], cc[i, j0:],
                            ntk[i, j0:])


def _generic_diagonals(network, codes, params, x1, x2, sym):
    """Diagonals layer by layer, setting up each generic layer on the way
    (:class:`quadrature.GenericLayer`, which needs the incoming variances)."""
    d = x1.shape[1]
    L = codes.size
    qs = [np.einsum("ij,ij->i", x1, x1) / d]
    if not sym:
        qs.append(np.einsum("ij,ij->i", x2, x2) / d)
    dqs = [np.empty((L + 1, q.size)) for q in qs]
    dns = [np.empty((L + 1, q.size)) for q in qs]
    for dq, dn, q in zip(dqs, dns, qs):
        dq[0] = q
        dn[0] = 0.0
    generic = {}
    for layer in range(L):
        if codes[layer] == GENERIC:
            radii = [np.sqrt(dq[layer]) for dq in dqs]
            gl = network.layers[layer]._generic_layer(*radii)
            generic[layer] = gl
            for dq, dn, rd in zip(dqs, dns, (gl.rows, gl.cols)):
                dq[layer + 1] = rd.F
                dn[layer + 1] = rd.G * dn[layer]
        else:
            for dq, dn in zip(dqs, dns):
                _diag_recursion(codes[layer:layer + 1], params[layer:layer + 1], dq[layer],
                                dn[layer], dq[layer:layer + 2], dn[layer:layer + 2])
        for dq, dn in zip(dqs, dns):
            if not (np.all(np.isfinite(dq[layer + 1])) and np.all(np.isfinite(dn[layer + 1]))):
                raise ValueError(f"kernel diagonal is not finite after layer {layer} (overflow)")
    return dqs[0], dns[0], (dqs[0] if sym else dqs[1]), generic


def _finish(nngp, ntk, dq1, dn1, dq2, sym, bad):
    """With ``sym`` the pairs ``(x, x)`` take the diagonal recursion, their exact
    evaluation (angle 0 throughout), free of the ulp-level rounding of the row state;
    ``ValueError`` if an entry is not finite; the :class:`Kernel`."""
    if sym:
        idx = np.arange(nngp.shape[0])
        nngp[idx, idx] = dq1[-1]
        ntk[idx, idx] = dn1[-1]
    if bad.any():
        raise ValueError("kernel is not finite (overflow in an activation's dual)")
    return Kernel(nngp=nngp, ntk=ntk, cov1=dq1[-1].copy(), cov2=dq2[-1].copy())


def _kernel_layerwise(network, codes, params, x1, x2, sym, diagonal):
    """Kernels of a network with generic activation layers: the same per-entry state and
    layer maps as :func:`_fused`, but run one layer at a time over all entries (the
    generic layers need per-row Hermite coefficients and, for some entries, direct
    quadrature; see :mod:`analytic_ntk.quadrature`).  Memory: four ``n1 x n2`` state
    arrays besides the outputs."""
    dq1, dn1, dq2, generic = _generic_diagonals(network, codes, params, x1, x2, sym)
    if diagonal:
        return Kernel(nngp=dq1[-1].copy(), ntk=dn1[-1].copy(), cov1=dq1[-1].copy(),
                      cov2=dq1[-1].copy())
    state = _row_state(codes, params, x1, x2, dq1, dq2, sym)
    pre, _, _, _, _, sq1, sq2, iq1, iq2, flags = state
    n1, n2 = x1.shape[0], x2.shape[0]
    nngp = _gram(x1, x2, sym)
    ntk = np.empty((n1, n2))
    th, cc, ss, dr = (np.zeros((n1, n2)) for _ in range(4))
    _lw_init(nngp, ntk, x1, x2, pre, th, cc, ss, dr, flags[0] >> 8, sym)
    for layer in range(codes.size):
        if codes[layer] != GENERIC:
            _lw_layer(layer, th, cc, ss, dr, ntk, codes, params, dq1, dq2, sq1, sq2, iq1, iq2,
                      flags, sym)
            continue
        gl = generic[layer]
        counts = np.empty(n1, dtype=np.int64)
        lt1, lt2 = gl.rows.lt, gl.cols.lt
        quadrature.count_direct(cc, ss, dr, sym, gl.k, lt1, lt2, counts)
        ptr = np.zeros(n1 + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        cols = np.empty(ptr[-1], dtype=np.int64)
        quadrature.list_direct(cc, ss, dr, sym, gl.k, lt1, lt2, ptr, cols)
        rows = np.repeat(np.arange(n1, dtype=np.int64), counts)
        dvals = gl.direct(rows, cols, sq1[layer], sq2[layer], cc, ss)
        quadrature.series_layer(
            th, cc, ss, dr, ntk, sym, gl.rows.a, gl.rows.b, gl.cols.at, gl.cols.bt,
            gl.rows.F, gl.cols.F, gl.rows.G, gl.cols.G, gl.rows.dF, gl.cols.dF, sq1[layer],
            sq2[layer], sq1[layer + 1], sq2[layer + 1], ptr, cols, dvals,
            flags[layer + 1] >> 8, bool(flags[layer] & 2),
        )
    del th, ss, dr
    bad = np.zeros(n1, dtype=np.bool_)
    last = codes.size
    _lw_final(nngp, ntk, sq1[last], sq2[last], cc, sym, bad)
    del cc
    if sym:
        _mirror_rows(nngp, ntk, 0, n1)
    return _finish(nngp, ntk, dq1, dn1, dq2, sym, bad)


def _checked_call(network, x1, x2, caller: str):
    """``(sym, x1, x2)`` validated for ``caller(network, x1, x2)``: a Network, float64
    2-D finite inputs of the same feature size; ``sym`` when ``x2`` is None or ``x1``."""
    if not isinstance(network, Network):
        raise ValueError(f"{caller}() needs a Network built with serial()")
    sym = x2 is None or x2 is x1
    x1 = _as_inputs(x1, "x1")
    x2 = x1 if sym else _as_inputs(x2, "x2")
    if x2.shape[1] != x1.shape[1]:
        raise ValueError(
            f"x1 and x2 have different feature sizes: {x1.shape[1]} and {x2.shape[1]}"
        )
    return sym, x1, x2


def kernel(network: Network, x1, x2=None, *, diagonal: bool = False) -> Kernel:
    """Infinite-width NNGP and NTK of ``network`` (see :meth:`Network.kernel`)."""
    sym, x1, x2 = _checked_call(network, x1, x2, "kernel")
    d = x1.shape[1]
    codes, params = _layer_table(network, d)
    if np.any(codes == GENERIC):
        if diagonal and not sym:
            raise ValueError("diagonal=True needs x2 to be None")
        return _kernel_layerwise(network, codes, params, x1, x2, sym, diagonal)
    dq1, dn1 = _diagonals(codes, params, x1)
    if diagonal:
        if not sym:
            raise ValueError("diagonal=True needs x2 to be None")
        return Kernel(nngp=dq1[-1].copy(), ntk=dn1[-1].copy(), cov1=dq1[-1].copy(),
                      cov2=dq1[-1].copy())
    dq2 = dq1 if sym else _diagonals(codes, params, x2)[0]
    state = _row_state(codes, params, x1, x2, dq1, dq2, sym)
    n1, n2 = x1.shape[0], x2.shape[0]
    nngp = _gram(x1, x2, sym)
    ntk = np.empty((n1, n2))
    bad = np.zeros(n1, dtype=np.bool_)
    _fused(nngp, ntk, x1, x2, *state, sym, bad)
    return _finish(nngp, ntk, dq1, dn1, dq2, sym, bad)
