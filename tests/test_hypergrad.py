"""Exact hyperparameter gradients (:mod:`analytic_ntk.hypergrad`).

Reference: central finite differences (one-sided, second order, at ``bias_std = 0``, the
boundary of the domain) of the independent 30-digit reference kernels of
:mod:`analytic_ntk._reference`, with step ``h = 2^-30`` (exact float offsets): the
truncation error ``~h^2`` and the rounding error ``~10^-30 / h`` are both far below
``1e-15`` relative, so the reference derivative is good to ~1e-15 of the kernel scale.

Metric, per entry (as ``tests/test_recursion.py``):
``|d - d_ref| / max(|d_ref|, 1e-6 sqrt(K(x, x) K(x', x')))`` with ``K`` the kernel
(NNGP or NTK) whose derivative it is; required ``<= 1e-6`` (the issue's tolerance).

The inputs contain a duplicated row, an antipodal row and (with biases) a zero row; the
cross inputs ``x2`` a copy and a negation of rows of ``x1``.
"""

from __future__ import annotations

import dataclasses

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import analytic_ntk as A
from analytic_ntk._reference import reference
from analytic_ntk.hypergrad import KernelGradients, kernel_gradients

TOL = 1e-6
FLOOR = 1e-6
H = 2.0**-30
DPS = 30

_RNG = np.random.default_rng(20240611)
_BASE = _RNG.standard_normal((4, 3))
# x1: 4 random rows, a duplicate of row 1, the negation of row 2 (and a zero row, with bias)
X = np.vstack([_BASE, _BASE[1], -_BASE[2]])
XZ = np.vstack([X, np.zeros(3)])
X2 = np.vstack([_RNG.standard_normal(3), _BASE[0], -_BASE[3]])

WS = (1.3, 0.8, 1.1)
BS = (0.3, 0.5, 0.2)


# ----------------------------------------------------------------- helpers


def _net(act, depth, param="ntk", bias=True, ws=WS, bs=BS):
    """``Dense, act, Dense, ..., Dense`` with ``depth`` Dense layers (depth 1:
    ``Dense, act``)."""
    layers = []
    for k in range(depth):
        layers.append(
            A.Dense(width=5, weight_std=ws[k], bias_std=bs[k] if bias else 0.0,
                    parameterization=param)
        )
        if k < depth - 1 or depth == 1:
            layers.append(act)
    return A.serial(*layers)


def _dense_layers(net):
    return [i for i, layer in enumerate(net.layers) if isinstance(layer, A.Dense)]


def _with(net, k, which, value):
    layers = list(net.layers)
    i = _dense_layers(net)[k]
    layers[i] = dataclasses.replace(layers[i], **{which: value})
    return A.serial(*layers)


def _fd(net, x1, x2, k, which):
    """Reference derivative (2, n1, n2) of (nngp, ntk) with respect to ``which`` of the
    ``k``-th Dense layer (see the module docstring)."""
    h0 = getattr(net.layers[_dense_layers(net)[k]], which)
    pts = (h0 - H, h0 + H) if h0 > 0 else (h0, h0 + H, h0 + 2 * H)
    vals = [reference(_with(net, k, which, t), x1, x2, dps=DPS) for t in pts]
    out = np.empty((2, x1.shape[0], x2.shape[0]))
    with mpmath.workdps(DPS):
        for o, attr in enumerate(("nngp", "ntk")):
            v = [getattr(r, attr) for r in vals]
            for idx in np.ndindex(out.shape[1:]):
                if h0 > 0:
                    den = mpmath.mpf(pts[1]) - mpmath.mpf(pts[0])
                    d = (v[1][idx] - v[0][idx]) / den
                else:
                    d = (-3 * v[0][idx] + 4 * v[1][idx] - v[2][idx]) / (2 * mpmath.mpf(H))
                out[(o, *idx)] = float(d)
    return out


def _scale(net, x1, x2):
    """``sqrt(K(x, x) K(x', x'))``, the diagonals floored at 1e-12 of their largest value
    (zero rows of bias-free networks have a zero diagonal, and derivatives that are 0)."""
    k1 = net.kernel(x1, diagonal=True)
    k2 = net.kernel(x2, diagonal=True)
    out = []
    for a in ("nngp", "ntk"):
        d1, d2 = np.abs(getattr(k1, a)), np.abs(getattr(k2, a))
        top = max(d1.max(), d2.max())
        out.append(np.sqrt(np.outer(np.maximum(d1, 1e-12 * top), np.maximum(d2, 1e-12 * top))))
    return out


