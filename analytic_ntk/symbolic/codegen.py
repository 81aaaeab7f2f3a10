"""Shared writer of the modules in :mod:`analytic_ntk._generated`.

The derivation scripts (``derivations/``) build SymPy expressions and hand them to
this module, which prints them as numba-compiled Python functions.  Everything here is
deterministic: the same expressions give the same text byte for byte (SymPy's printers
order terms canonically; common subexpressions are numbered in order of appearance),
which is what the staleness tests (``tests/symbolic/test_generated.py``) rely on.

Functions
---------
:func:`function_source`
    One ``@numba.njit`` function returning a SymPy expression, optionally with
    common-subexpression elimination and a preamble (e.g. ``a = p[0]``).
:func:`cases_source`
    A function returning one of several expressions selected by an integer.
:func:`module_source`
    The whole module: header naming the generating script and saying "do not edit",
    imports, then the given blocks.
:func:`write_module`
    Write the text to a file (``\\n`` line endings, UTF-8).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

__all__ = [
    "DECORATOR",
    "NumbaPrinter",
    "cases_source",
    "doprint",
    "function_source",
    "module_source",
    "write_module",
]

DECORATOR = '@numba.njit(cache=True, error_model="numpy")'
_STDLIB = ("math", "cmath")


class NumbaPrinter(PythonCodePrinter):
    """``PythonCodePrinter`` (``math.*`` calls, ``x if c else y`` for ``Piecewise``) that
    numba compiles, plus:

    * ``NormalCDF(x)`` (:class:`analytic_ntk.symbolic.families.NormalCDF`) as
      ``0.5*math.erfc(-x/math.sqrt(2))``, accurate for ``x << 0`` (SymPy itself would
      rewrite ``erfc(-x)`` as ``2 - erfc(x)``, which cancels);
    * ``Indexed`` ``p[k]`` as ``p[k]`` (parameter arrays);
    * ``Float`` as the shortest ``repr`` of its float64 value.
    """

    def _print_NormalCDF(self, expr):
        (arg,) = expr.args
        return f"(0.5*math.erfc(-({self._print(arg)})/math.sqrt(2)))"

    def _print_Float(self, expr):
        # shortest repr of the float64 value ("1.0", not "1.00000000000000")
        return repr(float(expr))

    def _print_Indexed(self, expr):
        base = self._print(expr.base.label)
        idx = ", ".join(self._print(i) for i in expr.indices)
        return f"{base}[{idx}]"


def doprint(expr) -> str:
    """Print one SymPy expression as numba-compatible Python source."""
    return NumbaPrinter().doprint(expr)


def _docstring(doc: str, indent: str = "    ") -> list[str]:
    lines = doc.strip("\n").splitlines()
    if len(lines) == 1:
        return [f'{indent}"""{lines[0]}"""']
    out = [f'{indent}"""{lines[0]}']
    out += [f"{indent}{line}" if line else "" for line in lines[1:]]
    out.append(f'{indent}"""')
    return out


def function_source(
    name: str,
    args: Sequence[str],
    expr,
    doc: str,
    *,
    preamble: Iterable[tuple[str, str]] = (),
    cse: bool = False,
    decorator: str = DECORATOR,
) -> str:
    """Numba source of ``def name(args): return expr``.

    Parameters
    ----------
    name, args
        Function name and argument names.
    expr : sympy.Expr
        The returned expression; its free symbols must be among ``args`` or the names
        bound in ``preamble``.
    doc : str
        Docstring (may span several lines).
    preamble : iterable of (name, source)
        Local assignments emitted first, e.g. ``("a", "p[0]")``.
    cse : bool
        Replace common subexpressions by locals ``t0, t1, ...`` (``sympy.cse``).
    decorator : str
        The decorator line (default :data:`DECORATOR`).

    Returns
    -------
    str
        The source, starting with two blank lines (PEP 8 spacing inside a module).
    """
    lines = ["", "", decorator, f"def {name}({', '.join(args)}):"]
    lines += _docstring(doc)
    for var, src in preamble:
        lines.append(f"    {var} = {src}")
    if cse:
        repl, (red,) = sp.cse(expr, symbols=sp.numbered_symbols("t"), optimizations="basic")
        for sym, val in repl:
            lines.append(f"    {sym} = {doprint(val)}")
    else:
        red = expr
    lines.append(f"    return {doprint(red)}")
    return "\n".join(lines)


def cases_source(
    name: str,
    args: Sequence[str],
    selector: str,
    cases: Sequence[tuple[int, object]],
    doc: str,
    *,
    default: str = "math.nan",
    decorator: str = DECORATOR,
) -> str:
    """Numba source of a function returning ``cases[k]`` (a SymPy expression in ``args``)
    when the integer argument ``selector == k``, and ``default`` (source text) otherwise.

    One function with one branch per case (rather than one function per case) keeps
    the numba compilation short.
    """
    lines = ["", "", decorator, f"def {name}({', '.join(args)}):"]
    lines += _docstring(doc)
    for k, expr in cases:
        lines.append(f"    if {selector} == {k}:")
        lines.append(f"        return {doprint(sp.sympify(expr))}")
    lines.append(f"    return {default}")
    return "\n".join(lines)


def module_source(
    script: str,
    summary: str,
    blocks: Sequence[str],
    *,
    imports: Sequence[str] = ("math", "numba"),
) -> str:
    """Text of a generated module.

    Parameters
    ----------
    script : str
        The generating script, e.g. ``"derivations/arccos.py"`` (named in the header
        with "do not edit").
    summary : str
        The rest of the module docstring (several lines allowed).
    blocks : sequence of str
        Source blocks (functions from :func:`function_source`, constants), emitted in
        order.
    imports : sequence of str
        Modules to import (``import x``), sorted; ``"numpy as np"`` is allowed.

    Returns
    -------
    str
        Deterministic module text ending in one newline.
    """
    head = [f'"""Generated by {script} -- do not edit.', ""]
    head += summary.strip("\n").splitlines()
    head += ['"""', ""]
    std = sorted(m for m in imports if m.split()[0] in _STDLIB)
    other = sorted(m for m in imports if m.split()[0] not in _STDLIB)
    head += [f"import {m}" for m in std]
    if std and other:
        head.append("")
    head += [f"import {m}" for m in other]
    text = "\n".join(head) + "\n" + "\n".join(blocks)
    return text.rstrip("\n") + "\n"


def write_module(path, text: str) -> Path:
    """Write ``text`` to ``path`` (UTF-8, ``\\n`` newlines) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    return path
