"""The centre tabs: loss, densities p_t, score field, trajectories, schedule.

Every tab is a :class:`PlotTab`: the main window hands it the experiment, the time of the
slider, the latest EMA model and the last trajectory file, and each tab redraws what it shows.
"""

from workbench.gui.plots.base import PlotTab

__all__ = ["PlotTab"]
