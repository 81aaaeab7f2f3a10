"""Particle dynamics (:mod:`analytic_ntk.meanfield.dynamics`)."""

from __future__ import annotations

import numpy as np
import pytest

import analytic_ntk as nt
from analytic_ntk.meanfield import Teacher, particle_flow, population_risk, sgd
from analytic_ntk.meanfield.dynamics import _sample_gradients

D = 4


def _setup(m=6, seed=0, noise=0.0, act=None):
    rng = np.random.default_rng(seed)
    t = Teacher(nt.Erf() if act is None else act, rng.standard_normal((2, D)) / np.sqrt(D),
                0.3 * rng.standard_normal(2), np.array([1.0, -0.5]), noise)
    return t, rng.standard_normal(m), rng.standard_normal((m, D)) / np.sqrt(D), \
        0.2 * rng.standard_normal(m)


def test_sample_gradients_are_exact():
    """The hand-written batch gradients against central differences of the batch loss."""
    t, u, w, b = _setup()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, D))
    y = t(x)
    act = nt.Erf()
    _, du, dw, db = _sample_gradients(act, u, w, b, x, y, 1.0)
    h = 1e-6
    for arr, g in ((u, du), (w, dw), (b, db)):
        flat, gf = arr.reshape(-1), g.reshape(-1)
        for i in range(0, flat.size, 2):
            old = flat[i]
            flat[i] = old + h
            lp = _sample_gradients(act, u, w, b, x, y, 1.0)[0]
            flat[i] = old - h
            lm = _sample_gradients(act, u, w, b, x, y, 1.0)[0]
            flat[i] = old
            assert gf[i] == pytest.approx((lp - lm) / (2 * h), rel=1e-6, abs=1e-9)


def test_flow_decreases_risk_and_heun_is_second_order():
    t, u, w, b = _setup()
    act = nt.Relu()
    ref = particle_flow(act, u, w, b, t, dt=0.0125, steps=32, method="heun")
    assert np.all(np.diff(ref.risk) < 0)
    errs = {}
    for method in ("euler", "heun"):
        for dt, n in ((0.1, 4), (0.05, 8)):
            tr = particle_flow(act, u, w, b, t, dt=dt, steps=n, method=method, record_every=n)
            errs[method, dt] = np.max(np.abs(tr.w - ref.w))
    # halving the step: Euler's error halves, Heun's falls by about four
    assert 1.6 < errs["euler", 0.1] / errs["euler", 0.05] < 2.5
    assert errs["heun", 0.1] / errs["heun", 0.05] > 3.0
    assert errs["heun", 0.05] < errs["euler", 0.05]


def test_online_sgd_tracks_the_population_flow():
    """Small steps on fresh samples follow the population flow (the SGD noise averages
    out): the risk after the same time agrees within 10 % of the risk decrease."""
    t, u, w, b = _setup(m=6, seed=2)
    act = nt.Erf()
    flow = particle_flow(act, u, w, b, t, dt=0.02, steps=50, record_every=50)
    run = sgd(act, u, w, b, t, dt=0.02, steps=50, batch_size=2000, record_every=50, seed=3)
    drop = flow.risk[0] - flow.risk[-1]
    assert drop > 0
    assert abs(run.risk[-1] - flow.risk[-1]) < 0.1 * drop


def test_langevin_stationary_variance():
    """With a negligible drift (alpha huge: the loss gradient is scaled by m / alpha^2)
    the Langevin dynamics is an Ornstein-Uhlenbeck process with stationary variance
    tau / lambda."""
    t, u, w, b = _setup(m=40, seed=4, act=nt.Sin())  # Sin pairs: exact and fast
    tau, lam = 0.3, 1.0
    tr = particle_flow(nt.Sin(), u, w, b, t, alpha=1e6, dt=0.05, steps=120,
                       weight_decay=lam, temperature=tau, record_every=120, seed=5)
    v = np.concatenate([tr.u, tr.w.ravel(), tr.b]).var()
    assert v == pytest.approx(tau / lam, rel=0.25)


