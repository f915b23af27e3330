"""Config forms: expression fields checked as typed, the message under the field, Train off;
every value loaded into the forms reads back exactly (floats repr-exact, 64-bit integers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PySide6 import QtWidgets

from tests.gui.conftest import custom
from workbench.config import (
    SECTIONS,
    ExperimentConfig,
    config_from_dict,
    config_to_dict,
    default_config,
    load_config,
    section_params,
)
from workbench.core.data import DATASETS
from workbench.core.params import Float, FloatArray, Int, Param
from workbench.core.sde import SDES, LinearSDE
from workbench.errors import ConfigError
from workbench.gui.forms import WideSpinBox
from workbench.gui.main_window import MainWindow
from workbench.gui.panels import (
    DataPanel,
    NetworkPanel,
    Panel,
    SamplingPanel,
    SDEPanel,
    TrainingPanel,
)


def test_custom_drift_is_multiline_and_checked_as_typed(qtbot, window: MainWindow) -> None:
    custom(window, **{"data.name": "8gaussians", "sde.drift": "-x2; x1", "sde.g": "1"})
    window.toolbox.setCurrentWidget(window.toolbox.widget(1))
    form = window.sde_panel.forms["sde"]
    drift = form.fields["drift"]
    assert isinstance(drift.widget, QtWidgets.QPlainTextEdit)
    assert drift.widget.toPlainText() == "-x2\nx1"  # one component per line
    assert drift.widget.minimumHeight() >= 3 * drift.widget.fontMetrics().lineSpacing()
    assert window.train_button.isEnabled()

    # a syntax error in the second component: marked under the field, Train disabled
    drift.widget.clear()
    qtbot.keyClicks(drift.widget, "-x2")
    qtbot.keyClick(drift.widget, "\r")
    qtbot.keyClicks(drift.widget, "x1 +")
    qtbot.waitUntil(lambda: not window.valid, timeout=5000)
    assert drift.error_label.isVisible()
    assert "component 2 of 2" in drift.error_label.text()
    assert not window.train_button.isEnabled() and not window.sample_button.isEnabled()

    # an unknown variable is named
    drift.widget.setPlainText("-x3\nx1")
    qtbot.waitUntil(lambda: "x3" in drift.error_label.text(), timeout=5000)

    # one component for 2-D data: the config says how many are needed
    drift.widget.setPlainText("-x1")
    qtbot.waitUntil(lambda: "2 dimension" in drift.error_label.text(), timeout=5000)

    # fixed: the mark goes, Train comes back, the config holds the joined text
    drift.widget.setPlainText("-x2 - 0.5*x1\nx1\n")
    qtbot.waitUntil(lambda: window.valid, timeout=5000)
    assert not drift.error_label.isVisible()
    qtbot.waitUntil(window.train_button.isEnabled, timeout=60_000)  # the state: a worker's
    assert window.config.sde.params["drift"] == "-x2 - 0.5*x1; x1"


def test_expression_fields_of_the_linear_sde(qtbot, window: MainWindow) -> None:
    window.set_config(window.config.with_overrides({"sde.kind": "linear"}))
    window.toolbox.setCurrentWidget(window.toolbox.widget(1))
    g = window.sde_panel.forms["sde"].fields["g"]
    g.widget.clear()
    qtbot.keyClicks(g.widget, "sqrt(0.1 + 19.9*t")
    qtbot.waitUntil(lambda: not window.valid, timeout=5000)
    assert g.error_label.isVisible() and g.error_label.text()
    assert not window.train_button.isEnabled()
    qtbot.keyClicks(g.widget, ")")
    qtbot.waitUntil(lambda: window.valid, timeout=5000)
    assert not g.error_label.isVisible()
    qtbot.waitUntil(window.train_button.isEnabled, timeout=60_000)
    g.widget.setText("sqrt(-1 + t)")
    g.edited.emit()
    qtbot.waitUntil(lambda: not window.valid, timeout=5000)
    assert "must be finite and >= 0" in g.error_label.text()


# ---------------------------------------------------------------------------------------------
# a form changes nothing it did not mean to: every value loaded reads back exactly
# ---------------------------------------------------------------------------------------------
def _panels(qtbot) -> list[Panel]:
    panels: list[Panel] = [
        DataPanel(),
        SDEPanel(),
        NetworkPanel(),
        TrainingPanel(),
        SamplingPanel(),
    ]
    for panel in panels:
        qtbot.addWidget(panel)
    return panels


def _read_back(panels: list[Panel], cfg: ExperimentConfig) -> dict[str, dict[str, Any]]:
    tree = config_to_dict(cfg)
    raw: dict[str, dict[str, Any]] = {}
    for panel in panels:
        panel.load(cfg, tree)
        raw.update(panel.raw())
    return raw


# a valid base for every data set and SDE: gmm has no defaults for its arrays
_BASES: dict[str, dict[str, Any]] = {
    "gmm": {"means": [[-2.0, -1.0], [2.0, -1.0]], "stds": [0.5, 0.7], "weights": [0.3, 0.7]},
    "file": {"path": "data.npy"},
}


def _base(section: str, kind: str | None) -> ExperimentConfig:
    if section == "data":
        return config_from_dict({"data": {"name": kind, **_BASES.get(kind, {})}})
    if section == "sde" and issubclass(SDES.get(kind), LinearSDE):
        return config_from_dict({"sde": {"kind": kind}})
    if section == "sde":  # a non-linear SDE: the settings that need no Gaussian kernel
        return config_from_dict({"data": {"name": "gmm1d"}, "sde": {"kind": kind}, **_NONLINEAR})
    return default_config()


_NONLINEAR: dict[str, dict[str, Any]] = {
    "loss": {"kind": "ssm", "weighting": "none"},
    "model": {"output": "score"},
    "sample": {"denoise": False},
}


def _declared() -> list[tuple[str, str | None, Param]]:
    """Every declared key of every section and kind (from the declarations, not a list here)."""
    out: list[tuple[str, str | None, Param]] = []
    for section in SECTIONS:
        kinds: list[str | None] = [None]
        if section == "data":
            kinds = list(DATASETS.names())
        elif section == "sde":
            kinds = list(SDES.names())
        for kind in kinds:
            out += [(section, kind, p) for p in section_params(kind, section)]
    return out


_FLOATS = [d for d in _declared() if isinstance(d[2].check, Float)]
_INTS = [d for d in _declared() if isinstance(d[2].check, Int)]
_ARRAYS = [d for d in _declared() if isinstance(d[2].check, FloatArray)]


def _floats_in(check: Float) -> st.SearchStrategy[float]:
    return st.floats(
        min_value=check.low,
        max_value=check.high,
        exclude_min=check.low is not None and check.low_open,
        exclude_max=check.high is not None and check.high_open,
        allow_nan=False,
        allow_infinity=False,
    )


def _assert_round_trip(panels: list[Panel], cfg: ExperimentConfig) -> None:
    raw = _read_back(panels, cfg)
    tree = config_to_dict(cfg)
    for section in SECTIONS:
        for key, value in tree[section].items():
            # repr-exact: 2.82843 == 2.82842712474619 is False, and so is -0.0 vs 0.0 by repr
            assert repr(raw[section][key]) == repr(value), (section, key)
    assert config_from_dict(raw) == cfg


def test_declared_keys_cover_every_kind() -> None:
    sections = {(s, k) for s, k, _ in _FLOATS}
    assert ("data", "8gaussians") in sections and ("sde", "ve") in sections
    assert ("train", None) in sections and ("sample", None) in sections
    assert {p.name for s, k, p in _ARRAYS if k == "gmm"} == {"means", "stds", "covs", "weights"}


def test_every_float_field_round_trips_exactly(qtbot) -> None:
    panels = _panels(qtbot)

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def check(data: st.DataObject) -> None:
        section, kind, param = data.draw(st.sampled_from(_FLOATS))
        value = data.draw(_floats_in(param.check))
        base = _base(section, kind)
        try:
            cfg = base.with_overrides({f"{section}.{param.name}": value})
        except ConfigError:
            assume(False)  # a cross-key rule (beta_max > beta_min, ...) refuses it
        assert repr(config_to_dict(cfg)[section][param.name]) == repr(float(value))
        _assert_round_trip(panels, cfg)
        # what the field shows is the full double, not a rounded one
        form = next(p.forms[section] for p in panels if section in p.forms)
        assert form.fields[param.name].widget.text() == repr(float(value))

    check()


def test_every_int_field_round_trips_over_its_whole_range(qtbot) -> None:
    panels = _panels(qtbot)

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def check(data: st.DataObject) -> None:
        section, kind, param = data.draw(st.sampled_from(_INTS))
        check_: Int = param.check  # type: ignore[assignment]
        low = -(2**63) if check_.low is None else check_.low
        high = 2**63 - 1 if check_.high is None else check_.high
        value = data.draw(st.one_of(st.integers(low, high), st.sampled_from([low, high])))
        overrides: dict[str, Any] = {f"{section}.{param.name}": value}
        if (section, param.name) == ("data", "n"):
            overrides["train.batch_size"] = 1  # batch_size <= data.n
        try:
            cfg = _base(section, kind).with_overrides(overrides)
        except ConfigError:
            assume(False)
        _assert_round_trip(panels, cfg)

    check()


def test_every_float_list_round_trips_exactly(qtbot) -> None:
    """gmm means/stds/weights (and covs, gmm1d's lists): random finite doubles of the base's
    shape, so the mixture's own rules (one std per mean, ...) still hold."""
    panels = _panels(qtbot)
    cases = [d for d in _ARRAYS if d[2].name != "covs"]

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def check(data: st.DataObject) -> None:
        section, kind, param = data.draw(st.sampled_from(cases))
        base = _base(section, kind)
        shape = base.data.params[param.name]
        positive = param.check.positive  # type: ignore[attr-defined]
        number = st.floats(
            min_value=0.0 if positive else None,
            exclude_min=positive,
            allow_nan=False,
            allow_infinity=False,
            max_value=1e300,
        )

        def like(template: Any) -> st.SearchStrategy[Any]:
            if isinstance(template, tuple):
                return st.tuples(*(like(t) for t in template)).map(list)
            return number

        value = data.draw(like(shape))
        try:
            cfg = base.with_overrides({f"{section}.{param.name}": value})
        except ConfigError:
            assume(False)
        _assert_round_trip(panels, cfg)

    check()


@pytest.mark.parametrize(
    "overrides",
    [
        {"sde.kind": "custom", "sde.drift": "-x2;x1", "data.name": "8gaussians"},
        {"sde.kind": "custom", "sde.drift": "  -4*x*(x^2 - 1)  ", "data.name": "gmm1d"},
        {"sde.kind": "linear", "sde.a": " -0.5*(0.1+19.9*t)", "sde.g": "sqrt(0.1 + 19.9*t) "},
        {
            "data.name": "gmm",
            "data.covs": [[[1.0, 0.25], [0.25, 0.5]]],
            "data.means": [[0.1, 1e-300]],
        },
        {"train.seed": 2**63 - 1, "sample.seed": 2**40 + 3, "train.warmup": 2**33},
    ],
)
def test_text_expression_and_wide_values_round_trip(qtbot, overrides: dict[str, Any]) -> None:
    """Expressions keep their exact text (spacing included) unless edited; 64-bit seeds fit."""
    if overrides.get("sde.kind") == "custom":
        overrides = {
            "loss.kind": "ssm",
            "loss.weighting": "none",
            "model.output": "score",
            "sample.denoise": False,
            **overrides,
        }
    cfg = default_config().with_overrides(overrides)
    _assert_round_trip(_panels(qtbot), cfg)


def test_a_wide_spin_box_steps_and_refuses_text(qtbot) -> None:
    box = WideSpinBox(0, 2**63 - 1)
    qtbot.addWidget(box)
    seen: list[int] = []
    box.valueChanged.connect(seen.append)
    box.setValue(2**63 - 2)
    box.stepBy(5)  # clamped at the top of the range
    assert box.value() == 2**63 - 1 and seen == [2**63 - 2, 2**63 - 1]
    box.lineEdit().setText("12x")
    box.editingFinished.emit()
    assert box.value() == 2**63 - 1 and box.lineEdit().text() == str(2**63 - 1)
    box.lineEdit().setText("42")
    box.editingFinished.emit()
    assert box.value() == 42 and seen[-1] == 42


def test_the_window_keeps_a_loaded_experiment_exactly(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    """The reported case: radius = 2.82842712474619 became 2.82843 after a GUI round trip, and
    a later `train --resume` refused the run ("trained with a different data.radius")."""
    path = tmp_path / "exp.toml"
    path.write_text(
        '[data]\nname = "8gaussians"\nradius = 2.82842712474619\nstd = 0.1234567890123456\n'
        '[sde]\nkind = "ve"\nsigma_max = 12.345678901234567\n'
        "[train]\nlr = 0.0012345678901234567\nseed = 9007199254740993\n"
    )
    loaded = load_config(path)
    assert window.open_path(path)
    assert window.config == loaded
    assert window.validate()  # the window builds the experiment again from its fields
    assert window.config == loaded
    assert window.config.data.params["radius"] == 2.82842712474619
    assert config_to_dict(window.config) == config_to_dict(loaded)
    assert window.save_experiment(tmp_path / "again.toml")
    assert load_config(tmp_path / "again.toml") == loaded
    radius = window.data_panel.forms["data"].fields["radius"].widget
    assert radius.text() == "2.82842712474619"


def test_the_window_refuses_an_sde_that_cannot_work(qtbot, window: MainWindow) -> None:
    """The config's rule, not one of the GUI's own: sigma_max too small for standardised data."""
    window.set_config(window.config.with_overrides({"sde.kind": "ve"}))
    window.toolbox.setCurrentWidget(window.toolbox.widget(1))
    field = window.sde_panel.forms["sde"].fields["sigma_max"]
    field.widget.clear()
    qtbot.keyClicks(field.widget, "1.5")
    qtbot.waitUntil(lambda: not window.valid, timeout=5000)
    assert "m(T)^2/s(T)^2" in field.error_label.text() and field.error_label.isVisible()
    assert not window.train_button.isEnabled()
    field.widget.clear()
    qtbot.keyClicks(field.widget, "10")
    qtbot.waitUntil(lambda: window.valid, timeout=5000)
    assert window.config.sde.params["sigma_max"] == 10.0
