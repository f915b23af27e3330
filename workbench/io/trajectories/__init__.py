"""HDF5 trajectory files, format version 1: the layout docs/format.md specifies (that file is
the specification; this is a summary).

```
/                attrs format, format_version, software, created, complete,
                 NX_class="NXroot", default="entry", creator, file_time
/config          attr experiment (TOML text)
/entry           NXentry, default="trajectories"; /entry/trajectories a soft link (nexus.py)
/trajectories    NXdata: x (n_saved, n_samples, dim) float32, t (n_saved,), step (n_saved,);
                 attrs signal, axes, t_indices, direction, sampler, nfe, sample_shape,
                 shift, scale, mode
/samples         (n_samples, dim) float32, data units        /logp  (n_samples,) float64
```

:class:`TrajectoryWriter` (:mod:`.writer`) appends rows from a background thread and flushes
after every row, so a killed writer leaves a file that opens, holds every flushed row and says
``complete = false``. :class:`TrajectoryFile` (:mod:`.reader`) reads one lazily and checks its
layout, turning every defect into a one-line :class:`~workbench.errors.WorkbenchError`. The
layout itself (names, attributes, chunk shapes, what a reader demands) is :mod:`.layout`'s,
written and checked in one place; :mod:`.overview` holds the summary and the node list that
``inspect`` prints.

Choices a reader of the files may care about:

- Files are written with HDF5 library-version bounds ("earliest", "v110"): the oldest file
  format that can hold the data, readable by HDF5 1.10 tools (h5dump, HDFView, silx). No SWMR:
  SWMR needs the 1.10 superblock, which HDF5 marks "open for writing"; after a crash such a
  file opens only as a SWMR reader or after ``h5clear`` (checked: h5py and h5dump refuse it),
  which breaks the crash state this format promises. A live reader re-opens instead
  (:meth:`TrajectoryFile.refresh`); without SWMR a reader sees the file as of the writer's
  last flush.
- File locking is off on both sides, so an inspector can follow a file while it is written
  (in the same process or another); a second writer is still kept out, because a new file is
  created exclusively and a replacement is written under a temporary name.
  Instead the writer holds an exclusive ``flock`` on the file while it writes and flushes a
  row, and ``inspect`` holds a shared one while it reads (:func:`writes_paused`): without
  SWMR a reader that overlaps a flush can find chunk indexes pointing at re-used space. A
  read torn by some other writer is retried (:func:`read_while_written`), and reported as a
  file being written, not as a corrupt one.
- ``x`` is chunked one row deep, (1, c, dim) with c particles making ~32 KiB: a row is written
  as whole chunks (no chunk is ever re-compressed when the next row arrives), a time slice reads
  a handful of chunks, and one particle's path reads one small chunk per row. Chunks several
  rows deep make paths faster but multiply the writing cost, because every flush re-compresses
  the partly filled chunks. Measured on 1000 rows x 100000 particles x 2 (gzip, 2 busy CPU
  cores): (1, 4000, 2) writes in ~26 s, reads a time slice in ~3 ms and a path in ~170 ms
  (~5 ms for a neighbouring particle, from the chunk cache); (8, 4000, 2) takes ~120 s to write
  for a ~80 ms path and a ~14 ms slice. Tiny rows (a whole row under ~32 KiB) are grouped
  several to a chunk instead.
- Compression is gzip level 4 with the shuffle filter (every HDF5 tool can read it); ``lzf``
  is faster but only h5py (and silx, through hdf5plugin) can decompress it.
"""

from workbench.io.live import FileBeingWrittenError, writes_paused
from workbench.io.trajectories.layout import (
    CHUNK_BYTES,
    COMPRESSIONS,
    DIRECTIONS,
    FORMAT,
    FORMAT_VERSION,
    GZIP_LEVEL,
    MAX_CHUNK_ROWS,
    chunk_shape,
)
from workbench.io.trajectories.reader import LIVE_READ_ATTEMPTS, TrajectoryFile, read_while_written
from workbench.io.trajectories.writer import MAX_PENDING_BYTES, TrajectoryWriter

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "COMPRESSIONS",
    "DIRECTIONS",
    "GZIP_LEVEL",
    "MAX_CHUNK_ROWS",
    "MAX_PENDING_BYTES",
    "CHUNK_BYTES",
    "LIVE_READ_ATTEMPTS",
    "FileBeingWrittenError",
    "TrajectoryFile",
    "TrajectoryWriter",
    "chunk_shape",
    "read_while_written",
    "writes_paused",
]
