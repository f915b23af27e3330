"""One writer per run folder: an OS lock on ``RUN/.lock`` while a training writes the folder.

The lock is ``fcntl.flock`` on the file ``.lock`` inside the folder. The kernel drops it when
the holder's file descriptor closes, so a process that dies in any way (kill -9 included)
releases it without help. While held, the file says who holds it as JSON (pid, host, start
time, what is training), so a refused second writer can name the holder in one line.

A lock file whose lock is free but which still names a holder was left by a process that died
without cleaning up (a clean release deletes the file). On the same host that holder is gone
(its pid no longer runs, or no longer holds the lock): the lock is taken over with a note. A
holder on another host cannot be checked from here; on a file system whose locks do not reach
across hosts it may still be running, so that lock is refused and the message says how to
clear it by hand.

The file is deleted on release, while still locked, so a finished run folder holds no lock
file. A process that opened the file just before, and locks it just after, holds the lock of a
file no longer in the folder while a third could create and lock a new one: two writers. So a
lock counts only when the locked descriptor is still the file at the path (same device and
inode); otherwise it is dropped and taken again.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from workbench.errors import WorkbenchError

__all__ = ["LOCK_NAME", "RunLock", "RunLockedError", "read_holder"]

LOCK_NAME = ".lock"


class RunLockedError(WorkbenchError):
    """The run folder is being written by another process."""


def read_holder(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The holder a folder's lock file names, or None (no file, empty, or unreadable)."""
    try:
        text = (Path(folder) / LOCK_NAME).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return _parse(text)


def _parse(text: str) -> dict[str, Any] | None:
    if not text.strip():
        return None
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return None
    return holder if isinstance(holder, dict) else None


def describe_holder(holder: dict[str, Any] | None) -> str:
    """``pid 123 on host h since 2025-01-01 12:00:00 (sde-workbench train)``."""
    if holder is None:
        return "another process (it is writing its details just now)"
    what = f" ({holder['what']})" if holder.get("what") else ""
    return (
        f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} since "
        f"{holder.get('started', '?')}{what}"
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except OSError:
        return False
    return True


class RunLock:
    """The lock of one run folder; use as a context manager, or :meth:`acquire`/:meth:`release`.

    ``what`` says what holds it (shown to a refused writer); ``on_note`` receives the one-line
    note about a stale lock taken over (default: printed to stderr). ``job`` identifies a
    multi-process job, so its other ranks can tell their own rank 0's lock from a stranger's.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        what: str = "sde-workbench train",
        *,
        on_note: Callable[[str], None] | None = None,
        job: str | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.what = what
        self.job = job
        self.on_note = on_note
        self._fd: int | None = None
        self.took_over: dict[str, Any] | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock at once or raise :class:`RunLockedError` naming the holder."""
        if self._fd is not None:
            return self
        for _ in range(100):  # each retry means another process just released it: rare
            fd = self._lock_the_file_at_the_path()
            if fd is not None:
                self._fd = fd
                return self
        raise RunLockedError(f"{self.folder} is being locked and released too fast to take")

    def _lock_the_file_at_the_path(self) -> int | None:
        """The locked descriptor of the lock file, or None when the file was replaced or
        removed between opening and locking it (take it again)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise WorkbenchError(
                f"cannot lock run folder {self.folder}: {exc.strerror or exc}"
            ) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise WorkbenchError(
                        f"cannot lock run folder {self.folder}: {exc.strerror or exc}"
                    ) from None
                raise RunLockedError(
                    f"{self.folder} is in use by {describe_holder(_read_fd(fd))}; wait for it "
                    "to finish or stop it, or train into another --out"
                ) from None
            if not _same_file(fd, self.path):
                os.close(fd)
                return None
            self._check_stale(_read_fd(fd))
            self._write(fd)
        except BaseException:
            os.close(fd)  # closing drops the flock too
            raise
        return fd

    def _check_stale(self, holder: dict[str, Any] | None) -> None:
        """The lock was free: a holder still named in the file died without cleaning up."""
        if holder is None:
            return
        here = socket.gethostname()
        if holder.get("host") not in (None, here):
            raise RunLockedError(
                f"{self.folder} is marked in use by {describe_holder(holder)}, which cannot be "
                f"checked from {here}; if it is no longer running, delete {self.path}"
            )
        pid = holder.get("pid")
        alive = isinstance(pid, int) and _pid_alive(pid)
        # an alive pid that does not hold the lock is another process under a reused number
        gone = "no longer holds it" if alive else "is no longer running"
        self.took_over = holder
        note = (
            f"note: took over the lock of {self.folder}: it was left by "
            f"{describe_holder(holder)}, which {gone}"
        )
        if self.on_note is not None:
            self.on_note(note)
        else:
            print(note, file=sys.stderr)

    def _write(self, fd: int) -> None:
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "what": self.what,
        }
        if self.job is not None:
            holder["job"] = self.job
        data = json.dumps(holder).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)

    def release(self) -> None:
        """Delete the file while still holding it (a clean end), then drop the lock."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _same_file(fd, self.path):
                self.path.unlink()
        except OSError:
            pass  # the lock still goes with the descriptor; a stale-lock note at worst
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _read_fd(fd: int) -> dict[str, Any] | None:
    try:
        size = os.fstat(fd).st_size
        text = os.pread(fd, min(size, 65536), 0).decode("utf-8", "replace")
    except OSError:
        return None
    return _parse(text)
