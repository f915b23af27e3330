"""Words for numbers a user reads: how far a value lies from a noise floor.

A metric between finite samples is never zero; its noise floor (the same metric between fresh
draws of one law, mean and std) is the yardstick. The distance to it in floor standard
deviations, z = (value - mean) / std, is what the words say, and the z-score itself is shown so
that nobody has to trust the words: |z| < 2 is what repeated draws of one law give about 95 %
of the time ("within the noise floor"); 2 <= z < 5 is "above" it; z >= 5 is "far above" (the
chance of that from noise alone is below 1e-6 for a normal floor). A value well below the floor
(z <= -2) is said to be below it, which for a distance usually means the floor was estimated
from few repeats.
"""

from __future__ import annotations

import math

__all__ = ["Z_WITHIN", "Z_FAR", "z_score", "floor_verdict"]

Z_WITHIN = 2.0  # |z| below this: indistinguishable from sampling noise
Z_FAR = 5.0  # z at or above this: far above the floor


def z_score(value: float, mean: float, std: float) -> float:
    """(value - mean) / std; with a floor of no spread, 0 at the mean and ±inf off it."""
    diff = float(value) - float(mean)
    if not math.isfinite(diff):
        return float("nan")
    if std > 0 and math.isfinite(std):
        return diff / float(std)
    return 0.0 if diff == 0 else math.copysign(math.inf, diff)


def _z_text(z: float) -> str:
    if math.isinf(z):
        return "z = ∞" if z > 0 else "z = −∞"
    return f"z = {z:.1f}".replace("-", "−")


def floor_verdict(value: float, mean: float, std: float) -> str:
    """How ``value`` compares with a noise floor of mean ``mean`` and std ``std``, in words,
    with its z-score: "within the noise floor (z = 0.4)", "above the noise floor (z = 3.1)",
    "far above the noise floor (z = 7.0)", "below the noise floor (z = −2.5)"."""
    z = z_score(value, mean, std)
    if math.isnan(z):
        return "not comparable (not a finite number)"
    if abs(z) < Z_WITHIN:
        words = "within the noise floor"
    elif z < 0:
        words = "below the noise floor"
    elif z < Z_FAR:
        words = "above the noise floor"
    else:
        words = "far above the noise floor"
    return f"{words} ({_z_text(z)})"
