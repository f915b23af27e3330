"""``sde-workbench``: the command line.

Every subcommand is a function ``cmd_<name>(args) -> int`` listed in :data:`COMMANDS` with the
function that declares its arguments. Exit status: 0 done, 1 failed (one line on stderr, no
traceback: see :func:`main`), 2 bad usage, 130 after Ctrl-C, 143 after SIGTERM (which takes
the path of Ctrl-C: a command stops after its step or unwinds, closing its files). Anything
other than a :class:`~workbench.errors.WorkbenchError` that escapes a command is a bug and keeps
its traceback.

The heavy modules (torch through :mod:`workbench.config`, Qt through :mod:`workbench.gui`) are
imported inside the commands, so ``--help`` answers at once and the command line never loads
Qt's widgets unless the GUI is asked for (``--version`` imports torch and QtCore only to read
their versions).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from workbench.cli_study import STUDY_HELP, args_study, cmd_study
from workbench.cli_support import (
    DEVICE_CHOICES,
    FORMAT_CHOICES,
    PRESET_CHOICES,
    QUIET_HELP,
    SAMPLER_CHOICES,
    ChoiceParser,
    fraction_progress,
    info,
    json_option,
    print_json,
    progress_bar,
    wants_json,
)
from workbench.cli_version import PROG, VersionAction
from workbench.errors import ConfigError, WorkbenchError, one_line

if TYPE_CHECKING:
    from workbench.config import ExperimentConfig

__all__ = ["COMMANDS", "PROG", "build_parser", "main", "entry"]


EPILOG = f"""\
examples:
  {PROG}                                      open the GUI with the default experiment
  {PROG} init exp.toml --preset moons         write an experiment to edit
  {PROG} init --list                          list the presets
  {PROG} check exp.toml                       validate an experiment
  {PROG} train exp.toml --out runs/moons      train a score model
  {PROG} sample runs/moons --out samples.h5   sample with the reverse-time SDE
  torchrun --nproc-per-node 2 -m workbench train exp.toml --out runs/moons
                                              the same training on 2 processes (DDP)
  {PROG} inspect samples.h5                   summarise a trajectory file

exit status: 0 done, 1 failed (the reason on one line on stderr), 2 bad usage,
130 stopped by Ctrl-C, 143 stopped by SIGTERM (handled as Ctrl-C: files are closed).
Run '{PROG} COMMAND --help' for the options of a command.
"""


# ---------------------------------------------------------------------------------------------
# argument types: a bad value is a usage error (exit 2) with argparse's message
# ---------------------------------------------------------------------------------------------
def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


_positive = _int_at_least(1)
_non_negative = _int_at_least(0)


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _times(text: str) -> tuple[float, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("expected times such as 0,0.1,0.5,1")
    values = tuple(_float(p) for p in parts)
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"times must be >= 0, got {text!r}")
    return values


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _load_experiment(path: str | Path) -> ExperimentConfig:
    """The experiment in a .toml file or in a run folder's config.toml."""
    from workbench.config import load_config

    path = Path(path)
    if path.is_dir() and (path / "config.toml").is_file():
        path = path / "config.toml"
    try:
        return load_config(path)
    except ConfigError as exc:
        if exc.key:  # name the file; syntax errors already do
            raise WorkbenchError(f"{path}: {exc}") from None
        raise


# ---------------------------------------------------------------------------------------------
# output: --quiet and --json
# ---------------------------------------------------------------------------------------------
def _failed(args: argparse.Namespace, reason: str, status: int = 1, *, error: bool = True) -> int:
    """Report a failure: one line on stderr and, with --json, the JSON object on stdout."""
    print(f"{PROG}: error: {reason}" if error else f"{PROG}: {reason}", file=sys.stderr)
    if wants_json(args):
        print_json({"ok": False, "error": reason})
    return status


