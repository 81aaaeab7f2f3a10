"""Derivation scripts that generate constants for ``analytic_ntk``."""
