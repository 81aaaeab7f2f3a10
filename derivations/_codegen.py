"""Shared code emitter of the derivation scripts: a SymPy expression tuple as the source of
one cached ``numba.njit`` function, common subexpressions as local variables."""

from __future__ import annotations

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter


def numba_function(name, args, exprs, doc, out_names=None) -> str:
    """Source text (with two leading blank lines) of ``def name(*args)`` returning the
    tuple ``exprs``; with ``out_names`` each result is first bound to that name."""
    repl, red = sp.cse(list(exprs), symbols=sp.numbered_symbols("t"), optimizations="basic")
    printer = PythonCodePrinter()
    lines = ["", "", '@numba.njit(cache=True, error_model="numpy")',
             f"def {name}({', '.join(args)}):", f'    """{doc}"""']
    for sym, val in repl:
        lines.append(f"    {sym} = {printer.doprint(val)}")
    if out_names is None:
        lines.append(f"    return {', '.join(printer.doprint(x) for x in red)}")
    else:
        for nm, e in zip(out_names, red):
            lines.append(f"    {nm} = {printer.doprint(e)}")
        lines.append(f"    return {', '.join(out_names)}")
    return "\n".join(lines)
