"""stfusion: Landsat/MODIS spatiotemporal fusion with deep CNNs, as a QGIS Processing plugin."""


def classFactory(iface):  # noqa: N802 (QGIS plugin entry point)
    from qgis.core import QgsApplication
    from .core.torch_install import add_to_sys_path, private_folder
    # PyTorch installed by Plugins > stfusion > Install PyTorch lives in the profile
    add_to_sys_path(private_folder(QgsApplication.qgisSettingsDirPath()))
    from .plugin import StfusionPlugin
    return StfusionPlugin(iface)
