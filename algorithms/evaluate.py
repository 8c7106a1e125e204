"""stfusion:evaluate — accuracy of a fused image against a real fine image of the same date.

Thin: the numerics are ``core.metrics.evaluate_files`` and the report ``core.report``
(the same code ``stfusion:fuse`` uses for its report when given a reference).
"""
import math

from qgis.core import (QgsCoordinateReferenceSystem, QgsFeature, QgsFeatureSink, QgsField,
                       QgsFields, QgsProcessing, QgsProcessingException,
                       QgsProcessingOutputFile, QgsProcessingOutputNumber,
                       QgsProcessingParameterFeatureSink, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterLayer,
                       QgsProcessingParameterString, QgsWkbTypes)
from qgis.PyQt.QtCore import QVariant

from ..core import acquisition, metrics, raster, report
from .base import RESAMPLE_HINT, StfusionAlgorithm, feedback_callbacks

WARP_HINT = ("Every input must be on the grid of REFERENCE (same size, origin, pixel size and "
             "CRS); warp it there first (e.g. GDAL 'Warp (reproject)' with the reference's "
             "extent and pixel size).")

PARAMETER_HELP = {
    "PREDICTION": "the fused image.",
    "REFERENCE": "the real fine image of the same date (the truth).",
    "COARSE": "optional coarse (MODIS) image of the same date on the fine grid: the un-fused "
              "baseline, added to the comparison table with the MAEC against it.",
    "COMPARE": "optional second prediction (e.g. STARFM) scored the same way, with the MAEC "
               "against it.",
    "BAND_NAMES": "comma-separated names; default: the band descriptions of the files, else "
                  "band 1, 2, ...",
    "RATIO": "fine/coarse pixel-size ratio h/l for ERGAS, e.g. 0.06 for 30 m / 500 m (a value "
             "above 1 is taken as coarse/fine); 0 = from COARSE by the rule fuse, FSDAF and "
             "STARFM use: its STFUSION_COARSE_PIXEL_SIZE (recorded by stfusion:resample_modis), "
             "else estimated from its pixel structure, else 500 m MODIS over the fine pixel "
             "(the report says which).",
    "REPORT": "the HTML report (tables like the paper's Tables 2 and 3, quick-looks like its "
              "Fig. 3, density scatter plots), with name.html.json and name.html.csv beside it.",
    "TABLE": "a table without geometry (method, band, one column per metric; band 'mean' = "
             "means over bands) added to the project.",
}
PARAMETER_HELP.update({name: "the prediction's mean over bands (ERGAS, SAM: the all-band "
                             "value), for models and qgis_process --json."
                       for name in metrics.METRICS})
METRIC_LINES = "\n".join(f"<b>{name}</b>: {text}" for name, text in metrics.CONVENTIONS.items())


