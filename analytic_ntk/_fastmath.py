"""Vectorisable elementary functions for numba kernels.

numba >= 0.62 has no SVML, so ``math.atan2`` inside an ``@njit`` loop is a scalar
libm call that also stops LLVM from vectorising the loop.  ``atan2p`` is a
branch-free replacement for the case ``y >= 0`` (angles in ``[0, pi]``) built only
from ``+ - * /``, ``min``/``max``, selects and fused multiply-adds, so loops that
call it vectorise.  Its constants are fitted by ``derivations/fastmath.py``.

Fused multiply-adds are ``llvm.fma``: one instruction on x86-64 with FMA (and
on aarch64); on a CPU without FMA LLVM calls libm ``fma`` instead, which is still
exact but scalar and slow.  numba's cache is keyed on this file only: after
regenerating ``_generated/fastmath_coeffs.py``, clear ``__pycache__`` (or touch
this file) so cached kernels pick up the new constants.
"""

from __future__ import annotations

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._generated.fastmath_coeffs import ATAN_Q, PIO4_HI, PIO4_LO, TAN_PI_8

__all__ = ["atan2p", "atan2p_array"]

_HUGE = 2.0**1020  # max(|y|, |x|) above _HUGE is scaled by _DOWN
_DOWN = 2.0**-4


@intrinsic
def _fma(typingctx, a, b, c):
    """``a*b + c`` with one rounding (``llvm.fma.f64``; a single instruction on FMA CPUs)."""
    if not all(v == types.float64 for v in (a, b, c)):
        return None
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        f64 = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [f64], ir.FunctionType(f64, [f64] * 3))
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def _store_nt(typingctx, arr, i, j, val):
    """``arr[i, j] = val`` as a non-temporal (streaming) store: the cache line is not
    read first and bypasses the cache, for outputs that are written once and not read
    again soon (the mirrored lower triangle of a kernel matrix)."""
    if not (
        isinstance(arr, types.Array) and arr.ndim == 2 and arr.dtype == types.float64
        and val == types.float64
        and isinstance(i, types.Integer) and isinstance(j, types.Integer)
    ):
        return None
    sig = types.void(arr, i, j, val)

    def codegen(context, builder, signature, args):
        aty = signature.args[0]
        a = context.make_array(aty)(context, builder, args[0])
        shape = cgutils.unpack_tuple(builder, a.shape, 2)
        strides = cgutils.unpack_tuple(builder, a.strides, 2)
        idx = [
            context.cast(builder, args[1], signature.args[1], types.intp),
            context.cast(builder, args[2], signature.args[2], types.intp),
        ]
        ptr = cgutils.get_item_pointer2(
            context, builder, a.data, shape, strides, aty.layout, idx
        )
        store = builder.store(args[3], ptr)
        flag = builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)])
        store.set_metadata("nontemporal", flag)
        return context.get_dummy_value()

    return sig, codegen


if len(ATAN_Q) != 12:
    raise ImportError("_q_estrin expects 12 coefficients; see derivations/fastmath.py")


@numba.njit(cache=True, inline="always")
def _q_estrin(s):
    """``Q(s) = sum_k ATAN_Q[k] s**k`` by Estrin's scheme (short dependency chains)."""
    c = ATAN_Q
    s2 = s * s
    s4 = s2 * s2
    q0 = _fma(_fma(c[3], s, c[2]), s2, _fma(c[1], s, c[0]))
    q1 = _fma(_fma(c[7], s, c[6]), s2, _fma(c[5], s, c[4]))
    q2 = _fma(_fma(c[11], s, c[10]), s2, _fma(c[9], s, c[8]))
    return _fma(_fma(q2, s4, q1), s4, q0)


