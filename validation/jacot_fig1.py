"""Experiment ``jacot_fig1``: Jacot, Gabriel & Hongler (2018), Figure 1 -- the empirical NTK
of finite ReLU networks on the unit circle converges to the analytic limit, fluctuates
less and moves less during training as the width grows.

Setting (the paper's section 6, reproduced)
    * Network: the paper's "depth L = 4" counts the layers of neurons from 0 (input,
      ``n_0 = 2``) to ``L`` (output, ``n_L = 1``), with ``n_1 = n_2 = n_3 = n`` hidden:
      3 hidden layers, 4 Dense layers, i.e. ``serial(Dense, Relu, Dense, Relu, Dense,
      Relu, Dense)`` here.  (Counting hidden layers, this is depth 3; the paper's
      convention is kept.)
    * Parameterization: the paper's NTK parameterization ``a^(l+1) = W^(l) x^(l) /
      sqrt(n_l) + beta b^(l)`` with ``W, b ~ N(0, 1)`` and no gain on the weights:
      ``Dense(weight_std=1, bias_std=beta)``, ``beta = 0.1`` (the paper's value), ReLU
      ``max(x, 0)``.  The pre-activation variance halves with each layer (0.51, 0.265,
      0.14, 0.08 at the output for ``|x| = 1``); ``Theta(x0, x0) = 0.28``.  The
      analytic curve is ``Network.kernel`` of exactly this network.
    * Inputs: ``x0 = (1, 0)`` and ``x = (cos g, sin g)`` for ``g`` on a uniform grid of
      ``[-pi, pi]`` (73 points, every 5 degrees; quick 37) that contains ``g = 0``.
    * Training: full-batch gradient descent (``finite.train``) with learning rate 1.0 on
      the loss ``||f(X) - Y||^2 / (2 N)`` (the paper's ``(1/2) E_pin[(f - f*)^2]`` over
      the empirical input distribution) for ``f*(x) = x1 x2`` on ``N = 16`` inputs drawn
      from ``N(0, I_2)`` (the paper does not give ``N``; 16 is a small training set the
      network fits in 200 steps: the loss falls by about an order of magnitude).
    * Sizes: ``--full`` the paper's: widths 500 and 10000, 10 initialisations trained
      for 200 steps (t = 200).  ``--quick``: widths 100 and 1000 (ratio 10 instead of 20),
      6 trained initialisations, 50 steps, 37 grid points.
    * The spread at ``t = 0`` is estimated from 40 initialisations per width: the
      trained ones plus more evaluated at initialisation only (cheap: no training).
      With 10 the standard deviation itself has a sampling error of ~22 % (measured:
      groups of 10 networks gave ``sqrt(n) * spread`` from 0.22 to 0.62 around 0.42),
      which makes the ratio of two of them uncertain by a factor ~1.4; with 40 it is
      ~11 % and ~1.17.

Measured quantities
    * spread(n): the standard deviation over initialisations of ``Theta_0(x0, x)``,
      root-mean-square over the grid.
    * change(n): per trained initialisation the relative change of the plotted curve,
      ``||Theta_t(x0, .) - Theta_0(x0, .)|| / ||Theta_0(x0, .)||`` (2-norm over the
      grid), averaged over the initialisations.
    * the mean of ``Theta_0(x0, .)`` over the initialisations at the largest width
      against the analytic curve (relative RMS error over the grid).
    Bootstrap (over initialisations, 400 resamples) 90 % intervals of both ratios are
    printed and stored.

Checks (``Row``; ``measured <= tolerance`` passes), with ``r = n_large / n_small``
    * ``spread_ratio``: spread(n_small) / spread(n_large) in ``[sqrt(r) / 1.8,
      1.8 sqrt(r)]`` (full: ``[2.5, 8.0]`` around ``sqrt(20) = 4.47``; quick ``[1.76,
      5.7]`` around 3.16) -- the fluctuations of the NTK at initialisation are
      ``O(n^(-1/2))`` (central limit theorem; Jacot et al. 2018, Theorem 1; Hanin & Nica
      2020).  Row: ``|ln(ratio / sqrt(r))| <= ln 1.8``.  The factor 1.8 is about three
      standard errors of the log-ratio with 40 initialisations per width (bootstrap
      standard error ~0.15-0.2).
    * ``change_ratio``: change(n_small) / change(n_large) in ``[sqrt(r) / 1.8, 1.8 r]``.
      The kernel moves by at most ``O(n^(-1/2))`` during training (Jacot et al. 2018,
      Theorem 2; Lee et al. 2019, Theorem 2.1: a bound), and for smooth activations by
      ``O(1/n)`` (Dyer & Gur-Ari 2020; Huang & Yau 2020: the NTK's time derivative is a
      ``1/n`` effect, because the parameter updates ``O(n^(-1/2))`` enter the kernel
      with random signs across neurons).  ReLU's kink adds an intermediate term (the
      few neurons whose pre-activation changes sign).  In exploratory runs (depth 4,
      50 steps, widths 128..2048, 10 initialisations) the change fell like
      ``n^(-0.85)`` on average, so the ratio is expected well above ``sqrt(r)``
      (``20^0.85 = 13``): the issue's "ratio near sqrt(20)" holds for the spread, not
      for the change.  The band spans the two theoretical rates with the same factor
      1.8 for sampling error.  Row: ``|ln(ratio / r^(3/4))| <= ln 1.8 + ln(r) / 4``.
      The fitted exponent ``ln(ratio) / ln(r)`` is printed.
    * ``mean_ntk_z``: the relative RMS error of the mean ``Theta_0(x0, .)`` over the 40
      initialisations at the largest width, divided by its standard error (the spread
      divided by ``sqrt(40)``, same normalisation), at most 4: the mean is unbiased up to
      ``O(1/n)`` (Hanin & Nica 2020), here at least ten times smaller than the standard
      error, and 4 standard errors leave room for the few dominant (correlated)
      fluctuation modes of the curve.  The relative error itself is printed (expected ~0.5 % full,
      ~1.5 % quick).

All draws are seeded (:data:`SEED`).  BLAS runs single-threaded (``threadpoolctl``, if
installed): the products have 16-73 rows and are memory bound, and on a shared 2-core
machine two OpenBLAS threads made a width-5000 training step 2.6 times slower.

Runtime
    Dominated by the training at the largest width: ``finite.train`` costs about 1.4 s
    per step at width 10000 on one core of the development machine (two 10000 x 10000
    weight matrices, updated in place by BLAS), so ``--full`` takes about an hour;
    ``--quick`` about 6 s.

References
    Jacot, Gabriel & Hongler 2018, "Neural Tangent Kernel: Convergence and
    Generalization in Neural Networks", NeurIPS (Figure 1, section 6); Lee, Xiao,
    Schoenholz, Bahri, Novak, Sohl-Dickstein & Pennington 2019, "Wide Neural Networks of
    Any Depth Evolve as Linear Models Under Gradient Descent", NeurIPS; Lee, Bahri,
    Novak, Schoenholz, Pennington & Sohl-Dickstein 2018, "Deep Neural Networks as
    Gaussian Processes", ICLR; Novak, Xiao, Hron, Lee, Alemi, Sohl-Dickstein & Schoenholz
    2020, "Neural Tangents: Fast and Easy Infinite Neural Networks in Python", ICLR;
    Dyer & Gur-Ari 2020, "Asymptotics of Wide Networks from Feynman Diagrams", ICLR;
    Huang & Yau 2020, "Dynamics of Deep Neural Networks and Neural Tangent Hierarchy",
    ICML; Hanin & Nica 2020, "Finite Depth and Width Corrections to the Neural Tangent
    Kernel", ICLR.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from analytic_ntk import Dense, Relu, finite, serial

from .jacot_fig2 import single_thread_blas
from .plotting import pyplot, save
from .registry import Row, register

SEED = 0
WEIGHT_STD = 1.0
BIAS_STD = 0.1  # the paper's beta
N_HIDDEN = 3  # the paper's L = 4: layers 0 (input) .. 4 (output)
D_IN = 2
LEARNING_RATE = 1.0
N_TRAIN = 16
N_SPREAD = 40  # initialisations for the spread at t = 0
BAND = 1.8  # sampling-error factor of the ratio bands
MEAN_Z_TOL = 4.0
N_BOOT = 400

#: sizes per mode
CONFIGS = {
    True: {"widths": (100, 1000), "n_inits": 6, "n_spread": N_SPREAD, "steps": 50,
           "n_gamma": 37},
    False: {"widths": (500, 10000), "n_inits": 10, "n_spread": N_SPREAD, "steps": 200,
            "n_gamma": 73},
}


def network(n_hidden=N_HIDDEN, weight_std=WEIGHT_STD, bias_std=BIAS_STD):
    """The paper's network: ``n_hidden`` ReLU hidden layers, NTK parameterization."""
    layers = []
    for _ in range(n_hidden):
        layers += [Dense(weight_std=weight_std, bias_std=bias_std), Relu()]
    return serial(*layers, Dense(weight_std=weight_std, bias_std=bias_std))


