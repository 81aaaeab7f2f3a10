"""Finite-width networks from the same :class:`~analytic_ntk.layers.Network` spec: sampled
parameters, forward pass, hand-written backpropagation, empirical NNGP/NTK and full-batch
gradient descent -- the independent side of the checks in ``validation/``.

Conventions (neural-tangents ``stax``, Novak et al. 2020; ``design.md`` section 1), per
Dense layer with ``n_in`` inputs, standard deviations ``w = weight_std``, ``b = bias_std``:

* NTK parameterization: ``W_ij, beta_i ~ N(0, 1)``, ``z = (w / sqrt(n_in)) W a + b beta``;
* standard parameterization: ``W_ij ~ N(0, w^2 / n_in)``, ``beta_i ~ N(0, b^2)``,
  ``z = W a + beta`` (no bias parameter when ``b = 0``).

Activations are applied pointwise with the layer's own ``fn`` and ``deriv`` (numpy; for
``Activation(expr)`` the SymPy-derived compiled functions) -- never the dual maps, so
these networks check the kernels independently.  As the width grows, ``f(x) f(x')``
averaged over initialisations tends to the NNGP and the parameter-gradient inner product
``J(x) . J(x')`` to the NTK (Neal 1996; Lee et al. 2018; Jacot, Gabriel & Hongler 2018).

The empirical NTK is formed layer by layer, ``sum_l (D_l D_l'^T) o (A_l A_l'^T) c_l +
(D_l D_l'^T) c_b`` (``D_l`` the back-propagated output derivative at layer ``l``'s
pre-activations, ``A_l`` its inputs, ``o`` the elementwise product), so memory is
``O(n width depth)`` and never the ``n x n_params`` Jacobian.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg.blas import dgemm

from .layers import Dense, Network

__all__ = [
    "FiniteNetwork",
    "MonteCarlo",
    "TrainResult",
    "apply",
    "empirical_nngp",
    "empirical_ntk",
    "init",
    "jacobian",
    "ntk",
    "train",
]


@dataclass(frozen=True)
class FiniteNetwork:
    """Sampled parameters of ``network``: ``weights[k]`` ``(out, in)`` and ``biases[k]``
    ``(out,)`` of the k-th Dense layer (as drawn, before the parameterization's scale)."""

    network: Network
    d_in: int
    widths: tuple
    weights: tuple
    biases: tuple

    @property
    def n_outputs(self) -> int:
        return self.widths[-1]

    @property
    def n_params(self) -> int:
        return sum(w.size + (b.size if _has_bias(lay) else 0)
                   for w, b, lay in zip(self.weights, self.biases, self._dense()))

    def _dense(self):
        return [lay for lay in self.network.layers if isinstance(lay, Dense)]


@dataclass(frozen=True)
class MonteCarlo:
    """A Monte Carlo estimate: ``mean`` and its standard error ``stderr`` (the sample
    standard deviation over ``n_samples`` independent networks divided by
    ``sqrt(n_samples)``); ``std`` the spread over networks."""

    mean: np.ndarray
    stderr: np.ndarray
    std: np.ndarray
    n_samples: int


@dataclass(frozen=True)
class TrainResult:
    """Gradient-descent run: the final network; ``steps`` recorded; ``outputs`` (len(steps),
    n_train, k) and ``test_outputs`` (or None); ``ntks`` (len(steps), n_eval, n_eval) of
    the empirical NTK on ``ntk_inputs`` (or None); ``loss`` (steps + 1,): ``loss[k]`` after
    ``k`` steps (``loss[0]`` the initial loss)."""

    network: FiniteNetwork
    steps: tuple
    outputs: np.ndarray
    test_outputs: np.ndarray | None
    ntks: np.ndarray | None
    loss: np.ndarray


# ------------------------------------------------------------------ helpers


def _has_bias(layer: Dense) -> bool:
    return layer.parameterization == "ntk" or layer.bias_std > 0.0


def _scales(layer: Dense, n_in: int):
    """``(weight scale, bias scale)`` multiplying the drawn parameters in the forward pass."""
    if layer.parameterization == "ntk":
        return layer.weight_std / math.sqrt(n_in), layer.bias_std
    return 1.0, 1.0


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _inputs(x, d, name="x"):
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n, d), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise ValueError(f"{name} must be real, got dtype {x.dtype}")
    x = x.astype(np.float64, copy=False)
    if d is not None and x.shape[1] != d:
        raise ValueError(f"{name} has {x.shape[1]} features, the network takes {d}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _widths(network: Network, width, n_outputs: int):
    """Output width of every Dense layer: hidden ones ``width`` (an int, or one per hidden
    Dense), the last ``n_outputs``; a standard-parameterization layer after a Dense with a
    declared ``width`` must use that width (the kernel's ``n_in``)."""
    dense = [lay for lay in network.layers if isinstance(lay, Dense)]
    n_hidden = len(dense) - 1
    if isinstance(width, (list, tuple)):
        if len(width) != n_hidden:
            raise ValueError(f"width has {len(width)} entries, the network has {n_hidden} "
                             "hidden Dense layers")
        ws = [int(w) for w in width]
    else:
        ws = [int(width)] * n_hidden
    if any(w < 1 for w in ws):
        raise ValueError(f"widths must be positive integers, got {width!r}")
    if int(n_outputs) < 1:
        raise ValueError(f"n_outputs must be a positive integer, got {n_outputs!r}")
    for k in range(n_hidden):
        nxt = dense[k + 1]
        if nxt.parameterization == "standard" and dense[k].width not in (None, ws[k]):
            raise ValueError(
                f"Dense layer {k + 1} is in the standard parameterization, whose kernel uses "
                f"the declared fan-in {dense[k].width}; the finite width must match it "
                f"(got {ws[k]})"
            )
    return tuple(ws) + (int(n_outputs),)


# ------------------------------------------------------------------ networks


def init(network: Network, d_in: int, width, *, n_outputs: int = 1, seed=None) -> FiniteNetwork:
    """Sample the parameters of ``network`` at finite width.

    Parameters
    ----------
    network : Network
    d_in : int, input dimension.
    width : int, or a sequence with one width per hidden Dense layer.
    n_outputs : int, width of the last Dense layer.
    seed : int, None or numpy Generator (reproducible draws).
    """
    if not isinstance(network, Network):
        raise ValueError("init() needs a Network built with serial()")
    if int(d_in) < 1:
        raise ValueError(f"d_in must be a positive integer, got {d_in!r}")
    widths = _widths(network, width, n_outputs)
    rng = _rng(seed)
    weights, biases = [], []
    n_in = int(d_in)
    dense = [lay for lay in network.layers if isinstance(lay, Dense)]
    for lay, out in zip(dense, widths):
        w = rng.standard_normal((out, n_in))
        b = rng.standard_normal(out) if _has_bias(lay) else np.zeros(out)
        if lay.parameterization == "standard":
            w *= lay.weight_std / math.sqrt(n_in)
            b *= lay.bias_std
        weights.append(w)
        biases.append(b)
        n_in = out
    return FiniteNetwork(network, int(d_in), widths, tuple(weights), tuple(biases))


def _forward(net: FiniteNetwork, x):
    """Outputs and, per layer, what backpropagation needs: for a Dense its input (and
    scales), for an activation its input."""
    a = x
    cache = []
    k = 0
    n_in = net.d_in
    for lay in net.network.layers:
        if isinstance(lay, Dense):
            sw, sb = _scales(lay, n_in)
            cache.append(("dense", k, a, sw, sb))
            a = sw * (a @ net.weights[k].T) + sb * net.biases[k]
            n_in = net.widths[k]
            k += 1
        else:
            cache.append(("act", lay, a))
            a = lay.fn(a)
    return a, cache


def apply(net: FiniteNetwork, x) -> np.ndarray:
    """Network outputs ``f(x)``, shape ``(n, n_outputs)``."""
    return _forward(net, _inputs(x, net.d_in))[0]


def _backward(net: FiniteNetwork, cache, g):
    """Back-propagate ``g = d(.)/d(output)`` ``(n, k)``; yields per Dense layer (last first)
    ``(k, delta, a_in, sw, sb)`` with ``delta`` the derivative at its pre-activations."""
    for item in reversed(cache):
        if item[0] == "act":
            _, lay, u = item
            g = g * lay.deriv(u)
        else:
            _, k, a_in, sw, sb = item
            yield k, g, a_in, sw, sb
            if k > 0:
                g = sw * (g @ net.weights[k])


def ntk(net: FiniteNetwork, x1, x2=None, *, output: int = 0) -> np.ndarray:
    """Empirical NTK ``J(x1) J(x2)^T`` of output ``output`` (``J`` the gradient of that
    output in all parameters), layer by layer without forming ``J`` (module docstring)."""
    x1 = _inputs(x1, net.d_in, "x1")
    sym = x2 is None
    x2 = x1 if sym else _inputs(x2, net.d_in, "x2")
    if not 0 <= output < net.n_outputs:
        raise ValueError(f"output must be in [0, {net.n_outputs}), got {output}")
    xs = x1 if sym else np.vstack([x1, x2])
    _, cache = _forward(net, xs)
    g = np.zeros((xs.shape[0], net.n_outputs))
    g[:, output] = 1.0
    n1 = x1.shape[0]
    out = np.zeros((n1, n1 if sym else x2.shape[0]))
    dense = net._dense()
    for k, delta, a_in, sw, sb in _backward(net, cache, g):
        d1, d2 = delta[:n1], delta[n1:] if not sym else delta[:n1]
        a1, a2 = a_in[:n1], a_in[n1:] if not sym else a_in[:n1]
        dd = d1 @ d2.T
        out += (sw * sw) * dd * (a1 @ a2.T)
        if _has_bias(dense[k]):
            out += (sb * sb) * dd
    return out


def jacobian(net: FiniteNetwork, x, *, output: int = 0, max_entries: int = 50_000_000):
    """Per-example gradients of output ``output`` in all parameters, ``(n, n_params)``, in
    the order (W_1, b_1, W_2, b_2, ...) (biases only where the layer has them); for small
    networks (tests, finite-difference checks): raises ValueError beyond ``max_entries``."""
    x = _inputs(x, net.d_in)
    if x.shape[0] * net.n_params > max_entries:
        raise ValueError(f"the Jacobian would have {x.shape[0] * net.n_params} entries; use "
                         "ntk() for large networks")
    _, cache = _forward(net, x)
    g = np.zeros((x.shape[0], net.n_outputs))
    g[:, output] = 1.0
    dense = net._dense()
    parts = {}
    for k, delta, a_in, sw, sb in _backward(net, cache, g):
        gw = sw * delta[:, :, None] * a_in[:, None, :]
        blocks = [gw.reshape(x.shape[0], -1)]
        if _has_bias(dense[k]):
            blocks.append(sb * delta)
        parts[k] = np.concatenate(blocks, axis=1)
    return np.concatenate([parts[k] for k in range(len(dense))], axis=1)


# ------------------------------------------------------------------ Monte Carlo kernels


def _summary(samples):
    s = np.asarray(samples)
    m = s.shape[0]
    std = s.std(axis=0, ddof=1) if m > 1 else np.zeros(s.shape[1:])
    return MonteCarlo(s.mean(axis=0), std / math.sqrt(m), std, m)


def empirical_nngp(network: Network, x1, x2=None, *, width, n_samples: int, seed=None,
                   n_outputs: int = 1) -> MonteCarlo:
    """Monte Carlo NNGP: the average of ``f(x1) f(x2)^T`` over ``n_samples`` independent
    initialisations (and over the ``n_outputs`` outputs of each), with its standard error
    over initialisations."""
    x1 = _inputs(x1, None, "x1")
    x2 = x1 if x2 is None else _inputs(x2, x1.shape[1], "x2")
    rng = _rng(seed)
    samples = []
    for _ in range(_count(n_samples)):
        net = init(network, x1.shape[1], width, n_outputs=n_outputs, seed=rng)
        f1 = apply(net, x1)
        f2 = f1 if x2 is x1 else apply(net, x2)
        samples.append(f1 @ f2.T / n_outputs)
    return _summary(samples)


def empirical_ntk(network: Network, x1, x2=None, *, width, n_samples: int,
                  seed=None) -> MonteCarlo:
    """Empirical NTK ``J J^T`` of ``n_samples`` independent initialisations: their mean,
    standard error and spread."""
    x1 = _inputs(x1, None, "x1")
    rng = _rng(seed)
    samples = [ntk(init(network, x1.shape[1], width, seed=rng), x1, x2)
               for _ in range(_count(n_samples))]
    return _summary(samples)


def _count(n):
    if isinstance(n, bool) or int(n) != n or int(n) < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n!r}")
    return int(n)


