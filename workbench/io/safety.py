"""Guards around files from elsewhere and faults of the device: what an HDF5 file may point
at, a validator that runs the HDF5 C library in a child process, containment of paths that are
written, and the error a GPU out of memory becomes.

Three things an HDF5 file can do that a user would not expect from "open this file":

- an **external link** (``/x -> other.h5:/data``) makes the library open another file when
  the link is traversed;
- **external raw storage** (``H5Pset_external``) keeps a dataset's bytes in other files, any
  files: reading the dataset reads them (``/etc/passwd`` as uint8, say);
- a **virtual dataset** maps regions of datasets in other files.

:func:`external_references` lists every such reference without following any of them;
:func:`check_external` refuses a file whose references resolve outside its own folder, unless
the user agreed (``allow=True``). :class:`~workbench.io.trajectories.TrajectoryFile` runs the
check before it reads anything.

The HDF5 C library parses a file's metadata in C; a crafted file can make it crash (a
segmentation fault takes the whole process, and the app with it), loop, or allocate without
bound. :func:`validate_in_child` opens and walks a file in a separate Python process that has
a time limit and an address-space limit; the inspector (and ``sde-workbench inspect``) calls
it before it opens a file in its own process, so such a file costs a message, not the app.

:class:`OutOfMemoryError` is what training, sampling and the NLL raise when the GPU's memory or
the computer's own (torch's CPU allocator failing, a MemoryError, numpy's) runs out: a
one-line message that names the smaller setting to try (``train.batch_size``,
``sample.chunk_size``, ``sample.n``, ``data.n``, ``model.hidden``), which the GUI reads back
to offer a retry.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

__all__ = [
    "CHILD_MEMORY_BYTES",
    "VALIDATE_TIMEOUT_S",
    "RAM",
    "ExternalReference",
    "DeviceOutOfMemoryError",
    "OutOfMemoryError",
    "is_out_of_memory",
    "out_of_memory_where",
    "check_external",
    "open_beside",
    "ensure_inside",
    "external_references",
    "outside_folder",
    "release_device_memory",
    "validate_in_child",
]

# Address space the validating child may grow by beyond what Python + h5py take at start:
# every read it makes is bounded (see _WALK), so this is only reached by a runaway library.
CHILD_MEMORY_BYTES = 1 << 30
# Seconds the child may take: a walk of a sane file takes well under one.
VALIDATE_TIMEOUT_S = 20.0
# Objects the walk visits at most: a file with more is reported as such, not walked forever.
MAX_OBJECTS = 200_000


@dataclass(frozen=True)
class ExternalReference:
    """One reference from an HDF5 file to another file."""

    kind: str  # "external link" | "external raw storage" | "virtual dataset"
    where: str  # the object in this file that holds the reference
    target: str  # the file named, as written in the file

    def describe(self) -> str:
        return f"{self.where} ({self.kind} to {self.target})"


def _resolves_inside(folder: Path, target: str) -> bool:
    """Whether ``target`` (relative to ``folder`` unless absolute) stays inside ``folder``."""
    if target in ("", "."):  # a virtual dataset's "." means this very file
        return True
    resolved = (folder / os.path.expanduser(target)).resolve()
    try:
        resolved.relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def external_references(h5file: Any) -> list[ExternalReference]:
    """Every external link, external raw file and virtual source in an open h5py file.

    Nothing is followed: links are read with ``getlink=True``, groups are entered through
    hard links only, and each object is visited once (by its address), so cyclic hard links
    end. Stops with a WorkbenchError after MAX_OBJECTS objects.
    """
    import h5py

    found: list[ExternalReference] = []
    seen: set[Any] = set()
    stack: list[tuple[str, Any]] = [("/", h5file)]
    count = 0
    while stack:
        name, group = stack.pop()
        for key in group:
            count += 1
            if count > MAX_OBJECTS:
                raise WorkbenchError(
                    f"{h5file.filename}: more than {MAX_OBJECTS} links; not checked further"
                )
            path = f"{name.rstrip('/')}/{key}"
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                found.append(ExternalReference("external link", path, str(link.filename)))
                continue
            if not isinstance(link, h5py.HardLink):
                continue  # a soft link names an object of this file, visited on its own
            obj = open_beside(group, key)  # group.get says None for one held with a prefix
            if obj is None:
                continue
            addr = h5py.h5o.get_info(obj.id).addr
            if addr in seen:
                continue
            seen.add(addr)
            if isinstance(obj, h5py.Group):
                stack.append((path, obj))
            elif isinstance(obj, h5py.Dataset):
                found.extend(_dataset_references(path, obj))
    return found


def _dataset_references(path: str, ds: Any) -> list[ExternalReference]:
    out: list[ExternalReference] = []
    dcpl = ds.id.get_create_plist()
    for i in range(dcpl.get_external_count()):
        name = dcpl.get_external(i)[0]
        out.append(ExternalReference("external raw storage", path, _decode(name)))
    if ds.is_virtual:
        for source in ds.virtual_sources():
            out.append(ExternalReference("virtual dataset", path, _decode(source.file_name)))
    return out


def _decode(name: Any) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def outside_folder(
    refs: list[ExternalReference], path: str | os.PathLike[str]
) -> list[ExternalReference]:
    """The references among ``refs`` that resolve outside the folder of the file ``path``."""
    folder = Path(path).resolve().parent
    return [r for r in refs if not _resolves_inside(folder, r.target)]


def check_external(h5file: Any, path: str | os.PathLike[str], *, allow: bool = False) -> None:
    """Refuse ``h5file`` if it refers to files outside its own folder, unless ``allow``.

    References that stay inside the folder the user chose (a data set split over a few files
    beside each other) are accepted: the user picked that folder, not the rest of the disk.
    """
    if allow:
        return
    outside = outside_folder(external_references(h5file), path)
    if outside:
        first = outside[0].describe()
        more = f" and {len(outside) - 1} more" if len(outside) > 1 else ""
        raise WorkbenchError(
            f"{path} refers to files outside its folder: {first}{more}; not followed (open "
            "it with external references allowed if you trust it)"
        )


def open_beside(parent: Any, name: str) -> Any:
    """``parent.get(name)``, except that a dataset whose bytes live in other files (external
    raw storage, a virtual dataset) is opened so that HDF5 looks for relative ones beside the
    file that holds it, where :func:`check_external` looked.

    By default the library resolves such a relative name against the current directory, so the
    file that was checked need not be the one read. ``${ORIGIN}`` (the folder of the HDF5
    file) as the dataset's access prefixes makes both agree. HDF5 allows one prefix per open
    dataset in a process: an open with another prefix fails (``get`` would even say None), it
    never reads elsewhere. So only those datasets get it (the writer's own, open in this
    process while an inspector follows the file, keep the default), and a dataset this process
    already holds with the prefix is opened with it again. Every reader of datasets that may
    be external, and every walk over them, opens them through here.
    """
    import h5py  # here, not at the top: the rest of this module runs without h5py

    try:
        obj = parent[name]
    except KeyError:
        try:  # held elsewhere in this process with the prefix, or missing
            return _open_prefixed(parent.id, name.encode())
        except (KeyError, OSError, ValueError, RuntimeError):
            return None
    if not isinstance(obj, h5py.Dataset) or not (obj.external or obj.is_virtual):
        return obj
    where = h5py.h5i.get_name(obj.id)
    file_id = h5py.h5i.get_file_id(obj.id)
    del obj  # the default-opened handle must be closed before the prefixed open
    return _open_prefixed(file_id, where)


def _open_prefixed(loc: Any, name: bytes) -> Any:
    import h5py

    dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
    dapl.set_efile_prefix(b"${ORIGIN}")
    dapl.set_virtual_prefix(b"${ORIGIN}")
    return h5py.Dataset(h5py.h5d.open(loc, name, dapl=dapl))


def ensure_inside(folder: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """``path`` (relative to ``folder`` unless absolute) resolved; refused if it leaves folder.

    For names that come from a config or a file and are written to: ``../../.bashrc``, an
    absolute path elsewhere, or a symlink out of the folder are all refused.
    """
    base = Path(folder).resolve()
    target = (base / Path(path).expanduser()).resolve()
    try:
        target.relative_to(base)
    except ValueError:
        raise WorkbenchError(
            f"{path} is outside the folder {base}; files are only written inside it"
        ) from None
    return target


# ---------------------------------------------------------------------------------------------
# the validating child
# ---------------------------------------------------------------------------------------------
# Run with ``python -c``: it imports h5py and numpy only (not torch, not the workbench), so it
# starts in a fraction of a second. It limits its own address space once imported, walks every
# object (hard links only, each once), reads every attribute and at most a few KiB of each
# dataset, and prints one JSON line.
_WALK = r"""
import json, resource, sys
import numpy as np
import h5py

