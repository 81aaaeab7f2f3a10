"""User activations given as SymPy expressions: parsing, checks, code and closed forms.

An activation ``phi`` is given as a SymPy expression (or a string SymPy can parse) in
one free symbol. :func:`parse` turns it into a :class:`ParsedActivation` holding
everything the numerical side needs:

* the expression and its derivative in the canonical variable :data:`T`
  (the derivative is the classical one, taken after ``Abs``, ``sign``,
  ``Heaviside``, ``Min`` and ``Max`` are rewritten as ``Piecewise``; point masses
  such as ``DiracDelta`` from jumps are dropped, as in ``stax.Sign``);
* a *template*: the expression with its non-integer numbers lifted to parameters
  ``p0, p1, ...`` (integers, integer exponents included, stay structural), the
  parameter values, and a structural ``key`` shared by all expressions that differ
  only in those numbers;
* the points where ``phi``, ``phi'`` or ``phi''`` is not smooth (``kinks``), for
  quadrature rules that split there;
* Python sources of ``phi(t, p)`` and ``dphi(t, p)`` using only :mod:`math` and
  builtins, which :func:`compile_pointwise` compiles with ``numba.njit`` once per
  ``key`` (random parameter values of one structure reuse the compiled code).

:func:`parse` rejects, with a ``ValueError`` naming the problem: several free
symbols, a constant without ``symbol=``, unparseable strings, expressions that are
not real or not finite somewhere on the real line, infinitely many breakpoints, and
(unless ``moments=False``) expressions whose Gaussian moments do not exist, that is,
that grow like ``exp(a t^2)`` (``a > 0``) or faster at ``+-infinity``.

:func:`closed_form` recognises the library's closed-form activations
(``Relu``, ``ABRelu``, ``Erf``, ``Sin``, ``Gaussian``, ...) and returns the layer,
verified numerically, or ``None``.

Ordering of the moment check and the closed forms
-------------------------------------------------
``a exp(b t^2)`` with ``b > 0`` is the closed family ``Gaussian(a, b)``, whose
moments exist only for variances below ``1 / (2b)`` (the layer checks that when the
kernel is evaluated); for any other expression such growth is an error. The moment
check is therefore a separate function, :func:`check_moments` (built on
:func:`gaussian_growth`), which :func:`parse` calls last unless ``moments=False``.
A caller that accepts closed forms first does what :func:`analyze` does::

    parsed = parse(expr, symbol, moments=False)
    layer = closed_form(parsed)        # e.g. Gaussian(1.0, 0.01) for exp(0.01*t**2)
    if layer is None:
        check_moments(parsed)          # raises for exp(0.01*t**2)-like growth
        phi, dphi = compile_pointwise(parsed)
"""

from __future__ import annotations

import functools
import math
import re
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

import mpmath
import numpy as np
import sympy
from sympy.codegen.cfunctions import expm1, log1p
from sympy.core.function import AppliedUndef
from sympy.functions.elementary.integers import RoundFunction, frac
from sympy.printing.pycode import PythonCodePrinter

__all__ = [
    "T",
    "ParsedActivation",
    "parse",
    "check_moments",
    "gaussian_growth",
    "closed_form",
    "analyze",
    "compile_pointwise",
]

T = sympy.Symbol("t", real=True)
"""The canonical variable of every parsed activation."""

_PARAM_RE = re.compile(r"p(\d+)")
_JUMPS = (sympy.Abs, sympy.sign, sympy.Heaviside, sympy.Max, sympy.Min)
_NONFINITE = (sympy.nan, sympy.zoo, sympy.oo, -sympy.oo)

# Sample points of the real-line checks: small, moderate and large |t|, with
# irregular values so that isolated bad points of simple forms are not skipped.
_SAMPLES = (
    0.0, 1e-8, 1e-3, 0.1, 0.37, 0.5, 1.0, 1.41, 2.0, 2.72, 3.14, 5.0, 7.7, 10.0,
    23.0, 50.0, 100.0, 317.0, 1000.0,
)
# Points for the numerical verification of closed forms (none is 0, a common kink).
_VERIFY_POINTS = (
    0.137, 0.31, 0.59, 0.83, 1.07, 1.42, 1.77, 2.23, 2.81, 3.61,
    -0.113, -0.29, -0.61, -0.87, -1.13, -1.46, -1.79, -2.27, -2.93, -3.53,
)


@dataclass(frozen=True)
class ParsedActivation:
    """An activation ``phi(t)`` analysed by :func:`parse`.

    Attributes
    ----------
    expr : sympy.Expr
        The activation in :data:`T`, numbers kept as given.
    deriv : sympy.Expr
        ``d expr / dT`` (``Piecewise`` form where ``expr`` has jumps or kinks; the
        value exactly at a kink is immaterial, point masses are dropped).
    template : sympy.Expr
        ``expr`` with its non-integer numeric constants replaced by the symbols
        ``p0, p1, ...`` (``sympy.Symbol(f"p{i}", real=True)``).
    deriv_template : sympy.Expr
        ``d template / dT``, sharing the parameters ``p_i``.
    params : tuple of float
        The values of ``p0, p1, ...``.
    kinks : tuple of float
        Sorted distinct finite points where ``phi``, ``phi'`` or ``phi''`` is not
        smooth (``Piecewise`` boundaries, switch points of ``Min``, ``Max``,
        ``Abs``, ``sign`` and ``Heaviside``); ``()`` for smooth activations.
    phi_source, dphi_source : str
        Python sources ``def phi(t, p): ...`` and ``def dphi(t, p): ...`` using
        only :mod:`math` and builtins (``p`` is a float64 array of ``params``).
    key : str
        Structural key (``srepr`` of the template): equal for two expressions that
        differ only in their non-integer numbers.
    """

    expr: sympy.Expr
    deriv: sympy.Expr
    template: sympy.Expr
    deriv_template: sympy.Expr
    params: tuple[float, ...]
    kinks: tuple[float, ...]
    phi_source: str
    dphi_source: str
    key: str


# ------------------------------------------------------------------------ parse


