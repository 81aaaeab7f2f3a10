"""Fast population drift of bias-free ReLU two-layer networks (numba).

Student ``f(x) = (alpha / m) sum_j u_j relu(w_j . x)``, teacher
``y = sum_k c_k relu(w*_k . x) + eps``, ``x ~ N(0, I_d)``, ``eps ~ N(0, s^2)``: the special
case of :func:`analytic_ntk.meanfield.population_risk` with ReLU student and teacher and
all biases zero, where every pair expectation is the arc-cosine dual of Cho & Saul (2009)
and the whole interaction costs two ``m x m x d`` matrix products (BLAS) plus one fused
pass over the ``m^2`` pairs.  It is the drift of the particle gradient flow of the
distributional dynamics (Mei, Montanari & Nguyen 2018): ``d theta_j / dt = -(m / alpha^2)
dR / d theta_j`` (see :mod:`.dynamics`).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .population import _matrix

__all__ = ["relu_drift"]

_PI = math.pi
_HALF_PI = 0.5 * math.pi
_INV_2PI = 1.0 / (2.0 * math.pi)

# asin(s) = s + s^3 P(s^2) on 0 <= s <= 1/2: P interpolates (asin(sqrt z) - sqrt z) / z^1.5
# at the 13 Chebyshev nodes of [0, 1/4] (mpmath, 60 digits, then rounded to double);
# max relative error of P 1.2e-16, so asin has ~1 ulp error beyond the final roundings.
_ASIN_P = (0.16666666666666669, 0.07499999999998433, 0.04464285714635543,
           0.030381944138531247, 0.02237217294214989, 0.017352392720869973,
           0.013971212973552933, 0.011479177415184906, 0.01032281435018578,
           0.005457506718640358, 0.01740087944269402, -0.014851887071247204,
           0.028757851367421566)
(_P0, _P1, _P2, _P3, _P4, _P5, _P6, _P7, _P8, _P9, _P10, _P11, _P12) = _ASIN_P

# 'contract' (fused multiply-adds) and 'reassoc' (vectorised sums) but no 'nnan'/'ninf':
# the selects below must keep their IEEE meaning.
_FLAGS = {"contract", "reassoc", "nsz", "arcp"}


@numba.njit(cache=True, inline="always", fastmath=_FLAGS)
def _acos(x):
    """``arccos(x)`` for ``-1 <= x <= 1``, branch-free (selects only) so that loops calling
    it vectorise: ``acos|x| = pi/2 - asin|x|`` for ``|x| <= 1/2``, else
    ``2 asin(sqrt((1 - |x|)/2))``; ``acos(x) = pi - acos|x|`` for ``x < 0``."""
    ax = abs(x)
    big = ax > 0.5
    h = math.sqrt(0.5 * (1.0 - ax))  # exact 1 - ax for ax >= 1/2
    s = h if big else ax
    z = s * s
    p = _P12
    p = p * z + _P11
    p = p * z + _P10
    p = p * z + _P9
    p = p * z + _P8
    p = p * z + _P7
    p = p * z + _P6
    p = p * z + _P5
    p = p * z + _P4
    p = p * z + _P3
    p = p * z + _P2
    p = p * z + _P1
    p = p * z + _P0
    r = s + s * z * p  # asin(s)
    a = 2.0 * r if big else _HALF_PI - r
    return _PI - a if x < 0.0 else a


def _pair_sums_py(g, norm_r, inv_r, norm_c, inv_c, coef, diag):
    """The fused pass over the pairs ``(j, l)`` of rows ``w_j`` and columns ``v_l``.

    On entry ``g[j, l] = w_j . v_l`` (the Gram matrix); ``norm_r[j] = |w_j|``,
    ``inv_r[j] = 1/|w_j|`` (0 for a zero row), likewise ``norm_c``, ``inv_c`` for ``v_l``.
    With ``cos t = g[j, l] inv_r[j] inv_c[l]`` (clipped; 0 for a zero row or column) and
    ``P = |w_j| |v_l|``:

    * on exit ``g[j, l] = coef[l] (pi - t) / (2 pi)`` (``coef[l]`` times ``dF/dq12``);
    * ``sf[j] = sum_l coef[l] F_jl``, ``F = P (sin t + (pi - t) cos t) / (2 pi)``;
    * ``ss[j] = sum_l coef[l] |v_l| sin t_jl``, so that ``2 sum_l coef[l] dF_jl/dq1 =
      ss[j] / (2 pi |w_j|)``.

    With ``diag >= 0`` the pairs ``l = j + diag`` (a row block of a square matrix starting
    at row ``diag``) are left out of both sums and get ``g[j, l] = 0`` (the caller adds
    their exact value ``F(w, w) = |w|^2 / 2``); ``diag = -1``: no diagonal.
    """
    mr, mc = g.shape
    sf = np.empty(mr)
    ss = np.empty(mr)
    for j in numba.prange(mr):
        jd = j + diag if diag >= 0 else -1
        ir = inv_r[j]
        nr = norm_r[j]
        af = 0.0
        a_s = 0.0
        for col in range(mc):
            c = coef[col]
            c = 0.0 if col == jd else c
            nc = norm_c[col]
            x = g[j, col] * ir * inv_c[col]
            x = min(max(x, -1.0), 1.0)
            t = _acos(x)
            sn = math.sqrt((1.0 - x) * (1.0 + x))
            pmt = _PI - t
            af += c * (nr * nc) * (sn + pmt * x)
            a_s += c * nc * sn
            g[j, col] = c * pmt * _INV_2PI
        sf[j] = af * _INV_2PI
        ss[j] = a_s
    return sf, ss


# The same pass compiled twice: threads only pay off for large matrices.
_PARALLEL_PAIRS = 1 << 16
_pair_sums = numba.njit(parallel=True, cache=True, fastmath=_FLAGS)(_pair_sums_py)
_pair_sums_serial = numba.njit(cache=True, fastmath=_FLAGS)(_pair_sums_py)


def _finite(name, v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {v!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v!r}")
    return v


def _norms(a):
    """Row norms and their inverses (0 for zero rows)."""
    n = np.sqrt(np.einsum("ij,ij->i", a, a))
    inv = np.zeros_like(n)
    np.divide(1.0, n, out=inv, where=n > 0.0)
    return n, inv


# Gram matrices up to 2^25 doubles (256 MiB) in one piece, larger ones in row blocks of that
# size.  (Small blocks that stay in cache were slower on the 2-core development machine:
# every block hands over between OpenBLAS's and numba's thread pools.)
_BLOCK_DOUBLES = 1 << 25


def _interaction(w, wt, n, inv_n, coef, other, diag, block, parallel=False):
    """Sums of :func:`_pair_sums` over the rows of ``w`` against the columns ``wt``
    (``d x mc``, contiguous), in row blocks; also ``sum_l coef_l g_jl other_l``.
    ``diag``: whether ``wt`` is ``w.T`` (leave out and treat the diagonal exactly)."""
    m = w.shape[0]
    nc, inv_c = (n, inv_n) if diag else _norms(wt.T)
    mc = wt.shape[1]
    sf = np.empty(m)
    ss = np.empty(m)
    out = np.empty((m, other.shape[1]))
    b = max(1, min(m, block if block else _BLOCK_DOUBLES // max(mc, 1)))
    buf = np.empty((b, mc))
    _kernel = _pair_sums if parallel else _pair_sums_serial
    for s in range(0, m, b):
        e = min(m, s + b)
        g = buf[: e - s]
        np.matmul(w[s:e], wt, out=g)
        sf[s:e], ss[s:e] = _kernel(g, n[s:e], inv_n[s:e], nc, inv_c, coef,
                                      s if diag else -1)
        np.matmul(g, other, out=out[s:e])
    return sf, ss, out


def relu_drift(u, w, teacher_w, teacher_c, alpha: float = 1.0, *, noise_std: float = 0.0,
               _block: int = 0):
    r"""Population risk of a bias-free ReLU two-layer network and its gradient, in
    ``O(m^2 d)`` per call with one fused numba pass over the particle pairs.

    Student ``f(x) = (alpha / m) sum_j u_j relu(w_j . x)``, teacher
    ``y = sum_k c_k relu(w*_k . x) + noise_std * eps``, ``x ~ N(0, I_d)``.

    Parameters
    ----------
    u : (m,) array_like
        Output weights of the particles.
    w : (m, d) array_like
        Input weights of the particles (rows may be zero).
    teacher_w : (k, d) array_like
        Teacher's input weights ``w*_k``.
    teacher_c : (k,) array_like
        Teacher's output weights ``c_k``.
    alpha : float
        Output scale: ``alpha = 1`` mean-field, ``alpha = sqrt(m)`` lazy.
    noise_std : float, keyword-only
        Standard deviation of the label noise; adds ``noise_std^2 / 2`` to the risk.

    Returns
    -------
    risk : float
        ``R = E[(f(x) - y)^2] / 2``.
    du : (m,) ndarray
        ``dR / du``.
    dw : (m, d) ndarray
        ``dR / dw``.

    Raises
    ------
    ValueError
        Wrong dimensions, mismatched shapes, NaN or inf entries, a non-finite ``alpha``
        or a negative or non-finite ``noise_std``.

    Notes
    -----
    For ``x ~ N(0, I_d)``, ``E[relu(w.x) relu(w'.x)] = F(q1, q2, q12)`` with ``q1 = |w|^2``,
    ``q2 = |w'|^2``, ``q12 = w.w' = P cos t``, ``P = |w| |w'|`` and the arc-cosine dual
    (Cho & Saul 2009)

    .. math:: F = P (\sin t + (\pi - t) \cos t) / (2 \pi),

    ``g = dF/dq12 = (pi - t) / (2 pi)`` (Price's theorem: ``E[relu'(w.x) relu'(w'.x)]``)
    and, ``F`` being homogeneous of degree 1 in ``w``,
    ``dF/dq1 = (F - q12 g) / (2 q1) = |w'| sin t / (4 pi |w|)``.  On the diagonal
    ``F(w, w) = |w|^2 / 2``.  With ``a = alpha / m``, ``F_jl = F(w_j, w_l)``,
    ``F*_jk = F(w_j, w*_k)``, the risk (Mei, Montanari & Nguyen 2018, eq. (3)-(5)) is

    .. math::

        R = E[y^2]/2 - a \sum_{j,k} u_j c_k F^*_{jk}
            + (a^2/2) \sum_{j,l} u_j u_l F_{jl},
        \quad E[y^2] = \sum_{k,k'} c_k c_{k'} F(w^*_k, w^*_{k'}) + s^2,

    and by the chain rule (``d|w_j|^2/dw_j = 2 w_j``, ``d(w_j.w_l)/dw_j = w_l``, each
    off-diagonal pair counted twice; the diagonal term ``u_j^2 |w_j|^2 / 4`` gives
    ``u_j^2 w_j / 2``)

    .. math::

        dR/du_j &= a^2 (\sum_{l \ne j} u_l F_{jl} + u_j |w_j|^2 / 2)
                   - a \sum_k c_k F^*_{jk}, \\
        dR/dw_j &= a^2 u_j [(\sum_{l \ne j} u_l |w_l| \sin t_{jl} / (2 \pi |w_j|)
                   + u_j / 2) w_j + \sum_{l \ne j} u_l g_{jl} w_l] \\
                &\quad - a u_j [\sum_k c_k |w^*_k| \sin t^*_{jk} / (2 \pi |w_j|) w_j
                   + \sum_k c_k g^*_{jk} w^*_k].

    Implementation: the Gram matrix ``W W^T`` by BLAS (gemm); one numba pass over the
    ``m^2`` pairs (parallel over rows for large ``m``) computes ``t`` (a vectorisable
    ``arccos`` of the clipped cosine), ``F`` and ``sin t``, accumulates the per-particle
    sums and overwrites the Gram matrix in place with ``u_l g_jl``; the last sum is then
    the BLAS product of that matrix with ``W``.  The teacher terms go through the same
    pass on the ``m x k`` Gram matrix.  Memory: one ``m x m`` matrix (row blocks of
    ``2^25`` doubles beyond ``m = 5792``).  Cost: ``4 m^2 d`` flops in BLAS plus about 50
    per pair.

    A zero row ``w_j = 0`` has ``F = 0`` with every partner; there the gradient is not
    unique (``F`` is homogeneous of degree 1 in ``w_j``) and the convention is that of
    :func:`population_risk` (``relu'(0) = 1/2``): ``cos t = 0``, ``g = 1/4``, and the
    ``|w_j|^{-1}`` terms, multiplied by ``w_j = 0``, vanish.

    The angle comes from the rounded cosine (absolute error ``~ eps``), which is
    ill-conditioned for nearly parallel or antiparallel pairs: ``t``, ``g`` and ``sin t``
    then carry absolute errors ``~ eps / sin t`` (``1e-8`` at angles ``1e-8``), while
    ``F`` keeps an absolute error ``~ eps P``.  The exactly parallel diagonal pairs are
    treated in closed form.

    References
    ----------
    Y. Cho and L. K. Saul, "Kernel methods for deep learning", NeurIPS 2009.
    S. Mei, A. Montanari and P.-M. Nguyen, "A mean field view of the landscape of
    two-layer neural networks", PNAS 115 (33), 2018.
    """
    u = _matrix("u", u, 1)
    w = _matrix("w", w, 2)
    tw = _matrix("teacher_w", teacher_w, 2)
    tc = _matrix("teacher_c", teacher_c, 1)
    m, d = w.shape
    if u.size != m:
        raise ValueError(f"u {u.shape} and w {w.shape} disagree on the number of particles")
    if m == 0:
        raise ValueError("need at least one particle")
    if tw.shape[1] != d:
        raise ValueError(f"w has input dimension {d}, teacher_w {tw.shape[1]}")
    if tc.size != tw.shape[0]:
        raise ValueError(f"teacher_w {tw.shape} and teacher_c {tc.shape} disagree on the "
                         "number of units")
    alpha = _finite("alpha", alpha)
    noise_std = _finite("noise_std", noise_std)
    if noise_std < 0.0:
        raise ValueError(f"noise_std must be non-negative, got {noise_std!r}")
    w = np.ascontiguousarray(w)
    tw = np.ascontiguousarray(tw)
    a = alpha / m

    n, inv_n = _norms(w)
    tn, inv_tn = _norms(tw)
    twt = np.ascontiguousarray(tw.T)
    # teacher-teacher: E[y^2]
    tsf, _, _ = _interaction(tw, twt, tn, inv_tn, tc, tw, True, 0)  # serial: small
    ey2 = float(tc @ tsf) + 0.5 * float(tc @ (tc * tn * tn)) + noise_std**2
    # student-teacher (potential): sums and sum_k c_k g*_jk w*_k
    sf_t, ss_t, gt_w = _interaction(w, twt, n, inv_n, tc, tw, False, 0)
    # student-student (interaction): sums and sum_l u_l g_jl w_l
    sf_s, ss_s, gs_w = _interaction(w, np.ascontiguousarray(w.T), n, inv_n, u, w, True,
                                    _block, m * m >= _PARALLEL_PAIRS)
    q = n * n
    half_uq = 0.5 * u * q
    v_s = sf_s + half_uq  # sum_l u_l F_jl, diagonal included
    risk = 0.5 * ey2 - a * float(u @ sf_t) + 0.5 * a * a * float(u @ v_s)
    du = a * a * v_s - a * sf_t
    radial = a * a * (ss_s * inv_n * _INV_2PI + 0.5 * u) - a * (ss_t * inv_n * _INV_2PI)
    dw = gs_w
    dw *= a * a
    dw -= a * gt_w
    dw += radial[:, None] * w
    dw *= u[:, None]
    return float(risk), du, dw
