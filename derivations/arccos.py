"""Arc-cosine kernels ``J_n`` of order ``n = 0..6`` (Cho & Saul 2009) with SymPy, and
their NTK factors by Price's theorem; writes ``analytic_ntk/_generated/arccos.py``.

Run from the repository root::

    python -m derivations.arccos

Derives ``J_n`` from the operator

.. math::

    J_n(\\theta) = (-1)^n (\\sin\\theta)^{2n+1}
        \\Big(\\frac{1}{\\sin\\theta}\\frac{\\partial}{\\partial\\theta}\\Big)^n
        \\frac{\\pi - \\theta}{\\sin\\theta}
    = (\\pi - \\theta) B_n(\\cos\\theta, \\sin\\theta) + A_n(\\cos\\theta, \\sin\\theta)

and proves, exactly (trigonometric polynomials reduced modulo ``sin^2 + cos^2 - 1``):
``J_0 = pi - theta``, ``J_1 = sin + (pi - theta) cos``, ``J_n(0) = pi (2n-1)!!``,
``J_n(pi) = 0``, the recurrence ``J_n = (2n-1) cos J_(n-1) + (n-1)^2 sin^2 J_(n-2)`` and
``dJ_n/dcos(theta) = n^2 J_(n-1)`` (so ``dJ_1/dc = J_0``).  For the dual
``k_n = (q1 q2)^(n/2) J_n(theta) / (2 pi)``, ``theta = acos(q12 / sqrt(q1 q2))``, it proves
Price's identity ``simplify(dk_n/dq12 - n^2 (q1 q2)^((n-1)/2) J_(n-1) / (2 pi)) == 0``
(``n >= 1``; for ``n = 0``, ``dk_0/dq12 = E[delta(u) delta(v)]``, whereas the library's
factor is the a.e. derivative 0), and prints the diagonal derivatives ``dk_n/dq1``.

The generated module has ``arccos_j(n, t, s, c)``, ``arccos_dual(n, p, t, s, c)`` and
``arccos_factor(n, p, t, s, c)`` for ``n <= MAX_ORDER`` as explicit expressions.
"""

from __future__ import annotations

from pathlib import Path

import sympy as sp

from analytic_ntk.symbolic import arccos as ac
from analytic_ntk.symbolic.codegen import cases_source, module_source, write_module

OUTPUT = Path(__file__).resolve().parent.parent / "analytic_ntk" / "_generated" / "arccos.py"
MAX_ORDER = 6
SCRIPT = "derivations/arccos.py"

_P = sp.Symbol("p", nonnegative=True)


def j_expr(n: int) -> sp.Expr:
    """``J_n`` in the generated code's variables ``t`` (theta), ``s``, ``c``."""
    a, b = ac.j_parts(n)
    return (sp.pi - ac.THETA) * b + a


def generated_source(max_order: int = MAX_ORDER) -> str:
    """Text of ``analytic_ntk/_generated/arccos.py``."""
    orders = range(max_order + 1)
    j_cases = [(n, j_expr(n)) for n in orders]
    dual_cases = [(n, _P**n * j_expr(n) / (2 * sp.pi)) for n in orders]
    fac_cases = [(0, sp.Float(0.0))] + [
        (n, n**2 * _P ** (n - 1) * j_expr(n - 1) / (2 * sp.pi)) for n in orders if n >= 1
    ]
    summary = f"""\
Arc-cosine kernels (Cho & Saul 2009) of order n = 0..{max_order} as explicit expressions:
J_n(theta) = (pi - theta) B_n(cos, sin) + A_n(cos, sin), from the operator
(-1)^n sin^(2n+1) (1/sin d/dtheta)^n ((pi - theta)/sin), and with p = sqrt(q1 q2)
the dual k_n = p^n J_n / (2 pi) and the NTK factor dk_n/dq12 = n^2 p^(n-1) J_(n-1) / (2 pi)
(Price 1958; 0 for n = 0, the a.e. derivative of the step).

Arguments: t = theta in [0, pi], s = sin(theta), c = cos(theta); n > MAX_ORDER gives NaN.
Near theta = pi these expanded forms cancel (J_n ~ (pi - theta)^(2n+1)); the library's
duals.rectmono_pair uses a recurrence and an antipodal series instead."""
    blocks = [
        f"\n\nMAX_ORDER = {max_order}",
        cases_source(
            "arccos_j",
            ["n", "t", "s", "c"],
            "n",
            j_cases,
            "J_n(theta), s = sin theta, c = cos theta.",
        ),
        cases_source(
            "arccos_dual",
            ["n", "p", "t", "s", "c"],
            "n",
            dual_cases,
            "k_n = p^n J_n(theta) / (2 pi), p = sqrt(q1 q2).",
        ),
        cases_source(
            "arccos_factor",
            ["n", "p", "t", "s", "c"],
            "n",
            fac_cases,
            "NTK factor dk_n/dq12 = n^2 p^(n-1) J_(n-1)(theta) / (2 pi), p = sqrt(q1 q2).",
        ),
    ]
    return module_source(SCRIPT, summary, blocks)


def derive(max_order: int = MAX_ORDER) -> list[dict]:
    """Derive and check every order; one dict of results per ``n``."""
    out = []
    for n in range(max_order + 1):
        checks = ac.j_checks(n)
        if n >= 1:
            res = ac.price_residual(n)
            checks["price dk/dq12 = factor"] = res == 0
        else:
            res = ac.step_price_residual()
            checks["price dk/dq12 = E[delta delta]"] = res == 0
        out.append(
            {
                "n": n,
                "J": ac.j_theta(n),
                "checks": checks,
                "dual": ac.dual(n),
                "factor": ac.factor(n),
                "dq1": ac.diag_derivative(n, 1),
            }
        )
    return out


def main(output=OUTPUT, max_order: int = MAX_ORDER, *, checks: bool = True) -> None:
    """Derive, check (``checks=False`` skips the proofs and printing, for the staleness
    test) and write the generated module."""
    if not checks:
        write_module(output, generated_source(max_order))
        return
    results = derive(max_order)
    failed = []
    for r in results:
        n = r["n"]
        print(f"-- n = {n}")
        print(f"J_{n}(t)   =", r["J"])
        print(f"LaTeX J_{n}:", sp.latex(r["J"]))
        print(f"k_{n}      =", r["dual"])
        print(f"factor_{n} =", r["factor"])
        print(f"dk_{n}/dq1 =", r["dq1"])
        print(f"LaTeX dk_{n}/dq1:", sp.latex(r["dq1"]))
        for name, ok in r["checks"].items():
            print(f"  [{'proved' if ok else 'FAILED'}] {name} (symbolic)")
            if not ok:
                failed.append((n, name))
    if failed:
        raise SystemExit(f"arc-cosine checks failed: {failed}")
    write_module(output, generated_source(max_order))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
