"""Data sets: what the score model learns, in data units, and how they are normalised.

A data set is one class registered in :data:`DATASETS` under its config name (``[data] name``).
It declares its own config keys (``params``; ``name`` and ``n`` belong to the config), draws
i.i.d. samples of shape ``(n, *sample_shape)`` from a ``torch.Generator`` and says how to map
them to the model's space (:class:`Normalizer`). Gaussian-mixture sets also expose their exact
law (:meth:`DataSet.mixture`), which every linear SDE maps to another mixture: that is where the
workbench's analytic truth comes from.

The two-dimensional toy sets follow the generators of FFJORD (Grathwohl et al. 2019,
``toy_data.py``), rewritten on torch's RNG so that a seeded generator reproduces them exactly
and so that every point is drawn independently (FFJORD fills some sets class by class).

Files are read by :mod:`workbench.core.datafiles` (numpy with ``allow_pickle=False``: a data
file must never run code; HDF5 by a reader that ``workbench.io`` registers, so that ``core``
never imports h5py).
"""

from __future__ import annotations

import copy
import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from workbench.core.datafiles import (
    ARRAY_READERS,
    FILE_EXTENSIONS,
    ArrayReader,
    check_fits_in_memory,
    file_error,
    load_array,
    register_array_reader,
)
from workbench.core.mixture import GaussianMixture
from workbench.core.params import Float, FloatArray, Int, Param, validate_params
from workbench.core.registry import Registry
from workbench.errors import ConfigError, DataError

__all__ = [
    "DATASETS",
    "NORMALIZER_MODES",
    "REFERENCE_SAMPLES",
    "DataSet",
    "MixtureDataSet",
    "Normalizer",
    "ARRAY_READERS",
    "FILE_EXTENSIONS",
    "ArrayReader",
    "build_dataset",
    "check_fits_in_memory",
    "file_error",
    "file_fingerprint",
    "load_array",
    "register_array_reader",
    "validate_data_params",
]

DATASETS: Registry[type[DataSet]] = Registry("data set", key="name")

NORMALIZER_MODES = ("standardise", "minmax", "none")

# Statistics of sets without a closed form come from one fixed sample: large enough that the
# standard error of the per-coordinate mean and std (~ 1/sqrt(2e5) ~ 0.2 %) is far below what
# matters for training, small enough to draw in milliseconds.
REFERENCE_SAMPLES = 200_000
_REFERENCE_SEED = 20190101


# ---------------------------------------------------------------------------------------------
# normalisation
# ---------------------------------------------------------------------------------------------
def _float64(value: Any) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().to(device="cpu", dtype=torch.float64).clone()
    return torch.as_tensor(np.asarray(value, dtype=np.float64)).clone()


