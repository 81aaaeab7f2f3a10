"""Population drift of the mean-field particle flow (issue 6).

``m = 4096`` particles, ``d = 32``, bias-free ReLU student and teacher (4 units): time per
evaluation of the population risk and its gradient (the drift of the particle gradient
flow, ``O(m^2 d)`` per step over all pairs), :func:`analytic_ntk.meanfield.relu_drift`
(BLAS Gram matrix, one fused numba pass over the pairs, BLAS product) against a vectorised
numpy implementation of the same formulas below (whole ``m x m`` arrays, ``np.arccos``),
measured in the same run, best of the repeats.  Target: at least 10x.  Also the achieved
GFLOP/s of the pairwise part, counting ``2 m^2 d`` for the Gram product ``W W^T``,
``2 m^2 d`` for the product ``(u_l g_jl) W`` and ``ELEMENTWISE_FLOPS`` per pair for the
fused pass (see the constant), and the max relative difference of the two implementations.

Run from the repository root: ``python benchmarks/bench_meanfield.py [--m 4096] [--d 32]
[--repeats 5] [--json PATH]``.  Exit status 0 when the 10x target holds.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import _best_of, _fmt_times, _Foreign, _verdict  # noqa: E402

TARGET = 10.0
N_TEACHER = 4
# Flops per pair in the fused pass of relu_drift (each +, -, *, /, sqrt, compare-select
# free; an fma counts 2): cosine 2 (two multiplies by inverse norms), arccos 33 (|x|,
# 1 - |x|, * 1/2, sqrt, s^2, 12 Horner fma = 24, s z p + s = 3, 2 r or pi/2 - r, pi - a),
# sin t = sqrt((1 - x)(1 + x)) 4, pi - t 1, F sum 6 (sn + pmt x: 2; nr nc: 1; * coef: 1;
# accumulate: 2), sin sum 3, g store 2.
ELEMENTWISE_FLOPS = 2 + 33 + 4 + 1 + 6 + 3 + 2


def _norms(a):
    n = np.sqrt(np.einsum("ij,ij->i", a, a))
    inv = np.zeros_like(n)
    np.divide(1.0, n, out=inv, where=n > 0.0)
    return n, inv


def _numpy_dual(a, b, na, inv_a, nb, inv_b):
    """Whole-array arc-cosine dual of the rows of ``a`` against those of ``b``:
    ``(F, g, |b_l| sin t)``."""
    x = a @ np.ascontiguousarray(b.T)  # BLAS gemm (a @ a.T would be syrk + a slow copy)
    x *= inv_a[:, None]
    x *= inv_b[None, :]
    np.clip(x, -1.0, 1.0, out=x)
    pmt = np.pi - np.arccos(x)
    sn = np.sqrt((1.0 - x) * (1.0 + x))
    f = pmt * x
    f += sn
    f *= na[:, None] * nb[None, :]
    f /= 2.0 * np.pi
    sn *= nb[None, :]
    pmt /= 2.0 * np.pi
    return f, pmt, sn


def numpy_drift(u, w, tw, tc, alpha=1.0):
    """``(risk, du, dw)`` of :func:`analytic_ntk.meanfield.relu_drift`, vectorised numpy
    over whole ``m x m`` arrays (same formulas, same zero-row conventions)."""
    m = u.size
    a = alpha / m
    n, inv_n = _norms(w)
    tn, inv_tn = _norms(tw)
    ftt, _, _ = _numpy_dual(tw, tw, tn, inv_tn, tn, inv_tn)
    np.fill_diagonal(ftt, 0.5 * tn * tn)
    ey2 = float(tc @ ftt @ tc)
    fst, gst, sst = _numpy_dual(w, tw, n, inv_n, tn, inv_tn)
    fss, gss, sss = _numpy_dual(w, w, n, inv_n, n, inv_n)
    np.fill_diagonal(fss, 0.5 * n * n)
    np.fill_diagonal(gss, 0.0)
    np.fill_diagonal(sss, 0.0)
    v_s = fss @ u
    v_t = fst @ tc
    risk = 0.5 * ey2 - a * float(u @ v_t) + 0.5 * a * a * float(u @ v_s)
    du = a * a * v_s - a * v_t
    radial = (a * a * ((sss @ u) * inv_n / (2.0 * np.pi) + 0.5 * u)
              - a * (sst @ tc) * inv_n / (2.0 * np.pi))
    gss *= u[None, :]
    dw = a * a * (gss @ w) - a * ((gst * tc[None, :]) @ tw) + radial[:, None] * w
    dw *= u[:, None]
    return risk, du, dw


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--m", type=int, default=4096)
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import numba

    from analytic_ntk.meanfield.drift import relu_drift

    rng = np.random.default_rng(args.seed)
    m, d = args.m, args.d
    u = rng.standard_normal(m)
    w = rng.standard_normal((m, d)) / math.sqrt(d)
    tw = rng.standard_normal((N_TEACHER, d)) / math.sqrt(d)
    tc = rng.standard_normal(N_TEACHER)

    t0 = time.perf_counter()
    relu_drift(u[:8], w[:8], tw, tc)
    t_first = time.perf_counter() - t0

    fo = _Foreign()
    t_ours, ts_ours = _best_of(lambda: relu_drift(u, w, tw, tc), args.repeats)
    f_ours = fo.stop()
    fo = _Foreign()
    t_np, ts_np = _best_of(lambda: numpy_drift(u, w, tw, tc), args.repeats)
    f_np = fo.stop()

    mine = relu_drift(u, w, tw, tc)
    ref = numpy_drift(u, w, tw, tc)
    diff = max(abs(mine[0] - ref[0]) / abs(ref[0]),
               *(float(np.max(np.abs(x - y)) / np.max(np.abs(y)))
                 for x, y in zip(mine[1:], ref[1:])))
    ratio = t_np / t_ours
    pairs = m * m
    flops = pairs * (4 * d + ELEMENTWISE_FLOPS)
    gflops = flops / t_ours / 1e9

    lines = [
        f"numba {numba.__version__} ({numba.config.THREADING_LAYER} threading, "
        f"{numba.get_num_threads()} threads), numpy {np.__version__}",
        f"ReLU population drift, m = {m}, d = {d}, teacher {N_TEACHER} units, "
        f"best of {args.repeats}:",
        f"  relu_drift (BLAS + fused numba pass): {t_ours:.4f} s  {_fmt_times(ts_ours)}  "
        f"({1 / t_ours:.3g} steps/s; first call on 8 particles {t_first:.2f} s)",
        f"  numpy, same formulas, whole m x m arrays: {t_np:.4f} s  {_fmt_times(ts_np)}  "
        f"({1 / t_np:.3g} steps/s)",
        f"  ratio {ratio:.2f} (target >= {TARGET:g}): {_verdict(ratio >= TARGET)}; "
        f"max relative difference {diff:.1e}",
        f"  pairwise flops per step: 4 m^2 d (two BLAS products) + {ELEMENTWISE_FLOPS} m^2 "
        f"(fused pass) = {flops / 1e9:.3g} GFLOP -> {gflops:.3g} GFLOP/s "
        f"(numpy {flops / t_np / 1e9:.3g})",
        f"CPU used by other processes while timing: ours {f_ours:.0%}, numpy {f_np:.0%}",
    ]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({
            "m": m, "d": d, "teacher_units": N_TEACHER, "repeats": args.repeats,
            "ours_s": t_ours, "ours_all": ts_ours, "numpy_s": t_np, "numpy_all": ts_np,
            "ratio": ratio, "target": TARGET, "max_rel_diff": diff,
            "elementwise_flops_per_pair": ELEMENTWISE_FLOPS, "gflop_per_step": flops / 1e9,
            "gflops_ours": gflops, "gflops_numpy": flops / t_np / 1e9,
            "first_call_s": t_first, "foreign_cpu": [f_ours, f_np],
        }, indent=1))
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
