"""Experiment ``mc_convergence``: empirical NNGP and NTK of finite networks converge to the
analytic kernels like ``width^(-1/2)``, for every closed-form activation family.

For each activation family of :data:`FAMILIES` and each depth, the analytic kernels
``Network.kernel(x)`` are compared with the empirical kernels of independently initialised
finite networks (:mod:`analytic_ntk.finite`) at geometrically spaced widths.  By the
central limit theorem for the hidden-layer features (Neal 1996; Lee et al. 2018; Matthews
et al. 2018) and for the NTK (Jacot, Gabriel & Hongler 2018; Hanin & Nica 2020), the
empirical kernel of one network deviates from the limit by ``O(width^(-1/2))``: the
law of ``sqrt(width) * error`` tends to a fixed one, so every quantile of the error falls
like ``width^(-1/2)``.

Networks
    ``serial(Dense, act, ..., Dense, act, Dense)`` with ``L`` hidden layers (``L``
    activations, ``L + 1`` Dense layers, all hidden widths equal to the width, one
    output), NTK parameterization (``stax`` default), the same ``weight_std`` and
    ``bias_std`` in every Dense.  The parameters (:data:`FAMILIES`) keep the
    pre-activation variances O(1) at every depth (0.3 to 2.9 for the unit-norm inputs,
    0.28 to 4.9 over all inputs, Gelu on the row of norm factor 1.25 the largest):

    * ReLU ``sqrt(2)``/0.1 (He), LeakyRelu(0.1) ``sqrt(2/1.01)``/0.1, Abs and Sign
      1/0.1, Rbf(0.5) 1/0.1 (``E[phi^2] = 1``), Identity 1/0.1: variance ~constant;
    * Erf, Sin(c=0.5), Gelu 1.5/0.1, Cos 1/0.1, Gaussian(1, -0.5) 1.5/0.1 (bounded or
      saturating: the variance map contracts to a fixed point of order 1);
    * Exp(1, 0.5) 0.5/0.1 (variance ~0.3: the log-normal tails of ``exp`` stay mild);
    * Polynomial((0.1, 1, 0.3)) 0.9/0.1 (variance 0.87 -> 1.1 over four layers for
      the unit-norm inputs);
    * RectifiedMonomial(2) and Monomial(2): homogeneous of degree 2, so the relative
      fluctuation of a layer's variance is doubled by the next layer (the slope of the
      variance map ``chi_q = d log q' / d log q = 2 (1 - bias_std^2 / q')``).  With a
      small bias the finite-width corrections grow like ``4^L`` and heavy-tailed (in
      exploratory runs at depth 4 the typical error still *rose* relative to
      ``width^(-1/2)`` up to width 2048, single networks had errors 30x the median).
      We therefore take ``weight_std^2 = bias_std^2 = q*/2`` with ``q* = C^(-1/2)``
      (``E[phi(z)^2] = C q^2``: ``C = 3/2`` and 3): ``q*`` is the variance of every
      layer (unit-variance inputs give ``weight_std^2 + bias_std^2 = q*`` in the first)
      and ``chi_q = 1`` (marginal, like ReLU).  Then ``sqrt(width) * error`` is flat
      from width 128 on at every depth.

Inputs
    8 points in ``d = 5`` (:func:`inputs`): Gaussian directions with a close pair
    (distance 0.05), a near-duplicate (0.01) and a near-antipodal pair, scaled to
    ``|x|^2 = d`` (unit input variance) except two rows (norm factors 0.8 and 1.25, so
    the diagonals differ).
Empirical kernels of one network
    NTK: ``finite.ntk`` (``J J^T`` of the output, layer by layer).  NNGP: the covariance
    of the output *given the hidden layers*, ``weight_std^2 a a^T / width + bias_std^2``
    with ``a`` the last hidden layer's activations (``finite.apply`` of the network
    without its read-out).  This is ``E[f f^T | hidden layers]``, the limit of
    ``f f^T / n_outputs`` as the number of outputs grows (what ``finite.empirical_nngp``
    averages); integrating the read-out weights out removes a ``1/sqrt(n_outputs)``
    sampling error that is unrelated to the width, so the error is purely the
    finite-width one.  For ``Sign`` the derivative is 0 almost everywhere (stax's
    convention, NTK factor 0, and what backpropagation computes), so only the read-out
    layer contributes to the empirical NTK, which then *equals* this conditional NNGP,
    and the analytic NTK equals the analytic NNGP: the Sign NTK rows check that
    convention and are not an independent test of the sign dual beyond the NNGP rows.
Error
    per network, the relative Frobenius error ``e = ||K_hat - K||_F / ||K||_F``; per
    width, the **geometric mean over the networks**, ``exp(mean(log e))`` (also recorded:
    median, mean, RMS, and the error of the mean kernel over the networks, which falls
    like ``width^(-1/2) / sqrt(n_networks)`` plus an ``O(1/width)`` bias).  Since the law
    of ``sqrt(width) * e`` tends to a fixed one, ``mean(log e) = -log(width)/2 + const``
    asymptotically, for the geometric mean exactly as for the median or the RMS.  Why
    the geometric mean: at small widths the error distribution of deep and degree-2
    networks has a heavy upper tail (products of random matrices; single networks 30x
    the median), which makes the RMS or the mean over a few dozen networks noisy by
    factors of 2; the median is robust but, for families whose error is essentially one
    chi-like variable (Exp, Cos, Gaussian: a kernel dominated by one direction), 1.5-1.7
    times noisier.  The mean of ``log e`` is both robust and as efficient as the mean
    (bootstrap standard errors of the slope on the same networks, Exp at depth 2:
    median 0.081, mean 0.041, geometric mean 0.048; RectifiedMonomial(2): 0.041, 0.048,
    0.028).
Fit
    least-squares slope of ``log(geometric-mean error)`` against ``log(width)``; its
    standard error by bootstrap (networks resampled within each width, 400 resamples).
Sizes
    ``--quick``: depth 1 at widths 64..8192 (8 widths; depth-1 networks have no
    width x width matrix, so wide ones are cheap) and depth 2 at widths 48..768 (5),
    64 networks per width, for all 15 families (about 20 s on 2 busy cores).
    ``--full``: depth 1 as in quick with 128 networks; depths 2, 3, 4 at widths
    64..4096 (7) with 32 networks per width (19 minutes on one core of a 2-core
    machine; 34 minutes when it shared the two cores with two other jobs; 1 GB of
    memory).
    The bootstrap standard error of the slope is printed: 0.005-0.02 at depth 1,
    0.01-0.05 at depth 2 in quick and 0.01-0.056 at depths 2-4 in full (largest for Exp,
    Cos and Gaussian at depth 3-4, whose band is then about 3 of them wide; for the
    others 5 or more).  The degree-2 families at depth 2 show a slightly flatter slope
    (-0.41 to -0.45) in quick (48..768) than in full (64..4096): their small-width
    errors are still pre-asymptotic (depressed typical errors, heavy tail).

Checks (``Row``; ``measured <= tolerance`` passes), per family, depth and kernel
    * ``.../slope``: ``|slope + 1/2| <= 0.15``, i.e. the slope in ``[-0.65, -0.35]``
      (issue).  A discrepancy between analytic and empirical kernels that does not
      shrink with width flattens the slope: an error floor ``delta`` reaches the band's
      edge once ``delta`` is comparable to the largest width's sampling error.
    * ``.../err_at_<n>``: the geometric-mean error at the largest width ``n`` is at most
      ``15 / sqrt(n)`` (0.54 at 768, 0.23 at 4096, 0.17 at 8192).  In the exploratory
      runs ``sqrt(width) * error`` was 0.3-5 for most families and depths and at most
      ~10 (Polynomial and the degree-2 activations at depth 4, NTK, with the median
      and other parameters); in the full run at width 4096 it is 0.3-6.6 (the largest
      RectifiedMonomial(2) NTK at depth 4).  15 leaves ample headroom for seed-to-seed
      variation.  A wrong dual map, factor or missing layer
      term produces relative errors that do not decrease and that are typically of
      order 0.1-1; smaller ones are caught by the slope.

All draws are seeded (:data:`SEED`).  BLAS is limited to one thread while the networks
are sampled (``threadpoolctl``, if installed): the products have 8 rows and are memory
bound, and on a busy 2-core machine OpenBLAS threads made them three times slower.

References
    Jacot, Gabriel & Hongler 2018, "Neural Tangent Kernel: Convergence and
    Generalization in Neural Networks", NeurIPS; Lee, Bahri, Novak, Schoenholz,
    Pennington & Sohl-Dickstein 2018, "Deep Neural Networks as Gaussian Processes",
    ICLR; Lee, Xiao, Schoenholz, Bahri, Novak, Sohl-Dickstein & Pennington 2019, "Wide
    Neural Networks of Any Depth Evolve as Linear Models Under Gradient Descent",
    NeurIPS; Novak, Xiao, Hron, Lee, Alemi, Sohl-Dickstein & Schoenholz 2020, "Neural
    Tangents: Fast and Easy Infinite Neural Networks in Python", ICLR; Matthews, Rowland,
    Hron, Turner & Ghahramani 2018, "Gaussian Process Behaviour in Wide Deep Neural
    Networks", ICLR; Hanin & Nica 2020, "Finite Depth and Width Corrections to the Neural
    Tangent Kernel", ICLR; Neal 1996, "Bayesian Learning for Neural Networks".
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from analytic_ntk import (
    Abs,
    Cos,
    Dense,
    Erf,
    Exp,
    Gaussian,
    Gelu,
    Identity,
    LeakyRelu,
    Monomial,
    Polynomial,
    Rbf,
    RectifiedMonomial,
    Relu,
    Sign,
    Sin,
    finite,
    serial,
)

from .jacot_fig2 import single_thread_blas
from .plotting import pyplot, save
from .registry import Row, register

SEED = 0
N_POINTS = 8
D_IN = 5
KINDS = ("nngp", "ntk")
SLOPE = -0.5
SLOPE_TOL = 0.15  # slope in [-0.65, -0.35]
ERR_C = 15.0  # geometric-mean error at the largest width n must be <= ERR_C / sqrt(n)
N_BOOT = 400


def _degree2(c):
    """``(weight_std, bias_std)`` with ``weight_std^2 = bias_std^2 = q*/2``, ``q* =
    C^(-1/2)`` for an activation with ``E[phi(z)^2] = C q^2`` (module docstring)."""
    s = math.sqrt(0.5 / math.sqrt(c))
    return s, s


#: name -> (activation, weight_std, bias_std); see the module docstring
FAMILIES = {
    "relu": (Relu(), math.sqrt(2.0), 0.1),
    "leaky_relu": (LeakyRelu(0.1), math.sqrt(2.0 / 1.01), 0.1),
    "abs": (Abs(), 1.0, 0.1),
    "sign": (Sign(), 1.0, 0.1),
    "rect_monomial2": (RectifiedMonomial(2), *_degree2(1.5)),
    "erf": (Erf(), 1.5, 0.1),
    "sin": (Sin(c=0.5), 1.5, 0.1),
    "cos": (Cos(), 1.0, 0.1),
    "gelu": (Gelu(), 1.5, 0.1),
    "exp": (Exp(a=1.0, b=0.5), 0.5, 0.1),
    "gaussian": (Gaussian(a=1.0, b=-0.5), 1.5, 0.1),
    "rbf": (Rbf(0.5), 1.0, 0.1),
    "monomial2": (Monomial(2), *_degree2(3.0)),
    "polynomial": (Polynomial((0.1, 1.0, 0.3)), 0.9, 0.1),
    "identity": (Identity(), 1.0, 0.1),
}

#: runs per mode: (depths, widths, networks per width)
CONFIGS = {
    True: (
        {"depths": (1,), "widths": tuple(64 * 2**k for k in range(8)), "n_networks": 64},
        {"depths": (2,), "widths": tuple(48 * 2**k for k in range(5)), "n_networks": 64},
    ),
    False: (
        {"depths": (1,), "widths": tuple(64 * 2**k for k in range(8)), "n_networks": 128},
        {"depths": (2, 3, 4), "widths": tuple(64 * 2**k for k in range(7)), "n_networks": 32},
    ),
}


# ------------------------------------------------------------------ pieces


def inputs(n_points=N_POINTS, d=D_IN, seed=SEED):
    """The fixed input set (module docstring): Gaussian directions with a close pair, a
    near-duplicate and a near-antipodal pair, norms ``sqrt(d)`` except rows 5 and 6."""
    if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 7:
        raise ValueError(f"n_points must be an integer >= 7, got {n_points!r}")
    if isinstance(d, bool) or not isinstance(d, int) or d < 2:
        raise ValueError(f"d must be an integer >= 2, got {d!r}")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_points, d))
    x[1] = x[0] + 0.05 * rng.standard_normal(d)
    x[2] = x[0] + 0.01 * rng.standard_normal(d)
    x[4] = -x[3] + 0.05 * rng.standard_normal(d)
    x *= math.sqrt(d) / np.linalg.norm(x, axis=1, keepdims=True)
    x[5] *= 0.8
    x[6] *= 1.25
    return x


def network(activation, depth, weight_std, bias_std):
    """``serial(Dense, act, ..., Dense, act, Dense)`` with ``depth`` hidden layers."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive integer, got {depth!r}")
    layers = []
    for _ in range(depth):
        layers += [Dense(weight_std=weight_std, bias_std=bias_std), activation]
    return serial(*layers, Dense(weight_std=weight_std, bias_std=bias_std))


