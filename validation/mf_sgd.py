"""Experiment ``mf_sgd``: online SGD of a two-layer network against the particle dynamics
with the exact population drift, with the same particles (issue 6, experiment 1).

Setting
    Student ``f(x) = (1/m) sum_j u_j relu(w_j . x + b_j)`` (mean-field scaling, ``alpha =
    1``), teacher ``y = relu(w*_1 . x + b*_1) - 0.6 relu(w*_2 . x + b*_2)`` (fixed draw),
    ``x ~ N(0, I_8)``.  Initial particles ``u ~ N(0, 1)``, ``w ~ N(0, I / d)``, ``b ~
    N(0, 0.04)``, the same for both dynamics of a seed.
Dynamics (:mod:`analytic_ntk.meanfield.dynamics`, time scaling ``d theta_j / dt = -m
dR / d theta_j``)
    * population flow: Heun's method, ``dt = 0.05``, the drift from
      :func:`analytic_ntk.meanfield.population_risk` (exact Gaussian expectations with
      biases, :func:`analytic_ntk.bivariate_expectation`);
    * online SGD: 32 fresh samples per step, step ``dt = 1 / m``, ``T m`` steps.  (With
      1 or 8 samples per step the SGD noise makes the risk lag the flow by a roughly
      m-independent 0.01-0.08 over m = 16..128 in trial runs: the asymptotic regime of
      the theorem starts at larger m for noisier gradients.)
    Both record the population risk at 8 (quick) or 16 (full) equally spaced times.
Measured
    per width ``m``: the largest gap ``max_t |R_sgd(t) - R_flow(t)|`` over the recorded
    times, averaged over seeds, and its fitted log-log slope in ``m``.  By Mei, Montanari
    & Nguyen (2018, Theorem 3), SGD with step ``eps`` follows the same distributional
    dynamics as the population flow up to ``O(sqrt(eps))`` fluctuations (and an
    ``O(eps)`` bias); with ``eps = 1/m`` the gap falls like ``m^(-1/2)`` to ``m^(-1)``.
Checks
    * ``slope``: the fitted slope lies in ``[-1.25, -0.25]`` (row: distance from the
      band's centre -0.75, tolerance 0.5);
    * ``gap_at_<m>``: the mean gap at the largest ``m`` is at most 15 % of the flow's
      risk decrease over the run (the curves agree);
    * ``flow_monotone``: the population flow's risk never increases (largest increase,
      tolerance 0).
Sizes
    ``--quick``: ``m`` in 16, 32, 64, 2 seeds, ``T = 2`` (about 15 s);
    ``--full``: ``m`` in 16 .. 512, 6 seeds, ``T = 4``.

References: Mei, Montanari & Nguyen 2018, "A mean field view of the landscape of
two-layer neural networks", PNAS; Chizat & Bach 2018, NeurIPS; Rotskoff &
Vanden-Eijnden 2018.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from analytic_ntk import Relu
from analytic_ntk.meanfield import Teacher, particle_flow, sgd

from .plotting import pyplot, save
from .registry import Row, register

SEED = 0
D = 8
DT_FLOW = 0.05
SLOPE_BAND = (-1.25, -0.25)
GAP_FRACTION = 0.15
BATCH = 32  # fresh samples per SGD step

CONFIGS = {
    True: {"widths": (16, 32, 64), "n_seeds": 2, "t_end": 2.0, "n_record": 8},
    False: {"widths": (16, 32, 64, 128, 256, 512), "n_seeds": 6, "t_end": 4.0,
            "n_record": 16},
}


def teacher(seed=SEED):
    rng = np.random.default_rng([seed, 99])
    return Teacher(Relu(), 1.5 * rng.standard_normal((2, D)) / math.sqrt(D),
                   0.3 * rng.standard_normal(2), np.array([1.0, -0.6]))


def particles(m, seed):
    rng = np.random.default_rng([seed, m])
    return (rng.standard_normal(m), rng.standard_normal((m, D)) / math.sqrt(D),
            0.2 * rng.standard_normal(m))


def run_pair(t, m, seed, t_end, n_record):
    """Population flow and online SGD from the same particles; the risks at the
    recorded times."""
    u, w, b = particles(m, seed)
    nf = int(round(t_end / DT_FLOW))
    ns = int(round(t_end * m))
    if nf % n_record or ns % n_record:
        raise ValueError("t_end / dt must be a multiple of n_record for both dynamics")
    fl = particle_flow(Relu(), u, w, b, t, dt=DT_FLOW, steps=nf, method="heun",
                       record_every=nf // n_record)
    sg = sgd(Relu(), u, w, b, t, dt=1.0 / m, steps=ns, batch_size=BATCH,
             record_every=ns // n_record, seed=[seed, m, 7])
    return fl.risk, sg.risk


def experiment(out, *, widths, n_seeds, t_end, n_record, seed=SEED, quick=True):
    t0 = time.perf_counter()
    tch = teacher(seed)
    per_m = {}
    for m in widths:
        flows, sgds, gaps = [], [], []
        for s in range(n_seeds):
            fr, sr = run_pair(tch, m, seed + s, t_end, n_record)
            flows.append(fr.tolist())
            sgds.append(sr.tolist())
            gaps.append(float(np.max(np.abs(fr - sr))))
        per_m[m] = {"flow": flows, "sgd": sgds, "gaps": gaps, "gap": float(np.mean(gaps)),
                    "gap_se": float(np.std(gaps, ddof=1) / math.sqrt(n_seeds))
                    if n_seeds > 1 else float("nan")}
    ms = np.asarray(widths, float)
    g = np.array([per_m[m]["gap"] for m in widths])
    slope = float(np.polyfit(np.log(ms), np.log(g), 1)[0])
    mmax = widths[-1]
    fl = np.asarray(per_m[mmax]["flow"])
    drop = float(np.mean(fl[:, 0] - fl[:, -1]))
    rise = max(float(np.max(np.diff(np.asarray(per_m[m]["flow"]), axis=1))) for m in widths)
    payload = {
        "experiment": "mf_sgd", "quick": quick, "seed": seed, "d": D, "dt_flow": DT_FLOW,
        "t_end": t_end, "n_record": n_record, "batch": BATCH, "widths": list(widths),
        "n_seeds": n_seeds,
        "times": np.linspace(0.0, t_end, n_record + 1).tolist(),
        "per_m": {str(m): v for m, v in per_m.items()}, "slope": slope,
        "slope_band": list(SLOPE_BAND), "flow_drop_at_max_m": drop,
        "max_flow_increase": rise, "seconds": time.perf_counter() - t0,
    }
    print(f"mf_sgd: online SGD (step 1/m, {BATCH} samples) vs the population flow (Heun, dt "
          f"{DT_FLOW}), ReLU student and teacher with biases, d = {D}, T = {t_end}, "
          f"{n_seeds} seeds")
    print(f"{'m':>5s} {'gap':>9s} {'+-':>8s} {'R_flow(T)':>10s} {'R_sgd(T)':>10s}")
    for m in widths:
        r = per_m[m]
        print(f"{m:5d} {r['gap']:9.2e} {r['gap_se']:8.1e} "
              f"{np.mean([f[-1] for f in r['flow']]):10.4f} "
              f"{np.mean([s[-1] for s in r['sgd']]):10.4f}")
    print(f"fitted slope of the gap in m: {slope:.2f} (band {SLOPE_BAND}); flow risk drop at "
          f"m = {mmax}: {drop:.3f}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if plot(payload, out / "mf_sgd.png"):
        payload["plot"] = "mf_sgd.png"
    (out / "mf_sgd.json").write_text(json.dumps(payload, indent=1))
    centre = 0.5 * (SLOPE_BAND[0] + SLOPE_BAND[1])
    half = 0.5 * (SLOPE_BAND[1] - SLOPE_BAND[0])
    gap_max = per_m[mmax]["gap"]
    return payload, [
        Row("mf_sgd/slope", abs(slope - centre), half, abs(slope - centre) <= half),
        Row(f"mf_sgd/gap_at_{mmax}", gap_max, GAP_FRACTION * drop, gap_max <= GAP_FRACTION * drop),
        Row("mf_sgd/flow_monotone", max(rise, 0.0), 0.0, rise <= 0.0),
    ]


def plot(payload, path):
    plt = pyplot()
    if plt is None:
        return False
    t = np.asarray(payload["times"])
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for k, m in enumerate(payload["widths"]):
        r = payload["per_m"][str(m)]
        c = f"C{k}"
        ax.plot(t, np.mean(r["flow"], axis=0), color=c, lw=1.8, label=f"m = {m}, flow")
        ax.plot(t, np.mean(r["sgd"], axis=0), color=c, lw=1.0, ls="--", label=f"m = {m}, SGD")
    ax.set_xlabel("time")
    ax.set_ylabel("population risk (mean over seeds)")
    ax.set_title("population drift (solid) vs online SGD (dashed)")
    ax.legend(fontsize=7, ncol=2)
    ms = np.asarray(payload["widths"], float)
    g = [payload["per_m"][str(m)]["gap"] for m in payload["widths"]]
    ax2.loglog(ms, g, "o-", label=f"max gap, slope {payload['slope']:.2f}")
    ax2.loglog(ms, g[0] * (ms / ms[0]) ** -0.5, "k--", lw=1, label="m^-1/2")
    ax2.loglog(ms, g[0] * (ms / ms[0]) ** -1.0, "k:", lw=1, label="m^-1")
    ax2.minorticks_off()
    ax2.set_xticks(ms)
    ax2.set_xticklabels([str(int(v)) for v in ms])
    ax2.set_xlabel("m (particles)")
    ax2.set_ylabel("max_t |R_sgd - R_flow|")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path, dpi=110)


@register("mf_sgd")
def run(quick: bool, out: Path) -> list[Row]:
    """Online SGD vs the population particle flow (mean-field, ReLU with biases)."""
    return experiment(out, quick=bool(quick), **CONFIGS[bool(quick)])[1]
