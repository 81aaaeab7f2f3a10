"""The experiments' access to matplotlib, an optional dependency (the ``validation``
extra): a figure is drawn when it is installed and skipped otherwise."""

from __future__ import annotations


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend, or None when matplotlib
    is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save(fig, path, dpi=110) -> bool:
    """Write ``fig`` to ``path`` and release it; True (the figure was written)."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return True