# ------------------------------------------------------------------ training


def train(net: FiniteNetwork, x, y, *, learning_rate: float, steps: int, record=(),
          x_test=None, ntk_inputs=None) -> TrainResult:
    """Full-batch gradient descent on the MSE loss ``||f(x) - y||^2 / (2 N)``, ``N =
    y.size`` (the convention of :mod:`analytic_ntk.predict`, so that ``t`` steps here
    correspond to time ``t`` there): ``theta <- theta - learning_rate * grad``.

    ``record``: steps (0..steps) at which the outputs on ``x`` (and ``x_test``) and, with
    ``ntk_inputs``, the empirical NTK on them are stored."""
    x = _inputs(x, net.d_in)
    y = np.asarray(y, dtype=np.float64)
    y = y.reshape(x.shape[0], -1)
    if y.shape[1] != net.n_outputs:
        raise ValueError(f"y has {y.shape[1]} outputs per example, the network "
                         f"{net.n_outputs}")
    if not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or inf")
    lr = float(learning_rate)
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
    steps = int(steps)
    if steps < 0:
        raise ValueError(f"steps must be non-negative, got {steps}")
    record = tuple(sorted({int(s) for s in record}))
    if record and not (0 <= record[0] and record[-1] <= steps):
        raise ValueError(f"record steps must lie in [0, {steps}]")
    xt = None if x_test is None else _inputs(x_test, net.d_in, "x_test")
    xe = None if ntk_inputs is None else _inputs(ntk_inputs, net.d_in, "ntk_inputs")
    weights = [np.array(w, dtype=np.float64, order="C") for w in net.weights]
    biases = [b.copy() for b in net.biases]
    dense = net._dense()
    outs, touts, ntks, losses = [], [], [], []
    cur = net
    for step in range(steps + 1):
        cur = FiniteNetwork(net.network, net.d_in, net.widths, tuple(weights), tuple(biases))
        f, cache = _forward(cur, x)
        resid = f - y
        if step in record:
            outs.append(f)
            if xt is not None:
                touts.append(apply(cur, xt))
            if xe is not None:
                ntks.append(ntk(cur, xe))
        losses.append(0.5 * np.sum(resid * resid) / y.size)
        if step == steps:
            break
        # all deltas first: backpropagation must see the weights before the update
        for k, delta, a_in, sw, sb in list(_backward(cur, cache, resid / y.size)):
            if _has_bias(dense[k]):
                biases[k] = biases[k] - lr * sb * delta.sum(axis=0)
            # W <- W - lr * sw * delta^T a_in, in place through BLAS (W^T is the
            # Fortran-ordered view of the C-ordered W): no width x width temporaries,
            # one pass over W instead of three.
            weights[k] = dgemm(-lr * sw, a_in, delta, beta=1.0, c=weights[k].T,
                               trans_a=True, overwrite_c=True).T
    return TrainResult(
        cur, record, np.array(outs),
        np.array(touts) if xt is not None else None,
        np.array(ntks) if xe is not None else None,
        np.array(losses),
    )