# ---------------------------------------------------------------------------------------------
# signals: SIGTERM takes the path of Ctrl-C
# ---------------------------------------------------------------------------------------------
#: exit status after Ctrl-C (SIGINT) and after SIGTERM: 128 + the signal's number, as a shell
#: reports a process the signal ended, so a script or scheduler can tell the two apart
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
_signalled: dict[str, int | None] = {"signum": None}


def _on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (``kill``, a batch scheduler, systemd) does what Ctrl-C does at this moment: the
    command's own SIGINT handler (train and sample stop after the step and keep their files)
    or, by default, KeyboardInterrupt, which unwinds through every writer's cleanup."""
    _signalled["signum"] = signum
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not _on_sigterm:
        handler(signal.SIGINT, frame)  # type: ignore[arg-type]
        return
    raise KeyboardInterrupt


@contextmanager
def _sigterm_as_interrupt(command: str | None) -> Iterator[None]:
    """Route SIGTERM through :func:`_on_sigterm` while a command runs.

    Not for the GUI (Qt owns its event loop; SIGTERM ends it as before), not for a torchrun
    worker (its agent sends SIGTERM to every rank, which may sit in a collective that a
    Python handler could not interrupt), and only in the main thread (where signal handlers
    live; main() may also be called from a test's thread).
    """
    _signalled["signum"] = None
    torchrun = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if (
        command in (None, "gui")
        or torchrun
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted_status() -> int:
    return EXIT_TERMINATED if _signalled["signum"] == signal.SIGTERM else EXIT_INTERRUPTED


@contextmanager
def _stop_after_step(what: str, bar: object | None = None) -> Iterator[Callable[[], bool]]:
    """A cancel flag set by the first Ctrl-C (or SIGTERM, through :func:`_on_sigterm`): the
    command stops after its current step and closes its files; a second one aborts at once."""
    stop = {"asked": False}

    def on_sigint(signum: int, frame: object) -> None:
        if stop["asked"]:  # a second signal means now
            raise KeyboardInterrupt
        stop["asked"] = True
        if bar is not None:
            bar.close()  # type: ignore[attr-defined]
        print(f"{PROG} {what}: stopping after this step (Ctrl-C again to abort)", file=sys.stderr)

    if threading.current_thread() is not threading.main_thread():
        yield lambda: stop["asked"]
        return
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield lambda: stop["asked"]
    finally:
        signal.signal(signal.SIGINT, previous)


# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------
def _args_gui(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "path",
        nargs="?",
        metavar="PATH",
        help="an experiment .toml, a run folder, or a trajectory .h5 to inspect",
    )
    p.add_argument(
        "--follow",
        action="store_true",
        help="follow the run folder PATH while another process trains into it",
    )


def cmd_gui(args: argparse.Namespace) -> int:
    path = getattr(args, "path", None)
    follow = bool(getattr(args, "follow", False))
    if follow and path is None:
        raise WorkbenchError("--follow needs the run folder to follow")
    if follow and path is not None and Path(path).exists() and not Path(path).is_dir():
        raise WorkbenchError(f"{path}: not a folder (--follow takes a run folder)")
    # with --follow the folder may not exist yet: the job may still be starting
    if path is not None and not follow and not Path(path).exists():
        raise WorkbenchError(f"{path}: no such file or folder")
    try:
        from workbench.gui import run_gui
    except ModuleNotFoundError as exc:
        if exc.name == "workbench.gui":
            print(
                f"{PROG}: the GUI is not available yet (coming in a later release); "
                f"see '{PROG} --help' for the command line",
                file=sys.stderr,
            )
        else:
            print(
                f"{PROG}: the GUI cannot start: module {exc.name!r} is missing "
                "(install the GUI dependencies: PySide6, pyqtgraph)",
                file=sys.stderr,
            )
        return 1
    except ImportError as exc:
        print(f"{PROG}: the GUI cannot start: {one_line(exc)}", file=sys.stderr)
        return 1
    return int(run_gui(path, follow=follow) or 0)


def _args_init(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", nargs="?", metavar="OUT.toml", help="the experiment file to write")
    p.add_argument(
        "--preset",
        default="default",
        choices=PRESET_CHOICES,
        metavar="NAME",
        help="the experiment to start from (default: %(default)s; see --list for what each is)",
    )
    p.add_argument("--force", action="store_true", help="overwrite OUT.toml if it exists")
    p.add_argument("--list", action="store_true", help="list the presets and exit")


def cmd_init(args: argparse.Namespace) -> int:
    from workbench.config import save_config
    from workbench.presets import PRESETS, preset_config

    if args.list:
        width = max(map(len, PRESETS))
        for name, preset in PRESETS.items():
            print(f"{name:<{width}}  {preset.description}")
        return 0
    if args.out is None:
        print(f"{PROG} init: give the file to write, e.g. '{PROG} init exp.toml'", file=sys.stderr)
        return 2
    try:
        cfg = preset_config(args.preset)
    except ConfigError as exc:
        if exc.key != "preset":
            raise  # a preset that does not validate is a bug, not a usage error
        print(f"{PROG} init: {exc.message}", file=sys.stderr)
        return 2
    from workbench.io.paths import check_destination

    out = check_destination(args.out, args.force)
    save_config(cfg, out, overwrite=args.force)
    preset = PRESETS[args.preset]
    info(args, f"wrote {out} (preset {args.preset}: {preset.description})")
    if preset.needs_file:
        info(args, f"note: this experiment reads {preset.needs_file}; edit data.path in {out}")
    return 0


def _args_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG", help="an experiment .toml or a run folder")
    json_option(p)


def cmd_check(args: argparse.Namespace) -> int:
    cfg = _load_experiment(args.config)
    if wants_json(args):
        from workbench.config import config_to_dict

        summary = {"config": args.config, "summary": cfg.describe()}
        print_json({"ok": True, **summary, "experiment": config_to_dict(cfg)})
    info(args, f"ok: {cfg.describe()}")
    return 0


def _args_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG", help="the experiment .toml")
    p.add_argument("--out", required=True, metavar="RUN", help="the run folder to write")
    p.add_argument("--steps", type=_positive, metavar="N", help="override train.steps")
    p.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        metavar="D",
        help="override train.device: %(choices)s (N the GPU index)",
    )
    p.add_argument("--seed", type=_non_negative, metavar="S", help="override train.seed")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in RUN from its checkpoint (CONFIG must match its config.toml)",
    )
    json_option(p)


