"""scikit-learn kernels: the NNGP and the NTK of a network as
``sklearn.gaussian_process.kernels.Kernel`` objects.

``NNGPKernel(network)`` and ``NTKKernel(network)`` work wherever scikit-learn takes a
kernel object (``GaussianProcessRegressor``, ``GaussianProcessClassifier``, sums and
products with ``WhiteKernel``/``ConstantKernel``) and, called on data, give Gram
matrices for ``KernelRidge(kernel="precomputed")`` and ``SVC(kernel="precomputed")``.

Hyperparameters: ``weight_std`` and ``bias_std``, the standard deviations of *every*
Dense layer of the network (overriding the values in its layers; ``None`` keeps the
network's own values and fixes that hyperparameter).  As for every scikit-learn kernel,
``theta`` holds their logarithms (so a free ``bias_std`` must be positive) and the
gradient returned with ``eval_gradient=True`` is ``dK / d log(std) = std * sum_l dK /
d std_l`` over the Dense layers ``l``, computed exactly by forward differentiation of
the kernel recursion (:func:`analytic_ntk.hypergrad.kernel_gradients`).

scikit-learn is an optional dependency (``pip install analytic_ntk[sklearn]``); this
module imports it, the rest of the package does not.

References: Rasmussen & Williams 2006 (GP regression and marginal-likelihood fitting);
Lee et al. 2018 (NNGP); Jacot, Gabriel & Hongler 2018 (NTK).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

try:
    from sklearn.gaussian_process.kernels import Hyperparameter, Kernel
except ImportError as err:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError(
        "analytic_ntk.sklearn needs scikit-learn: pip install 'analytic_ntk[sklearn]'"
    ) from err

from .layers import Dense, Network

__all__ = ["NNGPKernel", "NTKKernel"]


class _NetworkKernel(Kernel):
    """Shared implementation; ``_get`` is ``"nngp"`` or ``"ntk"``."""

    _get = "nngp"

    def __init__(self, network, weight_std=None, bias_std=None, weight_std_bounds=(1e-2, 1e2),
                 bias_std_bounds=(1e-4, 1e2)):
        self.network = network
        self.weight_std = weight_std
        self.bias_std = bias_std
        self.weight_std_bounds = weight_std_bounds
        self.bias_std_bounds = bias_std_bounds

    # -------------------------------------------------------------- hyperparameters

    @property
    def hyperparameter_weight_std(self):
        bounds = "fixed" if self.weight_std is None else self.weight_std_bounds
        return Hyperparameter("weight_std", "numeric", bounds)

    @property
    def hyperparameter_bias_std(self):
        bounds = "fixed" if self.bias_std is None else self.bias_std_bounds
        return Hyperparameter("bias_std", "numeric", bounds)

    def _network(self) -> Network:
        """The network with every Dense layer's stds replaced by the hyperparameters."""
        net = self.network
        if not isinstance(net, Network):
            raise ValueError(f"network must be an analytic_ntk Network, got {net!r}")
        changes = {}
        for name in ("weight_std", "bias_std"):
            value = getattr(self, name)
            if value is not None:
                v = float(value)
                if not (np.isfinite(v) and v >= 0):
                    raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
                if v == 0 and getattr(self, name + "_bounds") != "fixed":
                    raise ValueError(
                        f"{name} = 0 cannot be a free hyperparameter (theta is its log): "
                        f"give {name}_bounds='fixed' or a positive value"
                    )
                changes[name] = v
        if not changes:
            return net
        layers = tuple(replace(l, **changes) if isinstance(l, Dense) else l for l in net.layers)
        return Network(layers)

    # -------------------------------------------------------------- evaluation

    def __call__(self, X, Y=None, eval_gradient=False):
        """Kernel matrix ``K(X, Y)`` (``Y=None``: ``K(X, X)``) and, with
        ``eval_gradient``, its gradient in ``theta``, shape ``(n, n, len(theta))``."""
        net = self._network()
        if eval_gradient and Y is not None:
            raise ValueError("eval_gradient can only be evaluated when Y is None")
        if not eval_gradient:
            return getattr(net.kernel(X, Y), self._get)
        free = [h.name for h in self.hyperparameters if not h.fixed]
        if not free:
            k = getattr(net.kernel(X), self._get)
            return k, np.empty(k.shape + (0,))
        from .hypergrad import kernel_gradients

        res = kernel_gradients(net, X)
        d = getattr(res, "d_" + self._get)  # (n_dense, 2, n, n)
        k = getattr(res, self._get)
        index = {"weight_std": 0, "bias_std": 1}
        grads = [float(getattr(self, name)) * d[:, index[name]].sum(axis=0) for name in free]
        return k, np.stack(grads, axis=-1)

    def diag(self, X):
        """``K(x_i, x_i)`` for the rows of ``X``."""
        return getattr(self._network().kernel(X, diagonal=True), self._get)

    def is_stationary(self):
        return False

    @property
    def requires_vector_input(self):
        return True

    def __repr__(self):
        return (f"{type(self).__name__}(network={self.network!r}, weight_std={self.weight_std!r}, "
                f"bias_std={self.bias_std!r})")


class NNGPKernel(_NetworkKernel):
    """The NNGP kernel of ``network`` as a scikit-learn kernel (see the module docstring).

    Parameters
    ----------
    network : analytic_ntk.Network
    weight_std, bias_std : float or None
        Standard deviations given to every Dense layer; None keeps the network's values
        (and fixes the hyperparameter).
    weight_std_bounds, bias_std_bounds : (float, float) or "fixed"
        Bounds for the marginal-likelihood optimiser.
    """

    _get = "nngp"


class NTKKernel(_NetworkKernel):
    """The NTK of ``network`` as a scikit-learn kernel (parameters as
    :class:`NNGPKernel`).  As a GP covariance its posterior mean is NTK kernel regression
    (the infinite-time mean of gradient-descent training, with noise as ridge); its
    posterior covariance is that of the "NTK-GP" (He, Lakshminarayanan & Teh 2020), not
    the covariance of the trained ensemble -- for that use :mod:`analytic_ntk.predict`."""

    _get = "ntk"
