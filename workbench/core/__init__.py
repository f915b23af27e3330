"""Pure numerics: SDEs, data, analytic truth, networks, losses, training and samplers.

Nothing here imports Qt, h5py, ``workbench.io`` or ``workbench.gui``: HDF5 data files are read
by a reader that ``workbench.io`` registers (:func:`workbench.core.data.register_array_reader`).
Only :mod:`workbench.core.train` reaches ``workbench.config``, lazily: for the experiment
config's type and its TOML in a checkpoint.
Nothing waits on a widget: long work reports through callbacks and checks a cancel flag.
"""
