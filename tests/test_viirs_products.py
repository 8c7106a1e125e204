"""core.modis_products on VIIRS HDF-EOS5 tiles (fixtures written with h5py, read by GDAL's
HDF5 driver, georeferenced from StructMetadata.0 where GDAL does not): recognised, I bands at
500 m and M bands at 1 km stacked in the fine image's band order, scaled, QA-masked, placed
on the sinusoidal grid, mosaicked and warped."""
import math

import numpy as np
import pytest
from osgeo import gdal, osr

pytest.importorskip("h5py", reason="h5py writes the HDF5 fixtures (scripts/setup.sh)")
if gdal.GetDriverByName("HDF5") is None:
    pytest.skip("GDAL has no HDF5 driver", allow_module_level=True)

from product_fixtures import (TILE_METRES, VNP09_I_NUMBERS, VNP09_M_NUMBERS,  # noqa: E402
                              HdfField, make_vnp09ga, pixel_of_lonlat, prepared,
                              sinusoidal_lonlat, tile_origin, write_hdf_eos5,
                              write_reference)
from stfusion.core import modis_products as mp, raster  # noqa: E402
from stfusion.core.errors import InputError  # noqa: E402

BANDS = ("blue", "green", "red", "nir", "swir1", "swir2")
PIXEL_500 = TILE_METRES / 2400
SINUSOIDAL = "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"


def reference_on(fixture, tmp_path, names=BANDS, factor=4):
    x0, y0, pixel, rows, cols = fixture.grid
    srs = osr.SpatialReference()
    srs.ImportFromProj4(SINUSOIDAL)
    return str(write_reference(tmp_path / "fine.tif", x0, y0, pixel / factor, rows * factor,
                               cols * factor, names, srs.ExportToWkt()))


