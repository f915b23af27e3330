"""Reverse-time samplers, time grids, imputation and the forward simulation.

Sample quality is judged against the exact law: 8gaussians in model units, whose score under
every linear SDE is known (the AnalyticScoreModel). Tolerances come from the sample size:
at n = 20000 the standard error of a difference of two mean log-densities is ~0.01 nats and
that of a component proportion ~0.003, so 0.04 nats and 0.015 are about 4 standard errors;
the sliced Wasserstein distance must lie within the spread (mean + 3 sd) of its own noise
floor, measured between pairs of fresh data sets of the same size.

The SDE samplers need ~1000 score evaluations on 20000 points. AnalyticScoreModel (general
full-covariance code) takes ~25 ms per call for that batch on one CPU core, so those runs use
``MatmulMixtureScore``: the same exact score written as a few small matmuls (~1.5 ms), checked
against AnalyticScoreModel below. The ODE sampler (~100 evaluations) uses AnalyticScoreModel.
"""

import itertools
import math

import pytest
import torch
from torch import Tensor

from workbench.core.data import build_dataset
from workbench.core.mixture import GaussianMixture
from workbench.core.nets import AnalyticScoreModel
from workbench.core.samplers import (
    SAMPLERS,
    TIME_GRIDS,
    ImputationSampler,
    SamplerStep,
    build_sampler,
    impute,
    sample,
    simulate_forward,
    time_grid,
)
from workbench.core.sde import SDE, build_sde
from workbench.errors import ConfigError

F64 = torch.float64
N = 20_000


