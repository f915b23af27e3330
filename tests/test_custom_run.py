"""End to end with a non-linear forward SDE: a double-well run trained with sliced score matching
on simulated x_t, sampled from its run folder with the reverse SDE (prior: the training data
simulated to T), and compared with p_0 (for this mixture data, the Fokker–Planck p_0 is the
data density itself) against the comparison's own noise floor.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import h5py
import pytest
import torch

from workbench.core.data import build_dataset
from workbench.jobs.sample import load_model, sample_to_file, sde_for_sampling
from workbench.jobs.train import train_in_folder
from workbench.presets import preset_config

# Small and short enough for the 2-core CI machine; the double well's wells at +-1 hold the
# standardised data's two (1-D) or four (2-D) modes.
QUICK = {
    "train.device": "cpu",
    "train.steps": int(os.environ.get("SDE_TEST_CUSTOM_STEPS", "800")),
    "train.batch_size": 256,
    "train.warmup": 50,
    "train.log_every": 100,
    "train.checkpoint_every": 10000,
    "model.hidden": 64,
    "model.depth": 2,
    "data.n": 4000,
    "sample.n": 2000,
    "sample.steps": 250,
    "sample.record_every": 0,
}


@pytest.fixture(autouse=True)
def _one_thread():
    # Small networks gain nothing from a second thread, and on a shared 2-core machine the
    # thread pool's waiting made these runs ~10x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(name: str, tmp_path: Path, overrides: dict | None = None):
    cfg = preset_config(name).with_overrides({**QUICK, **(overrides or {})})
    result = train_in_folder(cfg, tmp_path / "run")
    assert result.status == "done", result.message
    config, model, dataset = load_model(tmp_path / "run")
    out = sample_to_file(config, model, tmp_path / "samples.h5")
    assert out.status == "done"
    with h5py.File(out.path) as f:
        samples = torch.as_tensor(f["samples"][:], dtype=torch.float64)
    return config, dataset, samples


def _histogram_l1(samples: torch.Tensor, mixture, edges: torch.Tensor) -> tuple[float, float]:
    """(L1, floor): L1 between the samples' histogram on the grid ``edges`` per axis (plus one
    bin for everything outside) and the exact bin masses of a mixture with diagonal
    covariances; floor = the expected L1 of n exact draws, sum_i sqrt(2 p_i (1 - p_i)/(pi n))
    (each bin count binomial, E|hat p - p| ~ sqrt(2/pi) sd)."""
    n, d = samples.shape
    assert torch.count_nonzero(mixture.covs - torch.diag_embed(mixture.covs.diagonal(0, 1, 2))) == 0
    sd = mixture.covs.diagonal(0, 1, 2).sqrt()  # (K, d)
    # per component and axis, the mass of every interval between edges
    cell = torch.diff(
        torch.special.ndtr((edges[None, :, None] - mixture.means[:, None]) / sd[:, None]), dim=1
    )
    mass = cell[..., 0] if d == 1 else torch.einsum("ki,kj->kij", cell[..., 0], cell[..., 1])
    mass = torch.einsum("k,k...->...", mixture.weights, mass).reshape(-1)
    mass = torch.cat([mass, (1 - mass.sum()).clamp_min(0).reshape(1)])
    idx = torch.searchsorted(edges, samples.contiguous(), right=True) - 1  # (n, d)
    inside = ((idx >= 0) & (idx < len(edges) - 1)).all(-1)
    flat = idx[:, 0] if d == 1 else idx[:, 0] * (len(edges) - 1) + idx[:, 1]
    counts = torch.bincount(flat[inside], minlength=mass.numel() - 1).to(torch.float64)
    counts = torch.cat([counts, torch.tensor([float((~inside).sum())], dtype=torch.float64)])
    l1 = float((counts / n - mass).abs().sum())
    floor = float(torch.sqrt(2 * mass * (1 - mass) / (math.pi * n)).sum())
    return l1, floor


# Measured (2000 points): p_T itself, which a sampler that learned nothing would hand back,
# scores 9.2x the floor in 1-D and 4.1x in 2-D; fresh data 1.2x and 1.0x; these short runs
# 2.0x and 1.8x. Asked: 3x and 2.5x.
@pytest.mark.parametrize(
    ("name", "edges", "multiple"),
    [
        ("double-well-1d", torch.linspace(-4.0, 4.0, 41, dtype=torch.float64), 3.0),
        ("double-well-2d", torch.linspace(-3.0, 3.0, 25, dtype=torch.float64), 2.5),
    ],
)
def test_double_well_samples_match_p0_within_a_multiple_of_the_noise_floor(
    name: str, edges: torch.Tensor, multiple: float, tmp_path: Path
) -> None:
    _, dataset, samples = _run(name, tmp_path)
    assert torch.isfinite(samples).all()
    l1, floor = _histogram_l1(samples, dataset.mixture(), edges)
    print(f"{name}: histogram L1 {l1:.4f}, noise floor {floor:.4f} ({l1 / floor:.2f}x)")
    assert l1 < multiple * floor, (l1, floor)


@pytest.mark.parametrize("name", ["double-well-1d", "double-well-2d", "rotating-ou", "ou-shifted"])
def test_custom_presets_are_complete_experiments(name: str) -> None:
    cfg = preset_config(name)
    assert cfg.sde.kind == "custom" and cfg.loss.kind in ("ssm", "ssm_vr", "esm")
    assert cfg.model.output == "score" and not cfg.sample.denoise


def test_dsm_with_a_custom_sde_is_refused_by_check(tmp_path: Path, capsys) -> None:
    from workbench.cli import main
    from workbench.config import config_to_dict

    tree = config_to_dict(preset_config("double-well-1d"))
    text = tmp_path / "exp.toml"
    body = []
    for section, keys in tree.items():
        body.append(f"[{section}]")
        for key, value in keys.items():
            if section == "loss" and key == "kind":
                value = "dsm"
            body.append(f"{key} = {_toml(value)}")
    text.write_text("\n".join(body) + "\n")
    assert main(["check", str(text)]) == 1
    err = capsys.readouterr().err
    assert "loss.kind" in err and "'ssm'" in err and "Traceback" not in err


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def test_a_drift_that_blows_up_stops_training_with_a_message(tmp_path: Path) -> None:
    from workbench.errors import WorkbenchError

    cfg = preset_config("double-well-1d").with_overrides(
        {**QUICK, "sde.drift": "x^3", "sde.g": "0.1", "train.steps": 1}
    )
    with pytest.raises(WorkbenchError, match="non-finite at t = "):
        train_in_folder(cfg, tmp_path / "run")


def test_fpk_prior_of_an_ou_process_has_its_exact_moments() -> None:
    # dX = -(X - 1) dt + dW from the standardised data (mean 0, variance 1) to T = 1:
    # mean 1 - e^-1, variance e^-2 + (1 - e^-2)/2, whatever the data's shape
    cfg = preset_config("double-well-1d").with_overrides(
        {"sde.drift": "-(x - 1)", "sde.prior": "fpk", "data.n": 4000}
    )
    dataset = build_dataset(cfg.data.name, dict(cfg.data.params))
    sde = sde_for_sampling(cfg, dataset)
    n = 40000
    z = sde.prior_sample((n, 1), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    mean, var = 1 - math.exp(-1), math.exp(-2) + (1 - math.exp(-2)) / 2
    assert abs(float(z.mean()) - mean) < 4 * math.sqrt(var / n) + 2e-3
    assert abs(float(z.var()) / var - 1) < 4 * math.sqrt(2 / n) + 5e-3
