"""stfusion:resample_modis_series: every MODIS date of a series onto the fine grid in one run."""
import os
import shutil

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException

from helpers import checksum, shifted_copy
from stfusion.core import raster, resample_series
from stfusion.core.errors import InputError

ALG = "stfusion:resample_modis_series"


@pytest.fixture
def run(stfusion_provider):
    import processing
    return lambda parameters: processing.run(ALG, parameters)


def test_every_date_equals_resample_modis_of_that_date(run, small_scene, tmp_path):
    import processing
    reference = small_scene.fine[small_scene.dates[0]]
    inputs = [small_scene.modis[d] for d in reversed(small_scene.dates)]   # any order
    sums = [checksum(path) for path in inputs]
    result = run({"INPUTS": inputs, "REFERENCE": reference, "PREFIX": "mod",
                  "OUTPUT_FOLDER": str(tmp_path / "out")})
    expected = [str(tmp_path / "out" / f"mod_{d}.tif") for d in small_scene.dates]
    assert result["OUTPUT_LAYERS"] == expected and result["DATES_WRITTEN"] == 3
    assert sorted(os.listdir(tmp_path / "out")) == [os.path.basename(p) for p in expected]
    for date, path in zip(small_scene.dates, expected):
        single = processing.run("stfusion:resample_modis", {
            "INPUT": small_scene.modis[date], "REFERENCE": reference,
            "OUTPUT": str(tmp_path / f"single_{date}.tif")})["OUTPUT"]
        assert np.array_equal(raster.read_raster(path), raster.read_raster(single),
                              equal_nan=True)
        assert raster.raster_info(path).grid == raster.raster_info(reference).grid
    assert [checksum(path) for path in inputs] == sums


def test_a_failing_date_writes_no_date(run, small_scene, tmp_path):
    # the last date lies 50 km east of the reference: the run fails there, after two dates
    d0, d1, d2 = small_scene.dates
    far = shifted_copy(small_scene.modis[d2], tmp_path / f"modis_{d2}.tif", (-110.0, 0.0))
    with pytest.raises(QgsProcessingException, match=f"INPUTS and REFERENCE: {d2}"):
        run({"INPUTS": [small_scene.modis[d0], small_scene.modis[d1], far],
             "REFERENCE": small_scene.fine[d0], "OUTPUT_FOLDER": str(tmp_path / "out")})
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


def test_an_output_that_is_an_input_is_refused(run, small_scene, tmp_path):
    d0, d1 = small_scene.dates[:2]
    folder = tmp_path / "downloads"
    folder.mkdir()
    inputs = [shutil.copy(small_scene.modis[d], folder) for d in (d0, d1)]   # modis_DATE.tif
    sums = [checksum(path) for path in inputs]
    with pytest.raises(QgsProcessingException, match="OUTPUT_FOLDER: .*never overwritten"):
        run({"INPUTS": inputs, "REFERENCE": small_scene.fine[d0], "PREFIX": "modis",
             "OUTPUT_FOLDER": str(folder)})
    assert [checksum(path) for path in inputs] == sums and len(os.listdir(folder)) == 2


def test_dates_group_product_tiles_and_refuse_two_rasters_of_one_date(small_scene, tmp_path):
    d0, d1 = small_scene.dates[:2]
    groups = resample_series.group_by_date([small_scene.modis[d1], small_scene.modis[d0]])
    assert [(str(g.date), g.products, len(g.paths)) for g in groups] == [
        (d0, False, 1), (d1, False, 1)]
    twin = shutil.copy(small_scene.modis[d0], tmp_path / f"other_{d0}.tif")
    with pytest.raises(InputError, match=f"same date {d0}") as error:
        resample_series.group_by_date([small_scene.modis[d0], str(twin)])
    assert error.value.parameter == "INPUTS"


def test_product_tiles_of_one_date_are_one_mosaic(run, tmp_path):
    pytest.importorskip("pyhdf.SD", reason="pyhdf writes the HDF4 fixtures (scripts/setup.sh)")
    if gdal.GetDriverByName("HDF4") is None:
        pytest.skip("GDAL has no HDF4 driver")
    from product_fixtures import make_mod09ga
    from test_modis_products import _utm31_reference
    west = make_mod09ga(tmp_path / "a", h=17, col0=2376)
    east = make_mod09ga(tmp_path / "a", h=18, col0=0, offset=300)
    later = make_mod09ga(tmp_path / "b", h=18, col0=0, date="2021-07-15")
    reference, _to_lonlat, _origin = _utm31_reference(tmp_path)
    result = run({"INPUTS": [str(later.path), str(west.path), str(east.path)],
                  "REFERENCE": reference, "OUTPUT_FOLDER": str(tmp_path / "out")})
    mosaic, single = result["OUTPUT_LAYERS"]
    assert os.path.basename(mosaic) == "modis_2021-07-14.tif"
    assert gdal.Open(single).GetMetadataItem("ACQUISITIONDATE") == "2021-07-15"
    assert np.isfinite(raster.read_raster(mosaic)).all()            # both tiles: no gap
    assert 0.3 < np.isfinite(raster.read_raster(single)).all(axis=0).mean() < 0.7  # east only
