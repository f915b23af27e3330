"""``sde-workbench``: subcommands, exit statuses and one-line errors, run in-process."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from workbench import __version__, cli
from workbench.cli import COMMANDS, main
from workbench.config import load_config
from workbench.presets import PRESETS, preset_config

ROOT = Path(__file__).resolve().parents[1]
# the commands the README lists
README_COMMANDS = ["gui", "init", "train", "sample", "nll", "fpk", "inspect", "export", "bench"]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.strip()


@pytest.fixture
def no_gui(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import fail as if workbench.gui did not exist yet
    monkeypatch.setitem(sys.modules, "workbench.gui", None)


# ---------------------------------------------------------------------------------------------
# help and version
# ---------------------------------------------------------------------------------------------
def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in [*README_COMMANDS, "check"]:
        assert f"    {name} " in out, name
    assert "examples:" in out and "exit status" in out


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_subcommand_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([name, "--help"]) == 0
    assert f"usage: sde-workbench {name}" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    # the first line names the workbench; the libraries follow (tests/test_packaging.py)
    assert capsys.readouterr().out.splitlines()[0] == f"sde-workbench {__version__}"


def test_module_entry_point_runs() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "workbench", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage: sde-workbench" in proc.stdout and "train" in proc.stdout


# ---------------------------------------------------------------------------------------------
# init
# ---------------------------------------------------------------------------------------------
def test_init_writes_a_config_that_loads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "exp.toml"
    assert main(["init", str(out)]) == 0
    assert load_config(out) == preset_config("default")
    assert str(out) in capsys.readouterr().out
    moons = tmp_path / "moons.toml"
    assert main(["init", str(moons), "--preset", "moons"]) == 0
    assert load_config(moons) == preset_config("moons")


def test_init_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "exp.toml"
    out.write_text("# mine\n", encoding="utf-8")
    assert main(["init", str(out), "--preset", "ve"]) == 1
    err = one_line_error(capsys)
    assert err.startswith("sde-workbench: error: ") and "--force" in err
    assert out.read_text(encoding="utf-8") == "# mine\n"
    assert main(["init", str(out), "--preset", "ve", "--force"]) == 0
    assert load_config(out) == preset_config("ve")


def test_init_unknown_preset_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "exp.toml"
    assert main(["init", str(out), "--preset", "moonz"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: sde-workbench init")
    assert "argument --preset: invalid choice: 'moonz'" in err
    assert "did you mean 'moons'?" in err and all(name in err for name in PRESETS)
    assert not out.exists()


def test_init_list_and_missing_out(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(PRESETS)
    assert main(["init"]) == 2
    assert "init exp.toml" in one_line_error(capsys)


def test_init_file_preset_says_it_needs_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", str(tmp_path / "f.toml"), "--preset", "file"]) == 0
    assert "data.path" in capsys.readouterr().out


def test_init_into_a_missing_folder_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", str(tmp_path / "no" / "exp.toml")]) == 1
    assert "cannot write" in one_line_error(capsys)


# ---------------------------------------------------------------------------------------------
# check and errors
# ---------------------------------------------------------------------------------------------
def test_check_good_config_and_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[data]\nname = "moons"\n', encoding="utf-8")
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: ") and "moons" in out
    assert main(["check", str(tmp_path)]) == 0  # a run folder holds config.toml


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[train]\nlr = -1\n", ["train.lr", "> 0", "-1"]),
        ("[trian]\n", ["did you mean 'train'?"]),
        ("[sde]\nkind = 'linear'\na = '1 +\n2'\n", ["invalid TOML"]),
        ('[sde]\nkind = "linear"\na = "t +"\n', ["sde.a", "column"]),
        # experiments that cannot work: no noise, or a prior far from p_T (with the numbers)
        ('[sde]\nkind = "linear"\ng = "0*t"\n', ["sde.g", "zero on all of [0, T]"]),
        ('[sde]\nkind = "ve"\nsigma_max = 1.5\n', ["sde.sigma_max", "s(T) = 1.5", "0.444"]),
        ('[sde]\nkind = "vp"\nT = 0.05\n', ["sde.beta_max", "m(T) = 0.9", "or T"]),
    ],
)
def test_check_bad_config_fails_in_one_line(
    text: str, words: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    assert main(["check", str(path)]) == 1
    err = one_line_error(capsys)
    assert err.startswith(f"sde-workbench: error: {path}")
    for word in words:
        assert word in err


def test_train_refuses_an_sde_that_cannot_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same rule stops `train` before anything is written."""
    path = tmp_path / "weak.toml"
    path.write_text('[sde]\nkind = "cosine"\nalpha_bar_min = 0.3\n', encoding="utf-8")
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 1
    err = one_line_error(capsys)
    assert "sde.alpha_bar_min" in err and "m(T)^2/s(T)^2" in err
    assert not (tmp_path / "run").exists()


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "nope.toml")]) == 1
    err = one_line_error(capsys)
    assert "not found" in err and "nope.toml" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "a.toml", "--bogus"],
        ["--bogus"],
        ["frobnicate"],
        ["train", "a.toml"],  # --out is required
        ["train", "a.toml", "--out", "r", "--steps", "0"],
        ["train", "a.toml", "--out", "r", "--device", "gpu"],
        ["export", "f.h5", "--out", "x.npy", "--step", "1", "--time", "0.5"],
        ["export", "f.h5", "--out", "x.npy", "--format", "xls"],
        ["fpk", "a.toml", "--out", "f.h5", "--times", "0,x"],
    ],
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage: sde-workbench" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# the GUI, lazily
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [[], ["gui"]])
def test_gui_not_available_yet(
    argv: list[str], no_gui: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 1
    assert one_line_error(capsys).startswith("sde-workbench: the GUI is not available yet")


def test_gui_is_started_with_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = []
    fake = types.ModuleType("workbench.gui")
    fake.run_gui = lambda path=None, follow=False: calls.append(path) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "workbench.gui", fake)
    path = tmp_path / "exp.toml"
    path.write_text("", encoding="utf-8")
    assert main(["gui", str(path)]) == 0
    assert main([]) == 0
    assert calls == [str(path), None]
    assert main(["gui", str(tmp_path / "missing.h5")]) == 1
    assert "missing.h5" in one_line_error(capsys)
    assert len(calls) == 2


