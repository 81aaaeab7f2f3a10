"""The training-dynamics validation experiments ``jacot_fig2`` and ``linearized`` on tiny
configurations: report structure, rows and sanity of the numbers (not the checks
themselves, which need the experiments' real sizes)."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest

from validation import jacot_fig2, linearized, registry

HAS_MPL = importlib.util.find_spec("matplotlib") is not None


def test_registered():
    experiments = registry.load()
    assert experiments["jacot_fig2"] is jacot_fig2.run
    assert experiments["linearized"] is linearized.run


# ------------------------------------------------------------------ jacot_fig2


@pytest.fixture(scope="module")
def jacot_small(tmp_path_factory):
    out = tmp_path_factory.mktemp("jacot_fig2")
    payload, rows = jacot_fig2.experiment(out, widths=(20, 200), n_inits=3, steps=100,
                                          n_grid=30, n_null=300)
    return out, payload, rows


def test_jacot_fig2_report(jacot_small):
    out, _, rows = jacot_small
    data = json.loads((out / "jacot_fig2.json").read_text())
    assert data["experiment"] == "jacot_fig2" and data["widths"] == [20, 200]
    assert data["n_inits"] == 3 and data["steps"] == 100 and len(data["gamma"]) == 30
    lim = data["limit"]
    mu, sd = np.array(lim["mean"]), np.array(lim["sd"])
    assert mu.shape == sd.shape == (30,) and np.all(sd >= 0) and sd.max() > 0.05
    np.testing.assert_allclose(lim["p90"], mu + jacot_fig2.Z90 * sd)
    # learning rate 1 is far inside the stable range (module docstring)
    assert lim["max_learning_rate"] > 10
    for w in ("20", "200"):
        net = data["networks"][w]
        assert np.array(net["f"]).shape == (3, 30) and np.array(net["f0"]).shape == (3, 30)
        # training reduced the loss far below the expected initial loss
        assert net["final_loss_relative_max"] < 0.1
        s = data["statistics"][w]
        assert 0.0 <= s["coverage_fraction"] <= 1.0 and s["mean_z"] >= 0 and s["spread_ratio"] > 0
    assert data["residual_ratio"] > 0 and data["residual_ratio_theory"] == pytest.approx(0.1**0.5)
    for key in ("coverage", "mean_z", "spread"):
        assert data["null_tolerances"][key] > 0
    if HAS_MPL:
        assert data["plot"] == "jacot_fig2.png" and (out / "jacot_fig2.png").stat().st_size > 0
    names = [r.name for r in rows]
    assert names == ["jacot_fig2/n200/coverage", "jacot_fig2/n200/mean_z",
                     "jacot_fig2/n200/spread", "jacot_fig2/residual_ratio",
                     "jacot_fig2/n20/final_loss", "jacot_fig2/n200/final_loss"]
    for r in rows:
        assert isinstance(r, registry.Row) and r.passed == (r.measured <= r.tolerance)
        assert math.isfinite(r.measured) and r.tolerance > 0


def test_jacot_fig2_null_statistics():
    """Draws from the Gaussian itself: coverage of the 10-90 band near 0.8, mean_z near 1,
    spread near 1 (independent values, so the averages are tight)."""
    mu, cov = np.linspace(-1, 1, 50), np.diag(np.linspace(0.5, 2.0, 50))
    rng = np.random.default_rng(0)
    draws = mu + rng.standard_normal((2000, 50)) * np.sqrt(np.diag(cov))
    s = jacot_fig2.sample_statistics(draws, mu, np.sqrt(np.diag(cov)))
    assert s["coverage"] < 0.01 and abs(s["spread_ratio"] - 1) < 0.03
    null = jacot_fig2.null_statistics(mu, cov, n_inits=10, n_null=400, seed=1)
    assert abs(np.median(null["mean_z"]) - 1) < 0.1
    assert np.quantile(null["coverage"], 0.5) < 0.05


def test_jacot_fig2_bad_sizes(tmp_path):
    with pytest.raises(ValueError, match="widths"):
        jacot_fig2.experiment(tmp_path, widths=(50,), n_inits=3, steps=10, n_grid=10, n_null=100)
    with pytest.raises(ValueError, match="n_inits"):
        jacot_fig2.experiment(tmp_path, widths=(5, 10), n_inits=1, steps=10, n_grid=10,
                              n_null=100)


# ------------------------------------------------------------------ linearized


@pytest.fixture(scope="module")
def linearized_small(tmp_path_factory):
    out = tmp_path_factory.mktemp("linearized")
    payload, rows = linearized.experiment(out, widths=(32, 64, 128), n_seeds=2, steps=40,
                                          n_null=300)
    return out, payload, rows


def test_linearized_report(linearized_small):
    out, _, rows = linearized_small
    data = json.loads((out / "linearized.json").read_text())
    assert data["experiment"] == "linearized" and data["widths"] == [32, 64, 128]
    assert data["record"] == [0, 4, 8, 20, 40]
    assert 0 < data["learning_rate"] < data["max_learning_rate"]
    for w in ("32", "64", "128"):
        r = data["per_width"][w]
        # at t = 0 the network and both linear models start from the same outputs
        assert r["lin_per_t"][0] < 1e-12 and r["analytic_per_t"][0] < 1e-12
        assert r["lin_max_over_t"] >= r["lin"] > 0 and r["analytic"] > 0
        assert 0 < r["ntk_change"] < 1 and 0 < r["ntk_init"] < 1
        assert len(r["lin_per_seed"]) == 2 and np.array(r["f_T"]).shape == (2, 32)
        # the linear model explains most of what training did, even at these widths
        assert r["lin"] < 0.3 * r["move"]
    assert set(data["slopes"]) == set(linearized.EXPONENTS)
    for s in data["slopes"].values():
        assert math.isfinite(s["slope"]) and s["stderr"] >= 0
    assert data["ensemble"]["tolerance"] > 0 and data["ensemble"]["ratio"] > 0
    if HAS_MPL:
        assert data["plot"] == "linearized.png" and (out / "linearized.png").stat().st_size > 0
    names = [r.name for r in rows]
    assert names == [f"linearized/{q}/slope" for q in linearized.EXPONENTS] + [
        "linearized/lin/relative_at_max_width", "linearized/ensemble/spread"]
    for r in rows:
        assert isinstance(r, registry.Row) and r.passed == (r.measured <= r.tolerance)
        assert math.isfinite(r.measured) and r.tolerance > 0


def test_linearized_helpers(tmp_path):
    x = linearized.fibonacci_sphere(16, math.sqrt(3))
    np.testing.assert_allclose(np.sum(x**2, axis=1), 3.0)
    assert np.min(np.linalg.norm(x[:, None] - x[None], axis=-1) + 10 * np.eye(16)) > 0.5
    w = np.array([64, 128, 256, 512])
    slope, se = linearized.fit_slope(w, 3.0 * w**-0.75)
    assert slope == pytest.approx(-0.75) and se < 1e-10
    with pytest.raises(ValueError, match="widths"):
        linearized.experiment(tmp_path, widths=(8, 8), n_seeds=2, steps=20, n_null=100)
    with pytest.raises(ValueError, match="n_seeds"):
        linearized.experiment(tmp_path, widths=(8, 16), n_seeds=1, steps=20, n_null=100)
