"""The samplers written in m(t), s(t) of a linear SDE (DDIM, DPM-Solver++, Karras's Heun, Euler
ancestral) and the EDM time grid spaced in sigma = s/m.

Deterministic samplers are checked for their order of convergence against a high-accuracy
solution of the same probability-flow ODE from the same x_T; stochastic ones for the law they
land on, by the mean log-density under the exact 8gaussians mixture (n = 20000).
"""

import math

import pytest
import torch
from torch import Tensor

from tests.core.test_samplers import MIX, MatmulMixtureScore, final
from workbench.core.samplers import SAMPLERS, build_sampler, sample, time_grid
from workbench.core.sde import build_sde
from workbench.errors import ConfigError

F64 = torch.float64
N = 20_000
MODERN = ("ddim", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde", "heun_churn")


@pytest.fixture(autouse=True)
def one_thread():
    """Small batches: a second intra-op thread gains little where the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------
# time grids
# --------------------------------------------------------------------------------------------
def test_edm_grid_spaces_sigma_as_karras() -> None:
    """VE, 100 steps, rho = 7: the count of sigma_i < 0.1 is Karras's closed form: sigma_i < c
    iff i > N (A - c^(1/rho)) / (A - B), A = sigma_max^(1/rho), B = sigma_min^(1/rho)."""
    sde, n, rho, eps = build_sde("ve"), 100, 7.0, 1e-3
    t = time_grid("edm", n, sde.T, eps, rho, sde)
    m, s = sde.marginal_coeffs(t)
    sigma = (s / m).to(F64)
    ends = sde.marginal_coeffs(torch.tensor([sde.T, eps], dtype=F64))
    sig_max, sig_min = (ends[1] / ends[0]).tolist()
    a, b, c = sig_max ** (1 / rho), sig_min ** (1 / rho), 0.1 ** (1 / rho)
    k = n * (a - c) / (a - b)
    expected = n - math.floor(k)
    assert int((sigma < 0.1).sum()) == expected
    assert expected / (n + 1) == pytest.approx(0.25, abs=0.01)  # the brief's 25%
    # and every sigma_i is Karras's, to the bisection's float64 resolution
    i = torch.arange(n + 1, dtype=F64) / n
    karras = (a + i * (b - a)) ** rho
    torch.testing.assert_close(sigma, karras, rtol=1e-9, atol=0.0)


@pytest.mark.parametrize("kind", ["vp", "subvp", "cosine", "linear"])
def test_edm_grid_inverts_sigma_for_every_linear_sde(kind: str) -> None:
    sde = build_sde(kind)
    t = time_grid("edm", 30, sde.T, 1e-3, 7.0, sde)
    m, s = sde.marginal_coeffs(t)
    log_sigma = torch.log((s / m).to(F64))
    # rho-power spacing: sigma_i^(1/rho) is an arithmetic sequence
    root = torch.exp(log_sigma / 7.0)
    torch.testing.assert_close(root.diff(), root.diff().mean().expand(30), rtol=1e-7, atol=0.0)


def test_power_t_is_the_old_edm_grid_bit_for_bit() -> None:
    for steps, T, eps, rho in [(100, 1.0, 1e-3, 7.0), (37, 2.0, 1e-5, 3.0), (1, 1.0, 0.5, 1.0)]:
        i = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
        a, b = T ** (1.0 / rho), eps ** (1.0 / rho)
        old = (a + i * (b - a)) ** rho
        old[0], old[-1] = T, eps
        assert torch.equal(time_grid("power_t", steps, T, eps, rho), old)


def test_edm_grid_refuses_a_non_linear_sde_in_one_line() -> None:
    sde = build_sde("custom", {"drift": "-x1^3"})
    with pytest.raises(ConfigError) as exc:
        time_grid("edm", 10, sde.T, 1e-3, 7.0, sde)
    assert exc.value.key == "grid" and "\n" not in str(exc.value)
    assert "linear" in str(exc.value)


# --------------------------------------------------------------------------------------------
# deterministic samplers: order of convergence to the probability-flow ODE's solution
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["vp", "ve"])
def flow(request) -> dict:
    """500 prior draws and their image at eps under the probability-flow ODE, by adaptive
    Dormand-Prince at rtol = atol = 1e-11 in float64: ~1e-9 off the exact flow, far below the
    errors compared (>= 1e-4)."""
    sde = build_sde(request.param)
    model = MatmulMixtureScore(MIX, sde)
    x_T = sde.prior_sample((500, 2), generator=torch.Generator().manual_seed(7), dtype=F64)
    ref = build_sampler(
        sde, model, {"sampler": "ode", "rtol": 1e-11, "atol": 1e-11, "denoise": False}
    )
    return {"sde": sde, "model": model, "x_T": x_T, "x_eps": final(ref.run(x_T)).x}


def flow_error(flow: dict, params: dict, steps: int) -> float:
    sampler = build_sampler(
        flow["sde"], flow["model"], {**params, "steps": steps, "grid": "edm", "denoise": False}
    )
    rows = list(sampler.run(flow["x_T"]))
    assert rows[-1].t == 1e-3 and len(rows) == steps + 1
    per_step = 2 if params["sampler"] == "heun_churn" else 1
    assert sampler.nfe == per_step * steps
    return float((rows[-1].x - flow["x_eps"]).norm(dim=1).mean())


@pytest.mark.parametrize(
    ("params", "order"),
    [
        ({"sampler": "ddim", "eta": 0.0}, 1),
        ({"sampler": "dpmpp_2m"}, 2),
        ({"sampler": "heun_churn", "s_churn": 0.0}, 2),
    ],
    ids=["ddim", "dpmpp_2m", "heun"],
)
def test_deterministic_samplers_converge_at_their_order(flow: dict, params: dict, order: int):
    """Halving the steps (50 -> 100, EDM grid) divides the mean error by 2^order: measured
    log2 ratios are 1.00-1.01 (DDIM) and 2.06-2.09 (the second-order ones), for VP and VE;
    +-0.2 leaves room for the higher-order terms and still tells order 1 from 2."""
    e50, e100 = flow_error(flow, params, 50), flow_error(flow, params, 100)
    assert e100 < 2e-2
    assert abs(math.log2(e50 / e100) - order) < 0.2, (e50, e100)


# --------------------------------------------------------------------------------------------
# stochastic samplers: the law they land on (n = 20000)
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def true_logp() -> Tensor:
    return MIX.log_prob(MIX.sample(N, torch.Generator().manual_seed(123), dtype=F64))


@pytest.mark.parametrize("kind", ["vp", "ve"])
@pytest.mark.parametrize(
    ("params", "steps"),
    [
        ({"sampler": "ddim", "eta": 1.0}, 1000),
        ({"sampler": "euler_ancestral"}, 1000),
        ({"sampler": "dpmpp_2m_sde"}, 200),
        ({"sampler": "heun_churn", "s_churn": 20.0}, 200),
    ],
    ids=["ddim_eta1", "euler_ancestral", "dpmpp_2m_sde", "heun_churn"],
)
def test_stochastic_samplers_land_on_the_data(
    kind: str, params: dict, steps: int, true_logp: Tensor
) -> None:
    """The mean log-density of the samples under the exact mixture against that of fresh data:
    within 4 standard errors of the difference (~0.04 nats at n = 20000). The step counts
    keep the discretisation bias below ~0.02 nats (measured: the first-order ancestral
    samplers 0.017 at 800 steps, the others < 0.016 at 200 steps, EDM grid)."""
    sde = build_sde(kind)
    sampler = build_sampler(
        sde, MatmulMixtureScore(MIX, sde), {**params, "steps": steps, "grid": "edm"}
    )
    x = final(sample(sampler, N, (2,), torch.Generator().manual_seed(0))).x
    assert torch.isfinite(x).all()
    logp = MIX.log_prob(x.to(F64))
    se = math.sqrt(logp.var() / N + true_logp.var() / N)
    diff = float(logp.mean() - true_logp.mean())
    assert abs(diff) < 4 * se, (diff, se)
    per_step = 2 if params["sampler"] == "heun_churn" else 1
    assert sampler.nfe == per_step * steps + 1  # + Tweedie's denoising step


def test_euler_ancestral_is_ddim_with_eta_one_and_the_smld_chain_for_ve() -> None:
    """Karras et al. (2022, App. B.1): DDIM is Euler in sigma on x/m; at eta = 1 its noise is
    the exact posterior's, so for VE it is also SMLD's ancestral chain (Song et al. 2021,
    App. F), the ``pc`` sampler's ``ancestral`` predictor. Same seed, same samples."""
    for kind in ("vp", "ve"):
        sde = build_sde(kind)
        model = MatmulMixtureScore(MIX, sde)

        def run(params: dict, sde=sde, model=model) -> Tensor:
            s = build_sampler(sde, model, {**params, "steps": 40, "grid": "edm"})
            return final(sample(s, 300, (2,), torch.Generator().manual_seed(3), dtype=F64)).x

        ea = run({"sampler": "euler_ancestral"})
        torch.testing.assert_close(run({"sampler": "ddim", "eta": 1.0}), ea)
        if kind == "ve":
            pc = run({"sampler": "pc", "predictor": "ancestral", "corrector": "none"})
            torch.testing.assert_close(pc, ea)


def test_churn_limited_to_a_sigma_range_is_heun_outside_it() -> None:
    """s_tmin above every sigma of the grid: no churn, so the samples are deterministic Heun's."""
    sde = build_sde("ve")
    model = MatmulMixtureScore(MIX, sde)
    x_T = sde.prior_sample((200, 2), generator=torch.Generator().manual_seed(1), dtype=F64)
    plain = build_sampler(sde, model, {"sampler": "heun_churn", "steps": 20, "grid": "edm"})
    off = build_sampler(
        sde,
        model,
        {"sampler": "heun_churn", "steps": 20, "grid": "edm", "s_churn": 40.0, "s_tmin": 1e3},
    )
    on = build_sampler(
        sde, model, {"sampler": "heun_churn", "steps": 20, "grid": "edm", "s_churn": 40.0}
    )
    gen = torch.Generator().manual_seed(2)
    assert torch.equal(final(off.run(x_T, gen)).x, final(plain.run(x_T)).x)
    assert not torch.allclose(final(on.run(x_T, gen)).x, final(plain.run(x_T)).x)


# --------------------------------------------------------------------------------------------
# what they refuse
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODERN)
def test_modern_samplers_are_registered_and_refuse_a_non_linear_sde(name: str) -> None:
    assert name in SAMPLERS.names()
    sde = build_sde("custom", {"drift": "-x1^3"})
    with pytest.raises(ConfigError) as exc:
        build_sampler(sde, lambda x, t: x, {"sampler": name})
    message = str(exc.value)
    assert exc.value.key == "sampler" and "\n" not in message
    assert "linear SDE" in message and name in message


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"sampler": "ddim", "eta": 1.5}, "eta"),
        ({"sampler": "ddim", "eta": -0.1}, "eta"),
        ({"sampler": "heun_churn", "s_churn": -1.0}, "s_churn"),
        ({"sampler": "heun_churn", "s_noise": float("nan")}, "s_noise"),
        ({"sampler": "heun_churn", "s_tmax": 0.0}, "s_tmax"),
        ({"sampler": "dpmpp_2m", "grid": "cubic"}, "grid"),
    ],
)
def test_bad_settings_of_the_modern_samplers_name_their_key(params: dict, key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        build_sampler(build_sde("vp"), lambda x, t: x, params)
    assert exc.value.key == key


@pytest.mark.parametrize(
    ("sample", "key"),
    [
        ({"sampler": "dpmpp_2m"}, "sample.sampler"),
        ({"sampler": "em", "grid": "edm"}, "sample.grid"),
    ],
)
def test_a_config_with_a_non_linear_sde_refuses_them_where_the_user_sees_it(
    sample: dict, key: str
) -> None:
    from workbench.config import default_config

    base = {"sde.kind": "custom", "sde.drift": "-x1^3; -x2^3", "loss.kind": "ssm"}
    base.update({"loss.weighting": "none", "model.output": "score"})
    base["sample.denoise"] = False
    default_config().with_overrides({**base, "sample.sampler": "em"})  # the rest is fine
    with pytest.raises(ConfigError) as exc:
        default_config().with_overrides({**base, **{f"sample.{k}": v for k, v in sample.items()}})
    assert exc.value.key == key and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("params", "stochastic"),
    [
        ({"sampler": "ddim"}, False),
        ({"sampler": "ddim", "eta": 0.5}, True),
        ({"sampler": "euler_ancestral"}, True),
        ({"sampler": "dpmpp_2m"}, False),
        ({"sampler": "dpmpp_2m_sde"}, True),
        ({"sampler": "heun_churn"}, False),
        ({"sampler": "heun_churn", "s_churn": 10.0}, True),
    ],
)
def test_a_sampler_says_whether_its_run_is_a_function_of_x_T(
    params: dict, stochastic: bool
) -> None:
    """The study claims a pathwise error only for runs that are deterministic given x_T: DDIM
    at eta = 0, DPM-Solver++(2M), Heun without churn; the others draw noise every step."""
    sde = build_sde("vp")
    sampler = build_sampler(sde, MatmulMixtureScore(MIX, sde), {**params, "steps": 20})
    assert sampler.stochastic is stochastic
