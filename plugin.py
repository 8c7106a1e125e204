"""The QGIS plugin: registers the Processing provider and a menu action for background fusion."""
from qgis.core import QgsApplication

from .processing_provider.provider import ICON_PATH, StfusionProvider

MENU = "&stfusion"


class StfusionPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.actions = []
        self.runner = None

    def initProcessing(self):  # noqa: N802 (QGIS API)
        if self.provider is None:
            self.provider = StfusionProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802 (QGIS API)
        self.initProcessing()
        if self.iface is None:
            return
        from qgis.PyQt.QtGui import QIcon
        from qgis.PyQt.QtWidgets import QAction
        from .tasks import FuseTaskRunner
        self.runner = FuseTaskRunner(self.iface)
        action = QAction(QIcon(ICON_PATH), "Fuse Landsat and MODIS (background task)…",
                         self.iface.mainWindow())
        action.triggered.connect(self.runner.open_dialog)
        self.iface.addPluginToMenu(MENU, action)
        self.actions.append(action)

    def unload(self):
        for action in self.actions:
            self.iface.removePluginMenu(MENU, action)
        self.actions = []
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
