"""Input validation: every misuse raises ``ValueError`` naming the problem."""

from __future__ import annotations

import math

import numpy as np
import pytest

import analytic_ntk as nt
from analytic_ntk import (
    Dense,
    Erf,
    Gaussian,
    Monomial,
    RectifiedMonomial,
    Relu,
    serial,
)
from analytic_ntk._reference import reference, scaled_error

NET = serial(Dense(), Relu(), Dense())
X = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]])


# ------------------------------------------------------------------------ inputs


def test_feature_size_mismatch():
    with pytest.raises(ValueError, match="feature size"):
        NET.kernel(X, np.ones((2, 4)))


@pytest.mark.parametrize("bad", [np.ones(3), np.ones((2, 3, 1)), np.float64(1.0)])
def test_x1_not_2d(bad):
    with pytest.raises(ValueError, match=r"x1 must be 2-D"):
        NET.kernel(bad)


def test_x2_not_2d():
    with pytest.raises(ValueError, match=r"x2 must be 2-D"):
        NET.kernel(X, np.ones(3))


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (0, 0)])
def test_empty(shape):
    with pytest.raises(ValueError, match="x1 is empty"):
        NET.kernel(np.ones(shape))
    with pytest.raises(ValueError, match="x2 is empty"):
        NET.kernel(X[:, :1] if shape[1] == 0 else X, np.ones(shape))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("which", ["x1", "x2"])
def test_nan_or_inf(value, which):
    bad = X.copy()
    bad[1, 2] = value
    args = (bad,) if which == "x1" else (X, bad)
    with pytest.raises(ValueError, match=f"{which} contains NaN or inf"):
        NET.kernel(*args)


def test_non_numeric_input():
    with pytest.raises(ValueError, match="x1 must be a real array"):
        NET.kernel([["a", "b"]])


def test_diagonal_needs_x2_none():
    with pytest.raises(ValueError, match="diagonal=True"):
        NET.kernel(X, X.copy(), diagonal=True)


def test_kernel_needs_a_network():
    with pytest.raises(ValueError, match="Network"):
        nt.kernel([Dense(), Relu()], X)


# ------------------------------------------------------------------------ layers


@pytest.mark.parametrize("field", ["weight_std", "bias_std"])
@pytest.mark.parametrize("value", [-1.0, -1e-300, math.nan, math.inf])
def test_bad_std(field, value):
    with pytest.raises(ValueError, match=field):
        Dense(**{field: value})


@pytest.mark.parametrize("width", [0, -3, 2.5, "10"])
def test_bad_width(width):
    with pytest.raises(ValueError, match="width"):
        Dense(width=width)


@pytest.mark.parametrize("cls", [RectifiedMonomial, Monomial])
@pytest.mark.parametrize("degree", [-1, -2.0, 1.5, math.nan, "2", True])
def test_bad_degree(cls, degree):
    with pytest.raises(ValueError, match="degree"):
        cls(degree)


@pytest.mark.parametrize("cls", [RectifiedMonomial, Monomial])
def test_integral_float_degree_accepted(cls):
    assert cls(2.0).degree == 2


@pytest.mark.parametrize("param", ["NTK", "std", "", None])
def test_bad_parameterization(param):
    with pytest.raises(ValueError, match="parameterization"):
        Dense(parameterization=param)


def test_standard_parameterization_needs_width():
    with pytest.raises(ValueError, match="width"):
        serial(Dense(parameterization="standard"), Relu(), Dense(parameterization="standard"))
    with pytest.raises(ValueError, match="width"):
        serial(Dense(), Relu(), Dense(parameterization="standard"))
    # the first layer's fan-in is the input dimension: no width needed there
    k = serial(Dense(parameterization="standard"), Relu(), Dense(width=4)).kernel(X)
    assert np.all(np.isfinite(k.ntk))


def test_activation_first():
    with pytest.raises(ValueError, match="Relu comes after nothing"):
        serial(Relu(), Dense())
    with pytest.raises(ValueError, match="Erf comes after nothing"):
        serial(Erf())


def test_empty_serial():
    with pytest.raises(ValueError, match="at least one layer"):
        serial()
    with pytest.raises(ValueError, match="at least one layer"):
        serial([])


@pytest.mark.parametrize("obj", ["relu", 3, None, np.tanh, Relu])
def test_non_layer_objects(obj):
    with pytest.raises(ValueError, match="not a Dense layer or an activation"):
        serial(Dense(), obj, Dense())


def test_nested_network():
    with pytest.raises(ValueError, match="nest networks"):
        serial(Dense(), Relu(), NET)


# ------------------------------------------------------------------ Gaussian b > 0


@pytest.mark.parametrize("variance", [0.5, 1.0, 3.0, 1e3])
def test_gaussian_positive_b_diverges(variance):
    """``E[exp(2 b u^2)]`` is infinite for ``4 b Var(u) >= 1``: ValueError, never NaN/inf."""
    net = serial(Dense(weight_std=math.sqrt(variance)), Gaussian(1.0, 0.5), Dense())
    x = np.array([[1.0, -1.0], [1.0, 1.0]])  # |x|^2 / d = 1: pre-activation variance
    with pytest.raises(ValueError, match="Gaussian"):
        net.kernel(x)
    with pytest.raises(ValueError, match="Gaussian"):
        net.kernel(x, diagonal=True)


def test_gaussian_positive_b_small_variance_is_finite_and_accurate():
    """Below the divergence (``4 b Var(u) = 0.4``) the kernel is finite and matches the
    high-precision reference."""
    net = serial(Dense(weight_std=math.sqrt(0.2)), Gaussian(1.0, 0.5), Dense())
    x = np.array([[1.0, -1.0], [1.0, 1.0], [0.3, 1.2]])
    k = net.kernel(x)
    ref = reference(net, x)
    err = scaled_error(k.nngp, ref.nngp, ref.nngp_diag1, ref.nngp_diag1).max()
    assert err <= 1e-13
