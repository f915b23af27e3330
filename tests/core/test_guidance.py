"""Labels, class-conditional sampling and classifier-free guidance against their exact truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.config import default_config
from workbench.core.data import build_dataset
from workbench.core.experiment import experiment_of
from workbench.core.guidance import (
    GuidedReference,
    GuidedScore,
    conditional_log_prob,
    guidance_gap,
    guide,
    guided_field,
    tilted_grid,
    tilted_log_density,
)
from workbench.core.mixture import GaussianMixture
from workbench.core.nets import build_score_model
from workbench.core.samplers import build_sampler, sample
from workbench.core.sde import build_sde
from workbench.errors import ConfigError

# two overlapping classes: where guidance and the tilted density part ways visibly
OVERLAP = {"means": [-1.0, 1.0], "stds": [1.0, 1.0], "weights": [0.5, 0.5]}


def _binomial_tol(p: float, n: int, z: float = 4.0) -> float:
    return z * math.sqrt(max(p * (1 - p), 1.0 / n) / n)


# -- labels of each data kind -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["gmm1d", "8gaussians", "gmm"])
def test_mixture_labels_are_the_components_of_the_same_draw(name):
    ds = build_dataset(name)
    k = ds.mixture().n_components
    assert ds.num_classes == k
    n = 20000
    x, y = ds.sample_with_labels(n, torch.Generator().manual_seed(3))
    # the labelled draw is the unlabelled one: same generator state, same points
    assert torch.equal(x, ds.sample(n, torch.Generator().manual_seed(3)))
    assert y.dtype == torch.int64 and int(y.min()) >= 0 and int(y.max()) < k
    shares = torch.bincount(y, minlength=k).double() / n
    for share, w in zip(shares.tolist(), ds.mixture().weights.tolist(), strict=True):
        assert abs(share - w) < _binomial_tol(w, n)
    # each point lies nearer (in its component's own metric) to the component it is labelled by
    # than the labels of another draw would place it: the log-density of its own component is
    # far higher on average than that of a shuffled label
    comp = ds.mixture().component_log_prob(x.double())
    own = comp.gather(1, y[:, None]).mean()
    shuffled = comp.gather(1, y[torch.randperm(n)][:, None]).mean()
    assert own > shuffled + 1.0


def test_unlabelled_sets_have_no_classes():
    ds = build_dataset("moons")
    assert ds.num_classes == 0
    with pytest.raises(Exception, match="no class labels"):
        ds.sample_with_labels(3)


def test_digits_are_labelled_by_their_digit():
    pytest.importorskip("sklearn")
    ds = build_dataset("digits")
    assert ds.num_classes == 10
    x, y = ds.sample_with_labels(500, torch.Generator().manual_seed(0))
    assert x.shape == (500, 1, 8, 8)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # every drawn image is a row of the bundled set with that very digit
    images = torch.as_tensor(bunch.images, dtype=torch.float32).reshape(len(bunch.images), -1)
    for xi, yi in zip(x[:50], y[:50], strict=True):
        rows = (images == xi.reshape(1, -1)).all(1).nonzero().reshape(-1)
        assert len(rows) >= 1 and int(yi) in set(bunch.target[rows.numpy()].tolist())


def _file_set(path, **keys):
    import workbench.io  # noqa: F401  (registers the HDF5 reader)

    return build_dataset("file", {"path": str(path), **keys})


def test_file_labels_npz_csv_and_h5(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(40, 2))
    lab = np.arange(40) % 3
    np.savez(tmp_path / "d.npz", x=pts, y=lab)
    ds = _file_set(tmp_path / "d.npz", key="x", labels="y")
    assert ds.num_classes == 3 and torch.equal(ds.labels, torch.as_tensor(lab))
    x, y = ds.sample_with_labels(200, torch.Generator().manual_seed(1))
    # each drawn point is the row whose label it carries
    for xi, yi in zip(x, y, strict=True):
        row = int(np.argmin(np.abs(pts - xi.numpy()).sum(1)))
        assert lab[row] == int(yi)

    with open(tmp_path / "d.csv", "w") as fh:
        fh.write("a,cls,b\n")
        for p, c in zip(pts, lab, strict=True):
            fh.write(f"{p[0]},{c},{p[1]}\n")
    for spec in ("cls", "1", "-2"):
        ds = _file_set(tmp_path / "d.csv", labels=spec)
        assert ds.sample_shape == (2,)
        assert torch.equal(ds.labels, torch.as_tensor(lab))
        assert np.allclose(ds.values.numpy(), pts)

    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["points"] = pts
        f["meta/labels"] = lab.astype(np.int32)
    ds = _file_set(tmp_path / "d.h5", key="points", labels="meta/labels")
    assert ds.num_classes == 3


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (np.arange(39) % 3, "has 39 labels for 40 samples"),
        (np.full(40, 1.5), "not a whole number"),
        (np.r_[np.zeros(39), -1.0], "negative"),
        (np.zeros((40, 2)), "one number per sample"),
    ],
)
def test_bad_file_labels_are_one_config_line_naming_the_key(tmp_path, labels, expected):
    np.savez(tmp_path / "d.npz", x=np.zeros((40, 2)), y=labels)
    config = default_config().with_overrides(
        {
            "data.name": "file",
            "data.path": str(tmp_path / "d.npz"),
            "data.key": "x",
            "data.labels": "y",
        }
    )
    with pytest.raises(ConfigError) as info:
        experiment_of(config)
    assert info.value.key == "data.labels"
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_bad_csv_label_columns(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n1,0\n2,1\n")
    with pytest.raises(ConfigError, match=r"no column named 'c'.*a, b"):
        _file_set(tmp_path / "d.csv", labels="c")
    with pytest.raises(ConfigError, match="no column 5"):
        _file_set(tmp_path / "d.csv", labels="5")
    with pytest.raises(ConfigError, match="npz"):
        build_dataset("file", {"path": str(tmp_path / "d.npy"), "labels": "y"})


# -- the exact conditional score and guided field ----------------------------------------------
def _autograd_score(fn, x):
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(x).sum(), x)
    return grad


@pytest.mark.parametrize("name", ["gmm1d", "8gaussians"])
def test_guided_field_equals_its_closed_form(name):
    """GuidedScore over the analytic model == (1+w) grad log p_t(x|c) - w grad log p_t(x), both
    gradients taken by autograd of the exact log-densities (not through component_score)."""
    config = default_config().with_overrides({"data.name": name, "model.kind": "analytic"})
    built = experiment_of(config, with_model=True)
    mix, sde, model = built.mixture, built.sde, built.model
    gen = torch.Generator().manual_seed(0)
    x = 2 * torch.randn(64, mix.dim, generator=gen, dtype=torch.float64)
    for t in (0.01, 0.3, 0.9):
        m, s = sde.marginal_coeffs(torch.tensor(t, dtype=torch.float64))
        for c in (0, mix.n_components - 1):
            for w in (0.0, 0.5, 3.0):
                expected = (1 + w) * _autograd_score(
                    lambda z, c=c, m=m, s=s: conditional_log_prob(mix, z, c, m, s), x
                ) - w * _autograd_score(lambda z, m=m, s=s: mix.log_prob(z, m, s), x)
                got = GuidedScore(model, c, w)(x, torch.tensor(t, dtype=torch.float64))
                assert torch.allclose(got, expected, rtol=1e-9, atol=1e-9)
                assert torch.allclose(guided_field(mix, x, c, w, m, s), expected, atol=1e-9)


def test_conditional_score_per_sample_classes():
    mix = build_dataset("8gaussians").mixture()
    x = torch.randn(16, 2, dtype=torch.float64)
    y = torch.arange(16) % 8
    got = mix.component_score(x, y, 0.7, 0.5)
    for i in range(16):
        assert torch.allclose(got[i], mix.component_score(x[i : i + 1], int(y[i]), 0.7, 0.5)[0])


def _analytic(data: dict, name: str = "gmm1d"):
    ds = build_dataset(name, data)
    norm = ds.normalizer()
    sde = build_sde("vp", {})
    model = build_score_model(
        "analytic", {}, sde, ds.sample_shape, norm.to_model_mixture(ds.mixture())
    )
    return ds, norm, sde, model


def _draw(model, sde, ds, norm, n, seed, steps=400):
    sampler = build_sampler(sde, model, {"sampler": "em", "steps": steps})
    *_, last = sample(sampler, n, ds.sample_shape, torch.Generator().manual_seed(seed))
    return norm.to_data(last.x.double())


@pytest.mark.parametrize("c", [0, 1, 2])
def test_exact_conditional_sampling_draws_the_chosen_component(c):
    """With the exact conditional score (w = 0) the samples follow component c: the shares of
    points each component is most responsible for match those of exact draws of component c,
    within a binomial tolerance for n."""
    ds, norm, sde, model = _analytic({})
    mix = ds.mixture()
    n = 3000
    x = _draw(guide(model, c, 0.0), sde, ds, norm, n, seed=10 + c)
    got = torch.bincount(mix.responsibilities(x).argmax(-1), minlength=3).double() / n
    comp = GaussianMixture(torch.ones(1), mix.means[c : c + 1], mix.covs[c : c + 1])
    exact = comp.sample(400_000, torch.Generator().manual_seed(1), torch.float64)
    want = torch.bincount(mix.responsibilities(exact).argmax(-1), minlength=3).double() / 400_000
    assert float(want[c]) > 0.9  # the chosen component is the one mostly drawn
    for k in range(3):
        assert abs(float(got[k] - want[k])) < _binomial_tol(float(want[k]), n), (k, got, want)
    # and the plain (unconditional) model still draws the whole mixture
    x_all = _draw(guide(model, -1, 0.0), sde, ds, norm, n, seed=5)
    shares = torch.bincount(mix.responsibilities(x_all).argmax(-1), minlength=3).double() / n
    assert float(shares.min()) > 0.1


# -- the tilted density and how far guidance lands from it -------------------------------------
def test_tilted_grid_is_normalised_and_matches_known_cases():
    mix = build_dataset("gmm1d", OVERLAP).mixture()
    # w = 0: the tilt is p(x | c) itself, Z = 1
    g0 = tilted_grid(mix, 1, 0.0)
    assert abs(g0.log_z) < 1e-6
    x = torch.linspace(-3, 5, 50, dtype=torch.float64)[:, None]
    assert torch.allclose(g0.log_prob(x), conditional_log_prob(mix, x, 1), atol=1e-6)
    # equal unit-variance components at +-1: p(x|1)^(1+w) p(x)^-w is known in closed form
    # only through Z; check the grid's mass is 1 and Z is finite and larger than w = 0's
    g = tilted_grid(mix, 1, 2.0)
    assert abs(float(np.exp(g.log_density).sum()) * g.widths[0] - 1.0) < 1e-9
    # far from the other components the tilt is w_c^-w p(x | c): log Z -> w log(1 / w_c)
    far = build_dataset("8gaussians", {"radius": 10.0, "std": 0.3}).mixture()
    gf = tilted_grid(far, 3, 2.5)
    assert abs(gf.log_z - 2.5 * math.log(8)) < 1e-6
    assert abs(float(gf.density.sum()) * math.prod(gf.widths) - 1.0) < 1e-9
    # the unnormalised log-density is what the formula says
    assert torch.allclose(
        tilted_log_density(mix, x, 1, 2.0),
        3.0 * conditional_log_prob(mix, x, 1) - 2.0 * mix.log_prob(x),
    )


def test_grid_draws_follow_the_tilted_density():
    mix = build_dataset("gmm1d", OVERLAP).mixture()
    g = tilted_grid(mix, 1, 2.0)
    draws = g.sample(50_000, torch.Generator().manual_seed(0))
    grid_mean = (
        float((torch.from_numpy(g.axes[0]) * torch.from_numpy(g.density)).sum()) * g.widths[0]
    )
    assert abs(float(draws.mean()) - grid_mean) < 4 * float(draws.std()) / math.sqrt(50_000)
    assert grid_mean > 1.0  # the tilt pushes class 1 away from class 0's side


def test_guidance_misses_the_tilted_density_and_the_gap_grows_with_w():
    """w = 0 samples the tilted law (= p(x|c)) within the noise floor; w > 0 does not, and the
    sliced-Wasserstein gap to the tilted law grows with w far beyond its floor."""
    ds, norm, sde, model = _analytic(OVERLAP)
    mix = ds.mixture()
    n = 3000
    gaps = []
    for w in (0.0, 1.0, 4.0):
        x = _draw(guide(model, 1, w), sde, ds, norm, n, seed=7)
        report = guidance_gap(x, tilted_grid(mix, 1, w), seed=2)
        floor_mean, floor_std = report["sw_floor"]
        gaps.append((report["sw"], floor_mean, floor_std))
    sw0, f0, s0 = gaps[0]
    assert sw0 < f0 + 5 * s0 + 0.02  # EM's 400-step bias is below this
    for (sw, f, s), (prev, _, _) in zip(gaps[1:], gaps[:-1], strict=True):
        assert sw > f + 10 * s and sw > prev


# -- the wrapper's refusals -------------------------------------------------------------------
def test_guide_refuses_what_it_cannot_do():
    _, _, sde, model = _analytic({})
    assert guide(model, -1, 0.0) is model
    with pytest.raises(ConfigError, match=r"0 \.\. 2 .*got 3") as info:
        guide(model, 3, 1.0)
    assert info.value.key == "class_label"
    with pytest.raises(ConfigError, match="class") as info:
        guide(model, -1, 2.0)
    assert info.value.key == "guidance"
    with pytest.raises(ConfigError, match=">= 0"):
        guide(model, 0, -0.5)
    net = build_score_model("mlp", {"hidden": 8, "depth": 1}, sde, (1,))
    with pytest.raises(ConfigError, match="trained without labels") as info:
        guide(net, 0, 1.0)
    assert info.value.key == "class_label"


def test_guided_reference_is_a_normalised_density_whose_score_is_the_guided_field():
    """The views' reference under guidance: q_t = p_t(x|c)^(1+w) p_t(x)^-w / Z_t integrates to
    1 at every t, and its score (the guided field) is grad log q_t (finite differences)."""
    config = default_config().with_overrides({"data.name": "gmm1d", "model.kind": "analytic"})
    built = experiment_of(config)
    ref = GuidedReference(None, built.mixture, built.sde, 1, 2.0)
    x = np.linspace(-12, 12, 24001)[:, None]
    for t in (0.0, 0.2, 0.7):
        q = ref.density(t, x)[:]
        assert abs(float(q.sum()) * (x[1, 0] - x[0, 0]) - 1.0) < 1e-6
        h = 1e-5
        pts = np.array([[-1.0], [0.1], [0.8], [2.0]])
        fd = (np.log(ref.density(t, pts + h)) - np.log(ref.density(t, pts - h))) / (2 * h)
        assert np.allclose(ref.score(t, pts)[:, 0], fd, rtol=1e-5, atol=1e-5)
    # one time per point (a time-by-x heat map) gives each point its own t's density
    times = np.array([0.0, 0.2, 0.7])
    pts = np.array([[0.3], [0.3], [0.3]])
    per_point = ref.density(times, pts)
    for i, t in enumerate(times):
        assert per_point[i] == pytest.approx(ref.density(float(t), pts[:1])[0], rel=1e-12)
