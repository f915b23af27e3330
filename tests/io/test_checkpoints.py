import os
import pickle
from pathlib import Path

import pytest
import torch

from workbench.config import default_config
from workbench.core.train import Trainer
from workbench.errors import WorkbenchError
from workbench.io.checkpoints import load_checkpoint, save_checkpoint


def tiny_trainer(**overrides: object) -> Trainer:
    base = {"train.device": "cpu", "train.batch_size": 64, "data.n": 512, "model.hidden": 32}
    base.update(overrides)
    return Trainer(default_config().with_overrides(base))


def test_round_trip_is_exact(tmp_path: Path) -> None:
    trainer = tiny_trainer()
    trainer.run(steps=5)
    path = save_checkpoint(trainer.state_dict(), tmp_path / "checkpoint.pt")
    state = load_checkpoint(path)
    assert state["step"] == 5 and state["format_version"] == 1
    other = tiny_trainer()
    other.load_state_dict(state)
    for a, b in zip(
        trainer.model.state_dict().values(), other.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    assert torch.equal(trainer.generator.get_state(), other.generator.get_state())
    assert load_checkpoint(tmp_path) is not None  # a run folder names its checkpoint


class RunsCode:
    """An object whose unpickling would run a command: the classic malicious checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "sde-workbench/checkpoint", "payload": RunsCode(marker)}, path)
    with pytest.raises(WorkbenchError, match="refused to load"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_files_are_clear_errors(tmp_path: Path, damage: str) -> None:
    trainer = tiny_trainer()
    path = save_checkpoint(trainer.state_dict(), tmp_path / "checkpoint.pt")
    data = path.read_bytes()
    path.write_bytes(
        {"truncate": data[: len(data) // 2], "garbage": os.urandom(4096), "empty": b""}[damage]
    )
    with pytest.raises(WorkbenchError, match="corrupt or truncated") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_foreign_and_future_files(tmp_path: Path) -> None:
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(WorkbenchError, match="not an SDE Workbench checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    save_checkpoint({"step": 1}, tmp_path / "future.pt")
    state = torch.load(tmp_path / "future.pt", weights_only=True)
    state["format_version"] = 99
    torch.save(state, tmp_path / "future.pt")
    with pytest.raises(WorkbenchError, match="version 99"):
        load_checkpoint(tmp_path / "future.pt")
    with pytest.raises(WorkbenchError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_of_another_architecture(tmp_path: Path) -> None:
    path = save_checkpoint(tiny_trainer().state_dict(), tmp_path / "c.pt")
    other = tiny_trainer(**{"model.hidden": 48})
    with pytest.raises(WorkbenchError, match="different network"):
        other.load_state_dict(load_checkpoint(path))


def test_failed_write_keeps_the_old_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_checkpoint({"step": 1}, tmp_path / "c.pt")
    before = path.read_bytes()

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(WorkbenchError, match="No space left"):
        save_checkpoint({"step": 2}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left behind


def test_only_plain_types_are_written(tmp_path: Path) -> None:
    trainer = tiny_trainer()
    path = save_checkpoint(trainer.state_dict(), tmp_path / "c.pt")
    # weights_only loading succeeds without any allow-listed globals
    torch.load(path, weights_only=True)
    with pytest.raises(pickle.UnpicklingError):
        torch.save({"x": RunsCode(tmp_path / "m")}, tmp_path / "bad.pt")
        torch.load(tmp_path / "bad.pt", weights_only=True)


def test_the_checkpoint_holds_the_normaliser_and_the_data_fingerprint(tmp_path: Path) -> None:
    import hashlib

    import numpy as np

    from workbench.core.data import Normalizer

    data = tmp_path / "points.npy"
    np.save(data, np.random.default_rng(0).normal(5.0, 2.0, size=(300, 3)))
    trainer = tiny_trainer(**{"data.name": "file", "data.path": str(data), "data.n": 300})
    state = load_checkpoint(save_checkpoint(trainer.state_dict(), tmp_path / "c.pt"))
    stored = state["data"]
    assert Normalizer.from_attrs(stored["normalizer"]) == trainer.normalizer
    assert stored["normalizer"]["mode"] == "standardise"
    fingerprint = stored["fingerprint"]
    assert fingerprint["name"] == "file" and fingerprint["path"] == str(data)
    assert fingerprint["size"] == data.stat().st_size
    assert fingerprint["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()

    builtin = tiny_trainer(**{"data.name": "moons", "data.noise": 0.05}).state_dict()["data"]
    assert builtin["fingerprint"] == {"name": "moons", "params": {"noise": 0.05}}


def test_a_trainer_refuses_a_checkpoint_of_another_normaliser(tmp_path: Path) -> None:
    from workbench.core.data import Normalizer

    state = tiny_trainer().state_dict()
    other = Normalizer.from_attrs(state["data"]["normalizer"])
    state["data"]["normalizer"] = Normalizer(other.shift, other.scale * 2, other.mode).to_attrs()
    with pytest.raises(WorkbenchError, match="another normalisation"):
        tiny_trainer().load_state_dict(state)
    # built with the stored one (as a resume builds it), it loads
    trainer = tiny_trainer()
    twin = trainer.dataset.with_normalizer(Normalizer.from_attrs(state["data"]["normalizer"]))
    Trainer(trainer.config, dataset=twin).load_state_dict(state)
