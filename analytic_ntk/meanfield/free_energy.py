"""Free energy of mean-field Langevin dynamics and the first variation of the risk.

For the particles ``theta_j = (u_j, w_j, b_j)`` of ``f(x) = (alpha / m) sum_j u_j
sigma(w_j . x + b_j)`` with empirical measure ``rho``, the noisy dynamics of
:func:`~analytic_ntk.meanfield.particle_flow` at ``alpha = 1``,

    d theta = -(grad Psi(theta; rho) + lambda theta) dt + sqrt(2 tau) dW,

is the Wasserstein gradient flow of the free energy (Mei, Montanari & Nguyen 2018,
section 3; Nitanda, Wu & Suzuki 2022; Chizat 2022)

    F(rho) = R(rho) + (lambda / 2) int |theta|^2 d rho + tau int rho log rho,

with ``R`` the population risk :func:`~analytic_ntk.meanfield.population_risk` and the
first variation ``Psi(theta; rho) = dR / d rho (theta) = alpha u a(w, b)``,

    a(w, b) = E[(f(x) - y(x)) sigma(w . x + b)]
            = (alpha / m) sum_j u_j K(sigma, sigma; (w, b), theta_j)
              - sum_k c_k K(sigma, tau; (w, b), theta*_k)

(:func:`first_variation`, from the same pair expectations as the risk).  ``F`` decreases
along the flow, and a stationary point satisfies the Gibbs fixed-point equation
``rho(theta) ∝ exp(-(Psi(theta; rho) + lambda |theta|^2 / 2) / tau)``.  Because ``Psi``
is linear in ``u``, under the Gibbs measure ``u`` given ``(w, b)`` is Gaussian with mean
``-alpha a(w, b) / lambda`` and variance ``tau / lambda``, and the marginal of ``(w, b)`` is
``∝ exp(-lambda (|w|^2 + b^2) / (2 tau) + alpha^2 a(w, b)^2 / (2 lambda tau))``.

The entropy ``-int rho log rho`` of the particles is estimated with the
Kozachenko-Leonenko nearest-neighbour estimator (:func:`knn_entropy`; Kozachenko &
Leonenko 1987; Kraskov, Stoegbauer & Grassberger 2004, eq. (20)).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import special
from scipy.spatial import cKDTree

from .population import Teacher, _pair_kernel, _student, population_risk

__all__ = ["FreeEnergy", "first_variation", "free_energy", "knn_entropy"]


def first_variation(activation, u, w, b, teacher: Teacher, w_probe, b_probe,
                    alpha: float = 1.0):
    """``a(w', b') = E[(f(x) - y(x)) sigma(w' . x + b')]`` at the probe units ``(w_probe[i],
    b_probe[i])`` (module docstring); ``Psi(theta; rho) = alpha u a(w, b)``.

    Parameters
    ----------
    activation : Activation
    u : (m,) array; w : (m, d) array; b : (m,) array
        The particles (the network ``f``).
    teacher : Teacher
    w_probe : (n, d) array; b_probe : (n,) array
    alpha : float

    Returns
    -------
    (n,) array
    """
    u, w, b = _student(activation, u, w, b, teacher)
    wp = np.asarray(w_probe, dtype=np.float64)
    bp = np.asarray(b_probe, dtype=np.float64)
    if wp.ndim != 2 or wp.shape[1] != w.shape[1]:
        raise ValueError(f"w_probe must have shape (n, {w.shape[1]}), got {wp.shape}")
    if bp.shape != (wp.shape[0],):
        raise ValueError(f"b_probe must have shape ({wp.shape[0]},), got {bp.shape}")
    if not (np.all(np.isfinite(wp)) and np.all(np.isfinite(bp))):
        raise ValueError("w_probe and b_probe must be finite")
    alpha = float(alpha)
    if not math.isfinite(alpha):
        raise ValueError(f"alpha must be finite, got {alpha!r}")
    k_ps = _pair_kernel(activation, activation, wp, bp, w, b, False)
    t = teacher
    k_pt = _pair_kernel(activation, t.activation, wp, bp, t.weights, t.biases, False)
    return (alpha / u.size) * (np.atleast_2d(k_ps) @ u) - np.atleast_2d(k_pt) @ t.coef


def knn_entropy(points, k: int = 4) -> float:
    """Kozachenko-Leonenko estimate of the differential entropy ``-int rho log rho`` from
    samples ``points`` of shape ``(n, D)``:

        H = psi(n) - psi(k) + log V_D + (D / n) sum_i log(2 eps_i),

    ``eps_i`` the distance from point ``i`` to its ``k``-th nearest neighbour, ``V_D``
    the volume of the ball of diameter 1 (Kraskov et al. 2004, eq. (20)).  Consistent
    as ``n -> inf``; its bias at finite ``n`` depends on the shape of the density.
    """
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"points must be a 2-D array (n, D), got shape {x.shape}")
    n, dim = x.shape
    k = int(k)
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, n), got k={k}, n={n}")
    if not np.all(np.isfinite(x)):
        raise ValueError("points contain NaN or inf")
    dist, _ = cKDTree(x).query(x, k=k + 1)
    eps = dist[:, -1]
    if np.any(eps <= 0):
        raise ValueError("repeated points: the nearest-neighbour entropy is -inf")
    log_vd = dim * math.log(0.5) + 0.5 * dim * math.log(math.pi) - special.gammaln(
        0.5 * dim + 1)  # ball of radius 1/2
    return float(special.digamma(n) - special.digamma(k) + log_vd
                 + dim * np.mean(np.log(2.0 * eps)))


class FreeEnergy(NamedTuple):
    """``total = risk + penalty - temperature * entropy``."""

    total: float
    risk: float
    penalty: float
    entropy: float


def free_energy(activation, u, w, b, teacher: Teacher, *, weight_decay: float,
                temperature: float, alpha: float = 1.0, train_biases: bool = True,
                k: int = 4) -> FreeEnergy:
    """``F = R + (lambda / 2) mean_j |theta_j|^2 - tau H`` of the particles (module
    docstring), ``H`` the nearest-neighbour entropy of the trained coordinates
    (``(u, w, b)``, or ``(u, w)`` with ``train_biases=False``)."""
    u, w, b = _student(activation, u, w, b, teacher)
    for name, v in (("weight_decay", weight_decay), ("temperature", temperature)):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be finite and non-negative, got {v!r}")
    theta = np.column_stack([u, w, b] if train_biases else [u, w])
    risk = float(population_risk(activation, u, w, b, teacher, alpha))
    penalty = 0.5 * weight_decay * float(np.mean(np.sum(theta * theta, axis=1)))
    h = knn_entropy(theta, k) if temperature > 0 else 0.0
    return FreeEnergy(risk + penalty - temperature * h, risk, penalty, h)
