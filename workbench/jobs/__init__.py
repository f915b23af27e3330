"""The long jobs that the CLI and the GUI share: train, sample, nll, fpk, export, distributed.

Each job assembles an experiment (:mod:`workbench.core.experiment`), runs the numerics of
:mod:`workbench.core` and writes its results through the file formats of :mod:`workbench.io`.
Dependence runs one way: ``gui``/``cli`` -> ``jobs`` -> ``io`` -> ``core``; io never imports a
job (``tests/test_layers.py`` checks it).
"""

# HDF5 data files for the ``file`` data set: registered by importing io (core never imports h5py).
import workbench.io  # noqa: F401
