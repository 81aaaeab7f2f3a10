"""NNGP posterior and NTK gradient-descent predictions (``analytic_ntk.predict``).

Independent references: the linear ODEs of gradient flow integrated numerically
(``scipy.integrate.solve_ivp``), the discrete update iterated step by step, and kernel
regression / the GP posterior by dense linear solves.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import analytic_ntk as nt
from analytic_ntk.predict import (
    SingularKernelWarning,
    gp_inference,
    gradient_descent_mse,
    gradient_descent_mse_ensemble,
    max_learning_rate,
)

NET = nt.serial(nt.Dense(weight_std=1.3, bias_std=0.2), nt.Erf(), nt.Dense(weight_std=1.1),
                nt.Relu(), nt.Dense())


def _data(n=12, m=5, d=3, k=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    xt = rng.standard_normal((m, d))
    y = np.stack([np.sin(x[:, 0] + j * x[:, 1]) for j in range(k)], axis=1)
    kd = NET.kernel(x)
    ktd = NET.kernel(xt, x)
    ktt = NET.kernel(xt)
    return dict(x=x, xt=xt, y=y, kd=kd, ktd=ktd, ktt=ktt)


D = _data()
TIMES = np.array([0.0, 0.3, 2.0, 15.0, 120.0])


def _ode_ensemble(theta, theta_s, kjoint, y, lr, times):
    """Mean and covariance of the test outputs by integrating the gradient-flow ODE for
    the affine map ``f(t) = M(t) f0 + b(t)`` (``f0 ~ N(0, kjoint)`` on train + test)."""
    n, m = theta.shape[0], theta_s.shape[0]
    k = y.shape[1]
    h = lr / y.size

    def rhs(_, z):
        mt = z[: n * (n + m)].reshape(n, n + m)
        bt = z[n * (n + m) + m * (n + m):][: n * k].reshape(n, k)
        d_mt = -h * theta @ mt
        d_ms = -h * theta_s @ mt
        d_bt = -h * theta @ (bt - y)
        d_bs = -h * theta_s @ (bt - y)
        return np.concatenate([d_mt.ravel(), d_ms.ravel(), d_bt.ravel(), d_bs.ravel()])

    m0 = np.eye(n + m)
    z0 = np.concatenate([m0[:n].ravel(), m0[n:].ravel(), np.zeros(n * k), np.zeros(m * k)])
    sol = solve_ivp(rhs, (0, times.max()), z0, t_eval=times, rtol=1e-11, atol=1e-13,
                    method="DOP853")
    means, covs = [], []
    for z in sol.y.T:
        ms = z[n * (n + m): n * (n + m) + m * (n + m)].reshape(m, n + m)
        bs = z[n * (n + m) + m * (n + m) + n * k:].reshape(m, k)
        means.append(bs)
        covs.append(ms @ kjoint @ ms.T)
    return np.array(means), np.array(covs)


def _joint(d):
    """NNGP on train + test, from the three blocks."""
    return np.block([[d["kd"].nngp, d["ktd"].nngp.T], [d["ktd"].nngp, d["ktt"].nngp]])


@pytest.mark.parametrize("kind", ["ntk", "nngp"])
@pytest.mark.parametrize("lr", [1.0, 3.0])
def test_ensemble_matches_ode(kind, lr):
    """Ensemble mean and covariance at several t against the integrated ODE."""
    theta = D["kd"].ntk if kind == "ntk" else D["kd"].nngp
    theta_s = D["ktd"].ntk if kind == "ntk" else D["ktd"].nngp
    ref_mean, ref_cov = _ode_ensemble(theta, theta_s, _joint(D), D["y"], lr, TIMES)
    g = gradient_descent_mse_ensemble(
        D["kd"].ntk, D["kd"].nngp, D["y"], D["ktd"].ntk, D["ktd"].nngp, D["ktt"].nngp, TIMES,
        kind=kind, learning_rate=lr,
    )
    assert g.mean.shape == (len(TIMES), 5, 2) and g.cov.shape == (len(TIMES), 5, 5)
    scale = np.abs(D["ktt"].nngp).max()
    np.testing.assert_allclose(g.mean, ref_mean, atol=1e-8 * np.abs(D["y"]).max())
    np.testing.assert_allclose(g.cov, ref_cov, atol=1e-8 * scale)


def test_linearised_network_matches_ode():
    """One network from given initial outputs: train and test outputs against the ODE."""
    rng = np.random.default_rng(3)
    f0 = rng.standard_normal(D["y"].shape)
    ft0 = rng.standard_normal((5, 2))
    theta, theta_s, y = D["kd"].ntk, D["ktd"].ntk, D["y"]
    h = 2.0 / y.size

    def rhs(_, z):
        ftr = z[: y.size].reshape(y.shape)
        return np.concatenate([(-h * theta @ (ftr - y)).ravel(),
                               (-h * theta_s @ (ftr - y)).ravel()])

    sol = solve_ivp(rhs, (0, TIMES.max()), np.concatenate([f0.ravel(), ft0.ravel()]),
                    t_eval=TIMES, rtol=1e-11, atol=1e-13, method="DOP853")
    ftr, fte = gradient_descent_mse(theta, y, TIMES, fx_train_0=f0, fx_test_0=ft0,
                                    k_test_train=theta_s, learning_rate=2.0)
    np.testing.assert_allclose(ftr, sol.y[: y.size].T.reshape(-1, *y.shape), atol=1e-8)
    np.testing.assert_allclose(fte, sol.y[y.size:].T.reshape(-1, 5, 2), atol=1e-8)


def test_infinite_time_is_kernel_regression():
    """t = inf (and t = None): NTK regression ``Theta_* Theta^-1 Y``; the NNGP kind at
    t = None is the GP posterior ``K_* K^-1 Y``, ``K_** - K_* K^-1 K_*^T``."""
    kd, ktd, ktt, y = D["kd"], D["ktd"], D["ktt"], D["y"]
    want = ktd.ntk @ np.linalg.solve(kd.ntk, y)
    for t in (None, np.inf):
        g = gradient_descent_mse_ensemble(kd.ntk, kd.nngp, y, ktd.ntk, ktd.nngp, None, t)
        np.testing.assert_allclose(g.mean, want, rtol=1e-9, atol=1e-10)
    post = gp_inference(kd.nngp, y, ktd.nngp, ktt.nngp)
    np.testing.assert_allclose(post.mean, ktd.nngp @ np.linalg.solve(kd.nngp, y), atol=1e-10)
    np.testing.assert_allclose(
        post.cov, ktt.nngp - ktd.nngp @ np.linalg.solve(kd.nngp, ktd.nngp.T), atol=1e-10
    )
    g = gradient_descent_mse_ensemble(None, kd.nngp, y, None, ktd.nngp, ktt.nngp, None,
                                      kind="nngp")
    np.testing.assert_allclose(g.mean, post.mean, atol=1e-12)
    # late finite time converges to the same
    g = gradient_descent_mse_ensemble(None, kd.nngp, y, None, ktd.nngp, ktt.nngp, 1e12,
                                      kind="nngp")
    np.testing.assert_allclose(g.mean, post.mean, atol=1e-8)
    np.testing.assert_allclose(g.cov, post.cov, atol=1e-8)


@pytest.mark.parametrize("lr_frac", [0.3, 0.7, 0.9])
def test_discrete_steps_match_iteration(lr_frac):
    """``discrete=True``: exactly the iterated update ``f <- f - (eta/N) Theta (f - Y)``
    (``lr_frac`` of the largest stable rate ``2 N / lambda_max``; above one half the top
    modes oscillate while they converge)."""
    theta, theta_s, y = D["kd"].ntk, D["ktd"].ntk, D["y"]
    lr = lr_frac * max_learning_rate(theta, y.size)
    h = lr / y.size
    ftr = np.zeros_like(y)
    fte = np.zeros((5, 2))
    steps = [0, 1, 7, 40]
    want_tr, want_te = {}, {}
    for s in range(max(steps) + 1):
        if s in steps:
            want_tr[s], want_te[s] = ftr.copy(), fte.copy()
        r = ftr - y
        ftr, fte = ftr - h * theta @ r, fte - h * theta_s @ r
    got_tr, got_te = gradient_descent_mse(theta, y, steps, fx_train_0=0.0, fx_test_0=0.0,
                                          k_test_train=theta_s, learning_rate=lr,
                                          discrete=True)
    for i, s in enumerate(steps):
        np.testing.assert_allclose(got_tr[i], want_tr[s], atol=1e-9)
        np.testing.assert_allclose(got_te[i], want_te[s], atol=1e-9)


def test_diverging_learning_rate_warns():
    theta, y = D["kd"].ntk, D["y"]
    lr = 1.05 * max_learning_rate(theta, y.size)
    with pytest.warns(RuntimeWarning, match="diverges"):
        gradient_descent_mse(theta, y, 3, learning_rate=lr, discrete=True)


@pytest.mark.parametrize("kind", ["ntk", "nngp"])
def test_covariance_is_psd(kind):
    t = np.array([0.0, 0.5, 5.0, 50.0, np.inf])
    g = gradient_descent_mse_ensemble(
        D["kd"].ntk, D["kd"].nngp, D["y"], D["ktd"].ntk, D["ktd"].nngp, D["ktt"].nngp, t,
        kind=kind,
    )
    scale = np.abs(D["ktt"].nngp).max()
    for c in g.cov:
        np.testing.assert_allclose(c, c.T)
        assert np.linalg.eigvalsh(c).min() >= -1e-10 * scale
    np.testing.assert_allclose(g.cov[0], D["ktt"].nngp, atol=1e-12)  # prior at t = 0


def test_singular_train_kernel_warns_and_regularisation():
    """A duplicated training input makes the kernel singular: a warning at diag_reg = 0,
    none with a regulariser; relative diag_reg is diag_reg * trace / n."""
    x = np.vstack([D["x"], D["x"][:1]])
    y = np.vstack([D["y"], D["y"][:1]])
    k = NET.kernel(x)
    ks = NET.kernel(D["xt"], x)
    with pytest.warns(SingularKernelWarning, match="singular"):
        g0 = gradient_descent_mse_ensemble(k.ntk, k.nngp, y, ks.ntk, ks.nngp, None, np.inf)
    with pytest.warns(SingularKernelWarning):
        gp_inference(k.nngp, y, ks.nngp)
    # the pseudo-inverse solution equals the fit without the duplicate
    np.testing.assert_allclose(
        g0.mean, D["ktd"].ntk @ np.linalg.solve(D["kd"].ntk, D["y"]), atol=1e-6
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rel = gp_inference(k.nngp, y, ks.nngp, diag_reg=1e-3)
        ab = gp_inference(k.nngp, y, ks.nngp, diag_reg=1e-3 * np.trace(k.nngp) / len(x),
                          diag_reg_absolute_scale=True)
    np.testing.assert_allclose(rel.mean, ab.mean, rtol=1e-12)
    lam = 1e-3 * np.trace(k.nngp) / len(x)
    np.testing.assert_allclose(
        rel.mean, ks.nngp @ np.linalg.solve(k.nngp + lam * np.eye(len(x)), y), rtol=1e-9
    )


def test_multi_output_is_columnwise_and_1d_targets():
    kd, ktd, y = D["kd"], D["ktd"], D["y"]
    both = gradient_descent_mse_ensemble(kd.ntk, kd.nngp, y, ktd.ntk, ktd.nngp, None, 4.0)
    for j in range(2):
        one = gradient_descent_mse_ensemble(kd.ntk, kd.nngp, y[:, j], ktd.ntk, ktd.nngp, None,
                                            4.0, learning_rate=0.5)
        # the rate is eta / N with N = y.size: 0.5 / 12 on one column = 1 / 24 on two
        assert one.mean.shape == (5,)
        np.testing.assert_allclose(one.mean, both.mean[:, j], atol=1e-12)


def test_network_predict_matches_pipeline():
    g = NET.predict(D["x"], D["y"], D["xt"], t=[1.0, np.inf], compute_cov=True)
    ref = gradient_descent_mse_ensemble(D["kd"].ntk, D["kd"].nngp, D["y"], D["ktd"].ntk,
                                        D["ktd"].nngp, D["ktt"].nngp, [1.0, np.inf])
    np.testing.assert_allclose(g.mean, ref.mean, atol=1e-12)
    np.testing.assert_allclose(g.cov, ref.cov, atol=1e-12)
    post = NET.predict(D["x"], D["y"], D["xt"], kind="nngp", diag_reg=1e-4)
    assert post.cov is None
    ref = gp_inference(D["kd"].nngp, D["y"], D["ktd"].nngp, diag_reg=1e-4)
    np.testing.assert_allclose(post.mean, ref.mean, atol=1e-12)


def test_bad_input():
    kd, ktd, y = D["kd"], D["ktd"], D["y"]
    cases = [
        (lambda: gp_inference(kd.nngp[:, :-1], y, ktd.nngp), "square"),
        (lambda: gp_inference(kd.nngp, y[:-1], ktd.nngp), "rows"),
        (lambda: gp_inference(kd.nngp, y, ktd.nngp[:, :-1]), "axis 1"),
        (lambda: gp_inference(kd.nngp + np.triu(np.ones_like(kd.nngp), 1), y, ktd.nngp),
         "symmetric"),
        (lambda: gp_inference(np.where(np.eye(12) > 0, np.nan, kd.nngp), y, ktd.nngp), "NaN"),
        (lambda: gp_inference(kd.nngp, y, ktd.nngp, diag_reg=-1.0), "diag_reg"),
        (lambda: gradient_descent_mse(kd.ntk, y, -1.0), "non-negative"),
        (lambda: gradient_descent_mse(kd.ntk, y, 1.5, discrete=True), "whole"),
        (lambda: gradient_descent_mse(kd.ntk, y, 1.0, learning_rate=0.0), "learning_rate"),
        (lambda: gradient_descent_mse(kd.ntk, y, 1.0, fx_test_0=0.0), "k_test_train"),
        (lambda: gradient_descent_mse(kd.ntk, y, 1.0, fx_train_0=np.zeros(5)), "broadcast"),
        (lambda: gradient_descent_mse_ensemble(kd.ntk, kd.nngp, y, ktd.ntk, ktd.nngp,
                                               kind="gp"), "kind"),
        (lambda: NET.predict(D["x"], y, D["xt"][:, :2]), "feature"),
    ]
    for fn, msg in cases:
        with pytest.raises(ValueError, match=msg):
            fn()
