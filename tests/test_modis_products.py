"""core.modis_products: MODIS HDF-EOS tiles (fixtures written with pyhdf, read by GDAL's HDF4
driver) recognised, stacked in the fine image's band order, scaled, QA-masked, mosaicked."""
import math

import numpy as np
import pytest
from osgeo import gdal, osr

pytest.importorskip("pyhdf.SD", reason="pyhdf writes the HDF4 fixtures (scripts/setup.sh)")
if gdal.GetDriverByName("HDF4") is None:
    pytest.skip("GDAL has no HDF4 driver", allow_module_level=True)

from product_fixtures import (MOD09_NUMBERS, SPHERE, TILE_METRES, make_mod09ga,  # noqa: E402
                              make_single_grid_product, pixel_of_lonlat, prepared,
                              sinusoidal_lonlat, tile_origin, write_reference)
from stfusion.core import modis_products as mp, raster  # noqa: E402
from stfusion.core.errors import InputError  # noqa: E402

BANDS = ("blue", "green", "red", "nir", "swir1", "swir2")
CLEAR = 1 << 3            # state_1km: land, clear
PIXEL_500 = TILE_METRES / 2400


def sinusoidal_wkt(path):
    return gdal.Open(str(path)).GetProjection() or \
        gdal.Open(gdal.Open(str(path)).GetSubDatasets()[0][0]).GetProjection()


def reference_on(fixture, tmp_path, names=BANDS, factor=4, name="fine.tif"):
    """A fine image in the product's sinusoidal CRS over the fixture's grid, ``factor``
    fine pixels per product pixel."""
    x0, y0, pixel, rows, cols = fixture.grid
    return str(write_reference(tmp_path / name, x0, y0, pixel / factor, rows * factor,
                               cols * factor, names, sinusoidal_wkt(fixture.path)))


def test_recognised_with_date_and_a_known_lonlat_lands_on_the_known_pixel(tmp_path):
    tile = make_mod09ga(tmp_path, h=18, v=4, col0=100, row0=200)
    files = mp.open_products([str(tile.path)])
    assert files.product.name == "MOD09GA" and files.date == "2021-07-14"
    assert "sur_refl_b01_1" in files.fields[0] and "state_1km_1" in files.fields[0]
    band = gdal.Open(files.fields[0]["sur_refl_b01_1"])
    # pixel (row 5, col 7) of the cut = pixel (205, 107) of tile h18v04; its centre in lon/lat
    # from the sinusoidal formulas (not from GDAL), then back through GDAL's georeference
    x = tile_origin(18, 4)[0] + (107 + 0.5) * PIXEL_500
    y = tile_origin(18, 4)[1] - (205 + 0.5) * PIXEL_500
    lon, lat = sinusoidal_lonlat(x, y)
    assert 0 < lon < 2 and 49 < lat < 50
    assert pixel_of_lonlat(band, lon, lat) == (7, 5)
    assert band.ReadAsArray()[5, 7] == 1000 * 1 + 10 * 5 + 7


def test_band_order_scale_fill_and_every_qa_bit(tmp_path):
    state = {(1, 1): CLEAR | 1,          # cloudy
             (6, 5): CLEAR | 2,          # mixed
             (2, 3): CLEAR | 1 << 2,     # cloud shadow
             (3, 5): CLEAR | 3 << 8,     # high cirrus
             (4, 7): CLEAR | 2 << 8,     # average cirrus
             (5, 9): CLEAR | 1 << 8,     # small cirrus: kept
             (7, 2): CLEAR | 3}          # "not set, assumed clear": kept
    qc = {(10, 10): 2, (10, 12): 3, (12, 12): 1}   # not produced x2, less than ideal (kept)
    tile = make_mod09ga(tmp_path, state=state, qc=qc, fill=((11, 0),))
    files = mp.open_products([str(tile.path)])
    source, info, values, metadata = prepared(files, reference_on(tile, tmp_path))
    assert info.band_names == BANDS and info.scale == (1e-4,) * 6
    assert metadata == "2021-07-14" and values.shape == (6, 24, 24)
    expected_bad = np.zeros((24, 24), bool)
    for (row, col), value in state.items():
        if value in (CLEAR | 1, CLEAR | 2, CLEAR | 1 << 2, CLEAR | 3 << 8, CLEAR | 2 << 8):
            expected_bad[2 * row:2 * row + 2, 2 * col:2 * col + 2] = True   # 1 km -> 500 m
    expected_bad[10, 10] = expected_bad[10, 12] = expected_bad[11, 0] = True
    np.testing.assert_array_equal(~np.isfinite(values).all(axis=0), expected_bad)
    for i, name in enumerate(BANDS):
        stored = tile.numbers[MOD09_NUMBERS[name]]
        np.testing.assert_allclose(values[i][~expected_bad], stored[~expected_bad] * 1e-4,
                                   atol=1e-7)
    assert source.fill_pixels == 1 and source.qa_pixels == expected_bad.sum() - 1
    kept, _info, values, _date = prepared(files, reference_on(tile, tmp_path), keep_qa=True)
    masked = ~np.isfinite(values).all(axis=0)
    assert masked.sum() == 1 and masked[11, 0] and kept.qa_pixels == 0


