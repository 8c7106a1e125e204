"""stfusion:prepare_landsat through Processing and headless qgis_process."""
import json

import numpy as np
import pytest
from osgeo import gdal, osr

from helpers import qgis_process_json
from product_fixtures import ORIGIN, QA_PIXELS, SATURATED_PIXEL, UTM_33N, make_c2l2_scene
from stfusion.core import raster

ALG = "stfusion:prepare_landsat"


@pytest.fixture
def run(stfusion_provider):
    import processing
    return lambda parameters: processing.run(ALG, parameters)


def test_listed_with_documented_parameters(stfusion_provider):
    from qgis.core import QgsApplication
    algorithm = QgsApplication.processingRegistry().algorithmById(ALG)
    from stfusion.algorithms.base import GROUPS
    assert algorithm is not None and algorithm.group() == GROUPS["preparation"]
    names = [p.name() for p in algorithm.parameterDefinitions()]
    assert names == ["INPUT", "EXTENT", "MASK", "SATURATED", "OUTPUT"]
    assert {o.name() for o in algorithm.outputDefinitions()} == {
        "OUTPUT", "MASKED_PERCENT", "ACQUISITION_DATE"}
    for parameter in algorithm.parameterDefinitions():  # by the label the dialog shows
        assert f"<b>{parameter.description()}</b>: " in algorithm.shortHelpString()


def _lonlat_extent(columns, rows):
    """'xmin,xmax,ymin,ymax [EPSG:4326]' around scene pixels columns x rows (UTM 33N)."""
    utm, wgs84 = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromEPSG(UTM_33N)
    wgs84.ImportFromEPSG(4326)
    for srs in (utm, wgs84):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_lonlat = osr.CoordinateTransformation(utm, wgs84)
    corners = [to_lonlat.TransformPoint(ORIGIN[0] + 30 * c, ORIGIN[1] - 30 * r)[:2]
               for c in columns for r in rows]
    lons, lats = zip(*corners)
    return f"{min(lons)},{max(lons)},{min(lats)},{max(lats)} [EPSG:4326]"


def test_folder_with_mask_choice_and_a_lonlat_extent(run, tmp_path):
    scene = make_c2l2_scene(tmp_path / "scene", spacecraft="LANDSAT_7")
    output = str(tmp_path / "stack.tif")
    result = run({"INPUT": str(scene.folder), "MASK": [2], "SATURATED": False,
                  "OUTPUT": output})
    assert result["ACQUISITION_DATE"] == "2021-07-14"
    assert result["MASKED_PERCENT"] == pytest.approx(100 / (40 * 30 - 1))   # the cloud only
    values = raster.read_raster(output)
    masked = ~np.isfinite(values).all(axis=0)
    assert masked[QA_PIXELS["cloud"]] and not masked[QA_PIXELS["snow"]]
    assert not masked[SATURATED_PIXEL]
    assert gdal.Open(output).GetMetadataItem("ACQUISITIONDATE") == "2021-07-14"
    # an extent in lon/lat is transformed to the scene's CRS; the reprojected box covers a
    # little more than the pixels it was made from
    clipped = run({"INPUT": str(scene.mtl), "EXTENT": _lonlat_extent((10, 20), (5, 15)),
                   "OUTPUT": str(tmp_path / "clip.tif")})
    grid = raster.raster_info(clipped["OUTPUT"]).grid
    x0 = round((grid.geotransform[0] - ORIGIN[0]) / 30)
    y0 = round((ORIGIN[1] - grid.geotransform[3]) / 30)
    assert 9 <= x0 <= 10 and 4 <= y0 <= 5
    assert 10 <= grid.width <= 12 and 10 <= grid.height <= 12


def test_level1_scene_is_refused_naming_the_parameter(run, tmp_path):
    from qgis.core import QgsProcessingException
    scene = make_c2l2_scene(tmp_path / "scene", level="L1TP")
    with pytest.raises(QgsProcessingException,
                       match="Parameter INPUT: .*L1TP.*Level-1.*Collection 2 Level-2"):
        run({"INPUT": str(scene.folder), "OUTPUT": str(tmp_path / "out.tif")})
    assert not (tmp_path / "out.tif").exists()


def test_headless_from_the_tar_archive(tmp_path):
    scene = make_c2l2_scene(tmp_path / "scene", spacecraft="LANDSAT_9")
    archive = scene.tar(tmp_path / f"{scene.product_id}.tar")
    output = tmp_path / "stack.tif"
    done = qgis_process_json(tmp_path / "profile", ALG, f"INPUT={archive}", f"OUTPUT={output}")
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(done.stdout)["results"]
    assert results["ACQUISITION_DATE"] == "2021-07-14"
    assert results["MASKED_PERCENT"] == pytest.approx(100 * 6 / (40 * 30 - 1))
    np.testing.assert_allclose(raster.read_raster(str(output))[:, 10, 10],
                               scene.reflectance()[:, 10, 10], atol=1e-6)
