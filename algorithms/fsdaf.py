"""stfusion:fsdaf — the classic FSDAF baseline (Zhu et al. 2016), vectorised and tiled."""
from qgis.core import (QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination)

from ..core import raster
from .base import (FUSION_INPUT_HELP, RgbRendering, StfusionAlgorithm, feedback_callbacks,
                   odd_window)

PARAMETER_HELP = {
    **FUSION_INPUT_HELP,
    "CLASSES": "k-means classes of the fine image (original default 4).",
    "WINDOW": "similar-pixel window in fine pixels (odd).",
    "SCALE_RATIO": "coarse pixel size / fine pixel size (e.g. 16 for 480 m over 30 m); 0 = "
                   "from the coarse images (the STFUSION_COARSE_PIXEL_SIZE stfusion:"
                   "resample_modis records, else estimated from their pixel structure, else "
                   "500 m MODIS over the fine pixel size); the log says which.",
    "OUTPUT": "GeoTIFF on the fine grid, encoded like the fine image at t1; nodata where any "
              "input is nodata.",
}


class Fsdaf(StfusionAlgorithm):
    NAME = "fsdaf"
    DISPLAY_NAME = "FSDAF (classic baseline)"
    GROUP = "classic"
    SHORT_DESCRIPTION = ("FSDAF (Zhu et al. 2016), flexible spatiotemporal data fusion: "
                         "handles abrupt land-cover change better than STARFM.")
    DESCRIPTION = ("Classifies the fine image at t1 (k-means), estimates each class's temporal "
                   "change by unmixing the coarse change over coarse pixels, predicts the "
                   "coarse image at t2 at fine resolution with a thin-plate spline, distributes "
                   "the residual with the homogeneity index, and smooths the result with "
                   "similar pixels in a neighbourhood. All inputs on one grid (see "
                   "stfusion:resample_modis).")
    PARAMETER_HELP = PARAMETER_HELP
    TAGS = ("FSDAF", "baseline", "classic", "unmixing")

    def initAlgorithm(self, config=None):
        self.add_fusion_inputs(second_pair=False)
        self.add_number_parameters((
            ("CLASSES", "Classes (k-means)", QgsProcessingParameterNumber.Integer, 4, 1),
            ("WINDOW", "Similar-pixel window (fine pixels, odd)",
             QgsProcessingParameterNumber.Integer, 21, 1),
            ("SCALE_RATIO", "Coarse / fine pixel size (0 = from the coarse images)",
             QgsProcessingParameterNumber.Double, 0.0, 0.0)))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT",
                                                                  self.tr("FSDAF prediction")))

    def execute(self, parameters, context, feedback):
        from ..core import fsdaf, methods, scale_ratio
        paths = self.fusion_inputs(parameters, context, optional=())
        fine_info = raster.raster_info(paths["FINE_T1"])
        window = odd_window(self.parameterAsInt(parameters, "WINDOW", context), feedback)
        rule = scale_ratio.resolve(paths["FINE_T1"], [paths["COARSE_T1"], paths["COARSE_T2"]],
                                   self.parameterAsDouble(parameters, "SCALE_RATIO", context))
        feedback.pushInfo(rule.note)
        params = fsdaf.FsdafParams(scale_ratio=max(1.0, rule.value), window=window,
                                   classes=self.parameterAsInt(parameters, "CLASSES", context))
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        progress, is_canceled = feedback_callbacks(feedback)
        feedback.pushInfo(f"FSDAF with {params.classes} classes, a {window}-pixel window, "
                          f"scale ratio {params.block}")
        methods.fuse_files("fsdaf", params, paths["FINE_T1"], paths["COARSE_T1"],
                           paths["COARSE_T2"], output, progress=progress,
                           is_canceled=is_canceled)
        RgbRendering.attach(context, output, fine_info.band_names)
        return {"OUTPUT": output}


ALGORITHM = Fsdaf
