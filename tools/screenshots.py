"""Screenshots of every tab after a short real training and sampling run.

    python tools/screenshots.py OUTDIR [--steps N] [--data NAME]
    python tools/screenshots.py OUTDIR --studies SAMPLERS.h5,LOSSES.h5

Runs offscreen (no display needed): trains the default experiment for a few hundred steps on
the CPU, samples from it, moves the time slider, and saves one PNG per tab (window grabs, as a
user would see them). The README's pictures come from here.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["main", "take_screenshots"]


def _wait(app: object, signal: object, timeout_s: float) -> object:
    from PySide6 import QtCore

    loop = QtCore.QEventLoop()
    box: dict[str, object] = {}

    def got(value: object = None) -> None:
        box["value"] = value
        loop.quit()

    signal.connect(got)  # type: ignore[attr-defined]
    QtCore.QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    signal.disconnect(got)  # type: ignore[attr-defined]
    if "value" not in box:
        raise TimeoutError(f"no answer within {timeout_s:.0f} s")
    return box["value"]


def fresh_window(
    prefix: str, outdir: str | os.PathLike[str], size: tuple[int, int] = (1500, 900)
) -> tuple[Any, Any, Path, Path]:
    """The application and a main window shown at ``size``, with its own settings and runs
    folder in a new temporary folder (the user's settings untouched) and every question it
    asks answered yes. Returns (app, window, that folder, ``outdir`` created)."""
    from PySide6 import QtCore

    from workbench.gui.app import create_app
    from workbench.gui.main_window import MainWindow

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    app = create_app()
    work = Path(tempfile.mkdtemp(prefix=prefix))
    settings = QtCore.QSettings(str(work / "settings.ini"), QtCore.QSettings.IniFormat)
    window = MainWindow(settings=settings, runs_dir=work / "runs")
    window.confirm = lambda question: True
    window.resize(*size)
    window.show()
    return app, window, work, out


def wait_settled(app: Any, window: Any) -> None:
    """Wait for the experiment state the window builds in a worker after a config change
    (Train and Sample stay disabled until it is in) and any model it is loading."""
    from PySide6 import QtCore

    for _ in range(2400):
        app.processEvents()
        if window.experiment_settled() and not window.model_loading():
            return
        QtCore.QThread.msleep(25)
    raise TimeoutError("the experiment was not built within a minute")


def press(app: Any, window: Any, button: Any, signal: Any, timeout_s: float) -> object:
    """Click ``button`` once the window's worker-built state is in, then wait for ``signal``.

    Right after ``set_config`` the window's Train and Sample buttons are disabled (and the Study
    tab still holds the previous experiment) until a worker has built the new state; a click on
    a disabled button is silently ignored, so a bare click followed by a wait for the finished
    signal would only time out many minutes later, having drawn nothing. A button still
    disabled once the state is in fails at once, naming it."""
    wait_settled(app, window)
    if not button.isEnabled():
        name = button.objectName() or button.text()
        raise RuntimeError(f"the {name!r} button is disabled: {window.errors[-1:] or 'no error'}")
    button.click()
    return _wait(app, signal, timeout_s)


def take_screenshots(
    outdir: str | os.PathLike[str], steps: int = 1500, data: str = "8gaussians"
) -> list[Path]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore, QtWidgets

    app, window, work, out = fresh_window("sde-workbench-shots-", outdir)
    window.set_config(
        window.config.with_overrides(
            {
                "data.name": data,
                "train.device": "cpu",
                "train.steps": steps,
                "train.ema": 0.99,
                "train.snapshot_every": 100,  # the training-step pictures start early
                "sample.n": 4000,
                "sample.steps": 500,
                "sample.record_every": 5,
            }
        )
    )
    saved = []

    def ready() -> None:
        wait_settled(app, window)

    ready()

    def grab(name: str) -> None:
        app.processEvents()
        path = out / f"{name}.png"
        window.grab().save(str(path))
        saved.append(path)
        print(f"saved {path}")

    result = press(app, window, window.train_button, window.trainingFinished, 900)
    if result is None:
        raise RuntimeError(f"training failed: {window.errors[-1] if window.errors else '?'}")
    window.toolbox.setCurrentIndex(3)
    window.tab_widget.setCurrentWidget(window.loss_tab)
    grab("loss")
    if press(app, window, window.sample_button, window.samplingFinished, 900) is None:
        raise RuntimeError(f"sampling failed: {window.errors[-1] if window.errors else '?'}")
    window.toolbox.setCurrentIndex(0)
    for name, value in (("density", 100), ("score", 150), ("trajectories", 30)):
        window.tab_widget.setCurrentWidget(window.tabs_by_name[name])
        window.time_slider.setValue(value)
        tab = window.tabs_by_name[name]
        if hasattr(tab, "is_idle"):  # the score field computes in a worker
            for _ in range(400):
                app.processEvents()
                if tab.is_idle():
                    break
                QtCore.QThread.msleep(25)
        grab(name)
    training_step_shots(app, window, grab)
    # the Data page's preview beside the densities, both in data units
    window.tab_widget.setCurrentWidget(window.tabs_by_name["density"])
    window.time_slider.setValue(60)
    grab("density_data_units")
    # two invalid fields on two pages: each page's title counts its errors
    window.tab_widget.setCurrentWidget(window.tabs_by_name["trajectories"])
    window.time_slider.setValue(30)
    lr = window.training_panel.forms["train"].fields["lr"].widget
    eps = window.sampling_panel.forms["sample"].fields["eps"].widget
    kept = lr.text(), eps.text()
    lr.setText("-1")
    eps.setText("2")
    window.validate()
    window.toolbox.setCurrentIndex(4)
    grab("form_errors")
    lr.setText(kept[0])
    eps.setText(kept[1])
    window.validate()
    ready()
    window.toolbox.setCurrentIndex(1)
    window.tab_widget.setCurrentWidget(window.schedule_tab)
    grab("schedule")

    # the Fokker–Planck reference beside the same run's particles and learned score
    def choose(kind: str) -> None:
        combo = window.reference_combo
        if window.references.reference is not None and window.references.reference.kind == kind:
            return
        combo.setCurrentIndex(combo.findData(kind))
        while window.references.reference is None or window.references.reference.kind != kind:
            if window.references.error:
                raise RuntimeError(f"reference failed: {window.references.error}")
            _wait(app, window.references.referenceChanged, 600)

    def settle(name: str, value: int) -> None:
        window.tab_widget.setCurrentWidget(window.tabs_by_name[name])
        window.time_slider.setValue(value)
        tab = window.tabs_by_name[name]
        if hasattr(tab, "is_idle"):
            tab.request()
            for _ in range(400):
                app.processEvents()
                if tab.is_idle():
                    break
                QtCore.QThread.msleep(25)

    window.toolbox.setCurrentIndex(0)
    choose("fpk")
    settle("density", 100)
    grab("density_fpk")
    settle("score", 150)
    grab("score_fpk")

    # a custom (non-linear) SDE: no closed form, so the FPK reference and simulated particles
    for tab in window.tabs_by_name.values():
        tab.set_trajectory(None)  # the VP run's samples belong to another process
    window.model = None
    window.set_model(None)
    window.reference_combo.setCurrentIndex(window.reference_combo.findData("auto"))
    window.set_config(
        window.config.with_overrides(
            {
                "sde.kind": "custom",
                "sde.drift": "-x1*(x1^2 - 1) - x2; x1 - x2^3",
                "sde.g": "0.7",
                "loss.kind": "ssm",
                "loss.weighting": "none",
                "model.output": "score",
                "sample.denoise": False,
            }
        )
    )
    ready()
    window.toolbox.setCurrentIndex(1)
    choose("fpk")
    settle("density", 400)
    grab("custom_density")
    settle("score", 400)
    grab("custom_score")
    # a typo in the drift: the config's message under the field, Train and Sample disabled
    drift = window.sde_panel.forms["sde"].fields["drift"].widget
    good = drift.toPlainText()
    drift.setPlainText("-x1*(x1^2 - 1) - x2\nx1 - x3^3")
    window.validate()
    grab("custom_sde_error")
    drift.setPlainText(good)
    window.validate()
    ready()

    # 1-D: the FPK curve over the forward histogram
    window.set_config(
        window.config.with_overrides({"data.name": "gmm1d", "sde.drift": "-4*x*(x^2 - 1)"})
    )
    ready()
    window.toolbox.setCurrentIndex(1)
    choose("fpk")
    settle("density", 300)
    grab("custom_density_1d")
    window.close()

    # the inspector on a file from `sde-workbench fpk`
    from workbench.config import default_config
    from workbench.gui.inspector import InspectorWindow
    from workbench.jobs.fpk import solve_config_to_file

    fpk_path = work / "fpk.h5"
    solve_config_to_file(
        default_config().with_overrides({"data.name": data}),
        fpk_path,
        grid=128,
        times=(0.0, 0.05, 0.1, 0.25, 0.5, 1.0),
    )
    inspector = InspectorWindow()
    inspector.resize(1400, 800)
    inspector.show()
    inspector.open(fpk_path)
    inspector.current().findChild(QtWidgets.QSlider, "fpkTimeSlider").setValue(2)
    app.processEvents()
    path = out / "inspector_fpk.png"
    inspector.grab().save(str(path))
    saved.append(path)
    print(f"saved {path}")
    inspector.close()
    # class-conditional sampling and guidance (the analytic model, no training)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from screenshots_guidance import take_guidance_screenshots

    saved += take_guidance_screenshots(out)
    from screenshots_guidance_study import take_guidance_study_screenshot

    saved += take_guidance_study_screenshot(out)
    return saved


def training_step_shots(app: object, window: object, grab: Callable[[str], None]) -> None:
    """The Densities tab at the run's first and last snapshot (the training-step slider under
    the time slider): the same noise re-sampled by the early and the trained network."""
    w: Any = window
    scrubber = w.snapshots
    if not scrubber.steps:
        raise RuntimeError("the run kept no snapshots (train.snapshot_every)")
    w.tab_widget.setCurrentWidget(w.tabs_by_name["density"])
    w.time_slider.setValue(0)
    for name, index in (("training_step_early", 0), ("training_step_late", -1)):
        step = scrubber.steps[index]
        if step in scrubber.cache:
            scrubber.show_step(step)
        else:
            scrubber.show_step(step)
            _wait(app, scrubber.stepShown, 300)
        grab(name)
    w.load_run_model(w.run_dir)  # the rest of the pictures show the trained run
    w.open_trajectory(w.trajectory.path)


def take_draw_screenshots(outdir: str | os.PathLike[str]) -> list[Path]:
    """The Data panel's draw mode: a 2-D drawing (brush strokes and clicked points), a 1-D
    one, and the main window using the 2-D drawing as its data. Drawn with real mouse events
    on the canvas; no training needed."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import math

    from PySide6 import QtCore
    from PySide6.QtTest import QTest

    app, window, work, out = fresh_window("sde-workbench-draw-", outdir, (1400, 900))
    window.save_experiment(work / "experiment.toml")
    window.data_panel.draw_button.click()
    dialog = window.draw_dialog
    canvas = dialog.canvas
    viewport = canvas.plot.viewport()
    left, none = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier
    app.processEvents()
    saved: list[Path] = []

    def grab(widget: object, name: str) -> None:
        app.processEvents()
        path = out / f"{name}.png"
        widget.grab().save(str(path))  # type: ignore[attr-defined]
        saved.append(path)
        print(f"saved {path}")

    def stroke(points: list[tuple[float, float]]) -> None:
        QTest.mousePress(viewport, left, none, canvas.pixel_at(*points[0]))
        for x, y in points[1:]:
            QTest.mouseMove(viewport, canvas.pixel_at(x, y))
        QTest.mouseRelease(viewport, left, none, canvas.pixel_at(*points[-1]))
        app.processEvents()

    # a smile: two clicked eyes, a brushed mouth and a brushed ring
    canvas.set_tool("brush")
    canvas.brush_size.setValue(0.2)
    canvas.brush_density.setValue(40.0)
    ring = [(3 * math.cos(a), 3 * math.sin(a)) for a in [k * 2 * math.pi / 120 for k in range(121)]]
    stroke(ring)
    mouth = [
        (1.6 * math.cos(a), 1.6 * math.sin(a) - 0.2)
        for a in [math.pi * (1.15 + 0.7 * k / 40) for k in range(41)]
    ]
    stroke(mouth)
    canvas.set_tool("points")
    for x, y in [(-1.0, 1.0), (-1.1, 1.1), (-0.9, 1.15), (1.0, 1.0), (1.1, 1.1), (0.9, 1.15)]:
        QTest.mouseClick(viewport, left, none, canvas.pixel_at(x, y))
        app.processEvents()
    grab(dialog, "draw_canvas")
    dialog.use_as_data()
    window.toolbox.setCurrentIndex(0)
    grab(window, "draw_used")

    canvas.set_dim(1)
    app.processEvents()
    canvas.set_tool("brush")
    canvas.brush_size.setValue(0.3)
    canvas.brush_density.setValue(60.0)
    stroke([(-3.0 + 0.05 * k, 0.0) for k in range(31)])
    stroke([(1.0 + 0.02 * k, 0.0) for k in range(51)])
    canvas.set_tool("points")
    for x in (-0.5, 0.0, 0.3):
        QTest.mouseClick(viewport, left, none, canvas.pixel_at(x, 0.0))
        app.processEvents()
    grab(dialog, "draw_canvas_1d")
    dialog.close()
    window.close()
    return saved