def parse(
    expr: sympy.Expr | str,
    symbol: sympy.Symbol | str | None = None,
    *,
    moments: bool = True,
) -> ParsedActivation:
    """Analyse an activation given as a SymPy expression or a string.

    Parameters
    ----------
    expr : sympy.Expr or str
        The activation, e.g. ``"log(1 + exp(x))"`` or ``sympy.tanh(z)``. Its one
        free symbol (any name) is replaced by :data:`T`. Strings are parsed by
        :func:`sympy.sympify` (which evaluates Python code: do not pass untrusted
        strings).
    symbol : sympy.Symbol or str, optional
        The variable, needed when ``expr`` has no free symbol (a constant
        activation) and allowed otherwise (it must then be the free symbol).
        Matched by name.
    moments : bool
        Run :func:`check_moments` (default). Pass ``False`` to look for a closed
        form first (see the module docstring and :func:`analyze`).

    Returns
    -------
    ParsedActivation

    Raises
    ------
    ValueError
        For an unparseable string, several free symbols, a constant without
        ``symbol``, an expression that is not real or not finite somewhere on the
        real line (or whose derivative is not, away from the kinks), infinitely
        many or non-numeric breakpoints, and (with ``moments``) growth like
        ``exp(a t^2)``, ``a > 0``, or faster.
    """
    e = _to_expr(expr, symbol)
    _check_structure(e)
    exact_kinks = _kink_points(e)
    deriv = _derivative(e)
    exact_kinks = sorted(set(exact_kinks) | set(_kink_points(deriv)), key=lambda k: float(k))
    kinks = tuple(sorted({float(k) for k in exact_kinks}))
    _check_real_line(e, deriv, exact_kinks)

    template, params = _lift_numbers(e)
    deriv_template = _derivative(template)
    parsed = ParsedActivation(
        expr=e,
        deriv=deriv,
        template=template,
        deriv_template=deriv_template,
        params=tuple(params),
        kinks=kinks,
        phi_source=_source("phi", template),
        dphi_source=_source("dphi", deriv_template),
        key=sympy.srepr(template),
    )
    if moments:
        check_moments(parsed)
    return parsed


def _to_expr(expr, symbol) -> sympy.Expr:
    """Sympify ``expr`` and substitute its variable by :data:`T`."""
    sym_name = None
    if symbol is not None:
        if isinstance(symbol, str):
            sym_name = symbol.strip()
            if not sym_name.isidentifier():
                raise ValueError(f"symbol must be a valid name, got {symbol!r}")
        elif isinstance(symbol, sympy.Symbol):
            sym_name = symbol.name
        else:
            raise ValueError(f"symbol must be a sympy Symbol or a name, got {symbol!r}")

    if isinstance(expr, str):
        local = {sym_name: sympy.Symbol(sym_name)} if sym_name else {}
        try:
            e = sympy.sympify(expr, locals=local)
        except Exception as exc:  # SympifyError, SyntaxError, TokenError, TypeError, ...
            raise ValueError(f"could not parse the activation string {expr!r}: {exc}") from exc
    elif isinstance(expr, sympy.Basic):
        e = expr
    else:
        try:
            e = sympy.sympify(expr, strict=True)
        except Exception as exc:
            raise ValueError(
                f"activation must be a SymPy expression or a string, got {expr!r}"
            ) from exc
    if not isinstance(e, sympy.Expr):
        raise ValueError(
            f"activation must be a scalar expression, got {e!r} ({type(e).__name__})"
        )

    free = e.free_symbols
    if sym_name is not None:
        mine = {s for s in free if s.name == sym_name}
        others = free - mine
        if others:
            names = ", ".join(sorted(s.name for s in free))
            if mine:
                raise ValueError(
                    f"activation {e} has more than one free symbol ({names}); "
                    "it must depend on one variable only"
                )
            raise ValueError(
                f"symbol {sym_name!r} does not occur in the activation {e}, "
                f"whose free symbols are {names}"
            )
    else:
        if len(free) > 1:
            names = ", ".join(sorted(s.name for s in free))
            raise ValueError(
                f"activation {e} has more than one free symbol ({names}); "
                "it must depend on one variable only"
            )
        if not free:
            raise ValueError(
                f"activation {e} has no free symbol; pass symbol= to use a constant activation"
            )
        mine = free
    return e.xreplace({s: T for s in mine})


def _check_structure(e: sympy.Expr) -> None:
    """Reject forms that no numerical check is needed to rule out."""
    undef = e.atoms(AppliedUndef)
    if undef:
        names = ", ".join(sorted({str(f.func) for f in undef}))
        raise ValueError(f"activation {e} contains undefined function(s) {names}")
    for bad in _NONFINITE:
        if e.has(bad):
            raise ValueError(f"activation {e} is not finite: it contains {bad}")
    for node in sympy.preorder_traversal(e):
        if isinstance(node, (RoundFunction, frac, sympy.Mod)) and node.has(T):
            raise ValueError(
                f"activation {e} has infinitely many breakpoints ({node}); "
                "only finitely many kinks are supported"
            )


def _to_piecewise(e: sympy.Expr) -> sympy.Expr:
    """Rewrite ``Abs``, ``sign``, ``Heaviside``, ``Min`` and ``Max`` as ``Piecewise``."""
    if not e.has(*_JUMPS):
        return e
    return e.rewrite(list(_JUMPS), sympy.Piecewise)


def _derivative(e: sympy.Expr) -> sympy.Expr:
    """Classical derivative in T (Piecewise form; point masses dropped)."""
    d = sympy.diff(_to_piecewise(e), T)
    if d.has(sympy.DiracDelta):
        d = d.replace(lambda n: isinstance(n, sympy.DiracDelta), lambda n: sympy.S.Zero)
    if d.has(sympy.Piecewise):
        try:
            d = sympy.piecewise_fold(d)
        except Exception:  # pragma: no cover - folding is cosmetic
            pass
    return d


# ------------------------------------------------------------------------ kinks


def _kink_points(e: sympy.Expr) -> set:
    """Exact finite real points where the Piecewise form of ``e`` switches branch."""
    pe = _to_piecewise(e)
    points: set = set()
    for node in sympy.preorder_traversal(pe):
        if not isinstance(node, sympy.Piecewise):
            continue
        for _, cond in node.args:
            if isinstance(cond, sympy.logic.boolalg.BooleanAtom) or not cond.has(T):
                continue
            points |= _condition_boundary(cond, e)
    return points


