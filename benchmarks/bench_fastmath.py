"""Throughput of ``atan2p`` against ``math.atan2`` in a numba loop.

Run from the repository root::

    python -m benchmarks.bench_fastmath

Prints ns/element for 10**7 elements (best of several runs), the ratio, and
whether LLVM vectorised the ``atan2p_array`` loop (packed ``ymm``/``zmm``
``vdivpd``/``vmulpd`` in its assembly).
"""

from __future__ import annotations

import math
import re
import time

import numba
import numpy as np

from analytic_ntk._fastmath import atan2p_array

N = 10**7
REPEATS = 7


@numba.njit(cache=True)
def atan2_libm_array(y, x, out):
    """``out[i] = math.atan2(y[i], x[i])`` (scalar libm call per element)."""
    for i in range(out.shape[0]):
        out[i] = math.atan2(y[i], x[i])
    return out


def best_ns_per_element(fn, y, x, out):
    """Best-of-``REPEATS`` wall time of ``fn(y, x, out)`` in ns per element."""
    fn(y[:16], x[:16], out[:16])  # compile / load from cache
    best = math.inf
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn(y, x, out)
        best = min(best, time.perf_counter() - t0)
    return best / y.size * 1e9


def vectorised(dispatcher):
    """Whether the loop's assembly has packed AVX double arithmetic.

    Cached dispatchers cannot be inspected, so an uncached copy of the same
    Python function is compiled (identical code generation).
    """
    fresh = numba.njit(dispatcher.py_func)
    fresh(np.ones(4), np.ones(4), np.empty(4))
    asm = fresh.inspect_asm(fresh.signatures[0])
    packed = re.findall(r"\bv(?:mul|div|add|fmadd\w*)pd\s[^\n]*%[yz]mm", asm)
    return len(packed) > 0, len(packed)


def main():
    """Run the benchmark and print the results."""
    rng = np.random.default_rng(0)
    y = np.abs(rng.standard_normal(N)) * 10.0 ** rng.uniform(-3, 3, N)
    x = rng.standard_normal(N) * 10.0 ** rng.uniform(-3, 3, N)
    out = np.empty(N)
    fast = best_ns_per_element(atan2p_array, y, x, out)
    err = np.max(np.abs(out - np.arctan2(y, x)) / np.arctan2(y, x))
    libm = best_ns_per_element(atan2_libm_array, y, x, out)
    is_vec, n_packed = vectorised(atan2p_array)
    print(f"elements                       : {N}")
    print(f"atan2p_array      ns/element   : {fast:.3f}")
    print(f"math.atan2 loop   ns/element   : {libm:.3f}")
    print(f"speed-up (libm / atan2p)       : {libm / fast:.2f}x")
    verdict = "yes" if is_vec else "no"
    print(f"atan2p loop vectorised         : {verdict} ({n_packed} packed ymm/zmm ops)")
    print(f"max rel. diff vs np.arctan2    : {err:.2e}")


if __name__ == "__main__":
    main()
