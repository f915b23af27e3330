"""The trajectory inspector: open saved HDF5 files read-only, look inside, export samples.

:class:`InspectorWindow` (object name ``inspectorWindow``) holds one :class:`FileView` per open
file in closable tabs. A FileView shows the tree of groups and datasets of any HDF5 file (shape,
dtype, chunking, compression; attributes of the selected node) and, for a trajectory file of
ours, a summary with the experiment config as TOML and lazy views: samples and the marginal
histogram at the slider's row (with the exact p_t's 50%/90%-mass contours when the config has
Gaussian-mixture data and a linear SDE), particle paths of a chosen contiguous block of
particles, per-row statistics, an image grid for image data, the log-likelihood histogram, and
Compare: the final samples against the config's data set or another open file, with sliced
Wasserstein, MMD² and energy distance beside their noise floors, computed in a worker thread
that closing the file waits for. A view is made when its tab is first shown, and nothing is
read until then; the file is opened and walked (and its rows' times read) in a worker; moving
the slider reads one row. F5 re-opens the file, in a worker, to follow one still being
written.

Opening never modifies a file: :class:`~workbench.io.trajectories.TrajectoryFile` opens it
read-only. Every failure is a one-line message in the window's banner and the ``failed`` signal.

One module per piece: :mod:`.window` (the window), :mod:`.file_view` (one open file), a module
per view (:mod:`.summary`, :mod:`.samples`, :mod:`.paths`, :mod:`.stats`, :mod:`.images`,
:mod:`.logp`, :mod:`.compare`, :mod:`.fpk_view`), :mod:`.export_dialog`, and what they share in
:mod:`.common`.
"""

from workbench.gui.inspector.compare import CompareView
from workbench.gui.inspector.export_dialog import ExportDialog
from workbench.gui.inspector.file_view import INCOMPLETE_TEXT, FileView
from workbench.gui.inspector.fpk_view import FPKView
from workbench.gui.inspector.images import ImagesView
from workbench.gui.inspector.logp import LogpView
from workbench.gui.inspector.paths import PathsView
from workbench.gui.inspector.samples import SamplesView, density_at
from workbench.gui.inspector.stats import StatsView
from workbench.gui.inspector.summary import SummaryView
from workbench.gui.inspector.window import InspectorWindow

__all__ = [
    "INCOMPLETE_TEXT",
    "CompareView",
    "ExportDialog",
    "FPKView",
    "FileView",
    "ImagesView",
    "InspectorWindow",
    "LogpView",
    "PathsView",
    "SamplesView",
    "StatsView",
    "SummaryView",
    "density_at",
]
