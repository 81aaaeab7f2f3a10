"""scikit-learn adapters (``analytic_ntk.sklearn``): kernel protocol, cloning, parameters,
use in GaussianProcessRegressor / KernelRidge / SVC, and the exact theta-gradient against
finite differences."""

from __future__ import annotations

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.gaussian_process import GaussianProcessRegressor  # noqa: E402
from sklearn.gaussian_process.kernels import WhiteKernel  # noqa: E402
from sklearn.kernel_ridge import KernelRidge  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

import analytic_ntk as nt  # noqa: E402
from analytic_ntk.sklearn import NNGPKernel, NTKKernel  # noqa: E402

NET = nt.serial(nt.Dense(weight_std=1.2, bias_std=0.3), nt.Relu(), nt.Dense(weight_std=1.2,
                bias_std=0.3), nt.Erf(), nt.Dense(weight_std=1.2, bias_std=0.3))
RNG = np.random.default_rng(0)
X = RNG.standard_normal((15, 4))
Y = np.sin(X[:, 0]) + 0.3 * X[:, 1]


def _with_stds(w, b):
    layers = tuple(
        nt.Dense(weight_std=w, bias_std=b) if isinstance(layer, nt.Dense) else layer
        for layer in NET.layers
    )
    return nt.serial(*layers)


@pytest.mark.parametrize("cls,get", [(NNGPKernel, "nngp"), (NTKKernel, "ntk")])
def test_values_diag_and_overrides(cls, get):
    """``K(X, Y)``, ``diag`` and the hyperparameters overriding every Dense layer."""
    x2 = X[:4] + 0.1
    k = cls(NET)
    np.testing.assert_array_equal(k(X), getattr(NET.kernel(X), get))
    np.testing.assert_array_equal(k(X, x2), getattr(NET.kernel(X, x2), get))
    np.testing.assert_allclose(k.diag(X), np.diag(k(X)), rtol=1e-15)
    k2 = cls(NET, weight_std=0.9, bias_std=0.05)
    np.testing.assert_array_equal(k2(X), getattr(_with_stds(0.9, 0.05).kernel(X), get))
    assert not k.is_stationary() and k.requires_vector_input
    # no free hyperparameter by default: theta empty, gradient (n, n, 0)
    assert k.theta.size == 0
    val, grad = k(X, eval_gradient=True)
    assert grad.shape == (15, 15, 0)


def test_clone_get_set_params():
    k = NNGPKernel(NET, weight_std=1.1, bias_std=0.2, bias_std_bounds=(1e-3, 10.0))
    c = clone(k)
    assert c.get_params() == k.get_params()
    assert c is not k and c == k
    names = [h.name for h in k.hyperparameters]
    assert names == ["bias_std", "weight_std"]  # scikit-learn's (alphabetical) theta order
    np.testing.assert_allclose(k.theta, np.log([0.2, 1.1]))
    k3 = k.clone_with_theta(np.log([0.4, 1.3]))
    assert k3.bias_std == pytest.approx(0.4) and k3.weight_std == pytest.approx(1.3)
    k.set_params(weight_std=2.0)
    assert k.weight_std == 2.0
    s = k + WhiteKernel(0.1)
    assert s.theta.size == 3


@pytest.mark.parametrize("cls", [NNGPKernel, NTKKernel])
def test_bad_parameters(cls):
    with pytest.raises(ValueError, match="weight_std"):
        cls(NET, weight_std=-1.0)(X)
    with pytest.raises(ValueError, match="fixed"):
        cls(NET, bias_std=0.0)(X)
    cls(NET, bias_std=0.0, bias_std_bounds="fixed")(X)  # fine when fixed
    with pytest.raises(ValueError, match="network"):
        cls("relu")(X)
    with pytest.raises(ValueError, match="Y is None"):
        cls(NET, weight_std=1.0)(X, X, eval_gradient=True)


def test_estimators_run():
    """GP regression, kernel ridge and SVC on precomputed Gram matrices."""
    gp = GaussianProcessRegressor(NNGPKernel(NET) + WhiteKernel(1e-3), optimizer=None)
    gp.fit(X, Y)
    mean = gp.predict(X[:3])
    np.testing.assert_allclose(mean, Y[:3], atol=0.1)
    # the GP mean is the NNGP posterior of analytic_ntk.predict with noise as diag_reg
    post = nt.predict.gp_inference(NET.kernel(X).nngp, Y, NET.kernel(X[:3], X).nngp,
                                   diag_reg=1e-3, diag_reg_absolute_scale=True)
    np.testing.assert_allclose(mean, post.mean, rtol=1e-8, atol=1e-10)
    k = NTKKernel(NET)
    kr = KernelRidge(kernel="precomputed", alpha=1e-3).fit(k(X), Y)
    np.testing.assert_allclose(kr.predict(k(X[:3], X)), Y[:3], atol=0.1)
    labels = (Y > np.median(Y)).astype(int)
    svc = SVC(kernel="precomputed").fit(k(X), labels)
    assert (svc.predict(k(X)) == labels).mean() > 0.8


@pytest.mark.parametrize("cls", [NNGPKernel, NTKKernel])
@pytest.mark.parametrize("free", [("weight_std", "bias_std"), ("weight_std",)])
def test_theta_gradient_matches_finite_differences(cls, free):
    """``eval_gradient=True`` (exact, from hypergrad) against 4th-order central
    differences in ``theta = log(std)``: within 1e-6 relative to the largest entry."""
    params = {"weight_std": 1.3, "bias_std": 0.4}
    if "bias_std" not in free:
        params["bias_std_bounds"] = "fixed"
    k = cls(NET, **params)
    val, grad = k(X, eval_gradient=True)
    assert grad.shape == (15, 15, len(free))
    np.testing.assert_array_equal(val, k(X))
    theta = k.theta
    h = 1e-3
    for i in range(theta.size):
        def at(s, i=i):
            th = theta.copy()
            th[i] += s * h
            return k.clone_with_theta(th)(X)

        fd = (8 * (at(1) - at(-1)) - (at(2) - at(-2))) / (12 * h)
        scale = np.abs(grad[..., i]).max()
        assert np.abs(grad[..., i] - fd).max() <= 1e-6 * scale, (i, np.abs(grad[..., i] - fd).max())


def test_marginal_likelihood_fit_improves():
    """GP marginal-likelihood fitting of the weight/bias scales (L-BFGS-B with the exact
    gradient) raises the log marginal likelihood over the starting kernel."""
    kern = NNGPKernel(NET, weight_std=0.5, bias_std=1.5) + WhiteKernel(1e-2, (1e-10, 1e1))
    before = GaussianProcessRegressor(kern, optimizer=None).fit(X, Y).log_marginal_likelihood()
    gp = GaussianProcessRegressor(kern, n_restarts_optimizer=0).fit(X, Y)
    after = gp.log_marginal_likelihood_value_
    assert after > before + 1.0
    lml, grad = gp.log_marginal_likelihood(gp.kernel_.theta, eval_gradient=True)
    assert np.isclose(lml, after)
    # at an interior optimum the gradient is small relative to the LML's scale
    bounds = gp.kernel_.bounds
    interior = (gp.kernel_.theta > bounds[:, 0] + 1e-3) & (gp.kernel_.theta < bounds[:, 1] - 1e-3)
    assert np.all(np.abs(grad[interior]) < 1e-2 * max(1.0, abs(after)))
