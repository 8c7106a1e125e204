"""The stfusion Processing provider: lists every algorithm module in ``algorithms``."""
import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..algorithms import algorithm_classes

ICON_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "icon.svg")


class StfusionProvider(QgsProcessingProvider):
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
