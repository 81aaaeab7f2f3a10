"""Gaussian expectations of two activations with means: ``E[phi(u) psi(v)]`` for
``(u, v) ~ N((m1, m2), [[C11, C12], [C12, C22]])``, and its five derivatives.

This is the kernel core of the mean-field drift with biases and of teacher-student
potentials with different activations (``design.md`` section 5a).  With ``s1 =
sqrt(C11)``, ``beta = C12 / s1`` and ``t = sqrt(C22 - C12^2 / C11)``, the pair is
``u = m1 + s1 z``, ``v = m2 + beta z + t xi`` (``z, xi`` independent standard normal),
so

    E[phi(u) psi(v)] = E_z[phi(m1 + s1 z) G(m2 + beta z, t)],
    G(mu, t) = E[psi(mu + t xi)],

with ``G`` (and ``G' = dG/dmu``, ``G''``) in closed form for every closed family
(:mod:`analytic_ntk.gaussian_means`) and by split Gauss-Legendre quadrature otherwise.
The derivatives follow from Price's theorem and Stein's lemma (Price 1958; Stein 1981):

    d/dm2  = E[phi(u) psi'(v)]        = E_z[phi G'],
    d/dC22 = E[phi(u) psi''(v)] / 2   = E_z[phi G''] / 2,
    d/dC12 = E[phi'(u) psi'(v)]       = E_z[phi' G'],
    d/dm1, d/dC11: the same with the roles of ``phi`` and ``psi`` exchanged,

where the derivatives of ``psi`` act through the smooth ``G`` (``t > 0``), so kinks and
jumps of ``psi`` need no special care, and a jump ``J`` of ``phi`` at ``k`` adds the
Dirac term ``J phi_n(z_k) / s1 G'(m2 + beta z_k, t)``, ``z_k = (k - m1) / s1``.  At
``t = 0`` (``|correlation| = 1`` or a zero variance) ``G`` is ``psi`` itself and the kinks
of ``psi`` add Dirac terms to ``G''``.

The outer integral over ``z`` is adaptive: 16-point Gauss-Legendre panels on
``|z| <= 20``, split at the kinks of ``phi(u(z))`` and around the (smoothed, width
``t / |beta|``) kinks of ``G``, bisected until a panel agrees with its two halves to
``2e-15`` of the integral of the absolute integrand.  This resolves near-steps
(``tanh`` of a pre-activation with standard deviation 100) and tails without tuning.

Zero means and ``phi = psi`` of a closed family reduce to the centred dual of the
kernels, which is then evaluated by :func:`analytic_ntk.duals.evaluate` itself (one
formula, one place).  Pairs of piecewise-linear and step activations (``ABRelu``:
ReLU, leaky ReLU, ``|x|``; ``Sign``; ``RectifiedMonomial(0)``, ``(1)``; ``Identity``
and affine polynomials, in any combination) use the closed forms of
:mod:`analytic_ntk.orthant` (bivariate normal CDF through Owen's T) wherever both
variances are positive and ``|correlation| <= 1 - 1e-9``; pairs of steps (``Sign``, the
step, ``Erf``) are summed as mean x mean + covariance, which does not cancel.  ``Erf(a, b,
c)`` joins these as a step of an auxiliary Gaussian (the probit form: ``a erf(b u) + c =
E_X[a sign(sqrt(2) b u - X) + c]``, ``X ~ N(0, 1)`` independent), against any of them or
another ``Erf``.  Pairs of ``Sin``/``Cos``/``Rbf``/``Exp`` use the moment generating
function (:mod:`analytic_ntk.charfun`); every other pair of ``Polynomial``, ``Identity``,
``Monomial``, ``Exp``, ``Sin``, ``Cos``, ``Rbf`` and ``Gaussian``, and ``Exp`` or
``Gaussian`` against any family with a closed one-dimensional mean, the exponential tilt
and Gaussian moments of :mod:`analytic_ntk.gaussian_integrals`.  The remaining pairs
(a generic activation on either side; ``Gelu``, ``RectifiedMonomial(n >= 2)``, ``Erf``
or polynomials of degree >= 2 against the piecewise-linear family, and the like) use the
quadrature.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import types

from . import charfun, duals, orthant
from . import gaussian_integrals as gi
from . import gaussian_means as gm
from .layers import Activation, GenericActivation
from .quadrature import _GH24_W, _GH24_X, _GH64_W, _GH64_X, length_scales, panel_nodes

__all__ = ["bivariate_expectation"]

_GL_X, _GL_W = np.polynomial.legendre.leggauss(16)
ZMAX = 20.0  # outer range |z| <= 20: the Gaussian weight beyond is below 1e-86
XI_MAX = 14.0  # inner (generic) range
_REL_TOL = 2e-15
_EPS = 2.0**-52
_MAX_EVALS = 40000  # panel evaluations per outer integral before giving up
NCOMP = 4  # phi G, phi G', phi G'', phi' G'
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

_JIT = {"error_model": "numpy"}


# ------------------------------------------------------------ pointwise closed kinds


@numba.njit(cache=True, error_model="numpy")
def closed_phi(x, p):
    """``phi(x)`` of a closed family; ``p = (kind, params...)``."""
    kind = int(p[0])
    if kind == gm.ABRELU:
        return p[2] * x if x > 0.0 else p[1] * x
    if kind == gm.SIGN:
        return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)
    if kind == gm.RECTMONO:
        n = int(p[1])
        if x <= 0.0:
            return 0.0
        return 1.0 if n == 0 else x**n
    if kind == gm.ERF:
        return p[1] * math.erf(p[2] * x) + p[3]
    if kind == gm.SIN:
        return p[1] * math.sin(p[2] * x + p[3])
    if kind == gm.GELU:
        return x * gm.norm_cdf(x)
    if kind == gm.POLY:
        acc = p[p.size - 1]
        for k in range(p.size - 2, 0, -1):
            acc = p[k] + acc * x
        return acc
    if kind == gm.EXP:
        return p[1] * math.exp(p[2] * x)
    if kind == gm.GAUSS:
        return p[1] * math.exp(p[2] * x * x)
    return math.nan


@numba.njit(cache=True, error_model="numpy")
def closed_dphi(x, p):
    """``phi'(x)`` (pointwise; 0 at and beside jumps) of a closed family."""
    kind = int(p[0])
    if kind == gm.ABRELU:
        return p[2] if x > 0.0 else p[1]
    if kind == gm.SIGN:
        return 0.0
    if kind == gm.RECTMONO:
        n = int(p[1])
        if x <= 0.0 or n == 0:
            return 0.0
        return 1.0 if n == 1 else n * x ** (n - 1)
    if kind == gm.ERF:
        b = p[2]
        return p[1] * b * gm.TWO_OVER_SQRT_PI * math.exp(-(b * x) ** 2)
    if kind == gm.SIN:
        return p[1] * p[2] * math.cos(p[2] * x + p[3])
    if kind == gm.GELU:
        return gm.norm_cdf(x) + x * gm.norm_pdf(x)
    if kind == gm.POLY:
        d = p.size - 2
        acc = d * p[p.size - 1]
        for k in range(d - 1, 0, -1):
            acc = k * p[k + 1] + acc * x
        return acc if d >= 1 else 0.0
    if kind == gm.EXP:
        return p[1] * p[2] * math.exp(p[2] * x)
    if kind == gm.GAUSS:
        return 2.0 * p[1] * p[2] * x * math.exp(p[2] * x * x)
    return math.nan


