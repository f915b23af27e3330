"""``python -m workbench ARGV`` in a subprocess, as a user's shell runs it: the CLI tests'
one way of starting the real command (exit status, stdout and stderr as text)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*argv: str, cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the command with this checkout first on PYTHONPATH and one thread (tiny tensors
    gain nothing from more, and lose much on a shared machine); ``timeout`` seconds at most."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
        "TERM": "dumb",
    }
    return subprocess.run(
        [sys.executable, "-m", "workbench", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )
