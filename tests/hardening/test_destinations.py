"""Every command that writes a file replaces only a regular file.

A FIFO, a unix socket, a directory, a symlink (to a file, or dangling), a character device
(``/dev/null``, only ever as a destination that must be refused) and a name ending in a slash
are refused by ``sample``, ``export``, ``fpk`` and ``init`` -- with or without ``--force`` --
with one line naming the path, and the destination is left exactly as it was. The library
writers the GUI uses (``run_export``, ``save_config``, ``TrajectoryWriter``, ``write_fpk``)
follow the same rule, and the final rename checks the destination again.
"""

from __future__ import annotations

import os
import re
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from workbench.cli import main
from workbench.config import default_config, save_config
from workbench.errors import WorkbenchError
from workbench.io.export import run_export
from workbench.io.paths import check_destination, replace_into
from workbench.io.trajectories import TrajectoryFile, TrajectoryWriter


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # relative names keep a unix socket's path under the 108-byte limit of sun_path
    monkeypatch.chdir(tmp_path)
    save_config(
        default_config().with_overrides(
            {"model.kind": "analytic", "train.device": "cpu", "sample.n": 20, "sample.steps": 5}
        ),
        tmp_path / "analytic.toml",
    )
    with TrajectoryWriter(
        tmp_path / "traj.h5", n_samples=5, sample_shape=(2,), config_toml="", sampler="em"
    ) as w:
        w.append(0, 1.0, np.zeros((5, 2)))
        w.close(np.ones((5, 2)))
    yield tmp_path


