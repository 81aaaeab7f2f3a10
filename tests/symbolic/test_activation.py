"""Activations given as SymPy expressions (:mod:`analytic_ntk.symbolic.activation`):
parsing and rejections, number lifting and keys, kinks, the moment check, the compiled
pointwise functions against SymPy/mpmath, and the closed-form recognition."""

from __future__ import annotations

import math
import threading

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytic_ntk import layers as L
from analytic_ntk.symbolic import activation as A

t, x, z = sp.symbols("t x z")

# (expression, kinks, closed form or None)
EXAMPLES = [
    ("tanh(t)", (), None),
    ("log(1 + exp(t))", (), None),
    ("t/(1+exp(-t))", (), None),
    ("1/(1+exp(-t))", (), None),
    ("t*(1+erf(t/sqrt(2)))/2", (), L.Gelu()),
    ("t*erfc(-t/sqrt(2))/2", (), L.Gelu()),
    ("Piecewise((t, t > 0), (exp(t) - 1, True))", (0.0,), None),
    ("Min(Max(t, -1), 1)", (-1.0, 1.0), None),
    ("Min(Max(t, 0), 6)", (0.0, 6.0), None),
    ("Max(t, 0)", (0.0,), L.Relu()),
    ("Abs(t)", (0.0,), L.Abs()),
    ("sign(t)", (0.0,), L.Sign()),
    ("Heaviside(t)", (0.0,), L.RectifiedMonomial(0)),
    ("sin(2*t + 0.3)", (), L.Sin(1.0, 2.0, 0.3)),
    ("1.7*erf(0.8*t) + 0.2", (), L.Erf(1.7, 0.8, 0.2)),
    ("t", (), L.Identity()),
    ("t**3", (), L.Monomial(3)),
    ("1 - 2*t + t**3", (), L.Polynomial((1.0, -2.0, 0.0, 1.0))),
    ("exp(-t**2)", (), L.Gaussian(1.0, -1.0)),
    ("2.5*exp(0.3*t)", (), L.Exp(2.5, 0.3)),
    ("Max(t, 0)**2", (0.0,), L.RectifiedMonomial(2)),
    ("0.1*Min(t, 0) + Max(t, 0)", (0.0,), L.LeakyRelu(0.1)),
    ("2*Max(t, 0) - 0.5*Min(t, 0)", (0.0,), L.ABRelu(-0.5, 2.0)),
    ("t*Heaviside(t)", (0.0,), L.Relu()),
    ("(sign(t) + 1)/2", (0.0,), L.RectifiedMonomial(0)),
    ("Piecewise((3*t, t > 0), (-t, True))", (0.0,), L.ABRelu(-1.0, 3.0)),
    ("2*cos(3*t - 1)", (), L.Cos(2.0, 3.0, -1.0)),
    ("exp(-t**2/2)/sqrt(2*pi)", (), L.Gaussian(1 / math.sqrt(2 * math.pi), -0.5)),
    ("3*erfc(2*t)", (), L.Erf(-3.0, 2.0, 3.0)),
    ("Piecewise((t**2, t > 0.5), (t - 0.25, True))", (0.5,), None),
    ("t*exp(-Abs(t))", (0.0,), None),
]
IDS = [e for e, _, _ in EXAMPLES]


def _mp(expr, xv, dps=150):
    """expr(xv) in mpmath at dps digits (enough for 1 + erf(-14) = 1e-88; independent of
    the compiled code)."""
    f = sp.lambdify(A.T, expr, modules="mpmath")
    with mpmath.workdps(dps):
        return f(mpmath.mpf(xv))


def _points(kinks):
    xs = np.concatenate([np.linspace(-6.0, 6.0, 23) + 0.0137, [-20.0, -9.3, 9.7, 20.0]])
    for k in kinks:
        xs = xs[np.abs(xs - k) > 1e-3]
    return xs


# ------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("expr,kinks,layer", EXAMPLES, ids=IDS)
def test_examples_parse_kinks_closed_form(expr, kinks, layer):
    p = A.parse(expr)
    assert p.kinks == kinks
    assert p.expr.free_symbols <= {A.T}
    got = A.closed_form(p)
    assert got == layer, (expr, got)
    # template with the parameter values substituted is the expression again
    subs = {sp.Symbol(f"p{i}", real=True): v for i, v in enumerate(p.params)}
    for xv in (-1.3, 0.4, 2.2):
        a = complex(_mp(p.expr, xv))
        b = complex(_mp(p.template.xreplace(subs), xv))
        assert abs(a - b) <= 1e-14 * max(1.0, abs(a))