# ------------------------------------------------------------ one-dimensional inner means


@numba.njit(**_JIT)
def _d2_central(dpsi, p, x):
    """``psi''(x)`` by a 5-point central difference of ``psi'`` (generic activations at
    ``t = 0`` only; about 1e-10 relative for smooth ``psi``)."""
    h = 1e-3 * max(1.0, abs(x))
    return (8.0 * (dpsi(x + h, p) - dpsi(x - h, p))
            - (dpsi(x + 2.0 * h, p) - dpsi(x - 2.0 * h, p))) / (12.0 * h)


@numba.njit(**_JIT)
def _generic_inner(psi, dpsi, p, kinks, jumps, hlen, mu, t, out):
    """``(G, G', G'')`` of ``E[psi(mu + t xi)]`` by Gauss-Legendre panels split at the
    kinks: ``G' = E[psi'] + sum_k J_k phi_n(a_k) / t``, ``G'' = E[psi' xi] / t + sum_k J_k
    a_k phi_n(a_k) / t^2`` (``a_k = (k - mu) / t``, ``J_k`` the jumps of ``psi``)."""
    if t == 0.0:
        out[0] = psi(mu, p)
        out[1] = dpsi(mu, p)
        out[2] = _d2_central(dpsi, p, mu)
        return
    inside = False
    for k in kinks:
        if abs(k - mu) < XI_MAX * t:
            inside = True
    g0 = 0.0
    g1 = 0.0
    g2 = 0.0
    if not inside and t <= 0.3 * hlen:
        # smooth on the window: Gauss-Hermite (as quadrature.expect)
        gx, gw = (_GH24_X, _GH24_W) if t <= 0.1 * hlen else (_GH64_X, _GH64_W)
        for k in range(gx.size):
            xi = gx[k]
            y = mu + t * xi
            g0 += gw[k] * psi(y, p)
            d = dpsi(y, p)
            g1 += gw[k] * d
            g2 += gw[k] * d * xi
        g2 /= t
    else:
        br = np.sort((kinks - mu) / t)
        x, w = panel_nodes(-XI_MAX, XI_MAX, br, min(2.0, hlen / t))
        for k in range(x.size):
            xi = x[k]
            wk = w[k] * math.exp(-0.5 * xi * xi)
            y = mu + t * xi
            g0 += wk * psi(y, p)
            d = dpsi(y, p)
            g1 += wk * d
            g2 += wk * d * xi
        g0 *= INV_SQRT_2PI
        g1 *= INV_SQRT_2PI
        g2 *= INV_SQRT_2PI / t
    for j in range(kinks.size):
        if jumps[j] != 0.0:
            a = (kinks[j] - mu) / t
            pa = jumps[j] * INV_SQRT_2PI * math.exp(-0.5 * a * a)
            g1 += pa / t
            g2 += pa * a / (t * t)
    out[0] = g0
    out[1] = g1
    out[2] = g2


