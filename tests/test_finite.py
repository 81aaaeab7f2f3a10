"""Finite-width networks (``analytic_ntk.finite``): gradients against finite differences,
the layer-wise empirical NTK against ``J J^T``, gradient descent against the explicit
update, and the Monte Carlo kernels against the analytic ones at large width."""

from __future__ import annotations

import numpy as np
import pytest

import analytic_ntk as nt
from analytic_ntk import finite

RNG = np.random.default_rng(0)
X = RNG.standard_normal((5, 3))


def _net(act, param="ntk", width=None, bias=0.3):
    return nt.serial(
        nt.Dense(width=width, weight_std=1.3, bias_std=bias, parameterization=param), act,
        nt.Dense(width=width, weight_std=1.1, bias_std=bias, parameterization=param), act,
        nt.Dense(weight_std=0.9, bias_std=bias, parameterization=param),
    )


ACTS = [nt.Relu(), nt.Erf(), nt.Gelu(), nt.Sin(1.0, 0.8, 0.3), nt.Activation("tanh(t)"),
        nt.RectifiedMonomial(2), nt.Identity()]


def _with_params(net, flat):
    """The network with its parameters replaced by the flat vector (jacobian order)."""
    ws, bs, i = [], [], 0
    for w, b, lay in zip(net.weights, net.biases, net._dense()):
        ws.append(flat[i:i + w.size].reshape(w.shape))
        i += w.size
        if finite._has_bias(lay):
            bs.append(flat[i:i + b.size])
            i += b.size
        else:
            bs.append(b)
    return finite.FiniteNetwork(net.network, net.d_in, net.widths, tuple(ws), tuple(bs))


def _flat(net):
    parts = []
    for w, b, lay in zip(net.weights, net.biases, net._dense()):
        parts.append(w.ravel())
        if finite._has_bias(lay):
            parts.append(b)
    return np.concatenate(parts)


@pytest.mark.parametrize("act", ACTS, ids=repr)
@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_jacobian_matches_finite_differences(act, param):
    """Backprop gradients of the output against central differences of the forward pass
    (4th order, h = 1e-4; kinks: inputs away from them with probability one)."""
    net = finite.init(_net(act, param, width=4), 3, 4, seed=1)
    jac = finite.jacobian(net, X)
    theta = _flat(net)
    assert jac.shape == (X.shape[0], theta.size)
    h = 1e-4
    fd = np.empty_like(jac)
    for p in range(theta.size):
        def f(s, p=p):
            t = theta.copy()
            t[p] += s * h
            return finite.apply(_with_params(net, t), X)[:, 0]

        fd[:, p] = (8 * (f(1) - f(-1)) - (f(2) - f(-2))) / (12 * h)
    np.testing.assert_allclose(jac, fd, atol=1e-8 * max(1.0, np.abs(jac).max()))


