"""The one wording of a value against its noise floor, driven by the z-score."""

from __future__ import annotations

import math

import pytest

from workbench.core.wording import Z_FAR, Z_WITHIN, floor_verdict, z_score


@pytest.mark.parametrize(
    ("value", "mean", "std", "expected"),
    [
        (1.0, 1.0, 0.1, "within the noise floor (z = 0.0)"),
        (1.19, 1.0, 0.1, "within the noise floor (z = 1.9)"),
        (0.82, 1.0, 0.1, "within the noise floor (z = −1.8)"),
        (1.31, 1.0, 0.1, "above the noise floor (z = 3.1)"),
        (1.7, 1.0, 0.1, "far above the noise floor (z = 7.0)"),
        (0.7, 1.0, 0.1, "below the noise floor (z = −3.0)"),
    ],
)
def test_words_follow_the_z_score(value: float, mean: float, std: float, expected: str) -> None:
    assert floor_verdict(value, mean, std) == expected


def test_seven_standard_deviations_is_never_slight() -> None:
    text = floor_verdict(0.0107, 0.003, 0.0011)
    assert text.startswith("far above") and "z = 7.0" in text
    assert "slight" not in text


def test_thresholds_are_the_documented_ones() -> None:
    assert floor_verdict(Z_WITHIN - 1e-9, 0.0, 1.0).startswith("within")
    assert floor_verdict(Z_WITHIN, 0.0, 1.0).startswith("above")
    assert floor_verdict(Z_FAR - 1e-9, 0.0, 1.0).startswith("above")
    assert floor_verdict(Z_FAR, 0.0, 1.0).startswith("far above")


def test_a_floor_without_spread_and_non_finite_values() -> None:
    assert z_score(1.0, 1.0, 0.0) == 0.0
    assert z_score(2.0, 1.0, 0.0) == math.inf
    assert floor_verdict(2.0, 1.0, 0.0) == "far above the noise floor (z = ∞)"
    assert floor_verdict(float("nan"), 1.0, 0.1).startswith("not comparable")
    assert math.isnan(z_score(math.inf, 1.0, 0.1))
