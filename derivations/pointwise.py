"""Pointwise activations of every closed family and their derivatives, printed as numba
functions: writes ``analytic_ntk/_generated/pointwise.py``.

Run from the repository root::

    python -m derivations.pointwise

For each family the SymPy expression ``phi(t)`` (:mod:`analytic_ntk.symbolic.families`,
with the kink conventions of ``layers.py``: ``ABRelu`` and rectified monomials take the
``t <= 0`` branch at 0, ``Sign(0) = 0``) and ``dphi = sympy.diff(phi, t)`` (the
almost-everywhere derivative: differentiating a ``Piecewise`` differentiates its pieces,
so ``Sign`` and the step have derivative 0, as ``layers.py``) become
``<family>_phi(t, p)`` and ``<family>_dphi(t, p)`` with ``p`` a float64 parameter array.
Polynomials (any degree) use Horner's rule in the order of
``numpy.polynomial.polynomial.polyval``; their derivative coefficients ``k p[k]`` come
from ``sympy.diff(p[k] t^k, t)``.

The module also gets ``PARAMS`` (family -> the layer attributes, in the order of ``p``),
``LAYERS`` (layer class name -> family) and ``POINTWISE`` (family ->
``(phi, dphi, n_params)``, ``n_params = -1`` for the variable-length polynomial), which the
generic quadrature path uses to evaluate any closed-family layer.  The script checks
each derivative against a central difference of ``phi`` in 40-digit arithmetic.
"""

from __future__ import annotations

from pathlib import Path

import mpmath
import sympy as sp

from analytic_ntk.symbolic import families as fam
from analytic_ntk.symbolic.codegen import doprint, function_source, module_source, write_module

OUTPUT = Path(__file__).resolve().parent.parent / "analytic_ntk" / "_generated" / "pointwise.py"
SCRIPT = "derivations/pointwise.py"

T = sp.Symbol("t", real=True)
N_DEG = sp.Symbol("n", nonnegative=True)

# family -> (layer attributes in the order of p, their symbols, phi in T)
_FAMILY_ORDER = (
    "abrelu",
    "sign",
    "rectmono",
    "erf",
    "sin",
    "cos",
    "rbf",
    "gelu",
    "exp",
    "gaussian",
    "identity",
)

LAYERS = {
    "ABRelu": "abrelu",
    "Relu": "abrelu",
    "LeakyRelu": "abrelu",
    "Abs": "abrelu",
    "Sign": "sign",
    "RectifiedMonomial": "rectmono",
    "Erf": "erf",
    "Sin": "sin",
    "Cos": "cos",
    "Rbf": "rbf",
    "Gelu": "gelu",
    "Polynomial": "polynomial",
    "Monomial": "polynomial",
    "Exp": "exp",
    "Gaussian": "gaussian",
    "Identity": "identity",
}


# Rbf: phi in terms of b = sqrt(2 gamma), computed once as layers.Rbf does (SymPy would
# print sqrt(2*gamma) as sqrt(2)*sqrt(gamma), a different rounding)
_RBF_B = sp.Symbol("b", positive=True)
AUX = {"rbf": (("b", "math.sqrt(2.0 * gamma)"),)}


def specs() -> dict:
    """``family -> (attribute names, parameter symbols, phi(t))``; the auxiliary
    variables of :data:`AUX` appear as symbols in ``phi``."""
    out = {}
    for name in _FAMILY_ORDER:
        if name == "rectmono":
            out[name] = (("degree",), (N_DEG,), fam.rectmono_phi(N_DEG).subs(fam.X, T))
            continue
        if name == "rbf":
            gamma = fam.family("rbf").params[0]
            phi = sp.sqrt(2) * sp.sin(_RBF_B * T + sp.pi / 4)
            out[name] = (("gamma",), (gamma,), phi)
            continue
        f = fam.family(name)
        attrs = tuple(str(s) for s in f.params)
        out[name] = (attrs, f.params, f.phi.subs(fam.X, T))
    return out


def _tidy(expr):
    # n t^n / t -> n t^(n-1) (inside Piecewise too)
    return expr.replace(lambda e: e.is_Mul, lambda e: sp.powsimp(e))


def derivative(phi):
    """``sympy.diff(phi, t)``, tidied."""
    return _tidy(sp.diff(phi, T))


def _as_float(expr):
    # generated functions must return float64 even where the result is an integer constant
    if expr.is_number:
        return sp.Float(float(expr))
    if isinstance(expr, sp.Piecewise):
        return sp.Piecewise(*[(_as_float(e), c) for e, c in expr.args], evaluate=False)
    return expr


def _param_doc(attrs) -> str:
    return f"p = ({', '.join(attrs)})" if attrs else "p unused (no parameters)"


