"""The parameters of the fusion jobs, defined once for the Processing algorithms and the
command line: name, type, label, help line, default, range, choices.

``algorithms/parameters.py`` turns each ``Parameter`` into a Processing parameter (and its
line of the algorithm's ``PARAMETER_HELP``: help page and tooltip) and ``stfusion.cli`` into
an argparse option (``--fine-t1`` and its alias ``--FINE_T1``, the label and help line as its
help), so the Toolbox, ``qgis_process`` and ``python -m stfusion.cli`` accept the same names
with the same defaults and explain them in the same words. QGIS-free: plain data.
"""
from dataclasses import dataclass
from enum import Enum
from typing import Dict, Optional, Sequence, Tuple


class Kind(Enum):
    RASTER = "raster"                # an input raster (a file GDAL opens)
    FILE = "file"                    # an input file of type ``extension``
    CHOICE = "choice"                # one of ``options``; Processing stores the index
    INTEGER = "integer"
    NUMBER = "number"
    TEXT = "text"
    RASTER_OUTPUT = "raster_output"  # a GeoTIFF to write
    FILE_OUTPUT = "file_output"      # a file of type ``extension`` to write


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: Kind
    label: str                       # what the dialog shows
    help: str                        # one line: the help page, the tooltip, --help
    default: object = None           # CHOICE: the index of the default option
    optional: bool = False
    advanced: bool = False           # under the dialog's "Advanced Parameters"
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    options: Tuple[str, ...] = ()
    extension: str = ""
    # an optional output: Processing writes it (to a temporary file) when left empty
    create_by_default: bool = True

    @property
    def flag(self) -> str:
        """The command-line option: ``--fine-t1`` for FINE_T1."""
        return "--" + self.name.lower().replace("_", "-")

    @property
    def default_value(self):
        """The default as a value (a CHOICE's option string, not its index)."""
        if self.kind is Kind.CHOICE:
            return self.options[self.default]
        return self.default


DEVICE_OPTIONS = ("auto", "cpu", "cuda")
# "default" is the project's best model (core.models.DEFAULT_ARCHITECTURE); "paper" is the
# paper's 3x3-patch regression DCNN
ARCHITECTURE_OPTIONS = ("default", "paper")

FUSION_INPUTS = (
    Parameter("FINE_T1", Kind.RASTER, "Fine image at t1 (Landsat)",
              "the fine (Landsat) image of the pair before the date to predict (t1)."),
    Parameter("COARSE_T1", Kind.RASTER, "Coarse image at t1 (MODIS on the fine grid)",
              "the coarse (MODIS) image of t1, already on the fine grid "
              "(stfusion:resample_modis), with the same bands in the same order."),
    Parameter("COARSE_T2", Kind.RASTER, "Coarse image at t2, the date to predict",
              "the coarse image of the date to predict (t2), on the same grid."),
    Parameter("FINE_T3", Kind.RASTER, "Fine image at t3 (optional second pair)",
              "optional fine image of a second pair (t3, usually after t2); give its coarse "
              "image too.", optional=True),
    Parameter("COARSE_T3", Kind.RASTER, "Coarse image at t3 (optional second pair)",
              "the coarse image of t3, when a second pair is given.", optional=True),
)
DEVICE = Parameter("DEVICE", Kind.CHOICE, "Device (auto = GPU when available)",
                   "auto uses the GPU when PyTorch has one, else the CPU.", default=0,
                   options=DEVICE_OPTIONS)


def architecture(label: str, help_line: str = "") -> Parameter:
    return Parameter("ARCHITECTURE", Kind.CHOICE, label, help_line, default=0,
                     options=ARCHITECTURE_OPTIONS)


SCHEDULER = Parameter(
    "SCHEDULER", Kind.TEXT, "Dask scheduler address (empty = run in this process)",
    "address of a Dask scheduler (e.g. tcp://host:8786) whose workers compute the tiles; "
    "they must reach the input files by the same paths and have numpy, GDAL, PyTorch and "
    "stfusion installed (no QGIS). Empty = this process. The output is the same either way.",
    default="", optional=True, advanced=True)

FUSE = FUSION_INPUTS + (
    Parameter("MODEL", Kind.FILE, "Model file from stfusion:train (empty = shipped default)",
              "a model file from stfusion:train; empty = the model shipped with the plugin.",
              optional=True, extension="pt"),
    architecture("Shipped model to use without a model file",
                 "which shipped model to use when no model file is given: the project's "
                 "default (best on every real case measured) or the paper's 3x3-patch DCNN, "
                 "trained on the given pair(s) first."),
    Parameter("ADAPT", Kind.INTEGER, "Fine-tune on the given pair(s) first (epochs, 0 = no)",
              "epochs of fine-tuning on the given pair(s) before predicting; 0 = none.",
              default=0, minimum=0, maximum=500),
    Parameter("REFERENCE", Kind.RASTER,
              "Reference fine image at t2 (optional, for accuracy metrics)",
              "optional real fine image of t2: the report then scores the prediction as "
              "stfusion:evaluate does, and the RMSE, SSIM, ERGAS and SAM outputs are set.",
              optional=True),
    DEVICE,
    # default: fusion.FUSE_TILE (kept equal by a test; this module stays torch-free)
    Parameter("TILE_SIZE", Kind.INTEGER, "Tile size (pixels; smaller uses less memory)",
              "pixels per tile side, rounded to the model's block grid and to a multiple of 16 "
              "(each tile is one block of the output GeoTIFF); memory grows with its square, "
              "never with the raster size.", default=896, minimum=32, maximum=8192,
              advanced=True),
    Parameter("SCALE_RATIO", Kind.NUMBER, "Coarse / fine pixel size (0 = from the coarse images)",
              "the coarse pixel size over the fine one (e.g. 16 for 480 m MODIS over 30 m "
              "Landsat); 0 = from the coarse images: the STFUSION_COARSE_PIXEL_SIZE that "
              "stfusion:resample_modis records, else estimated from their pixel structure, else "
              "500 m over the fine pixel size. The log and the report say which.", default=0.0,
              minimum=0.0, maximum=100.0, advanced=True),
    SCHEDULER,
    Parameter("OUTPUT", Kind.RASTER_OUTPUT, "Fused image",
              "the fused GeoTIFF on the fine grid, with the data type, scale and nodata of the "
              "fine image at t1; a pixel that is nodata in any input is nodata here. Where a "
              "pair disagrees with its coarse image, or the scene changed too much since it, "
              "measured at the coarse scale, the prediction moves towards the coarse image of "
              "t2; the log and the report say how far each pair is trusted. Loaded as "
              "'fused <date of t2>'."),
    Parameter("UNCERTAINTY", Kind.RASTER_OUTPUT, "Expected absolute error",
              "optional (default model): the expected absolute error of the fused image per "
              "pixel and band, in the data's units, on the same grid with the same encoding "
              "and nodata; the report summarises it (and scores it against a reference).",
              optional=True, create_by_default=False),
    Parameter("REPORT", Kind.FILE_OUTPUT, "Fusion report",
              "HTML report: inputs, model, timing and quick-looks, and the accuracy tables "
              "when a reference is given.", optional=True, extension="html"),
)


def by_name(parameters: Sequence[Parameter], name: str) -> Parameter:
    return next(p for p in parameters if p.name == name)


def help_lines(parameters: Sequence[Parameter]) -> Dict[str, str]:
    """Name -> help line: the part of an algorithm's ``PARAMETER_HELP`` these make."""
    return {p.name: p.help for p in parameters}
