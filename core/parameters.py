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
    RASTER_LIST = "raster_list"      # one or more input rasters
    FILE = "file"                    # an input file of type ``extension``
    CHOICE = "choice"                # one of ``options``; Processing stores the index
    INTEGER = "integer"
    NUMBER = "number"
    TEXT = "text"
    RASTER_OUTPUT = "raster_output"  # a GeoTIFF to write
    FILE_OUTPUT = "file_output"      # a file of type ``extension`` to write
    FOLDER_OUTPUT = "folder_output"  # a folder to write files into


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

MODEL = Parameter("MODEL", Kind.FILE, "Model file from stfusion:train (empty = shipped default)",
                  "a model file from stfusion:train; empty = the model shipped with the plugin.",
                  optional=True, extension="pt")

FUSE = FUSION_INPUTS + (
    MODEL,
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
              "never with the raster size.", default=640, minimum=32, maximum=8192,
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

# INCLUDE_FINE_DATES, in the order of series.FINE_DATES_SKIP, _COPY, _PREDICT
FINE_DATE_OPTIONS = ("No: leave them out",
                     "Yes: the fine image, masked pixels fused from the other pairs",
                     "Yes: predicted from the other pairs (validation)")

SERIES = (
    Parameter("FINE", Kind.RASTER_LIST, "Fine images (Landsat)",
              "the fine (Landsat) images of the series, on one grid with the same bands."),
    Parameter("COARSE", Kind.RASTER_LIST, "Coarse images on the fine grid (MODIS)",
              "the coarse (MODIS) images on the fine grid (stfusion:resample_modis), one per "
              "date; the dates to predict and the partners of the fine images."),
    Parameter("FINE_MASKS", Kind.RASTER_LIST, "Cloud masks of the fine images (0 = clear)",
              "optional cloud and shadow masks of the fine images (0 = clear, anything else = "
              "masked), matched by date; nodata in a fine image is always masked.",
              optional=True),
    Parameter("DATES", Kind.FILE, "Dates table (CSV: file,date) for files without dates",
              "optional CSV table file,date for files whose names and metadata carry no date; "
              "else each file's date comes from its ACQUISITIONDATE metadata or its name "
              "(2020-04-12, 20200412, 2020103, Landsat or MODIS product ids).",
              optional=True, extension="csv"),
    Parameter("TARGET_DATES", Kind.TEXT, "Dates to predict (empty = every coarse date without "
              "a fine image; or START/END/STEP)",
              "the dates to predict: empty = every coarse date without a fine image; "
              "START/END/STEP (e.g. 2020-03-01/2020-04-30/2) or a list of dates.",
              optional=True),
    Parameter("MAX_GAP_DAYS", Kind.INTEGER, "Maximum gap between a date and a pair (days)",
              "pairs further than this from a date are not used for it.", default=64,
              minimum=1),
    Parameter("INCLUDE_FINE_DATES", Kind.CHOICE, "Dates that have a fine image",
              "dates that have a fine image: left out, written as the fine image with its "
              "masked pixels fused from the other pairs, or predicted from the other pairs "
              "(to validate).", default=0, options=FINE_DATE_OPTIONS),
    MODEL,
    DEVICE,
    Parameter("TILE_SIZE", Kind.INTEGER, "Tile size (pixels; smaller uses less memory)",
              "pixels per tile side, as in stfusion:fuse; memory grows with its square, never "
              "with the raster size or the number of dates.", default=640, minimum=32,
              advanced=True),
    Parameter("SCALE_RATIO", Kind.NUMBER, "Coarse / fine pixel size (0 = from the coarse images)",
              "the coarse pixel size over the fine one; 0 = by the rule of stfusion:fuse (the "
              "coarse images' STFUSION_COARSE_PIXEL_SIZE, else estimated from them, else 500 m "
              "over the fine pixel size); the log says which.", default=0.0, minimum=0.0,
              advanced=True),
    Parameter("COARSE_PERIOD_DAYS", Kind.INTEGER,
              "Days each coarse image stands for (1 = daily; 16 = 16-day composites)",
              "days each coarse image stands for from its date (1 for daily images, 8 or 16 "
              "for composites).", default=1, minimum=1, advanced=True),
    Parameter("PREFIX", Kind.TEXT, "File name prefix",
              "the start of every file name the run writes (letters, digits, '_', '-', '.').",
              default="fused", advanced=True),
    SCHEDULER,
    Parameter("OUTPUT_FOLDER", Kind.FOLDER_OUTPUT, "Output folder",
              "one GeoTIFF per date, PREFIX_YYYY-MM-DD.tif (data type, scale and nodata of the "
              "fine images, the date as ACQUISITIONDATE), a VRT stack of all dates (each "
              "band's date in its metadata) and PREFIX_series.json (what a re-run needs to "
              "skip dates already written)."),
    Parameter("SOURCES", Kind.FILE_OUTPUT,
              "Sources table (empty = PREFIX_sources.csv in the folder)",
              "CSV table: per date the pairs used, the share of pixels from each, the gap in "
              "days and the nodata share (empty = PREFIX_sources.csv in the folder).",
              optional=True, extension="csv", create_by_default=False),
    Parameter("REPORT", Kind.FILE_OUTPUT,
              "Series report (empty = PREFIX_report.html in the folder)",
              "HTML report: time-series plot, calendar of dates, sources, quick-looks (empty = "
              "PREFIX_report.html in the folder).", optional=True, extension="html",
              create_by_default=False),
)


def by_name(parameters: Sequence[Parameter], name: str) -> Parameter:
    return next(p for p in parameters if p.name == name)


def help_lines(parameters: Sequence[Parameter]) -> Dict[str, str]:
    """Name -> help line: the part of an algorithm's ``PARAMETER_HELP`` these make."""
    return {p.name: p.help for p in parameters}
