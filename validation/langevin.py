"""Experiment ``langevin``: mean-field Langevin dynamics, its free energy and the Gibbs
fixed point (issue 6, experiment 4; Mei, Montanari & Nguyen 2018, section 3; Nitanda, Wu
& Suzuki 2022; Chizat 2022).

A bias-free two-layer ReLU network ``f(x) = (1/m) sum_j u_j relu(w_j . x)``, ``x ~
N(0, I_2)``, learns the teacher ``y = relu(1.5 x_1) - 0.8 relu(-0.6 x_1 + 1.2 x_2)`` by
noisy gradient descent on the exact population risk
(:func:`analytic_ntk.meanfield.particle_flow`, Euler-Maruyama, ``dt = 0.01``) with weight
decay ``lambda = 1`` and temperature ``tau = 0.05``; particles ``(u_j, w_j)`` start from
``N(0, I_3)``.

Measured, against stated tolerances:

1. The free energy ``F = R + (lambda/2) E|theta|^2 - tau H``
   (:func:`analytic_ntk.meanfield.free_energy.free_energy`, ``H`` the nearest-neighbour
   entropy of the particles), recorded every 0.5 time units: its largest increase between
   records is at most 2 % of its total decrease (monotone up to time-step and estimator
   error), and it has converged: the mean over the last quarter of the run differs from
   the mean over the third quarter by at most 1 % of the decrease.
2. The Gibbs fixed point ``rho ∝ exp(-(Psi + lambda |theta|^2 / 2) / tau)``.  Since
   ``Psi(theta) = u a(w)`` is linear in ``u``, under it ``u | w ~ N(-a(w)/lambda,
   tau/lambda)``: the residuals ``z_j = (u_j + a(w_j)/lambda) / sqrt(tau/lambda)``, with
   ``a`` from the analytic kernels (:func:`~analytic_ntk.meanfield.free_energy.first_variation`
   of the particles' own measure), have time-averaged mean within ``1/sqrt(m)`` of 0 and
   variance within 0.1 of 1 over the second half of the run, and the final ``z`` pass a
   Kolmogorov-Smirnov test against ``N(0, 1)`` (statistic ``<= 1.63 / sqrt(m)``, the 1 %
   level).  The marginal of ``w``, ``∝ exp(-lambda |w|^2 / (2 tau) + a(w)^2 / (2 lambda
   tau))``, is computed on a 161 x 161 grid and its two coordinate marginals are compared
   with the particles' by the same Kolmogorov-Smirnov bound.  In the full run the
   untilted prior ``N(0, tau/lambda)`` of ``w_1`` must fail that bound (the check resolves
   the tilt; ``prior`` column).

Sizes: ``--quick`` ``m = 256``, ``T = 20``, one seed (a few seconds); ``--full``
``m = 1024``, ``T = 20``, three seeds.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from analytic_ntk import Relu
from analytic_ntk.meanfield import Teacher, particle_flow
from analytic_ntk.meanfield.free_energy import first_variation, free_energy

from .plotting import pyplot, save
from .registry import Row, register

LAMBDA = 1.0
TAU = 0.05
DT = 0.01
T_END = 20.0
RECORD = 0.5
GRID = 161
MONOTONE_TOL = 0.02
CONVERGED_TOL = 0.01
VAR_TOL = 0.1
KS_FACTOR = 1.63

CONFIGS = {True: {"m": 256, "seeds": (0,)}, False: {"m": 1024, "seeds": (0, 1, 2)}}


def teacher() -> Teacher:
    return Teacher(Relu(), np.array([[1.5, 0.0], [-0.6, 1.2]]), np.zeros(2),
                   np.array([1.0, -0.8]))


def gibbs_residuals(u, w, t):
    """``z_j = (u_j + a(w_j) / lambda) / sqrt(tau / lambda)``."""
    a = first_variation(Relu(), u, w, np.zeros(u.size), t, w, np.zeros(u.size))
    return (u + a / LAMBDA) / math.sqrt(TAU / LAMBDA)


def gibbs_w_marginals(u, w, t):
    """``(grid, marginal CDF of w_1, of w_2, density on the grid)`` of the Gibbs measure
    with the first variation of the particles' measure."""
    lim = 1.3 * float(np.abs(w).max())
    g = np.linspace(-lim, lim, GRID)
    w1, w2 = np.meshgrid(g, g, indexing="ij")
    wp = np.column_stack([w1.ravel(), w2.ravel()])
    a = first_variation(Relu(), u, w, np.zeros(u.size), t, wp, np.zeros(len(wp)))
    logp = -LAMBDA * np.sum(wp * wp, axis=1) / (2 * TAU) + a * a / (2 * LAMBDA * TAU)
    p = np.exp(logp - logp.max()).reshape(w1.shape)
    p /= p.sum()
    return g, np.cumsum(p.sum(axis=1)), np.cumsum(p.sum(axis=0)), p


