"""Export samples from a trajectory file to npy, npz, csv, h5 or a png grid of images.

By default the final samples (``/samples``, data units) are exported; ``step`` or ``time`` picks
a recorded row of the trajectory instead (x in model units, mapped back to data units unless
``denormalise=False``, which exports model units in either case). Vectors are written as
(n, d); images (sample shape (c, h, w)) keep their shape, (n, c, h, w), except in CSV, which
always holds one flattened sample per line under the header ``x1,...,xd``.

Every export is written in blocks (so a big one needs little memory and can report progress)
to a temporary file beside the target, flushed to disk, then renamed over it: a failure leaves
the old file, if any, untouched and no temporary behind. An existing file is replaced only
with ``force``, and only if it is a regular file (:mod:`workbench.io.paths`).

A file whose sampler was stopped (root attribute ``complete`` false) has no final samples:
exporting it needs an explicit row (``step``/``time``). Every export reports which samples it
wrote (:class:`ExportResult`: the row, its solver step and time t).

The PNG encoder is a few lines of ``struct`` + ``zlib`` (8-bit grey, RGB or RGBA, filter 0), so
``io`` needs no imaging library and no Qt.
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import struct
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import h5py
import numpy as np
import torch

from workbench.errors import WorkbenchError, one_line
from workbench.io.paths import check_destination, replace_into
from workbench.io.trajectories import TrajectoryFile

__all__ = [
    "FORMATS",
    "PNG_MAX_IMAGES",
    "ExportResult",
    "export_samples",
    "format_for",
    "png_bytes",
    "run_export",
]

FORMATS = ("npy", "npz", "csv", "h5", "png")
_EXTENSIONS = {
    ".npy": "npy",
    ".npz": "npz",
    ".csv": "csv",
    ".h5": "h5",
    ".hdf5": "h5",
    ".png": "png",
}
SAMPLES_FORMAT = "sde-workbench/samples"
# A png grid shows this many images unless n says otherwise, and never more than the maximum
# (a 32 x 32 grid of 28 x 28 digits is already ~1000 pixels wide).
PNG_DEFAULT_IMAGES = 64
PNG_MAX_IMAGES = 1024
_PNG_PAD = 2
_PNG_PAD_VALUE = 128
# Bytes of float32 samples read and written per block.
_BLOCK_BYTES = 16 * 1024 * 1024


def format_for(out: str | os.PathLike[str], fmt: str | None = None) -> str:
    """The export format: ``fmt`` if given, else from the extension of ``out``."""
    choices = ", ".join(FORMATS)
    if fmt is not None:
        name = str(fmt).lower().lstrip(".")
        name = "h5" if name == "hdf5" else name
        if name not in FORMATS:
            raise WorkbenchError(f"unknown export format {fmt!r}; choose one of {choices}")
        return name
    suffix = Path(out).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise WorkbenchError(
            f"cannot tell the export format from {Path(out).name!r}; give a file name ending "
            f"in .npy, .npz, .csv, .h5 or .png, or a format: one of {choices}"
        )
    return _EXTENSIONS[suffix]


# ---------------------------------------------------------------------------------------------
# writing files atomically
# ---------------------------------------------------------------------------------------------
#: a temporary untouched this long belongs to an export that was killed (a live one writes)
STALE_TEMPORARY_S = 3600.0


def _remove_stale_temporaries(out: Path) -> None:
    """Delete what killed exports to ``out`` left behind (``.NAME.*.tmp``, untouched an hour)."""
    now = time.time()
    for tmp in out.parent.glob(f".{glob.escape(out.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            if tmp.is_file() and now - tmp.stat().st_mtime > STALE_TEMPORARY_S:
                tmp.unlink()


@contextmanager
def _atomic(out: Path, force: bool) -> Iterator[Path]:
    """A temporary path beside ``out``; moved to ``out`` only if the block succeeds.

    The move re-checks the destination (:func:`~workbench.io.paths.replace_into`): only a
    regular file is replaced, and only with ``force``. Whatever ends the block (an error, a
    KeyboardInterrupt from Ctrl-C or SIGTERM) deletes the temporary.
    """
    existed = out.is_file()
    tmp: Path | None = None
    try:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            _remove_stale_temporaries(out)
            fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
            tmp = Path(name)
            os.close(fd)
        except OSError as exc:
            raise WorkbenchError(f"cannot write {out}: {one_line(exc.strerror or exc)}") from None
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        # mkstemp makes the file private (0600); an export is an ordinary document
        os.chmod(tmp, out.stat().st_mode & 0o777 if out.is_file() else 0o644)
        replace_into(tmp, out, force)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        kept = "the old file is unchanged" if existed else "nothing was written"
        raise WorkbenchError(
            f"could not write {out}: {one_line(exc.strerror or exc)}; {kept}"
        ) from None
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------
# PNG
# ---------------------------------------------------------------------------------------------
def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_bytes(pixels: np.ndarray) -> bytes:
    """An 8-bit PNG of ``pixels``: uint8 (h, w) grey, (h, w, 3) RGB or (h, w, 4) RGBA."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    h, w, c = pixels.shape
    colour = {1: 0, 3: 2, 4: 6}.get(c)
    if colour is None or h < 1 or w < 1:
        raise ValueError(f"PNG pixels must be (h, w) or (h, w, 1|3|4), got {pixels.shape}")
    # each scanline starts with its filter type; 0 (none) keeps the encoder trivial
    raw = np.concatenate([np.zeros((h, 1), np.uint8), pixels.reshape(h, w * c)], axis=1)
    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + _png_chunk(b"IEND", b"")
    )


