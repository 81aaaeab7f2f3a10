"""Experiment ``lazy_active``: the lazy (NTK) and the active (mean-field) regimes of the same
two-layer network (issue 6, experiment 3; Chizat, Oyallon & Bach 2019; Mei, Montanari &
Nguyen 2018).

Setting
    ``f(x) = (alpha / m) sum_j u_j relu(w_j . x + b_j)``, ``u ~ N(0, 1)``, ``w ~ N(0, I /
    d)``, ``b ~ N(0, 0.2^2)``, d = 5; 20 training and 50 test inputs ``x ~ N(0, I)``,
    targets from a fixed teacher of two ReLU units with biases.  Full-batch gradient
    descent on ``mean((f - y)^2) / 2`` (:func:`analytic_ntk.meanfield.sgd` with ``data``)
    in the time scaling ``d theta_j / dt = -(m / alpha^2) grad_j`` (step 0.01) up to
    ``T = 5``, for ``alpha = 1`` (mean-field) and ``alpha = sqrt(m)`` (lazy).
NTK prediction
    In this time scaling the network function follows ``df/dt = -Theta (f - y) / n`` with
    ``Theta = (m / alpha^2) J J^T``, whose infinite-width limit does not depend on
    ``alpha``: ``Theta_inf(x, x') = F + G (x . x' + 1)``, ``F = E[relu(z) relu(z')]``,
    ``G = E[relu'(z) relu'(z')]``, ``(z, z')`` centred Gaussian with covariance ``x . x' /
    d + 0.2^2`` (the dual and NTK factor of :func:`analytic_ntk.duals.evaluate`; the ``x .
    x' + 1`` is the gradient in ``(w, b)``).  The linearised prediction on the test
    inputs from the network's own ``f_0`` is :func:`analytic_ntk.predict.gradient_descent_mse`.
Measured per (regime, m), averaged over seeds
    * ``gap``: ``rms(f_T - f_pred) / rms(f_T - f_0)`` on the test inputs;
    * ``move``: ``|theta_T - theta_0| / |theta_0|`` over all parameters;
    * ``kernel``: ``||Theta_T - Theta_0||_F / ||Theta_0||_F`` of the empirical kernel on
      the training inputs.
Checks
    * ``lazy/gap_slope``: the lazy gap falls with m, slope in [-1.0, -0.25] (theory
      -1/2);
    * ``lazy/gap_at_<m>``: at the largest m the lazy network matches the NTK prediction
      within 5 % of its function change;
    * ``mf_vs_lazy_gap``: at the largest m the lazy gap is at most half the mean-field one
      (the mean-field network is not described by the NTK);
    * ``lazy/move_slope``: parameters move like m^-1/2 (slope in [-0.75, -0.25]);
    * ``mf/move_slope``: in the mean-field regime the relative movement does not shrink
      (|slope| <= 0.15) -- features move;
    * ``kernel_ratio``: at the largest m the lazy kernel change is at most 20 % of the
      mean-field one.
Sizes
    ``--quick``: m = 64 .. 4096, 3 seeds (a few seconds); ``--full``: m = 64 .. 16384,
    5 seeds.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from analytic_ntk import Relu, duals, predict
from analytic_ntk.meanfield import Teacher, sgd

from .plotting import pyplot, save
from .registry import Row, register

SEED = 0
D = 5
N_TRAIN = 20
N_TEST = 50
BIAS_SD = 0.2
T_END = 5.0
DT = 0.01

CONFIGS = {
    True: {"widths": (64, 256, 1024, 4096), "n_seeds": 3},
    False: {"widths": (64, 256, 1024, 4096, 16384), "n_seeds": 5},
}


def problem(seed=SEED):
    rng = np.random.default_rng([seed, 5])
    t = Teacher(Relu(), 1.5 * rng.standard_normal((2, D)) / math.sqrt(D),
                0.3 * rng.standard_normal(2), np.array([1.0, -0.6]))
    x = rng.standard_normal((N_TRAIN, D))
    xt = rng.standard_normal((N_TEST, D))
    return t, x, t(x), xt


def limit_ntk(a, c):
    """``Theta_inf(a_i, c_j) = F + G (a . c + 1)`` (module docstring)."""
    q = a @ c.T / D + BIAS_SD**2
    qa = np.sum(a * a, axis=1) / D + BIAS_SD**2
    qc = np.sum(c * c, axis=1) / D + BIAS_SD**2
    f, g = duals.evaluate(Relu(), qa[:, None], qc[None, :], q)
    return f + g * (a @ c.T + 1.0)


def network(u, w, b, alpha, x):
    return alpha / u.size * (np.maximum(x @ w.T + b, 0.0) @ u)


def empirical_ntk(u, w, b, alpha, x):
    """``(m / alpha^2) J J^T`` on ``x``: ``(1/m) sum_j [h_j h_j' + u_j^2 h'_j h'_j (x.x' +
    1)]``."""
    m = u.size
    z = x @ w.T + b
    h = np.maximum(z, 0.0)
    dh = (z > 0).astype(float)
    return (h @ h.T + ((dh * u**2) @ dh.T) * (x @ x.T + 1.0)) / m


def run_one(regime, m, seed, t, x, y, xt, k_tt, k_st):
    alpha = 1.0 if regime == "mf" else math.sqrt(m)
    rng = np.random.default_rng([seed, m, 11])
    u = rng.standard_normal(m)
    w = rng.standard_normal((m, D)) / math.sqrt(D)
    b = BIAS_SD * rng.standard_normal(m)
    steps = int(round(T_END / DT))
    tr = sgd(Relu(), u, w, b, t, alpha, dt=DT, steps=steps, data=(x, y), population=False,
             record_every=steps)
    f0, f0t = network(u, w, b, alpha, x), network(u, w, b, alpha, xt)
    ftt = network(tr.u, tr.w, tr.b, alpha, xt)
    _, fpt = predict.gradient_descent_mse(k_tt, y, T_END, fx_train_0=f0, fx_test_0=f0t,
                                          k_test_train=k_st)
    th0 = np.concatenate([u, w.ravel(), b])
    th1 = np.concatenate([tr.u, tr.w.ravel(), tr.b])
    k0 = empirical_ntk(u, w, b, alpha, x)
    k1 = empirical_ntk(tr.u, tr.w, tr.b, alpha, x)
    return {
        "gap": float(np.sqrt(np.mean((ftt - fpt) ** 2)) / np.sqrt(np.mean((ftt - f0t) ** 2))),
        "move": float(np.linalg.norm(th1 - th0) / np.linalg.norm(th0)),
        "kernel": float(np.linalg.norm(k1 - k0) / np.linalg.norm(k0)),
        "train_loss": float(0.5 * np.mean((network(tr.u, tr.w, tr.b, alpha, x) - y) ** 2)),
    }


def _slope(ms, v):
    return float(np.polyfit(np.log(np.asarray(ms, float)), np.log(v), 1)[0])


def experiment(out, *, widths, n_seeds, seed=SEED, quick=True):
    t0 = time.perf_counter()
    t, x, y, xt = problem(seed)
    k_tt, k_st = limit_ntk(x, x), limit_ntk(xt, x)
    res = {}
    for regime in ("mf", "lazy"):
        res[regime] = {}
        for m in widths:
            runs = [run_one(regime, m, seed + s, t, x, y, xt, k_tt, k_st)
                    for s in range(n_seeds)]
            res[regime][m] = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
    ms = list(widths)
    stat = {reg: {k: [res[reg][m][k] for m in ms] for k in ("gap", "move", "kernel")}
            for reg in res}
    slopes = {reg: {k: _slope(ms, stat[reg][k]) for k in stat[reg]} for reg in stat}
    payload = {"experiment": "lazy_active", "quick": quick, "seed": seed, "d": D,
               "n_train": N_TRAIN, "n_test": N_TEST, "t_end": T_END, "dt": DT,
               "widths": ms, "n_seeds": n_seeds,
               "results": {reg: {str(m): v for m, v in res[reg].items()} for reg in res},
               "slopes": slopes, "seconds": time.perf_counter() - t0}
    print(f"lazy_active: two-layer ReLU with biases, d = {D}, {N_TRAIN} training points, GD "
          f"to T = {T_END}; alpha = 1 (mf) and sqrt(m) (lazy); {n_seeds} seeds")
    print(f"{'regime':6s} {'m':>6s} {'test gap to NTK':>16s} {'param move':>11s} "
          f"{'kernel change':>14s} {'train loss':>11s}")
    for reg in res:
        for m in ms:
            r = res[reg][m]
            print(f"{reg:6s} {m:6d} {r['gap']:16.3e} {r['move']:11.3e} {r['kernel']:14.3e} "
                  f"{r['train_loss']:11.2e}")
        print(f"{reg:6s} slopes in m: gap {slopes[reg]['gap']:.2f}, move "
              f"{slopes[reg]['move']:.2f}, kernel {slopes[reg]['kernel']:.2f}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if plot(payload, out / "lazy_active.png"):
        payload["plot"] = "lazy_active.png"
    (out / "lazy_active.json").write_text(json.dumps(payload, indent=1))
    mmax = ms[-1]
    lz, mf = res["lazy"][mmax], res["mf"][mmax]
    rows = []

    def band(name, v, lo, hi):
        c, h = 0.5 * (lo + hi), 0.5 * (hi - lo)
        rows.append(Row(name, abs(v - c), h, abs(v - c) <= h))

    band("lazy_active/lazy/gap_slope", slopes["lazy"]["gap"], -1.0, -0.25)
    rows.append(Row(f"lazy_active/lazy/gap_at_{mmax}", lz["gap"], 0.05, lz["gap"] <= 0.05))
    ratio = lz["gap"] / mf["gap"]
    rows.append(Row("lazy_active/mf_vs_lazy_gap", ratio, 0.5, ratio <= 0.5))
    band("lazy_active/lazy/move_slope", slopes["lazy"]["move"], -0.75, -0.25)
    mv = abs(slopes["mf"]["move"])
    rows.append(Row("lazy_active/mf/move_slope", mv, 0.15, mv <= 0.15))
    kr = lz["kernel"] / mf["kernel"]
    rows.append(Row("lazy_active/kernel_ratio", kr, 0.2, kr <= 0.2))
    return payload, rows


def plot(payload, path):
    plt = pyplot()
    if plt is None:
        return False
    ms = np.asarray(payload["widths"], float)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    labels = {"gap": "test gap to the NTK prediction", "move": "relative parameter movement",
              "kernel": "relative change of the empirical NTK"}
    for ax, key in zip(axes, ("gap", "move", "kernel")):
        for reg, c, lab in (("mf", "C3", "mean-field (alpha = 1)"),
                            ("lazy", "C0", "lazy (alpha = sqrt(m))")):
            v = [payload["results"][reg][str(int(m))][key] for m in ms]
            ax.loglog(ms, v, "o-", color=c, label=f"{lab}, slope "
                      f"{payload['slopes'][reg][key]:.2f}")
        ax.loglog(ms, v[0] * (ms / ms[0]) ** -0.5, "k--", lw=1, label="m^-1/2")
        ax.minorticks_off()
        ax.set_xticks(ms)
        ax.set_xticklabels([str(int(m)) for m in ms])
        ax.set_xlabel("m")
        ax.set_title(labels[key], fontsize=10)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path, dpi=110)


@register("lazy_active")
def run(quick: bool, out: Path) -> list[Row]:
    """Lazy (alpha = sqrt(m)) vs mean-field (alpha = 1) training of a two-layer network."""
    return experiment(out, quick=bool(quick), **CONFIGS[bool(quick)])[1]