@dataclass(frozen=True, eq=False)
class Normalizer:
    """The affine map y = (x - shift) / scale from data units x to the model's units y.

    ``shift`` and ``scale`` are float64 tensors shaped like one sample or broadcastable to it
    (a scalar for images, one entry per coordinate for vector data). ``mode`` records how they
    were chosen: ``"standardise"`` (per-coordinate mean and std), ``"minmax"`` (the value range
    mapped to [-1, 1]) or ``"none"`` (the identity). ``sample_shape`` is the shape of one sample,
    needed to sum the log-Jacobian over every coordinate when ``scale`` is a scalar.
    """

    shift: Tensor
    scale: Tensor
    mode: str = "standardise"
    sample_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        shift, scale = _float64(self.shift), _float64(self.scale)
        if self.mode not in NORMALIZER_MODES:
            raise ValueError(
                f"normaliser mode must be one of {NORMALIZER_MODES}, got {self.mode!r}"
            )
        if not (torch.isfinite(shift).all() and torch.isfinite(scale).all()):
            raise ValueError("normaliser shift and scale must be finite")
        if not bool((scale > 0).all()):
            raise ValueError("normaliser scale must be positive")
        shape = self.sample_shape
        if shape is None:
            shape = tuple(torch.broadcast_shapes(shift.shape, scale.shape))
        shape = tuple(int(s) for s in shape)
        try:
            torch.broadcast_to(shift, shape)
            torch.broadcast_to(scale, shape)
        except RuntimeError:
            raise ValueError(
                f"normaliser shift {tuple(shift.shape)} and scale {tuple(scale.shape)} do not "
                f"broadcast to the sample shape {shape}"
            ) from None
        object.__setattr__(self, "shift", shift)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "sample_shape", shape)

    # construction ---------------------------------------------------------------------------
    @classmethod
    def identity(cls, sample_shape: tuple[int, ...]) -> Normalizer:
        return cls(torch.tensor(0.0), torch.tensor(1.0), "none", tuple(sample_shape))

    @classmethod
    def standardise(cls, mean: Any, std: Any, sample_shape: tuple[int, ...]) -> Normalizer:
        """Per-coordinate (x - mean) / std; a constant coordinate (std 0) is only shifted."""
        std_t = _float64(std)
        std_t = torch.where(std_t > 0, std_t, torch.ones_like(std_t))
        return cls(_float64(mean), std_t, "standardise", tuple(sample_shape))

    @classmethod
    def minmax(cls, low: float, high: float, sample_shape: tuple[int, ...]) -> Normalizer:
        """Maps [low, high] linearly onto [-1, 1]; a constant array is only shifted to 0."""
        half = (float(high) - float(low)) / 2
        centre = (float(high) + float(low)) / 2
        return cls(
            torch.tensor(centre), torch.tensor(half if half > 0 else 1.0), "minmax", sample_shape
        )

    # maps -----------------------------------------------------------------------------------
    def _shaped(self, t: Tensor, x: Tensor) -> Tensor:
        """``t`` on x's dtype and device, shaped to broadcast against x's trailing axes.

        A batch may come per sample (..., *sample_shape) or flattened (..., dim), as stored in
        trajectory files; a non-scalar shift is reshaped for the latter.
        """
        t = t.to(dtype=x.dtype, device=x.device)
        if t.ndim == 0:
            return t
        shape = self.sample_shape or ()
        if tuple(x.shape[x.ndim - len(shape) :]) == shape:
            return t
        dim = math.prod(shape)
        if x.ndim >= 1 and x.shape[-1] == dim:
            return torch.broadcast_to(t, shape).reshape(dim)
        raise ValueError(
            f"points of shape {tuple(x.shape)} match neither the sample shape {shape} nor its "
            f"flattened size {dim}"
        )

    def to_model(self, x: Tensor) -> Tensor:
        """Data units -> model units: (x - shift) / scale."""
        return (x - self._shaped(self.shift, x)) / self._shaped(self.scale, x)

    def to_data(self, y: Tensor) -> Tensor:
        """Model units -> data units: y * scale + shift."""
        return y * self._shaped(self.scale, y) + self._shaped(self.shift, y)

    def log_abs_det_jacobian(self) -> float:
        """log |det d(model)/d(data)| for one sample: -sum of log scale over every coordinate.

        Add it to a log-likelihood computed in model units to get one in data units.
        """
        shape = self.sample_shape or ()
        return float(-torch.log(torch.broadcast_to(self.scale, shape)).sum())

    def to_model_mixture(self, mixture: GaussianMixture) -> GaussianMixture:
        """The law, in model units, of data that follow ``mixture`` (flattened coordinates)."""
        dim = mixture.dim
        shift = torch.broadcast_to(self.shift, self.sample_shape or ()).reshape(-1)
        scale = torch.broadcast_to(self.scale, self.sample_shape or ()).reshape(-1)
        if shift.numel() != dim:
            raise ValueError(f"normaliser is for {shift.numel()} coordinates, mixture has {dim}")
        return mixture.affine(shift, scale)

    def to_data_mixture(self, mixture: GaussianMixture) -> GaussianMixture:
        """The law, in data units, of model-unit points that follow ``mixture``: the inverse of
        :meth:`to_model_mixture`, x = y scale + shift = (y - (-shift / scale)) / (1 / scale)."""
        shift = torch.broadcast_to(self.shift, self.sample_shape or ()).reshape(-1)
        scale = torch.broadcast_to(self.scale, self.sample_shape or ()).reshape(-1)
        if shift.numel() != mixture.dim:
            raise ValueError(
                f"normaliser is for {shift.numel()} coordinates, mixture has {mixture.dim}"
            )
        return mixture.affine(-shift / scale, 1.0 / scale)

    # plotting in data units (numpy, the first ``coords`` flattened coordinates) ---------------
    def flat_affine(self, coords: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(shift, scale) per flattened coordinate as float64 arrays, the first ``coords``."""
        shape = self.sample_shape or ()
        shift = torch.broadcast_to(self.shift, shape).reshape(-1).numpy()
        scale = torch.broadcast_to(self.scale, shape).reshape(-1).numpy()
        if coords is not None:
            shift, scale = shift[:coords], scale[:coords]
        return shift.astype(np.float64), scale.astype(np.float64)

    def points_to_data(self, y: np.ndarray) -> np.ndarray:
        """Model-unit points (..., c) -> data units: x = shift + scale y, coordinate by
        coordinate for the first c coordinates (a plot of x₁, x₂ keeps c = 2)."""
        y = np.asarray(y, dtype=np.float64)
        shift, scale = self.flat_affine(y.shape[-1])
        return shift + scale * y

    def density_to_data(self, p: Any, coords: int) -> Any:
        """A density of the first ``coords`` coordinates in model units -> data units.

        x = shift + scale y maps a cell of volume dV_y to one of prod(scale) dV_y, and mass is
        kept, so p_data(x) = p_model(y) / prod(scale) (the log-Jacobian of
        :meth:`log_abs_det_jacobian`, for the marginal of those coordinates).
        """
        _, scale = self.flat_affine(coords)
        return np.asarray(p, dtype=np.float64) / float(np.prod(scale))

    def score_to_data(self, s: np.ndarray) -> np.ndarray:
        """A score ∇_y log p_model (..., c) -> ∇_x log p_data: by the chain rule
        ∂/∂x_i = (1 / scale_i) ∂/∂y_i, and the log-Jacobian is a constant, so s_data = s / scale."""
        s = np.asarray(s, dtype=np.float64)
        _, scale = self.flat_affine(s.shape[-1])
        return s / scale

    def rect_to_data(self, half: float, coords: int) -> tuple[np.ndarray, np.ndarray]:
        """The model-unit window [-half, half]^coords in data units: (low, high) corners."""
        shift, scale = self.flat_affine(coords)
        return shift - half * scale, shift + half * scale

    # persistence ----------------------------------------------------------------------------
    def to_attrs(self) -> dict[str, Any]:
        """Plain Python values (str, float, nested lists of floats/ints) for HDF5 attributes."""
        return {
            "mode": self.mode,
            "shift": self.shift.tolist(),
            "scale": self.scale.tolist(),
            "sample_shape": list(self.sample_shape or ()),
        }

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Normalizer:
        """Inverse of :meth:`to_attrs`; accepts the numpy values h5py hands back."""
        mode = attrs.get("mode", "standardise")
        if isinstance(mode, bytes):
            mode = mode.decode()
        shape = attrs.get("sample_shape")
        sample_shape = None if shape is None else tuple(int(s) for s in np.ravel(shape))
        return cls(_float64(attrs["shift"]), _float64(attrs["scale"]), str(mode), sample_shape)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Normalizer):
            return NotImplemented
        return (
            self.mode == other.mode
            and self.sample_shape == other.sample_shape
            and self.shift.shape == other.shift.shape
            and self.scale.shape == other.scale.shape
            and bool(torch.equal(self.shift, other.shift))
            and bool(torch.equal(self.scale, other.scale))
        )

    __hash__ = None  # type: ignore[assignment]


# ---------------------------------------------------------------------------------------------
# the base class
# ---------------------------------------------------------------------------------------------
class DataSet(ABC):
    """A distribution to learn: i.i.d. samples in data units, and how to normalise them.

    Subclasses declare ``params`` (their own config keys) and implement ``_sample`` (float64 or
    float32 points of shape (n, *sample_shape)). The constructor validates its keyword arguments
    against ``params`` and runs :meth:`check`, so direct construction is as safe as
    :func:`build_dataset`; the validated values are kept in ``settings``.
    """

    params: ClassVar[tuple[Param, ...]] = ()
    config_name: ClassVar[str] = ""
    is_image: bool = False

    def __init__(self, **params: Any) -> None:
        settings = validate_params(type(self).params, params, what=f"data set {self.name!r}")
        type(self).check(settings)
        self.settings: dict[str, Any] = settings
        self._normalizer: Normalizer | None = None

    @classmethod
    def check(cls, params: dict[str, Any]) -> None:
        """Cross-field checks of validated params; raises ConfigError(key, message)."""
        return None

    @classmethod
    def has_labels(cls, params: Mapping[str, Any]) -> bool:
        """Whether the set built from ``params`` carries class labels (known without data)."""
        return False

    # shape ----------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return type(self).config_name or type(self).__name__

    @property
    @abstractmethod
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample: (d,) for vectors, (c, h, w) for images."""

    @property
    def dim(self) -> int:
        return math.prod(self.sample_shape)

    # sampling -------------------------------------------------------------------------------
    @abstractmethod
    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        """n points, shape (n, *sample_shape), in data units (any float dtype)."""

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """n i.i.d. points of shape (n, *sample_shape) in data units.

        The same seeded ``generator`` state gives the same points; ``None`` uses torch's global
        RNG. Points are drawn in float64 and then cast, so the dtype does not change the draw.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"number of samples must be a non-negative integer, got {n!r}")
        if n == 0:  # torch.multinomial refuses n = 0, and nothing is to be drawn anyway
            return torch.empty(0, *self.sample_shape, dtype=dtype)
        x = self._sample(n, generator)
        return x.reshape(n, *self.sample_shape).to(dtype)

    # class labels ---------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Classes of a labelled set, labelled 0 .. num_classes - 1 (0: no labels)."""
        return 0

    def sample_with_labels(
        self,
        n: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[Tensor, Tensor]:
        """n points, as :meth:`sample` draws them from the same generator state, and the class
        of each (int64, shape (n,)). DataError for a set without labels."""
        if not self.num_classes:
            raise DataError(f"data set {self.name!r} has no class labels")
        if n == 0:
            return self.sample(0, generator, dtype), torch.empty(0, dtype=torch.int64)
        x, y = self._sample_labelled(n, generator)
        return x.reshape(n, *self.sample_shape).to(dtype), y.to(torch.int64)

    def _sample_labelled(self, n: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    # density --------------------------------------------------------------------------------
    def mixture(self) -> GaussianMixture | None:
        """The exact law as a Gaussian mixture over the flattened coordinates, if it is one."""
        return None

    @property
    def has_density(self) -> bool:
        """Whether :meth:`log_prob` is known exactly."""
        return self.mixture() is not None

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log density in data units of points (..., *sample_shape); shape (...)."""
        mixture = self.mixture()
        if mixture is None:
            raise DataError(
                f"data set {self.name!r} has no known density (only Gaussian-mixture data sets do)"
            )
        flat = _flatten_points(x, self.sample_shape)
        return mixture.log_prob(flat.to(torch.float64)).to(
            x.dtype if x.is_floating_point() else torch.float64
        )

    # normalisation --------------------------------------------------------------------------
    def normalizer(self) -> Normalizer:
        """The map to model units; computed once per instance and cached."""
        if self._normalizer is None:
            self._normalizer = self._make_normalizer()
        return self._normalizer

    def _make_normalizer(self) -> Normalizer:
        mixture = self.mixture()
        if mixture is not None:
            # the exact moments: no sampling error in the map analytic truth is expressed in
            std = torch.sqrt(torch.diagonal(mixture.covariance()).clamp_min(0.0))
            return Normalizer.standardise(
                mixture.mean().reshape(self.sample_shape),
                std.reshape(self.sample_shape),
                self.sample_shape,
            )
        reference = self._sample(
            REFERENCE_SAMPLES, torch.Generator().manual_seed(_REFERENCE_SEED)
        ).to(torch.float64)
        return Normalizer.standardise(
            reference.mean(0), reference.std(0, correction=0), self.sample_shape
        )

    def with_normalizer(self, normalizer: Normalizer) -> DataSet:
        """A shallow copy that maps to model units by ``normalizer`` instead of its own.

        A trained model means its stored normaliser: sampling or resuming a run must use the
        one it was trained with, not one recomputed from data that may have changed since.
        """
        twin = copy.copy(self)
        twin._normalizer = normalizer
        return twin

    def fingerprint(self) -> dict[str, Any]:
        """What identifies these data, as plain values: the set's name and settings (a file
        data set adds the file's size and SHA-256, see :func:`file_fingerprint`)."""
        return {"name": self.name, "params": _plain(self.settings)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
        return f"{type(self).__name__}({args})"


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def file_fingerprint(path: str | Path) -> dict[str, Any]:
    """``{"path", "size", "sha256"}`` of a data file: its bytes, so a file replaced under the
    same name (a changed normalisation, other points) is told apart from the one trained on.
    Read in 1 MiB blocks; OSError is left to the caller."""
    path = Path(path).expanduser()
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
            size += len(block)
    return {"path": str(path), "size": size, "sha256": digest.hexdigest()}


def _flatten_points(x: Tensor, sample_shape: tuple[int, ...]) -> Tensor:
    k = len(sample_shape)
    if tuple(x.shape[x.ndim - k :]) != tuple(sample_shape) or x.ndim < k:
        raise ValueError(f"points of shape {tuple(x.shape)} do not end in {tuple(sample_shape)}")
    return x.reshape(*x.shape[: x.ndim - k], math.prod(sample_shape))


def _uniform(n: int, g: torch.Generator | None) -> Tensor:
    return torch.rand(n, generator=g, dtype=torch.float64)


def _normal(shape: tuple[int, ...], g: torch.Generator | None) -> Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def _randint(high: int, n: int, g: torch.Generator | None) -> Tensor:
    return torch.randint(0, high, (n,), generator=g)


# ---------------------------------------------------------------------------------------------
# Gaussian mixtures
# ---------------------------------------------------------------------------------------------
class MixtureDataSet(DataSet):
    """A data set whose law is a Gaussian mixture: exact density, score and moments."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._mixture = self._build_mixture()

    @abstractmethod
    def _build_mixture(self) -> GaussianMixture: ...

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (self._mixture.dim,)

    def mixture(self) -> GaussianMixture:
        return self._mixture

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        return self._mixture.sample(n, generator, dtype=torch.float64)

    @classmethod
    def has_labels(cls, params: Mapping[str, Any]) -> bool:
        return True

    @property
    def num_classes(self) -> int:
        """Each component is a class: a point's label is the component it was drawn from."""
        return self._mixture.n_components

    def _sample_labelled(self, n: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        return self._mixture.sample_with_labels(n, generator, dtype=torch.float64)


def _check_count(params: Mapping[str, Any], key: str, k: int, what: str = "entries") -> None:
    value = params.get(key)
    if value is not None and len(value) != k:
        raise ConfigError(
            key, f"has {len(value)} {what} but means has {k} components; give one per component"
        )


@DATASETS.register("gmm1d")
class GMM1D(MixtureDataSet):
    """A one-dimensional Gaussian mixture sum_k w_k N(mu_k, s_k^2).

    The default (three unequal, unevenly spaced modes) makes the densities p_t of the forward
    process easy to read as a time-by-x heat map.
    """

    params = (
        Param("means", FloatArray(1), (-2.0, 0.5, 3.0), "component means"),
        Param("stds", FloatArray(1, positive=True), (0.4, 0.3, 0.6), "component std devs"),
        Param("weights", FloatArray(1, positive=True), (0.3, 0.5, 0.2), "component weights"),
    )

    @classmethod
    def check(cls, params: dict[str, Any]) -> None:
        k = len(params["means"])
        _check_count(params, "stds", k)
        _check_count(params, "weights", k)

    def _build_mixture(self) -> GaussianMixture:
        s = self.settings
        return GaussianMixture.isotropic(s["means"], s["stds"], s["weights"])


@DATASETS.register("8gaussians")
class EightGaussians(MixtureDataSet):
    """Eight equal-weight isotropic Gaussians on a circle (FFJORD, Grathwohl et al. 2019).

    Means radius (cos, sin)(k pi/4), k = 0..7, std ``std``. FFJORD draws centres at radius 4
    with std 0.5 and then divides by 1.414; the defaults are exactly 4/sqrt(2) and 0.5/sqrt(2).
    """

    params = (
        Param("radius", Float(0.0, low_open=True), 4.0 / math.sqrt(2.0), "radius of the circle"),
        Param("std", Float(0.0, low_open=True), 0.5 / math.sqrt(2.0), "std of each component"),
    )

    def _build_mixture(self) -> GaussianMixture:
        angles = torch.arange(8, dtype=torch.float64) * (math.pi / 4)
        means = self.settings["radius"] * torch.stack([torch.cos(angles), torch.sin(angles)], 1)
        return GaussianMixture.isotropic(means, self.settings["std"])


_GMM_DEFAULT: dict[str, Any] = {
    "means": ((-2.0, -1.0), (2.0, -1.0), (0.0, 2.0)),
    "stds": (0.5, 0.7, 0.4),
    "weights": (0.3, 0.3, 0.4),
}


@DATASETS.register("gmm")
class GMM(MixtureDataSet):
    """A user-defined Gaussian mixture in any dimension d.

    ``means`` is a list of K points in R^d; the components are either isotropic (``stds``, one
    std per component) or full (``covs``, one symmetric positive-definite d x d matrix per
    component). ``weights`` are normalised (equal when left out). With no keys at all it is a
    2-D three-component mixture.
    """

    params = (
        Param("means", FloatArray(2), None, "component means, [[x, y, ...], ...]"),
        Param("stds", FloatArray(1, positive=True), None, "isotropic std of each component"),
        Param("covs", FloatArray(3), None, "full covariance (d x d) of each component"),
        Param("weights", FloatArray(1, positive=True), None, "component weights (normalised)"),
    )

    @classmethod
    def check(cls, params: dict[str, Any]) -> None:
        if "stds" in params and "covs" in params:
            raise ConfigError(
                "covs", "give either stds (isotropic components) or covs (full), not both"
            )
        if "means" not in params:
            given = [key for key in ("stds", "covs", "weights") if key in params]
            if given:
                verb = "is" if len(given) == 1 else "are"
                raise ConfigError("means", f"is required when {' and '.join(given)} {verb} given")
            return
        means = params["means"]
        k, d = len(means), len(means[0])
        if "stds" not in params and "covs" not in params:
            raise ConfigError(
                "stds",
                "give stds = [s, ...] (one isotropic std per component) or "
                f"covs = [[[...], ...], ...] (one {d} x {d} matrix per component)",
            )
        _check_count(params, "stds", k)
        _check_count(params, "weights", k)
        _check_count(params, "covs", k, what="matrices")
        for i, cov in enumerate(params.get("covs") or ()):
            if len(cov) != d or any(len(row) != d for row in cov):
                cols = sorted({len(row) for row in cov})
                raise ConfigError(
                    "covs",
                    f"covs[{i}] must be {d} x {d} (the means have {d} coordinates), got "
                    f"{len(cov)} x {'/'.join(map(str, cols))}",
                )
            c = torch.tensor(cov, dtype=torch.float64)
            tol = 1e-9 * float(c.abs().max()) + 1e-12
            if not torch.allclose(c, c.T, rtol=0.0, atol=tol):
                raise ConfigError("covs", f"covs[{i}] is not symmetric")
            lam = torch.linalg.eigvalsh(c)
            _, info = torch.linalg.cholesky_ex(c)
            if int(info) != 0 or float(lam.min()) <= 0:
                raise ConfigError(
                    "covs",
                    f"covs[{i}] is not positive definite (smallest eigenvalue "
                    f"{float(lam.min()):.3g})",
                )

    def _build_mixture(self) -> GaussianMixture:
        s = self.settings if "means" in self.settings else _GMM_DEFAULT
        if "covs" in s:
            covs = torch.tensor(s["covs"], dtype=torch.float64)
            # symmetric up to check()'s tolerance: make it exactly so for the eigendecomposition
            covs = (covs + covs.transpose(-1, -2)) / 2
            return GaussianMixture.full(s["means"], covs, s.get("weights"))
        return GaussianMixture.isotropic(s["means"], s["stds"], s.get("weights"))


# ---------------------------------------------------------------------------------------------
# two-dimensional toy sets (FFJORD, Grathwohl et al. 2019)
# ---------------------------------------------------------------------------------------------
class ToyDataSet(DataSet):
    """A 2-D set drawn by a closed-form generator; statistics come from a reference sample."""

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (2,)


def _noise_param(default: float) -> Param:
    return Param("noise", Float(0.0), default, "std of the Gaussian noise added to each point")


@DATASETS.register("checkerboard")
class Checkerboard(ToyDataSet):
    """Uniform on the 8 dark squares of a 4 x 4 board of 2 x 2 squares on [-4, 4)^2 (FFJORD).

    A point (x, y) is on the board iff floor(x/2) + floor(y/2) is even; the density is exactly
    1/32 there and 0 elsewhere.
    """

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        x1 = _uniform(n, generator) * 4 - 2
        x2 = _uniform(n, generator) - 2.0 * _randint(2, n, generator).to(torch.float64)
        x2 = x2 + torch.remainder(torch.floor(x1), 2)
        return torch.stack([x1, x2], 1) * 2


@DATASETS.register("moons")
class Moons(ToyDataSet):
    """Two interleaved half circles, as scikit-learn's make_moons scaled by FFJORD.

    Each point picks a moon with probability 1/2 and a uniform angle (make_moons spaces angles
    evenly; i.i.d. draws keep mini-batches unbiased), gets N(0, noise^2) noise, and is mapped
    by 2 x + (-1, -0.2).
    """

    params = (_noise_param(0.1),)

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        upper = _uniform(n, generator) < 0.5
        theta = _uniform(n, generator) * math.pi
        outer = torch.stack([torch.cos(theta), torch.sin(theta)], 1)
        inner = torch.stack([1 - torch.cos(theta), 0.5 - torch.sin(theta)], 1)
        x = torch.where(upper[:, None], outer, inner)
        x = x + self.settings["noise"] * _normal((n, 2), generator)
        return x * 2 + torch.tensor([-1.0, -0.2], dtype=torch.float64)


@DATASETS.register("swissroll")
class SwissRoll(ToyDataSet):
    """The (x, z) plane of scikit-learn's swiss roll divided by 5 (FFJORD).

    t = 1.5 pi (1 + 2u), u ~ U(0, 1); the point is (t cos t, t sin t) + noise N(0, noise^2 I),
    all divided by 5.
    """

    params = (_noise_param(1.0),)

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        t = 1.5 * math.pi * (1 + 2 * _uniform(n, generator))
        x = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1)
        x = x + self.settings["noise"] * _normal((n, 2), generator)
        return x / 5


@DATASETS.register("pinwheel")
class Pinwheel(ToyDataSet):
    """Curved arms of a pinwheel (FFJORD, after Johnson et al. 2016).

    An arm k is picked uniformly; a point (1 + radial_std z1, tangential_std z2) is rotated
    clockwise by 2 pi k / arms + rate exp(1 + radial_std z1) and scaled by 2.
    """

    params = (
        Param("arms", Int(1, 32), 5, "number of arms"),
        Param("radial_std", Float(0.0), 0.3, "spread along an arm"),
        Param("tangential_std", Float(0.0), 0.1, "spread across an arm"),
        Param("rate", Float(), 0.25, "how strongly the arms curve"),
    )

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        s = self.settings
        labels = _randint(s["arms"], n, generator).to(torch.float64)
        features = _normal((n, 2), generator) * torch.tensor(
            [s["radial_std"], s["tangential_std"]], dtype=torch.float64
        )
        features[:, 0] += 1.0
        angles = labels * (2 * math.pi / s["arms"]) + s["rate"] * torch.exp(features[:, 0])
        cos, sin = torch.cos(angles), torch.sin(angles)
        # FFJORD's einsum("ti,tij->tj", features, [[cos, -sin], [sin, cos]])
        x = torch.stack(
            [
                features[:, 0] * cos + features[:, 1] * sin,
                -features[:, 0] * sin + features[:, 1] * cos,
            ],
            1,
        )
        return 2 * x


@DATASETS.register("rings")
class Rings(ToyDataSet):
    """Four concentric circles of radii 3, 2.25, 1.5 and 0.75 (FFJORD).

    Each point picks a ring with probability 1/4 and a uniform angle, then gets N(0, noise^2 I).
    """

    params = (_noise_param(0.08),)
    radii = (3.0, 2.25, 1.5, 0.75)

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        radius = torch.tensor(self.radii, dtype=torch.float64)[_randint(4, n, generator)]
        theta = 2 * math.pi * _uniform(n, generator)
        x = radius[:, None] * torch.stack([torch.cos(theta), torch.sin(theta)], 1)
        return x + self.settings["noise"] * _normal((n, 2), generator)


@DATASETS.register("spirals")
class Spirals(ToyDataSet):
    """Two interleaved spirals, FFJORD's "2spirals".

    r = 3 pi sqrt(u); the first spiral is (-r cos r, r sin r) plus a U(0, 0.5) jitter in each
    coordinate, the second its mirror image through the origin; all divided by 3, plus
    N(0, noise^2 I).
    """

    params = (_noise_param(0.1),)

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        r = torch.sqrt(_uniform(n, generator)) * (540 * 2 * math.pi / 360)
        jitter_x = _uniform(n, generator) * 0.5
        jitter_y = _uniform(n, generator) * 0.5
        sign = torch.where(_uniform(n, generator) < 0.5, -1.0, 1.0).to(torch.float64)
        x = torch.stack([-torch.cos(r) * r + jitter_x, torch.sin(r) * r + jitter_y], 1)
        x = sign[:, None] * x / 3
        return x + self.settings["noise"] * _normal((n, 2), generator)


# ---------------------------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------------------------
def validate_data_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The validated ``[data]`` settings of set ``name`` (without ``name`` and ``n``).

    Everything :func:`build_dataset` checks except what needs the data itself (no file is read,
    no optional package imported). Raises ConfigError with an unprefixed key.
    """
    cls = DATASETS.get(name)
    validated = validate_params(cls.params, params or {}, what=f"data set {name!r}")
    cls.check(validated)
    return validated


def build_dataset(name: str, params: Mapping[str, Any] | None = None) -> DataSet:
    """The data set registered as ``name``, built from its ``[data]`` settings.

    ConfigError for an unknown name or bad settings, DataError for data that cannot be loaded.
    """
    validated = validate_data_params(name, params)
    return DATASETS.get(name)(**validated)


# The finite-array sets (digits, user files) register themselves from their own module
# (imported as a module: it imports this one, and either may be imported first).
from workbench.core import array_data as _array_data  # noqa: E402, F401
