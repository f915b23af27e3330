"""The Qt binding itself: a guard against a known PySide6 defect that crashes the app."""

import sys

import pytest
from PySide6 import QtWidgets


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12")
def test_void_qt_calls_keep_none_alive(qtbot) -> None:
    """PySide6 6.12.0 decrements None's refcount on every void call: the app then aborts."""
    widget = QtWidgets.QWidget()
    qtbot.addWidget(widget)
    before = sys.getrefcount(None)
    for _ in range(500):
        widget.update()
        widget.setObjectName("probe")
    assert sys.getrefcount(None) >= before - 50
