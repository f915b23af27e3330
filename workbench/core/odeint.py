"""ODE integration on torch tensors: dy/dt = f(t, y), y of any shape, forwards or backwards.

Used by the probability-flow sampler (integrating from T down to eps) and by the likelihood
(from eps up to T). Four methods, registered in :data:`METHODS` under their config names:

* ``euler``  forward Euler, order 1, 1 evaluation per step;
* ``heun``   Heun's method (explicit trapezoidal rule), order 2, 2 evaluations per step
  (the second-order solver of Karras et al. 2022, Alg. 1, without its Euler last step);
* ``rk4``    the classic Runge–Kutta method, order 4, 4 evaluations per step;
* ``rk45``   adaptive Dormand–Prince 5(4) (Dormand & Prince 1980) with local extrapolation,
  "first same as last" (6 new evaluations per step: the last stage of one step is the first
  of the next), the standard step-size controller and starting-step heuristic of Hairer,
  Nørsett & Wanner, *Solving ODEs I* (2nd ed.), II.4, eqs. (4.10)-(4.13).

The fixed-step methods step over a given time grid; ``rk45`` chooses its own steps but lands
exactly on every time of the given grid (so a caller may ask it for output times).

Every integrator is a generator: it yields an :class:`ODEStep` ``(step, t, y, nfe)`` after every
(accepted) step, so the caller can record rows, report progress or stop by no longer asking.
Times are kept on the host in float64 (Python floats); ``f`` receives the time as a 0-d tensor
of ``y``'s dtype and device, made by a fill (no host-to-device copy, no synchronisation). The
fixed-step methods never read a tensor back to the host; ``rk45`` reads one number per step
(the error norm), which step-size control needs.

Error norm of ``rk45`` (HNW eq. 4.11): the root mean square over *all* elements of y (every
sample of a batch together) of ``err_i / (atol + rtol max(|y0_i|, |y1_i|))``. One step size
serves the whole batch; a batch therefore takes the steps its hardest member needs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from workbench.core.registry import Registry
from workbench.errors import ConfigError, WorkbenchError

__all__ = [
    "VectorField",
    "ODEStep",
    "ODEResult",
    "METHODS",
    "FIXED_STEP_ORDERS",
    "euler_steps",
    "heun_steps",
    "rk4_steps",
    "rk45_steps",
    "integrate",
    "odeint",
]

#: ``f(t, y) -> dy/dt``, t a 0-d tensor of y's dtype and device
VectorField = Callable[[Tensor, Tensor], Tensor]


class ODEStep(NamedTuple):
    """The state after an accepted step: step count, time, state, evaluations of f so far."""

    step: int
    t: float
    y: Tensor
    nfe: int


class ODEResult(NamedTuple):
    """The end of an integration: final time and state, total evaluations and accepted steps."""

    t: float
    y: Tensor
    nfe: int
    steps: int


def _scalar(t: float, like: Tensor) -> Tensor:
    # a fill kernel: unlike torch.tensor(t, device=cuda) it needs no host-to-device copy
    return torch.full((), t, dtype=like.dtype, device=like.device)


def _as_times(times: Tensor | Sequence[float]) -> list[float]:
    if isinstance(times, Tensor):
        values = times.detach().to("cpu", torch.float64).reshape(-1).tolist()
    else:
        values = [float(t) for t in times]
    if len(values) < 2:
        raise ValueError(f"need at least two times (start and end), got {len(values)}")
    if not all(math.isfinite(t) for t in values):
        raise ValueError("integration times must be finite")
    steps = [b - a for a, b in itertools.pairwise(values)]
    if not (all(h > 0 for h in steps) or all(h < 0 for h in steps)):
        raise ValueError("integration times must be strictly increasing or strictly decreasing")
    return values


# --------------------------------------------------------------------------------------------
# fixed-step methods: one function per method, as in k-diffusion's samplers
# --------------------------------------------------------------------------------------------
def euler_steps(f: VectorField, y0: Tensor, times: Tensor | Sequence[float]) -> Iterator[ODEStep]:
    """Forward Euler, y_{n+1} = y_n + h f(t_n, y_n): global error O(h)."""
    ts = _as_times(times)
    y = y0
    for n, (t, t_next) in enumerate(itertools.pairwise(ts)):
        y = y + (t_next - t) * f(_scalar(t, y), y)
        yield ODEStep(n + 1, t_next, y, n + 1)


def heun_steps(f: VectorField, y0: Tensor, times: Tensor | Sequence[float]) -> Iterator[ODEStep]:
    """Heun (explicit trapezoidal): k1 = f(t, y), k2 = f(t + h, y + h k1),
    y + h (k1 + k2) / 2: global error O(h^2)."""
    ts = _as_times(times)
    y = y0
    for n, (t, t_next) in enumerate(itertools.pairwise(ts)):
        h = t_next - t
        k1 = f(_scalar(t, y), y)
        k2 = f(_scalar(t_next, y), y + h * k1)
        y = y + (0.5 * h) * (k1 + k2)
        yield ODEStep(n + 1, t_next, y, 2 * (n + 1))


def rk4_steps(f: VectorField, y0: Tensor, times: Tensor | Sequence[float]) -> Iterator[ODEStep]:
    """The classic fourth-order Runge–Kutta method (weights 1/6, 1/3, 1/3, 1/6): error O(h^4)."""
    ts = _as_times(times)
    y = y0
    for n, (t, t_next) in enumerate(itertools.pairwise(ts)):
        h = t_next - t
        t_mid = _scalar(t + 0.5 * h, y)
        k1 = f(_scalar(t, y), y)
        k2 = f(t_mid, y + (0.5 * h) * k1)
        k3 = f(t_mid, y + (0.5 * h) * k2)
        k4 = f(_scalar(t_next, y), y + h * k3)
        y = y + (h / 6.0) * (k1 + 2.0 * (k2 + k3) + k4)
        yield ODEStep(n + 1, t_next, y, 4 * (n + 1))


# --------------------------------------------------------------------------------------------
# adaptive Dormand–Prince 5(4)
# --------------------------------------------------------------------------------------------
# Butcher tableau (HNW Table II.5.2). _B is the fifth-order solution that is propagated
# (local extrapolation); _E = _B - B_hat (the embedded fourth-order weights) gives the
# error estimate err = h sum_i _E_i k_i, with k_7 = f(t + h, y_new) (FSAL).
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
)
_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)
_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)

# controller constants (HNW II.4, eq. 4.13 and the text after it)
_SAFETY = 0.9
_FAC_MIN = 0.2
_FAC_MAX = 10.0
_ORDER = 4  # of the error estimator: h scales as err^(-1/(order+1))


def _rms(x: Tensor) -> Tensor:
    return torch.sqrt(torch.mean(x * x))


def _initial_step(
    f: VectorField, t0: float, y0: Tensor, f0: Tensor, direction: float, rtol: float, atol: float
) -> float:
    """HNW II.4 "starting step size": h with h^5 ||f''|| ~ 0.01, at most 100 h0. One f call."""
    scale = atol + rtol * y0.abs()
    d0 = float(_rms(y0 / scale))
    d1 = float(_rms(f0 / scale))
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    y1 = y0 + (direction * h0) * f0
    f1 = f(_scalar(t0 + direction * h0, y0), y1)
    d2 = float(_rms((f1 - f0) / scale)) / h0
    if not math.isfinite(d2):
        return h0
    if max(d1, d2) <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / (_ORDER + 1))
    return min(100.0 * h0, h1)


def rk45_steps(
    f: VectorField,
    y0: Tensor,
    times: Tensor | Sequence[float],
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 10_000,
    first_step: float | None = None,
) -> Iterator[ODEStep]:
    """Adaptive Dormand–Prince 5(4) from ``times[0]`` to ``times[-1]``, landing on every time.

    After a step with error norm ``err`` (RMS, see the module docstring) the next step size is
    ``h * min(fac_max, max(0.2, 0.9 err^(-1/5)))`` (HNW eq. 4.13), with fac_max = 10, and 1 right
    after a rejected step (HNW's advice, so a rejection is not followed by a too-bold step).
    A step whose error is not finite (an overflow in a trial stage) is rejected and retried 5x
    smaller. ``first_step`` overrides the starting heuristic (which costs one evaluation).

    Raises :class:`WorkbenchError` after ``max_steps`` attempted steps (accepted plus rejected),
    or when the step size falls below float64 resolution of t: both signs of a stiff or singular
    problem that an explicit method cannot integrate at this tolerance.
    """
    if not (rtol > 0 and atol > 0):
        raise ConfigError("rtol" if not rtol > 0 else "atol", "tolerances must be > 0")
    ts = _as_times(times)
    t, t_end = ts[0], ts[-1]
    direction = 1.0 if t_end > t else -1.0
    y = y0
    k1 = f(_scalar(t, y), y)
    nfe = 1
    if first_step is None:
        h = _initial_step(f, t, y, k1, direction, rtol, atol)
        nfe += 1
    else:
        h = abs(float(first_step))
    h = min(h, abs(t_end - t))
    attempts = accepted = 0
    fac_max = _FAC_MAX
    for target in ts[1:]:
        while direction * (target - t) > 0:
            if attempts >= max_steps:
                raise WorkbenchError(
                    f"the adaptive ODE solver (rk45) took more than {max_steps} steps and "
                    f"reached only t = {t:.6g} of [{ts[0]:.6g}, {t_end:.6g}]; the problem is "
                    "stiff or the tolerances (rtol, atol) are too tight: loosen them or use a "
                    "fixed-step integrator"
                )
            # a step that would stop just short of the target takes it all the way instead
            remaining = abs(target - t)
            last = h >= remaining * (1 - 1e-12)
            step = remaining if last else h
            if step <= 16 * 2.0**-52 * max(abs(t), abs(target), 1e-300):
                raise WorkbenchError(
                    f"the adaptive ODE solver (rk45) step size fell to {step:.3g} at "
                    f"t = {t:.6g}: the solution is singular or stiff there"
                )
            hs = direction * step
            ks = [k1]
            for i in range(1, 6):
                dy = sum((hs * a) * k for a, k in zip(_A[i], ks, strict=False) if a != 0.0)
                ks.append(f(_scalar(t + _C[i] * hs, y), y + dy))
            y_new = y + sum((hs * b) * k for b, k in zip(_B, ks, strict=False) if b != 0.0)
            t_new = target if last else t + hs
            k7 = f(_scalar(t_new, y), y_new)
            ks.append(k7)
            nfe += 6
            attempts += 1
            err_vec = sum((hs * e) * k for e, k in zip(_E, ks, strict=True) if e != 0.0)
            scale = atol + rtol * torch.maximum(y.abs(), y_new.abs())
            err = float(_rms(err_vec / scale))  # the one host sync per step
            if err <= 1.0:
                t, y, k1 = t_new, y_new, k7
                accepted += 1
                fac = _FAC_MAX if err == 0.0 else _SAFETY * err ** (-1.0 / (_ORDER + 1))
                h = step * min(fac_max, max(_FAC_MIN, fac))
                fac_max = _FAC_MAX
                yield ODEStep(accepted, t, y, nfe)
            else:
                fac = _SAFETY * err ** (-1.0 / (_ORDER + 1)) if math.isfinite(err) else 0.0
                h = step * max(_FAC_MIN, min(1.0, fac))
                fac_max = 1.0


# --------------------------------------------------------------------------------------------
# registry and front ends
# --------------------------------------------------------------------------------------------
METHODS: Registry[Callable[..., Iterator[ODEStep]]] = Registry("ODE integrator", key="integrator")
METHODS.register("euler")(euler_steps)
METHODS.register("heun")(heun_steps)
METHODS.register("rk4")(rk4_steps)
METHODS.register("rk45")(rk45_steps)

#: order and evaluations per step of the fixed-step methods
FIXED_STEP_ORDERS: dict[str, tuple[int, int]] = {"euler": (1, 1), "heun": (2, 2), "rk4": (4, 4)}


def integrate(
    f: VectorField,
    y0: Tensor,
    times: Tensor | Sequence[float],
    method: str = "rk45",
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 10_000,
    first_step: float | None = None,
) -> Iterator[ODEStep]:
    """Integrate dy/dt = f(t, y) over ``times`` with ``method``, yielding every accepted step.

    Fixed-step methods take one step between consecutive entries of ``times`` (their time
    grid); ``rk45`` adapts its steps between ``times[0]`` and ``times[-1]`` and stops exactly at
    each entry. ``times`` may decrease (integration backwards in time). ``rtol``, ``atol``,
    ``max_steps`` and ``first_step`` are only used by ``rk45``.
    """
    fn = METHODS.get(method)
    if method == "rk45":
        return fn(f, y0, times, rtol=rtol, atol=atol, max_steps=max_steps, first_step=first_step)
    return fn(f, y0, times)


def odeint(
    f: VectorField,
    y0: Tensor,
    times: Tensor | Sequence[float],
    method: str = "rk45",
    **kw: Any,
) -> ODEResult:
    """:func:`integrate` run to the end: the final state and how much it cost."""
    last = ODEStep(0, _as_times(times)[0], y0, 0)
    for last in integrate(f, y0, times, method, **kw):  # noqa: B007
        pass
    return ODEResult(last.t, last.y, last.nfe, last.step)
