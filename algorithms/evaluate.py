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

from ..core import metrics, raster, report
from .base import RESAMPLE_HINT, StfusionAlgorithm, feedback_callbacks

WARP_HINT = ("Every input must be on the grid of REFERENCE (same size, origin, pixel size and "
             "CRS); warp it there first (e.g. GDAL 'Warp (reproject)' with the reference's "
             "extent and pixel size).")

_METRIC_HELP = "".join(f"<li><b>{name}</b>: {text}</li>"
                       for name, text in metrics.CONVENTIONS.items())

HELP = f"""Scores a fused (predicted) fine image against a real fine image (e.g. Landsat) of
the same date, with the paper's metrics (RMSE, MAE, R², rMAE, MAEC, Edge) and the field's
(SSIM, ERGAS, SAM, CC, PSNR), per band and averaged, block by block (any raster size).
<h3>Parameters</h3><ul>
<li><b>PREDICTION</b>: the fused image.</li>
<li><b>REFERENCE</b>: the real fine image of the same date (the truth).</li>
<li><b>COARSE</b> (optional): the coarse image (MODIS) of the same date on the fine grid — the
un-fused baseline; adds it to the comparison table and MAEC vs coarse.</li>
<li><b>COMPARE</b> (optional): a second prediction (e.g. STARFM) scored the same way; adds
MAEC vs compare.</li>
<li><b>BAND_NAMES</b> (optional): comma-separated names (default: the band descriptions of
the files, else band 1, 2, ...).</li>
<li><b>RATIO</b>: fine/coarse pixel-size ratio h/l for ERGAS, e.g. 0.06 for 30 m / 500 m (a
value above 1 is taken as coarse/fine). 0 = from the rasters when they tell it, else 30/500
(the report says which).</li>
<li><b>REPORT</b>: the HTML report (tables like the paper's Tables 2 and 3, quick-looks
like its Fig. 3, density scatter plots), with name.html.json and name.html.csv beside it.</li>
<li><b>TABLE</b>: a table without geometry (method, band, one column per metric; band
'mean' = means over bands) added to the project.</li></ul>
All inputs must be on the REFERENCE grid with the same bands. Pixels count where every
band of every input is valid.
<h3>Metrics (reflectance 0–1, per band, then the mean over bands)</h3><ul>{_METRIC_HELP}</ul>
Outputs RMSE, MAE, R2, rMAE, Edge, SSIM, ERGAS, SAM, CC, PSNR hold the prediction's means
over bands (ERGAS, SAM: the all-band values) for models and qgis_process --json."""


class Evaluate(StfusionAlgorithm):
    NAME = "evaluate"
    DISPLAY_NAME = "Evaluate fusion accuracy"
    GROUP = "Evaluation"
    HELP = HELP

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
            "RATIO", self.tr("Fine/coarse pixel-size ratio for ERGAS (0 = from the rasters, "
                             "else 30/500)"),
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
        evaluation = metrics.evaluate_files(
            prediction, reference, coarse=coarse, compare=compare, ratio=ratio,
            band_names=band_names, progress=lambda f: progress(0.9 * f),
            is_canceled=is_canceled)
        feedback.pushInfo(f"ERGAS: {evaluation.ratio_note}")
        for method in evaluation.methods:
            feedback.pushInfo(method.label + ": " + ", ".join(
                f"{k} {report.fmt(v, k)}" for k, v in method.mean.items()))
        paths = report.write_report(evaluation, html_path)
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