# ------------------------------------------------------------ the outer integral


@numba.njit(**_JIT)
def _panel(phi, dphi, p1, kind2, psi, dpsi, p2, kinks2, jumps2, hlen2,
           m1, s1, m2, beta, t, a, b, ncomp, val, aval):
    """Gauss-Legendre (16) of the integrand components on ``[a, b]``: ``val`` the
    integrals, ``aval`` those of their absolute values."""
    g = np.empty(3)
    for c in range(ncomp):
        val[c] = 0.0
        aval[c] = 0.0
    half = 0.5 * (b - a)
    mid = 0.5 * (a + b)
    for q in range(16):
        z = mid + half * _GL_X[q]
        wq = half * _GL_W[q] * INV_SQRT_2PI * math.exp(-0.5 * z * z)
        u = m1 + s1 * z
        mu = m2 + beta * z
        if kind2 == gm.GENERIC:
            _generic_inner(psi, dpsi, p2, kinks2, jumps2, hlen2, mu, t, g)
        else:
            gm.inner(kind2, p2[1:], mu, t, g)
        f = phi(u, p1)
        f0 = wq * f * g[0]
        val[0] += f0
        aval[0] += abs(f0)
        if ncomp > 1:
            f1 = wq * f * g[1]
            f2 = wq * f * g[2]
            f3 = wq * dphi(u, p1) * g[1]
            val[1] += f1
            val[2] += f2
            val[3] += f3
            aval[1] += abs(f1)
            aval[2] += abs(f2)
            aval[3] += abs(f3)