def circle(n_gamma):
    """``(gamma, x)``: ``n_gamma`` (odd, so that ``gamma = 0`` is on it) uniform angles in
    ``[-pi, pi]`` and the points ``(cos gamma, sin gamma)``."""
    if isinstance(n_gamma, bool) or not isinstance(n_gamma, int) or n_gamma < 3 or n_gamma % 2 == 0:
        raise ValueError(f"n_gamma must be an odd integer >= 3, got {n_gamma!r}")
    gamma = np.linspace(-math.pi, math.pi, n_gamma)
    gamma[n_gamma // 2] = 0.0
    return gamma, np.stack([np.cos(gamma), np.sin(gamma)], axis=1)


def training_set(n=N_TRAIN, seed=SEED):
    """``n`` inputs from ``N(0, I_2)`` and the targets ``f*(x) = x1 x2``."""
    x = np.random.default_rng([seed, 1]).standard_normal((n, D_IN))
    return x, x[:, 0] * x[:, 1]


def run_width(net, width, x_train, y_train, grid, i0, *, n_inits, n_spread, steps, rng):
    """Train ``n_inits`` networks of width ``width`` (recording the NTK on ``grid`` at
    steps 0 and ``steps``) and evaluate ``n_spread - n_inits`` more at initialisation.
    Returns the curves ``Theta(x0, .)`` (row ``i0`` of the grid kernel) and the losses."""
    t0 = time.perf_counter()
    theta0, theta_t, loss, full_change = [], [], [], []
    for _ in range(n_inits):
        fnet = finite.init(net, D_IN, width, seed=rng)
        res = finite.train(fnet, x_train, y_train, learning_rate=LEARNING_RATE, steps=steps,
                           record=(0, steps), ntk_inputs=grid)
        k0, kt = res.ntks[0], res.ntks[-1]
        theta0.append(k0[i0])
        theta_t.append(kt[i0])
        full_change.append(float(np.linalg.norm(kt - k0) / np.linalg.norm(k0)))
        f_end = finite.apply(res.network, x_train)[:, 0]
        loss.append([float(res.loss[0]) if steps else float("nan"),
                     float(0.5 * np.mean((f_end - y_train) ** 2))])
    t_train = time.perf_counter() - t0
    x0 = grid[i0:i0 + 1]
    for _ in range(n_spread - n_inits):
        fnet = finite.init(net, D_IN, width, seed=rng)
        theta0.append(finite.ntk(fnet, x0, grid)[0])
    return {
        "width": int(width),
        "theta0": np.asarray(theta0),
        "theta_t": np.asarray(theta_t),
        "loss": np.asarray(loss),
        "full_change": full_change,
        "seconds_train": t_train,
        "seconds": time.perf_counter() - t0,
    }


def spread(theta0):
    """RMS over the grid of the standard deviation over initialisations."""
    return float(np.sqrt(np.mean(np.var(theta0, axis=0, ddof=1))))


def changes(theta0, theta_t):
    """Relative change of each trained curve."""
    n = theta_t.shape[0]
    return np.linalg.norm(theta_t - theta0[:n], axis=1) / np.linalg.norm(theta0[:n], axis=1)


def _bootstrap_ratio(a, b, stat, rng, n_boot=N_BOOT):
    """90 % interval and log-standard-deviation of ``stat(a) / stat(b)`` resampling the
    rows of ``a`` and ``b`` independently."""
    vals = []
    for _ in range(n_boot):
        ia = rng.integers(0, len(a), len(a))
        ib = rng.integers(0, len(b), len(b))
        vals.append(stat(a[ia]) / stat(b[ib]))
    v = np.asarray(vals)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size < 2:
        return [float("nan")] * 2, float("nan")
    return np.percentile(v, [5, 95]).tolist(), float(np.std(np.log(v), ddof=1))


def ratio_stats(small, large, rng):
    """Spread and change ratios (small width over large width) with bootstrap intervals."""
    sp_s, sp_l = spread(small["theta0"]), spread(large["theta0"])
    ch_s = changes(small["theta0"], small["theta_t"])
    ch_l = changes(large["theta0"], large["theta_t"])
    sp_ci, sp_sd = _bootstrap_ratio(small["theta0"], large["theta0"], spread, rng)
    ch_ci, ch_sd = _bootstrap_ratio(ch_s[:, None], ch_l[:, None], lambda c: float(np.mean(c)),
                                    rng)
    return {
        "spread": [sp_s, sp_l], "spread_ratio": sp_s / sp_l, "spread_ratio_ci90": sp_ci,
        "spread_ratio_log_sd": sp_sd,
        "change_per_init": [ch_s.tolist(), ch_l.tolist()],
        "change": [float(np.mean(ch_s)), float(np.mean(ch_l))],
        "change_ratio": float(np.mean(ch_s) / np.mean(ch_l)), "change_ratio_ci90": ch_ci,
        "change_ratio_log_sd": ch_sd,
    }


def mean_check(theta0, analytic):
    """Relative RMS error of the mean curve and its standard error (same normalisation)."""
    n = theta0.shape[0]
    scale = float(np.sqrt(np.mean(analytic**2)))
    err = float(np.sqrt(np.mean((theta0.mean(axis=0) - analytic) ** 2))) / scale
    se = spread(theta0) / math.sqrt(n) / scale
    return err, se


# ------------------------------------------------------------------ report


def bands(r):
    """``(spread_lo, spread_hi, change_lo, change_hi)`` for width ratio ``r``."""
    s = math.sqrt(r)
    return s / BAND, s * BAND, s / BAND, r * BAND


def make_rows(payload):
    """The checks of the module docstring from the JSON ``payload``."""
    r = payload["width_ratio"]
    st = payload["ratios"]
    pre = "jacot_fig1"
    sp_dev = abs(math.log(st["spread_ratio"] / math.sqrt(r)))
    ch_dev = abs(math.log(st["change_ratio"] / r**0.75))
    z = payload["mean_check"]["z"]
    n_l = payload["widths"][-1]
    return [
        Row(f"{pre}/spread_ratio", sp_dev, math.log(BAND), sp_dev <= math.log(BAND)),
        Row(f"{pre}/change_ratio", ch_dev, math.log(BAND) + math.log(r) / 4,
            ch_dev <= math.log(BAND) + math.log(r) / 4),
        Row(f"{pre}/mean_ntk_z_at_{n_l}", z, MEAN_Z_TOL, z <= MEAN_Z_TOL),
    ]


def print_report(payload):
    w = payload["widths"]
    r = payload["width_ratio"]
    st = payload["ratios"]
    lo_s, hi_s, lo_c, hi_c = bands(r)
    print(f"jacot_fig1: ReLU, {payload['n_hidden']} hidden layers (paper's L = "
          f"{payload['n_hidden'] + 1}), weight_std {WEIGHT_STD:g}, bias_std {BIAS_STD:g}, "
          f"NTK param.; {payload['n_inits']} trained inits, {payload['steps']} GD steps "
          f"(lr {LEARNING_RATE:g}) on f*(x) = x1 x2, {N_TRAIN} N(0, I) inputs; spread from "
          f"{payload['n_spread']} inits; {payload['n_gamma']} grid points")
    print(f"{'width':>6s} {'spread t=0':>10s} {'sqrt(n)*spr':>11s} {'spread t=T':>10s} "
          f"{'change':>8s} {'loss 0':>8s} {'loss T':>8s} {'mean err':>8s} {'time':>8s}")
    for k, res in enumerate(payload["per_width"]):
        print(f"{res['width']:6d} {st['spread'][k]:10.4e} "
              f"{st['spread'][k] * math.sqrt(res['width']):11.3f} {res['spread_t']:10.4e} "
              f"{st['change'][k]:8.2e} {res['loss_mean'][0]:8.4f} {res['loss_mean'][1]:8.4f} "
              f"{res['mean_rel_err']:8.2e} {res['seconds']:7.1f}s")
    print(f"spread ratio {st['spread_ratio']:.3f} (90% CI {st['spread_ratio_ci90'][0]:.2f}-"
          f"{st['spread_ratio_ci90'][1]:.2f}); band [{lo_s:.2f}, {hi_s:.2f}] around "
          f"sqrt({r:g}) = {math.sqrt(r):.2f}: "
          f"{'pass' if lo_s <= st['spread_ratio'] <= hi_s else 'FAIL'}")
    print(f"change ratio {st['change_ratio']:.3f} (90% CI {st['change_ratio_ci90'][0]:.2f}-"
          f"{st['change_ratio_ci90'][1]:.2f}; exponent {st['change_exponent']:.2f}); band "
          f"[{lo_c:.2f}, {hi_c:.2f}] (n^-1/2 .. n^-1): "
          f"{'pass' if lo_c <= st['change_ratio'] <= hi_c else 'FAIL'}")
    mc = payload["mean_check"]
    print(f"mean NTK at width {w[-1]} vs analytic: relative RMS error {mc['rel_err']:.2e}, "
          f"standard error {mc['rel_stderr']:.2e}, z = {mc['z']:.2f} (<= {MEAN_Z_TOL:g}): "
          f"{'pass' if mc['z'] <= MEAN_Z_TOL else 'FAIL'}")


def plot(payload, path):
    """The paper's Figure 1 (curves of every trained initialisation at t = 0 solid and at
    t = T dashed, both widths, the analytic limit) and the change ``Theta_T - Theta_0``;
    returns False without matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    g = np.asarray(payload["gamma"])
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for k, res in enumerate(payload["per_width"]):
        c = f"C{k}"
        t0 = np.asarray(res["theta0"])[: payload["n_inits"]]
        tt = np.asarray(res["theta_t"])
        for i in range(tt.shape[0]):
            lab0 = f"n = {res['width']}, t = 0" if i == 0 else None
            labt = f"n = {res['width']}, t = {payload['steps']}" if i == 0 else None
            ax.plot(g, t0[i], color=c, lw=0.8, label=lab0)
            ax.plot(g, tt[i], color=c, lw=0.8, ls="--", label=labt)
            ax2.plot(g, tt[i] - t0[i], color=c, lw=0.8,
                     label=f"n = {res['width']}" if i == 0 else None)
    ax.plot(g, payload["analytic"], color="k", lw=2.2, label=r"$n = \infty$ (analytic)")
    ax.set_xlabel(r"$\gamma$")
    ax.set_ylabel(r"$\Theta(x_0, x)$, $x = (\cos\gamma, \sin\gamma)$")
    ax.set_title(f"NTK of a depth-{payload['n_hidden'] + 1} ReLU network (Jacot et al. Fig. 1)")
    ax.legend(fontsize=8)
    ax2.axhline(0.0, color="k", lw=0.8)
    ax2.set_xlabel(r"$\gamma$")
    ax2.set_ylabel(r"$\Theta_t(x_0, x) - \Theta_0(x_0, x)$")
    ax2.set_title(f"change during {payload['steps']} GD steps")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path, dpi=120)


def experiment(out, *, widths, n_inits, n_spread, steps, n_gamma, n_train=N_TRAIN,
               seed=SEED, quick=True):
    """Run the experiment at the given sizes; write ``out/jacot_fig1.json`` (and
    ``.png``), print the report, return ``(payload, rows)``."""
    widths = tuple(int(w) for w in widths)
    if len(widths) != 2 or not 1 <= widths[0] < widths[1]:
        raise ValueError(f"widths must be two increasing positive integers, got {widths}")
    if not 2 <= n_inits <= n_spread:
        raise ValueError(f"need 2 <= n_inits <= n_spread, got {n_inits}, {n_spread}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    gamma, grid = circle(n_gamma)
    i0 = n_gamma // 2
    x_train, y_train = training_set(n_train, seed)
    net = network()
    analytic = np.asarray(net.kernel(grid[i0:i0 + 1], grid).ntk)[0]
    t0 = time.perf_counter()
    per_width = []
    with single_thread_blas():
        for k, w in enumerate(widths):
            rng = np.random.default_rng([seed, 2, k])
            per_width.append(run_width(net, w, x_train, y_train, grid, i0, n_inits=n_inits,
                                       n_spread=n_spread, steps=steps, rng=rng))
    st = ratio_stats(per_width[0], per_width[1], np.random.default_rng([seed, 3]))
    r = widths[1] / widths[0]
    st["change_exponent"] = math.log(st["change_ratio"]) / math.log(r)
    st["spread_exponent"] = math.log(st["spread_ratio"]) / math.log(r)
    err, se = mean_check(per_width[1]["theta0"], analytic)
    out_w = []
    for res in per_width:
        e, s = mean_check(res["theta0"], analytic)
        out_w.append({
            "width": res["width"],
            "theta0": res["theta0"].tolist(),
            "theta_t": res["theta_t"].tolist(),
            "spread_t": spread(res["theta_t"]),
            "loss": res["loss"].tolist(),
            "loss_mean": res["loss"].mean(axis=0).tolist(),
            "full_grid_change": res["full_change"],
            "mean_theta_t_minus_theta0": float(np.mean(res["theta_t"]
                                                       - res["theta0"][:n_inits])),
            "mean_rel_err": e, "mean_rel_stderr": s,
            "seconds_train": res["seconds_train"], "seconds": res["seconds"],
        })
    lo_s, hi_s, lo_c, hi_c = bands(r)
    payload = {
        "experiment": "jacot_fig1", "quick": quick, "seed": seed,
        "n_hidden": N_HIDDEN, "weight_std": WEIGHT_STD, "bias_std": BIAS_STD,
        "parameterization": "ntk", "activation": "relu", "learning_rate": LEARNING_RATE,
        "n_train": n_train, "x_train": x_train.tolist(), "y_train": y_train.tolist(),
        "widths": list(widths), "width_ratio": r, "n_inits": n_inits, "n_spread": n_spread,
        "steps": steps, "n_gamma": n_gamma, "gamma": gamma.tolist(), "x0": [1.0, 0.0],
        "analytic": analytic.tolist(), "per_width": out_w, "ratios": st,
        "mean_check": {"width": widths[1], "rel_err": err, "rel_stderr": se, "z": err / se},
        "bands": {"spread": [lo_s, hi_s], "change": [lo_c, hi_c], "mean_z": MEAN_Z_TOL},
        "seconds": {"networks": time.perf_counter() - t0},
    }
    print_report(payload)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if plot(payload, out / "jacot_fig1.png"):
        payload["plot"] = "jacot_fig1.png"
    else:
        print("matplotlib not importable: plot skipped")
    payload["seconds"]["total"] = time.perf_counter() - t0
    (out / "jacot_fig1.json").write_text(json.dumps(payload, indent=1))
    return payload, make_rows(payload)


@register("jacot_fig1")
def run(quick: bool, out: Path) -> list[Row]:
    """Jacot et al. 2018, Figure 1: NTK of depth-4 ReLU networks of two widths on the unit
    circle at t = 0 and after gradient descent, against the analytic limit; writes
    ``out/jacot_fig1.json`` and ``out/jacot_fig1.png``."""
    return experiment(out, quick=bool(quick), **CONFIGS[bool(quick)])[1]
