"""Damaged and hostile files, made deterministically from a seed.

Six kinds: ``trajectory`` (our HDF5 trajectory files), ``foreign`` (HDF5 files that are not
ours, and files that are not HDF5 at all, named .h5), ``checkpoint`` (a run folder's
checkpoint.pt), ``config`` (an experiment .toml), ``data`` (a ``file`` data set's .npy, .npz,
.csv or .h5) and ``metrics`` (a run folder's metrics.csv). Special files (a FIFO,
``/dev/zero``, a directory) stand in for configs, data files and metrics.csv. Each kind has
byte-level mutations of a real file (bit flips, truncation, overwritten, zeroed, deleted or
repeated blocks) and structural ones built with h5py / torch / text edits (wrong dtypes, huge
declared shapes, cyclic and external links, external raw storage, virtual datasets, pickled
code, hostile values, values that overflow). ``make_cases(folder, seed, n_random)`` writes
every structural case and ``n_random`` byte mutations per kind, and returns the list of cases.
"""

from __future__ import annotations

import os
import pickle
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from workbench.config import default_config, to_toml
from workbench.io.trajectories import TrajectoryWriter
from workbench.jobs.train import train_in_folder


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # trajectory | foreign | checkpoint | config
    path: str
    how: str  # what was done to the file


# --- the real files the mutations start from -----------------------------------------------
def tiny_config():
    return default_config().with_overrides(
        {
            "data.n": 256,
            "model.hidden": 8,
            "model.depth": 1,
            "model.embed_dim": 4,
            "train.steps": 2,
            "train.batch_size": 16,
            "train.device": "cpu",
            "train.log_every": 1,
            "sample.n": 8,
            "sample.steps": 2,
        }
    )


def write_trajectory(path: Path, *, image: bool = False) -> Path:
    shape = (1, 3, 3) if image else (2,)
    dim = int(np.prod(shape))
    rng = np.random.default_rng(0)
    with TrajectoryWriter(
        path, n_samples=6, sample_shape=shape, config_toml=to_toml(tiny_config()), sampler="em"
    ) as w:
        for k in range(4):
            w.append(k, 1.0 - k / 4, rng.standard_normal((6, dim)).astype(np.float32))
        w.close(samples=rng.standard_normal((6, dim)), nfe=4, logp=rng.standard_normal(6))
    return path


def make_run(folder: Path) -> Path:
    train_in_folder(tiny_config(), folder)
    return folder


