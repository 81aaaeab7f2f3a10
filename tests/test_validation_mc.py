"""The ``mc_convergence`` and ``jacot_fig1`` validation experiments at tiny sizes: report
structure, rows and basic sanity (errors fall with width, analytic curve finite)."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest

from validation import jacot_fig1 as jf
from validation import mc_convergence as mc
from validation import registry

HAS_MPL = importlib.util.find_spec("matplotlib") is not None

# ------------------------------------------------------------------ mc_convergence

MC_FAMILIES = ("relu", "sign", "erf")
MC_RUNS = ({"depths": (1, 2), "widths": (16, 64, 256), "n_networks": 8},)


@pytest.fixture(scope="module")
def mc_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mc")
    payload, rows = mc.experiment(out, runs=MC_RUNS, families=MC_FAMILIES)
    return out, payload, rows


def test_mc_registered():
    assert registry.load()["mc_convergence"] is mc.run


def test_mc_json_report(mc_run):
    out, _, _ = mc_run
    data = json.loads((out / "mc_convergence.json").read_text())
    assert data["experiment"] == "mc_convergence" and data["quick"] is True
    assert list(data["results"]) == list(MC_FAMILIES)
    assert np.asarray(data["inputs"]).shape == (mc.N_POINTS, mc.D_IN)
    for fam, per_depth in data["results"].items():
        assert list(per_depth) == ["1", "2"]
        for r in per_depth.values():
            assert r["widths"] == [16, 64, 256] and r["n_networks"] == 8
            for kind in mc.KINDS:
                rk = r[kind]
                assert np.asarray(rk["per_network"]).shape == (3, 8)
                med = rk["geomean"]
                assert all(math.isfinite(v) and v > 0 for v in med)
                # 16x the width: the error should fall about 4x; 1.5x is far outside noise
                assert med[0] > 1.5 * med[-1], (fam, kind, med)
                assert -1.0 < rk["slope"] < -0.2 and rk["slope_sd"] > 0
                assert rk["err_tolerance"] == pytest.approx(mc.ERR_C / 16.0)
        if fam == "sign":  # NTK factor 0: only the read-out trains, so NTK == NNGP
            for r in per_depth.values():
                np.testing.assert_allclose(r["ntk"]["per_network"], r["nngp"]["per_network"],
                                           rtol=1e-12)
    if HAS_MPL:
        assert data["plot"] == "mc_convergence.png"
        assert (out / "mc_convergence.png").stat().st_size > 0


def test_mc_rows(mc_run):
    _, payload, rows = mc_run
    names = [r.name for r in rows]
    assert len(names) == len(set(names)) == len(MC_FAMILIES) * 2 * len(mc.KINDS) * 2
    for r in rows:
        assert isinstance(r, registry.Row) and r.name.startswith("mc_convergence/")
        assert r.passed == (r.measured <= r.tolerance)
    slopes = [r for r in rows if r.name.endswith("/slope")]
    assert all(r.tolerance == mc.SLOPE_TOL for r in slopes)
    errs = [r for r in rows if r.name.endswith("/err_at_256")]
    assert len(errs) == len(slopes)


def test_mc_inputs_and_errors():
    x = mc.inputs()
    assert x.shape == (8, 5)
    norms2 = np.sum(x * x, axis=1) / 5
    assert norms2[[0, 1, 2, 3, 4, 7]] == pytest.approx(1.0)
    assert np.linalg.norm(x[2] / np.linalg.norm(x[2]) - x[0] / np.linalg.norm(x[0])) < 0.05
    assert np.dot(x[3], x[4]) / 5 < -0.99
    with pytest.raises(ValueError, match="n_points"):
        mc.inputs(n_points=3)
    with pytest.raises(ValueError, match="depth"):
        mc.network(mc.FAMILIES["relu"][0], 0, 1.0, 0.0)
    with pytest.raises(ValueError, match="unknown family"):
        mc.experiment("/nonexistent", runs=MC_RUNS, families=("tanh",))
    with pytest.raises(ValueError, match="widths"):
        mc.experiment("/nonexistent", runs=({"depths": (1,), "widths": (64, 32),
                                             "n_networks": 2},), families=("relu",))


def test_mc_slope_fit():
    w = np.array([64, 256, 1024])
    slope, icpt = mc.fit_slope(w, 3.0 / np.sqrt(w))
    assert slope == pytest.approx(-0.5) and math.exp(icpt) == pytest.approx(3.0)


# ------------------------------------------------------------------ jacot_fig1

JF_SIZES = {"widths": (16, 256), "n_inits": 3, "n_spread": 8, "steps": 5, "n_gamma": 9}


@pytest.fixture(scope="module")
def jf_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("jacot")
    payload, rows = jf.experiment(out, **JF_SIZES)
    return out, payload, rows


def test_jf_registered():
    assert registry.load()["jacot_fig1"] is jf.run


def test_jf_analytic_curve():
    gamma, grid = jf.circle(9)
    assert gamma[4] == 0.0 and grid[4].tolist() == [1.0, 0.0]
    k = np.asarray(jf.network().kernel(grid[4:5], grid).ntk)[0]
    assert np.all(np.isfinite(k)) and np.all(k > 0)
    # hand recursion at x = x0 (|x|^2 / 2 = 1/2): ReLU halves nngp, factor 1/2
    nngp, ntk = 0.5 + 0.01, 0.5 + 0.01
    for _ in range(jf.N_HIDDEN):
        nngp, ntk = nngp / 2 + 0.01, nngp / 2 + 0.01 + ntk / 2
    assert k[4] == pytest.approx(ntk, rel=1e-13) and ntk == pytest.approx(0.2825)
    assert k == pytest.approx(k[::-1], rel=1e-12)  # symmetric in gamma
    assert np.argmax(k) == 4
    with pytest.raises(ValueError, match="odd"):
        jf.circle(8)


def test_jf_json_report(jf_run):
    out, _, _ = jf_run
    data = json.loads((out / "jacot_fig1.json").read_text())
    assert data["experiment"] == "jacot_fig1" and data["widths"] == [16, 256]
    assert data["n_hidden"] == 3 and data["bias_std"] == 0.1 and data["weight_std"] == 1.0
    assert len(data["gamma"]) == len(data["analytic"]) == 9
    assert all(math.isfinite(v) for v in data["analytic"])
    for res in data["per_width"]:
        assert np.asarray(res["theta0"]).shape == (8, 9)
        assert np.asarray(res["theta_t"]).shape == (3, 9)
        assert np.all(np.isfinite(res["theta0"])) and np.all(np.isfinite(res["theta_t"]))
        assert all(l1 < l0 for l0, l1 in res["loss"])  # training lowers the loss
    st = data["ratios"]
    # 16x the width: spread and change both smaller at the larger width
    assert st["spread"][0] > st["spread"][1] and st["change"][0] > st["change"][1]
    assert st["spread_ratio"] > 1 and st["change_ratio"] > 1
    assert data["mean_check"]["rel_err"] < 0.2
    if HAS_MPL:
        assert data["plot"] == "jacot_fig1.png" and (out / "jacot_fig1.png").stat().st_size > 0


def test_jf_rows(jf_run):
    _, _, rows = jf_run
    assert [r.name for r in rows] == ["jacot_fig1/spread_ratio", "jacot_fig1/change_ratio",
                                      "jacot_fig1/mean_ntk_z_at_256"]
    for r in rows:
        assert isinstance(r, registry.Row) and r.passed == (r.measured <= r.tolerance)
    assert rows[0].tolerance == pytest.approx(math.log(jf.BAND))
    assert rows[1].tolerance == pytest.approx(math.log(jf.BAND) + math.log(16) / 4)


def test_jf_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="widths"):
        jf.experiment(tmp_path, widths=(100, 50), n_inits=2, n_spread=2, steps=1, n_gamma=5)
    with pytest.raises(ValueError, match="n_inits"):
        jf.experiment(tmp_path, widths=(8, 16), n_inits=5, n_spread=2, steps=1, n_gamma=5)
    with pytest.raises(ValueError, match="steps"):
        jf.experiment(tmp_path, widths=(8, 16), n_inits=2, n_spread=2, steps=0, n_gamma=5)
