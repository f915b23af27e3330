"""The command line's progress display (:class:`workbench.terminal.TerminalProgress`): rate
limits, the final line once, plain output where a terminal cannot redraw, silence when asked.

Time is a clock the test advances, so nothing here depends on how fast the machine is."""

from __future__ import annotations

import io
import os
import pty

import pytest

from workbench.terminal import TerminalProgress, fancy_terminal


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def bar(tty: bool, **kw: object) -> tuple[TerminalProgress, io.StringIO, Clock]:
    stream, clock = io.StringIO(), Clock()
    return TerminalProgress("train", stream, tty=tty, clock=clock, **kw), stream, clock  # type: ignore[arg-type]


def test_tty_redraws_at_most_ten_times_a_second() -> None:
    progress, stream, clock = bar(tty=True)
    for step in range(1, 1001):  # 1000 steps in one second
        clock.now = step / 1000
        progress.update(step, 1000, 1000.0, loss=0.5)
    progress.close()
    out = stream.getvalue()
    draws = out.count("\r")
    assert 2 <= draws <= 12, draws  # ~10 by the limit, the first and the final
    assert out.count("train 1000/1000 ") == 1 and out.endswith("\x1b[K\n")


def test_plain_lines_every_interval_and_the_final_line_once() -> None:
    progress, stream, clock = bar(tty=False, plain_interval=5.0)
    for step in range(1, 101):  # one step a second
        clock.now = float(step)
        progress.update(step, 100, 1.0)
    for _ in range(3):  # the loop reports the last step again, then "done"
        progress.update(100, 100, 1.0)
    progress.close()
    progress.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()
    assert 19 <= len(lines) <= 22, lines  # every 5 s over 100 s, and the final line
    assert sum(line.startswith("train 100/100 ") for line in lines) == 1
    assert lines[-1].startswith("train 100/100 ")


def test_close_shows_the_state_the_limit_held_back_once() -> None:
    progress, stream, clock = bar(tty=False, plain_interval=5.0)
    for step in range(1, 10):  # stopped at 9/10 within a second (Ctrl-C, an error)
        clock.now = step / 10
        progress.update(step, 10, 10.0)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["1/10", "9/10"]
    progress.update(10, 10, 10.0)  # a report after close (the step that was running)
    assert stream.getvalue().splitlines() == lines


def test_disabled_writes_nothing() -> None:
    for tty in (True, False):
        progress, stream, _ = bar(tty=tty, enabled=False)
        for step in range(1, 11):
            progress.update(step, 10, 1.0)
        progress.close()
        assert stream.getvalue() == ""


@pytest.mark.parametrize(("term", "fancy"), [("xterm", True), ("dumb", False), ("", False)])
def test_fancy_terminal_needs_a_tty_and_a_capable_term(
    term: str, fancy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TERM", term)
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as tty:
            assert fancy_terminal(tty) is fancy
            assert TerminalProgress("x", tty).tty is fancy
        assert fancy_terminal(io.StringIO()) is False  # not a terminal at all
    finally:
        os.close(master)
        os.close(slave)
