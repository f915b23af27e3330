"""The defaults study: which [model]/[train]/[sample] defaults learn a small Gaussian mixture.

Not part of the test suite. Each candidate trains the default config (with the candidate's
overrides) for ``--steps`` CPU steps on a 2-D Gaussian-mixture *data file* (``data.name =
"file"``: the empirical distribution of n points, normalised by their own statistics, as a
user's file would be), then samples with the [sample] section and reports the mean
log-density gap

    gap = mean log p(samples) - mean log p(true samples),   p the true mixture (data units),

0 for a perfect model, > 0 for samples that are too concentrated on the modes, < 0 for samples
that are too spread out. One training run serves several EMA decays at once (extra averages
kept beside the trainer's own, updated with the same warm-up rule) and several sampler
settings (the same trained weights, the same sampler seed: common random numbers, so the
differences between sampler rows are not sampling noise of the prior draw).

Cost is reported as multiply-adds per particle of one network evaluation (sampling, where the
time branch is one row per step, and training, where every particle has its own t): counts,
not wall times, because the study ran on a loaded shared machine.

    PYTHONPATH=. python tools/defaults_study.py --out /tmp/study.json [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.config import default_config
from workbench.core.mixture import GaussianMixture
from workbench.core.samplers import build_sampler, sample
from workbench.core.study import log_density_gap
from workbench.core.train import Trainer

#: the file mixtures: a 5-component unequal 2-D mixture, and FFJORD's 8 Gaussians
MIXTURES: dict[str, GaussianMixture] = {
    "gmm5": GaussianMixture.isotropic(
        [[-2.0, -1.0], [2.0, -1.5], [0.0, 2.0], [3.0, 2.5], [-3.0, 2.0]],
        [0.5, 0.7, 0.4, 0.3, 0.6],
        [0.25, 0.2, 0.3, 0.1, 0.15],
    ),
    "8gauss": GaussianMixture.isotropic(
        (4.0 / math.sqrt(2.0))
        * torch.stack(
            [
                torch.cos(torch.arange(8, dtype=torch.float64) * math.pi / 4),
                torch.sin(torch.arange(8, dtype=torch.float64) * math.pi / 4),
            ],
            1,
        ),
        0.5 / math.sqrt(2.0),
    ),
}


def write_file(mixture: GaussianMixture, n: int, seed: int, folder: Path, name: str) -> Path:
    x = mixture.sample(n, torch.Generator().manual_seed(seed), dtype=torch.float64)
    path = folder / f"{name}_{n}_{seed}.npy"
    np.save(path, x.numpy())
    return path


class MultiEMATrainer(Trainer):
    """The trainer plus extra EMA copies at other decays (same warm-up rule)."""

    def __init__(self, *args: Any, decays: tuple[float, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        import copy

        self.extra = {d: copy.deepcopy(self.ema_model) for d in decays}

    @torch.no_grad()
    def update_ema(self, gate: torch.Tensor | None = None) -> None:
        super().update_ema(gate)
        k = self.step
        for d, model in self.extra.items():
            w = 1.0 - min(d, (1.0 + k) / (10.0 + k))
            torch._foreach_lerp_(list(model.parameters()), self.trainable, w)


def macs_per_particle(cfg: Any, dim: int = 2) -> dict[str, int]:
    m = cfg.model
    h, depth, e = m.hidden, m.depth, m.embed_dim
    body = dim * h + (depth - 1) * h * h + h * dim
    return {"sample": body, "train": body + e * h}


def evaluate(
    trainer: Trainer, model: torch.nn.Module, sample_over: dict[str, Any], n: int, seed: int
) -> torch.Tensor:
    cfg = trainer.config
    params = {p.name: getattr(cfg.sample, p.name) for p in cfg.sample.PARAMS}
    params.update(sample_over)
    sampler = build_sampler(trainer.sde, model.eval(), params)
    gen = torch.Generator().manual_seed(seed)
    last = None
    with torch.no_grad():
        for row in sample(sampler, n, (2,), gen, "cpu"):
            last = row
    assert last is not None
    return trainer.normalizer.to_data(last.x.to(torch.float64))


def run_candidate(
    name: str,
    data_path: Path,
    mixture: GaussianMixture,
    reference: torch.Tensor,
    overrides: dict[str, Any],
    samplers: dict[str, dict[str, Any]],
    decays: tuple[float, ...],
    steps: int,
    n_samples: int,
    seed: int,
) -> list[dict[str, Any]]:
    cfg = default_config().with_overrides(
        {
            "data.name": "file",
            "data.path": str(data_path),
            "train.device": "cpu",
            "train.steps": steps,
            "train.seed": seed,
            **overrides,
        }
    )
    trainer = MultiEMATrainer(cfg, decays=decays)
    started = time.perf_counter()
    result = trainer.run()
    train_s = time.perf_counter() - started
    assert result.status == "done", result.message
    models = {f"ema={cfg.train.ema:g}": trainer.ema_model}
    models.update({f"ema={d:g}": m for d, m in trainer.extra.items()})
    rows = []
    for mname, model in models.items():
        for sname, sover in samplers.items():
            x = evaluate(trainer, model, sover, n_samples, seed=1000 + seed)
            gap = log_density_gap(mixture, x, reference)
            row = {
                "candidate": name,
                "seed": seed,
                "weights": mname,
                "sampler": sname,
                "gap": round(gap, 4),
                "train_s": round(train_s, 1),
                "macs": macs_per_particle(cfg),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


#: the sampler settings each trained model is sampled with (on top of the config's [sample])
SAMPLERS: dict[str, dict[str, Any]] = {
    "em1000": {},
    "em1000-nodenoise": {"denoise": False},
    "em250": {"steps": 250},
    "em250-quadratic": {"steps": 250, "grid": "quadratic"},
}

#: the training candidates: name -> overrides of the default config
CANDIDATES: dict[str, dict[str, Any]] = {
    "default": {},
    "embed32": {"model.embed_dim": 32},
    "embed16": {"model.embed_dim": 16},
    "embed64": {"model.embed_dim": 64},
    "cosine": {"train.schedule": "cosine"},
    "embed32-cosine": {"model.embed_dim": 32, "train.schedule": "cosine"},
    "lr1e-3": {"train.lr": 1e-3},
    "lr5e-3-cosine": {"train.lr": 5e-3, "train.schedule": "cosine"},
    "embed32-lr1e-3": {"model.embed_dim": 32, "train.lr": 1e-3},
    "lr5e-3-const": {"train.lr": 5e-3},
    "embed32-lr5e-3-cosine": {"model.embed_dim": 32, "train.lr": 5e-3, "train.schedule": "cosine"},
    "embed16-lr5e-3-cosine": {"model.embed_dim": 16, "train.lr": 5e-3, "train.schedule": "cosine"},
    "embed32-lr1e-2-cosine": {"model.embed_dim": 32, "train.lr": 1e-2, "train.schedule": "cosine"},
    "embed32-lr5e-3-cosine-fs4": {
        "model.embed_dim": 32,
        "train.lr": 5e-3,
        "train.schedule": "cosine",
        "model.fourier_scale": 4.0,
    },
    "embed32-lr5e-3-cosine-h192": {
        "model.embed_dim": 32,
        "train.lr": 5e-3,
        "train.schedule": "cosine",
        "model.hidden": 192,
    },
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--n-file", type=int, default=10_000)
    ap.add_argument("--n-samples", type=int, default=2000)
    ap.add_argument("--candidates", default=",".join(CANDIDATES))
    ap.add_argument("--samplers", default=",".join(SAMPLERS))
    ap.add_argument("--mixtures", default="gmm5")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--decays", default="0.99,0.9995")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    decays = tuple(float(d) for d in args.decays.split(",") if d)
    samplers = {k: SAMPLERS[k] for k in args.samplers.split(",")}
    with tempfile.TemporaryDirectory() as tmp:
        for mname in args.mixtures.split(","):
            mixture = MIXTURES[mname]
            path = write_file(mixture, args.n_file, 0, Path(tmp), mname)
            reference = mixture.sample(200_000, torch.Generator().manual_seed(99))
            for seed in (int(s) for s in args.seeds.split(",")):
                for cname in args.candidates.split(","):
                    for row in run_candidate(
                        cname,
                        path,
                        mixture,
                        reference,
                        CANDIDATES[cname],
                        samplers,
                        decays,
                        args.steps,
                        args.n_samples,
                        seed,
                    ):
                        rows.append({"mixture": mname, **row})
                        args.out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