def vm_size():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0

limit = vm_size() + int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
path, max_objects = sys.argv[1], int(sys.argv[3])
report = {"ok": True, "objects": 0, "external": []}
try:
    with h5py.File(path, "r", locking=False) as f:
        seen = set()
        stack = [("/", f)]
        for k in f.attrs:
            f.attrs.get(k)
        while stack:
            name, group = stack.pop()
            for key in group:
                report["objects"] += 1
                if report["objects"] > max_objects:
                    raise ValueError(f"more than {max_objects} objects")
                p = name.rstrip("/") + "/" + key
                link = group.get(key, getlink=True)
                if isinstance(link, h5py.ExternalLink):
                    report["external"].append(["external link", p, str(link.filename)])
                    continue
                if not isinstance(link, h5py.HardLink):
                    continue
                obj = group.get(key)
                if obj is None:
                    continue
                addr = h5py.h5o.get_info(obj.id).addr
                if addr in seen:
                    continue
                seen.add(addr)
                for k in obj.attrs:
                    try:
                        obj.attrs.get(k)
                    except (OSError, TypeError, ValueError):
                        pass  # an attribute h5py cannot map is not a crash
                if isinstance(obj, h5py.Group):
                    stack.append((p, obj))
                    continue
                dcpl = obj.id.get_create_plist()
                external = dcpl.get_external_count() > 0
                for i in range(dcpl.get_external_count()):
                    target = dcpl.get_external(i)[0]
                    report["external"].append(["external raw storage", p, target.decode()])
                if obj.is_virtual:
                    external = True
                    for s in obj.virtual_sources():
                        report["external"].append(["virtual dataset", p, str(s.file_name)])
                if external or obj.shape is None or obj.dtype.kind in "OV":
                    continue  # not read here: reading would follow the reference
                # one small corner of the dataset: enough to decode a chunk's filters
                corner = tuple(slice(0, min(n, 4)) for n in obj.shape)
                try:
                    obj[corner] if obj.shape else obj[()]
                except (OSError, TypeError, ValueError, RuntimeError):
                    pass  # a damaged chunk is the reader's clear error, not a crash