def _one_grid(tmp_path, product):
    """A fixture of ``product`` (8 x 8 pixels) with one bad-QA pixel at (2, 3) and one fill
    pixel at (4, 4); returns (fixture, reference band names, band -> expected value at
    (1, 1))."""
    r, c = np.mgrid[0:8, 0:8]
    if product in ("MCD43A4", "MYD09A1", "MOD09A1"):
        numbers = {n: (1000 * n + 10 * r + c).astype(np.int16) for n in range(1, 8)}
        if product == "MCD43A4":
            fields = []
            for n in range(1, 8):
                values = numbers[n].copy()
                values[4, 4] = 32767
                quality = np.zeros((8, 8), np.uint8)
                quality[2, 3] = 1 if n == 2 else 0        # magnitude inversion in NIR only
                fields += [(f"BRDF_Albedo_Band_Mandatory_Quality_Band{n}", quality,
                            {"_FillValue": 255}),
                           (f"Nadir_Reflectance_Band{n}", values,
                            {"_FillValue": 32767, "scale_factor": 0.0001, "add_offset": 0.0})]
            grid = "MOD_Grid_BRDF"
        else:
            state = np.full((8, 8), CLEAR, np.uint16)
            state[2, 3] = CLEAR | 1
            fields = [(f"sur_refl_b{n:02d}", numbers[n],
                       {"_FillValue": -28672, "scale_factor": 0.0001}) for n in range(1, 8)]
            for _name, values, _a in fields:
                values[4, 4] = -28672
            fields += [("sur_refl_qc_500m", np.zeros((8, 8), np.uint32), {}),
                       ("sur_refl_state_500m", state, {"_FillValue": 65535})]
            grid = "MOD_Grid_500m_Surface_Reflectance"
        expected = {name: (1000 * n + 11) * 1e-4 for name, n in MOD09_NUMBERS.items()}
        fixture = make_single_grid_product(tmp_path, product, grid, 2400, fields)
        return fixture, BANDS, expected
    if product in ("MOD13Q1", "MYD13A1"):
        prefix = "250m" if product.endswith("Q1") else "500m"
        grid = f"MODIS_Grid_16DAY_{'250m_500m' if prefix == '250m' else '500m'}_VI"
        ndvi = (5000 + 10 * r + c).astype(np.int16)
        ndvi[4, 4] = -3000
        red = (800 + r + c).astype(np.int16)
        reliability = np.zeros((8, 8), np.int8)
        reliability[2, 3], reliability[5, 5] = 3, 1            # cloudy; marginal kept
        # the files' own scale_factor is 10000 (divide): stfusion uses 0.0001
        fields = [(f"{prefix} 16 days NDVI", ndvi, {"_FillValue": -3000,
                                                      "scale_factor": 10000.0}),
                  (f"{prefix} 16 days red reflectance", red, {"_FillValue": -1000,
                                                                "scale_factor": 10000.0}),
                  (f"{prefix} 16 days pixel reliability", reliability, {"_FillValue": -1})]
        fixture = make_single_grid_product(tmp_path, product, grid,
                                           4800 if prefix == "250m" else 2400, fields)
        return fixture, ("ndvi", "red"), {"ndvi": 0.5011, "red": 0.0802}
    lst = (15000 + 10 * r + c).astype(np.uint16)
    lst[4, 4] = 0
    qc = np.zeros((8, 8), np.uint8)
    qc[2, 3] = 2
    fields = [("LST_Day_1km", lst, {"_FillValue": 0, "scale_factor": 0.02}),
              ("QC_Day", qc, {}), ("LST_Night_1km", lst, {"_FillValue": 0, "scale_factor": 0.02})]
    fixture = make_single_grid_product(tmp_path, product, "MODIS_Grid_Daily_1km_LST", 1200,
                                       fields)
    return fixture, ("lst",), {"lst": 15011 * 0.02}


@pytest.mark.parametrize("product", ["MOD09A1", "MYD09A1", "MCD43A4", "MOD13Q1", "MYD13A1",
                                     "MOD11A1"])
