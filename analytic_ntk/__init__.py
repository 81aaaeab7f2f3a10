"""analytic_ntk: exact infinite-width kernels (NNGP and NTK) of deep networks.

Conventions are those of neural-tangents' ``stax``; see ``README.md`` and
``design.md``.
"""

from . import predict
from .expectation import bivariate_expectation
from .hypergrad import KernelGradients, kernel_gradients
from .layers import (
    ABRelu,
    Abs,
    Activation,
    Cos,
    Dense,
    Erf,
    Exp,
    Gaussian,
    Gelu,
    Identity,
    LeakyRelu,
    Monomial,
    Network,
    Polynomial,
    Rbf,
    RectifiedMonomial,
    Relu,
    Sign,
    Sin,
    serial,
)
from .recursion import Kernel, kernel

__version__ = "0.1.0"

__all__ = [
    "ABRelu",
    "Abs",
    "Activation",
    "Cos",
    "Dense",
    "Erf",
    "Exp",
    "Gaussian",
    "Gelu",
    "Identity",
    "Kernel",
    "KernelGradients",
    "LeakyRelu",
    "Monomial",
    "Network",
    "Polynomial",
    "Rbf",
    "RectifiedMonomial",
    "Relu",
    "Sign",
    "Sin",
    "bivariate_expectation",
    "kernel",
    "kernel_gradients",
    "predict",
    "serial",
]
