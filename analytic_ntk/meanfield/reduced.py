"""The mean-field limit of the isotropic-Gaussians classification model, reduced by
rotational symmetry (Mei, Montanari & Nguyen 2018, section 2.1): a reference for the
particle dynamics that does not use the particles.

Model: with probability 1/2, ``y = +1`` and ``x ~ N(0, (1 + delta)^2 I_d)``, else ``y =
-1`` and ``x ~ N(0, (1 - delta)^2 I_d)``; ``f(x) = int u sigma(w . x) d rho(u, w)``, risk
``R = E[(y - f)^2] / 2``, bias-free neurons.  If ``rho_0`` is invariant under rotations of
``w`` (``w ~ N(0, r0^2 I_d / d)``, independent of ``u``), so is ``rho_t``, and the
distributional dynamics ``d theta / dt = -grad Psi(theta; rho_t)`` reduce to the joint
law of ``(u, r = |w|)``:

    Psi(u, r) = (1/2) sum_c [-y_c u e_c(r) + u int u' Kbar_c(r, r') d rho(u', r')],
    du/dt = -d Psi / du,   dr/dt = -d Psi / dr,

with ``e_c(r) = E_c[sigma(w . x)]`` and ``Kbar_c(r, r') = E_g[K_c(r, r', g)]`` the pair
expectation averaged over the cosine ``g`` between two independent uniform directions in
``R^d`` (density ``∝ (1 - g^2)^((d - 3)/2)``).  For ``sigma(t) = a exp(b t^2)`` (``b <
0``) ``e_c``, ``K_c`` and their ``r``-derivatives are derived by SymPy and generated as
numba code (``derivations/mmn_reduced.py``, ``_generated/mmn_reduced.py``).

The continuity equation ``d rho / dt = div(rho grad Psi)`` is solved on a grid of
characteristics: ``rho_0`` is discretised by a product rule (composite Gauss-Legendre in
``u``, see below; generalised Gauss-Laguerre in ``r^2``, exact for the chi law of
``|w|``), whose nodes move along the velocity field with their weights fixed (the weak
solution for the discretised initial law), with Heun's method; the angle average by
Gauss-Jacobi. In ``u`` the rule is composite (4-point Gauss-Legendre panels, dense on
``|u| <= 1.5 u_std``): the flow map of ``u`` develops a steep transition there (neurons
with ``u > 0`` shrink to ``r = 0`` and act as constants), which a global Gauss-Hermite
rule resolves poorly. The grid is refined until the risk curve no longer changes
(``n_u``, ``n_r``, ``n_angle``).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange
from scipy import special

from .._generated.mmn_reduced import neuron_mean, pair_mean
from ..layers import Gaussian

__all__ = ["two_class_reduced_flow"]


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _velocity(a, b, scales, labels, u, r, p, gx, gw, du, dr):
    """Velocities of the nodes and the risk (module docstring)."""
    n = u.size
    risk_parts = np.zeros(n)
    for i in prange(n):
        vu = 0.0
        vr = 0.0
        part = 0.0
        for c in range(scales.size):
            s = scales[c]
            y = labels[c]
            e, de = neuron_mean(a, b, s, r[i])
            acc = 0.0
            dacc = 0.0
            for j in range(n):
                kb = 0.0
                dkb = 0.0
                for k in range(gx.size):
                    kv, dk = pair_mean(a, b, s, r[i], r[j], gx[k])
                    kb += gw[k] * kv
                    dkb += gw[k] * dk
                acc += p[j] * u[j] * kb
                dacc += p[j] * u[j] * dkb
            vu -= 0.5 * (-y * e + acc)
            vr -= 0.5 * u[i] * (-y * de + dacc)
            # this node's share of -2 E[y f] + E[f^2], class weight 1/2
            part += 0.5 * p[i] * u[i] * (-2.0 * y * e + acc)
        du[i] = vu
        dr[i] = vr
        risk_parts[i] = part
    return 0.5 * (1.0 + risk_parts.sum())


def _u_rule(n_u):
    """``n_u`` nodes (a multiple of 4) and weights for ``E[g(xi)]``, ``xi ~ N(0, 1)``: 4-point
    Gauss-Legendre panels on ``[-8, 8]``, half of them on ``[-1.5, 1.5]`` where the flow
    map of ``u`` has its steep transition (neurons with ``u > 0`` collapse to ``r = 0``)."""
    if n_u % 4:
        raise ValueError(f"n_u must be a multiple of 4, got {n_u}")
    npan = n_u // 4
    inner = npan // 2
    outer = npan - inner
    left = outer // 2
    edges = np.concatenate([np.linspace(-8.0, -1.5, left + 1)[:-1],
                            np.linspace(-1.5, 1.5, inner + 1),
                            np.linspace(1.5, 8.0, outer - left + 1)[1:]])
    x4, w4 = np.polynomial.legendre.leggauss(4)
    lo, hi = edges[:-1, None], edges[1:, None]
    x = (0.5 * (lo + hi) + 0.5 * (hi - lo) * x4).ravel()
    w = (0.5 * (hi - lo) * w4).ravel() * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return x, w / w.sum()


def _nodes(d, r0, u_mean, u_std, n_u, n_r, n_angle):
    xu, wu = _u_rule(n_u)
    # r^2 d / (2 r0^2) ~ Gamma(d/2, 1): generalised Gauss-Laguerre in that variable
    xr, wr = special.roots_genlaguerre(n_r, 0.5 * d - 1.0)
    wr = wr / wr.sum()
    u = np.repeat(u_mean + u_std * xu, n_r)
    r = np.tile(r0 * np.sqrt(2.0 * xr / d), n_u)
    p = np.outer(wu, wr).ravel()
    alpha = 0.5 * (d - 3.0)
    gx, gw = special.roots_jacobi(n_angle, alpha, alpha)
    return u, r, p, gx, gw / gw.sum()


def two_class_reduced_flow(activation, delta: float, d: int, *, dt: float, steps: int,
                           r0: float = 1.0, u_mean: float = 0.0, u_std: float = 1.0,
                           n_u: int = 96, n_r: int = 6, n_angle: int = 12,
                           record_every: int = 1):
    """Risk of the ``m -> inf`` limit of :func:`~analytic_ntk.meanfield.particle_flow` on
    the two-class model (module docstring) with ``alpha = 1``, bias-free neurons, ``u ~
    N(u_mean, u_std^2)`` and ``w ~ N(0, r0^2 I_d / d)`` at ``t = 0``.

    Parameters
    ----------
    activation : Gaussian
        ``a exp(b t^2)`` with ``b < 0`` (the family whose reduced drift is generated).
    delta : float
        Class scales ``1 +- delta``, ``0 <= delta < 1``.
    d : int
        Input dimension, ``>= 3``.
    dt, steps, record_every
        Heun steps of the characteristics; the risk is recorded every ``record_every``.
    n_u, n_r, n_angle
        Nodes in ``u`` (a multiple of 4), ``r`` and the angle.

    Returns
    -------
    (times, risks, (u, r, p)) : the recorded times and risks, and the final nodes with
    their weights.
    """
    if not isinstance(activation, Gaussian) or not activation.b < 0:
        raise ValueError("the reduced drift is generated for Gaussian(a, b) with b < 0, got "
                         f"{activation!r}")
    delta = float(delta)
    if not (math.isfinite(delta) and 0.0 <= delta < 1.0):
        raise ValueError(f"delta must lie in [0, 1), got {delta!r}")
    if int(d) != d or d < 3:
        raise ValueError(f"d must be an integer >= 3, got {d!r}")
    for name, v in (("dt", dt), ("r0", r0), ("u_std", u_std)):
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be positive and finite, got {v!r}")
    for name, v in (("steps", steps), ("n_u", n_u), ("n_r", n_r), ("n_angle", n_angle),
                    ("record_every", record_every)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    u, r, p, gx, gw = _nodes(int(d), float(r0), float(u_mean), float(u_std), int(n_u),
                             int(n_r), int(n_angle))
    a, b = float(activation.a), float(activation.b)
    scales = np.array([1.0 + delta, 1.0 - delta])
    labels = np.array([1.0, -1.0])
    du, dr = np.empty_like(u), np.empty_like(u)
    du2, dr2 = np.empty_like(u), np.empty_like(u)
    times, risks = [], []
    for step in range(int(steps) + 1):
        risk = _velocity(a, b, scales, labels, u, r, p, gx, gw, du, dr)
        if step % record_every == 0 or step == steps:
            times.append(step * dt)
            risks.append(risk)
        if step == steps:
            break
        u1, r1 = u + dt * du, r + dt * dr
        _velocity(a, b, scales, labels, u1, r1, p, gx, gw, du2, dr2)
        u = u + 0.5 * dt * (du + du2)
        r = r + 0.5 * dt * (dr + dr2)
    return np.asarray(times), np.asarray(risks), (u, r, p)
