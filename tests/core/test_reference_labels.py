"""The references say what they are: an FPK solve started from a kernel estimate is not called
truth, and the empirical reference names the points it really holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.core.conftest import experiment
from workbench.core.reference import EmpiricalReference, solve_reference


def test_fpk_from_a_kernel_estimate_is_labelled_as_such() -> None:
    moons = solve_reference(experiment(**{"data.name": "moons"}), grid_n=24, n_times=3)
    assert moons.from_kde
    assert moons.label == "Fokker–Planck from a kernel estimate of the data"
    assert "kernel estimate" in moons.note and "KDE" in moons.short
    gmm = solve_reference(experiment(), grid_n=24, n_times=3)  # 8 Gaussians: p_0 exact
    assert not gmm.from_kde and gmm.label == "Fokker–Planck p_t"
    assert "kernel" not in gmm.note


def test_empirical_reference_names_the_points_it_uses(tmp_path: Path) -> None:
    # a data file of 300 rows: all 300 distinct rows, not 2000 draws with repeats
    rows = np.random.default_rng(1).normal(size=(300, 2))
    np.save(tmp_path / "d.npy", rows)
    ref = EmpiricalReference(
        experiment(**{"data.name": "file", "data.path": str(tmp_path / "d.npy")})
    )
    assert len(ref.x0) == 300 and len(np.unique(ref.x0, axis=0)) == 300
    assert "all 300 points" in ref.note and "training" not in ref.note
    # a larger file: n distinct rows of it
    np.save(tmp_path / "big.npy", np.random.default_rng(2).normal(size=(5000, 2)))
    ref = EmpiricalReference(
        experiment(**{"data.name": "file", "data.path": str(tmp_path / "big.npy")}), n=700
    )
    assert len(np.unique(ref.x0, axis=0)) == 700 and "700 of the data set's 5,000" in ref.note
    # a synthetic set: at most data.n draws, and the note gives that number
    ref = EmpiricalReference(
        experiment(**{"data.name": "moons", "data.n": 500, "train.batch_size": 256})
    )
    assert len(ref.x0) == 500 and "500 seeded draws" in ref.note