def _errors(net, x1, x2=X2):
    """Max scaled error of kernel_gradients against the reference, symmetric (x1, None)
    and cross (x1, x2) calls, every hyperparameter."""
    xall = np.vstack([x1, x2])
    n = x1.shape[0]
    g_sym = kernel_gradients(net, x1)
    g_x = kernel_gradients(net, x1, x2)
    scale = _scale(net, x1, xall)
    worst = 0.0
    dense = [net.layers[i] for i in _dense_layers(net)]
    for k, layer in enumerate(dense):
        for wi, which in enumerate(("weight_std", "bias_std")):
            ref = _fd(net, x1, xall, k, which)
            for o, name in enumerate(("nngp", "ntk")):
                if (o, wi) == (1, 1) and layer.parameterization == "standard" and (
                    layer.bias_std == 0.0
                ):
                    continue  # the NTK's [bias_std > 0] jumps at 0 (documented)
                got = np.concatenate(
                    [getattr(g_sym, "d_" + name)[k, wi], getattr(g_x, "d_" + name)[k, wi]],
                    axis=1,
                )
                den = np.maximum(np.abs(ref[o]), np.maximum(FLOOR * scale[o], 1e-300))
                err = np.abs(got - ref[o]) / den
                assert np.all(np.isfinite(got)), (k, which, name)
                worst = max(worst, float(err.max()))
    # the values are the library's kernels
    kk = net.kernel(x1, x2)
    assert np.array_equal(g_x.nngp, kk.nngp) and np.array_equal(g_x.ntk, kk.ntk)
    assert g_sym.d_nngp.shape == (len(dense), 2, n, n)
    return worst


# ------------------------------------------------------------ finite differences

ACTIVATIONS = [
    A.Relu(),
    A.LeakyRelu(0.2),
    A.ABRelu(-0.3, 1.5),
    A.Abs(),
    A.Sign(),
    A.RectifiedMonomial(0),
    A.RectifiedMonomial(2),
    A.RectifiedMonomial(3),
    A.Erf(),
    A.Erf(1.3, 0.7, 0.2),
    A.Sin(),
    A.Sin(1.1, 0.8, 0.4),
    A.Cos(0.9, 1.2, 0.3),
    A.Rbf(0.6),
    A.Gelu(),
    A.Monomial(2),
    A.Monomial(3),
    A.Polynomial((0.3, -1.2, 0.5, 0.25)),
    A.Exp(0.8, 0.6),
    A.Exp(1.2, -0.4),
    A.Gaussian(0.9, -0.5),
    A.Gaussian(1.1, -0.05),
    A.Identity(),
]
# (depth, parameterization, bias)
CONFIGS = [(1, "ntk", True), (2, "standard", True), (3, "ntk", True), (3, "standard", False),
           (2, "ntk", False)]
# only the first two for the second parameter set of a family (already covered in depth)
_SHORT = {"Erf(a=1.3", "Sin(a=1.1", "Exp(a=1.2", "Gaussian(a=1.1", "Sign", "Rectified"}


def _cases():
    for act in ACTIVATIONS:
        short = any(repr(act).startswith(s) for s in _SHORT)
        for cfg in CONFIGS[:3] if short else CONFIGS:
            tag = f"{cfg[0]}-{cfg[1]}-{'bias' if cfg[2] else 'nobias'}"
            yield pytest.param(act, *cfg, id=f"{act!r}-{tag}")


@pytest.mark.parametrize("act, depth, param, bias", list(_cases()))
def test_against_finite_differences(act, depth, param, bias):
    net = _net(act, depth, param, bias)
    x1 = XZ if bias else X  # zero rows only with a bias (see test_zero_rows_bias_free)
    assert _errors(net, x1) <= TOL


def test_sign_stacks_without_bias():
    """Bias-free Sign layers: depth 2 is differentiable (one-sided in the biases at 0); at
    depth 3 the antipodal pair's angle moves like ``sqrt(b)`` into the second Sign, whose
    NNGP then has an infinite one-sided derivative: ValueError, never inf/NaN."""
    assert _errors(_net(A.Sign(), 2, "ntk", False), X) <= TOL
    assert _errors(_net(A.RectifiedMonomial(0), 3, "ntk", False), X) <= TOL
    with pytest.raises(ValueError, match="not differentiable with respect to bias_std"):
        kernel_gradients(_net(A.Sign(), 3, "ntk", False), X)
    # without the antipodal pair it is differentiable
    x = np.vstack([_BASE, _BASE[1]])
    assert _errors(_net(A.Sign(), 3, "ntk", False), x, X2[:1]) <= TOL


