"""stfusion:fuse — predict the fine image of a date only the coarse sensor saw."""
import time

from qgis.core import (QgsProcessingOutputNumber, QgsProcessingParameterFile,
                       QgsProcessingParameterFileDestination,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination,
                       QgsProcessingParameterRasterLayer)

from ..core import acquisition, raster
from .base import (FUSION_INPUT_HELP, RgbRendering, StfusionAlgorithm, as_advanced,
                   feedback_callbacks, name_output_layer)
from .torch_params import (ARCHITECTURE_OPTIONS, architecture_parameter, device_parameter,
                           resolve_device)

PARAMETER_HELP = {
    **FUSION_INPUT_HELP,
    "MODEL": "a model file from stfusion:train; empty = the model shipped with the plugin.",
    "ARCHITECTURE": "which shipped model to use when no model file is given: the project's "
                    "default (best on every real case measured) or the paper's 3x3-patch DCNN, "
                    "trained on the given pair(s) first.",
    "ADAPT": "epochs of fine-tuning on the given pair(s) before predicting; 0 = none.",
    "REFERENCE": "optional real fine image of t2: the report then scores the prediction as "
                 "stfusion:evaluate does, and the RMSE, SSIM, ERGAS and SAM outputs are set.",
    "DEVICE": "auto uses the GPU when PyTorch has one, else the CPU.",
    "TILE_SIZE": "pixels per tile side, rounded to the model's block grid and to a multiple "
                 "of 16 (each tile is one block of the output GeoTIFF); memory grows with its "
                 "square, never with the raster size.",
    "SCALE_RATIO": "the coarse pixel size over the fine one (e.g. 16 for 480 m MODIS over "
                   "30 m Landsat); 0 = from the coarse images: the STFUSION_COARSE_PIXEL_SIZE "
                   "that stfusion:resample_modis records, else estimated from their pixel "
                   "structure, else 500 m over the fine pixel size. The log and the report say "
                   "which.",
    "OUTPUT": "the fused GeoTIFF on the fine grid, with the data type, scale and nodata of the "
              "fine image at t1; a pixel that is nodata in any input is nodata here. Where a "
              "pair disagrees with its coarse image, or the scene changed too much since it, "
              "measured at the coarse scale, the prediction moves towards the coarse image of "
              "t2; the log and the report say how far each pair is trusted. Loaded as "
              "'fused <date of t2>'.",
    "UNCERTAINTY": "optional (default model): the expected absolute error of the fused image "
                   "per pixel and band, in the data's units, on the same grid with the same "
                   "encoding and nodata; the report summarises it (and scores it against a "
                   "reference).",
    "REPORT": "HTML report: inputs, model, timing and quick-looks, and the accuracy tables "
              "when a reference is given.",
    "RMSE": "mean over bands, with a reference.",
    "SSIM": "mean over bands, with a reference.",
    "ERGAS": "of the whole image, with a reference.",
    "SAM": "in degrees, with a reference.",
}


