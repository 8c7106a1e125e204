"""Screenshots for the README, taken inside the real QGIS desktop (run by screenshots.sh).

QGIS runs this file with --code after start-up: it loads the sample scene, opens the
Processing dialog of stfusion:fuse from the plugin's menu action, shows the Toolbox with the
stfusion groups expanded, grabs both to docs/, runs the fusion for the report screenshot and
quits. Environment: STFUSION_SCENE (a sample scene folder), STFUSION_OUT (where the report
goes), STFUSION_DOCS (docs/).
"""
import json
import os

from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface, plugins

SCENE, OUT, DOCS = (os.environ[k] for k in ("STFUSION_SCENE", "STFUSION_OUT", "STFUSION_DOCS"))


def load_scene():
    dataset = json.load(open(os.path.join(SCENE, "dataset.json")))
    dates = sorted(dataset["fine"])
    for date in dates[:2]:
        for kind in ("fine", "coarse"):
            path = os.path.join(SCENE, dataset[kind][date])
            QgsProject.instance().addMapLayer(QgsRasterLayer(path, os.path.basename(path)[:-4]))
    return dataset, dates


def grab(widget, name):
    widget.grab().save(os.path.join(DOCS, name))


def fuse_dialog(dataset, dates):
    plugin = plugins["stfusion"]
    plugin.open_fuse_dialog()
    dialog = plugin.dialog
    dialog.setParameters({"FINE_T1": os.path.join(SCENE, dataset["fine"][dates[0]]),
                          "COARSE_T1": os.path.join(SCENE, dataset["coarse"][dates[0]]),
                          "COARSE_T2": os.path.join(SCENE, dataset["coarse"][dates[1]])})
    dialog.resize(1100, 820)
    QTimer.singleShot(1500, lambda: (grab(dialog, "fuse_dialog.png"), dialog.close()))


def toolbox():
    from qgis.PyQt.QtWidgets import QDockWidget
    dock = next(d for d in iface.mainWindow().findChildren(QDockWidget)
                if d.objectName() == "ProcessingToolbox")
    dock.show()
    dock.raise_()
    dock.searchBox.setText("stfusion")
    dock.algorithmTree.expandAll()
    dock.resize(420, 640)
    QTimer.singleShot(1500, lambda: grab(dock, "toolbox.png"))


def fuse_reports(dataset, dates):
    """The report with a reference (accuracy tables) and without (quick-looks, tables)."""
    import processing
    for reference, name in ((dataset["fine"][dates[1]], "fuse_report"),
                            (None, "fuse_report_no_reference")):
        processing.run("stfusion:fuse", {
            "FINE_T1": os.path.join(SCENE, dataset["fine"][dates[0]]),
            "COARSE_T1": os.path.join(SCENE, dataset["coarse"][dates[0]]),
            "COARSE_T2": os.path.join(SCENE, dataset["coarse"][dates[1]]),
            "REFERENCE": os.path.join(SCENE, reference) if reference else None,
            "OUTPUT": os.path.join(OUT, f"{name}.tif"),
            "REPORT": os.path.join(OUT, f"{name}.html")})


def main():
    iface.mainWindow().resize(1400, 900)
    dataset, dates = load_scene()
    fuse_dialog(dataset, dates)
    QTimer.singleShot(3000, toolbox)
    QTimer.singleShot(6000, lambda: fuse_reports(dataset, dates))
    QTimer.singleShot(9000, QgsApplication.exit)


QTimer.singleShot(2000, main)
