"""stfusion:fuse — predict the fine image of a date only the coarse sensor saw."""
import time

from qgis.core import (QgsProcessingOutputNumber,
                       QgsProcessingParameterDefinition,
                       QgsProcessingParameterFile, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination,
                       QgsProcessingParameterRasterLayer)

from ..core import raster
from .base import RgbRendering, StfusionAlgorithm, feedback_callbacks
from .torch_params import (ARCHITECTURE_OPTIONS, architecture_parameter, device_parameter,
                           resolve_device)

HELP = """Predicts the Landsat-like (fine) image of date t2 from a fine/coarse pair at t1 and
the coarse (MODIS) image at t2, with a deep CNN.

All inputs must be on one grid: bring MODIS onto the Landsat grid with stfusion:resample_modis
first. Inputs must have the same bands in the same order.

FINE_T1, COARSE_T1: the fine and coarse images of the prior pair (t1).
COARSE_T2: the coarse image of the date to predict (t2).
FINE_T3, COARSE_T3: optional second pair after t2; both pairs are then weighted locally.
MODEL: a model file from stfusion:train; empty = the shipped default model.
ARCHITECTURE: used when MODEL is empty: the shipped default, or the paper's 3x3-patch DCNN.
ADAPT: epochs of fine-tuning on the given pair(s) before predicting (0 = none).
REFERENCE: optional real fine image at t2; adds accuracy metrics (as stfusion:evaluate) to the
report and the RMSE/SSIM/ERGAS/SAM outputs.
DEVICE: auto (GPU when available), cpu or cuda.
TILE_SIZE (advanced): pixels per tile side, rounded to the model's block grid and to a
multiple of 16 (each tile is one block of the output GeoTIFF); memory use grows with its
square, never with the raster size.
SCALE_RATIO (advanced): the coarse sensor's pixel size over the fine one (e.g. 16 for 480 m
MODIS over 30 m Landsat); 0 = 500 m over the fine pixel size.
OUTPUT: the fused GeoTIFF on the fine grid (data type, scale and nodata of FINE_T1); a pixel
that is nodata in any input is nodata here.
REPORT: HTML report (model, settings, timing, and metrics when REFERENCE is given).

The scene is processed in tiles with a halo (bounded memory, no seams), with progress and
cancel; the output appears only when the run succeeds."""


class Fuse(StfusionAlgorithm):
    NAME = "fuse"
    DISPLAY_NAME = "Fuse Landsat and MODIS (DCNN)"
    GROUP = "Fusion"
    HELP = HELP

    def initAlgorithm(self, config=None):
        self.add_fusion_inputs()
        self.addParameter(QgsProcessingParameterFile(
            "MODEL", "Model file from stfusion:train (empty = shipped default)",
            extension="pt", optional=True))
        self.addParameter(architecture_parameter("Shipped model to use when MODEL is empty"))
        self.addParameter(QgsProcessingParameterNumber(
            "ADAPT", "Fine-tune on the given pair(s) first (epochs, 0 = no)",
            QgsProcessingParameterNumber.Integer, defaultValue=0, minValue=0, maxValue=500))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "REFERENCE", "Reference fine image at t2 (optional, for accuracy metrics)",
            optional=True))
        self.addParameter(device_parameter())
        tile_size = QgsProcessingParameterNumber(
            "TILE_SIZE", "Tile size (pixels; smaller uses less memory)",
            QgsProcessingParameterNumber.Integer, defaultValue=896, minValue=32, maxValue=8192)
        scale_ratio = QgsProcessingParameterNumber(
            "SCALE_RATIO", "Coarse / fine pixel size (0 = 500 m over the fine pixel size)",
            QgsProcessingParameterNumber.Double, defaultValue=0.0, minValue=0.0, maxValue=100.0)
        for advanced in (tile_size, scale_ratio):
            advanced.setFlags(advanced.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(advanced)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Fused image"))
        self.addParameter(QgsProcessingParameterFileDestination(
            "REPORT", "Report", fileFilter="HTML files (*.html)", optional=True,
            createByDefault=True))
        for name, label in (("RMSE", "RMSE (mean over bands)"), ("SSIM", "SSIM (mean)"),
                            ("ERGAS", "ERGAS"), ("SAM", "SAM (degrees)")):
            self.addOutput(QgsProcessingOutputNumber(name, label))

    def execute(self, parameters, context, feedback):
        self.require_torch()
        paths = self.fusion_inputs(parameters, context)
        fine_info = raster.raster_info(paths["FINE_T1"])
        device = resolve_device(self.parameterAsEnum(parameters, "DEVICE", context))
        model_path = self.parameterAsFile(parameters, "MODEL", context) or None
        architecture = ARCHITECTURE_OPTIONS[self.parameterAsEnum(parameters, "ARCHITECTURE",
                                                                 context)]
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        report_path = self.parameterAsFileOutput(parameters, "REPORT", context)

        from ..core import fusion
        progress, is_canceled = feedback_callbacks(feedback)
        started = time.time()
        summary = fusion.fuse_files(
            paths["FINE_T1"], paths["COARSE_T1"], paths["COARSE_T2"], output,
            fine_t3=paths["FINE_T3"], coarse_t3=paths["COARSE_T3"], model_path=model_path,
            architecture=None if model_path else architecture,
            adapt_epochs=self.parameterAsInt(parameters, "ADAPT", context), device=device,
            tile_size=self.parameterAsInt(parameters, "TILE_SIZE", context),
            scale_ratio=self.parameterAsDouble(parameters, "SCALE_RATIO", context) or None,
            progress=progress, is_canceled=is_canceled, log=feedback.pushInfo)
        seconds = time.time() - started
        feedback.pushInfo(f"Fused in {seconds:.1f} s: {output}")
        RgbRendering.attach(context, output, fine_info.band_names)
        results = {"OUTPUT": output}
        evaluation = None
        if paths["REFERENCE"]:
            from ..core import metrics
            feedback.pushInfo("Scoring against REFERENCE")
            evaluation = metrics.evaluate_files(output, paths["REFERENCE"],
                                                coarse=paths["COARSE_T2"])
            results.update({key: evaluation.mean[key.lower()]
                            for key in ("RMSE", "SSIM", "ERGAS", "SAM")})
        if report_path:
            from ..core import report
            run = {"inputs": {n: p for n, p in paths.items() if p}, "output": output,
                   "model": summary, "seconds": round(seconds, 2)}
            results["REPORT"] = report.write_fusion_report(report.html_path(report_path), run,
                                                           evaluation).html
        return results


ALGORITHM = Fuse
