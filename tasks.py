"""Run stfusion:fuse as a QgsTask from the plugin menu; add the results to the project when done."""
import os
import time

from qgis.core import (QgsApplication, QgsMapLayerProxyModel, QgsProcessingAlgRunnerTask,
                       QgsProcessingContext, QgsProcessingFeedback, QgsProject, QgsRasterLayer)
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QDialog, QDialogButtonBox, QFormLayout

from .algorithms.base import FUSION_INPUTS, ICON_PATH, apply_rgb_renderer
from .core import raster

FUSE_ID = "stfusion:fuse"


class FuseTaskRunner:
    """Starts fuse tasks and, when one succeeds, adds its raster and report to the project."""

    def __init__(self, iface=None, project=None):
        self.iface = iface
        self.project = project or QgsProject.instance()
        self.running = []  # keeps task, context and feedback alive until the task ends

    def start(self, parameters, on_done=None) -> QgsProcessingAlgRunnerTask:
        algorithm = QgsApplication.processingRegistry().createAlgorithmById(FUSE_ID)
        context = QgsProcessingContext()
        context.setProject(self.project)
        feedback = QgsProcessingFeedback()
        task = QgsProcessingAlgRunnerTask(algorithm, parameters, context, feedback)
        entry = (task, context, feedback)
        self.running.append(entry)

        def executed(ok, results):
            self.running.remove(entry)
            if ok:
                self.add_results(results)
            elif self.iface is not None:
                self.iface.messageBar().pushCritical("stfusion", "Fusion failed; see the log.")
            if on_done is not None:
                on_done(ok, results)

        task.executed.connect(executed)
        QgsApplication.taskManager().addTask(task)
        return task

    def add_results(self, results) -> QgsRasterLayer:
        path = results["OUTPUT"]
        layer = QgsRasterLayer(path, os.path.splitext(os.path.basename(path))[0])
        apply_rgb_renderer(layer, raster.raster_info(path).band_names)
        self.project.addMapLayer(layer)
        report = results.get("REPORT")
        if report and os.path.exists(report):
            from processing.core.ProcessingResults import resultsList
            resultsList.addResult(icon=QIcon(ICON_PATH), name=f"stfusion report: {layer.name()}",
                                  timestamp=time.localtime(), result=report)
        return layer

    def open_dialog(self):
        dialog = FuseDialog(self.iface.mainWindow() if self.iface else None)
        if dialog.exec_():
            self.start(dialog.parameters())


class FuseDialog(QDialog):
    """The layers of one fusion; output and report go to temporary files."""

    def __init__(self, parent=None):
        super().__init__(parent)
        from qgis.gui import QgsMapLayerComboBox
        self.setWindowTitle("stfusion: fuse Landsat and MODIS")
        layout = QFormLayout(self)
        self.combos = {}
        for name, label, optional in FUSION_INPUTS:
            combo = QgsMapLayerComboBox(self)
            combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
            combo.setAllowEmptyLayer(optional)
            if optional:
                combo.setLayer(None)
            layout.addRow(label, combo)
            self.combos[name] = combo
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, parent=self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addRow(buttons)

    def parameters(self):
        parameters = {name: combo.currentLayer().source()
                      for name, combo in self.combos.items() if combo.currentLayer() is not None}
        parameters.update(OUTPUT="TEMPORARY_OUTPUT", REPORT="TEMPORARY_OUTPUT")
        return parameters
