"""``python -m validation``: the command line, the registry and the ``duals`` report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from validation import registry
from validation.__main__ import main
from validation.duals_check import ACTIVATIONS, TOL

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One ``python -m validation --quick duals --out DIR`` subprocess for the module."""
    out = tmp_path_factory.mktemp("reports")
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.run(
        [sys.executable, "-m", "validation", "--quick", "duals", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, out


def test_table_and_summary(quick_run):
    proc, _ = quick_run
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("[1/1] duals") for line in lines)
    header = next(i for i, line in enumerate(lines) if line.startswith("activation"))
    assert "max err F" in lines[header] and "max err G" in lines[header]
    body = lines[header + 2 : header + 2 + len(ACTIVATIONS)]
    for (name, _), line in zip(ACTIVATIONS, body):
        assert line.startswith(name) and line.rstrip().endswith(("pass", "FAIL")), line
    n_fail = sum(line.rstrip().endswith("FAIL") for line in body)
    summary = lines[-1].split()
    assert summary[1:] == ["passed,", summary[2], "failed"]
    assert int(summary[0]) + int(summary[2]) == 2 * len(ACTIVATIONS)  # two routes each
    assert (int(summary[2]) > 0) == (n_fail > 0)
    assert proc.returncode == (1 if n_fail else 0)


def test_json_report(quick_run):
    proc, out = quick_run
    data = json.loads((out / "duals.json").read_text())
    assert data["experiment"] == "duals" and data["quick"] is True
    assert data["tolerance"] == TOL == 1e-12
    assert list(data["activations"]) == [name for name, _ in ACTIVATIONS]
    n_cov = len(data["covariances"])
    rhos = {c[3] for c in data["covariances"]}
    assert {-1.0, -0.999, -0.5, 0.0, 0.3, 0.9, 0.999999, 1.0} <= rhos
    for name, rep in data["activations"].items():
        assert len(rep["points"]) == n_cov
        for route in ("evaluate", "angle"):
            pts = [p[route] for p in rep["points"] if route in p]
            assert rep[route]["n_points"] == len(pts) > 0
            assert rep[route]["max_err_F"] == max(p["F"]["err"] for p in pts)
            assert rep[route]["passed"] == all(p[k]["passed"] for p in pts for k in "FG")
            for p in pts:
                for k in "FG":
                    assert p[k]["passed"] == (p[k]["err"] <= TOL + p[k]["res"]), (name, p)
    any_fail = any(
        not r[route]["passed"]
        for r in data["activations"].values()
        for route in ("evaluate", "angle")
    )
    assert (proc.returncode != 0) == any_fail


def test_quick_passes(quick_run):
    """Every closed form within 1e-12 of the quadrature on the quick grid: exit status 0."""
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_registry_and_cli(tmp_path, capsys):
    """A registered experiment runs through ``main``; failures give status 1 and unknown
    names are rejected (status 2)."""
    calls = []

    @registry.register("_probe")
    def probe(quick, out):
        calls.append((quick, out))
        return [registry.Row("_probe/a", 0.5, 1.0, True), registry.Row("_probe/b", 2.0, 1.0, False)]

    try:
        assert main(["--full", "_probe", "--out", str(tmp_path)]) == 1
        assert calls == [(False, tmp_path)]
        text = capsys.readouterr().out
        assert "FAIL _probe/b" in text and text.rstrip().endswith("1 passed, 1 failed")
        with pytest.raises(ValueError):
            registry.register("_probe")(lambda quick, out: [])
        with pytest.raises(SystemExit) as exc:
            main(["no-such-experiment"])
        assert exc.value.code == 2
    finally:
        registry.EXPERIMENTS.pop("_probe", None)


@pytest.mark.parametrize("name, expr, tol", [
    ("tanh", "tanh(t)", 1e-10),
    pytest.param("hard_tanh", "Min(Max(t, -1), 1)", 1e-8, marks=pytest.mark.slow),
])
def test_generic_check(name, expr, tol):
    """The ``generic`` experiment's comparison on a near-duplicate and a plain pair."""
    from validation import generic_check

    covs = [c for c in generic_check.covariances(True) if c[2] > 0]
    r = generic_check.check(name, expr, tol, covs)
    assert r["passed"], r
    assert r["max_err"] < tol


def test_summary_table_and_json(quick_run):
    """The final table names each experiment's tightest check; summary.json has every row."""
    proc, out = quick_run
    lines = proc.stdout.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("summary"))
    assert lines[i + 1].split()[:3] == ["experiment", "checks", "failed"]
    row = lines[i + 2].split()
    assert row[0] == "duals" and int(row[1]) == 2 * len(ACTIVATIONS)
    data = json.loads((out / "summary.json").read_text())
    rows = data["experiments"]["duals"]
    assert len(rows) == 2 * len(ACTIVATIONS)
    assert set(rows[0]) == {"name", "measured", "tolerance", "passed"}
    worst = max(rows, key=lambda r: r["measured"] / r["tolerance"])
    assert worst["name"].startswith(row[3][:20])