@numba.njit(**_JIT)
def outer_integral(phi, dphi, p1, kinks1, kind2, psi, dpsi, p2, kinks2, jumps2, hlen2,
                   m1, s1, m2, beta, t, ncomp, out):
    """``out[c]``, ``c < ncomp``: ``E_z`` of ``phi G``, ``phi G'``, ``phi G''``, ``phi' G'``
    (module docstring), adaptively; returns False if the panel budget ran out."""
    nb = 0
    br = np.empty(kinks1.size + 7 * kinks2.size)
    if s1 > 0.0:
        for k in kinks1:
            br[nb] = (k - m1) / s1
            nb += 1
    if beta != 0.0:
        wd = t / abs(beta)
        for k in kinks2:
            z0 = (k - m2) / beta
            br[nb] = z0
            nb += 1
            if wd > 0.0:
                for f in (1.0, 4.0, 12.0):
                    br[nb] = z0 - f * wd
                    br[nb + 1] = z0 + f * wd
                    nb += 2
    pts = np.sort(br[:nb])
    edges = [-ZMAX]
    for z in pts:
        if -ZMAX < z < ZMAX and z > edges[-1]:
            edges.append(z)
    edges.append(ZMAX)
    # initial panels no longer than 2 (the bisection refines)
    lo = []
    hi = []
    for k in range(len(edges) - 1):
        n = max(1, int(math.ceil(0.5 * (edges[k + 1] - edges[k]))))
        h = (edges[k + 1] - edges[k]) / n
        for j in range(n):
            lo.append(edges[k] + j * h)
            hi.append(edges[k] + (j + 1) * h if j < n - 1 else edges[k + 1])
    npan = len(lo)
    cap = npan + 4096
    sa = np.empty(cap)
    sb = np.empty(cap)
    sv = np.empty((cap, NCOMP))
    scale = np.zeros(NCOMP)
    val = np.empty(NCOMP)
    aval = np.empty(NCOMP)
    for k in range(npan):
        _panel(phi, dphi, p1, kind2, psi, dpsi, p2, kinks2, jumps2, hlen2,
               m1, s1, m2, beta, t, lo[k], hi[k], ncomp, val, aval)
        sa[k] = lo[k]
        sb[k] = hi[k]
        for c in range(ncomp):
            sv[k, c] = val[c]
            scale[c] += aval[c]
    # absolute floors of the derivative components: 1e-15 of the value's scale over the
    # matching powers of the standard deviations (near-coincident kinks a rounding error
    # apart leave ~1e-9 relative noise in components that are themselves ~1e-9 small)
    var_in = beta * beta + t * t
    if var_in > 0.0:
        scale[1] = max(scale[1], 0.5 * scale[0] / math.sqrt(var_in))
        scale[2] = max(scale[2], 0.5 * scale[0] / var_in)
        if s1 > 0.0:
            scale[3] = max(scale[3], 0.5 * scale[0] / math.sqrt(var_in * s1 * s1))
    top = npan
    for c in range(ncomp):
        out[c] = 0.0
    vl = np.empty(NCOMP)
    vr = np.empty(NCOMP)
    evals = npan
    ok = True
    while top > 0:
        top -= 1
        a = sa[top]
        b = sb[top]
        m = 0.5 * (a + b)
        _panel(phi, dphi, p1, kind2, psi, dpsi, p2, kinks2, jumps2, hlen2,
               m1, s1, m2, beta, t, a, m, ncomp, vl, aval)
        _panel(phi, dphi, p1, kind2, psi, dpsi, p2, kinks2, jumps2, hlen2,
               m1, s1, m2, beta, t, m, b, ncomp, vr, aval)
        evals += 2
        good = True
        for c in range(ncomp):
            if abs(vl[c] + vr[c] - sv[top, c]) > _REL_TOL * scale[c] + 1e-300:
                good = False
        # panels narrower than 1e-13 are accepted as they are: they arise only at two
        # kinks a rounding error apart (e.g. |correlation| = 1 up to rounding), and
        # contribute at most their width times the integrand
        tiny = b - a < 1e-13 * max(1.0, abs(a))
        if good or tiny or top + 2 > cap or evals > _MAX_EVALS:
            if not (good or tiny):
                ok = False
            for c in range(ncomp):
                out[c] += vl[c] + vr[c]
        else:
            sa[top] = a
            sb[top] = m
            sa[top + 1] = m
            sb[top + 1] = b
            for c in range(ncomp):
                sv[top, c] = vl[c]
                sv[top + 1, c] = vr[c]
            top += 2
    return ok


@numba.njit(**_JIT)
def _oriented(fo, dfo, po, kinks_o, jumps_o, fi, dfi, pi, kind_i, kinks_i, jumps_i, dkinks_i,
              hlen_i, mo, so, mi, si, c, ncomp, res, vo, vi):
    """The integrals of :func:`outer_integral` for ``outer`` = (mean ``mo``, sd ``so``)
    and ``inner`` = (``mi``, ``si``), covariance ``c``, with the Dirac terms: jumps of the
    outer activation (in ``res[3]``) and, at ``t = 0``, kinks and jumps of the inner one.
    Returns 0 (fine), 1 (quadrature budget exhausted) or 2 (a variance derivative through a
    jump at ``t = 0``, which does not exist)."""
    # vo, vi: the variances as given (so * so may differ from vo by an ulp, which would
    # turn |correlation| = 1 into a tiny positive conditional variance)
    if so > 0.0:
        beta = c / so
        t2 = (vi * vo - c * c) / vo  # exactly 0 when c^2 = var_i var_o
        if t2 <= 8.0 * _EPS * vi:
            # |correlation| = 1 up to the rounding of c^2 and var_i var_o: a conditional
            # sd of ~1e-8 sd_i would only be noise, and resolving it as a near-Dirac G''
            # can exhaust the panel budget (the values move by O(t^2), below rounding)
            t2 = 0.0
    else:
        beta = 0.0
        t2 = vi
    t = math.sqrt(t2) if t2 > 0.0 else 0.0
    status = 0
    if not outer_integral(fo, dfo, po, kinks_o, kind_i, fi, dfi, pi, kinks_i, jumps_i, hlen_i,
                          mo, so, mi, beta, t, ncomp, res):
        status = 1
    if ncomp == 1:
        return status
    g = np.empty(3)
    if so > 0.0:
        for j in range(kinks_o.size):
            if jumps_o[j] != 0.0:
                zk = (kinks_o[j] - mo) / so
                w = jumps_o[j] * INV_SQRT_2PI * math.exp(-0.5 * zk * zk) / so
                if kind_i == gm.GENERIC:
                    _generic_inner(fi, dfi, pi, kinks_i, jumps_i, hlen_i, mi + beta * zk, t, g)
                else:
                    gm.inner(kind_i, pi[1:], mi + beta * zk, t, g)
                res[3] += w * g[1]
    if t == 0.0 and beta != 0.0:
        for j in range(kinks_i.size):
            zk = (kinks_i[j] - mi) / beta
            wz = INV_SQRT_2PI * math.exp(-0.5 * zk * zk) / abs(beta)
            uk = mo + so * zk
            fk = fo(uk, po)
            res[1] += jumps_i[j] * wz * fk
            res[3] += jumps_i[j] * wz * dfo(uk, po)
            res[2] += dkinks_i[j] * wz * fk
            if jumps_i[j] != 0.0 and fk != 0.0:
                status = 2
    return status


