"""The Images view: a grid of the first images at the slider's row."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyqtgraph as pg
from PySide6 import QtWidgets

from workbench.gui.inspector.common import _View
from workbench.gui.plots.trajectories import image_mosaic

if TYPE_CHECKING:
    from workbench.gui.inspector.file_view import FileView

IMAGE_SIDE = 8  # image grid: IMAGE_SIDE x IMAGE_SIDE


class ImagesView(_View):
    title = "Images"
    follows_slider = True

    def __init__(self, fv: FileView) -> None:
        super().__init__(fv)
        layout = QtWidgets.QVBoxLayout(self)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setObjectName("inspectorImagesPlot")
        self.plot.setAspectLocked(True)
        self.plot.invertY(True)
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.image = pg.ImageItem()
        self.plot.addItem(self.image)
        layout.addWidget(self.plot)

    def draw(self) -> None:
        tf, k = self.fv.tf, self.fv.row_index()
        if k is None:
            self.image.clear()
            return
        n = min(IMAGE_SIDE * IMAGE_SIDE, tf.n_samples)
        x = tf.row(k, particles=slice(0, n))
        self.image.setImage(image_mosaic(x, tf.sample_shape, IMAGE_SIDE), levels=(0, 255))
        self.plot.setTitle(f"first {n} images at t = {float(tf.times[k]):.4g} (model units)")
