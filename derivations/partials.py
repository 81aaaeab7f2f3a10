"""Partial derivatives of every closed-form dual and NTK factor, for the hyperparameter
gradients of :mod:`analytic_ntk.hypergrad`: writes ``analytic_ntk/_generated/partials.py``.

Run from the repository root::

    python -m derivations.partials

Differentiating the layer recursion (forward mode, see :mod:`analytic_ntk.hypergrad`)
needs, for each activation's dual ``F(q1, q2, q12) = E[phi(u) phi(v)]`` and NTK factor
``g = dF/dq12`` (Price 1958), the partials of ``F`` and ``g`` in the incoming variances
and covariance.  They come from SymPy, differentiating the expressions ``dual`` and
``factor`` of :mod:`analytic_ntk.symbolic.families`:

* smooth families (Erf, Sin, Cos, Rbf, Gelu, Exp, Gaussian, polynomials of degree
  ``0..MAX_POLY_DEGREE``): ``F`` and ``g`` are analytic on the closed cone
  ``|q12| <= sqrt(q1 q2)`` (``q1, q2 >= 0``), so the partials are taken in
  ``(q1, q2, q12)``: ``<family>_partials(q1, q2, q12, prm)`` returns
  ``(F, dF/dq1, dF/dq2, g, dg/dq1, dg/dq2, dg/dq12)``;
* the kinked families (ABRelu, ``RectifiedMonomial(n)`` for ``n = 0..MAX_RECTMONO_DEGREE``,
  Sign) are positively homogeneous: ``F`` and ``g`` depend on the variances only through
  ``p12 = sqrt(q1 q2)`` and on the angle ``theta = acos(q12 / p12)``.  In ``q12`` their
  partials are infinite at ``theta = 0, pi`` (ReLU's factor ``(pi - theta) / (2 pi)`` has
  ``dg/dq12 = 1 / (2 pi p12 sin(theta))``), in ``(p12, theta)`` they are finite, so the
  duals are rewritten in ``(p12, theta)`` (``q12 = p12 cos(theta)``, ``sqrt(1 - cos^2) =
  sin`` on ``[0, pi]``, ``acos(cos(theta)) = theta``) and ``<family>_polar(p12, th, sn, cs,
  prm)`` returns ``(F, dF/dp12, dF/dtheta, g, dg/dp12, dg/dtheta)`` with ``sn = sin(th)``,
  ``cs = cos(th)`` (``d/dtheta`` the total derivative, ``dsn/dth = cs``,
  ``dcs/dth = -sn``).

The functions are vectorised numpy code (common subexpressions by ``sympy.cse``), so the
hot path imports neither SymPy nor numba.  The script checks, in 30-digit mpmath at random
points, each generated partial against a numerical derivative of the family's own
``dual`` / ``factor`` (and the polar forms against the ``(q1, q2, q12)`` forms at
``q1 != q2``), and Price's identity ``g = dF/dq12`` for the smooth families.  The output
is deterministic: rerunning reproduces the file byte for byte (a test checks that).
"""

from __future__ import annotations

import random
from pathlib import Path

import mpmath
import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from analytic_ntk.symbolic import families as fam
from analytic_ntk.symbolic.codegen import module_source, write_module

OUTPUT = Path(__file__).resolve().parent.parent / "analytic_ntk" / "_generated" / "partials.py"
SCRIPT = "derivations/partials.py"
MAX_POLY_DEGREE = 8
MAX_RECTMONO_DEGREE = 6

SMOOTH_NAMES = ("erf", "sin", "cos", "rbf", "gelu", "exp", "gaussian")
POLAR_NAMES = ("abrelu", "sign")

Q1, Q2, Q12 = fam.Q1, fam.Q2, fam.Q12
P12 = sp.Symbol("p12", positive=True)
TH = sp.Symbol("th", real=True)
SN, CS = sp.symbols("sn cs", real=True)


def smooth_names() -> list[str]:
    return [*SMOOTH_NAMES, *(f"polynomial{d}" for d in range(MAX_POLY_DEGREE + 1))]


def polar_names() -> list[str]:
    return [*POLAR_NAMES, *(f"rectmono{n}" for n in range(MAX_RECTMONO_DEGREE + 1))]


