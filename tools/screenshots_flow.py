"""Screenshots of flow matching in the app: a trained flow-matching run's trajectories and
schedule, and the Study tab comparing DSM with flow matching.

    python tools/screenshots_flow.py OUTDIR [--steps N]

Runs offscreen: loads the ``flow-matching`` preset (made smaller, to train in about a minute on
one CPU core), trains and samples it through the window's buttons, grabs the Trajectories and
Schedule tabs, then runs ``dsm,fm`` through the Study tab on the ``dsm-vs-fm`` preset and grabs
its score-error curves. Writes flow_trajectories.png, flow_schedule.png and flow_study.png.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["main", "take_flow_screenshots"]

_SMALL = {
    "data.n": 20000,
    "model.hidden": 128,
    "train.batch_size": 512,
    "train.device": "cpu",
    "train.ema": 0.99,
    "sample.n": 2000,
    "sample.record_every": 1,
}


def take_flow_screenshots(outdir: str | os.PathLike[str], steps: int = 1500) -> list[Path]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import torch
    from PySide6 import QtWidgets

    from tools.screenshots import fresh_window, press
    from workbench.gui.plots.study import StudyTab, set_checked
    from workbench.presets import preset_config

    torch.set_num_threads(1)
    app, window, work, out = fresh_window("sde-workbench-flow-shots-", outdir)
    saved: list[Path] = []

    def grab(widget: QtWidgets.QWidget, name: str) -> None:
        app.processEvents()
        path = out / f"{name}.png"
        widget.grab().save(str(path))
        saved.append(path)
        print(f"saved {path}")

    window.set_config(
        preset_config("flow-matching").with_overrides({**_SMALL, "train.steps": steps})
    )
    if press(app, window, window.train_button, window.trainingFinished, 900) is None:
        raise RuntimeError(f"training failed: {window.errors[-1] if window.errors else '?'}")
    if press(app, window, window.sample_button, window.samplingFinished, 900) is None:
        raise RuntimeError(f"sampling failed: {window.errors[-1] if window.errors else '?'}")
    window.toolbox.setCurrentIndex(1)
    window.tab_widget.setCurrentWidget(window.tabs_by_name["trajectories"])
    window.time_slider.setValue(window.time_slider.minimum())  # t = 0: whole paths, T to 0
    grab(window, "flow_trajectories")
    window.tab_widget.setCurrentWidget(window.schedule_tab)
    grab(window, "flow_schedule")

    window.set_config(preset_config("dsm-vs-fm").with_overrides({**_SMALL, "train.steps": steps}))
    tab = window.findChild(StudyTab, "studyTab")
    window.tab_widget.setCurrentWidget(tab)
    window.findChild(QtWidgets.QComboBox, "studyKind").setCurrentText("losses")
    set_checked(window.findChild(QtWidgets.QListWidget, "studyLosses"), ["dsm", "fm"])
    window.findChild(QtWidgets.QSpinBox, "studySteps").setValue(steps)
    window.findChild(QtWidgets.QLineEdit, "studyOut").setText(str(work / "dsm_vs_fm.h5"))
    run = window.findChild(QtWidgets.QPushButton, "studyRun")
    result = press(app, window, run, tab.studyFinished, 1800)
    if result is None or getattr(result, "status", "") != "done":
        raise RuntimeError(f"the study failed: {tab.status.text()}")
    tab.flush_redraw()
    # the tab at its size in the window: a resize of a page of the tab widget lasted only until
    # the page's layout ran again, so the picture's size depended on when that happened
    grab(tab, "flow_study")
    window.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir")
    parser.add_argument("--steps", type=int, default=1500, help="training steps (default 1500)")
    args = parser.parse_args(argv)
    take_flow_screenshots(args.outdir, args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
