"""Guards every reader of a user's file goes through: only regular files of sane size, and
only what memory can hold.

A path the user typed may name anything: a named pipe (reading it blocks until someone
writes), a device (``/dev/zero`` never ends, so "read it all" grows until the machine runs out
of memory), a directory, a symlink to one of these. :func:`check_regular_file` refuses such a
path at once, with one line that says what it is, and refuses a regular file larger than the
reader's limit; :func:`read_regular_bytes` reads a file through a descriptor it checked itself
(opened without blocking, so even a file swapped for a FIFO after the check cannot hang it).

:func:`available_memory` is what a reader compares a file's declared size with before it
allocates anything: a header that claims (10**12, 2) float64 values is refused with a message,
not attempted. It is the smaller of what the system can give without swapping (Linux's
``MemAvailable``) and what this process's address-space limit (``ulimit -v``) still allows.

Plain Python only, so that ``workbench.core`` (which must not import ``workbench.io``), the
config and ``workbench.io`` share one implementation.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

from workbench.errors import WorkbenchError

__all__ = [
    "ErrorFactory",
    "available_memory",
    "check_regular_file",
    "format_bytes",
    "read_regular_bytes",
]

#: builds the exception for a problem (one line, without the path): each reader names its file
#: its own way (a data file's errors are DataErrors that quote the path, say)
ErrorFactory = Callable[[str], Exception]


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units, e.g. ``14.6 TiB``."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{int(n)} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _default_error(path: Path) -> ErrorFactory:
    return lambda problem: WorkbenchError(f"{path}: {problem}")


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a regular file; only regular files are read"
    if stat.S_ISCHR(mode):
        return (
            "is a character device (like /dev/zero), not a regular file; only regular files "
            "are read"
        )
    if stat.S_ISBLK(mode):
        return "is a block device, not a regular file; only regular files are read"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file; only regular files are read"
    return "is not a regular file; only regular files are read"


def _stat_problem(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "no such file"
    return f"cannot be read: {exc.strerror or exc}"


def _check_stat(st: os.stat_result, max_bytes: int | None, what: str, error: ErrorFactory) -> int:
    kind = _kind(st.st_mode)
    if kind is not None:
        raise error(kind)
    if max_bytes is not None and st.st_size > max_bytes:
        raise error(
            f"is {format_bytes(st.st_size)}, more than the {format_bytes(max_bytes)} a {what} "
            "may be; is it the right file?"
        )
    return int(st.st_size)


def check_regular_file(
    path: str | os.PathLike[str],
    max_bytes: int | None = None,
    *,
    what: str = "file",
    error: ErrorFactory | None = None,
) -> int:
    """The size of ``path`` if it is a regular file (symlinks followed) of at most
    ``max_bytes``; otherwise ``error(problem)`` is raised (default: a WorkbenchError
    ``"PATH: problem"``). Never opens the file, so a FIFO cannot block it."""
    path = Path(path)
    error = error or _default_error(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise error(_stat_problem(exc)) from None
    return _check_stat(st, max_bytes, what, error)


def read_regular_bytes(
    path: str | os.PathLike[str],
    max_bytes: int,
    *,
    what: str = "file",
    error: ErrorFactory | None = None,
) -> bytes:
    """The bytes of the regular file ``path``, refused as :func:`check_regular_file` does.

    The file is opened non-blocking and checked through its descriptor, and at most
    ``max_bytes + 1`` bytes are ever read: a file that grows past the limit while it is read
    is refused too, instead of being read without end.
    """
    path = Path(path)
    error = error or _default_error(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    flags |= getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise error("is a directory, not a file") from None
        raise error(_stat_problem(exc)) from None
    try:
        _check_stat(os.fstat(fd), max_bytes, what, error)
        chunks: list[bytes] = []
        total = 0
        while total <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise error(f"cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if total > max_bytes:
        raise error(f"grew past the {format_bytes(max_bytes)} a {what} may be while being read")
    return b"".join(chunks)


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _address_space_left() -> int | None:
    """What ``ulimit -v`` (RLIMIT_AS) still lets this process map; None without a limit."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return max(0, soft - int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return int(soft)


def available_memory() -> int | None:
    """Bytes this process can still allocate without swapping, as far as is known; None where
    the platform does not say (then nothing is refused on this ground)."""
    found = [m for m in (_meminfo_available(), _address_space_left()) if m is not None]
    return min(found) if found else None
