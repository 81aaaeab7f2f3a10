"""The mean-field validation experiment ``mf_sgd`` at a tiny size: runs, writes its JSON,
and its checks are real (a broken SGD step fails them)."""

import json

import numpy as np

from validation import mf_sgd


def test_mf_sgd_tiny(tmp_path):
    payload, rows = mf_sgd.experiment(tmp_path, widths=(8, 16), n_seeds=2, t_end=0.5,
                                      n_record=2)
    assert (tmp_path / "mf_sgd.json").exists()
    data = json.loads((tmp_path / "mf_sgd.json").read_text())
    assert data["widths"] == [8, 16] and np.isfinite(data["slope"])
    names = [r.name for r in rows]
    assert names == ["mf_sgd/slope", "mf_sgd/gap_at_16", "mf_sgd/flow_monotone"]
    # the flow is a descent: the monotonicity row passes; the risk drop is positive
    assert rows[2].passed and data["flow_drop_at_max_m"] > 0


def test_gap_detects_a_wrong_time_scale(tmp_path, monkeypatch):
    """SGD run at a tenth of the flow's speed leaves a gap far beyond the tolerance."""
    orig = mf_sgd.sgd

    def slow(*args, dt, **kw):
        return orig(*args, dt=dt / 10, **kw)

    monkeypatch.setattr(mf_sgd, "sgd", slow)
    _, rows = mf_sgd.experiment(tmp_path, widths=(8, 16), n_seeds=1, t_end=1.0, n_record=2)
    assert not rows[1].passed


def test_lazy_active_tiny(tmp_path):
    from validation import lazy_active

    payload, rows = lazy_active.experiment(tmp_path, widths=(64, 1024), n_seeds=1)
    assert (tmp_path / "lazy_active.json").exists()
    r = payload["results"]
    # the lazy network moves less and its kernel changes less than the mean-field one
    assert r["lazy"]["1024"]["move"] < 0.2 * r["mf"]["1024"]["move"]
    assert len(rows) == 6 and rows[-1].passed


def test_limit_ntk_matches_wide_empirical_kernel():
    """The analytic Theta_inf against the empirical kernel of a very wide network."""
    from validation import lazy_active as la

    _, x, _, _ = la.problem()
    rng = np.random.default_rng(3)
    m = 200_000
    u = rng.standard_normal(m)
    w = rng.standard_normal((m, la.D)) / np.sqrt(la.D)
    b = la.BIAS_SD * rng.standard_normal(m)
    emp = la.empirical_ntk(u, w, b, np.sqrt(m), x[:6])
    ref = la.limit_ntk(x[:6], x[:6])
    assert np.linalg.norm(emp - ref) / np.linalg.norm(ref) < 0.02  # ~ m^-1/2 = 0.0022 x const


def test_repopulation_tiny(tmp_path):
    from validation import repopulation

    payload, rows = repopulation.experiment(tmp_path, m=32, features=(16, 64), n_seeds=1)
    assert (tmp_path / "repopulation.json").exists()
    assert [r.name for r in rows] == ["repopulation/flow_risk_fraction",
                                      "repopulation/ratio_M16", "repopulation/ratio_M64"]
    assert 0 < payload["flow_risk"][1] < payload["flow_risk"][0]


def test_random_feature_ridge_is_exact_for_a_representable_target():
    """Targets that are exactly a combination of the features are fitted to ~0 risk."""
    from validation import repopulation

    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((5, 3)), rng.standard_normal(5)
    c = rng.standard_normal(5)
    x, xt = rng.standard_normal((400, 3)), rng.standard_normal((300, 3))

    def f(z):
        return np.maximum(z @ w.T + b, 0.0) @ c

    assert repopulation.rf_test_risk(w, b, x, f(x), xt, f(xt)) < 1e-8


def test_langevin_quick_passes_and_detects_a_wrong_temperature(tmp_path, monkeypatch):
    """The quick ``langevin`` experiment passes; the same dynamics run at twice the
    temperature the checks assume fail the Gibbs-conditional variance check."""
    from validation import langevin

    payload, rows = langevin.experiment(tmp_path, m=256, seeds=(0,))
    assert (tmp_path / "langevin.json").exists()
    assert all(r.passed for r in rows), rows
    orig = langevin.particle_flow

    def hot(*args, temperature, **kw):
        return orig(*args, temperature=2 * temperature, **kw)

    monkeypatch.setattr(langevin, "particle_flow", hot)
    _, rows = langevin.experiment(tmp_path, m=128, seeds=(0,))
    bad = {r.name: r for r in rows}
    assert not bad["langevin/gibbs_u_var"].passed
