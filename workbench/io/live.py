"""Reading a file another process is writing, without SWMR.

Trajectory files are written without SWMR (see :mod:`workbench.io.trajectories`), so a reader
in another process sees a consistent file only between two of the writer's flushes; one that
overlaps a flush can find chunk indexes pointing at space the writer has since re-used, and
HDF5 then fails inside a filter ("filter returned failure during read"). Two remedies:

- our writer brackets each row's write + flush with an exclusive advisory lock (``flock``) on
  the file, and a reader that wants a consistent view holds a shared one
  (:func:`writes_paused`); HDF5's own locking stays off on both sides, since it would lock
  readers out for the writer's whole life;
- a read that fails while the file changes under it (another writer, or no flock on this
  file system) is a :class:`FileBeingWrittenError`, not damage, and is retried
  (:func:`workbench.io.trajectories.read_while_written`).
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from workbench.errors import WorkbenchError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: readers fall back to retrying
    fcntl = None  # type: ignore[assignment]

__all__ = ["SETTLE_S", "FileBeingWrittenError", "file_signature", "lock_handle", "writes_paused"]

# How long a failed read waits to see whether a writer's flush is still landing.
SETTLE_S = 0.05
# How long a reader waits for a writer's flush to end before reading anyway.
_PAUSE_WAIT_S = 10.0


class FileBeingWrittenError(WorkbenchError):
    """A read failed while another process was writing the file: a torn read, not damage.

    Without SWMR (see the module docstring) a reader's view of a file being written is only
    consistent between the writer's flushes; a read that straddles one can see chunk indexes
    pointing at space since re-used and fail inside HDF5. That is told apart from a damaged
    file by the file itself: it changed (size or modification time) since the reader began to
    open it. :func:`workbench.io.trajectories.read_while_written` opens again and retries.
    """


def file_signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def lock_handle(path: Path) -> int | None:
    """A descriptor of the regular file ``path`` to flock, or None."""
    if fcntl is None:
        return None
    # non-blocking: opening a FIFO named like the file must not wait for a writer to appear
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        regular = False
    if not regular:  # a FIFO or a device: nothing of ours writes it, and nothing to lock
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def writes_paused(path: str | os.PathLike[str], wait: float = _PAUSE_WAIT_S) -> Iterator[bool]:
    """Hold off an SDE Workbench writer of ``path`` (between two of its rows) for the block.

    Yields whether the pause holds: False where locks are unavailable or a writer kept the
    file for ``wait`` seconds (the block then reads as it can; see trajectories.read_while_written).
    """
    fd = lock_handle(Path(path))
    if fd is None:
        yield False
        return
    try:
        deadline = time.monotonic() + wait
        held = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                held = True
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.002)
            except OSError:  # a file system without flock
                break
        yield held
    finally:
        os.close(fd)  # closing drops the lock
