"""stfusion: Landsat/MODIS spatiotemporal fusion with deep CNNs, as a QGIS Processing plugin."""


def classFactory(iface):  # noqa: N802 (QGIS plugin entry point)
    from .plugin import StfusionPlugin
    return StfusionPlugin(iface)
