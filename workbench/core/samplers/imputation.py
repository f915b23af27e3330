"""Conditional sampling given known coordinates: a stochastic sampler steered by a guide."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any, cast

import torch
from torch import Tensor, nn

from workbench.core.samplers.base import Sampler, SamplerStep, ScoreFn, build_sampler
from workbench.core.samplers.guides import IMPUTATION_METHODS, Guide, SMCGuide
from workbench.core.samplers.pc import PCSampler
from workbench.core.sde import SDE, LinearSDE
from workbench.errors import ConfigError

__all__ = ["ImputationSampler", "impute"]


class ImputationSampler(Sampler):
    """Conditional sampling given known coordinates: imputation, or inpainting for images.

    ``known`` and ``mask`` (bool, True where known) are in model units, shaped like one sample
    or like the whole batch (n, *sample_shape), and broadcast against the states. Wraps an SDE
    sampler (``em`` or ``pc``, linear SDE) and steers every update by ``method``:

    * ``replace`` (default): Song et al. (2021, App. I.2), :class:`ReplacementGuide`: the known
      coordinates are replaced by fresh forward-noised values m(t) y + s(t) z after every
      update. Any known values (per sample too); approximate (see the class).
    * ``smc``: :class:`SMCGuide`, sequential Monte Carlo over the batch (Trippe et al. 2022):
      consistent in the number of samples, for known values shared by the whole batch, with
      corrector ``none``.

    The final row holds the known coordinates exactly (with ``denoise``; without it they are
    at the noise level of eps). NFE are those of the wrapped sampler. Run through
    :func:`sample` with ``chunk_size``, per-sample known values are cut to each chunk, and with
    ``smc`` every chunk is a population of its own.
    """

    def __init__(
        self,
        sampler: Sampler,
        known: Tensor,
        mask: Tensor,
        method: str = "replace",
        *,
        threshold: float = 0.5,
    ) -> None:
        if not isinstance(sampler, PCSampler):
            raise ConfigError(
                "sampler",
                "conditional sampling by imputation needs a stochastic sampler ('em' or 'pc'); "
                "replacing coordinates with noise does not fit the deterministic ODE",
            )
        if not isinstance(sampler.sde, LinearSDE):
            raise ConfigError("kind", "imputation needs a linear SDE (Gaussian transitions)")
        guide_cls = IMPUTATION_METHODS.get(method)
        if guide_cls is SMCGuide and sampler.corrector.nfe_per_step:
            raise ConfigError("corrector", "SMC imputation needs corrector = 'none'")
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError("threshold", f"must be in [0, 1], got {threshold!r}")
        super().__init__(sampler.sde, sampler.score_model, eps=sampler.eps, denoise=False)
        self.denoise = sampler.denoise
        self.base = copy.copy(sampler)
        self.known = torch.as_tensor(known)
        self.mask = torch.as_tensor(mask).to(torch.bool)
        self.method = method
        self.threshold = float(threshold)
        self.guide: Guide | None = None

    @classmethod
    def from_params(
        cls, sde: SDE, score_model: nn.Module | ScoreFn, params: Mapping[str, Any]
    ) -> Sampler:
        raise TypeError("build an ImputationSampler with impute() or from a built sampler")

    @property
    def n_steps(self) -> int | None:
        return self.base.n_steps

    @property
    def nfe(self) -> int:
        return self.base.nfe if "base" in self.__dict__ else 0

    @nfe.setter
    def nfe(self, value: int) -> None:
        if "base" in self.__dict__:
            self.base.nfe = value

    def _make_guide(self, generator: torch.Generator | None) -> Guide:
        if self.method == "smc":
            return SMCGuide(self.known, self.mask, generator, self.threshold)
        return IMPUTATION_METHODS.get(self.method)(self.known, self.mask, generator)

    def run(self, x_T: Tensor, generator: torch.Generator | None = None) -> Iterator[SamplerStep]:
        self.guide = self._make_guide(generator)
        return self.base._run(x_T, generator, self.guide)

    def _for_chunk(self, rows: slice, batch_ndim: int) -> Sampler:
        chunk = copy.copy(self)
        chunk.base = copy.copy(self.base)
        # per-sample known values and masks are cut to the chunk's rows; per-sample-shape
        # ones (fewer axes than a batch) apply to every chunk as they are
        if self.known.ndim == batch_ndim:
            chunk.known = self.known[rows]
        if self.mask.ndim == batch_ndim:
            chunk.mask = self.mask[rows]
        return chunk

    def with_score_model(self, score_model: nn.Module | ScoreFn) -> Sampler:
        other = copy.copy(self)
        # a copy of a PCSampler is a PCSampler
        other.base = cast(PCSampler, self.base.with_score_model(score_model))
        other.score_model = score_model
        return other


def impute(
    sde: SDE,
    score_model: nn.Module | ScoreFn,
    params: Mapping[str, Any] | None,
    known: Tensor,
    mask: Tensor,
    method: str = "replace",
) -> ImputationSampler:
    """:func:`build_sampler` from the [sample] keys, made conditional on ``known`` at ``mask``."""
    return ImputationSampler(build_sampler(sde, score_model, params), known, mask, method)
