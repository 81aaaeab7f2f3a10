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
