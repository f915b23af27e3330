"""Re-sampling a run's snapshots (workbench.jobs.snapshots.resample_snapshots): the same noise
for every snapshot, the same result every time, and the model's learning visible in it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.config import default_config
from workbench.core.experiment import dataset_of
from workbench.core.metrics import noise_floor, sliced_wasserstein
from workbench.errors import WorkbenchError
from workbench.io.snapshots import snapshot_path
from workbench.jobs.snapshots import RESAMPLE_N, resample_snapshots, snapshot_hook
from workbench.jobs.train import train_in_folder

CONFIG = default_config().with_overrides(
    {
        "train.device": "cpu",
        "train.batch_size": 256,
        "train.steps": 120,
        "train.log_every": 20,
        "train.checkpoint_every": 120,
        "train.snapshot_every": 40,
        # a constant rate, pinned: the test is about snapshots, and under the default cosine
        # decay to 0 the last of 120 steps barely move the network
        "train.lr": 2e-3,
        "train.schedule": "constant",
        "data.n": 4096,
        "model.hidden": 64,
    }
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("resample") / "run"
    assert train_in_folder(CONFIG, path).status == "done"
    return path


@pytest.fixture(scope="module")
def cache(run: Path) -> dict:
    return resample_snapshots(run)


def test_every_snapshot_is_resampled_from_the_same_prior_draw(cache: dict) -> None:
    assert sorted(cache) == [40, 80, 120]
    first = [cache[s].rows[0] for s in (40, 80, 120)]
    assert first[0].shape == (RESAMPLE_N, 2)
    # x_T is the seed's, whatever the network: only the network differs between snapshots
    assert all(np.array_equal(first[0], f) for f in first[1:])
    assert not np.array_equal(cache[40].rows[-1], cache[120].rows[-1])


def test_resampling_is_deterministic_per_step(run: Path, cache: dict) -> None:
    again = resample_snapshots(run, [80])
    assert set(again) == {80}
    assert np.array_equal(again[80].rows[-1], cache[80].rows[-1])
    assert np.array_equal(again[80].times, cache[80].times)


def test_later_snapshots_sample_closer_to_the_data(cache: dict) -> None:
    data = dataset_of(CONFIG).sample(4 * RESAMPLE_N, torch.Generator().manual_seed(5)).numpy()

    def sw(x: np.ndarray, y: np.ndarray) -> float:
        return sliced_wasserstein(x, y, generator=torch.Generator().manual_seed(1))

    early, late = sw(cache[40].samples, data), sw(cache[120].samples, data)
    # the yardstick: what two samples of 512 data points differ by
    floor, spread = noise_floor(
        lambda x, y, generator=None: sw(x, y),
        lambda k, g: dataset_of(CONFIG).sample(k, g).numpy(),
        RESAMPLE_N,
        generator=torch.Generator().manual_seed(3),
    )
    assert late < early / 2, (early, late)
    assert early > floor + 10 * spread  # the early model is visibly not there yet


def test_the_cache_is_reused_and_the_steps_come_in_order(run: Path, cache: dict) -> None:
    seen: list[int] = []
    progress: list[tuple[int, int]] = []
    partial = {40: cache[40]}
    out = resample_snapshots(
        run,
        cache=partial,
        on_result=lambda r: seen.append(r.step),
        progress=lambda d, t: progress.append((d, t)),
    )
    assert out is partial and seen == [80, 120] and progress == [(1, 2), (2, 2)]
    assert out[40] is cache[40]  # not done again


def test_a_cancel_stops_before_the_next_snapshot(run: Path) -> None:
    seen: list[int] = []
    resample_snapshots(run, on_result=lambda r: seen.append(r.step), cancel=lambda: bool(seen))
    assert seen == [40]


def test_a_damaged_snapshot_is_one_line_and_the_results_before_it_stay(
    run: Path, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    snapshot_path(copy, 80).write_bytes(b"\x00" * 64)
    done: dict = {}
    with pytest.raises(
        WorkbenchError, match=r"step-0000080\.pt is not a readable snapshot"
    ) as info:
        resample_snapshots(copy, cache=done)
    assert "\n" not in str(info.value) and sorted(done) == [40]


def test_the_hook_keeps_the_callers_evaluations() -> None:
    calls: list[int] = []
    hook, every = snapshot_hook("/nonexistent", 0, lambda s, m: calls.append(s), 10)
    assert every == 10
    hook, every = snapshot_hook("/nonexistent", 15, lambda s, m: calls.append(s), 10, write=False)
    assert every == 5 and hook is not None
    for step in range(5, 35, 5):
        hook(step, torch.nn.Linear(1, 1))
    assert calls == [10, 20, 30]
    assert snapshot_hook("/nonexistent", 15)[1] == 15


def test_with_an_errors_map_a_damaged_snapshot_hides_no_other(run: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    torch.save({"format": "sde-workbench/snapshot", "x": 1}, snapshot_path(copy, 40))
    errors: dict[int, str] = {}
    done = resample_snapshots(copy, errors=errors)
    assert sorted(done) == [80, 120] and list(errors) == [40]
    assert "step-0000040.pt is damaged: its format_version None" in errors[40]
