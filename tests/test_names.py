"""Names users see: fused layers by date, Results Viewer entries by algorithm and date."""
import datetime as dt
import time

from osgeo import gdal
from qgis.core import QgsApplication, QgsProject

import stfusion
from stfusion.core.acquisition import acquisition_date, date_in_text


def test_dates_from_names_and_metadata(tmp_path, small_scene):
    assert date_in_text("modis_on_landsat_grid_2021-05-17.tif") == dt.date(2021, 5, 17)
    assert date_in_text("LC08_20011017_x") == dt.date(2001, 10, 17)
    assert date_in_text("MOD09GA.A2001290.h11v05.061.hdf") == dt.date(2001, 10, 17)
    assert date_in_text("tile_1234_5678.tif") is None and date_in_text("19991332") is None
    copy = str(tmp_path / "no_date_in_this_name.tif")
    gdal.Translate(copy, small_scene.fine[small_scene.dates[0]]).SetMetadataItem(
        "ACQUISITIONDATE", "2004-12-28")
    assert acquisition_date(copy) == dt.date(2004, 12, 28)
    assert acquisition_date(small_scene.coarse["2021-05-17"]) == dt.date(2021, 5, 17)


def test_fused_layer_and_results_viewer_entry_are_named_by_date(qgis_app, qgis_processing,
                                                                 qgis_iface, small_scene,
                                                                 tmp_path):
    import processing
    from processing.core.ProcessingResults import resultsList
    qgis_iface.addPluginToMenu = lambda menu, action: None
    qgis_iface.removePluginMenu = lambda menu, action: None
    registry = QgsApplication.processingRegistry()
    if registry.providerById("stfusion") is not None:
        registry.removeProvider(registry.providerById("stfusion"))
    plugin = stfusion.classFactory(qgis_iface)
    plugin.initGui()
    d0, d1 = small_scene.dates[:2]
    try:
        results = processing.runAndLoadResults("stfusion:fuse", {
            "FINE_T1": small_scene.fine[d0], "COARSE_T1": small_scene.coarse[d0],
            "COARSE_T2": small_scene.coarse[d1], "OUTPUT": str(tmp_path / "out.tif"),
            "REPORT": str(tmp_path / "out.html")})
        [layer] = QgsProject.instance().mapLayersByName(f"fused {d1}")
        assert layer.source() == results["OUTPUT"]
        resultsList.addResult(icon=None, name="Fusion report", timestamp=time.localtime(),
                              result=results["REPORT"])
        assert resultsList.getResults()[-1].name == f"fuse {d1}"
    finally:
        plugin.unload()
        QgsProject.instance().removeAllMapLayers()


def test_fuse_dialog_suggests_inputs_by_date(small_scene):
    from stfusion.gui.fuse_dialog import suggested_inputs
    d0, d1 = small_scene.dates[:2]
    files = [small_scene.modis[d1], small_scene.coarse[d1], small_scene.fine[d1],
             small_scene.coarse[d0], small_scene.fine[d0], small_scene.modis[d0]]
    names = [path.rsplit("/", 1)[1][:-4] for path in files]
    assert suggested_inputs(files, names) == {
        "FINE_T1": small_scene.fine[d0], "COARSE_T1": small_scene.coarse[d0],
        "COARSE_T2": small_scene.coarse[d1]}  # the raw MODIS is not on the grid: skipped
    # layer names can carry the date and the sensor when the files do not
    assert suggested_inputs(files[3:5], ["MODIS May 1st", "Landsat"]) == {}
    assert suggested_inputs([small_scene.fine[d0]], ["landsat"]) == {}