def cmd_train(args: argparse.Namespace) -> int:
    import signal
    import time

    from workbench.jobs.train import train_in_folder

    cfg = _load_experiment(args.config)
    if args.seed is not None:
        cfg = cfg.with_overrides({"train.seed": args.seed})
    from workbench.jobs.distributed import launched_by_torchrun

    if launched_by_torchrun():  # one rank of `torchrun ... -m workbench train`
        from workbench.jobs.distributed import train_from_cli

        return train_from_cli(
            cfg, args.out, resume=args.resume, steps=args.steps, device=args.device, prog=PROG
        )
    bar = progress_bar(args, "train")
    started, last = time.perf_counter(), {"loss": math.nan}
    stop = {"asked": False}

    def on_sigint(signum: int, frame: object) -> None:
        if stop["asked"]:  # a second Ctrl-C means now
            raise KeyboardInterrupt
        stop["asked"] = True
        bar.close()
        print(f"{PROG} train: stopping after this step (Ctrl-C again to abort)", file=sys.stderr)

    def on_progress(p: object) -> None:
        last["loss"] = p.loss  # type: ignore[attr-defined]
        bar.update(p.step, p.total, p.steps_per_s, loss=p.loss, lr=p.lr)  # type: ignore[attr-defined]

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = train_in_folder(
            cfg,
            args.out,
            resume=args.resume,
            steps=args.steps,
            device=args.device,
            on_progress=on_progress,
            cancel=lambda: stop["asked"],
        )
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
    if result.status == "diverged":
        raise WorkbenchError(result.message)
    if wants_json(args):
        from workbench.io.runs import RunFolder

        print_json(
            {
                "ok": result.status == "done",
                "status": result.status,
                "steps": result.step,
                "loss": last["loss"],
                "seconds": time.perf_counter() - started,
                "run": args.out,
                "checkpoint": RunFolder(Path(args.out)).checkpoint_path,
                "message": result.message,
            }
        )
    info(args, f"{result.message}; run folder: {args.out}")
    return 130 if result.status == "cancelled" else 0


