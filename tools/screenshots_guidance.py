"""Screenshots of class-conditional sampling and guidance (no training: the analytic model).

    python tools/screenshots_guidance.py OUTDIR

``guidance_score.png``: 8 Gaussians, class 2 at w = 3, the Score field tab with the Sampling
panel's class picker and slider; ``guidance_density.png``: two overlapping 1-D classes, class
1 sampled at w = 4, the Densities tab with the tilted density as the reference.
``tools/screenshots.py`` calls :func:`take_guidance_screenshots` too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["take_guidance_screenshots"]


def take_guidance_screenshots(outdir: str | os.PathLike[str]) -> list[Path]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore

    from tools.screenshots import fresh_window, wait_settled

    app, window, _work, out = fresh_window("sde-workbench-guidance-", outdir)
    saved: list[Path] = []

    def grab(name: str) -> None:
        app.processEvents()
        path = out / f"{name}.png"
        window.grab().save(str(path))
        saved.append(path)
        print(f"saved {path}")

    def settle(tab: object) -> None:
        for _ in range(800):
            app.processEvents()
            if not hasattr(tab, "is_idle") or tab.is_idle():
                break
            QtCore.QThread.msleep(25)

    def ready() -> None:
        wait_settled(app, window)

    def choose(c: int, slider: int) -> None:
        box = window.findChild(QtCore.QObject, "guidanceControls")
        box.combo.setCurrentIndex(c + 1)
        box.slider.setValue(slider)
        window.validate()
        ready()

    window.set_config(
        window.config.with_overrides(
            {"model.kind": "analytic", "train.device": "cpu", "sample.n": 4000}
        )
    )
    ready()
    window.set_model(window._build_model())
    window.toolbox.setCurrentIndex(window.toolbox.count() - 1)  # Sampling: the controls
    choose(2, 30)
    tab = window.tabs_by_name["score"]
    window.tab_widget.setCurrentWidget(tab)
    window.time_slider.setValue(100)
    tab.request()
    settle(tab)
    grab("guidance_score")

    window.set_config(
        window.config.with_overrides(
            {
                "data.name": "gmm1d",
                "data.means": [-1.0, 1.0],
                "data.stds": [1.0, 1.0],
                "data.weights": [0.5, 0.5],
                "sample.steps": 300,
                "sample.record_every": 10,
            }
        )
    )
    ready()
    window.set_model(window._build_model())
    choose(1, 40)
    done = {}
    window.samplingFinished.connect(lambda path: done.setdefault("path", path))
    window.start_sampling()
    for _ in range(4000):
        app.processEvents()
        if "path" in done:
            break
        QtCore.QThread.msleep(25)
    tab = window.tabs_by_name["density"]
    window.tab_widget.setCurrentWidget(tab)
    window.time_slider.setValue(0)
    settle(tab)
    grab("guidance_density")
    window.close()
    return saved


if __name__ == "__main__":
    take_guidance_screenshots(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
