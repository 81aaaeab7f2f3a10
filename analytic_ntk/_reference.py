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

Conventions for zero variance (``P = sqrt(cov1 cov2) = 0``): the positively homogeneous
families (ABRelu, RectifiedMonomial, Sign) give ``nngp' = 0`` (``sign(0) = step(0) = 0``,
as in the library), and their NTK factor is evaluated at ``theta = pi/2``; it multiplies an
NTK entry that is itself 0 whenever the variance is 0, so its value does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass
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

__all__ = ["ReferenceKernel", "dual", "reference", "reference_kernel", "scaled_error"]


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
        Built with :func:`analytic_ntk.serial`.
    x1 : array (n1, d)
    x2 : array (n2, d) or None
        ``None`` means ``x2 = x1``.
    dps : int
        Working precision in decimal digits.

    Returns
    -------
    ReferenceKernel
    """
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