def _args_sample(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="RUN|CONFIG", help="a trained run folder or an experiment")
    p.add_argument("--out", required=True, metavar="FILE.h5", help="the trajectory file to write")
    p.add_argument("--n", type=_positive, metavar="N", help="override sample.n")
    p.add_argument(
        "--sampler",
        choices=SAMPLER_CHOICES,
        metavar="S",
        help="override sample.sampler: %(choices)s",
    )
    p.add_argument("--steps", type=_positive, metavar="K", help="override sample.steps")
    p.add_argument(
        "--record-every",
        type=_non_negative,
        metavar="R",
        help="override sample.record_every (0: store only the final samples)",
    )
    p.add_argument("--seed", type=_non_negative, metavar="S", help="override sample.seed")
    p.add_argument(
        "--class",
        dest="class_label",
        type=int,
        metavar="K",
        help="override sample.class_label: sample class K (-1: no class)",
    )
    p.add_argument(
        "--guidance",
        type=_float,
        metavar="W",
        help="override sample.guidance: (1+W) score(x|K) - W score(x)",
    )
    p.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        metavar="D",
        help="where to sample: %(choices)s (N the GPU index)",
    )
    p.add_argument("--force", action="store_true", help="overwrite FILE.h5 if it exists")
    p.add_argument(
        "--shards",
        action="store_true",
        help="under torchrun: one file per rank and FILE.h5 joining them as virtual datasets "
        "(default: rank 0 gathers every particle into FILE.h5)",
    )
    json_option(p)


