"""Experiment ``linearized``: wide networks trained by gradient descent against their
linearisation and against the infinite-width NTK predictions (Lee et al. 2019).

Lee et al. 2019 (Theorem 2.1) prove that a network in the NTK parameterization trained by
full-batch gradient descent on the MSE loss stays within ``O(n^-1/2)`` of its
linearisation around the initial parameters, uniformly in time: the linear model
``f_lin(t) = f0 + Theta0_* Theta0^-1 (I - (I - eta Theta0 / N)^t) (Y - f0(X))`` built
from the network's *own* initial outputs ``f0`` and *own* initial empirical NTK
``Theta0``.  Networks of growing width are trained here and compared with

* ``lin``: that linear model (empirical NTK :func:`analytic_ntk.finite.ntk`, solved by
  :func:`analytic_ntk.predict.gradient_descent_mse` with ``discrete=True``, which is exact
  for the linearised network under discrete steps);
* ``analytic``: the same linear model with the *analytic* NTK of ``Network.kernel`` in
  place of ``Theta0`` (still the network's own ``f0``): the infinite-width dynamics of
  this initialisation;
* ``ensemble``: the infinite-width ensemble (``gradient_descent_mse_ensemble``), whose
  mean and covariance describe the trained outputs over random initialisations;

and the empirical NTK is tracked: ``ntk_change`` ``||Theta_T - Theta_0||_F /
||Theta_0||_F`` during training and ``ntk_init`` ``||Theta_0 - Theta||_F / ||Theta||_F``
against the analytic kernel, on the training inputs.

What the theory says about the rates.  Theorem 2.1 is an *upper bound*, ``O(n^-1/2)``,
for ``f - f_lin`` and for the NTK change.  Lee et al.'s Fig. 1 already observes that the
change of the empirical NTK during training, though bounded by ``O(n^-1/2)``, decays
closer to ``O(n^-1)``; Dyer & Gur-Ari 2020 and Huang & Yau 2020 derive ``O(n^-1)`` for
both the NTK change and ``f - f_lin`` (the deviation from the linear model is driven by
the NTK change).  The initial empirical NTK itself fluctuates around the analytic one by
``O(n^-1/2)`` (central limit theorem over the neurons), so the distance to the
*analytic* linear model is ``O(n^-1/2)``.  We measure all four rates:

====================  =========  ============================================
quantity              exponent   source
====================  =========  ============================================
``lin``               -1         Dyer & Gur-Ari 2020 (Lee et al.: bound -1/2)
``analytic``          -1/2       initial-NTK fluctuation
``ntk_change``        -1         Lee et al. Fig. 1, Dyer & Gur-Ari 2020
``ntk_init``          -1/2       central limit theorem
====================  =========  ============================================

Measured (seed 0): full -0.84, -0.49, -0.92, -0.52; quick -0.84, -0.52, -0.91, -0.52; a
trial with other seeds at full sizes gave -0.95, -0.49, -0.93, -0.53.  So ``f - f_lin``
decays clearly faster than the bound's ``n^-1/2`` and close to, but in this width range
slightly slower than, ``n^-1`` (the NTK change likewise).

Task
    16 training inputs on a Fibonacci lattice of the sphere ``|x| = sqrt(3)`` in
    ``R^3`` (so ``x.x / d = 1``; evenly spread points keep the NTK well conditioned:
    ``lambda_min / lambda_max = 0.021`` against 0.002 for 16 random points), 32 test
    inputs uniform on the same sphere (seeded), scalar target ``y = sin(x1) + x2 x3 / 2``.
Network
    ``serial(Dense, Erf, Dense, Erf, Dense)``: two hidden layers of width ``n``, NTK
    parameterization, ``weight_std = 1.5``, ``bias_std = 0.1`` (the Erf network of the
    ``digits`` experiment).  Erf rather than ReLU because Theorem 2.1 (and the ``n^-1``
    analyses) assume a smooth activation with bounded derivatives; at ReLU's kink the
    second-order expansion behind the ``n^-1`` rate does not apply.
Training
    full-batch gradient descent (:func:`analytic_ntk.finite.train`) on ``||f(X) - Y||^2 /
    (2 N)``, learning rate ``eta = 0.5 * predict.max_learning_rate(Theta)`` of the
    analytic NTK (0.78: half the stability limit ``2 N / lambda_max``, so the finite-width
    NTKs, ~30 % off at width 64, stay stable), ``T = 250`` steps (the slowest mode of the
    limit decays by ``(1 - eta lambda_min / N)^T = 0.004``), outputs recorded at steps 0,
    25, 50, 125, 250.  Widths ``64, 128, ..., 4096`` with 4 seeds each (``--quick``:
    ``64 ... 1024``, 6 seeds); network ``s`` of width ``n`` is drawn with
    ``numpy.random.default_rng([seed, n, s])``, ``seed = 0``.  BLAS is limited to one
    thread while training (see ``jacot_fig2.single_thread_blas``).  Cost: the width-4096
    networks take ~0.2 s per step, ~200 s of the ~250 s of ``--full``.
Measures
    ``lin``, ``analytic``: RMS over seeds and test points of the output difference at
    ``t = T`` (the maximum over the recorded steps is reported too: the difference grows
    with ``t`` and the maximum has always been at ``T``).  ``ntk_change``, ``ntk_init``:
    mean over seeds.  Slopes: least-squares fit of ``log(measure)`` on ``log(width)``
    over all widths, with its standard error.

Checks (``Row``; ``measured <= tolerance`` passes)
    * ``<quantity>/slope``: ``|slope - exponent| <= 0.3`` for the four quantities of the
      table.  The regression standard errors of the slopes are 0.04-0.08 (quick) and
      0.02-0.04 (full), but two seed sets at full sizes gave ``lin`` slopes 0.11 apart,
      so the seed-to-seed uncertainty is nearer 0.05-0.1; 0.3 is three or more of those,
      and the two candidate exponents differ by 0.5, so the band still separates them (a
      ``lin`` slope of -0.5, i.e. only the bound's rate, fails).
    * ``lin/relative_at_max_width``: ``lin`` at the widest network divided by the RMS
      change of the test outputs during training, ``rms(f_T - f_0)``, ``<= 0.02``: the
      linear model reproduces what training did to within 2 % (measured: 0.0087 at width
      1024, quick; 0.0026 at 4096, full); an error in the NTK or in the
      time/learning-rate convention of ``predict`` against ``finite.train`` gives an O(1)
      difference.
    * ``ensemble/spread``: ``|log s|``, ``s^2 = mean_{seeds, x} (f_T(x) - mu_T(x))^2 /
      mean_x sd_T(x)^2`` at the widest network (``mu_T``, ``sd_T`` from the ensemble at
      ``t = T``), ``<=`` the 99.9 % quantile of the same statistic over 20000 (quick 5000)
      sets of as many exact draws from the ensemble Gaussian (seeded Monte Carlo null
      distribution; the test outputs are correlated, so no closed form).

References
    Lee, Xiao, Schoenholz, Bahri, Novak, Sohl-Dickstein & Pennington 2019, "Wide Neural
    Networks of Any Depth Evolve as Linear Models Under Gradient Descent", NeurIPS
    (Theorem 2.1, eq. 9-16, Fig. 1); Jacot, Gabriel & Hongler 2018, "Neural Tangent
    Kernel: Convergence and Generalization in Neural Networks", NeurIPS; Dyer & Gur-Ari
    2020, "Asymptotics of Wide Networks from Feynman Diagrams", ICLR; Huang & Yau 2020,
    "Dynamics of Deep Neural Networks and Neural Tangent Hierarchy", ICML; Novak, Xiao,
    Hron, Lee, Alemi, Sohl-Dickstein & Schoenholz 2020, "Neural Tangents: Fast and Easy
    Infinite Neural Networks in Python", ICLR (the conventions of ``predict``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from analytic_ntk import Dense, Erf, finite, serial
from analytic_ntk import predict as nt_predict

from .jacot_fig2 import single_thread_blas
from .plotting import pyplot, save
from .registry import Row, register

N_TRAIN = 16
N_TEST = 32
D_IN = 3
HIDDEN = 2
WEIGHT_STD = 1.5
BIAS_STD = 0.1
LR_FRACTION = 0.5  # of predict.max_learning_rate
SEED = 0

#: quantity -> theoretical exponent of its decay with the width
EXPONENTS = {"lin": -1.0, "analytic": -0.5, "ntk_change": -1.0, "ntk_init": -0.5}
SLOPE_TOL = 0.3
REL_TOL = 0.02
NULL_QUANTILE = 0.999

#: sizes per mode
CONFIGS = {
    True: {"widths": (64, 128, 256, 512, 1024), "n_seeds": 6, "steps": 250, "n_null": 5000},
    False: {"widths": (64, 128, 256, 512, 1024, 2048, 4096), "n_seeds": 4, "steps": 250,
            "n_null": 20000},
}


def network():
    """Two Erf hidden layers, NTK parameterization (module docstring)."""
    layers = []
    for _ in range(HIDDEN):
        layers += [Dense(weight_std=WEIGHT_STD, bias_std=BIAS_STD), Erf()]
    return serial(*layers, Dense(weight_std=WEIGHT_STD, bias_std=BIAS_STD))


def fibonacci_sphere(n, radius):
    """``n`` evenly spread points of the sphere of ``radius`` in ``R^3``."""
    i = np.arange(n) + 0.5
    polar = np.arccos(1.0 - 2.0 * i / n)
    azimuth = math.pi * (1.0 + math.sqrt(5.0)) * i
    unit = np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar),
                     np.cos(polar)], axis=1)
    return radius * unit


def target(x):
    """The regression target ``sin(x1) + x2 x3 / 2``."""
    return np.sin(x[:, 0]) + 0.5 * x[:, 1] * x[:, 2]


def task(seed=SEED):
    """``(x_train, y_train, x_test, y_test)``: the module docstring's task."""
    radius = math.sqrt(D_IN)
    x = fibonacci_sphere(N_TRAIN, radius)
    z = np.random.default_rng([seed, 7]).standard_normal((N_TEST, D_IN))
    xt = radius * z / np.linalg.norm(z, axis=1, keepdims=True)
    return x, target(x), xt, target(xt)


