import math

import pytest
import torch

from workbench.core.sde import (
    SDES,
    VESDE,
    VPSDE,
    CosineVPSDE,
    ExpressionLinearSDE,
    LinearSDE,
    SubVPSDE,
    build_sde,
    validate_sde_params,
)
from workbench.errors import ConfigError

F64 = torch.float64
GRID = torch.linspace(0.0, 1.0, 2001, dtype=F64)


def all_sdes() -> list[LinearSDE]:
    # the linear ones: the custom (non-linear) SDE has its own tests in test_sde_custom.py
    return [build_sde(kind) for kind in SDES.names() if issubclass(SDES.get(kind), LinearSDE)]


def test_registry_holds_every_kind() -> None:
    assert set(SDES.names()) >= {"vp", "subvp", "ve", "cosine", "linear"}
    with pytest.raises(ConfigError) as info:
        build_sde("vpp")
    assert info.value.key == "kind" and "did you mean 'vp'" in str(info.value)


def test_vp_reference_values() -> None:
    """The figures of the issue, to the six digits given."""
    sde = build_sde("vp")
    t = torch.tensor([0.1, 0.5, 1.0], dtype=F64)
    m, s = sde.marginal_coeffs(t)
    assert m.tolist() == pytest.approx([0.946722, 0.281183, 0.00657159], rel=2e-6)
    assert s.tolist() == pytest.approx([0.322053, 0.959654, 0.999978], rel=2e-6)