def expected_value(fixture, name, row, col):
    """The stored value of band ``name`` at 500 m pixel (row, col) of the fixture."""
    if name in VNP09_I_NUMBERS:
        return fixture.numbers[f"SurfReflect_I{VNP09_I_NUMBERS[name]}_1"][row, col]
    return fixture.numbers[f"SurfReflect_M{VNP09_M_NUMBERS[name]}_1"][row // 2, col // 2]


@pytest.mark.parametrize("version", ["001", "002"])
def test_recognised_dated_and_a_known_lonlat_lands_on_the_known_pixel(tmp_path, version):
    tile = make_vnp09ga(tmp_path, h=18, v=4, col0=100, row0=200, version=version)
    files = mp.open_products([str(tile.path)])
    assert files.product.name == "VNP09GA" and files.date == "2021-07-14"
    band = gdal.Open(files.fields[0]["SurfReflect_I1_1"])
    x = tile_origin(18, 4)[0] + (107 + 0.5) * PIXEL_500
    y = tile_origin(18, 4)[1] - (205 + 0.5) * PIXEL_500
    lon, lat = sinusoidal_lonlat(x, y)
    assert pixel_of_lonlat(band, lon, lat) == (7, 5)
    assert band.ReadAsArray()[5, 7] == 1000 * 1 + 10 * 5 + 7
    m_band = gdal.Open(files.fields[0]["SurfReflect_M3_1"])
    assert m_band.GetGeoTransform()[1] == pytest.approx(2 * PIXEL_500)


def test_band_order_scale_fill_and_every_qa_bit(tmp_path):
    qf1 = {(1, 1): 3 << 2,       # confidently cloudy
           (2, 5): 2 << 2,       # probably cloudy
           (4, 4): 1 << 2,       # probably clear: kept
           (6, 6): 3}            # cloud mask quality bits only: kept
    qf2 = {(3, 2): 1 << 3,       # cloud shadow
           (8, 8): 1 << 4}       # heavy aerosol: kept
    tile = make_vnp09ga(tmp_path, qf1=qf1, qf2=qf2, fill=((11, 0),), fill_1km=((9, 9),))
    files = mp.open_products([str(tile.path)])
    source, info, values, date = prepared(files, reference_on(tile, tmp_path))
    assert info.band_names == BANDS and info.scale == (1e-4,) * 6
    assert date == "2021-07-14" and values.shape == (6, 24, 24)
    assert info.grid.pixel_size[0] == pytest.approx(PIXEL_500)    # the finest (I band) grid
    expected_bad = np.zeros((24, 24), bool)
    for row, col in ((1, 1), (2, 5), (3, 2)):
        expected_bad[2 * row:2 * row + 2, 2 * col:2 * col + 2] = True    # 1 km -> 500 m
    expected_bad[11, 0] = True
    expected_bad[18:20, 18:20] = True                        # fill of the 1 km M bands
    np.testing.assert_array_equal(~np.isfinite(values).all(axis=0), expected_bad)
    rows, cols = np.nonzero(~expected_bad)
    for i, name in enumerate(BANDS):
        stored = np.array([expected_value(tile, name, r, c) for r, c in zip(rows, cols)])
        np.testing.assert_allclose(values[i][rows, cols], stored * 1e-4, atol=1e-7)
    assert source.fill_pixels == 5 and source.qa_pixels == expected_bad.sum() - 5
    assert any("SurfReflect_QF2_1: cloud shadow" in rule for rule in source.qa_rules)


def test_noaa20_files_share_the_snpp_entry_and_nbar_masks_per_band(tmp_path):
    tile = make_vnp09ga(tmp_path / "j1", short_name="VJ109GA")
    assert mp.open_products([str(tile.path)]).product.name == "VNP09GA"
    x0, y0 = tile_origin(18, 4)
    r, c = np.mgrid[0:8, 0:8]
    fields = []
    for n in (1, 2, 3):
        values = (1000 * n + 10 * r + c).astype(np.int16)
        values[4, 4] = 32767
        quality = np.zeros((8, 8), np.uint8)
        quality[2, 3] = 1 if n == 2 else 0               # magnitude inversion in NIR only
        fields += [HdfField("VIIRS_Grid_BRDF", f"Nadir_Reflectance_I{n}", values,
                            {"_FillValue": 32767, "scale_factor": 0.0001}),
                   HdfField("VIIRS_Grid_BRDF", f"BRDF_Albedo_Band_Mandatory_Quality_I{n}",
                            quality, {"_FillValue": 255})]
    path = tmp_path / "VNP43IA4.A2021195.h18v04.002.2021204.h5"
    write_hdf_eos5(path, "VNP43IA4", "2021-07-14",
                   {"VIIRS_Grid_BRDF": (x0, y0, PIXEL_500, 8, 8)}, fields)
    files = mp.open_products([str(path)])
    assert files.product.name == "VNP43IA4"

    class Grid:
        grid = (x0, y0, PIXEL_500, 8, 8)
    _source, _info, values, _date = prepared(files, reference_on(Grid, tmp_path, ("red", "nir"),
                                                                factor=2))
    masked = ~np.isfinite(values).all(axis=0)
    assert masked[2, 3] and masked[4, 4] and masked.sum() == 2
    assert values[:, 1, 1] == pytest.approx([0.1011, 0.2011], rel=1e-5)
    with pytest.raises(InputError, match="blue.*not in the product.*red, nir, swir1"):
        mp.prepare_source(files, reference_on(Grid, tmp_path, BANDS, factor=2))


def test_adjacent_viirs_tiles_are_mosaicked_and_warped(tmp_path):
    west = make_vnp09ga(tmp_path, h=17, col0=2376)
    east = make_vnp09ga(tmp_path / "east", h=18, col0=0)
    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    reference = str(write_reference(tmp_path / "geo.tif", -0.05, 49.99, 0.0005, 40, 200, BANDS,
                                    wgs84.ExportToWkt()))
    output = str(tmp_path / "viirs_on_fine.tif")
    result, source = mp.resample_products([str(west.path), str(east.path)], reference, output,
                                          method="nearest")
    assert source.tiles == 2 and source.product == "VNP09GA"
    assert gdal.Open(output).GetMetadataItem("ACQUISITIONDATE") == "2021-07-14"
    values = raster.read_raster(output)
    assert np.isfinite(values).all()
    for row, col in [(0, 0), (20, 60), (39, 199), (10, 150)]:
        lon, lat = -0.05 + 0.0005 * (col + 0.5), 49.99 - 0.0005 * (row + 0.5)
        sx = 6371007.181 * math.radians(lon) * math.cos(math.radians(lat))
        sy = 6371007.181 * math.radians(lat)
        tile = west if sx < 0 else east
        c = math.floor((sx - tile.grid[0]) / PIXEL_500)
        r = math.floor((tile.grid[1] - sy) / PIXEL_500)
        assert values[3, row, col] == pytest.approx(
            expected_value(tile, "nir", r, c) * 1e-4, abs=1e-6), (row, col)
    assert result.band_names == BANDS


def test_a_viirs_file_without_struct_metadata_is_refused_saying_so(tmp_path):
    import h5py
    path = tmp_path / "VNP09GA.A2021195.h18v04.002.2021196093512.h5"
    with h5py.File(path, "w") as h5:
        for name in ("SurfReflect_I1_1", "SurfReflect_I2_1"):
            h5.create_dataset(f"HDFEOS/GRIDS/VIIRS_Grid_500m_2D/Data Fields/{name}",
                              data=np.zeros((4, 4), np.int16))
    with pytest.raises(InputError, match="PRODUCTS.*no HDF-EOS5 StructMetadata.0"):
        mp.open_products([str(path)])
