"""stfusion:resample_modis on MODIS HDF files as downloaded (Processing and qgis_process)."""
import json

import numpy as np
import pytest
from osgeo import gdal

pytest.importorskip("pyhdf.SD", reason="pyhdf writes the HDF4 fixtures (scripts/setup.sh)")
if gdal.GetDriverByName("HDF4") is None:
    pytest.skip("GDAL has no HDF4 driver", allow_module_level=True)

from helpers import qgis_process_json  # noqa: E402
from product_fixtures import make_mod09ga, make_single_grid_product  # noqa: E402
from stfusion.core import raster  # noqa: E402
from test_modis_products import BANDS, CLEAR, _utm31_reference  # noqa: E402

ALG = "stfusion:resample_modis"


@pytest.fixture
def run(stfusion_provider):
    import processing
    return lambda parameters: processing.run(ALG, parameters)


def test_one_hdf_file_as_input_with_qa_switch(run, tmp_path):
    # a cloudy 1 km cell (500 m rows 8-9, columns 2-3) inside the east half of the reference
    tile = make_mod09ga(tmp_path, h=18, state={(4, 1): CLEAR | 1})
    reference, _to_lonlat, _origin = _utm31_reference(tmp_path)
    masked = run({"INPUT": str(tile.path), "REFERENCE": reference, "METHOD": 0,
                  "OUTPUT": str(tmp_path / "masked.tif")})
    kept = run({"INPUT": str(tile.path), "REFERENCE": reference, "METHOD": 0, "KEEP_QA": True,
                "OUTPUT": str(tmp_path / "kept.tif")})
    assert masked["ACQUISITION_DATE"] == kept["ACQUISITION_DATE"] == "2021-07-14"
    assert gdal.Open(masked["OUTPUT"]).GetMetadataItem("ACQUISITIONDATE") == "2021-07-14"
    assert raster.raster_info(masked["OUTPUT"]).band_names == BANDS
    a = np.isfinite(raster.read_raster(masked["OUTPUT"])).all(axis=0)
    b = np.isfinite(raster.read_raster(kept["OUTPUT"])).all(axis=0)
    # west of longitude 0 there is no tile: nodata in both; the cloud only without KEEP_QA
    assert (b & ~a).sum() > 0 and not (a & ~b).any()
    assert 0.3 < b.mean() < 0.7


def test_adjacent_tiles_as_products_and_terra_with_aqua_refused(run, tmp_path):
    from qgis.core import QgsProcessingException
    west = make_mod09ga(tmp_path, h=17, col0=2376)
    east = make_mod09ga(tmp_path, h=18, col0=0, offset=300)
    aqua = make_mod09ga(tmp_path / "aqua", h=18, col0=0, short_name="MYD09GA")
    reference, _to_lonlat, _origin = _utm31_reference(tmp_path)
    result = run({"PRODUCTS": [str(west.path), str(east.path)], "REFERENCE": reference,
                  "OUTPUT": str(tmp_path / "mosaic.tif")})
    assert np.isfinite(raster.read_raster(result["OUTPUT"])).all()
    assert result["ACQUISITION_DATE"] == "2021-07-14"
    with pytest.raises(QgsProcessingException,
                       match="PRODUCTS: the files hold MOD09GA of 2021-07-14, MYD09GA of"):
        run({"PRODUCTS": [str(west.path), str(aqua.path)], "REFERENCE": reference,
             "OUTPUT": str(tmp_path / "mixed.tif")})


def test_unknown_container_names_parameter_and_subdatasets(run, tmp_path):
    from qgis.core import QgsProcessingException
    fields = [("Optical_Depth_Land_And_Ocean", np.zeros((4, 4), np.int16), {}),
              ("Land_Ocean_Quality_Flag", np.zeros((4, 4), np.int16), {})]
    other = make_single_grid_product(tmp_path, "MOD04_3K", "mod04", 2400, fields)
    reference, _to_lonlat, _origin = _utm31_reference(tmp_path)
    with pytest.raises(QgsProcessingException,
                       match="Parameter PRODUCTS: .*MOD04_3K.*Optical_Depth_Land_And_Ocean"):
        run({"PRODUCTS": [str(other.path)], "REFERENCE": reference,
             "OUTPUT": str(tmp_path / "never.tif")})
    assert not (tmp_path / "never.tif").exists()


def test_headless_qgis_process_takes_the_hdf_path(tmp_path):
    tile = make_mod09ga(tmp_path, h=18)
    reference, _to_lonlat, _origin = _utm31_reference(tmp_path)
    output = tmp_path / "out.tif"
    done = qgis_process_json(tmp_path / "profile", ALG, f"INPUT={tile.path}",
                             f"REFERENCE={reference}", f"OUTPUT={output}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["results"]["ACQUISITION_DATE"] == "2021-07-14"
    assert raster.raster_info(str(output)).band_names == BANDS


def test_a_viirs_hdf5_file_as_input(run, tmp_path):
    pytest.importorskip("h5py", reason="h5py writes the HDF5 fixtures (scripts/setup.sh)")
    from product_fixtures import make_vnp09ga
    # a cloudy 1 km cell of the east tile (500 m rows 8-9, columns 2-3) as in the MODIS case
    tile = make_vnp09ga(tmp_path, h=18, qf1={(4, 1): 3 << 2})
    reference, _to_lonlat, _origin = _utm31_reference(tmp_path)
    masked = run({"INPUT": str(tile.path), "REFERENCE": reference, "METHOD": 0,
                  "OUTPUT": str(tmp_path / "viirs.tif")})
    kept = run({"INPUT": str(tile.path), "REFERENCE": reference, "METHOD": 0, "KEEP_QA": True,
                "OUTPUT": str(tmp_path / "kept.tif")})
    assert masked["ACQUISITION_DATE"] == "2021-07-14"
    assert raster.raster_info(masked["OUTPUT"]).band_names == BANDS
    a = np.isfinite(raster.read_raster(masked["OUTPUT"])).all(axis=0)
    b = np.isfinite(raster.read_raster(kept["OUTPUT"])).all(axis=0)
    assert (b & ~a).sum() > 0 and not (a & ~b).any()
    assert 0.3 < b.mean() < 0.7
