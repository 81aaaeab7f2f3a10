"""The experiment registry of ``python -m validation``.

An experiment is a function ``run(quick: bool, out: Path) -> list[Row]`` registered
under a name with :func:`register`; it prints its own table, writes its numbers
(JSON) under ``out`` and returns one :class:`Row` per checked quantity.  To add one,
write a module in this package that decorates its entry point with
``@register("name")`` and list the module in :data:`EXPERIMENT_MODULES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple


class Row(NamedTuple):
    """One checked quantity: ``measured`` must be ``<= tolerance`` (``passed``)."""

    name: str
    measured: float
    tolerance: float
    passed: bool


Experiment = Callable[[bool, Path], list[Row]]

#: name -> experiment, in registration order
EXPERIMENTS: dict[str, Experiment] = {}

#: modules imported by :func:`load` (each registers its experiments on import)
EXPERIMENT_MODULES = ("validation.duals_check", "validation.generic_check", "validation.digits",
                      "validation.mc_convergence", "validation.jacot_fig1",
                      "validation.jacot_fig2", "validation.linearized", "validation.mf_sgd",
                      "validation.lazy_active", "validation.repopulation",
                      "validation.langevin", "validation.mmn")


def register(name: str) -> Callable[[Experiment], Experiment]:
    """Decorator: register ``fn(quick, out) -> list[Row]`` as experiment ``name``."""

    def deco(fn: Experiment) -> Experiment:
        if name in EXPERIMENTS and EXPERIMENTS[name] is not fn:
            raise ValueError(f"experiment {name!r} registered twice")
        EXPERIMENTS[name] = fn
        return fn

    return deco


def load() -> dict[str, Experiment]:
    """Import every module of :data:`EXPERIMENT_MODULES`; return the registry."""
    for mod in EXPERIMENT_MODULES:
        importlib.import_module(mod)
    return EXPERIMENTS
