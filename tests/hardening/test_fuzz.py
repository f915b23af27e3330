"""Fuzz: damaged and hostile trajectory files, checkpoints and configs, opened for real.

Every case is opened in a child process (tests/hardening/fuzz_child.py) through the reader,
the CLI and, for HDF5 files, the inspector window; the child runs with an address-space limit
and each case with a time limit, so a crash (the child dies), a hang (no answer in time) or a
huge allocation (MemoryError under the limit) is seen for what it is, and fails the test. A
case passes when every path ends in a correct read or a clear one-line error, or when the
HDF5 C library itself hangs or crashes on it (which no in-process code can stop) and the
child-process check the app runs before opening such files (``validate_in_child``) refuses
it: outcome "child-check".

The cases are made from a fixed seed (``SDE_WORKBENCH_FUZZ_SEED`` changes it): every
structural case plus ``SDE_WORKBENCH_FUZZ_N`` byte mutations per kind (default 24 in CI; the
soak marker runs 2000). The inspector opens every structural HDF5 case and one random case in
``INSPECT_EVERY`` (it costs more than the other paths).
"""

from __future__ import annotations

import collections
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hardening.fuzz_cases import Case, make_cases
from workbench.errors import WorkbenchError
from workbench.io.safety import validate_in_child

CHILD = Path(__file__).with_name("fuzz_child.py")
CASE_TIMEOUT_S = 10.0
START_TIMEOUT_S = 60.0
INSPECT_EVERY = 8
# The inspector's own child-process check of a file costs a process start (~0.3 s): it runs
# for the foreign files, the structural cases these words name, and one random case in 16.
VALIDATE_WORDS = ("external", "virtual", "cycle", "huge", "deep", "version", "filter")
VALIDATE_EVERY = 16


class Worker:
    """One fuzz child; restarted after a crash or a hang."""

    def __init__(self) -> None:
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONFAULTHANDLER="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        ready = self._answer(START_TIMEOUT_S)
        assert ready == {"ready": True}, f"the fuzz child did not start: {self.stderr()}"

    def _answer(self, timeout: float) -> dict | None:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def stderr(self) -> str:
        self.stop()
        assert self.proc.stderr is not None
        return self.proc.stderr.read()[-2000:]

    def run(self, case: Case, inspector: bool, validate: bool) -> dict:
        payload = {
            "id": case.id,
            "kind": case.kind,
            "path": case.path,
            "inspector": inspector,
            "validate": validate,
        }
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(payload) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return {"id": case.id, "outcome": "crash", "detail": self.stderr()}
        started = time.monotonic()
        answer = self._answer(CASE_TIMEOUT_S)
        if answer is not None:
            answer["seconds"] = time.monotonic() - started
            return answer
        if self.proc.poll() is None:
            return {"id": case.id, "outcome": "hang", "detail": f"> {CASE_TIMEOUT_S} s"}
        return {
            "id": case.id,
            "outcome": "crash",
            "detail": f"exit {self.proc.returncode}: {self.stderr()}",
        }

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.stop()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def run_cases(cases: list[Case]) -> list[dict]:
    results: list[dict] = []
    worker = Worker()
    try:
        for i, case in enumerate(cases):
            random = "/random" in case.id
            inspect = case.kind in ("trajectory", "foreign") and (
                not random or i % INSPECT_EVERY == 0
            )
            validate = inspect and (
                case.kind == "foreign"
                or any(w in case.id for w in VALIDATE_WORDS)
                or (random and i % VALIDATE_EVERY == 0)
            )
            result = worker.run(case, inspect, validate)
            result.update(kind=case.kind, how=case.how, inspector=inspect, validated=validate)
            results.append(result)
            if result["outcome"] in ("crash", "hang"):
                worker.stop()
                worker = Worker()
                if case.kind in ("trajectory", "foreign"):
                    result.update(_library_fault(case, result))
    finally:
        worker.close()
    return results


def _library_fault(case: Case, result: dict) -> dict:
    """A crash or hang inside the HDF5 C library cannot be stopped in-process; the app walks
    a file in a child process first (the inspector, validate_in_child), which turns it into a
    message. Such a case counts as refused when that check refuses it: outcome "child-check"."""
    try:
        validate_in_child(case.path, timeout=5.0)
    except WorkbenchError as exc:
        text = str(exc)
        if "took longer than" in text or "crashed" in text or "more than" in text:
            return {"outcome": "child-check", "detail": f"{result['outcome']} in-process; {text}"}
    return {}


