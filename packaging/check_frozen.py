"""Checks a frozen bundle: ``python packaging/check_frozen.py [dist/sde-workbench]``.

Runs the bundle's binary (no Python environment needed) twice: ``--version`` (the command line
loads), then ``--self-test 20`` offscreen, which opens the main window with the default
experiment and trains 20 steps through it (see ``frozen_main.py``). Prints the timings, the
losses and the bundle's size; exits 0 only if both worked.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bundle_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="?", default=str(ROOT / "dist" / "sde-workbench"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)
    bundle = Path(args.bundle)
    exe = bundle / "sde-workbench"
    if not exe.is_file():
        print(f"no frozen app at {exe}; build it with bash packaging/build.sh", file=sys.stderr)
        return 1
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    # the bundle must not lean on the checkout or a virtual environment
    for key in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(key, None)

    started = time.perf_counter()
    version = subprocess.run(
        [str(exe), "--version"], env=env, capture_output=True, text=True, timeout=args.timeout
    )
    version_s = time.perf_counter() - started
    print(f"--version: {version.stdout.strip() or version.stderr.strip()} ({version_s:.1f} s)")
    if version.returncode != 0:
        print(version.stderr[-3000:], file=sys.stderr)
        return 1

    started = time.perf_counter()
    test = subprocess.run(
        [str(exe), "--self-test", str(args.steps)],
        env=env,
        capture_output=True,
        text=True,
        timeout=args.timeout,
        cwd=bundle.parent,
    )
    wall = time.perf_counter() - started
    report = None
    for line in reversed(test.stdout.splitlines()):
        if line.startswith("{"):
            report = json.loads(line)
            break
    size = bundle_size(bundle)
    print(f"--self-test {args.steps}: exit {test.returncode} in {wall:.1f} s: {report}")
    print(f"bundle: {bundle} {size / 2**20:.0f} MiB in {sum(1 for _ in bundle.rglob('*'))} files")
    if test.returncode != 0 or not report or not report.get("ok"):
        print(test.stderr[-3000:], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
