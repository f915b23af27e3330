"""Soak: train for a long time with the GUI open and every live view refreshing.

Not run in CI (marker ``soak``; see conftest.py). ``pytest -m soak tests/hardening/test_soak.py``
trains for ``SDE_WORKBENCH_SOAK_MINUTES`` (default 30) minutes while the window cycles through
its plot tabs (each redraws with the newest model snapshot), and measures:

- memory: the process's resident set (``/proc/self/statm``) and, with CUDA, the allocated and
  reserved GPU memory, every few seconds; after a warm-up it must stay flat (a least-squares
  slope below ``MAX_RSS_GROWTH_MIB_PER_MIN``, the loss curve's own few bytes per point aside);
- the event loop: a 20 ms timer's gaps between ticks; the 99th percentile and the largest gap
  must stay below ``MAX_P99_GAP_S`` / ``MAX_GAP_S``;
- the loss curve: it must hold every logged point (as many as metrics.csv has rows, the same
  steps), while pyqtgraph downsamples only what it draws.

The figures are printed and, with ``SDE_WORKBENCH_SOAK_REPORT=FILE``, written as JSON.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.config import default_config
from workbench.io.runs import read_metrics

PAGE = os.sysconf("SC_PAGE_SIZE")
MAX_RSS_GROWTH_MIB_PER_MIN = 2.0
MAX_P99_GAP_S = 0.25
MAX_GAP_S = 2.0
# caches (pyqtgraph's, the views' references) fill in the first minute or so
WARMUP_FRACTION = 0.25
WARMUP_MIN_MINUTES = 1.5


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE / 2**20


@pytest.mark.soak
def test_soak_training_with_live_views(qtbot, tmp_path: Path) -> None:
    from PySide6 import QtCore

    from workbench.gui.main_window import MainWindow

    minutes = float(os.environ.get("SDE_WORKBENCH_SOAK_MINUTES", "30"))
    seconds = 60.0 * minutes
    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.IniFormat)
    window = MainWindow(settings=settings, runs_dir=tmp_path / "runs")
    window.confirm = lambda question: True
    qtbot.addWidget(window)
    window.show()
    window.set_config(
        default_config().with_overrides(
            {
                "train.steps": 10**9,
                "train.batch_size": 512,
                "train.log_every": 10,
                "train.checkpoint_every": 2000,
                "model.hidden": 128,
                "data.n": 20000,
            }
        )
    )
    cuda = torch.cuda.is_available()

    samples: list[dict[str, float]] = []
    ticks: list[float] = []
    started = time.monotonic()

    def measure() -> None:
        entry = {"t": time.monotonic() - started, "rss_mib": rss_mib()}
        if cuda:
            entry["gpu_allocated_mib"] = torch.cuda.memory_allocated() / 2**20
            entry["gpu_reserved_mib"] = torch.cuda.memory_reserved() / 2**20
        samples.append(entry)

    probe = QtCore.QTimer()
    probe.setInterval(20)
    probe.timeout.connect(lambda: ticks.append(time.monotonic()))
    meter = QtCore.QTimer()
    meter.setInterval(5000 if seconds > 300 else 2000)
    meter.timeout.connect(measure)
    tabs = window.tab_widget
    cycle = QtCore.QTimer()
    cycle.setInterval(3000)
    cycle.timeout.connect(lambda: tabs.setCurrentIndex((tabs.currentIndex() + 1) % tabs.count()))

    measure()
    window.start_training()
    probe.start()
    meter.start()
    cycle.start()
    while time.monotonic() - started < seconds:
        qtbot.wait(1000)
        assert window.task is not None, f"training ended early: {window.errors}"
    with qtbot.waitSignal(window.trainingFinished, timeout=120_000) as finished:
        window.stop_work()
    for timer in (probe, meter, cycle):
        timer.stop()
    measure()
    result = finished.args[0]
    assert result is not None and result.status == "cancelled", window.errors

    # the loss curve holds every point that training logged
    metrics = read_metrics(window.run_dir / "metrics.csv")
    run = window.loss_tab.runs[-1]
    assert list(run.steps) == metrics["step"]
    raw, _smooth = window.loss_tab._curves[-1]
    assert raw.opts["autoDownsample"]
    # the curve is redrawn at most ~30 times a second: the last points show on the next tick
    qtbot.waitUntil(lambda: len(raw.xData) == len(metrics["step"]), timeout=5000)

    # memory stays flat after the warm-up
    t = np.array([s["t"] for s in samples]) / 60.0
    rss = np.array([s["rss_mib"] for s in samples])
    late = t >= max(WARMUP_FRACTION * t[-1], WARMUP_MIN_MINUTES)
    slope = float(np.polyfit(t[late], rss[late], 1)[0]) if late.sum() >= 3 else 0.0
    gaps = np.diff(np.array(ticks))
    settled = gaps[int(len(gaps) * 0.05) :]  # the first seconds build the views
    figures = {
        "minutes": minutes,
        "device": "cuda" if cuda else f"cpu ({torch.get_num_threads()} threads)",
        "steps": int(result.step),
        "loss_points": len(run.steps),
        "rss_mib_start": float(rss[0]),
        "rss_mib_after_warmup": float(rss[late][0]),
        "rss_mib_end": float(rss[-1]),
        "rss_mib_max": float(rss.max()),
        "rss_slope_mib_per_min_after_warmup": slope,
        "event_loop_ticks": len(ticks),
        "event_loop_gap_p50_s": float(np.percentile(settled, 50)),
        "event_loop_gap_p99_s": float(np.percentile(settled, 99)),
        "event_loop_gap_max_s": float(settled.max()),
        "samples": samples,
    }
    if cuda:
        gpu = np.array([s["gpu_allocated_mib"] for s in samples])
        figures["gpu_allocated_mib_start_end_max"] = [
            float(gpu[0]),
            float(gpu[-1]),
            float(gpu.max()),
        ]
    print(json.dumps({k: v for k, v in figures.items() if k != "samples"}, indent=1))
    out = os.environ.get("SDE_WORKBENCH_SOAK_REPORT")
    if out:
        Path(out).write_text(json.dumps(figures, indent=1))
    assert slope < MAX_RSS_GROWTH_MIB_PER_MIN, figures
    assert figures["event_loop_gap_p99_s"] < MAX_P99_GAP_S, figures
    assert figures["event_loop_gap_max_s"] < MAX_GAP_S, figures
    window.close()
