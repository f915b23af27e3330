"""Where a writer may put a file: the one rule every command that writes a file follows.

A writer replaces only a **regular file**, and only when allowed to (``--force``, or the GUI
after asking). Anything else at the destination is refused with one line, with or without
``--force``:

- a **directory** (``--out runs/`` or an existing folder): the user meant a file inside it;
- a **symbolic link**, dangling or not: writing through it would change a file elsewhere, and
  replacing it would silently break the link the user made;
- a **device** (``/dev/null``, a disk), a **FIFO** or a **socket**: replacing one with an
  HDF5 file breaks whatever used it, and writing into one blocks or sends data to a reader
  nobody asked for.

A path written with a trailing slash names a folder, never a file called like the folder.

Every writer writes to a temporary beside the destination and moves it into place with
:func:`replace_into`, which checks the destination again just before the rename, so the window
in which something else can appear there is one system call wide. Without overwriting it
links the temporary into place (``link`` fails if the name exists: no clobbering at all) and
falls back to a checked rename only on file systems without hard links.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from workbench.errors import WorkbenchError

__all__ = ["FORCE_HINT", "check_destination", "replace_into"]

#: how the command line says "allow overwriting"; library callers pass their own wording
FORCE_HINT = "use --force to overwrite it"


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def _reason(exc: OSError) -> str:
    return " ".join(str(exc.strerror or exc).split())


def check_destination(
    path: str | os.PathLike[str], overwrite: bool, *, force_hint: str = FORCE_HINT
) -> Path:
    """``path`` as a Path if a writer may create or replace it there; else a WorkbenchError.

    Allowed: nothing at ``path`` (not even a dangling symlink), or a regular file when
    ``overwrite``. Refused: a name ending in a slash, a directory, a symlink, a device, a FIFO,
    a socket (whatever ``overwrite`` says), and an existing file without ``overwrite``
    (the message ends with ``force_hint``). The last component is examined with ``lstat``:
    links are never followed, and a FIFO is never opened.
    """
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text.strip():
        raise WorkbenchError("no file name given")
    if text.endswith(("/", os.sep)) or (os.altsep and text.endswith(os.altsep)):
        raise WorkbenchError(
            f"{text} ends in a slash, so it names a folder; give a file name inside it"
        )
    dest = Path(text).expanduser()
    try:
        info = os.lstat(dest)
    except FileNotFoundError:
        return dest
    except NotADirectoryError:
        raise WorkbenchError(f"cannot write {dest}: a part of its folder is not a folder") from None
    except OSError as exc:
        raise WorkbenchError(f"cannot write {dest}: {_reason(exc)}") from None
    kind = _kind(info.st_mode)
    if kind == "a directory":
        example = dest / ("out" + _suffix(dest))
        raise WorkbenchError(
            f"{dest} is a directory; give a file name inside it, such as {example}"
        )
    if kind == "a symbolic link":
        target = os.readlink(dest)
        missing = "" if os.path.exists(dest) else ", which does not exist"
        raise WorkbenchError(
            f"{dest} is a symbolic link (to {target}{missing}); refusing to write through it or "
            "replace it, even with --force: give the path of a regular file"
        )
    if kind is not None:
        raise WorkbenchError(
            f"{dest} is {kind}, not a regular file; refusing to write to it or replace it, even "
            "with --force"
        )
    if not overwrite:
        raise WorkbenchError(f"{dest} already exists; {force_hint}")
    return dest


def _suffix(folder: Path) -> str:
    return ".h5" if folder.suffix == "" else folder.suffix


def replace_into(
    tmp: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    overwrite: bool,
    *,
    force_hint: str = FORCE_HINT,
) -> Path:
    """Move the finished temporary ``tmp`` to ``dest``, checking ``dest`` again first.

    On any refusal or failure ``tmp`` is deleted and ``dest`` is left as it was; the error is
    a WorkbenchError (a refusal) or the OSError of the rename (the caller words it).
    """
    tmp, dest = Path(tmp), Path(dest)
    try:
        check_destination(dest, overwrite, force_hint=force_hint)
        if not overwrite:
            try:
                os.link(tmp, dest)  # fails if anything appeared at dest meanwhile: no clobber
            except FileExistsError:
                raise WorkbenchError(f"{dest} already exists; {force_hint}") from None
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                os.replace(tmp, dest)  # no hard links here: the checked rename stands
            else:
                os.unlink(tmp)
            return dest
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return dest
