"""Experiment ``repopulation``: feature repopulation (Fang, Dong & Zhang 2019, "Over
parameterized two-level neural networks can learn near optimal feature
representations"; issue 6, experiment 5).

A two-layer ReLU network with biases is trained in the mean-field regime (``alpha = 1``)
by the exact population particle flow (:func:`analytic_ntk.meanfield.particle_flow`, Heun,
``dt = 0.1``, ``T = 8``) on the teacher of :mod:`validation.mf_sgd`.  Its first-layer
particles ``(w_j, b_j)`` are an empirical approximation of the learned feature
distribution.  Random-feature models with ``M`` features ``relu(w . x + b)`` are then
fitted by ridge regression (output layer only; regulariser ``1e-6`` of the mean
eigenvalue) on 2000 samples and tested on 20000 fresh ones, with features drawn

* from the initial distribution (``w ~ N(0, I/d)``, ``b ~ N(0, 0.2^2)``), or
* repopulated from the trained particles (resampled uniformly with replacement, plus
  ``N(0, 0.02^2)`` jitter).

Measured: test risk / ``E[y^2]`` for each ``M`` (mean over seeds).  Checks: the flow's
population risk falls below 5 % of its initial value; at every ``M`` the repopulated
features' test risk is at most half that of the initial-distribution features.

Sizes: ``--quick`` 128 particles, ``M`` = 16, 64, 256, 2 seeds (about 10 s);
``--full`` 512 particles, ``M`` = 16 .. 4096, 5 seeds.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from analytic_ntk import Relu
from analytic_ntk.meanfield import particle_flow

from . import mf_sgd
from .plotting import pyplot, save
from .registry import Row, register

SEED = 0
N_TRAIN = 2000
N_TEST = 20000
JITTER = 0.02
RIDGE = 1e-6
T_END = 8.0
DT = 0.1
RATIO_TOL = 0.5

CONFIGS = {
    True: {"m": 128, "features": (16, 64, 256), "n_seeds": 2},
    False: {"m": 512, "features": (16, 64, 256, 1024, 4096), "n_seeds": 5},
}


def rf_test_risk(w, b, xtr, ytr, xte, yte):
    """Relative test risk of ridge regression on the features ``relu(x . w + b)``."""
    h = np.maximum(xtr @ w.T + b, 0.0)
    ht = np.maximum(xte @ w.T + b, 0.0)
    a = h.T @ h
    reg = RIDGE * np.trace(a) / a.shape[0]
    c = np.linalg.solve(a + reg * np.eye(a.shape[0]), h.T @ ytr)
    return float(np.mean((ht @ c - yte) ** 2) / np.mean(yte**2))


def experiment(out, *, m, features, n_seeds, seed=SEED, quick=True):
    t0 = time.perf_counter()
    teacher = mf_sgd.teacher(seed)
    d = mf_sgd.D
    u, w, b = mf_sgd.particles(m, seed)
    steps = int(round(T_END / DT))
    flow = particle_flow(Relu(), u, w, b, teacher, dt=DT, steps=steps, method="heun",
                         record_every=steps)
    rng = np.random.default_rng([seed, 17])
    xtr = rng.standard_normal((N_TRAIN, d))
    xte = rng.standard_normal((N_TEST, d))
    ytr, yte = teacher(xtr), teacher(xte)
    res = {}
    for mf in features:
        r0, r1 = [], []
        for s in range(n_seeds):
            g = np.random.default_rng([seed + s, mf])
            w0 = g.standard_normal((mf, d)) / math.sqrt(d)
            b0 = 0.2 * g.standard_normal(mf)
            idx = g.integers(0, m, mf)
            w1 = flow.w[idx] + JITTER * g.standard_normal((mf, d))
            b1 = flow.b[idx] + JITTER * g.standard_normal(mf)
            r0.append(rf_test_risk(w0, b0, xtr, ytr, xte, yte))
            r1.append(rf_test_risk(w1, b1, xtr, ytr, xte, yte))
        res[mf] = {"initial": float(np.mean(r0)), "repopulated": float(np.mean(r1))}
    risk0, risk1 = float(flow.risk[0]), float(flow.risk[-1])
    payload = {"experiment": "repopulation", "quick": quick, "seed": seed, "m": m, "d": d,
               "t_end": T_END, "dt": DT, "flow_risk": [risk0, risk1],
               "features": list(features), "n_seeds": n_seeds,
               "results": {str(k): v for k, v in res.items()},
               "seconds": time.perf_counter() - t0}
    print(f"repopulation: {m} particles trained by the population flow (risk {risk0:.3f} -> "
          f"{risk1:.4f}); random-feature ridge regression, test risk / E[y^2]:")
    print(f"{'M':>6s} {'initial':>10s} {'repopulated':>12s} {'ratio':>7s}")
    for mf in features:
        r = res[mf]
        print(f"{mf:6d} {r['initial']:10.3e} {r['repopulated']:12.3e} "
              f"{r['repopulated'] / r['initial']:7.3f}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if plot(payload, out / "repopulation.png"):
        payload["plot"] = "repopulation.png"
    (out / "repopulation.json").write_text(json.dumps(payload, indent=1))
    rows = [Row("repopulation/flow_risk_fraction", risk1 / risk0, 0.05, risk1 / risk0 <= 0.05)]
    for mf in features:
        ratio = res[mf]["repopulated"] / res[mf]["initial"]
        rows.append(Row(f"repopulation/ratio_M{mf}", ratio, RATIO_TOL, ratio <= RATIO_TOL))
    return payload, rows


def plot(payload, path):
    plt = pyplot()
    if plt is None:
        return False
    ms = payload["features"]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for key, lab in (("initial", "features from the initial distribution"),
                     ("repopulated", "features repopulated from the trained particles")):
        ax.loglog(ms, [payload["results"][str(m)][key] for m in ms], "o-", label=lab)
    ax.minorticks_off()
    ax.set_xticks(ms)
    ax.set_xticklabels([str(m) for m in ms])
    ax.set_xlabel("number of random features M")
    ax.set_ylabel("test risk / E[y^2]")
    ax.set_title("feature repopulation (Fang, Dong & Zhang 2019)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path, dpi=110)


@register("repopulation")
def run(quick: bool, out: Path) -> list[Row]:
    """Random features repopulated from a mean-field-trained network vs initial ones."""
    return experiment(out, quick=bool(quick), **CONFIGS[bool(quick)])[1]
