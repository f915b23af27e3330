"""Data sets: shapes, reproducibility, exact mixture laws, normalisation, file loading, errors.

Statistical checks use fixed seeds and tolerances of Z standard errors computed from the sample
itself (or from the binomial variance for proportions), never guessed constants.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import workbench.io  # noqa: F401  (the .h5 reader of file data sets lives in io)
from workbench.core.data import (
    DATASETS,
    REFERENCE_SAMPLES,
    DataSet,
    Normalizer,
    build_dataset,
    validate_data_params,
)
from workbench.core.mixture import GaussianMixture
from workbench.errors import ConfigError, DataError

Z = 5.0  # standard errors allowed: a false alarm is ~1 in 10^6 per comparison

# the data sets the README lists
README_NAMES = {
    "gmm1d",
    "8gaussians",
    "checkerboard",
    "moons",
    "swissroll",
    "pinwheel",
    "rings",
    "spirals",
    "gmm",
    "digits",
    "file",
}
TOY_NAMES = ["checkerboard", "moons", "swissroll", "pinwheel", "rings", "spirals"]

COVS_3D = [
    [[1.0, 0.5, 0.0], [0.5, 2.0, 0.3], [0.0, 0.3, 0.5]],
    [[0.3, -0.1, 0.05], [-0.1, 0.4, 0.0], [0.05, 0.0, 1.5]],
]
MIXTURE_CASES = {
    "gmm1d": ("gmm1d", {}),
    "8gaussians": ("8gaussians", {}),
    "gmm-stds": (
        "gmm",
        {
            "means": [[-1.0, 2.0], [3.0, 0.0], [0.0, -2.0]],
            "stds": [0.3, 1.0, 0.6],
            "weights": [1, 2, 3],
        },
    ),
    "gmm-covs-3d": (
        "gmm",
        {"means": [[0.0, 1.0, -1.0], [2.0, -1.0, 0.5]], "covs": COVS_3D, "weights": [0.7, 0.3]},
    ),
}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def npy_file(tmp_path):
    path = tmp_path / "points.npy"
    np.save(path, np.random.default_rng(0).normal(size=(300, 3)))
    return path


def make(name: str, tmp_path) -> DataSet:
    """A default instance of every registered set (a real file for ``file``)."""
    if name == "file":
        path = tmp_path / "points.npy"
        np.save(path, np.random.default_rng(0).normal(size=(300, 3)))
        return build_dataset("file", {"path": str(path)})
    if name == "digits":
        pytest.importorskip("sklearn", reason="the digits data set needs scikit-learn")
    return build_dataset(name)


def assert_mean_close(x: torch.Tensor, expected: torch.Tensor, what: str = "mean") -> None:
    n = x.shape[0]
    se = x.std(0) / math.sqrt(n)
    err = (x.mean(0) - expected).abs()
    assert bool((err <= Z * se).all()), f"{what}: error {err.tolist()} > {Z} x SE {se.tolist()}"


def assert_cov_close(x: torch.Tensor, expected: torch.Tensor) -> None:
    xc = x - x.mean(0)
    prods = xc[:, :, None] * xc[:, None, :]  # per-sample contributions to the covariance
    se = prods.std(0) / math.sqrt(x.shape[0])
    err = (prods.mean(0) - expected).abs()
    assert bool((err <= Z * se).all()), f"covariance error {err} > {Z} x SE {se}"


# ---------------------------------------------------------------------------------------------
# every set
# ---------------------------------------------------------------------------------------------
def test_registry_holds_the_readme_names():
    assert set(DATASETS) == README_NAMES


@pytest.mark.parametrize("name", sorted(README_NAMES))
def test_sample_shape_dtype_finite_and_reproducible(name, tmp_path):
    ds = make(name, tmp_path)
    assert ds.dim == math.prod(ds.sample_shape)
    for dtype in (torch.float32, torch.float64):
        x = ds.sample(257, gen(1), dtype=dtype)
        assert x.shape == (257, *ds.sample_shape)
        assert x.dtype == dtype
        assert bool(torch.isfinite(x).all())
    a = ds.sample(257, gen(7), dtype=torch.float64)
    b = ds.sample(257, gen(7), dtype=torch.float64)
    c = ds.sample(257, gen(8), dtype=torch.float64)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # the draw is made in float64 and cast: the dtype does not change which points come out
    assert torch.equal(ds.sample(257, gen(7), dtype=torch.float32), a.float())
    assert ds.sample(0, gen(0)).shape == (0, *ds.sample_shape)


@pytest.mark.parametrize("n", [-1, 2.0, True])
def test_sample_refuses_bad_counts(n):
    with pytest.raises(ValueError, match="non-negative integer"):
        build_dataset("moons").sample(n)


def test_settings_hold_validated_defaults():
    ds = build_dataset("8gaussians")
    assert ds.settings == {"radius": 4 / math.sqrt(2), "std": 0.5 / math.sqrt(2)}
    assert build_dataset("moons", {"noise": 0}).settings == {"noise": 0.0}
    assert "EightGaussians" in repr(ds)


# ---------------------------------------------------------------------------------------------
# Gaussian mixtures: exact laws
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(MIXTURE_CASES))
def test_mixture_samples_match_exact_moments(case):
    name, params = MIXTURE_CASES[case]
    ds = build_dataset(name, params)
    mix = ds.mixture()
    assert isinstance(mix, GaussianMixture) and ds.has_density
    x = ds.sample(100_000, gen(3), dtype=torch.float64)
    assert_mean_close(x, mix.mean())
    assert_cov_close(x, mix.covariance())


@pytest.mark.parametrize("case", sorted(MIXTURE_CASES))
def test_mixture_component_proportions(case):
    name, params = MIXTURE_CASES[case]
    mix = build_dataset(name, params).mixture()
    n = 50_000
    _, labels = mix.sample_with_labels(n, gen(4))
    freq = torch.bincount(labels, minlength=mix.n_components).double() / n
    w = mix.weights
    se = torch.sqrt(w * (1 - w) / n)
    assert bool(((freq - w).abs() <= Z * se).all()), (freq, w)


def test_mixture_parameters_are_the_configured_ones():
    mix = build_dataset(*MIXTURE_CASES["gmm-covs-3d"]).mixture()
    assert torch.allclose(mix.covs, torch.tensor(COVS_3D, dtype=torch.float64))
    assert torch.allclose(mix.weights, torch.tensor([0.7, 0.3], dtype=torch.float64))
    mix = build_dataset(*MIXTURE_CASES["gmm-stds"]).mixture()
    assert torch.allclose(mix.weights, torch.tensor([1, 2, 3], dtype=torch.float64) / 6)
    assert torch.allclose(mix.covs[1], torch.eye(2, dtype=torch.float64))
    gm1 = build_dataset("gmm1d", {"means": [0, 5], "stds": [1, 2], "weights": [1, 1]}).mixture()
    assert gm1.dim == 1 and torch.allclose(
        gm1.covs.flatten(), torch.tensor([1.0, 4.0], dtype=torch.float64)
    )


def test_eight_gaussians_is_ffjords_geometry():
    ds = build_dataset("8gaussians")
    mix = ds.mixture()
    assert mix.n_components == 8
    assert torch.allclose(
        mix.means.norm(dim=1), torch.full((8,), 4 / math.sqrt(2), dtype=torch.float64)
    )
    angles = torch.atan2(mix.means[:, 1], mix.means[:, 0]) / (math.pi / 4)
    assert torch.allclose(
        torch.sort(torch.remainder(angles.round(), 8)).values, torch.arange(8.0).double()
    )
    assert torch.allclose(angles, angles.round(), atol=1e-12)
    assert torch.allclose(mix.covs, torch.eye(2).double().expand(8, 2, 2) * 0.125)
    assert torch.allclose(mix.weights, torch.full((8,), 1 / 8).double())

    # the exact log density written out by hand
    x = torch.tensor([[0.3, -1.2], [2.8, 0.1], [-5.0, 4.0]], dtype=torch.float64)
    var = 0.125
    sq = ((x[:, None, :] - mix.means[None]) ** 2).sum(-1)
    manual = torch.logsumexp(-sq / (2 * var), 1) - math.log(8 * 2 * math.pi * var)
    assert torch.allclose(ds.log_prob(x), manual, atol=1e-12)
    assert ds.log_prob(x.float()).dtype == torch.float32


def test_gmm_defaults_are_a_2d_three_component_mixture():
    mix = build_dataset("gmm").mixture()
    assert (mix.n_components, mix.dim) == (3, 2)
    assert validate_data_params("gmm", {}) == {}


def test_log_prob_integrates_to_one_in_1d():
    ds = build_dataset("gmm1d")
    grid = torch.linspace(-10, 12, 8001, dtype=torch.float64)
    p = torch.exp(ds.log_prob(grid[:, None]))
    assert abs(float(torch.trapezoid(p, grid)) - 1) < 1e-6


@pytest.mark.parametrize("name", ["8gaussians", "gmm"])
def test_log_prob_integrates_to_one_in_2d(name):
    ds = build_dataset(name)
    g = torch.linspace(-7, 7, 701, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    p = torch.exp(ds.log_prob(torch.stack([xx, yy], -1)))  # (701, 701): batch dims are kept
    assert p.shape == (701, 701)
    total = torch.trapezoid(torch.trapezoid(p, g, dim=1), g)
    assert abs(float(total) - 1) < 1e-4


def test_log_prob_checks_the_point_shape():
    with pytest.raises(ValueError, match="do not end in"):
        build_dataset("8gaussians").log_prob(torch.zeros(4, 3))


@pytest.mark.parametrize("name", TOY_NAMES)
def test_sets_without_a_density_say_so(name):
    ds = build_dataset(name)
    assert ds.mixture() is None and not ds.has_density
    with pytest.raises(DataError, match=f"'{name}' has no known density"):
        ds.log_prob(torch.zeros(3, 2))


# ---------------------------------------------------------------------------------------------
# the toy sets' shapes
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [*TOY_NAMES, "8gaussians"])
def test_toy_sets_lie_in_the_plotting_box(name):
    x = build_dataset(name).sample(20_000, gen(5), dtype=torch.float64)
    inside = (x.abs() <= 4.5).all(1).double().mean()
    assert float(inside) > 0.999
    # and they use it: not squeezed into a corner
    assert float(x.abs().amax()) > 1.5


def test_checkerboard_is_uniform_on_the_dark_squares():
    x = build_dataset("checkerboard").sample(40_000, gen(6), dtype=torch.float64)
    parity = (torch.floor(x[:, 0] / 2) + torch.floor(x[:, 1] / 2)) % 2
    assert bool((parity == 0).all())
    assert bool(((x >= -4) & (x < 4)).all())
    # each of the 8 dark squares holds 1/8 of the mass
    square = (torch.floor(x[:, 0] / 2) + 2) * 4 + (torch.floor(x[:, 1] / 2) + 2)
    counts = torch.bincount(square.long(), minlength=16).double()
    counts = counts[counts > 0]
    assert counts.numel() == 8
    n, p = x.shape[0], 1 / 8
    assert bool(((counts / n - p).abs() <= Z * math.sqrt(p * (1 - p) / n)).all())


def test_rings_have_four_equally_likely_radii():
    n = 40_000
    x = build_dataset("rings").sample(n, gen(9), dtype=torch.float64)
    r = x.norm(dim=1)
    radii = torch.tensor([3.0, 2.25, 1.5, 0.75], dtype=torch.float64)
    dist = (r[:, None] - radii).abs()
    nearest = dist.argmin(1)
    assert float((dist.min(1).values < 5 * 0.08).double().mean()) > 0.999
    freq = torch.bincount(nearest, minlength=4).double() / n
    assert bool(((freq - 0.25).abs() <= Z * math.sqrt(0.25 * 0.75 / n)).all())


def test_moons_without_noise_lie_on_the_two_arcs():
    x = build_dataset("moons", {"noise": 0.0}).sample(5000, gen(10), dtype=torch.float64)
    u = (x + torch.tensor([1.0, 0.2], dtype=torch.float64)) / 2  # back to make_moons' units
    outer = (u.norm(dim=1) - 1).abs() < 1e-9
    inner = ((u - torch.tensor([1.0, 0.5], dtype=torch.float64)).norm(dim=1) - 1).abs() < 1e-9
    assert bool((outer | inner).all())
    assert bool((u[outer, 1] >= -1e-12).all()) and bool((u[inner & ~outer, 1] <= 0.5).all())
    frac = float(outer.double().mean())
    assert abs(frac - 0.5) <= Z * math.sqrt(0.25 / x.shape[0])


def test_swissroll_without_noise_lies_on_the_spiral():
    x = build_dataset("swissroll", {"noise": 0.0}).sample(5000, gen(11), dtype=torch.float64)
    t = 5 * x.norm(dim=1)
    assert bool(((t >= 1.5 * math.pi - 1e-9) & (t <= 4.5 * math.pi + 1e-9)).all())
    angle = torch.atan2(x[:, 1], x[:, 0])
    assert torch.allclose(torch.cos(angle - t), torch.ones_like(t), atol=1e-9)


def test_pinwheel_without_noise_has_points_at_radius_two_on_each_arm():
    ds = build_dataset("pinwheel", {"radial_std": 0.0, "tangential_std": 0.0, "arms": 3})
    x = ds.sample(3000, gen(12), dtype=torch.float64)
    assert torch.allclose(x.norm(dim=1), torch.full((3000,), 2.0, dtype=torch.float64))
    # exact angles: -(2 pi k / 3 + 0.25 e), one per arm
    base = -(0.25 * math.e)
    k = torch.remainder((torch.atan2(x[:, 1], x[:, 0]) - base) / (-2 * math.pi / 3), 3)
    assert torch.allclose(k, k.round(), atol=1e-9)
    assert set(torch.remainder(k.round(), 3).long().tolist()) == {0, 1, 2}


def test_spirals_are_symmetric_through_the_origin():
    x = build_dataset("spirals").sample(40_000, gen(13), dtype=torch.float64)
    assert_mean_close(x, torch.zeros(2, dtype=torch.float64))
    r = x.norm(dim=1)
    assert float(r.max()) < 3 * math.pi / 3 + 1.0  # r <= 3 pi, jitter 0.5, noise 0.1, /3


# ---------------------------------------------------------------------------------------------
# normalisation
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(README_NAMES))
def test_normalizer_round_trip(name, tmp_path):
    ds = make(name, tmp_path)
    norm = ds.normalizer()
    assert norm is ds.normalizer()  # cached
    assert norm.shift.dtype == torch.float64 and norm.scale.dtype == torch.float64
    x = ds.sample(500, gen(14), dtype=torch.float64)
    assert torch.allclose(norm.to_data(norm.to_model(x)), x, rtol=1e-12, atol=1e-12)
    expected = -float(torch.log(torch.broadcast_to(norm.scale, ds.sample_shape)).sum())
    assert norm.log_abs_det_jacobian() == pytest.approx(expected, rel=1e-12)
    assert norm.sample_shape == ds.sample_shape
    assert norm.mode == ("minmax" if ds.is_image else "standardise")


@pytest.mark.parametrize("case", sorted(MIXTURE_CASES))
def test_mixture_normalizer_uses_exact_moments(case):
    ds = build_dataset(*MIXTURE_CASES[case])
    mix, norm = ds.mixture(), ds.normalizer()
    assert torch.allclose(norm.shift, mix.mean())
    assert torch.allclose(norm.scale**2, torch.diagonal(mix.covariance()))
    y = norm.to_model(ds.sample(100_000, gen(15), dtype=torch.float64))
    assert_mean_close(y, torch.zeros(ds.dim, dtype=torch.float64))
    # Var(y^2) estimated from the sample gives the std's tolerance
    sq = y**2
    se = sq.std(0) / math.sqrt(y.shape[0])
    assert bool(((sq.mean(0) - 1).abs() <= Z * se).all())


@pytest.mark.parametrize("name", TOY_NAMES)
def test_toy_normalizer_standardises(name):
    ds = build_dataset(name)
    n = 100_000
    y = ds.normalizer().to_model(ds.sample(n, gen(16), dtype=torch.float64))
    # the map comes from an independent reference sample: both sampling errors count
    inflate = math.sqrt(1 + n / REFERENCE_SAMPLES)
    se = inflate / math.sqrt(n)
    assert bool((y.mean(0).abs() <= Z * se).all()), y.mean(0)
    sq = y**2
    se2 = inflate * sq.std(0) / math.sqrt(n)
    assert bool(((sq.mean(0) - 1).abs() <= Z * se2).all()), sq.mean(0)


def test_toy_normalizer_is_deterministic():
    a, b = build_dataset("swissroll").normalizer(), build_dataset("swissroll").normalizer()
    assert a == b
    assert a != build_dataset("swissroll", {"noise": 0.5}).normalizer()


def test_model_mixture_and_jacobian_agree_with_change_of_variables():
    ds = build_dataset(*MIXTURE_CASES["gmm-covs-3d"])
    norm = ds.normalizer()
    model_mix = norm.to_model_mixture(ds.mixture())
    x = ds.sample(50, gen(17), dtype=torch.float64)
    # log p_model(y) = log p_data(x) - log|dy/dx|
    lhs = model_mix.log_prob(norm.to_model(x))
    assert torch.allclose(lhs, ds.log_prob(x) - norm.log_abs_det_jacobian(), atol=1e-10)


def test_normalizer_attrs_round_trip_plain_json_and_hdf5(tmp_path):
    h5py = pytest.importorskip("h5py")
    norms = [
        build_dataset("8gaussians").normalizer(),
        Normalizer.minmax(0.0, 16.0, (1, 8, 8)),
        Normalizer.identity((3,)),
    ]
    for i, norm in enumerate(norms):
        attrs = norm.to_attrs()
        json.dumps(attrs)  # plain Python values only
        assert Normalizer.from_attrs(json.loads(json.dumps(attrs))) == norm
        with h5py.File(tmp_path / f"n{i}.h5", "w") as f:
            f.attrs.update(attrs)
        with h5py.File(tmp_path / f"n{i}.h5", "r") as f:
            back = Normalizer.from_attrs(dict(f.attrs))
        assert back == norm
        assert back.log_abs_det_jacobian() == norm.log_abs_det_jacobian()


def test_minmax_and_standardise_guard_against_constants():
    mm = Normalizer.minmax(2.0, 2.0, (1, 2, 2))
    assert float(mm.scale) == 1.0
    assert torch.equal(mm.to_model(torch.full((1, 1, 2, 2), 2.0)), torch.zeros(1, 1, 2, 2))
    st = Normalizer.standardise([1.0, 5.0], [0.0, 2.0], (2,))
    assert st.scale.tolist() == [1.0, 2.0]
    assert st.log_abs_det_jacobian() == pytest.approx(-math.log(2.0))
    assert Normalizer.minmax(0.0, 16.0, (1, 8, 8)).log_abs_det_jacobian() == pytest.approx(
        -64 * math.log(8.0)
    )


def test_normalizer_accepts_flattened_batches():
    norm = Normalizer.standardise(
        torch.arange(4.0).reshape(1, 2, 2), torch.full((1, 2, 2), 2.0), (1, 2, 2)
    )
    x = torch.randn(5, 1, 2, 2, generator=gen(18), dtype=torch.float64)
    assert torch.allclose(norm.to_model(x.reshape(5, 4)), norm.to_model(x).reshape(5, 4))
    with pytest.raises(ValueError, match="match neither"):
        norm.to_model(torch.zeros(5, 3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shift": 0.0, "scale": 0.0}, "positive"),
        ({"shift": float("nan"), "scale": 1.0}, "finite"),
        ({"shift": 0.0, "scale": 1.0, "mode": "zscore"}, "mode"),
        ({"shift": [0.0, 0.0, 0.0], "scale": 1.0, "sample_shape": (2,)}, "broadcast"),
    ],
)
def test_normalizer_refuses_bad_maps(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Normalizer(**kwargs)


# ---------------------------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------------------------
def test_digits():
    pytest.importorskip("sklearn", reason="the digits data set needs scikit-learn")
    ds = build_dataset("digits")
    assert ds.is_image and ds.sample_shape == (1, 8, 8) and len(ds) == 1797
    x = ds.sample(400, gen(19))
    assert x.shape == (400, 1, 8, 8)
    assert float(x.min()) >= 0 and float(x.max()) <= 16
    assert torch.equal(x, x.round())
    y = ds.normalizer().to_model(ds.values)
    assert float(y.min()) == -1.0 and float(y.max()) == 1.0
    # sampled images are rows of the data set
    flat = ds.values.reshape(len(ds), -1).float()
    assert bool((x.reshape(400, 1, -1) == flat[None]).all(-1).any(1).all())


def test_digits_without_sklearn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(
        DataError, match=r"needs scikit-learn: pip install 'sde-workbench\[images\]'"
    ):
        build_dataset("digits")


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------
def test_npy_vectors_are_loaded_and_sampled_by_row(tmp_path):
    data = np.random.default_rng(1).normal(size=(200, 3)) * [1.0, 2.0, 3.0] + [0.0, 1.0, -1.0]
    np.save(tmp_path / "d.npy", data)
    ds = build_dataset("file", {"path": str(tmp_path / "d.npy")})
    assert not ds.is_image and ds.sample_shape == (3,) and len(ds) == 200
    assert np.array_equal(ds.values.numpy(), data)
    x = ds.sample(100, gen(20), dtype=torch.float64)
    assert bool((x[:, None, :] == ds.values[None]).all(-1).any(1).all())
    norm = ds.normalizer()
    assert np.allclose(norm.shift.numpy(), data.mean(0)) and np.allclose(
        norm.scale.numpy(), data.std(0)
    )


def test_npy_1d_becomes_one_coordinate(tmp_path):
    np.save(tmp_path / "d.npy", np.arange(10, dtype=np.int64))
    ds = build_dataset("file", {"path": str(tmp_path / "d.npy")})
    assert ds.sample_shape == (1,) and ds.values[:, 0].tolist() == list(range(10))


def test_npz_single_and_keyed(tmp_path):
    a, b = np.ones((5, 2)), np.zeros((7, 4))
    np.savez(tmp_path / "one.npz", only=a)
    np.savez(tmp_path / "two.npz", a=a, b=b)
    assert build_dataset("file", {"path": str(tmp_path / "one.npz")}).sample_shape == (2,)
    ds = build_dataset("file", {"path": str(tmp_path / "two.npz"), "key": "b"})
    assert ds.sample_shape == (4,) and len(ds) == 7


def test_csv_with_and_without_header(tmp_path):
    data = np.random.default_rng(2).normal(size=(50, 2))
    body = "\n".join(f"{float(x)!r},{float(y)!r}" for x, y in data)
    (tmp_path / "h.csv").write_text("x,y\n" + body + "\n")
    (tmp_path / "n.csv").write_text(body + "\n")
    for name in ("h.csv", "n.csv"):
        ds = build_dataset("file", {"path": str(tmp_path / name)})
        assert ds.sample_shape == (2,) and np.array_equal(ds.values.numpy(), data)


def test_hdf5_single_and_keyed(tmp_path):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "one.h5", "w") as f:
        f.create_dataset("group/points", data=np.ones((6, 2), dtype=np.float32))
    with h5py.File(tmp_path / "two.hdf5", "w") as f:
        f["a"] = np.ones((3, 2))
        f["nested/b"] = np.arange(12.0).reshape(4, 3)
    assert len(build_dataset("file", {"path": str(tmp_path / "one.h5")})) == 6
    ds = build_dataset("file", {"path": str(tmp_path / "two.hdf5"), "key": "/nested/b"})
    assert ds.sample_shape == (3,) and ds.values[3].tolist() == [9.0, 10.0, 11.0]


def test_image_files(tmp_path):
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, size=(20, 5, 6)).astype(np.uint8)
    colour = rng.normal(size=(10, 5, 6, 3)).astype(np.float32)
    planar = rng.normal(size=(10, 3, 5, 7))
    np.save(tmp_path / "grey.npy", grey)
    np.save(tmp_path / "colour.npy", colour)
    np.save(tmp_path / "planar.npy", planar)

    ds = build_dataset("file", {"path": str(tmp_path / "grey.npy")})
    assert ds.is_image and ds.sample_shape == (1, 5, 6)
    assert ds.sample(4, gen(21)).shape == (4, 1, 5, 6)
    norm = ds.normalizer()
    assert norm.mode == "minmax" and norm.shift.ndim == 0
    y = norm.to_model(ds.values.double())
    assert float(y.min()) == -1.0 and float(y.max()) == 1.0

    ds = build_dataset("file", {"path": str(tmp_path / "colour.npy")})
    assert ds.is_image and ds.sample_shape == (3, 5, 6)
    assert float(ds.values[2, 1, 4, 5]) == float(colour[2, 4, 5, 1])  # (n,h,w,c) -> (n,c,h,w)

    ds = build_dataset("file", {"path": str(tmp_path / "planar.npy")})
    assert ds.is_image and ds.sample_shape == (3, 5, 7)


def _write_corrupt_h5(path):
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 20)


@pytest.mark.parametrize(
    ("filename", "writer", "key", "fragments"),
    [
        ("absent.npy", None, None, ["no such file"]),
        ("data.txt", lambda p: p.write_text("1,2\n"), None, ["unknown extension '.txt'", ".npy"]),
        ("bad.npy", lambda p: p.write_bytes(b"not numpy at all"), None, ["cannot be read"]),
        ("bad.npz", lambda p: p.write_bytes(b"PK\x03\x04broken zip"), None, ["cannot be read"]),
        ("bad.h5", _write_corrupt_h5, None, ["cannot be read as HDF5"]),
        (
            "bad.csv",
            lambda p: p.write_text("1,2\n3,oops\n"),
            None,
            ["cannot be read as CSV", "oops"],
        ),
        ("ragged.csv", lambda p: p.write_text("1,2\n3,4,5\n"), None, ["cannot be read as CSV"]),
        ("binary.csv", lambda p: p.write_bytes(b"\xff\xfe\x00\x01"), None, ["not UTF-8"]),
        ("empty.npy", lambda p: np.save(p, np.zeros((0, 2))), None, ["is empty"]),
        ("empty.csv", lambda p: p.write_text("x,y\n"), None, ["is empty"]),
        ("scalar.npy", lambda p: np.save(p, np.float64(3.0)), None, ["single number"]),
        ("five.npy", lambda p: np.save(p, np.zeros((2, 2, 2, 2, 2))), None, ["5-D", "(n, d)"]),
        (
            "wide.npy",
            lambda p: np.save(p, np.zeros((2, 5, 6, 7))),
            None,
            ["4-D data", "c in 1, 3, 4"],
        ),
        ("text.npy", lambda p: np.save(p, np.array(["a", "b"])), None, ["not real numbers"]),
        (
            "objects.npy",
            lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True),
            None,
            ["Python objects", "never unpickled"],
        ),
        (
            "several.npz",
            lambda p: np.savez(p, first=np.ones((2, 2)), second=np.ones((2, 2))),
            None,
            ["several arrays", "first, second", "key"],
        ),
        (
            "keyed.npz",
            lambda p: np.savez(p, first=np.ones((2, 2)), second=np.ones((2, 2))),
            "third",
            ["no array 'third'", "first, second"],
        ),
    ],
)
def test_bad_files_raise_one_line_data_errors(tmp_path, filename, writer, key, fragments):
    path = tmp_path / filename
    if writer is not None:
        writer(path)
    params = {"path": str(path)} | ({"key": key} if key else {})
    with pytest.raises(DataError) as info:
        build_dataset("file", params)
    message = str(info.value)
    assert "\n" not in message
    assert filename in message
    for fragment in fragments:
        assert fragment in message


def test_non_finite_values_are_counted_and_located(tmp_path):
    data = np.ones((10, 2))
    data[4, 1] = np.nan
    data[7, 0] = np.inf
    data[8, :] = np.nan
    np.save(tmp_path / "nan.npy", data)
    with pytest.raises(DataError, match=r"3 NaN and 1 inf \(first in row 4"):
        build_dataset("file", {"path": str(tmp_path / "nan.npy")})
    (tmp_path / "nan.csv").write_text("a,b\n1,2\n3,nan\n")
    with pytest.raises(DataError, match=r"1 NaN and 0 inf \(first in row 1"):
        build_dataset("file", {"path": str(tmp_path / "nan.csv")})


def test_hdf5_key_problems(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "multi.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.ones((3, 2))
        f["g/y"] = np.ones((3, 2))
    with pytest.raises(DataError, match=r"several datasets \(g/y, x\)"):
        build_dataset("file", {"path": str(path)})
    with pytest.raises(DataError, match=r"no dataset 'z'; it holds: g/y, x"):
        build_dataset("file", {"path": str(path), "key": "z"})
    with pytest.raises(DataError, match="'g' is a group"):
        build_dataset("file", {"path": str(path), "key": "g"})


def test_file_config_is_validated_without_reading(tmp_path):
    missing = str(tmp_path / "later.npy")
    assert validate_data_params("file", {"path": missing}) == {
        "path": missing,
        "allow_external": False,
    }
    with pytest.raises(ConfigError) as info:
        validate_data_params("file", {})
    assert info.value.key == "path"
    with pytest.raises(ConfigError) as info:
        validate_data_params("file", {"path": "a.npy", "key": "x"})
    assert info.value.key == "key"
    with pytest.raises(ConfigError) as info:
        validate_data_params("file", {"path": 3})
    assert info.value.key == "path"


# ---------------------------------------------------------------------------------------------
# config errors
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "key", "fragments"),
    [
        ({"means": [[0, 0], [1, 1]], "stds": [1.0]}, "stds", ["1 entries", "2 components"]),
        ({"means": [[0, 0], [1, 1]], "stds": [1, 1], "weights": [1, 2, 3]}, "weights", ["3", "2"]),
        (
            {"means": [[0, 0]], "covs": [[[1, 0], [0, 1]], [[1, 0], [0, 1]]]},
            "covs",
            ["2 matrices", "1 component"],
        ),
        ({"means": [[0, 0]], "stds": [1], "covs": [[[1, 0], [0, 1]]]}, "covs", ["not both"]),
        ({"means": [[0, 0], [1, 1]]}, "stds", ["stds", "covs"]),
        ({"stds": [1.0]}, "means", ["required"]),
        ({"means": [[0, 0], [1, 1, 1]], "stds": [1, 1]}, "means", ["same length"]),
        ({"means": [[0, 0]], "covs": [[[1, 0, 0], [0, 1, 0], [0, 0, 1]]]}, "covs", ["2 x 2"]),
        ({"means": [[0, 0]], "covs": [[[1, 0.5], [0.4, 1]]]}, "covs", ["covs[0]", "not symmetric"]),
        (
            {"means": [[0, 0], [1, 1]], "covs": [[[1, 0], [0, 1]], [[1, 2], [2, 1]]]},
            "covs",
            ["covs[1]", "not positive definite"],
        ),
        ({"means": [[0, 0]], "stds": [-1.0]}, "stds", ["positive"]),
        ({"means": "origin", "stds": [1.0]}, "means", ["nested list"]),
        ({"means": [[0, 0]], "stds": [1.0], "weights": [0.0]}, "weights", ["positive"]),
        ({"means": [[0, 0]], "stds": [1.0], "colour": "red"}, "colour", ["unknown key"]),
    ],
)
def test_gmm_bad_params(params, key, fragments):
    for call in (validate_data_params, build_dataset):
        with pytest.raises(ConfigError) as info:
            call("gmm", params)
        assert info.value.key == key
        for fragment in fragments:
            assert fragment in info.value.message


@pytest.mark.parametrize(
    ("name", "params", "key"),
    [
        ("gmm1d", {"means": [0.0, 1.0], "stds": [1.0]}, "stds"),
        ("gmm1d", {"weights": [1.0, 1.0]}, "weights"),
        ("8gaussians", {"std": 0}, "std"),
        ("8gaussians", {"n": 100}, "n"),
        ("moons", {"noise": "lots"}, "noise"),
        ("pinwheel", {"arms": 2.5}, "arms"),
    ],
)
def test_other_bad_params(name, params, key):
    with pytest.raises(ConfigError) as info:
        build_dataset(name, params)
    assert info.value.key == key


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ConfigError) as info:
        build_dataset("8gausians")
    assert info.value.key == "name"
    assert "did you mean '8gaussians'" in info.value.message
    with pytest.raises(ConfigError):
        validate_data_params("nope", {})


def test_core_data_imports_neither_h5py_nor_sklearn():
    code = (
        "import sys, workbench.core.data as d; d.build_dataset('8gaussians').sample(3); "
        "bad = [m for m in ('h5py', 'sklearn', 'PySide6') if m in sys.modules]; "
        "print(*bad); sys.exit(1 if bad else 0)"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr


# --- only regular files of sane size; declared sizes before allocation ----------------------
@pytest.fixture
def no_hang():
    """A read that blocks (a FIFO opened for reading) fails the test in 10 s, not hangs it."""
    import signal

    def late(signum, frame):
        raise AssertionError("reading the path blocked")

    previous = signal.signal(signal.SIGALRM, late)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv", ".h5"])
@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("fifo", "named pipe (FIFO)"),
        ("dev_zero", "character device"),
        ("directory", "is a directory"),
    ],
)
def test_only_regular_data_files_are_read(tmp_path, no_hang, suffix, kind, fragment):
    import os

    path = tmp_path / f"data{suffix}"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    with pytest.raises(DataError) as info:
        build_dataset("file", {"path": str(path)})
    message = str(info.value)
    assert "\n" not in message and path.name in message and fragment in message


def _npy_header(shape, descr="<f8"):
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def test_a_huge_npy_header_is_refused_before_allocation(tmp_path):
    path = tmp_path / "huge.npy"
    path.write_bytes(_npy_header((10**12, 2)) + bytes(64))
    with pytest.raises(DataError, match=r"declares an array of shape \(1000000000000, 2\)") as info:
        build_dataset("file", {"path": str(path)})
    assert "damaged or truncated" in str(info.value) and "huge.npy" in str(info.value)


def test_a_huge_npz_member_is_refused_before_allocation(tmp_path):
    import zipfile

    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("x.npy", _npy_header((10**12, 2)) + bytes(64))
    with pytest.raises(DataError, match=r"shape \(1000000000000, 2\).*damaged or truncated"):
        build_dataset("file", {"path": str(path)})


def test_an_h5_dataset_larger_than_memory_is_refused_before_reading(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as f:  # 16 TiB declared, nothing written (chunks stay unallocated)
        f.create_dataset("x", shape=(2**40, 2), dtype="f8", chunks=(1024, 2))
    with pytest.raises(DataError, match=r"shape \(1099511627776, 2\).*of memory available"):
        build_dataset("file", {"path": str(path)})


def test_a_file_larger_than_the_memory_limit_is_refused_before_allocation(tmp_path):
    """A genuine .npy (header and data agree) that needs more than the address space left
    under RLIMIT_AS: refused with a message in a child under that limit, not a MemoryError."""
    path = tmp_path / "big.npy"
    header = _npy_header((2**27, 2))  # 2 GiB of float64, as a sparse file
    with path.open("wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + 2**27 * 2 * 8)
    code = (
        "import resource, sys\n"
        "import workbench.io\n"
        "from workbench.core.data import build_dataset\n"
        "from workbench.errors import DataError\n"
        "vm = [int(l.split()[1]) * 1024 for l in open('/proc/self/status') "
        "if l.startswith('VmSize:')][0]\n"
        "resource.setrlimit(resource.RLIMIT_AS, (vm + (512 << 20), vm + (512 << 20)))\n"
        "try:\n"
        "    build_dataset('file', {'path': sys.argv[1]})\n"
        "except DataError as exc:\n"
        "    print(exc)\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "declares an array of shape (134217728, 2) (2.0 GiB)" in done.stdout
    assert "of memory available; not read" in done.stdout


def _external_h5(h5py, path, target):
    with h5py.File(path, "w") as f:
        f.create_dataset("x", shape=(4, 2), dtype="f8", external=[(str(target), 0, 64)])


def test_external_raw_storage_outside_the_folder_is_refused_unless_allowed(tmp_path):
    h5py = pytest.importorskip("h5py")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    raw = elsewhere / "raw.bin"
    raw.write_bytes(np.arange(8, dtype="<f8").tobytes())
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "d.h5"
    _external_h5(h5py, path, raw)
    with pytest.raises(DataError) as info:
        build_dataset("file", {"path": str(path)})
    message = str(info.value)
    assert "refers to files outside its folder" in message and "external raw storage" in message
    assert "data.allow_external = true" in message and "\n" not in message
    data = build_dataset("file", {"path": str(path), "allow_external": True})
    assert torch.equal(data.values, torch.arange(8, dtype=torch.float64).reshape(4, 2))
    # raw storage beside the file, in its own folder, is the user's own split data set
    inside = folder / "raw.bin"
    inside.write_bytes(raw.read_bytes())
    _external_h5(h5py, path, "raw.bin")
    assert build_dataset("file", {"path": str(path)}).values.shape == (4, 2)


def test_a_system_file_as_external_raw_storage_is_never_read(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "passwd.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", shape=(8, 2), dtype="u1", external=[("/etc/passwd", 0, 16)])
    with pytest.raises(DataError, match=r"/etc/passwd"):
        build_dataset("file", {"path": str(path)})


@pytest.mark.parametrize(
    ("filename", "writer"),
    [
        ("big.npy", lambda p: np.save(p, np.array([[1.0, 2.0], [1e308, -1e308]]))),
        ("big.csv", lambda p: p.write_text("x,y\n1,2\n3,1e300\n")),
    ],
)
def test_values_that_overflow_the_standardisation_are_one_line_errors(tmp_path, filename, writer):
    path = tmp_path / filename
    writer(path)
    with pytest.raises(DataError) as info:
        build_dataset("file", {"path": str(path)})
    message = str(info.value)
    assert filename in message and "beyond the float32 range" in message and "\n" not in message


def test_values_within_float32_standardise_to_finite_numbers(tmp_path):
    path = tmp_path / "wide.npy"
    np.save(path, np.array([[1e38, -3e38], [-1e38, 3e38], [0.0, 1.0]]))
    data = build_dataset("file", {"path": str(path)})
    y = data.normalizer().to_model(data.sample(50, torch.Generator().manual_seed(0)).double())
    assert bool(torch.isfinite(y).all())
