"""Every file format: HDF5 trajectories, checkpoints, exports, run folders."""

# HDF5 data files for the ``file`` data set: registered here so core never imports h5py.
from workbench.io import arrays as _arrays  # noqa: F401