_F1 = types.Array(types.float64, 1, "C")
_FN = types.FunctionType(types.float64(types.float64, _F1))
_SIDE = (_FN, _FN, _F1, types.int64, _F1, _F1, _F1, types.float64)
_PAIRS_SIG = types.void(*_SIDE, *_SIDE, _F1, _F1, _F1, _F1, _F1, types.boolean,
                        types.Array(types.float64, 2, "C"), types.Array(types.int64, 1, "C"))


def _pairs_py(fa, dfa, pa, kind_a, kinks_a, jumps_a, dkinks_a, hlen_a,
          fb, dfb, pb, kind_b, kinks_b, jumps_b, dkinks_b, hlen_b,
          v1, v2, c12, m1, m2, grad, out, status):
    """Per entry ``i``: ``out[i, 0] = E[phi_a(u) phi_b(v)]`` and, with ``grad``,
    ``out[i, 1:6] = d/d(var1, var2, cov, mean1, mean2)``; ``status[i]`` as in
    :func:`_oriented`."""
    res = np.empty(NCOMP)
    other = np.empty(NCOMP)
    ncomp = NCOMP if grad else 1
    # the closed-form mean goes inside where there is one
    swap = kind_b == gm.GENERIC and kind_a != gm.GENERIC
    for i in range(v1.size):
        s1 = math.sqrt(v1[i])
        s2 = math.sqrt(v2[i])
        if not swap:
            st = _oriented(fa, dfa, pa, kinks_a, jumps_a, fb, dfb, pb, kind_b, kinks_b,
                           jumps_b, dkinks_b, hlen_b, m1[i], s1, m2[i], s2, c12[i], ncomp, res,
                           v1[i], v2[i])
        else:
            st = _oriented(fb, dfb, pb, kinks_b, jumps_b, fa, dfa, pa, kind_a, kinks_a,
                           jumps_a, dkinks_a, hlen_a, m2[i], s2, m1[i], s1, c12[i], ncomp, res,
                           v2[i], v1[i])
        out[i, 0] = res[0]
        if grad:
            if not swap:
                st2 = _oriented(fb, dfb, pb, kinks_b, jumps_b, fa, dfa, pa, kind_a, kinks_a,
                                jumps_a, dkinks_a, hlen_a, m2[i], s2, m1[i], s1, c12[i], 3,
                                other, v2[i], v1[i])
                # res: inner b; other: inner a
                out[i, 1] = 0.5 * other[2]
                out[i, 2] = 0.5 * res[2]
                out[i, 4] = other[1]
                out[i, 5] = res[1]
            else:
                st2 = _oriented(fa, dfa, pa, kinks_a, jumps_a, fb, dfb, pb, kind_b, kinks_b,
                                jumps_b, dkinks_b, hlen_b, m1[i], s1, m2[i], s2, c12[i], 3,
                                other, v1[i], v2[i])
                out[i, 1] = 0.5 * res[2]
                out[i, 2] = 0.5 * other[2]
                out[i, 4] = res[1]
                out[i, 5] = other[1]
            out[i, 3] = res[3]
            st = max(st, st2)
        status[i] = st


_PAIRS = []


def pairs(*args):
    """The compiled :func:`_pairs_py`: one loop for every pair of activations
    (first-class function arguments), compiled on first use (not at import) and cached
    across sessions."""
    if not _PAIRS:
        _PAIRS.append(numba.njit(_PAIRS_SIG, cache=True, error_model="numpy")(_pairs_py))
    return _PAIRS[0](*args)


# ------------------------------------------------------------ Python API