def study_screenshots(
    outdir: str | os.PathLike[str], studies: list[str], open_point: str = "dpmpp_2m@20"
) -> list[Path]:
    """The Study tab on finished study files (``sde-workbench study``): ``study.png`` for a
    sampler study, ``loss_study.png`` for a loss study, and ``study_density.png``: the
    Densities tab after a click on the sampler study's point ``SAMPLER@NFE``."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import h5py

    from workbench.config import parse_config
    from workbench.gui.plots.study import StudyTab
    from workbench.io.study_file import read_study

    app, window, _work, out = fresh_window("sde-workbench-shots-", outdir)
    tab = window.tabs_by_name["study"]
    assert isinstance(tab, StudyTab)
    saved = []
    for study in studies:
        data = read_study(study)
        with h5py.File(study, "r") as f:
            window.set_config(parse_config(str(f.attrs["config"])))
        window.tab_widget.setCurrentWidget(tab)
        tab.show_study(study)
        app.processEvents()
        name = "study" if data["kind"] == "samplers" else "loss_study"
        path = out / f"{name}.png"
        window.grab().save(str(path))
        saved.append(path)
        print(f"saved {path}")
        if data["kind"] == "samplers" and open_point:
            sampler, _, budget = open_point.partition("@")
            i = data["names"].index(sampler)
            j = [int(b) for b in data["nfe"]].index(int(budget))
            tab.open_point(i, j)
            _wait(app, tab.samplesOpened, 60)
            for _ in range(20):
                app.processEvents()
            path = out / "study_density.png"
            window.grab().save(str(path))
            saved.append(path)
            print(f"saved {path}")
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir")
    parser.add_argument("--steps", type=int, default=1500, help="training steps (default 1500)")
    parser.add_argument("--data", default="8gaussians", help="data set (default 8gaussians)")
    parser.add_argument(
        "--draw-only", action="store_true", help="only the draw mode's pictures (no training)"
    )
    parser.add_argument(
        "--studies",
        help="only the Study tab, on these study files (comma separated; from sde-workbench study)",
    )
    args = parser.parse_args(argv)
    if args.studies:
        study_screenshots(args.outdir, args.studies.split(","))
        return 0
    if not args.draw_only:
        take_screenshots(args.outdir, args.steps, args.data)
    take_draw_screenshots(args.outdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
