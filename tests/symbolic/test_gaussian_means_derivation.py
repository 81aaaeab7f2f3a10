"""The SymPy derivation of the Gaussian means and of the orthant derivatives
(``derivations/gaussian_means.py``) agrees with the compiled code."""

import numpy as np
import pytest

from derivations import gaussian_means as dg


def test_orthant_derivatives_match_sympy_chain_rule():
    assert dg.check_orthant(np.random.default_rng(5), n_points=2) <= 1e-11


@pytest.mark.slow
def test_means_match_sympy_integrals():
    assert dg.check_means(np.random.default_rng(6), n_points=3) <= 1e-12
