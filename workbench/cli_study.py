"""``sde-workbench study``: the sampler and loss studies of :mod:`workbench.jobs.study`, and
the guidance study of :mod:`workbench.jobs.guidance_study` (``--class K --guidance W,W``).

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

STUDY_HELP = (
    "compare samplers across NFE budgets, losses, or guidance weights against the exact truth "
    "into .h5"
)


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


def _weights(text: str) -> list[float]:
    """``0,0.5,1``: finite numbers >= 0 (a usage error otherwise, naming the bad one)."""
    out: list[float] = []
    for part in _names(text):
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not a number") from None
        if not value >= 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{part} is not a guidance weight (a number >= 0)")
        out.append(value)
    if not out:
        raise argparse.ArgumentTypeError("give at least one weight, e.g. 0,0.5,1,2,4")
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
    # one of --samplers, --losses, --guidance (which may name --samplers too): checked in
    # cmd_study, as argparse's groups cannot say it
    p.set_defaults(study_usage=p.error)
    what = p.add_mutually_exclusive_group()
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
        "--guidance",
        type=_weights,
        metavar="W,W",
        help="guidance study: classifier-free guidance weights to compare (e.g. 0,0.5,1,2,4), "
        "each measured against its tilted density p(x|K)^(1+W) p(x)^-W and against p(x|K)",
    )
    p.add_argument(
        "--class",
        dest="class_label",
        type=int,
        metavar="K",
        help="the class a guidance study samples (a mixture component: 0 .. components-1)",
    )
    p.add_argument(
        "--nfe",
        type=_budgets,
        metavar="N,N",
        help="score-evaluation budgets of the sampler study (default 5,10,20,50,100); a "
        "guidance study takes one (default: the config's sample.steps)",
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
    guided = args.guidance is not None
    if not guided and args.class_label is not None:
        if args.losses is not None:
            raise WorkbenchError(
                "--class belongs to a guidance study (--guidance W,W), not --losses"
            )
        raise WorkbenchError("--class belongs to a guidance study: give --guidance W,W too")
    if guided:
        if args.losses is not None:
            raise WorkbenchError("--guidance compares sampling weights; it does not take --losses")
        if args.class_label is None:
            raise WorkbenchError("--guidance needs the class to guide towards: --class K")
        if args.steps is not None:
            raise WorkbenchError("--steps belongs to a loss study (--losses), not --guidance")
        if args.nfe is not None and len(args.nfe) > 1:
            raise WorkbenchError(
                "--nfe: a guidance study runs at one budget (its axis is the weight), got "
                f"{len(args.nfe)}"
            )
        from workbench.jobs.guidance_study import check_weights

        check_weights(args.guidance)
        if args.samplers is not None:
            study.parse_samplers(args.samplers)
    elif args.samplers is None and args.losses is None:
        try:
            args.study_usage(
                "name what to study: --samplers S,S, --losses L,L, or --class K --guidance W,W"
            )
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 2
    elif args.samplers is not None:
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
            if guided:
                from workbench.jobs.guidance_study import guidance_study
                from workbench.jobs.sample import load_model

                config, model, dataset = load_model(args.source)
                result = guidance_study(
                    config,
                    model,
                    dataset,
                    args.out,
                    class_label=args.class_label,
                    guidance=args.guidance,
                    samplers=args.samplers,
                    nfe=None if args.nfe is None else args.nfe[0],
                    n=args.n,
                    seed=args.seed,
                    source=source,
                    device=args.device,
                    progress=progress,
                    cancel=asked,
                )
            elif args.samplers is not None:
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