def _condition_boundary(cond, e) -> set:
    try:
        boundary = cond.as_set().boundary
    except Exception:
        boundary = None
    if isinstance(boundary, sympy.FiniteSet):
        return {_finite_point(p, cond, e) for p in boundary if p not in (sympy.oo, -sympy.oo)}
    # Fall back to the zeros of each relational's two sides.
    points: set = set()
    for rel in cond.atoms(sympy.core.relational.Relational):
        g = rel.lhs - rel.rhs
        if not g.has(T):
            continue
        try:
            sol = sympy.solveset(g, T, sympy.S.Reals)
        except Exception as exc:
            raise ValueError(
                f"cannot locate the breakpoints of the condition {cond} in {e}: {exc}"
            ) from exc
        if isinstance(sol, sympy.FiniteSet):
            pts = sol
        elif isinstance(sol, (sympy.Interval, sympy.Union)) and not sol.has(sympy.ImageSet):
            pts = sol.boundary
            if not isinstance(pts, sympy.FiniteSet):
                raise ValueError(f"cannot locate the breakpoints of the condition {cond} in {e}")
        elif sol.has(sympy.ImageSet):
            raise ValueError(
                f"activation {e} has infinitely many breakpoints (condition {cond}); "
                "only finitely many kinks are supported"
            )
        else:
            raise ValueError(
                f"cannot locate the breakpoints of the condition {cond} in {e} (got {sol})"
            )
        points |= {_finite_point(p, cond, e) for p in pts if p not in (sympy.oo, -sympy.oo)}
    return points


def _finite_point(p, cond, e):
    if not (isinstance(p, sympy.Expr) and p.is_number):
        raise ValueError(f"non-numeric breakpoint {p} of the condition {cond} in {e}")
    if p.is_extended_real is False:
        raise ValueError(f"non-real breakpoint {p} of the condition {cond} in {e}")
    v = float(sympy.N(p, 20))
    if not math.isfinite(v):
        raise ValueError(f"breakpoint {p} of the condition {cond} in {e} is not finite")
    return p


# ------------------------------------------------------------- numeric evaluation


_POLE = "pole"  # _evalf: the expression has no finite value there
_OVERFLOW = "overflow"  # _evalf: finite perhaps, but beyond any exponent range


_EXP_LIMIT = 1e15  # mpmath's exp slows to a crawl far beyond this (exp(exp(exp(10))))


_GUARD = threading.local()


def _guarded(name: str):
    """mpmath's ``name`` returning +-inf (and noting it) for arguments beyond 1e15."""
    fn = getattr(mpmath, name)

    def f(x):
        r = mpmath.re(x)
        if abs(r) > _EXP_LIMIT:
            if name == "exp" and r < 0:
                return mpmath.mpf(0)  # below exp(-1e15): harmless underflow
            _GUARD.hit = True
            return mpmath.inf if (name != "sinh" or r > 0) else -mpmath.inf
        return fn(x)

    return f


_MP_OVERRIDES = {name: _guarded(name) for name in ("exp", "cosh", "sinh")}


@functools.lru_cache(maxsize=512)
def _mp_function(e: sympy.Expr):
    try:
        return sympy.lambdify(T, e, modules=[_MP_OVERRIDES, "mpmath"])
    except Exception:
        return None


def _evalf(e: sympy.Expr, x, dps: int = 30):
    """``e`` at ``x`` in ``dps``-digit mpmath arithmetic.

    ``x`` is a float or an exact SymPy number. Fixed precision (SymPy's adaptive
    ``evalf`` can take minutes resolving cancellations such as ``1 + erf(-700)``).
    Returns an mpmath number, ``_POLE`` where ``e`` has no finite value (division
    by zero, an undefined Piecewise branch, or SymPy's exact value is infinite),
    or None when it cannot be evaluated.
    """
    exact = isinstance(x, sympy.Basic)
    if exact and not x.is_Rational:
        try:
            sv = e.xreplace({T: x})
        except Exception:
            sv = None
        if isinstance(sv, sympy.Expr) and sv.has(*_NONFINITE):
            return _POLE
    f = _mp_function(e)
    if f is not None:
        _GUARD.hit = False
        with mpmath.workdps(dps):
            try:
                xv = mpmath.mpf(sympy.N(x, dps + 10)) if exact else mpmath.mpf(x)
                v = f(xv)
            except ZeroDivisionError:
                return _POLE
            except OverflowError:
                return _OVERFLOW  # beyond mpmath's exponent range
            except Exception:
                v = _sympy_value(e, x, dps)
            else:
                if v is None:
                    return _POLE
                if _GUARD.hit and _classify(v) != "ok":
                    return _OVERFLOW  # e.g. exp(exp(exp(10))): too large, not infinite
            return v
    return _sympy_value(e, x, dps)


def _sympy_value(e: sympy.Expr, x, dps: int):
    """Fallback of :func:`_evalf`: SymPy's exact substitution and ``evalf``."""
    if not isinstance(x, sympy.Basic):
        x = sympy.Rational(x)
    try:
        v = e.xreplace({T: x})
        if v.has(*_NONFINITE):
            return _POLE
        v = v.evalf(dps, maxn=max(100, 2 * dps))
        if v.has(*_NONFINITE):
            return _POLE
        if not v.is_number:
            return None
        return mpmath.mpmathify(complex(v))
    except Exception:
        return None


def _classify(v) -> str:
    """'ok', 'nonreal', 'nonfinite', 'overflow' or 'unknown' for a value from :func:`_evalf`."""
    if v is None:
        return "unknown"
    if v is _OVERFLOW:
        return "overflow"
    if isinstance(v, str):
        return "nonfinite"
    try:
        v = mpmath.mpmathify(v)
    except Exception:
        return "unknown"
    if isinstance(v, mpmath.mpc):
        re_, im_ = v.real, v.imag
    else:
        re_, im_ = v, mpmath.mpf(0)
    if not (mpmath.isfinite(re_) and mpmath.isfinite(im_)):
        return "nonfinite"
    if abs(im_) > 1e-20 * max(1, abs(re_)):
        return "nonreal"
    return "ok"


