"""The checkpoint says what it was trained from: io writes the experiment's TOML into it (the
trainer, being core, knows no TOML)."""

from __future__ import annotations

from pathlib import Path

from workbench.config import default_config, parse_config
from workbench.core.train import Trainer
from workbench.io.runs import RunFolder, checkpoint_state
from workbench.jobs.train import train_in_folder


def _config():
    return default_config().with_overrides(
        {
            "train.device": "cpu",
            "train.batch_size": 64,
            "train.steps": 6,
            "train.checkpoint_every": 3,
            "data.n": 256,
            "model.hidden": 16,
            "loss.kind": "ssm_vr",
            "sample.sampler": "ode",
        }
    )


def test_the_run_folders_checkpoint_holds_the_experiment(tmp_path: Path) -> None:
    cfg = _config()
    assert train_in_folder(cfg, tmp_path / "run").status == "done"
    state = RunFolder.open(tmp_path / "run").load_checkpoint()
    assert state["step"] == 6
    assert parse_config(state["config"]) == cfg


def test_the_trainers_own_state_has_no_toml_and_io_adds_it() -> None:
    cfg = _config()
    trainer = Trainer(cfg)
    assert "config" not in trainer.state_dict()
    state = checkpoint_state(trainer, cfg)
    assert parse_config(state["config"]) == cfg
    assert set(state) == {*trainer.state_dict(), "config"}
