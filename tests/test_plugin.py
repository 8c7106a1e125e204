"""The plugin entry points as QGIS calls them: with an iface (desktop) and without
(qgis_process)."""
from qgis.core import QgsApplication

import stfusion
from stfusion.algorithms import ALGORITHM_MODULES


def test_without_iface_registers_the_provider_once(qgis_app, qgis_processing):
    registry = QgsApplication.processingRegistry()
    existing = registry.providerById("stfusion")
    if existing is not None:
        registry.removeProvider(existing)
    plugin = stfusion.classFactory(None)
    plugin.initProcessing()
    plugin.initGui()  # no iface: nothing to add to menus, no second provider
    assert registry.providerById("stfusion") is plugin.provider
    from stfusion.processing_provider.provider import workflow_models
    assert len(plugin.provider.algorithms()) == len(ALGORITHM_MODULES) + len(workflow_models())
    plugin.unload()
    assert registry.providerById("stfusion") is None


def test_desktop_menu_opens_the_processing_dialog_of_fuse(qgis_app, qgis_processing,
                                                         qgis_iface, small_scene):
    added, removed = [], []
    # pytest-qgis's iface ignores addPluginToMenu and lacks removePluginMenu: record the calls
    qgis_iface.addPluginToMenu = lambda menu, action: added.append((menu, action))
    qgis_iface.removePluginMenu = lambda menu, action: removed.append((menu, action))
    from qgis.gui import QgsBrowserGuiModel
    browser = QgsBrowserGuiModel()  # the Processing dialog asks the iface for it
    qgis_iface.browserModel = lambda: browser
    plugin = stfusion.classFactory(qgis_iface)
    plugin.initGui()
    fuse = next(a for a in plugin.actions if a.text() == "Fuse Landsat and MODIS…")
    assert ("&stfusion", fuse) in added
    from qgis.core import QgsProject, QgsRasterLayer
    d0, d1 = small_scene.dates[:2]
    for path in (small_scene.coarse[d1], small_scene.fine[d0], small_scene.coarse[d0]):
        QgsProject.instance().addMapLayer(QgsRasterLayer(path, path.rsplit("/", 1)[1][:-4]))
    fuse.trigger()
    dialog = plugin.dialog
    assert dialog.isVisible() and dialog.algorithm().id() == "stfusion:fuse"
    chosen = dialog.createProcessingParameters()
    sources = {name: QgsProject.instance().mapLayer(chosen[name]).source()
               if QgsProject.instance().mapLayer(str(chosen[name])) else chosen[name]
               for name in ("FINE_T1", "COARSE_T1", "COARSE_T2")}
    assert sources == {"FINE_T1": small_scene.fine[d0], "COARSE_T1": small_scene.coarse[d0],
                       "COARSE_T2": small_scene.coarse[d1]}
    dialog.close()
    QgsProject.instance().removeAllMapLayers()
    plugin.unload()
    assert removed == added and plugin.actions == []
    assert QgsApplication.processingRegistry().providerById("stfusion") is None


def test_fusion_inputs_must_be_different_images(stfusion_provider, small_scene):
    from qgis.core import QgsProcessingContext
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("stfusion:fuse")
    d0, d1 = small_scene.dates[:2]
    parameters = {"FINE_T1": small_scene.fine[d0], "COARSE_T1": small_scene.fine[d0],
                  "COARSE_T2": small_scene.coarse[d1], "OUTPUT": "TEMPORARY_OUTPUT"}
    ok, message = algorithm.checkParameterValues(parameters, QgsProcessingContext())
    assert not ok
    assert message.startswith("Parameters FINE_T1 and COARSE_T1 are the same image")
    parameters.update(COARSE_T1=small_scene.coarse[d0], COARSE_T2=small_scene.fine[d0])
    ok, message = algorithm.checkParameterValues(parameters, QgsProcessingContext())
    assert not ok and message.startswith("Parameters FINE_T1 and COARSE_T2")
    parameters["COARSE_T2"] = small_scene.coarse[d1]
    parameters["COARSE_T1"] = small_scene.coarse[d0]
    assert algorithm.checkParameterValues(parameters, QgsProcessingContext())[0]


def test_install_pytorch_action_and_the_torch_missing_message_button(qgis_app, qgis_processing,
                                                                      qgis_iface):
    qgis_iface.addPluginToMenu = lambda menu, action: None
    qgis_iface.removePluginMenu = lambda menu, action: None
    from qgis.gui import QgsMessageBar
    bar = QgsMessageBar()  # pytest-qgis's bar takes text messages only
    qgis_iface.messageBar = lambda: bar
    registry = QgsApplication.processingRegistry()
    if registry.providerById("stfusion") is not None:  # one provider per id
        registry.removeProvider(registry.providerById("stfusion"))
    plugin = stfusion.classFactory(qgis_iface)
    plugin.initGui()
    assert "Install PyTorch…" in [action.text() for action in plugin.actions]
    from qgis.PyQt.QtWidgets import QPushButton
    message = plugin.say_torch_is_missing()
    assert bar.currentItem() is message and "PyTorch is not installed" in message.text()
    [button] = message.findChildren(QPushButton)
    assert button.text() == "Install PyTorch…"
    asked = []
    plugin.installer.ask_and_install = lambda: asked.append(True)  # no modal question here
    button.click()
    assert asked == [True]
    plugin.unload()
