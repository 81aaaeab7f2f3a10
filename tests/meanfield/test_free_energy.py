"""Free energy of mean-field Langevin dynamics: the nearest-neighbour entropy, the first
variation of the risk, and the free energy's parts."""

from __future__ import annotations

import math

import numpy as np
import pytest

import analytic_ntk as nt
from analytic_ntk.meanfield import Teacher, particle_flow, population_risk
from analytic_ntk.meanfield.free_energy import first_variation, free_energy, knn_entropy


def _teacher():
    return Teacher(nt.Erf(), np.array([[1.0, -0.5], [0.3, 0.8]]), np.array([0.2, -0.4]),
                   np.array([1.0, -0.7]))


def _particles(m=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(m), rng.standard_normal((m, 2)), 0.5 * rng.standard_normal(m)


def test_knn_entropy_of_gaussians():
    """Against the exact entropy (D/2) log(2 pi e) + log det(scale) of N(0, diag(s^2))."""
    rng = np.random.default_rng(0)
    s = np.array([1.0, 0.5, 2.0])
    x = rng.standard_normal((8000, 3)) * s
    exact = 1.5 * math.log(2 * math.pi * math.e) + float(np.sum(np.log(s)))
    assert knn_entropy(x) == pytest.approx(exact, abs=0.05)
    with pytest.raises(ValueError, match="repeated"):
        knn_entropy(np.zeros((10, 2)))
    with pytest.raises(ValueError, match="k must"):
        knn_entropy(x[:3], k=4)
    with pytest.raises(ValueError, match="2-D"):
        knn_entropy(x[:, 0])


def test_first_variation_is_the_risk_gradient_in_u():
    """``dR/du_j = (alpha/m) a(w_j, b_j)`` (exact identity, both from the pair kernels)."""
    u, w, b = _particles()
    t = _teacher()
    for alpha in (1.0, 3.0):
        _, (du, _, _) = population_risk(nt.Gelu(), u, w, b, t, alpha, grad=True)
        a = first_variation(nt.Gelu(), u, w, b, t, w, b, alpha)
        np.testing.assert_allclose(du, alpha / u.size * a, rtol=1e-12, atol=1e-15)


def test_first_variation_against_monte_carlo():
    """``a(w', b') = E[(f - y) sigma(w'.x + b')]`` by 4e5 samples of ``x``: within 5
    standard errors."""
    u, w, b = _particles()
    t = _teacher()
    wp = np.array([[0.7, -1.1], [0.0, 0.4]])
    bp = np.array([0.3, -0.8])
    a = first_variation(nt.Relu(), u, w, b, t, wp, bp)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((400_000, 2))
    f = np.maximum(x @ w.T + b, 0) @ u / u.size
    g = (f - t(x))[:, None] * np.maximum(x @ wp.T + bp, 0)
    se = g.std(axis=0) / math.sqrt(len(x))
    assert np.all(np.abs(g.mean(axis=0) - a) <= 5 * se)


def test_free_energy_parts_and_descent():
    """F = R + penalty - tau H with the library's risk; a short Langevin run from a wide
    initialisation lowers F; bad parameters raise."""
    u, w, b = _particles(m=200, seed=1)
    w = 2.0 * w
    t = _teacher()
    fe = free_energy(nt.Relu(), u, w, b, t, weight_decay=1.0, temperature=0.05)
    assert fe.risk == pytest.approx(population_risk(nt.Relu(), u, w, b, t))
    theta = np.column_stack([u, w, b])
    assert fe.penalty == pytest.approx(0.5 * np.mean(np.sum(theta**2, axis=1)))
    assert fe.total == pytest.approx(fe.risk + fe.penalty - 0.05 * fe.entropy)
    tr = particle_flow(nt.Relu(), u, w, b, t, dt=0.02, steps=50, weight_decay=1.0,
                       temperature=0.05, seed=0, record_every=50)
    fe1 = free_energy(nt.Relu(), tr.u, tr.w, tr.b, t, weight_decay=1.0, temperature=0.05)
    assert fe1.total < fe.total - 0.5
    with pytest.raises(ValueError, match="temperature"):
        free_energy(nt.Relu(), u, w, b, t, weight_decay=1.0, temperature=-1.0)
    with pytest.raises(ValueError, match="w_probe"):
        first_variation(nt.Relu(), u, w, b, t, np.zeros((2, 3)), np.zeros(2))
