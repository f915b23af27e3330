"""Data sets that are finite arrays: scikit-learn's digits and the user's files (``file``).

The empirical distribution of an array: sampling draws rows with replacement; normalisation
uses the array's own statistics. Registered in :data:`workbench.core.data.DATASETS` when
:mod:`workbench.core.data` is imported (it imports this module last, so the GUI's list keeps
its order: mixtures, toys, then arrays).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from workbench.core.data import DATASETS, DataSet, Normalizer, file_fingerprint
from workbench.core.datafiles import as_samples, check_range, file_error, load_array
from workbench.core.labels import check_labels, csv_label_column, split_column
from workbench.core.params import Bool, Param, Text
from workbench.errors import ConfigError, DataError

__all__ = ["ArrayDataSet", "Digits", "FileData"]


class ArrayDataSet(DataSet):
    """The empirical distribution of a finite array: sampling draws rows with replacement.

    Subclasses fill ``values`` (a tensor (N, *sample_shape)) and ``is_image`` in ``__init__``.
    Normalisation uses the array's own statistics: per-coordinate mean/std for vectors, the
    value range mapped to [-1, 1] for images.
    """

    values: Tensor
    #: (N,) int64 classes of the rows, or None (unlabelled)
    labels: Tensor | None = None

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape[1:])

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        rows = torch.randint(0, len(self), (n,), generator=generator)
        return self.values[rows]

    @property
    def num_classes(self) -> int:
        return 0 if self.labels is None else int(self.labels.max()) + 1

    def _sample_labelled(self, n: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        assert self.labels is not None  # num_classes > 0
        rows = torch.randint(0, len(self), (n,), generator=generator)  # the rows _sample draws
        return self.values[rows], self.labels[rows]

    def _make_normalizer(self) -> Normalizer:
        if self.is_image:
            return Normalizer.minmax(
                float(self.values.min()), float(self.values.max()), self.sample_shape
            )
        v = self.values.to(torch.float64)
        return Normalizer.standardise(v.mean(0), v.std(0, correction=0), self.sample_shape)


@DATASETS.register("digits")
class Digits(ArrayDataSet):
    """scikit-learn's bundled 8 x 8 handwritten digits (1797 images, values 0..16, no download).

    Samples are (1, 8, 8) images in the original 0..16 units, labelled by their digit.
    """

    is_image = True

    @classmethod
    def has_labels(cls, params: Mapping[str, Any]) -> bool:
        return True

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise DataError(
                "the 'digits' data set needs scikit-learn: pip install 'sde-workbench[images]'"
            ) from None
        bunch = load_digits()
        images = bunch.images  # (1797, 8, 8), float64
        self.values = torch.as_tensor(np.ascontiguousarray(images, dtype=np.float64))[:, None]
        self.labels = torch.as_tensor(np.asarray(bunch.target, dtype=np.int64))


@DATASETS.register("file")
class FileData(ArrayDataSet):
    """Points read from a file: .npy, .npz, .csv (comma separated, optional header) or .h5.

    Array shapes: (n,) is 1-D data, (n, d) d-dimensional vectors, (n, h, w) greyscale images and
    (n, h, w, c) with c in 1, 3, 4 colour images (channels-first (n, c, h, w) is accepted when
    the last axis cannot be channels). ``key`` picks the array in an .npz or the dataset path in
    an .h5 file; it may be left out when the file holds just one. The file is read when the data
    set is built, not when a config is validated, so a config may name data not yet written.
    """

    params = (
        Param("path", Text(), None, "the data file (.npy, .npz, .csv, .h5, .hdf5)"),
        Param("key", Text(), None, "array name in an .npz, dataset path in an .h5"),
        Param(
            "allow_external",
            Bool(),
            False,
            "true: read an .h5 whose data lie in files outside its folder (external links, "
            "external raw storage, virtual datasets); refused by default",
        ),
        Param(
            "labels",
            Text(),
            None,
            "class labels: an array name (.npz, .h5) or a column number or name (.csv)",
        ),
    )

    @classmethod
    def check(cls, params: dict[str, Any]) -> None:
        if "path" not in params:
            raise ConfigError("path", 'is required: path = "data.npy" (.npz, .csv, .h5)')
        suffix = Path(params["path"]).suffix.lower()
        if "key" in params and suffix in (".npy", ".csv"):
            raise ConfigError(
                "key", f"only .npz and .h5 files hold several arrays; a {suffix} file has one"
            )
        if "labels" in params and suffix == ".npy":
            raise ConfigError(
                "labels", "an .npy file holds one array: keep points and labels in an .npz"
            )

    @classmethod
    def has_labels(cls, params: Mapping[str, Any]) -> bool:
        return "labels" in params

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.path = Path(self.settings["path"]).expanduser()
        array = load_array(
            self.path,
            self.settings.get("key"),
            allow_external=bool(self.settings.get("allow_external", False)),
        )
        labels = self._read_labels(array) if "labels" in self.settings else None
        if labels is not None and self.path.suffix.lower() == ".csv":
            array, labels = labels
        values, self.is_image = as_samples(array, self.path)
        check_range(values, self.path)
        self.values = torch.as_tensor(values)
        if labels is not None:
            self.labels = torch.as_tensor(check_labels(labels, len(values), self.path))

    def _read_labels(self, array: np.ndarray) -> Any:
        """A CSV's (points, label column), or the labels array named in an .npz / .h5."""
        spec = str(self.settings["labels"])
        if self.path.suffix.lower() == ".csv":
            width = array.shape[1] if array.ndim == 2 else 1
            return split_column(array, csv_label_column(self.path, spec, width))
        if spec == self.settings.get("key"):
            raise ConfigError("data.labels", f"names the points' own array {spec!r}; name another")
        return load_array(
            self.path, spec, allow_external=bool(self.settings.get("allow_external", False))
        )

    def fingerprint(self) -> dict[str, Any]:
        """The name and settings plus the file's size and SHA-256 (:func:`file_fingerprint`)."""
        try:
            return {**super().fingerprint(), **file_fingerprint(self.path)}
        except OSError as exc:
            raise file_error(self.path, f"cannot be read: {exc.strerror or exc}") from None