except MemoryError:
    report = {"ok": False, "memory": True, "error": "walking it needs more memory than allowed"}
except Exception as exc:
    report = {"ok": False, "error": " ".join(str(exc).split()) or type(exc).__name__}
print(json.dumps(report), flush=True)
"""


def validate_in_child(
    path: str | os.PathLike[str],
    timeout: float | None = None,
    *,
    memory_bytes: int = CHILD_MEMORY_BYTES,
) -> dict[str, Any]:
    """Open and walk ``path`` with h5py in a child process; its report, or a WorkbenchError.

    The child has ``timeout`` seconds (default VALIDATE_TIMEOUT_S) and ``memory_bytes`` of
    address space beyond its start.
    A crash (a signal), a hang or a runaway allocation in the HDF5 library is reported as a
    one-line WorkbenchError naming what happened; the calling process never touches the file.
    The report: ``ok`` (whether h5py could walk it; ``error`` says why not), ``objects``,
    ``external`` (a list of ExternalReference).
    """
    path = Path(path)
    timeout = VALIDATE_TIMEOUT_S if timeout is None else float(timeout)
    if not path.exists():
        raise WorkbenchError(f"no such file: {path}")
    if not path.is_file():
        raise WorkbenchError(f"{path} is not a regular file")
    # a file already walked, unchanged since (same inode, size and modification time), is not
    # walked again: re-opening a file in the inspector costs no second process
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, timeout, memory_bytes)
    if key in _VALIDATED:
        return dict(_VALIDATED[key])
    report = _validate(path, timeout, memory_bytes)
    _VALIDATED[key] = dict(report)
    while len(_VALIDATED) > _VALIDATED_MAX:
        _VALIDATED.pop(next(iter(_VALIDATED)))
    return report


# reports of files walked already (successful walks only), oldest first
_VALIDATED: dict[tuple[Any, ...], dict[str, Any]] = {}
_VALIDATED_MAX = 256


def _validate(path: Path, timeout: float, memory_bytes: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HDF5_")}
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", _WALK, str(path), str(memory_bytes), str(MAX_OBJECTS)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise WorkbenchError(
            f"{path}: checking the file took longer than {timeout:g} s (the HDF5 library may "
            "loop on it); not opened"
        ) from None
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        raise WorkbenchError(
            f"{path}: the HDF5 library crashed while checking it ({name}); the file is "
            "damaged or crafted, and was not opened"
        )
    lines = done.stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        report = None
    if done.returncode != 0 or not isinstance(report, dict):
        tail = " ".join(done.stderr.strip().splitlines()[-1:]) or f"exit status {done.returncode}"
        if "MemoryError" in done.stderr:
            tail = f"walking it needed more than {memory_bytes >> 20} MiB"
        raise WorkbenchError(f"{path}: could not be checked ({tail}); not opened")
    if report.get("memory"):
        raise WorkbenchError(
            f"{path}: walking its structure needed more than {memory_bytes >> 20} MiB (a "
            "crafted file, or damage that declares huge sizes); not opened"
        )
    report["external"] = [ExternalReference(*item) for item in report.get("external", [])]
    return report


# ---------------------------------------------------------------------------------------------
# the device running out of memory
# ---------------------------------------------------------------------------------------------
class OutOfMemoryError(WorkbenchError):
    """The GPU or the computer's own memory (RAM) ran out; ``key`` = ``value`` is the smaller
    setting to retry with.

    The message names the setting (``... try train.batch_size = 512 ...``), so a front end
    that only has the message (the GUI's worker passes text) can still offer the retry:
    :meth:`suggestion` reads it back.
    """

    def __init__(self, message: str, key: str | None = None, value: int | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.value = value

    @classmethod
    def while_doing(
        cls, what: str, key: str, current: int, kept: str, *, where: str = "the GPU"
    ) -> OutOfMemoryError:
        """The error for running out of memory while ``what`` with ``key`` = ``current``;
        ``where``: whose memory (``the GPU``, or :data:`RAM` for the computer's own)."""
        if current <= 1:
            instead = "the CPU" if where == "the GPU" else "a machine with more memory"
            return cls(
                f"{where} ran out of memory while {what}, even with {key} = 1; use a smaller "
                f"model (model.hidden) or {instead} ({kept})"
            )
        return cls.trying(what, key, current, max(1, current // 2), kept, where=where)

    @classmethod
    def trying(
        cls, what: str, key: str, current: int, smaller: int, kept: str, *, where: str
    ) -> OutOfMemoryError:
        """The error that suggests ``key`` = ``smaller`` (below ``current``)."""
        return cls(
            f"{where} ran out of memory while {what} with {key} = {current}; try {key} = "
            f"{smaller} ({kept})",
            key,
            smaller,
        )

    @staticmethod
    def suggestion(message: str) -> tuple[str, int] | None:
        """The (key, value) such an error's message suggests; None for any other message."""
        found = re.search(r"ran out of memory .* try ([a-z_]+\.[a-z_]+) = (\d+)", message)
        return None if found is None else (found.group(1), int(found.group(2)))


#: the old name, from when only the GPU's memory was handled
DeviceOutOfMemoryError = OutOfMemoryError

#: how the computer's own memory is named in messages
RAM = "the computer"

# torch's CPU allocator failing (Linux and macOS say "can't allocate memory", Windows "not
# enough memory"), and the C library's ENOMEM text
_CPU_OOM_TEXT = re.compile(
    r"DefaultCPUAllocator: (can't allocate memory|not enough memory)|Cannot allocate memory"
)


def out_of_memory_where(exc: BaseException) -> str | None:
    """``"the GPU"`` or :data:`RAM` if ``exc`` says that memory ran out; None otherwise.

    The GPU: torch's OutOfMemoryError (CUDA's, or its generic one). The computer's memory:
    MemoryError (numpy's ``_ArrayMemoryError`` is one) and the RuntimeError torch's CPU
    allocator raises ("DefaultCPUAllocator: can't allocate memory ..."), also under an
    address-space limit (``ulimit -v``).
    """
    if isinstance(exc, MemoryError):
        return RAM
    if isinstance(exc, OSError) and exc.errno == 12:  # ENOMEM
        return RAM
    import torch

    types = tuple(
        t
        for t in (getattr(torch, "OutOfMemoryError", None), torch.cuda.OutOfMemoryError)
        if isinstance(t, type)
    )
    if types and isinstance(exc, types):
        return "the GPU"
    if isinstance(exc, RuntimeError) and _CPU_OOM_TEXT.search(str(exc)):
        return RAM
    return None


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says the GPU's or the computer's memory ran out."""
    return out_of_memory_where(exc) is not None


def release_device_memory() -> None:
    """Give cached blocks back to the driver after an out-of-memory error, so the app (and the
    retry it offers) starts from what is really free."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