# ------------------------------------------------------------------ derivation


def smooth_partials(f: fam.Family) -> list[sp.Expr]:
    """``[F, F_1, F_2, g, g_1, g_2, g_12]`` (partials in ``q1, q2, q12``)."""
    big_f, g = f.dual, f.factor
    return [
        big_f,
        sp.diff(big_f, Q1),
        sp.diff(big_f, Q2),
        g,
        sp.diff(g, Q1),
        sp.diff(g, Q2),
        sp.diff(g, Q12),
    ]


def _is_half_power_of(z, base) -> bool:
    return z.is_Pow and z.exp.is_Rational and z.exp.q == 2 and sp.expand(z.base - base) == 0


def to_polar(expr: sp.Expr) -> sp.Expr:
    """A homogeneous family's ``F(q1, q2, q12)`` as a function of ``(p12, th, sn, cs)``:
    ``q12 = cs sqrt(q1 q2)``, then ``q1 = q2 = p12`` (the dual depends on the variances only
    through ``sqrt(q1 q2)``; :func:`check` confirms it at ``q1 != q2``),
    ``sqrt(1 - cs^2) = sn`` (``th`` in ``[0, pi]``) and ``acos(cs) = th``."""
    e = expr.subs(Q12, CS * sp.sqrt(Q1 * Q2)).subs({Q1: P12, Q2: P12})
    e = e.replace(
        lambda z: z.is_Pow and z.exp.is_Rational and z.exp.q == 2,
        lambda z: sp.factor_terms(z.base) ** z.exp,
    )
    one_minus = 1 - CS**2
    e = e.replace(lambda z: _is_half_power_of(z, one_minus), lambda z: SN ** (2 * z.exp))
    e = e.replace(sp.acos(CS), TH)
    extra = e.free_symbols - {P12, TH, SN, CS}
    if any(s in (Q1, Q2, Q12) for s in extra):
        raise AssertionError(f"polar form still has {extra}: {e}")
    return e


def d_theta(expr: sp.Expr) -> sp.Expr:
    """Total ``d/dtheta`` of an expression in ``(th, sn, cs)``."""
    return sp.diff(expr, TH) + CS * sp.diff(expr, SN) - SN * sp.diff(expr, CS)


def polar_partials(f: fam.Family) -> list[sp.Expr]:
    """``[F, F_p, F_th, g, g_p, g_th]`` in ``(p12, th, sn, cs)``."""
    big_f = to_polar(f.dual)
    g = to_polar(f.factor)
    return [
        big_f,
        sp.diff(big_f, P12),
        d_theta(big_f),
        g,
        sp.diff(g, P12),
        d_theta(g),
    ]


# ------------------------------------------------------------------ printing


class _Printer(NumPyPrinter):
    """numpy printer (``numpy.sqrt``, ``numpy.arcsin``, ...)."""


def _doprint(expr) -> str:
    return _Printer().doprint(expr)


def _preamble(f: fam.Family) -> list[tuple[str, str]]:
    return [(str(s), f"prm[{i}]") for i, s in enumerate(f.params)]


def _function(name: str, args: list[str], exprs: list[sp.Expr], doc: str, pre) -> str:
    repl, red = sp.cse(exprs, symbols=sp.numbered_symbols("t"), optimizations="basic")
    lines = ["", "", f"def {name}({', '.join(args)}):", f'    """{doc}"""']
    for var, src in pre:
        lines.append(f"    {var} = {src}")
    for sym, val in repl:
        lines.append(f"    {sym} = {_doprint(val)}")
    body = ", ".join(_doprint(e) for e in red)
    lines.append(f"    return ({body})")
    return "\n".join(lines)


def _param_doc(f: fam.Family) -> str:
    return f"prm = ({', '.join(str(s) for s in f.params)})" if f.params else "prm unused"