def polynomial_blocks() -> list[str]:
    """Horner loops for ``sum_k p[k] t^k`` and its derivative (coefficients from
    ``sympy.diff``)."""
    p = sp.IndexedBase("p")
    k = sp.Symbol("k", integer=True, positive=True)
    dcoef = sp.powsimp(derivative(p[k] * T**k) / T ** (k - 1))  # k*p[k]
    dc = doprint(dcoef)
    dec = '@numba.njit(cache=True, error_model="numpy")'
    phi = f'''

{dec}
def polynomial_phi(t, p):
    """sum_k p[k] t^k by Horner's rule (as numpy.polynomial.polynomial.polyval);
    p = (coef_0, ..., coef_D), D >= 0."""
    acc = p[p.size - 1] + 0.0 * t
    for k in range(p.size - 2, -1, -1):
        acc = p[k] + acc * t
    return acc'''
    dphi = f'''

{dec}
def polynomial_dphi(t, p):
    """d/dt sum_k p[k] t^k = sum_k {dc} t^(k-1) by Horner's rule (as polyval of
    numpy.polynomial.polynomial.polyder); p = (coef_0, ..., coef_D)."""
    d = p.size - 1
    if d == 0:
        return 0.0 * t
    k = d
    acc = {dc} + 0.0 * t
    for k in range(d - 1, 0, -1):
        acc = {dc} + acc * t
    return acc'''
    return [phi, dphi]


def generated_source() -> str:
    """Text of ``analytic_ntk/_generated/pointwise.py``."""
    sp_ = specs()
    blocks = []
    doc_lines = []
    for name, (attrs, syms, phi) in sp_.items():
        pre = [(str(s), f"p[{i}]") for i, s in enumerate(syms)] + list(AUX.get(name, ()))
        dphi = derivative(phi)
        aux = "".join(f", {v} = {src}" for v, src in AUX.get(name, ()))
        doc_lines.append(f"{name}: {_param_doc(attrs)}; phi = {phi}{aux}")
        blocks.append(
            function_source(
                f"{name}_phi",
                ["t", "p"],
                _as_float(phi),
                f"phi(t) = {phi}; {_param_doc(attrs)}.",
                preamble=pre,
            )
        )
        blocks.append(
            function_source(
                f"{name}_dphi",
                ["t", "p"],
                _as_float(dphi),
                f"phi'(t) = {dphi}; {_param_doc(attrs)}.",
                preamble=pre,
            )
        )
    blocks += polynomial_blocks()
    doc_lines.append("polynomial: p = (coef_0, ..., coef_D), any length; phi = sum_k p[k] t^k")
    params = dict((name, a) for name, (a, _, _) in sp_.items())
    params["polynomial"] = ("coef",)
    npar = {name: len(a) for name, (a, _, _) in sp_.items()}
    npar["polynomial"] = -1
    names = [*sp_, "polynomial"]
    blocks.append(
        "\n\n# family -> layer attributes, in the order of p ('coef': the whole coefficient tuple)"
        + "\nPARAMS = {\n"
        + "".join(f"    {n!r}: {tuple(params[n])!r},\n" for n in names)
        + "}"
    )
    blocks.append(
        "\n# layers.py class name -> family\nLAYERS = {\n"
        + "".join(f"    {k!r}: {v!r},\n" for k, v in LAYERS.items())
        + "}"
    )
    blocks.append(
        "\n# family -> (phi, dphi, number of parameters; -1: variable length)\nPOINTWISE = {\n"
        + "".join(f"    {n!r}: ({n}_phi, {n}_dphi, {npar[n]}),\n" for n in names)
        + "}"
    )
    summary = (
        "Pointwise activations phi(t, p) and their derivatives dphi(t, p) (sympy.diff) of\n"
        "every closed family, with the conventions of layers.py (fn, deriv) at the kinks.\n"
        "p is a float64 array of the family's parameters, in this order:\n\n"
        + "\n".join(f"- {line}" for line in doc_lines)
    )
    return module_source(SCRIPT, summary, blocks)


def check(dps: int = 40) -> float:
    """Largest relative difference between each ``dphi`` and a central difference of
    ``phi`` (step ``1e-15``, ``dps`` digits) at smooth points; returns it."""
    worst = mpmath.mpf(0)
    vals = {
        "abrelu": (0.3, -1.7),
        "sign": (),
        "rectmono": (3,),
        "erf": (1.2, 0.7, 0.1),
        "sin": (1.1, 0.8, 0.4),
        "cos": (1.1, 0.8, 0.4),
        "rbf": (0.6,),
        "gelu": (),
        "exp": (1.3, -0.6),
        "gaussian": (0.9, -0.4),
        "identity": (),
    }
    with mpmath.workdps(dps):
        h = mpmath.mpf("1e-15")
        for name, (_, syms, phi) in specs().items():
            sub = dict(zip(syms, [sp.nsimplify(v) for v in vals[name]]))
            if name == "rbf":
                sub[_RBF_B] = sp.sqrt(2 * sub[syms[0]])
            f = sp.lambdify(T, phi.subs(sub), modules=fam.MPMATH)
            g = sp.lambdify(T, derivative(phi).subs(sub), modules=fam.MPMATH)
            for t in ("-1.3", "0.7", "2.1"):
                t = mpmath.mpf(t)
                fd = (f(t + h) - f(t - h)) / (2 * h)
                worst = max(worst, abs(fd - g(t)) / max(abs(g(t)), 1))
    return float(worst)


def main(output=OUTPUT) -> None:
    for name, (attrs, _, phi) in specs().items():
        d = derivative(phi)
        print(f"{name}: p = {attrs}")
        print(f"  phi  = {phi}")
        print(f"  phi' = {d}")
        print(f"  LaTeX phi' = {sp.latex(d)}")
    err = check()
    print(f"dphi vs 40-digit central differences of phi: max relative difference {err:.1e}")
    if err > 1e-20:
        raise SystemExit("derivative check failed")
    write_module(output, generated_source())
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
