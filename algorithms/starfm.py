"""stfusion:starfm — the classic STARFM baseline (Gao et al. 2006), vectorised and tiled."""
from qgis.core import (QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination)

from ..core import raster
from .base import (FUSION_INPUT_HELP, RgbRendering, StfusionAlgorithm, feedback_callbacks,
                   odd_window)

PARAMETER_HELP = {
    **FUSION_INPUT_HELP,
    "FINE_T3": "optional fine image of a second pair; both pairs' predictions are then "
               "combined. Give its coarse image too.",
    "WINDOW": "moving window in fine pixels (odd); 0 = 1.5 coarse pixels, the original's "
              "750 m for 500 m MODIS (the coarse/fine pixel-size ratio from the "
              "STFUSION_COARSE_PIXEL_SIZE stfusion:resample_modis records, else estimated from "
              "the coarse images; the log says which).",
    "CLASSES": "number of classes of the similarity threshold (similar pixels differ from the "
               "centre by at most 2 x band std / classes); original default 4.",
    "FINE_UNCERTAINTY": "fine sensor uncertainty in reflectance (0.002); candidate pixels must "
                        "beat the centre by more than the combined uncertainty.",
    "COARSE_UNCERTAINTY": "coarse sensor uncertainty in reflectance (0.002).",
    "OUTPUT": "GeoTIFF on the fine grid, encoded like the fine image at t1; nodata where any "
              "input is nodata.",
}


class Starfm(StfusionAlgorithm):
    NAME = "starfm"
    DISPLAY_NAME = "STARFM (classic baseline)"
    GROUP = "classic"
    SHORT_DESCRIPTION = ("STARFM (Gao et al. 2006), the classic baseline: predicts the fine "
                         "image of t2 from one or two Landsat/MODIS pairs.")
    DESCRIPTION = ("Inside a moving window, the spectrally similar pixels of the fine image are "
                   "weighted by their spectral difference to the coarse image, their temporal "
                   "change and their distance. All inputs on one grid (see "
                   "stfusion:resample_modis).")
    PARAMETER_HELP = PARAMETER_HELP
    TAGS = ("STARFM", "baseline", "classic")

    def initAlgorithm(self, config=None):
        self.add_fusion_inputs()
        self.add_number_parameters((
            ("WINDOW", "Moving window (fine pixels, odd; 0 = 1.5 coarse pixels)",
             QgsProcessingParameterNumber.Integer, 0, 0),
            ("CLASSES", "Classes of the similarity threshold",
             QgsProcessingParameterNumber.Integer, 4, 1),
            ("FINE_UNCERTAINTY", "Fine sensor uncertainty (reflectance)",
             QgsProcessingParameterNumber.Double, 0.002, 0.0),
            ("COARSE_UNCERTAINTY", "Coarse sensor uncertainty (reflectance)",
             QgsProcessingParameterNumber.Double, 0.002, 0.0)))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT",
                                                                  self.tr("STARFM prediction")))

    def execute(self, parameters, context, feedback):
        from ..core import methods, scale_ratio, starfm
        paths = self.fusion_inputs(parameters, context, optional=("FINE_T3", "COARSE_T3"))
        fine_info = raster.raster_info(paths["FINE_T1"])
        window = self.parameterAsInt(parameters, "WINDOW", context)
        if not window:
            rule = scale_ratio.resolve(paths["FINE_T1"], [paths["COARSE_T1"],
                                                          paths["COARSE_T2"],
                                                          paths["COARSE_T3"]])
            feedback.pushInfo(rule.note)
            window = starfm.window_for_scale_ratio(rule.value)
        window = odd_window(window, feedback)
        params = starfm.StarfmParams(
            window=window, classes=self.parameterAsInt(parameters, "CLASSES", context),
            fine_uncertainty=self.parameterAsDouble(parameters, "FINE_UNCERTAINTY", context),
            coarse_uncertainty=self.parameterAsDouble(parameters, "COARSE_UNCERTAINTY",
                                                      context))
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        progress, is_canceled = feedback_callbacks(feedback)
        feedback.pushInfo(f"STARFM with a {window}-pixel window, {params.classes} classes")
        methods.fuse_files("starfm", params, paths["FINE_T1"], paths["COARSE_T1"],
                           paths["COARSE_T2"], output, fine_t3=paths["FINE_T3"],
                           coarse_t3=paths["COARSE_T3"], progress=progress,
                           is_canceled=is_canceled)
        RgbRendering.attach(context, output, fine_info.band_names)
        return {"OUTPUT": output}


ALGORITHM = Starfm