def _to_float(v) -> float:
    """Real part of a value from :func:`_evalf` as a float (inf on overflow, nan on failure)."""
    try:
        return float(mpmath.re(mpmath.mpmathify(v)))
    except Exception:
        return math.nan


def _check_real_line(e: sympy.Expr, deriv: sympy.Expr, kinks: list) -> None:
    """Reject ``e`` if it is not real or not finite at some real point.

    Samples ``e`` at fixed points (both signs, up to ``|t| = 1000``) and around every
    kink, and at the real points that SymPy's ``continuous_domain`` excludes for its
    subexpressions (poles of ``1/g``, ``tan``, ...); there, and at the kinks, it
    also checks that ``e`` stays bounded. The derivative is checked at the samples
    that are not kinks.
    """
    points: list = []
    for s in _SAMPLES:
        points.append(sympy.Rational(s))
        if s:
            points.append(sympy.Rational(-s))
    near = []
    for k in kinks:
        kf = float(sympy.N(k, 20))
        near.append(k)
        for h in (1e-8, 1e-3, 0.3):
            d = sympy.Rational(h * (1.0 + abs(kf)))
            near.extend((k - d, k + d))
    for x in points + near:
        _require_ok(e, x, "activation")
    kink_set = {float(sympy.N(k, 20)) for k in kinks}
    for x in points + near:
        if float(sympy.N(x, 20)) in kink_set:
            continue
        _require_ok(deriv, x, "derivative of the activation", e)

    candidates = list(kinks) + _singular_candidates(e)
    for c in candidates:
        _require_ok(e, c, "activation")
        if _blows_up(e, c):
            raise ValueError(
                f"activation {e} is not finite on the real line: it is unbounded near "
                f"{_where(c)}"
            )


def _require_ok(e, x, what, parent=None) -> None:
    status = _classify(_evalf(e, x))
    if status in ("ok", "unknown", "overflow"):
        return  # astronomically large values are the moment check's business
    shown = parent if parent is not None else e
    where = _where(x)
    if status == "nonreal":
        raise ValueError(
            f"{what} {shown} is not real on the real line: complex value at {where}"
        )
    raise ValueError(f"{what} {shown} is not finite on the real line: no finite value at {where}")


def _where(x) -> str:
    xf = float(sympy.N(x, 17))
    if x.is_Rational or x.is_Float:
        return f"t = {xf!r}"
    return f"t = {x} (~{xf!r})"


def _blows_up(e, c) -> bool:
    """True when ``|e|`` grows without bound as ``t -> c`` (from either side)."""
    for sgn in (1, -1):
        far = _evalf(e, c + sgn * sympy.Rational(1, 10**12), 60)
        close = _evalf(e, c + sgn * sympy.Rational(1, 10**40), 60)
        if _classify(far) != "ok" or _classify(close) != "ok":
            continue
        a_far = abs(_to_float(far))
        a_close = abs(_to_float(close))
        if math.isinf(a_close) or a_close > 1e10 * max(1.0, a_far):
            return True
    return False


def _singular_candidates(e: sympy.Expr, limit: int = 24) -> list:
    """Real points excluded from the continuous domain of smooth subexpressions."""
    from sympy.calculus.util import continuous_domain

    out: list = []
    seen: set = set()
    for node in sympy.preorder_traversal(e):
        if len(out) >= limit:
            break
        if not isinstance(node, sympy.Expr) or node.is_Atom or not node.has(T):
            continue
        if node.has(sympy.Piecewise, *_JUMPS) or node in seen:
            continue
        seen.add(node)
        if isinstance(node, (sympy.Add, sympy.Mul)) or (
            isinstance(node, sympy.Pow) and node.exp.is_Integer and node.exp > 0
        ):
            continue  # continuous wherever its factors/terms are
        dom = _time_limited(lambda node=node: continuous_domain(node, T, sympy.S.Reals), 2.0)
        if dom is None or dom == sympy.S.Reals:
            continue
        try:
            if isinstance(dom, sympy.Complement) and dom.args[0] == sympy.S.Reals:
                bad = dom.args[1]
            else:
                bad = sympy.S.Reals - dom
        except Exception:
            continue
        out.extend(_set_points(bad))
    return out[:limit]


def _set_points(s) -> list:
    """A few representative exact points of a subset of the reals."""
    if s is sympy.S.EmptySet:
        return []
    if isinstance(s, sympy.FiniteSet):
        return [p for p in s if p.is_number and p.is_extended_real][:8]
    if isinstance(s, sympy.Union):
        pts: list = []
        for a in s.args:
            pts.extend(_set_points(a))
        return pts
    if isinstance(s, sympy.Interval):
        pts = [p for p in (s.start, s.end) if p.is_finite]
        if s.start.is_finite and s.end.is_finite:
            pts.append((s.start + s.end) / 2)
        elif s.start.is_finite:
            pts.append(s.start + 1)
        elif s.end.is_finite:
            pts.append(s.end - 1)
        else:
            pts.append(sympy.S.Zero)
        return pts
    if isinstance(s, sympy.ImageSet):
        lam = s.lamda
        if len(lam.variables) == 1 and s.base_sets[0] is sympy.S.Integers:
            pts = [lam(n) for n in (0, 1, -1, 2, -2)]
            return [p for p in pts if p.is_number and p.is_extended_real]
        return []
    if (
        isinstance(s, sympy.Complement)
        and s.args[0] == sympy.S.Reals
        and isinstance(s.args[1], sympy.Complement)
        and s.args[1].args[0] == sympy.S.Reals
    ):
        return _set_points(s.args[1].args[1])
    if isinstance(s, (sympy.Intersection, sympy.Complement)):
        for a in s.args:
            if isinstance(a, (sympy.FiniteSet, sympy.ImageSet, sympy.Union)):
                return [p for p in _set_points(a) if s.contains(p) is sympy.true]
    return []


# ---------------------------------------------------------------------- moments


