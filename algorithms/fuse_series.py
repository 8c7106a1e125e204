"""stfusion:fuse_series — a dense, cloud-aware fine-resolution time series in one run."""
import datetime as dt
import os
import re

from qgis.core import (QgsDateTimeRange, QgsProcessingContext, QgsProcessingException,
                       QgsProcessingLayerPostProcessorInterface, QgsProcessing,
                       QgsProcessingOutputMultipleLayers, QgsProcessingOutputNumber,
                       QgsProcessingOutputRasterLayer, QgsProcessingParameterEnum,
                       QgsProcessingParameterFile, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterFolderDestination,
                       QgsProcessingParameterMultipleLayers, QgsProcessingParameterNumber,
                       QgsProcessingParameterString, QgsRasterLayerTemporalProperties)
from qgis.PyQt.QtCore import QDate, QDateTime, QTime

from ..core import atomic, raster
from ..core.errors import InputError
from ..core.tiling import Canceled
from .base import StfusionAlgorithm, apply_rgb_renderer, as_advanced, feedback_callbacks
from .torch_params import device_parameter, resolve_device

PARAMETER_HELP = {
    "FINE": "the fine (Landsat) images of the series, on one grid with the same bands.",
    "COARSE": "the coarse (MODIS) images on the fine grid (stfusion:resample_modis), one per "
              "date; the dates to predict and the partners of the fine images.",
    "FINE_MASKS": "optional cloud and shadow masks of the fine images (0 = clear, anything "
                  "else = masked), matched by date; nodata in a fine image is always masked.",
    "DATES": "optional CSV table file,date for files whose names and metadata carry no date; "
             "else each file's date comes from its ACQUISITIONDATE metadata or its name "
             "(2020-04-12, 20200412, 2020103, Landsat or MODIS product ids).",
    "TARGET_DATES": "the dates to predict: empty = every coarse date without a fine image; "
                    "START/END/STEP (e.g. 2020-03-01/2020-04-30/2) or a list of dates.",
    "MAX_GAP_DAYS": "pairs further than this from a date are not used for it.",
    "INCLUDE_FINE_DATES": "dates that have a fine image: left out, written as the fine image "
                          "with its masked pixels fused from the other pairs, or predicted "
                          "from the other pairs (to validate).",
    "MODEL": "a model file from stfusion:train; empty = the model shipped with the plugin.",
    "DEVICE": "auto uses the GPU when PyTorch has one, else the CPU.",
    "TILE_SIZE": "pixels per tile side, as in stfusion:fuse; memory grows with its square, "
                 "never with the raster size or the number of dates.",
    "SCALE_RATIO": "the coarse pixel size over the fine one; 0 = by the rule of stfusion:fuse "
                   "(the coarse images' STFUSION_COARSE_PIXEL_SIZE, else estimated from "
                   "them, else 500 m over the fine pixel size); the log says which.",
    "COARSE_PERIOD_DAYS": "days each coarse image stands for from its date (1 for daily "
                          "images, 8 or 16 for composites).",
    "PREFIX": "the start of every file name the run writes (letters, digits, '_', '-', '.').",
    "OUTPUT_FOLDER": "one GeoTIFF per date, PREFIX_YYYY-MM-DD.tif (data type, scale and "
                     "nodata of the fine images, the date as ACQUISITIONDATE), a VRT stack of "
                     "all dates (each band's date in its metadata) and PREFIX_series.json "
                     "(what a re-run needs to skip dates already written).",
    "SOURCES": "CSV table: per date the pairs used, the share of pixels from each, the gap "
               "in days and the nodata share (empty = PREFIX_sources.csv in the folder).",
    "REPORT": "HTML report: time-series plot, calendar of dates, sources, quick-looks "
              "(empty = PREFIX_report.html in the folder).",
    "STACK": "the VRT stack of all dates, date by date, each band's date in its metadata.",
    "OUTPUT_LAYERS": "the fused images, one per date, loaded as one group with their dates "
                     "set for the temporal controller.",
    "DATES_WRITTEN": "dates written by this run.",
    "DATES_KEPT": "dates kept from an earlier run with the same inputs and settings.",
}
FINE_DATE_OPTIONS = ("No: leave them out",
                     "Yes: the fine image, masked pixels fused from the other pairs",
                     "Yes: predicted from the other pairs (validation)")


