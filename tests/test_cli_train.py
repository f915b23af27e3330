"""``sde-workbench train``: real training into real run folders, driven through main()."""

from pathlib import Path

import pytest

from workbench.cli import main
from workbench.config import default_config, save_config
from workbench.io.runs import read_metrics


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    cfg = default_config().with_overrides(
        {
            "train.device": "cpu",
            "train.batch_size": 128,
            "train.steps": 30,
            "train.log_every": 10,
            "train.checkpoint_every": 10,
            "data.n": 1024,
            "model.hidden": 32,
        }
    )
    path = tmp_path / "exp.toml"
    save_config(cfg, path)
    return path


def test_train_then_resume(
    experiment: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(["train", str(experiment), "--out", str(run), "--steps", "20"]) == 0
    out = capsys.readouterr()
    assert "trained to step 20" in out.out
    assert "train 20/20" in out.err  # progress lines on a non-terminal
    assert read_metrics(run / "metrics.csv")["step"] == [10, 20]

    assert main(["train", str(experiment), "--out", str(run)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("sde-workbench: error:") and "--resume" in err and "\n" not in err

    assert main(["train", str(experiment), "--out", str(run), "--resume", "--steps", "40"]) == 0
    assert read_metrics(run / "metrics.csv")["step"] == [10, 20, 30, 40]


def test_train_seed_override_changes_the_run(experiment: Path, tmp_path: Path) -> None:
    assert main(["train", str(experiment), "--out", str(tmp_path / "a"), "--seed", "1"]) == 0
    assert main(["train", str(experiment), "--out", str(tmp_path / "b"), "--seed", "2"]) == 0
    a = read_metrics(tmp_path / "a" / "metrics.csv")["loss"]
    b = read_metrics(tmp_path / "b" / "metrics.csv")["loss"]
    assert a != b


def test_train_bad_inputs_fail_in_one_line(
    tmp_path: Path, experiment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[data]\nname = "moons"\nn = 100\n[train]\nbatch_size = 500\n')
    assert main(["train", str(bad), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip()
    assert "train.batch_size" in err and "Traceback" not in err and "\n" not in err

    unet = tmp_path / "unet.toml"
    unet.write_text('[model]\nkind = "unet"\n')
    assert main(["train", str(unet), "--out", str(tmp_path / "u")]) == 1
    assert "unet" in capsys.readouterr().err

    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "config.toml").write_bytes(experiment.read_bytes())
    (tmp_path / "corrupt" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert main(["train", str(experiment), "--out", str(tmp_path / "corrupt"), "--resume"]) == 1
    assert "corrupt or truncated" in capsys.readouterr().err


def test_bench_reports_both_paths_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["bench", "--device", "cpu", "--quick", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["device"].startswith("CPU") and report["torch"]
    works = [row["work"] for row in report["rows"]]
    assert "batch 4096" in works[0]
    assert any("4096 particles" in w for w in works) and any("262144" in w for w in works)
    assert any("recording" in w for w in works)
    for row in report["rows"]:
        assert row["workbench_ms"] > 0 and row["plain_ms"] > 0
        # against the workbench's best fp32 path: the fused CPU sampling column where it ran
        best = min(v for v in (row["workbench_ms"], row["fast_ms"]) if v is not None)
        assert row["speedup"] == pytest.approx(row["plain_ms"] / best)