def sample_kernels(net, fnet, x):
    """``(nngp, ntk)`` of one finite network ``fnet`` of ``net``: the NNGP conditional on
    the hidden layers (read-out integrated out) and the empirical NTK."""
    hidden = finite.FiniteNetwork(
        serial(*net.layers[:-1]), fnet.d_in, fnet.widths[:-1], fnet.weights[:-1],
        fnet.biases[:-1],
    )
    a = finite.apply(hidden, x)
    out = net.layers[-1]
    nngp = out.weight_std**2 * (a @ a.T) / a.shape[1] + out.bias_std**2
    return nngp, finite.ntk(fnet, x)


def rel_err(k, ref):
    """``||k - ref||_F / ||ref||_F``."""
    return float(np.linalg.norm(k - ref) / np.linalg.norm(ref))


def fit_slope(widths, errors):
    """Least-squares ``(slope, intercept)`` of ``log(errors)`` against ``log(widths)``."""
    slope, icpt = np.polyfit(np.log(np.asarray(widths, float)), np.log(errors), 1)
    return float(slope), float(icpt)


def bootstrap_slope_sd(widths, per_network, rng, n_boot=N_BOOT):
    """Standard deviation of the fitted slope (of the geometric-mean error) over bootstrap
    resamples of the networks (independently within each width)."""
    e = np.asarray(per_network, float)  # (n_widths, M)
    m = e.shape[1]
    if m < 2:
        return float("nan")
    idx = rng.integers(0, m, size=(n_boot, e.shape[0], m))
    log_gm = np.mean(np.log(np.take_along_axis(e[None], idx, axis=2)), axis=2)  # (B, n_w)
    lx = np.log(np.asarray(widths, float))
    lx = lx - lx.mean()
    slopes = (log_gm @ lx) / (lx @ lx)
    return float(np.std(slopes, ddof=1))


