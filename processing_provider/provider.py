"""The stfusion Processing provider: every algorithm module in ``algorithms`` and the
workflow models shipped in ``models/`` (written by scripts/make_workflow_models.py)."""
import glob
import os

from qgis.core import QgsProcessingModelAlgorithm, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..algorithms import algorithm_classes

ICON_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "icon.svg")
MODELS_DIR = os.path.join(os.path.dirname(__file__), "models")


def workflow_models():
    """The shipped .model3 workflows, loaded."""
    models = []
    for path in sorted(glob.glob(os.path.join(MODELS_DIR, "*.model3"))):
        model = QgsProcessingModelAlgorithm()
        if model.fromFile(path):
            models.append(model)
    return models


class StfusionProvider(QgsProcessingProvider):
    def __init__(self, with_models: bool = True):
        super().__init__()
        self.with_models = with_models  # False while the models themselves are written

    def id(self):
        return "stfusion"

    def name(self):
        return "stfusion (Landsat/MODIS fusion)"

    def longName(self):
        return "stfusion: spatiotemporal fusion of Landsat and MODIS with deep CNNs"

    def icon(self):
        return QIcon(ICON_PATH)

    def svgIconPath(self):
        return ICON_PATH

    def supportedOutputRasterLayerExtensions(self):
        return ["tif"]

    def defaultRasterFileExtension(self):
        return "tif"

    def loadAlgorithms(self):
        for algorithm_class in algorithm_classes():
            self.addAlgorithm(algorithm_class())
        for model in workflow_models() if self.with_models else ():
            self.addAlgorithm(model)