class FuseSeries(StfusionAlgorithm):
    NAME = "fuse_series"
    DISPLAY_NAME = "Fuse a time series (Landsat and MODIS)"
    GROUP = "fusion"
    SHORT_DESCRIPTION = ("Predicts a Landsat-like (fine) image for every date of a series "
                         "from a few Landsat/MODIS pairs and the MODIS images of those dates, "
                         "in one run.")
    DESCRIPTION = ("For each date the nearest pair before and the nearest after are fused "
                   "together (when both are within the maximum gap), else the nearest single "
                   "pair. Where a pair is clouded or masked, those pixels come from the "
                   "next-nearest clear pair instead; only pixels clear in no pair within reach "
                   "are nodata. Each pair is prepared once for all dates.\n"
                   "In QGIS the dates load as one layer group with their dates set, so the "
                   "temporal controller animates the series. Cancel keeps the dates already "
                   "finished (each complete); a re-run with the same outputs skips the dates "
                   "already written with the same inputs and settings.")
    PARAMETER_HELP = PARAMETER_HELP
    TAGS = ("time series", "series", "temporal", "dense", "gap filling", "clouds",
            "phenology", "DCNN", "PyTorch")

    def initAlgorithm(self, config=None):
        for name, label, optional in (
                ("FINE", "Fine images (Landsat)", False),
                ("COARSE", "Coarse images on the fine grid (MODIS)", False),
                ("FINE_MASKS", "Cloud masks of the fine images (0 = clear)", True)):
            self.addParameter(QgsProcessingParameterMultipleLayers(
                name, self.tr(label), QgsProcessing.TypeRaster, optional=optional))
        self.addParameter(QgsProcessingParameterFile(
            "DATES", self.tr("Dates table (CSV: file,date) for files without dates"),
            extension="csv", optional=True))
        self.addParameter(QgsProcessingParameterString(
            "TARGET_DATES", self.tr("Dates to predict (empty = every coarse date without a "
                                    "fine image; or START/END/STEP)"), optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "MAX_GAP_DAYS", self.tr("Maximum gap between a date and a pair (days)"),
            QgsProcessingParameterNumber.Integer, defaultValue=64, minValue=1))
        self.addParameter(QgsProcessingParameterEnum(
            "INCLUDE_FINE_DATES", self.tr("Dates that have a fine image"),
            [self.tr(o) for o in FINE_DATE_OPTIONS], defaultValue=0))
        self.addParameter(QgsProcessingParameterFile(
            "MODEL", self.tr("Model file from stfusion:train (empty = shipped default)"),
            extension="pt", optional=True))
        self.addParameter(device_parameter())
        self.add_number_parameters([
            ("TILE_SIZE", "Tile size (pixels; smaller uses less memory)",
             QgsProcessingParameterNumber.Integer, 896, 32),
            ("SCALE_RATIO", "Coarse / fine pixel size (0 = from the coarse images)",
             QgsProcessingParameterNumber.Double, 0.0, 0.0),
            ("COARSE_PERIOD_DAYS", "Days each coarse image stands for (1 = daily; 16 = "
             "16-day composites)", QgsProcessingParameterNumber.Integer, 1, 1)],
            advanced=True)
        self.addParameter(as_advanced(QgsProcessingParameterString(
            "PREFIX", self.tr("File name prefix"), defaultValue="fused")))
        self.addParameter(QgsProcessingParameterFolderDestination(
            "OUTPUT_FOLDER", self.tr("Output folder")))
        self.addParameter(QgsProcessingParameterFileDestination(
            "SOURCES", self.tr("Sources table (empty = PREFIX_sources.csv in the folder)"),
            fileFilter=self.tr("CSV files (*.csv)"), optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            "REPORT", self.tr("Series report (empty = PREFIX_report.html in the folder)"),
            fileFilter=self.tr("HTML files (*.html)"), optional=True, createByDefault=False))
        self.addOutput(QgsProcessingOutputRasterLayer(
            "STACK", self.tr("VRT stack of all dates")))
        self.addOutput(QgsProcessingOutputMultipleLayers(
            "OUTPUT_LAYERS", self.tr("Fused images, one per date")))
        self.addOutput(QgsProcessingOutputNumber("DATES_WRITTEN", self.tr("Dates written")))
        self.addOutput(QgsProcessingOutputNumber(
            "DATES_KEPT", self.tr("Dates kept from an earlier run")))

    def execute(self, parameters, context, feedback):
        self.require_torch()
        from ..core import series
        fine = self.layer_paths(parameters, "FINE", context)
        coarse = self.layer_paths(parameters, "COARSE", context)
        masks = self.layer_paths(parameters, "FINE_MASKS", context, required=False)
        info = raster.raster_info(fine[0])
        self.check_same_grid(("FINE", fine[0]), {
            **{f"FINE ({os.path.basename(p)})": p for p in fine[1:]},
            **{f"COARSE ({os.path.basename(p)})": p for p in coarse},
            **{f"FINE_MASKS ({os.path.basename(p)})": p for p in masks}})
        self.check_band_counts({**{f"FINE ({os.path.basename(p)})": p for p in fine},
                                **{f"COARSE ({os.path.basename(p)})": p for p in coarse}},
                               info.band_count, "the first FINE image")
        plan = self.plan(parameters, context, fine, coarse, masks)
        for date, why in plan.skipped:
            feedback.pushWarning(self.tr("{}: left out, {}").format(date, why))
        if not plan.entries:
            raise QgsProcessingException(self.tr(
                "Parameter TARGET_DATES: no date can be predicted (see the warnings): give "
                "coarse images of the dates to predict and pairs within MAX_GAP_DAYS."))
        folder = self.parameterAsFileOutput(parameters, "OUTPUT_FOLDER", context)
        prefix = self.parameterAsString(parameters, "PREFIX", context) or "fused"
        if not re.fullmatch(r"[\w.-]+", prefix):
            raise QgsProcessingException(self.tr(
                "Parameter PREFIX: '{}' must be a plain file name part (letters, digits, '_', "
                "'-', '.').").format(prefix))
        self.check_dates_spare_inputs(plan, folder, prefix, fine + coarse + masks)
        feedback.pushInfo(self.tr("{} date(s) from {} pair(s) into {}").format(
            len(plan.entries), len(plan.pairs), folder))
        settings = series.SeriesSettings(
            model_path=self.parameterAsFile(parameters, "MODEL", context) or None,
            device=resolve_device(self.parameterAsEnum(parameters, "DEVICE", context)),
            tile_size=self.parameterAsInt(parameters, "TILE_SIZE", context),
            scale_ratio=self.parameterAsDouble(parameters, "SCALE_RATIO", context) or None)
        progress, is_canceled = feedback_callbacks(feedback)
        from ..core import models, series_outputs
        try:
            result = series.run_series(plan, info, settings, folder, prefix, progress,
                                       is_canceled, feedback.pushInfo)
        except Canceled:
            raise QgsProcessingException(self.tr(
                "Canceled by the user. The dates finished so far are complete in {}; run "
                "again with the same outputs to go on from there.").format(folder))
        except models.ModelFileError as exc:
            raise QgsProcessingException(f"Parameter MODEL: {exc}")
        sources_path = self.parameterAsFileOutput(parameters, "SOURCES", context) or \
            os.path.join(folder, f"{prefix}_sources.csv")
        report_path = self.parameterAsFileOutput(parameters, "REPORT", context) or \
            os.path.join(folder, f"{prefix}_report.html")
        stack = series_outputs.write_stack(os.path.join(folder, f"{prefix}_series.vrt"),
                                           result.outputs, info)
        series_outputs.write_sources(sources_path, result)
        series_outputs.write_series_report(report_path, result, info)
        self.load_as_temporal_group(context, result.outputs, prefix, info.band_names)
        return {"OUTPUT_FOLDER": folder, "STACK": stack, "SOURCES": sources_path,
                "REPORT": report_path,
                "OUTPUT_LAYERS": [result.outputs[d] for d in sorted(result.outputs)],
                "DATES_WRITTEN": len(result.written), "DATES_KEPT": len(result.reused)}

    def plan(self, parameters, context, fine, coarse, masks):
        """The series plan: the images' dates, the pairs and each date's candidates."""
        from ..core import acquisition, series
        table_path = self.parameterAsFile(parameters, "DATES", context)
        table = acquisition.read_dates_table(table_path) if table_path else None
        fine_images = [series.Image(p, d) for p, d in
                       zip(fine, acquisition.image_dates(fine, "FINE", table))]
        coarse_images = [series.Image(p, d) for p, d in
                         zip(coarse, acquisition.image_dates(coarse, "COARSE", table))]
        mask_dates = acquisition.image_dates(masks, "FINE_MASKS", table)
        fine_dates = {image.date for image in fine_images}
        for path, date in zip(masks, mask_dates):
            if date not in fine_dates:
                raise InputError("FINE_MASKS", f"'{path}' is dated {date}, and no FINE image "
                                               "has that date; give one mask per fine image, "
                                               "named with its date.")
        return series.make_plan(
            fine_images, coarse_images, dict(zip(mask_dates, masks)),
            targets=acquisition.parse_target_dates(
                self.parameterAsString(parameters, "TARGET_DATES", context)),
            max_gap_days=self.parameterAsInt(parameters, "MAX_GAP_DAYS", context),
            period_days=self.parameterAsInt(parameters, "COARSE_PERIOD_DAYS", context),
            fine_dates=self.parameterAsEnum(parameters, "INCLUDE_FINE_DATES", context))

    def check_dates_spare_inputs(self, plan, folder, prefix, inputs):
        """The dates' files are named by the run, not by a parameter: none may be an input."""
        from ..core import series
        for entry in plan.entries:
            target = series.output_path(folder, prefix, entry.date)
            for path in inputs:
                if atomic.same_file(target, path):
                    raise InputError("OUTPUT_FOLDER", f"writing '{target}' would replace the "
                                                      f"input '{path}'; inputs are never "
                                                      "overwritten. Choose another folder or "
                                                      "PREFIX.")

    def load_as_temporal_group(self, context, outputs, prefix, band_names):
        """Load every date's image when the run ends, in one group, each layer with its
        date as a fixed temporal range (the temporal controller animates the series)."""
        group = self.tr("{} series").format(prefix)
        for date in sorted(outputs):
            path = outputs[date]
            if not context.willLoadLayerOnCompletion(path):
                details = QgsProcessingContext.LayerDetails(f"{prefix} {date.isoformat()}",
                                                            context.project(), "OUTPUT_LAYERS")
                context.addLayerToLoadOnCompletion(path, details)
            processor = DatedLayer(date, group, band_names)
            DatedLayer.keep_alive.append(processor)
            context.layerToLoadOnCompletionDetails(path).setPostProcessor(processor)