@numba.njit(cache=True, inline="always")
def atan2p(y, x):
    """``atan2(y, x)`` for ``y >= 0``: the angle in ``[0, pi]`` of the point ``(x, y)``.

    Parameters
    ----------
    y : float
        Ordinate, finite; its sign is ignored (``|y|`` is used).
    x : float
        Abscissa, finite.

    Returns
    -------
    float
        ``atan2(|y|, x)``, relative error about 1 ulp (absolute for results near
        ``pi``); ``atan2p(0, 0) = 0`` and ``atan2p(0, x) = pi`` for ``x < 0``
        (``x = -0.0`` counts as ``+0.0``).

    Notes
    -----
    With ``m = min(|y|, |x|)``, ``M = max(|y|, |x|)`` (no overflow or underflow in
    a ratio ``y/x``) the angle is ``k*pi/4 + sign*atan(t)``, where

    * ``m <= tan(pi/8) M``: ``t = m/M`` and ``atan(m/M) = 0*pi/4 + atan(t)``;
    * ``m > tan(pi/8) M``: ``t = (m - M)/(m + M)`` and ``atan(m/M) = pi/4 + atan(t)``;
    * ``|y| > |x|`` maps ``a -> pi/2 - a``, and ``x < 0`` maps ``a -> pi - a``,

    so ``|t| <= tan(pi/8)``, ``k`` is in ``{0, ..., 4}`` and ``sign = +-1``.  Then
    ``atan(t) = t + t s Q(s)``, ``s = t**2``, with the fitted degree-11 ``Q``.  The
    rounding errors of ``m -+ M`` (two-sum) and of the quotient (exact remainder
    by fma) are carried as ``t_lo`` and added as
    ``t_lo/(1 + s) ~ t_lo (1 - s + s**2)``;
    ``k*pi/4 = k*PIO4_HI + k*PIO4_LO`` with ``k*PIO4_HI`` exact, and
    ``k*PIO4_HI + sign*t`` is summed exactly (fast two-sum), so the only
    significant error is the final rounding.  All cases are computed by selects,
    without branches or libm calls.

    ``inline="always"`` matters: without it LLVM did not inline ``atan2p`` and
    ``_q_estrin`` into a caller's loop, which then ran scalar (~22 ns/element).
    """
    ay = abs(float(y))
    ax = abs(float(x))
    mn = min(ay, ax)
    mx = max(ay, ax)
    sc = _DOWN if mx > _HUGE else 1.0  # exact; mn + mx cannot overflow
    mn *= sc
    mx *= sc
    big = mn > TAN_PI_8 * mx
    # t = num/den: (mn - mx)/(mn + mx) if big else mn/mx, rounding errors kept exactly.
    a = -mx if big else 0.0
    b = mn if big else 0.0
    num = mn + a
    num_err = mn - (num - a)
    den = mx + b
    den_err = b - (den - mx)
    den = den if den > 0.0 else 1.0  # atan2p(0, 0) = 0
    t = num / den
    t_lo = (_fma(-t, den, num) + num_err - t * den_err) / den
    s = t * t
    q = _q_estrin(s)
    tail = _fma(t * s, q, t_lo * _fma(s, s, 1.0 - s))  # atan(t + t_lo) - t
    # Quadrant: result = k*pi/4 + sign*(t + tail).
    k = 1.0 if big else 0.0
    swap = ay > ax
    k = 2.0 - k if swap else k
    sign = -1.0 if swap else 1.0
    neg = x < 0.0
    k = 4.0 - k if neg else k
    sign = -sign if neg else sign
    c = k * PIO4_HI
    st = sign * t
    h = c + st
    err = (c - h) + st  # exact: c == 0 or |c| >= pi/4 > |t|
    return h + (err + (sign * tail + k * PIO4_LO))


@numba.njit(cache=True)
def atan2p_array(y, x, out):
    """``out[i] = atan2p(y[i], x[i])`` for 1-D arrays; returns ``out``."""
    for i in range(out.shape[0]):
        out[i] = atan2p(y[i], x[i])
    return out
