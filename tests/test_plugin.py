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
    assert len(plugin.provider.algorithms()) == len(ALGORITHM_MODULES)
    plugin.unload()
    assert registry.providerById("stfusion") is None


def test_desktop_adds_and_removes_the_background_fusion_menu_action(
        qgis_app, qgis_processing, qgis_iface):
    added, removed = [], []
    # pytest-qgis's iface ignores addPluginToMenu and lacks removePluginMenu: record the calls
    qgis_iface.addPluginToMenu = lambda menu, action: added.append((menu, action))
    qgis_iface.removePluginMenu = lambda menu, action: removed.append((menu, action))
    plugin = stfusion.classFactory(qgis_iface)
    plugin.initGui()
    [action] = plugin.actions
    assert action.text() == "Fuse Landsat and MODIS (background task)…"
    assert added == [("&stfusion", action)]
    plugin.unload()
    assert removed == [("&stfusion", action)] and plugin.actions == []
    assert QgsApplication.processingRegistry().providerById("stfusion") is None
