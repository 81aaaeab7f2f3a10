"""Run every derivation script: ``python -m derivations``.

Each script prints what it derives and checks, and rewrites its file (if any) in
``analytic_ntk/_generated/`` (deterministically: an unchanged derivation reproduces the
committed file byte for byte; the tests check that).  After regenerating, delete
``analytic_ntk/__pycache__`` so that numba recompiles the kernels that use the files.
"""

from __future__ import annotations

from . import (
    arccos,
    duals,
    fastmath,
    gaussian_integrals,
    gaussian_means,
    gelu_norm,
    hermite,
    mmn_reduced,
    partials,
    pointwise,
)

SCRIPTS = (fastmath, gelu_norm, arccos, pointwise, duals, hermite, partials, gaussian_means,
           gaussian_integrals, mmn_reduced)


def main() -> None:
    for module in SCRIPTS:
        print(f"== {module.__name__}")
        module.main()


if __name__ == "__main__":
    main()
