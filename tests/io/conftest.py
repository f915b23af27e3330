"""Shared checks for tests/io: the NeXus default chain of our HDF5 files, read with h5py."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import h5py
import pytest


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def follow_default_chain(path: Path, data: str) -> dict[str, object]:
    """Follow root @default -> NXentry -> @default -> NXdata as a NeXus viewer does, asserting
    each step; the NXdata group must be a soft link to /<data>, its signal a dataset and every
    named axis a 1-D dataset as long as the signal's dimension that its *_indices names."""
    with h5py.File(path, "r") as f:
        root = f.attrs
        assert _text(root["NX_class"]) == "NXroot"
        assert _text(root["creator"]).startswith("sde-workbench ")
        file_time = _text(root["file_time"])
        assert time.strptime(file_time[:19], "%Y-%m-%dT%H:%M:%S")  # ISO 8601
        assert file_time == _text(root["created"])
        entry = f[_text(root["default"])]
        assert entry.name == "/entry" and _text(entry.attrs["NX_class"]) == "NXentry"
        name = _text(entry.attrs["default"])
        assert name == data
        link = entry.get(name, getlink=True)
        assert isinstance(link, h5py.SoftLink) and link.path == f"/{data}"
        group = entry[name]
        assert group == f[data]  # the same object as the group every reader opens
        assert _text(group.attrs["NX_class"]) == "NXdata"
        signal = group[_text(group.attrs["signal"])]
        assert isinstance(signal, h5py.Dataset)
        axes = [_text(a) for a in group.attrs["axes"]]
        assert len(axes) == signal.ndim
        lengths = {}
        for position, axis in enumerate(axes):
            if axis == ".":
                continue
            dim = int(group.attrs.get(f"{axis}_indices", position))
            assert dim == position, f"{axis}_indices is {dim}, the axis stands at {position}"
            assert group[axis].ndim == 1
            assert group[axis].shape[0] == signal.shape[dim], axis
            lengths[axis] = group[axis].shape[0]
        return {"signal": signal.name, "shape": signal.shape, "axes": axes, "lengths": lengths}


@pytest.fixture
def nexus_chain() -> Callable[[Path, str], dict[str, object]]:
    return follow_default_chain