def ks_normal(z):
    """Kolmogorov-Smirnov statistic of the sample ``z`` against ``N(0, 1)``."""
    from scipy import stats

    return float(stats.kstest(z, "norm").statistic)


def ks_grid(sample, grid, cdf):
    """KS distance between a sample and a CDF tabulated on ``grid`` (cell-centred: the
    CDF at a node is averaged with the node before, so the grid's own error is
    O(spacing) and not O(one cell))."""
    emp = np.searchsorted(np.sort(sample), grid, side="right") / sample.size
    mid = 0.5 * (cdf + np.concatenate([[0.0], cdf[:-1]]))
    return float(np.max(np.abs(emp - mid)))


def prior_ks(sample):
    """KS statistic of ``w_1`` against the untilted prior ``N(0, tau / lambda)``: the Gibbs
    check is only informative where this is clearly above the tolerance."""
    from scipy import stats

    return float(stats.kstest(sample, "norm", args=(0.0, math.sqrt(TAU / LAMBDA))).statistic)


def one_run(m, seed):
    t = teacher()
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(m)
    w = rng.standard_normal((m, 2))
    b = np.zeros(m)
    steps = int(round(T_END / DT))
    every = int(round(RECORD / DT))

    def stats(u, w, b):
        fe = free_energy(Relu(), u, w, b, t, weight_decay=LAMBDA, temperature=TAU,
                         train_biases=False)
        z = gibbs_residuals(u, w, t)
        return fe, float(z.mean()), float(z.var())

    tr = particle_flow(Relu(), u, w, b, t, 1.0, dt=DT, steps=steps, weight_decay=LAMBDA,
                       temperature=TAU, record_every=every, seed=[seed, 1], statistics=stats,
                       train_biases=False)
    times = tr.steps * DT
    fe = np.array([[s[0].total, s[0].risk, s[0].penalty, s[0].entropy] for s in tr.stats])
    zm = np.array([s[1] for s in tr.stats])
    zv = np.array([s[2] for s in tr.stats])
    f = fe[:, 0]
    decrease = f[0] - f[-1]
    n = f.size
    q3 = f[n // 2: 3 * n // 4].mean()
    q4 = f[3 * n // 4:].mean()
    half = times >= T_END / 2
    z = gibbs_residuals(tr.u, tr.w, t)
    grid, cdf1, cdf2, dens = gibbs_w_marginals(tr.u, tr.w, t)
    return {
        "seed": seed, "times": times.tolist(), "free_energy": fe.tolist(),
        "max_increase": float(np.max(np.diff(f))) / decrease,
        "converged": abs(q4 - q3) / decrease,
        "z_mean": float(zm[half].mean()), "z_var": float(zv[half].mean()),
        "z_mean_series": zm.tolist(), "z_var_series": zv.tolist(),
        "ks_z": ks_normal(z), "ks_w1": ks_grid(tr.w[:, 0], grid, cdf1),
        "ks_w2": ks_grid(tr.w[:, 1], grid, cdf2),
        "ks_w1_prior": prior_ks(tr.w[:, 0]),
        "final": {"u": tr.u.tolist(), "w": tr.w.tolist(), "z": z.tolist()},
        "grid": grid.tolist(), "density": dens.tolist(),
    }


def experiment(out, *, m, seeds, quick=True):
    t0 = time.perf_counter()
    runs = [one_run(m, s) for s in seeds]
    ks_tol = KS_FACTOR / math.sqrt(m)
    print(f"langevin: m = {m} particles, lambda = {LAMBDA}, tau = {TAU}, dt = {DT}, "
          f"T = {T_END}; seeds {list(seeds)}")
    print(f"{'seed':>4s} {'F(0)':>8s} {'F(T)':>8s} {'max incr':>9s} {'converged':>9s} "
          f"{'mean z':>7s} {'var z':>6s} {'KS z':>6s} {'KS w1':>6s} {'KS w2':>6s} {'prior':>6s}")
    for r in runs:
        f = np.array(r["free_energy"])[:, 0]
        print(f"{r['seed']:4d} {f[0]:8.4f} {f[-1]:8.4f} {r['max_increase']:9.2e} "
              f"{r['converged']:9.2e} {r['z_mean']:7.3f} {r['z_var']:6.3f} {r['ks_z']:6.3f} "
              f"{r['ks_w1']:6.3f} {r['ks_w2']:6.3f} {r['ks_w1_prior']:6.3f}")
    print(f"tolerances: increase <= {MONOTONE_TOL} and convergence <= {CONVERGED_TOL} of the "
          f"decrease; |mean z| <= {1 / math.sqrt(m):.3f}; |var z - 1| <= {VAR_TOL}; "
          f"KS <= {ks_tol:.3f}")
    payload = {"experiment": "langevin", "quick": quick, "m": m, "lambda": LAMBDA, "tau": TAU,
               "dt": DT, "t_end": T_END, "runs": runs, "seconds": time.perf_counter() - t0}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if plot(payload, out / "langevin.png"):
        payload["plot"] = "langevin.png"
    (out / "langevin.json").write_text(json.dumps(payload))
    worst = {k: float(max(abs(r[k]) for r in runs)) for k in
             ("max_increase", "converged", "z_mean", "ks_z", "ks_w1", "ks_w2")}
    var_err = float(max(abs(r["z_var"] - 1) for r in runs))
    rows = [
        Row("langevin/free_energy_max_increase", worst["max_increase"], MONOTONE_TOL,
            worst["max_increase"] <= MONOTONE_TOL),
        Row("langevin/free_energy_converged", worst["converged"], CONVERGED_TOL,
            worst["converged"] <= CONVERGED_TOL),
        Row("langevin/gibbs_u_mean", worst["z_mean"], 1 / math.sqrt(m),
            worst["z_mean"] <= 1 / math.sqrt(m)),
        Row("langevin/gibbs_u_var", var_err, VAR_TOL, var_err <= VAR_TOL),
    ]
    for k in ("ks_z", "ks_w1", "ks_w2"):
        rows.append(Row(f"langevin/gibbs_{k}", worst[k], ks_tol, worst[k] <= ks_tol))
    if not quick:
        # the Gibbs tilt of w_1 is resolved: the untilted prior is rejected
        ratio = float(max(ks_tol / r["ks_w1_prior"] for r in runs))
        rows.append(Row("langevin/prior_w1_rejected(tol/KS)", ratio, 1.0, ratio <= 1.0))
    return payload, rows


def plot(payload, path):
    plt = pyplot()
    if plt is None:
        return False
    r = payload["runs"][0]
    fe = np.array(r["free_energy"])
    t = np.array(r["times"])
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    for k, lab in enumerate(("F", "risk R", "penalty", "-tau H")):
        y = fe[:, k] if k < 3 else -payload["tau"] * fe[:, 3]
        ax[0].plot(t, y, label=lab)
    ax[0].set_xlabel("t")
    ax[0].set_title("free energy and its parts", fontsize=10)
    ax[0].legend(fontsize=8)
    z = np.array(r["final"]["z"])
    xs = np.linspace(-4, 4, 200)
    ax[1].hist(z, bins=30, density=True, alpha=0.6, label="particles")
    ax[1].plot(xs, np.exp(-xs**2 / 2) / math.sqrt(2 * math.pi), "k", label="N(0, 1)")
    ax[1].set_title("u | w residuals against the Gibbs conditional", fontsize=10)
    ax[1].legend(fontsize=8)
    g = np.array(r["grid"])
    w = np.array(r["final"]["w"])
    ax[2].contour(g, g, np.array(r["density"]).T, levels=8, cmap="viridis")
    ax[2].plot(w[:, 0], w[:, 1], ".", ms=2, color="k", alpha=0.5)
    ax[2].set_aspect("equal")
    ax[2].set_title("particles w and the Gibbs marginal density", fontsize=10)
    fig.suptitle(f"mean-field Langevin, m = {payload['m']}, lambda = {payload['lambda']}, "
                 f"tau = {payload['tau']}", fontsize=10)
    fig.tight_layout()
    return save(fig, path, dpi=110)


@register("langevin")
def run(quick: bool, out: Path) -> list[Row]:
    """Mean-field Langevin: free energy decrease and the Gibbs fixed point."""
    return experiment(out, quick=bool(quick), **CONFIGS[bool(quick)])[1]
