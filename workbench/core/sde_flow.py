"""The rectified-flow path of flow matching, as a linear SDE (registered as ``rectified``).

Flow matching (Lipman et al. 2023; Liu, Gong & Liu 2023) regresses a velocity field along a
chosen probability path x_t = m(t) x0 + s(t) z. Any such path with m(0) = 1, s(0) = 0 is the
transition kernel of a linear SDE dX = a(t) X dt + g(t) dW with

    a = m'/m,   g^2 = 2 (s s' - a s^2)   (from d(s^2)/dt = 2 a s^2 + g^2),

and that SDE's probability-flow velocity f - 1/2 g^2 grad log p_t is the marginal velocity
E[m' x0 + s' z | x_t] that flow matching learns. So a flow-matching path is one more linear SDE
here, and every sampler, likelihood and view written for linear SDEs applies to it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from workbench.core.params import Float, Param
from workbench.core.sde import SDES, LinearSDE, _time
from workbench.errors import ConfigError

__all__ = ["RectifiedFlowSDE"]


# A plain Float, so the GUI's forms show it as a number field; the reason for < 1 is in the help.
_T_BELOW_ONE = Float(0.0, 1.0, low_open=True, high_open=True)
_WHY = "the rectified path's drift -x/(1 - t) is infinite at t = 1"


@SDES.register("rectified")
class RectifiedFlowSDE(LinearSDE):
    """The rectified-flow / conditional optimal-transport path of flow matching (Liu, Gong &
    Liu 2023; Lipman et al. 2023) as a linear SDE: x_t = (1 - t) x0 + t z, so

        m(t) = 1 - t,  s(t) = t,  a(t) = m'/m = -1/(1 - t),
        g(t)^2 = 2 (s s' - a s^2) = 2 t / (1 - t),

    and the conditional velocity m' x0 + s' z = z - x0 is constant along each straight line.
    a and g are fixed by m and s, and this SDE's probability-flow ODE is the flow-matching ODE
    dx/dt = v(x, t) = E[z - x0 | x_t = x].

    a and g are infinite at t = 1, so the path stops at T < 1 (default 0.999). The prior is
    N(0, (m(T)^2 + s(T)^2) I) as for every linear SDE; at T = 0.999 it is off from the true
    p_T = law of m(T) x0 + s(T) z by at most d/2 ln(1 + m(T)^2/s(T)^2) = 5e-7 nats per
    coordinate for standardised data (see :meth:`LinearSDE.check_prior`), far below what
    sampling or a likelihood can resolve. Near T the drift a x and the score term 1/2 g^2 score
    are each ~1/(1 - T) = 1000 times the velocity they cancel to, so float32 sampling keeps
    about four digits of the velocity there; a T nearer 1 trades those digits for a prior
    closer still.

    The trigonometric VP path m = cos(pi t/2), s = sin(pi t/2) is ``cosine`` with s = 0 (and
    alpha_bar_min = cos(pi T/2)^2).
    """

    prior_key = "T"
    prior_hint = "raise T towards 1 (e.g. 0.999)"
    params = (Param("T", _T_BELOW_ONE, 0.999, f"the end time of the path, just below 1 ({_WHY})"),)

    def __init__(self, T: float = 0.999) -> None:
        if not 0.0 < T < 1.0:
            raise ConfigError("T", f"must be > 0 and < 1 ({_WHY}), got {T:g}")
        self.T = float(T)

    def drift_coeff(self, t: Tensor | float) -> Tensor:
        return -1.0 / (1.0 - _time(t))

    def diffusion(self, t: Tensor | float) -> Tensor:
        t = _time(t)
        return torch.sqrt(2.0 * t / (1.0 - t))

    def log_mean_coeff(self, t: Tensor | float) -> Tensor:
        return torch.log1p(-_time(t))

    def mean_coeff(self, t: Tensor | float) -> Tensor:
        return 1.0 - _time(t)

    def std(self, t: Tensor | float) -> Tensor:
        return _time(t).clone()

    def marginal_rates(self, t: Tensor | float) -> tuple[Tensor, Tensor]:
        t = _time(t)
        return -torch.ones_like(t), torch.ones_like(t)
