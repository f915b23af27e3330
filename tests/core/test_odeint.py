"""The ODE integrators: orders of convergence, adaptive error control, direction, guards."""

import itertools
import math

import pytest
import torch
from torch import Tensor

from workbench.core.odeint import (
    FIXED_STEP_ORDERS,
    METHODS,
    ODEStep,
    integrate,
    odeint,
    rk45_steps,
)
from workbench.errors import ConfigError, WorkbenchError

F64 = torch.float64


def field(t: Tensor, y: Tensor) -> Tensor:
    """y' = -y + sin t."""
    return -y + torch.sin(t)


def exact(t: float, y0: float = 1.0) -> float:
    """y(t) = (y0 + 1/2) e^-t + (sin t - cos t)/2, the solution with y(0) = y0."""
    return (y0 + 0.5) * math.exp(-t) + (math.sin(t) - math.cos(t)) / 2


@pytest.mark.parametrize(
    ("method", "steps"),
    [("euler", [50, 100, 200]), ("heun", [25, 50, 100]), ("rk4", [10, 20, 40])],
)
def test_fixed_step_methods_converge_at_their_order(method: str, steps: list[int]) -> None:
    order, _ = FIXED_STEP_ORDERS[method]
    y0 = torch.tensor([1.0], dtype=F64)
    errors = []
    for n in steps:
        result = odeint(field, y0, torch.linspace(0.0, 3.0, n + 1, dtype=F64), method)
        errors.append(abs(float(result.y) - exact(3.0)))
    for coarse, fine in itertools.pairwise(errors):
        assert math.log2(coarse / fine) == pytest.approx(order, abs=0.1)


@pytest.mark.parametrize("method", ["euler", "heun", "rk4"])
def test_fixed_step_methods_count_evaluations_and_yield_every_step(method: str) -> None:
    calls = {"n": 0}

    def f(t: Tensor, y: Tensor) -> Tensor:
        calls["n"] += 1
        assert t.ndim == 0 and t.dtype == y.dtype
        return field(t, y)

    times = torch.linspace(0.0, 1.0, 13, dtype=F64)
    rows = list(integrate(f, torch.ones(3, dtype=F64), times, method))
    per_step = FIXED_STEP_ORDERS[method][1]
    assert [r.step for r in rows] == list(range(1, 13))
    assert [r.t for r in rows] == times[1:].tolist()
    assert [r.nfe for r in rows] == [per_step * k for k in range(1, 13)]
    assert calls["n"] == 12 * per_step


@pytest.mark.parametrize("tol", [1e-3, 1e-6, 1e-9])
def test_rk45_meets_its_tolerance(tol: float) -> None:
    result = odeint(field, torch.tensor([1.0], dtype=F64), [0.0, 5.0], "rk45", rtol=tol, atol=tol)
    # global error of a well-conditioned problem stays within a small multiple of the tolerance
    assert abs(float(result.y) - exact(5.0)) < 5 * tol
    # 2 evaluations to start (FSAL's first stage and the step-size heuristic), then 6 per
    # attempted step (accepted or rejected)
    assert result.nfe >= 2 + 6 * result.steps and (result.nfe - 2) % 6 == 0


def test_rk45_needs_more_steps_for_tighter_tolerances() -> None:
    nfe = [
        odeint(field, torch.tensor([1.0], dtype=F64), [0.0, 5.0], "rk45", rtol=tol, atol=tol).nfe
        for tol in (1e-3, 1e-6, 1e-9)
    ]
    assert nfe[0] < nfe[1] < nfe[2]


@pytest.mark.parametrize("method", ["euler", "heun", "rk4", "rk45"])
def test_backwards_integration_returns_to_the_start(method: str) -> None:
    y3 = torch.tensor([exact(3.0), exact(3.0, y0=-2.0)], dtype=F64)
    times = torch.linspace(3.0, 0.0, 401, dtype=F64) if method != "rk45" else [3.0, 0.0]
    result = odeint(field, y3, times, method, rtol=1e-8, atol=1e-8)
    # backwards, errors grow like e^(3 - t): h = 0.0075 leaves 0.055 (Euler), 2e-4 (Heun)
    tol = {"euler": 0.1, "heun": 5e-4, "rk4": 1e-9, "rk45": 1e-6}[method]
    torch.testing.assert_close(result.y, torch.tensor([1.0, -2.0], dtype=F64), rtol=0, atol=tol)
    assert result.t == 0.0


