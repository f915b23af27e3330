"""Training snapshots (workbench.io.snapshots, written by workbench.jobs.train): which files a
real training leaves, what they hold, and one clear line for every bad one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workbench.config import ExperimentConfig, default_config
from workbench.core.train import Progress
from workbench.errors import WorkbenchError
from workbench.io.runs import RunFolder, is_free
from workbench.io.snapshots import (
    SNAPSHOT_FORMAT,
    list_snapshots,
    load_snapshot,
    save_snapshot,
    snapshot_path,
)
from workbench.jobs.train import train_in_folder


def config(**overrides: object) -> ExperimentConfig:
    base = {
        "train.device": "cpu",
        "train.batch_size": 128,
        "train.steps": 60,
        "train.log_every": 10,
        "train.checkpoint_every": 30,
        "train.snapshot_every": 20,
        "data.n": 2048,
        "model.hidden": 32,
    }
    base.update(overrides)
    return default_config().with_overrides(base)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("snap") / "run"
    assert train_in_folder(config(), path).status == "done"
    return path


def test_a_training_keeps_exactly_the_snapshots_of_its_interval(run: Path) -> None:
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == [
        "step-0000020.pt",
        "step-0000040.pt",
        "step-0000060.pt",
    ]
    assert list_snapshots(run) == [20, 40, 60]


def test_each_snapshot_is_the_ema_weights_of_its_step_and_small(run: Path) -> None:
    checkpoint = RunFolder.open(run).load_checkpoint()
    size = (run / "checkpoint.pt").stat().st_size
    for step in (20, 40, 60):
        raw = torch.load(snapshot_path(run, step), weights_only=True)  # plain tensors only
        assert raw["format"] == SNAPSHOT_FORMAT and raw["step"] == step
        assert set(raw) == {"format", "format_version", "step", "ema"}
        assert snapshot_path(run, step).stat().st_size < size / 2
        ema = load_snapshot(run, step)
        assert set(ema) == set(checkpoint["ema"])
    last, early = load_snapshot(run, 60), load_snapshot(run, 20)
    # the last snapshot is the final checkpoint's EMA, the early one is not
    assert all(torch.equal(last[k], checkpoint["ema"][k]) for k in last)
    assert not all(torch.equal(early[k], checkpoint["ema"][k]) for k in early)


def test_off_writes_no_snapshots(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_in_folder(config(**{"train.snapshot_every": 0, "train.steps": 20}), run)
    assert not (run / "snapshots").exists() and list_snapshots(run) == []


def test_the_default_interval_and_that_it_may_change_on_resume() -> None:
    assert default_config().train.snapshot_every == 500
    assert is_free("train", "snapshot_every", resume=True)
    with pytest.raises(Exception, match="snapshot_every"):
        default_config().with_overrides({"train.snapshot_every": -1})


def test_a_resume_drops_snapshots_past_its_checkpoint_then_writes_its_own(tmp_path: Path) -> None:
    run = tmp_path / "run"

    def crash(p: Progress) -> None:
        if p.step == 50:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError):
        train_in_folder(config(), run, on_progress=crash)
    # checkpoint at 30, snapshots at 20 and 40: the one at 40 is past the checkpoint
    assert list_snapshots(run) == [20, 40]
    before = snapshot_path(run, 40).stat().st_mtime_ns
    assert train_in_folder(config(), run, resume=True).status == "done"
    assert list_snapshots(run) == [20, 40, 60]
    assert snapshot_path(run, 40).stat().st_mtime_ns != before


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_bytes(b""), "not a readable snapshot"),
        (lambda p: p.write_bytes(p.read_bytes()[:200]), "not a readable snapshot"),
        (lambda p: torch.save({"format": "other"}, p), "is not an SDE Workbench snapshot"),
        (
            lambda p: torch.save(
                {"format": SNAPSHOT_FORMAT, "format_version": 1, "step": 20, "ema": [1]}, p
            ),
            "not a map of named tensors",
        ),
        (
            lambda p: torch.save(
                {"format": SNAPSHOT_FORMAT, "format_version": 9, "step": 20, "ema": {}}, p
            ),
            "please update",
        ),
        (
            lambda p: torch.save(
                {"format": SNAPSHOT_FORMAT, "format_version": 1, "step": 40, "ema": {}}, p
            ),
            "it says step 40",
        ),
    ],
)
def test_a_bad_snapshot_is_one_clear_line(tmp_path: Path, damage: object, message: str) -> None:
    save_snapshot(tmp_path, 20, {"w": torch.ones(3)})
    path = snapshot_path(tmp_path, 20)
    damage(path)  # type: ignore[operator]
    with pytest.raises(WorkbenchError, match=message) as info:
        load_snapshot(tmp_path, 20)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_a_snapshot_holding_a_pickled_object_is_refused(tmp_path: Path) -> None:
    save_snapshot(tmp_path, 20, {"w": torch.ones(3)})
    torch.save({"format": SNAPSHOT_FORMAT, "x": Path("/")}, snapshot_path(tmp_path, 20))
    with pytest.raises(WorkbenchError, match="pickled Python object"):
        load_snapshot(tmp_path, 20)


def test_listing_ignores_what_is_not_a_snapshot(tmp_path: Path) -> None:
    save_snapshot(tmp_path, 7, {"w": torch.ones(1)})
    where = tmp_path / "snapshots"
    (where / ".step-0000009.pt.abc.tmp").write_bytes(b"half")
    (where / "notes.txt").write_text("x")
    (where / "step-0000011.pt").mkdir()
    assert list_snapshots(tmp_path) == [7]
    assert list_snapshots(tmp_path / "nowhere") == []
    with pytest.raises(WorkbenchError, match="no snapshot at step 8"):
        load_snapshot(tmp_path, 8)
