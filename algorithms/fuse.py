"""stfusion:fuse — predict the fine image of a date only the coarse sensor saw."""
from qgis.core import QgsProcessingOutputNumber

from ..core import acquisition, raster
from ..core.parameters import ARCHITECTURE_OPTIONS, DEVICE_OPTIONS, FUSE, help_lines
from .base import RgbRendering, StfusionAlgorithm, feedback_callbacks, name_output_layer
from .parameters import processing_parameter

PARAMETER_HELP = {
    **help_lines(FUSE),          # one definition with the command line's (core.parameters)
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
        for spec in FUSE:
            self.addParameter(processing_parameter(spec))
        for name, label in (("RMSE", "RMSE (mean over bands)"), ("SSIM", "SSIM (mean)"),
                            ("ERGAS", "ERGAS"), ("SAM", "SAM (degrees)")):
            self.addOutput(QgsProcessingOutputNumber(name, self.tr(label)))

    def execute(self, parameters, context, feedback):
        self.require_torch()
        values = dict(self.fusion_inputs(parameters, context))
        values.update(
            MODEL=self.parameterAsFile(parameters, "MODEL", context),
            ARCHITECTURE=ARCHITECTURE_OPTIONS[self.parameterAsEnum(parameters, "ARCHITECTURE",
                                                                   context)],
            ADAPT=self.parameterAsInt(parameters, "ADAPT", context),
            DEVICE=DEVICE_OPTIONS[self.parameterAsEnum(parameters, "DEVICE", context)],
            TILE_SIZE=self.parameterAsInt(parameters, "TILE_SIZE", context),
            SCALE_RATIO=self.parameterAsDouble(parameters, "SCALE_RATIO", context),
            SCHEDULER=self.parameterAsString(parameters, "SCHEDULER", context).strip(),
            OUTPUT=self.parameterAsOutputLayer(parameters, "OUTPUT", context),
            UNCERTAINTY=self.parameterAsOutputLayer(parameters, "UNCERTAINTY", context),
            REPORT=self.parameterAsFileOutput(parameters, "REPORT", context))
        from ..core import jobs
        progress, is_canceled = feedback_callbacks(feedback)
        results = jobs.run_fuse(values, progress=progress, is_canceled=is_canceled,
                                log=feedback.pushInfo)
        RgbRendering.attach(context, values["OUTPUT"],
                            raster.raster_info(values["FINE_T1"]).band_names)
        name_output_layer(context, values["OUTPUT"],
                          acquisition.titled("fused", values["COARSE_T2"]))
        if values["UNCERTAINTY"]:
            name_output_layer(context, values["UNCERTAINTY"],
                              acquisition.titled("expected error", values["COARSE_T2"]))
        return results


ALGORITHM = Fuse
