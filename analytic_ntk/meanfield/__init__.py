"""Mean-field two-layer networks ``f(x) = (alpha / m) sum_j u_j sigma(w_j . x + b_j)``
(Mei, Montanari & Nguyen 2018; Chizat & Bach 2018; ``design.md`` section 5).

So far: the teacher-student model with Gaussian inputs and its population risk and
gradients from :func:`analytic_ntk.bivariate_expectation` (:mod:`.population`), with a
Monte Carlo check.  The particle integrators of issue 6 are not built yet.
"""

from .population import Teacher, monte_carlo_risk, population_risk

__all__ = ["Teacher", "monte_carlo_risk", "population_risk"]