def cmd_sample(args: argparse.Namespace) -> int:
    from workbench.io.paths import check_destination
    from workbench.jobs.sample import load_model, sample_to_file

    # before the model is loaded: a destination that will be refused costs nothing
    check_destination(args.out, args.force)
    config, model, dataset = load_model(args.source)
    overrides = {
        "sample.n": args.n,
        "sample.sampler": args.sampler,
        "sample.steps": args.steps,
        "sample.record_every": args.record_every,
        "sample.seed": args.seed,
        "sample.class_label": args.class_label,
        "sample.guidance": args.guidance,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.device is not None:
        overrides["train.device"] = args.device
    if overrides:
        config = config.with_overrides(overrides)
    from workbench.jobs.distributed import launched_by_torchrun

    if launched_by_torchrun():  # one rank of `torchrun ... -m workbench sample`
        from workbench.jobs.distributed import sample_from_cli

        return sample_from_cli(
            args.source, config, model, dataset, args.out, shards=args.shards, overwrite=args.force
        )
    bar = progress_bar(args, "sample")
    start: dict[str, float] = {}  # the first call's time

    def progress(done: int, total: int) -> None:
        import time

        now = time.perf_counter()
        t0 = start.setdefault("t", now)
        rate = done / (now - t0) if now > t0 else 0.0
        bar.update(done, total, rate)

    replacing = Path(args.out).is_file()  # with --force: the old file stays until the new ends
    try:
        with _stop_after_step("sample", bar) as asked:
            result = sample_to_file(
                config,
                model,
                args.out,
                overwrite=args.force,
                progress=progress,
                cancel=asked,
                dataset=dataset,
            )
    finally:
        bar.close()
    if wants_json(args):
        print_json(_sample_result(config, result))
    if result.status == "cancelled":
        kept = (
            f"{args.out} is unchanged (the unfinished replacement was dropped)"
            if replacing
            else f"{result.path} keeps {result.rows} rows, marked incomplete"
        )
        print(f"{PROG} sample: stopped; {kept}", file=sys.stderr)
        return 130
    info(
        args,
        f"wrote {result.path}: {config.sample.n} samples, {result.rows} rows, "
        f"{result.nfe} score evaluations, {result.seconds:.2f} s",
    )
    return 0


def _sample_result(config: ExperimentConfig, result: Any) -> dict[str, Any]:
    """``sample --json``: the :class:`~workbench.jobs.sample.SamplingResult` and the settings
    that made it."""
    s = config.sample
    return {
        "ok": result.status == "done",
        "status": result.status,
        "path": result.path,
        "n": s.n,
        "rows": result.rows,
        "nfe": result.nfe,
        "seconds": result.seconds,
        "sampler": s.sampler,
        "steps": s.steps,
        "class_label": s.class_label,
        "guidance": s.guidance,
    }


def _args_nll(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="RUN|CONFIG", help="a trained run folder or an experiment")
    p.add_argument("--n", type=_positive, metavar="N", help="number of data points to evaluate")
    json_option(p)


def cmd_nll(args: argparse.Namespace) -> int:
    from workbench.jobs.nll import data_nll

    bar = progress_bar(args, "nll")
    n = args.n or 2000
    try:
        report = data_nll(args.source, n, progress=fraction_progress(bar))
    finally:
        bar.close()
    if wants_json(args):
        import dataclasses

        print_json({"ok": True, **dataclasses.asdict(report)})
        return 0
    print(
        f"NLL of {report.n} data points (data units): {report.nats_per_dim:.4f} "
        f"± {report.stderr_nats_per_dim:.4f} nats/dim, {report.bits_per_dim:.4f} bits/dim "
        f"({report.nfe} score evaluations per sample)"
    )
    if report.exact_nats_per_dim is not None:
        print(
            "exact NLL of the same points under the data density: "
            f"{report.exact_nats_per_dim:.4f} nats/dim"
        )
    return 0


def _args_fpk(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG", help="the experiment .toml")
    p.add_argument("--out", required=True, metavar="FILE.h5", help="the file to write")
    p.add_argument("--grid", type=_positive, metavar="N", help="grid points per dimension")
    p.add_argument(
        "--times", type=_times, metavar="T1,T2,...", help="the times to store, comma separated"
    )
    json_option(p)


def cmd_fpk(args: argparse.Namespace) -> int:
    import time

    from workbench.jobs.fpk import solve_config_to_file

    config = _load_experiment(args.config)
    bar = progress_bar(args, "fpk")
    start = time.perf_counter()
    progress = fraction_progress(bar)

    try:
        result = solve_config_to_file(
            config,
            args.out,
            grid=args.grid,
            times=args.times,
            progress=progress,
        )
    finally:
        bar.close()
    grid = "x".join([str(result.grid)] * result.dim)
    seconds = time.perf_counter() - start
    if wants_json(args):
        print_json(
            {
                "ok": True,
                "path": result.path,
                "dim": result.dim,
                "grid": [result.grid] * result.dim,
                "times": result.times,
                "mass_error": result.mass_error,
                "clipped": result.clipped,
                "seconds": seconds,
                "warnings": result.warnings,
            }
        )
    info(
        args,
        f"wrote {result.path}: p_t on a {grid} grid at {len(result.times)} times, "
        f"mass error {result.mass_error:.2g}, {seconds:.2f} s",
    )
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _args_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE.h5", help="a trajectory file")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def cmd_inspect(args: argparse.Namespace) -> int:
    import contextlib
    import json

    from workbench.io.fpk_file import fpk_summary, has_fpk
    from workbench.io.printable import printable_tree
    from workbench.io.safety import validate_in_child
    from workbench.io.trajectories import read_while_written, writes_paused

    regular = Path(args.file).is_file()
    # a file our sampler is writing is read between two of its rows (writes_paused); a read
    # torn by another writer is read again, never called corrupt (read_while_written)
    with writes_paused(args.file) if regular else contextlib.nullcontext():
        # a file from elsewhere is walked by the HDF5 library in a child process first: a
        # crafted one that makes the library hang or crash is then a one-line error
        if regular:
            validate_in_child(args.file)
        # only a regular file is probed: the reader below refuses FIFOs and devices before
        # h5py could block on them
        if regular and has_fpk(args.file):  # written by sde-workbench fpk
            summary = fpk_summary(args.file)
        else:
            summary = read_while_written(args.file, lambda traj: traj.summary())
    # the file's strings are the writer's: escape control codes, shorten huge values
    summary = printable_tree(summary)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for sub, val in value.items():
                print(f"  {sub}: {val}")
        else:
            print(f"{key:<{width}}  {value}")
    return 0


def _args_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE.h5", help="a trajectory file")
    p.add_argument("--out", required=True, metavar="PATH", help="the file to write")
    p.add_argument(
        "--format",
        choices=FORMAT_CHOICES,
        metavar="FMT",
        help="output format: %(choices)s (default: from the extension of --out)",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--step", type=int, metavar="K", help="export the row of solver step K")
    which.add_argument("--time", type=_float, metavar="T", help="export the row nearest time T")
    p.add_argument("--n", type=_positive, metavar="N", help="export only the first N samples")
    p.add_argument(
        "--raw", action="store_true", help="keep trajectory rows in model units (no mapping back)"
    )
    p.add_argument("--force", action="store_true", help="overwrite PATH if it exists")


def cmd_export(args: argparse.Namespace) -> int:
    from workbench.io.export import run_export
    from workbench.io.safety import validate_in_child

    # as for inspect: a crafted file that would hang the HDF5 library is refused, not stuck on
    if Path(args.file).is_file():
        validate_in_child(args.file)
    result = run_export(
        args.file,
        args.out,
        fmt=args.format,
        step=args.step,
        time=args.time,
        n=args.n,
        denormalise=not args.raw,
        force=args.force,
    )
    info(args, result.describe())
    return 0


def _megabytes(text: str) -> float:
    value = _float(text)
    if not 0 < value <= 100_000:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100000 (MB), got {text}")
    return value


def _args_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        metavar="D",
        help="%(choices)s (N the GPU index; default: auto)",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (a rough figure)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="on the CPU, also time the torch.compile path (compiling takes a minute first)",
    )
    p.add_argument(
        "--gui",
        action="store_true",
        help="instead: the GUI's event loop (worst gap of a 20 ms timer) during training, "
        "sampling, opening a big trajectory file and its statistics",
    )
    p.add_argument(
        "--gui-file-mb",
        type=_megabytes,
        default=None,
        metavar="MB",
        help="size of the trajectory file --gui writes and opens (default 400)",
    )


def cmd_bench(args: argparse.Namespace) -> int:
    import json

    from workbench.bench import format_table, run_bench

    if args.gui or args.gui_file_mb is not None:
        return _bench_gui(args)
    report = run_bench(args.device or "auto", quick=args.quick, compile=args.compile)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


def _bench_gui(args: argparse.Namespace) -> int:
    import json

    from workbench.bench import GUI_FILE_MB, bench_gui, format_gui_table

    size = GUI_FILE_MB if args.gui_file_mb is None else args.gui_file_mb
    try:
        import PySide6  # noqa: F401
    except ImportError:
        raise WorkbenchError("bench --gui needs the GUI (pip install sde-workbench[gui])") from None
    report = bench_gui(file_mb=size)
    print(json.dumps(report, indent=2) if args.json else format_gui_table(report))
    return 0


class Command(NamedTuple):
    run: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None]
    help: str


COMMANDS: dict[str, Command] = {
    "gui": Command(cmd_gui, _args_gui, "open the desktop app (also: no command at all)"),
    "init": Command(cmd_init, _args_init, "write an experiment .toml from a preset"),
    "check": Command(cmd_check, _args_check, "validate an experiment .toml"),
    "train": Command(cmd_train, _args_train, "train a score model into a run folder"),
    "sample": Command(cmd_sample, _args_sample, "sample with the reverse SDE or the ODE into .h5"),
    "nll": Command(cmd_nll, _args_nll, "negative log-likelihood (nats/dim, bits/dim) of data"),
    "fpk": Command(cmd_fpk, _args_fpk, "solve the Fokker-Planck equation on a grid into .h5"),
    "inspect": Command(cmd_inspect, _args_inspect, "summarise a trajectory .h5 file"),
    "export": Command(cmd_export, _args_export, "export samples from a trajectory .h5 file"),
    "bench": Command(cmd_bench, _args_bench, "time the training and sampling steps on a device"),
    "study": Command(cmd_study, args_study, STUDY_HELP),
}


def build_parser() -> argparse.ArgumentParser:
    parser = ChoiceParser(
        prog=PROG,
        description="SDE Workbench: score-based generative modelling with stochastic "
        "differential equations. With no command it opens the GUI.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action=VersionAction,
        help="show the version and those of torch, Qt, numpy, h5py and CUDA, and exit",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    # also after the command (`train exp.toml -q`); SUPPRESS keeps a -q given before it
    common = ChoiceParser(add_help=False)
    common.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, command in COMMANDS.items():
        p = sub.add_parser(
            name, help=command.help, description=command.help + ".", parents=[common]
        )
        command.arguments(p)
    return parser


# what to make smaller when memory runs out where no command named the setting itself
_MEMORY_KEYS = {
    "train": "train.batch_size, data.n or model.hidden",
    "sample": "sample.n or sample.chunk_size",
    "nll": "--n or model.hidden",
    "fpk": "--grid",
}


def _out_of_memory(command: str | None, exc: BaseException) -> str | None:
    """The one line for running out of memory (GPU or RAM) anywhere in a command, naming what
    to make smaller; None for any other error (a bug: its traceback is kept)."""
    from workbench.io.safety import out_of_memory_where

    where = out_of_memory_where(exc)
    if where is None:
        return None
    keys = _MEMORY_KEYS.get(command or "", "the sizes in the config")
    return f"{where} ran out of memory; try a smaller {keys}"


def main(argv: list[str] | None = None) -> int:
    """Run ``sde-workbench`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors: keep argparse's status
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    run = COMMANDS[args.command].run if args.command else cmd_gui
    try:
        with _sigterm_as_interrupt(args.command):
            status = run(args)
        if status == EXIT_INTERRUPTED:  # a command that stopped cleanly on a signal
            return _interrupted_status()
        return status
    except WorkbenchError as exc:
        return _failed(args, one_line(exc))
    except KeyboardInterrupt:
        terminated = _interrupted_status() == EXIT_TERMINATED
        what = "terminated (SIGTERM)" if terminated else "interrupted"
        return _failed(args, what, _interrupted_status(), error=False)
    except BrokenPipeError:
        # the reader went away (``... | head``): not an error of ours; keep Python from
        # complaining again when it flushes stdout at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except (MemoryError, RuntimeError) as exc:
        # last: BrokenPipeError above is an OSError, and a handler's re-raise skips the rest
        message = _out_of_memory(args.command, exc)
        if message is None:
            raise
        return _failed(args, message)


def entry() -> None:
    """The ``sde-workbench`` console script."""
    sys.exit(main())