@pytest.mark.parametrize("act", [A.Relu(), A.Abs(), A.Erf(), A.Gelu(), A.RectifiedMonomial(2),
                                 A.Cos(0.9, 1.2, 0.3)], ids=repr)
def test_zero_rows_bias_free(act):
    """Zero inputs before any bias: their sqrt(q) is |b| once a bias is on, so the kernel
    has a |b| kink at b = 0 and the right derivative (one-sided difference) is returned."""
    xz = np.vstack([X, np.zeros(3)])
    x2 = np.vstack([X2, np.zeros(3)])
    assert _errors(_net(act, 3, "ntk", False), xz, x2) <= TOL
    # a bias on the second layer only
    net = _net(act, 3, "ntk", True, bs=(0.0, 0.4, 0.0))
    assert _errors(net, xz, x2) <= TOL


def test_zero_rows_into_sign_raise():
    """A zero row that a bias at 0 turns on makes Sign's output jump: ValueError."""
    xz = np.vstack([X, np.zeros(3)])
    with pytest.raises(ValueError, match="zero-variance inputs reach a Sign layer"):
        kernel_gradients(_net(A.Sign(), 2, "ntk", False), xz)


def test_near_degenerate_pairs():
    """Near-duplicate (1e-6) and near-antipodal pairs through Dense and ReLU layers (whose
    angle tangents are propagated without cancellation) and through a smooth layer."""
    rng = np.random.default_rng(7)
    base = rng.standard_normal((3, 4))
    x = np.vstack([base, base[0] + 1e-6 * rng.standard_normal(4),
                   -base[1] + 1e-6 * rng.standard_normal(4)])
    x2 = np.vstack([base[2] * (1 + 1e-6), -base[0]])
    for acts in ((A.Relu(), A.Relu()), (A.Erf(), A.Relu()), (A.Gelu(), A.Abs())):
        net = A.serial(A.Dense(weight_std=1.3, bias_std=0.3), acts[0],
                       A.Dense(weight_std=0.8, bias_std=0.3), acts[1], A.Dense(weight_std=1.1))
        assert _errors(net, x, x2) <= TOL


def test_composite_networks():
    """Consecutive Dense layers, consecutive activations (kinked into smooth into Sign),
    Identity, standard parameterization with widths, and a bias-free deep stack."""
    nets = [
        A.serial(A.Dense(weight_std=1.2, bias_std=0.2), A.Dense(weight_std=0.9),
                 A.Relu(), A.Dense(weight_std=1.1, bias_std=0.3)),
        A.serial(A.Dense(weight_std=1.2, bias_std=0.2), A.Relu(), A.Erf(),
                 A.Dense(weight_std=1.1, bias_std=0.3)),
        A.serial(A.Dense(weight_std=1.2), A.Abs(), A.Gelu(), A.Sign(), A.Dense(weight_std=1.1)),
        A.serial(A.Dense(width=4, weight_std=1.2, bias_std=0.2, parameterization="standard"),
                 A.Identity(),
                 A.Dense(width=3, weight_std=0.7, bias_std=0.1, parameterization="standard"),
                 A.Cos(), A.Dense(weight_std=1.1, parameterization="standard")),
        A.serial(A.Dense(weight_std=1.2), A.Relu(), A.Dense(weight_std=0.8), A.Monomial(2),
                 A.Dense(weight_std=0.8), A.Relu(), A.Dense(weight_std=1.1)),
    ]
    for net in nets:
        assert _errors(net, X) <= TOL


# ------------------------------------------------------------ exact identities


def _homogeneity_degrees(net):
    """Degree of the kernels in each weight_std of a bias-free network of positively
    homogeneous activations (degree ``n`` each): ``2 n^(number of activations after)``."""
    degs = []
    for i in _dense_layers(net):
        d = 2
        for layer in net.layers[i + 1:]:
            if not isinstance(layer, A.Dense):
                d *= layer.degree if isinstance(layer, A.RectifiedMonomial) else (
                    len(layer.coef) - 1 if isinstance(layer, A.Polynomial) else 1
                )
        degs.append(d)
    return degs