@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_layerwise_ntk_is_jacobian_product(param):
    net = finite.init(_net(nt.Erf(), param, width=7), 3, 7, seed=2)
    x2 = RNG.standard_normal((3, 3))
    j1, j2 = finite.jacobian(net, X), finite.jacobian(net, x2)
    np.testing.assert_allclose(finite.ntk(net, X), j1 @ j1.T, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(finite.ntk(net, X, x2), j1 @ j2.T, rtol=1e-12, atol=1e-14)


def test_bias_free_standard_layers_have_no_bias_parameters():
    net = nt.serial(nt.Dense(width=5, parameterization="standard"), nt.Relu(),
                    nt.Dense(parameterization="standard"))
    f = finite.init(net, 3, 5, seed=0)
    assert f.n_params == 5 * 3 + 5
    assert finite.jacobian(f, X).shape == (5, 20)


def test_gradient_descent_step_is_explicit_update():
    """One GD step moves the parameters by ``-lr J^T (f - y) / N``; the loss falls over
    training; recorded outputs match ``apply`` of the final network."""
    net = finite.init(_net(nt.Gelu(), width=6), 3, 6, n_outputs=1, seed=3)
    y = np.sin(X[:, :1])
    res = finite.train(net, X, y, learning_rate=0.5, steps=1, record=(0, 1))
    jac = finite.jacobian(net, X)
    resid = finite.apply(net, X) - y
    want = _flat(net) - 0.5 * jac.T @ resid[:, 0] / y.size
    before = _flat(net).copy()
    np.testing.assert_allclose(_flat(res.network), want, rtol=1e-12, atol=1e-14)
    long = finite.train(net, X, y, learning_rate=0.5, steps=200, record=(200,), x_test=X[:2])
    np.testing.assert_array_equal(_flat(net), before)  # the weights update in place on copies
    assert long.loss[-1] < 0.1 * long.loss[0]
    np.testing.assert_allclose(long.outputs[-1], finite.apply(long.network, X), atol=1e-14)
    np.testing.assert_allclose(long.test_outputs[-1], finite.apply(long.network, X[:2]),
                               atol=1e-14)


def test_seeds_are_reproducible():
    a = finite.init(_net(nt.Relu()), 3, 8, seed=5)
    b = finite.init(_net(nt.Relu()), 3, 8, seed=5)
    c = finite.init(_net(nt.Relu()), 3, 8, seed=6)
    assert all(np.array_equal(u, v) for u, v in zip(a.weights, b.weights))
    assert not np.array_equal(a.weights[0], c.weights[0])
    m1 = finite.empirical_ntk(_net(nt.Relu()), X, width=16, n_samples=3, seed=9)
    m2 = finite.empirical_ntk(_net(nt.Relu()), X, width=16, n_samples=3, seed=9)
    np.testing.assert_array_equal(m1.mean, m2.mean)


@pytest.mark.parametrize("act", [nt.Relu(), nt.Erf(), pytest.param(
    nt.Activation("tanh(t)"), marks=pytest.mark.slow)], ids=repr)
def test_monte_carlo_kernels_near_analytic(act):
    """At width 512 the Monte Carlo kernels agree with the analytic ones within their
    standard errors (5 sigma) plus the O(1/width) finite-width bias (8 / width of the
    kernel's scale)."""
    net = _net(act)
    k = net.kernel(X)
    scale = np.abs(np.diag(k.nngp)).max()
    mc = finite.empirical_nngp(net, X, width=512, n_samples=40, n_outputs=64, seed=0)
    assert np.all(np.abs(mc.mean - k.nngp) <= 5 * mc.stderr + 8 / 512 * scale)
    scale = np.abs(np.diag(k.ntk)).max()
    mc = finite.empirical_ntk(net, X, width=512, n_samples=20, seed=1)
    assert np.all(np.abs(mc.mean - k.ntk) <= 5 * mc.stderr + 8 / 512 * scale)


def test_bad_input():
    net = _net(nt.Relu())
    f = finite.init(net, 3, 4, seed=0)
    cases = [
        (lambda: finite.apply(f, X[:, :2]), "features"),
        (lambda: finite.apply(f, np.full((2, 3), np.nan)), "NaN"),
        (lambda: finite.init(net, 3, [4]), "hidden"),
        (lambda: finite.init(net, 3, 0), "positive"),
        (lambda: finite.init(_net(nt.Relu(), "standard", width=10), 3, 20), "declared"),
        (lambda: finite.empirical_ntk(net, X, width=4, n_samples=0), "n_samples"),
        (lambda: finite.train(f, X, np.zeros((5, 2)), learning_rate=0.1, steps=1), "outputs"),
        (lambda: finite.train(f, X, np.zeros(5), learning_rate=-1, steps=1), "learning_rate"),
        (lambda: finite.train(f, X, np.zeros(5), learning_rate=0.1, steps=1, record=(3,)),
         "record"),
        (lambda: finite.ntk(f, X, output=2), "output"),
    ]
    for fn, msg in cases:
        with pytest.raises(ValueError, match=msg):
            fn()


@pytest.mark.slow
@pytest.mark.parametrize("act", [nt.Relu(), nt.LeakyRelu(0.2), nt.Abs(), nt.Erf(), nt.Sin(),
                                 nt.Cos(), nt.Gelu(), nt.Exp(0.5, 0.3), nt.Rbf(0.5),
                                 nt.RectifiedMonomial(2), nt.Monomial(2), nt.Identity()],
                         ids=repr)
def test_monte_carlo_kernels_converge_slow(act):
    """Width 2048, more samples: the same check as above for every closed family."""
    net = _net(act)
    k = net.kernel(X)
    scale = np.abs(np.diag(k.nngp)).max()
    mc = finite.empirical_nngp(net, X, width=2048, n_samples=40, n_outputs=128, seed=0)
    assert np.all(np.abs(mc.mean - k.nngp) <= 5 * mc.stderr + 8 / 2048 * scale)
    scale = np.abs(np.diag(k.ntk)).max()
    mc = finite.empirical_ntk(net, X, width=2048, n_samples=20, seed=1)
    assert np.all(np.abs(mc.mean - k.ntk) <= 5 * mc.stderr + 8 / 2048 * scale)


@pytest.mark.slow
def test_width_10000_depth_4_memory():
    """Width 10000, depth 4, 100 inputs: the empirical NTK needs O(n width depth) memory
    besides the 3 x 10^8 weights (2.4 GB); peak RSS stays below 6 GB."""
    import resource

    net = nt.serial(*([nt.Dense(weight_std=1.4, bias_std=0.1), nt.Relu()] * 4), nt.Dense())
    x = np.random.default_rng(0).standard_normal((100, 10))
    f = finite.init(net, 10, 10_000, seed=0)
    k = finite.ntk(f, x)
    assert k.shape == (100, 100) and np.all(np.isfinite(k))
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    assert peak_gb < 6.0