def gaussian_growth(parsed: ParsedActivation, *, time_budget: float = 3.0) -> float:
    """Gaussian growth rate ``lim log|phi(t)| / t^2`` as ``t -> +-infinity``.

    The larger of the two tails: ``0.0`` for polynomial or exponential growth and
    for bounded functions, ``b`` for ``a exp(b t^2)`` (negative when ``phi``
    decays like a Gaussian, ``-inf`` when it vanishes identically in a tail),
    ``inf`` for ``exp(exp(t))``-like growth. The Gaussian moments of ``phi`` exist
    for all variances exactly when the rate is ``<= 0`` (borderline growth such as
    ``exp(t^2 / log t)`` aside).

    Each tail expression (``Piecewise`` branches fixed beyond the last kink) is
    first read numerically, from ``log|phi|`` at ``|t|`` = 128 ... 1024 in
    multiple precision (fast, deterministic; decides Gaussian growth with rates
    above about ``1e-5`` and every ordinary sub-Gaussian form). The cases this leaves
    open (a small positive rate) go to :func:`sympy.limit`, limited to
    ``time_budget`` seconds where a timer can be set (the main thread; elsewhere
    unlimited); without an answer the numerical estimate stands. Rates below about
    ``1e-5`` hidden behind a polynomial factor (``t^2 exp(1e-6 t^2)``) read as 0.
    """
    rates = []
    far = sympy.Integer(int(max((abs(k) for k in parsed.kinks), default=0.0)) + 2)
    for side in (1, -1):
        tail = _collapse(parsed.expr, side * far)
        if side < 0:
            tail = tail.xreplace({T: -T})
        rates.append(_tail_rate(tail, time_budget))
    return max(rates)


def check_moments(parsed: ParsedActivation) -> None:
    """Raise ``ValueError`` unless the Gaussian moments of ``phi`` exist for all variances.

    That is the case when ``phi`` grows slower than ``exp(a t^2)`` for every
    ``a > 0`` (see :func:`gaussian_growth`). The closed family ``Gaussian(a, b)``,
    ``b > 0``, fails this check: look for closed forms first (:func:`analyze`).
    """
    rate = gaussian_growth(parsed)
    if rate > 0:
        how = (
            "faster than any exp(a t^2)"
            if math.isinf(rate)
            else f"like exp({rate:.6g} t^2) or faster"
        )
        raise ValueError(
            f"activation {parsed.expr} grows {how} at +-infinity: its Gaussian moments "
            "E[phi(u)^2] do not exist for all variances"
        )


def _collapse(e: sympy.Expr, t0) -> sympy.Expr:
    """The branch of ``e`` that is active at ``t0`` (and beyond the last kink)."""
    pe = _to_piecewise(e)
    if not pe.has(sympy.Piecewise):
        return pe

    def pick(pw):
        for ex, cond in pw.args:
            try:
                active = bool(cond.xreplace({T: t0}))
            except TypeError:
                return sympy.nan
            if active:
                return ex
        return sympy.nan

    return pe.replace(lambda n: isinstance(n, sympy.Piecewise), pick)


def _tail_rate(g: sympy.Expr, time_budget: float) -> float:
    """``lim_{t -> +oo} log|g(t)| / t^2`` for a smooth tail expression ``g``."""
    if g == 0:
        return -math.inf
    if not g.has(T) or g.is_polynomial(T):
        return 0.0
    rate, clear = _numeric_tail_rate(g)
    if clear:
        return rate
    res = _time_limited(
        lambda: sympy.limit(sympy.log(sympy.Abs(g)) / T**2, T, sympy.oo), time_budget
    )
    if isinstance(res, sympy.Expr) and res.is_number:
        if res is sympy.oo:
            return math.inf
        if res is sympy.S.NegativeInfinity:
            return -math.inf
        if res.is_extended_real and res.is_finite:
            return float(res)
    return rate


def _numeric_tail_rate(g: sympy.Expr) -> tuple[float, bool]:
    """Estimate ``lim log|g| / t^2`` from ``H(t) = log|g(t)|`` at t = 128 ... 1024.

    Returns the estimate and whether it is clear-cut. With
    ``a_i = (H(t_{i+1}) - H(t_i)) / (t_{i+1}^2 - t_i^2)``: Gaussian growth (or
    decay) shows as three nearly equal ``a_i`` (clear when ``H`` changes by more
    than 5 between 512 and 1024, otherwise left to :func:`sympy.limit`); growth
    like ``exp(t^3)`` as increasing positive ``a_i``; anything else (polynomial,
    exponential, bounded, oscillating) reads as rate 0.
    """

    def H(t):
        best, at = -math.inf, float(t)
        for off in (0, 1, 2, 3, 4):
            x = sympy.Integer(t) + sympy.Rational(off * 7, 11)
            v = _evalf(g, x, 30)
            status = _classify(v)
            if status == "overflow" or (
                status == "nonfinite" and not isinstance(v, str) and mpmath.isinf(v)
            ):
                return math.inf, at
            if status != "ok" or v == 0:
                continue
            with mpmath.workdps(30):
                lv = _to_float(mpmath.log(abs(mpmath.mpmathify(v))))
            if not math.isnan(lv) and lv > best:
                best, at = lv, float(x)
        return best, at

    hts = [H(t) for t in (128, 256, 512, 1024)]
    hs = [h for h, _ in hts]
    ts = [x for _, x in hts]
    if math.inf in hs:
        return math.inf, True
    if hs[-1] == -math.inf:
        return -math.inf, True
    if -math.inf in hs:
        return 0.0, True
    a = [(hs[i + 1] - hs[i]) / (ts[i + 1] ** 2 - ts[i] ** 2) for i in range(3)]
    jump = hs[3] - hs[2]
    if a[2] > 1e6:
        return math.inf, True

    def steady(x, y):
        return x * y > 0 and 0.8 <= y / x <= 1.25

    if steady(a[0], a[1]) and steady(a[1], a[2]):
        return a[2], abs(jump) > 5
    if 0 < 1.25 * a[1] < a[2] and jump > 5:
        return math.inf, True
    return 0.0, True


class _Timeout(Exception):
    pass


