"""stfusion:train — learn the coarse-to-fine relation from Landsat/MODIS pairs."""
import datetime
import os

from qgis.core import (QgsApplication, QgsProcessing, QgsProcessingException,
                       QgsProcessingParameterFileDestination, QgsProcessingParameterMultipleLayers,
                       QgsProcessingParameterNumber)

from ..core import raster, report
from ..core.errors import InputError
from .base import StfusionAlgorithm, feedback_callbacks
from .torch_params import (ARCHITECTURE_OPTIONS, architecture_parameter, device_parameter,
                           resolve_device)

MODEL_FILE_NAME = "model.pt"

PARAMETER_HELP = {
    "FINE": "fine (Landsat) images, one per date.",
    "COARSE": "coarse (MODIS) images on the fine grid, of the same dates in the same order.",
    "ARCHITECTURE": "default: the project's model, a band-agnostic CNN that blends physically "
                    "based change candidates; it learns how the scene changes between dates, "
                    "so give at least two dates. paper: the paper's regression DCNN on 3x3 "
                    "patches (convolution, pooling, fully connected layers), trained on patches "
                    "sampled by colour, edge and pixel statistics; one pair is enough.",
    "EPOCHS": "passes over the training patches.",
    "BATCH_SIZE": "patches per SGD step (the paper's Table 1: 64).",
    "LEARNING_RATE": "initial SGD learning rate (Table 1: 0.01).",
    "MOMENTUM": "SGD momentum (Table 1: 0.9).",
    "WEIGHT_DECAY": "L2 weight decay (Table 1: 0.0001).",
    "SEED": "the same seed, data and device give the same weights.",
    "DEVICE": "auto uses the GPU when PyTorch has one, else the CPU.",
    "OUTPUT_MODEL": "the model file (weights and metadata; loading it never runs code from the "
                    "file). By default it is kept in the stfusion/models folder of your QGIS "
                    "profile (Settings > User Profiles > Open Active Profile Folder), as "
                    "model.pt, model-2.pt, ... so an earlier model is never replaced.",
    "REPORT": "HTML report with the training and validation loss curves and the settings.",
}


def models_folder() -> str:
    """Where trained models go by default: stfusion/models in the active QGIS profile."""
    return os.path.join(QgsApplication.qgisSettingsDirPath(), "stfusion", "models")


def unused_path(path: str) -> str:
    """``path``, or the first of ``name-2.pt``, ``name-3.pt``, ... that does not exist yet."""
    stem, extension = os.path.splitext(path)
    number = 1
    while os.path.exists(path):
        number += 1
        path = f"{stem}-{number}{extension}"
    return path


class Train(StfusionAlgorithm):
    NAME = "train"
    DISPLAY_NAME = "Train a fusion model"
    GROUP = "fusion"
    SHORT_DESCRIPTION = ("Trains a fusion model on Landsat/MODIS pairs and saves it for "
                         "stfusion:fuse.")
    DESCRIPTION = ("SGD with momentum and a mean squared error loss; the defaults under "
                   "Advanced Parameters are the paper's Table 1.")
    PARAMETER_HELP = PARAMETER_HELP
    TAGS = ("training", "DCNN", "deep learning", "CNN", "PyTorch")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "FINE", self.tr("Fine images (Landsat), one per date"), QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "COARSE", self.tr("Coarse images on the fine grid, same dates and order"),
            QgsProcessing.TypeRaster))
        self.addParameter(architecture_parameter("Architecture"))
        self.add_number_parameters((
            ("EPOCHS", "Epochs", QgsProcessingParameterNumber.Integer, 50, 1),))
        self.add_number_parameters((
            ("BATCH_SIZE", "Batch size", QgsProcessingParameterNumber.Integer, 64, 1),
            ("LEARNING_RATE", "Initial learning rate", QgsProcessingParameterNumber.Double,
             0.01, 0.0),
            ("MOMENTUM", "SGD momentum", QgsProcessingParameterNumber.Double, 0.9, 0.0),
            ("WEIGHT_DECAY", "Weight decay", QgsProcessingParameterNumber.Double, 0.0001,
             0.0),
            ("SEED", "Random seed", QgsProcessingParameterNumber.Integer, 0, 0)),
            advanced=True)
        self.addParameter(device_parameter())
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_MODEL", self.tr("Model file"), fileFilter=self.tr("stfusion model (*.pt)"),
            defaultValue=os.path.join(models_folder(), MODEL_FILE_NAME),
            optional=True))  # optional, or Processing refuses a run that keeps the default
        self.addParameter(QgsProcessingParameterFileDestination(
            "REPORT", self.tr("Training report"), fileFilter=self.tr("HTML files (*.html)"),
            optional=True, createByDefault=True))

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
        model_path = self.model_path(parameters, context)
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
        feedback.pushInfo(f"Model saved to {model_path}")
        results = {"OUTPUT_MODEL": model_path}
        if report_path:
            report.write_training_report(report_path, result.metadata, result.history,
                                         title=f"stfusion train {datetime.date.today()}")
            results["REPORT"] = report_path
        return results

    def model_path(self, parameters, context) -> str:
        """OUTPUT_MODEL; at the default location a new name rather than a replaced model."""
        path = self.parameterAsFileOutput(parameters, "OUTPUT_MODEL", context)
        default = self.parameterDefinition("OUTPUT_MODEL").defaultValue()
        if os.path.abspath(path) != os.path.abspath(default):
            return path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return unused_path(path)


ALGORITHM = Train
