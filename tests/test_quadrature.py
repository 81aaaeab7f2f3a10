"""Generic activations (analytic_ntk.quadrature): numerical duals against closed forms,
Price's theorem, the series against direct quadrature, and input validation.

Activations here are given as numba-compilable functions (``Activation(fn,
derivative=...)``), so that these tests do not depend on the SymPy front end; each one
compiles the quadrature kernels once (a few seconds)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import analytic_ntk as nt
from analytic_ntk import quadrature
from analytic_ntk.duals import evaluate


def _erf(t):
    return math.erf(t)


def _derf(t):
    return 2.0 / math.sqrt(math.pi) * math.exp(-t * t)


def _relu(t):
    return t if t > 0.0 else 0.0


def _drelu(t):
    return 1.0 if t > 0.0 else 0.0


def _abs(t):
    return abs(t)


def _dabs(t):
    return 1.0 if t > 0.0 else -1.0


def _step(t):
    return 1.0 if t > 0.0 else 0.0


def _dstep(t):
    return 0.0


def _tanh(t):
    return math.tanh(t)


def _dtanh(t):
    return 1.0 - math.tanh(t) ** 2


def _softplus(t):
    return t + math.log1p(math.exp(-t)) if t > 0.0 else math.log1p(math.exp(t))


def _dsoftplus(t):
    return 1.0 / (1.0 + math.exp(-t))


_CACHE = {}


def generic(fn, dfn, kinks=()):
    key = (fn, dfn)
    if key not in _CACHE:
        _CACHE[key] = nt.Activation(fn, derivative=dfn, kinks=kinks)
    return _CACHE[key]


# (generic activation, equal closed form, tolerance): 1e-10 smooth, 1e-8 kinked targets
CASES = {
    "erf": ((_erf, _derf, ()), nt.Erf(), 1e-10),
    "relu": ((_relu, _drelu, (0.0,)), nt.Relu(), 1e-8),
    "abs": ((_abs, _dabs, (0.0,)), nt.Abs(), 1e-8),
    "step": ((_step, _dstep, (0.0,)), nt.RectifiedMonomial(0), 1e-8),
}


def hard_inputs(seed=0, d=6):
    """Near-duplicates (relative offsets 1e-12 ... 1e-3, in direction and in norm), an
    exact duplicate, antipodal and near-antipodal pairs, a zero vector, random rows."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((16, d))
    x[1] = x[0] * (1 + 1e-9)
    x[2] = x[0] + 1e-12 * rng.standard_normal(d)
    x[3] = x[0] + 1e-6 * rng.standard_normal(d)
    x[4] = x[0] + 1e-3 * rng.standard_normal(d)
    x[5] = x[0]
    x[6] = -x[0]
    x[7] = -x[0] * (1 + 1e-7) + 1e-9 * rng.standard_normal(d)
    x[8] = 0.0
    return x


def _scaled(a, ref, floor=1e-6):
    """``|a - ref| / max(|ref|, floor sqrt(ref_ii ref_jj))`` (diagonal scale floor)."""
    d = np.sqrt(np.abs(np.diag(ref)))
    den = np.maximum(np.abs(ref), floor * np.outer(d, d))
    den[den == 0] = 1.0
    return np.abs(a - ref) / den


def _nets(act, depth, bias):
    layers = [nt.Dense(weight_std=1.4, bias_std=bias)]
    for _ in range(depth):
        layers += [act, nt.Dense(weight_std=1.4, bias_std=bias)]
    return nt.serial(*layers)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("depth,bias", [(1, 0.0), (2, 0.3), (3, 0.1)])
def test_generic_matches_closed_form(name, depth, bias):
    (fn, dfn, kinks), closed, tol = CASES[name]
    act = generic(fn, dfn, kinks)
    x = hard_inputs()
    kg = _nets(act, depth, bias).kernel(x)
    kc = _nets(closed, depth, bias).kernel(x)
    for field in ("nngp", "ntk"):
        err = _scaled(getattr(kg, field), getattr(kc, field))
        assert err.max() < tol, (field, err.max(), np.unravel_index(err.argmax(), err.shape))
    np.testing.assert_allclose(kg.cov1, kc.cov1, rtol=tol)
    assert np.all(np.isfinite(kg.nngp)) and np.all(np.isfinite(kg.ntk))


