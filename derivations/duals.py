"""Every closed-form dual of :mod:`analytic_ntk.duals` as a SymPy expression, with its
NTK factor proven equal to ``dF/dq12`` (Price's theorem, Price 1958).

Run from the repository root::

    python -m derivations.duals

For each family (:mod:`analytic_ntk.symbolic.families`, parameters symbolic) the script
prints the dual ``F(q1, q2, q12)``, the factor, their LaTeX, the diagonal derivative
``dF/dq1``, and checks:

* Price: ``simplify(diff(F, q12) - factor) == 0`` (method ``symbolic``), else a 50-digit
  mpmath comparison at random points (method ``numerical``).  For ``Sign`` and the step
  ``RectifiedMonomial(0)`` the library's factor is the a.e. derivative 0; there the
  proof is ``dF/dq12 = E[phi' phi']`` with ``phi'`` the point mass at 0;
* the factor re-derived as the dual of ``phi'`` where ``phi'`` is in a closed family
  (Erf -> Gaussian, Sin <-> Cos, Exp -> Exp, ABRelu -> step, polynomial -> polynomial,
  rectified monomial n -> n-1);
* polynomials: Mehler's form equals the direct Gaussian-moment (Isserlis) expectation;
* both ``F`` and the factor against ``analytic_ntk.duals.evaluate`` at random points
  (relative ``1e-12``; a larger difference is printed as a warning about the library's
  float64 evaluation -- the proofs above are what fail the script).  Known: the
  rectified monomials of order ``n >= 4`` lose digits where ``duals.rectmono_pair``
  switches to its antipodal series (``pi - theta`` just below 1.5): about ``1e-12``
  (n = 4) to ``1e-10`` (n = 6) relative.

Writes no module.
"""

from __future__ import annotations

import random

import mpmath
import sympy as sp

from analytic_ntk import duals
from analytic_ntk.symbolic import families as fam

MAX_ORDER = 6
POLY_DEGREE = 6
NPOINTS = 8
PRICE_POINTS = 6


def library_error(f: fam.Family, npoints: int = NPOINTS, seed: int = 1) -> float:
    """Largest relative difference between the SymPy ``F`` and factor (30-digit mpmath)
    and ``duals.evaluate`` at random points and parameters (relative to
    ``max(|value|, 1e-300)``; a zero factor must be returned as 0)."""
    rng = random.Random(seed)
    ff = fam.lambdify_mp(f.dual, f.params)
    fg = fam.lambdify_mp(f.factor, f.params)
    worst = 0.0
    for _ in range(npoints):
        q1, q2, q12, vals = fam.random_point(f, rng)
        got_f, got_g = duals.evaluate(f.layer(vals), q1, q2, q12)
        with mpmath.workdps(30):
            args = [mpmath.mpf(v) for v in (q1, q2, q12, *vals)]
            ref_f, ref_g = ff(*args), fg(*args)
        for got, ref in ((got_f, ref_f), (got_g, ref_g)):
            err = abs(float(got) - ref) / max(abs(ref), mpmath.mpf("1e-300"))
            worst = max(worst, float(err) if ref != 0 else abs(float(got)))
    return worst


def derive_family(f: fam.Family, *, library: bool = True) -> dict:
    """All results for one family (see the module docstring)."""
    out = {"family": f, "price": fam.price_check(f)}
    out["price_numeric"] = fam.numeric_identity(
        f, sp.diff(f.dual, fam.Q12), f.target, npoints=PRICE_POINTS
    )
    out["derivative_dual"] = fam.derivative_dual_check(f)
    out["moments"] = None
    if f.name.startswith(("polynomial", "monomial")):
        out["moments"] = sp.expand(fam.moment_dual(f.phi) - sp.expand(f.dual)) == 0
    out["dq1"] = fam.diag_derivative(f, 1)
    out["library"] = library_error(f) if library else None
    return out


def main(max_order: int = MAX_ORDER, poly_degree: int = POLY_DEGREE) -> list[dict]:
    results = []
    failed = []
    warned = []
    for f in fam.closed_families(max_order, poly_degree):
        r = derive_family(f)
        results.append(r)
        pr = r["price"]
        print(f"== {f.name}   ({f.reference})")
        print("  phi      =", f.phi)
        print("  F        =", f.dual)
        print("  factor   =", f.factor)
        print("  dF/dq1   =", r["dq1"])
        print("  LaTeX F      :", sp.latex(f.dual))
        print("  LaTeX factor :", sp.latex(f.factor))
        print("  LaTeX dF/dq1 :", sp.latex(r["dq1"]))
        if f.price_target is not None:
            print(f"  library factor {f.factor}; dF/dq12 = E[phi' phi'] =", f.price_target)
        print(
            f"  Price dF/dq12 = {'E[phi1 phi1]' if f.price_target is not None else 'factor'}: "
            f"{'proved' if pr.ok else 'FAILED'} ({pr.method}); 50-digit check at "
            f"{PRICE_POINTS} points: {r['price_numeric']:.1e}"
        )
        if r["derivative_dual"] is not None:
            print(
                "  factor = dual of phi' (closed family): "
                f"{'proved' if r['derivative_dual'] else 'FAILED'} (symbolic)"
            )
        if r["moments"] is not None:
            print(
                "  Mehler form = Isserlis moments: "
                f"{'proved' if r['moments'] else 'FAILED'} (symbolic)"
            )
        print(f"  vs duals.evaluate at {NPOINTS} random points: max rel err {r['library']:.1e}")
        if not pr.ok or r["price_numeric"] > 1e-40:
            failed.append((f.name, "price"))
        if r["derivative_dual"] is False or r["moments"] is False:
            failed.append((f.name, "re-derivation"))
        if not r["library"] <= 1e-12:
            warned.append(f.name)
    print()
    print(f"{'family':14s} {'Price proof':12s} {'dual of phi_prime':18s} {'vs library':10s}")
    for r in results:
        dd = {None: "-", True: "proved", False: "FAILED"}[r["derivative_dual"]]
        print(f"{r['family'].name:14s} {r['price'].method:12s} {dd:18s} {r['library']:.1e}")
    if warned:
        # a discrepancy of the library's float64 evaluation, not of the derivation
        print(f"WARNING: duals.evaluate differs by more than 1e-12 for {warned}")
    if failed:
        raise SystemExit(f"dual checks failed: {failed}")
    return results


if __name__ == "__main__":
    main()