@pytest.mark.parametrize("act", [A.Relu(), A.LeakyRelu(0.1), A.Abs(), A.ABRelu(-0.3, 1.5),
                                 A.RectifiedMonomial(2), A.Monomial(3), A.Identity()], ids=repr)
def test_euler_homogeneity_in_each_weight(act):
    """Bias-free, NTK parameterization: with positively homogeneous activations of degree
    n the NNGP and the NTK are homogeneous of degree ``2 n^j`` in ``weight_std`` of a Dense
    layer followed by j activations, so ``w_k dK/dw_k = deg_k K`` exactly (Euler)."""
    net = _net(act, 3, "ntk", False)
    g = kernel_gradients(net, X, X2)
    for k, deg in enumerate(_homogeneity_degrees(net)):
        w = WS[k]
        for kern, d in ((g.nngp, g.d_nngp), (g.ntk, g.d_ntk)):
            scale = np.abs(kern).max()
            np.testing.assert_allclose(w * d[k, 0], deg * kern, rtol=1e-12, atol=1e-13 * scale)


@pytest.mark.parametrize("act", [A.Relu(), A.LeakyRelu(0.3), A.Abs()], ids=repr)
def test_euler_with_biases(act):
    """ReLU-type networks with biases, NTK parameterization: scaling ``(w_1, b_1, b_2, ...)``
    by ``t`` scales NNGP and NTK by ``t^2``: ``w_1 dK/dw_1 + sum_k b_k dK/db_k = 2 K``."""
    net = _net(act, 3, "ntk", True)
    for x2 in (None, X2):
        g = kernel_gradients(net, XZ, x2)
        for kern, d in ((g.nngp, g.d_nngp), (g.ntk, g.d_ntk)):
            lhs = WS[0] * d[0, 0] + sum(BS[k] * d[k, 1] for k in range(3))
            np.testing.assert_allclose(lhs, 2 * kern, rtol=1e-12, atol=1e-13 * np.abs(kern).max())