class _Side:
    """What the compiled loop needs of one activation."""

    def __init__(self, act, rmax):
        kind, params = gm.spec(act)
        self.kind = kind
        if kind != gm.GENERIC:
            self.fn, self.dfn = closed_phi, closed_dphi
            self.p = np.concatenate([[float(kind)], params])
            kinks = (0.0,) if kind in (gm.ABRELU, gm.SIGN, gm.RECTMONO) else ()
            self.hlen = 1.0
        else:
            if not isinstance(act, GenericActivation):
                act = act.numerical()
            self.fn, self.dfn = act.phi, act.dphi
            self.p = np.asarray(act.params, dtype=np.float64)
            if self.p.size == 0:
                self.p = np.zeros(1)
            kinks = tuple(act.kinks)
            self.hlen, _ = length_scales(self.fn, self.dfn, self.p, np.asarray(kinks, float),
                                         max(rmax, 1e-3))
        self.kinks = np.asarray(kinks, dtype=np.float64)
        # jumps of phi and of phi' at the kinks (the linear part removed)
        j = np.zeros(self.kinks.size)
        dj = np.zeros(self.kinks.size)
        for i, k in enumerate(self.kinks):
            e = 1e-9 * max(1.0, abs(k))
            fp, fm = self.fn(k + e, self.p), self.fn(k - e, self.p)
            dp, dm = self.dfn(k + e, self.p), self.dfn(k - e, self.p)
            jump = fp - fm - e * (dp + dm)
            scale = 1.0 + abs(fp) + abs(fm)
            j[i] = jump if abs(jump) > 1e-6 * scale else 0.0
            dd = dp - dm
            dj[i] = dd if abs(dd) > 1e-6 * (1.0 + abs(dp) + abs(dm)) else 0.0
        self.jumps, self.dkinks = j, dj

    def args(self):
        return (self.fn, self.dfn, self.p, self.kind, self.kinks, self.jumps, self.dkinks,
                self.hlen)


def _has_jump(act) -> bool:
    kind, params = gm.spec(act)
    return kind == gm.SIGN or (kind == gm.RECTMONO and params[0] == 0)


def _check_moments(phi, psi, v1, v2, c):
    """Gaussian(b > 0) and Exp activations: the expectation must exist and the outer range
    must hold the integrand's mass."""
    bs = []
    for act in (phi, psi):
        kind, p = gm.spec(act)
        bs.append(p[1] if kind == gm.GAUSS and p[1] > 0 else 0.0)
        if kind == gm.EXP:
            for v in (v1, v2):
                if np.any(abs(p[1]) * np.sqrt(v) > 10.0):
                    raise ValueError(f"{act!r}: |b| * sd exceeds 10, beyond the quadrature's "
                                     "range")
    b1, b2 = bs
    if b1 or b2:
        d1 = 1.0 - 2.0 * b1 * v1
        d2 = 1.0 - 2.0 * b2 * v2
        if np.any(d1 <= 0) or np.any(d2 <= 0) or np.any(d1 * d2 - 4.0 * b1 * b2 * c * c <= 0):
            raise ValueError("Gaussian(b > 0): the expectation diverges at these variances "
                             "(need 1 - 2 b var > 0 jointly)")


def by_quadrature(phi, psi, flat, grad):
    """``(out, status)`` of :func:`pairs` for validated flat arrays ``flat = (var1, var2,
    cov, mean1, mean2)``: the quadrature route for every entry (also a reference for the
    closed forms in the tests)."""
    sub = [np.ascontiguousarray(a, dtype=np.float64) for a in flat]
    rmax = float(np.sqrt(max(sub[0].max(), sub[1].max())))
    sa, sb = _Side(phi, rmax), _Side(psi, rmax)
    out = np.empty((sub[0].size, 6))
    status = np.zeros(sub[0].size, dtype=np.int64)
    pairs(*sa.args(), *sb.args(), *sub, bool(grad), out, status)
    return out, status


