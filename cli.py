"""stfusion's command line, without QGIS: the fusion core in this process or on Dask.

    python -m stfusion.cli fuse --fine-t1 F1.tif --coarse-t1 C1.tif --coarse-t2 C2.tif \\
        --output F2.tif [--report F2.html] [--scheduler tcp://host:8786 | --workers 4]
    python -m stfusion.cli series --fine L*.tif --coarse M*.tif --output-folder out/ [...]

The options are the Processing algorithms' parameters (``core.parameters``, one definition
for both): ``--fine-t1`` or ``--FINE_T1`` for FINE_T1, with the same defaults; a choice is
given by name or by its Processing index. ``--scheduler`` sends the tiles to an existing Dask
cluster, ``--workers N`` starts a local one of N processes, neither runs in this process
(bit-identical results either way). The results (output paths, metrics) are printed as JSON;
progress and messages go to stderr. Exit status: 0 done, 2 bad input, 130 interrupted (no
partial file is left; a series keeps the dates it finished), 1 anything else.

The package must be importable as ``stfusion`` (see README "Command line and cluster").
"""
import argparse
import json
import signal
import sys
from dataclasses import dataclass
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple

from .core import parameters
from .core.errors import InputError
from .core.parameters import Kind, Parameter
from .core.raster import RasterError
from .core.tiling import Canceled
from .core.torch_check import TorchMissing

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
_PATH_KINDS = (Kind.RASTER, Kind.FILE, Kind.RASTER_OUTPUT, Kind.FILE_OUTPUT,
               Kind.FOLDER_OUTPUT)


def _ranged(spec: Parameter, number_type):
    def convert(text: str):
        value = number_type(text)
        if (spec.minimum is not None and value < spec.minimum) or \
                (spec.maximum is not None and value > spec.maximum):
            raise argparse.ArgumentTypeError(
                f"{value} is outside {spec.minimum:g}..{spec.maximum:g}")
        return value
    return convert


def _choice(spec: Parameter):
    def convert(text: str) -> str:
        return spec.options[int(text)] if text.isdigit() and int(text) < len(spec.options) \
            else text
    return convert


def add_option(parser: argparse.ArgumentParser, spec: Parameter) -> None:
    """The option of one parameter: ``--fine-t1`` (alias ``--FINE_T1``), its type, range,
    choices and default."""
    options = dict(dest=spec.name, help=f"{spec.label}: {spec.help}".replace("%", "%%"))
    if spec.kind in _PATH_KINDS:
        options["metavar"] = "PATH"
    elif spec.kind is Kind.RASTER_LIST:
        options.update(metavar="PATH", nargs="+")
    elif spec.kind is Kind.CHOICE:
        options.update(type=_choice(spec), choices=spec.options)
    elif spec.kind is Kind.INTEGER:
        options["type"] = _ranged(spec, int)
    elif spec.kind is Kind.NUMBER:
        options["type"] = _ranged(spec, float)
    if spec.optional or spec.default is not None:
        options["default"] = spec.default_value
        if spec.default not in (None, ""):
            options["help"] += f" (default: {spec.default_value})"
    else:
        options["required"] = True
    parser.add_argument(spec.flag, f"--{spec.name}", **options)


@dataclass(frozen=True)
class Command:
    specs: Tuple[Parameter, ...]     # its options: the parameters of the algorithm
    summary: str
    description: str
    interrupted: str                 # what an interrupted run leaves


COMMANDS = {
    "fuse": Command(parameters.FUSE, "predict the fine image of t2 (as stfusion:fuse)",
                    "Predict the fine image of t2 from a fine/coarse pair at t1 (and t3) and "
                    "the coarse image of t2; options as the parameters of stfusion:fuse.",
                    "no output was written"),
    "series": Command(parameters.SERIES, "a fused image for every date of a series (as "
                      "stfusion:fuse_series)",
                      "Predict a fine image for every date of a series from a few fine/coarse "
                      "pairs and the coarse images of those dates; options as the parameters "
                      "of stfusion:fuse_series.",
                      "the dates finished so far are complete in the output folder; run "
                      "again with the same options to go on from there"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stfusion.cli",
        description="Landsat/MODIS fusion without QGIS, in this process or on a Dask cluster.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        subparser = commands.add_parser(name, help=command.summary,
                                        description=command.description)
        for spec in command.specs:
            add_option(subparser, spec)
        subparser.add_argument("--workers", type=int, default=0, metavar="N",
                               help="start a local Dask cluster of N worker processes "
                                    "(instead of --scheduler)")
    return parser


def _flag_of(command: Command, name: Optional[str]) -> str:
    specs = {spec.name: spec for spec in command.specs}
    return specs[name].flag if name in specs else (name or "")


class _Progress:
    """Progress on stderr in steps of 10 %."""

    def __init__(self):
        self.shown = -1

    def __call__(self, fraction: float) -> None:
        step = int(fraction * 10)
        if step > self.shown:
            self.shown = step
            print(f"{10 * step}%", file=sys.stderr, flush=True)


def _interrupt(_signal, _frame):
    raise KeyboardInterrupt


def run(arguments: argparse.Namespace) -> Dict:
    """The job, with the Processing algorithms' output rules: outputs checked against the
    inputs first, and all of them (images, report, sidecars) published together at the end
    (a series publishes each date as soon as it is complete)."""
    from .core import atomic, jobs
    specs = COMMANDS[arguments.command].specs
    values = {spec.name: getattr(arguments, spec.name) for spec in specs}
    jobs.check_outputs(specs, values)
    log = partial(print, file=sys.stderr, flush=True)
    with atomic.run_outputs() as outputs:
        if arguments.command == "fuse":
            results = jobs.run_fuse(values, arguments.workers, _Progress(), log=log)
        else:
            results, _series = jobs.run_series(values, arguments.workers, _Progress(), log=log)
        outputs.commit()
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    command = COMMANDS[arguments.command]
    if arguments.workers < 0 or (arguments.workers and arguments.SCHEDULER):
        parser.error("give either --scheduler ADDRESS or --workers N (N >= 1), not both")
    try:
        results = run(arguments)
    except InputError as exc:
        return _fail(f"{_flag_of(command, exc.parameter)}: {exc.message}" if exc.parameter
                     else str(exc), EXIT_BAD_INPUT)
    except (RasterError, TorchMissing) as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    except (KeyboardInterrupt, Canceled):
        return _fail(f"interrupted; {command.interrupted}", EXIT_INTERRUPTED)
    print(json.dumps(results, indent=2))
    return 0


def _fail(message: str, status: int) -> int:
    print(f"stfusion: error: {message}", file=sys.stderr)
    return status


def entry_point(argv: Optional[List[str]] = None) -> None:
    # a kill (SIGTERM) ends the run like Ctrl-C: outputs in progress are removed
    signal.signal(signal.SIGTERM, _interrupt)
    sys.exit(main(argv))


if __name__ == "__main__":
    entry_point()
