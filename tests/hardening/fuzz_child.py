"""The fuzz worker: opens damaged files through the reader, the CLI and the inspector.

Run by tests/hardening/test_fuzz.py as a child process (``python fuzz_child.py``). It imports
everything first, then limits its own address space (RLIMIT_AS) to what it uses plus
``FUZZ_CHILD_MEMORY`` bytes, so a reader that tries a huge allocation gets a MemoryError (and
the case is reported as such) instead of swapping the machine. It reads one JSON case per line
on stdin and answers one JSON line per case on stdout:

    {"id": ..., "outcome": "read" | "error" | "bug" | "memory", "detail": "..."}

"read": every path read the file; "error": a path refused it with a one-line WorkbenchError
(or the CLI with exit status 1 and one line); "bug": any other exception (a test failure);
"memory": a MemoryError (a test failure). A crash or a hang is seen by the parent as a dead or
silent child.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import sys
import tempfile
import traceback
from pathlib import Path

os.environ["QT_QPA_PLATFORM"] = "offscreen"
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import torch
from PySide6 import QtWidgets

from workbench.cli import main as cli_main
from workbench.config import load_config
from workbench.core.train import Trainer
from workbench.errors import WorkbenchError
from workbench.gui.inspector import InspectorWindow
from workbench.io.checkpoints import load_checkpoint
from workbench.io.trajectories import TrajectoryFile
from workbench.jobs.sample import load_model

torch.set_num_threads(1)


class RefusedError(Exception):
    """A path ended in a clear, one-line user error."""


def _vm_size() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _clear(exc: WorkbenchError) -> None:
    text = str(exc)
    if not text or "\n" in text or "Traceback" in text:
        raise AssertionError(f"a user error must be one non-empty line, got {text!r}")
    raise RefusedError(text) from None


def _cli(argv: list[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli_main(argv)
    text = err.getvalue()
    lines = text.strip().splitlines()
    if status == 0:
        return
    # progress bars may come first; the reason is the last line, and there is no traceback
    if (
        status == 1
        and lines
        and lines[-1].startswith("sde-workbench: error: ")
        and "Traceback" not in text
    ):
        raise RefusedError(lines[-1])
    raise AssertionError(f"CLI {argv[0]} exited {status} with stderr {err.getvalue()!r}")


# --- the paths each kind of file is opened through -------------------------------------------
def read_trajectory(path: str) -> None:
    """The reader as the CLI and the GUI use it: summary, rows, paths, samples, config."""
    try:
        with TrajectoryFile(path, foreign_ok=True) as f:
            for node in f.nodes():
                json.dumps(node)
            if not f.is_trajectory_file:
                return
            json.dumps(f.summary())
            if f.n_saved:
                f.row(0)
                f.row(-1, denormalise=True)
                f.particle_path(0)
                f.particles([0, f.n_samples - 1])
                f.index_of_time(float(f.times[0]))
            f.samples()
            if f.has_logp:
                f.logp()
            f.read_config()
    except WorkbenchError as exc:
        _clear(exc)


def cli_trajectory(path: str, tmp: str) -> None:
    # ``inspect`` walks the file in a child process first (~0.3 s): run where the parent asks
    if _case.get("validate"):
        _cli(["inspect", path, "--json"])
    _cli(["export", path, "--out", os.path.join(tmp, "out.npy"), "--force"])


_app: QtWidgets.QApplication | None = None
_inspector: InspectorWindow | None = None


def inspect_trajectory(path: str, validate: bool) -> None:
    """The inspector window: open (it never raises), then draw every view of the file.

    ``validate``: whether the window first walks the file in its own child process (as the
    app does; it costs a process start, so the parent asks for it on a subset).
    """
    global _app, _inspector
    if _app is None:
        _app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
        _inspector = InspectorWindow()
        _inspector.allow_external = lambda path, refs: False
    assert _inspector is not None
    _inspector.validate_in_child = validate
    ok = _inspector.open(path)
    try:
        if not ok:
            message = _inspector.last_error or ""
            if not message or "\n" in message:
                raise AssertionError(f"the inspector's banner must be one line: {message!r}")
            if "cannot be shown (" in message:  # the inspector's catch-all for bugs
                raise AssertionError(f"the inspector hit a bug: {message}")
            raise RefusedError(message)
        view = _inspector.current()
        assert view is not None
        for title in view.view_titles():
            view.show_view(title)
            _app.processEvents()
        if view.error_banner.isVisibleTo(view) and view.error_banner.text():
            raise RefusedError(view.error_banner.text())
    finally:
        _inspector.shutdown()
        _app.processEvents()


def read_checkpoint(path: str) -> None:
    """load_checkpoint, then the trainer and the sampler's model take the state."""
    run = os.path.dirname(path)
    try:
        state = load_checkpoint(path)
        config = load_config(os.path.join(run, "config.toml"))
        Trainer(config).load_state_dict(state)
        load_model(run)
    except WorkbenchError as exc:
        _clear(exc)


