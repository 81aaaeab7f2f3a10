"""SymPy side of the library: activation expressions, dual kernels and their
derivatives (Price's theorem), arc-cosine kernels, Hermite coefficients and code
generation.  Never imported on the kernel hot path: the numeric code uses the
modules generated into :mod:`analytic_ntk._generated` and compiled numba functions.
"""
