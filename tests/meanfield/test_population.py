"""Population risk of two-layer networks (:mod:`analytic_ntk.meanfield.population`):
against Monte Carlo risk of the same particles on fresh samples, gradients against
finite differences, and a particle gradient flow with biases and a sigmoid teacher
(issue 10's acceptance check)."""

from __future__ import annotations

import numpy as np
import pytest

import analytic_ntk as nt
from analytic_ntk.meanfield import Teacher, monte_carlo_risk, population_risk

SIGMOID = nt.Activation("1/(1+exp(-x))")
D = 5


def _teacher(seed=0, act=SIGMOID, noise=0.1):
    rng = np.random.default_rng(seed)
    return Teacher(act, rng.standard_normal((2, D)), 0.5 * rng.standard_normal(2),
                   np.array([1.0, -0.7]), noise)


def _particles(m, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(m), rng.standard_normal((m, D)) / np.sqrt(D),
            0.3 * rng.standard_normal(m))


@pytest.mark.parametrize("act", [nt.Relu(), nt.Erf()], ids=["relu", "erf"])
def test_gradients_against_finite_differences(act):
    t = _teacher()
    u, w, b = _particles(6)
    _, (du, dw, db) = population_risk(act, u, w, b, t, alpha=1.0, grad=True)
    h = 1e-6
    for arr, g in ((u, du), (w, dw), (b, db)):
        flat, gf = arr.reshape(-1), g.reshape(-1)
        for i in range(0, flat.size, 5):
            old = flat[i]
            flat[i] = old + h
            rp = population_risk(act, u, w, b, t)
            flat[i] = old - h
            rm = population_risk(act, u, w, b, t)
            flat[i] = old
            assert gf[i] == pytest.approx((rp - rm) / (2 * h), rel=1e-6, abs=1e-8)


def test_gradient_flow_with_biases_and_sigmoid_teacher():
    """Particles with biases follow the population gradient flow (explicit Euler, time
    step 0.5 in the mean-field scaling ``theta' = -m grad R``); the risk falls, and at the
    end the risk from ``bivariate_expectation`` agrees with the Monte Carlo risk of the
    same particles on 10^6 samples within 3 standard errors."""
    t = _teacher()
    m = 8
    u, w, b = _particles(m)
    risks = []
    for _ in range(10):
        r, (du, dw, db) = population_risk(nt.Relu(), u, w, b, t, alpha=1.0, grad=True)
        risks.append(r)
        u, w, b = u - 0.5 * m * du, w - 0.5 * m * dw, b - 0.5 * m * db
    final = population_risk(nt.Relu(), u, w, b, t)
    assert np.all(np.diff(risks) < 0) and final < risks[-1] < 0.8 * risks[0]
    mc, se = monte_carlo_risk(nt.Relu(), u, w, b, t, n_samples=1_000_000, seed=3)
    assert abs(final - mc) <= 3 * se, (final, mc, se)


def test_bad_input():
    t = _teacher()
    u, w, b = _particles(4)
    with pytest.raises(ValueError, match="particles"):
        population_risk(nt.Relu(), u[:3], w, b, t)
    with pytest.raises(ValueError, match="input dimension"):
        population_risk(nt.Relu(), u, w[:, :3], b, t)
    with pytest.raises(ValueError, match="NaN"):
        population_risk(nt.Relu(), u, w, b * np.nan, t)
    with pytest.raises(ValueError, match="units"):
        Teacher(SIGMOID, np.ones((2, D)), np.ones(3), np.ones(2))


@pytest.mark.parametrize("act", [nt.Relu(), nt.Erf()], ids=["relu", "erf"])
def test_two_class_risk(act):
    """Mei-Montanari-Nguyen isotropic Gaussians: against Monte Carlo (2 x 10^6 samples,
    3 standard errors) and the gradients against finite differences."""
    from analytic_ntk.meanfield import two_class_risk

    rng = np.random.default_rng(7)
    m, delta = 6, 0.3
    u, w, b = rng.standard_normal(m), rng.standard_normal((m, D)) / np.sqrt(D), \
        0.3 * rng.standard_normal(m)
    r, (du, dw, db) = two_class_risk(act, u, w, b, delta, grad=True)
    n = 1_000_000
    losses = []
    for y, s in ((1.0, 1 + delta), (-1.0, 1 - delta)):
        x = s * rng.standard_normal((n, D))
        f = act.fn(x @ w.T + b) @ u / m
        losses.append(0.5 * (y - f) ** 2)
    loss = np.concatenate(losses)
    assert abs(r - loss.mean()) <= 3 * loss.std() / np.sqrt(loss.size)
    h = 1e-6
    for arr, g in ((u, du), (w, dw), (b, db)):
        flat, gf = arr.reshape(-1), g.reshape(-1)
        for i in range(0, flat.size, 3):
            old = flat[i]
            flat[i] = old + h
            rp = two_class_risk(act, u, w, b, delta)
            flat[i] = old - h
            rm = two_class_risk(act, u, w, b, delta)
            flat[i] = old
            assert gf[i] == pytest.approx((rp - rm) / (2 * h), rel=1e-6, abs=1e-8)
    with pytest.raises(ValueError, match="delta"):
        two_class_risk(act, u, w, b, 1.5)