def cli_checkpoint(path: str, tmp: str) -> None:
    run = os.path.dirname(path)
    out = os.path.join(tmp, "s.h5")
    _cli(["sample", run, "--out", out, "--n", "8", "--steps", "2", "--record-every", "1"])
    _cli(["train", os.path.join(run, "config.toml"), "--out", run, "--resume", "--steps", "1"])


def read_config(path: str) -> None:
    try:
        load_config(path)
    except WorkbenchError as exc:
        _clear(exc)


def cli_config(path: str, tmp: str) -> None:
    _cli(["check", path])


def read_data(path: str) -> None:
    from workbench.core.data import build_dataset

    try:
        data = build_dataset("file", {"path": path})
        data.normalizer()
        data.sample(8, torch.Generator().manual_seed(0))
    except WorkbenchError as exc:
        _clear(exc)


def read_metrics_file(path: str) -> None:
    from workbench.io.runs import MetricsWriter, read_metrics

    try:
        read_metrics(path)
        MetricsWriter(path, keep_until_step=10**9).close()
    except WorkbenchError as exc:
        _clear(exc)


def cli_metrics(path: str, tmp: str) -> None:
    run = os.path.dirname(path)
    _cli(["train", os.path.join(run, "config.toml"), "--out", run, "--resume", "--steps", "3"])


PATHS = {
    "trajectory": [("reader", read_trajectory), ("cli", cli_trajectory)],
    "foreign": [("reader", read_trajectory), ("cli", cli_trajectory)],
    "checkpoint": [("reader", read_checkpoint), ("cli", cli_checkpoint)],
    "config": [("reader", read_config), ("cli", cli_config)],
    "data": [("reader", read_data)],
    "metrics": [("reader", read_metrics_file), ("cli", cli_metrics)],
}


_case: dict = {}


def run_case(case: dict) -> dict:
    _case.clear()
    _case.update(case)
    outcomes: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = list(PATHS[case["kind"]])
        if case.get("inspector"):
            validate = bool(case.get("validate"))
            paths.append(("inspector", lambda p, _t: inspect_trajectory(p, validate)))
        for name, fn in paths:
            try:
                if fn.__code__.co_argcount == 2:
                    fn(case["path"], tmp)
                else:
                    fn(case["path"])
                outcomes[name] = "read"
            except RefusedError as exc:
                outcomes[name] = "error: " + str(exc)[:300]
            except MemoryError:
                return {"id": case["id"], "outcome": "memory", "detail": name}
            except BaseException as exc:
                detail = f"{name}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"
                return {"id": case["id"], "outcome": "bug", "detail": detail[-3000:]}
    worst = "error" if any(v.startswith("error") for v in outcomes.values()) else "read"
    return {"id": case["id"], "outcome": worst, "detail": outcomes}


def main() -> None:
    limit = _vm_size() + int(os.environ.get("FUZZ_CHILD_MEMORY", str(3 << 30)))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    np.seterr(all="ignore")
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        case = json.loads(line)
        print(json.dumps(run_case(case)), flush=True)


if __name__ == "__main__":
    main()