def convergence(net, x, widths, n_networks, rng):
    """Sample ``n_networks`` networks per width; per kernel kind the per-network errors,
    their geometric mean, median, mean, RMS and the error of the mean kernel, per
    width."""
    ref = net.kernel(x)
    refs = {"nngp": np.asarray(ref.nngp), "ntk": np.asarray(ref.ntk)}
    res = {k: {"per_network": [], "geomean": [], "median": [], "mean": [], "rms": [],
               "of_mean": []} for k in KINDS}
    for w in widths:
        errs = {k: [] for k in KINDS}
        sums = {k: np.zeros_like(refs[k]) for k in KINDS}
        for _ in range(n_networks):
            fnet = finite.init(net, x.shape[1], w, seed=rng)
            for k, kern in zip(KINDS, sample_kernels(net, fnet, x)):
                errs[k].append(rel_err(kern, refs[k]))
                sums[k] += kern
        for k in KINDS:
            e = np.asarray(errs[k])
            r = res[k]
            r["per_network"].append(e.tolist())
            r["geomean"].append(float(np.exp(np.mean(np.log(e)))))
            r["median"].append(float(np.median(e)))
            r["mean"].append(float(np.mean(e)))
            r["rms"].append(float(np.sqrt(np.mean(e * e))))
            r["of_mean"].append(rel_err(sums[k] / n_networks, refs[k]))
    return res, refs