def bivariate_expectation(phi, psi, var1, var2, cov, mean1=0.0, mean2=0.0, *, grad=False):
    """``E[phi(u) psi(v)]`` for ``(u, v) ~ N((mean1, mean2), [[var1, cov], [cov, var2]])``.

    Parameters
    ----------
    phi, psi : Activation
        Any activations of the library (closed families or ``Activation(expr)``), the
        same or different.
    var1, var2, cov, mean1, mean2 : array_like
        Broadcast together; ``var >= 0``, ``|cov| <= sqrt(var1 var2)`` (up to rounding;
        ``var = 0`` and ``|correlation| = 1`` are valid).
    grad : bool
        Also return the derivatives ``(d_var1, d_var2, d_cov, d_mean1, d_mean2)``.

    Returns
    -------
    value : float or ndarray
        Of the broadcast shape (a float for scalar input).
    (value, grads) : with ``grad=True``; ``grads`` a tuple of five arrays.

    Notes
    -----
    By Price's theorem and Stein's lemma (Price 1958; Stein 1981), ``d/dcov = E[phi'
    psi']``, ``d/dvar1 = E[phi'' psi] / 2``, ``d/dmean1 = E[phi' psi]`` (in the sense of
    distributions: jumps contribute Dirac terms).  Method in the module docstring
    (``design.md`` section 5a).  Zero means and ``phi == psi`` of a closed family give
    the centred dual of :mod:`analytic_ntk.duals` exactly.  At ``|correlation| = 1`` the
    variance derivatives of an activation with a jump do not exist: ``ValueError``.

    Raises
    ------
    ValueError
        For non-activations, shapes that do not broadcast, NaN or inf, negative
        variances, ``|cov| > sqrt(var1 var2)`` beyond rounding, divergent expectations.
    """
    for name, a in (("phi", phi), ("psi", psi)):
        if not isinstance(a, Activation):
            raise ValueError(f"{name} must be an activation of analytic_ntk, got {a!r}")
    names = ("var1", "var2", "cov", "mean1", "mean2")
    vals = []
    for name, v in zip(names, (var1, var2, cov, mean1, mean2)):
        try:
            a = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be numeric: {exc}") from None
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or inf")
        vals.append(a)
    try:
        v1, v2, c, m1, m2 = np.broadcast_arrays(*vals)
    except ValueError:
        raise ValueError("var1, var2, cov, mean1, mean2 have shapes that do not broadcast: "
                         + ", ".join(str(a.shape) for a in vals)) from None
    shape = v1.shape
    if np.any(v1 < 0) or np.any(v2 < 0):
        raise ValueError("var1 and var2 must be non-negative")
    bound = np.sqrt(v1) * np.sqrt(v2)
    if np.any(np.abs(c) > bound * (1.0 + 1e-12) + 1e-300):
        raise ValueError("|cov| exceeds sqrt(var1 * var2): not a covariance matrix")
    c = np.clip(c, -bound, bound)
    _check_moments(phi, psi, v1, v2, c)
    flat = [np.ascontiguousarray(a, dtype=np.float64).ravel() for a in (v1, v2, c, m1, m2)]
    n = flat[0].size
    centred_dual = (phi == psi and gm.spec(phi)[0] != gm.GENERIC
                    and not np.any(flat[3]) and not np.any(flat[4]))
    value = None
    if centred_dual:
        f, g = duals.evaluate(phi, flat[0], flat[1], flat[2])
        value = f
        if not grad:
            return _shape(value, shape)
    out = np.empty((6 if grad else 1, n))  # rows: value, d_var1, d_var2, d_cov, d_mean1, d_mean2
    status = np.zeros(n, dtype=np.int64)
    rest = None  # entries for the quadrature (None: all of them)
    ka, pa = gm.spec(phi)
    kb, pb = gm.spec(psi)
    rest = _closed_forms(ka, pa, kb, pb, flat, bound.ravel(), out)
    if rest is None or rest.size:
        idx = slice(None) if rest is None else rest
        o, st = by_quadrature(phi, psi, [a[idx] for a in flat], grad)
        out[:, idx] = o.T[: out.shape[0]]
        status[idx] = st
    if np.any(status == 2):
        raise ValueError("at |correlation| = 1 (or a zero conditional variance) the "
                         "variance derivatives of an activation with a jump do not exist")
    if np.any(status == 1):
        raise ValueError("the adaptive quadrature did not converge (an activation too rough "
                         "or too steep for these variances)")
    if value is None:
        value = out[0]
    elif not _has_jump(phi):
        out[3] = g  # the NTK factor of the dual: the same formula
    if not grad:
        return _shape(value, shape)
    return _shape(value, shape), tuple(_shape(out[k], shape) for k in range(1, 6))


def _masked(kernel, ok, flat, out):
    """Run ``kernel(flat, out)`` on the entries where ``ok``; the indices of the others."""
    if ok.all():
        kernel(flat, out)
        return np.empty(0, dtype=np.int64)
    sel = np.nonzero(ok)[0]
    if sel.size:
        o = np.empty((out.shape[0], sel.size))
        kernel([a[sel] for a in flat], o)
        out[:, sel] = o
    return np.nonzero(~ok)[0]


