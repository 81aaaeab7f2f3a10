"""Infinite-width inference: the NNGP posterior and NTK gradient-descent predictions.

Conventions are those of neural-tangents' ``predict`` module (Novak et al. 2020), so that
results can be cross-checked:

* the loss is the mean squared error ``L = ||f(X) - Y||^2 / (2 N)``, ``N = Y.size`` (train
  points times outputs);
* continuous-time gradient flow with learning rate ``eta`` evolves the training outputs as
  ``df/dt = -(eta / N) Theta (f - Y)``, so ``t`` is measured in steps: the discrete update
  ``f <- f - (eta / N) Theta (f - Y)`` (``discrete=True``) agrees with the flow to first
  order in ``eta``;
* ``diag_reg`` adds ``diag_reg * I`` to the train-train kernel, times the mean diagonal
  ``trace(K) / n`` unless ``diag_reg_absolute_scale=True``.

Formulas.  Write ``Theta``, ``K`` for the NTK and NNGP on the training inputs,
``Theta_*``, ``K_*`` (test x train) and ``K_**`` (test x test), and
``E(t) = I - exp(-eta t Theta / N)`` (``I - (I - eta Theta / N)^t`` for discrete steps).

* NNGP posterior (exact Bayesian inference; Rasmussen & Williams 2006, eq. 2.23-2.24;
  Lee et al. 2018): ``mean = K_* K^-1 Y``, ``cov = K_** - K_* K^-1 K_*^T``.
* Linearised network trained from initial outputs ``f0`` (Lee et al. 2019, "Wide Neural
  Networks of Any Depth Evolve as Linear Models Under Gradient Descent", eq. 9-11):
  ``f_train(t) = Y + (I - E(t)) (f0_train - Y)``,
  ``f_test(t) = f0_test + Theta_* Theta^-1 E(t) (Y - f0_train)``.
* Ensemble of infinitely wide networks (random initialisation, ``f0 ~ GP(0, K)``; Lee et
  al. 2019 eq. 13-16): with ``A(t) = Theta_* Theta^-1 E(t)``,
  ``mean = A(t) Y``, ``cov = K_** + A K A^T - A K_*^T - K_* A^T``.  With ``kind="nngp"``
  (only the read-out layer trained) ``Theta`` is replaced by ``K``, and the covariance is
  ``K_** - K_* K^-1 E_2(t) K_*^T`` with ``E_2(t) = I - exp(-2 eta t K / N)``;
  ``t = None`` (infinite time) is the posterior.

All functions of ``Theta`` are taken from one symmetric eigendecomposition, so any number
of times ``t`` costs one ``O(n^3)`` factorisation; infinite time alone uses a Cholesky
factorisation.  Eigenvalues at or below ``n * eps * max|eigenvalue|`` (of the
regularised matrix) are treated as zero -- a pseudo-inverse at ``t = inf``, the exact
``t``-linear limit at finite ``t`` -- with a :class:`SingularKernelWarning`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import linalg

__all__ = [
    "Gaussian",
    "SingularKernelWarning",
    "gp_inference",
    "gradient_descent_mse",
    "gradient_descent_mse_ensemble",
    "max_learning_rate",
    "predict",
]


class SingularKernelWarning(UserWarning):
    """The train-train kernel is singular (numerically) at the requested regularisation."""


@dataclass(frozen=True)
class Gaussian:
    """Mean and covariance of predicted outputs.

    ``mean``: ``t.shape + (n_test,) + y.shape[1:]``; ``cov``: ``t.shape + (n_test,
    n_test)`` (shared by all outputs) or ``None`` when not asked for."""

    mean: np.ndarray
    cov: np.ndarray | None = None


# ------------------------------------------------------------------ validation


def _matrix(a, name, shape=None):
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise ValueError(f"{name} must be real, got dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    if shape is not None:
        for axis, (got, want) in enumerate(zip(a.shape, shape)):
            if want is not None and got != want:
                raise ValueError(
                    f"{name} has shape {a.shape}; axis {axis} must have size {want}"
                )
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _train_kernel(k, name):
    k = _matrix(k, name)
    n = k.shape[0]
    if k.shape != (n, n):
        raise ValueError(f"{name} must be square, got shape {k.shape}")
    scale = np.max(np.abs(k)) if k.size else 0.0
    if np.max(np.abs(k - k.T), initial=0.0) > 1e-10 * scale:
        raise ValueError(f"{name} is not symmetric")
    return 0.5 * (k + k.T)


def _targets(y, n):
    y = np.asarray(y)
    if y.ndim not in (1, 2):
        raise ValueError(f"y_train must be 1-D or 2-D (n_train, n_outputs), got shape {y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"y_train has {y.shape[0]} rows but the train kernel is {n} x {n}")
    y = _matrix(y.reshape(n, -1), "y_train")
    return y


def _broadcast(value, shape, name):
    try:
        return np.array(np.broadcast_to(np.asarray(value, dtype=np.float64), shape))
    except ValueError:
        raise ValueError(
            f"{name} of shape {np.shape(value)} does not broadcast to {shape}"
        ) from None


def _times(t, discrete):
    t = np.asarray(t, dtype=np.float64)
    if np.any(np.isnan(t)) or np.any(t < 0):
        raise ValueError("t must be non-negative (np.inf for infinite time), without NaN")
    if discrete and np.any(np.isfinite(t) & (t != np.round(t))):
        raise ValueError("with discrete=True, t counts steps and must be whole numbers")
    return t


def _positive(value, name):
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def _regularised(k, diag_reg, absolute):
    reg = float(diag_reg)
    if not (math.isfinite(reg) and reg >= 0):
        raise ValueError(f"diag_reg must be a non-negative finite number, got {diag_reg!r}")
    n = k.shape[0]
    if not absolute:
        reg *= np.trace(k) / n if n else 0.0
    return k + reg * np.eye(n), reg


# ------------------------------------------------------------------ factorisations


class _Eigen:
    """``K_reg = V diag(e) V^T`` with numerically-zero eigenvalues flagged."""

    def __init__(self, k, reg, name):
        e, v = linalg.eigh(k)
        top = np.max(np.abs(e)) if e.size else 0.0
        tol = k.shape[0] * np.finfo(float).eps * top
        self.zero = e <= tol
        if np.any(self.zero):
            neg = e.min()
            warnings.warn(
                f"{name} (+ diag_reg {reg:.3g}) is singular: {int(self.zero.sum())} of "
                f"{e.size} eigenvalues are <= {tol:.3g} (smallest {neg:.3g}); they are "
                "treated as zero (pseudo-inverse at t = inf). Increase diag_reg to "
                "regularise.",
                SingularKernelWarning,
                stacklevel=4,
            )
        self.e = np.where(self.zero, 0.0, e)
        self.v = v

    def solve(self, b):
        """Pseudo-inverse times ``b``."""
        inv = np.where(self.zero, 0.0, 1.0 / np.where(self.zero, 1.0, self.e))
        return self.v @ (inv[:, None] * (self.v.T @ b))

    def gain(self, t, rate, discrete):
        """``E(t) K^-1`` in the eigenbasis: ``(len(t), n)`` factors ``(1 - exp(-h t e)) / e``
        (``h = rate``; discrete: ``(1 - (1 - h e)^t) / e``), with the limit ``h t`` at
        ``e = 0`` and ``1 / e`` (pseudo-inverse: 0 at ``e = 0``) at ``t = inf``."""
        t = t.reshape(-1, 1)
        e = self.e[None, :]
        safe = np.where(self.zero, 1.0, self.e)[None, :]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if discrete:
                base = 1.0 - rate * e
                if np.any(np.abs(base) > 1.0):
                    warnings.warn(
                        "learning rate above 2 N / lambda_max: discrete gradient descent "
                        "diverges along the top eigenvectors (see max_learning_rate)",
                        RuntimeWarning,
                        stacklevel=4,
                    )
                pos = base > 0
                logb = np.log1p(-rate * np.where(pos, e, 0.0))
                decayed = np.where(pos, -np.expm1(t * logb), 1.0 - base**t)
            else:
                decayed = -np.expm1(-rate * t * e)
            g = decayed / safe
            g = np.where(self.zero, rate * t, g)
            inf = np.isinf(t) & np.ones_like(e, dtype=bool)
            g = np.where(inf, np.where(self.zero, 0.0, 1.0 / safe), g)
        return g


def _cholesky_solver(k, reg, name):
    """``K_reg^-1 b`` by Cholesky; falls back to the eigen pseudo-inverse (with a warning)
    when ``K_reg`` is not numerically positive definite."""
    try:
        c = linalg.cho_factor(k, lower=True, check_finite=False)
        d = np.abs(np.diag(c[0]))
        if d.size and d.min() ** 2 > k.shape[0] * np.finfo(float).eps * d.max() ** 2:
            return lambda b: linalg.cho_solve(c, b, check_finite=False)
    except linalg.LinAlgError:
        pass
    return _Eigen(k, reg, name).solve


# ------------------------------------------------------------------ public functions


def gp_inference(k_train_train, y_train, k_test_train, k_test_test=None, *, diag_reg=0.0,
                 diag_reg_absolute_scale=False) -> Gaussian:
    """NNGP posterior (exact Bayesian inference of an infinitely wide network).

    ``mean = K_* (K + r I)^-1 Y`` and ``cov = K_** - K_* (K + r I)^-1 K_*^T`` (Rasmussen &
    Williams 2006, eq. 2.23-2.24; Lee et al. 2018), ``r`` the regularisation (the
    observation-noise variance; see the module docstring).

    Parameters
    ----------
    k_train_train : (n, n) symmetric kernel on the training inputs.
    y_train : (n,) or (n, k) targets.
    k_test_train : (m, n) kernel between test and training inputs.
    k_test_test : (m, m) kernel on the test inputs, or None (no covariance).
    diag_reg, diag_reg_absolute_scale : regularisation (module docstring).

    Returns
    -------
    Gaussian with ``mean`` (m,) or (m, k) and ``cov`` (m, m) or None.
    """
    k = _train_kernel(k_train_train, "k_train_train")
    n = k.shape[0]
    y = _targets(y_train, n)
    ks = _matrix(k_test_train, "k_test_train", (None, n))
    kreg, reg = _regularised(k, diag_reg, diag_reg_absolute_scale)
    solve = _cholesky_solver(kreg, reg, "k_train_train")
    mean = ks @ solve(y)
    cov = None
    if k_test_test is not None:
        m = ks.shape[0]
        kss = _matrix(k_test_test, "k_test_test", (m, m))
        cov = kss - ks @ solve(ks.T)
        cov = 0.5 * (cov + cov.T)
    return Gaussian(_shape_mean(mean, np.asarray(y_train).ndim, ()), cov)


def _shape_mean(mean, y_ndim, t_shape):
    """``(len(t), m, k)`` or ``(m, k)`` -> ``t_shape + (m,) [+ (k,)]``."""
    m, k = mean.shape[-2:]
    out = mean.reshape(t_shape + (m, k))
    return out[..., 0] if y_ndim == 1 else out


def gradient_descent_mse(k_train_train, y_train, t=None, *, fx_train_0=0.0, fx_test_0=None,
                         k_test_train=None, learning_rate=1.0, diag_reg=0.0,
                         diag_reg_absolute_scale=False, discrete=False):
    """Outputs of one linearised network trained by gradient descent on the MSE loss.

    ``f_train(t) = Y + exp(-eta t Theta / N) (f0_train - Y)`` and
    ``f_test(t) = f0_test + Theta_* Theta^-1 (I - exp(-eta t Theta / N)) (Y - f0_train)``
    (Lee et al. 2019, eq. 9-11; ``N = Y.size``; ``discrete=True``: ``(I - eta Theta /
    N)^t`` after ``t`` steps).  ``k_train_train`` is the NTK (or, for read-out-only
    training, the NNGP) on the training inputs.

    Parameters
    ----------
    k_train_train : (n, n) symmetric kernel.
    y_train : (n,) or (n, k) targets.
    t : float or array of times (steps), ``np.inf`` allowed; None means infinite time.
    fx_train_0 : initial outputs on the training inputs (broadcast to ``y_train``).
    fx_test_0 : initial outputs on the test inputs (``(m,)`` or ``(m, k)``), or None for
        training-set predictions only.
    k_test_train : (m, n) kernel, required with ``fx_test_0``.
    learning_rate, diag_reg, diag_reg_absolute_scale, discrete : see the module docstring.

    Returns
    -------
    ``fx_train_t``, or ``(fx_train_t, fx_test_t)`` when ``fx_test_0`` is given, each with
    the leading shape of ``t``.
    """
    k = _train_kernel(k_train_train, "k_train_train")
    n = k.shape[0]
    y = _targets(y_train, n)
    y_ndim = np.asarray(y_train).ndim
    rate = _positive(learning_rate, "learning_rate") / y.size
    y_shape = np.asarray(y_train).shape
    f0 = _matrix(_broadcast(fx_train_0, y_shape, "fx_train_0").reshape(n, -1), "fx_train_0")
    if fx_test_0 is not None and k_test_train is None:
        raise ValueError("fx_test_0 given without k_test_train")
    ks = None
    if fx_test_0 is not None:
        ks = _matrix(k_test_train, "k_test_train", (None, n))
        m = ks.shape[0]
        ft0 = _broadcast(fx_test_0, (m,) + y_shape[1:], "fx_test_0").reshape(m, -1)
        ft0 = _matrix(ft0, "fx_test_0")
    kreg, reg = _regularised(k, diag_reg, diag_reg_absolute_scale)
    resid = y - f0
    t_arr = _times(np.inf if t is None else t, discrete)
    eig = _Eigen(kreg, reg, "k_train_train")
    g = eig.gain(t_arr.reshape(-1), rate, discrete)  # (T, n)
    proj = eig.v.T @ resid  # (n, k)
    # train: Y - exp(..) (Y - f0) = f0 + Theta E Theta^-1 resid = f0 + V (e g) V^T resid
    d_train = np.einsum("ij,tj,jk->tik", eig.v, g * eig.e[None, :], proj)
    fx_train = _shape_mean(f0[None] + d_train, y_ndim, t_arr.shape)
    if ks is None:
        return fx_train
    d_test = np.einsum("mi,ij,tj,jk->tmk", ks, eig.v, g, proj)
    fx_test = _shape_mean(ft0[None] + d_test, y_ndim, t_arr.shape)
    return fx_train, fx_test


def gradient_descent_mse_ensemble(ntk_train_train, nngp_train_train, y_train, ntk_test_train,
                                  nngp_test_train, nngp_test_test=None, t=None, *,
                                  kind="ntk", learning_rate=1.0, diag_reg=0.0,
                                  diag_reg_absolute_scale=False,
                                  discrete=False) -> Gaussian:
    """Mean and covariance of the test outputs of an ensemble of infinitely wide networks
    trained by gradient descent on the MSE loss, at times ``t`` (Lee et al. 2019, eq.
    13-16; see the module docstring for the formulas).

    Parameters
    ----------
    ntk_train_train, nngp_train_train : (n, n) kernels on the training inputs (with
        ``kind="nngp"`` the NTK arguments are ignored and may be None).
    y_train : (n,) or (n, k) targets.
    ntk_test_train, nngp_test_train : (m, n).
    nngp_test_test : (m, m) or None (no covariance).
    t : float or array of times (steps), ``np.inf`` allowed; None: infinite time (for
        ``kind="nngp"`` the Bayesian posterior, :func:`gp_inference`).
    kind : ``"ntk"`` (all layers trained) or ``"nngp"`` (read-out layer only).
    learning_rate, diag_reg, diag_reg_absolute_scale, discrete : module docstring.

    Returns
    -------
    Gaussian: ``mean`` ``t.shape + (m,) [+ (k,)]``, ``cov`` ``t.shape + (m, m)`` or None.
    """
    if kind not in ("ntk", "nngp"):
        raise ValueError(f"kind must be 'ntk' or 'nngp', got {kind!r}")
    kk = _train_kernel(nngp_train_train, "nngp_train_train")
    n = kk.shape[0]
    y = _targets(y_train, n)
    y_ndim = np.asarray(y_train).ndim
    ks = _matrix(nngp_test_train, "nngp_test_train", (None, n))
    m = ks.shape[0]
    kss = None if nngp_test_test is None else _matrix(nngp_test_test, "nngp_test_test", (m, m))
    if kind == "nngp":
        if t is None:
            return gp_inference(kk, y_train, ks, kss, diag_reg=diag_reg,
                                diag_reg_absolute_scale=diag_reg_absolute_scale)
        th, ths = kk, ks
    else:
        th = _train_kernel(ntk_train_train, "ntk_train_train")
        if th.shape != kk.shape:
            raise ValueError(f"ntk_train_train {th.shape} and nngp_train_train {kk.shape} differ")
        ths = _matrix(ntk_test_train, "ntk_test_train", (m, n))
    rate = _positive(learning_rate, "learning_rate") / y.size
    t_arr = _times(np.inf if t is None else t, discrete)
    threg, reg = _regularised(th, diag_reg, diag_reg_absolute_scale)
    eig = _Eigen(threg, reg, f"{kind}_train_train")
    g = eig.gain(t_arr.reshape(-1), rate, discrete)  # (T, n)
    a_half = ths @ eig.v  # (m, n): Theta_* V
    proj = eig.v.T @ y
    mean = np.einsum("mj,tj,jk->tmk", a_half, g, proj)
    cov = None
    if kss is not None:
        if kind == "nngp":
            g2 = eig.gain(t_arr.reshape(-1), 2.0 * rate, discrete)
            cov = kss[None] - np.einsum("mj,tj,lj->tml", a_half, g2, a_half)
        else:
            a = np.einsum("mj,tj,ij->tmi", a_half, g, eig.v)  # A(t) = Theta_* V g V^T
            aks = a @ ks.T  # A K_*^T
            cov = kss[None] + a @ kk @ np.swapaxes(a, 1, 2) - aks - np.swapaxes(aks, 1, 2)
        cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
        cov = cov.reshape(t_arr.shape + (m, m))
    return Gaussian(_shape_mean(mean, y_ndim, t_arr.shape), cov)


def max_learning_rate(ntk_train_train, y_train_size=None) -> float:
    """Largest learning rate for which discrete gradient descent on the MSE loss
    converges: ``2 N / lambda_max(Theta)`` (``N = y_train.size``, default ``n``)."""
    k = _train_kernel(ntk_train_train, "ntk_train_train")
    n = k.shape[0]
    top = linalg.eigvalsh(k, subset_by_index=[n - 1, n - 1])[-1]
    if not top > 0:
        raise ValueError("ntk_train_train has no positive eigenvalue")
    return 2.0 * (n if y_train_size is None else int(y_train_size)) / top


def predict(network, x_train, y_train, x_test, t=None, *, kind="ntk", compute_cov=False,
            learning_rate=1.0, diag_reg=0.0, diag_reg_absolute_scale=False,
            discrete=False) -> Gaussian:
    """Predictions of the infinitely wide ``network`` on ``x_test``: the NNGP posterior
    (``kind="nngp"``, ``t=None``) or the ensemble trained by gradient descent for time
    ``t`` (:func:`gradient_descent_mse_ensemble`); the kernels are computed here.

    Returns a :class:`Gaussian` (``cov`` None unless ``compute_cov``)."""
    if kind not in ("ntk", "nngp"):
        raise ValueError(f"kind must be 'ntk' or 'nngp', got {kind!r}")
    k_dd = network.kernel(x_train)
    k_td = network.kernel(x_test, x_train)
    kss = network.kernel(x_test).nngp if compute_cov else None
    return gradient_descent_mse_ensemble(
        k_dd.ntk, k_dd.nngp, y_train, k_td.ntk, k_td.nngp, kss, t, kind=kind,
        learning_rate=learning_rate, diag_reg=diag_reg,
        diag_reg_absolute_scale=diag_reg_absolute_scale, discrete=discrete,
    )