def _time_limited(fn: Callable, seconds: float):
    """``fn()``, or None when it raises or takes longer than ``seconds``.

    The limit uses ``SIGALRM``, so it applies in the main thread only and when no
    other real-time timer is pending; elsewhere ``fn`` runs without a limit.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or not hasattr(signal, "setitimer")
        or signal.getitimer(signal.ITIMER_REAL)[0] > 0
    ):
        try:
            return fn()
        except Exception:
            return None

    def handler(signum, frame):
        raise _Timeout

    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return fn()
        except _Timeout:
            return None
        except Exception:
            return None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------- number lifting


def _liftable(node) -> bool:
    return isinstance(node, sympy.Expr) and node.is_number and not node.is_Integer


def _shape(node) -> str:
    """Structure of ``node`` with its liftable numbers masked (a value-free sort key)."""
    if _liftable(node):
        return "#"
    if not node.args:
        return sympy.srepr(node)
    parts = [_shape(a) for a in node.args]
    if isinstance(node, (sympy.Add, sympy.Mul, sympy.Max, sympy.Min, sympy.And, sympy.Or)):
        parts.sort()
    return f"{type(node).__name__}({','.join(parts)})"


def _lift_numbers(e: sympy.Expr) -> tuple[sympy.Expr, list[float]]:
    """Replace non-integer numeric constants by ``p0, p1, ...``.

    Maximal numeric subexpressions are lifted as one parameter (``sqrt(2)/2`` is
    one number); the numeric factors of a ``Mul`` and terms of an ``Add`` are
    combined first. Children of commutative nodes are visited in an order that
    does not depend on the numbers' values, so that expressions differing only in
    those numbers get the same template.
    """
    values: list[float] = []

    def lift(node):
        if _liftable(node):
            try:
                v = float(sympy.N(node, 30))
            except (TypeError, ValueError):
                return node  # complex constant: keep it structural
            if not math.isfinite(v):
                return node
            values.append(v)
            return sympy.Symbol(f"p{len(values) - 1}", real=True)
        if not node.args or isinstance(node, sympy.Symbol):
            return node
        args = list(node.args)
        if isinstance(node, (sympy.Add, sympy.Mul)):
            nums = [a for a in args if a.is_number]
            rest = [a for a in args if not a.is_number]
            if len(nums) > 1:
                nums = [node.func(*nums)]
            rest.sort(key=_shape)
            args = nums + rest
        elif isinstance(node, (sympy.Max, sympy.Min, sympy.And, sympy.Or)):
            args.sort(key=_shape)
        elif isinstance(node, sympy.Heaviside):
            # the value at the jump is immaterial: keep it out of the parameters
            return node.func(lift(args[0]), *args[1:])
        return node.func(*[lift(a) for a in args])

    return lift(e), values


# --------------------------------------------------------------------- printing


class _NumbaPrinter(PythonCodePrinter):
    """Python code for numba: ``t`` and ``p[i]``, NaN for undefined Piecewise branches,
    a stable ``log1p(exp(x))``; unsupported functions printed by name and recorded."""

    def __init__(self):
        super().__init__(
            {"fully_qualified_modules": True, "allow_unknown_functions": True, "strict": False}
        )
        self.unsupported: set[str] = set()

    def _print_Symbol(self, expr):
        if expr == T:
            return "t"
        m = _PARAM_RE.fullmatch(expr.name)
        if m:
            return f"p[{m.group(1)}]"
        return super()._print_Symbol(expr)  # pragma: no cover - no other symbols occur

    def _print_Function(self, expr):
        name = expr.func.__name__
        if (
            name not in self.known_functions
            and name not in getattr(self, "_rewriteable_functions", {})
            and not hasattr(expr, "_imp_")
        ):
            self.unsupported.add(name)
        return super()._print_Function(expr)

    def _print_not_supported(self, expr):
        self.unsupported.add(type(expr).__name__)
        try:
            args = ", ".join(self._print(a) for a in expr.args)
        except Exception:
            args = ""
        return f"{type(expr).__name__}({args})"

    def _print_NaN(self, expr):
        return "math.nan"

    def _print_Infinity(self, expr):
        return "math.inf"

    def _print_NegativeInfinity(self, expr):
        return "(-math.inf)"

    def _print_log1p(self, expr):
        arg = expr.args[0]
        if isinstance(arg, sympy.exp):
            # softplus log(1 + exp(x)) without overflow for large x
            x = self._print(arg.args[0])
            return (
                f"(({x}) + math.log1p(math.exp(-({x}))) if ({x}) > 0 "
                f"else math.log1p(math.exp({x})))"
            )
        return f"math.log1p({self._print(arg)})"


def _printable(e: sympy.Expr) -> sympy.Expr:
    """Accuracy rewrites for printing: ``log(1 + u) -> log1p(u)``, ``exp(u) - 1 -> expm1(u)``,
    ``1 +- erf(u) -> erfc(-+u)``, ``2 - erfc(u) -> erfc(-u)``,
    ``1 - tanh(u)**2 -> cosh(u)**-2``, ``ITE`` conditions to
    and/or, and a NaN branch closing a non-exhaustive Piecewise."""

    def log_to_log1p(node):
        arg = node.args[0]
        if isinstance(arg, sympy.Add) and sympy.S.One in arg.args:
            return log1p(sympy.Add(*[a for a in arg.args if a is not sympy.S.One]))
        return node

    def exp_minus_one(node):
        terms = list(node.args)
        if sympy.S.NegativeOne in terms:
            exps = [a for a in terms if isinstance(a, sympy.exp)]
            if exps:
                terms.remove(sympy.S.NegativeOne)
                terms.remove(exps[0])
                return sympy.Add(expm1(exps[0].args[0]), *terms)
        return node

    def erf_to_erfc(node):
        c, rest = node.as_coeff_Add()
        if c not in (sympy.S.One, sympy.Integer(2)):
            return node
        terms = list(sympy.Add.make_args(rest))
        for i, term in enumerate(terms):
            k, f = term.as_coeff_Mul()
            if c == 1 and isinstance(f, sympy.erf) and k in (1, -1):
                # 1 + erf(u) = erfc(-u), 1 - erf(u) = erfc(u): no cancellation in the tail
                new = sympy.erfc(-k * f.args[0], evaluate=False)
            elif c == 2 and isinstance(f, sympy.erfc) and k == -1:
                new = sympy.erfc(-f.args[0], evaluate=False)  # 2 - erfc(u) = erfc(-u)
            else:
                continue
            return sympy.Add(new, *(terms[:i] + terms[i + 1 :]))
        return node

    def tanh_square(node):
        c, rest = node.as_coeff_Add()
        k, f = rest.as_coeff_Mul()
        if (
            c == 1
            and k == -1
            and isinstance(f, sympy.Pow)
            and f.exp == 2
            and isinstance(f.base, sympy.tanh)
        ):
            return sympy.cosh(f.base.args[0]) ** -2  # 1 - tanh(u)^2 = sech(u)^2
        return node

    def close_piecewise(node):
        if node.args and node.args[-1].cond is sympy.true:
            return node
        return sympy.Piecewise(*node.args, (sympy.nan, True))

    out = e
    if out.has(sympy.log):
        out = out.replace(lambda n: isinstance(n, sympy.log), log_to_log1p)
    if out.has(sympy.exp):
        out = out.replace(lambda n: isinstance(n, sympy.Add), exp_minus_one)
    if out.has(sympy.tanh):
        out = out.replace(lambda n: isinstance(n, sympy.Add), tanh_square)
    if out.has(sympy.erf, sympy.erfc):
        out = out.replace(lambda n: isinstance(n, sympy.Add), erf_to_erfc)
    if out.has(sympy.Piecewise):
        out = out.replace(lambda n: isinstance(n, sympy.Piecewise), close_piecewise)
    if out.has(sympy.ITE):
        out = out.replace(lambda n: isinstance(n, sympy.ITE), lambda n: n.to_nnf())
    return out


def _print(e: sympy.Expr) -> tuple[str, set[str]]:
    printer = _NumbaPrinter()
    code = printer.doprint(_printable(e))
    return code, printer.unsupported


def _source(name: str, e: sympy.Expr) -> str:
    code, _ = _print(e)
    return f"def {name}(t, p):\n    return float({code})\n"


# -------------------------------------------------------------------- compiling

_COMPILED: dict[str, tuple] = {}
_COMPILE_LOCK = threading.Lock()


def compile_pointwise(parsed: ParsedActivation) -> tuple:
    """``numba.njit`` versions of ``phi(t, p)`` and ``dphi(t, p)``.

    The sources are executed in a namespace holding only :mod:`math`, compiled
    (``error_model="numpy"``: division by zero gives inf/nan, no exception) and
    called once with ``(0.0, params)`` so that compile errors surface here. The
    result is cached by ``parsed.key``: call with ``np.asarray(parsed.params)``.

    Returns
    -------
    (phi, dphi) : tuple of numba Dispatcher

    Raises
    ------
    ValueError
        When the expression uses functions numba cannot compile (e.g. Bessel
        functions: only Python's :mod:`math` is available), naming them.
    """
    import numba

    with _COMPILE_LOCK:
        hit = _COMPILED.get(parsed.key)
    if hit is not None:
        return hit

    unsupported = _print(parsed.template)[1] | _print(parsed.deriv_template)[1]
    if unsupported:
        raise ValueError(
            f"cannot compile the activation {parsed.expr}: numba has no implementation of "
            f"{', '.join(sorted(unsupported))} (only Python's math module is available); "
            "rewrite it with elementary functions or pass a numba-compilable callable"
        )
    p = np.asarray(parsed.params, dtype=np.float64)
    funcs = []
    for name, src in (("phi", parsed.phi_source), ("dphi", parsed.dphi_source)):
        ns: dict = {"math": math}
        try:
            exec(compile(src, f"<activation {name}: {parsed.expr}>", "exec"), ns)
            f = numba.njit(error_model="numpy")(ns[name])
            f(0.0, p)
        except Exception as exc:
            raise ValueError(
                f"cannot compile {name} of the activation {parsed.expr} with numba: {exc}"
            ) from exc
        funcs.append(f)
    out = (funcs[0], funcs[1])
    with _COMPILE_LOCK:
        _COMPILED.setdefault(parsed.key, out)
        return _COMPILED[parsed.key]


# ------------------------------------------------------------------ closed forms


def closed_form(parsed: ParsedActivation):
    """The closed-form layer of :mod:`analytic_ntk.layers` equal to the activation, or None.

    Recognised (up to the families' own scale and shift parameters):
    ``Identity`` (t), ``Monomial(n)`` (t**n), ``Polynomial(coef)`` (other
    polynomials, ``coef`` in increasing degree), ``Relu``, ``Abs``,
    ``LeakyRelu(alpha)`` and ``ABRelu(a, b)`` (``a min(t,0) + b max(t,0)``, in any
    spelling: Max, Abs, Heaviside, Piecewise), ``Sign``, ``RectifiedMonomial(n)``
    (``max(t,0)**n``; ``n = 0`` is the step ``Heaviside(t)``), ``Erf(a, b, c)``
    (``a erf(b t) + c``, also via ``erfc``), ``Sin(a, b, c)`` and ``Cos(a, b, c)``
    (``a sin(b t + c)``), ``Exp(a, b)`` (``a exp(b t)``), ``Gaussian(a, b)``
    (``a exp(b t^2)``) and ``Gelu`` (``t Phi(t)`` with ``Phi`` the normal CDF).

    A structural match is accepted only if ``layer.fn`` agrees with the expression
    at 20 points to 1e-12 relative (values at kinks are not compared).
    """
    from .. import layers

    e = parsed.expr
    for make in _candidates(e, parsed.kinks, layers):
        try:
            layer = make()
        except (ValueError, TypeError, ZeroDivisionError, OverflowError):
            continue
        if layer is not None and _verify(layer, e):
            return layer
    return None


def analyze(expr: sympy.Expr | str, symbol: sympy.Symbol | str | None = None):
    """Parse ``expr`` and find its closed form; check moments only if there is none.

    Returns
    -------
    (parsed, layer) : tuple of ParsedActivation and layer or None
        ``layer`` is the closed-form layer (:func:`closed_form`) or None, in which
        case :func:`check_moments` has passed and the generic numerical path
        (:func:`compile_pointwise`) applies.
    """
    parsed = parse(expr, symbol, moments=False)
    layer = closed_form(parsed)
    if layer is None:
        check_moments(parsed)
    return parsed, layer


def _num(x) -> float:
    if not (isinstance(x, sympy.Expr) and x.is_number):
        raise ValueError("not a number")
    v = complex(sympy.N(x, 30))
    if v.imag != 0.0 or not math.isfinite(v.real):
        raise ValueError("not a finite real number")
    return v.real


def _candidates(e: sympy.Expr, kinks: tuple, L):
    """Lazily yield constructors of candidate layers, most specific first."""
    # Polynomials (Identity, Monomial, Polynomial).
    if not e.has(sympy.Piecewise, *_JUMPS) and (not e.has(T) or e.is_polynomial(T)):
        yield lambda: _polynomial_layer(e, L)
        return

    # Piecewise-polynomial families with the only kink at 0.
    if kinks == (0.0,):
        yield lambda: _kinked_layer(e, L)

    forms = [e]
    ex = sympy.expand(e)
    if ex != e:
        forms.append(ex)
    for f in forms:
        for make in (_erf_layer, _trig_layer, _exp_layer):
            yield (lambda make=make, f=f: make(f, L))
    # Gelu: t * Phi(t), Phi(t) = (1 + erf(t / sqrt(2))) / 2.
    q = sympy.expand(e / T)
    if not q.has(T) or q == e:
        return
    yield lambda: L.Gelu() if _erf_layer(q, L) is not None else None


def _split(e: sympy.Expr):
    """``e = c + a * f(t)``: (c, a, f) with numeric c and a."""
    c, rest = e.as_independent(T, as_Add=True)
    a, f = rest.as_independent(T, as_Mul=True)
    return c, a, f


def _polynomial_layer(e, L):
    coef = [_num(c) for c in reversed(sympy.Poly(e, T).all_coeffs())]
    n = len(coef) - 1
    if coef == [0.0] * n + [1.0]:
        return L.Identity() if n == 1 else L.Monomial(n)
    return L.Polynomial(tuple(coef))


def _kinked_layer(e, L):
    """Families whose only kink is at 0: polynomial branches on either side."""
    left = sympy.expand(_collapse(e, sympy.Integer(-1)))
    right = sympy.expand(_collapse(e, sympy.Integer(1)))
    if left.has(sympy.nan) or right.has(sympy.nan):
        return None
    if not (left.is_polynomial(T) and right.is_polynomial(T)):
        return None
    cl = [_num(c) for c in reversed(sympy.Poly(left, T).all_coeffs())]
    cr = [_num(c) for c in reversed(sympy.Poly(right, T).all_coeffs())]
    if len(cl) <= 2 and len(cr) <= 2 and cl[0] == 0.0 and cr[0] == 0.0:
        a = cl[1] if len(cl) == 2 else 0.0
        b = cr[1] if len(cr) == 2 else 0.0
        if (a, b) == (0.0, 1.0):
            return L.Relu()
        if (a, b) == (-1.0, 1.0):
            return L.Abs()
        if b == 1.0:
            return L.LeakyRelu(a)
        return L.ABRelu(a, b)
    if cl == [0.0] and cr == [1.0]:
        return L.RectifiedMonomial(0)
    if cl == [-1.0] and cr == [1.0]:
        return L.Sign()
    if cl == [0.0] and cr == [0.0] * (len(cr) - 1) + [1.0]:
        return L.RectifiedMonomial(len(cr) - 1)
    return None


def _erf_layer(e, L):
    c, a, f = _split(e)
    if isinstance(f, (sympy.erf, sympy.erfc)):
        b, u = f.args[0].as_independent(T, as_Mul=True)
        if u != T:
            return None
        a, b, c = _num(a), _num(b), _num(c)
        if isinstance(f, sympy.erfc):  # a erfc(bt) + c = -a erf(bt) + (a + c)
            return L.Erf(-a, b, a + c)
        return L.Erf(a, b, c)
    return None


def _trig_layer(e, L):
    c, a, f = _split(e)
    if c != 0 or not isinstance(f, (sympy.sin, sympy.cos)):
        return None
    arg = f.args[0]
    if not arg.is_polynomial(T):
        return None
    p = sympy.Poly(arg, T)
    if p.degree() != 1:
        return None
    b, phase = _num(p.coeff_monomial(T)), _num(p.coeff_monomial(1))
    cls = L.Sin if isinstance(f, sympy.sin) else L.Cos
    return cls(_num(a), b, phase)


def _exp_layer(e, L):
    c, a, f = _split(e)
    if c != 0:
        return None
    if isinstance(f, sympy.Pow) and f.base.is_number and f.exp.has(T):
        f = f.rewrite(sympy.exp)
        if not isinstance(f, sympy.exp):
            a2, f = f.as_independent(T, as_Mul=True)
            a = a * a2
    if not isinstance(f, sympy.exp):
        return None
    arg = f.args[0]
    if not arg.is_polynomial(T):
        return None
    p = sympy.Poly(arg, T)
    const = _num(p.coeff_monomial(1))
    scale = _num(a) * math.exp(const)
    if p.degree() == 1:
        return L.Exp(scale, _num(p.coeff_monomial(T)))
    if p.degree() == 2 and _num(p.coeff_monomial(T)) == 0.0:
        return L.Gaussian(scale, _num(p.coeff_monomial(T**2)))
    return None


def _verify(layer, e: sympy.Expr) -> bool:
    """``layer.fn`` equals ``e`` at the verification points (1e-12 relative)."""
    xs = np.asarray(_VERIFY_POINTS)
    refs = []
    for x in _VERIFY_POINTS:
        v = _evalf(e, x, 30)
        if _classify(v) != "ok":
            return False
        refs.append(_to_float(v))
    ref = np.asarray(refs)
    with np.errstate(all="ignore"):
        got = np.asarray(layer.fn(xs), dtype=np.float64)
    if got.shape != ref.shape:
        return False
    finite = np.isfinite(ref)
    if not np.array_equal(np.isfinite(got), finite):
        return False
    if not np.all(got[~finite] == ref[~finite]):
        return False
    if not finite.any():
        return False
    scale = float(np.max(np.abs(ref[finite])))
    err = np.abs(got[finite] - ref[finite])
    return bool(np.all(err <= 1e-12 * np.abs(ref[finite]) + 1e-14 * scale))