def _probit_side(kind, params):
    """An ``Erf(a, b, c)`` side as a step of an auxiliary Gaussian (the probit form): with
    ``X ~ N(0, 1)`` independent, ``a erf(b u) + c = E_X[a sign(w) + c]``, ``w = sqrt(2) b
    u - X``.  Returns ``(coefficients of a sign + c in the basis (1, x, relu, H),
    sqrt(2) b)``, or ``(pl coefficients, None)`` for the other families."""
    if kind == gm.ERF:
        a, b, c = params
        return np.array([c - a, 0.0, 0.0, 2.0 * a]), math.sqrt(2.0) * b
    return orthant.pl_coefficients(kind, params), None


def _closed_forms(ka, pa, kb, pb, flat, bound, out):
    """Fill ``out`` (rows: value and, with 6 rows, ``d/d(var1, var2, cov, mean1,
    mean2)``) from a closed form where the pair has one; returns the indices left for the
    quadrature (None: all of them)."""
    v1, v2, c, m1, m2 = flat
    grad = out.shape[0] > 1
    # piecewise-linear and step activations, and Erf through the probit form
    (pl_a, sa), (pl_b, sb) = _probit_side(ka, pa), _probit_side(kb, pb)
    if pl_a is not None and pl_b is not None:
        if ka == gm.ABRELU and kb == gm.ABRELU:
            args = (pa[0], pa[1] - pa[0], pb[0], pb[1] - pb[0])
            kernel = orthant.abrelu_pairs
        else:
            args = (pl_a, pl_b)
            kernel = orthant.pl_pairs
        steps = not (pl_a[1] or pl_a[2] or pl_b[1] or pl_b[2])

        def run(f, o):
            if grad or not steps:
                kernel(*args, *f, grad, o)
            if steps:  # the value as mean x mean + covariance (no cancellation)
                orthant.step_values(pl_a[0], pl_a[3], pl_b[0], pl_b[3], *f, o[0])

        if sa is None and sb is None:
            ok = (v1 > 0) & (v2 > 0) & (np.abs(c) <= orthant.RHO_MAX * bound)
            return _masked(run, ok, flat, out)
        # probit sides: (var, mean) -> (2 b^2 var + 1, sqrt(2) b mean), cov scaled
        fa, fb = (1.0 if sa is None else sa), (1.0 if sb is None else sb)
        tv1 = v1 if sa is None else fa * fa * v1 + 1.0
        tv2 = v2 if sb is None else fb * fb * v2 + 1.0
        tflat = [tv1, tv2, fa * fb * c, fa * m1, fb * m2]
        ok = (tv1 > 0) & (tv2 > 0) & (np.abs(tflat[2]) <= orthant.RHO_MAX
                                      * np.sqrt(tv1) * np.sqrt(tv2))
        rest = _masked(run, ok, tflat, out)
        if grad:
            out[1] *= fa * fa
            out[2] *= fb * fb
            out[3] *= fa * fb
            out[4] *= fa
            out[5] *= fb
        return rest
    # exponential-type pairs through the moment generating function
    c1, c2 = charfun.coefficients(ka, pa), charfun.coefficients(kb, pb)
    if c1 is not None and c2 is not None:
        out[:] = charfun.evaluate(c1, c2, flat, grad)
        return np.empty(0, dtype=np.int64)
    # Exp / Gaussian against any family with a closed one-dimensional mean (real
    # arithmetic), where the other variance is positive
    ea, eb = gi.tilt_form(ka, pa), gi.tilt_form(kb, pb)
    qa, qb = gi.qe_form(ka, pa), gi.qe_form(kb, pb)
    rest = None
    if ea is not None and kb != gm.GENERIC:
        rest = _masked(lambda f, o: gi.tilt_pairs(*ea, kb, pb, *f, o), v2 > 0, flat, out)
    elif eb is not None and ka != gm.GENERIC:
        def swapped(f, o):
            gi.tilt_pairs(*eb, ka, pa, f[1], f[0], f[2], f[4], f[3], o)
            if grad:
                o[[1, 2, 4, 5]] = o[[2, 1, 5, 4]]
        rest = _masked(swapped, v1 > 0, flat, out)
    # polynomial x exponential-quadratic pairs: tilt + Gaussian moments (any covariance)
    if qa is not None and qb is not None and (rest is None or rest.size):
        ta, tb = gi.derivative_table(*qa), gi.derivative_table(*qb)

        def moments(f, o):
            gi.qe_pairs(ta, qa[1], qa[2], tb, qb[1], qb[2], *f, o)

        if rest is None:
            moments(flat, out)
        else:
            o = np.empty((out.shape[0], rest.size))
            moments([x[rest] for x in flat], o)
            out[:, rest] = o
        return np.empty(0, dtype=np.int64)
    return rest


def _shape(a, shape):
    a = np.asarray(a, dtype=np.float64).reshape(shape)
    return float(a) if shape == () else a
