"""Generated modules; see ``derivations/``."""
