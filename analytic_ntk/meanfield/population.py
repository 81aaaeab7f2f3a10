"""Population risk of a two-layer network against a teacher, for Gaussian inputs.

Student ``f(x) = (alpha / m) sum_j u_j sigma(w_j . x + b_j)``, teacher
``y = sum_k c_k tau(w*_k . x + b*_k) + eps``, ``x ~ N(0, I_d)``, ``eps ~ N(0, s^2)``.
Every pre-activation pair is jointly Gaussian: ``(w . x + b, w' . x + b')`` has means
``(b, b')``, variances ``|w|^2, |w'|^2`` and covariance ``w . w'``, so with
``K(phi, psi; theta, theta') = E[phi(w.x + b) psi(w'.x + b')]``
(:func:`analytic_ntk.bivariate_expectation`, ``design.md`` section 5a)

    R = E[(f - y)^2] / 2
      = E[y^2] / 2 + (alpha / m) sum_j V(theta_j)
        + (alpha / m)^2 / 2 sum_{j, l} U(theta_j, theta_l),
    V(theta) = -u sum_k c_k K(sigma, tau; theta, theta*_k),
    U(theta, theta') = u u' K(sigma, sigma; theta, theta'),
    E[y^2] = sum_{k, k'} c_k c_k' K(tau, tau; theta*_k, theta*_k') + s^2

(Mei, Montanari & Nguyen 2018, eq. (3)-(5), here with biases and two activations).
The gradients in ``(u_j, w_j, b_j)`` follow by the chain rule through ``|w_j|^2``,
``w_j . w_l`` and ``b_j`` from the five derivatives of ``K``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..expectation import bivariate_expectation
from ..layers import Activation

__all__ = ["Teacher", "TwoClass", "monte_carlo_risk", "population_risk", "two_class_risk"]


def _matrix(name, a, ndim):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


@dataclass(frozen=True)
class Teacher:
    """``y = sum_k coef[k] activation(weights[k] . x + biases[k]) + noise_std * eps``."""

    activation: Activation
    weights: np.ndarray
    biases: np.ndarray
    coef: np.ndarray
    noise_std: float = 0.0

    def __post_init__(self):
        if not isinstance(self.activation, Activation):
            raise ValueError(f"activation must be an Activation, got {self.activation!r}")
        w = _matrix("teacher weights", self.weights, 2)
        b = _matrix("teacher biases", self.biases, 1)
        c = _matrix("teacher coef", self.coef, 1)
        if not (b.size == c.size == w.shape[0]):
            raise ValueError(f"teacher weights {w.shape}, biases {b.shape} and coef {c.shape} "
                             "disagree on the number of units")
        s = float(self.noise_std)
        if not (math.isfinite(s) and s >= 0):
            raise ValueError(f"noise_std must be finite and non-negative, got {self.noise_std!r}")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "biases", b)
        object.__setattr__(self, "coef", c)
        object.__setattr__(self, "noise_std", s)

    @property
    def d(self) -> int:
        return self.weights.shape[1]

    def __call__(self, x, rng=None):
        """Targets for inputs ``x`` (n, d); noise drawn from ``rng`` if ``noise_std > 0``."""
        z = x @ self.weights.T + self.biases
        y = np.asarray(self.activation.fn(z)) @ self.coef
        if self.noise_std > 0:
            y = y + self.noise_std * np.random.default_rng(rng).standard_normal(y.shape)
        return y


def _student(activation, u, w, b, teacher=None):
    """Validated particles ``(u, w, b)`` (and their input dimension against ``teacher``)."""
    if not isinstance(activation, Activation):
        raise ValueError(f"activation must be an Activation, got {activation!r}")
    u = _matrix("u", u, 1)
    w = _matrix("w", w, 2)
    b = _matrix("b", b, 1)
    if not (u.size == b.size == w.shape[0]):
        raise ValueError(f"u {u.shape}, w {w.shape} and b {b.shape} disagree on the number "
                         "of particles")
    if teacher is not None and w.shape[1] != teacher.d:
        raise ValueError(f"w has input dimension {w.shape[1]}, the teacher {teacher.d}")
    return u, w, b


def _pair_kernel(phi, psi, w1, b1, w2, b2, grad):
    """``K[i, j] = E[phi(w1_i.x + b1_i) psi(w2_j.x + b2_j)]`` (and its derivatives)."""
    q1 = np.einsum("ij,ij->i", w1, w1)
    q2 = np.einsum("ij,ij->i", w2, w2)
    c = w1 @ w2.T
    if w1 is w2:
        # the diagonal pairs are one unit with itself: correlation exactly 1 (BLAS may
        # round w.w an ulp away from |w|^2, which for kinked activations moves the
        # variance derivatives by ~1e-9)
        np.fill_diagonal(c, q1)
    # exact: |c| <= sqrt(q1 q2) up to rounding, which bivariate_expectation accepts
    return bivariate_expectation(phi, psi, q1[:, None], q2[None, :], c, b1[:, None],
                                 b2[None, :], grad=grad)


def _interaction_gradients(u, w, grads):
    """Gradients in ``w`` and ``b`` of ``u^T K u / 2``, ``K_jl = E[sigma_j sigma_l]``, from
    the derivatives ``grads = (d_var1, d_var2, d_cov, d_mean1, d_mean2)`` of ``K``:
    off-diagonal pairs through ``(|w_j|^2, w_j.w_l, b_j)``, the diagonal through ``|w_j|^2
    = var1 = var2 = cov`` and ``b_j = mean1 = mean2``."""
    sv1, sv2, sc, sm1, sm2 = grads
    m = u.size
    uu = u[:, None] * u[None, :] * (np.ones((m, m)) - np.eye(m))
    dg = np.arange(m)
    diag_q = sv1[dg, dg] + sv2[dg, dg] + sc[dg, dg]
    dw = (2.0 * np.sum(uu * sv1, axis=1) + u * u * diag_q)[:, None] * w + (uu * sc) @ w
    db = np.sum(uu * sm1, axis=1) + 0.5 * u * u * (sm1[dg, dg] + sm2[dg, dg])
    return dw, db


def population_risk(activation, u, w, b, teacher: Teacher, alpha: float = 1.0, *,
                    grad: bool = False):
    """Population risk ``R = E[(f(x) - y)^2] / 2`` of the particles ``(u_j, w_j, b_j)``,
    ``j < m`` (module docstring); with ``grad`` also ``(dR/du, dR/dw, dR/db)``.

    Parameters
    ----------
    activation : Activation
        The student's ``sigma``.
    u : (m,) array; w : (m, d) array; b : (m,) array
    teacher : Teacher
    alpha : float
        Output scale: ``alpha = 1`` mean-field, ``alpha = sqrt(m)`` lazy.
    """
    u, w, b = _student(activation, u, w, b, teacher)
    alpha = float(alpha)
    if not math.isfinite(alpha):
        raise ValueError(f"alpha must be finite, got {alpha!r}")
    m = u.size
    a = alpha / m
    t = teacher
    k_tt = _pair_kernel(t.activation, t.activation, t.weights, t.biases, t.weights, t.biases,
                        False)
    ey2 = float(t.coef @ k_tt @ t.coef) + t.noise_std**2
    if not grad:
        k_ss = _pair_kernel(activation, activation, w, b, w, b, False)
        k_st = _pair_kernel(activation, t.activation, w, b, t.weights, t.biases, False)
        return 0.5 * ey2 - a * float(u @ k_st @ t.coef) + 0.5 * a * a * float(u @ k_ss @ u)
    k_ss, ss_grads = _pair_kernel(activation, activation, w, b, w, b, True)
    k_st, (tv1, _, tc, tm1, _) = _pair_kernel(activation, t.activation, w, b, t.weights,
                                              t.biases, True)
    risk = 0.5 * ey2 - a * float(u @ k_st @ t.coef) + 0.5 * a * a * float(u @ k_ss @ u)
    du = a * a * (k_ss @ u) - a * (k_st @ t.coef)
    iw, ib = _interaction_gradients(u, w, ss_grads)
    dw = a * a * iw
    db = a * a * ib
    # potential
    uc = u[:, None] * t.coef[None, :]
    dw -= a * (2.0 * np.sum(uc * tv1, axis=1)[:, None] * w + (uc * tc) @ t.weights)
    db -= a * np.sum(uc * tm1, axis=1)
    return risk, (du, dw, db)


def monte_carlo_risk(activation, u, w, b, teacher: Teacher, alpha: float = 1.0, *,
                     n_samples: int = 1_000_000, seed=None, batch: int = 100_000):
    """``(mean, standard error)`` of ``(f(x) - y)^2 / 2`` over ``n_samples`` fresh draws of
    ``x ~ N(0, I_d)`` (and of the teacher's noise): an independent check of
    :func:`population_risk` from the pointwise activations only."""
    u, w, b = _student(activation, u, w, b, teacher)
    n_samples = int(n_samples)
    if n_samples < 2:
        raise ValueError(f"n_samples must be at least 2, got {n_samples}")
    rng = np.random.default_rng(seed)
    a = float(alpha) / u.size
    s1 = 0.0
    s2 = 0.0
    done = 0
    while done < n_samples:
        n = min(batch, n_samples - done)
        x = rng.standard_normal((n, teacher.d))
        f = a * (np.asarray(activation.fn(x @ w.T + b)) @ u)
        loss = 0.5 * (f - teacher(x, rng)) ** 2
        s1 += loss.sum()
        s2 += (loss * loss).sum()
        done += n
    mean = s1 / n_samples
    var = max(s2 / n_samples - mean * mean, 0.0) * n_samples / (n_samples - 1)
    return mean, math.sqrt(var / n_samples)


@dataclass(frozen=True)
class TwoClass:
    """The isotropic-Gaussians classification data of :func:`two_class_risk` (classes of
    scales ``1 +- delta``), as the data model of
    :func:`~analytic_ntk.meanfield.particle_flow`."""

    delta: float

    def __post_init__(self):
        d = float(self.delta)
        if not (math.isfinite(d) and 0.0 <= d < 1.0):
            raise ValueError(f"delta must lie in [0, 1), got {self.delta!r}")
        object.__setattr__(self, "delta", d)


def _scaled_pair_kernel(act, w, b, scale, grad):
    """``E[act(w_i.x + b_i) act(w_j.x + b_j)]`` for ``x ~ N(0, scale^2 I)``."""
    ws = scale * w
    return _pair_kernel(act, act, ws, b, ws, b, grad)


def two_class_risk(activation, u, w, b, delta: float, alpha: float = 1.0, *,
                   grad: bool = False):
    """Population risk of the isotropic-Gaussians classification model of Mei, Montanari
    & Nguyen (2018, section 2.1): with probability 1/2, ``y = +1`` and ``x ~ N(0, (1 +
    delta)^2 I_d)``, else ``y = -1`` and ``x ~ N(0, (1 - delta)^2 I_d)``;
    ``R = E[(y - f(x))^2] / 2`` (and ``(dR/du, dR/dw, dR/db)`` with ``grad``).

    Per class ``c`` (scale ``s_c``) the pre-activations are Gaussian with covariances
    ``s_c^2 w.w'`` and means ``b``: ``E_c[f^2]`` from the pair expectations and
    ``E_c[f] = (alpha / m) sum_j u_j E[sigma(s_c w_j.x + b_j)]`` from the expectation
    against the constant activation 1.
    """
    from ..layers import Polynomial

    delta = float(delta)
    if not (math.isfinite(delta) and 0.0 <= delta < 1.0):
        raise ValueError(f"delta must lie in [0, 1), got {delta!r}")
    u, w, b = _student(activation, u, w, b)
    m = u.size
    a = float(alpha) / m
    one = Polynomial((1.0,))
    risk = 0.5  # E[y^2] / 2; each class below with probability 1/2
    du = np.zeros(m)
    dw = np.zeros_like(w)
    db = np.zeros(m)
    for y, s in ((1.0, 1.0 + delta), (-1.0, 1.0 - delta)):
        ws = s * w
        q = np.einsum("ij,ij->i", ws, ws)
        if not grad:
            k = _scaled_pair_kernel(activation, w, b, s, False)
            e = bivariate_expectation(activation, one, q, 0.0, 0.0, b, 0.0)
            risk += 0.25 * (-2.0 * y * a * float(u @ e) + a * a * float(u @ k @ u))
            continue
        k, k_grads = _scaled_pair_kernel(activation, w, b, s, True)
        e, (ev1, _, _, em1, _) = bivariate_expectation(activation, one, q, 0.0, 0.0, b, 0.0,
                                                       grad=True)
        risk += 0.25 * (-2.0 * y * a * float(u @ e) + a * a * float(u @ k @ u))
        iw, ib = _interaction_gradients(u, ws, k_grads)
        # d/dw through ws = s w: chain factor s
        du += 0.25 * (2.0 * a * a * (k @ u) - 2.0 * y * a * e)
        dw += 0.25 * (2.0 * a * a * iw * s - 2.0 * y * a * (2.0 * u * ev1)[:, None] * ws * s)
        db += 0.25 * (2.0 * a * a * ib - 2.0 * y * a * u * em1)
    if not grad:
        return risk
    return risk, (du, dw, db)