def err_tolerance(n_max):
    """Bound on the geometric-mean error at the largest width ``n_max``."""
    return ERR_C / math.sqrt(n_max)


# ------------------------------------------------------------------ report


def make_rows(payload):
    """The checks of the module docstring from the JSON ``payload``."""
    rows = []
    for fam, per_depth in payload["results"].items():
        for depth, r in per_depth.items():
            n_max = r["widths"][-1]
            for k in KINDS:
                rk = r[k]
                pre = f"mc_convergence/{fam}/L{depth}/{k}"
                dev = abs(rk["slope"] - SLOPE)
                rows.append(Row(f"{pre}/slope", dev, SLOPE_TOL, dev <= SLOPE_TOL))
                err, tol = rk["geomean"][-1], rk["err_tolerance"]
                rows.append(Row(f"{pre}/err_at_{n_max}", err, tol, err <= tol))
    return rows


def print_report(payload):
    """One line per family, depth and kernel."""
    print("mc_convergence: relative Frobenius error of one network's empirical kernel "
          "(geometric mean over networks) against the analytic one; slope of log(err) vs "
          f"log(width) must lie in [{SLOPE - SLOPE_TOL:.2f}, {SLOPE + SLOPE_TOL:.2f}], "
          f"err at the largest width n <= {ERR_C:g}/sqrt(n)")
    head = (f"{'family':15s} {'L':>2s} {'kernel':6s} {'widths':>10s} {'M':>4s} "
            f"{'slope':>7s} {'+-':>5s} {'err(n_min)':>10s} {'err(n_max)':>10s} "
            f"{'tol':>6s} {'sqrt(n)err':>10s} {'mean-err':>8s}  check")
    print(head)
    print("-" * len(head))
    for fam, per_depth in payload["results"].items():
        for depth, r in per_depth.items():
            w = r["widths"]
            for k in KINDS:
                rk = r[k]
                ok = (abs(rk["slope"] - SLOPE) <= SLOPE_TOL
                      and rk["geomean"][-1] <= rk["err_tolerance"])
                print(f"{fam:15s} {depth:>2} {k:6s} {f'{w[0]}..{w[-1]}':>10s} "
                      f"{r['n_networks']:4d} {rk['slope']:7.3f} {rk['slope_sd']:5.3f} "
                      f"{rk['geomean'][0]:10.3e} {rk['geomean'][-1]:10.3e} "
                      f"{rk['err_tolerance']:6.3f} {rk['geomean'][-1] * math.sqrt(w[-1]):10.2f} "
                      f"{rk['of_mean'][-1]:8.1e}  {'pass' if ok else 'FAIL'}")


