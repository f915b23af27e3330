"""The frozen app's entry point: ``sde-workbench`` itself, plus ``--self-test`` for the bundle.

``sde-workbench --self-test [STEPS]`` (only in the frozen app) opens the main window offscreen
with the built-in default experiment, trains it for STEPS steps (default 20) through the
window's own training path (worker thread, run folder, checkpoint), prints one JSON line with
what happened and exits 0 if training finished and wrote its checkpoint. ``check_frozen.py``
runs it; it proves that torch, Qt, pyqtgraph and h5py all load from the bundle.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import tempfile
import time


def self_test(steps: int) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    started = time.perf_counter()
    from PySide6 import QtCore

    from workbench.gui.app import create_app
    from workbench.gui.main_window import MainWindow

    app = create_app([sys.argv[0]])
    with tempfile.TemporaryDirectory(prefix="sde-workbench-selftest-") as tmp:
        # a private settings file, so the test neither reads nor changes the user's
        settings = QtCore.QSettings(os.path.join(tmp, "settings.ini"), QtCore.QSettings.IniFormat)
        window = MainWindow(settings=settings, runs_dir=tmp)
        window.show()
        app.processEvents()
        window_s = time.perf_counter() - started
        experiment = window.config.describe()
        window.set_config(
            window.config.with_overrides(
                {"train.steps": steps, "train.batch_size": 256, "train.device": "cpu"}
            )
        )
        results: list[object] = []
        loop = QtCore.QEventLoop()
        window.trainingFinished.connect(lambda r: (results.append(r), loop.quit()))
        QtCore.QTimer.singleShot(120_000, loop.quit)  # a hung bundle fails instead of hanging
        window.start_training()
        loop.exec()
        result = results[0] if results else None
        run_dir = window.run_dir
        checkpoint = run_dir is not None and (run_dir / "checkpoint.pt").is_file()
        from workbench.io.runs import read_metrics

        losses = read_metrics(run_dir / "metrics.csv")["loss"] if run_dir is not None else []
        # the icon is read from workbench/resources in the bundle: proves the package data shipped
        icon = not window.windowIcon().isNull() and not window.windowIcon().pixmap(64).isNull()
        ok = getattr(result, "status", None) == "done" and checkpoint and len(losses) > 0 and icon
        print(
            json.dumps(
                {
                    "ok": ok,
                    "experiment": experiment,
                    "status": getattr(result, "status", None),
                    "steps": getattr(result, "step", None),
                    "first_loss": losses[0] if losses else None,
                    "last_loss": losses[-1] if losses else None,
                    "checkpoint": checkpoint,
                    "icon": icon,
                    "window_s": round(window_s, 2),
                    "total_s": round(time.perf_counter() - started, 2),
                    "frozen": bool(getattr(sys, "frozen", False)),
                }
            ),
            flush=True,
        )
        window.close()
        app.processEvents()
    return 0 if ok else 1


def main() -> None:
    multiprocessing.freeze_support()
    if len(sys.argv) > 1 and sys.argv[1] == "--self-test":
        steps = int(sys.argv[2]) if len(sys.argv) > 2 else 20
        sys.exit(self_test(steps))
    from workbench.cli import entry

    entry()


if __name__ == "__main__":
    main()