def _image_layout(sample_shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """(channels, height, width) when samples are images PNG can show, else None."""
    if len(sample_shape) == 2:
        return (1, *sample_shape)
    if len(sample_shape) == 3 and sample_shape[0] in (1, 3, 4):
        c, h, w = sample_shape
        return c, h, w
    return None


def _grid(images: np.ndarray, low: float, high: float) -> np.ndarray:
    """Images (k, c, h, w) scaled from [low, high] to 0..255 and tiled in a near-square grid."""
    k, c, h, w = images.shape
    span = high - low if high > low else 1.0
    scaled = np.nan_to_num((images.astype(np.float64) - low) / span, nan=0.0)
    pixels = np.rint(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)
    cols = math.ceil(math.sqrt(k))
    rows = math.ceil(k / cols)
    p = _PNG_PAD
    canvas = np.full((rows * (h + p) + p, cols * (w + p) + p, c), _PNG_PAD_VALUE, np.uint8)
    for i in range(k):
        r, q = divmod(i, cols)
        top, left = p + r * (h + p), p + q * (w + p)
        canvas[top : top + h, left : left + w] = pixels[i].transpose(1, 2, 0)
    return canvas


# ---------------------------------------------------------------------------------------------
# the export
# ---------------------------------------------------------------------------------------------
def _write_npy_stream(fh: IO[bytes], shape: tuple[int, ...], blocks: Iterator[np.ndarray]) -> None:
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype("<f4")),
        "fortran_order": False,
        "shape": shape,
    }
    np.lib.format.write_array_header_2_0(fh, header)
    for block in blocks:
        fh.write(np.ascontiguousarray(block, dtype="<f4").tobytes())


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: ``count`` samples of ``row`` (None: the final samples) to ``path``.

    ``step`` and ``t`` locate the samples on the solver's path (the final samples carry the
    time of the last recorded row, None when the file records no rows).
    """

    path: Path
    count: int
    row: int | None
    step: int | None
    t: float | None
    units: str  # "data" | "model"

    def describe(self) -> str:
        """One line: ``wrote 10000 samples (final samples, t=0.001) to x.csv``."""
        if self.row is None:
            where = "final samples" + ("" if self.t is None else f", t={self.t:.6g}")
        else:
            where = f"row {self.row}, step {self.step}, t={self.t:.6g}"
        units = ", model units" if self.units == "model" else ""
        return f"wrote {self.count} samples ({where}{units}) to {self.path}"


def export_samples(
    source: str | os.PathLike[str] | TrajectoryFile,
    out: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    step: int | None = None,
    time: float | None = None,
    n: int | None = None,
    denormalise: bool = True,
    force: bool = False,
    progress: Callable[[float], None] | None = None,
) -> Path:
    """Export samples from the trajectory file ``source`` to ``out``; returns ``out``.

    The same as :func:`run_export` (which see), for callers that only need the path.
    """
    return run_export(
        source,
        out,
        fmt=fmt,
        step=step,
        time=time,
        n=n,
        denormalise=denormalise,
        force=force,
        progress=progress,
    ).path


def run_export(
    source: str | os.PathLike[str] | TrajectoryFile,
    out: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    step: int | None = None,
    time: float | None = None,
    n: int | None = None,
    denormalise: bool = True,
    force: bool = False,
    progress: Callable[[float], None] | None = None,
) -> ExportResult:
    """Export samples from the trajectory file ``source`` to ``out``; what was written.

    ``fmt``: npy | npz | csv | h5 | png (default: from out's extension). ``step`` (a recorded
    solver step) or ``time`` (the nearest recorded time) selects a trajectory row instead of
    the final samples. ``n``: the first n samples only (png: 64 images unless given, at most
    PNG_MAX_IMAGES). ``denormalise=False`` exports model units. ``progress`` is called with the
    fraction done after each block. Errors are one-line WorkbenchErrors.

    A file whose sampler stopped early (``complete`` false) has no final samples: its last row
    is an intermediate, still noisy state, so without ``step``/``time`` it is refused rather
    than passed off as the samples. ``out`` may only be a new name or, with ``force``, a
    regular file (see :func:`~workbench.io.paths.check_destination`).
    """
    if step is not None and time is not None:
        raise WorkbenchError("choose a row by --step or by --time, not both")
    out = check_destination(out, force)
    kind = format_for(out, fmt)
    owned = not isinstance(source, TrajectoryFile)
    tf = source if isinstance(source, TrajectoryFile) else TrajectoryFile(source)
    try:
        if out.exists() and os.path.samefile(out, tf.path):
            raise WorkbenchError(f"{out} is the trajectory file being exported from")
        if step is None and time is None and not tf.complete:
            raise WorkbenchError(_incomplete_message(tf))
        return _export(tf, out, kind, step, time, n, denormalise, progress, force)
    finally:
        if owned:
            tf.close()


def _incomplete_message(tf: TrajectoryFile) -> str:
    """Why an incomplete file has no final samples, and how to export one of its rows."""
    if tf.n_saved == 0:
        return (
            f"{tf.path} is incomplete (its sampler stopped before writing a row): nothing to export"
        )
    steps, times = tf.steps, tf.times
    last = tf.n_saved - 1
    return (
        f"{tf.path} is incomplete (sampling stopped after row {last}, step {int(steps[last])}, "
        f"t={float(times[last]):.6g}), so it has no final samples; export a recorded row "
        f"instead: --step K (0 to {int(steps[last])}) or --time T"
    )


def _export(
    tf: TrajectoryFile,
    out: Path,
    kind: str,
    step: int | None,
    time: float | None,
    n: int | None,
    denormalise: bool,
    progress: Callable[[float], None] | None,
    force: bool = False,
) -> ExportResult:
    row: int | None = None
    if step is not None:
        row = tf.index_of_step(step)
    elif time is not None:
        row = tf.index_of_time(time)
    total, shape, dim = tf.n_samples, tf.sample_shape, tf.dim
    layout = _image_layout(shape)
    if kind == "png" and layout is None:
        raise WorkbenchError(
            f"png export needs image samples (sample shape (c, h, w)); {tf.path} holds vectors "
            f"of shape {shape}: use npy, npz, csv or h5"
        )
    limit = PNG_MAX_IMAGES if kind == "png" else total
    if n is None:
        count = min(total, PNG_DEFAULT_IMAGES) if kind == "png" else total
    else:
        count = int(n)
        if not 1 <= count <= min(total, limit):
            what = "images in a png" if kind == "png" and limit < total else "samples"
            raise WorkbenchError(f"n = {n} is out of range: choose 1 to {min(total, limit)} {what}")
    normalizer = tf.normalizer

    def read(a: int, b: int) -> np.ndarray:
        part = slice(a, b)
        if row is not None:
            return tf.row(row, denormalise=denormalise, particles=part)
        x = tf.samples(particles=part)
        if denormalise or normalizer is None:
            return x
        return normalizer.to_model(torch.from_numpy(x).to(torch.float64)).float().numpy()

    block = max(1, _BLOCK_BYTES // (4 * dim))
    starts = range(0, count, block)

    def blocks() -> Iterator[np.ndarray]:
        for a in starts:
            b = min(a + block, count)
            yield read(a, b)
            if progress is not None:
                progress(b / count)

    out_shape = (count, *shape)
    with _atomic(out, force) as tmp:
        if kind == "npy":
            with open(tmp, "wb") as raw:
                _write_npy_stream(raw, out_shape, blocks())
        elif kind == "npz":
            with (
                zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf,
                zf.open("samples.npy", "w", force_zip64=True) as member,
            ):
                _write_npy_stream(member, out_shape, blocks())
        elif kind == "csv":
            with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(",".join(f"x{i + 1}" for i in range(dim)) + "\n")
                for values in blocks():
                    # 9 significant digits read back to the identical float32
                    np.savetxt(fh, values, fmt="%.9g", delimiter=",")
        elif kind == "h5":
            _write_h5(tmp, tf, out_shape, blocks(), row, denormalise, block)
        else:
            assert layout is not None  # png without an image layout was refused above
            images = np.concatenate(list(blocks())).reshape(count, *layout)
            low, high = _pixel_range(images, normalizer, denormalise)
            tmp.write_bytes(png_bytes(_grid(images, low, high)))
    n_rows = tf.n_saved
    at = row if row is not None else (n_rows - 1 if n_rows else None)
    return ExportResult(
        path=out,
        count=count,
        row=row,
        step=None if at is None else int(tf.steps[at]),
        t=None if at is None else float(tf.times[at]),
        units="data" if denormalise else "model",
    )


def _pixel_range(images: np.ndarray, normalizer: Any, denormalise: bool) -> tuple[float, float]:
    """The values shown as black and white in a png.

    Data normalised by "minmax" has a known range (model units [-1, 1]); anything else is
    stretched over the finite range of the images shown.
    """
    if normalizer is not None and normalizer.mode == "minmax":
        if not denormalise:
            return -1.0, 1.0
        low = normalizer.shift - normalizer.scale
        high = normalizer.shift + normalizer.scale
        return float(low.min()), float(high.max())
    finite = images[np.isfinite(images)]
    if finite.size == 0:
        return 0.0, 1.0
    return float(finite.min()), float(finite.max())


def _write_h5(
    tmp: Path,
    tf: TrajectoryFile,
    shape: tuple[int, ...],
    blocks: Iterator[np.ndarray],
    row: int | None,
    denormalise: bool,
    block: int,
) -> None:
    with h5py.File(tmp, "w", libver=("earliest", "v110")) as f:
        f.attrs["format"] = SAMPLES_FORMAT
        f.attrs["format_version"] = np.int64(1)
        f.attrs["source"] = str(tf.path)
        f.attrs["units"] = "data" if denormalise else "model"
        if row is None:
            f.attrs["selection"] = "final samples"
        else:
            f.attrs["selection"] = "trajectory row"
            f.attrs["step"] = np.int64(tf.steps[row])
            f.attrs["t"] = np.float64(tf.times[row])
        f.attrs["sample_shape"] = np.asarray(shape[1:], dtype=np.int64)
        ds = f.create_dataset(
            "samples",
            shape=shape,
            dtype=np.float32,
            chunks=(min(shape[0], max(1, block // 16)), *shape[1:]),
            compression="gzip",
            compression_opts=4,
            shuffle=True,
        )
        start = 0
        for values in blocks:
            ds[start : start + len(values)] = values.reshape(len(values), *shape[1:])
            start += len(values)
