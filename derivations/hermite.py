"""Hermite coefficients of every closed family, and the cross-check of the dual on the
unit sphere against the library's closed forms.

Run from the repository root::

    python -m derivations.hermite

With ``h_k = He_k / sqrt(k!)`` and ``a_k = E[phi(z) h_k(z)]``
(:mod:`analytic_ntk.symbolic.hermite`; exact where SymPy can, mpmath quadrature
otherwise -- the method of every coefficient is printed), Mehler's formula gives
``F(1, 1, c) = sum_k a_k^2 c^k``.  For each family at fixed (rational) parameters the
script

* prints ``a_0 .. a_4`` with the parameters symbolic (plain text and LaTeX);
* computes ``a_0 .. a_K`` and compares ``sum_k a_k^2 c^k`` with
  ``analytic_ntk.duals.evaluate(layer, 1, 1, c)`` and with the SymPy dual of
  :mod:`analytic_ntk.symbolic.families` (40 digits) for ``|c| <= 0.5`` (relative to
  ``sum_k a_k^2 |c|^k``, within ``1e-13``; the kinked families converge slowly, hence
  ``|c| <= 0.5`` and more terms);
* checks the exact coefficients against mpmath quadrature (40 digits) for ``k <= 6``;
* for polynomials proves ``sum_k a_k^2 c^k == F(1, 1, c)`` exactly, ``c`` symbolic.

Writes no module.
"""

from __future__ import annotations

import mpmath
import sympy as sp

from analytic_ntk import duals
from analytic_ntk.symbolic import families as fam
from analytic_ntk.symbolic import hermite as herm

KINKED = ("abrelu", "sign", "rectmono")

# (family, parameter values): exact binary fractions, so the float layer is the same
CASES = (
    ("abrelu", (0.0, 1.0)),
    ("abrelu", (0.5, -1.5)),
    ("sign", ()),
    ("rectmono0", ()),
    ("rectmono1", ()),
    ("rectmono2", ()),
    ("rectmono3", ()),
    ("erf", (1.25, 0.75, 0.5)),
    ("sin", (1.5, 0.75, 0.5)),
    ("cos", (1.5, 0.75, 0.5)),
    ("rbf", (0.75,)),
    ("gelu", ()),
    ("polynomial3", (0.5, -1.0, 0.25, 0.5)),
    ("monomial3", ()),
    ("exp", (1.5, 0.5)),
    ("gaussian", (1.5, -0.75)),
    ("identity", ()),
)
CS = (-0.5, -0.25, 0.25, 0.5)
K_SMOOTH = 40
K_KINKED = 60
DPS = 40


def n_terms(name: str, kmax_smooth: int = K_SMOOTH, kmax_kinked: int = K_KINKED) -> int:
    return kmax_kinked if name.startswith(KINKED) else kmax_smooth


def check_family(name, values, kmax, cs=CS, kquad: int = 6, dps: int = DPS) -> dict:
    """Coefficients and cross-checks of one family at ``values``.

    Returns a dict with ``coefs`` (:class:`~analytic_ntk.symbolic.hermite.Coefficients`),
    ``library`` and ``sympy``: the largest ``|sum_k a_k^2 c^k - F| / sum_k a_k^2 |c|^k``
    over ``cs`` against ``duals.evaluate`` and against the SymPy dual, and ``quad``:
    the largest ``|a_k - a_k(quadrature)|`` for ``k <= kquad``.
    """
    f = fam.family(name)
    phi = f.subs(f.phi, values)
    co = herm.coefficients(phi, kmax, dps=dps)
    num = co.numeric(dps)
    dual = fam.lambdify_mp(f.dual, f.params)
    layer = f.layer(values)
    lib = sym = 0.0
    with mpmath.workdps(dps):
        for c in cs:
            c_ = mpmath.mpf(c)
            total = herm.unit_sphere_dual(num, c_, dps)
            scale = mpmath.fsum(a * a * abs(c_) ** k for k, a in enumerate(num))
            got, _ = duals.evaluate(layer, 1.0, 1.0, c)
            ref = dual(1, 1, c_, *[mpmath.mpf(v) for v in values])
            lib = max(lib, float(abs(total - float(got)) / scale))
            sym = max(sym, float(abs(total - ref) / scale))
        quad = herm.coefficients_numeric(phi, min(kquad, kmax), dps=dps)
        qerr = max(float(abs(a - b)) for a, b in zip(num, quad))
    return {"coefs": co, "library": lib, "sympy": sym, "quad": qerr}


def polynomial_identity(name: str, values) -> bool:
    """``sum_k a_k^2 c^k == F(1, 1, c)`` exactly for a polynomial family, ``c`` symbolic."""
    f = fam.family(name)
    phi = f.subs(f.phi, values)
    deg = sp.Poly(phi, fam.X).degree()
    co = herm.coefficients(phi, deg, allow_numeric=False)
    c = sp.Symbol("c", real=True)
    series = sum((a**2 * c**k for k, a in enumerate(co.values)), sp.Integer(0))
    dual = f.subs(f.dual, values).subs({fam.Q1: 1, fam.Q2: 1, fam.Q12: c})
    return sp.simplify(sp.expand(series - dual)) == 0


def main(kmax_smooth: int = K_SMOOTH, kmax_kinked: int = K_KINKED) -> list[dict]:
    failed = []
    results = []
    printed = set()
    for name, values in CASES:
        f = fam.family(name)
        if name not in printed:
            printed.add(name)
            sym = herm.coefficients(f.phi, 4, allow_numeric=False)
            print(f"== {name}: phi = {f.phi}")
            for k, a in enumerate(sym.values):
                a = sp.simplify(a)
                print(f"  a_{k} = {a}    [LaTeX: {sp.latex(a)}]")
        kmax = n_terms(name, kmax_smooth, kmax_kinked)
        r = check_family(name, values, kmax)
        r["name"], r["values"] = name, values
        results.append(r)
        methods = sorted(set(r["coefs"].methods))
        print(
            f"  {name}{values}: a_0..a_{kmax} ({', '.join(methods)}); sum a_k^2 c^k, "
            f"|c| <= {max(abs(c) for c in CS)}: vs duals.evaluate {r['library']:.1e}, "
            f"vs SymPy dual {r['sympy']:.1e}; exact vs quadrature (k <= 6) {r['quad']:.1e}"
        )
        if r["library"] > 1e-13 or r["sympy"] > 1e-13 or r["quad"] > 1e-30:
            failed.append((name, values))
        if name.startswith(("polynomial", "monomial")):
            ok = polynomial_identity(name, values)
            print(f"  sum_k a_k^2 c^k == F(1, 1, c): {'proved' if ok else 'FAILED'} (symbolic)")
            if not ok:
                failed.append((name, "identity"))
    if failed:
        raise SystemExit(f"Hermite cross-checks failed: {failed}")
    return results


if __name__ == "__main__":
    main()
