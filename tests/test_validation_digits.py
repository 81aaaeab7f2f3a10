"""The ``digits`` validation experiment on a small configuration: report structure and
accuracies far above chance (0.1)."""

from __future__ import annotations

import importlib.util
import json

import pytest

pytest.importorskip("sklearn")

from validation import digits, registry  # noqa: E402

DEPTHS = (1, 2)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    payload, rows = digits.experiment(
        out, n_train=150, n_test=150, depths=DEPTHS, n_fit=60, fit_activations=("relu",)
    )
    return out, payload, rows


def test_registered():
    assert registry.load()["digits"] is digits.run


def test_json_report(small_run):
    out, payload, _ = small_run
    data = json.loads((out / "digits.json").read_text())
    assert data["experiment"] == "digits" and data["n_train"] == 150 and data["n_test"] == 150
    assert set(data["accuracy"]) == set(digits.ACTIVATIONS)
    for per_kind in data["accuracy"].values():
        assert set(per_kind) == set(digits.KINDS)
        for per_depth in per_kind.values():
            assert list(per_depth) == [str(d) for d in DEPTHS]
            assert all(acc > 0.8 for acc in per_depth.values())
    assert data["linear"]["nngp"] > 0.5
    assert data["rbf"]["accuracy"] > 0.8 and data["rbf"]["length_scale"] > 0
    fit = data["fit"]["relu"]
    assert fit["lml_after"] >= fit["lml_before"]
    assert fit["accuracy_before"] > 0.8 and fit["accuracy_after"] > 0.8
    assert fit["weight_std"] > 0 and fit["bias_std"] > 0
    assert fit["lml_gradient_rel_error"] <= digits.GRAD_TOL
    if importlib.util.find_spec("matplotlib") is not None:
        assert data["plot"] == "digits.png" and (out / "digits.png").stat().st_size > 0


def test_rows(small_run):
    _, _, rows = small_run
    names = [r.name for r in rows]
    assert len(names) == len(set(names))
    n_net = len(digits.ACTIVATIONS) * len(digits.KINDS) * len(DEPTHS)
    assert len(rows) == 2 * n_net + 1 + 3  # error + gap per network, rbf, one fit
    for r in rows:
        assert isinstance(r, registry.Row) and r.name.startswith("digits/")
        assert r.passed == (r.measured <= r.tolerance)
    gaps = [r for r in rows if r.name.endswith("/gap_to_rbf")]
    assert len(gaps) == n_net and all(r.tolerance == digits.GAP_TOL for r in gaps)
    errors = [r for r in rows if r.name.endswith("/error")]
    assert all(r.tolerance == digits.ERROR_TOL_SMALL for r in errors)


def test_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="n_train"):
        digits.load_split(5, 100)
    with pytest.raises(ValueError, match="exceeds"):
        digits.load_split(1500, 500)
    with pytest.raises(ValueError, match="depth"):
        digits.network(digits.ACTIVATIONS["relu"][0], -1, 1.0, 0.1)
    with pytest.raises(ValueError, match="unknown activation"):
        digits.experiment(tmp_path, n_train=50, n_test=50, depths=(1,), n_fit=20,
                          fit_activations=("tanh",))
    with pytest.raises(ValueError, match="n_fit"):
        digits.experiment(tmp_path, n_train=50, n_test=50, depths=(1,), n_fit=80,
                          fit_activations=("relu",))
    with pytest.raises(ValueError, match="depths"):
        digits.experiment(tmp_path, n_train=50, n_test=50, depths=(), n_fit=20,
                          fit_activations=())