def report(results: list[dict]) -> str:
    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in results:
        table[r["kind"]][r["outcome"]] += 1
        table[r["kind"]]["inspector"] += bool(r["inspector"])
        table[r["kind"]]["validated"] += bool(r["validated"])
    lines = [f"{len(results)} fuzz cases"]
    for kind, counts in sorted(table.items()):
        extra = ("inspector", "validated")
        total = sum(v for k, v in counts.items() if k not in extra)
        parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k not in extra)
        lines.append(
            f"  {kind}: {total} cases ({parts}; {counts['inspector']} in the inspector, "
            f"{counts['validated']} of them checked in its child process first)"
        )
    return "\n".join(lines)


def _fuzz(tmp_path: Path, n_random: int) -> None:
    seed = int(os.environ.get("SDE_WORKBENCH_FUZZ_SEED", "20261201"))
    pwned = Path("/tmp/sde_workbench_fuzz_pwned")
    pwned.unlink(missing_ok=True)
    cases = make_cases(tmp_path / "cases", seed, n_random)
    started = time.monotonic()
    results = run_cases(cases)
    summary = report(results)
    summary += f"\n  {time.monotonic() - started:.1f} s, seed {seed}"
    print(summary)
    out = os.environ.get("SDE_WORKBENCH_FUZZ_REPORT")
    if out:
        Path(out).write_text(json.dumps(results, indent=1, default=str))
    bad = [r for r in results if r["outcome"] not in ("read", "error", "child-check")]
    assert not pwned.exists(), "a fuzz case ran code from a pickle"
    assert not bad, (
        summary
        + "\n"
        + "\n".join(f"{r['id']} ({r['how']}): {r['outcome']}: {r['detail']}" for r in bad[:10])
    )
    # the hostile cases that must be refused, whatever else happens
    by_id = {r["id"]: r for r in results}
    for case_id in (
        "checkpoint/pickled_os_system",
        "trajectory/external_link_group",
        "trajectory/external_raw_passwd",
        "trajectory/virtual_outside",
        "foreign/fifo",
        "config/fifo",
        "config/dev_zero",
        "data/fifo.npy",
        "data/dev_zero.h5",
        "data/directory.csv",
        "data/huge_header_npy",
        "data/huge_header_npz",
        "data/huge_h5",
        "data/external_raw_passwd",
        "data/external_link",
        "data/overflow_npy",
        "data/overflow_csv",
        "metrics/fifo",
        "metrics/dev_zero",
        "metrics/directory",
        "metrics/not_utf8",
    ):
        assert by_id[case_id]["outcome"] == "error", by_id[case_id]


def test_fuzz_files_never_crash_hang_or_blow_up(tmp_path: Path) -> None:
    _fuzz(tmp_path, int(os.environ.get("SDE_WORKBENCH_FUZZ_N", "24")))


@pytest.mark.soak
def test_fuzz_many_cases(tmp_path: Path) -> None:
    _fuzz(tmp_path, int(os.environ.get("SDE_WORKBENCH_FUZZ_N_SOAK", "2000")))


@pytest.mark.parametrize(
    "pickle_stream",
    [b"\x80\x020.", b"\x80\x02)R.", b"\x80\x02]\x94(K\x01e\x94R.", b"\x80\x02N\x85R."],
    ids=["pop-empty-stack", "reduce-empty", "reduce-list", "reduce-none"],
)
def test_damaged_pickle_streams_in_a_checkpoint_are_clear_errors(
    tmp_path: Path, pickle_stream: bytes
) -> None:
    """What bit flips in data.pkl look like to torch's weights-only unpickler (found by the
    fuzz as TypeError and IndexError from inside torch): a one-line WorkbenchError."""
    import zipfile

    import torch

    from workbench.io.checkpoints import load_checkpoint

    path = tmp_path / "checkpoint.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with zipfile.ZipFile(path) as z:
        members = [(info, z.read(info.filename)) for info in z.infolist()]
    with zipfile.ZipFile(path, "w") as z:
        for info, data in members:
            z.writestr(info, pickle_stream if info.filename.endswith("data.pkl") else data)
    with pytest.raises(WorkbenchError, match=r"is not a readable checkpoint") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)
