"""Command line: ``python -m validation [--quick | --full] [NAMES...] [--out DIR]``.

Runs the registered experiments (all by default, see :mod:`validation.registry`),
prints a progress line and a table per experiment and a final ``N passed, M failed``;
exits with status 1 if any check failed (2 for an unknown experiment name).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from validation.registry import Row, load

DEFAULT_OUT = Path(__file__).resolve().parent / "reports"


def _progress(items):
    """tqdm (optional extra ``validation``) if importable, else the plain iterable."""
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc="experiments", unit="exp", file=sys.stderr, leave=False)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the experiments, return the exit status."""
    experiments = load()
    parser = argparse.ArgumentParser(prog="python -m validation", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="quick",
        action="store_true",
        default=True,
        help="small grids, under three minutes on 2 cores with a cold numba cache (default)",
    )
    mode.add_argument("--full", dest="quick", action="store_false", help="larger grids")
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"experiments to run (default: all of {', '.join(experiments)})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"directory for the JSON reports (default: {DEFAULT_OUT})",
    )
    args = parser.parse_args(argv)
    names = args.names or list(experiments)
    unknown = [n for n in names if n not in experiments]
    if unknown:
        parser.error(f"unknown experiment(s) {', '.join(unknown)}; known: {', '.join(experiments)}")
        return 2  # pragma: no cover - parser.error exits

    rows: list[Row] = []
    per_experiment: dict[str, list[Row]] = {}
    mode_name = "quick" if args.quick else "full"
    for i, name in enumerate(_progress(names), 1):
        print(f"[{i}/{len(names)}] {name} ({mode_name}) ...", flush=True)
        t0 = time.perf_counter()
        got = experiments[name](args.quick, args.out)
        n_fail = sum(not r.passed for r in got)
        print(
            f"[{i}/{len(names)}] {name}: {len(got) - n_fail} passed, {n_fail} failed "
            f"in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        for r in got:
            if not r.passed:
                print(f"  FAIL {r.name}: {r.measured:.3e} > {r.tolerance:.1e}")
        rows.extend(got)
        per_experiment[name] = got
    _summary(per_experiment, args.out, mode_name)
    n_fail = sum(not r.passed for r in rows)
    print(f"{len(rows) - n_fail} passed, {n_fail} failed")
    return 1 if n_fail else 0


def _closeness(r: Row) -> float:
    """``measured / tolerance`` (how close a check came to failing; failures first)."""
    if not r.passed:
        return math.inf
    if r.tolerance > 0:
        return r.measured / r.tolerance
    return 0.0 if r.measured <= 0 else math.inf


def _summary(per_experiment: dict, out: Path, mode: str) -> None:
    """The table experiment / checks / failed / tightest check (measured, tolerance, pass)
    and ``out/summary.json`` with every row."""
    print("\nsummary (tightest check of each experiment: largest measured / tolerance)")
    print(f"{'experiment':16s} {'checks':>6s} {'failed':>6s}  {'tightest check':44s} "
          f"{'measured':>10s} {'tolerance':>10s}  pass")
    for name, got in per_experiment.items():
        n_fail = sum(not r.passed for r in got)
        if got:
            w = max(got, key=_closeness)
            tight = (f"{w.name[:44]:44s} {w.measured:10.3g} {w.tolerance:10.3g}  "
                     f"{'pass' if w.passed else 'FAIL'}")
        else:
            tight = "(no checks)"
        print(f"{name:16s} {len(got):6d} {n_fail:6d}  {tight}")
    out.mkdir(parents=True, exist_ok=True)
    payload = {"mode": mode, "experiments": {
        name: [r._asdict() for r in got] for name, got in per_experiment.items()}}
    (out / "summary.json").write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    sys.exit(main())