def test_any_symbol_name_and_symbol_argument():
    a = A.parse("tanh(x)")
    b = A.parse(sp.tanh(z))
    c = A.parse(sp.tanh(t) + 0 * x, symbol="t")  # 0*x vanishes: t is the only symbol
    d = A.parse("beta**2", symbol="beta")
    assert a.expr == b.expr == c.expr == sp.tanh(A.T)
    assert d.expr == A.T**2
    assert A.parse(sp.Symbol("w", positive=True) ** 2).expr == A.T**2
    const = A.parse("0.5", symbol="t")
    assert const.params == (0.5,) and A.closed_form(const) == L.Polynomial((0.5,))


@pytest.mark.parametrize(
    "expr,symbol,match",
    [
        ("x*y", None, "more than one free symbol"),
        ("x*y", "x", "more than one free symbol"),
        ("x**2", "y", "does not occur"),
        ("3", None, "no free symbol"),
        ("t +", None, "could not parse"),
        ("erf(t) > 0", None, "scalar expression"),
        ("f(t)", None, "undefined function"),
        ("sqrt(t)", None, "not real"),
        ("log(t)", None, "not (real|finite)"),
        ("I*t", None, "not real"),
        ("asin(t)", None, "not real"),
        ("t**t", None, "not real"),
        ("1/t", None, "not finite"),
        ("1/(t - 0.3)", None, "not finite"),
        ("tan(t)", None, "not finite.*pi/2"),
        ("sec(2*t)", None, "not finite"),
        ("Piecewise((1/t, t > 0), (0, True))", None, "unbounded near t = 0"),
        ("Piecewise((t, t > 0))", None, "not finite"),
        ("exp(t**2)", None, "grows like exp"),
        ("exp(0.01*t**2)", None, "grows like exp"),
        ("t**10*exp(0.001*t**2)", None, "grows like exp"),
        ("exp(exp(t))", None, "faster than any"),
        ("exp(t**3)", None, "faster than any"),
        ("exp(exp(exp(t)))", None, "faster than any"),
        ("exp(1e-6*t**2)", None, "grows like exp"),  # decided by sympy.limit
        ("2**(t**2)", None, "grows like exp"),
        ("floor(t)", None, "infinitely many"),
        ("sign(sin(t))", None, "infinitely many"),
        ("Abs(t) + zoo", None, "not finite"),
    ],
)
def test_rejections(expr, symbol, match):
    with pytest.raises(ValueError, match=match):
        A.parse(expr, symbol)


def test_bad_symbol_argument():
    with pytest.raises(ValueError, match="symbol"):
        A.parse("t", symbol=3)
    with pytest.raises(ValueError, match="SymPy expression or a string"):
        A.parse(object())


# ------------------------------------------------------------------ lifting, keys


def test_number_lifting_example():
    p = A.parse("1.7*erf(0.8*t) + 0.2")
    p0, p1, p2 = (sp.Symbol(f"p{i}", real=True) for i in range(3))
    assert set(p.params) == {1.7, 0.8, 0.2}
    assert p.template.free_symbols == {A.T, p0, p1, p2}
    val = dict(zip((p0, p1, p2), p.params))
    a_sym = next(s for s in (p0, p1, p2) if val[s] == 1.7)
    b_sym = next(s for s in (p0, p1, p2) if val[s] == 0.8)
    c_sym = next(s for s in (p0, p1, p2) if val[s] == 0.2)
    assert p.template == a_sym * sp.erf(b_sym * A.T) + c_sym
    assert p.deriv_template == sp.diff(p.template, A.T)


def test_integers_stay_structural_and_keys():
    a = A.parse("sin(2*t + 0.3)")
    b = A.parse("sin(2*t + 1.1)")
    c = A.parse("sin(3*t + 0.3)")
    d = A.parse("sin(2.5*t + 0.3)")
    assert a.key == b.key and a.params == (0.3,) and b.params == (1.1,)
    assert c.key != a.key and d.key != a.key and len(d.params) == 2
    assert A.parse("t**2 + 0.5").key == A.parse("t**2 - 0.25").key
    assert A.parse("t**2 + 0.5").key != A.parse("t**3 + 0.5").key
    # Irrational constants are numbers too: t/sqrt(2) and 0.3*t share a structure.
    assert A.parse("t/sqrt(2)").key == A.parse("0.3*t").key == A.parse("t/2").key


def test_key_independent_of_value_order():
    """SymPy sorts terms partly by their coefficients; the template must not."""
    a = A.parse("0.3*exp(t) + 0.5*tanh(t)")
    b = A.parse("0.7*exp(t) + 0.1*tanh(t)")
    assert a.key == b.key
    assert a.phi_source == b.phi_source
    c = A.parse("exp(0.3*t) + exp(-0.5*t)")
    d = A.parse("exp(0.9*t) + exp(-0.2*t)")
    assert c.key == d.key


# -------------------------------------------------------------------------- kinks


