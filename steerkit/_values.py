"""Checks of user-supplied numbers where they enter steerkit: steering strengths and arrays.

A NaN or infinite value in a coefficient, a steering vector or activations does not fail by
itself: it silently turns every logit into NaN and the answers into empty strings. These
checks reject such values at the boundary with a one-line ``ValueError`` that names the value
and the fix.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils.validation import check_scalar

MAX_ABS_COEFFICIENT = 1e4
"""Largest accepted ``|coefficient|``. Useful strengths are about 0.5 to 10 for vectors in
activation units (PV, unit-mean, cluster) and at most a few hundred for unit-norm vectors;
10,000 times a vector already swamps any residual stream, so a larger value is a typo."""


def check_coefficient(value, name: str = "coefficient") -> float:
    """``value`` as a float if it is a usable steering strength.

    Raises
    ------
    TypeError
        If ``value`` is not a real number (scikit-learn's ``check_scalar`` message).
    ValueError
        If it is NaN, infinite or larger in magnitude than :data:`MAX_ABS_COEFFICIENT`.
    """
    check_scalar(value, name, numbers.Real)
    if not abs(value) <= MAX_ABS_COEFFICIENT:
        raise ValueError(
            f"{name}={value!r} is not a usable steering strength: use a finite number between "
            f"-{MAX_ABS_COEFFICIENT:g} and {MAX_ABS_COEFFICIENT:g} (typical strengths are 0.5 to 10)"
        )
    return float(value)


def check_finite(array, name: str, fix: str) -> np.ndarray:
    """``array`` as an ndarray if every entry is finite.

    Parameters
    ----------
    array : array-like of numbers, any shape.
    name : what the array is, for the message (``"steering vector"``, a file name, ...).
    fix : what the user should do about non-finite values, for the message.

    Raises
    ------
    ValueError
        Naming how many entries are NaN or infinite and where the first one is.
    """
    array = np.asarray(array)
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} contains {int(bad.sum())} NaN or infinite value(s) of {array.size} "
            f"(first at index {first}: {array[first]}); {fix}"
        )
    return array