def rms(a):
    return float(np.sqrt(np.mean(np.square(a))))


def fit_slope(widths, values):
    """Least-squares slope of ``log(values)`` on ``log(widths)`` and its standard error."""
    lw, lv = np.log(np.asarray(widths, float)), np.log(np.asarray(values, float))
    if len(lw) < 3:
        slope = float(np.polyfit(lw, lv, 1)[0])
        return slope, float("nan")
    coef, cov = np.polyfit(lw, lv, 1, cov=True)
    return float(coef[0]), float(math.sqrt(cov[0, 0]))


def null_spread(cov, n_seeds, n_null, seed):
    """``|log s|`` of ``n_null`` sets of ``n_seeds`` exact draws from ``N(mu, cov)``
    (the statistic of the ``ensemble/spread`` check; it does not depend on ``mu``)."""
    e, v = np.linalg.eigh(cov)
    root = v * np.sqrt(np.clip(e, 0.0, None))
    var = float(np.mean(np.clip(np.diag(cov), 0.0, None)))
    draws = np.random.default_rng(seed).standard_normal((n_null, n_seeds, cov.shape[0])) @ root.T
    return np.abs(0.5 * np.log(np.mean(draws**2, axis=(1, 2)) / var))


def run_width(net, width, n_seeds, data, steps, record, lr, kernels, seed):
    """Train ``n_seeds`` networks of ``width``; per-seed differences and NTK changes."""
    x, y, xt, _ = data
    kd, kt = kernels
    t_rec = np.array(record)
    out = {"lin": [], "analytic": [], "f_T": [], "move": [], "ntk_change": [],
           "ntk_init": [], "loss": []}
    with single_thread_blas():
        for s in range(n_seeds):
            fin = finite.init(net, x.shape[1], width, seed=[seed, width, s])
            res = finite.train(fin, x, y, learning_rate=lr, steps=steps, record=record,
                               x_test=xt, ntk_inputs=x)
            f0, f0t = res.outputs[0, :, 0], res.test_outputs[0, :, 0]
            th0, th0_test = res.ntks[0], finite.ntk(fin, xt, x)
            _, lin = nt_predict.gradient_descent_mse(
                th0, y, t_rec, fx_train_0=f0, fx_test_0=f0t, k_test_train=th0_test,
                learning_rate=lr, discrete=True)
            _, ana = nt_predict.gradient_descent_mse(
                kd.ntk, y, t_rec, fx_train_0=f0, fx_test_0=f0t, k_test_train=kt.ntk,
                learning_rate=lr, discrete=True)
            f = res.test_outputs[:, :, 0]  # (len(record), n_test)
            out["lin"].append(f - lin)
            out["analytic"].append(f - ana)
            out["f_T"].append(f[-1])
            out["move"].append(f[-1] - f0t)
            out["ntk_change"].append(float(np.linalg.norm(res.ntks[-1] - th0)
                                           / np.linalg.norm(th0)))
            out["ntk_init"].append(float(np.linalg.norm(th0 - kd.ntk) / np.linalg.norm(kd.ntk)))
            out["loss"].append(0.5 * float(np.mean((res.outputs[-1, :, 0] - y) ** 2)))
    return {k: np.array(v) for k, v in out.items()}