def test_closed_forms_of_design() -> None:
    b0, b1 = 0.1, 20.0
    t = GRID
    log_m = -(t**2) * (b1 - b0) / 4 - t * b0 / 2
    m = torch.exp(log_m)
    vp, subvp, ve = build_sde("vp"), build_sde("subvp"), build_sde("ve")
    torch.testing.assert_close(vp.mean_coeff(t), m, rtol=1e-14, atol=0)
    torch.testing.assert_close(vp.std(t), torch.sqrt(1 - m**2), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(subvp.mean_coeff(t), m, rtol=1e-14, atol=0)
    torch.testing.assert_close(subvp.std(t), 1 - m**2, rtol=1e-12, atol=1e-15)
    beta = b0 + t * (b1 - b0)
    g2 = beta * (1 - torch.exp(-2 * b0 * t - (b1 - b0) * t**2))
    torch.testing.assert_close(subvp.diffusion(t) ** 2, g2, rtol=1e-12, atol=1e-15)
    sigma = 0.01 * (50 / 0.01) ** t
    torch.testing.assert_close(ve.mean_coeff(t), torch.ones_like(t))
    torch.testing.assert_close(ve.std(t) ** 2, sigma**2 - 0.01**2, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(
        ve.diffusion(t), sigma * math.sqrt(2 * math.log(50 / 0.01)), rtol=1e-13, atol=0
    )


@pytest.mark.parametrize("kind", ["vp", "subvp", "ve", "cosine", "linear"])
def test_kernel_is_consistent_with_the_sde(kind: str) -> None:
    """m and s must solve d log m/dt = a and d s^2/dt = 2 a s^2 + g^2, with m(0)=1, s(0)=0.

    This ties (m, s) to (a, g) independently of how either was written down.
    """
    sde = build_sde(kind)
    zero = torch.tensor(0.0, dtype=F64)
    assert float(sde.mean_coeff(zero)) == pytest.approx(1.0, abs=1e-14)
    assert float(sde.std(zero)) == pytest.approx(0.0, abs=1e-12)
    h = 1e-5
    t = torch.linspace(0.02, 0.98, 97, dtype=F64)
    dlogm = (sde.log_mean_coeff(t + h) - sde.log_mean_coeff(t - h)) / (2 * h)
    torch.testing.assert_close(dlogm, sde.drift_coeff(t), rtol=1e-6, atol=1e-8)
    var = lambda u: sde.std(u) ** 2  # noqa: E731
    dvar = (var(t + h) - var(t - h)) / (2 * h)
    rhs = 2 * sde.drift_coeff(t) * var(t) + sde.diffusion(t) ** 2
    torch.testing.assert_close(dvar, rhs, rtol=1e-5, atol=1e-8)


def test_linear_sde_with_vp_expressions_matches_vp() -> None:
    vp = build_sde("vp")
    lin = build_sde("linear", {"a": "-0.5*(0.1 + 19.9*t)", "g": "sqrt(0.1 + 19.9*t)"})
    t = torch.rand(5000, dtype=F64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(lin.mean_coeff(t), vp.mean_coeff(t), rtol=0, atol=1e-6)
    torch.testing.assert_close(lin.std(t), vp.std(t), rtol=0, atol=1e-6)
    torch.testing.assert_close(lin.diffusion(t), vp.diffusion(t))


def test_linear_sde_reproduces_subvp_ve_and_cosine() -> None:
    cases = [
        (
            build_sde("subvp"),
            "-0.5*(0.1 + 19.9*t)",
            "sqrt((0.1 + 19.9*t)*(1 - exp(-0.2*t - 19.9*t^2)))",
        ),
        (build_sde("ve"), "0", "0.01*5000^t*sqrt(2*log(5000))"),
    ]
    cos = build_sde("cosine")
    theta = f"({cos.theta_0!r} + {cos._rate!r}*t)"
    cases.append((cos, f"-{cos._rate!r}*tan{theta}", f"sqrt(2*{cos._rate!r}*tan{theta})"))
    for ref, a, g in cases:
        lin = ExpressionLinearSDE(a=a, g=g)
        torch.testing.assert_close(lin.mean_coeff(GRID), ref.mean_coeff(GRID), rtol=1e-6, atol=1e-8)
        rel = (lin.std(GRID) - ref.std(GRID)).abs() / ref.std(GRID).clamp_min(1e-3)
        assert float(rel.max()) < 1e-6, type(ref).__name__


def test_cosine_schedule_matches_nichol_dhariwal() -> None:
    """alpha_bar(t) = f(t)/f(0), f(t) = cos^2((t' + s)/(1 + s) pi/2), t' the stretched time."""
    sde = build_sde("cosine")
    assert isinstance(sde, CosineVPSDE)
    s = 0.008
    # the schedule's time t' in Nichol & Dhariwal's units, recovered from theta
    tprime = sde.theta(GRID) / (math.pi / 2) * (1 + s) - s
    f = torch.cos((tprime + s) / (1 + s) * math.pi / 2) ** 2
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    torch.testing.assert_close(sde.mean_coeff(GRID) ** 2, f / f0, rtol=1e-12, atol=1e-15)
    end = float(sde.mean_coeff(torch.tensor(1.0, dtype=F64)) ** 2)
    assert end == pytest.approx(1e-4, rel=1e-9)
    assert float(tprime[-1]) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("kind", ["vp", "subvp", "ve", "cosine", "linear"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_and_dtypes(kind: str, dtype: torch.dtype) -> None:
    sde = build_sde(kind)
    for shape in [(7, 1), (7, 2), (7, 5), (7, 1, 8, 8)]:
        x = torch.randn(shape, dtype=dtype)
        t = torch.rand(7, dtype=dtype) * 0.9 + 0.05
        for tt in (t, t[0]):
            f = sde.drift(x, tt)
            assert f.shape == x.shape and f.dtype == dtype
            score = lambda y, u: -y  # noqa: E731
            assert sde.reverse_drift(x, tt, score).shape == x.shape
            assert sde.probability_flow_drift(x, tt, score).dtype == dtype
            xt = sde.perturb(x, tt if tt.ndim else tt.expand(7), torch.randn_like(x))
            assert xt.shape == x.shape and xt.dtype == dtype
        z = sde.prior_sample(shape, dtype=dtype)
        assert z.shape == shape and z.dtype == dtype
        assert sde.prior_logp(z).shape == (7,)


@pytest.mark.parametrize("kind", ["vp", "subvp", "ve", "cosine", "linear"])
def test_reverse_and_flow_drifts(kind: str) -> None:
    sde = build_sde(kind)
    x = torch.randn(11, 3, dtype=F64)
    t = torch.rand(11, dtype=F64)
    score = torch.randn(11, 3, dtype=F64)
    f = sde.drift_coeff(t)[:, None] * x
    g2 = sde.diffusion(t)[:, None] ** 2
    torch.testing.assert_close(sde.reverse_drift(x, t, lambda *_: score), f - g2 * score)
    torch.testing.assert_close(
        sde.probability_flow_drift(x, t, lambda *_: score), f - g2 * score / 2
    )


@pytest.mark.parametrize("kind", ["vp", "subvp", "ve", "cosine"])
def test_prior(kind: str) -> None:
    sde = build_sde(kind)
    n, d = 100_000, 2
    z = sde.prior_sample((n, d), generator=torch.Generator().manual_seed(1), dtype=F64)
    sd = sde.prior_std()
    # the sample std of n normals has standard error sd / sqrt(2n)
    assert float(z.std()) == pytest.approx(sd, abs=5 * sd / math.sqrt(2 * n * d))
    ref = torch.distributions.Normal(0.0, sd).log_prob(z).sum(-1)
    torch.testing.assert_close(sde.prior_logp(z), ref)
    m, s = sde.marginal_coeffs(torch.tensor(sde.T, dtype=F64))
    assert sd == pytest.approx(math.sqrt(float(m**2 + s**2)))


def test_vp_prior_is_standard_normal() -> None:
    assert build_sde("vp").prior_std() == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize(
    ("kind", "params", "key", "text"),
    [
        ("vp", {"beta_min": 5.0, "beta_max": 1.0}, "beta_max", "greater than beta_min"),
        ("vp", {"beta_min": -1.0}, "beta_min", "> 0"),
        ("ve", {"sigma_min": 0.0}, "sigma_min", "> 0"),
        ("ve", {"sigma_min": 2.0, "sigma_max": 1.0}, "sigma_max", "greater than sigma_min"),
        ("ve", {"sigma_max": "big"}, "sigma_max", "'big'"),
        ("vp", {"T": 0}, "T", ">= 1e-06"),
        ("linear", {"a": "t +"}, "a", "column 4"),
        ("linear", {"g": "sqrt(t"}, "g", "expected ')'"),
        ("linear", {"g": "os.system(1)"}, "g", "unexpected character '.'"),
        ("linear", {"g": "system(1)"}, "g", "unknown function 'system'"),
        ("linear", {"g": "t - 0.5"}, "g", ">= 0"),
        ("linear", {"a": "1/(t - 0.5)"}, "a", "not finite"),
        ("linear", {"a": "100*exp(10*t)"}, "a", "overflows"),
        ("vp", {"beta_mx": 3.0}, "beta_mx", "did you mean 'beta_max'"),
        ("cosine", {"alpha_bar_min": 0.7}, "alpha_bar_min", "< 0.5"),
    ],
)
def test_bad_parameters(kind: str, params: dict, key: str, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_sde_params(kind, params)
    assert info.value.key == key
    assert text in info.value.message
    assert "\n" not in str(info.value)


def test_validate_fills_defaults() -> None:
    assert validate_sde_params("vp", {}) == {"beta_min": 0.1, "beta_max": 20.0, "T": 1.0}
    assert validate_sde_params("ve", {"sigma_max": 10}) == {
        "sigma_min": 0.01,
        "sigma_max": 10.0,
        "T": 1.0,
    }


def test_classes() -> None:
    assert isinstance(build_sde("vp"), VPSDE)
    assert isinstance(build_sde("subvp"), SubVPSDE)
    assert isinstance(build_sde("ve"), VESDE)
    assert all(isinstance(s, LinearSDE) for s in all_sdes())


@pytest.mark.parametrize("kind", ["vp", "subvp", "ve", "cosine", "linear"])
def test_float32_keeps_relative_precision_near_zero(kind: str) -> None:
    """DSM samples t down to 1e-5, where s(t) is tiny: float32 must not lose it to cancellation."""
    sde = build_sde(kind)
    t64 = torch.tensor([1e-5, 1e-4, 1e-3, 0.5], dtype=F64)
    s32 = sde.std(t64.float()).double()
    s64 = sde.std(t64)
    assert float(((s32 - s64) / s64).abs().max()) < 1e-4
