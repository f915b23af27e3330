"""Every file format: HDF5 trajectories, checkpoints, exports, run folders."""