# ------------------------------------------------------------------ report


def make_rows(payload):
    """The checks (module docstring) from the JSON ``payload``."""
    rows = []
    for q, expo in EXPONENTS.items():
        dev = abs(payload["slopes"][q]["slope"] - expo)
        rows.append(Row(f"linearized/{q}/slope", dev, SLOPE_TOL, dev <= SLOPE_TOL))
    rel = payload["lin_relative_at_max_width"]
    rows.append(Row("linearized/lin/relative_at_max_width", rel, REL_TOL, rel <= REL_TOL))
    ens = payload["ensemble"]
    rows.append(Row("linearized/ensemble/spread", ens["log_spread"], ens["tolerance"],
                    ens["log_spread"] <= ens["tolerance"]))
    return rows


def print_report(payload):
    """One line per width, then the fitted slopes."""
    print(
        f"linearized: {N_TRAIN} train / {N_TEST} test points on the sphere |x| = sqrt(3), "
        f"Erf x{HIDDEN} hidden, NTK param. ({WEIGHT_STD:g}, {BIAS_STD:g}); lr "
        f"{payload['learning_rate']:.4g} (= {LR_FRACTION:g} x max "
        f"{payload['max_learning_rate']:.4g}), {payload['steps']} steps, "
        f"{payload['n_seeds']} seeds per width"
    )
    print(f"{'width':>6s} {'lin':>9s} {'analytic':>9s} {'ntk_chg':>9s} {'ntk_init':>9s} "
          f"{'ens_s':>6s} {'move':>6s} {'loss':>8s} {'s':>6s}")
    for w in payload["widths"]:
        r = payload["per_width"][str(w)]
        print(f"{w:6d} {r['lin']:9.3e} {r['analytic']:9.3e} {r['ntk_change']:9.3e} "
              f"{r['ntk_init']:9.3e} {r['ensemble_spread']:6.3f} {r['move']:6.3f} "
              f"{r['loss_max']:8.1e} {r['seconds']:6.1f}")
    for q, expo in EXPONENTS.items():
        s = payload["slopes"][q]
        print(f"slope {q:10s} {s['slope']:+.3f} +- {s['stderr']:.3f}  (theory {expo:+.2f}, "
              f"tolerance +-{SLOPE_TOL})")
    ens = payload["ensemble"]
    print(f"lin / rms(f_T - f_0) at width {max(payload['widths'])}: "
          f"{payload['lin_relative_at_max_width']:.2e} (tolerance {REL_TOL}); ensemble spread "
          f"{ens['ratio']:.3f} (|log| {ens['log_spread']:.3f}, tolerance {ens['tolerance']:.3f})")


