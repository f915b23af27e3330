"""The NeXus chain that lets NeXus viewers plot our HDF5 files with no plug-in.

silx view, h5web and nexusformat look for the plottable data by following ``default``
attributes from the root: ``/@default`` names an ``NXentry`` group, whose ``@default`` names
an ``NXdata`` group, whose ``@signal`` names the dataset to plot and ``@axes`` (with
``AXISNAME_indices``) its coordinates. Both of our formats keep their data group at the root
(/trajectories, /fpk), where every reader of format version 1 finds it; the entry holds a soft
link to it. A soft link, not a hard one, because walkers that follow hard links only (the
safety checks of workbench.io.safety, h5py's ``visititems``) then still meet each object once,
under its one name.
"""

from __future__ import annotations

from typing import Any

import h5py

from workbench import __version__

__all__ = ["ENTRY", "creator", "write_entry"]

#: the NXentry group's name
ENTRY = "entry"


def creator() -> str:
    """The ``creator``/``software`` string written on the root of every file."""
    return f"sde-workbench {__version__}"


def write_entry(f: h5py.File, data: str, file_time: str) -> None:
    """Mark ``f`` as an NXroot whose default entry /entry shows the NXdata group /<data>.

    ``file_time`` is the ISO 8601 time the file was created. The NXdata group itself (its
    ``NX_class``, ``signal``, ``axes``) is written by the format that owns it.
    """
    attrs: Any = f.attrs
    attrs["NX_class"] = "NXroot"
    attrs["default"] = ENTRY
    attrs["creator"] = creator()
    attrs["file_time"] = file_time
    entry = f.create_group(ENTRY)
    entry.attrs["NX_class"] = "NXentry"
    entry.attrs["default"] = data
    entry[data] = h5py.SoftLink(f"/{data}")
