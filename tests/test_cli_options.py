"""The command line's shared conventions, run as real subprocesses (``python -m workbench``):
closed-list options refuse a bad value as a usage error listing the valid ones, ``--json``
prints one object holding the documented keys, ``--quiet`` is silent, and progress on a
non-terminal (or under ``TERM=dumb``) is plain lines, its final line printed once."""

from __future__ import annotations

import json
import math
import os
import pty
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any

import pytest

from workbench.cli import build_parser
from workbench.cli_support import choice_actions
from workbench.config import default_config, save_config

ROOT = Path(__file__).resolve().parents[1]
BAD = "no-such-value"

# the keys README's command-line section documents for each command's --json object
JSON_KEYS = {
    "check": {"ok", "config", "summary", "experiment"},
    "train": {"ok", "status", "steps", "loss", "seconds", "run", "checkpoint", "message"},
    "sample": {
        *("ok", "status", "path", "n", "rows", "nfe", "seconds", "sampler", "steps"),
        *("class_label", "guidance"),
    },
    "nll": {
        *("ok", "n", "dim", "nll_nats", "nats_per_dim", "bits_per_dim"),
        *("stderr_nats_per_dim", "exact_nats_per_dim", "nfe"),
    },
    "fpk": {"ok", "path", "dim", "grid", "times", "mass_error", "clipped", "seconds", "warnings"},
}


def cli(
    *argv: str, term: str = "dumb", stderr: int | None = subprocess.PIPE
) -> subprocess.CompletedProcess[str]:
    """``sde-workbench ARGV`` in a fresh process; stdout and stderr are pipes (no TTY)."""
    env = {**os.environ, "TERM": term, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "workbench", *argv],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


# ---------------------------------------------------------------------------------------------
# choices
# ---------------------------------------------------------------------------------------------
CHOICE_OPTIONS = [
    (words, action.option_strings[-1] if action.option_strings else None)
    for words, action in choice_actions(build_parser())
]


def _choice_action(words: list[str], option: str | None) -> Any:
    for w, action in choice_actions(build_parser()):
        if w == words and (action.option_strings[-1] if action.option_strings else None) == option:
            return action
    raise AssertionError((words, option))


def test_the_closed_list_options_are_found() -> None:
    """The parametrization below is derived from the parser; make sure it is not empty or
    blind to an option that is known to be a closed list."""
    found = {(" ".join(w), o) for w, o in CHOICE_OPTIONS}
    expected = {
        ("", None),  # the command itself
        ("init", "--preset"),
        ("train", "--device"),
        ("sample", "--sampler"),
        ("sample", "--device"),
        ("export", "--format"),
        ("bench", "--device"),
    }
    assert expected <= found, expected - found


@pytest.mark.parametrize(
    ("words", "option"),
    CHOICE_OPTIONS,
    ids=[" ".join([*w, o or "COMMAND"]) for w, o in CHOICE_OPTIONS],
)
def test_a_bad_choice_is_a_usage_error_listing_the_valid_ones(
    words: list[str], option: str | None
) -> None:
    argv = [*words, option, BAD] if option else [BAD]
    proc = cli(*argv)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"usage: sde-workbench {' '.join(words)}".rstrip())
    last = proc.stderr.strip().splitlines()[-1]
    assert f"invalid choice: '{BAD}'" in last
    for choice in _choice_action(words, option).choices:
        assert str(choice) in last, choice


def test_every_option_list_is_read_from_a_registry() -> None:
    """A tuple written into cli.py would drift from the registry it copies; every closed-list
    option holds a :class:`~workbench.cli_support.Choices` (the command itself: the parser's)."""
    from workbench.cli_support import Choices

    for words, action in choice_actions(build_parser()):
        if action.option_strings:
            assert isinstance(action.choices, Choices), (words, action.option_strings)