def plot(payload, path):
    """Differences against width on log-log axes with the fitted and theoretical slopes;
    returns False (and draws nothing) without matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    w = np.asarray(payload["widths"], float)
    labels = {"lin": r"$\|f - f^{\rm lin}\|$ (own $\hat\Theta_0$)",
              "analytic": r"$\|f - f^{\rm lin}_\infty\|$ (analytic $\Theta$)",
              "ntk_change": r"$\|\hat\Theta_T - \hat\Theta_0\| / \|\hat\Theta_0\|$",
              "ntk_init": r"$\|\hat\Theta_0 - \Theta\| / \|\Theta\|$"}
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for c, (q, expo) in enumerate(EXPONENTS.items()):
        v = np.array([payload["per_width"][str(int(x))][q] for x in w])
        ax.loglog(w, v, "o-", color=f"C{c}", label=f"{labels[q]}: slope "
                  f"{payload['slopes'][q]['slope']:+.2f} (theory {expo:+.1f})")
        # the theoretical slope through the data's centre (log-log least squares)
        ref = np.exp(np.mean(np.log(v) - expo * np.log(w))) * w**expo
        ax.loglog(w, ref, ":", color=f"C{c}", lw=1)
    ax.set_xlabel("width $n$")
    ax.set_ylabel("RMS difference / relative change")
    ax.set_title(f"Erf, {HIDDEN} hidden layers, {payload['steps']} GD steps "
                 "(dotted: theoretical slopes)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path, dpi=120)


def experiment(out, *, widths, n_seeds, steps, n_null, seed=SEED, quick=True):
    """Run the experiment at the given sizes; write ``out/linearized.json`` (and
    ``out/linearized.png``), print the report, return ``(payload, rows)``."""
    widths = tuple(int(w) for w in widths)
    if len(widths) < 2 or any(w < 1 for w in widths) or len(set(widths)) != len(widths):
        raise ValueError(f"widths must be at least two distinct positive integers, got {widths}")
    for name, val, low in (("n_seeds", n_seeds, 2), ("steps", steps, 10), ("n_null", n_null, 100)):
        if isinstance(val, bool) or not isinstance(val, int) or val < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {val!r}")
    t0 = time.perf_counter()
    net = network()
    data = task(seed)
    x, y, xt, yt = data
    kd, kt, ktt = net.kernel(x), net.kernel(xt, x), net.kernel(xt)
    max_lr = float(nt_predict.max_learning_rate(kd.ntk))
    lr = LR_FRACTION * max_lr
    record = tuple(sorted({0, steps // 10, steps // 5, steps // 2, steps}))
    ens = nt_predict.gradient_descent_mse_ensemble(
        kd.ntk, kd.nngp, y, kt.ntk, kt.nngp, ktt.nngp, steps, learning_rate=lr, discrete=True)
    mu, cov = ens.mean, ens.cov
    var = float(np.mean(np.clip(np.diag(cov), 0.0, None)))
    eig = np.linalg.eigvalsh(kd.ntk)

    per_width, raw = {}, {}
    for w in widths:
        t1 = time.perf_counter()
        r = run_width(net, w, n_seeds, data, steps, record, lr, (kd, kt), seed)
        secs = time.perf_counter() - t1
        raw[w] = r
        spread = math.sqrt(float(np.mean((r["f_T"] - mu) ** 2)) / var)
        per_width[str(w)] = {
            "lin": rms(r["lin"][:, -1]), "analytic": rms(r["analytic"][:, -1]),
            "lin_max_over_t": max(rms(r["lin"][:, k]) for k in range(len(record))),
            "analytic_max_over_t": max(rms(r["analytic"][:, k]) for k in range(len(record))),
            "lin_per_t": [rms(r["lin"][:, k]) for k in range(len(record))],
            "analytic_per_t": [rms(r["analytic"][:, k]) for k in range(len(record))],
            "lin_per_seed": np.sqrt(np.mean(r["lin"][:, -1] ** 2, axis=1)).tolist(),
            "analytic_per_seed": np.sqrt(np.mean(r["analytic"][:, -1] ** 2, axis=1)).tolist(),
            "ntk_change": float(np.mean(r["ntk_change"])),
            "ntk_change_per_seed": r["ntk_change"].tolist(),
            "ntk_init": float(np.mean(r["ntk_init"])),
            "ntk_init_per_seed": r["ntk_init"].tolist(),
            "move": rms(r["move"]),
            "ensemble_spread": spread,
            "test_mse_vs_target": float(np.mean((r["f_T"] - yt) ** 2)),
            "loss": r["loss"].tolist(), "loss_max": float(np.max(r["loss"])),
            "f_T": r["f_T"].tolist(),
            "seconds": secs,
        }
    slopes = {}
    for q in EXPONENTS:
        s, se = fit_slope(widths, [per_width[str(w)][q] for w in widths])
        slopes[q] = {"slope": s, "stderr": se, "theory": EXPONENTS[q]}
    wide = max(widths)
    null = null_spread(cov, n_seeds, n_null, seed=[seed, 2])
    ratio = per_width[str(wide)]["ensemble_spread"]
    payload = {
        "experiment": "linearized", "quick": quick, "seed": seed,
        "network": {"activation": "erf", "hidden_layers": HIDDEN, "parameterization": "ntk",
                    "weight_std": WEIGHT_STD, "bias_std": BIAS_STD},
        "task": {"n_train": N_TRAIN, "n_test": N_TEST, "d": D_IN, "x_train": x.tolist(),
                 "y_train": y.tolist(), "x_test": xt.tolist(), "y_test": yt.tolist(),
                 "target": "sin(x1) + x2 x3 / 2"},
        "widths": list(widths), "n_seeds": n_seeds, "steps": steps, "record": list(record),
        "learning_rate": lr, "max_learning_rate": max_lr,
        "train_ntk_eigenvalues": eig.tolist(),
        "slow_mode_decay": float((1.0 - lr * eig[0] / N_TRAIN) ** steps),
        "ensemble_mean": mu.tolist(),
        "ensemble_sd": np.sqrt(np.clip(np.diag(cov), 0, None)).tolist(),
        "per_width": per_width, "slopes": slopes,
        "lin_relative_at_max_width": per_width[str(wide)]["lin"] / per_width[str(wide)]["move"],
        "ensemble": {"width": wide, "ratio": ratio, "log_spread": abs(math.log(ratio)),
                     "tolerance": float(np.quantile(null, NULL_QUANTILE)), "n_null": n_null,
                     "null_quantiles": {str(q): float(np.quantile(null, q))
                                        for q in (0.5, 0.9, 0.99, NULL_QUANTILE)}},
        "tolerances": {"slope": SLOPE_TOL, "lin_relative": REL_TOL,
                       "null_quantile": NULL_QUANTILE},
    }
    print_report(payload)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if plot(payload, out / "linearized.png"):
        payload["plot"] = "linearized.png"
    else:
        print("matplotlib not importable: plot skipped")
    payload["seconds"] = {"total": time.perf_counter() - t0}
    (out / "linearized.json").write_text(json.dumps(payload, indent=1))
    return payload, make_rows(payload)


@register("linearized")
def run(quick: bool, out: Path) -> list[Row]:
    """Trained networks of growing width against their linearisation and the NTK
    predictions; writes ``out/linearized.json`` and ``out/linearized.png``."""
    return experiment(out, quick=quick, **CONFIGS[bool(quick)])[1]
