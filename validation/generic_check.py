"""Experiment ``generic``: activations without a closed form against a high-precision
reference.

For each activation of :data:`ACTIVATIONS`, built with ``analytic_ntk.Activation(expr)``
(smooth: tanh, softplus, SiLU, sigmoid, and Gelu forced through the numerical path;
kinked: ELU, hard-tanh, ReLU6), and each covariance of a grid that includes
near-duplicate and near-antipodal pairs (``1 -+ c`` down to ``1e-12``, given by the exact
cosine and sine), compare the library's numerical dual ``F = E[phi(u) phi(v)]`` and NTK
factor ``G = E[phi'(u) phi'(v)]`` (:func:`analytic_ntk.quadrature.dual_pair`: Mehler series
or split Gauss-Legendre quadrature) with :func:`analytic_ntk._reference.generic_dual`
(mpmath Gauss-Legendre on pieces split at the kinks, 20 digits; independent of the
library's numerics).

``--quick`` checks tanh (smooth) and ELU (kinked) on 6 covariances (about
20 s, most of it the 20-digit reference quadrature); ``--full`` all eight on 17.

Error: ``|ours - ref| / max(|ref|, 1e-12 sqrt(E[h(u)^2] E[h(v)^2]))`` (``h = phi`` for ``F``,
``phi'`` for ``G``).  Tolerances (issue 3): 1e-10 for smooth activations, 1e-8 for kinked
ones.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import mpmath

from analytic_ntk import Activation, quadrature
from analytic_ntk._reference import generic_callables, generic_dual

from .registry import Row, register

#: (name, expression, tolerance); all forced through the numerical path
ACTIVATIONS = (
    ("tanh", "tanh(t)", 1e-10),
    ("softplus", "log(1 + exp(t))", 1e-10),
    ("silu", "t / (1 + exp(-t))", 1e-10),
    ("sigmoid", "1 / (1 + exp(-t))", 1e-10),
    ("gelu (numerical)", "t * (1 + erf(t / sqrt(2))) / 2", 1e-10),
    ("elu", "Piecewise((t, t > 0), (exp(t) - 1, True))", 1e-8),
    ("hard_tanh", "Min(Max(t, -1), 1)", 1e-8),
    ("relu6", "Min(Max(t, 0), 6)", 1e-8),
)

FLOOR = 1e-12
DPS = 20  # reference digits (--full); --quick uses QUICK_DPS
QUICK_DPS = 20
QUICK_NAMES = ("tanh", "elu")  # --quick: a smooth and a kinked activation


def covariances(quick: bool):
    """``(q1, q2, c, s)``: the float ``c`` defines the pair exactly (the reference takes
    ``q12 = sqrt(q1 q2) c`` in mpmath); ``s = sqrt((1 - c)(1 + c))`` keeps its relative
    accuracy near ``c = +-1`` (``1 -+ c`` is exact there)."""
    base = [(1.0, 1.0, 0.3), (0.7, 2.2, -0.55)]
    if not quick:
        base += [(3.0, 0.4, 0.9), (5.0, 5.0, -0.2), (0.05, 0.08, 0.6)]
    gaps = (1e-12,) if quick else (1e-12, 1e-8, 1e-4)
    for d in gaps:  # near-duplicate (norms differing by 1e-9), near-antipodal
        base.append((1.5, 1.5 * (1 + 1e-9), 1.0 - d))
        base.append((0.8, 2.0, -(1.0 - d)))
    return [(q1, q2, c, math.sqrt((1.0 - c) * (1.0 + c))) for q1, q2, c in base]


def _ref(fn, dfn, kinks, q1, q2, c, dps=DPS):
    with mpmath.workdps(dps + 10):
        q12 = mpmath.sqrt(mpmath.mpf(q1) * mpmath.mpf(q2)) * mpmath.mpf(c)
    return generic_dual(fn, dfn, kinks, q1, q2, q12, dps=dps)


def check(name, expr, tol, covs, dps=DPS):
    act = Activation(expr, closed_form=False)
    fn, dfn = generic_callables(act)
    worst = 0.0
    rows = []
    diag = {}
    for q1, q2, c, s in covs:
        f, g = quadrature.dual_pair(act, q1, q2, c, s)
        rf, rg = _ref(fn, dfn, act.kinks, q1, q2, c, dps)
        for q in (q1, q2):
            if q not in diag:
                diag[q] = _ref(fn, dfn, act.kinks, q, q, 1.0, dps)
        sf, sg = diag[q1], diag[q2]
        errs = []
        for ours, ref, d1, d2 in ((f, rf, sf[0], sg[0]), (g, rg, sf[1], sg[1])):
            scale = float(mpmath.sqrt(abs(d1 * d2)))
            den = max(abs(float(ref)), FLOOR * scale)
            errs.append(float(abs(mpmath.mpf(ours) - ref)) / den if den > 0 else 0.0)
        worst = max(worst, *errs)
        rows.append({"q1": q1, "q2": q2, "c": c, "err_F": errs[0], "err_G": errs[1]})
    return {"expr": expr, "max_err": worst, "tol": tol, "passed": worst <= tol, "points": rows}


@register("generic")
def run(quick: bool, out: Path) -> list[Row]:
    """Numerical duals of activations without closed forms vs the mpmath reference;
    writes ``out/generic.json``."""
    t0 = time.perf_counter()
    covs = covariances(quick)
    dps = QUICK_DPS if quick else DPS
    acts = [a for a in ACTIVATIONS if not quick or a[0] in QUICK_NAMES]
    results = {name: check(name, expr, tol, covs, dps) for name, expr, tol in acts}
    print(
        f"generic: numerical duals (Mehler series / split quadrature) vs mpmath "
        f"({dps} digits) on {len(covs)} covariances incl. 1 -+ c = 1e-12\n"
        f"err = |ours - ref| / max(|ref|, {FLOOR:g} sqrt(E h(u)^2 E h(v)^2)), h = phi (F) "
        "or phi' (G)"
    )
    print(f"{'activation':18s} {'max err':>10s} {'tol':>8s}  pass")
    for name, r in results.items():
        verdict = "PASS" if r["passed"] else "FAIL"
        print(f"{name:18s} {r['max_err']:10.2e} {r['tol']:8.0e}  {verdict}")
    out.mkdir(parents=True, exist_ok=True)
    payload = {"experiment": "generic", "quick": quick, "floor": FLOOR, "dps": dps,
               "activations": results, "seconds": time.perf_counter() - t0}
    (out / "generic.json").write_text(json.dumps(payload, indent=1))
    return [Row(f"generic/{n}", r["max_err"], r["tol"], r["passed"]) for n, r in results.items()]
