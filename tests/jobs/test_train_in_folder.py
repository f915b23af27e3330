"""Training into a run folder (workbench.jobs.train): new runs, resumes, cancels, refusals."""

from pathlib import Path

import pytest

from workbench.config import ExperimentConfig, default_config, load_config
from workbench.core.train import Progress
from workbench.errors import WorkbenchError
from workbench.io.runs import RunFolder, read_metrics
from workbench.jobs.train import train_in_folder


def config(**overrides: object) -> ExperimentConfig:
    base = {
        "train.device": "cpu",
        "train.batch_size": 128,
        "train.steps": 60,
        "train.log_every": 10,
        "train.checkpoint_every": 20,
        "data.n": 2048,
        "model.hidden": 32,
    }
    base.update(overrides)
    return default_config().with_overrides(base)


def test_a_run_folder_holds_config_checkpoint_and_metrics(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = train_in_folder(config(), run)
    assert result.status == "done"
    folder = RunFolder.open(run)
    assert load_config(folder.config_path) == config()
    assert folder.load_checkpoint()["step"] == 60
    metrics = read_metrics(folder.metrics_path)
    assert metrics["step"] == [10, 20, 30, 40, 50, 60]
    assert folder.metrics_path.read_text().splitlines()[0] == "step,wall_time,loss,lr,grad_norm"


def test_resume_continues_the_curve_exactly(tmp_path: Path) -> None:
    # a run extended from 20 to 60 steps equals a 60-step run where the learning rate does not
    # depend on the total: under the default cosine decay the first 20 steps of a 20-step run
    # decay faster (the schedule applies to the steps after the checkpoint, as documented)
    constant = {"train.schedule": "constant"}
    whole = tmp_path / "whole"
    train_in_folder(config(**constant), whole)
    part = tmp_path / "part"
    train_in_folder(config(**{**constant, "train.steps": 20}), part)
    result = train_in_folder(config(**constant), part, resume=True)
    assert result.status == "done"
    a, b = read_metrics(whole / "metrics.csv"), read_metrics(part / "metrics.csv")
    assert a["step"] == b["step"] == [10, 20, 30, 40, 50, 60]
    assert a["loss"] == b["loss"]


def test_a_crashed_run_resumes_without_duplicate_rows(tmp_path: Path) -> None:
    run = tmp_path / "run"

    def crash(p: Progress) -> None:
        if p.step == 30:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError):
        train_in_folder(config(), run, on_progress=crash)
    # rows 10..30 were flushed; the last checkpoint is at step 20
    assert read_metrics(run / "metrics.csv")["step"] == [10, 20, 30]
    assert RunFolder.open(run).load_checkpoint()["step"] == 20
    train_in_folder(None, run, resume=True)
    steps = read_metrics(run / "metrics.csv")["step"]
    assert steps == [10, 20, 30, 40, 50, 60]
    whole = tmp_path / "whole"
    train_in_folder(config(), whole)
    assert read_metrics(run / "metrics.csv")["loss"] == read_metrics(whole / "metrics.csv")["loss"]


def test_cancel_keeps_a_checkpoint_of_the_last_step(tmp_path: Path) -> None:
    seen: list[int] = []
    result = train_in_folder(
        config(),
        tmp_path / "run",
        on_progress=lambda p: seen.append(p.step),
        cancel=lambda: len(seen) >= 2,
    )
    assert result.status == "cancelled" and result.step == 20
    assert RunFolder.open(tmp_path / "run").load_checkpoint()["step"] == 20


def test_torn_last_metrics_line_is_dropped(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_in_folder(config(**{"train.steps": 20}), run)
    with open(run / "metrics.csv", "a") as fh:
        fh.write("30,1.2,0.5")  # a writer killed mid-line
    assert read_metrics(run / "metrics.csv")["step"] == [10, 20]
    train_in_folder(None, run, resume=True, steps=40)
    assert read_metrics(run / "metrics.csv")["step"] == [10, 20, 30, 40]


def test_refusals(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_in_folder(config(**{"train.steps": 10}), run)
    with pytest.raises(WorkbenchError, match="already holds a run"):
        train_in_folder(config(), run)
    with pytest.raises(
        WorkbenchError, match=r"differs from the run in .* in model\.hidden \(16 vs 32\)"
    ):
        train_in_folder(config(**{"model.hidden": 16}), run, resume=True)
    with pytest.raises(WorkbenchError, match="does not exist"):
        train_in_folder(None, tmp_path / "nowhere", resume=True)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.toml").write_text('[data]\nname = "8gaussians"\n')
    with pytest.raises(WorkbenchError, match="no checkpoint"):
        train_in_folder(None, tmp_path / "empty", resume=True)


def test_resume_uses_the_checkpoints_normaliser_not_a_recomputed_one(tmp_path: Path) -> None:
    import numpy as np

    from workbench.core.data import Normalizer
    from workbench.io.checkpoints import load_checkpoint, save_checkpoint

    data = tmp_path / "points.npy"
    np.save(data, np.random.default_rng(1).normal(3.0, 4.0, size=(256, 2)))
    cfg = config(**{"data.name": "file", "data.path": str(data), "data.n": 256, "train.steps": 10})
    run = tmp_path / "run"
    train_in_folder(cfg, run)
    # a normaliser the data would never give: only the checkpoint can be its source
    state = load_checkpoint(run / "checkpoint.pt")
    old = Normalizer.from_attrs(state["data"]["normalizer"])
    planted = Normalizer(old.shift + 1.0, old.scale * 3.0, old.mode, old.sample_shape)
    state["data"]["normalizer"] = planted.to_attrs()
    save_checkpoint(
        {k: v for k, v in state.items() if k not in ("format", "format_version")},
        run / "checkpoint.pt",
    )
    seen = []
    train_in_folder(None, run, resume=True, steps=20, on_trainer=lambda t: seen.append(t))
    assert seen[0].normalizer == planted
    assert Normalizer.from_attrs(load_checkpoint(run / "checkpoint.pt")["data"]["normalizer"]) == (
        planted
    )