def plot(payload, path):
    """Geometric-mean error against width, log-log: one panel per kernel and depth, one line per
    family, with the reference slope -1/2; returns False without matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    depths = sorted({int(d) for per in payload["results"].values() for d in per})
    fams = list(payload["results"])
    fig, axes = plt.subplots(len(KINDS), len(depths), figsize=(3.4 * len(depths) + 1.8, 6.4),
                             squeeze=False, sharey="row")
    cmap = plt.get_cmap("tab20")
    handles = {}
    for i, k in enumerate(KINDS):
        for j, depth in enumerate(depths):
            ax = axes[i][j]
            w = None
            for c, fam in enumerate(fams):
                r = payload["results"][fam].get(str(depth))
                if r is None:
                    continue
                (h,) = ax.loglog(r["widths"], r[k]["geomean"], marker=".", color=cmap(c % 20),
                                 lw=1)
                handles.setdefault(fam, h)
                w = np.asarray(r["widths"], float)
            if w is None:
                continue
            (h,) = ax.loglog(w, 2.0 / np.sqrt(w), "k--", lw=1.5)
            handles.setdefault("2 / sqrt(width)", h)
            ax.minorticks_off()
            ax.set_xticks(w[:: max(1, len(w) // 4)])
            ax.set_xticklabels([str(int(v)) for v in w[:: max(1, len(w) // 4)]], fontsize=7)
            ax.set_title(f"{k.upper()}, {depth} hidden layer{'s' if depth > 1 else ''}",
                         fontsize=9)
            ax.set_xlabel("width")
            if j == 0:
                ax.set_ylabel("relative error (geometric mean)")
    fig.legend(list(handles.values()), list(handles), loc="center right", fontsize=7)
    fig.tight_layout(rect=(0, 0, 1 - 1.6 / (3.4 * len(depths) + 1.8), 1))
    return save(fig, path, dpi=110)


def experiment(out, *, runs, families=None, n_points=N_POINTS, d=D_IN, seed=SEED,
               quick=True):
    """Run the experiment: ``runs`` is a sequence of ``{"depths", "widths",
    "n_networks"}``; ``families`` a subset of :data:`FAMILIES` (default all).  Writes
    ``out/mc_convergence.json`` (and ``.png``), prints the table, returns ``(payload,
    rows)``."""
    fams = list(FAMILIES) if families is None else list(families)
    for f in fams:
        if f not in FAMILIES:
            raise ValueError(f"unknown family {f!r}; known: {', '.join(FAMILIES)}")
    if not fams:
        raise ValueError("families must name at least one family")
    runs = [dict(r) for r in runs]
    if not runs:
        raise ValueError("runs must contain at least one run")
    for r in runs:
        w = tuple(int(v) for v in r["widths"])
        if len(w) < 2 or any(v < 1 for v in w) or list(w) != sorted(set(w)):
            raise ValueError(f"widths must be >= 2 increasing positive integers, got {w}")
        if int(r["n_networks"]) < 1:
            raise ValueError(f"n_networks must be positive, got {r['n_networks']!r}")
        r["widths"], r["depths"] = w, tuple(int(v) for v in r["depths"])
    x = inputs(n_points, d, seed)
    t0 = time.perf_counter()
    results = {}
    boot_rng = np.random.default_rng(seed + 1)
    with single_thread_blas():
        for fam in fams:
            act, ws, bs = FAMILIES[fam]
            results[fam] = {}
            for run_i, r in enumerate(runs):
                for depth in r["depths"]:
                    t1 = time.perf_counter()
                    net = network(act, depth, ws, bs)
                    # one stream per (family, depth): results do not depend on the order
                    rng = np.random.default_rng([seed, fams.index(fam), depth, run_i])
                    res, refs = convergence(net, x, r["widths"], int(r["n_networks"]), rng)
                    entry = {"widths": list(r["widths"]), "n_networks": int(r["n_networks"]),
                             "nngp_diag": np.diag(refs["nngp"]).tolist(),
                             "ntk_diag": np.diag(refs["ntk"]).tolist()}
                    for k in KINDS:
                        slope, icpt = fit_slope(r["widths"], res[k]["geomean"])
                        res[k].update(
                            slope=slope, intercept=icpt,
                            slope_sd=bootstrap_slope_sd(r["widths"], res[k]["per_network"],
                                                        boot_rng),
                            err_tolerance=err_tolerance(r["widths"][-1]),
                        )
                        entry[k] = res[k]
                    entry["seconds"] = time.perf_counter() - t1
                    results[fam][str(depth)] = entry
    payload = {
        "experiment": "mc_convergence", "quick": quick, "seed": seed,
        "inputs": x.tolist(), "n_points": n_points, "d": d,
        "parameterization": "ntk",
        "families": {f: {"activation": repr(FAMILIES[f][0]), "weight_std": FAMILIES[f][1],
                         "bias_std": FAMILIES[f][2]} for f in fams},
        "runs": [{"depths": list(r["depths"]), "widths": list(r["widths"]),
                  "n_networks": int(r["n_networks"])} for r in runs],
        "error": "per network ||K_hat - K||_F / ||K||_F; geometric mean over networks per "
                 "width (also median, mean, rms, and of_mean = error of the mean kernel "
                 "over networks); NNGP_hat = E[f f^T | hidden layers]",
        "slope_target": SLOPE, "slope_tolerance": SLOPE_TOL, "err_c": ERR_C,
        "n_bootstrap": N_BOOT, "results": results,
        "seconds": {"sampling": time.perf_counter() - t0},
    }
    print_report(payload)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if plot(payload, out / "mc_convergence.png"):
        payload["plot"] = "mc_convergence.png"
    else:
        print("matplotlib not importable: plot skipped")
    payload["seconds"]["total"] = time.perf_counter() - t0
    (out / "mc_convergence.json").write_text(json.dumps(payload, indent=1))
    return payload, make_rows(payload)


@register("mc_convergence")
def run(quick: bool, out: Path) -> list[Row]:
    """Monte Carlo convergence of empirical NNGP/NTK to the analytic kernels for every
    closed-form activation family; writes ``out/mc_convergence.json`` and ``.png``."""
    return experiment(out, runs=CONFIGS[bool(quick)], quick=bool(quick))[1]
