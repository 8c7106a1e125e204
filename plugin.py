"""The QGIS plugin: registers the Processing provider and the Plugins ▸ stfusion menu."""
import importlib.util

from qgis.core import QgsApplication

from .processing_provider.provider import ICON_PATH, StfusionProvider

MENU = "&stfusion"


class StfusionPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.actions = []
        self.dialog = None  # the open fuse dialog, kept alive while it is shown
        self.installer = None
        self.result_names = None

    def initProcessing(self):  # noqa: N802 (QGIS API)
        if self.provider is None:
            self.provider = StfusionProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802 (QGIS API)
        self.initProcessing()
        if self.iface is None:
            return
        from .gui.results_names import ResultNames
        from .gui.torch_installer import TorchInstaller
        self.installer = TorchInstaller(self.iface)
        self.result_names = ResultNames()
        self.add_action("Fuse Landsat and MODIS…", self.open_fuse_dialog, ICON_PATH)
        self.add_action("Install PyTorch…", self.install_torch)
        if importlib.util.find_spec("torch") is None:
            self.say_torch_is_missing()

    def add_action(self, text: str, slot, icon_path: str = ""):
        from qgis.PyQt.QtCore import QCoreApplication
        from qgis.PyQt.QtGui import QIcon
        from qgis.PyQt.QtWidgets import QAction
        action = QAction(QIcon(icon_path), QCoreApplication.translate("stfusion", text),
                         self.iface.mainWindow())
        action.triggered.connect(slot)
        self.iface.addPluginToMenu(MENU, action)
        self.actions.append(action)
        return action

    def say_torch_is_missing(self):
        """A message bar warning with an *Install PyTorch…* button."""
        from qgis.core import Qgis
        from qgis.PyQt.QtWidgets import QPushButton
        bar = self.iface.messageBar()
        message = bar.createMessage("stfusion", QgsApplication.translate(
            "stfusion", "PyTorch is not installed for QGIS's Python; the fusion algorithms "
            "need it."))
        button = QPushButton(QgsApplication.translate("stfusion", "Install PyTorch…"), message)
        button.clicked.connect(self.install_torch)
        message.layout().addWidget(button)
        bar.pushWidget(message, Qgis.Warning)
        return message

    def install_torch(self):
        self.installer.ask_and_install()

    def open_fuse_dialog(self):
        from qgis.core import QgsProject, QgsRasterLayer
        from .gui.fuse_dialog import open_fuse_dialog
        layers = [layer for layer in QgsProject.instance().mapLayers().values()
                  if isinstance(layer, QgsRasterLayer)]
        self.dialog = open_fuse_dialog(layers)

    def unload(self):
        for action in self.actions:
            self.iface.removePluginMenu(MENU, action)
        self.actions = []
        if self.result_names is not None:
            self.result_names.disconnect()
            self.result_names = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
