"""Particle dynamics of two-layer networks ``f(x) = (alpha / m) sum_j u_j sigma(w_j . x +
b_j)``: population gradient flow (Euler, Heun), noisy gradient descent (mean-field
Langevin), online SGD on fresh samples, full-batch GD on a data set.

Time scaling.  Every method moves particle ``j`` (``theta_j = (u_j, w_j, b_j)``) by

    d theta_j / dt = -(m / alpha^2) dR / d theta_j  [- lambda theta_j]  [+ noise],

with ``R`` the risk ``E[(f - y)^2] / 2``.  For ``alpha = 1`` this is the mean-field
distributional dynamics ``d theta / dt = -grad Psi(theta; rho)`` of Mei, Montanari &
Nguyen (2018) (``Psi = V + int U rho``, and ``m dR / d theta_j = grad Psi(theta_j)``),
with O(1) particle velocities; for general ``alpha`` the output moves at a rate that does
not depend on ``alpha`` (``df/dt = -(1/m) sum_j <grad_j f, grad_j R> m^2 / alpha^2 =
O(1)``), so ``alpha = sqrt(m)`` is the lazy / NTK regime with parameters moving by
``O(1 / sqrt(m))`` (Chizat, Oyallon & Bach 2019, who scale the loss by ``1 / alpha^2``).
A step of size ``dt`` is a gradient-descent step with learning rate ``dt m / alpha^2`` on
``R``.

Two-timescale dynamics (Takakura & Suzuki 2024): :func:`two_timescale_flow` solves the
output layer exactly at every step of the first layer.

Noisy GD / mean-field Langevin (Mei, Montanari & Nguyen 2018, section 3; Nitanda, Wu &
Suzuki 2022; Chizat 2022): Euler-Maruyama ``theta <- theta - dt (m / alpha^2 grad R +
lambda theta) + sqrt(2 dt tau) xi``.

The population risk and its gradient come from :func:`population_risk` (exact Gaussian
expectations); online SGD and full-batch GD use sampled inputs and the pointwise
``sigma``, ``sigma'`` only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..layers import Activation, Relu
from .drift import relu_drift
from .population import Teacher, TwoClass, _student, population_risk, two_class_risk

__all__ = ["Trajectory", "optimal_output_layer", "particle_flow", "sgd",
           "two_timescale_flow"]


@dataclass(frozen=True)
class Trajectory:
    """Recorded statistics of a run.

    Attributes
    ----------
    steps : (k,) int array
        The steps at which the statistics were recorded (0 and the last included).
    risk : (k,) array
        Population risk at those steps (``nan`` where not computed).
    distance : (k,) array
        ``mean_j |theta_j - theta_j(0)|`` (Euclidean over ``(u, w, b)``).
    u, w, b : arrays
        The particles at the end.
    stats : tuple
        ``statistics(u, w, b)`` at the recorded steps, when a ``statistics`` callable
        was given (e.g. a histogram of ``|w_j|``: the particles themselves are not
        stored at every step).
    """

    steps: np.ndarray
    risk: np.ndarray
    distance: np.ndarray
    u: np.ndarray
    w: np.ndarray
    b: np.ndarray
    stats: tuple = ()


def _check_positive(name, v, allow_zero=False):
    v = float(v)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'} "
                         f"and finite, got {v!r}")
    return v


def _steps(steps, record_every):
    steps = int(steps)
    if steps < 0:
        raise ValueError(f"steps must be non-negative, got {steps}")
    record_every = int(record_every)
    if record_every < 1:
        raise ValueError(f"record_every must be positive, got {record_every}")
    rec = sorted(set(range(0, steps + 1, record_every)) | {steps})
    return steps, rec


def _progress(steps, enabled, desc):
    """An iterator over ``range(steps + 1)`` with a tqdm progress bar when ``enabled``
    (and tqdm is installed)."""
    it = range(steps + 1)
    if not enabled:
        return it
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - optional
        return it
    return tqdm(it, desc=desc, leave=False)


def _distance(u, w, b, u0, w0, b0):
    d2 = (u - u0) ** 2 + np.sum((w - w0) ** 2, axis=1) + (b - b0) ** 2
    return float(np.mean(np.sqrt(d2)))


class _Recorder:
    """The :class:`Trajectory` of a run in the making: at the recorded steps (``step in
    recorder``, a set lookup) the risk, the mean distance from the starting particles
    and ``statistics(u, w, b)``."""

    def __init__(self, steps, record_every, u, w, b, statistics=None):
        self.steps, self._rec = _steps(steps, record_every)
        self._at = set(self._rec)
        self._start = (u.copy(), w.copy(), b.copy())
        self._statistics = statistics
        self._risks, self._dists, self._stats = [], [], []

    def __contains__(self, step):
        return step in self._at

    def add(self, risk, u, w, b):
        self._risks.append(risk)
        self._dists.append(_distance(u, w, b, *self._start))
        if self._statistics is not None:
            self._stats.append(self._statistics(u, w, b))

    def trajectory(self, u, w, b):
        return Trajectory(np.asarray(self._rec), np.asarray(self._risks),
                          np.asarray(self._dists), u, w, b, tuple(self._stats))


def particle_flow(activation: Activation, u, w, b, teacher: Teacher, alpha: float = 1.0, *,
                  dt: float, steps: int, method: str = "euler", weight_decay: float = 0.0,
                  temperature: float = 0.0, record_every: int = 1, seed=None,
                  statistics=None, progress: bool = False,
                  train_biases: bool = True) -> Trajectory:
    """Population gradient flow of the particles (module docstring), Gaussian inputs.

    ``method``: ``"euler"`` (explicit) or ``"heun"`` (second order; deterministic only).
    ``temperature > 0`` adds the Langevin noise (Euler-Maruyama; ``method`` must be
    ``"euler"``), ``weight_decay`` the ``lambda theta`` term.  Each step costs one
    :func:`population_risk` with gradients (``m^2`` pair expectations).
    ``statistics(u, w, b)``: recorded at the recorded steps (``Trajectory.stats``);
    ``progress``: a progress bar (tqdm) for long runs.
    ``train_biases=False`` keeps ``b`` fixed (a bias-free first layer when ``b = 0``, as
    in the seed experiments); for a ReLU student and teacher without biases the drift is
    then the fused kernel :func:`~analytic_ntk.meanfield.relu_drift`.
    ``teacher`` may also be a :class:`~analytic_ntk.meanfield.TwoClass` data model (the
    risk and drift of :func:`~analytic_ntk.meanfield.two_class_risk`).
    """
    two_class = isinstance(teacher, TwoClass)
    if not (two_class or isinstance(teacher, Teacher)):
        raise ValueError(f"teacher must be a Teacher or a TwoClass, got {teacher!r}")
    u, w, b = (np.array(a, dtype=np.float64)
               for a in _student(activation, u, w, b, None if two_class else teacher))
    fast = (not two_class and not train_biases and isinstance(activation, Relu)
            and isinstance(teacher.activation, Relu) and not np.any(b)
            and not np.any(teacher.biases))
    dt = _check_positive("dt", dt)
    lam = _check_positive("weight_decay", weight_decay, allow_zero=True)
    tau = _check_positive("temperature", temperature, allow_zero=True)
    alpha = _check_positive("alpha", alpha)
    if method not in ("euler", "heun"):
        raise ValueError(f"method must be 'euler' or 'heun', got {method!r}")
    if method == "heun" and tau > 0:
        raise ValueError("the Langevin noise uses Euler-Maruyama: method='euler'")
    record = _Recorder(steps, record_every, u, w, b, statistics)
    steps = record.steps
    rng = np.random.default_rng(seed)
    m = u.size
    scale = m / alpha**2

    def drift(u, w, b):
        if fast:
            r, du, dw = relu_drift(u, w, teacher.weights, teacher.coef, alpha,
                                   noise_std=teacher.noise_std)
            db = np.zeros_like(b)
        elif two_class:
            r, (du, dw, db) = two_class_risk(activation, u, w, b, teacher.delta, alpha,
                                             grad=True)
        else:
            r, (du, dw, db) = population_risk(activation, u, w, b, teacher, alpha, grad=True)
        if not train_biases:
            return r, (-scale * du - lam * u, -scale * dw - lam * w, np.zeros_like(b))
        return r, (-scale * du - lam * u, -scale * dw - lam * w, -scale * db - lam * b)

    for step in _progress(steps, progress, "particle flow"):
        r, (fu, fw, fb) = drift(u, w, b)
        if step in record:
            record.add(r, u, w, b)
        if step == steps:
            break
        if method == "heun":
            u1, w1, b1 = u + dt * fu, w + dt * fw, b + dt * fb
            _, (gu, gw, gb) = drift(u1, w1, b1)
            u = u + 0.5 * dt * (fu + gu)
            w = w + 0.5 * dt * (fw + gw)
            b = b + 0.5 * dt * (fb + gb)
        else:
            u, w, b = u + dt * fu, w + dt * fw, b + dt * fb
            if tau > 0:
                sd = math.sqrt(2.0 * dt * tau)
                u = u + sd * rng.standard_normal(u.shape)
                w = w + sd * rng.standard_normal(w.shape)
                if train_biases:
                    b = b + sd * rng.standard_normal(b.shape)
    return record.trajectory(u, w, b)


def optimal_output_layer(activation, w, b, teacher: Teacher, alpha: float = 1.0,
                         ridge: float = 0.0):
    """The output weights minimising ``R + (ridge / 2) |u|^2`` for fixed ``(w, b)``:
    ``u* = (a^2 K + ridge I)^(-1) a e`` with ``a = alpha / m``, ``K_jl = E[sigma_j
    sigma_l]`` and ``e_j = E[y sigma_j]`` (exact Gaussian expectations)."""
    from .population import _pair_kernel

    w = np.asarray(w, dtype=np.float64)
    m = w.shape[0] if w.ndim == 2 else 0
    _, w, b = _student(activation, np.zeros(m), w, b, teacher)
    ridge = _check_positive("ridge", ridge, allow_zero=True)
    a = float(alpha) / m
    k = _pair_kernel(activation, activation, w, b, w, b, False)
    e = _pair_kernel(activation, teacher.activation, w, b, teacher.weights, teacher.biases,
                     False) @ teacher.coef
    mat = a * a * k + ridge * np.eye(m)
    try:
        return np.linalg.solve(mat, a * e)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(mat, a * e, rcond=None)[0]


def two_timescale_flow(activation: Activation, w, b, teacher: Teacher, alpha: float = 1.0, *,
                       dt: float, steps: int, ridge: float = 1e-6, record_every: int = 1,
                       statistics=None, progress: bool = False) -> Trajectory:
    """The two-timescale limit (Takakura & Suzuki 2024; Marion & Berthier 2023): the
    output layer is solved exactly (:func:`optimal_output_layer`, ridge ``ridge``) at
    every step and the first layer follows the population gradient flow of ``R(u*(w, b),
    w, b)`` (by the envelope theorem its gradient in ``(w, b)`` is the partial gradient
    at ``u = u*``), explicit Euler, time scaling of the module docstring."""
    dt = _check_positive("dt", dt)
    alpha = _check_positive("alpha", alpha)
    w = np.array(w, dtype=np.float64)
    b = np.array(b, dtype=np.float64)
    steps, _ = _steps(steps, record_every)
    m = w.shape[0]
    scale = m / alpha**2
    u = optimal_output_layer(activation, w, b, teacher, alpha, ridge)
    record = _Recorder(steps, record_every, u, w, b, statistics)
    for step in _progress(steps, progress, "two-timescale flow"):
        if step > 0:
            u = optimal_output_layer(activation, w, b, teacher, alpha, ridge)
        r, (_, dw, db) = population_risk(activation, u, w, b, teacher, alpha, grad=True)
        if step in record:
            record.add(r, u, w, b)
        if step == steps:
            break
        w = w - dt * scale * dw
        b = b - dt * scale * db
    return record.trajectory(u, w, b)


def _sample_gradients(activation, u, w, b, x, y, alpha):
    """Gradients of the empirical risk ``mean((f - y)^2) / 2`` over the batch."""
    m = u.size
    a = alpha / m
    z = x @ w.T + b
    h = np.asarray(activation.fn(z))
    dh = np.asarray(activation.deriv(z))
    resid = a * (h @ u) - y
    n = y.size
    du = a * (h.T @ resid) / n
    g = (resid[:, None] * dh) * (a * u)[None, :] / n  # d/dz_j per sample
    return 0.5 * float(np.mean(resid**2)), du, g.T @ x, g.sum(axis=0)


def sgd(activation: Activation, u, w, b, teacher: Teacher, alpha: float = 1.0, *, dt: float,
        steps: int, batch_size: int = 1, data=None, record_every: int = 1,
        population: bool = True, seed=None) -> Trajectory:
    """Online SGD on fresh Gaussian samples from ``teacher`` (``data=None``), or
    full-batch gradient descent on a fixed data set ``data = (x, y)``
    (``batch_size`` ignored), with the time scaling of the module docstring.

    ``population``: record the population risk (:func:`population_risk`) at the
    recorded steps; otherwise ``risk`` is ``nan``.
    """
    u, w, b = (np.array(a, dtype=np.float64) for a in _student(activation, u, w, b, teacher))
    dt = _check_positive("dt", dt)
    alpha = _check_positive("alpha", alpha)
    record = _Recorder(steps, record_every, u, w, b)
    steps = record.steps
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if data is not None:
        x, y = (np.asarray(v, dtype=np.float64) for v in data)
        if x.ndim != 2 or x.shape[1] != teacher.d or y.shape != (x.shape[0],):
            raise ValueError(f"data must be x (n, {teacher.d}) and y (n,), got {x.shape}, "
                             f"{y.shape}")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise ValueError("data contains NaN or inf")
    rng = np.random.default_rng(seed)
    scale = u.size / alpha**2
    for step in range(steps + 1):
        if step in record:
            record.add(population_risk(activation, u, w, b, teacher, alpha)
                       if population else math.nan, u, w, b)
        if step == steps:
            break
        if data is None:
            xb = rng.standard_normal((batch_size, teacher.d))
            yb = teacher(xb, rng)
        else:
            xb, yb = x, y
        _, du, dw, db = _sample_gradients(activation, u, w, b, xb, yb, alpha)
        u, w, b = u - dt * scale * du, w - dt * scale * dw, b - dt * scale * db
    return record.trajectory(u, w, b)