@pytest.mark.parametrize(
    "expr,kinks",
    [
        ("Piecewise((1, t**2 < 1), (0, True))", (-1.0, 1.0)),
        ("Piecewise((t, Abs(t) < 2), (0, True))", (-2.0, 2.0)),
        ("Piecewise((t, t > 0.5), (0.5, True))", (0.5,)),
        ("Piecewise((t, t <= -1.5), (-1.5, True))", (-1.5,)),
        ("Piecewise((t**2, t > 0), (0, True))", (0.0,)),
        ("Piecewise((t, exp(t) > 2), (0, True))", (math.log(2.0),)),
        ("Max(t, 0, -t/2)", (0.0,)),
        ("Abs(t - 1) + Heaviside(t + 2)", (-2.0, 1.0)),
        ("sign(t**2 - 4)", (-2.0, 2.0)),
        ("tanh(t) + Max(t, 1.25)", (1.25,)),
    ],
)
def test_kinks(expr, kinks):
    assert A.parse(expr).kinks == pytest.approx(kinks, abs=1e-15)


def test_derivative_is_piecewise_and_drops_point_masses():
    assert A.parse("sign(t)").deriv == 0
    assert A.parse("Heaviside(t)").deriv == 0
    d = A.parse("Max(t, 0)").deriv
    assert isinstance(d, sp.Piecewise)
    assert d.subs(A.T, 2) == 1 and d.subs(A.T, -2) == 0
    assert not A.parse("Abs(t)").deriv.has(sp.sign)


# ------------------------------------------------------------------------- moments


def test_gaussian_growth_and_moment_check():
    gg = A.gaussian_growth
    assert gg(A.parse("exp(0.01*t**2)", moments=False)) == pytest.approx(0.01, rel=1e-6)
    assert gg(A.parse("3*exp(-t**2/2)")) == pytest.approx(-0.5, rel=1e-6)
    for e in ("tanh(t)", "t**7", "exp(5*t)", "sin(3*t)*t**2", "log(1+exp(t))"):
        assert gg(A.parse(e)) == 0.0, e
    assert gg(A.parse("Heaviside(t)")) == 0.0
    assert gg(A.parse("exp(-exp(exp(t)))")) == 0.0  # the left tail tends to 1/e
    assert gg(A.parse("exp(1e-6*t**2)", moments=False)) == pytest.approx(1e-6, rel=1e-6)
    assert gg(A.parse("exp(exp(t))", moments=False)) == math.inf
    p = A.parse("exp(0.01*t**2)", moments=False)
    with pytest.raises(ValueError, match="Gaussian moments"):
        A.check_moments(p)
    A.check_moments(A.parse("exp(-t**2)"))


def test_analyze_orders_closed_form_before_moments():
    parsed, layer = A.analyze("exp(0.01*t**2)")
    assert layer == L.Gaussian(1.0, 0.01) and parsed.params == (0.01,)
    parsed, layer = A.analyze("tanh(x)")
    assert layer is None and parsed.expr == sp.tanh(A.T)
    with pytest.raises(ValueError, match="Gaussian moments"):
        A.analyze("exp(0.01*t**2)*tanh(t)")


def test_moment_check_off_main_thread():
    """No SIGALRM there: the numerical reading alone decides."""
    out = {}

    def work():
        try:
            A.parse("exp(0.001*t**2)*t**3")
        except ValueError as exc:
            out["err"] = str(exc)
        out["ok"] = A.parse("tanh(t)*t**3").kinks

    th = threading.Thread(target=work)
    th.start()
    th.join()
    assert "grows like exp" in out["err"] and out["ok"] == ()


# -------------------------------------------------------------------- compilation


@pytest.mark.parametrize("expr,kinks,layer", EXAMPLES, ids=IDS)
def test_compiled_functions(expr, kinks, layer):
    """phi and dphi against mpmath (1e-13), the SymPy derivative against a 40-digit
    central difference (1e-13), and dphi against a float64 central difference."""
    p = A.parse(expr)
    phi, dphi = A.compile_pointwise(p)
    par = np.asarray(p.params, dtype=np.float64)
    xs = _points(p.kinks)
    vals = np.array([phi(xv, par) for xv in xs])
    ders = np.array([dphi(xv, par) for xv in xs])
    ref = np.array([float(mpmath.re(_mp(p.expr, xv))) for xv in xs])
    dref = np.array([float(mpmath.re(_mp(p.deriv, xv))) for xv in xs])
    scale = max(1.0, float(np.max(np.abs(ref))))
    assert np.all(np.abs(vals - ref) <= 1e-13 * np.abs(ref) + 1e-300), expr
    dscale = float(np.max(np.abs(dref)))
    assert np.all(np.abs(ders - dref) <= 1e-13 * np.abs(dref) + 1e-16 * dscale), expr
    f = sp.lambdify(A.T, p.expr, modules="mpmath")
    with mpmath.workdps(40):
        h = mpmath.mpf(10) ** -15
        for xv, d in zip(xs[::3], dref[::3]):
            fd = (f(mpmath.mpf(xv) + h) - f(mpmath.mpf(xv) - h)) / (2 * h)
            assert abs(float(mpmath.re(fd)) - d) <= 1e-13 * max(abs(d), 1e-3 * scale), expr
    hh = 1e-6
    fd64 = np.array([(phi(xv + hh, par) - phi(xv - hh, par)) / (2 * hh) for xv in xs])
    assert np.all(np.abs(fd64 - ders) <= 1e-6 * (1.0 + np.abs(ders) + np.abs(vals))), expr


