"""Reverse-time samplers: from the prior p_T back to the data, and the forward process itself.

Sampling solves, from t = T down to a small t = eps, either the reverse-time SDE
(Anderson 1982; Song et al. 2021, eq. 6)

    dX = [f(X, t) - g(t)^2 grad log p_t(X)] dt + g(t) dW_bar,

or the probability-flow ODE (Song et al. 2021, eq. 13), whose solutions have the same
marginals p_t,

    dx/dt = f(x, t) - 1/2 g(t)^2 grad log p_t(x),

with the score grad log p_t given by a score model ``model(x, t)``. The samplers here follow
score_sde_pytorch's ``sampling.py`` (predictors, correctors and the PC loop of Song et al.
2021, Alg. 1-3) and are written in the spirit of k-diffusion: a time grid is computed once,
every per-step coefficient is a plain float worked out on the host in float64 from that grid
before the loop, and the loop itself is a few tensor operations per step with no host
synchronisation (no ``.item()``; the adaptive ODE solver reads one number per step).

Registered samplers (:data:`SAMPLERS`, config key ``sampler``):

* ``em``  Euler–Maruyama on the reverse SDE (the ``pc`` loop with predictor ``euler_maruyama``
  and no corrector);
* ``pc``  predictor–corrector: a predictor (:data:`PREDICTORS`: ``euler_maruyama``,
  ``reverse_diffusion``, ``ancestral``) and a corrector (:data:`CORRECTORS`: ``langevin``,
  ``none``) per step;
* ``ode`` the probability-flow ODE with an integrator of :mod:`workbench.core.odeint`
  (``euler``, ``heun``, ``rk4`` on the time grid, or adaptive ``rk45``);
* ``ddim`` (with ``eta``), ``euler_ancestral``, ``dpmpp_2m``, ``dpmpp_2m_sde``, ``heun_churn``
  (Karras et al. 2022, Alg. 2): k-diffusion's solvers written in m(t), s(t) of any linear SDE
  (:mod:`~workbench.core.samplers.solvers`).

A sampler's :meth:`Sampler.run` is a generator of :class:`SamplerStep` rows: step 0 is the prior
draw at t = T, then one row per solver step, and last the final samples (denoised by Tweedie's
formula at t = eps and reported at t = 0, or the last step's state at t = eps when
``denoise`` is off). ``sampler.nfe`` counts the score evaluations so far.

Time grids (:data:`TIME_GRIDS`, config key ``grid``) run from T down to eps in ``steps`` steps;
``grid = "auto"`` (the default) is each sampler's own :attr:`Sampler.default_grid` (``quadratic``
for ``dpmpp_2m``, ``uniform`` for the others), and ``sampler.grid`` says which one ran.
:func:`simulate_forward` runs the forward SDE from data, :class:`ImputationSampler` samples
conditionally on known coordinates (by the replacement of Song et al. 2021, App. I.2, or by
sequential Monte Carlo after Trippe et al. 2022), and :func:`sample` draws the prior and runs a
sampler, optionally in chunks.

One module per piece, each short enough to read against its paper:

* :mod:`~workbench.core.samplers.base`: :class:`SamplerStep`, :class:`Sampler`, the
  :data:`SAMPLERS` registry (the one list of sampler names) and :func:`build_sampler`;
* :mod:`~workbench.core.samplers.grids`: :data:`TIME_GRIDS`, :func:`time_grid`, :class:`Schedule`;
* :mod:`~workbench.core.samplers.predictors`, :mod:`~workbench.core.samplers.correctors`: the
  steps of the ``pc`` loop, in :mod:`~workbench.core.samplers.pc` (``pc``, ``em``);
* :mod:`~workbench.core.samplers.ode`: the probability-flow ODE sampler (``ode``);
* :mod:`~workbench.core.samplers.solvers`: DDIM, DPM-Solver++, Euler ancestral, Karras's Heun;
* :mod:`~workbench.core.samplers.guides`, :mod:`~workbench.core.samplers.imputation`:
  conditional sampling;
* :mod:`~workbench.core.samplers.run`: :func:`sample` (prior draw, fast path, chunks);
* :mod:`~workbench.core.samplers.forward`: :func:`simulate_forward`.
"""

# the sampler modules first, pc before ode: SAMPLERS lists the names in registration order
# isort: off
from workbench.core.samplers.pc import EulerMaruyamaSampler, PCSampler
from workbench.core.samplers.ode import ODESampler
from workbench.core.samplers.solvers import (
    DDIMSampler,
    DPMPP2MSampler,
    DPMPP2MSDESampler,
    EulerAncestralSampler,
    HeunChurnSampler,
)

# isort: on
from workbench.core.samplers.base import (
    AUTO_GRID,
    SAMPLER_DEFAULTS,
    SAMPLERS,
    Sampler,
    SamplerStep,
    build_sampler,
)
from workbench.core.samplers.correctors import (
    CORRECTORS,
    Corrector,
    LangevinCorrector,
    NoneCorrector,
)
from workbench.core.samplers.forward import simulate_forward
from workbench.core.samplers.grids import TIME_GRIDS, Schedule, time_grid
from workbench.core.samplers.guides import IMPUTATION_METHODS, Guide, ReplacementGuide, SMCGuide
from workbench.core.samplers.imputation import ImputationSampler, impute
from workbench.core.samplers.predictors import (
    PREDICTORS,
    AncestralPredictor,
    EulerMaruyamaPredictor,
    Predictor,
    ReverseDiffusionPredictor,
)
from workbench.core.samplers.run import auto_sample_chunk, sample

__all__ = [
    "AUTO_GRID",
    "SamplerStep",
    "TIME_GRIDS",
    "time_grid",
    "Schedule",
    "PREDICTORS",
    "Predictor",
    "EulerMaruyamaPredictor",
    "ReverseDiffusionPredictor",
    "AncestralPredictor",
    "CORRECTORS",
    "Corrector",
    "LangevinCorrector",
    "NoneCorrector",
    "SAMPLERS",
    "Sampler",
    "PCSampler",
    "EulerMaruyamaSampler",
    "ODESampler",
    "DDIMSampler",
    "EulerAncestralSampler",
    "DPMPP2MSampler",
    "DPMPP2MSDESampler",
    "HeunChurnSampler",
    "ImputationSampler",
    "Guide",
    "ReplacementGuide",
    "SMCGuide",
    "IMPUTATION_METHODS",
    "SAMPLER_DEFAULTS",
    "build_sampler",
    "impute",
    "sample",
    "auto_sample_chunk",
    "simulate_forward",
]