def generated_source() -> str:
    """Text of ``analytic_ntk/_generated/partials.py``."""
    blocks = [
        f"\n\nMAX_POLY_DEGREE = {MAX_POLY_DEGREE}\nMAX_RECTMONO_DEGREE = {MAX_RECTMONO_DEGREE}"
    ]
    smooth = smooth_names()
    polar = polar_names()
    for name in smooth:
        f = fam.family(name)
        ex = smooth_partials(f)
        args = ["q1", "q2", "q12", "prm"]
        blocks.append(
            _function(
                f"{name}_partials", args, ex,
                f"{f.name}: (F, F_q1, F_q2, g, g_q1, g_q2, g_q12); {_param_doc(f)}.",
                _preamble(f),
            )
        )
    for name in polar:
        f = fam.family(name)
        blocks.append(
            _function(
                f"{name}_polar", ["p12", "th", "sn", "cs", "prm"], polar_partials(f),
                f"{f.name}: (F, F_p12, F_th, g, g_p12, g_th) at q12 = p12 cos(th); "
                f"{_param_doc(f)}.",
                _preamble(f),
            )
        )
    blocks.append(
        "\n\n# family -> parameter names, in the order of prm\nPARAMS = {\n"
        + "".join(
            f"    {n!r}: {tuple(str(s) for s in fam.family(n).params)!r},\n"
            for n in [*smooth, *polar]
        )
        + "}"
    )
    blocks.append(
        "\n# smooth family -> partials\nSMOOTH = {\n"
        + "".join(f"    {n!r}: {n}_partials,\n" for n in smooth)
        + "}"
    )
    blocks.append(
        "\n# homogeneous (kinked) family -> polar partials\nPOLAR = {\n"
        + "".join(f"    {n!r}: {n}_polar,\n" for n in polar)
        + "}"
    )
    summary = """\
Partial derivatives of the closed-form duals F(q1, q2, q12) = E[phi(u) phi(v)] and NTK
factors g = dF/dq12 (families in analytic_ntk/symbolic/families.py), vectorised numpy:

- <smooth>_partials(q1, q2, q12, prm) -> (F, F_q1, F_q2, g, g_q1, g_q2, g_q12);
- <kinked>_polar(p12, th, sn, cs, prm) -> (F, F_p12, F_th, g, g_p12, g_th) with
  p12 = sqrt(q1 q2), q12 = p12 cos(th), sn = sin(th), cs = cos(th), th in [0, pi]
  (d/dth the total derivative); these families depend on q1, q2 only through p12.

prm is the family's parameters in the order of PARAMS (Sin/Cos: (a, b, c) with the
phase c; polynomials: the coefficients c0, c1, ...).  Constant results are returned as
Python numbers (broadcast by the caller)."""
    return module_source(SCRIPT, summary, blocks, imports=("numpy",))


def write(output=OUTPUT) -> Path:
    return write_module(output, generated_source())


# ------------------------------------------------------------------ checks


def _sample_params(f: fam.Family, rng: random.Random) -> tuple:
    if f.name == "gaussian":
        return (rng.uniform(-2.0, 2.0), rng.uniform(-1.0, -0.05))
    if f.ranges:
        return f.sample(rng)
    return tuple(rng.uniform(-1.0, 1.0) for _ in f.params)


def _gen_module(source: str):
    namespace: dict = {}
    exec(compile(source, "<partials>", "exec"), namespace)  # noqa: S102 - our own text
    return namespace


def _partial(fn, args, k):
    """``d fn / d args[k]`` by mpmath's numerical differentiation."""

    def along(x):
        return fn(*args[:k], x, *args[k + 1:])

    return mpmath.diff(along, args[k])


def _err(got, ref, scale) -> float:
    return float(abs(mpmath.mpf(float(got)) - ref) / scale)


def _check_smooth(ns, name, rng, npoints) -> float:
    f = fam.family(name)
    fq = fam.lambdify_mp(f.dual, f.params)
    gq = fam.lambdify_mp(f.factor, f.params)
    worst = 0.0
    for _ in range(npoints):
        q1, q2, q12, _ = fam.random_point(f, rng)
        vals = _sample_params(f, rng)
        a = [mpmath.mpf(v) for v in (q1, q2, q12, *vals)]
        ref = [fq(*a), _partial(fq, a, 0), _partial(fq, a, 1), gq(*a), _partial(gq, a, 0),
               _partial(gq, a, 1), _partial(gq, a, 2), _partial(fq, a, 2)]  # last: Price, = g
        got = list(np.broadcast_arrays(*ns[f"{name}_partials"](q1, q2, q12, np.array(vals))))
        got.append(got[3])
        scale = max(abs(r) for r in ref) + mpmath.mpf("1e-30")
        worst = max(worst, *(_err(g, r, max(abs(r), 1e-8 * scale)) for g, r in zip(got, ref)))
    return worst