def test_rk45_lands_on_every_requested_time() -> None:
    times = [0.0, 0.3, 1.0, 1.7, 4.0]
    rows = list(
        integrate(field, torch.tensor([1.0], dtype=F64), times, "rk45", rtol=1e-7, atol=1e-7)
    )
    ts = [r.t for r in rows]
    assert all(t in ts for t in times[1:]) and ts[-1] == 4.0
    assert all(a < b for a, b in itertools.pairwise(ts))
    for row in rows:
        assert float(row.y) == pytest.approx(exact(row.t), abs=1e-6)


def test_batched_states_of_any_shape_in_float32() -> None:
    """One step size for the whole batch; the dtype is kept."""
    y0 = torch.linspace(-1, 1, 24, dtype=torch.float32).reshape(2, 3, 4)
    for method in METHODS.names():
        times = torch.linspace(0.0, 2.0, 101) if method != "rk45" else [0.0, 2.0]
        result = odeint(field, y0, times, method, rtol=1e-5, atol=1e-5)
        assert result.y.dtype == torch.float32 and result.y.shape == (2, 3, 4)
        want = torch.tensor([exact(2.0, float(v)) for v in y0.reshape(-1)]).reshape(2, 3, 4)
        atol = {"euler": 2e-2, "heun": 1e-4}.get(method, 2e-5)
        torch.testing.assert_close(result.y, want, rtol=0, atol=atol)


def test_rk45_error_norm_is_the_rms_over_all_elements() -> None:
    """A batch of identical problems takes the same steps as one of them."""
    one = odeint(field, torch.tensor([1.0], dtype=F64), [0.0, 5.0], "rk45", rtol=1e-6, atol=1e-6)
    many = odeint(field, torch.ones(50, dtype=F64), [0.0, 5.0], "rk45", rtol=1e-6, atol=1e-6)
    assert one.steps == many.steps and one.nfe == many.nfe


def test_a_stiff_problem_hits_the_step_guard() -> None:
    """y' = -1e5 (y - cos t): explicit stability needs ~1e5 steps on [0, 1]."""

    def stiff(t: Tensor, y: Tensor) -> Tensor:
        return -1e5 * (y - torch.cos(t))

    with pytest.raises(WorkbenchError, match="stiff"):
        odeint(stiff, torch.tensor([0.0], dtype=F64), [0.0, 1.0], "rk45", max_steps=300)


def test_a_blow_up_stops_with_a_clear_error() -> None:
    """y' = y^2, y(0) = 1 is singular at t = 1."""
    with pytest.raises(WorkbenchError, match=r"rk45"):
        odeint(
            lambda t, y: y * y, torch.tensor([1.0], dtype=F64), [0.0, 2.0], "rk45", max_steps=5000
        )


def test_bad_arguments() -> None:
    y0 = torch.ones(1, dtype=F64)
    with pytest.raises(ConfigError) as exc:
        odeint(field, y0, [0.0, 1.0], "rk23")
    assert exc.value.key == "integrator"
    with pytest.raises(ConfigError):
        list(rk45_steps(field, y0, [0.0, 1.0], rtol=0.0))
    with pytest.raises(ValueError, match="increasing or strictly decreasing"):
        odeint(field, y0, [0.0, 1.0, 0.5], "euler")
    with pytest.raises(ValueError, match="two times"):
        odeint(field, y0, [0.0], "rk4")


def test_rows_are_named_tuples() -> None:
    row = next(iter(integrate(field, torch.ones(1, dtype=F64), [0.0, 1.0], "euler")))
    assert isinstance(row, ODEStep) and row.step == 1 and row.t == 1.0 and row.nfe == 1