class Evaluate(StfusionAlgorithm):
    NAME = "evaluate"
    DISPLAY_NAME = "Evaluate fusion accuracy"
    GROUP = "evaluation"
    SHORT_DESCRIPTION = ("Scores a fused image against a real fine image of the same date with "
                         "the paper's metrics and the field's, per band, block by block.")
    DESCRIPTION = ("Metrics: RMSE, MAE, R², rMAE, MAEC, Edge (the paper's) and SSIM, ERGAS, "
                   "SAM, CC, PSNR (the field's), on reflectance (0–1), per band, then the mean "
                   "over bands. All inputs must be on the grid of the reference with the same "
                   "bands; pixels count where every band of every input is valid.\n"
                   + METRIC_LINES)
    PARAMETER_HELP = PARAMETER_HELP
    TAGS = ("accuracy", "validation", "RMSE", "SSIM", "ERGAS", "SAM", "report")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer(
            "PREDICTION", self.tr("Fused (predicted) fine image")))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "REFERENCE", self.tr("Reference fine image of the same date")))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "COARSE", self.tr("Coarse image of the same date on the fine grid (un-fused "
                              "baseline)"), optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "COMPARE", self.tr("Second prediction to compare with (e.g. STARFM)"),
            optional=True))
        self.addParameter(QgsProcessingParameterString(
            "BAND_NAMES", self.tr("Band names, comma-separated (default: from the files)"),
            optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "RATIO", self.tr("Fine/coarse pixel-size ratio for ERGAS (0 = from the coarse "
                             "image)"),
            QgsProcessingParameterNumber.Double, defaultValue=0.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterFileDestination(
            "REPORT", self.tr("Accuracy report"), self.tr("HTML files (*.html *.htm)")))
        self.addParameter(QgsProcessingParameterFeatureSink(
            "TABLE", self.tr("Metrics table"), QgsProcessing.TypeVector,
            optional=True, createByDefault=True))
        self.addOutput(QgsProcessingOutputFile("JSON", self.tr("Metrics (JSON)")))
        self.addOutput(QgsProcessingOutputFile("CSV", self.tr("Metrics (CSV)")))
        for name in metrics.METRICS:
            self.addOutput(QgsProcessingOutputNumber(name, self.tr(f"{name} (mean over "
                                                                   f"bands)")))

    def execute(self, parameters, context, feedback):
        prediction = self.raster_source(parameters, "PREDICTION", context)
        reference = self.raster_source(parameters, "REFERENCE", context)
        coarse = self.raster_source(parameters, "COARSE", context, required=False)
        compare = self.raster_source(parameters, "COMPARE", context, required=False)
        self.check_same_grid(("REFERENCE", reference),
                             {"PREDICTION": prediction, "COMPARE": compare}, WARP_HINT)
        self.check_same_grid(("REFERENCE", reference), {"COARSE": coarse}, RESAMPLE_HINT)
        bands = raster.raster_info(reference).band_count
        self.check_band_counts({"PREDICTION": prediction, "COARSE": coarse,
                                "COMPARE": compare}, bands, "REFERENCE")
        text = self.parameterAsString(parameters, "BAND_NAMES", context).strip()
        band_names = [n.strip() for n in text.split(",")] if text else None
        if band_names and len(band_names) != bands:
            raise QgsProcessingException(
                f"Parameter BAND_NAMES gives {len(band_names)} names but REFERENCE has "
                f"{bands} bands; give one name per band, comma-separated, or leave it empty.")
        ratio = self.parameterAsDouble(parameters, "RATIO", context) or None
        html_path = report.html_path(self.parameterAsFileOutput(parameters, "REPORT", context))

        progress, is_canceled = feedback_callbacks(feedback)
        feedback.pushInfo("Scoring the prediction block by block (two passes)...")
        image_names = {role: self.layer_name(parameters, name, context)
                 for role, name in (("prediction", "PREDICTION"), ("coarse", "COARSE"),
                                    ("compare", "COMPARE"))}
        evaluation = metrics.evaluate_files(
            prediction, reference, coarse=coarse, compare=compare, ratio=ratio,
            band_names=band_names, progress=lambda f: progress(0.9 * f),
            is_canceled=is_canceled, image_names=image_names)
        feedback.pushInfo(f"ERGAS: {evaluation.ratio_note}")
        for method in evaluation.methods:
            feedback.pushInfo(method.label + ": " + ", ".join(
                f"{k} {report.fmt(v, k)}" for k, v in method.mean.items()))
        paths = report.write_report(evaluation, html_path, title=acquisition.titled(
            "stfusion evaluate", prediction))
        progress(0.97)

        outputs = {"REPORT": paths.html, "JSON": paths.json, "CSV": paths.csv}
        outputs.update({name: evaluation.mean[name] for name in metrics.METRICS})
        table_id = self._write_table(parameters, context, evaluation)
        if table_id is not None:
            outputs["TABLE"] = table_id
        progress(1.0)
        return outputs

    def _write_table(self, parameters, context, evaluation):
        names = evaluation.metric_names
        fields = QgsFields()
        fields.append(QgsField("method", QVariant.String))
        fields.append(QgsField("band", QVariant.String))
        for name in names:
            fields.append(QgsField(name, QVariant.Double))
        sink, dest_id = self.parameterAsSink(parameters, "TABLE", context, fields,
                                             QgsWkbTypes.NoGeometry,
                                             QgsCoordinateReferenceSystem())
        if sink is None:
            return None
        for row in evaluation.rows():
            feature = QgsFeature(fields)
            values = [row["method"], row["band"]]
            for name in names:
                value = row[name]
                values.append(None if value is None or (isinstance(value, float)
                                                        and math.isnan(value)) else value)
            feature.setAttributes(values)
            sink.addFeature(feature, QgsFeatureSink.FastInsert)
        return dest_id


ALGORITHM = Evaluate