@pytest.fixture(autouse=True)
def one_thread():
    """These batches are small (20000 x 2): a second intra-op thread gains little, and where
    the cores are shared its spin-waiting can make a run ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
class MatmulMixtureScore(torch.nn.Module):
    """The exact score of a low-dimensional Gaussian mixture under a linear SDE, by matmuls.

    p_t = sum_k w_k N(m mu_k, C_k(t)), C_k(t) = m^2 C_k + s^2 I, with P_k = C_k(t)^-1:
    log w_k N(x) = -1/2 x^T P_k x + x^T P_k m mu_k + const_k, so the logits are
    (x x^T) . P_k + x . b_k + c_k and the score is sum_k r_k (b_k - P_k x).
    """

    def __init__(self, mixture: GaussianMixture, sde) -> None:
        super().__init__()
        self.sde, self.mix = sde, mixture

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        t = torch.as_tensor(t, dtype=F64).reshape(-1)[0]  # one time for the batch
        m, s = self.sde.marginal_coeffs(t)
        w, mu, covs = self.mix.weights, self.mix.means, self.mix.covs
        k, d = mu.shape
        cov = m * m * covs + s * s * torch.eye(d, dtype=F64)
        prec = torch.linalg.inv(cov)
        b = torch.einsum("kij,kj->ki", prec, m * mu)
        const = torch.log(w) - 0.5 * ((m * mu * b).sum(-1) + torch.logdet(cov))
        flat = x.reshape(x.shape[0], d).to(F64)
        outer = (flat[:, :, None] * flat[:, None, :]).reshape(-1, d * d)
        logits = -0.5 * outer @ prec.reshape(k, d * d).T + flat @ b.T + const
        e = torch.exp(logits - logits.amax(-1, keepdim=True))
        r = e / e.sum(-1, keepdim=True)
        p_bar = (r @ prec.reshape(k, d * d)).reshape(-1, d, d)
        score = r @ b - (p_bar @ flat[:, :, None])[..., 0]
        return score.reshape(x.shape).to(x.dtype)


def eight_gaussians() -> GaussianMixture:
    ds = build_dataset("8gaussians")
    return ds.normalizer().to_model_mixture(ds.mixture())


MIX = eight_gaussians()
ANGLES = torch.rand(64, generator=torch.Generator().manual_seed(5), dtype=F64) * math.pi
DIRECTIONS = torch.stack([ANGLES.cos(), ANGLES.sin()], 1)


def sliced_wasserstein(a: Tensor, b: Tensor) -> float:
    """Mean over 64 fixed directions of the 1-D W1 distance (sorted projections)."""
    pa = (a.to(F64) @ DIRECTIONS.T).sort(0).values
    pb = (b.to(F64) @ DIRECTIONS.T).sort(0).values
    return float((pa - pb).abs().mean())


@pytest.fixture(scope="module")
def reference() -> dict:
    gen = torch.Generator().manual_seed(123)
    data = MIX.sample(N, gen, dtype=F64)
    floor = torch.tensor(
        [
            sliced_wasserstein(MIX.sample(N, gen, dtype=F64), MIX.sample(N, gen, dtype=F64))
            for _ in range(10)
        ]
    )
    return {
        "data": data,
        "logp": float(MIX.log_prob(data).mean()),
        "props": proportions(data),
        "sw_limit": float(floor.mean() + 3 * floor.std()),
    }


def proportions(x: Tensor) -> Tensor:
    labels = MIX.responsibilities(x.to(F64)).argmax(-1)
    return torch.bincount(labels, minlength=MIX.n_components).to(F64) / x.shape[0]


def final(rows) -> SamplerStep:
    last = None
    for last in rows:  # noqa: B007
        pass
    return last


def assert_like_data(x: Tensor, ref: dict) -> None:
    assert torch.isfinite(x).all()
    dlogp = float(MIX.log_prob(x.to(F64)).mean()) - ref["logp"]
    assert abs(dlogp) < 0.04, dlogp
    dprop = float((proportions(x) - ref["props"]).abs().max())
    assert dprop < 0.015, dprop
    sw = sliced_wasserstein(x, ref["data"])
    assert sw < ref["sw_limit"], (sw, ref["sw_limit"])


# --------------------------------------------------------------------------------------------
# the helper score is the analytic score
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["vp", "ve", "subvp", "linear"])
def test_matmul_score_equals_analytic_score(kind: str) -> None:
    sde = build_sde(kind)
    x = 2 * torch.randn(300, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    for t in (1e-3, 0.05, 0.4, 1.0):
        tt = torch.tensor(t, dtype=F64)
        exact = AnalyticScoreModel(MIX, sde)(x, tt)
        torch.testing.assert_close(MatmulMixtureScore(MIX, sde)(x, tt), exact, rtol=1e-7, atol=1e-8)


# --------------------------------------------------------------------------------------------
# time grids
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", TIME_GRIDS.names())
@pytest.mark.parametrize("rho", [1.0, 3.0, 7.0])
@pytest.mark.parametrize("sde_kind", ["vp", "ve"])
def test_time_grids_run_from_T_to_eps(kind: str, rho: float, sde_kind: str) -> None:
    sde = build_sde(sde_kind, {"T": 2.0})
    grid = time_grid(kind, 37, 2.0, 1e-3, rho, sde)
    assert grid.dtype == F64 and grid.shape == (38,)
    assert grid[0] == 2.0 and grid[-1] == 1e-3
    assert bool((grid.diff() < 0).all())


def test_power_t_grid_with_rho_one_is_uniform_and_others_crowd_eps() -> None:
    torch.testing.assert_close(
        time_grid("power_t", 50, 1.0, 1e-3, 1.0), time_grid("uniform", 50, 1.0, 1e-3)
    )
    for kind in ("quadratic", "power_t", "edm"):
        steps = -time_grid(kind, 50, 1.0, 1e-3, 7.0, build_sde("vp")).diff()
        assert steps[-1] < steps[0] / 10


def test_bad_grid_settings_name_their_key() -> None:
    with pytest.raises(ConfigError) as exc:
        time_grid("cubic", 10, 1.0, 1e-3)
    assert exc.value.key == "grid"
    with pytest.raises(ConfigError) as exc:
        time_grid("uniform", 10, 1.0, 1.5)
    assert exc.value.key == "eps"


# --------------------------------------------------------------------------------------------
# sample quality against the exact law (n = 20000)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["vp", "ve"])
@pytest.mark.parametrize(
    "params",
    [{"sampler": "em", "steps": 1000}, {"sampler": "pc", "steps": 1000}],
    ids=["em", "pc"],
)
def test_sde_samplers_match_the_data(kind: str, params: dict, reference: dict) -> None:
    sde = build_sde(kind)
    sampler = build_sampler(sde, MatmulMixtureScore(MIX, sde), params)
    rows = sample(sampler, N, (2,), torch.Generator().manual_seed(0))
    assert_like_data(final(rows).x, reference)


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_probability_flow_rk45_matches_the_data(kind: str, reference: dict) -> None:
    sde = build_sde(kind)
    sampler = build_sampler(sde, AnalyticScoreModel(MIX, sde), {"sampler": "ode"})
    last = final(sample(sampler, N, (2,), torch.Generator().manual_seed(0)))
    assert last.t == 0.0
    assert_like_data(last.x, reference)
    assert 20 < sampler.nfe < 400


@pytest.mark.parametrize("kind", ["subvp", "linear"])
def test_langevin_corrector_improves_few_step_sampling(kind: str, reference: dict) -> None:
    sde = build_sde(kind)
    model = MatmulMixtureScore(MIX, sde)
    quality = {}
    for corrector in ("none", "langevin"):
        params = {"sampler": "pc", "steps": 50, "corrector": corrector}
        x = final(
            sample(build_sampler(sde, model, params), N, (2,), torch.Generator().manual_seed(0))
        ).x
        quality[corrector] = (
            float(MIX.log_prob(x.to(F64)).mean()) - reference["logp"],
            sliced_wasserstein(x, reference["data"]),
        )
    (lp_none, sw_none), (lp_lang, sw_lang) = quality["none"], quality["langevin"]
    # ~0.01 nats and ~0.003 in SW are the noise of these statistics at n = 20000
    assert lp_lang > lp_none - 0.01, quality
    assert sw_lang < sw_none + 0.003, quality


# --------------------------------------------------------------------------------------------
# predictors and their limits
# --------------------------------------------------------------------------------------------
def test_ancestral_is_refused_for_subvp_but_not_vp_ve_cosine() -> None:
    with pytest.raises(ConfigError) as exc:
        build_sampler(
            build_sde("subvp"), lambda x, t: x, {"sampler": "pc", "predictor": "ancestral"}
        )
    assert exc.value.key == "predictor"
    for kind in ("vp", "ve", "cosine"):
        build_sampler(build_sde(kind), lambda x, t: x, {"sampler": "pc", "predictor": "ancestral"})


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"sampler": "sde"}, "sampler"),
        ({"sampler": "pc", "predictor": "heun"}, "predictor"),
        ({"sampler": "pc", "corrector": "ald"}, "corrector"),
        ({"sampler": "ode", "integrator": "rk23"}, "integrator"),
        ({"sampler": "em", "grid": "log"}, "grid"),
        ({"sampler": "em", "eps": 1.0}, "eps"),
    ],
)
def test_bad_sample_settings_name_their_key(params: dict, key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        build_sampler(build_sde("vp"), lambda x, t: x, params)
    assert exc.value.key == key


@pytest.mark.parametrize("predictor", ["euler_maruyama", "reverse_diffusion", "ancestral"])
@pytest.mark.parametrize("kind", ["vp", "ve", "cosine"])
def test_every_predictor_gets_close_in_200_steps(predictor: str, kind: str) -> None:
    sde = build_sde(kind)
    params = {"sampler": "pc", "steps": 200, "predictor": predictor, "corrector": "none"}
    x = final(
        sample(
            build_sampler(sde, MatmulMixtureScore(MIX, sde), params),
            4000,
            (2,),
            torch.Generator().manual_seed(1),
        )
    ).x
    data = MIX.sample(4000, torch.Generator().manual_seed(2), dtype=F64)
    # a smoke test of every pair: the mean log-density is within 0.2 nats (its sd is ~0.02 at
    # n = 4000; the first-order discretisation error of 200 steps is 0.05-0.14 nats here)
    assert abs(float(MIX.log_prob(x.to(F64)).mean() - MIX.log_prob(data).mean())) < 0.2


# --------------------------------------------------------------------------------------------
# rows, NFE, seeds, chunks
# --------------------------------------------------------------------------------------------
def counting_model(sde: SDE):
    model = AnalyticScoreModel(MIX, sde)
    calls = {"n": 0}

    def score(x: Tensor, t: Tensor) -> Tensor:
        calls["n"] += 1
        return model(x, t)

    return score, calls


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"sampler": "em", "steps": 30}, 31),
        ({"sampler": "em", "steps": 30, "denoise": False}, 30),
        ({"sampler": "pc", "steps": 30}, 61),
        ({"sampler": "pc", "steps": 30, "n_corrector_steps": 3}, 121),
        ({"sampler": "pc", "steps": 30, "corrector": "none", "denoise": False}, 30),
        ({"sampler": "ode", "integrator": "euler", "steps": 30}, 31),
        ({"sampler": "ode", "integrator": "heun", "steps": 30}, 61),
        ({"sampler": "ode", "integrator": "rk4", "steps": 30, "denoise": False}, 120),
    ],
)
def test_nfe_counts_are_exact(params: dict, expected: int) -> None:
    sde = build_sde("vp")
    score, calls = counting_model(sde)
    sampler = build_sampler(sde, score, params)
    rows = list(sample(sampler, 16, (2,), torch.Generator().manual_seed(0)))
    assert sampler.nfe == calls["n"] == expected
    denoise = params.get("denoise", True)
    assert len(rows) == 30 + 1 + denoise
    assert [r.step for r in rows] == list(range(len(rows)))
    assert rows[0].t == sde.T and rows[-1].t == (0.0 if denoise else 1e-3)
    if not denoise:
        assert rows[-1].t == sampler.eps


def test_rk45_sampler_yields_accepted_steps_and_counts_them() -> None:
    sde = build_sde("ve")
    score, calls = counting_model(sde)
    sampler = build_sampler(sde, score, {"sampler": "ode", "rtol": 1e-4, "atol": 1e-4})
    rows = list(sample(sampler, 64, (2,), torch.Generator().manual_seed(0)))
    ts = [r.t for r in rows]
    assert ts[0] == 1.0 and ts[-2] == pytest.approx(1e-3, abs=0) and ts[-1] == 0.0
    assert all(a > b for a, b in itertools.pairwise(ts))
    assert sampler.nfe == calls["n"] and sampler.adaptive and sampler.n_steps is None


def test_step_zero_is_the_prior_draw() -> None:
    sde = build_sde("ve")
    sampler = build_sampler(sde, AnalyticScoreModel(MIX, sde), {"steps": 5})
    x_T = sde.prior_sample((32, 2), torch.Generator().manual_seed(3))
    first = next(iter(sampler.run(x_T)))
    assert first.step == 0 and first.t == sde.T and first.x is x_T


@pytest.mark.parametrize(
    "params",
    [
        {"sampler": "em", "steps": 40},
        {"sampler": "pc", "steps": 40},
        {"sampler": "ode", "integrator": "heun", "steps": 20},
        {"sampler": "ode"},
    ],
)
def test_same_seed_gives_identical_samples(params: dict) -> None:
    sde = build_sde("vp")
    sampler = build_sampler(sde, AnalyticScoreModel(MIX, sde), params)

    def draw(seed: int) -> Tensor:
        return final(sample(sampler, 256, (2,), torch.Generator().manual_seed(seed))).x

    assert torch.equal(draw(7), draw(7))
    assert not torch.equal(draw(7), draw(8))


def test_chunks_advance_in_lockstep() -> None:
    sde = build_sde("vp")
    score, calls = counting_model(sde)
    sampler = build_sampler(sde, score, {"sampler": "pc", "steps": 12})
    whole = list(sample(sampler, 100, (2,), torch.Generator().manual_seed(0)))
    chunked = list(sample(sampler, 100, (2,), torch.Generator().manual_seed(0), chunk_size=30))
    assert [(r.step, r.t) for r in chunked] == [(r.step, r.t) for r in whole]
    assert all(r.x.shape == (100, 2) for r in chunked)
    assert torch.equal(chunked[0].x, whole[0].x)  # the same prior draw
    assert sampler.nfe == 12 * 2 + 1
    assert calls["n"] == 25 + 4 * 25  # the whole run, then 4 chunks of 25 calls each


def test_adaptive_chunks_give_the_prior_and_the_final_rows() -> None:
    sde = build_sde("vp")
    sampler = build_sampler(
        sde, AnalyticScoreModel(MIX, sde), {"sampler": "ode", "rtol": 1e-3, "atol": 1e-3}
    )
    rows = list(sample(sampler, 90, (2,), torch.Generator().manual_seed(0), chunk_size=40))
    assert len(rows) == 2 and rows[0].t == 1.0 and rows[1].t == 0.0
    assert rows[1].x.shape == (90, 2) and torch.isfinite(rows[1].x).all()
    # each chunk is an independent deterministic solve of the same ODE
    alone = final(sampler.run(rows[0].x[40:80].clone())).x
    torch.testing.assert_close(rows[1].x[40:80], alone)


def test_sde_loops_read_nothing_back_from_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """No .item(), float(), bool() or tolist() on a tensor inside the em/pc/fixed-ODE loops."""
    sde = build_sde("vp")
    model = MatmulMixtureScore(MIX, sde)
    samplers = [
        build_sampler(sde, model, {"sampler": "em", "steps": 10}),
        build_sampler(sde, model, {"sampler": "pc", "steps": 10, "n_corrector_steps": 2}),
        build_sampler(sde, model, {"sampler": "ode", "integrator": "rk4", "steps": 10}),
    ]
    x_T = sde.prior_sample((64, 2), torch.Generator().manual_seed(0))

    def forbidden(*args, **kw):
        raise AssertionError("host read-back inside a sampling loop")

    for name in ("item", "tolist", "__float__", "__bool__", "__int__"):
        monkeypatch.setattr(Tensor, name, forbidden)
    for sampler in samplers:
        rows = list(sampler.run(x_T, torch.Generator().manual_seed(1)))
        assert len(rows) == 12


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: GPU sampling not tested")
def test_cuda_sampling_does_not_synchronise() -> None:
    sde = build_sde("vp")
    model = AnalyticScoreModel(MIX, sde).to("cuda")
    gen = torch.Generator(device="cuda").manual_seed(0)
    x_T = sde.prior_sample((4096, 2), gen, device="cuda")
    model(x_T, torch.tensor(0.5, device="cuda"))  # warm the per-device cache
    for params in ({"sampler": "em", "steps": 20}, {"sampler": "pc", "steps": 20}):
        sampler = build_sampler(sde, model, params)
        torch.cuda.set_sync_debug_mode("error")
        try:
            rows = list(sampler.run(x_T, gen))
        finally:
            torch.cuda.set_sync_debug_mode("default")
        assert rows[-1].x.device.type == "cuda"


# --------------------------------------------------------------------------------------------
# conditional sampling by imputation
# --------------------------------------------------------------------------------------------
FULL = GaussianMixture.full(
    [[-1.0, -0.5], [1.0, 1.0], [0.5, -1.5]],
    [[[0.5, 0.3], [0.3, 0.4]], [[0.3, -0.2], [-0.2, 0.6]], [[0.2, 0.0], [0.0, 0.1]]],
    [0.3, 0.5, 0.2],
)


def conditional_moments(mix: GaussianMixture, c: float) -> tuple[float, float, float]:
    """Mean, variance and 4th central moment of x2 | x1 = c, a 1-D mixture: weights
    w_k N(c; mu_k1, C_k11), means mu_k2 + C_k21/C_k11 (c - mu_k1),
    variances C_k22 - C_k21^2/C_k11."""
    mu, cov = mix.means, mix.covs
    log_w = (
        torch.log(mix.weights)
        - 0.5 * (c - mu[:, 0]) ** 2 / cov[:, 0, 0]
        - 0.5 * torch.log(cov[:, 0, 0])
    )
    w = torch.softmax(log_w, 0)
    means = mu[:, 1] + cov[:, 1, 0] / cov[:, 0, 0] * (c - mu[:, 0])
    vars_ = cov[:, 1, 1] - cov[:, 1, 0] ** 2 / cov[:, 0, 0]
    mean = (w * means).sum()
    dev = means - mean
    var = (w * (vars_ + dev**2)).sum()
    m4 = (w * (dev**4 + 6 * dev**2 * vars_ + 3 * vars_**2)).sum()
    return float(mean), float(var), float(m4)


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_smc_imputation_samples_the_exact_conditional(kind: str) -> None:
    c, n = 0.3, 10_000
    mean, var, m4 = conditional_moments(FULL, c)
    sde = build_sde(kind)
    known, mask = torch.tensor([c, 0.0], dtype=F64), torch.tensor([True, False])
    sampler = impute(sde, MatmulMixtureScore(FULL, sde), {"sampler": "em"}, known, mask, "smc")
    x = final(sample(sampler, n, (2,), torch.Generator().manual_seed(0), dtype=F64)).x
    assert bool((x[:, 0] == c).all())
    x2 = x[:, 1]
    # particle weights cost effective samples (the ESS stays above ~0.6 n here): n/2 for the se
    n_eff = n / 2
    assert abs(float(x2.mean()) - mean) < 4 * math.sqrt(var / n_eff)
    assert abs(float(x2.var()) - var) < 4 * math.sqrt((m4 - var**2) / n_eff)


def test_smc_imputation_fixes_pixels_of_images() -> None:
    """A 2x2 one-channel 'image' from a correlated Gaussian; two pixels known."""
    a = torch.tensor(
        [[1.0, 0.5, 0.2, 0.0], [0.3, 1.0, 0.4, 0.1], [0.0, 0.2, 1.0, 0.5], [0.1, 0.0, 0.3, 1.0]],
        dtype=F64,
    )
    cov = 0.4 * a @ a.T + 0.05 * torch.eye(4, dtype=F64)
    mu = torch.tensor([0.5, -0.3, 0.2, 0.0], dtype=F64)
    gauss = GaussianMixture.full(mu[None], cov[None], [1.0])
    known_idx, free_idx = torch.tensor([0, 3]), torch.tensor([1, 2])
    y = torch.tensor([1.0, -0.5], dtype=F64)
    s11 = cov[known_idx][:, known_idx]
    s21 = cov[free_idx][:, known_idx]
    cond_mean = mu[free_idx] + s21 @ torch.linalg.solve(s11, y - mu[known_idx])
    cond_cov = cov[free_idx][:, free_idx] - s21 @ torch.linalg.solve(s11, s21.T)

    known = torch.zeros(4, dtype=F64)
    known[known_idx] = y
    mask = torch.zeros(4, dtype=torch.bool)
    mask[known_idx] = True
    sde = build_sde("vp")
    model = AnalyticScoreModel(gauss, sde)  # accepts (n, 1, 2, 2): 4 values per sample
    sampler = impute(
        sde,
        model,
        {"sampler": "em", "steps": 500},
        known.reshape(1, 2, 2),
        mask.reshape(1, 2, 2),
        "smc",
    )
    n = 4000
    x = final(sample(sampler, n, (1, 2, 2), torch.Generator().manual_seed(0), dtype=F64)).x
    assert x.shape == (n, 1, 2, 2)
    flat = x.reshape(n, 4)
    assert torch.equal(flat[:, known_idx], y.expand(n, 2))
    free = flat[:, free_idx]
    se = torch.sqrt(torch.diagonal(cond_cov) / (n / 2))
    assert bool(((free.mean(0) - cond_mean).abs() < 4 * se).all())
    torch.testing.assert_close(torch.cov(free.T), cond_cov, rtol=0.1, atol=0.02)


def test_replacement_imputation_is_exact_when_known_and_free_are_independent() -> None:
    """p(x1, x2) = N(x1; 0, 0.5) (0.4 N(x2; -1, 0.2) + 0.6 N(x2; 1, 0.3)): given x1, x2 keeps
    its marginal, and the replacement method of Song et al. (App. I.2) is exact."""
    indep = GaussianMixture.full(
        [[0.0, -1.0], [0.0, 1.0]], [[[0.5, 0.0], [0.0, 0.2]], [[0.5, 0.0], [0.0, 0.3]]], [0.4, 0.6]
    )
    mean, var, m4 = conditional_moments(indep, 0.7)
    sde = build_sde("vp")
    known, mask = torch.tensor([0.7, 0.0], dtype=F64), torch.tensor([True, False])
    sampler = impute(
        sde, MatmulMixtureScore(indep, sde), {"sampler": "pc", "steps": 500}, known, mask
    )
    n = 8000
    x = final(sample(sampler, n, (2,), torch.Generator().manual_seed(0), dtype=F64)).x
    assert bool((x[:, 0] == 0.7).all())
    assert abs(float(x[:, 1].mean()) - mean) < 4 * math.sqrt(var / n)
    assert abs(float(x[:, 1].var()) - var) < 4 * math.sqrt((m4 - var**2) / n) + 0.03


def test_replacement_imputation_takes_per_sample_known_values_in_chunks() -> None:
    sde = build_sde("ve")
    n = 50
    known = torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    mask = torch.zeros(n, 2, dtype=torch.bool)
    mask[::2, 0] = True  # even rows know x1, odd rows know x2
    mask[1::2, 1] = True
    sampler = impute(
        sde, AnalyticScoreModel(FULL, sde), {"sampler": "em", "steps": 20}, known, mask
    )
    assert isinstance(sampler, ImputationSampler)
    rows = list(
        sample(sampler, n, (2,), torch.Generator().manual_seed(1), dtype=F64, chunk_size=16)
    )
    assert len(rows) == 22 and sampler.nfe == 21
    x = rows[-1].x
    assert torch.equal(x[mask], known[mask]) and torch.isfinite(x).all()


def test_imputation_refuses_what_it_cannot_do() -> None:
    sde = build_sde("vp")
    known, mask = torch.zeros(2), torch.tensor([True, False])
    with pytest.raises(ConfigError) as exc:
        impute(sde, lambda x, t: x, {"sampler": "ode"}, known, mask)
    assert exc.value.key == "sampler"
    with pytest.raises(ConfigError) as exc:
        impute(sde, lambda x, t: x, {"sampler": "pc"}, known, mask, "smc")  # Langevin corrector
    assert exc.value.key == "corrector"
    with pytest.raises(ConfigError) as exc:
        impute(sde, lambda x, t: x, {"sampler": "em"}, known, mask, "gibbs")
    assert exc.value.key == "method"


# --------------------------------------------------------------------------------------------
# the forward process
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["vp", "ve", "cosine"])
def test_forward_rows_have_the_moments_of_p_t(kind: str) -> None:
    sde = build_sde(kind)
    n = 20_000
    x0 = MIX.sample(n, torch.Generator().manual_seed(0), dtype=F64)
    times = [0.0, 0.05, 0.2, 0.5, 1.0]
    rows = list(
        simulate_forward(sde, x0, torch.tensor(times, dtype=F64), torch.Generator().manual_seed(1))
    )
    assert [r.step for r in rows] == list(range(5)) and [r.t for r in rows] == times
    assert rows[0].x is x0
    for row in rows:
        p_t = MIX.noised(*(float(c) for c in sde.marginal_coeffs(torch.tensor(row.t, dtype=F64))))
        cov = p_t.covariance()
        sd = torch.sqrt(torch.diagonal(cov))
        assert bool(((row.x.mean(0) - p_t.mean()).abs() < 5 * sd / math.sqrt(n)).all())
        se_cov = torch.sqrt((torch.outer(sd, sd) ** 2 + cov**2) / n)
        assert bool(((torch.cov(row.x.T) - cov).abs() < 5 * se_cov).all())
    # consecutive rows form one path: x_t - r x_s is fresh noise, independent of x_s
    for a, b in itertools.pairwise(rows[1:]):
        ta, tb = torch.tensor(a.t, dtype=F64), torch.tensor(b.t, dtype=F64)
        r = float(sde.mean_coeff(tb) / sde.mean_coeff(ta))
        v = float(sde.std(tb) ** 2 - r * r * sde.std(ta) ** 2)
        resid = b.x - r * a.x
        corr = torch.corrcoef(torch.cat([resid, a.x], 1).T)[:2, 2:]
        assert float(corr.abs().max()) < 5 / math.sqrt(n)
        assert abs(float(resid.var(0).mean()) / v - 1) < 5 * math.sqrt(2 / (2 * n))


class NonLinearOU(SDE):
    """dX = -X dt + dW written as a general SDE, to exercise the Euler–Maruyama path."""

    def drift(self, x, t):
        return -x

    def diffusion(self, t):
        return torch.ones_like(torch.as_tensor(t, dtype=F64))

    def prior_sample(self, shape, generator=None, **kw):
        return torch.randn(shape, generator=generator, dtype=F64) / math.sqrt(2)

    def prior_logp(self, z):
        return -z.pow(2).sum(-1) - z.shape[-1] * 0.5 * math.log(math.pi)


def test_forward_simulation_of_a_nonlinear_sde_uses_small_euler_steps() -> None:
    n = 20_000
    x0 = torch.full((n, 1), 2.0, dtype=F64)
    rows = list(
        simulate_forward(
            NonLinearOU(), x0, [0.0, 0.3, 1.0], torch.Generator().manual_seed(0), max_dt=1e-3
        )
    )
    for row in rows[1:]:
        mean = 2.0 * math.exp(-row.t)
        var = (1 - math.exp(-2 * row.t)) / 2
        assert abs(float(row.x.mean()) - mean) < 5 * math.sqrt(var / n) + 2e-3  # + O(dt) bias
        assert abs(float(row.x.var()) / var - 1) < 5 * math.sqrt(2 / n) + 3e-3


def test_nonlinear_sde_cannot_be_denoised_by_tweedie() -> None:
    with pytest.raises(ConfigError) as exc:
        build_sampler(NonLinearOU(), lambda x, t: -2 * x, {"sampler": "em"})
    assert exc.value.key == "denoise"
    sampler = build_sampler(
        NonLinearOU(), lambda x, t: -2 * x, {"sampler": "em", "steps": 200, "denoise": False}
    )
    x = final(sample(sampler, 5000, (1,), torch.Generator().manual_seed(0), dtype=F64)).x
    # the stationary N(0, 1/2) is kept by the reverse SDE with its exact score -2x
    assert abs(float(x.var()) - 0.5) < 5 * 0.5 * math.sqrt(2 / 5000) + 0.01


def test_registry_lists_the_samplers() -> None:
    assert SAMPLERS.names() == [
        "pc",
        "em",
        "ode",
        "ddim",
        "euler_ancestral",
        "dpmpp_2m",
        "dpmpp_2m_sde",
        "heun_churn",
    ]
