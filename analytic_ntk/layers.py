"""Layer specifications: ``Dense``, the activations, and ``serial``.

Every layer is a small frozen dataclass. The conventions are those of
neural-tangents' ``stax`` (Novak et al. 2020, "Neural Tangents: Fast and Easy
Infinite Neural Networks in Python", ICLR), see ``design.md`` section 1:

* ``Dense`` in the NTK parameterization maps
  ``nngp' = weight_std**2 * nngp + bias_std**2`` and ``ntk' = nngp' + weight_std**2 * ntk``;
  in the standard parameterization
  ``ntk' = n_in * nngp + weight_std**2 * ntk + [bias_std > 0]`` (incoming ``nngp``).
* An activation ``phi`` maps ``nngp' = E[phi(u) phi(v)]`` and
  ``ntk' = E[phi'(u) phi'(v)] * ntk`` with ``(u, v)`` centred Gaussian with the
  incoming covariance (Cho & Saul 2009; Jacot, Gabriel & Hongler 2018).

Each activation also knows its pointwise function ``fn`` and derivative ``deriv``
(numpy), which the independent checks (quadrature, finite networks) use instead of
the dual maps.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from . import duals

__all__ = [
    "Dense",
    "Activation",
    "Relu",
    "LeakyRelu",
    "ABRelu",
    "Abs",
    "Sign",
    "Erf",
    "Sin",
    "Cos",
    "Gelu",
    "RectifiedMonomial",
    "Monomial",
    "Polynomial",
    "Exp",
    "Gaussian",
    "Rbf",
    "Identity",
    "GenericActivation",
    "Network",
    "serial",
]


def _finite_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def _nonneg_float(name: str, value) -> float:
    v = _finite_float(name, value)
    if v < 0:
        raise ValueError(f"{name} must be non-negative, got {value!r}")
    return v


def _nonneg_int(name: str, value) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if isinstance(value, numbers.Integral):
        v = int(value)
    elif isinstance(value, numbers.Real) and float(value).is_integer():
        v = int(value)
    else:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if v < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return v


# --------------------------------------------------------------------------- Dense


@dataclass(frozen=True)
class Dense:
    """Fully-connected layer ``z = weight_std / sqrt(n_in) W x + bias_std b`` (NTK param.).

    Parameters
    ----------
    width : int or None
        Output width of the finite network. Ignored by the infinite-width kernel in
        the NTK parameterization; in the standard parameterization the *next* Dense
        uses it as its fan-in ``n_in``.
    weight_std, bias_std : float
        Standard deviations of the weights and biases (non-negative).
    parameterization : {"ntk", "standard"}
        ``"ntk"``: ``W, b ~ N(0, 1)`` scaled in the forward pass (Jacot et al. 2018);
        ``"standard"``: ``W ~ N(0, weight_std**2 / n_in)``, ``b ~ N(0, bias_std**2)``
        (Sohl-Dickstein et al. 2020, "On the infinite width limit of neural networks
        with a standard parameterization").
    """

    width: int | None = None
    weight_std: float = 1.0
    bias_std: float = 0.0
    parameterization: str = "ntk"

    def __post_init__(self):
        if self.width is not None:
            w = _nonneg_int("Dense width", self.width)
            if w == 0:
                raise ValueError("Dense width must be a positive integer, got 0")
            object.__setattr__(self, "width", w)
        object.__setattr__(self, "weight_std", _nonneg_float("weight_std", self.weight_std))
        object.__setattr__(self, "bias_std", _nonneg_float("bias_std", self.bias_std))
        if self.parameterization not in ("ntk", "standard"):
            raise ValueError(
                "parameterization must be 'ntk' or 'standard', "
                f"got {self.parameterization!r}"
            )


# ---------------------------------------------------------------------- activations


class _ActivationType(type):
    """``Activation(...)`` itself is a factory (closed form or :class:`GenericActivation`);
    the subclasses construct as usual."""

    def __call__(cls, *args, **kwargs):
        if cls is Activation:
            return _make_activation(*args, **kwargs)
        return super().__call__(*args, **kwargs)


class Activation(metaclass=_ActivationType):
    """Elementwise activations; ``Activation(expr)`` builds one from an expression.

    ``Activation(expr, *, symbol=None)``: ``expr`` a SymPy expression in one symbol or a
    string SymPy parses (``"tanh(t)"``, ``"log(1 + exp(t))"``,
    ``"Piecewise((t, t > 0), (exp(t) - 1, True))"``, ``"Min(Max(t, -1), 1)"``); the
    derivative comes from SymPy.  Where the expression is one of the closed-form families
    (up to the family's own scale and shift parameters), the result *is* that closed form
    (e.g. ``Activation("2*erf(3*t)")`` gives ``Erf(a=2, b=3)``); otherwise a
    :class:`GenericActivation`, whose dual and NTK factor are computed numerically
    (:mod:`analytic_ntk.quadrature`).

    ``Activation(fn, derivative=dfn, kinks=())``: ``fn`` and ``dfn`` numba-compilable
    Python functions of one float (or ``numba.njit`` functions), ``kinks`` the points where
    ``fn`` or its first two derivatives are not smooth.

    Raises ``ValueError`` for an expression with more than one free symbol, one that is not
    real or not finite on the real line, or whose Gaussian moments do not exist
    (``exp(t**2)``); for a function without a derivative, or whose derivative does not
    match it.

    Subclasses provide ``fn`` (the pointwise function), ``deriv`` (its derivative)
    and ``_dual_spec()`` giving the family code and parameters of the dual map in
    :mod:`analytic_ntk.duals`.
    """


    def fn(self, x):  # pragma: no cover - overridden
        raise NotImplementedError

    def deriv(self, x):  # pragma: no cover - overridden
        raise NotImplementedError

    def _dual_spec(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def numerical(self) -> GenericActivation:
        """The same activation with its dual and NTK factor computed numerically
        (:mod:`analytic_ntk.quadrature`), from the pointwise functions that
        ``derivations/pointwise.py`` generates (:mod:`analytic_ntk._generated.pointwise`):
        an independent check of the closed form."""
        from ._generated import pointwise

        family = pointwise.LAYERS[type(self).__name__]
        phi, dphi, _ = pointwise.POINTWISE[family]
        values = []
        for name in pointwise.PARAMS[family]:
            v = getattr(self, name)
            values.extend(np.atleast_1d(np.asarray(v, dtype=np.float64)).tolist())
        kinks = (0.0,) if family in ("abrelu", "sign", "rectmono") else ()
        p = np.asarray(values, dtype=np.float64)
        return GenericActivation(
            name=f"numerical {self!r}", expr=None, deriv_expr=None, kinks=kinks,
            jumps=_has_jumps(phi, p, kinks), params=tuple(values), phi=phi, dphi=dphi,
        )

    @property
    def is_smooth(self) -> bool:
        """True when the dual is a smooth (analytic) function of the covariance."""
        return duals.is_smooth(self._dual_spec()[0])


@dataclass(frozen=True)
class ABRelu(Activation):
    """``phi(x) = a min(x, 0) + b max(x, 0)``.

    Dual (Cho & Saul 2009, generalised): with ``theta`` the angle between the inputs,
    ``nngp' = (a-b)^2/(2 pi) sqrt(cov1 cov2 - nngp^2)
    + ((a^2+b^2)/2 - (a-b)^2 theta/(2 pi)) nngp`` and NTK factor
    ``(a^2+b^2)/2 - (a-b)^2 theta/(2 pi)``.
    """

    a: float = 0.0
    b: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "a", _finite_float("ABRelu a", self.a))
        object.__setattr__(self, "b", _finite_float("ABRelu b", self.b))

    def fn(self, x):
        x = np.asarray(x, dtype=np.float64)
        return self.a * np.minimum(x, 0.0) + self.b * np.maximum(x, 0.0)

    def deriv(self, x):
        x = np.asarray(x, dtype=np.float64)
        return np.where(x > 0, self.b, self.a) + 0.0 * x

    def _dual_spec(self):
        return duals.ABRELU, (self.a, self.b)


@dataclass(frozen=True)
class Relu(ABRelu):
    """Rectified linear unit ``max(x, 0)``; arc-cosine kernel of order 1."""

    a: float = field(default=0.0, init=False)
    b: float = field(default=1.0, init=False)


@dataclass(frozen=True, init=False)
class LeakyRelu(ABRelu):
    """``max(x, 0) + alpha min(x, 0)`` (= ``ABRelu(alpha, 1)``)."""

    alpha: float = 0.01

    def __init__(self, alpha: float = 0.01):
        alpha = _finite_float("LeakyRelu alpha", alpha)
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "a", alpha)
        object.__setattr__(self, "b", 1.0)


@dataclass(frozen=True)
class Abs(ABRelu):
    """``|x|`` (= ``ABRelu(-1, 1)``)."""

    a: float = field(default=-1.0, init=False)
    b: float = field(default=1.0, init=False)


@dataclass(frozen=True)
class Sign(Activation):
    """``sign(x)``; ``nngp' = 1 - 2 theta / pi`` and NTK factor 0 (as in stax)."""

    def fn(self, x):
        return np.sign(np.asarray(x, dtype=np.float64))

    def deriv(self, x):
        return np.zeros_like(np.asarray(x, dtype=np.float64))

    def _dual_spec(self):
        return duals.SIGN, ()


@dataclass(frozen=True)
class RectifiedMonomial(Activation):
    """``max(x, 0) ** degree``: the arc-cosine kernel of order ``degree`` (Cho & Saul 2009).

    ``nngp' = (cov1 cov2)^(n/2) J_n(theta) / (2 pi)``, NTK factor
    ``n^2 (cov1 cov2)^((n-1)/2) J_(n-1)(theta) / (2 pi)`` (0 for ``n = 0``, whose
    derivative is a point mass, as for ``Sign``).
    """

    degree: int = 1

    def __post_init__(self):
        object.__setattr__(self, "degree", _nonneg_int("RectifiedMonomial degree", self.degree))

    def fn(self, x):
        x = np.asarray(x, dtype=np.float64)
        if self.degree == 0:
            return (x > 0).astype(np.float64)
        return np.maximum(x, 0.0) ** self.degree

    def deriv(self, x):
        x = np.asarray(x, dtype=np.float64)
        n = self.degree
        if n == 0:
            return np.zeros_like(x)
        if n == 1:
            return (x > 0).astype(np.float64)
        return n * np.maximum(x, 0.0) ** (n - 1)

    def _dual_spec(self):
        return duals.RECTMONO, (float(self.degree),)


@dataclass(frozen=True)
class Erf(Activation):
    """``a erf(b x) + c``; ``E[erf(bu) erf(bv)] = (2/pi) arcsin(2 b^2 nngp /
    sqrt((1 + 2 b^2 cov1)(1 + 2 b^2 cov2)))`` (Williams 1997)."""

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0

    def __post_init__(self):
        for k in ("a", "b", "c"):
            object.__setattr__(self, k, _finite_float(f"Erf {k}", getattr(self, k)))

    def fn(self, x):
        return self.a * special.erf(self.b * np.asarray(x, dtype=np.float64)) + self.c

    def deriv(self, x):
        x = np.asarray(x, dtype=np.float64)
        return self.a * self.b * 2.0 / math.sqrt(math.pi) * np.exp(-((self.b * x) ** 2))

    def _dual_spec(self):
        return duals.ERF, (self.a, self.b, self.c)


@dataclass(frozen=True)
class Sin(Activation):
    """``a sin(b x + c)``; ``nngp' = a^2/2 [exp(-b^2 (cov1 + cov2 - 2 nngp)/2)
    - cos(2c) exp(-b^2 (cov1 + cov2 + 2 nngp)/2)]``."""

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0

    def __post_init__(self):
        for k in ("a", "b", "c"):
            object.__setattr__(self, k, _finite_float(f"Sin {k}", getattr(self, k)))

    def fn(self, x):
        return self.a * np.sin(self.b * np.asarray(x, dtype=np.float64) + self.c)

    def deriv(self, x):
        return self.a * self.b * np.cos(self.b * np.asarray(x, dtype=np.float64) + self.c)

    def _dual_spec(self):
        return duals.TRIG, (self.a, self.b, math.sin(self.c) ** 2, math.cos(self.c) ** 2)


@dataclass(frozen=True)
class Cos(Activation):
    """``a cos(b x + c)`` (= ``Sin(a, b, c + pi/2)``: ``sin^2`` and ``cos^2`` of the phase swap)."""

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0

    def __post_init__(self):
        for k in ("a", "b", "c"):
            object.__setattr__(self, k, _finite_float(f"Cos {k}", getattr(self, k)))

    def fn(self, x):
        return self.a * np.cos(self.b * np.asarray(x, dtype=np.float64) + self.c)

    def deriv(self, x):
        return -self.a * self.b * np.sin(self.b * np.asarray(x, dtype=np.float64) + self.c)

    def _dual_spec(self):
        return duals.TRIG, (self.a, self.b, math.cos(self.c) ** 2, math.sin(self.c) ** 2)


@dataclass(frozen=True)
class Rbf(Activation):
    """``sqrt(2) sin(sqrt(2 gamma) x + pi/4)``, whose NNGP is the RBF kernel
    ``exp(-gamma (cov1 + cov2 - 2 nngp))`` (Rahimi & Recht 2007; stax.Rbf)."""

    gamma: float = 1.0

    def __post_init__(self):
        g = _nonneg_float("Rbf gamma", self.gamma)
        object.__setattr__(self, "gamma", g)

    def fn(self, x):
        x = np.asarray(x, dtype=np.float64)
        return math.sqrt(2.0) * np.sin(math.sqrt(2.0 * self.gamma) * x + math.pi / 4)

    def deriv(self, x):
        x = np.asarray(x, dtype=np.float64)
        b = math.sqrt(2.0 * self.gamma)
        return math.sqrt(2.0) * b * np.cos(b * x + math.pi / 4)

    def _dual_spec(self):
        # phase pi/4: sin^2 = cos^2 = 1/2 exactly.
        return duals.TRIG, (math.sqrt(2.0), math.sqrt(2.0 * self.gamma), 0.5, 0.5)


@dataclass(frozen=True)
class Gelu(Activation):
    """Exact GELU ``x Phi(x)`` (Hendrycks & Gimpel 2016), ``Phi`` the normal CDF."""

    def fn(self, x):
        x = np.asarray(x, dtype=np.float64)
        return 0.5 * x * special.erfc(-x / math.sqrt(2.0))

    def deriv(self, x):
        x = np.asarray(x, dtype=np.float64)
        return 0.5 * special.erfc(-x / math.sqrt(2.0)) + x * np.exp(-0.5 * x * x) / math.sqrt(
            2.0 * math.pi
        )

    def _dual_spec(self):
        return duals.GELU, ()


@dataclass(frozen=True)
class Polynomial(Activation):
    """``sum_k coef[k] x**k``; dual by the Hermite expansion (Mehler's formula)."""

    coef: tuple = (0.0, 1.0)

    def __post_init__(self):
        c = np.asarray(self.coef, dtype=np.float64)
        if c.ndim != 1 or c.size == 0:
            raise ValueError("Polynomial coef must be a non-empty 1-D sequence")
        if not np.all(np.isfinite(c)):
            raise ValueError("Polynomial coef must be finite")
        object.__setattr__(self, "coef", tuple(float(v) for v in c))

    def fn(self, x):
        x = np.asarray(x, dtype=np.float64)
        return np.polynomial.polynomial.polyval(x, np.asarray(self.coef))

    def deriv(self, x):
        x = np.asarray(x, dtype=np.float64)
        d = np.polynomial.polynomial.polyder(np.asarray(self.coef))
        return np.polynomial.polynomial.polyval(x, d) + 0.0 * x

    def _dual_spec(self):
        return duals.POLY, tuple(self.coef)


@dataclass(frozen=True, init=False)
class Monomial(Polynomial):
    """``x ** degree`` for an integer ``degree >= 0``."""

    degree: int = 1

    def __init__(self, degree: int = 1):
        d = _nonneg_int("Monomial degree", degree)
        object.__setattr__(self, "degree", d)
        object.__setattr__(self, "coef", tuple([0.0] * d + [1.0]))


@dataclass(frozen=True)
class Exp(Activation):
    """``a exp(b x)``; ``nngp' = a^2 exp(b^2 (cov1 + cov2 + 2 nngp) / 2)``."""

    a: float = 1.0
    b: float = 1.0

    def __post_init__(self):
        for k in ("a", "b"):
            object.__setattr__(self, k, _finite_float(f"Exp {k}", getattr(self, k)))

    def fn(self, x):
        return self.a * np.exp(self.b * np.asarray(x, dtype=np.float64))

    def deriv(self, x):
        return self.a * self.b * np.exp(self.b * np.asarray(x, dtype=np.float64))

    def _dual_spec(self):
        return duals.EXP, (self.a, self.b)


@dataclass(frozen=True)
class Gaussian(Activation):
    """``a exp(b x^2)``; ``nngp' = a^2 / sqrt((1 - 2b cov1)(1 - 2b cov2) - 4 b^2 nngp^2)``.

    For ``b > 0`` the expectation is finite only while ``1 - 2 b cov > 0``; larger
    variances raise ``ValueError``.
    """

    a: float = 1.0
    b: float = -1.0

    def __post_init__(self):
        for k in ("a", "b"):
            object.__setattr__(self, k, _finite_float(f"Gaussian {k}", getattr(self, k)))

    def fn(self, x):
        x = np.asarray(x, dtype=np.float64)
        return self.a * np.exp(self.b * x * x)

    def deriv(self, x):
        x = np.asarray(x, dtype=np.float64)
        return 2.0 * self.a * self.b * x * np.exp(self.b * x * x)

    def _dual_spec(self):
        return duals.GAUSS, (self.a, self.b)


@dataclass(frozen=True)
class Identity(Activation):
    """``phi(x) = x``: the kernel passes through unchanged."""

    def fn(self, x):
        return np.asarray(x, dtype=np.float64) + 0.0

    def deriv(self, x):
        return np.ones_like(np.asarray(x, dtype=np.float64))

    def _dual_spec(self):
        return duals.IDENTITY, ()


@dataclass(frozen=True, eq=False)
class GenericActivation(Activation):
    """An activation without a closed-form dual: ``nngp' = E[phi(u) phi(v)]`` and the NTK
    factor ``E[phi'(u) phi'(v)]`` by Mehler series and split Gauss-Legendre quadrature
    (:mod:`analytic_ntk.quadrature`; targets 1e-10 relative for smooth activations, 1e-8
    for kinked ones).  Build it with :class:`Activation`.

    Attributes
    ----------
    name : str
        The expression (or function name) it was built from.
    expr, deriv_expr : sympy.Expr or None
        ``phi`` and ``phi'`` in ``sympy.Symbol("t", real=True)`` (None when built from
        functions).
    kinks : tuple of float
        Points where ``phi``, ``phi'`` or ``phi''`` is not smooth (the quadrature splits
        there).
    jumps : bool
        Whether ``phi`` itself jumps at a kink (then the NTK factor uses the pointwise
        derivative, which is zero at the jump, as neural-tangents does for ``Sign``).
    params : tuple of float
        Parameter vector passed to the compiled ``phi(t, p)``, ``dphi(t, p)``.
    """

    name: str
    expr: object
    deriv_expr: object
    kinks: tuple
    jumps: bool
    params: tuple
    phi: object = field(repr=False)
    dphi: object = field(repr=False)

    def _eval(self, h, x):
        from .quadrature import apply

        x = np.asarray(x, dtype=np.float64)
        out = np.empty(x.size)
        apply(h, np.asarray(self.params, dtype=np.float64), np.ascontiguousarray(x).ravel(), out)
        return out.reshape(x.shape)

    def fn(self, x):
        return self._eval(self.phi, x)

    def deriv(self, x):
        return self._eval(self.dphi, x)

    def _dual_spec(self):
        return duals.GENERIC, ()

    def _generic_layer(self, r1, r2=None):
        """Per-row Hermite coefficients and quadrature set-up for incoming ``sqrt(q)``
        ``r1`` (and ``r2``): :class:`analytic_ntk.quadrature.GenericLayer`."""
        from .quadrature import GenericLayer

        return GenericLayer(self.phi, self.dphi, self.params, self.kinks, self.jumps, r1, r2)


def _has_jumps(phi, p, kinks):
    from .quadrature import apply

    for t in kinks:
        eps = 1e-7 * max(1.0, abs(t))
        x = np.array([t - eps, t + eps])
        v = np.empty(2)
        apply(phi, p, x, v)
        if abs(v[1] - v[0]) > 1e-4 * (1.0 + abs(v[0]) + abs(v[1])):
            return True
    return False


def _check_functions(phi, dphi, p, kinks, name):
    """Finite real values, and a derivative that matches central differences."""
    from .quadrature import apply

    x = np.concatenate([np.linspace(-20.0, 20.0, 81), [-3.3, -0.7, 0.45, 1.9, 5.2]])
    for t in kinks:
        x = x[np.abs(x - t) > 1e-3]
    v = np.empty(x.size)
    dv = np.empty(x.size)
    try:
        apply(phi, p, x, v)
        apply(dphi, p, x, dv)
    except Exception as err:  # numba typing or runtime errors from user code
        raise ValueError(f"activation {name}: cannot evaluate the function: {err}") from None
    if not (np.all(np.isfinite(v)) and np.all(np.isfinite(dv))):
        raise ValueError(f"activation {name}: not finite on the real line")
    h = 1e-5
    far = np.ones(x.size, dtype=bool)
    for t in kinks:
        far &= np.abs(x - t) > 10 * h
    xs = x[far]
    vp = np.empty(xs.size)
    vm = np.empty(xs.size)
    apply(phi, p, xs + h, vp)
    apply(phi, p, xs - h, vm)
    fd = (vp - vm) / (2 * h)
    err = np.abs(fd - dv[far]) / (1.0 + np.abs(dv[far]) + np.abs(v[far]) * 1e-3)
    if np.any(err > 1e-4):
        k = int(np.argmax(err))
        raise ValueError(
            f"activation {name}: the derivative does not match the function at t = {xs[k]:g} "
            f"(derivative {dv[far][k]:g}, central difference {fd[k]:g})"
        )


def _make_activation(expr, *, symbol=None, derivative=None, kinks=None, closed_form=True):
    """``Activation(...)`` (see :class:`Activation`)."""
    if callable(expr) and not isinstance(expr, str) and not hasattr(expr, "free_symbols"):
        return _from_functions(expr, derivative, kinks)
    if derivative is not None or kinks is not None:
        raise ValueError("derivative= and kinks= go with a function; an expression has its own")
    from .symbolic import activation as sa

    parsed = sa.parse(expr, symbol, moments=False)
    if closed_form:
        layer = sa.closed_form(parsed)
        if isinstance(layer, Gaussian) and layer.b > 0:
            raise ValueError(
                f"activation {parsed.expr} grows like exp({layer.b:g} t^2): its Gaussian "
                f"moments do not exist for variances >= {1 / (4 * layer.b):g}; build "
                "Gaussian(a, b) explicitly if every variance stays below that"
            )
        if layer is not None:
            return layer
    sa.check_moments(parsed)
    phi, dphi = sa.compile_pointwise(parsed)
    p = tuple(float(v) for v in parsed.params)
    pa = np.asarray(p, dtype=np.float64)
    kk = tuple(float(t) for t in parsed.kinks)
    name = str(parsed.expr)
    _check_functions(phi, dphi, pa, kk, name)
    return GenericActivation(
        name=name, expr=parsed.expr, deriv_expr=parsed.deriv, kinks=kk,
        jumps=_has_jumps(phi, pa, kk), params=p, phi=phi, dphi=dphi,
    )


_WRAPPED = {}


def _from_functions(fn, derivative, kinks):
    import numba

    if derivative is None or not callable(derivative):
        raise ValueError("Activation(fn) needs derivative=, a function giving fn'")
    kk = tuple(sorted(_finite_float("kink", t) for t in (kinks or ())))
    key = (fn, derivative)
    if key not in _WRAPPED:
        f = fn if hasattr(fn, "py_func") else numba.njit(fn)
        df = derivative if hasattr(derivative, "py_func") else numba.njit(derivative)

        @numba.njit
        def phi(t, p):
            return f(t)

        @numba.njit
        def dphi(t, p):
            return df(t)

        _WRAPPED[key] = (phi, dphi)
    phi, dphi = _WRAPPED[key]
    pa = np.zeros(0)
    name = getattr(fn, "__name__", repr(fn))
    _check_functions(phi, dphi, pa, kk, name)
    return GenericActivation(
        name=name, expr=None, deriv_expr=None, kinks=kk, jumps=_has_jumps(phi, pa, kk),
        params=(), phi=phi, dphi=dphi,
    )


# ------------------------------------------------------------------------- Network


@dataclass(frozen=True)
class Network:
    """A serial stack of layers; build it with :func:`serial`."""

    layers: tuple

    @property
    def depth(self) -> int:
        """Number of Dense layers."""
        return sum(isinstance(layer, Dense) for layer in self.layers)

    def kernel(self, x1, x2=None, *, diagonal: bool = False):
        """Infinite-width NNGP and NTK of the network.

        Parameters
        ----------
        x1 : array (n1, d)
        x2 : array (n2, d) or None
            ``None`` means ``x2 = x1`` (only the upper triangle is computed).
        diagonal : bool
            Return only ``K(x1_i, x1_i)``; requires ``x2`` to be ``None``.

        Returns
        -------
        Kernel
            ``nngp`` and ``ntk`` of shape (n1, n2) (or (n1,) with ``diagonal``),
            and the NNGP diagonals ``cov1``, ``cov2``.
        """
        from .recursion import kernel

        return kernel(self, x1, x2, diagonal=diagonal)

    def predict(self, x_train, y_train, x_test, t=None, *, kind: str = "ntk",
                compute_cov: bool = False, learning_rate: float = 1.0, diag_reg: float = 0.0,
                diag_reg_absolute_scale: bool = False, discrete: bool = False):
        """Test-set predictions of the infinitely wide network: the ensemble trained by
        gradient descent on the MSE loss for time ``t`` (``kind="ntk"``; ``t=None`` is
        infinite time), or with only the read-out trained (``kind="nngp"``; ``t=None`` is
        the Bayesian posterior).  See :func:`analytic_ntk.predict.predict`.

        Returns
        -------
        predict.Gaussian
            ``mean`` of shape ``t.shape + (n_test,) + y_train.shape[1:]`` and ``cov``
            (``t.shape + (n_test, n_test)``) when ``compute_cov``.
        """
        from .predict import predict

        return predict(self, x_train, y_train, x_test, t, kind=kind, compute_cov=compute_cov,
                       learning_rate=learning_rate, diag_reg=diag_reg,
                       diag_reg_absolute_scale=diag_reg_absolute_scale, discrete=discrete)


def serial(*layers) -> Network:
    """Compose layers into a :class:`Network` (cf. ``neural_tangents.stax.serial``).

    Raises ``ValueError`` for an empty network, an object that is not a layer, an
    activation with no Dense before it, or a standard-parameterization Dense whose
    fan-in is unknown (the preceding Dense has no ``width``).
    """
    if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
        layers = tuple(layers[0])
    if not layers:
        raise ValueError("serial() needs at least one layer")
    prev_dense = None
    for k, layer in enumerate(layers):
        if isinstance(layer, Network):
            raise ValueError("nest networks by passing their layers: serial(*net.layers, ...)")
        if isinstance(layer, Dense):
            if layer.parameterization == "standard" and prev_dense is not None:
                if prev_dense.width is None:
                    raise ValueError(
                        f"layer {k}: standard parameterization needs the fan-in, but the "
                        "preceding Dense has no width; give it Dense(width=...)"
                    )
            prev_dense = layer
        elif isinstance(layer, Activation):
            if prev_dense is None:
                raise ValueError(
                    f"layer {k}: activation {type(layer).__name__} comes after nothing; "
                    "a network must start with Dense"
                )
        else:
            raise ValueError(f"layer {k}: {layer!r} is not a Dense layer or an activation")
    return Network(tuple(layers))
