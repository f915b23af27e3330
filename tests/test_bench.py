"""``sde-workbench bench`` at toy sizes: every row and column is there, the JSON is plain data,
and the table names the device, torch and the dtype. Timings themselves are not asserted
(shared CI machines make them noise); the speed figures live in the README."""

import json
import math

import pytest
import torch

from workbench.bench import BenchSizes, _time_alternating, format_table, run_bench
from workbench.core.cpu_fused import native_bf16
from workbench.core.fast import compile_unavailable_reason

TINY = BenchSizes(
    train_batches=(64,),
    train_steps=2,
    sample_ns=(128, 256),
    sample_steps=(3, 2),
    repeats=1,
    record_n=128,
    reference_steps=2,
)


def test_the_report_has_every_row_and_column() -> None:
    report = run_bench("cpu", quick=True, sizes=TINY)
    assert report["torch"] == torch.__version__ and report["device"].startswith("CPU")
    # sampling's auto on the CPU is the MLP fused by oneDNN: a column of its own
    assert report["fast_path"] == "auto"
    works = [r["work"] for r in report["rows"]]
    assert works[0].startswith("DSM training step") and "batch 64" in works[0]
    assert "128 particles" in works[1] and "256 particles" in works[2]
    assert works[3].startswith("EM as above, recording")
    # the defaults against the score_sde_pytorch-style loop, one row each for sampling, training
    assert works[4] == "vs score_sde_pytorch-style loop: EM step, 128 particles"
    assert works[5] == "vs score_sde_pytorch-style loop: DSM training step, batch 64"
    assert len(works) == 6
    # bf16 is timed for sampling (rows 1, 2 and the reference's EM step) where this CPU runs
    # bf16 natively; training's bf16 column and the recording row are never run on the CPU
    bf16_rows = {1, 2, 4} if native_bf16() else set()
    assert ("bf16 column" in report["dtype"]) == native_bf16()
    for i, row in enumerate(report["rows"]):
        assert row["plain_ms"] > 0 and row["workbench_ms"] > 0 and math.isfinite(row["speedup"])
        assert (row["bf16_ms"] is not None) == (i in bf16_rows), (i, row["bf16_ms"])
        if i in bf16_rows:
            assert row["bf16_ms"] > 0
        if i in (1, 2):  # the sampling rows: auto run beside the plain path
            assert row["fast_path"] == "auto" and row["fast_ms"] > 0
        else:
            assert row["fast_ms"] is None
    assert json.loads(json.dumps(report)) == report
    table = format_table(report)
    assert "CPU" in table and torch.__version__ in table and "float32" in table
    assert all(w in table for w in works)


@pytest.mark.slow
def test_the_compile_column_on_the_cpu() -> None:
    reason = compile_unavailable_reason(torch.device("cpu"))
    if reason is not None:
        pytest.skip(reason)
    sizes = BenchSizes(
        train_batches=(), train_steps=1, sample_ns=(64,), sample_steps=(2,), repeats=1
    )
    report = run_bench("cpu", quick=True, compile=True, sizes=sizes)
    sampling = report["rows"][0]
    assert report["fast_path"] == "compile" and sampling["fast_path"] == "compile"
    assert sampling["fast_ms"] > 0


def test_the_gui_bench_reports_every_phase(tmp_path, monkeypatch) -> None:
    """``bench --gui`` on a 2 MB file, through the real command: each phase has a worst gap
    (not judged: the machine may be loaded) and the table names the target."""
    import subprocess
    import sys

    env = {**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "bench", "--gui", "--gui-file-mb", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    phases = [p["phase"] for p in report["phases"]]
    assert phases[:3] == ["train start", "steady training", "sampling"]
    assert phases[3].startswith("open a 2 MB trajectory file")
    assert phases[4] == "its Statistics tab"
    for p in report["phases"]:
        assert p["ticks"] > 0 and p["worst_gap_ms"] > 0 and p["seconds"] > 0
    assert report["target_ms"] == 50.0 and report["probe_ms"] == 20


def test_the_gui_bench_refuses_a_bad_size() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "workbench", "bench", "--gui-file-mb", "-3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "--gui-file-mb: must be between 0 and 100000 (MB), got -3" in done.stderr
    assert "Traceback" not in done.stderr


def test_reference_rows_time_each_pair_back_to_back_in_swapped_order() -> None:
    calls: list[str] = []
    pairs = [(lambda: calls.append("a"), lambda: calls.append("b"))]
    pairs.append((lambda: calls.append("c"), lambda: calls.append("d")))
    result = _time_alternating(pairs, torch.device("cpu"), 3)
    assert "".join(calls) == "abcd" + "badc" + "abcd"
    assert len(result) == 2
    assert all(t >= 0.0 for pair in result for t in pair)
