"""Sample-quality metrics: exact formulas on small data, known values on Gaussians, noise floor.

Statistical checks use fixed seeds and tolerances derived from the sample size (several
standard errors), never guessed constants.
"""

import math
import statistics

import numpy as np
import pytest
import torch

from workbench.core import metrics
from workbench.core.metrics import (
    METRICS,
    energy_distance,
    median_bandwidth,
    mmd2,
    noise_floor,
    sliced_wasserstein,
)
from workbench.errors import ConfigError


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def normal(n: int, d: int, g: torch.Generator, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, d, generator=g, dtype=torch.float64) + shift


# ---------------------------------------------------------------------------------------------
# brute-force references
# ---------------------------------------------------------------------------------------------
def brute_w2_squared_1d(x: np.ndarray, y: np.ndarray) -> float:
    """W2² between two 1-D empirical laws: replicate both to lcm(n, m) equal-weight atoms."""
    n, m = len(x), len(y)
    L = math.lcm(n, m)
    xs = np.repeat(np.sort(x), L // n)
    ys = np.repeat(np.sort(y), L // m)
    return float(np.mean((xs - ys) ** 2))


def brute_pair_means(x: np.ndarray, y: np.ndarray, k) -> tuple[float, float, float]:
    """U-statistic means of k over x-x (i≠j), y-y (i≠j) and all x-y pairs."""
    dxx = np.linalg.norm(x[:, None] - x[None], axis=-1)
    dyy = np.linalg.norm(y[:, None] - y[None], axis=-1)
    dxy = np.linalg.norm(x[:, None] - y[None], axis=-1)
    n, m = len(x), len(y)
    kxx = (k(dxx).sum() - np.trace(k(dxx))) / (n * (n - 1))
    kyy = (k(dyy).sum() - np.trace(k(dyy))) / (m * (m - 1))
    return float(kxx), float(kyy), float(k(dxy).mean())


# ---------------------------------------------------------------------------------------------
# registry and inputs
# ---------------------------------------------------------------------------------------------
def test_registry_names_every_metric() -> None:
    assert METRICS.names() == ["sw", "mmd", "energy"]
    assert METRICS.get("mmd") is mmd2
    with pytest.raises(ConfigError, match="unknown metric 'wasserstein'"):
        METRICS.get("wasserstein")


def test_inputs_are_checked() -> None:
    x = torch.zeros(10, 2)
    with pytest.raises(ValueError, match="same dimension"):
        energy_distance(x, torch.zeros(10, 3))
    with pytest.raises(ValueError, match="non-finite"):
        mmd2(x, torch.full((10, 2), float("nan")))
    with pytest.raises(ValueError, match="at least 2 points"):
        mmd2(x, torch.zeros(1, 2))
    with pytest.raises(ValueError, match="n_projections"):
        sliced_wasserstein(x, x, n_projections=0)


def test_images_numpy_and_float32_inputs_are_accepted() -> None:
    g = gen(0)
    imgs = torch.rand(20, 1, 4, 4, generator=g)
    other = torch.rand(30, 1, 4, 4, generator=g)
    flat = energy_distance(imgs.reshape(20, 16), other.reshape(30, 16))
    assert energy_distance(imgs, other) == pytest.approx(flat, rel=1e-12)
    assert energy_distance(imgs.numpy(), other.numpy()) == pytest.approx(flat, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# sliced Wasserstein
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "m"), [(7, 7), (6, 4), (5, 3), (12, 18)])
def test_one_dimensional_w2_is_exact_for_unequal_sizes(n: int, m: int) -> None:
    g = gen(n * 100 + m)
    x, y = normal(n, 1, g), normal(m, 1, g, shift=0.7)
    expected = brute_w2_squared_1d(x[:, 0].numpy(), y[:, 0].numpy())
    assert sliced_wasserstein(x, y) ** 2 == pytest.approx(expected, rel=1e-12)


def test_sw_of_1d_gaussians_is_the_shift() -> None:
    """N(0,1) vs N(mu,1), n != m: SW² = mu² - 2 mu (x̄ - ȳ₀) + W₂²(x, y₀) exactly.

    y = y₀ + mu shifts every quantile by mu, so the identity holds to rounding; and since
    x̄ - ȳ₀ ~ N(0, 1/n + 1/m) while W₂²(x, y₀) is O(log n / n), |SW - mu| stays within a few
    standard errors sqrt(1/n + 1/m).
    """
    g = gen(1)
    n, m, mu = 4000, 3000, 1.5
    x, y0 = normal(n, 1, g), normal(m, 1, g)
    w0_sq = sliced_wasserstein(x, y0) ** 2
    sw = sliced_wasserstein(x, y0 + mu)
    mean_gap = float(x.mean() - y0.mean())
    assert sw**2 == pytest.approx(mu**2 - 2 * mu * mean_gap + w0_sq, rel=1e-10)
    se = math.sqrt(1 / n + 1 / m)
    assert abs(sw - mu) < 5 * se + w0_sq


@pytest.mark.parametrize("d", [2, 3, 5])
def test_sw_of_shifted_gaussians_is_shift_over_sqrt_d(d: int) -> None:
    """SW₂(N(0,I), N(mu,I)) = |mu| / sqrt(d): E_θ (θ·mu)² = |mu|²/d for θ uniform on S^(d-1).

    y = x + mu removes the sample noise (every projected quantile moves by θ·mu), leaving only
    the Monte Carlo error over P directions: cos²(θ, mu) ~ Beta(1/2, (d-1)/2) has variance
    2(d-1)/(d²(d+2)), so SW² has standard error |mu|² sqrt(2(d-1)/(d²(d+2)) / P).
    """
    g = gen(d)
    P = 2000
    mu = torch.zeros(d, dtype=torch.float64)
    mu[0], mu[-1] = 1.2, -0.5
    x = normal(500, d, g)
    sw = sliced_wasserstein(x, x + mu, generator=g, n_projections=P)
    norm_sq = float(mu @ mu)
    se = norm_sq * math.sqrt(2 * (d - 1) / (d**2 * (d + 2)) / P)
    assert abs(sw**2 - norm_sq / d) < 4 * se
    assert sw == pytest.approx(math.sqrt(norm_sq / d), rel=0.1)


def test_sw_is_reproducible_from_the_generator() -> None:
    g = gen(5)
    x, y = normal(300, 3, g), normal(200, 3, g, shift=0.3)
    a = sliced_wasserstein(x, y, generator=gen(9), n_projections=50)
    b = sliced_wasserstein(x, y, generator=gen(9), n_projections=50)
    c = sliced_wasserstein(x, y, generator=gen(10), n_projections=50)
    assert a == b and a != c


# ---------------------------------------------------------------------------------------------
# MMD and energy distance: exact on small data
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("block", [1024, 7])
def test_mmd_matches_brute_force(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small block size sends the same data through the off-diagonal block paths."""
    monkeypatch.setattr(metrics, "_BLOCK", block)
    g = gen(2)
    x, y = normal(23, 3, g), normal(17, 3, g, shift=0.4)
    h = 1.3
    kxx, kyy, kxy = brute_pair_means(x.numpy(), y.numpy(), lambda d: np.exp(-(d**2) / (2 * h**2)))
    assert mmd2(x, y, bandwidth=h) == pytest.approx(kxx + kyy - 2 * kxy, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("block", [1024, 5])
def test_energy_distance_matches_brute_force(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_BLOCK", block)
    g = gen(3)
    x, y = normal(19, 2, g) * 2 + 100.0, normal(26, 2, g, shift=0.5) + 100.0
    exx, eyy, exy = brute_pair_means(x.numpy(), y.numpy(), lambda d: d)
    assert energy_distance(x, y) == pytest.approx(2 * exy - exx - eyy, rel=1e-5, abs=1e-6)


def test_median_bandwidth_is_the_median_pairwise_distance() -> None:
    g = gen(4)
    x, y = normal(30, 2, g), normal(20, 2, g)
    z = torch.cat([x, y]).numpy()
    d = np.linalg.norm(z[:, None] - z[None], axis=-1)[np.triu_indices(50, 1)]
    assert median_bandwidth(x, y) == pytest.approx(float(np.median(d)), rel=1e-6)
    same = torch.ones(5, 2)
    assert median_bandwidth(same, same) == 1.0  # all distances zero: a usable fallback


def test_mmd_is_unbiased_for_equal_laws() -> None:
    """MMD²_u has mean zero for equal laws: |mean of R repeats| < 4 standard errors."""
    g = gen(6)
    values = [mmd2(normal(150, 2, g), normal(120, 2, g), generator=g) for _ in range(30)]
    se = statistics.stdev(values) / math.sqrt(len(values))
    assert abs(statistics.fmean(values)) < 4 * se
    assert min(values) < 0  # unbiased, so not clipped at zero


def test_energy_distance_is_unbiased_for_equal_laws() -> None:
    g = gen(7)
    values = [energy_distance(normal(150, 2, g), normal(120, 2, g)) for _ in range(30)]
    se = statistics.stdev(values) / math.sqrt(len(values))
    assert abs(statistics.fmean(values)) < 4 * se


@pytest.mark.parametrize("name", ["sw", "mmd", "energy"])
def test_equal_laws_sit_on_the_noise_floor_shifted_ones_far_above(name: str) -> None:
    metric = METRICS.get(name)
    n = 400

    def reference(k: int, g: torch.Generator | None) -> torch.Tensor:
        return normal(k, 2, g)

    floor, spread = noise_floor(name, reference, n, repeats=8, generator=gen(8))
    g = gen(9)
    same = metric(reference(n, g), reference(n, g), generator=g)
    shifted = metric(reference(n, g), reference(n, g) + 0.5, generator=g)
    assert abs(same - floor) < 5 * spread
    assert shifted > floor + 20 * spread


# ---------------------------------------------------------------------------------------------
# noise floor
# ---------------------------------------------------------------------------------------------
def test_noise_floor_shrinks_with_n_and_is_reproducible() -> None:
    def reference(k: int, g: torch.Generator | None) -> torch.Tensor:
        return normal(k, 2, g)

    small = noise_floor("sw", reference, 100, repeats=6, generator=gen(11), n_projections=64)
    large = noise_floor("sw", reference, 1600, repeats=6, generator=gen(11), n_projections=64)
    # the empirical-vs-empirical SW shrinks roughly like 1/sqrt(n): 16x more points, a clearly
    # lower floor with a tighter spread
    assert large[0] < small[0] / 2
    assert large[1] < small[1]
    assert small[1] > 0
    again = noise_floor("sw", reference, 100, repeats=6, generator=gen(11), n_projections=64)
    assert again == small
    assert noise_floor(sliced_wasserstein, reference, 50, repeats=1, generator=gen(1))[1] == 0.0


def test_noise_floor_passes_options_and_checks_arguments() -> None:
    calls: list[tuple[int, int, float]] = []

    def fake(x, y, *, generator=None, scale=1.0):
        calls.append((len(x), len(y), scale))
        return float(len(calls))

    def reference(k: int, g: torch.Generator | None) -> torch.Tensor:
        return torch.zeros(k, 1)

    mean, std = noise_floor(fake, reference, 10, repeats=3, scale=2.0)
    assert calls == [(10, 10, 2.0)] * 3
    assert (mean, std) == (2.0, 1.0)
    with pytest.raises(ValueError, match="repeats"):
        noise_floor(fake, reference, 10, repeats=0)


# ---------------------------------------------------------------------------------------------
# memory: large samples are summed in blocks
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mmd", "energy"])
def test_large_samples_never_build_a_full_kernel_matrix(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every kernel block stays at most _BLOCK x _BLOCK (4 MiB): at n = 20000 that is what
    keeps memory flat instead of a 3 GiB distance matrix; n = 4000 shows it at a tenth of the
    cost."""
    largest = 0
    addmm = torch.addmm

    def spy(*args, **kwargs):
        nonlocal largest
        out = addmm(*args, **kwargs)
        largest = max(largest, out.numel())
        return out

    monkeypatch.setattr(torch, "addmm", spy)
    g = gen(12)
    n = 4000
    value = METRICS.get(name)(normal(n, 2, g), normal(n, 2, g), generator=g)
    assert 0 < largest <= metrics._BLOCK**2 < n * n
    # equal laws: both are degenerate U-statistics, whose spread is of order 1/n ~ 2.5e-4
    assert abs(value) < 10 / n


@pytest.mark.slow
def test_sliced_wasserstein_at_n_20000() -> None:
    """Projections are sorted batch by batch: n = m = 20000 runs in about a second."""
    g = gen(13)
    x, y = normal(20000, 2, g), normal(20000, 2, g, shift=0.1)
    # y - x shifted by (0.1, 0.1): SW ≈ |mu| / sqrt(2) = 0.1, up to the sample noise floor
    assert sliced_wasserstein(x, y, generator=g) == pytest.approx(0.1, abs=0.03)


@pytest.mark.gpu
def test_metrics_on_cuda_match_the_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the metrics' GPU path is untested here")
    g = gen(14)
    x, y = normal(500, 3, g), normal(400, 3, g, shift=0.2)
    for name in METRICS:
        cpu = METRICS.get(name)(x, y, generator=gen(1))
        gpu = METRICS.get(name)(x.cuda(), y.cuda(), generator=gen(1))
        assert gpu == pytest.approx(cpu, rel=1e-4, abs=1e-6), name
