"""Derivation scripts that generate code and constants for ``analytic_ntk``
(``python -m derivations`` runs them all)."""