# --- byte mutations ----------------------------------------------------------------------------
def _mutate_bytes(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    buf = bytearray(data)
    n = len(buf)
    op = rng.integers(7)
    # half the edits land in the first 4 KiB, where an HDF5 file keeps its superblock, root
    # group and most metadata, and a zip its local headers
    hot = int(min(n, 4096))
    at = int(rng.integers(hot if rng.random() < 0.5 else n))
    if op == 0:
        flips = int(rng.integers(1, 9))
        for _ in range(flips):
            i = int(rng.integers(hot if rng.random() < 0.5 else n))
            buf[i] ^= 1 << int(rng.integers(8))
        return bytes(buf), f"{flips} bit flips"
    if op == 1:
        keep = int(rng.integers(n))
        return bytes(buf[:keep]), f"truncated to {keep} of {n} bytes"
    size = int(rng.integers(1, 65))
    if op == 2:
        buf[at : at + size] = rng.integers(
            0, 256, size=len(buf[at : at + size]), dtype=np.uint8
        ).tobytes()
        return bytes(buf), f"{size} random bytes at {at}"
    if op == 3:
        buf[at : at + size] = bytes(len(buf[at : at + size]))
        return bytes(buf), f"{size} zero bytes at {at}"
    if op == 4:
        del buf[at : at + size]
        return bytes(buf), f"{size} bytes deleted at {at}"
    if op == 5:
        buf[at:at] = buf[at : at + size]
        return bytes(buf), f"{size} bytes repeated at {at}"
    # a plausible large integer written over 8 bytes: declared sizes and offsets go huge
    big = [2**31 - 1, 2**32, 2**40, 2**63 - 1, 2**64 - 1][int(rng.integers(5))]
    buf[at : at + 8] = big.to_bytes(8, "little")[: len(buf[at : at + 8])]
    return bytes(buf), f"integer {big} at {at}"


def _mutate_text(text: str, rng: np.random.Generator) -> tuple[str, str]:
    lines = text.splitlines()
    op = rng.integers(6)
    i = int(rng.integers(len(lines)))
    if op == 0:
        data, how = _mutate_bytes(text.encode(), rng)
        return data.decode("utf-8", "replace"), how
    if op == 1:
        del lines[i]
        return "\n".join(lines), f"line {i} deleted"
    if op == 2:
        lines.insert(i, lines[i])
        return "\n".join(lines), f"line {i} repeated"
    if op == 3 and "=" in lines[i]:
        key = lines[i].split("=")[0]
        value = str(rng.choice(HOSTILE_VALUES))
        lines[i] = f"{key}= {value}"
        return "\n".join(lines), f"line {i} set to {value[:40]!r}"
    if op == 4:
        cut = int(rng.integers(len(text)))
        return text[:cut], f"truncated to {cut} characters"
    key = str(rng.choice(["zzz", "steps", "kind", "name", "n", "path", "a", "g"]))
    lines.insert(i, f"{key} = {rng.choice(HOSTILE_VALUES)}")
    return "\n".join(lines), f"key {key} inserted at line {i}"


HOSTILE_VALUES = [
    "-1",
    "0",
    "1e999",
    "nan",
    "inf",
    "-inf",
    "9223372036854775807",
    "99999999999999999999999999",
    "true",
    '""',
    "\"__import__('os').system('touch /tmp/pwned')\"",
    '"exp(exp(exp(exp(exp(t)))))"',
    '"' + "(" * 500 + "t" + ")" * 500 + '"',
    '"t' + "+t" * 5000 + '"',
    "[" * 200 + "]" * 200,
    "{a = 1}",
    '"../../../../etc/passwd"',
    '"/dev/zero"',
    '"' + "x" * 100_000 + '"',
    "[1, 2, 3]",
    '"\\u0000"',
]


# --- structural HDF5 cases ----------------------------------------------------------------------
def _edit(base: Path, out: Path, fn: Callable[[h5py.File], None]) -> None:
    shutil.copyfile(base, out)
    with h5py.File(out, "r+") as f:
        fn(f)


def _replace(f: h5py.File, name: str, **kwargs) -> None:
    del f[name]
    f.create_dataset(name, **kwargs)


def _attr(name: str, value, where: str = "/"):
    def fn(f: h5py.File) -> None:
        f[where].attrs[name] = value

    return fn


def _structural_h5(folder: Path, base: Path, image: Path) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    other = folder / "elsewhere"
    other.mkdir(exist_ok=True)
    outside = other / "outside.h5"
    with h5py.File(outside, "w") as f:
        f["x"] = np.zeros((4, 6, 2), np.float32)
        f["d"] = np.zeros(4)

    def case(name: str, fn: Callable[[h5py.File], None], src: Path = base) -> None:
        sub = folder / "h5" / name
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / "case.h5"
        _edit(src, path, fn)
        out.append((name, path))

    huge = (2**31, 2**20, 2)
    cases: dict[str, Callable[[h5py.File], None]] = {
        "x_int8": lambda f: _replace(f, "trajectories/x", data=np.ones((4, 6, 2), np.int8)),
        "x_strings": lambda f: _replace(
            f, "trajectories/x", data=np.array([[["a", "b"]] * 6] * 4, dtype="S1")
        ),
        "x_compound": lambda f: _replace(
            f, "trajectories/x", data=np.zeros((4, 6, 2), dtype=[("a", "i4"), ("b", "f8")])
        ),
        "x_2d": lambda f: _replace(f, "trajectories/x", data=np.zeros((4, 12), np.float32)),
        "x_scalar": lambda f: _replace(f, "trajectories/x", data=np.float32(1)),
        "x_huge_declared": lambda f: _replace(
            f, "trajectories/x", shape=huge, dtype=np.float32, chunks=(1, 1024, 2)
        ),
        "x_huge_rows_t_step": lambda f: (
            _replace(f, "trajectories/x", shape=(2**40, 6, 2), dtype=np.float32, chunks=(64, 6, 2)),
            _replace(f, "trajectories/t", shape=(2**40,), dtype=np.float64, chunks=(512,)),
            _replace(f, "trajectories/step", shape=(2**40,), dtype=np.int64, chunks=(512,)),
        ),
        "samples_huge": lambda f: _replace(
            f, "samples", shape=(2**40, 2), dtype=np.float32, chunks=(1024, 2)
        ),
        "samples_strings": lambda f: _replace(
            f, "samples", data=np.array([b"ab"] * 12).reshape(6, 2)
        ),
        "logp_strings": lambda f: _replace(f, "logp", data=np.array([b"x"] * 6)),
        "t_strings": lambda f: _replace(f, "trajectories/t", data=np.array([b"t"] * 4)),
        "t_2d": lambda f: _replace(f, "trajectories/t", data=np.zeros((4, 2))),
        "step_floats": lambda f: _replace(f, "trajectories/step", data=np.full(4, 0.5)),
        "t_nan": lambda f: _replace(f, "trajectories/t", data=np.full(4, np.nan)),
        "x_inf": lambda f: _replace(f, "trajectories/x", data=np.full((4, 6, 2), np.inf, "f4")),
        "version_string": _attr("format_version", "one"),
        "version_huge": _attr("format_version", np.int64(2**62)),
        "version_bool": _attr("format_version", np.bool_(True)),
        "version_float": _attr("format_version", 1.5),
        "version_array": _attr("format_version", np.arange(3)),
        "complete_string": _attr("complete", "yes"),
        "format_bytes_garbage": _attr("format", np.void(b"\x00\xff" * 8)),
        "sample_shape_huge": _attr("sample_shape", np.array([2**62, 2**62]), "trajectories"),
        "sample_shape_negative": _attr("sample_shape", np.array([-2, -1]), "trajectories"),
        "sample_shape_empty": _attr("sample_shape", np.zeros(0, np.int64), "trajectories"),
        "sample_shape_float": _attr("sample_shape", np.array([0.5, 4.0]), "trajectories"),
        "shift_wrong_shape": _attr("shift", np.zeros(7), "trajectories"),
        "scale_zero": _attr("scale", np.zeros(2), "trajectories"),
        "scale_strings": _attr("scale", np.array([b"a", b"b"]), "trajectories"),
        "mode_unknown": _attr("mode", "rot13", "trajectories"),
        "nfe_string": _attr("nfe", "many", "trajectories"),
        "config_binary": _attr("experiment", np.void(b"\x00\x01\x02"), "config"),
        "config_hostile": _attr(
            "experiment",
            "[sde]\nkind = \"linear\"\na = \"__import__('os').system('true')\"\n",
            "config",
        ),
        "config_huge_text": _attr("experiment", "# " + "x" * 1_000_000, "config"),
        "no_trajectories": lambda f: f.__delitem__("trajectories"),
        "trajectories_dataset": lambda f: (
            f.__delitem__("trajectories"),
            f.create_dataset("trajectories", data=np.zeros(3)),
        ),
        "x_missing": lambda f: f.__delitem__("trajectories/x"),
        "cycle_hard": lambda f: f["trajectories"].__setitem__("loop", f["/"]),
        "cycle_soft": lambda f: (
            f.__setitem__("a", h5py.SoftLink("/b")),
            f.__setitem__("b", h5py.SoftLink("/a")),
        ),
        "trajectories_soft_self": lambda f: (
            f.__delitem__("trajectories"),
            f.__setitem__("trajectories", h5py.SoftLink("/trajectories")),
        ),
        "x_soft_dangling": lambda f: (
            f.__delitem__("trajectories/x"),
            f["trajectories"].__setitem__("x", h5py.SoftLink("/nowhere")),
        ),
        "external_link_group": lambda f: (
            f.__delitem__("trajectories"),
            f.__setitem__("trajectories", h5py.ExternalLink(str(outside), "/")),
        ),
        "external_link_x_relative": lambda f: (
            f.__delitem__("trajectories/x"),
            f["trajectories"].__setitem__(
                "x", h5py.ExternalLink("../../elsewhere/outside.h5", "/x")
            ),
        ),
        "external_link_self_loop": lambda f: f.__setitem__(
            "loop", h5py.ExternalLink("case.h5", "/loop")
        ),
        "external_link_missing": lambda f: f.__setitem__(
            "gone", h5py.ExternalLink("/nonexistent/file.h5", "/x")
        ),
        "external_raw_passwd": lambda f: _replace(
            f, "trajectories/x", shape=(4, 6, 2), dtype="f4", external=[("/etc/passwd", 0, 192)]
        ),
        "external_raw_relative": lambda f: _replace(
            f, "samples", shape=(6, 2), dtype="f4", external=[("../../../../etc/hostname", 0, 48)]
        ),
        "virtual_outside": lambda f: _virtual(f, "trajectories/x", str(outside), "x", (4, 6, 2)),
        "virtual_self": lambda f: _virtual(f, "samples", ".", "trajectories/x", (6, 2)),
        "unknown_filter": lambda f: _replace(
            f,
            "trajectories/x",
            shape=(4, 6, 2),
            dtype="f4",
            chunks=(1, 6, 2),
            compression=32001,  # blosc: registered with HDF5, not built in
            allow_unknown_filter=True,
        ),
        "deep_groups": _deep_groups,
        "many_attributes": lambda f: [f.attrs.__setitem__(f"a{i}", i) for i in range(2000)],
    }
    for name, fn in cases.items():
        case(name, fn)
    case("image_scale_wrong", _attr("scale", np.ones(4), "trajectories"), image)
    case("image_nan", lambda f: _replace(f, "samples", data=np.full((6, 9), np.nan, "f4")), image)
    return out


def _virtual(f: h5py.File, name: str, file: str, source: str, shape: tuple[int, ...]) -> None:
    layout = h5py.VirtualLayout(shape=shape, dtype="f4")
    layout[...] = h5py.VirtualSource(file, source, shape=shape)
    del f[name]
    f.create_virtual_dataset(name, layout, fillvalue=0)


def _deep_groups(f: h5py.File) -> None:
    g = f["/"]
    for i in range(300):
        g = g.create_group(f"g{i}")


def _foreign(folder: Path, base: Path, checkpoint: Path) -> list[tuple[str, Path]]:
    out = []

    def put(name: str, data: bytes | None = None) -> Path:
        sub = folder / "foreign" / name
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / "file.h5"
        if data is not None:
            path.write_bytes(data)
        out.append((name, path))
        return path

    put("empty", b"")
    put("text", b"this is not an HDF5 file\n" * 10)
    put("png", b"\x89PNG\r\n\x1a\n" + bytes(100))
    put("zip_checkpoint", checkpoint.read_bytes())
    put("hdf5_signature_only", b"\x89HDF\r\n\x1a\n" + bytes(56))
    put("hdf5_signature_then_garbage", b"\x89HDF\r\n\x1a\n" + os.urandom(4096))
    put("signature_at_512", bytes(512) + base.read_bytes())  # a user block of zeros
    put("null_bytes", bytes(1 << 16))
    d = put("directory")
    d.mkdir()
    fifo = put("fifo")
    os.mkfifo(fifo)
    link = put("symlink_loop")
    os.symlink(link.name, link)
    zero = put("symlink_dev_zero")
    os.symlink("/dev/zero", zero)
    dangling = put("symlink_dangling")
    os.symlink("/nonexistent/x.h5", dangling)
    plain = put("foreign_hdf5")
    with h5py.File(plain, "w") as f:
        f["data"] = np.arange(10)
        f["group/strings"] = np.array([b"a", b"b"])
        f["group"].attrs["note"] = "not ours"
        f["vlen"] = h5py.Empty("f4")
        f.create_dataset("huge_declared", shape=(2**50,), dtype="f8", chunks=(1024,))
        f["ext"] = h5py.ExternalLink("/etc/hostname", "/")
    return out


# --- data files and metrics.csv ------------------------------------------------------------------
def _special(path: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        os.symlink("/dev/zero", path)
    else:
        path.mkdir()


def _npy_header(shape: tuple[int, ...]) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def _data_files(folder: Path) -> list[tuple[str, Path]]:
    """Hostile data files, each alone in a folder of its own."""
    out: list[tuple[str, Path]] = []

    def put(name: str, filename: str) -> Path:
        sub = folder / "data" / name
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / filename
        out.append((name, path))
        return path

    for kind in ("fifo", "dev_zero", "directory"):
        for suffix in (".npy", ".csv", ".h5"):
            _special(put(f"{kind}{suffix}", f"points{suffix}"), kind)
    put("huge_header_npy", "points.npy").write_bytes(_npy_header((10**12, 2)) + bytes(64))
    with zipfile.ZipFile(put("huge_header_npz", "points.npz"), "w") as z:
        z.writestr("x.npy", _npy_header((10**12, 2)) + bytes(64))
    with h5py.File(put("huge_h5", "points.h5"), "w") as f:
        f.create_dataset("x", shape=(2**40, 2), dtype="f8", chunks=(1024, 2))
    with h5py.File(put("external_raw_passwd", "points.h5"), "w") as f:
        f.create_dataset("x", shape=(8, 2), dtype="u1", external=[("/etc/passwd", 0, 16)])
    with h5py.File(put("external_link", "points.h5"), "w") as f:
        f["x"] = h5py.ExternalLink("/etc/hostname", "/x")
    np.save(put("overflow_npy", "points.npy"), np.array([[1.0, 2.0], [1e308, -1e308]]))
    put("overflow_csv", "points.csv").write_text("x,y\n1,2\n3,1e300\n")
    with h5py.File(put("strings_h5", "points.h5"), "w") as f:
        f["x"] = np.array([b"a", b"b"])
    return out


def _data_mutations(folder: Path, rng: np.random.Generator, i: int) -> tuple[Path, str]:
    """A valid data file of one of the four formats, with its bytes mutated."""
    points = rng.standard_normal((64, 2))
    base = folder / "data_base"
    base.mkdir(exist_ok=True)
    suffix = (".npy", ".npz", ".csv", ".h5")[i % 4]
    src = base / f"points{suffix}"
    if not src.exists():
        if suffix == ".npy":
            np.save(src, points)
        elif suffix == ".npz":
            np.savez(src, x=points)
        elif suffix == ".csv":
            np.savetxt(src, points, delimiter=",", header="x,y", comments="")
        else:
            with h5py.File(src, "w") as f:
                f["x"] = points
    mutated, how = _mutate_bytes(src.read_bytes(), rng)
    sub = folder / "data" / f"random{i}"
    sub.mkdir(parents=True)
    path = sub / src.name
    path.write_bytes(mutated)
    return path, f"{suffix}: {how}"


def _metrics_cases(folder: Path, run: Path) -> list[tuple[str, Path]]:
    out = []
    for kind in ("fifo", "dev_zero", "directory", "not_utf8", "binary_zeros"):
        target = folder / "metrics" / kind
        shutil.copytree(run, target)
        path = target / "metrics.csv"
        path.unlink()
        if kind == "not_utf8":
            path.write_bytes(b"step,wall_time,loss,lr,grad_norm\n1,\xff\xfe,0,0,0\n")
        elif kind == "binary_zeros":
            path.write_bytes(bytes(4096))
        else:
            _special(path, kind)
        out.append((kind, path))
    return out


# --- structural checkpoint cases ------------------------------------------------------------------
class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/sde_workbench_fuzz_pwned",))


def _structural_checkpoints(state: dict) -> dict[str, object]:
    import copy

    def changed(fn) -> dict:
        s = copy.deepcopy(state)
        fn(s)
        return s

    def first_weight(s: dict) -> str:
        return next(iter(s["model"]))

    return {
        "pickled_os_system": {**state, "extra": _Evil()},
        "pickle_protocol_raw": pickle.dumps(_Evil()),
        "wrong_format": changed(lambda s: s.__setitem__("format", "something/else")),
        "version_string": changed(lambda s: s.__setitem__("format_version", "1")),
        "version_future": changed(lambda s: s.__setitem__("format_version", 99)),
        "not_a_dict": [1, 2, 3],
        "no_model": changed(lambda s: s.pop("model")),
        "no_ema": changed(lambda s: s.pop("ema")),
        "no_optimizer": changed(lambda s: s.pop("optimizer")),
        "step_negative": changed(lambda s: s.__setitem__("step", -5)),
        "step_string": changed(lambda s: s.__setitem__("step", "ten")),
        "weights_wrong_shape": changed(
            lambda s: s["model"].__setitem__(first_weight(s), torch.zeros(3, 3))
        ),
        "weights_int": changed(
            lambda s: s["model"].__setitem__(
                first_weight(s), s["model"][first_weight(s)].to(torch.int64)
            )
        ),
        "weights_nan": changed(
            lambda s: s["ema"].__setitem__(
                first_weight(s), torch.full_like(s["ema"][first_weight(s)], float("nan"))
            )
        ),
        "model_is_list": changed(lambda s: s.__setitem__("model", [1, 2])),
        "rng_garbage": changed(
            lambda s: [s.__setitem__(k, torch.zeros(3, dtype=torch.uint8)) for k in s if "rng" in k]
        ),
    }


def make_cases(folder: Path, seed: int, n_random: int) -> list[Case]:
    """Every structural case and ``n_random`` byte mutations per kind, written under folder."""
    folder.mkdir(parents=True, exist_ok=True)
    base = write_trajectory(folder / "base.h5")
    image = write_trajectory(folder / "base_image.h5", image=True)
    run = make_run(folder / "base_run")
    ckpt = run / "checkpoint.pt"
    config_text = (run / "config.toml").read_text()
    cases: list[Case] = []

    for name, path in _structural_h5(folder, base, image):
        cases.append(Case(f"trajectory/{name}", "trajectory", str(path), name))
    for name, path in _foreign(folder, base, ckpt):
        cases.append(Case(f"foreign/{name}", "foreign", str(path), name))
    for name, path in _data_files(folder):
        cases.append(Case(f"data/{name}", "data", str(path), name))
    for name, path in _metrics_cases(folder, run):
        cases.append(Case(f"metrics/{name}", "metrics", str(path), name))
    for kind in ("fifo", "dev_zero", "directory"):
        path = folder / "configs" / f"{kind}.toml"
        path.parent.mkdir(exist_ok=True)
        _special(path, kind)
        cases.append(Case(f"config/{kind}", "config", str(path), kind))

    state = torch.load(ckpt, weights_only=True)

    def new_run(name: str) -> Path:
        target = folder / "ckpt" / name
        shutil.copytree(run, target)
        return target / "checkpoint.pt"

    for name, payload in _structural_checkpoints(state).items():
        path = new_run(name)
        if isinstance(payload, bytes):
            path.write_bytes(payload)
        else:
            torch.save(payload, path)
        cases.append(Case(f"checkpoint/{name}", "checkpoint", str(path), name))

    rng = np.random.default_rng(seed)
    sources = {"trajectory": base.read_bytes(), "checkpoint": ckpt.read_bytes()}
    for i in range(n_random):
        for kind, data in sources.items():
            mutated, how = _mutate_bytes(data, rng)
            if kind == "trajectory":
                sub = folder / "random" / f"t{i}"
                sub.mkdir(parents=True)
                path = sub / "case.h5"
                path.write_bytes(mutated)
            else:
                path = new_run(f"random{i}")
                path.write_bytes(mutated)
            cases.append(Case(f"{kind}/random{i}", kind, str(path), how))
        path, how = _data_mutations(folder, rng, i)
        cases.append(Case(f"data/random{i}", "data", str(path), how))
        text, how = _mutate_text(config_text, rng)
        path = folder / "configs" / f"c{i}.toml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        cases.append(Case(f"config/random{i}", "config", str(path), how))
    for j, value in enumerate(HOSTILE_VALUES):
        for key in ("data.n", "sde.kind", "train.lr", "data.name"):
            section, name = key.split(".")
            text = config_text.replace(f"[{section}]\n", f"[{section}]\n{name} = {value}\n", 1)
            path = folder / "configs" / f"hostile{j}_{section}_{name}.toml"
            path.write_text(text, encoding="utf-8")
            cases.append(Case(f"config/hostile{j}.{key}", "config", str(path), f"{key}={value}"))
        linear = f'[sde]\nkind = "linear"\na = {value}\ng = {value}\n'
        path = folder / "configs" / f"hostile{j}_linear.toml"
        path.write_text(config_text.split("[sde]")[0] + linear, encoding="utf-8")
        cases.append(Case(f"config/hostile{j}.linear", "config", str(path), f"a=g={value}"))
    return cases