def _check_polar(ns, name, rng, npoints) -> float:
    f = fam.family(name)
    fq = fam.lambdify_mp(f.dual, f.params)
    gq = fam.lambdify_mp(f.factor, f.params)
    worst = 0.0
    for _ in range(npoints):
        q1, q2, _, _ = fam.random_point(f, rng)
        vals = _sample_params(f, rng)
        th = rng.uniform(0.05, 3.1)
        p = mpmath.sqrt(mpmath.mpf(q1) * mpmath.mpf(q2))
        root = mpmath.sqrt(mpmath.mpf(q1) / mpmath.mpf(q2))
        extra = [mpmath.mpf(v) for v in vals]

        def fp(pp, t, fn=fq, root=root, extra=extra):
            # the q-form dual at the variances (pp root, pp / root) and the angle t
            return fn(pp * root, pp / root, pp * mpmath.cos(t), *extra)

        def gp(pp, t, fn=gq, root=root, extra=extra):
            return fn(pp * root, pp / root, pp * mpmath.cos(t), *extra)

        a = [p, mpmath.mpf(th)]
        ref = [fp(*a), _partial(fp, a, 0), _partial(fp, a, 1), gp(*a), _partial(gp, a, 0),
               _partial(gp, a, 1)]
        got = ns[f"{name}_polar"](
            float(p), th, float(mpmath.sin(a[1])), float(mpmath.cos(a[1])), np.array(vals)
        )
        # the expanded J_n cancel near theta = pi (J_n ~ (pi - theta)^(2n+1)): accurate
        # relative to the scale of the kernel (its values at theta = 0.5), not to J_n
        half = mpmath.mpf("0.5")
        scale = max(abs(fp(p, half)), abs(gp(p, half)), *(abs(r) for r in ref))
        worst = max(worst, *(_err(g, r, scale) for g, r in zip(got, ref)))
    return worst


def check(source: str | None = None, npoints: int = 4, seed: int = 1) -> float:
    """Largest error of the generated partials against 30-digit numerical derivatives
    (mpmath) of the families' ``dual`` and ``factor``: relative (floor ``1e-8`` of the
    largest value) for the smooth families, including Price's identity ``g = dF/dq12``;
    for the polar forms, at ``q1 != q2`` (they depend on ``sqrt(q1 q2)`` only), relative
    to the kernel's scale.  Returns it."""
    ns = _gen_module(source or generated_source())
    rng = random.Random(seed)
    worst = 0.0
    with mpmath.workdps(30):
        for name in smooth_names():
            worst = max(worst, _check_smooth(ns, name, rng, npoints))
        for name in polar_names():
            worst = max(worst, _check_polar(ns, name, rng, npoints))
    return worst


def main(output=OUTPUT, *, checks: bool = True) -> None:
    """Derive, check (``checks=False`` skips the mpmath checks and the printing, for the
    staleness test) and write the generated module."""
    source = generated_source()
    if checks:
        for name in polar_names():
            f = fam.family(name)
            big_f, f_p, f_t, g, g_p, g_t = polar_partials(f)
            print(f"{name}: F(p12, th) = {big_f}")
            print(f"  g = {g};  dg/dth = {sp.simplify(g_t)}")
        for name in smooth_names():
            f = fam.family(name)
            ex = smooth_partials(f)
            print(f"{name}: {sum(sp.count_ops(e) for e in ex)} operations in the 7 partials")
        err = check(source)
        print(f"generated partials vs 30-digit numerical derivatives: max relative error {err:.1e}")
        if err > 1e-12:
            raise SystemExit("partials check failed")
    write_module(output, source)
    if checks:
        print(f"wrote {output}")


if __name__ == "__main__":
    main()
