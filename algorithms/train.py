"""stfusion:train — learn the coarse-to-fine relation from Landsat/MODIS pairs."""
from qgis.core import (QgsProcessing, QgsProcessingException,
                       QgsProcessingParameterFileDestination, QgsProcessingParameterMultipleLayers,
                       QgsProcessingParameterNumber)

from ..core import raster, report
from ..core.errors import InputError
from .base import StfusionAlgorithm, feedback_callbacks
from .torch_params import (ARCHITECTURE_OPTIONS, architecture_parameter, device_parameter,
                           resolve_device)

HELP = """Trains a fusion model on fine/coarse image pairs and saves it for stfusion:fuse.

FINE: fine (Landsat) images, one per date.
COARSE: coarse (MODIS) images on the same grid, the same dates in the same order.
ARCHITECTURE: "default" (the project's best model: a band-agnostic CNN that blends physically
based change candidates; it learns how the scene changes between dates, so give at least two
dates) or "paper" (the paper's regression DCNN on 3x3 patches with convolution, pooling and
fully connected layers, trained on patches sampled by colour, edge and pixel statistics; one
pair is enough).
EPOCHS, BATCH_SIZE, LEARNING_RATE, MOMENTUM, WEIGHT_DECAY: SGD with momentum and mean squared
error loss; the defaults are the paper's Table 1.
DEVICE: auto (GPU when available), cpu or cuda. SEED: same seed, data and device give the same
weights.
OUTPUT_MODEL: the model file (weights and metadata; loading it never runs code from the file).
REPORT: HTML report with the training and validation loss curves and the settings."""


class Train(StfusionAlgorithm):
    NAME = "train"
    DISPLAY_NAME = "Train a fusion model"
    GROUP = "Fusion"
    HELP = HELP

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "FINE", "Fine images (Landsat), one per date", QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "COARSE", "Coarse images on the fine grid, same dates and order",
            QgsProcessing.TypeRaster))
        self.addParameter(architecture_parameter("Architecture"))
        self.add_number_parameters((
            ("EPOCHS", "Epochs", QgsProcessingParameterNumber.Integer, 50, 1),
            ("BATCH_SIZE", "Batch size", QgsProcessingParameterNumber.Integer, 64, 1),
            ("LEARNING_RATE", "Initial learning rate", QgsProcessingParameterNumber.Double,
             0.01, 0.0),
            ("MOMENTUM", "SGD momentum", QgsProcessingParameterNumber.Double, 0.9, 0.0),
            ("WEIGHT_DECAY", "Weight decay", QgsProcessingParameterNumber.Double, 0.0001,
             0.0),
            ("SEED", "Random seed", QgsProcessingParameterNumber.Integer, 0, 0)))
        self.addParameter(device_parameter())
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_MODEL", "Model file", fileFilter="stfusion model (*.pt)"))
        self.addParameter(QgsProcessingParameterFileDestination(
            "REPORT", "Training report", fileFilter="HTML files (*.html)", optional=True,
            createByDefault=True))

    def execute(self, parameters, context, feedback):
        self.require_torch()
        fine = self.layer_paths(parameters, "FINE", context)
        coarse = self.layer_paths(parameters, "COARSE", context)
        if len(fine) != len(coarse):
            raise QgsProcessingException(
                f"Parameters FINE and COARSE must list the same dates: {len(fine)} fine and "
                f"{len(coarse)} coarse images given.")
        reference = ("FINE (first image)", fine[0])
        self.check_same_grid(reference, {f"FINE image {i + 1}": p for i, p in enumerate(fine)})
        self.check_same_grid(reference, {f"COARSE image {i + 1}": p
                                         for i, p in enumerate(coarse)})
        band_count = raster.raster_info(fine[0]).band_count
        self.check_band_counts({f"image {i + 1}": p for i, p in enumerate(fine + coarse)},
                               band_count, "the first FINE image")
        settings = dict(
            architecture=ARCHITECTURE_OPTIONS[self.parameterAsEnum(parameters, "ARCHITECTURE",
                                                                   context)],
            epochs=self.parameterAsInt(parameters, "EPOCHS", context),
            batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
            learning_rate=self.parameterAsDouble(parameters, "LEARNING_RATE", context),
            momentum=self.parameterAsDouble(parameters, "MOMENTUM", context),
            weight_decay=self.parameterAsDouble(parameters, "WEIGHT_DECAY", context),
            seed=self.parameterAsInt(parameters, "SEED", context),
            device=resolve_device(self.parameterAsEnum(parameters, "DEVICE", context)))
        model_path = self.parameterAsFileOutput(parameters, "OUTPUT_MODEL", context)
        report_path = self.parameterAsFileOutput(parameters, "REPORT", context)
        report_path = report_path and report.html_path(report_path)

        from ..core import training
        progress, is_canceled = feedback_callbacks(feedback)
        feedback.pushInfo(f"Training {settings['architecture']} on {len(fine)} pair(s), "
                          f"device {settings['device']}")
        try:
            result = training.train_files(list(zip(fine, coarse)), model_path,
                                          progress=progress, is_canceled=is_canceled,
                                          log=feedback.pushInfo, **settings)
        except InputError:
            raise
        except ValueError as exc:
            raise QgsProcessingException(f"Parameters FINE and COARSE: {exc}")
        results = {"OUTPUT_MODEL": model_path}
        if report_path:
            report.write_training_report(report_path, result.metadata, result.history)
            results["REPORT"] = report_path
        return results

    def layer_paths(self, parameters, name, context):
        paths = self.layer_sources(parameters, name, context)
        if not paths:
            raise QgsProcessingException(f"Parameter {name}: give at least one raster layer.")
        for path in paths:
            try:
                raster.raster_info(path)
            except raster.RasterError as exc:
                raise QgsProcessingException(f"Parameter {name}: {exc}")
        return paths


ALGORITHM = Train