def test_other_products_scale_fill_and_qa(tmp_path, product):
    fixture, names, expected = _one_grid(tmp_path, product)
    files = mp.open_products([str(fixture.path)])
    assert files.product.name == product.replace("MYD", "MOD")
    source, info, values, _date = prepared(files, reference_on(fixture, tmp_path, names,
                                                              factor=2))
    assert info.band_names == tuple(names)
    masked = ~np.isfinite(values).all(axis=0)
    assert masked[2, 3] and masked[4, 4] and masked.sum() == 2
    for i, name in enumerate(names):
        assert values[i, 1, 1] == pytest.approx(expected[name], rel=1e-5), name
    assert source.qa_pixels == 1 and source.fill_pixels == 1


def test_unknown_container_lists_its_subdatasets(tmp_path):
    fields = [("Optical_Depth_Land_And_Ocean", np.zeros((4, 4), np.int16), {}),
              ("Land_Ocean_Quality_Flag", np.zeros((4, 4), np.int16), {})]
    fixture = make_single_grid_product(tmp_path, "MOD04_3K", "mod04", 2400, fields)
    with pytest.raises(InputError, match="MOD04_3K.*subdatasets: Land_Ocean_Quality_Flag; "
                                         "Optical_Depth_Land_And_Ocean.*Supported.*MOD09GA"):
        mp.open_products([str(fixture.path)])


def test_mixed_dates_and_unmatched_reference_bands_are_refused(tmp_path):
    a = make_mod09ga(tmp_path / "a")
    b = make_mod09ga(tmp_path / "b", h=19, date="2021-07-15")
    with pytest.raises(InputError, match="MOD09GA of 2021-07-14, MOD09GA of 2021-07-15"):
        mp.open_products([str(a.path), str(b.path)])
    files = mp.open_products([str(a.path)])
    with pytest.raises(InputError, match="REFERENCE.*ndvi not in the product"):
        mp.prepare_source(files, reference_on(a, tmp_path, ("red", "ndvi")))


def _utm31_reference(tmp_path, rows=100, cols=240):
    """A 30 m UTM 31N fine image straddling longitude 0 (the h17/h18 tile edge) at 49.97 N."""
    utm, wgs84 = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromEPSG(32631)
    wgs84.ImportFromEPSG(4326)
    for srs in (utm, wgs84):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    x, y = osr.CoordinateTransformation(wgs84, utm).TransformPoint(-0.05, 49.97)[:2]
    x0, y0 = 30 * round(x / 30), 30 * round(y / 30)
    path = write_reference(tmp_path / "utm.tif", x0, y0, 30.0, rows, cols, BANDS,
                           utm.ExportToWkt())
    return str(path), osr.CoordinateTransformation(utm, wgs84), (x0, y0)


def test_adjacent_tiles_are_mosaicked_and_warped_with_the_date(tmp_path):
    west = make_mod09ga(tmp_path, h=17, col0=2376, offset=0)
    east = make_mod09ga(tmp_path, h=18, col0=0, offset=300)
    reference, to_lonlat, (x0, y0) = _utm31_reference(tmp_path)
    output = str(tmp_path / "modis_on_fine.tif")
    result, source = mp.resample_products([str(west.path), str(east.path)], reference, output,
                                          method="nearest")
    assert source.tiles == 2 and source.date == "2021-07-14"
    assert gdal.Open(output).GetMetadataItem("ACQUISITIONDATE") == "2021-07-14"
    assert raster.raster_info(output).band_names == BANDS
    values = raster.read_raster(output)
    assert np.isfinite(values).all()                 # no seam between the tiles
    sides = set()
    for row, col in [(0, 0), (50, 100), (50, 139), (99, 239), (20, 180), (70, 60)]:
        lon, lat = to_lonlat.TransformPoint(x0 + 30 * (col + 0.5), y0 - 30 * (row + 0.5))[:2]
        sx = SPHERE * math.radians(lon) * math.cos(math.radians(lat))
        sy = SPHERE * math.radians(lat)
        tile = west if sx < 0 else east
        sides.add(tile is west)
        c = math.floor((sx - tile.grid[0]) / PIXEL_500)
        r = math.floor((tile.grid[1] - sy) / PIXEL_500)
        for i, name in enumerate(BANDS):
            assert values[i, row, col] == pytest.approx(
                tile.numbers[MOD09_NUMBERS[name]][r, c] * 1e-4, abs=1e-6), (row, col, name)
    assert sides == {True, False}
    assert result.band_names == BANDS

