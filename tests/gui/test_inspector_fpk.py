"""The inspector on a Fokker–Planck file written by ``sde-workbench fpk``: p_t at each time."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from workbench.config import default_config
from workbench.gui.inspector import FPKView, InspectorWindow
from workbench.io.fpk_file import read_fpk
from workbench.jobs.fpk import solve_config_to_file


@pytest.mark.parametrize(("data", "grid"), [("gmm1d", 64), ("8gaussians", 32)])
def test_fpk_file_shows_p_t_with_a_time_slider(
    inspector: InspectorWindow, tmp_path: Path, data: str, grid: int
) -> None:
    config = default_config().with_overrides({"data.name": data})
    path = tmp_path / "fpk.h5"
    result = solve_config_to_file(config, path, grid=grid, times=(0.0, 0.25, 1.0))
    assert inspector.open(path)
    fv = inspector.current()
    assert "fpk/p" in {k.strip("/") for k in fv.tree_paths()}  # the tree as before
    view = fv.findChild(FPKView, "fpkView")
    assert view is not None and fv.views.currentWidget() is view
    data_read = read_fpk(path)
    assert data_read.p.shape == (3, *([grid] * result.dim))
    assert view.slider.maximum() == 2
    cell = np.prod([a[1] - a[0] for a in data_read.axes])
    for k in range(3):
        view.slider.setValue(k)
        shown = view.curve.yData if result.dim == 1 else view.image.image
        assert np.allclose(shown, data_read.p[k])
        assert f"t = {data_read.times[k]:.4g}" in view.label.text()
        assert abs(shown.sum() * cell - 1.0) < 1e-6  # a density on the grid
    # p_0 is the data (peaked), p_1 the wide prior: the peak falls with t
    assert data_read.p[0].max() > 2 * data_read.p[2].max()