def test_full_batch_gd_on_data_decreases_the_empirical_loss():
    t, u, w, b = _setup()
    rng = np.random.default_rng(6)
    x = rng.standard_normal((40, D))
    y = t(x)
    tr = sgd(nt.Relu(), u, w, b, t, dt=0.05, steps=30, data=(x, y), population=False,
             record_every=30)
    before = _sample_gradients(nt.Relu(), u, w, b, x, y, 1.0)[0]
    after = _sample_gradients(nt.Relu(), tr.u, tr.w, tr.b, x, y, 1.0)[0]
    assert after < 0.7 * before and np.isnan(tr.risk).all()
    assert tr.distance[-1] > 0


def test_bad_arguments():
    t, u, w, b = _setup()
    with pytest.raises(ValueError, match="dt"):
        particle_flow(nt.Relu(), u, w, b, t, dt=0.0, steps=1)
    with pytest.raises(ValueError, match="method"):
        particle_flow(nt.Relu(), u, w, b, t, dt=0.1, steps=1, method="rk4")
    with pytest.raises(ValueError, match="Euler"):
        particle_flow(nt.Relu(), u, w, b, t, dt=0.1, steps=1, method="heun", temperature=1.0)
    with pytest.raises(ValueError, match="data"):
        sgd(nt.Relu(), u, w, b, t, dt=0.1, steps=1, data=(np.ones((3, 2)), np.ones(3)))
    assert population_risk(nt.Relu(), u, w, b, t) > 0


def test_two_timescale_flow():
    """The output layer is the exact ridge minimiser at every recorded step (checked by
    the vanishing u-gradient of the regularised risk); the risk falls; statistics are
    recorded."""
    from analytic_ntk.meanfield import optimal_output_layer, two_timescale_flow

    t, _, w, b = _setup(m=6, seed=8)
    act = nt.Relu()
    ridge = 1e-3
    tr = two_timescale_flow(act, w, b, t, dt=0.05, steps=20, ridge=ridge, record_every=10,
                            statistics=lambda u, w, b: float(np.mean(np.linalg.norm(w, axis=1))))
    assert np.all(np.diff(tr.risk) < 0)
    assert len(tr.stats) == 3
    u = optimal_output_layer(act, tr.w, tr.b, t, ridge=ridge)
    _, (du, _, _) = population_risk(act, u, tr.w, tr.b, t, grad=True)
    np.testing.assert_allclose(du + ridge * u, 0.0, atol=1e-10)
    # u* beats any perturbation of it
    r0 = population_risk(act, u, tr.w, tr.b, t) + 0.5 * ridge * u @ u
    for k in range(3):
        v = u + 1e-3 * np.random.default_rng(k).standard_normal(u.size)
        assert population_risk(act, v, tr.w, tr.b, t) + 0.5 * ridge * v @ v > r0


def test_statistics_and_progress():
    t, u, w, b = _setup()
    tr = particle_flow(nt.Relu(), u, w, b, t, dt=0.1, steps=4, record_every=2, progress=True,
                       statistics=lambda u, w, b: np.histogram(u, bins=3)[0])
    assert len(tr.stats) == 3 and all(h.sum() == u.size for h in tr.stats)


def test_bias_free_relu_uses_the_fused_drift():
    """train_biases=False with a bias-free ReLU student and teacher: the fused
    relu_drift path (Relu) and the general path (ABRelu(0, 1), the same function) give the
    same trajectory; the biases stay zero."""
    rng = np.random.default_rng(9)
    t = Teacher(nt.Relu(), rng.standard_normal((2, D)) / np.sqrt(D), np.zeros(2),
                np.array([1.0, -0.5]))
    u, w = rng.standard_normal(8), rng.standard_normal((8, D)) / np.sqrt(D)
    b = np.zeros(8)
    fast = particle_flow(nt.Relu(), u, w, b, t, dt=0.1, steps=5, train_biases=False,
                         record_every=5)
    slow = particle_flow(nt.ABRelu(0.0, 1.0), u, w, b, t, dt=0.1, steps=5, train_biases=False,
                         record_every=5)
    # the general path takes the diagonal pairs (correlation 1) through the quadrature:
    # its dR/dw differs from the fused closed form by ~1.5e-10 relative at step 0, which
    # accumulates to ~1e-9 in w over the 5 steps (and ~3e-12 in the risk)
    np.testing.assert_allclose(fast.w, slow.w, rtol=3e-9, atol=1e-12)
    np.testing.assert_allclose(fast.risk, slow.risk, rtol=1e-11)
    assert not np.any(fast.b) and not np.any(slow.b)
