"""stfusion's command line, without QGIS: the fusion core in this process or on Dask.

    python -m stfusion.cli fuse --fine-t1 F1.tif --coarse-t1 C1.tif --coarse-t2 C2.tif \\
        --output F2.tif [--report F2.html] [--scheduler tcp://host:8786 | --workers 4]

The options are the Processing algorithm's parameters (``core.parameters``, one definition
for both): ``--fine-t1`` or ``--FINE_T1`` for FINE_T1, with the same defaults; a choice is
given by name or by its Processing index. ``--scheduler`` sends the tiles to an existing Dask
cluster, ``--workers N`` starts a local one of N processes, neither runs in this process
(bit-identical results either way). The results (output paths, metrics) are printed as JSON;
progress and messages go to stderr. Exit status: 0 done, 2 bad input, 130 interrupted (no
partial output is left), 1 anything else.

The package must be importable as ``stfusion`` (see README "Command line and cluster").
"""
import argparse
import json
import signal
import sys
from typing import Dict, List, Optional, Sequence

from .core import parameters
from .core.errors import InputError
from .core.parameters import Kind, Parameter
from .core.raster import RasterError
from .core.tiling import Canceled
from .core.torch_check import TorchMissing

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
_PATH_KINDS = (Kind.RASTER, Kind.FILE, Kind.RASTER_OUTPUT, Kind.FILE_OUTPUT)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stfusion.cli",
        description="Landsat/MODIS fusion without QGIS, in this process or on a Dask cluster.")
    commands = parser.add_subparsers(dest="command", required=True)
    fuse = commands.add_parser(
        "fuse", help="predict the fine image of t2 (as stfusion:fuse)",
        description="Predict the fine image of t2 from a fine/coarse pair at t1 (and t3) and "
                    "the coarse image of t2; options as the parameters of stfusion:fuse.")
    for spec in parameters.FUSE:
        add_option(fuse, spec)
    fuse.add_argument("--workers", type=int, default=0, metavar="N",
                      help="start a local Dask cluster of N worker processes "
                           "(instead of --scheduler)")
    return parser


def _flag_of(name: Optional[str]) -> str:
    specs = {spec.name: spec for spec in parameters.FUSE}
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
    inputs first, and all of them (image, report, sidecars) published together at the end."""
    from .core import atomic, jobs
    values = {spec.name: getattr(arguments, spec.name) for spec in parameters.FUSE}
    jobs.check_outputs(parameters.FUSE, values)
    with atomic.run_outputs() as outputs:
        results = jobs.run_fuse(values, workers=arguments.workers, progress=_Progress(),
                                log=lambda message: print(message, file=sys.stderr, flush=True))
        outputs.commit()
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if arguments.workers < 0 or (arguments.workers and arguments.SCHEDULER):
        parser.error("give either --scheduler ADDRESS or --workers N (N >= 1), not both")
    try:
        results = run(arguments)
    except InputError as exc:
        return _fail(f"{_flag_of(exc.parameter)}: {exc.message}" if exc.parameter else str(exc),
                     EXIT_BAD_INPUT)
    except (RasterError, TorchMissing) as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    except (KeyboardInterrupt, Canceled):
        return _fail("interrupted; no output was written", EXIT_INTERRUPTED)
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
