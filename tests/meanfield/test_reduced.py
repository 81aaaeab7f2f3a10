"""The rotationally reduced mean-field limit of the two-class model
(:mod:`analytic_ntk.meanfield.reduced`) and the generated drift it uses."""

from __future__ import annotations

import math

import numpy as np
import pytest

import analytic_ntk as nt
from analytic_ntk._generated.mmn_reduced import neuron_mean, pair_mean
from analytic_ntk.meanfield import TwoClass, particle_flow, two_class_reduced_flow, two_class_risk

ACT = nt.Gaussian(1.0, -0.5)


def test_generated_drift_against_bivariate_expectation():
    """``e(r)``, ``K(r1, r2, g)`` and their ``r``-derivatives against the library's
    expectations and central differences."""
    for s, r1, r2, g in ((1.5, 0.7, 1.2, 0.3), (0.5, 2.0, 0.4, -0.8), (1.0, 1.0, 1.0, 1.0)):
        k, dk = pair_mean(1.0, -0.5, s, r1, r2, g)
        ref = nt.bivariate_expectation(ACT, ACT, (s * r1) ** 2, (s * r2) ** 2,
                                       s * s * r1 * r2 * g)
        assert k == pytest.approx(ref, rel=1e-14)
        h = 1e-6
        fd = (pair_mean(1.0, -0.5, s, r1 + h, r2, g)[0]
              - pair_mean(1.0, -0.5, s, r1 - h, r2, g)[0]) / (2 * h)
        assert dk == pytest.approx(fd, rel=1e-8)
        e, de = neuron_mean(1.0, -0.5, s, r1)
        assert e == pytest.approx(1 / math.sqrt(1 + s * s * r1 * r1), rel=1e-15)
        assert de == pytest.approx(-s * s * r1 * (1 + s * s * r1 * r1) ** -1.5, rel=1e-14)


def test_generated_file_is_current(tmp_path):
    from derivations import mmn_reduced

    out = tmp_path / "mmn_reduced.py"
    mmn_reduced.write(out)
    assert out.read_text() == mmn_reduced.OUTPUT.read_text()


def test_initial_risk_against_many_particles():
    """At t = 0 the reduced risk is the m -> inf risk of the initial law: it agrees with
    the exact risk of 1500 particles within the finite-m error (the diagonal term,
    O(1/m), and O(m^-1/2) fluctuations)."""
    t, r, _ = two_class_reduced_flow(ACT, 0.5, 20, dt=0.05, steps=1, n_u=32, n_r=4)
    rng = np.random.default_rng(0)
    m = 1500
    u = rng.standard_normal(m)
    w = rng.standard_normal((m, 20)) / math.sqrt(20)
    risks = two_class_risk(ACT, u, w, np.zeros(m), 0.5)
    assert abs(risks - r[0]) < 0.01


def test_grid_convergence_and_descent():
    """Refining the grid (32 x 4 to 64 x 6 nodes in (u, r)) changes the risk curve by
    less than 2e-4 up to T = 2 (measured 1.3e-4; 64 x 6 against 128 x 8: 1e-6); the risk
    decreases."""
    kw = dict(dt=0.05, steps=40, n_angle=12, record_every=10)
    _, r1, _ = two_class_reduced_flow(ACT, 0.5, 20, n_u=32, n_r=4, **kw)
    _, r2, _ = two_class_reduced_flow(ACT, 0.5, 20, n_u=64, n_r=6, **kw)
    assert np.max(np.abs(r1 - r2)) < 2e-4
    assert np.all(np.diff(r2) < 0)


def test_particles_follow_the_reference_and_bad_input():
    """128 particles stay within 0.04 of the reference over T = 2 (a wrong time scale in
    the reference, dt doubled, does not); bad parameters raise."""
    kw = dict(n_u=32, n_r=4, n_angle=8, record_every=10)
    _, ref, _ = two_class_reduced_flow(ACT, 0.5, 20, dt=0.05, steps=40, **kw)
    _, fast, _ = two_class_reduced_flow(ACT, 0.5, 20, dt=0.1, steps=40, **kw)
    rng = np.random.default_rng(1)
    m = 128
    tr = particle_flow(ACT, rng.standard_normal(m), rng.standard_normal((m, 20)) / math.sqrt(20),
                       np.zeros(m), TwoClass(0.5), dt=0.05, steps=40, record_every=10,
                       method="heun", train_biases=False)
    gap = np.max(np.abs(tr.risk - ref))
    assert gap < 0.04
    assert np.max(np.abs(tr.risk - fast[: ref.size])) > 2 * gap
    with pytest.raises(ValueError, match="Gaussian"):
        two_class_reduced_flow(nt.Relu(), 0.5, 20, dt=0.1, steps=1)
    with pytest.raises(ValueError, match="delta"):
        two_class_reduced_flow(ACT, 1.5, 20, dt=0.1, steps=1)
    with pytest.raises(ValueError, match="multiple of 4"):
        two_class_reduced_flow(ACT, 0.5, 20, dt=0.1, steps=1, n_u=6)
    with pytest.raises(ValueError, match="delta"):
        TwoClass(-0.1)
