"""Hypothesis strategies for networks and inputs, for users' tests and ours.

Requires ``hypothesis`` (a test extra); this module is not imported by ``analytic_ntk``.

Examples
--------
>>> from hypothesis import given
>>> from analytic_ntk.testing import networks, inputs
>>> @given(net=networks(max_depth=3), x=inputs(4, 3))
... def test_symmetric(net, x):
...     k = net.kernel(x)
...     assert (k.nngp == k.nngp.T).all()

Strategies
----------
activations(families=None)
    Any activation of the library with parameters in ranges where deep stacks stay finite.
networks(max_depth=4, activations=None, bias=None, parameterization=None, ...)
    ``serial(Dense, act, Dense, act, ..., Dense)``.
inputs(n, d)
    Finite float64 arrays of shape (n, d).
hard_pairs(d)
    (2, d) arrays that stress the angle computation: near-duplicates, exact duplicates,
    antipodal and orthogonal pairs, zero vectors.
gaussian_pairs(max_sd_ratio=3.0)
    ``(var1, var2, cov, mean1, mean2)`` of a bivariate Gaussian, for
    :func:`analytic_ntk.bivariate_expectation`: zero variances, correlations +-1 and
    near +-1 included.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from . import layers as L

__all__ = [
    "FAMILIES",
    "HARD_KINDS",
    "activations",
    "gaussian_pairs",
    "hard_pairs",
    "inputs",
    "is_expansive",
    "networks",
]


def _floats(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def _param(lo, hi, signed=False, zero=False):
    """Magnitudes in ``[lo, hi]`` (no tiny values that only test underflow), optionally
    of either sign, optionally also exactly 0."""
    mag = _floats(lo, hi)
    if signed:
        mag = st.one_of(mag, mag.map(lambda v: -v))
    return st.one_of(st.just(0.0), mag) if zero else mag


def _family_strategies():
    p = _param
    return {
        "relu": st.just(L.Relu()),
        "leaky_relu": st.builds(L.LeakyRelu, p(0.01, 1.0, signed=True, zero=True)),
        "abrelu": st.builds(
            L.ABRelu, p(0.05, 2.0, signed=True, zero=True), p(0.05, 2.0, signed=True, zero=True)
        ),
        "abs": st.just(L.Abs()),
        "sign": st.just(L.Sign()),
        "erf": st.builds(L.Erf, p(0.25, 2.0), p(0.1, 2.0), p(0.01, 1.0, signed=True, zero=True)),
        "sin": st.builds(L.Sin, p(0.25, 2.0), p(0.1, 1.5), p(0.01, math.pi, True, True)),
        "cos": st.builds(L.Cos, p(0.25, 2.0), p(0.1, 1.5), p(0.01, math.pi, True, True)),
        "rbf": st.builds(L.Rbf, p(0.05, 1.0)),
        "gelu": st.just(L.Gelu()),
        "rectified_monomial": st.builds(L.RectifiedMonomial, st.integers(0, 3)),
        "monomial": st.builds(L.Monomial, st.integers(0, 3)),
        "polynomial": st.builds(
            L.Polynomial,
            st.lists(p(0.01, 1.0, signed=True, zero=True), min_size=1, max_size=4).map(tuple),
        ),
        "exp": st.builds(L.Exp, p(0.1, 1.0), p(0.05, 0.5, signed=True)),
        "gaussian": st.builds(L.Gaussian, p(0.1, 1.5), p(0.05, 1.0).map(lambda v: -v)),
        "identity": st.just(L.Identity()),
    }


#: Names accepted by :func:`activations` (one per activation family of the library).
FAMILIES = tuple(_family_strategies())

#: Kinds produced by :func:`hard_pairs`.
HARD_KINDS = (
    "near_duplicate",
    "near_duplicate_scaled",
    "duplicate",
    "antipodal",
    "antipodal_offset",
    "orthogonal",
    "zero",
)


def activations(families=None) -> st.SearchStrategy:
    """Activations of the library with sensible parameters.

    Parameters
    ----------
    families : sequence of str or None
        Names from :data:`FAMILIES` (``"relu"``, ``"leaky_relu"``, ``"abrelu"``, ``"abs"``,
        ``"sign"``, ``"erf"``, ``"sin"``, ``"cos"``, ``"rbf"``, ``"gelu"``,
        ``"rectified_monomial"``, ``"monomial"``, ``"polynomial"``, ``"exp"``,
        ``"gaussian"``, ``"identity"``); ``None`` means all.

    Notes
    -----
    ``Gaussian`` is drawn only with ``b < 0`` (for ``b > 0`` its dual diverges at large
    variance); ``Exp``, ``Monomial``, ``Polynomial`` and ``RectifiedMonomial`` get small
    parameters (degree <= 3, coefficients in [-1, 1], ``|b| <= 1/2``) and
    :func:`networks` limits how many of these expansive maps it stacks.
    """
    table = _family_strategies()
    names = FAMILIES if families is None else tuple(families)
    unknown = [n for n in names if n not in table]
    if unknown or not names:
        raise ValueError(f"unknown activation families {unknown}; choose from {FAMILIES}")
    return st.one_of(*(table[n] for n in names))


def _default_activations():
    return activations()


def is_expansive(act) -> bool:
    """True for activations whose variance map can grow or shrink super-linearly.

    Monomials and polynomials of degree >= 2, rectified monomials of degree >= 2 and
    ``Exp``: stacking many of them over- or underflows (``q -> q^(n^L)``) and amplifies
    rounding errors by ``n^L``.
    """
    if isinstance(act, L.Polynomial):
        return len(act.coef) > 2
    if isinstance(act, L.RectifiedMonomial):
        return act.degree >= 2
    return isinstance(act, L.Exp)


@st.composite
def networks(
    draw,
    max_depth: int = 4,
    activations=None,
    bias=None,
    parameterization=None,
    min_depth: int = 1,
    max_expansive: int = 2,
):
    """``serial(Dense, act, Dense, act, ..., Dense)`` with ``depth`` Dense layers.

    Parameters
    ----------
    max_depth, min_depth : int
        Range of the number of Dense layers.
    activations : SearchStrategy or None
        Strategy for each activation (drawn independently per layer); default
        :func:`activations` of all families.
    bias : bool or None
        ``True``: every Dense has ``bias_std`` in [0.05, 1]; ``False``: no biases;
        ``None``: drawn per layer.
    parameterization : {"ntk", "standard", None}
        ``None`` draws one per network.  Standard-parameterization layers get a width
        in [1, 512] (the next layer's fan-in).
    max_expansive : int
        At most this many activations with :func:`is_expansive` (the stack stops
        earlier), so that deep stacks do not overflow.

    Notes
    -----
    ``weight_std`` is drawn in [0.5, 1.6].
    """
    if activations is None:
        activations = _default_activations()
    depth = draw(st.integers(min_depth, max_depth))
    param = parameterization or draw(st.sampled_from(["ntk", "standard"]))
    if param not in ("ntk", "standard"):
        raise ValueError(f"parameterization must be 'ntk', 'standard' or None, got {param!r}")

    def dense():
        has_bias = draw(st.booleans()) if bias is None else bias
        b = draw(_floats(0.05, 1.0)) if has_bias else 0.0
        w = draw(_floats(0.5, 1.6))
        width = draw(st.integers(1, 512)) if param == "standard" else None
        return L.Dense(width=width, weight_std=w, bias_std=b, parameterization=param)

    layers = [dense()]
    n_exp = 0
    for _ in range(depth - 1):
        act = draw(activations)
        if is_expansive(act):
            if n_exp >= max_expansive:
                break
            n_exp += 1
        layers += [act, dense()]
    return L.serial(*layers)


def _dim(d):
    return d if isinstance(d, st.SearchStrategy) else st.just(d)


@st.composite
def inputs(draw, n=3, d=3, max_abs: float = 3.0, min_abs: float = 1e-3):
    """Finite float64 arrays of shape ``(n, d)``.

    Parameters
    ----------
    n, d : int or SearchStrategy of int
    max_abs, min_abs : float
        Every entry is 0 or has magnitude in ``[min_abs, max_abs]`` (tiny entries only
        exercise underflow in ``|x|^2``).
    """
    n, d = draw(_dim(n)), draw(_dim(d))
    return draw(
        hnp.arrays(np.float64, (n, d), elements=_param(min_abs, max_abs, signed=True, zero=True))
    )


def _unit(v):
    nrm = np.linalg.norm(v)
    if nrm == 0 or not np.isfinite(nrm):
        v = np.zeros_like(v)
        v[0] = 1.0
        return v
    return v / nrm


@st.composite
def hard_pairs(draw, d=3, kinds=None, with_kind: bool = False):
    """Pairs of inputs, a ``(2, d)`` array, that are hard for the angle computation.

    Parameters
    ----------
    d : int or SearchStrategy of int
        Feature size (>= 2 for ``"orthogonal"``; with ``d = 1`` that kind gives a zero).
    kinds : sequence of str or None
        From :data:`HARD_KINDS`; ``None`` means all:

        * ``"near_duplicate"``: ``x`` and ``x + eps |x| u`` (``u`` a random unit vector),
          ``eps = 10^U(-12, -3)``;
        * ``"near_duplicate_scaled"``: ``x`` and ``x (1 + eps)``, ``eps = +-10^U(-12, -3)``;
        * ``"duplicate"``: ``x`` twice;
        * ``"antipodal"``: ``x`` and ``-x (1 + eps)``, ``eps`` 0 or ``+-10^U(-12, -3)``;
        * ``"antipodal_offset"``: ``x`` and ``-(x + eps |x| u)``;
        * ``"orthogonal"``: ``x`` and a vector orthogonal to it (up to rounding);
        * ``"zero"``: a zero vector with ``x``, or two zero vectors.
    with_kind : bool
        Draw ``(kind, array)`` instead of the array.

    Notes
    -----
    ``x`` has entries 0 or of magnitude in [0.05, 2], scaled by ``10^U(-1, 0.5)``, and is
    never 0 (except in ``"zero"``).
    """
    d = draw(_dim(d))
    kind = draw(st.sampled_from(tuple(kinds) if kinds is not None else HARD_KINDS))
    x = draw(hnp.arrays(np.float64, (d,), elements=_param(0.05, 2.0, signed=True, zero=True)))
    if not np.any(x):
        x[draw(st.integers(0, d - 1))] = 1.0
    x = x * 10.0 ** draw(_floats(-1.0, 0.5))
    u = _unit(draw(hnp.arrays(np.float64, (d,), elements=_param(0.05, 1.0, True, True))))
    eps = 10.0 ** draw(_floats(-12.0, -3.0))
    sgn = draw(st.sampled_from([-1.0, 1.0]))
    nrm = np.linalg.norm(x)
    if kind == "near_duplicate":
        y = x + eps * nrm * u
    elif kind == "near_duplicate_scaled":
        y = x * (1.0 + sgn * eps)
    elif kind == "duplicate":
        y = x.copy()
    elif kind == "antipodal":
        y = -x * (1.0 + (sgn * eps if draw(st.booleans()) else 0.0))
    elif kind == "antipodal_offset":
        y = -(x + eps * nrm * u)
    elif kind == "orthogonal":
        y = u - (u @ x) / (nrm * nrm) * x
        y = y if np.any(y) else np.zeros_like(x)
    elif kind == "zero":
        y = np.zeros_like(x)
        if draw(st.booleans()):
            x = np.zeros_like(x)
    else:
        raise ValueError(f"unknown kind {kind!r}; choose from {HARD_KINDS}")
    pair = np.stack([x, y])
    if draw(st.booleans()):
        pair = pair[::-1].copy()
    return (kind, pair) if with_kind else pair


@st.composite
def gaussian_pairs(draw, max_var: float = 4.0, max_sd_ratio: float = 3.0):
    """``(var1, var2, cov, mean1, mean2)`` of a bivariate Gaussian.

    Variances are 0 or in ``[1e-2, max_var]``; the correlation is drawn from ``[-1, 1]``
    with the edges (``+-1`` exactly, ``+-(1 - 1e-12)``, ``+-(1 - 1e-6)``) and 0 as
    special values; ``|mean| <= max_sd_ratio * sd`` (or ``<= max_sd_ratio`` where the
    variance is 0).
    """
    var = st.one_of(st.just(0.0), _floats(1e-2, max_var))
    v1, v2 = draw(var), draw(var)
    rho = draw(st.one_of(
        st.sampled_from([0.0, 1.0, -1.0, 1 - 1e-12, -1 + 1e-12, 1 - 1e-6, -1 + 1e-6]),
        _floats(-1.0, 1.0)))
    cov = rho * math.sqrt(v1) * math.sqrt(v2)
    means = []
    for v in (v1, v2):
        sd = math.sqrt(v) if v > 0 else 1.0
        means.append(draw(_floats(-max_sd_ratio, max_sd_ratio)) * sd)
    return v1, v2, cov, means[0], means[1]
