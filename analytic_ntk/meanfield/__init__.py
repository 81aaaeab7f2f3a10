"""Mean-field two-layer networks ``f(x) = (alpha / m) sum_j u_j sigma(w_j . x + b_j)``
(Mei, Montanari & Nguyen 2018; Chizat & Bach 2018; ``design.md`` section 5).

So far: the teacher-student model with Gaussian inputs, its population risk and gradients
from :func:`analytic_ntk.bivariate_expectation` (:mod:`.population`) with a Monte Carlo
check; the two-class isotropic-Gaussians risk of Mei, Montanari & Nguyen
(:func:`two_class_risk`); particle dynamics in numpy (:mod:`.dynamics`: population
gradient flow, Langevin, two-timescale flow, online SGD, full-batch GD); a fused numba
drift for bias-free ReLU networks (:func:`relu_drift`); the free energy of mean-field
Langevin dynamics and the first variation of the risk (:mod:`.free_energy`); the
rotationally reduced mean-field limit of the two-class model (:mod:`.reduced`).  Not
built yet (issue 6): numba particle integrators for the general case.
"""

from .drift import relu_drift
from .dynamics import (
    Trajectory,
    optimal_output_layer,
    particle_flow,
    sgd,
    two_timescale_flow,
)
from .free_energy import FreeEnergy, first_variation, free_energy, knn_entropy
from .population import Teacher, TwoClass, monte_carlo_risk, population_risk, two_class_risk
from .reduced import two_class_reduced_flow

__all__ = ["FreeEnergy", "Teacher", "Trajectory", "first_variation", "free_energy",
           "knn_entropy", "monte_carlo_risk", "optimal_output_layer", "TwoClass",
           "two_class_reduced_flow",
           "particle_flow", "population_risk", "relu_drift", "sgd", "two_class_risk",
           "two_timescale_flow"]
