"""HDF5 trajectory files (moved into a package; see :mod:`.reader`)."""

from workbench.io.trajectories.reader import (
    CHUNK_BYTES,
    COMPRESSIONS,
    DIRECTIONS,
    FORMAT,
    FORMAT_VERSION,
    MAX_PENDING_BYTES,
    FileBeingWrittenError,
    TrajectoryFile,
    TrajectoryWriter,
    chunk_shape,
    read_while_written,
    writes_paused,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "COMPRESSIONS",
    "DIRECTIONS",
    "MAX_PENDING_BYTES",
    "CHUNK_BYTES",
    "FileBeingWrittenError",
    "TrajectoryFile",
    "TrajectoryWriter",
    "chunk_shape",
    "read_while_written",
    "writes_paused",
]
