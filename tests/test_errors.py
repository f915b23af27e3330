"""errors.one_line: the one function that puts a message on one line for every surface."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.cli import main
from workbench.errors import one_line


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a\nb", "a b"),
        ("a\r\n  b\n\n", "a b"),
        ("a\rb\x0bc\x0cd\x1ce\x85f\u2028g\u2029h", "a b c d e f g h"),
        ("  padded  ", "padded"),
        ("two  spaces\tand a tab", "two  spaces\tand a tab"),
        ("", ""),
        (OSError(2, "No such\nfile"), "[Errno 2] No such file"),
    ],
)
def test_one_line_folds_every_line_break_and_keeps_spaces_inside_a_line(
    text: object, expected: str
) -> None:
    assert one_line(text) == expected
    assert len(one_line(text).splitlines()) <= 1


def test_a_path_with_two_spaces_reads_back_exactly_in_a_cli_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "two  spaces\nand a line.h5"
    assert main(["inspect", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sde-workbench: error: ")
    assert f"{tmp_path}/two  spaces and a line.h5" in err