def test_choices_come_from_the_registries() -> None:
    from workbench.config import Device
    from workbench.core.samplers import SAMPLERS
    from workbench.io.export import FORMATS
    from workbench.presets import PRESETS

    assert list(_choice_action(["sample"], "--sampler").choices) == SAMPLERS.names()
    assert list(_choice_action(["init"], "--preset").choices) == list(PRESETS)
    assert tuple(_choice_action(["export"], "--format").choices) == FORMATS
    device = _choice_action(["train"], "--device").choices
    assert tuple(device) == Device.FORMS
    assert "cuda:1" in device and "cuda:x" not in device and "gpu" not in device


def test_every_listed_sampler_and_preset_is_accepted_downstream() -> None:
    from workbench.presets import preset_config

    cfg = default_config()
    for name in _choice_action(["sample"], "--sampler").choices:
        assert cfg.with_overrides({"sample.sampler": name}).sample.sampler == name
    for name in _choice_action(["init"], "--preset").choices:
        preset_config(name)


def test_a_close_miss_is_named() -> None:
    proc = cli("sample", "run", "--out", "x.h5", "--sampler", "pcc")
    assert proc.returncode == 2 and "did you mean 'pc'?" in proc.stderr


def test_top_level_help_loads_no_registry() -> None:
    """The choices are read when first needed: ``--help`` must not pay for torch."""
    code = (
        "import sys\n"
        "from workbench.cli import main\n"
        "assert main(['--help']) == 0\n"
        "print('torch' in sys.modules, file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "False"


# ---------------------------------------------------------------------------------------------
# tiny real runs, shared by the --json, progress and --quiet tests
# ---------------------------------------------------------------------------------------------
STEPS, N, SAMPLE_STEPS = 5, 64, 10


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    cfg = default_config().with_overrides(
        {
            "train.device": "cpu",
            "train.batch_size": 64,
            "train.steps": STEPS,
            "train.log_every": 1,
            "train.checkpoint_every": STEPS,
            "data.n": 256,
            "model.hidden": 16,
            "sample.n": N,
            "sample.steps": SAMPLE_STEPS,
            "sample.record_every": 5,
        }
    )
    save_config(cfg, folder / "exp.toml")
    return folder


@pytest.fixture(scope="module")
def runs(work: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """train, sample, nll, fpk and check with --json, TERM=dumb, on pipes."""
    exp, run = str(work / "exp.toml"), str(work / "run")
    out: dict[str, subprocess.CompletedProcess[str]] = {}
    out["train"] = cli("train", exp, "--out", run, "--json")
    out["sample"] = cli("sample", run, "--out", str(work / "s.h5"), "--json")
    out["nll"] = cli("nll", run, "--n", str(N), "--json")
    out["fpk"] = cli("fpk", exp, "--out", str(work / "f.h5"), "--grid", "16", "--json")
    out["check"] = cli("check", run, "--json")
    return out


@pytest.mark.parametrize("command", list(JSON_KEYS))
def test_json_is_one_object_with_the_documented_keys(
    command: str, runs: dict[str, subprocess.CompletedProcess[str]], work: Path
) -> None:
    proc = runs[command]
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # stdout holds the object and nothing else
    assert set(result) == JSON_KEYS[command]
    assert result["ok"] is True
    if command == "train":
        assert result["status"] == "done" and result["steps"] == STEPS
        assert math.isfinite(result["loss"]) and result["seconds"] > 0
        assert Path(result["checkpoint"]).is_file()
        assert Path(result["checkpoint"]).parent == Path(result["run"]) == work / "run"
    elif command == "sample":
        assert result["n"] == N and result["steps"] == SAMPLE_STEPS
        assert result["rows"] == 1 + SAMPLE_STEPS // 5 + 1  # prior, every 5th, final
        assert Path(result["path"]).is_file() and result["nfe"] >= SAMPLE_STEPS
    elif command == "nll":
        assert result["n"] == N and result["dim"] == 2
        assert result["bits_per_dim"] == pytest.approx(result["nats_per_dim"] / math.log(2))
        assert result["stderr_nats_per_dim"] > 0
    elif command == "fpk":
        assert result["grid"] == [16, 16] and result["dim"] == 2
        assert result["times"] == [0, 0.1, 0.25, 0.5, 0.75, 1]
        assert result["mass_error"] < 1e-6 and Path(result["path"]).is_file()
        # a 16-point grid is too coarse for t = 0: the warning is in the object too
        assert result["warnings"] and all(w in proc.stderr for w in result["warnings"])
    elif command == "check":
        assert "8gaussians" in result["summary"]
        assert result["experiment"]["train"]["steps"] == STEPS


def test_readme_documents_the_json_keys() -> None:
    import re

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for command, keys in JSON_KEYS.items():
        row = re.search(rf"^\| {command} \| (.*) \|$", text, re.MULTILINE)
        assert row, command
        assert set(re.findall(r"`([a-z_]+)`", row.group(1))) == keys, command


@pytest.mark.parametrize(
    ("command", "final"),
    [
        ("train", f"train {STEPS}/{STEPS} "),
        ("sample", f"sample {SAMPLE_STEPS}/{SAMPLE_STEPS} "),
        ("nll", "nll 1000/1000 "),
        ("fpk", "fpk 1000/1000 "),
    ],
)
def test_plain_progress_on_a_pipe_with_the_final_line_once(
    command: str, final: str, runs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    err = runs[command].stderr
    assert "\r" not in err and "\x1b" not in err
    assert err.count(final) == 1, err


def test_a_failure_with_json_is_one_line_and_one_object(
    work: Path, runs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    proc = cli("fpk", str(work / "exp.toml"), "--out", str(work / "f.h5"), "--json")  # exists
    assert proc.returncode == 1
    err = proc.stderr.strip()
    assert "\n" not in err and err.startswith("sde-workbench: error: ") and "exists" in err
    assert json.loads(proc.stdout) == {
        "ok": False,
        "error": err.removeprefix("sde-workbench: error: "),
    }


def test_quiet_successful_runs_print_nothing(
    work: Path, runs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    exp, run = str(work / "exp.toml"), str(work / "run")
    argvs = [
        ["-q", "init", str(work / "q.toml"), "--preset", "gmm1d"],
        ["check", exp, "--quiet"],
        ["train", exp, "--out", str(work / "qrun"), "-q"],
        ["sample", run, "--out", str(work / "q.h5"), "-q"],
        ["export", str(work / "s.h5"), "--out", str(work / "q.npy"), "-q"],
        [
            "fpk",
            str(work / "q.toml"),
            "--out",
            str(work / "qf.h5"),
            "--grid",
            "64",
            "-q",
            "--times",
            "0.5,1",
        ],
    ]
    for argv in argvs:
        proc = cli(*argv)
        assert proc.returncode == 0, (argv, proc.stderr)
        assert (proc.stdout, proc.stderr) == ("", ""), argv
    assert (work / "qrun" / "checkpoint.pt").is_file() and (work / "q.npy").is_file()
    assert (work / "qf.h5").is_file()


def _train_on_a_pty(work: Path, name: str, term: str) -> bytes:
    """Train with stderr on a pseudo-terminal (output post-processing off, so the bytes are
    what the program wrote) and return what it wrote there."""
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST  # no "\n" -> "\r\n" translation by the line discipline
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    try:
        proc = cli(
            "train", str(work / "exp.toml"), "--out", str(work / name), term=term, stderr=slave
        )
    finally:
        os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the other side is closed and everything was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.returncode == 0, proc.stdout
    return b"".join(chunks)


def test_term_dumb_on_a_terminal_gets_plain_lines(work: Path) -> None:
    dumb = _train_on_a_pty(work, "dumb", "dumb")
    assert b"\r" not in dumb and b"\x1b" not in dumb
    assert dumb.count(f"train {STEPS}/{STEPS} ".encode()) == 1
    # the same terminal with a capable TERM gets the bar redrawn in place: the check above
    # would have seen a bar
    fancy = _train_on_a_pty(work, "fancy", "xterm")
    assert b"\r[" in fancy and b"\x1b[K" in fancy
    assert fancy.count(f"train {STEPS}/{STEPS} ".encode()) == 1