def date_range(date: dt.date) -> QgsDateTimeRange:
    """The whole day: [date 00:00, next day 00:00)."""
    start = QDateTime(QDate(date.year, date.month, date.day), QTime(0, 0))
    return QgsDateTimeRange(start, start.addDays(1), True, False)


def set_fixed_date(layer, date: dt.date) -> None:
    properties = layer.temporalProperties()
    properties.setMode(QgsRasterLayerTemporalProperties.ModeFixedTemporalRange)
    properties.setFixedTemporalRange(date_range(date))
    properties.setIsActive(True)


class DatedLayer(QgsProcessingLayerPostProcessorInterface):
    """Gives a loaded date its temporal range, colours and place in the series group."""

    keep_alive = []

    def __init__(self, date: dt.date, group: str, band_names):
        super().__init__()
        self.date, self.group, self.band_names = date, group, list(band_names)

    def postProcessLayer(self, layer, context, feedback):
        set_fixed_date(layer, self.date)
        if layer.bandCount() >= 3:
            apply_rgb_renderer(layer, self.band_names)
        project = context.project()
        if project is None:
            return
        root = project.layerTreeRoot()
        node = root.findLayer(layer.id())
        group = root.findGroup(self.group) or root.insertGroup(0, self.group)
        if node is not None and node.parent() is not group:
            names = [child.name() for child in group.children()]
            position = sum(1 for name in names if name < layer.name())
            group.insertChildNode(position, node.clone())
            node.parent().removeChildNode(node)
        time_settings = project.timeSettings()
        whole = time_settings.temporalRange()
        day = date_range(self.date)
        if whole.begin().isValid() and whole.end().isValid():
            day = QgsDateTimeRange(min(whole.begin(), day.begin()), max(whole.end(), day.end()))
        time_settings.setTemporalRange(day)


ALGORITHM = FuseSeries