def test_identity_network_closed_form():
    """Dense-Identity-Dense: NNGP ``w2^2 (w1^2 q + b1^2) + b2^2`` and NTK (NTK param.)
    ``2 w2^2 (w1^2 q + b1^2) + b2^2``, differentiated by hand."""
    w1, b1, w2, b2 = 1.3, 0.3, 0.8, 0.5
    net = A.serial(A.Dense(weight_std=w1, bias_std=b1), A.Identity(),
                   A.Dense(weight_std=w2, bias_std=b2))
    q = X @ X2.T / X.shape[1]
    g = kernel_gradients(net, X, X2)
    inner = w1**2 * q + b1**2
    np.testing.assert_allclose(g.d_nngp[0, 0], w2**2 * 2 * w1 * q, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(g.d_nngp[0, 1], np.full_like(q, w2**2 * 2 * b1), rtol=1e-13)
    np.testing.assert_allclose(g.d_nngp[1, 0], 2 * w2 * inner, rtol=1e-13)
    np.testing.assert_allclose(g.d_nngp[1, 1], np.full_like(q, 2 * b2), rtol=1e-13)
    np.testing.assert_allclose(g.d_ntk[0, 0], 2 * w2**2 * 2 * w1 * q, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(g.d_ntk[1, 0], 2 * 2 * w2 * inner, rtol=1e-13)


@pytest.mark.parametrize("act", [A.Relu(), A.Erf(1.3, 0.7, 0.2), A.Sign(), A.Gelu()], ids=repr)
def test_last_layer_and_parameterizations(act):
    """The NNGP (hence its derivatives) does not depend on the parameterization; for the
    last Dense layer ``dK/db = 2 b`` and ``w dK/dw = 2 (K - b^2)`` (NNGP), and in the
    standard parameterization its bias does not enter the NTK at all."""
    a = kernel_gradients(_net(act, 3, "ntk", True), XZ, X2)
    b = kernel_gradients(_net(act, 3, "standard", True), XZ, X2)
    np.testing.assert_array_equal(a.d_nngp, b.d_nngp)
    for g in (a, b):
        np.testing.assert_allclose(g.d_nngp[2, 1], 2 * BS[2], rtol=1e-14)
        np.testing.assert_allclose(WS[2] * g.d_nngp[2, 0], 2 * (g.nngp - BS[2] ** 2),
                                   rtol=1e-13, atol=1e-14)
    assert np.all(b.d_ntk[2, 1] == 0.0)


@pytest.mark.parametrize("act", [A.Relu(), A.Erf(), A.Cos(0.9, 1.2, 0.3)], ids=repr)
def test_symmetric_and_cross_calls_agree(act):
    net = _net(act, 3, "ntk", True)
    g = kernel_gradients(net, XZ)
    for d in (g.d_nngp, g.d_ntk):
        np.testing.assert_array_equal(d, np.swapaxes(d, 2, 3))
    h = kernel_gradients(net, XZ, XZ.copy())
    np.testing.assert_allclose(h.d_nngp, g.d_nngp, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h.d_ntk, g.d_ntk, rtol=1e-12, atol=1e-14)
    t = kernel_gradients(net, X2, XZ)
    np.testing.assert_allclose(np.swapaxes(t.d_ntk, 2, 3), kernel_gradients(net, XZ, X2).d_ntk,
                               rtol=1e-12, atol=1e-14)


def test_row_blocks(monkeypatch):
    """Large inputs run in blocks of rows (symmetric: only the upper triangle); the
    blocks give the same result as one pass."""
    import analytic_ntk.hypergrad as hg

    rng = np.random.default_rng(5)
    x = np.vstack([rng.standard_normal((9, 3)), XZ])
    net = _net(A.Erf(1.3, 0.7, 0.2), 3, "ntk", True)
    whole = [kernel_gradients(net, x), kernel_gradients(net, x, X2)]
    monkeypatch.setattr(hg, "_BLOCK", 20)
    parts = [kernel_gradients(net, x), kernel_gradients(net, x, X2)]
    for a, b in zip(whole, parts):
        np.testing.assert_allclose(b.d_nngp, a.d_nngp, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(b.d_ntk, a.d_ntk, rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(parts[0].d_ntk, np.swapaxes(parts[0].d_ntk, 2, 3))


@settings(max_examples=20, deadline=None, derandomize=True)
@given(
    x=st.lists(st.lists(st.floats(-3, 3, allow_subnormal=False), min_size=3, max_size=3),
               min_size=1, max_size=5),
    w=st.tuples(*[st.floats(0.2, 2.0)] * 3),
    b=st.tuples(*[st.floats(0.0, 1.0)] * 3),
)
def test_relu_euler_property(x, w, b):
    """Hypothesis (derandomized): for any inputs (zero rows, duplicates included) and
    hyperparameters, ``w_1 dK/dw_1 + sum_k b_k dK/db_k = 2 K`` for a ReLU network, and
    every derivative is finite."""
    x = np.asarray(x, dtype=np.float64)
    net = _net(A.Relu(), 3, "ntk", True, ws=w, bs=b)
    g = kernel_gradients(net, x)
    for kern, d in ((g.nngp, g.d_nngp), (g.ntk, g.d_ntk)):
        assert np.all(np.isfinite(d))
        lhs = w[0] * d[0, 0] + sum(b[k] * d[k, 1] for k in range(3))
        np.testing.assert_allclose(lhs, 2 * kern, rtol=1e-11, atol=1e-12 * np.abs(kern).max())


# ------------------------------------------------------------------- errors


def test_result_type_and_shapes():
    g = kernel_gradients(_net(A.Relu(), 2), X, X2)
    assert isinstance(g, KernelGradients)
    assert g.d_nngp.shape == g.d_ntk.shape == (2, 2, X.shape[0], X2.shape[0])
    assert g.d_nngp.dtype == np.float64


@pytest.mark.parametrize(
    "layer",
    [A.Activation("tanh(t)"), A.Relu().numerical(), A.RectifiedMonomial(7), A.Monomial(9)],
    ids=["expression", "numerical", "rectmono7", "monomial9"],
)
def test_no_closed_form_raises(layer):
    net = A.serial(A.Dense(), layer, A.Dense())
    with pytest.raises(NotImplementedError):
        kernel_gradients(net, X)


@pytest.mark.parametrize(
    "x1, x2, match",
    [
        (np.ones(3), None, "2-D"),
        (np.array([[1.0, np.nan, 0.0]]), None, "NaN"),
        (X, np.ones((2, 4)), "feature sizes"),
        (X, np.zeros((0, 3)), "empty"),
        ([["a", "b"]], None, "real array"),
    ],
)
def test_bad_inputs_raise(x1, x2, match):
    with pytest.raises(ValueError, match=match):
        kernel_gradients(_net(A.Relu(), 2), x1, x2)


def test_not_a_network_raises():
    with pytest.raises(ValueError, match="Network"):
        kernel_gradients([A.Dense(), A.Relu()], X)
