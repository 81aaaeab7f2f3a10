"""One-dimensional Gaussian means ``G(mu, t) = E[psi(mu + t xi)]`` in closed form
(:mod:`analytic_ntk.gaussian_means`) against mpmath quadrature at 30 digits, and their
derivatives against central differences and the heat equation ``dG/dt = t G''``."""

from __future__ import annotations

import functools

import mpmath as mp
import numpy as np
import pytest

import analytic_ntk as nt
from analytic_ntk import gaussian_means as gm

ACTS = {
    "relu": (nt.Relu(), lambda x: max(x, 0), [0]),
    "leaky": (nt.LeakyRelu(0.2), lambda x: x if x > 0 else mp.mpf("0.2") * x, [0]),
    "sign": (nt.Sign(), lambda x: mp.sign(x), [0]),
    "step": (nt.RectifiedMonomial(0), lambda x: 1 if x > 0 else 0, [0]),
    "rm3": (nt.RectifiedMonomial(3), lambda x: max(x, 0) ** 3, [0]),
    "erf": (nt.Erf(1.5, 0.7, 0.2), lambda x: mp.mpf("1.5") * mp.erf(mp.mpf("0.7") * x)
            + mp.mpf("0.2"), []),
    "sin": (nt.Sin(1.1, 1.3, 0.4), lambda x: mp.mpf("1.1") * mp.sin(mp.mpf("1.3") * x
                                                                      + mp.mpf("0.4")), []),
    "cos": (nt.Cos(1.0, 0.8, -0.3), lambda x: mp.cos(mp.mpf("0.8") * x - mp.mpf("0.3")), []),
    "gelu": (nt.Gelu(), lambda x: x * mp.ncdf(x), []),
    "poly": (nt.Polynomial((0.1, -1.0, 0.3, 0.05)),
             lambda x: mp.mpf("0.1") - x + mp.mpf("0.3") * x**2 + mp.mpf("0.05") * x**3, []),
    "exp": (nt.Exp(0.7, 0.6), lambda x: mp.mpf("0.7") * mp.exp(mp.mpf("0.6") * x), []),
    "gauss": (nt.Gaussian(1.2, -0.4), lambda x: mp.mpf("1.2") * mp.exp(-mp.mpf("0.4") * x * x),
              []),
}
POINTS = [(0.0, 1.0), (0.7, 0.3), (-1.3, 2.0), (2.5, 0.5), (-6.0, 1.0), (0.3, 0.0), (-0.4, 1e-6)]


@functools.cache
def _mp_mean(name, mu, t):
    f, kinks = ACTS[name][1], ACTS[name][2]
    with mp.workdps(30):
        mu, t = mp.mpf(mu), mp.mpf(t)
        if t == 0:
            return float(f(mu))
        pts = sorted({-40, -10, -3, 0, 3, 10, 40} | {(k - mu) / t for k in kinks})
        return float(mp.quad(lambda x: mp.npdf(x) * f(mu + t * x), pts))


@pytest.mark.parametrize("name", list(ACTS))
def test_mean_against_mpmath(name):
    act = ACTS[name][0]
    for mu, t in POINTS:
        ref = _mp_mean(name, mu, t)
        g = gm.evaluate(act, mu, t)[0]
        assert abs(g - ref) <= 1e-13 * abs(ref) + 1e-30, (mu, t, g, ref)  # exact zeros


@pytest.mark.parametrize("name", list(ACTS))
def test_derivatives(name):
    """``G'`` and ``G''`` against 4th-order central differences in ``mu``; ``dG/dt = t
    G''`` (the heat equation) against a central difference in ``t``."""
    act = ACTS[name][0]
    h = 1e-3
    for mu, t in [(0.2, 1.0), (-1.1, 0.6), (1.7, 1.4)]:
        g = [gm.evaluate(act, mu + k * h, t) for k in (-2, -1, 0, 1, 2)]
        d1 = (8 * (g[3][0] - g[1][0]) - (g[4][0] - g[0][0])) / (12 * h)
        d2 = (-g[4][0] + 16 * g[3][0] - 30 * g[2][0] + 16 * g[1][0] - g[0][0]) / (12 * h * h)
        _, g1, g2 = g[2]
        assert g1 == pytest.approx(d1, rel=1e-9, abs=1e-10)
        assert g2 == pytest.approx(d2, rel=1e-6, abs=1e-7)
        gt = [gm.evaluate(act, mu, t + k * h)[0] for k in (-2, -1, 1, 2)]
        dt = (8 * (gt[2] - gt[1]) - (gt[3] - gt[0])) / (12 * h)
        assert dt == pytest.approx(t * g2, rel=1e-8, abs=1e-9)


def test_tail_moments():
    """``I_n(r) = E[(xi + r)_+^n]`` in the lower tail (where the recurrence cancels)."""
    out = np.empty(5)
    with mp.workdps(30):
        for r in (-8.0, -3.0, -1.6, -1.4, 0.5):
            gm.rect_moments(4, r, out)
            for n in range(5):
                ref = mp.quad(lambda x, r=r, n=n: (x + r) ** n * mp.npdf(x),
                              [-r, -r + 1, -r + 5, mp.inf])
                assert abs(out[n] - ref) <= 5e-14 * ref, (n, r)


def test_bad_input():
    with pytest.raises(ValueError, match="non-negative"):
        gm.evaluate(nt.Relu(), 0.0, -1.0)
    with pytest.raises(ValueError, match="finite"):
        gm.evaluate(nt.Relu(), np.nan, 1.0)
    with pytest.raises(ValueError, match="closed-form"):
        gm.evaluate(nt.Activation("tanh(x)"), 0.0, 1.0)
