"""The hardening suite: soak tests run only when asked for.

``@pytest.mark.soak`` tests (a 30-minute training soak, thousands of fuzz cases) are skipped,
with a reason that says how to run them, unless ``-m soak`` selects them or
``SDE_WORKBENCH_SOAK=1`` is set. CI runs neither, so it never spends half an hour here.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    markexpr = config.getoption("markexpr", "") or ""
    wanted = os.environ.get("SDE_WORKBENCH_SOAK") == "1" or (
        "soak" in markexpr and "not soak" not in markexpr
    )
    if wanted:
        # the suite's 300 s per-test limit (pyproject) would cut a 30-minute soak short
        for item in items:
            if "soak" in item.keywords:
                item.add_marker(pytest.mark.timeout(0))
        return
    skip = pytest.mark.skip(
        reason="SOAK TEST NOT RUN: long-running; select it with `pytest -m soak` or "
        "SDE_WORKBENCH_SOAK=1 (SDE_WORKBENCH_SOAK_MINUTES sets the training soak's length)"
    )
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)
