"""stfusion:fuse_series — a dense, cloud-aware fine-resolution time series in one run."""
import datetime as dt

from qgis.core import (QgsDateTimeRange, QgsProcessingContext, QgsProcessingException,
                       QgsProcessingLayerPostProcessorInterface,
                       QgsProcessingOutputMultipleLayers, QgsProcessingOutputNumber,
                       QgsProcessingOutputRasterLayer, QgsRasterLayerTemporalProperties)
from qgis.PyQt.QtCore import QDate, QDateTime, QTime

from ..core import raster
from ..core.parameters import DEVICE_OPTIONS, FINE_DATE_OPTIONS, SERIES, help_lines
from ..core.tiling import Canceled
from .base import StfusionAlgorithm, apply_rgb_renderer, feedback_callbacks
from .parameters import processing_parameter

PARAMETER_HELP = {
    **help_lines(SERIES),        # one definition with the command line's (core.parameters)
    "STACK": "the VRT stack of all dates, date by date, each band's date in its metadata.",
    "OUTPUT_LAYERS": "the fused images, one per date, loaded as one group with their dates "
                     "set for the temporal controller.",
    "DATES_WRITTEN": "dates written by this run.",
    "DATES_KEPT": "dates kept from an earlier run with the same inputs and settings.",
}


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
        for spec in SERIES:
            self.addParameter(processing_parameter(spec))
        self.addOutput(QgsProcessingOutputRasterLayer(
            "STACK", self.tr("VRT stack of all dates")))
        self.addOutput(QgsProcessingOutputMultipleLayers(
            "OUTPUT_LAYERS", self.tr("Fused images, one per date")))
        self.addOutput(QgsProcessingOutputNumber("DATES_WRITTEN", self.tr("Dates written")))
        self.addOutput(QgsProcessingOutputNumber(
            "DATES_KEPT", self.tr("Dates kept from an earlier run")))

    def execute(self, parameters, context, feedback):
        self.require_torch()
        values = {name: self.layer_paths(parameters, name, context,
                                         required=name != "FINE_MASKS")
                  for name in ("FINE", "COARSE", "FINE_MASKS")}
        values.update(
            DATES=self.parameterAsFile(parameters, "DATES", context),
            TARGET_DATES=self.parameterAsString(parameters, "TARGET_DATES", context),
            MAX_GAP_DAYS=self.parameterAsInt(parameters, "MAX_GAP_DAYS", context),
            INCLUDE_FINE_DATES=FINE_DATE_OPTIONS[self.parameterAsEnum(
                parameters, "INCLUDE_FINE_DATES", context)],
            MODEL=self.parameterAsFile(parameters, "MODEL", context),
            DEVICE=DEVICE_OPTIONS[self.parameterAsEnum(parameters, "DEVICE", context)],
            TILE_SIZE=self.parameterAsInt(parameters, "TILE_SIZE", context),
            SCALE_RATIO=self.parameterAsDouble(parameters, "SCALE_RATIO", context),
            COARSE_PERIOD_DAYS=self.parameterAsInt(parameters, "COARSE_PERIOD_DAYS", context),
            PREFIX=self.parameterAsString(parameters, "PREFIX", context),
            SCHEDULER=self.parameterAsString(parameters, "SCHEDULER", context).strip(),
            **{name: self.parameterAsFileOutput(parameters, name, context)
               for name in ("OUTPUT_FOLDER", "SOURCES", "REPORT")})
        from ..core import jobs
        progress, is_canceled = feedback_callbacks(feedback)
        try:
            results, result = jobs.run_series(values, progress=progress,
                                              is_canceled=is_canceled, log=feedback.pushInfo,
                                              warn=feedback.pushWarning)
        except Canceled:
            raise QgsProcessingException(self.tr(
                "Canceled by the user. The dates finished so far are complete in {}; run "
                "again with the same outputs to go on from there.").format(
                    values["OUTPUT_FOLDER"]))
        self.load_as_temporal_group(context, result.outputs, values["PREFIX"] or "fused",
                                    raster.raster_info(values["FINE"][0]).band_names)
        return results

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