# ---------------------------------------------------------------------------------------------
# error policy
# ---------------------------------------------------------------------------------------------
def _replace_check(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    def run(args: object) -> int:
        raise exc

    monkeypatch.setitem(COMMANDS, "check", COMMANDS["check"]._replace(run=run))


def test_interrupt_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _replace_check(monkeypatch, KeyboardInterrupt())
    assert main(["check", "x.toml"]) == 130
    assert one_line_error(capsys) == "sde-workbench: interrupted"


def test_multi_line_user_errors_are_collapsed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _replace_check(monkeypatch, cli.WorkbenchError("first\nsecond"))
    assert main(["check", "x.toml"]) == 1
    assert one_line_error(capsys) == "sde-workbench: error: first second"


def test_bugs_keep_their_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    _replace_check(monkeypatch, RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["check", "x.toml"])


def test_gui_follow_needs_a_folder(tmp_path, capsys):
    from workbench.cli import main

    assert main(["gui", "--follow"]) == 1
    assert "--follow needs the run folder" in capsys.readouterr().err
    afile = tmp_path / "x.toml"
    afile.write_text("")
    assert main(["gui", str(afile), "--follow"]) == 1
    assert "not a folder" in capsys.readouterr().err


def test_a_closed_pipe_is_not_a_traceback() -> None:
    """``sde-workbench init --list | head -1``: the reader leaves, the command ends quietly
    (status 141, as a shell reports SIGPIPE) instead of printing a BrokenPipeError."""
    import subprocess
    import sys

    # stdout is a pipe whose reader is already closed; unbuffered, so print() meets it in main
    code = (
        "import os, sys\n"
        "r, w = os.pipe(); os.close(r); os.dup2(w, 1)\n"
        "from workbench.cli import main\n"
        "sys.exit(main(['init', '--list']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-u", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


# ---------------------------------------------------------------------------------------------
# inspect shows a file's strings safely
# ---------------------------------------------------------------------------------------------
def _hostile_trajectory(path: Path) -> Path:
    import h5py
    import numpy as np

    from workbench.io.trajectories import TrajectoryWriter

    with TrajectoryWriter(
        path, n_samples=4, sample_shape=(2,), config_toml="", sampler="em\x1b[2J\x07"
    ) as w:
        w.append(0, 1.0, np.zeros((4, 2)))
        w.close()
    with h5py.File(path, "a") as f:
        f.attrs["created"] = "2024\x1b]0;owned\x07\u202eevil\r\nnext"
        f.attrs["software"] = "x" * 5000
    return path


def _shown_characters_are_safe(text: str) -> None:
    import unicodedata

    for ch in text:
        assert ch == "\n" or unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp"), repr(ch)


def test_inspect_escapes_control_codes_and_shortens_huge_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    path = _hostile_trajectory(tmp_path / "hostile.h5")
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    _shown_characters_are_safe(out)
    assert "em\\x1b[2J\\x07" in out
    assert "2024\\x1b]0;owned\\x07\\u202eevil\\r\\nnext" in out
    assert "x" * 200 + "… (5,000 characters)" in out and "x" * 201 not in out

    assert main(["inspect", str(path), "--json"]) == 0
    text = capsys.readouterr().out
    _shown_characters_are_safe(text)
    summary = json.loads(text)
    assert summary["sampler"] == "em\\x1b[2J\\x07"
    assert summary["software"] == "x" * 200 + "… (5,000 characters)"
    assert summary["n_saved"] == 1  # numbers are untouched
