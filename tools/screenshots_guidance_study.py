"""Screenshot of the Study tab's guidance study (no training: the analytic model).

    python tools/screenshots_guidance_study.py OUTDIR

``guidance_study.png``: two overlapping 1-D classes N(-1, 1) and N(1, 1), class 1, em and ode
at 200 NFE, n = 5000, w = 0, 0.5, 1, 2, 4: the sliced Wasserstein distance to the tilted
density (solid) and to p(x|c) (dashed) against w, with their noise-floor bands.
``tools/screenshots.py`` calls :func:`take_guidance_study_screenshot` too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["take_guidance_study_screenshot"]


def take_guidance_study_screenshot(outdir: str | os.PathLike[str]) -> list[Path]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from tools.screenshots import fresh_window
    from workbench.jobs.guidance_study import guidance_study
    from workbench.jobs.sample import load_model

    app, window, work, out = fresh_window("sde-workbench-guidance-study-", outdir)
    config = window.config.with_overrides(
        {
            "data.name": "gmm1d",
            "data.means": [-1.0, 1.0],
            "data.stds": [1.0, 1.0],
            "data.weights": [0.5, 0.5],
            "model.kind": "analytic",
            "train.device": "cpu",
        }
    )
    window.set_config(config)
    study = work / "guidance.h5"
    loaded, model, dataset = load_model(config)
    guidance_study(
        loaded,
        model,
        dataset,
        study,
        class_label=1,
        guidance=[0.0, 0.5, 1.0, 2.0, 4.0],
        samplers=["em", "ode"],
        nfe=200,
        n=5000,
    )
    tab = window.tabs_by_name["study"]
    window.tab_widget.setCurrentWidget(tab)
    tab.show_study(study)
    tab.guidance.measure.setCurrentText("sliced Wasserstein")
    tab.guidance.class_box.setValue(1)  # the choices the file was made with
    tab.guidance.nfe.setValue(200)
    tab.guidance.n.setValue(5000)
    tab.flush_redraw()
    app.processEvents()
    path = out / "guidance_study.png"
    window.grab().save(str(path))
    print(f"saved {path}")
    window.close()
    return [path]


if __name__ == "__main__":
    take_guidance_study_screenshot(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
