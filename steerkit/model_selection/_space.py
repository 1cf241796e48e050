"""GRACE's search spaces (layer × coefficient)."""

from __future__ import annotations

GRACE_COEFFICIENTS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5)


def grace_space(n_layers: int, layers=None, coefficients=GRACE_COEFFICIENTS) -> dict:
    """TPE space: layer in 1..L (or ``layers``) × ``steerer__coefficient`` in ``coefficients``."""
    return {
        "layer": list(layers) if layers is not None else list(range(1, n_layers + 1)),
        "steerer__coefficient": list(coefficients),
    }


def grace_grid(n_layers: int, step: int = 5, coefficients=(1.0, 2.0, 3.0)) -> dict:
    """GRACE's grid: every ``step``-th layer × coefficients {1, 2, 3}."""
    return {"layer": list(range(step, n_layers + 1, step)), "steerer__coefficient": list(coefficients)}
