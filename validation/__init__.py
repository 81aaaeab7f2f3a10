"""Validation experiments for ``analytic_ntk``: ``python -m validation [--quick | --full]``.

* :mod:`validation.integrals` -- independent 2-D Gaussian expectations
  ``E[f(u) g(v)]`` by polar Gauss quadrature (no dual formula used).
* :mod:`validation.duals_check` -- experiment ``duals``: every closed-form dual and
  NTK factor against that quadrature.
* :mod:`validation.registry` -- the experiment registry (``@register("name")``).
"""

from .registry import EXPERIMENTS, Row, load, register

__all__ = ["EXPERIMENTS", "Row", "load", "register"]