def state(path: str) -> tuple[object, ...]:
    """What is at ``path`` (not following links), enough to see any change."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return ("missing",)
    mode = stat.S_IFMT(info.st_mode)
    if stat.S_ISLNK(info.st_mode):
        target = os.readlink(path)
        resolved = os.path.join(os.path.dirname(path), target)
        return ("link", target, state(resolved))
    if stat.S_ISDIR(info.st_mode):
        return ("dir", sorted(os.listdir(path)))
    if stat.S_ISREG(info.st_mode):
        return ("file", Path(path).read_bytes())
    return ("special", mode, info.st_ino, info.st_rdev)


def make_fifo(name: str) -> str:
    os.mkfifo(name)
    return name


_sockets: list[socket.socket] = []


def make_socket(name: str) -> str:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(name)
    _sockets.append(s)
    return name


def make_dir(name: str) -> str:
    os.mkdir(name)
    Path(name, "keep.txt").write_text("inside\n")
    return name


def make_link(name: str) -> str:
    Path("elsewhere.txt").write_text("the link's target\n")
    os.symlink("elsewhere.txt", name)
    return name


def make_dangling(name: str) -> str:
    os.symlink("nowhere/target.bin", name)
    return name


def dev_null(name: str) -> str:
    return os.devnull  # refused before anything could open it: never written


def new_folder_slash(name: str) -> str:
    return "newdir/"


def existing_folder_slash(name: str) -> str:
    make_dir("olddir")
    return "olddir/"


DESTINATIONS: dict[str, Callable[[str], str]] = {
    "fifo": make_fifo,
    "socket": make_socket,
    "directory": make_dir,
    "symlink": make_link,
    "dangling symlink": make_dangling,
    "char device": dev_null,
    "new folder/": new_folder_slash,
    "existing folder/": existing_folder_slash,
}
REASONS = {
    "fifo": "is a named pipe (FIFO)",
    "socket": "is a socket",
    "directory": "is a directory",
    "symlink": "is a symbolic link",
    "dangling symlink": "which does not exist",
    "char device": "is a character device",
    "new folder/": "ends in a slash",
    "existing folder/": "ends in a slash",
}

COMMANDS: dict[str, tuple[Callable[[str], list[str]], bool]] = {
    # name: (argv for a destination, whether the command has --force)
    "sample": (lambda d: ["sample", "analytic.toml", "--out", d], True),
    "export": (lambda d: ["export", "traj.h5", "--out", d, "--format", "csv"], True),
    "fpk": (lambda d: ["fpk", "analytic.toml", "--out", d, "--grid", "8", "--times", "0"], False),
    "init": (lambda d: ["init", d], True),
}


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


@pytest.mark.parametrize("kind", list(DESTINATIONS))
@pytest.mark.parametrize(
    ("command", "force"),
    [(c, f) for c, (_, has_force) in COMMANDS.items() for f in (False, True) if has_force or not f],
)
def test_every_writer_refuses_what_is_not_a_regular_file(
    here: Path, capsys: pytest.CaptureFixture[str], command: str, kind: str, force: bool
) -> None:
    argv_for, _ = COMMANDS[command]
    dest = DESTINATIONS[kind](f"dest.{command}")
    before = state(dest.rstrip("/"))
    listing = sorted(os.listdir(here))
    argv = argv_for(dest) + (["--force"] if force else [])
    assert main(argv) == 1
    err = one_line(capsys)
    assert err.startswith("sde-workbench: error: "), err
    assert dest.rstrip("/") in err and REASONS[kind] in err, err
    assert state(dest.rstrip("/")) == before  # nothing written into it, nothing replaced
    assert sorted(os.listdir(here)) == listing  # no temporary, no file named like the folder
    if kind == "char device":
        assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_a_regular_file_is_replaced_only_with_force(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command, (argv_for, has_force) in COMMANDS.items():
        dest = f"plain.{command}"
        Path(dest).write_text("old\n")
        assert main(argv_for(dest)) == 1, command
        assert "already exists" in one_line(capsys)
        assert Path(dest).read_text() == "old\n"
        if has_force:
            assert main([*argv_for(dest), "--force"]) == 0, command
            assert Path(dest).read_bytes() != b"old\n"
            capsys.readouterr()
            assert stat.S_ISREG(os.lstat(dest).st_mode)
    capsys.readouterr()
    assert sorted(p.name for p in here.glob(".*.tmp")) == []


# ---------------------------------------------------------------------------------------------
# the library writers the GUI calls
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(DESTINATIONS))
def test_library_writers_follow_the_same_rule(here: Path, kind: str) -> None:
    dest = DESTINATIONS[kind]("lib.out")
    before = state(dest.rstrip("/"))
    writers: list[Callable[[], object]] = [
        lambda: run_export("traj.h5", dest, fmt="npy", force=True),
        lambda: save_config(default_config(), dest),  # the GUI's Save overwrites
        lambda: TrajectoryWriter(
            dest, n_samples=2, sample_shape=(2,), config_toml="", sampler="em", overwrite=True
        ),
    ]
    for write in writers:
        with pytest.raises(WorkbenchError, match=re.escape(REASONS[kind])):
            write()
        assert state(dest.rstrip("/")) == before


def test_check_destination_allows_new_names_and_regular_files(here: Path) -> None:
    assert check_destination("new.h5", False) == Path("new.h5")
    assert check_destination("sub/new.h5", False) == Path("sub/new.h5")
    Path("old.h5").write_text("x")
    assert check_destination("old.h5", True) == Path("old.h5")
    with pytest.raises(WorkbenchError, match=r"old.h5 already exists; use --force"):
        check_destination("old.h5", False)
    with pytest.raises(WorkbenchError, match="no file name"):
        check_destination("", True)
    Path("afile").write_text("x")
    with pytest.raises(WorkbenchError, match="not a folder"):
        check_destination("afile/x.h5", True)


# ---------------------------------------------------------------------------------------------
# the check and the replacement do not race
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["fifo", "socket", "directory", "symlink", "dangling symlink"])
def test_the_final_rename_checks_again(here: Path, kind: str) -> None:
    """Something that appears at the destination between the first check and the rename is
    still refused, and the temporary is deleted."""
    Path(".dest.x.tmp").write_text("new")
    dest = DESTINATIONS[kind]("dest.x")
    before = state(dest)
    with pytest.raises(WorkbenchError, match=re.escape(REASONS[kind])):
        replace_into(".dest.x.tmp", dest, True)
    assert state(dest) == before and not Path(".dest.x.tmp").exists()


def test_a_file_that_appears_is_not_clobbered_without_overwrite(here: Path) -> None:
    Path(".dest.x.tmp").write_text("new")
    Path("dest.x").write_text("someone else's")
    with pytest.raises(WorkbenchError, match="already exists"):
        replace_into(".dest.x.tmp", "dest.x", False)
    assert Path("dest.x").read_text() == "someone else's"
    assert not Path(".dest.x.tmp").exists()
    Path(".new.tmp").write_text("new")
    replace_into(".new.tmp", "fresh.x", False)
    assert Path("fresh.x").read_text() == "new" and not Path(".new.tmp").exists()


def test_a_trajectory_replacement_is_refused_if_a_link_took_its_place(here: Path) -> None:
    old = here / "s.h5"
    with TrajectoryWriter(old, n_samples=2, sample_shape=(2,), config_toml="", sampler="em") as w:
        w.append(0, 1.0, np.zeros((2, 2)))
        w.close(np.zeros((2, 2)))
    w = TrajectoryWriter(
        old, n_samples=2, sample_shape=(2,), config_toml="", sampler="em", overwrite=True
    )
    w.append(0, 1.0, np.ones((2, 2)))
    old.unlink()
    make_link("s.h5")  # swapped in while the replacement was being written
    with pytest.raises(WorkbenchError, match="is a symbolic link"):
        w.close(np.ones((2, 2)))
    assert os.readlink(old) == "elsewhere.txt"
    assert Path("elsewhere.txt").read_text() == "the link's target\n"
    assert sorted(p.name for p in here.glob(".*.tmp")) == []
    with TrajectoryFile(here / "traj.h5") as f:  # the fixture's file is untouched
        assert f.complete