class Fuse(StfusionAlgorithm):
    NAME = "fuse"
    DISPLAY_NAME = "Fuse Landsat and MODIS (DCNN)"
    GROUP = "fusion"
    SHORT_DESCRIPTION = ("Predicts the Landsat-like (fine) image of a date only MODIS saw, "
                         "from a Landsat/MODIS pair and the MODIS image of that date.")
    DESCRIPTION = ("All inputs must be on one grid with the same bands in the same order: "
                   "bring MODIS onto the Landsat grid with stfusion:resample_modis first.\n"
                   "The scene is processed in tiles with a halo (bounded memory, no seams), "
                   "with progress and cancel; the output appears only when the run succeeds.")
    PARAMETER_HELP = PARAMETER_HELP
    TAGS = ("DCNN", "deep learning", "CNN", "PyTorch", "downscaling", "prediction")

    def initAlgorithm(self, config=None):
        self.add_fusion_inputs()
        self.addParameter(QgsProcessingParameterFile(
            "MODEL", self.tr("Model file from stfusion:train (empty = shipped default)"),
            extension="pt", optional=True))
        self.addParameter(architecture_parameter(
            self.tr("Shipped model to use without a model file")))
        self.addParameter(QgsProcessingParameterNumber(
            "ADAPT", self.tr("Fine-tune on the given pair(s) first (epochs, 0 = no)"),
            QgsProcessingParameterNumber.Integer, defaultValue=0, minValue=0, maxValue=500))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "REFERENCE", self.tr("Reference fine image at t2 (optional, for accuracy metrics)"),
            optional=True))
        self.addParameter(device_parameter())
        tile_size = QgsProcessingParameterNumber(
            "TILE_SIZE", self.tr("Tile size (pixels; smaller uses less memory)"),
            QgsProcessingParameterNumber.Integer, defaultValue=896, minValue=32, maxValue=8192)
        scale_ratio = QgsProcessingParameterNumber(
            "SCALE_RATIO",
            self.tr("Coarse / fine pixel size (0 = from the coarse images)"),
            QgsProcessingParameterNumber.Double, defaultValue=0.0, minValue=0.0, maxValue=100.0)
        for advanced in (tile_size, scale_ratio):
            self.addParameter(as_advanced(advanced))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT",
                                                                  self.tr("Fused image")))
        self.addParameter(QgsProcessingParameterRasterDestination(
            "UNCERTAINTY", self.tr("Expected absolute error"), optional=True,
            createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            "REPORT", self.tr("Fusion report"), fileFilter=self.tr("HTML files (*.html)"),
            optional=True, createByDefault=True))
        for name, label in (("RMSE", "RMSE (mean over bands)"), ("SSIM", "SSIM (mean)"),
                            ("ERGAS", "ERGAS"), ("SAM", "SAM (degrees)")):
            self.addOutput(QgsProcessingOutputNumber(name, self.tr(label)))

    def execute(self, parameters, context, feedback):
        self.require_torch()
        paths = self.fusion_inputs(parameters, context)
        fine_info = raster.raster_info(paths["FINE_T1"])
        device = resolve_device(self.parameterAsEnum(parameters, "DEVICE", context))
        model_path = self.parameterAsFile(parameters, "MODEL", context) or None
        architecture = ARCHITECTURE_OPTIONS[self.parameterAsEnum(parameters, "ARCHITECTURE",
                                                                 context)]
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        uncertainty = self.parameterAsOutputLayer(parameters, "UNCERTAINTY", context) or None
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
            progress=progress, is_canceled=is_canceled, log=feedback.pushInfo,
            uncertainty=uncertainty)
        seconds = time.time() - started
        feedback.pushInfo(f"Fused in {seconds:.1f} s: {output}")
        RgbRendering.attach(context, output, fine_info.band_names)
        name_output_layer(context, output, acquisition.titled("fused", paths["COARSE_T2"]))
        results = {"OUTPUT": output}
        if uncertainty:
            name_output_layer(context, uncertainty,
                              acquisition.titled("expected error", paths["COARSE_T2"]))
            results["UNCERTAINTY"] = uncertainty
        evaluation = None
        if paths["REFERENCE"]:
            from ..core import metrics
            feedback.pushInfo("Scoring against REFERENCE")
            evaluation = metrics.evaluate_files(output, paths["REFERENCE"],
                                                coarse=paths["COARSE_T2"])
            results.update({key: evaluation.mean[key.lower()]
                            for key in ("RMSE", "SSIM", "ERGAS", "SAM")})
        if report_path:
            from ..core import report, training_scenes
            shipped = None if architecture == "paper" else fusion.default_model_path()
            trained = model_path or shipped  # the paper DCNN trains on these very inputs
            scene = training_scenes.scene_of(trained, paths["FINE_T1"]) if trained else None
            run = {"inputs": {n: p for n, p in paths.items() if p}, "output": output,
                   "band_names": fine_info.band_names, "model": summary,
                   "seconds": round(seconds, 2),
                   "trained_on_this_scene": scene.describe() if scene else None}
            if uncertainty:
                from ..core import trust
                run["uncertainty"] = trust.uncertainty_summary(output, uncertainty,
                                                               paths["REFERENCE"])
            results["REPORT"] = report.write_fusion_report(
                report.html_path(report_path), run, evaluation,
                title=acquisition.titled("stfusion fuse", paths["COARSE_T2"])).html
        return results


ALGORITHM = Fuse
