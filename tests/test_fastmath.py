"""Accuracy of ``analytic_ntk._fastmath.atan2p`` against mpmath, and its generated constants."""

from __future__ import annotations

import math
import platform
import re

import mpmath
import numba
import numpy as np
import pytest
from llvmlite import binding as llvm_binding

from analytic_ntk._fastmath import atan2p, atan2p_array

REL_TOL = 4e-16
PI_ABS_TOL = 2 * math.ulp(math.pi)  # results near pi: absolute error <= 2 ulp of pi
SUBNORMAL = 5e-324  # one ulp of a subnormal result


def reference(y, x):
    """``atan2(|y|, x)`` at 40 digits."""
    with mpmath.workdps(40):
        return mpmath.atan2(abs(mpmath.mpf(float(y))), mpmath.mpf(float(x)))


def check(y, x, got):
    """Assert the error bounds; return the worst relative error (subnormal results excluded)."""
    worst = 0.0
    with mpmath.workdps(40):
        for yi, xi, gi in zip(np.atleast_1d(y), np.atleast_1d(x), np.atleast_1d(got)):
            ref = reference(yi, xi)
            err = float(abs(mpmath.mpf(float(gi)) - ref))
            ref = float(ref)
            assert err <= REL_TOL * ref + SUBNORMAL, (yi, xi, gi, ref, err / ref)
            if ref > 3.0:
                assert err <= PI_ABS_TOL, (yi, xi, gi, ref, err)
            if ref > 2.3e-308:
                worst = max(worst, err / ref)
    return worst


def sample(rng, n):
    """Points with y >= 0 over all quadrants and magnitudes."""
    # y over 600 decades, x/y within 5 decades of 1, both signs of x.
    y1 = 10.0 ** rng.uniform(-300, 300, n)
    x1 = y1 * 10.0 ** rng.uniform(-5, 5, n) * rng.choice([-1.0, 1.0], n)
    # Independent magnitudes, including subnormals and huge values.
    y2 = 10.0 ** rng.uniform(-320, 308, n // 4)
    x2 = 10.0 ** rng.uniform(-320, 308, n // 4) * rng.choice([-1.0, 1.0], n // 4)
    # Ratios near the reduction boundaries tan(pi/8), 1 and tan(3pi/8).
    r = np.array([math.tan(math.pi / 8), 1.0, math.tan(3 * math.pi / 8)])
    eps = rng.choice([-1.0, 1.0], n // 2) * 10.0 ** rng.uniform(-16, -1, n // 2)
    ratio = rng.choice(r, n // 2) * (1 + eps)
    y3 = np.abs(rng.standard_normal(n // 2)) + 1e-3
    x3 = y3 / ratio * rng.choice([-1.0, 1.0], n // 2)
    # Plain normal samples.
    y4 = np.abs(rng.standard_normal(n))
    x4 = rng.standard_normal(n)
    return np.concatenate([y1, y2, y3, y4]), np.concatenate([x1, x2, x3, x4])


def test_random_points():
    """Random points across magnitudes and quadrants, through the vectorised array loop."""
    y, x = sample(np.random.default_rng(20240), 4000)
    got = atan2p_array(y, x, np.empty_like(y))
    assert check(y, x, got) <= REL_TOL


EDGE = [
    (0.0, 1.0, 0.0),
    (0.0, 3e-300, 0.0),
    (0.0, -1.0, math.pi),
    (0.0, -5e-324, math.pi),
    (0.0, 0.0, 0.0),
    (-0.0, -2.0, math.pi),
    (1.0, 0.0, math.pi / 2),
    (5e-324, 0.0, math.pi / 2),
    (1e308, -0.0, math.pi / 2),
    (1.0, 1.0, math.pi / 4),
    (1.0, -1.0, 3 * math.pi / 4),
    (1.7e308, 1.7e308, math.pi / 4),
    (1.7e308, -1.7e308, 3 * math.pi / 4),
    (1.7e308, 1.6e308, None),
    (1.6e308, -1.7e308, None),
    (1e308, 1e-308, math.pi / 2),
    (1e-300, 1.0, 1e-300),
    (1e-300, -1.0, math.pi),
    (1.0, 1e300, 1e-300),
    (1.0, -1e300, None),
    (1e-300, 1e10, 1e-310),
    (1e-300, -1e10, math.pi),
    (5e-324, 1.0, 5e-324),
    (5e-324, -1.0, math.pi),
    (5e-324, 5e-324, math.pi / 4),
    (5e-324, -5e-324, 3 * math.pi / 4),
    (3e-320, -7e-321, None),
    (2.2e-308, 1e-310, None),
    (1e-310, 2.2e-308, None),
    (1e-20, -1.0, None),
    (1.0, -1e-20, None),
    (math.tan(math.pi / 8), 1.0, math.pi / 8),
    (1.0, math.tan(math.pi / 8), None),
    (3, -4, None),  # integers
]


@pytest.mark.parametrize(("y", "x", "expected"), EDGE)
def test_edge_cases(y, x, expected):
    """Zeros, axes, diagonals, subnormals, huge values and extreme ratios (scalar path)."""
    got = atan2p(y, x)
    check(y, x, got)
    assert got == atan2p_array(np.array([y], float), np.array([x], float), np.empty(1))[0]
    if expected is not None:
        assert abs(got - expected) <= 2 * math.ulp(expected) + SUBNORMAL
    if y == 0.0 and x < 0.0:
        assert got == math.pi


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64")
    or not llvm_binding.get_host_cpu_features().get("avx2", False),
    reason="packed-instruction check written for x86-64 with AVX2",
)
def test_loop_vectorises():
    """The ``atan2p_array`` loop compiles to packed AVX arithmetic (no libm call).

    An uncached copy is compiled because numba cannot inspect cached code.
    """
    fresh = numba.njit(atan2p_array.py_func)
    fresh(np.ones(4), np.ones(4), np.empty(4))
    sig = fresh.signatures[0]
    assert re.search(r"\bvdivpd\s[^\n]*%[yz]mm", fresh.inspect_asm(sig))
    assert not re.search(r"declare[^\n]*@(atan|fma)", fresh.inspect_llvm(sig))


def test_generated_coefficients_are_current(tmp_path):
    """``_generated/fastmath_coeffs.py`` is exactly what ``derivations/fastmath.py`` writes.

    The fit is deterministic (fixed Chebyshev nodes, fixed precision) and takes < 1 s.
    """
    from derivations import fastmath

    out = tmp_path / "fastmath_coeffs.py"
    fastmath.main(out)
    committed = fastmath.OUTPUT.read_text()
    assert out.read_text() == committed