def test_generic_nonsymmetric_and_diagonal():
    act = generic(_tanh, _dtanh)
    net = _nets(act, 2, 0.2)
    x = hard_inputs(seed=1)
    full = net.kernel(x)
    part = net.kernel(x[:7], x[5:])
    np.testing.assert_allclose(part.nngp, full.nngp[:7, 5:], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(part.ntk, full.ntk[:7, 5:], rtol=1e-12, atol=1e-15)
    diag = net.kernel(x, diagonal=True)
    np.testing.assert_allclose(diag.ntk, np.diag(full.ntk), rtol=1e-14)
    np.testing.assert_array_equal(full.nngp, full.nngp.T)


@pytest.mark.parametrize("fns", [(_tanh, _dtanh), (_softplus, _dsoftplus), (_relu, _drelu)])
def test_price_theorem(fns):
    """dF/dq12 by central differences equals the NTK factor E[phi'(u) phi'(v)]."""
    fn, dfn = fns
    act = generic(fn, dfn, (0.0,) if fn is _relu else ())
    rng = np.random.default_rng(3)
    q1 = rng.uniform(0.3, 3.0, 6)
    q2 = rng.uniform(0.3, 3.0, 6)
    q12 = rng.uniform(-0.9, 0.9, 6) * np.sqrt(q1 * q2)
    h = 1e-5 * np.sqrt(q1 * q2)
    fp, _ = evaluate(act, q1, q2, q12 + h)
    fm, _ = evaluate(act, q1, q2, q12 - h)
    _, g = evaluate(act, q1, q2, q12)
    np.testing.assert_allclose((fp - fm) / (2 * h), g, rtol=1e-7)


@pytest.mark.parametrize("c", [0.3, 0.8, -0.6, 0.97])
def test_series_agrees_with_direct_quadrature(c):
    """For tanh the Mehler series and the direct quadrature (two independent methods)
    agree where both apply."""
    act = generic(_tanh, _dtanh)
    r1, r2 = 0.9, 1.3
    gl = act._generic_layer(np.array([r1]), np.array([r2]))
    assert quadrature.series_ok(c, gl.k, gl.rows.lt[0], gl.cols.lt[0])
    s = math.sqrt(1 - c * c)
    pw = c ** np.arange(gl.k)
    f_series = np.sum(gl.rows.a[0] * gl.cols.a[0] * pw)
    g_series = np.sum(gl.rows.b[0] * gl.cols.b[0] * pw)
    vals = gl.direct(np.zeros(1, np.int64), np.zeros(1, np.int64), np.array([r1]),
                     np.array([r2]), np.array([[c]]), np.array([[s]]))
    assert abs(vals[0, 0] - f_series) < 1e-12 * math.sqrt(gl.rows.F[0] * gl.cols.F[0])
    assert abs(vals[0, 1] - g_series) < 1e-12 * math.sqrt(gl.rows.G[0] * gl.cols.G[0])
    pn = math.sqrt(gl.rows.F[0] * gl.cols.F[0])
    assert vals[0, 2] == pytest.approx(pn - vals[0, 0], rel=1e-10, abs=1e-15)


def test_hermite_coefficients_of_erf():
    """a_k of erf(r z): a_1 = sqrt(2/pi) * 2 r / sqrt(1 + 2 r^2) (from E[z erf(r z)]),
    even coefficients zero, and sum a_k^2 = F(r)."""
    act = generic(_erf, _derf)
    r = np.array([0.7])
    gl = act._generic_layer(r)
    a = gl.rows.a[0]
    a1 = 2.0 * r[0] / math.sqrt(math.pi) / math.sqrt(1.0 + 2.0 * r[0] ** 2)
    assert a[1] == pytest.approx(a1, rel=1e-14)
    assert np.max(np.abs(a[0::2])) < 1e-16
    f_closed = 2.0 / math.pi * math.asin(2.0 * r[0] ** 2 / (1.0 + 2.0 * r[0] ** 2))
    assert np.sum(a * a) == pytest.approx(f_closed, rel=1e-14)
    assert gl.rows.F[0] == pytest.approx(f_closed, rel=1e-14)


def test_function_activation_errors():
    with pytest.raises(ValueError, match="derivative"):
        nt.Activation(_tanh)
    with pytest.raises(ValueError, match="does not match"):
        nt.Activation(_tanh, derivative=_derf)
    with pytest.raises(ValueError, match="derivative= and kinks= go with a function"):
        nt.Activation("tanh(t)", derivative=_dtanh)


# ------------------------------------------------ closed families through the numerics

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from analytic_ntk.testing import activations, hard_pairs  # noqa: E402

_SMOOTH_FAMILIES = ("erf", "sin", "cos", "gelu", "polynomial")
_KINKED_FAMILIES = ("abrelu", "rectified_monomial")


_NUMERICAL_STRATEGY = dict(
    act=activations(_SMOOTH_FAMILIES + _KINKED_FAMILIES),
    pair=hard_pairs(d=4),
    bias=st.sampled_from([0.0, 0.2]),
)


@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(**_NUMERICAL_STRATEGY)
def test_numerical_path_matches_closed_forms(act, pair, bias):
    """Random activations of the closed families, evaluated by the generic numerical path
    (``layer.numerical()``: generated pointwise functions, Mehler series and quadrature),
    agree with their closed forms on hard pairs: 1e-10 (smooth), 1e-8 (kinked).  (Every
    new activation compiles its own numba code: 10 examples here, more in the slow run.)"""
    _check_numerical_path(act, pair, bias)


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**_NUMERICAL_STRATEGY)
def test_numerical_path_matches_closed_forms_many(act, pair, bias):
    """The same check on 80 random (not derandomized) examples."""
    _check_numerical_path(act, pair, bias)


def _check_numerical_path(act, pair, bias):
    num = act.numerical()
    x = np.stack(pair)
    kc = _nets(act, 2, bias).kernel(x)
    kn = _nets(num, 2, bias).kernel(x)
    tol = 1e-8 if num.kinks else 1e-10
    for field in ("nngp", "ntk"):
        err = _scaled(getattr(kn, field), getattr(kc, field))
        assert err.max() < tol, (field, err.max())


def test_expression_front_end():
    """Closed forms are recognised before the moment check; errors name the problem."""
    assert nt.Activation("exp(-0.5*t**2)") == nt.Gaussian(1.0, -0.5)
    assert nt.Activation("2*erf(3*x)") == nt.Erf(2.0, 3.0, 0.0)
    assert isinstance(nt.Activation("tanh(t)"), nt.layers.GenericActivation)
    bad_cases = (("exp(t**2)", "moments"), ("exp(0.01*t**2)", "moments"),
                 ("exp(exp(t))", "moment"), ("x*y", "symbol"), ("sqrt(t)", "real"))
    for bad, msg in bad_cases:
        with pytest.raises(ValueError, match=msg):
            nt.Activation(bad)
