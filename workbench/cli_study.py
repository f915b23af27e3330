"""``sde-workbench study``: the sampler and loss studies of :mod:`workbench.jobs.study`.

Kept beside :mod:`workbench.cli` (which lists it in its command table) so that module stays
short; light at import (argparse only), as ``sde-workbench --help`` imports it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from workbench.cli_support import (
    DEVICE_CHOICES,
    fraction_progress,
    info,
    json_option,
    print_json,
    progress_bar,
    wants_json,
)

__all__ = ["args_study", "cmd_study"]

STUDY_HELP = "compare samplers across NFE budgets, or losses, against the exact truth into .h5"


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _budgets(text: str) -> list[int]:
    """``5,10,20``: positive whole numbers (a usage error otherwise, naming the bad one)."""
    out = []
    for part in _names(text):
        try:
            value = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{part!r} is not a whole number of score evaluations"
            ) from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{value} is not a positive number of evaluations")
        out.append(value)
    if not out:
        raise argparse.ArgumentTypeError("give at least one budget, e.g. 5,10,20")
    return out


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def args_study(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "source",
        metavar="RUN|CONFIG",
        help="a trained run folder, or an experiment (model.kind = 'analytic' for samplers)",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--samplers",
        type=_names,
        metavar="S,S",
        help="samplers to compare (the registry's names; NAME:INTEGRATOR such as ode:rk45 "
        "picks the ODE integrator: an adaptive one runs at its tolerance)",
    )
    what.add_argument(
        "--losses",
        type=_names,
        metavar="L,L",
        help="training losses to compare (the registry's names, e.g. dsm,ssm,ssm_vr,esm)",
    )
    p.add_argument(
        "--nfe",
        type=_budgets,
        metavar="N,N",
        help="score-evaluation budgets of the sampler study (default 5,10,20,50,100)",
    )
    p.add_argument("--n", type=_positive, metavar="N", help="samples per run (sample.n)")
    p.add_argument(
        "--steps", type=_positive, metavar="K", help="training steps per loss (train.steps)"
    )
    p.add_argument(
        "--seed",
        type=_non_negative,
        metavar="S",
        help="the study's seed (sample.seed for samplers, train.seed for losses)",
    )
    p.add_argument("--out", required=True, metavar="FILE.h5", help="the study file (resumed)")
    p.add_argument(
        "--device", choices=DEVICE_CHOICES, metavar="D", help="where to run: %(choices)s"
    )
    json_option(p)


def _config_of(source: str) -> Any:
    from workbench.cli import _load_experiment
    from workbench.io.runs import RunFolder

    path = Path(source)
    if path.is_dir():
        return RunFolder.open(path).load_config()
    return _load_experiment(path)


def cmd_study(args: argparse.Namespace) -> int:
    from workbench.cli import PROG, _stop_after_step
    from workbench.errors import WorkbenchError
    from workbench.jobs import study

    source = str(Path(args.source).resolve())
    if args.samplers is not None:
        study.parse_samplers(args.samplers)  # a bad name fails before the model is loaded
        if args.steps is not None:
            raise WorkbenchError("--steps belongs to a loss study (--losses), not --samplers")
    else:
        study.check_losses(args.losses)
        for option in ("nfe", "n"):
            if getattr(args, option) is not None:
                raise WorkbenchError(f"--{option} belongs to a sampler study (--samplers)")
    bar = progress_bar(args, "study")
    fraction = fraction_progress(bar)

    def progress(done: float, what: str) -> None:
        fraction(done)

    try:
        with _stop_after_step("study", bar) as asked:
            if args.samplers is not None:
                from workbench.jobs.sample import load_model

                config, model, dataset = load_model(args.source)
                result = study.sampler_study(
                    config,
                    model,
                    dataset,
                    args.out,
                    samplers=args.samplers,
                    nfe=args.nfe or study.DEFAULT_NFE,
                    n=args.n,
                    seed=args.seed,
                    source=source,
                    device=args.device,
                    progress=progress,
                    cancel=asked,
                )
            else:
                result = study.loss_study(
                    _config_of(args.source),
                    args.out,
                    losses=args.losses,
                    steps=args.steps,
                    seed=args.seed,
                    source=source,
                    device=args.device,
                    progress=progress,
                    cancel=asked,
                )
    finally:
        bar.close()
    if wants_json(args):
        print_json(
            {
                "ok": result.status == "done",
                "path": result.path,
                "csv": result.csv,
                "study": result.kind,
                "status": result.status,
                "ran": result.ran,
                "skipped": result.skipped,
                "seconds": result.seconds,
                "rows": result.rows,
                "warnings": result.warnings,
            }
        )
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if result.status == "cancelled":
        if not wants_json(args):
            print(
                f"{PROG} study: stopped; {result.path} keeps the {len(result.rows)} finished "
                "runs (run the same command again to resume)",
                file=sys.stderr,
            )
        return 130
    info(
        args,
        f"wrote {result.path} and {result.csv}: {result.ran} runs, {result.skipped} already "
        f"stored, {result.seconds:.2f} s",
    )
    return 0
