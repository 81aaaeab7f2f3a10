"""Experiment ``mmn``: the isotropic-Gaussians classification of Mei, Montanari & Nguyen
(2018, section 2.1) -- particle risk curves converge to the ``m -> inf`` limit computed
without particles (issue 6, experiment 2).

Data: with probability 1/2, ``y = +1`` and ``x ~ N(0, (1 + delta)^2 I_d)``, else ``y = -1``
and ``x ~ N(0, (1 - delta)^2 I_d)``; ``d = 20``, ``delta = 0.5``.  Network ``f(x) = (1/m)
sum_j u_j sigma(w_j . x)`` with ``sigma(t) = exp(-t^2 / 2)`` (``Gaussian(1, -0.5)``),
bias-free, ``u ~ N(0, 1)``, ``w ~ N(0, I_d / d)``; mean-field gradient flow of the
population risk ``E[(y - f)^2] / 2`` (Heun, ``dt = 0.05``, ``T = 10``).

* Particles: :func:`analytic_ntk.meanfield.particle_flow` with the
  :class:`~analytic_ntk.meanfield.TwoClass` data model (exact population drift from
  :func:`~analytic_ntk.meanfield.two_class_risk`), several ``m`` and seeds.
* Reference: :func:`analytic_ntk.meanfield.two_class_reduced_flow`, the distributional
  dynamics reduced by rotational symmetry to the law of ``(u, |w|)`` (drift derived with
  SymPy, ``derivations/mmn_reduced.py``), solved on a grid of characteristics; its grid
  error is measured against a finer grid in the same run.

Measured: per ``m``, the mean over seeds of ``max_t |R_m(t) - R_inf(t)|``; the fitted slope
of its log against ``log m`` (propagation of chaos: fluctuations ``O(m^-1/2)``; tolerance
band ``[-1, -0.3]``); at the largest ``m`` that gap relative to the risk drop ``R(0) -
R(T)`` of the reference (tolerance 10 %); the reference's grid error relative to the
smallest gap (tolerance 5 %).

Sizes: ``--quick`` ``m`` = 16, 64, 256, one seed, ``T = 4``, ``dt = 0.1`` (particles and
reference alike), coarser reference grids
(about 15 s); ``--full`` ``m`` = 32 .. 512, 3 seeds, ``T = 10``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from analytic_ntk import Gaussian
from analytic_ntk.meanfield import TwoClass, particle_flow, two_class_reduced_flow

from .plotting import pyplot, save
from .registry import Row, register

D = 20
DELTA = 0.5
ACT = Gaussian(1.0, -0.5)
DT = 0.05
T_END = 10.0
RECORD = 10  # steps
SLOPE_BAND = (-1.0, -0.3)
GAP_TOL = 0.10
GRID_TOL = 0.05

CONFIGS = {
    True: {"widths": (16, 64, 256), "n_seeds": 1, "grid": (48, 4), "fine": (64, 6),
           "t_end": 4.0, "dt": 0.1, "record": 5},
    False: {"widths": (32, 64, 128, 256, 512), "n_seeds": 3, "grid": (96, 6),
            "fine": (192, 8)},
}


def reference(grid, steps, dt=DT, record=RECORD):
    n_u, n_r = grid
    t, r, _ = two_class_reduced_flow(ACT, DELTA, D, dt=dt, steps=steps, n_u=n_u, n_r=n_r,
                                     n_angle=12, record_every=record)
    return t, r


def particles(m, seed, steps, dt=DT, record=RECORD):
    rng = np.random.default_rng([seed, m])
    u = rng.standard_normal(m)
    w = rng.standard_normal((m, D)) / math.sqrt(D)
    tr = particle_flow(ACT, u, w, np.zeros(m), TwoClass(DELTA), 1.0, dt=dt, steps=steps,
                       method="heun", record_every=record, train_biases=False)
    return tr.risk


def experiment(out, *, widths, n_seeds, grid, fine, t_end=T_END, dt=DT, record=RECORD,
               quick=True):
    t0 = time.perf_counter()
    steps = int(round(t_end / dt))
    times, ref = reference(grid, steps, dt, record)
    _, ref_fine = reference(fine, steps, dt, record)
    grid_err = float(np.max(np.abs(ref - ref_fine)))
    curves = {m: [particles(m, s, steps, dt, record) for s in range(n_seeds)] for m in widths}
    gaps = {m: float(np.mean([np.max(np.abs(c - ref_fine)) for c in curves[m]]))
            for m in widths}
    slope = float(np.polyfit(np.log(widths), np.log([gaps[m] for m in widths]), 1)[0])
    drop = float(ref_fine[0] - ref_fine[-1])
    rel_gap = gaps[widths[-1]] / drop
    rel_grid = grid_err / min(gaps.values())
    print(f"mmn: d = {D}, delta = {DELTA}, sigma = exp(-t^2/2), T = {t_end}, dt = {dt}; "
          f"reference R(0) = {ref_fine[0]:.5f} -> R(T) = {ref_fine[-1]:.5f} (grid {fine}; "
          f"grid {grid} differs by {grid_err:.1e})")
    print(f"{'m':>6s} {'mean_seeds max_t |R_m - R_inf|':>32s} {'R_m(T) (seed 0)':>16s}")
    for m in widths:
        print(f"{m:6d} {gaps[m]:32.3e} {curves[m][0][-1]:16.5f}")
    print(f"fitted slope {slope:.2f} (band {SLOPE_BAND}); gap at m = {widths[-1]}: "
          f"{rel_gap:.1%} of the drop (tolerance {GAP_TOL:.0%}); grid error / smallest gap "
          f"{rel_grid:.2%} (tolerance {GRID_TOL:.0%})")
    payload = {"experiment": "mmn", "quick": quick, "d": D, "delta": DELTA, "dt": dt,
               "t_end": t_end, "widths": list(widths), "n_seeds": n_seeds,
               "times": times.tolist(), "reference": ref_fine.tolist(),
               "reference_coarse": ref.tolist(), "grid": list(grid), "fine": list(fine),
               "grid_error": grid_err, "gaps": {str(m): gaps[m] for m in widths},
               "curves": {str(m): [c.tolist() for c in curves[m]] for m in widths},
               "slope": slope, "relative_gap": rel_gap,
               "seconds": time.perf_counter() - t0}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if plot(payload, out / "mmn.png"):
        payload["plot"] = "mmn.png"
    (out / "mmn.json").write_text(json.dumps(payload))
    lo, hi = SLOPE_BAND
    rows = [
        Row("mmn/slope_distance_to_band", max(lo - slope, slope - hi, 0.0), 0.0,
            lo <= slope <= hi),
        Row(f"mmn/gap_at_{widths[-1]}_over_drop", rel_gap, GAP_TOL, rel_gap <= GAP_TOL),
        Row("mmn/reference_grid_error_over_gap", rel_grid, GRID_TOL, rel_grid <= GRID_TOL),
    ]
    return payload, rows


def plot(payload, path):
    plt = pyplot()
    if plt is None:
        return False
    t = np.array(payload["times"])
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for m in payload["widths"]:
        c = np.array(payload["curves"][str(m)])
        ax[0].plot(t, c.mean(axis=0), label=f"particles m = {m} (mean of seeds)", lw=1)
    ax[0].plot(t, payload["reference"], "k--", lw=2, label="m = inf (reduced PDE)")
    ax[0].set_xlabel("t")
    ax[0].set_ylabel("population risk")
    ax[0].legend(fontsize=7)
    ax[0].set_title("isotropic Gaussians (Mei, Montanari & Nguyen 2018)", fontsize=10)
    ms = payload["widths"]
    gaps = [payload["gaps"][str(m)] for m in ms]
    ax[1].loglog(ms, gaps, "o-", label=f"max_t gap, slope {payload['slope']:.2f}")
    ax[1].loglog(ms, gaps[0] * (np.array(ms) / ms[0]) ** -0.5, "k:", label="m^-1/2")
    ax[1].minorticks_off()
    ax[1].set_xticks(ms)
    ax[1].set_xticklabels([str(m) for m in ms])
    ax[1].set_xlabel("m")
    ax[1].set_ylabel("mean over seeds of max_t |R_m(t) - R_inf(t)|")
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path, dpi=110)


@register("mmn")
def run(quick: bool, out: Path) -> list[Row]:
    """Particle risk curves against the rotationally reduced m -> inf limit."""
    return experiment(out, quick=bool(quick), **CONFIGS[bool(quick)])[1]
