"""Pure numerics: SDEs, data, analytic truth, networks, losses, training and samplers.

Nothing here imports Qt or h5py (except a data-file loader, lazily), and nothing waits on a
widget: long work reports through callbacks and checks a cancel flag.
"""