def test_compile_cache_by_key():
    a = A.parse("0.3*sin(1.7*t) + 0.1*t**2")
    b = A.parse("-1.2*sin(0.4*t) + 2.5*t**2")
    assert a.key == b.key
    fa = A.compile_pointwise(a)
    fb = A.compile_pointwise(b)
    assert fa[0] is fb[0] and fa[1] is fb[1]
    pb = np.asarray(b.params)
    assert fb[0](0.7, pb) == pytest.approx(-1.2 * math.sin(0.28) + 2.5 * 0.49, rel=1e-15)


def test_sources_use_only_math():
    p = A.parse("log(1 + exp(0.5*t)) + erf(t) + Max(t, 0.2)")
    for src, name in ((p.phi_source, "phi"), (p.dphi_source, "dphi")):
        assert src.startswith(f"def {name}(t, p):\n    return ")
        ns = {"math": math, "__builtins__": __builtins__}
        exec(src, ns)
        assert math.isfinite(ns[name](0.3, np.asarray(p.params)))
    assert "p[" in p.phi_source and "sympy" not in p.phi_source


def test_stable_printing_in_the_tails():
    """softplus far right, gelu far left, elu near 0: no overflow or cancellation."""
    p = A.parse("log(1 + exp(t))")
    phi, _ = A.compile_pointwise(p)
    assert phi(800.0, np.zeros(0)) == 800.0
    assert phi(-40.0, np.zeros(0)) == pytest.approx(math.exp(-40.0), rel=1e-15)
    g = A.parse("t*(1 + erf(t/sqrt(2)))/2")
    phi, _ = A.compile_pointwise(g)
    ref = float(_mp(g.expr, -9.0))
    assert phi(-9.0, np.asarray(g.params)) == pytest.approx(ref, rel=1e-13)
    e = A.parse("Piecewise((t, t > 0), (exp(t) - 1, True))")
    phi, _ = A.compile_pointwise(e)
    assert phi(-1e-9, np.zeros(0)) == pytest.approx(math.expm1(-1e-9), rel=1e-15)


def test_unsupported_function_named_at_compile_time():
    p = A.parse("besselj(0, t)")
    with pytest.raises(ValueError, match="besselj"):
        A.compile_pointwise(p)


# -------------------------------------------------------------------- closed forms


def test_closed_form_rejects_near_misses():
    assert A.closed_form(A.parse("0.5*t*(1 + erf(0.7071*t))")) is None  # not exactly gelu
    assert A.closed_form(A.parse("erf(t - 1)")) is None
    assert A.closed_form(A.parse("sin(t) + 1")) is None
    assert A.closed_form(A.parse("exp(-(t - 1)**2)")) is None
    assert A.closed_form(A.parse("2*sign(t)")) is None
    assert A.closed_form(A.parse("Max(t, 1)")) is None
    assert A.closed_form(A.parse("t**2*Heaviside(t)")) == L.RectifiedMonomial(2)


finite = st.floats(0.05, 5.0, allow_nan=False).filter(lambda v: not float(v).is_integer())
sign = st.sampled_from([1.0, -1.0])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=finite, b=finite, c=finite, sa=sign, sc=sign)
def test_erf_family_random_parameters(a, b, c, sa, sc):
    a, c = sa * a, sc * c
    expr = sp.Float(a) * sp.erf(sp.Float(b) * t) + sp.Float(c)
    p = A.parse(expr)
    assert p.key == A.parse("1.7*erf(0.8*t) + 0.2").key
    assert sorted(p.params) == sorted((a, b, c))
    assert A.closed_form(p) == L.Erf(a, b, c)
    # a negative slope is folded into the amplitude (erf is odd)
    q = A.parse(sp.Float(a) * sp.erf(sp.Float(-b) * t) + sp.Float(c))
    assert A.closed_form(q) == L.Erf(-a, b, c)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=finite, b=finite, sa=sign, sb=sign)
def test_abrelu_random_parameters(a, b, sa, sb):
    a, b = sa * a, sb * b
    p = A.parse(sp.Float(a) * sp.Min(t, 0) + sp.Float(b) * sp.Max(t, 0))
    assert A.closed_form(p) == L.ABRelu(a, b)
